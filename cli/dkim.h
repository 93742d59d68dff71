/* shoalctl dkim keygen (cli/dkim.c). */
#ifndef SHOAL_CLI_DKIM_H
#define SHOAL_CLI_DKIM_H

struct cli;

/* dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] [--bits N] [--out FILE]
 * [--force]: returns an exit status. */
int dkim_keygen_run(struct cli *c, int argc, char **argv);

#endif
