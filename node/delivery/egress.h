/* The source addresses of this node's IP pools (delivery.pools,
 * docs/pools.md): each pool's addresses parsed once, the round-robin
 * position, and the cool-down of an address that failed for its own
 * sake. Knows nothing of connections: dest.c picks, smtpc.c binds and connects.
 * Input: the config, already checked by lib/config_check.c. */
#ifndef SHOAL_NODE_EGRESS_H
#define SHOAL_NODE_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lib/config.h"

struct egress;

/* Every pool of cfg (which must outlive the result). Returns NULL (logged)
 * when an address does not parse. Free with egress_free(). */
struct egress *egress_new(const struct config *cfg);

/* egress_free(NULL) does nothing. */
void egress_free(struct egress *e);

/* The index of the pool named name, or -1 (also for NULL or ""). */
ssize_t egress_find(const struct egress *e, const char *name);

/* The pool's config entry (valid while cfg lives). */
const struct cfg_pool *egress_pool(const struct egress *e, size_t pool);

/* The next source address of the pool for a server of this family (round
 * robin), skipping addresses cooling down at now (unix seconds) unless
 * all are; -1 when the pool has no address of the family. An address for
 * which skip (may be NULL) says true is never picked. */
ssize_t egress_pick(struct egress *e, size_t pool, int family, uint64_t now,
		    bool (*skip)(void *arg, size_t src), void *skip_arg);

/* Source src of the pool as text ("192.0.2.1", "2001:db8::1"). */
const char *egress_name(const struct egress *e, size_t pool, size_t src);

/* Source src of the pool, port 0, ready for bind(). Valid while e lives. */
const struct sockaddr *egress_addr(const struct egress *e, size_t pool,
				   size_t src);

/* Skip source src until now + seconds. Returns true when it was not
 * cooling down already (the caller logs the change). */
bool egress_cool(struct egress *e, size_t pool, size_t src, uint64_t now,
		 uint32_t seconds);

/* IP warm-up (docs/pools.md): an address with a schedule may send its
 * day's allowance per provider (key: a provider name or an MX set) per
 * UTC day, this node's share of it (rounded up). Counted in memory, per
 * node, up to EGRESS_WARM_KEYS providers per address and day (more are
 * taken as full: their mail goes from warm addresses). */
#define EGRESS_WARM_KEYS 1024

/* src's allowance on the UTC day of now (unix seconds) at share (0, 1]:
 * UINT32_MAX when it has no schedule or the schedule has ended. */
uint32_t egress_allowance(const struct egress *e, size_t pool, size_t src,
			  uint64_t now, double share);

/* Messages src sent to key on the UTC day of now. */
uint32_t egress_warm_sent(const struct egress *e, size_t pool, size_t src,
			  const char *key, uint64_t now);

/* Whether src has sent its allowance to key today. */
bool egress_warm_full(const struct egress *e, size_t pool, size_t src,
		      const char *key, uint64_t now, double share);

/* One message from src to key now. Returns true when it reached the
 * day's allowance (the caller logs that once). */
bool egress_warm_count(struct egress *e, size_t pool, size_t src,
		       const char *key, uint64_t now, double share);

#endif
