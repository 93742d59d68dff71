/* Delivery results per tenant since the node started (docs/shaping.md):
 * recipients delivered, deferred and bounced, for the tenants of the
 * messages this node delivered. Bounded: the first TENANTS_MAX tenants
 * seen keep their own counts for good; later ones are counted together
 * under TENANTS_OTHER. The scheduler counts; /metrics and shoalctl status
 * read. */
#ifndef SHOAL_NODE_TENANTS_H
#define SHOAL_NODE_TENANTS_H

#include <stdint.h>

#include "node/delivery/outcome.h"

#define TENANTS_MAX 1024
#define TENANTS_OTHER "(other)"

struct tenants;

struct tenants *tenants_new(void);

/* tenants_free(NULL) does nothing. */
void tenants_free(struct tenants *t);

/* One recipient's result for tenant ("" for mail without one). */
void tenants_count(struct tenants *t, const char *tenant, enum outcome oc);

/* Each tenant's counts, in the order first seen. */
typedef void (*tenants_fn)(void *arg, const char *tenant, uint64_t delivered,
			   uint64_t deferred, uint64_t bounced);
void tenants_foreach(const struct tenants *t, tenants_fn fn, void *arg);

#endif
