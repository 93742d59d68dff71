/* Per-tenant result counts (see tenants.h): an array in order of first
 * sight, searched from the newest (a run of one tenant's mail finds it
 * at once). */
#include "node/queue/tenants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"
#include "node/delivery/job.h"

struct tenant_row {
	char name[JOB_TENANT_MAX];
	uint64_t n[OUTCOME_BOUNCED + 1];
};

struct tenants {
	struct tenant_row *v;       /* TENANTS_MAX + 1: the last is other */
	size_t n;
};

struct tenants *
tenants_new(void)
{
	struct tenants *t = xcalloc(1, sizeof(*t));

	t->v = xcalloc(TENANTS_MAX + 1, sizeof(*t->v));
	snprintf(t->v[TENANTS_MAX].name, sizeof(t->v[TENANTS_MAX].name), "%s",
		 TENANTS_OTHER);
	return t;
}

void
tenants_free(struct tenants *t)
{
	if (t == NULL)
		return;
	free(t->v);
	free(t);
}

void
tenants_count(struct tenants *t, const char *tenant, enum outcome oc)
{
	struct tenant_row *row = NULL;

	if ((unsigned)oc > OUTCOME_BOUNCED)
		return;
	for (size_t i = t->n; i > 0 && row == NULL; i--)
		if (strncmp(t->v[i - 1].name, tenant,
			    sizeof(t->v[i - 1].name) - 1) == 0)
			row = &t->v[i - 1];
	if (row == NULL && t->n < TENANTS_MAX) {
		row = &t->v[t->n++];
		snprintf(row->name, sizeof(row->name), "%s", tenant);
	}
	if (row == NULL)
		row = &t->v[TENANTS_MAX];
	row->n[oc]++;
}

void
tenants_foreach(const struct tenants *t, tenants_fn fn, void *arg)
{
	const struct tenant_row *o = &t->v[TENANTS_MAX];

	for (size_t i = 0; i < t->n; i++)
		fn(arg, t->v[i].name, t->v[i].n[OUTCOME_DELIVERED],
		   t->v[i].n[OUTCOME_DEFERRED], t->v[i].n[OUTCOME_BOUNCED]);
	if (o->n[0] || o->n[1] || o->n[2])
		fn(arg, o->name, o->n[OUTCOME_DELIVERED],
		   o->n[OUTCOME_DEFERRED], o->n[OUTCOME_BOUNCED]);
}
