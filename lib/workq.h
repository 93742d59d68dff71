/* A few threads for work too slow for an event loop (a password hash),
 * with a bounded queue, and each result handed back on the loop's own
 * thread. Knows nothing of mail.
 *
 * The loop thread submits a job with two functions: work runs on a worker
 * and may touch only the job and what the job owns or holds a reference
 * to; done runs later on the loop thread, once per job, and takes the job
 * back. Nothing else crosses threads: a worker never calls into the
 * loop, and the loop never looks at a job between submit and done. */
#ifndef SHOAL_WORKQ_H
#define SHOAL_WORKQ_H

#include <stdbool.h>

struct event_base;
struct workq;

/* On a worker thread. */
typedef void workq_work_fn(void *job);

/* On the loop thread. status is 0 when work ran, -ECANCELED when the
 * queue was freed before it could (work never ran). */
typedef void workq_done_fn(void *job, int status);

#define WORKQ_THREADS_MAX 16

/* threads workers (1..WORKQ_THREADS_MAX) at nice +nice_incr (0: as the
 * loop; a positive value lets the loop thread win the CPU from them), and
 * at most max_queued jobs waiting for one. Returns 0 and sets *out, or a
 * negative errno (logged) when a thread or the wakeup cannot be made. */
int workq_new(struct event_base *base, unsigned threads, unsigned max_queued,
	      int nice_incr, struct workq **out);

/* Stop: wait for the jobs being worked on, then call done for every job
 * not yet given back: 0 for those that ran, -ECANCELED for the others.
 * Call it before the event base is freed, never from a done callback.
 * workq_free(NULL) does nothing. */
void workq_free(struct workq *wq);

/* Whether workq_free() has begun: from then on no waiting job starts.
 * Safe from any thread while wq exists. */
bool workq_is_stopping(struct workq *wq);

/* Queue a job. Returns 0 (done will be called, never from inside this
 * call), or -EBUSY when max_queued jobs are already waiting (nothing is
 * kept; the caller still owns job). */
int workq_submit(struct workq *wq, void *job, workq_work_fn *work,
		 workq_done_fn *done);

/* Jobs waiting for a worker now. */
unsigned workq_queued(struct workq *wq);

#endif
