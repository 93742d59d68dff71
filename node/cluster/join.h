/* Joining a running cluster: the shard map from the other nodes instead
 * of one derived from the config (node/join.c). */
#ifndef SHOAL_NODE_JOIN_H
#define SHOAL_NODE_JOIN_H

#include "lib/config.h"
#include "proto/queue.pb-c.h"

/* Ask the other nodes of cfg for the map (for up to 30 s) and return it,
 * with every node of cfg listed, in *out (caller frees with
 * shardmap_free()). Returns 0, -ETIMEDOUT when nobody answered, or
 * SHOAL_E_CONFIG when the map makes `me` primary of a shard (a node whose
 * data was lost must not come back as owner with nothing). Logs why. */
int join_fetch_map(const struct config *cfg, const char *me,
		   Shoal__ShardMap **out);

#endif
