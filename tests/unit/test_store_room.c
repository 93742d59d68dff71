/* Check suite for node/store/store_room.c: the reserve new mail leaves for
 * what frees space. A real LMDB store in a fresh mkdtemp() directory with
 * a small map, filled by new mail until store_admit() refuses. */
#include "node/store/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (4u << 20)	/* reserve: its minimum, 256 KiB... */
#define T_BODY (16u << 10)	/* ...or 1/8 of the map: 512 KiB */
#define T_MAX 1024

static char t_dir[64];
static char t_log[128];
static struct store *t_st;
static char t_qids[T_MAX][QID_LEN + 1];
static struct qid_gen t_gen;

static void
t_setup(void)
{
	check_mkdtemp(t_dir, sizeof(t_dir), "store_room");
	snprintf(t_log, sizeof(t_log), "%s.log", t_dir);
	log_init("test_store_room", LOG_LVL_INFO);
	ck_assert_int_eq(log_open_file(t_log), 0);
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	qid_gen_init(&t_gen);
}

static void
t_teardown(void)
{
	store_close(t_st);
	log_close();
	remove(t_log);
	check_rmtree(t_dir);
}

static unsigned
t_logged(const char *word)
{
	FILE *f = fopen(t_log, "r");
	char line[1024];
	unsigned n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, word))
			n++;
	fclose(f);
	return n;
}

/* Between attempts of a bounded wait for the store to see its room. */
static void
t_pause_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* New mail as ingest stores it: admitted, then written. Returns what
 * store_admit or the write said. */
static int
t_add(char qid[QID_LEN + 1], enum store_admit kind)
{
	static char body[T_BODY];
	struct store_txn *t;
	int rc;

	qid_next(&t_gen, qid);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	rc = store_admit(t, sizeof(body), kind);
	if (rc == 0)
		rc = store_msg_put(t, qid, 0, "m", 1, body, sizeof(body));
	if (rc != 0) {
		store_txn_abort(t);
		return rc;
	}
	return store_txn_commit(t);
}

static int
t_enqueue(char qid[QID_LEN + 1])
{
	return t_add(qid, STORE_ADMIT_MAIL);
}

/* New mail stops at the reserve, before any write fails; the peer's
 * copies go on into half of it, then stop too; what frees space (retiring
 * every message) still fits, and new mail is admitted again. Without the reserve the writes themselves hit the end of the
 * map and the deletions after them failed too. */
START_TEST(test_new_mail_stops_at_the_reserve_and_deletions_still_fit)
{
	size_t n = 0, mail;
	struct store_txn *t;
	int rc;

	while (n < T_MAX && (rc = t_enqueue(t_qids[n])) == 0)
		n++;
	ck_assert_int_eq(rc, SHOAL_E_STORAGE_FULL);
	ck_assert_uint_gt(n, 20);
	/* refused by the reserve, not by LMDB running out */
	ck_assert_uint_eq(t_logged("event=reserve_reached for=mail"), 1);
	ck_assert_uint_eq(t_logged("event=full"), 0);
	/* refused again, and logged once */
	ck_assert_int_eq(t_enqueue(t_qids[n]), SHOAL_E_STORAGE_FULL);
	ck_assert_uint_eq(t_logged("event=reserve_reached for=mail"), 1);
	mail = n;
	/* the peer's copies may still take half the reserve, then stop */
	while (n < T_MAX &&
	       (rc = t_add(t_qids[n], STORE_ADMIT_REPLICA)) == 0)
		n++;
	ck_assert_int_eq(rc, SHOAL_E_STORAGE_FULL);
	ck_assert_uint_gt(n, mail);
	ck_assert_uint_eq(t_logged("event=reserve_reached for=replica"), 1);
	ck_assert_uint_eq(t_logged("event=full"), 0);
	/* retiring everything, one message per transaction as results are */
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
		ck_assert_int_eq(store_msg_retire(t, t_qids[i], 0), 0);
		ck_assert_int_eq(store_txn_commit(t), 0);
	}
	/* the space freed is room again (after the recheck interval: the
	 * free list is counted when growth alone is short) */
	for (int i = 0; i < 100; i++) {
		char q[QID_LEN + 1];

		rc = t_enqueue(q);
		if (rc == 0)
			break;
		ck_assert_int_eq(rc, SHOAL_E_STORAGE_FULL);
		t_pause_ms(20);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(t_logged("event=room_again for=mail"), 1);
	ck_assert_uint_eq(t_logged("event=full"), 0);
}
END_TEST

/* Only new mail asks: a read-only txn gets a clear error. */
START_TEST(test_admit_needs_a_write_txn)
{
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_admit(t, 1, STORE_ADMIT_MAIL), -EINVAL);
	store_txn_abort(t);
}
END_TEST

static Suite *
store_room_suite(void)
{
	Suite *s = suite_create("store_room");
	TCase *tc = tcase_create("reserve");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_new_mail_stops_at_the_reserve_and_deletions_still_fit);
	tcase_add_test(tc, test_admit_needs_a_write_txn);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(store_room_suite)
