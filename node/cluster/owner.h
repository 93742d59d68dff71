/* Shard ownership on a node: the shard map it acts on, adopting newer maps
 * (from its peer, routers, or its own failover), taking over its peer's
 * shards when the peer is gone, and the fencing rule that says whether it
 * may deliver at all. docs/replication.md explains the rules and why they
 * keep delivery at-least-once with rare duplicates.
 *
 * Changing the map is one write transaction: the map is stored, and the
 * due index gains entries for the shards gained (a replica holds no due
 * entries) and loses those of the shards lost. Then the store journals
 * exactly the shards this node is primary for.
 *
 * The owner holds the map in force (owner_map()); everyone else reads it
 * there and is told of changes through the hooks node.c installs
 * (node/cluster/hooks.h). Its own timer (each replication.heartbeat_ms)
 * runs the failover rule, the fencing transitions and planned failovers;
 * the peer link (node/cluster/repl.c) only reports what it hears. */
#ifndef SHOAL_NODE_OWNER_H
#define SHOAL_NODE_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "node/cluster/hooks.h"
#include "proto/cli_node.pb-c.h"
#include "proto/queue.pb-c.h"

struct event_base;
struct owner;
struct repl;
struct rpc;
struct rpc_ticket;
struct store;

/* The store's meta key of the map in force (join.c stores the first). */
#define OWNER_META_MAP "shard_map"

/* A planned failover or a shard move freezes the shards it gives away,
 * then waits this long for their deliveries in flight to finish (a result
 * that cannot be saved on a full disk stays in flight); after that it
 * gives up and unfreezes them, and the operator hears why: */
#define OWNER_IN_FLIGHT_WAIT_MS 30000
const char *owner_in_flight_giveup(const struct cluster_hooks *h);

/* Routers remembered for fencing and failover decisions; more are
 * ignored until one goes quiet. */
#define OWNER_ROUTERS_MAX 256

/* The owner of node me, acting on map (taken: join_load_map()'s), with
 * st for the map and the due index, rpc to answer planned failovers and
 * hooks (copied) for everything above. Sets the journaled shards from map
 * and drops the messages of shards this node has no part in (what a move
 * here left when it did not finish). With a peer and replication on,
 * fenced until it hears its peer's map (see owner_may_deliver()), and
 * its timer runs from the event loop. */
struct owner *owner_new(struct event_base *base, const struct config *cfg,
			const struct cfg_node *me, struct store *st,
			struct rpc *rpc, Shoal__ShardMap *map,
			const struct cluster_hooks *hooks);

/* The peer link, made after the owner: a takeover tells the peer at once,
 * a planned failover waits for its ack of the journal. */
void owner_set_repl(struct owner *o, struct repl *r);

/* owner_free(NULL) does nothing. Frees the map. */
void owner_free(struct owner *o);

/* A shard being moved here (journaled to our peer while it arrives, not
 * purged), or -1 for none. */
void owner_set_incoming(struct owner *o, int64_t shard);

/* A shard being moved away: no deliveries start, enqueues are answered
 * "moving" (the router tries again). -1 for none. */
void owner_set_frozen(struct owner *o, int64_t shard);
bool owner_is_frozen(const struct owner *o, uint32_t shard);

/* Drop the messages of a shard this node neither owns, replicates nor is
 * receiving (a move here that did not finish). Returns 0 or an error. */
int owner_purge(struct owner *o, uint32_t shard);

/* Whether this node is the primary of shard by its map. */
bool owner_is_primary(const struct owner *o, uint32_t shard);

/* The shards this node is primary for by the map in force: their number,
 * and, when mask is not NULL, mask[s] = 1 for each of them and 0 for the
 * others (mask holds owner_map(o)->n_shards bytes). The one count of
 * them. */
uint32_t owner_primary_shards(const struct owner *o, uint8_t *mask);

/* Adopt m if it is newer than the current map (lib/shardmap.h rule). m
 * is untrusted: it is re-checked. Returns true when adopted. */
bool owner_offer(struct owner *o, const Shoal__ShardMap *m);

/* A router's heartbeat arrived: its id, whether it still hears from this
 * node's peer, and the newest send time of ours it echoes (our monotonic
 * ms, proto/router_node.proto; 0 = none). */
void owner_heard_router(struct owner *o, const char *router_id, bool sees_peer,
			uint64_t echo_ms);

/* The peer was heard (any message on the peer link): its own send time
 * (0 from a peer that does not echo) and the send time of ours it echoes
 * (proto/node_node.proto). */
void owner_heard_peer(struct owner *o, uint64_t sent_ms, uint64_t echo_ms);

/* The peer's message carried its map (not every message does: repl.c),
 * with that message's sent_ms and echo_ms. A node that starts fenced, or
 * whose lease lapsed, stays so until this (for a lapse: in a message
 * echoing a time after it), or failover_after_ms. */
void owner_heard_peer_map(struct owner *o, uint64_t sent_ms, uint64_t echo_ms);

/* Monotonic ms of the arrival of the last message from the peer, 0 =
 * never (the failover rule and pair health count from arrival). */
uint64_t owner_peer_heard_ms(const struct owner *o);

/* The shard map in force: read-only for everyone but the owner. Valid
 * until the next map change (owner_offer(), a failover, a move); copy
 * what must outlive a callback. */
const Shoal__ShardMap *owner_map(const struct owner *o);

/* The clock every decision of the owner reads (leases, silence,
 * stalls, handover limits): CLOCK_MONOTONIC unless set. For tests, which
 * move time on without waiting for it; set it right after owner_new(),
 * which counts the start from it. */
void owner_set_clock(struct owner *o, uint64_t (*now_ms)(void *), void *arg);

/* Whether this node may start deliveries now (not fenced), by its lease on
 * the monotonic clock now. */
bool owner_may_deliver(struct owner *o);

/* Whether a delivery of a message of shard may start now: not fenced,
 * primary of the shard, the shard neither being moved away nor given away
 * by a planned failover. The one place this is decided: the scheduler
 * asks it when it picks a message, delivery before every message it
 * starts, on a new or a reused connection. */
bool owner_may_start(struct owner *o, uint32_t shard);

/* Take the peer's shards now: a planned failover (admin) or the failover
 * rule below. Returns the number of shards taken, or -errno. */
int owner_take_over(struct owner *o, const char *why);

/* Planned failover and failback (proto/cli_node.proto FailoverRequest),
 * answered to t (copied) on the admin link once done. */
void owner_failover(struct owner *o, const struct rpc_ticket *t,
		    const Shoal__FailoverRequest *req);

/* Routers heard within failover_after_ms: calls fn for each with its id
 * and the ms since its last heartbeat. */
void owner_routers(const struct owner *o,
		   void (*fn)(const char *id, uint64_t ms_ago, void *arg),
		   void *arg);

/* Periodic work, run by the owner's timer each replication.heartbeat_ms
 * (a test may call it): a planned failover's next step, fencing
 * transitions, and the failover rule (the peer silent for
 * failover_after_ms and every router heard within that time agreeing it
 * is gone). */
void owner_tick(struct owner *o);

#endif
