/* Check suite for node/store/store*.c: the LMDB queue. Each test gets a fresh
 * mkdtemp() directory, removed in teardown. The durability test forks a
 * writer and kills it with SIGKILL right after its commits return. */
#include "node/store/store.h"

#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (64ull << 20)
#define T_SEEN_MAX 16

static char t_dir[64];
static struct store *t_st;

/* What a walk saw, in order. */
struct t_seen {
	size_t n;
	int stop_after;		/* return 7 after this many; 0: never */
	char qid[T_SEEN_MAX][QID_MAX];
	uint32_t shard[T_SEEN_MAX];
	uint64_t due[T_SEEN_MAX];
	char meta[T_SEEN_MAX][32];
};

static void
t_setup(void)
{
	log_init("test_store", LOG_LVL_WARN);
	check_mkdtemp(t_dir, sizeof(t_dir), "store");
	t_st = NULL;
}

static void
t_teardown(void)
{
	store_close(t_st);
	t_st = NULL;
	check_rmtree(t_dir);
}

static void
t_open(uint64_t map_size)
{
	ck_assert_int_eq(store_open(t_dir, map_size, &t_st), 0);
}

static void
t_reopen(void)
{
	store_close(t_st);
	t_st = NULL;
	t_open(T_MAP_SIZE);
}

/* Put one message (meta and body are strings) in its own transaction. */
static void
t_put(const char *qid, uint32_t shard, const char *meta, const char *body)
{
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, qid, shard, meta, strlen(meta), body,
				       strlen(body)),
			 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
}

static int
t_see_msg(const char *qid, uint32_t shard, const void *meta, size_t meta_len,
	  void *arg)
{
	struct t_seen *s = arg;

	ck_assert_uint_lt(s->n, T_SEEN_MAX);
	ck_assert_uint_lt(meta_len, sizeof(s->meta[0]));
	snprintf(s->qid[s->n], QID_MAX, "%s", qid);
	s->shard[s->n] = shard;
	memcpy(s->meta[s->n], meta, meta_len);
	s->meta[s->n][meta_len] = '\0';
	s->n++;
	return s->stop_after != 0 && (int)s->n == s->stop_after ? 7 : 0;
}

static int
t_see_due(uint64_t due, const char *qid, uint32_t cls, void *arg)
{
	(void)cls;
	struct t_seen *s = arg;

	ck_assert_uint_lt(s->n, T_SEEN_MAX);
	snprintf(s->qid[s->n], QID_MAX, "%s", qid);
	s->due[s->n] = due;
	s->n++;
	return s->stop_after != 0 && (int)s->n == s->stop_after ? 7 : 0;
}

/* Walk messages (shard < 0: all, else that shard) in a read txn. */
static int
t_walk(long shard, struct t_seen *s)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = shard < 0 ? store_msg_foreach(t, t_see_msg, s) :
			 store_shard_foreach(t, (uint32_t)shard, t_see_msg, s);
	store_txn_abort(t);
	return rc;
}

/* Walk due entries from (from_due, from_qid) on. */
static int
t_walk_due_from(uint64_t from_due, const char *from_qid, uint64_t now,
		size_t max, struct t_seen *s)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = store_due_foreach(t, from_due, from_qid, now, max, t_see_due, s);
	store_txn_abort(t);
	return rc;
}

static int
t_walk_due(uint64_t now, size_t max, struct t_seen *s)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = store_due_foreach(t, 0, NULL, now, max, t_see_due, s);
	store_txn_abort(t);
	return rc;
}

/* Assert qid's meta and body (strings) in a read txn. */
static void
t_expect(const char *qid, const char *meta, const char *body)
{
	struct store_txn *t;
	const void *p;
	size_t len;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_msg_get_meta(t, qid, &p, &len), 0);
	ck_assert_uint_eq(len, strlen(meta));
	ck_assert_mem_eq(p, meta, len);
	ck_assert_int_eq(store_msg_get_body(t, qid, &p, &len), 0);
	ck_assert_uint_eq(len, strlen(body));
	ck_assert_mem_eq(p, body, len);
	store_txn_abort(t);
}

static void
t_expect_missing(const char *qid)
{
	struct store_txn *t;
	const void *p = NULL;
	size_t len = 99;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_msg_get_meta(t, qid, &p, &len), -ENOENT);
	ck_assert_int_eq(store_msg_get_body(t, qid, &p, &len), -ENOENT);
	ck_assert_ptr_null(p);	/* out-parameters untouched on failure */
	ck_assert_uint_eq(len, 99);
	store_txn_abort(t);
}

static uint64_t
t_count(void)
{
	struct store_txn *t;
	uint64_t n;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	n = store_msg_count(t);
	store_txn_abort(t);
	return n;
}

START_TEST(test_put_then_get_returns_meta_and_body)
{
	t_open(T_MAP_SIZE);
	t_put("0A", 3, "meta-a", "body-a");
	t_expect("0A", "meta-a", "body-a");
	ck_assert_uint_eq(t_count(), 1);
}
END_TEST

START_TEST(test_put_empty_meta_and_body)
{
	t_open(T_MAP_SIZE);
	t_put("0A", 0, "", "");
	t_expect("0A", "", "");
}
END_TEST

START_TEST(test_put_twice_replaces)
{
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	t_put("0A", 3, "meta-1", "body-1");
	t_put("0A", 3, "meta-2", "body-2");
	t_put("0A", 3, "meta-2", "body-2");
	t_expect("0A", "meta-2", "body-2");
	ck_assert_uint_eq(t_count(), 1);
	ck_assert_int_eq(t_walk(3, &s), 0);
	ck_assert_uint_eq(s.n, 1);
}
END_TEST

START_TEST(test_del_removes_msg_body_and_shard_entry)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	t_put("0A", 3, "m", "b");
	t_put("0B", 3, "m", "b");
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_del(t, "0A", 3), 0);
	ck_assert_int_eq(store_msg_del(t, "0A", 3), -ENOENT);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_expect_missing("0A");
	t_expect("0B", "m", "b");
	ck_assert_uint_eq(t_count(), 1);
	ck_assert_int_eq(t_walk(3, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_str_eq(s.qid[0], "0B");
}
END_TEST

START_TEST(test_msg_foreach_walks_in_qid_order)
{
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	t_put("0C", 1, "mc", "c");
	t_put("0A", 2, "ma", "a");
	t_put("0B", 3, "mb", "b");
	ck_assert_int_eq(t_walk(-1, &s), 0);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_str_eq(s.qid[0], "0A");
	ck_assert_str_eq(s.qid[1], "0B");
	ck_assert_str_eq(s.qid[2], "0C");
	ck_assert_uint_eq(s.shard[0], 2);
	ck_assert_uint_eq(s.shard[2], 1);
	ck_assert_str_eq(s.meta[1], "mb");
}
END_TEST

START_TEST(test_msg_foreach_returns_callback_stop_value)
{
	struct t_seen s = { .stop_after = 2 };

	t_open(T_MAP_SIZE);
	t_put("0A", 1, "m", "b");
	t_put("0B", 1, "m", "b");
	t_put("0C", 1, "m", "b");
	ck_assert_int_eq(t_walk(-1, &s), 7);
	ck_assert_uint_eq(s.n, 2);
}
END_TEST

START_TEST(test_walks_of_empty_store_see_nothing)
{
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(t_walk(-1, &s), 0);
	ck_assert_int_eq(t_walk(0, &s), 0);
	ck_assert_int_eq(t_walk_due(UINT64_MAX, 10, &s), 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_uint_eq(t_count(), 0);
}
END_TEST

START_TEST(test_shard_foreach_sees_only_its_shard)
{
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	/* neighbours whose big-endian bytes share a prefix with shard 1 */
	t_put("0A", 0, "m", "b");
	t_put("0B", 1, "m", "b");
	t_put("0C", 256, "m", "b");
	t_put("0D", 1, "m", "b");
	t_put("0E", 0x01000000, "m", "b");
	t_put("0F", 2, "m", "b");
	ck_assert_int_eq(t_walk(1, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_str_eq(s.qid[0], "0B");
	ck_assert_str_eq(s.qid[1], "0D");
	ck_assert_uint_eq(s.shard[1], 1);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk(7, &s), 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(t_walk(0xffffffffu, &s), 0);
	ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(test_put_with_new_shard_moves_index_entry)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	t_put("0A", 1, "m", "b");
	t_put("0A", 2, "m2", "b2");
	ck_assert_int_eq(t_walk(1, &s), 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(t_walk(2, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(s.shard[0], 2);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk(-1, &s), 0);
	ck_assert_uint_eq(s.shard[0], 2);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_del(t, "0A", 2), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk(2, &s), 0);
	ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(test_set_meta_keeps_body_and_shard)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	t_put("0A", 5, "old", "body");
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_set_meta(t, "0A", "newer", 5), 0);
	ck_assert_int_eq(store_msg_set_meta(t, "0Z", "x", 1), -ENOENT);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_expect("0A", "newer", "body");
	ck_assert_int_eq(t_walk(5, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_str_eq(s.meta[0], "newer");
}
END_TEST

START_TEST(test_due_foreach_order_cutoff_and_max)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_due_add(t, 300, "0A"), 0);
	ck_assert_int_eq(store_due_add(t, 100, "0B"), 0);
	ck_assert_int_eq(store_due_add(t, 256, "0C"), 0);
	ck_assert_int_eq(store_due_add(t, 100, "0A"), 0);
	ck_assert_int_eq(store_due_add(t, 100, "0A"), 0); /* again: no-op */
	ck_assert_int_eq(store_due_add(t, 1ull << 40, "0D"), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);

	ck_assert_int_eq(t_walk_due(299, 10, &s), 0);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_uint_eq(s.due[0], 100);
	ck_assert_str_eq(s.qid[0], "0A");
	ck_assert_uint_eq(s.due[1], 100);
	ck_assert_str_eq(s.qid[1], "0B");
	ck_assert_uint_eq(s.due[2], 256);

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due(UINT64_MAX, 2, &s), 0);
	ck_assert_uint_eq(s.n, 2);

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due(UINT64_MAX, 0, &s), 0);
	ck_assert_int_eq(t_walk_due(99, 10, &s), 0);
	ck_assert_uint_eq(s.n, 0);

	ck_assert_int_eq(t_walk_due(UINT64_MAX, 10, &s), 0);
	ck_assert_uint_eq(s.n, 5);
	ck_assert_uint_eq(s.due[4], 1ull << 40);

	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	ck_assert_int_eq(t_walk_due(UINT64_MAX, 10, &s), 7);
	ck_assert_uint_eq(s.n, 1);
}
END_TEST

/* The scheduler resumes its walk where the last one stopped. */
START_TEST(test_due_foreach_from_a_key)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_due_add(t, 100, "0A"), 0);
	ck_assert_int_eq(store_due_add(t, 100, "0C"), 0);
	ck_assert_int_eq(store_due_add(t, 200, "00"), 0);
	ck_assert_int_eq(store_due_add(t, 300, "0B"), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);

	/* an existing key: it is the first one seen */
	ck_assert_int_eq(t_walk_due_from(100, "0C", 1000, 10, &s), 0);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_str_eq(s.qid[0], "0C");
	ck_assert_str_eq(s.qid[1], "00");
	ck_assert_uint_eq(s.due[1], 200);

	/* a missing key: the next one; a qid sorting after all at 100 */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(100, "0B", 1000, 10, &s), 0);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_str_eq(s.qid[0], "0C");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(100, "0Z", 1000, 10, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_str_eq(s.qid[0], "00");

	/* a bare time (empty or no qid): everything due at it and later */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(200, "", 1000, 10, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_str_eq(s.qid[0], "00");
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(101, NULL, 1000, 10, &s), 0);
	ck_assert_uint_eq(s.n, 2);

	/* the cutoff and max still hold; past the end: nothing */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(100, "0C", 250, 10, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(100, "0C", 1000, 1, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk_due_from(301, NULL, 1000, 10, &s), 0);
	ck_assert_uint_eq(s.n, 0);

	/* a qid too long for a key is refused, not truncated */
	{
		char big[QID_MAX + 8];

		memset(big, 'A', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_int_eq(t_walk_due_from(100, big, 1000, 10, &s),
				 -EINVAL);
	}
}
END_TEST

START_TEST(test_due_del_removes_entry_and_ignores_missing)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_due_add(t, 10, "0A"), 0);
	ck_assert_int_eq(store_due_add(t, 20, "0A"), 0);
	ck_assert_int_eq(store_due_del(t, 10, "0A"), 0);
	ck_assert_int_eq(store_due_del(t, 10, "0A"), 0);
	ck_assert_int_eq(store_due_del(t, 99, "0Z"), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	ck_assert_int_eq(t_walk_due(UINT64_MAX, 10, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(s.due[0], 20);
}
END_TEST

START_TEST(test_due_first_empty_is_enoent)
{
	struct store_txn *t;
	uint64_t due = 42;

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_due_first(t, &due), -ENOENT);
	ck_assert_uint_eq(due, 42);
	ck_assert_int_eq(store_due_add(t, 500, "0A"), 0);
	ck_assert_int_eq(store_due_add(t, 70000, "0B"), 0);
	ck_assert_int_eq(store_due_add(t, 600, "00"), 0);
	ck_assert_int_eq(store_due_first(t, &due), 0);
	ck_assert_uint_eq(due, 500);
	ck_assert_int_eq(store_txn_commit(t), 0);
}
END_TEST

START_TEST(test_meta_put_get_and_missing)
{
	struct store_txn *t;
	const void *p;
	size_t len;

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_meta_get(t, "node_id", &p, &len), -ENOENT);
	ck_assert_int_eq(store_meta_put(t, "node_id", "n1", 2), 0);
	ck_assert_int_eq(store_meta_put(t, "node_id", "node-2", 6), 0);
	ck_assert_int_eq(store_meta_put(t, "shard_map", "\0\1\2", 3), 0);
	ck_assert_int_eq(store_meta_put(t, "", "x", 1), -EINVAL);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_reopen();
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_meta_get(t, "node_id", &p, &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_mem_eq(p, "node-2", 6);
	ck_assert_int_eq(store_meta_get(t, "shard_map", &p, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(p, "\0\1\2", 3);
	store_txn_abort(t);
}
END_TEST

START_TEST(test_abort_discards_writes)
{
	struct store_txn *t;
	uint64_t due;

	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, "0A", 1, "m", 1, "b", 1), 0);
	ck_assert_int_eq(store_due_add(t, 5, "0A"), 0);
	ck_assert_uint_eq(store_msg_count(t), 1);
	store_txn_abort(t);
	store_txn_abort(NULL);
	t_expect_missing("0A");
	ck_assert_uint_eq(t_count(), 0);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_due_first(t, &due), -ENOENT);
	store_txn_abort(t);
}
END_TEST

START_TEST(test_data_survives_close_and_reopen)
{
	struct store_txn *t;
	uint64_t due;

	t_open(T_MAP_SIZE);
	t_put("0A", 9, "meta", "body");
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_due_add(t, 1234, "0A"), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_reopen();
	t_expect("0A", "meta", "body");
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_due_first(t, &due), 0);
	ck_assert_uint_eq(due, 1234);
	store_txn_abort(t);
	store_close(NULL);
}
END_TEST

START_TEST(test_open_missing_dir_fails)
{
	struct store *st = NULL;
	char path[96];

	snprintf(path, sizeof(path), "%s/nope", t_dir);
	ck_assert_int_eq(store_open(path, T_MAP_SIZE, &st), -ENOENT);
	ck_assert_ptr_null(st);
}
END_TEST

#define T_KILL_MSGS 100

/* The child: commit T_KILL_MSGS messages one txn each, keep a read txn
 * open (a stale reader for the next open to clear), say "ok", wait. */
static void
t_child_commit(int fd)
{
	struct store *st;
	struct store_txn *t;
	char qid[QID_MAX], meta[32];

	if (store_open(t_dir, T_MAP_SIZE, &st) != 0)
		_exit(1);
	for (int i = 0; i < T_KILL_MSGS; i++) {
		snprintf(qid, sizeof(qid), "Q%04d", i);
		snprintf(meta, sizeof(meta), "meta-%d", i);
		if (store_txn_begin(st, false, &t) != 0 ||
		    store_msg_put(t, qid, (uint32_t)i % 4, meta, strlen(meta),
				  "body", 4) != 0 ||
		    store_due_add(t, (uint64_t)i, qid) != 0 ||
		    store_txn_commit(t) != 0)
			_exit(1);
	}
	if (store_txn_begin(st, true, &t) != 0 || write(fd, "ok", 2) != 2)
		_exit(1);
	for (;;)
		pause();
}

START_TEST(test_commit_survives_sigkill_after_return)
{
	char buf[2] = { 0 }, qid[QID_MAX], meta[32];
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		t_child_commit(fds[1]);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf));
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	close(fds[0]);
	ck_assert_int_eq(n, 2);
	ck_assert_mem_eq(buf, "ok", 2);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	t_open(T_MAP_SIZE);
	ck_assert_uint_eq(t_count(), T_KILL_MSGS);
	for (int i = 0; i < T_KILL_MSGS; i++) {
		snprintf(qid, sizeof(qid), "Q%04d", i);
		snprintf(meta, sizeof(meta), "meta-%d", i);
		t_expect(qid, meta, "body");
	}
	/* and the store still takes writes after the killed writer */
	t_put("R0000", 1, "m", "b");
	ck_assert_uint_eq(t_count(), T_KILL_MSGS + 1);
}
END_TEST

START_TEST(test_map_full_is_storage_full_and_store_stays_usable)
{
	size_t big = 2u << 20;
	char *body = calloc(1, big);
	struct store_txn *t;

	ck_assert_ptr_nonnull(body);
	t_open(1u << 20);
	t_put("0A", 1, "meta-a", "body-a");

	/* the failed put spoils the txn: later calls and commit say so */
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, "0B", 1, "m", 1, "small", 5), 0);
	ck_assert_int_eq(store_msg_put(t, "0C", 1, "m", 1, body, big),
			 SHOAL_E_STORAGE_FULL);
	ck_assert_int_eq(store_due_add(t, 1, "0D"), SHOAL_E_STORAGE_FULL);
	ck_assert_int_eq(store_txn_commit(t), SHOAL_E_STORAGE_FULL);
	t_expect_missing("0B");

	/* the same, aborted as the header asks */
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, "0C", 1, "m", 1, body, big),
			 SHOAL_E_STORAGE_FULL);
	store_txn_abort(t);

	t_expect("0A", "meta-a", "body-a");
	ck_assert_uint_eq(t_count(), 1);
	t_put("0E", 1, "meta-e", "body-e");
	t_expect("0E", "meta-e", "body-e");
	free(body);
}
END_TEST

START_TEST(test_10mb_body_round_trips)
{
	size_t big = 10u << 20;
	unsigned char *body = malloc(big);
	struct store_txn *t;
	const void *p;
	size_t len;

	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < big; i++)
		body[i] = (unsigned char)(i * 31 + (i >> 13));
	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, "0A", 1, "m", 1, body, big), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_reopen();
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_msg_get_body(t, "0A", &p, &len), 0);
	ck_assert_uint_eq(len, big);
	ck_assert(memcmp(p, body, big) == 0);
	store_txn_abort(t);
	free(body);
}
END_TEST

/* This process's resident pages, from /proc/self/statm. */
static size_t
t_rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
	fclose(f);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* 48 MiB of bodies read through the map count in RSS until released; after
 * store_release_pages() they are gone from RSS and read back the same. */
START_TEST(test_release_pages_drops_read_pages_from_rss)
{
	enum { N = 48, SZ = 1 << 20 };
	unsigned char *body = malloc(SZ);
	struct store_txn *t;
	unsigned long sum = 0;
	size_t before, after, len;
	char qid[QID_MAX];
	const void *p;

	ck_assert_ptr_nonnull(body);
	t_open(T_MAP_SIZE * 2);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	for (int i = 0; i < N; i++) {
		memset(body, 'a' + i % 26, SZ);
		snprintf(qid, sizeof(qid), "R%03d", i);
		ck_assert_int_eq(store_msg_put(t, qid, 1, "m", 1, body, SZ), 0);
	}
	ck_assert_int_eq(store_txn_commit(t), 0);
	store_release_pages(t_st);
	/* a read transaction stays open across the release */
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	for (int i = 0; i < N; i++) {
		snprintf(qid, sizeof(qid), "R%03d", i);
		ck_assert_int_eq(store_msg_get_body(t, qid, &p, &len), 0);
		for (size_t k = 0; k < len; k += 512)
			sum += ((const unsigned char *)p)[k];
	}
	before = t_rss_bytes();
	store_release_pages(t_st);
	after = t_rss_bytes();
	ck_assert_msg(before > after && before - after >= (size_t)(N - 8) * SZ,
		      "RSS %zu -> %zu bytes", before, after);
	for (int i = 0; i < N; i++) {
		snprintf(qid, sizeof(qid), "R%03d", i);
		ck_assert_int_eq(store_msg_get_body(t, qid, &p, &len), 0);
		ck_assert_uint_eq(len, SZ);
		memset(body, 'a' + i % 26, SZ);
		ck_assert(memcmp(p, body, SZ) == 0);
	}
	store_txn_abort(t);
	ck_assert_uint_gt(sum, 0);
	free(body);
}
END_TEST

START_TEST(test_invalid_qid_is_einval)
{
	char longest[QID_MAX], too_long[QID_MAX + 1];
	struct store_txn *t;
	const void *p;
	size_t len;

	memset(longest, 'A', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	memset(too_long, 'A', sizeof(too_long) - 1);
	too_long[sizeof(too_long) - 1] = '\0';
	t_open(T_MAP_SIZE);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, "", 1, "m", 1, "b", 1), -EINVAL);
	ck_assert_int_eq(store_msg_put(t, NULL, 1, "m", 1, "b", 1), -EINVAL);
	ck_assert_int_eq(store_msg_put(t, too_long, 1, "m", 1, "b", 1),
			 -EINVAL);
	ck_assert_int_eq(store_msg_get_meta(t, too_long, &p, &len), -EINVAL);
	ck_assert_int_eq(store_msg_get_body(t, "", &p, &len), -EINVAL);
	ck_assert_int_eq(store_msg_set_meta(t, "", "m", 1), -EINVAL);
	ck_assert_int_eq(store_msg_del(t, too_long, 1), -EINVAL);
	ck_assert_int_eq(store_due_add(t, 1, too_long), -EINVAL);
	ck_assert_int_eq(store_due_del(t, 1, ""), -EINVAL);
	/* a rejected argument does not spoil the txn */
	ck_assert_int_eq(store_msg_put(t, longest, 1, "m", 1, "b", 1), 0);
	ck_assert_int_eq(store_due_add(t, 1, longest), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_expect(longest, "m", "b");
}
END_TEST

START_TEST(test_read_only_txn_cannot_write)
{
	struct store_txn *t;

	t_open(T_MAP_SIZE);
	t_put("0A", 1, "m", "b");
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_msg_put(t, "0B", 1, "m", 1, "b", 1), -EACCES);
	ck_assert_int_eq(store_msg_set_meta(t, "0A", "x", 1), -EACCES);
	ck_assert_int_eq(store_msg_del(t, "0A", 1), -EACCES);
	ck_assert_int_eq(store_due_add(t, 1, "0A"), -EACCES);
	ck_assert_int_eq(store_due_del(t, 1, "0A"), -EACCES);
	ck_assert_int_eq(store_meta_put(t, "k", "v", 1), -EACCES);
	ck_assert_int_eq(store_txn_commit(t), 0);
	t_expect("0A", "m", "b");
	t_expect_missing("0B");
}
END_TEST

START_TEST(test_read_txns_overlap_each_other_and_the_writer)
{
	struct store_txn *r1, *r2, *w;
	const void *p;
	size_t len;

	t_open(T_MAP_SIZE);
	t_put("0A", 1, "m1", "b");
	ck_assert_int_eq(store_txn_begin(t_st, true, &r1), 0);
	ck_assert_int_eq(store_txn_begin(t_st, false, &w), 0);
	ck_assert_int_eq(store_msg_set_meta(w, "0A", "m2", 2), 0);
	ck_assert_int_eq(store_txn_commit(w), 0);
	ck_assert_int_eq(store_txn_begin(t_st, true, &r2), 0);
	/* r1 still sees its snapshot, r2 the commit */
	ck_assert_int_eq(store_msg_get_meta(r1, "0A", &p, &len), 0);
	ck_assert_mem_eq(p, "m1", 2);
	ck_assert_int_eq(store_msg_get_meta(r2, "0A", &p, &len), 0);
	ck_assert_mem_eq(p, "m2", 2);
	store_txn_abort(r2);
	store_txn_abort(r1);
}
END_TEST

/* ---- tombstones (issue 15, item 16) ---- */

/* A valid qid (lib/qid.h layout) for unix time `sec`, sequence seq. */
static void
t_qid_at(char out[QID_LEN + 1], uint64_t sec, uint32_t seq)
{
	static const char a[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	uint64_t us = sec * 1000000u;

	for (int i = 10; i >= 0; i--, us >>= 5)
		out[i] = a[us & 31];
	memcpy(out + 11, "TESTQQ", 6);
	for (int i = 20; i >= 17; i--, seq >>= 5)
		out[i] = a[seq & 31];
	out[QID_LEN] = '\0';
	ck_assert(qid_valid(out, QID_LEN));
	ck_assert_uint_eq(qid_time_us(out), sec * 1000000u);
}

static void
t_retire(const char *qid, uint32_t shard)
{
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_msg_retire(t, qid, shard), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
}

static int
t_tomb_has(const char *qid)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = store_tomb_has(t, qid);
	store_txn_abort(t);
	return rc;
}

static uint64_t
t_tomb_count(void)
{
	struct store_txn *t;
	uint64_t n;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	n = store_tomb_count(t);
	store_txn_abort(t);
	return n;
}

/* The message goes as with store_msg_del, its qid stays as a tombstone,
 * which survives a reopen; a qid not held gets one too (a deletion from
 * the peer's stream). */
START_TEST(test_retire_removes_message_and_keeps_a_tombstone)
	{
		char q1[QID_LEN + 1], q2[QID_LEN + 1];
		struct store_txn *t;
		const void *p;
		size_t len;

		t_qid_at(q1, (uint64_t)time(NULL), 1);
		t_qid_at(q2, (uint64_t)time(NULL), 2);
		t_open(T_MAP_SIZE);
		t_put(q1, 3, "meta", "body");
		ck_assert_int_eq(t_tomb_has(q1), -ENOENT);
		t_retire(q1, 3);
		t_retire(q2, 5);
		t_reopen();
		ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
		ck_assert_int_eq(store_msg_get_meta(t, q1, &p, &len), -ENOENT);
		ck_assert_int_eq(store_msg_get_body(t, q1, &p, &len), -ENOENT);
		ck_assert_uint_eq(store_msg_count(t), 0);
		ck_assert_int_eq(store_tomb_has(t, q1), 0);
		ck_assert_int_eq(store_tomb_has(t, q2), 0);
		ck_assert_int_eq(store_tomb_has(t, "0000000000000NOSUCH00"),
				 -ENOENT);
		ck_assert_uint_eq(store_tomb_count(t), 2);
		store_txn_abort(t);
	}
END_TEST

/* A plain delete (a withdrawal, a shard moved away) leaves no tombstone:
 * the qid may come again. */
START_TEST(test_del_leaves_no_tombstone)
	{
		char q[QID_LEN + 1];
		struct store_txn *t;

		t_qid_at(q, (uint64_t)time(NULL), 1);
		t_open(T_MAP_SIZE);
		t_put(q, 3, "meta", "body");
		ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
		ck_assert_int_eq(store_msg_del(t, q, 3), 0);
		ck_assert_int_eq(store_txn_commit(t), 0);
		ck_assert_int_eq(t_tomb_has(q), -ENOENT);
		ck_assert_uint_eq(t_tomb_count(), 0);
	}
END_TEST

/* Trim drops the tombstones whose qid time is past the keep time, oldest
 * first, at most max, and stops at the first one still kept. */
START_TEST(test_tomb_trim_drops_expired_oldest_first_bounded)
	{
		uint64_t now = 2000000000u;
		char q[5][QID_LEN + 1];
		struct store_txn *t;

		t_open(T_MAP_SIZE);
		store_tomb_keep(t_st, 100);
		/* 1000, 500 and 101 s old: expired; 100 and 10 s old: kept */
		t_qid_at(q[0], now - 1000, 1);
		t_qid_at(q[1], now - 500, 1);
		t_qid_at(q[2], now - 101, 1);
		t_qid_at(q[3], now - 100, 1);
		t_qid_at(q[4], now - 10, 1);
		/* retire trims relative to the real clock (far past these): keep
	 * every tombstone while filling in */
		store_tomb_keep(t_st, UINT64_MAX / 4);
		for (int i = 4; i >= 0; i--)
			t_retire(q[i], 1);
		store_tomb_keep(t_st, 100);
		ck_assert_uint_eq(t_tomb_count(), 5);
		ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
		ck_assert_int_eq(store_tomb_trim(t, now, 2), 2);
		ck_assert_int_eq(store_tomb_has(t, q[0]), -ENOENT);
		ck_assert_int_eq(store_tomb_has(t, q[1]), -ENOENT);
		ck_assert_int_eq(store_tomb_has(t, q[2]), 0);
		ck_assert_int_eq(store_tomb_trim(t, now, 10), 1);
		ck_assert_int_eq(store_tomb_trim(t, now, 10), 0);
		ck_assert_int_eq(store_txn_commit(t), 0);
		ck_assert_uint_eq(t_tomb_count(), 2);
		ck_assert_int_eq(t_tomb_has(q[3]), 0);
		ck_assert_int_eq(t_tomb_has(q[4]), 0);
	}
END_TEST

/* Each retirement drops a few expired tombstones: old ones go away as
 * new ones come, without a separate sweep. */
START_TEST(test_retire_trims_expired_tombstones_on_the_way)
	{
		uint64_t now = (uint64_t)time(NULL);
		char old[10][QID_LEN + 1], q[QID_LEN + 1];

		t_open(T_MAP_SIZE);
		store_tomb_keep(t_st, UINT64_MAX / 4);
		for (uint32_t i = 0; i < 10; i++) {
			t_qid_at(old[i], now - 100000, i);
			t_retire(old[i], 1);
		}
		ck_assert_uint_eq(t_tomb_count(), 10);
		store_tomb_keep(t_st, 3600);
		t_qid_at(q, now, 1);
		t_retire(q, 1);
		/* four expired ones went, the rest wait for the next retirements */
		ck_assert_uint_eq(t_tomb_count(), 10 + 1 - 4);
		ck_assert_int_eq(t_tomb_has(old[0]), -ENOENT);
		ck_assert_int_eq(t_tomb_has(old[4]), 0);
		ck_assert_int_eq(t_tomb_has(q), 0);
		for (uint32_t i = 2; i < 4; i++) {
			t_qid_at(q, now, 10 + i);
			t_retire(q, 1);
		}
		ck_assert_uint_eq(t_tomb_count(), 3);
	}
END_TEST

/* A queue written before tombstones existed (no "tomb" database) opens,
 * keeps its messages and gains an empty tombstone database. */
START_TEST(test_open_adds_tombstones_to_an_older_queue)
	{
		static const char *const old_dbs[] = {
			"msg",	"body", "due",	"shard",
			"meta", "jseq", "jqid", "supp",
		};
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi[8];
		char q[QID_LEN + 1], q2[QID_LEN + 1];
		unsigned char shard_meta[8] = {
			0, 0, 0, 3, 'm', 'e', 't', 'a'
		};
		MDB_val key, val;

		t_qid_at(q, (uint64_t)time(NULL), 1);
		t_qid_at(q2, (uint64_t)time(NULL), 2);
		ck_assert_int_eq(mdb_env_create(&env), 0);
		ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
		ck_assert_int_eq(mdb_env_set_mapsize(env, T_MAP_SIZE), 0);
		ck_assert_int_eq(mdb_env_open(env, t_dir, 0, 0600), 0);
		ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
		for (int i = 0; i < 8; i++)
			ck_assert_int_eq(mdb_dbi_open(txn, old_dbs[i],
						      MDB_CREATE, &dbi[i]),
					 0);
		key.mv_data = q;
		key.mv_size = QID_LEN + 1;
		val.mv_data = shard_meta;
		val.mv_size = sizeof(shard_meta);
		ck_assert_int_eq(mdb_put(txn, dbi[0], &key, &val, 0), 0);
		val.mv_data = "body";
		val.mv_size = 4;
		ck_assert_int_eq(mdb_put(txn, dbi[1], &key, &val, 0), 0);
		ck_assert_int_eq(mdb_txn_commit(txn), 0);
		mdb_env_close(env);

		t_open(T_MAP_SIZE);
		t_expect(q, "meta", "body");
		ck_assert_uint_eq(t_tomb_count(), 0);
		t_retire(q2, 1);
		t_reopen();
		t_expect(q, "meta", "body");
		ck_assert_int_eq(t_tomb_has(q2), 0);
	}
END_TEST

/* ---- on-disk layout (node/store/store.c's table) ---- */

/* One database's entries, read with LMDB alone (not through the store). */
struct t_db {
	size_t n;
	MDB_val key[8], val[8];
	unsigned char buf[8][64 + 64];
};

static void
t_db_read(MDB_txn *txn, const char *name, struct t_db *d)
{
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val key, val;
	MDB_cursor_op op = MDB_FIRST;

	memset(d, 0, sizeof(*d));
	ck_assert_int_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
	ck_assert_int_eq(mdb_cursor_open(txn, dbi, &cur), 0);
	while (mdb_cursor_get(cur, &key, &val, op) == 0) {
		op = MDB_NEXT;
		ck_assert_uint_lt(d->n, 8);
		ck_assert_uint_le(key.mv_size, 64);
		ck_assert_uint_le(val.mv_size, 64);
		memcpy(d->buf[d->n], key.mv_data, key.mv_size);
		memcpy(d->buf[d->n] + 64, val.mv_data, val.mv_size);
		d->key[d->n] = (MDB_val){ key.mv_size, d->buf[d->n] };
		d->val[d->n] = (MDB_val){ val.mv_size, d->buf[d->n] + 64 };
		d->n++;
	}
	mdb_cursor_close(cur);
}

/* Entry i of d is exactly key/klen -> val/vlen. */
static void
t_db_entry(const struct t_db *d, size_t i, const void *key, size_t klen,
	   const void *val, size_t vlen)
{
	ck_assert_uint_lt(i, d->n);
	ck_assert_uint_eq(d->key[i].mv_size, klen);
	ck_assert_mem_eq(d->key[i].mv_data, key, klen);
	ck_assert_uint_eq(d->val[i].mv_size, vlen);
	if (vlen > 0)
		ck_assert_mem_eq(d->val[i].mv_data, val, vlen);
}

/* Every database's bytes, spelled out here rather than through lib/be.h,
 * so a change of any key or value layout (or of the integers' byte
 * order) fails even when the store still reads what it wrote: queues
 * written by older builds must keep opening (tests/e2e/test_upgrade.py). */
START_TEST(test_layout_of_every_database_is_the_documented_bytes)
{
	static const uint8_t on[3] = { 0, 0, 1 };
	char tq[QID_LEN + 1], tk[QID_LEN + 2];
	struct store_txn *t;
	struct t_db d;
	MDB_env *env;
	MDB_txn *txn;
	uint64_t t0 = (uint64_t)time(NULL), v;

	t_qid_at(tq, t0, 1);
	t_open(T_MAP_SIZE);
	store_journal_shards(t_st, on, 3);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	/* "m" does not unpack as a StoredMessage: it counts as one message */
	ck_assert_int_eq(store_msg_put(t, "0A", 2, "m", 1, "b", 1), 0);
	ck_assert_int_eq(store_due_add(t, 0x0102030405060708ull, "0A"), 0);
	ck_assert_int_eq(store_meta_put(t, "k", "v", 1), 0);
	ck_assert_int_eq(store_supp_put(t, "~K", 2, "e", 1), 0);
	ck_assert_int_eq(store_msg_retire(t, tq, 1), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	store_close(t_st);
	t_st = NULL;

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 32), 0);
	ck_assert_int_eq(mdb_env_open(env, t_dir, MDB_RDONLY, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);

	t_db_read(txn, "msg", &d); /* qid\0 -> be32(shard) || meta */
	ck_assert_uint_eq(d.n, 1);
	t_db_entry(&d, 0, "0A", 3, "\0\0\0\2m", 5);
	t_db_read(txn, "body", &d); /* qid\0 -> body */
	ck_assert_uint_eq(d.n, 1);
	t_db_entry(&d, 0, "0A", 3, "b", 1);
	t_db_read(txn, "due", &d); /* be64(due) || qid\0 -> empty */
	ck_assert_uint_eq(d.n, 1);
	t_db_entry(&d, 0, "\1\2\3\4\5\6\7\10" "0A", 11, NULL, 0);
	t_db_read(txn, "shard", &d); /* be32(shard) || qid\0 -> empty */
	ck_assert_uint_eq(d.n, 1);
	t_db_entry(&d, 0, "\0\0\0\2" "0A", 7, NULL, 0);
	/* jseq be64(seq) -> flags || be64(noted) || qid\0; the body flag
	 * (1) on the message, not on the suppression entry */
	t_db_read(txn, "jseq", &d);
	ck_assert_uint_eq(d.n, 2);
	ck_assert_uint_eq(d.val[0].mv_size, 1 + 8 + 3);
	t_db_entry(&d, 0, "\0\0\0\0\0\0\0\1", 8, d.val[0].mv_data, 12);
	ck_assert_uint_eq(((unsigned char *)d.val[0].mv_data)[0], 1);
	ck_assert_mem_eq((char *)d.val[0].mv_data + 9, "0A", 3);
	v = 0;
	for (int i = 1; i <= 8; i++)
		v = v << 8 | ((unsigned char *)d.val[0].mv_data)[i];
	ck_assert(v >= t0 && v <= (uint64_t)time(NULL)); /* noted */
	ck_assert_uint_eq(d.val[1].mv_size, 1 + 8 + 3);
	t_db_entry(&d, 1, "\0\0\0\0\0\0\0\2", 8, d.val[1].mv_data, 12);
	ck_assert_uint_eq(((unsigned char *)d.val[1].mv_data)[0], 0);
	ck_assert_mem_eq((char *)d.val[1].mv_data + 9, "~K", 3);
	t_db_read(txn, "jqid", &d); /* qid\0 -> be64(seq) || flags */
	ck_assert_uint_eq(d.n, 2);
	t_db_entry(&d, 0, "0A", 3, "\0\0\0\0\0\0\0\1\1", 9);
	t_db_entry(&d, 1, "~K", 3, "\0\0\0\0\0\0\0\2\0", 9);
	t_db_read(txn, "supp", &d); /* key\0 -> be32(shard) || entry */
	ck_assert_uint_eq(d.n, 1);
	t_db_entry(&d, 0, "~K", 3, "\0\0\0\2e", 5);
	t_db_read(txn, "tomb", &d); /* qid\0 -> empty */
	ck_assert_uint_eq(d.n, 1);
	memcpy(tk, tq, sizeof(tq));
	t_db_entry(&d, 0, tk, QID_LEN + 1, NULL, 0);
	/* counts be32(shard) -> be64 messages, queued, deferred, held */
	t_db_read(txn, "counts", &d);
	ck_assert_uint_eq(d.n, 1);
	t_db_entry(&d, 0, "\0\0\0\2", 4,
		   "\0\0\0\0\0\0\0\1" "\0\0\0\0\0\0\0\0"
		   "\0\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0", 32);
	/* meta: journal_seq be64; our "k"; queue_counts be32(version 1) ||
	 * be64(the txn id that wrote it) */
	t_db_read(txn, "meta", &d);
	ck_assert_uint_eq(d.n, 3);
	t_db_entry(&d, 0, "journal_seq", 11, "\0\0\0\0\0\0\0\2", 8);
	t_db_entry(&d, 1, "k", 1, "v", 1);
	ck_assert_uint_eq(d.val[2].mv_size, 12);
	t_db_entry(&d, 2, "queue_counts", 12, d.val[2].mv_data, 12);
	ck_assert_mem_eq(d.val[2].mv_data, "\0\0\0\1", 4);
	v = 0;
	for (int i = 4; i < 12; i++)
		v = v << 8 | ((unsigned char *)d.val[2].mv_data)[i];
	ck_assert_uint_eq(v, mdb_txn_id(txn)); /* our commit's id */
	mdb_txn_abort(txn);
	mdb_env_close(env);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("queue");
	TCase *tc_slow = tcase_create("durability");
	TCase *tc_tomb = tcase_create("tombstones");
	TCase *tc_layout = tcase_create("layout");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_test(tc, test_put_then_get_returns_meta_and_body);
	tcase_add_test(tc, test_put_empty_meta_and_body);
	tcase_add_test(tc, test_put_twice_replaces);
	tcase_add_test(tc, test_del_removes_msg_body_and_shard_entry);
	tcase_add_test(tc, test_msg_foreach_walks_in_qid_order);
	tcase_add_test(tc, test_msg_foreach_returns_callback_stop_value);
	tcase_add_test(tc, test_walks_of_empty_store_see_nothing);
	tcase_add_test(tc, test_shard_foreach_sees_only_its_shard);
	tcase_add_test(tc, test_put_with_new_shard_moves_index_entry);
	tcase_add_test(tc, test_set_meta_keeps_body_and_shard);
	tcase_add_test(tc, test_due_foreach_order_cutoff_and_max);
	tcase_add_test(tc, test_due_foreach_from_a_key);
	tcase_add_test(tc, test_due_del_removes_entry_and_ignores_missing);
	tcase_add_test(tc, test_due_first_empty_is_enoent);
	tcase_add_test(tc, test_meta_put_get_and_missing);
	tcase_add_test(tc, test_abort_discards_writes);
	tcase_add_test(tc, test_data_survives_close_and_reopen);
	tcase_add_test(tc, test_open_missing_dir_fails);
	tcase_add_test(tc, test_invalid_qid_is_einval);
	tcase_add_test(tc, test_read_only_txn_cannot_write);
	tcase_add_test(tc, test_read_txns_overlap_each_other_and_the_writer);
	suite_add_tcase(s, tc);

	/* fsync per commit and 10 MB bodies: slower disks need time */
	tcase_add_checked_fixture(tc_slow, t_setup, t_teardown);
	tcase_set_timeout(tc_slow, 60);
	tcase_add_test(tc_slow, test_commit_survives_sigkill_after_return);
	tcase_add_test(tc_slow,
		       test_map_full_is_storage_full_and_store_stays_usable);
	tcase_add_test(tc_slow, test_10mb_body_round_trips);
	tcase_add_test(tc_slow, test_release_pages_drops_read_pages_from_rss);
	suite_add_tcase(s, tc_slow);

	tcase_add_checked_fixture(tc_tomb, t_setup, t_teardown);
	tcase_add_test(tc_tomb,
		       test_retire_removes_message_and_keeps_a_tombstone);
	tcase_add_test(tc_tomb, test_del_leaves_no_tombstone);
	tcase_add_test(tc_tomb,
		       test_tomb_trim_drops_expired_oldest_first_bounded);
	tcase_add_test(tc_tomb,
		       test_retire_trims_expired_tombstones_on_the_way);
	tcase_add_test(tc_tomb, test_open_adds_tombstones_to_an_older_queue);
	suite_add_tcase(s, tc_tomb);

	tcase_add_checked_fixture(tc_layout, t_setup, t_teardown);
	tcase_add_test(tc_layout,
		       test_layout_of_every_database_is_the_documented_bytes);
	suite_add_tcase(s, tc_layout);
	return s;
}

CHECK_MAIN(store_suite)
