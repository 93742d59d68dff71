/* shoalctl shard ...: the shard map and shard moves; node drain moves
 * shards with shard_move_one(). */
#ifndef SHOAL_CLI_SHARD_H
#define SHOAL_CLI_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/queue.pb-c.h"

struct cli;

/* shard list (no arguments). */
int shard_list_run(struct cli *c, int argc, char **argv);

/* shard move SHARD --to NODE. */
int shard_move_run(struct cli *c, int argc, char **argv);

struct shard_moved {
	char from[65], replica[65];
	uint64_t epoch, messages;
	bool already;               /* it was on `to` already */
};

/* Move shard to node `to` (config checked by the caller), asking its
 * primary and, after a failover mid-move, the next one. Returns
 * CLI_EXIT_OK with *res, or CLI_EXIT_FAIL (said on stderr). */
int shard_move_one(struct cli *c, uint32_t shard, const char *to,
		   struct shard_moved *res);

/* The newest map the nodes answer with (caller frees with
 * shardmap_free()), or NULL. */
Shoal__ShardMap *shard_current_map(struct cli *c);

#endif
