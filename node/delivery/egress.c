/* IP pool source addresses: parsing, round robin, cool-down. */
#include "node/delivery/egress.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

/* What one address sent to one provider on one UTC day. */
struct egress_warm {
	char key[256];
	int64_t day;
	uint32_t sent;
};

/* An address's warm-up state: its schedule's first day, and counts. */
struct egress_src {
	int64_t day0;              /* days since 1970; only with a schedule */
	struct egress_warm *warm;
	size_t n_warm;
};

struct egress_pool {
	const struct cfg_pool *cfg;
	struct egress_src *src;      /* cfg->n_addresses entries */
	struct sockaddr_storage *sa; /* cfg->n_addresses entries */
	char (*name)[INET6_ADDRSTRLEN]; /* sa as inet_ntop() writes it */
	uint64_t *down_until;	     /* unix seconds */
	size_t next;		     /* round-robin position */
};

struct egress {
	struct egress_pool *pools;
	size_t n_pools;
};

static int
egress_parse(const char *a, struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, a, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

struct egress *
egress_new(const struct config *cfg)
{
	struct egress *e = xcalloc(1, sizeof(*e));

	e->n_pools = cfg->delivery.n_pools;
	e->pools = xcalloc(e->n_pools + 1, sizeof(*e->pools));
	for (size_t i = 0; i < e->n_pools; i++) {
		struct egress_pool *p = &e->pools[i];

		p->cfg = &cfg->delivery.pools[i];
		p->sa = xcalloc(p->cfg->n_addresses + 1, sizeof(*p->sa));
		p->down_until = xcalloc(p->cfg->n_addresses + 1,
					sizeof(*p->down_until));
		p->name = xcalloc(p->cfg->n_addresses + 1, sizeof(*p->name));
		p->src = xcalloc(p->cfg->n_addresses + 1, sizeof(*p->src));
		for (size_t k = 0; k < p->cfg->n_addresses; k++) {
			const char *a = p->cfg->addresses[k].address;
			const struct sockaddr_storage *ss = &p->sa[k];

			if (p->cfg->addresses[k].warmup_start &&
			    config_parse_day(p->cfg->addresses[k].warmup_start,
					     &p->src[k].day0) != 0) {
				log_error("pool=%s source=%.64s "
					  "event=bad_warmup_start",
					  p->cfg->name, a);
				egress_free(e);
				return NULL;
			}
			if (egress_parse(a, &p->sa[k]) == 0) {
				inet_ntop(ss->ss_family,
					  ss->ss_family == AF_INET ?
					  (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
					  (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr,
					  p->name[k], sizeof(p->name[k]));
				continue;
			}
			log_error("pool=%s source=%.64s event=bad_address",
				  p->cfg->name, a);
			egress_free(e);
			return NULL;
		}
	}
	return e;
}

void
egress_free(struct egress *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n_pools; i++) {
		free(e->pools[i].sa);
		free(e->pools[i].down_until);
		free(e->pools[i].name);
		for (size_t k = 0; e->pools[i].src &&
				   k < e->pools[i].cfg->n_addresses;
		     k++)
			free(e->pools[i].src[k].warm);
		free(e->pools[i].src);
	}
	free(e->pools);
	free(e);
}

ssize_t
egress_find(const struct egress *e, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return -1;
	for (size_t i = 0; i < e->n_pools; i++)
		if (strcmp(e->pools[i].cfg->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

const struct cfg_pool *
egress_pool(const struct egress *e, size_t pool)
{
	return e->pools[pool].cfg;
}

ssize_t
egress_pick(struct egress *e, size_t pool, int family, uint64_t now,
	    bool (*skip)(void *arg, size_t src), void *skip_arg)
{
	struct egress_pool *p = &e->pools[pool];
	size_t n = p->cfg->n_addresses;
	ssize_t fallback = -1;

	for (size_t i = 0; i < n; i++) {
		size_t k = (p->next + i) % n;

		if (p->sa[k].ss_family != family ||
		    (skip && skip(skip_arg, k)))
			continue;
		if (p->down_until[k] <= now) {
			p->next = k + 1;
			return (ssize_t)k;
		}
		if (fallback < 0)
			fallback = (ssize_t)k;
	}
	if (fallback >= 0)
		p->next = (size_t)fallback + 1;
	return fallback;
}

const struct sockaddr *
egress_addr(const struct egress *e, size_t pool, size_t src)
{
	return (const struct sockaddr *)&e->pools[pool].sa[src];
}

bool
egress_cool(struct egress *e, size_t pool, size_t src, uint64_t now,
	    uint32_t seconds)
{
	struct egress_pool *p = &e->pools[pool];
	bool was_up = p->down_until[src] <= now;

	p->down_until[src] = now + seconds;
	return was_up;
}

const char *
egress_name(const struct egress *e, size_t pool, size_t src)
{
	return e->pools[pool].name[src];
}

/* ---- IP warm-up ---------------------------------------------------------- */

static int64_t
egress_day(uint64_t now)
{
	return (int64_t)(now / 86400);
}

uint32_t
egress_allowance(const struct egress *e, size_t pool, size_t src,
		 uint64_t now, double share)
{
	const struct cfg_pool_addr *pa = &e->pools[pool].cfg->addresses[src];
	int64_t d = egress_day(now) - e->pools[pool].src[src].day0;
	double a;

	if (pa->n_warmup == 0 || d >= (int64_t)pa->n_warmup)
		return UINT32_MAX;
	if (d < 0)
		d = 0; /* not started yet: the first day's */
	if (!(share > 0 && share <= 1))
		share = 1;
	a = ceil((double)pa->warmup[d] * share);
	return a < 1 ? 1 : (uint32_t)a;
}

/* The count of key today, NULL when there is none yet. */
static struct egress_warm *
egress_warm_find(const struct egress_src *s, const char *key, int64_t day)
{
	for (size_t i = 0; i < s->n_warm; i++)
		if (s->warm[i].day == day &&
		    strncmp(s->warm[i].key, key, sizeof(s->warm[i].key) - 1) == 0)
			return &s->warm[i];
	return NULL;
}

uint32_t
egress_warm_sent(const struct egress *e, size_t pool, size_t src,
		 const char *key, uint64_t now)
{
	const struct egress_warm *w =
		egress_warm_find(&e->pools[pool].src[src], key, egress_day(now));

	return w ? w->sent : 0;
}

bool
egress_warm_full(const struct egress *e, size_t pool, size_t src,
		 const char *key, uint64_t now, double share)
{
	const struct egress_src *s = &e->pools[pool].src[src];
	uint32_t allow = egress_allowance(e, pool, src, now, share);
	const struct egress_warm *w;

	if (allow == UINT32_MAX)
		return false;
	w = egress_warm_find(s, key, egress_day(now));
	if (w != NULL)
		return w->sent >= allow;
	/* no room to count another provider today: warm addresses take it */
	if (s->n_warm < EGRESS_WARM_KEYS)
		return false;
	for (size_t i = 0; i < s->n_warm; i++)
		if (s->warm[i].day != egress_day(now))
			return false;
	return true;
}

bool
egress_warm_count(struct egress *e, size_t pool, size_t src, const char *key,
		  uint64_t now, double share)
{
	struct egress_src *s = &e->pools[pool].src[src];
	uint32_t allow = egress_allowance(e, pool, src, now, share);
	int64_t day = egress_day(now);
	struct egress_warm *w;

	if (allow == UINT32_MAX)
		return false;
	w = egress_warm_find(s, key, day);
	if (w == NULL) {
		/* a slot of an earlier day, else a new one */
		for (size_t i = 0; i < s->n_warm && w == NULL; i++)
			if (s->warm[i].day != day)
				w = &s->warm[i];
		if (w == NULL && s->n_warm == EGRESS_WARM_KEYS)
			return false;
		if (w == NULL) {
			if (s->warm == NULL)
				s->warm = xcalloc(EGRESS_WARM_KEYS,
						  sizeof(*s->warm));
			w = &s->warm[s->n_warm++];
		}
		snprintf(w->key, sizeof(w->key), "%s", key);
		w->day = day;
		w->sent = 0;
	}
	w->sent++;
	return w->sent == allow;
}
