/* Check suite for node/store/commit.c: group commit with one sync point
 * per batch, and the purity its applies owe it (reruns after a failed
 * batch, commit_set_rehearse()). A real store in a fresh mkdtemp()
 * directory and a real libevent loop, driven one pass at a time
 * (EVLOOP_ONCE | EVLOOP_NONBLOCK), so each test can say in which pass an
 * item's done callback ran. */
#include "node/store/commit.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/be.h"
#include "lib/err.h"
#include "lib/log.h"
#include "node/store/store.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (64ull << 20)
#define T_ITEMS 16

static char t_dir[64];
static struct store *t_st;
static struct event_base *t_base;
static struct commit *t_c;

/* One queued item: what it writes, and what became of it. */
struct t_item {
	char qid[16];   /* due entry written at time 1; "" writes nothing */
	int fail;       /* apply returns this */
	int done;       /* times done ran */
	int result;
	int order;      /* position among all done calls, from 1 */
	uint64_t drawn; /* the number its last apply run drew */
};

static struct t_item t_items[T_ITEMS];
static int t_done_seen;
static uint64_t t_global_drawn; /* t_apply_impure's draws, below */

static void
t_setup(void)
{
	log_init("test_commit", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "commit");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	t_base = event_base_new();
	ck_assert_ptr_nonnull(t_base);
	t_c = commit_new(t_base, t_st);
	memset(t_items, 0, sizeof(t_items));
	t_done_seen = 0;
	t_global_drawn = 0;
}

static void
t_teardown(void)
{
	commit_free(t_c);
	event_base_free(t_base);
	store_close(t_st);
	check_rmtree(t_dir);
}

static int
t_apply(struct store_txn *t, void *arg)
{
	struct t_item *it = arg;

	if (it->fail)
		return it->fail;
	return it->qid[0] ? store_due_add(t, 1, it->qid) : 0;
}

static void
t_done(int result, void *arg)
{
	struct t_item *it = arg;

	it->done++;
	it->result = result;
	it->order = ++t_done_seen;
}

/* Queue item i; qid NULL: an item that writes nothing. */
static void
t_add(int i, const char *qid)
{
	snprintf(t_items[i].qid, sizeof(t_items[i].qid), "%s", qid ? qid : "");
	commit_add(t_c, t_apply, t_done, &t_items[i]);
}

static void
t_pass(void)
{
	ck_assert_int_ge(event_base_loop(t_base, EVLOOP_ONCE | EVLOOP_NONBLOCK), 0);
}

/* Run the loop until no event is left (the tick after a batch of several
 * items is a millisecond away). */
static void
t_idle(void)
{
	ck_assert_int_ge(event_base_loop(t_base, 0), 0);
}

static int
t_see(uint64_t due, const char *qid, uint32_t cls, void *arg)
{
	(void)cls;
	const char **want = arg;

	(void)due;
	if (*want != NULL && strcmp(qid, *want) == 0)
		*want = NULL;
	return 0;
}

struct t_dues {
	char *out;
	size_t len;
};

static int
t_see_due(uint64_t due, const char *qid, uint32_t cls, void *arg)
{
	(void)cls;
	struct t_dues *d = arg;
	size_t n = strlen(d->out);

	snprintf(d->out + n, d->len - n, "%llu:%s ", (unsigned long long)due,
		 qid);
	return 0;
}

/* Whether qid's due entry is in the store (as read by a new txn). */
static bool
t_stored(const char *qid)
{
	struct store_txn *t;
	const char *want = qid;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_due_foreach(t, 0, NULL, 10, 100, t_see, &want),
			 0);
	store_txn_abort(t);
	return want == NULL;
}

START_TEST(test_done_runs_after_the_sync_not_inside_commit_add)
{
	t_add(0, "0A");
	t_add(1, "0B");
	t_add(2, "0C");
	ck_assert_int_eq(t_items[0].done, 0);
	t_pass(); /* the batch commits; nothing follows it to carry the sync */
	ck_assert_int_eq(t_items[0].done, 0);
	ck_assert(t_stored("0A"));
	t_idle(); /* a pass with nothing new: an explicit sync */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(t_items[i].done, 1);
		ck_assert_int_eq(t_items[i].result, 0);
		ck_assert_int_eq(t_items[i].order, i + 1);
	}
}
END_TEST

START_TEST(test_next_batch_carries_the_previous_ones_sync)
{
	t_add(0, "0A");
	t_pass();
	ck_assert_int_eq(t_items[0].done, 0);
	t_add(1, "0B"); /* arrives before the loop looks again */
	t_pass();
	/* 0B's commit fdatasynced: 0A is durable and told so; 0B waits */
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[0].result, 0);
	ck_assert_int_eq(t_items[1].done, 0);
	t_idle();
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert_int_eq(t_items[1].result, 0);
	ck_assert_int_eq(t_items[1].order, 2);
}
END_TEST

START_TEST(test_a_batch_that_writes_nothing_carries_no_sync)
{
	t_add(0, "0A");
	t_pass();
	t_add(1, NULL); /* commits without writing: LMDB syncs nothing */
	t_pass();
	ck_assert_int_eq(t_items[0].done, 0);
	ck_assert_int_eq(t_items[1].done, 0);
	t_idle();
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert_int_eq(t_items[0].order, 1);
}
END_TEST

START_TEST(test_batches_that_write_nothing_cannot_starve_the_wait)
{
	int passes = 0;

	t_add(0, "0A");
	t_pass();
	/* a new non-writing item in every pass, for ever */
	for (int i = 1; i < T_ITEMS && t_items[0].done == 0; i++) {
		t_add(i, NULL);
		t_pass();
		passes++;
	}
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_le(passes, 4);
}
END_TEST

START_TEST(test_a_failing_item_fails_alone)
{
	t_add(0, "0A");
	t_items[1].fail = -EIO;
	t_add(1, "0B");
	t_add(2, "0C");
	t_idle();
	ck_assert_int_eq(t_items[0].result, 0);
	ck_assert_int_eq(t_items[1].result, -EIO);
	ck_assert_int_eq(t_items[2].result, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(t_items[i].done, 1);
	ck_assert(t_stored("0A"));
	ck_assert(!t_stored("0B"));
	ck_assert(t_stored("0C"));
}
END_TEST

START_TEST(test_a_failed_batch_leaves_no_item_stranded)
{
	t_add(0, "0A");
	t_pass(); /* 0A committed, waiting for a sync */
	t_items[1].fail = -EIO;
	t_add(1, "0B"); /* the next batch, and it fails */
	t_idle();
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert_int_eq(t_items[1].result, -EIO);
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[0].result, 0);
	t_add(2, "0C"); /* and the loop still takes new work */
	t_idle();
	ck_assert_int_eq(t_items[2].done, 1);
	ck_assert_int_eq(t_items[2].result, 0);
}
END_TEST

static void
t_add_failing(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	t_items[1].fail = SHOAL_E_STORAGE_FULL;
	t_add(1, "0B");
}

/* The wait's end is due (sync_ev) and, in the same pass but before it, a
 * callback queues the next batch, which then fails (a full store). The
 * batch ran from the sync's callback: the waiting item must still be
 * synced and told. (A second priority lets the test order the pass.) */
START_TEST(test_a_failed_batch_run_by_the_sync_strands_nothing)
{
	struct timeval now = { 0, 0 };
	struct event *first;

	ck_assert_int_eq(event_base_priority_init(t_base, 2), 0);
	commit_free(t_c); /* again, its events at the new default priority */
	t_c = commit_new(t_base, t_st);
	t_add(0, "0A");
	t_pass(); /* 0A committed, its sync due in the next pass */
	ck_assert_int_eq(t_items[0].done, 0);
	first = evtimer_new(t_base, t_add_failing, NULL);
	ck_assert_int_eq(event_priority_set(first, 0), 0);
	evtimer_add(first, &now);
	t_idle();
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert_int_eq(t_items[1].result, SHOAL_E_STORAGE_FULL);
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[0].result, 0);
	event_free(first);
}
END_TEST

START_TEST(test_flush_finishes_everything_at_once)
{
	t_add(0, "0A");
	t_pass();
	t_add(1, "0B");
	commit_flush(t_c);
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert_int_eq(t_items[1].result, 0);
	/* and the data is there after a reopen */
	commit_free(t_c);
	t_c = NULL;
	store_close(t_st);
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	ck_assert(t_stored("0A"));
	ck_assert(t_stored("0B"));
	t_c = commit_new(t_base, t_st);
}
END_TEST

/* A done callback that queues a follow-up item (shutdown: an enqueue
 * refused while its peer wait is answered queues its withdrawal): flush
 * runs that one too, so nothing is left for after the modules it calls
 * back into are gone. */
/* A later item joins the next batch that runs for another item (one
 * batch, one sync for both)... */
START_TEST(test_a_later_item_joins_the_next_batch)
{
	uint64_t batches, items, syncs;

	snprintf(t_items[0].qid, sizeof(t_items[0].qid), "0L");
	commit_add_later(t_c, t_apply, t_done, &t_items[0], 60000);
	t_pass();
	ck_assert(!t_stored("0L")); /* nothing made a batch run */
	t_add(1, "0B");
	t_idle();
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[0].result, 0);
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert(t_stored("0L") && t_stored("0B"));
	commit_stats(t_c, &batches, &items, &syncs);
	ck_assert_uint_eq(batches, 1);
	ck_assert_uint_eq(items, 2);
}
END_TEST

/* ... and runs by itself once its delay passes, when none comes. */
START_TEST(test_a_later_item_alone_runs_after_its_delay)
{
	snprintf(t_items[0].qid, sizeof(t_items[0].qid), "0L");
	commit_add_later(t_c, t_apply, t_done, &t_items[0], 20);
	t_idle(); /* the delay's timer, the batch, its sync */
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[0].result, 0);
	ck_assert(t_stored("0L"));
}
END_TEST

/* commit_flush() (shutdown) runs later items too. */
START_TEST(test_flush_runs_later_items)
{
	snprintf(t_items[0].qid, sizeof(t_items[0].qid), "0L");
	commit_add_later(t_c, t_apply, t_done, &t_items[0], 60000);
	commit_flush(t_c);
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert(t_stored("0L"));
}
END_TEST

static void
t_done_then_add(int result, void *arg)
{
	t_done(result, arg);
	t_add(2, "0D");
}

START_TEST(test_flush_runs_items_queued_by_done_callbacks)
	{
		snprintf(t_items[1].qid, sizeof(t_items[1].qid), "0C");
		commit_add(t_c, t_apply, t_done_then_add, &t_items[1]);
		commit_flush(t_c);
		ck_assert_int_eq(t_items[1].done, 1);
		ck_assert_int_eq(t_items[2].done, 1);
		ck_assert_int_eq(t_items[2].result, 0);
		ck_assert(t_stored("0D"));
	}
END_TEST

/* ---- the purity of applies (commit.h: commit_apply_fn) ---------------
 * Two ways to give each item a number, as ingest gives a DSN its qid:
 * pure, from a counter the transaction holds (meta "drawn"), and impure,
 * from a global that stands for qid_next(), a log line or a metric. Each
 * writes a due entry at its number; it->drawn is what done would see. */

/* Store due entry (number, qid) and note the number for done. */
static int
t_write_drawn(struct store_txn *t, struct t_item *it, uint64_t n)
{
	it->drawn = n;
	return store_due_add(t, n, it->qid);
}

static int
t_apply_pure(struct store_txn *t, void *arg)
{
	struct t_item *it = arg;
	const void *p;
	size_t len;
	uint64_t n = 0;
	unsigned char v[8];
	int rc = store_meta_get(t, "drawn", &p, &len);

	if (rc == 0 && len == sizeof(v))
		n = be64_get(p);
	else if (rc != -ENOENT)
		return rc ? rc : -EIO;
	be64_put(v, ++n);
	if ((rc = store_meta_put(t, "drawn", v, sizeof(v))) != 0)
		return rc;
	return it->fail ? it->fail : t_write_drawn(t, it, n);
}

static int
t_apply_impure(struct store_txn *t, void *arg)
{
	struct t_item *it = arg;
	uint64_t n = ++t_global_drawn; /* outside t: never undone */

	return it->fail ? it->fail : t_write_drawn(t, it, n);
}

static void
t_add_with(int i, const char *qid, commit_apply_fn apply)
{
	snprintf(t_items[i].qid, sizeof(t_items[i].qid), "%s", qid);
	commit_add(t_c, apply, t_done, &t_items[i]);
}

/* The due entries stored, as "time:qid ..." in time order. */
static void
t_dues(char *out, size_t len)
{
	struct store_txn *t;
	struct t_dues d = { out, len };

	out[0] = '\0';
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_due_foreach(t, 0, NULL, UINT64_MAX, 100,
					   t_see_due, &d),
			 0);
	store_txn_abort(t);
}

/* Why the contract: even without rehearsal, an item of a batch that
 * failed runs again alone, so a side effect of its apply happens twice. */
START_TEST(test_an_apply_runs_again_when_its_batch_fails)
{
	char dues[128];

	t_add_with(0, "0A", t_apply_impure);
	t_items[1].fail = -EIO;
	t_add_with(1, "0B", t_apply_impure);
	t_idle();
	ck_assert_int_eq(t_items[0].done, 1);
	ck_assert_int_eq(t_items[0].result, 0);
	ck_assert_int_eq(t_items[1].done, 1);
	ck_assert_int_eq(t_items[1].result, -EIO);
	/* 0A ran in the batch and alone, 0B in the batch and alone */
	ck_assert_uint_eq(t_global_drawn, 4);
	t_dues(dues, sizeof(dues));
	ck_assert_str_eq(dues, "3:0A ");
}
END_TEST

/* A pure apply commits under rehearsal exactly what it commits without:
 * numbers 1, 2, 3 in the store and in what done sees, each done once. */
START_TEST(test_rehearsal_keeps_a_pure_apply_exact)
{
	char dues[128];

	commit_set_rehearse(t_c, true);
	t_add_with(0, "0A", t_apply_pure);
	t_add_with(1, "0B", t_apply_pure);
	t_pass(); /* one batch, rehearsed then run */
	t_add_with(2, "0C", t_apply_pure);
	t_idle();
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(t_items[i].done, 1);
		ck_assert_int_eq(t_items[i].result, 0);
		ck_assert_uint_eq(t_items[i].drawn, (uint64_t)i + 1);
	}
	t_dues(dues, sizeof(dues));
	ck_assert_str_eq(dues, "1:0A 2:0B 3:0C ");
}
END_TEST

/* The same with a failing item: the rehearsal changes no outcome. */
START_TEST(test_rehearsal_keeps_outcomes_of_a_failing_batch)
{
	char dues[128];

	commit_set_rehearse(t_c, true);
	t_add_with(0, "0A", t_apply_pure);
	t_items[1].fail = -EIO;
	t_add_with(1, "0B", t_apply_pure);
	t_add_with(2, "0C", t_apply_pure);
	t_idle();
	ck_assert_int_eq(t_items[0].result, 0);
	ck_assert_int_eq(t_items[1].result, -EIO);
	ck_assert_int_eq(t_items[2].result, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(t_items[i].done, 1);
	ck_assert_uint_eq(t_items[0].drawn, 1);
	ck_assert_uint_eq(t_items[2].drawn, 2);
	t_dues(dues, sizeof(dues));
	ck_assert_str_eq(dues, "1:0A 2:0C ");
}
END_TEST

/* The positive control: an impure apply that passes unnoticed without
 * rehearsal (numbers 1..3, as a pure one) is caught with it: every side
 * effect twice, and the numbers done sees are not those of a single run. */
START_TEST(test_rehearsal_shows_an_impure_apply_twice)
{
	char dues[128];

	t_add_with(0, "0A", t_apply_impure);
	t_add_with(1, "0B", t_apply_impure);
	t_add_with(2, "0C", t_apply_impure);
	t_idle();
	ck_assert_uint_eq(t_global_drawn, 3);
	t_dues(dues, sizeof(dues));
	ck_assert_str_eq(dues, "1:0A 2:0B 3:0C ");

	commit_set_rehearse(t_c, true);
	t_global_drawn = 0;
	t_add_with(3, "0D", t_apply_impure);
	t_add_with(4, "0E", t_apply_impure);
	t_add_with(5, "0F", t_apply_impure);
	t_idle();
	ck_assert_uint_eq(t_global_drawn, 6); /* caught: twice per item */
	ck_assert_uint_eq(t_items[3].drawn, 4);
	t_dues(dues, sizeof(dues));
	ck_assert_str_eq(dues, "1:0A 2:0B 3:0C 4:0D 5:0E 6:0F ");
	for (int i = 3; i < 6; i++)
		ck_assert_int_eq(t_items[i].done, 1);
}
END_TEST

static Suite *
commit_suite(void)
{
	Suite *s = suite_create("commit");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_done_runs_after_the_sync_not_inside_commit_add);
	tcase_add_test(tc, test_next_batch_carries_the_previous_ones_sync);
	tcase_add_test(tc, test_a_batch_that_writes_nothing_carries_no_sync);
	tcase_add_test(tc,
		       test_batches_that_write_nothing_cannot_starve_the_wait);
	tcase_add_test(tc, test_a_failing_item_fails_alone);
	tcase_add_test(tc, test_a_failed_batch_leaves_no_item_stranded);
	tcase_add_test(tc, test_a_failed_batch_run_by_the_sync_strands_nothing);
	tcase_add_test(tc, test_flush_finishes_everything_at_once);
	tcase_add_test(tc, test_flush_runs_items_queued_by_done_callbacks);
	suite_add_tcase(s, tc);

	tc = tcase_create("purity");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_an_apply_runs_again_when_its_batch_fails);
	tcase_add_test(tc, test_rehearsal_keeps_a_pure_apply_exact);
	tcase_add_test(tc, test_rehearsal_keeps_outcomes_of_a_failing_batch);
	tcase_add_test(tc, test_rehearsal_shows_an_impure_apply_twice);
	tcase_add_test(tc, test_a_later_item_joins_the_next_batch);
	tcase_add_test(tc, test_a_later_item_alone_runs_after_its_delay);
	tcase_add_test(tc, test_flush_runs_later_items);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(commit_suite)
