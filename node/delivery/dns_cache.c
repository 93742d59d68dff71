/* The answer cache of dns.c and dns_query.c: a hash table by (kind,
 * name) and a heap by expiry for eviction.
 *
 * Owns the entries, their answers' cache refs and the bounds of
 * DNS_CACHE_MAX entries with answers and DNS_CACHE_BYTES_MAX bytes held by
 * them; leaves what to cache and for how long to dns_query.c and dns_rr.c. Handles untrusted input: names from mail senders and
 * DNS, hence the seeded hash. */
#include "node/delivery/dns_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/xmalloc.h"

uint64_t
dns_cache_now_ms(void)
{
	return clock_mono_ms();
}

struct dns_answer *
dns_cache_answer_new(enum dns_status status, const char *error)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));

	a->refs = 1;
	a->status = status;
	a->error = error;
	return a;
}

void
dns_cache_answer_unref(struct dns_answer *a)
{
	if (a == NULL || --a->refs > 0)
		return;
	for (size_t i = 0; i < a->n_hosts; i++)
		free(a->hosts[i].name);
	free(a->hosts);
	free(a->rr_data);
	free(a);
}

/* ---- hash table ------------------------------------------------------ */

/* FNV-1a, seeded: the names come from mail senders and DNS */
static uint64_t
dns_cache_hash_name(const struct dns_cache *c, enum dns_kind kind,
		    uint16_t rrtype, const char *name)
{
	uint64_t h = c->hash_seed ^ (uint64_t)kind ^ (uint64_t)rrtype << 8;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)(*p | 0x20)) * 0x100000001b3ULL;
	return h;
}

void
dns_cache_htab_add(struct dns_htab *t, struct dns_hnode *n)
{
	struct dns_hnode **slot;

	if (t->n >= t->nb) {
		size_t nb = t->nb ? t->nb * 2 : 64;
		struct dns_hnode **b = xcalloc(nb, sizeof(*b));

		for (size_t i = 0; i < t->nb; i++) {
			while (t->b[i]) {
				struct dns_hnode *m = t->b[i];

				t->b[i] = m->next;
				m->next = b[m->hash & (nb - 1)];
				b[m->hash & (nb - 1)] = m;
			}
		}
		free(t->b);
		t->b = b;
		t->nb = nb;
	}
	slot = &t->b[n->hash & (t->nb - 1)];
	n->next = *slot;
	*slot = n;
	t->n++;
}

void
dns_cache_htab_del(struct dns_htab *t, struct dns_hnode *n)
{
	for (struct dns_hnode **p = &t->b[n->hash & (t->nb - 1)]; *p;
	     p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			t->n--;
			return;
		}
	}
	SHOAL_ASSERT(!"node not in table");
}

struct dns_hnode *
dns_cache_htab_first(const struct dns_htab *t, uint64_t hash)
{
	return t->nb ? t->b[hash & (t->nb - 1)] : NULL;
}

/* ---- heap by expiry -------------------------------------------------- */

static bool
dns_cache_heap_less(const struct dns_cache *c, size_t a, size_t b)
{
	return c->heap[a]->expire_ms < c->heap[b]->expire_ms;
}

static void
dns_cache_heap_swap(struct dns_cache *c, size_t a, size_t b)
{
	struct dns_entry *t = c->heap[a];

	c->heap[a] = c->heap[b];
	c->heap[b] = t;
	c->heap[a]->heap_i = a;
	c->heap[b]->heap_i = b;
}

static void
dns_cache_heap_fix(struct dns_cache *c, size_t i)
{
	while (i > 0 && dns_cache_heap_less(c, i, (i - 1) / 2)) {
		dns_cache_heap_swap(c, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t k = 2 * i + 1;

		if (k >= c->n_heap)
			break;
		if (k + 1 < c->n_heap && dns_cache_heap_less(c, k + 1, k))
			k++;
		if (!dns_cache_heap_less(c, k, i))
			break;
		dns_cache_heap_swap(c, i, k);
		i = k;
	}
}

/* ---- entries --------------------------------------------------------- */

void
dns_cache_init(struct dns_cache *c, uint64_t hash_seed)
{
	memset(c, 0, sizeof(*c));
	c->hash_seed = hash_seed;
}

void
dns_cache_free(struct dns_cache *c)
{
	for (size_t i = 0; i < c->entries.nb; i++)
		while (c->entries.b[i])
			dns_cache_del(c, (struct dns_entry *)c->entries.b[i]);
	free(c->entries.b);
	free(c->heap);
	memset(c, 0, sizeof(*c));
}

void
dns_cache_del(struct dns_cache *c, struct dns_entry *e)
{
	dns_cache_htab_del(&c->entries, &e->hn);
	if (e->ans) {
		size_t i = e->heap_i;

		c->heap[i] = c->heap[--c->n_heap];
		c->heap[i]->heap_i = i;
		if (i < c->n_heap)
			dns_cache_heap_fix(c, i);
		c->bytes -= e->bytes;
		dns_cache_answer_unref(e->ans);
	}
	free(e->name);
	free(e);
}

struct dns_entry *
dns_cache_add(struct dns_cache *c, enum dns_kind kind, uint16_t rrtype,
	      const char *name)
{
	struct dns_entry *e = xcalloc(1, sizeof(*e));

	e->kind = kind;
	e->rrtype = rrtype;
	e->name = xstrdup(name);
	e->hn.hash = dns_cache_hash_name(c, kind, rrtype, name);
	dns_cache_htab_add(&c->entries, &e->hn);
	return e;
}

void
dns_cache_put(struct dns_cache *c, struct dns_entry *e, struct dns_answer *a)
{
	uint64_t now = dns_cache_now_ms();

	e->ans = a;
	a->refs++; /* released in dns_cache_del() */
	e->expire_ms = now + (uint64_t)a->ttl * 1000;
	e->bytes = sizeof(*e) + strlen(e->name) + 1 + sizeof(*a) + a->bytes;
	c->bytes += e->bytes;
	if (c->n_heap == c->cap_heap) {
		c->cap_heap = c->cap_heap ? c->cap_heap * 2 : 64;
		c->heap = xrealloc(c->heap, c->cap_heap * sizeof(*c->heap));
	}
	e->heap_i = c->n_heap;
	c->heap[c->n_heap++] = e;
	dns_cache_heap_fix(c, e->heap_i);
	/* expired answers go first; when none, the one expiring soonest */
	while (c->n_heap > 0 &&
	       (c->heap[0]->expire_ms <= now || c->n_heap > DNS_CACHE_MAX ||
		c->bytes > DNS_CACHE_BYTES_MAX))
		dns_cache_del(c, c->heap[0]);
}

struct dns_entry *
dns_cache_find(struct dns_cache *c, enum dns_kind kind, uint16_t rrtype,
	       const char *name)
{
	uint64_t h = dns_cache_hash_name(c, kind, rrtype, name);

	for (struct dns_hnode *n = dns_cache_htab_first(&c->entries, h); n;
	     n = n->next) {
		struct dns_entry *e = (struct dns_entry *)n;

		if (n->hash != h || e->kind != kind || e->rrtype != rrtype ||
		    strcasecmp(e->name, name) != 0)
			continue;
		if (e->ans && e->expire_ms <= dns_cache_now_ms()) {
			dns_cache_del(c, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}
