/* shoalctl keygen FILE (cli/keygen.c). */
#ifndef SHOAL_CLI_KEYGEN_H
#define SHOAL_CLI_KEYGEN_H

struct cli;

int keygen_run(struct cli *c, int argc, char **argv);

#endif
