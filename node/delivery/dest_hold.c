/* What holds a destination's jobs back or steers them to another source
 * (see deliver_impl.h): adaptive shaping's actions (adapt.c) and IP
 * warm-up (egress.c). dest.c asks before each job starts and when it
 * picks a source; the decision and the words for it live here.
 *
 * The answer of adapt_check() is kept per destination with the table's
 * version, so a pump costs one comparison while nothing changes. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "node/delivery/adapt.h"
#include "node/delivery/deliver_impl.h"
#include "node/delivery/egress.h"
#include "node/delivery/job.h"
#include "node/delivery/outcome.h"
#include "node/delivery/shaping.h"

/* The destination's name for warm-up counts: its provider (the rules
 * file's), else "(other)": every destination of no big provider shares
 * one allowance, so that an address reaching thousands of small domains
 * a day stays within EGRESS_WARM_KEYS. */
static const char *
dest_hold_key(const struct dest *ds)
{
	return ds->provider[0] ? ds->provider : "(other)";
}

/* adapt_check() again when the table changed since: the provider of the
 * MX hosts, the suspension, and the caps at this node's share. */
static void
dest_refresh_verdict(struct dest *ds)
{
	const struct adapt *a = ds->d->adapt;
	const char *p;
	double share = ds->d->share > 0 && ds->d->share <= 1 ? ds->d->share : 1;
	uint32_t conns = 0;

	if (ds->av_version == adapt_version(a))
		return;
	/* the provider only when the rules or the MX hosts changed: a
	 * rules file may hold thousands of patterns */
	if (ds->provider_gen != adapt_rules_gen(a)) {
		p = adapt_provider(a, ds->mx, ds->n_addrs);
		snprintf(ds->provider, sizeof(ds->provider), "%s", p ? p : "");
		ds->provider_gen = adapt_rules_gen(a);
	}
	p = ds->provider[0] ? ds->provider : NULL;
	adapt_check(a, p, ds->mx, ds->n_addrs, clock_wall_ms(), &ds->av);
	if (ds->av.connections) {
		double c = floor((double)ds->av.connections * share);

		conns = c < 1 ? 1 : (uint32_t)c;
	}
	shaping_set_caps(&ds->shape, ds->av.rate * share, conns);
	ds->av_version = adapt_version(a);
}

/* Until when source src may not send to ds (0: it may): a source
 * suspension, or its warm-up allowance spent today (then the next UTC
 * midnight). */
static uint64_t
dest_source_until(const struct dest *ds, size_t src, uint64_t now_ms)
{
	const struct deliver *d = ds->d;
	uint64_t until = 0;

	if (adapt_source_suspended(d->adapt,
				   ds->provider[0] ? ds->provider : NULL,
				   ds->mx, ds->n_addrs,
				   egress_name(d->egress, (size_t)ds->pool, src),
				   now_ms, &until))
		return until;
	if (egress_warm_full(d->egress, (size_t)ds->pool, src,
			     dest_hold_key(ds), now_ms / 1000, d->share))
		return (now_ms / 86400000 + 1) * 86400000;
	return 0;
}

bool
dest_source_held(void *arg, size_t src)
{
	const struct dest *ds = arg;

	return dest_source_until(ds, src, clock_wall_ms()) != 0;
}

bool
dest_source_full(const struct dest *ds, ssize_t src)
{
	return ds->pool >= 0 && src >= 0 &&
	       dest_source_until(ds, (size_t)src, clock_wall_ms()) != 0;
}

void
dest_count_sent(struct dest *ds, ssize_t src)
{
	struct deliver *d = ds->d;
	uint64_t now = (uint64_t)time(NULL);

	if (ds->pool < 0 || src < 0)
		return;
	if (egress_warm_count(d->egress, (size_t)ds->pool, (size_t)src,
			      dest_hold_key(ds), now, d->share))
		log_info("pool=%s source=%s dest=%s event=warmup_allowance_spent "
			 "sent=%u note=\"warm addresses take the rest today\"",
			 egress_pool(d->egress, (size_t)ds->pool)->name,
			 egress_name(d->egress, (size_t)ds->pool, (size_t)src),
			 dest_hold_key(ds),
			 egress_warm_sent(d->egress, (size_t)ds->pool,
					  (size_t)src, dest_hold_key(ds), now));
}

/* Whether no source of ds's pool may send to it now; *until_ms when the
 * first of them may again. */
static bool
dest_sources_held(const struct dest *ds, uint64_t now_ms, uint64_t *until_ms)
{
	const struct cfg_pool *pool;

	if (ds->pool < 0)
		return false;
	pool = egress_pool(ds->d->egress, (size_t)ds->pool);
	*until_ms = 0;
	for (size_t i = 0; i < pool->n_addresses; i++) {
		uint64_t u = dest_source_until(ds, i, now_ms);

		if (u == 0)
			return false;
		if (*until_ms == 0 || u < *until_ms)
			*until_ms = u;
	}
	return pool->n_addresses > 0;
}

bool
dest_hold_check(struct dest *ds, const struct job *j,
		struct outcome_verdict *v, char *text, size_t len)
{
	struct deliver *d = ds->d;
	const struct adapt_action *why = NULL;
	uint64_t now = clock_wall_ms(), until = 0;
	char when[32];
	struct tm tm;
	time_t t;

	dest_refresh_verdict(ds);
	if (ds->av.until_ms > now) {
		why = ds->av.suspend;
		until = ds->av.until_ms;
	} else if (adapt_count(d->adapt) > 0 &&
		   (why = adapt_domain_suspended(d->adapt, j->domain, now))) {
		until = why->expires_ms;
	} else if (!dest_sources_held(ds, now, &until)) {
		return false;
	}
	t = (time_t)(until / 1000);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (why)
		snprintf(text, len,
			 "held by adaptive shaping: %s suspended by %s%s "
			 "until %s",
			 why->key,
			 strcmp(why->rule, "manual") ? "rule " : "an operator",
			 strcmp(why->rule, "manual") ? why->rule : "",
			 when);
	else
		snprintf(text, len,
			 "held: every source address of pool %s is suspended "
			 "or has sent its warm-up allowance for this "
			 "destination until %s",
			 egress_pool(d->egress, (size_t)ds->pool)->name, when);
	outcome_of_suspension((uint64_t)time(NULL), (until + 999) / 1000, v);
	return true;
}
