/* shoalctl user add|remove NAME: the router's users file (router.users_file,
 * "user:crypt-hash" lines). */
#ifndef SHOAL_CLI_USER_H
#define SHOAL_CLI_USER_H

struct cli;

/* user add NAME (password: the first line of stdin, or asked for on a
 * terminal without echo) / user remove NAME. */
int user_cmd_run(struct cli *c, const char *verb, int argc, char **argv);

#endif
