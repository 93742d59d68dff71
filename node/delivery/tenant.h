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

#define TENANT_BUCKETS_MAX 65536  /* in one set */

struct job;
struct tenant_set;

/* The buckets of one delivery: per destination and in total. They live
 * as long as delivery does, so a destination freed while idle keeps its
 * tenants' debts. */
struct tenant_set *tenant_set_new(void);

/* tenant_set_free(NULL) does nothing. */
void tenant_set_free(struct tenant_set *ts);

/* The limit for tenant at domain's destination (domain NULL: in total),
 * msgs/s cluster-wide; 0 when none applies. */
double tenant_limit(const struct config *cfg, const char *tenant,
		    const char *domain);

/* Microseconds until j's tenant may send another message to destination
 * dest (its key; dest_domain the domain its limits name): 0 when it may
 * now. Rates are scaled by share; *rate is the smaller of the two that
 * apply here (0: none). */
uint64_t tenant_wait(const struct config *cfg, struct tenant_set *ts,
		     const char *dest, const char *dest_domain,
		     const struct job *j, double share, uint64_t now_us,
		     double *rate);

/* j starts: one token from each bucket its tenant has. */
void tenant_take(const struct config *cfg, struct tenant_set *ts,
		 const char *dest, const char *dest_domain,
		 const struct job *j, double share, uint64_t now_us);

#endif
