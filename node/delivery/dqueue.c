/* A destination's waiting jobs by class and tenant (see dqueue.h). Each
 * class is a ring of tenants with jobs; cur is the tenant whose turn it
 * is. A tenant leaves the ring when its last job goes. Finding a job's
 * tenant on push walks the ring from its newest member, which is the
 * tenant of the previous push in a run of one tenant's mail. */
#include "node/delivery/dqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/envelope.h"
#include "lib/xmalloc.h"
#include "node/delivery/job.h"

struct dq_tenant {
	char name[JOB_TENANT_MAX];
	unsigned cls;
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

/* j's tenant in its class's ring, made (and put last in turn) if new. */
static struct dq_tenant *
dqueue_tenant(struct dqueue *q, unsigned c, const char *name)
{
	struct dq_tenant *first = q->cur[c], *t;

	if (first != NULL) {
		t = first->prev; /* the newest */
		do {
			if (strncmp(t->name, name, sizeof(t->name) - 1) == 0)
				return t;
			t = t->prev;
		} while (t != first->prev);
	}
	t = xcalloc(1, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->cls = c;
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
	q->n--;
	if (t->head != NULL) {
		q->cur[c] = t->next;
		return;
	}
	if (t->next == t) {
		q->cur[c] = NULL;
	} else {
		t->prev->next = t->next;
		t->next->prev = t->prev;
		q->cur[c] = t->next;
	}
	free(t);
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
			if (t->next == t) {
				q->cur[c] = NULL;
			} else {
				t->prev->next = t->next;
				t->next->prev = t->prev;
				q->cur[c] = t->next;
			}
			free(t);
		}
	}
	q->n = 0;
	return all;
}
