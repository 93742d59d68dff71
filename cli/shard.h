/* shoalctl shard ...: the shard map. Parsed, not yet available. */
#ifndef SHOAL_CLI_SHARD_H
#define SHOAL_CLI_SHARD_H

struct cli;

/* shard list (no arguments). */
int shard_list_run(struct cli *c, int argc, char **argv);

/* shard move SHARD --to NODE. */
int shard_move_run(struct cli *c, int argc, char **argv);

#endif
