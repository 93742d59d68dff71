/* Tenants' limits in delivery (delivery.tenant_limits, docs/shaping.md):
 * a tenant's messages per second to one destination and in total,
 * cluster-wide, each node taking its share as for delivery.limits. A
 * destination asks before it starts a tenant's job (dqueue.h passes over
 * a tenant that may not send yet, so the others go on) and tells when it
 * started one.
 *
 * Buckets exist only for tenants with a limit, and only while they owe
 * tokens: a full bucket is dropped (it would behave as a new one), which
 * bounds them by the tenants sending now. */
#ifndef SHOAL_NODE_TENANT_H
#define SHOAL_NODE_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"

#define TENANT_BUCKETS_MAX 4096   /* per destination, and in total */

struct job;
struct tenant_set;

/* Buckets for one scope (a destination, or the node's totals). */
struct tenant_set *tenant_set_new(void);

/* tenant_set_free(NULL) does nothing. */
void tenant_set_free(struct tenant_set *ts);

/* The limit for tenant at domain's destination (domain NULL: in total),
 * msgs/s cluster-wide; 0 when none applies. */
double tenant_limit(const struct config *cfg, const char *tenant,
		    const char *domain);

/* Microseconds until j's tenant may send another message to the
 * destination of domain dest_domain: 0 when it may now. per_dest and
 * total are the destination's and the node's buckets; rates are scaled
 * by share. */
uint64_t tenant_wait(const struct config *cfg, struct tenant_set *per_dest,
		     struct tenant_set *total, const char *dest_domain,
		     const struct job *j, double share, uint64_t now_us);

/* j starts: one token from each bucket its tenant has. */
void tenant_take(const struct config *cfg, struct tenant_set *per_dest,
		 struct tenant_set *total, const char *dest_domain,
		 const struct job *j, double share, uint64_t now_us);

#endif
