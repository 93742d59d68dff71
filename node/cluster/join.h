/* The shard map a node starts with (node/cluster/join.c): stored, derived
 * from the config, or, joining a running cluster, the other nodes'. */
#ifndef SHOAL_NODE_JOIN_H
#define SHOAL_NODE_JOIN_H

#include <stdbool.h>

#include "lib/config.h"
#include "proto/queue.pb-c.h"

struct store;

/* The map this node starts with, in *out (caller frees with
 * shardmap_free(); owner_new() takes it). The stored one; else, on the
 * first start, the config's (join false) or the running cluster's (join
 * true, join_fetch_map()), stored. The data dir is marked as me's on the
 * first start; one marked for another node is refused. Returns 0, or
 * SHOAL_E_CONFIG (another node's data dir, a stored map unreadable or
 * for another cluster.shards), a join_fetch_map() error or a store error;
 * logged. Runs before the event loop: joining may take 30 s. */
int join_load_map(struct store *st, const struct config *cfg,
		  const struct cfg_node *me, bool join, Shoal__ShardMap **out);

/* Ask the other nodes of cfg for the map (for up to 30 s) and return it,
 * with every node of cfg listed, in *out (caller frees with
 * shardmap_free()). Returns 0, -ETIMEDOUT when nobody answered, or
 * SHOAL_E_CONFIG when the map makes `me` primary of a shard (a node whose
 * data was lost must not come back as owner with nothing). Logs why. */
int join_fetch_map(const struct config *cfg, const char *me,
		   Shoal__ShardMap **out);

#endif
