/* The jobs waiting at one destination, in the order they are served:
 * higher priority classes first (high, normal, bulk: proto Priority), and
 * within a class the tenants in turn (round robin, one job each), each
 * tenant's jobs in arrival order. A tenant that may not send now (its
 * limits, node/delivery/tenant.c) is passed over without holding up the
 * others.
 *
 * Bounded by the jobs it holds: one small record per tenant with jobs
 * waiting, found by a hash of its name (thousands of tenants at one
 * destination cost no more per job than one). No I/O. */
#ifndef SHOAL_NODE_DQUEUE_H
#define SHOAL_NODE_DQUEUE_H

#include <stdbool.h>
#include <stddef.h>

#define DQUEUE_CLASSES 3

struct job;
struct dq_tenant;

struct idmap;

/* Zeroed is empty. Holds memory only while it holds jobs. */
struct dqueue {
	struct dq_tenant *cur[DQUEUE_CLASSES]; /* ring, next to serve */
	struct idmap *index;       /* (tenant, class) -> its ring member */
	size_t n;
};

/* The class index a job is served in: 0 high, 1 normal, 2 bulk. */
unsigned dqueue_class(const struct job *j);

/* Queue j behind its tenant's other jobs. */
void dqueue_push(struct dqueue *q, struct job *j);

/* Put j back in front of its tenant's jobs (a send that could not
 * start), and make its tenant the next served in its class. */
void dqueue_push_front(struct dqueue *q, struct job *j);

/* The next job to serve: of the highest class with jobs, the first
 * tenant in turn for which ok(arg, job) says yes (ok may be NULL: any).
 * NULL when none may go. Does not remove it. */
struct job *dqueue_next(const struct dqueue *q,
			bool (*ok)(void *arg, const struct job *j), void *arg);

/* Remove j, which dqueue_next() returned, and move its class's turn to
 * the tenant after j's. */
void dqueue_remove(struct dqueue *q, struct job *j);

/* Jobs waiting of j's tenant in j's class. */
size_t dqueue_tenant_len(const struct dqueue *q, const struct job *j);

/* Remove every job, as a list linked by job->next in service order of
 * classes (tenants interleaved no more). The queue is empty after. */
struct job *dqueue_take_all(struct dqueue *q);

#endif
