/* Destination limits (per IP pool too), this node's share of them under
 * the shard map, and the per-destination token bucket. */
#include "node/delivery/shaping.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "lib/shardmap.h"

/* without a delivery.limits entry */
#define SHAPING_DEFAULT_CONNS 20
#define SHAPING_DEFAULT_PER_CONN 100

const struct cfg_limit *
shaping_match(const struct config *cfg, const char *pool, const char *domain)
{
	/* best[rank]: 0 pool+domain, 1 domain, 2 pool+"*", 3 "*" */
	const struct cfg_limit *best[4] = { NULL, NULL, NULL, NULL };
	bool has_pool = pool && pool[0];

	for (size_t i = 0; i < cfg->delivery.n_limits; i++) {
		const struct cfg_limit *c = &cfg->delivery.limits[i];
		bool is_any = c->domain[0] == '*' && c->domain[1] == '\0';
		int rank;

		if (!is_any && strcasecmp(c->domain, domain) != 0)
			continue;
		if (c->pool) {
			if (!has_pool || strcmp(c->pool, pool) != 0)
				continue;
			rank = is_any ? 2 : 0;
		} else {
			rank = is_any ? 3 : 1;
		}
		if (best[rank] == NULL)
			best[rank] = c;
	}
	for (int r = 0; r < 4; r++)
		if (best[r])
			return best[r];
	return NULL;
}

void
shaping_for_domain(const struct config *cfg, const char *domain, double share,
		   struct shaping *out)
{
	shaping_for_pool(cfg, NULL, domain, share, out);
}

void
shaping_for_pool(const struct config *cfg, const char *pool,
		 const char *domain, double share, struct shaping *out)
{
	const struct cfg_limit *l = shaping_match(cfg, pool, domain);

	memset(out, 0, sizeof(*out));
	out->limit = l;
	out->is_specific = l && strcmp(l->domain, "*") != 0;
	out->tls = l ? l->tls : CFG_TLS_DEFAULT;
	out->max_msgs_per_conn =
		l ? l->max_msgs_per_conn : SHAPING_DEFAULT_PER_CONN;
	if (out->max_msgs_per_conn == 0)
		out->max_msgs_per_conn = 1;
	shaping_set_share(out, share);
	out->bucket.tokens =
		out->max_msgs_per_sec > 1 ? out->max_msgs_per_sec : 1;
	out->bucket.refilled_us = 0;
}

void
shaping_set_share(struct shaping *s, double share)
{
	const struct cfg_limit *l = s->limit;
	double conns, cap;

	if (!(share > 0 && share <= 1))
		share = 1;
	conns = floor((double)(l ? l->max_connections : SHAPING_DEFAULT_CONNS) *
		      share);
	s->max_connections = conns < 1 ? 1 : (uint32_t)conns;
	s->max_msgs_per_sec = (l ? l->max_msgs_per_sec : 0) * share;
	cap = s->max_msgs_per_sec > 1 ? s->max_msgs_per_sec : 1;
	if (s->bucket.tokens > cap)
		s->bucket.tokens = cap;
}

double
shaping_share(const Shoal__ShardMap *m, const char *node_id)
{
	uint32_t mine;

	if (m == NULL || m->n_shards == 0)
		return 1;
	mine = shardmap_shards_of(m, node_id, SHARDMAP_PRIMARY, NULL);
	return (double)(mine ? mine : 1) / (double)m->n_shards;
}

void
shaping_set_caps(struct shaping *s, double rate, uint32_t conns)
{
	s->cap_rate = rate > 0 ? rate : 0;
	s->cap_conns = conns;
}

uint32_t
shaping_max_conns(const struct shaping *s)
{
	return s->cap_conns && s->cap_conns < s->max_connections ?
		       s->cap_conns :
		       s->max_connections;
}

/* The rate s allows now: the limit, or a smaller cap; 0 = unlimited. */
static double
shaping_rate(const struct shaping *s)
{
	if (s->cap_rate > 0 &&
	    (s->max_msgs_per_sec <= 0 || s->cap_rate < s->max_msgs_per_sec))
		return s->cap_rate;
	return s->max_msgs_per_sec;
}

/* Refill b at rate up to now_us. */
static void
bucket_refill(struct bucket *b, double rate, uint64_t now_us)
{
	double cap = rate > 1 ? rate : 1;

	/* a clock that stepped back means no time passed, not ~2^64 us */
	if (b->refilled_us == 0 || now_us < b->refilled_us) {
		if (b->refilled_us == 0 && b->tokens == 0)
			b->tokens = cap; /* a new bucket starts full */
		b->refilled_us = now_us;
	}
	b->tokens += (double)(now_us - b->refilled_us) / 1e6 * rate;
	if (b->tokens > cap)
		b->tokens = cap;
	b->refilled_us = now_us;
}

uint64_t
bucket_wait(struct bucket *b, double rate, uint64_t now_us)
{
	bucket_refill(b, rate, now_us);
	if (b->tokens >= 1)
		return 0;
	return (uint64_t)((1 - b->tokens) / rate * 1e6) + 1;
}

bool
bucket_is_full(struct bucket *b, double rate, uint64_t now_us)
{
	bucket_refill(b, rate, now_us);
	return b->tokens >= (rate > 1 ? rate : 1);
}

uint64_t
shaping_take(struct shaping *s, uint64_t now_us)
{
	double rate = shaping_rate(s);
	uint64_t wait;

	if (rate <= 0)
		return 0;
	wait = bucket_wait(&s->bucket, rate, now_us);
	if (wait == 0)
		s->bucket.tokens -= 1;
	return wait;
}
