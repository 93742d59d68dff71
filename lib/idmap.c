/* Chained hash map keyed by 64-bit ids; grows by doubling at load 1. */
#include "lib/idmap.h"

#include <stdlib.h>

#include "lib/xmalloc.h"

struct idmap_entry {
	uint64_t id;
	void *value;
	struct idmap_entry *next;
};

struct idmap {
	struct idmap_entry **buckets;
	size_t nbuckets;  /* power of two */
	size_t count;
};

static size_t
idmap_slot(uint64_t id, size_t nbuckets)
{
	/* ids are often sequential: mix them before masking */
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)(id & (nbuckets - 1));
}

struct idmap *
idmap_new(void)
{
	struct idmap *m = xcalloc(1, sizeof(*m));

	m->nbuckets = 64;
	m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
	return m;
}

void
idmap_free(struct idmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct idmap_entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	free(m);
}

static void
idmap_grow(struct idmap *m)
{
	size_t n = m->nbuckets * 2;
	struct idmap_entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct idmap_entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			size_t s = idmap_slot(e->id, n);

			next = e->next;
			e->next = b[s];
			b[s] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

void
idmap_put(struct idmap *m, uint64_t id, void *value)
{
	size_t s = idmap_slot(id, m->nbuckets);
	struct idmap_entry *e;

	for (e = m->buckets[s]; e; e = e->next) {
		if (e->id == id) {
			e->value = value;
			return;
		}
	}
	e = xmalloc(sizeof(*e));
	e->id = id;
	e->value = value;
	e->next = m->buckets[s];
	m->buckets[s] = e;
	if (++m->count > m->nbuckets)
		idmap_grow(m);
}

void *
idmap_get(const struct idmap *m, uint64_t id)
{
	const struct idmap_entry *e = m->buckets[idmap_slot(id, m->nbuckets)];

	for (; e; e = e->next)
		if (e->id == id)
			return e->value;
	return NULL;
}

void *
idmap_del(struct idmap *m, uint64_t id)
{
	struct idmap_entry **pe = &m->buckets[idmap_slot(id, m->nbuckets)];

	for (; *pe; pe = &(*pe)->next) {
		if ((*pe)->id == id) {
			struct idmap_entry *e = *pe;
			void *v = e->value;

			*pe = e->next;
			free(e);
			m->count--;
			return v;
		}
	}
	return NULL;
}

size_t
idmap_count(const struct idmap *m)
{
	return m->count;
}

void
idmap_foreach(const struct idmap *m, void (*fn)(uint64_t, void *, void *),
	      void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (const struct idmap_entry *e = m->buckets[i]; e; e = e->next)
			fn(e->id, e->value, arg);
}
