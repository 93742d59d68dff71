/* Destination limits (per IP pool too) and the per-destination token
 * bucket. */
#include "node/shaping.h"

#include <math.h>
#include <string.h>
#include <strings.h>

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
	double conns;

	if (share <= 0 || share > 1)
		share = 1;
	out->is_specific = l && strcmp(l->domain, "*") != 0;
	if (l == NULL) {
		out->max_connections = 20;
		out->max_msgs_per_conn = 100;
		out->max_msgs_per_sec = 0;
		out->tls = CFG_TLS_OPPORTUNISTIC;
	} else {
		out->max_connections = l->max_connections;
		out->max_msgs_per_conn = l->max_msgs_per_conn;
		out->max_msgs_per_sec = l->max_msgs_per_sec;
		out->tls = l->tls;
	}
	conns = floor((double)out->max_connections * share);
	out->max_connections = conns < 1 ? 1 : (uint32_t)conns;
	if (out->max_msgs_per_conn == 0)
		out->max_msgs_per_conn = 1;
	out->max_msgs_per_sec *= share;
	out->tokens = out->max_msgs_per_sec > 1 ? out->max_msgs_per_sec : 1;
	out->refilled_us = 0;
}

uint64_t
shaping_take(struct shaping *s, uint64_t now_us)
{
	double cap = s->max_msgs_per_sec > 1 ? s->max_msgs_per_sec : 1;

	if (s->max_msgs_per_sec <= 0)
		return 0;
	/* a clock that stepped back means no time passed, not ~2^64 us */
	if (s->refilled_us == 0 || now_us < s->refilled_us)
		s->refilled_us = now_us;
	s->tokens += (double)(now_us - s->refilled_us) / 1e6 *
		     s->max_msgs_per_sec;
	if (s->tokens > cap)
		s->tokens = cap;
	s->refilled_us = now_us;
	if (s->tokens >= 1) {
		s->tokens -= 1;
		return 0;
	}
	return (uint64_t)((1 - s->tokens) / s->max_msgs_per_sec * 1e6) + 1;
}
