/* The shard map: for each virtual shard its primary node and replica, with
 * an epoch that only grows. Helpers shared by routers, nodes and shoalctl.
 * Maps are protobuf-c messages (proto/queue.proto ShardMap); every map
 * these functions return is freed with shardmap_free(). */
#ifndef SHOAL_SHARDMAP_H
#define SHOAL_SHARDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "proto/queue.pb-c.h"

/* The first map of a cluster, from the config: epoch 1, nodes in config
 * order, shard s owned by nodes[s % n] with that node's peer as replica.
 * Caller frees with shardmap_free(). */
Shoal__ShardMap *shardmap_derive(const struct config *cfg);

/* Unpack and check a map received from a peer or read from disk. Returns
 * the map (caller frees with shardmap_free()) or NULL when it is malformed:
 * epoch 0, shard count not equal to `shards`, a primary or replica that is
 * not among its nodes, over-long strings. */
Shoal__ShardMap *shardmap_unpack(const void *data, size_t len,
				 uint32_t shards);

/* Pack into a new buffer (caller frees with free()). */
void *shardmap_pack(const Shoal__ShardMap *m, size_t *len);

/* A deep copy (caller frees with shardmap_free()). */
Shoal__ShardMap *shardmap_dup(const Shoal__ShardMap *m);

/* shardmap_free(NULL) does nothing. */
void shardmap_free(Shoal__ShardMap *m);

/* The node entry with this id, or NULL. Valid while m lives. */
const Shoal__NodeInfo *shardmap_node(const Shoal__ShardMap *m, const char *id);

/* Whether map m should replace cur: a higher epoch, or the same epoch made
 * by a node whose id sorts first (two nodes that made an epoch each while
 * cut off from each other agree on one of them). cur may be NULL. */
bool shardmap_newer(const Shoal__ShardMap *m, const Shoal__ShardMap *cur);

/* A copy of m at epoch + 1 by author, in which every shard whose primary
 * is `from` and whose replica is `to` has them swapped; with home (e.g. the
 * cluster's first map), only those whose primary in home is `to` (a
 * failback). *moved counts those shards. Caller frees with
 * shardmap_free(). */
Shoal__ShardMap *shardmap_swap(const Shoal__ShardMap *m, const char *from,
			       const char *to, const char *author,
			       const Shoal__ShardMap *home, size_t *moved);

/* The primary's id for a shard, or NULL when shard is out of range. */
const char *shardmap_primary(const Shoal__ShardMap *m, uint32_t shard);

enum shardmap_role {
	SHARDMAP_PRIMARY,
	SHARDMAP_REPLICA,
};

/* The shards in which node id has role: their count, and when out is not
 * NULL their numbers in ascending order into out (room for m->n_shards).
 * The one count of "shards I am primary for" (status, metrics, limits,
 * the ready line). */
uint32_t shardmap_shards_of(const Shoal__ShardMap *m, const char *id,
			    enum shardmap_role role, uint32_t *out);

#endif
