/* A destination's waiting jobs by class and tenant (see dqueue.h). Each
 * class is a ring of tenants with jobs; cur is the tenant whose turn it
 * is. A tenant leaves the ring when its last job goes. A job's tenant is
 * found on push by a hash of its name and class. */
#include "node/delivery/dqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/envelope.h"
#include "lib/idmap.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "node/delivery/job.h"

struct dq_tenant {
	char name[JOB_TENANT_MAX];
	unsigned cls;
	uint64_t key;                  /* in the index */
	size_t n;                      /* its jobs */
	struct job *head, *tail;
	struct dq_tenant *prev, *next; /* the class's ring */
};

unsigned
dqueue_class(const struct job *j)
{
	switch (envelope_class(j->msg->sm->envelope)) {
	case SHOAL__PRIORITY__PRIORITY_HIGH:
		return 0;
	case SHOAL__PRIORITY__PRIORITY_BULK:
		return 2;
	default:
		return 1;
	}
}

static const char *
dqueue_tenant_of(const struct job *j)
{
	const char *t = j->msg->sm->envelope->tenant;

	return t ? t : "";
}

/* The index key of a tenant in a class (never 0). */
static uint64_t
dqueue_key(const char *name, unsigned c)
{
	return (shard_hash(name, strnlen(name, JOB_TENANT_MAX - 1)) << 2 |
		c) + 1;
}

/* j's tenant in its class's ring, made (and put last in turn) if new. Two
 * names with one hash (2^-62) share a member: fair to both, as one. */
static struct dq_tenant *
dqueue_tenant(struct dqueue *q, unsigned c, const char *name)
{
	struct dq_tenant *first = q->cur[c], *t;
	uint64_t key = dqueue_key(name, c);

	if (q->index == NULL)
		q->index = idmap_new();
	if ((t = idmap_get(q->index, key)) != NULL)
		return t;
	t = xcalloc(1, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->cls = c;
	t->key = key;
	idmap_put(q->index, key, t);
	if (first == NULL) {
		t->prev = t->next = t;
		q->cur[c] = t;
	} else {
		t->next = first;
		t->prev = first->prev;
		first->prev->next = t;
		first->prev = t;
	}
	return t;
}

/* t has no job left: out of its ring and the index. */
static void
dqueue_drop(struct dqueue *q, struct dq_tenant *t)
{
	unsigned c = t->cls;

	if (t->next == t) {
		q->cur[c] = NULL;
	} else {
		t->prev->next = t->next;
		t->next->prev = t->prev;
		q->cur[c] = t->next;
	}
	idmap_del(q->index, t->key);
	free(t);
	if (q->n == 0) {
		idmap_free(q->index);
		q->index = NULL;
	}
}

void
dqueue_push(struct dqueue *q, struct job *j)
{
	unsigned c = dqueue_class(j);
	struct dq_tenant *t = dqueue_tenant(q, c, dqueue_tenant_of(j));

	j->next = NULL;
	j->dq = t;
	if (t->tail)
		t->tail->next = j;
	else
		t->head = j;
	t->tail = j;
	t->n++;
	q->n++;
}

void
dqueue_push_front(struct dqueue *q, struct job *j)
{
	unsigned c = dqueue_class(j);
	struct dq_tenant *t = dqueue_tenant(q, c, dqueue_tenant_of(j));

	j->dq = t;
	j->next = t->head;
	t->head = j;
	if (t->tail == NULL)
		t->tail = j;
	q->cur[c] = t;
	t->n++;
	q->n++;
}

struct job *
dqueue_next(const struct dqueue *q, bool (*ok)(void *arg, const struct job *j),
	    void *arg)
{
	for (unsigned c = 0; c < DQUEUE_CLASSES; c++) {
		const struct dq_tenant *first = q->cur[c], *t = first;

		if (first == NULL)
			continue;
		do {
			if (ok == NULL || ok(arg, t->head))
				return t->head;
			t = t->next;
		} while (t != first);
	}
	return NULL;
}

void
dqueue_remove(struct dqueue *q, struct job *j)
{
	struct dq_tenant *t = j->dq;
	unsigned c = t->cls;

	/* j is its tenant's first job (dqueue_next() hands out heads) */
	t->head = j->next;
	if (t->head == NULL)
		t->tail = NULL;
	j->next = NULL;
	j->dq = NULL;
	t->n--;
	q->n--;
	if (t->head != NULL) {
		q->cur[c] = t->next;
		return;
	}
	dqueue_drop(q, t);
}

struct job *
dqueue_take_all(struct dqueue *q)
{
	struct job *all = NULL, **tail = &all;

	for (unsigned c = 0; c < DQUEUE_CLASSES; c++) {
		while (q->cur[c] != NULL) {
			struct dq_tenant *t = q->cur[c];

			for (struct job *j = t->head; j; j = j->next)
				j->dq = NULL;
			*tail = t->head;
			while (*tail)
				tail = &(*tail)->next;
			dqueue_drop(q, t);
		}
	}
	q->n = 0;
	idmap_free(q->index);
	q->index = NULL;
	return all;
}

size_t
dqueue_tenant_len(const struct dqueue *q, const struct job *j)
{
	const struct dq_tenant *t;
	unsigned c = dqueue_class(j);

	if (q->index == NULL)
		return 0;
	t = idmap_get(q->index, dqueue_key(dqueue_tenant_of(j), c));
	return t ? t->n : 0;
}
