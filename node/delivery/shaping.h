/* Traffic shaping per destination (delivery.limits): concurrent
 * connections, messages per connection and messages per second, with the
 * cluster-wide budget split between nodes by the share of shards each is
 * primary for. A limit that names a domain applies to the destination
 * that domain resolves to (the provider's whole site); "*" is the default.
 *
 * The split rounds down and gives every node at least one connection, so
 * the cluster-wide limit holds whenever it is at least the number of nodes
 * that own shards. The share follows the shard map: the caller computes it
 * again with shaping_share() whenever the node adopts a map (failover,
 * failback, shard move, join) and applies it to every destination with
 * shaping_set_share(). */
#ifndef SHOAL_NODE_SHAPING_H
#define SHOAL_NODE_SHAPING_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"
#include "proto/queue.pb-c.h"

/* A token bucket of rate tokens per second (at most max(rate, 1) kept),
 * refilled up to now_us (a monotonic clock; a step back is no time). */
struct bucket {
	double tokens;
	uint64_t refilled_us;
};

struct shaping {
	const struct cfg_limit *limit; /* the entry applied, NULL = built-in;
					  valid while the config lives */
	uint32_t max_connections;    /* this node's share */
	uint32_t max_msgs_per_conn;
	double max_msgs_per_sec;     /* this node's share, 0 = unlimited */
	enum cfg_tls tls;
	bool is_specific;            /* from a limit naming a domain */
	/* adaptive shaping's caps (node/delivery/adapt.h), this node's
	 * share already applied; 0 = none */
	double cap_rate;
	uint32_t cap_conns;
	struct bucket bucket;        /* for the rate */
};

/* The limits that apply to jobs of `domain`, scaled by share (0..1]:
 * shaping_for_pool() with no pool. */
void shaping_for_domain(const struct config *cfg, const char *domain,
			double share, struct shaping *out);

/* The limits for jobs of `domain` sent from IP pool `pool` (NULL or ""
 * for none), scaled by share. The most specific entry wins: pool and
 * domain, then domain (any pool), then pool and "*", then "*"; an entry
 * naming a pool never applies to mail of another pool or none. Each
 * pool's destinations count their own connections and rate. */
void shaping_for_pool(const struct config *cfg, const char *pool,
		      const char *domain, double share, struct shaping *out);

/* The limits entry shaping_for_pool() uses, or NULL for the built-in
 * default. Valid while cfg lives. */
const struct cfg_limit *shaping_match(const struct config *cfg,
				      const char *pool, const char *domain);

/* This node's share of the cluster-wide limits under map m: the shards
 * it is primary for over all shards, in (0, 1]. A node primary for none
 * (a replica only, a node that just joined) gets 1 / shards, so what it
 * still holds goes out slowly; a map without shards gives 1. */
double shaping_share(const Shoal__ShardMap *m, const char *node_id);

/* Scale s's limit entry to a new share (taken as 1 outside (0, 1]): the
 * connection count (at least one) and the rate change; the bucket keeps
 * its tokens, capped to the new burst. Connections already open above a
 * smaller count are the caller's to close. */
void shaping_set_share(struct shaping *s, double share);

/* Adaptive shaping's caps on top of the limits: at most rate msgs/s and
 * conns connections (0: no cap), this node's share already applied. */
void shaping_set_caps(struct shaping *s, double rate, uint32_t conns);

/* The connections s allows now: the limit, or a smaller cap. */
uint32_t shaping_max_conns(const struct shaping *s);

/* Microseconds until b has a token at rate (> 0): 0 when it has one. */
uint64_t bucket_wait(struct bucket *b, double rate, uint64_t now_us);

/* Whether b is full at rate: as good as new, so it may be dropped. */
bool bucket_is_full(struct bucket *b, double rate, uint64_t now_us);

/* Take one message token at now_us (a monotonic clock's reading; should
 * it go back, no time has passed). Returns 0 when a message may go now,
 * else the microseconds to wait. */
uint64_t shaping_take(struct shaping *s, uint64_t now_us);

#endif
