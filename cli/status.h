/* shoalctl status: every node's view of itself, asked all at once. */
#ifndef SHOAL_CLI_STATUS_H
#define SHOAL_CLI_STATUS_H

struct cli;

/* Run `status` (no arguments). Prints a table, or with --json one
 * document; a node that does not answer is shown as unreachable. Returns
 * CLI_EXIT_OK, or CLI_EXIT_FAIL when no node answered. */
int status_run(struct cli *c, int argc, char **argv);

#endif
