/* Worker threads for lib/workq.h. Two lists under one mutex: jobs waiting
 * for a worker (bounded), and jobs worked on, waiting for the loop. A
 * worker that finishes one writes to an eventfd the loop watches; the loop
 * takes the whole finished list at once and calls each done. */
#include "lib/workq.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

struct workq_item {
	struct workq_item *next;
	void *job;
	workq_work_fn *work;
	workq_done_fn *done;
	int status;
};

struct workq_list {
	struct workq_item *head, *tail;
};

struct workq {
	struct event *ev; /* efd readable: finished jobs wait */
	int efd;
	int nice_incr;
	unsigned max_queued;
	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;  /* todo grew, or is_stopping */
	struct workq_list todo;
	unsigned n_todo;
	struct workq_list finished;
	bool is_stopping;
	unsigned n_threads; /* started, to join */
	pthread_t threads[WORKQ_THREADS_MAX];
};

static void
workq_list_push(struct workq_list *l, struct workq_item *it)
{
	it->next = NULL;
	if (l->tail)
		l->tail->next = it;
	else
		l->head = it;
	l->tail = it;
}

static struct workq_item *
workq_list_pop(struct workq_list *l)
{
	struct workq_item *it = l->head;

	if (it != NULL) {
		l->head = it->next;
		if (l->head == NULL)
			l->tail = NULL;
	}
	return it;
}

/* Tell the loop that something finished. An eventfd write cannot fail
 * short of a counter overflow, which would need 2^64 unread wakeups. */
static void
workq_wake(struct workq *wq)
{
	uint64_t one = 1;

	if (write(wq->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN at the counter's maximum: a wakeup is pending */
	}
}

static void *
workq_main(void *arg)
{
	struct workq *wq = arg;
	struct workq_item *it;

	/* best effort: the loop thread, which answers every client, should
	 * get the CPU before the slow work does */
	if (wq->nice_incr != 0) {
		id_t tid = (id_t)gettid();
		int prio;

		errno = 0;
		prio = getpriority(PRIO_PROCESS, tid);
		if (errno == 0)
			(void)setpriority(PRIO_PROCESS, tid,
					  prio + wq->nice_incr);
	}
	pthread_mutex_lock(&wq->mu);
	for (;;) {
		while (wq->todo.head == NULL && !wq->is_stopping)
			pthread_cond_wait(&wq->cv, &wq->mu);
		if (wq->is_stopping)
			break; /* workq_free() cancels what still waits */
		it = workq_list_pop(&wq->todo);
		wq->n_todo--;
		pthread_mutex_unlock(&wq->mu);
		it->work(it->job);
		it->status = 0;
		pthread_mutex_lock(&wq->mu);
		workq_list_push(&wq->finished, it);
		workq_wake(wq);
	}
	pthread_mutex_unlock(&wq->mu);
	return NULL;
}

/* Give every finished job back. */
static void
workq_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct workq *wq = arg;
	struct workq_item *it, *next;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: an earlier pass took these already */
	}
	pthread_mutex_lock(&wq->mu);
	it = wq->finished.head;
	wq->finished.head = wq->finished.tail = NULL;
	pthread_mutex_unlock(&wq->mu);
	for (; it != NULL; it = next) {
		next = it->next;
		it->done(it->job, it->status);
		free(it);
	}
}

/* Stop and join the workers started so far. */
static void
workq_join(struct workq *wq)
{
	pthread_mutex_lock(&wq->mu);
	wq->is_stopping = true;
	pthread_cond_broadcast(&wq->cv);
	pthread_mutex_unlock(&wq->mu);
	for (unsigned i = 0; i < wq->n_threads; i++)
		pthread_join(wq->threads[i], NULL);
	wq->n_threads = 0;
}

bool
workq_is_stopping(struct workq *wq)
{
	bool stopping;

	pthread_mutex_lock(&wq->mu);
	stopping = wq->is_stopping;
	pthread_mutex_unlock(&wq->mu);
	return stopping;
}

int
workq_new(struct event_base *base, unsigned threads, unsigned max_queued,
	  int nice_incr, struct workq **out)
{
	struct workq *wq = xcalloc(1, sizeof(*wq));
	sigset_t all, old;
	int rc = 0;

	if (threads == 0 || threads > WORKQ_THREADS_MAX)
		threads = threads == 0 ? 1 : WORKQ_THREADS_MAX;
	wq->max_queued = max_queued;
	wq->nice_incr = nice_incr;
	pthread_mutex_init(&wq->mu, NULL);
	pthread_cond_init(&wq->cv, NULL);
	wq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wq->efd < 0) {
		rc = -errno;
		log_error_errno("workq event=eventfd_failed");
		goto fail;
	}
	wq->ev = event_new(base, wq->efd, EV_READ | EV_PERSIST, workq_on_wake,
			   wq);
	if (wq->ev == NULL || event_add(wq->ev, NULL) != 0) {
		rc = -ENOMEM;
		log_error("workq event=event_failed");
		goto fail;
	}
	/* signals are the loop's business: workers never take one */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < threads; i++) {
		int e = pthread_create(&wq->threads[i], NULL, workq_main, wq);

		if (e != 0) {
			rc = -e;
			errno = e;
			log_error_errno("workq event=thread_failed started=%u",
					i);
			break;
		}
		wq->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		goto fail;
	*out = wq;
	return 0;
fail:
	workq_free(wq);
	return rc;
}

void
workq_free(struct workq *wq)
{
	struct workq_item *it;

	if (wq == NULL)
		return;
	workq_join(wq);
	/* no worker runs now: the lists are the loop's alone */
	while ((it = workq_list_pop(&wq->finished)) != NULL) {
		it->done(it->job, it->status);
		free(it);
	}
	while ((it = workq_list_pop(&wq->todo)) != NULL) {
		it->done(it->job, -ECANCELED);
		free(it);
	}
	if (wq->ev)
		event_free(wq->ev);
	if (wq->efd >= 0)
		close(wq->efd);
	pthread_cond_destroy(&wq->cv);
	pthread_mutex_destroy(&wq->mu);
	free(wq);
}

int
workq_submit(struct workq *wq, void *job, workq_work_fn *work,
	     workq_done_fn *done)
{
	struct workq_item *it = xcalloc(1, sizeof(*it));

	it->job = job;
	it->work = work;
	it->done = done;
	pthread_mutex_lock(&wq->mu);
	if (wq->n_todo >= wq->max_queued) {
		pthread_mutex_unlock(&wq->mu);
		free(it);
		return -EBUSY;
	}
	workq_list_push(&wq->todo, it);
	wq->n_todo++;
	pthread_cond_signal(&wq->cv);
	pthread_mutex_unlock(&wq->mu);
	return 0;
}

unsigned
workq_queued(struct workq *wq)
{
	unsigned n;

	pthread_mutex_lock(&wq->mu);
	n = wq->n_todo;
	pthread_mutex_unlock(&wq->mu);
	return n;
}
