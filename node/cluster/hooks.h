/* What node/cluster/ (owner, repl, move) asks of the rest of the node:
 * the calls that go up, installed by the composition root (node/node.c)
 * with one arg. Cluster decides ownership, fencing and what the pair
 * holds; the scheduler, delivery and the suppression list act on it.
 *
 * Every hook is set (a test installs its own). Each runs synchronously,
 * from inside the cluster call that caused it; none may call back into
 * the module that called it. The suppression hooks run inside a write
 * transaction of the store: they change t and nothing else. */
#ifndef SHOAL_NODE_CLUSTER_HOOKS_H
#define SHOAL_NODE_CLUSTER_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/node_node.pb-c.h"
#include "proto/queue.pb-c.h"

struct store_txn;

struct cluster_hooks {
	/* The map in force changed (stored, journal set, logged): map is
	 * owner_map(), valid until the next change. Delivery's limits
	 * share is recomputed from it; deliveries waiting to start ask
	 * again; more may be due. */
	void (*map_changed)(void *arg, const Shoal__ShardMap *map);
	/* owner_may_deliver() turned: false (fenced) makes the deliveries
	 * waiting to start ask again (they are dropped, still due); true
	 * lets the scheduler run. */
	void (*fence_changed)(void *arg, bool may_deliver);
	/* Fewer deliveries may start than before (a shard frozen for a
	 * move or a planned failover): those waiting to start ask
	 * owner_may_start() again. */
	void (*starts_revoked)(void *arg);
	/* More may be due or may start (a freeze ended, a handback adopted
	 * messages): the scheduler runs soon. */
	void (*work_due)(void *arg);
	/* Deliveries in flight of the shards flagged in shards[0..n), or of
	 * every shard when shards is NULL. */
	uint64_t (*in_flight)(void *arg, const uint8_t *shards, size_t n);
	/* Deliveries are paused because results cannot be saved (a full
	 * store, node/queue/scheduler_result.c): what is in flight then
	 * waits for room, not for the remote MXs. */
	bool (*results_unsaved)(void *arg);
	/* The suppression entries of the shards in the pair's stream and
	 * moves (node/suppress/suppress.h): apply one record in t; drop
	 * every entry of shard in t, adding their number to *n; journal
	 * every entry of the shards this node is primary for in t, adding
	 * their number to *n. Each returns 0 or a store error; supp_apply
	 * returns a positive value for a record it skipped as bad (noted
	 * for the log, which comes after the commit). */
	int (*supp_apply)(void *arg, struct store_txn *t,
			  const Shoal__ReplRecord *rec);
	int (*supp_purge)(void *arg, struct store_txn *t, uint32_t shard,
			  uint64_t *n);
	int (*supp_touch)(void *arg, struct store_txn *t, uint64_t *n);
	void *arg;
};

#endif
