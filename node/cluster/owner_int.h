/* What node/cluster/owner.c (the map, failover rule, fencing) and
 * owner_handover.c (planned failover and failback) share: the owner's
 * state. Nothing outside those two files includes this. */
#ifndef SHOAL_NODE_OWNER_INT_H
#define SHOAL_NODE_OWNER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "node/cluster/hooks.h"
#include "node/cluster/owner.h"
#include "node/rpc/rpc.h"
#include "proto/queue.pb-c.h"

struct event;
struct repl;
struct rpc;
struct store;

struct owner_router {
	char id[256];
	uint64_t heard_ms; /* arrival of its last heartbeat */
	bool sees_peer;
};

/* A planned failover in progress: the shards it gives away are frozen
 * (no delivery of them starts), it waits for those in flight and for the
 * peer's ack of the journal, then the shards go to the peer. */
struct owner_handover {
	bool active;
	bool back;                    /* failback: only the peer's first shards */
	struct rpc_ticket asker;      /* answered when done */
	uint64_t started_ms;
	uint64_t drained_ms; /* nothing of them in flight since */
	uint64_t lag_target; /* journal seq then: the peer's ack */
};

struct owner {
	const struct config *cfg;
	const struct cfg_node *me;
	struct store *store;
	struct rpc *rpc;
	struct repl *repl;            /* NULL until owner_set_repl() */
	struct cluster_hooks hooks;
	struct event *timer;          /* owner_tick(), when active */
	Shoal__ShardMap *map;         /* the map in force, owned */
	const char *peer;             /* peer id, NULL when none */
	bool active;                  /* a peer and replication on */
	uint64_t started_ms;
	uint64_t peer_heard_ms; /* arrival of its last message, 0 none */
	/* the lease: the newest time (our clock) the peer or a router
	 * provably heard us; and since when the peer's map must be heard
	 * again (start, a lapsed lease, a stalled loop) */
	uint64_t contact_ms;
	uint64_t relearn_ms;
	bool relearn_strict; /* after a lapse: only an echoed map */
	bool peer_map_heard; /* since relearn_ms */
	uint64_t loop_ms;    /* last owner_tick(): stall detection */
	uint64_t (*clock_ms)(void *); /* owner_set_clock(); NULL: monotonic */
	void *clock_arg;
	struct owner_router routers[OWNER_ROUTERS_MAX];
	size_t n_routers;
	bool fenced;                  /* last answer of owner_may_deliver */
	/* a newer map was offered and could not be stored (a full disk):
	 * which shards are ours is not known, so nothing is delivered until
	 * a map is adopted (the peer offers its map with every heartbeat) */
	bool is_map_behind;
	/* map_not_stored is logged once per epoch, then at most every
	 * OWNER_MAP_FAIL_LOG_MS with the failures since */
	uint64_t map_fail_epoch, map_fail_logged_ms, map_fails;
	struct owner_handover ho;
	uint8_t *handing; /* per shard: the handover gives it */
	size_t n_handing;
	int64_t incoming;             /* shard being moved here, or -1 */
	int64_t frozen;               /* shard being moved away, or -1 */
};

/* Now, in ms, on the owner's clock: monotonic, or a test's. */
static inline uint64_t
owner_now(const struct owner *o)
{
	return o->clock_ms ? o->clock_ms(o->clock_arg) : clock_mono_ms();
}

/* ---- owner.c ---- */

/* A new epoch by this node in which the shards with primary `from` and
 * replica `to` change places; with back, only those `to` had in the
 * cluster's first map. Adopted, and sent to the peer at once. Returns the
 * shards moved or -errno. */
int owner_swap(struct owner *o, const char *from, const char *to, bool back,
	       const char *why);

/* ---- owner_handover.c ---- */

/* Whether a planned failover is giving shard away. */
bool owner_is_handing(const struct owner *o, uint32_t shard);

/* A planned failover's next step (owner_tick()): give the shards away
 * once drained and acknowledged, or give up after 30 s. */
void owner_handover_step(struct owner *o);

#endif
