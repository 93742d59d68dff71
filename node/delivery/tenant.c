/* Tenants' limits in delivery (see tenant.h). A set maps a hash of the
 * tenant's name to its bucket; when it is full the buckets that refilled
 * are dropped to make room. */
#include "node/delivery/tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/idmap.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "node/delivery/job.h"
#include "node/delivery/shaping.h"

struct tenant_bucket {
	char tenant[JOB_TENANT_MAX];
	uint64_t scope;           /* hash of its destination's key, 0 total */
	uint64_t key;             /* in the index */
	double rate;              /* the rate it was made for */
	struct bucket b;
};

struct tenant_set {
	struct idmap *index;      /* hash of the name -> struct tenant_bucket */
};

struct tenant_set *
tenant_set_new(void)
{
	struct tenant_set *ts = xcalloc(1, sizeof(*ts));

	ts->index = idmap_new();
	return ts;
}

static void
tenant_free_one(uint64_t key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

void
tenant_set_free(struct tenant_set *ts)
{
	if (ts == NULL)
		return;
	idmap_foreach(ts->index, tenant_free_one, NULL);
	idmap_free(ts->index);
	free(ts);
}

double
tenant_limit(const struct config *cfg, const char *tenant, const char *domain)
{
	/* best[rank]: 0 tenant+domain, 1 tenant+"*", 2 "*"+domain, 3 "*"+"*";
	 * in total (domain NULL): 0 tenant, 2 "*" */
	const struct cfg_tenant_limit *best[4] = { NULL, NULL, NULL, NULL };

	for (size_t i = 0; i < cfg->delivery.n_tenant_limits; i++) {
		const struct cfg_tenant_limit *l = &cfg->delivery.tenant_limits[i];
		bool any_tenant = strcmp(l->tenant, "*") == 0;
		int rank;

		if (!any_tenant && strcmp(l->tenant, tenant) != 0)
			continue;
		if (domain == NULL) {
			if (l->domain != NULL)
				continue;
			rank = any_tenant ? 2 : 0;
		} else if (l->domain == NULL) {
			continue;
		} else if (strcmp(l->domain, "*") == 0) {
			rank = any_tenant ? 3 : 1;
		} else if (strcasecmp(l->domain, domain) == 0) {
			rank = any_tenant ? 2 : 0;
		} else {
			continue;
		}
		if (best[rank] == NULL)
			best[rank] = l;
	}
	for (int r = 0; r < 4; r++)
		if (best[r])
			return best[r]->max_msgs_per_sec;
	return 0;
}

struct tenant_prune {
	uint64_t now_us;
	uint64_t *full;
	size_t n;
};

static void
tenant_prune_one(uint64_t key, void *value, void *arg)
{
	struct tenant_prune *p = arg;
	struct tenant_bucket *tb = value;

	if (bucket_is_full(&tb->b, tb->rate, p->now_us))
		p->full[p->n++] = key;
}

/* Drop the buckets that refilled; returns whether room was made. */
static bool
tenant_set_prune(struct tenant_set *ts, uint64_t now_us)
{
	struct tenant_prune p = { now_us, NULL, 0 };

	p.full = xcalloc(idmap_count(ts->index) + 1, sizeof(*p.full));
	idmap_foreach(ts->index, tenant_prune_one, &p);
	for (size_t i = 0; i < p.n; i++)
		free(idmap_del(ts->index, p.full[i]));
	free(p.full);
	return idmap_count(ts->index) < TENANT_BUCKETS_MAX;
}

/* tenant's bucket at rate, made if need be; NULL when the set is full of
 * buckets that still owe tokens, or (2^-63) another name has the hash:
 * the tenant then waits, no limit is ever skipped. */
static struct bucket *
tenant_bucket(struct tenant_set *ts, uint64_t scope, const char *tenant,
	      double rate, uint64_t now_us)
{
	uint64_t key = (scope * 0x9e3779b97f4a7c15ull ^
			shard_hash(tenant, strnlen(tenant, JOB_TENANT_MAX - 1))) |
		       1;
	struct tenant_bucket *tb = idmap_get(ts->index, key);

	if (tb != NULL) {
		if (tb->scope != scope ||
		    strncmp(tb->tenant, tenant, sizeof(tb->tenant) - 1) != 0)
			return NULL;
		tb->rate = rate;
		return &tb->b;
	}
	if (idmap_count(ts->index) >= TENANT_BUCKETS_MAX &&
	    !tenant_set_prune(ts, now_us))
		return NULL;
	tb = xcalloc(1, sizeof(*tb));
	snprintf(tb->tenant, sizeof(tb->tenant), "%s", tenant);
	tb->scope = scope;
	tb->key = key;
	tb->rate = rate;
	idmap_put(ts->index, key, tb);
	return &tb->b;
}

static const char *
tenant_of(const struct job *j)
{
	const char *t = j->msg->sm->envelope->tenant;

	return t ? t : "";
}

/* The wait for one scope (dest: a destination's key, NULL in total): 0
 * without a limit. */
static uint64_t
tenant_scope_wait(const struct config *cfg, struct tenant_set *ts,
		  const char *dest, const char *tenant, const char *domain,
		  double share, uint64_t now_us, struct bucket **out,
		  double *rate)
{
	double r = tenant_limit(cfg, tenant, domain) * share;
	uint64_t scope = dest ? shard_hash(dest, strlen(dest)) | 1 : 0;

	*out = NULL;
	if (r <= 0)
		return 0;
	*rate = r;
	*out = tenant_bucket(ts, scope, tenant, r, now_us);
	if (*out == NULL)
		return 1000000; /* no room: look again in a second */
	return bucket_wait(*out, r, now_us);
}

uint64_t
tenant_wait(const struct config *cfg, struct tenant_set *ts, const char *dest,
	    const char *dest_domain, const struct job *j, double share,
	    uint64_t now_us, double *rate)
{
	const char *tenant = tenant_of(j);
	struct bucket *b;
	double r1 = 0, r2 = 0;
	uint64_t w1, w2;

	*rate = 0;
	if (cfg->delivery.n_tenant_limits == 0)
		return 0;
	if (!(share > 0 && share <= 1))
		share = 1;
	w1 = tenant_scope_wait(cfg, ts, dest, tenant, dest_domain, share,
			       now_us, &b, &r1);
	w2 = tenant_scope_wait(cfg, ts, NULL, tenant, NULL, share, now_us, &b,
			       &r2);
	*rate = r1 > 0 && (r2 <= 0 || r1 < r2) ? r1 : r2;
	return w1 > w2 ? w1 : w2;
}

void
tenant_take(const struct config *cfg, struct tenant_set *ts, const char *dest,
	    const char *dest_domain, const struct job *j, double share,
	    uint64_t now_us)
{
	const char *tenant = tenant_of(j);
	struct bucket *b;
	double rate;

	if (cfg->delivery.n_tenant_limits == 0)
		return;
	if (!(share > 0 && share <= 1))
		share = 1;
	if (tenant_scope_wait(cfg, ts, dest, tenant, dest_domain, share, now_us,
			      &b, &rate) == 0 && b)
		b->tokens -= 1;
	if (tenant_scope_wait(cfg, ts, NULL, tenant, NULL, share, now_us, &b,
			      &rate) == 0 && b)
		b->tokens -= 1;
}
