/* Check suite for lib/workq.c: work runs on a worker thread and done on
 * the loop's thread, once per job; the queue refuses past its bound
 * instead of growing; freeing the queue waits for the work under way and
 * gives back every job, the ones that never ran as -ECANCELED. */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "lib/workq.h"
#include "tests/unit/check_helpers.h"

struct job {
	pthread_t worker;      /* where work ran */
	pthread_t done_on;     /* where done ran */
	int status;
	int n_done;
	sem_t *gate;           /* work waits on it when set */
	sem_t *started;        /* work posts it when set */
};

static void
job_work(void *arg)
{
	struct job *j = arg;

	j->worker = pthread_self();
	if (j->started)
		sem_post(j->started);
	if (j->gate)
		sem_wait(j->gate);
}

static void
job_done(void *arg, int status)
{
	struct job *j = arg;

	j->done_on = pthread_self();
	j->status = status;
	j->n_done++;
}

/* Run the loop until every job of js is done, or 10 s. */
static void
loop_until_done(struct event_base *base, struct job *js, size_t n)
{
	for (int i = 0; i < 10000; i++) {
		size_t done = 0;

		for (size_t k = 0; k < n; k++)
			done += js[k].n_done > 0;
		if (done == n)
			return;
		event_base_loopexit(base, &(struct timeval){ 0, 1000 });
		event_base_dispatch(base);
	}
	ck_abort_msg("jobs not done within 10 s");
}

START_TEST(test_workq_runs_off_the_loop_and_answers_on_it)
{
	struct event_base *base = event_base_new();
	struct workq *wq;
	struct job js[20];

	memset(js, 0, sizeof(js));
	ck_assert_int_eq(workq_new(base, 3, 64, 0, &wq), 0);
	for (size_t i = 0; i < 20; i++)
		ck_assert_int_eq(workq_submit(wq, &js[i], job_work, job_done),
				 0);
	/* never from inside submit */
	for (size_t i = 0; i < 20; i++)
		ck_assert_int_eq(js[i].n_done, 0);
	loop_until_done(base, js, 20);
	for (size_t i = 0; i < 20; i++) {
		ck_assert_int_eq(js[i].n_done, 1);
		ck_assert_int_eq(js[i].status, 0);
		ck_assert(!pthread_equal(js[i].worker, pthread_self()));
		ck_assert(pthread_equal(js[i].done_on, pthread_self()));
	}
	workq_free(wq);
	for (size_t i = 0; i < 20; i++)
		ck_assert_int_eq(js[i].n_done, 1);
	event_base_free(base);
}
END_TEST

START_TEST(test_workq_refuses_past_its_bound)
{
	struct event_base *base = event_base_new();
	struct workq *wq;
	struct job busy, queued[4], extra;
	sem_t gate, started;

	memset(&busy, 0, sizeof(busy));
	memset(queued, 0, sizeof(queued));
	memset(&extra, 0, sizeof(extra));
	sem_init(&gate, 0, 0);
	sem_init(&started, 0, 0);
	ck_assert_int_eq(workq_new(base, 1, 4, 5, &wq), 0);
	/* the one worker holds a job; four wait; the fifth is refused */
	busy.gate = &gate;
	busy.started = &started;
	ck_assert_int_eq(workq_submit(wq, &busy, job_work, job_done), 0);
	sem_wait(&started);
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(workq_submit(wq, &queued[i], job_work,
					      job_done),
				 0);
	ck_assert_uint_eq(workq_queued(wq), 4);
	ck_assert_int_eq(workq_submit(wq, &extra, job_work, job_done),
			 -EBUSY);
	sem_post(&gate);
	loop_until_done(base, queued, 4);
	ck_assert_int_eq(busy.n_done, 1);
	ck_assert_int_eq(extra.n_done, 0);
	/* room again */
	ck_assert_int_eq(workq_submit(wq, &extra, job_work, job_done), 0);
	loop_until_done(base, &extra, 1);
	workq_free(wq);
	sem_destroy(&gate);
	sem_destroy(&started);
	event_base_free(base);
}
END_TEST

struct gate_opener {
	struct workq *wq;
	sem_t *gate;
};

/* Open the gate once free has begun (said "stop", joining now): the jobs
 * still waiting then never run. Polls the flag, a millisecond apart, for
 * at most 10 s; the gate opens either way, so free cannot hang. */
static void *
open_gate_after_stop(void *arg)
{
	struct gate_opener *o = arg;
	struct timespec ms = { 0, 1000000 };

	for (int i = 0; i < 10000 && !workq_is_stopping(o->wq); i++)
		nanosleep(&ms, NULL);
	sem_post(o->gate);
	return NULL;
}

START_TEST(test_workq_free_gives_every_job_back)
{
	struct event_base *base = event_base_new();
	struct workq *wq;
	struct job running, waiting[3];
	sem_t gate, started;
	pthread_t opener;
	struct gate_opener go;

	memset(&running, 0, sizeof(running));
	memset(waiting, 0, sizeof(waiting));
	sem_init(&gate, 0, 0);
	sem_init(&started, 0, 0);
	ck_assert_int_eq(workq_new(base, 1, 8, 0, &wq), 0);
	running.gate = &gate;
	running.started = &started;
	ck_assert_int_eq(workq_submit(wq, &running, job_work, job_done), 0);
	sem_wait(&started);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(workq_submit(wq, &waiting[i], job_work,
					      job_done),
				 0);
	/* free waits for the running job: let it finish once free began */
	ck_assert(!workq_is_stopping(wq));
	go.wq = wq;
	go.gate = &gate;
	ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_after_stop,
					&go),
			 0);
	workq_free(wq);
	pthread_join(opener, NULL);
	ck_assert_int_eq(running.n_done, 1);
	ck_assert_int_eq(running.status, 0);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(waiting[i].n_done, 1);
		ck_assert_int_eq(waiting[i].status, -ECANCELED);
		ck_assert(pthread_equal(waiting[i].done_on, pthread_self()));
	}
	sem_destroy(&gate);
	sem_destroy(&started);
	event_base_free(base);
}
END_TEST

static Suite *
workq_suite(void)
{
	Suite *s = suite_create("workq");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_workq_runs_off_the_loop_and_answers_on_it);
	tcase_add_test(tc, test_workq_refuses_past_its_bound);
	tcase_add_test(tc, test_workq_free_gives_every_job_back);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(workq_suite)
