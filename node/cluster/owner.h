/* Shard ownership on a node: the shard map it acts on, adopting newer maps
 * (from its peer, routers, or its own failover), taking over its peer's
 * shards when the peer is gone, and the fencing rule that says whether it
 * may deliver at all. docs/replication.md explains the rules and why they
 * keep delivery at-least-once with rare duplicates.
 *
 * Changing the map is one write transaction: the map is stored, and the
 * due index gains entries for the shards gained (a replica holds no due
 * entries) and loses those of the shards lost. Then the store journals
 * exactly the shards this node is primary for. */
#ifndef SHOAL_NODE_OWNER_H
#define SHOAL_NODE_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cli_node.pb-c.h"
#include "proto/queue.pb-c.h"

struct node;
struct owner;

/* Routers remembered for fencing and failover decisions; more are
 * ignored until one goes quiet. */
#define OWNER_ROUTERS_MAX 256

struct owner *owner_new(struct node *n);

/* owner_free(NULL) does nothing. */
void owner_free(struct owner *o);

/* Set the journaled shards from the current map and drop messages of
 * shards this node has no part in (at start). */
void owner_init_journal(struct owner *o);

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
 * answered on the admin link (to reply_to) once done. */
void owner_failover(struct owner *o, const void *reply_to,
		    size_t reply_to_len, uint64_t request_id,
		    const Shoal__FailoverRequest *req);

/* Routers heard within failover_after_ms: calls fn for each with its id
 * and the ms since its last heartbeat. */
void owner_routers(const struct owner *o,
		   void (*fn)(const char *id, uint64_t ms_ago, void *arg),
		   void *arg);

/* Periodic work (each replication.heartbeat_ms): the failover rule (the
 * peer silent for failover_after_ms and every router heard within that
 * time agreeing it is gone) and fencing transitions. */
void owner_tick(struct owner *o);

#endif
