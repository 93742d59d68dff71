/* node/queue/scheduler.c on a real store in a fresh directory, with the
 * group commit, a fake delivery (the submit hook keeps the jobs; the test
 * plays delivery and hands results back) and ownership and ingest's holds
 * as plain flags: what is picked (due, not held, ours, not in flight),
 * the retry schedule from the config's retry_schedule, a deferral past
 * max_queue_lifetime bouncing with a DSN, hold and release, and results
 * that cannot be saved leaving the message as it was. Log lines that are
 * the behaviour are read back from the log file. The results tests run
 * twice, the second time with the group commit rehearsing every apply
 * (commit_set_rehearse()): an apply with a side effect would show it
 * twice. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "node/delivery/job.h"
#include "node/queue/scheduler.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "proto/queue.pb-c.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/store_helper.h"

#define T_SHARDS 4
#define T_MAP_SIZE (64u * 1024 * 1024)
#define T_JOBS_MAX 64
#define T_LIFETIME 3600

static const uint32_t t_schedule[] = { 60, 300, 900 };

static char t_dir[64];
static char t_log[128];
static struct store *t_store;
static struct commit *t_commit;
static struct event_base *t_base;
static struct scheduler *t_sched;
static struct config t_cfg;
static struct qid_gen t_qids;

/* the fake node around the scheduler */
static bool t_primary[T_SHARDS];
static bool t_may_deliver;
static char t_held[QID_MAX];
static struct job *t_jobs[T_JOBS_MAX];
static size_t t_n_jobs;
static unsigned t_rechecks, t_results;

static bool
t_hook_may_deliver(void *arg)
{
	(void)arg;
	return t_may_deliver;
}

static bool
t_hook_is_primary(void *arg, uint32_t shard)
{
	(void)arg;
	return shard < T_SHARDS && t_primary[shard];
}

static bool
t_hook_may_start(void *arg, uint32_t shard)
{
	return t_may_deliver && t_hook_is_primary(arg, shard);
}

static bool
t_hook_is_held(void *arg, const char *qid)
{
	(void)arg;
	return strcmp(qid, t_held) == 0;
}

static void
t_hook_submit(void *arg, struct job *j)
{
	(void)arg;
	ck_assert_uint_lt(t_n_jobs, T_JOBS_MAX);
	t_jobs[t_n_jobs++] = j;
}

static void
t_hook_recheck(void *arg)
{
	(void)arg;
	t_rechecks++;
}

static void
t_hook_results(void *arg, const struct job *j)
{
	(void)arg;
	(void)j;
	t_results++;
}

static void
t_setup(void)
{
	struct scheduler_deps d = {
		.node_id = "n1",
		.hooks = {
			.may_deliver = t_hook_may_deliver,
			.may_start = t_hook_may_start,
			.is_primary = t_hook_is_primary,
			.is_held = t_hook_is_held,
			.submit = t_hook_submit,
			.recheck = t_hook_recheck,
			.results = t_hook_results,
		},
	};

	check_mkdtemp(t_dir, sizeof(t_dir), "scheduler");
	snprintf(t_log, sizeof(t_log), "%s/node.log", t_dir);
	log_init("test_scheduler", LOG_LVL_INFO);
	ck_assert_int_eq(log_open_file(t_log), 0);
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_store), 0);
	t_base = event_base_new();
	t_commit = commit_new(t_base, t_store);
	memset(&t_cfg, 0, sizeof(t_cfg));
	t_cfg.cluster.shards = T_SHARDS;
	t_cfg.router.max_message_size = 1u << 20;
	t_cfg.delivery.helo_name = "node.test";
	t_cfg.delivery.retry_schedule = (uint32_t *)t_schedule;
	t_cfg.delivery.n_retry_schedule = 3;
	t_cfg.delivery.max_queue_lifetime = T_LIFETIME;
	for (size_t i = 0; i < T_SHARDS; i++)
		t_primary[i] = true;
	t_may_deliver = true;
	t_held[0] = '\0';
	t_n_jobs = 0;
	t_rechecks = t_results = 0;
	qid_gen_init(&t_qids);
	d.base = t_base;
	d.cfg = &t_cfg;
	d.store = t_store;
	d.commit = t_commit;
	t_sched = scheduler_new(&d);
}

static void
t_setup_rehearsed(void)
{
	t_setup();
	commit_set_rehearse(t_commit, true);
}

static void
t_teardown(void)
{
	scheduler_free(t_sched);
	/* jobs the test left with "delivery" hold the messages' snapshots */
	for (size_t i = 0; i < t_n_jobs; i++)
		job_free(t_jobs[i]);
	commit_free(t_commit);
	store_close(t_store);
	event_base_free(t_base);
	log_close();
	check_rmtree(t_dir);
}

static uint64_t
t_now(void)
{
	return (uint64_t)time(NULL);
}

/* Let the loop run: passes, commits and their callbacks. */
static void
t_run(void)
{
	for (int i = 0; i < 4; i++) {
		for (int k = 0; k < 8; k++)
			event_base_loop(t_base, EVLOOP_NONBLOCK);
		commit_flush(t_commit);
	}
}

struct t_rcpt {
	const char *addr;
	const char *notify;   /* "" default, "never", "success" */
};

/* Store a message from sender@example.org with rcpts (NULL-terminated
 * addresses), due at due (no due entry when held), arrived at arrival.
 * Its qid in qid. */
static void
t_put(char qid[QID_LEN + 1], const char *const *rcpts, uint64_t due,
      bool held, uint64_t arrival, Shoal__Notify notify)
{
	static const char body[] = "Subject: t\r\nFrom: s@example.org\r\n\r\n"
				   "hello\r\n";
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient r[8], *rp[8];
	struct store_txn *t;
	size_t n = 0, len;
	uint32_t shard;
	void *meta;

	qid_next(&t_qids, qid);
	shard = shard_of(qid, T_SHARDS);
	for (; rcpts[n] != NULL; n++) {
		ck_assert_uint_lt(n, 8);
		shoal__recipient__init(&r[n]);
		r[n].address = (char *)rcpts[n];
		r[n].state = SHOAL__RCPT_STATE__RCPT_QUEUED;
		r[n].next_try = due;
		r[n].notify = notify;
		rp[n] = &r[n];
	}
	env.mail_from = "sender@example.org";
	env.n_rcpts = n;
	env.rcpts = rp;
	env.arrival_time = arrival;
	env.size = sizeof(body) - 1;
	env.helo = "client.example";
	env.client_addr = "192.0.2.1";
	sm.qid = qid;
	sm.shard = shard;
	sm.envelope = &env;
	sm.held = held;
	sm.due = held ? 0 : due;
	len = shoal__stored_message__get_packed_size(&sm);
	meta = malloc(len + 1);
	shoal__stored_message__pack(&sm, meta);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, qid, shard, meta, len, body,
				       sizeof(body) - 1),
			 0);
	if (!held)
		ck_assert_int_eq(store_due_add(t, due, qid), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(meta);
}

/* The stored record of qid (caller frees), or NULL when it is gone. */
static Shoal__StoredMessage *
t_get(const char *qid)
{
	Shoal__StoredMessage *sm = NULL;
	struct store_txn *t;
	const void *p;
	size_t len;

	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	if (store_msg_get_meta(t, qid, &p, &len) == 0) {
		sm = shoal__stored_message__unpack(NULL, len, p);
		ck_assert_ptr_nonnull(sm);
	}
	store_txn_abort(t);
	return sm;
}

/* Rewrite qid's record with fn (a shoalctl action, time passing). */
static void
t_edit(const char *qid, void (*fn)(Shoal__StoredMessage *sm))
{
	Shoal__StoredMessage *sm = t_get(qid);
	struct store_txn *t;
	uint64_t old_due;
	size_t len;
	void *p;

	ck_assert_ptr_nonnull(sm);
	old_due = sm->due;
	fn(sm);
	len = shoal__stored_message__get_packed_size(sm);
	p = malloc(len + 1);
	shoal__stored_message__pack(sm, p);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	if (old_due != 0)
		ck_assert_int_eq(store_due_del(t, old_due, qid), 0);
	if (sm->due != 0)
		ck_assert_int_eq(store_due_add(t, sm->due, qid), 0);
	ck_assert_int_eq(store_msg_set_meta(t, qid, p, len), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(p);
	shoal__stored_message__free_unpacked(sm, NULL);
}

/* Time passes: every pending recipient, and the message, due now. */
static void
t_make_due_fn(Shoal__StoredMessage *sm)
{
	for (size_t i = 0; i < sm->envelope->n_rcpts; i++)
		if (sm->envelope->rcpts[i]->state ==
		    SHOAL__RCPT_STATE__RCPT_DEFERRED)
			sm->envelope->rcpts[i]->next_try = t_now() - 1;
	if (!sm->held)
		sm->due = t_now() - 1;
}

/* shoalctl queue hold / release, as node/queue/actions.c does them. */
static void
t_hold_fn(Shoal__StoredMessage *sm)
{
	sm->held = true;
	sm->due = 0;
}

static void
t_release_fn(Shoal__StoredMessage *sm)
{
	sm->held = false;
	sm->due = t_now();
	for (size_t i = 0; i < sm->envelope->n_rcpts; i++)
		sm->envelope->rcpts[i]->next_try = t_now();
}

struct t_dues {
	char qids[16][QID_MAX];
	uint64_t due[16];
	size_t n;
};

static int
t_due_one(uint64_t due, const char *qid, uint32_t cls, void *arg)
{
	(void)cls;
	struct t_dues *d = arg;

	ck_assert_uint_lt(d->n, 16);
	d->due[d->n] = due;
	snprintf(d->qids[d->n++], QID_MAX, "%s", qid);
	return 0;
}

/* Every due entry, in index order. */
static void
t_dues(struct t_dues *d)
{
	struct store_txn *t;

	memset(d, 0, sizeof(*d));
	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	ck_assert_int_eq(store_due_foreach(t, 0, NULL, UINT64_MAX, 16,
					   t_due_one, d),
			 0);
	store_txn_abort(t);
}

static uint64_t
t_count(void)
{
	struct store_txn *t;
	uint64_t n;

	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	n = store_msg_count(t);
	store_txn_abort(t);
	return n;
}

/* The job handed to delivery for qid, taken from the fake delivery. */
static struct job *
t_take(const char *qid)
{
	for (size_t i = 0; i < t_n_jobs; i++) {
		struct job *j = t_jobs[i];

		if (strcmp(j->msg->qid, qid) != 0)
			continue;
		t_jobs[i] = t_jobs[--t_n_jobs];
		return j;
	}
	ck_abort_msg("no job for %s", qid);
	return NULL;
}

static bool
t_submitted(const char *qid)
{
	for (size_t i = 0; i < t_n_jobs; i++)
		if (strcmp(t_jobs[i]->msg->qid, qid) == 0)
			return true;
	return false;
}

/* Delivery's verdict for every recipient of j, and the job back. */
static void
t_finish(struct job *j, enum outcome oc, int code, const char *enhanced,
	 const char *text)
{
	for (size_t k = 0; k < j->n; k++) {
		struct job_result *r = &j->res[k];

		r->outcome = oc;
		r->category = oc == OUTCOME_DELIVERED ?
				      CLASSIFY_NONE :
				      CLASSIFY_INVALID_RECIPIENT;
		r->reply.code = code;
		snprintf(r->reply.enhanced, sizeof(r->reply.enhanced), "%s",
			 enhanced);
		snprintf(r->reply.text, sizeof(r->reply.text), "%s", text);
		snprintf(r->status, sizeof(r->status), "%s", enhanced);
		snprintf(r->mx, sizeof(r->mx), "mx.dest.example");
	}
	scheduler_job_done(t_sched, j);
	t_run();
}

/* How many lines of the log file hold both words (w2 may be NULL). */
static unsigned
t_log_count(const char *w1, const char *w2)
{
	FILE *f = fopen(t_log, "r");
	char line[2048];
	unsigned n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, w1) && (w2 == NULL || strstr(line, w2)))
			n++;
	fclose(f);
	return n;
}

static bool
t_logged(const char *w1, const char *w2)
{
	return t_log_count(w1, w2) > 0;
}

static const char *const t_one[] = { "a@dest.example", NULL };

/* ---- picking ---------------------------------------------------------- */

START_TEST(test_picks_what_is_due_not_what_is_later)
{
	char a[QID_LEN + 1], b[QID_LEN + 1], later[QID_LEN + 1];
	uint64_t now = t_now();

	t_put(a, t_one, now - 30, false, now, 0);
	t_put(b, t_one, now - 10, false, now, 0);
	t_put(later, t_one, now + 3600, false, now, 0);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 2);
	ck_assert(t_submitted(a) && t_submitted(b));
	ck_assert(!t_submitted(later));
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 2);
	/* in flight: not picked again, however often a pass runs */
	scheduler_kick(t_sched);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 2);
}
END_TEST

START_TEST(test_one_job_per_domain)
{
	static const char *const rcpts[] = {
		"a@one.example", "b@two.example", "c@ONE.example", NULL,
	};
	char q[QID_LEN + 1];
	struct job *j1, *j2;

	t_put(q, rcpts, t_now() - 1, false, t_now(), 0);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 2);
	j1 = t_jobs[0];
	j2 = t_jobs[1];
	if (strcmp(j1->domain, "one.example") != 0) {
		struct job *x = j1;

		j1 = j2;
		j2 = x;
	}
	ck_assert_str_eq(j1->domain, "one.example");
	ck_assert_uint_eq(j1->n, 2);
	ck_assert_str_eq(j2->domain, "two.example");
	ck_assert_uint_eq(j2->n, 1);
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 1);
}
END_TEST

START_TEST(test_not_ours_or_fenced_is_not_picked)
{
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_primary[shard_of(q, T_SHARDS)] = false;
	t_run();
	ck_assert_uint_eq(t_n_jobs, 0);
	t_primary[shard_of(q, T_SHARDS)] = true;
	t_may_deliver = false;
	scheduler_kick(t_sched);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 0);
	t_may_deliver = true;
	scheduler_kick(t_sched);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 1);
}
END_TEST

/* ingest holds a stored message back until its enqueue is answered OK */
START_TEST(test_ingest_hold_keeps_a_message_back)
{
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	snprintf(t_held, sizeof(t_held), "%s", q);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 0);
	t_held[0] = '\0';
	scheduler_kick_due(t_sched, t_now() - 1, q);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 1);
}
END_TEST

START_TEST(test_abandoned_job_is_due_again)
{
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_run();
	scheduler_job_abandon(t_sched, t_take(q));
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 0);
	t_run();
	ck_assert(t_submitted(q));
	scheduler_recheck(t_sched);
	t_run();
	ck_assert_uint_eq(t_rechecks, 1);
}
END_TEST

/* ---- results ----------------------------------------------------------- */

START_TEST(test_delivered_message_is_removed)
{
	char q[QID_LEN + 1];
	uint64_t d = 0, df = 0, b = 0;

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_run();
	t_finish(t_take(q), OUTCOME_DELIVERED, 250, "2.0.0", "ok");
	ck_assert_ptr_null(t_get(q));
	ck_assert_uint_eq(t_count(), 0);
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 0);
	ck_assert_uint_eq(t_results, 1);
	scheduler_last_minute(t_sched, &d, &df, &b);
	ck_assert_uint_eq(d, 1);
	ck_assert_uint_eq(t_log_count("event=removed", q), 1);
}
END_TEST

/* Each deferral waits the next slot of delivery.retry_schedule (+-10%),
 * the last slot repeating; the due entry moves with it. */
START_TEST(test_retry_follows_the_schedule)
{
	static const uint32_t want[] = { 60, 300, 900, 900 };
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	for (size_t i = 0; i < 4; i++) {
		Shoal__StoredMessage *sm;
		struct t_dues d;
		uint64_t now;

		t_run();
		now = t_now();
		t_finish(t_take(q), OUTCOME_DEFERRED, 451, "4.7.1",
			 "try later");
		sm = t_get(q);
		ck_assert_ptr_nonnull(sm);
		ck_assert_int_eq(sm->envelope->rcpts[0]->state,
				 SHOAL__RCPT_STATE__RCPT_DEFERRED);
		ck_assert_uint_eq(sm->envelope->rcpts[0]->attempts, i + 1);
		ck_assert_str_eq(sm->envelope->rcpts[0]->last_reply,
				 "451 4.7.1 try later");
		ck_assert_uint_ge(sm->envelope->rcpts[0]->next_try,
				  now + want[i] - want[i] / 10);
		ck_assert_uint_le(sm->envelope->rcpts[0]->next_try,
				  now + 1 + want[i] + want[i] / 10);
		ck_assert_uint_eq(sm->due, sm->envelope->rcpts[0]->next_try);
		t_dues(&d);
		ck_assert_uint_eq(d.n, 1);
		ck_assert_uint_eq(d.due[0], sm->due);
		shoal__stored_message__free_unpacked(sm, NULL);
		t_edit(q, t_make_due_fn);
		scheduler_kick(t_sched);
	}
}
END_TEST

/* Past delivery.max_queue_lifetime a deferral is the end: the recipient
 * bounces with this attempt's error and the sender gets a DSN. */
START_TEST(test_expired_deferral_bounces_with_dsn)
{
	char q[QID_LEN + 1];
	Shoal__StoredMessage *sm;
	struct t_dues d;
	uint64_t del = 0, def = 0, bnc = 0;

	t_put(q, t_one, t_now() - 1, false, t_now() - T_LIFETIME - 1, 0);
	t_run();
	t_finish(t_take(q), OUTCOME_DEFERRED, 451, "4.7.1", "try later");
	ck_assert_ptr_null(t_get(q));
	ck_assert_uint_eq(t_log_count("event=expired", q), 1);
	scheduler_last_minute(t_sched, &del, &def, &bnc);
	ck_assert_uint_eq(bnc, 1);
	ck_assert_uint_eq(def, 0);
	/* the DSN: a message of its own, from <> to the sender, due now */
	ck_assert_uint_eq(t_count(), 1);
	t_dues(&d);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_uint_eq(t_log_count("event=dsn_queued", NULL), 1);
	ck_assert(t_logged("event=dsn_queued", d.qids[0]));
	sm = t_get(d.qids[0]);
	ck_assert_str_eq(sm->envelope->mail_from, "");
	ck_assert_str_eq(sm->envelope->rcpts[0]->address,
			 "sender@example.org");
	ck_assert(t_primary[sm->shard]);
	shoal__stored_message__free_unpacked(sm, NULL);
}
END_TEST

START_TEST(test_deferral_within_lifetime_stays_deferred)
{
	char q[QID_LEN + 1];
	Shoal__StoredMessage *sm;

	t_put(q, t_one, t_now() - 1, false, t_now() - T_LIFETIME + 600, 0);
	t_run();
	t_finish(t_take(q), OUTCOME_DEFERRED, 451, "4.7.1", "try later");
	sm = t_get(q);
	ck_assert_ptr_nonnull(sm);
	ck_assert_int_eq(sm->envelope->rcpts[0]->state,
			 SHOAL__RCPT_STATE__RCPT_DEFERRED);
	shoal__stored_message__free_unpacked(sm, NULL);
	ck_assert(!t_logged("event=expired", q));
}
END_TEST

START_TEST(test_bounce_without_dsn_for_notify_never)
{
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, false, t_now(),
	      SHOAL__NOTIFY__NOTIFY_NEVER);
	t_run();
	t_finish(t_take(q), OUTCOME_BOUNCED, 550, "5.1.1", "no such user");
	ck_assert_uint_eq(t_count(), 0);
}
END_TEST

/* ---- hold and release -------------------------------------------------- */

START_TEST(test_held_message_waits_for_release)
{
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, true, t_now(), 0);
	t_run();
	ck_assert_uint_eq(t_n_jobs, 0);
	t_edit(q, t_release_fn);
	scheduler_kick(t_sched);
	t_run();
	ck_assert(t_submitted(q));
}
END_TEST

/* A message held while its attempt runs keeps its result and gets no due
 * entry until it is released. */
START_TEST(test_hold_during_attempt_keeps_it_held)
{
	char q[QID_LEN + 1];
	Shoal__StoredMessage *sm;
	struct t_dues d;

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_run();
	t_edit(q, t_hold_fn);
	t_finish(t_take(q), OUTCOME_DEFERRED, 451, "4.7.1", "try later");
	sm = t_get(q);
	ck_assert(sm->held);
	ck_assert_uint_eq(sm->due, 0);
	ck_assert_uint_eq(sm->envelope->rcpts[0]->attempts, 1);
	shoal__stored_message__free_unpacked(sm, NULL);
	t_dues(&d);
	ck_assert_uint_eq(d.n, 0);
	t_edit(q, t_release_fn);
	scheduler_kick(t_sched);
	t_run();
	ck_assert(t_submitted(q));
}
END_TEST

/* ---- results that cannot be saved ------------------------------------- */

/* A bounce needs a DSN on a shard of ours; with none left (all failed
 * over while the attempt ran) the result is not saved: the apply leaves
 * the message exactly as it was, to be tried again. */
START_TEST(test_unsaved_result_leaves_message_as_it_was)
{
	char q[QID_LEN + 1];
	Shoal__StoredMessage *sm;

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_run();
	for (size_t i = 0; i < T_SHARDS; i++)
		t_primary[i] = false;
	t_finish(t_take(q), OUTCOME_BOUNCED, 550, "5.1.1", "no such user");
	sm = t_get(q);
	ck_assert_ptr_nonnull(sm);
	ck_assert_int_eq(sm->envelope->rcpts[0]->state,
			 SHOAL__RCPT_STATE__RCPT_QUEUED);
	ck_assert_uint_eq(sm->envelope->rcpts[0]->attempts, 0);
	shoal__stored_message__free_unpacked(sm, NULL);
	ck_assert_uint_eq(t_count(), 1);
	ck_assert_uint_eq(t_log_count("event=dsn_not_queued", q), 1);
	ck_assert_uint_eq(t_log_count("event=result_not_saved", q), 1);
	ck_assert(!t_logged("event=dsn_queued", NULL));
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 0);
}
END_TEST

static struct store_txn *
t_fill(void)
{
	return store_helper_fill(t_store);
}

static void
t_unpin(struct store_txn *reader)
{
	store_helper_unpin(reader);
}

/* Run the loop (timers: the resave backoff) until w1 (and w2) is logged,
 * at most 200 turns. */
static void
t_loop_until_logged(const char *w1, const char *w2)
{
	for (int i = 0; i < 200 && !t_logged(w1, w2); i++) {
		event_base_loop(t_base, EVLOOP_ONCE);
		commit_flush(t_commit);
	}
}

/* Delete q's records, as `shoalctl queue delete` does. */
static void
t_delete(const char *q)
{
	Shoal__StoredMessage *sm = t_get(q);
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_due_del(t, sm->due, q), 0);
	ck_assert_int_eq(store_msg_del(t, q, sm->shard), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	shoal__stored_message__free_unpacked(sm, NULL);
}

/* A message picked and sent, then the store filled (t_fill()) before its
 * result comes back with oc: the save fails. Returns the pinning reader. */
static struct store_txn *
t_unsaved(char q[QID_LEN + 1], enum outcome oc, int code,
	  const char *enhanced, const char *text)
{
	struct store_txn *reader;

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_run();
	ck_assert(t_submitted(q));
	reader = t_fill();
	t_finish(t_take(q), oc, code, enhanced, text);
	/* the positive control: the save did fail */
	ck_assert_uint_eq(t_log_count("event=result_not_saved", q), 1);
	return reader;
}

/* A delivered result that cannot be saved (the store is full) keeps its
 * message in flight: not delivered again, however often the scheduler
 * passes, and saved by itself once there is room. Before, the message was
 * due again at once and went out again on every pass, and a full store
 * never got the space back that the saved results would free. */
START_TEST(test_result_of_a_full_store_is_saved_later_not_redelivered)
{
	char q[QID_LEN + 1];
	struct store_txn *reader;

	reader = t_unsaved(q, OUTCOME_DELIVERED, 250, "2.0.0", "ok");
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 1);
	/* a handover waits for it (bounded there): handed over unsaved,
	 * the new owner would deliver it again */
	{
		uint8_t all[T_SHARDS];

		memset(all, 1, sizeof(all));
		ck_assert_uint_eq(
			scheduler_in_flight_of(t_sched, all, T_SHARDS), 1);
	}
	t_n_jobs = 0;
	for (int i = 0; i < 5; i++) {
		scheduler_kick(t_sched);
		t_run();
	}
	ck_assert_msg(!t_submitted(q), "delivered again while unsaved");
	ck_assert_uint_eq(t_count(), 1);
	t_unpin(reader);
	/* the backoff timer saves it again: wait for it, bounded */
	for (int i = 0; i < 200 && t_count() > 0; i++) {
		event_base_loop(t_base, EVLOOP_ONCE);
		commit_flush(t_commit);
	}
	ck_assert_uint_eq(t_count(), 0);
	ck_assert_uint_eq(t_log_count("event=result_saved", q), 1);
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 0);
	ck_assert(!t_submitted(q));
}
END_TEST

/* While a result waits for room, no other delivery starts: each would
 * be one more result the full store cannot save, lost in a crash and
 * sent again by the peer. B is kept back (held, in memory) until the
 * store is full, then let go: not picked until A's result is saved. */
START_TEST(test_full_store_starts_no_delivery_until_a_result_is_saved)
{
	char a[QID_LEN + 1], b[QID_LEN + 1];
	struct store_txn *reader;
	unsigned rechecks;

	t_put(b, t_one, t_now() - 1, false, t_now(), 0);
	snprintf(t_held, sizeof(t_held), "%s", b);
	ck_assert(scheduler_results_savable(t_sched));
	rechecks = t_rechecks;
	reader = t_unsaved(a, OUTCOME_DELIVERED, 250, "2.0.0", "ok");
	ck_assert(!t_submitted(b));
	ck_assert(t_logged("event=deliveries_paused", NULL));
	ck_assert(!scheduler_results_savable(t_sched));
	t_run();
	ck_assert_uint_gt(t_rechecks, rechecks); /* waiting jobs handed back */
	t_held[0] = '\0';
	t_n_jobs = 0;
	for (int i = 0; i < 5; i++) {
		scheduler_kick(t_sched);
		t_run();
	}
	ck_assert_msg(!t_submitted(b), "a delivery started on a full store");
	t_unpin(reader);
	/* A's result saved by the backoff timer; then B goes out */
	for (int i = 0; i < 200 && !t_submitted(b); i++) {
		event_base_loop(t_base, EVLOOP_ONCE);
		commit_flush(t_commit);
	}
	ck_assert_uint_eq(t_log_count("event=result_saved", a), 1);
	ck_assert(t_logged("event=deliveries_resumed", NULL));
	ck_assert(scheduler_results_savable(t_sched));
	ck_assert_msg(t_submitted(b), "B picked once there is room");
	ck_assert(!t_submitted(a));
}
END_TEST

/* A bounce whose DSN (a new message, with RET=FULL the whole original)
 * does not fit pauses nothing: it is kept and saved again, and the
 * deliveries that go on retire messages and free the room it needs.
 * Paused on it, a node with a large bounce kept would hold its queue
 * until someone freed space. */
START_TEST(test_full_store_a_bounce_that_does_not_fit_pauses_nothing)
{
	char a[QID_LEN + 1], b[QID_LEN + 1];
	struct store_txn *reader;

	t_put(b, t_one, t_now() - 1, false, t_now(), 0);
	snprintf(t_held, sizeof(t_held), "%s", b);
	reader = t_unsaved(a, OUTCOME_BOUNCED, 550, "5.1.1", "no such user");
	ck_assert(scheduler_results_savable(t_sched));
	ck_assert(!t_logged("event=deliveries_paused", NULL));
	t_held[0] = '\0';
	scheduler_kick(t_sched);
	t_run();
	ck_assert_msg(t_submitted(b), "a kept bounce held up a delivery");
	t_unpin(reader);
	t_loop_until_logged("event=result_saved", a);
	ck_assert(t_logged("event=dsn_queued", a));
}
END_TEST

/* At the edge of full one save may succeed while another still fails:
 * deliveries stay paused until no result is kept for want of room (a
 * resume then lets a burst out whose results fail too). Here C's message
 * is deleted in a moment of room, so its resave has nothing to write and
 * succeeds; A's still fails. */
START_TEST(test_full_store_one_save_at_the_edge_does_not_resume)
{
	char a[QID_LEN + 1], c[QID_LEN + 1];
	struct store_txn *reader;

	t_put(c, t_one, t_now() - 1, false, t_now(), 0);
	reader = t_unsaved(a, OUTCOME_DELIVERED, 250, "2.0.0", "ok");
	ck_assert(t_submitted(c));
	t_finish(t_take(c), OUTCOME_DELIVERED, 250, "2.0.0", "ok");
	ck_assert_uint_eq(t_log_count("event=result_not_saved", c), 1);
	ck_assert(!scheduler_results_savable(t_sched));
	t_unpin(reader);
	t_delete(c);
	reader = t_fill();
	t_loop_until_logged("event=result_saved", c);
	ck_assert(t_logged("event=result_saved", c));
	ck_assert(!t_logged("event=result_saved", a));
	ck_assert(!scheduler_results_savable(t_sched));
	ck_assert(!t_logged("event=deliveries_resumed", NULL));
	t_unpin(reader);
	t_loop_until_logged("event=result_saved", a);
	ck_assert(t_logged("event=deliveries_resumed", NULL));
	ck_assert(scheduler_results_savable(t_sched));
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 0);
}
END_TEST

/* A message deleted while in flight (queue delete): its result is
 * dropped, nothing comes back. */
START_TEST(test_result_of_deleted_message_is_dropped)
{
	char q[QID_LEN + 1];

	t_put(q, t_one, t_now() - 1, false, t_now(), 0);
	t_run();
	t_delete(q);
	t_finish(t_take(q), OUTCOME_DEFERRED, 451, "4.7.1", "try later");
	ck_assert_uint_eq(t_count(), 0);
	ck_assert_uint_eq(scheduler_in_flight(t_sched), 0);
}
END_TEST

static Suite *
scheduler_suite(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("picking");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_picks_what_is_due_not_what_is_later);
	tcase_add_test(tc, test_one_job_per_domain);
	tcase_add_test(tc, test_not_ours_or_fenced_is_not_picked);
	tcase_add_test(tc, test_ingest_hold_keeps_a_message_back);
	tcase_add_test(tc, test_abandoned_job_is_due_again);
	tcase_add_test(tc, test_held_message_waits_for_release);
	suite_add_tcase(s, tc);
	for (int rehearsed = 0; rehearsed < 2; rehearsed++) {
		tc = tcase_create(rehearsed ? "results_rehearsed" : "results");
		tcase_add_checked_fixture(tc,
					  rehearsed ? t_setup_rehearsed :
						      t_setup,
					  t_teardown);
		tcase_set_timeout(tc, 30);
		tcase_add_test(tc, test_delivered_message_is_removed);
		tcase_add_test(tc, test_retry_follows_the_schedule);
		tcase_add_test(tc, test_expired_deferral_bounces_with_dsn);
		tcase_add_test(tc, test_deferral_within_lifetime_stays_deferred);
		tcase_add_test(tc, test_bounce_without_dsn_for_notify_never);
		tcase_add_test(tc, test_hold_during_attempt_keeps_it_held);
		tcase_add_test(tc, test_unsaved_result_leaves_message_as_it_was);
		tcase_add_test(
			tc,
			test_full_store_starts_no_delivery_until_a_result_is_saved);
		tcase_add_test(
			tc,
			test_full_store_a_bounce_that_does_not_fit_pauses_nothing);
		tcase_add_test(
			tc, test_full_store_one_save_at_the_edge_does_not_resume);
		tcase_add_test(tc, test_result_of_a_full_store_is_saved_later_not_redelivered);
		tcase_add_test(tc, test_result_of_deleted_message_is_dropped);
		suite_add_tcase(s, tc);
	}
	return s;
}

CHECK_MAIN(scheduler_suite)
