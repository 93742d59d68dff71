/* Check suite for the replication journal in node/store/store_journal.c
 * (which changes are noted, one entry per qid, its body flag, trim, the
 * seq counter across a reopen and an abort) and for the map handover
 * helpers of lib/shardmap.c (shardmap_newer, shardmap_swap). Each test gets a fresh mkdtemp()
 * directory, removed in teardown. Shards 1 and 3 of 8 are journaled. */
#include "node/store/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (64ull << 20)
#define T_SEEN_MAX 16
#define T_ON 1	/* journaled shards */
#define T_ON2 3
#define T_OFF 2 /* not journaled */

static char t_dir[64];
static struct store *t_st;

/* What a journal walk saw, in order. */
struct t_seen {
	size_t n;
	int stop_after; /* return 7 after this many; 0: never */
	uint64_t seq[T_SEEN_MAX];
	char qid[T_SEEN_MAX][QID_MAX];
	bool body[T_SEEN_MAX];
	uint64_t noted[T_SEEN_MAX];
};

static void
t_setup(void)
{
	log_init("test_journal", LOG_LVL_WARN);
	check_mkdtemp(t_dir, sizeof(t_dir), "journal");
	t_st = NULL;
}

static void
t_teardown(void)
{
	store_close(t_st);
	t_st = NULL;
	check_rmtree(t_dir);
}

/* Open the store and journal shards 1 and 3 of 8. */
static void
t_open(void)
{
	static const uint8_t on[8] = { [T_ON] = 1, [T_ON2] = 1 };

	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	store_journal_shards(t_st, on, 8);
}

static struct store_txn *
t_begin(void)
{
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	return t;
}

/* Commit t and return the last seq it gave out. */
static uint64_t
t_commit(struct store_txn *t)
{
	uint64_t seq = store_txn_journal_seq(t);

	ck_assert_int_eq(store_txn_commit(t), 0);
	return seq;
}

/* Each in its own transaction; returns the transaction's journal seq. */
static uint64_t
t_put(const char *qid, uint32_t shard)
{
	struct store_txn *t = t_begin();

	ck_assert_int_eq(store_msg_put(t, qid, shard, "m", 1, "body", 4), 0);
	return t_commit(t);
}

static uint64_t
t_set_meta(const char *qid)
{
	struct store_txn *t = t_begin();

	ck_assert_int_eq(store_msg_set_meta(t, qid, "m2", 2), 0);
	return t_commit(t);
}

static uint64_t
t_del(const char *qid, uint32_t shard)
{
	struct store_txn *t = t_begin();

	ck_assert_int_eq(store_msg_del(t, qid, shard), 0);
	return t_commit(t);
}

static void
t_trim(uint64_t upto, size_t max, int dropped)
{
	struct store_txn *t = t_begin();

	ck_assert_int_eq(store_journal_trim(t, upto, max), dropped);
	t_commit(t);
}

static int
t_see(uint64_t seq, const char *qid, bool body, uint64_t noted, void *arg)
{
	struct t_seen *s = arg;

	ck_assert_uint_lt(s->n, T_SEEN_MAX);
	s->seq[s->n] = seq;
	snprintf(s->qid[s->n], QID_MAX, "%s", qid);
	s->body[s->n] = body;
	s->noted[s->n] = noted;
	s->n++;
	return s->stop_after != 0 && (int)s->n == s->stop_after ? 7 : 0;
}

static int
t_walk(uint64_t after, size_t max, struct t_seen *s)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = store_journal_foreach(t, after, max, t_see, s);
	store_txn_abort(t);
	return rc;
}

/* Assert entry i of a walk. */
static void
t_entry(const struct t_seen *s, size_t i, uint64_t seq, const char *qid,
	bool body)
{
	ck_assert_uint_lt(i, s->n);
	ck_assert_uint_eq(s->seq[i], seq);
	ck_assert_str_eq(s->qid[i], qid);
	ck_assert_int_eq(s->body[i], body);
}

/* Entry count and newest seq (0 when store_journal_last says -ENOENT). */
static void
t_expect(uint64_t count, uint64_t last)
{
	struct store_txn *t;
	uint64_t seq = 12345;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_uint_eq(store_journal_count(t), count);
	if (last == 0) {
		ck_assert_int_eq(store_journal_last(t, &seq), -ENOENT);
		ck_assert_uint_eq(seq, 12345); /* untouched */
	} else {
		ck_assert_int_eq(store_journal_last(t, &seq), 0);
		ck_assert_uint_eq(seq, last);
	}
	store_txn_abort(t);
}

/* ---- which changes are journaled ------------------------------------ */

START_TEST(test_journal_only_journaled_shards)
{
	struct t_seen s = { 0 };
	uint64_t t0 = (uint64_t)time(NULL), t1;

	t_open();
	ck_assert_uint_eq(t_put("0A", T_ON), 1);
	ck_assert_uint_eq(t_put("0B", T_OFF), 0);
	ck_assert_uint_eq(t_put("0C", T_ON2), 2);
	ck_assert_uint_eq(t_put("0D", 0), 0);
	ck_assert_uint_eq(t_put("0E", 100), 0); /* beyond the on[] array */
	t1 = (uint64_t)time(NULL);
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 1, "0A", true);
	t_entry(&s, 1, 2, "0C", true);
	ck_assert_uint_ge(s.noted[0], t0);
	ck_assert_uint_le(s.noted[1], t1);
	t_expect(2, 2);
	ck_assert_uint_eq(store_journal_seq(t_st), 2);
}
END_TEST

START_TEST(test_journal_off_shard_changes_add_nothing)
{
	t_open();
	ck_assert_uint_eq(t_put("0A", T_OFF), 0);
	ck_assert_uint_eq(t_set_meta("0A"), 0);
	ck_assert_uint_eq(t_del("0A", T_OFF), 0);
	t_expect(0, 0);
	ck_assert_uint_eq(store_journal_seq(t_st), 0);
}
END_TEST

START_TEST(test_journal_shards_are_copied_and_replaced)
{
	uint8_t on[4] = { 0, 0, 1, 0 };

	t_open();
	store_journal_shards(t_st, on, 4);
	on[2] = 0; /* the store keeps its own copy */
	on[1] = 1;
	ck_assert_uint_eq(t_put("0A", 2), 1);
	ck_assert_uint_eq(t_put("0B", 1), 0);
	ck_assert_uint_eq(t_put("0C", T_ON2), 0); /* no longer journaled */
	store_journal_shards(t_st, on, 4);
	ck_assert_uint_eq(t_put("0D", 2), 0);
	ck_assert_uint_eq(t_put("0E", 1), 2);
	t_expect(2, 2);
}
END_TEST

START_TEST(test_journal_txn_seq_is_last_given)
{
	struct store_txn *t;

	t_open();
	t = t_begin();
	ck_assert_uint_eq(store_txn_journal_seq(t), 0);
	ck_assert_int_eq(store_msg_put(t, "0A", T_ON, "m", 1, "b", 1), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 1);
	ck_assert_int_eq(store_msg_put(t, "0B", T_OFF, "m", 1, "b", 1), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 1);
	ck_assert_int_eq(store_msg_put(t, "0C", T_ON2, "m", 1, "b", 1), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 2);
	ck_assert_uint_eq(t_commit(t), 2);
	/* a later txn that changes only unjournaled messages gives none */
	t = t_begin();
	ck_assert_int_eq(store_msg_set_meta(t, "0B", "x", 1), 0);
	ck_assert_uint_eq(t_commit(t), 0);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 0);
	store_txn_abort(t);
}
END_TEST

/* ---- one entry per qid ------------------------------------------------ */

START_TEST(test_journal_second_change_replaces_entry)
{
	struct t_seen s = { 0 };

	t_open();
	ck_assert_uint_eq(t_put("0A", T_ON), 1);
	ck_assert_uint_eq(t_put("0B", T_ON), 2);
	ck_assert_uint_eq(t_set_meta("0A"), 3); /* keeps put's body flag */
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 2, "0B", true);
	t_entry(&s, 1, 3, "0A", true);
	t_expect(2, 3);

	ck_assert_uint_eq(t_put("0B", T_ON), 4); /* put again */
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 3, "0A", true);
	t_entry(&s, 1, 4, "0B", true);
}
END_TEST

START_TEST(test_journal_del_after_put_gives_one_entry)
{
	struct store_txn *t;
	struct t_seen s = { 0 };
	const void *p = NULL;
	size_t len = 99;

	t_open();
	ck_assert_uint_eq(t_put("0A", T_ON), 1);
	ck_assert_uint_eq(t_del("0A", T_ON), 2);
	/* both in one txn: the same, one entry */
	t = t_begin();
	ck_assert_int_eq(store_msg_put(t, "0B", T_ON2, "m", 1, "b", 1), 0);
	ck_assert_int_eq(store_msg_del(t, "0B", T_ON2), 0);
	ck_assert_uint_eq(t_commit(t), 4);

	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 2, "0A", true); /* the flag of the put stays */
	t_entry(&s, 1, 4, "0B", true);
	t_expect(2, 4);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_msg_get_meta(t, "0A", &p, &len), -ENOENT);
	ck_assert_int_eq(store_msg_get_meta(t, "0B", &p, &len), -ENOENT);
	ck_assert_ptr_null(p);
	store_txn_abort(t);
}
END_TEST

/* ---- walking and trimming ------------------------------------------- */

START_TEST(test_journal_foreach_after_max_and_stop)
{
	struct t_seen s = { 0 };
	struct t_seen stop = { .stop_after = 2 };

	t_open();
	for (int i = 0; i < 5; i++) {
		char qid[3] = { '0', (char)('A' + i), '\0' };

		ck_assert_uint_eq(t_put(qid, T_ON), (uint64_t)i + 1);
	}
	ck_assert_int_eq(t_walk(2, 2, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 3, "0C", true);
	t_entry(&s, 1, 4, "0D", true);
	ck_assert_int_eq(t_walk(0, 100, &stop), 7);
	ck_assert_uint_eq(stop.n, 2);
	t_entry(&stop, 1, 2, "0B", true);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk(5, 100, &s), 0);
	ck_assert_int_eq(t_walk(0, 0, &s), 0);
	ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(test_journal_trim_upto_and_max)
{
	struct t_seen s = { 0 };

	t_open();
	t_put("0A", T_ON);
	t_put("0B", T_ON);
	t_put("0C", T_ON2);
	t_put("0D", T_ON);
	t_trim(0, 100, 0); /* nothing is <= 0 */
	t_expect(4, 4);
	t_trim(2, 100, 2);
	t_expect(2, 4);
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 3, "0C", true);
	t_entry(&s, 1, 4, "0D", true);
	t_trim(4, 1, 1); /* max 1: only seq 3 goes; more may be left */
	t_expect(1, 4);
	t_trim(UINT64_MAX, 100, 1);
	t_expect(0, 0);
	ck_assert_uint_eq(store_journal_seq(t_st), 4); /* the counter stays */
}
END_TEST

START_TEST(test_journal_change_after_trim_has_no_body)
{
	struct t_seen s = { 0 };

	t_open();
	t_put("0A", T_ON);
	t_put("0B", T_ON);
	t_trim(2, 100, 2);
	t_expect(0, 0);
	ck_assert_uint_eq(t_set_meta("0A"), 3);
	ck_assert_uint_eq(t_del("0B", T_ON), 4);
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 3, "0A", false);
	t_entry(&s, 1, 4, "0B", false);
	/* a second set_meta replaces it and stays without body */
	ck_assert_uint_eq(t_set_meta("0A"), 5);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 2);
	t_entry(&s, 0, 4, "0B", false);
	t_entry(&s, 1, 5, "0A", false);
}
END_TEST

START_TEST(test_journal_touch_sets_body)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open();
	t_put("0A", T_ON);
	t_put("0B", T_OFF);
	t_trim(1, 100, 1);
	ck_assert_uint_eq(t_set_meta("0A"), 2); /* body=false entry */
	t = t_begin();
	ck_assert_int_eq(store_journal_touch(t, "0A", T_ON), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 3);
	ck_assert_int_eq(store_journal_touch(t, "0B", T_OFF), 0);
	ck_assert_uint_eq(t_commit(t), 3);
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	t_entry(&s, 0, 3, "0A", true);
	/* touch again: a new seq, still one entry */
	t = t_begin();
	ck_assert_int_eq(store_journal_touch(t, "0A", T_ON), 0);
	ck_assert_uint_eq(t_commit(t), 4);
	t_expect(1, 4);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_journal_touch(t, "0A", T_ON), -EACCES);
	store_txn_abort(t);
	t_expect(1, 4);
}
END_TEST

/* store_journal_seq_of: a qid's entry and whether it carries the body,
 * -ENOENT once acknowledged or when never journaled, out-parameters
 * untouched then; a bad qid is -EINVAL. */
static int
t_seq_of(const char *qid, uint64_t *seq, bool *body)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = store_journal_seq_of(t, qid, seq, body);
	store_txn_abort(t);
	return rc;
}

START_TEST(test_journal_seq_of_names_entry_and_body)
{
	uint64_t seq = 99;
	bool body = false;

	t_open();
	t_put("0A", T_ON);
	t_put("0B", T_OFF);
	ck_assert_int_eq(t_seq_of("0A", &seq, &body), 0);
	ck_assert_uint_eq(seq, 1);
	ck_assert(body);
	seq = 99;
	ck_assert_int_eq(t_seq_of("0B", &seq, &body), -ENOENT);
	ck_assert_uint_eq(seq, 99);
	ck_assert_int_eq(t_seq_of("", &seq, &body), -EINVAL);
	/* a change after the peer has the message: no body */
	t_trim(1, 100, 1);
	ck_assert_int_eq(t_seq_of("0A", &seq, &body), -ENOENT);
	ck_assert_uint_eq(t_set_meta("0A"), 2);
	ck_assert_int_eq(t_seq_of("0A", &seq, &body), 0);
	ck_assert_uint_eq(seq, 2);
	ck_assert(!body);
	/* a change before the peer has it keeps the body flag */
	t_put("0C", T_ON2);
	ck_assert_uint_eq(t_set_meta("0C"), 4);
	ck_assert_int_eq(t_seq_of("0C", &seq, &body), 0);
	ck_assert_uint_eq(seq, 4);
	ck_assert(body);
}
END_TEST

/* ---- durability of the counter, abort -------------------------------- */

START_TEST(test_journal_seq_survives_reopen)
{
	struct t_seen s = { 0 };

	t_open();
	ck_assert_uint_eq(store_journal_seq(t_st), 0);
	t_put("0A", T_ON);
	t_put("0B", T_ON);
	t_put("0C", T_ON2);
	t_trim(2, 100, 2);
	ck_assert_uint_eq(store_journal_seq(t_st), 3);
	store_close(t_st);
	t_st = NULL;
	t_open();
	ck_assert_uint_eq(store_journal_seq(t_st), 3);
	t_expect(1, 3);
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	t_entry(&s, 0, 3, "0C", true);
	ck_assert_uint_eq(t_put("0D", T_ON), 4);

	/* even with the journal trimmed empty */
	t_trim(UINT64_MAX, 100, 2);
	store_close(t_st);
	t_st = NULL;
	t_open();
	t_expect(0, 0);
	ck_assert_uint_eq(store_journal_seq(t_st), 4);
	ck_assert_uint_eq(t_put("0E", T_ON), 5);
}
END_TEST

START_TEST(test_journal_abort_leaves_no_entries)
{
	struct store_txn *t;
	struct t_seen s = { 0 };

	t_open();
	t = t_begin();
	ck_assert_int_eq(store_msg_put(t, "0A", T_ON, "m", 1, "b", 1), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 1);
	store_txn_abort(t);
	t_expect(0, 0);

	ck_assert_uint_eq(t_put("0B", T_ON), 2); /* seq 1 was given out */
	t = t_begin();
	ck_assert_int_eq(store_msg_set_meta(t, "0B", "x", 1), 0);
	ck_assert_int_eq(store_journal_touch(t, "0C", T_ON2), 0);
	ck_assert_uint_eq(store_txn_journal_seq(t), 4);
	store_txn_abort(t);
	/* the older entry of 0B is still there, untouched */
	ck_assert_int_eq(t_walk(0, 100, &s), 0);
	ck_assert_uint_eq(s.n, 1);
	t_entry(&s, 0, 2, "0B", true);
	t_expect(1, 2);
}
END_TEST

/* ---- shardmap_newer / shardmap_swap ----------------------------------- */

static char id_n1[] = "n1", id_n2[] = "n2", id_n3[] = "n3";
static char ep_n1[] = "tcp://127.0.0.1:7101";
static char ep_n2[] = "tcp://127.0.0.1:7102";
static char ep_n3[] = "tcp://127.0.0.1:7103";

/* n1 <-> n2 peers, n3 alone; 8 shards: 0,3,6 n1->n2; 1,4,7 n2->n1;
 * 2,5 on n3 without replica. */
static Shoal__ShardMap *
t_map(void)
{
	static struct cfg_node nodes[3] = {
		{ .id = id_n1, .endpoint = ep_n1, .peer = id_n2 },
		{ .id = id_n2, .endpoint = ep_n2, .peer = id_n1 },
		{ .id = id_n3, .endpoint = ep_n3, .peer = NULL },
	};
	struct config cfg;
	Shoal__ShardMap *m;

	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster.shards = 8;
	cfg.nodes = nodes;
	cfg.n_nodes = 3;
	m = shardmap_derive(&cfg);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->epoch, 1);
	ck_assert_str_eq(m->author, "");
	return m;
}

static void
t_shard_is(const Shoal__ShardMap *m, uint32_t s, const char *primary,
	   const char *replica)
{
	ck_assert_str_eq(m->shards[s]->primary, primary);
	ck_assert_str_eq(m->shards[s]->replica, replica);
}

START_TEST(test_shardmap_newer_epoch_and_author)
{
	Shoal__ShardMap *m = t_map();
	size_t moved;
	Shoal__ShardMap *by_n1 = shardmap_swap(m, "n1", "n2", "n1", NULL, &moved);
	Shoal__ShardMap *by_n2 = shardmap_swap(m, "n1", "n2", "n2", NULL, &moved);
	Shoal__ShardMap *e3 = shardmap_swap(by_n1, "n2", "n1", "n3", NULL, &moved);

	ck_assert_uint_eq(by_n1->epoch, 2);
	ck_assert_uint_eq(by_n2->epoch, 2);
	ck_assert_uint_eq(e3->epoch, 3);
	ck_assert(shardmap_newer(m, NULL));
	ck_assert(shardmap_newer(by_n2, m)); /* higher epoch wins */
	ck_assert(!shardmap_newer(m, by_n2)); /* lower loses */
	ck_assert(shardmap_newer(by_n1, by_n2)); /* "n1" sorts first */
	ck_assert(!shardmap_newer(by_n2, by_n1));
	ck_assert(!shardmap_newer(by_n1, by_n1)); /* same map: not newer */
	ck_assert(shardmap_newer(e3, by_n1)); /* epoch beats author */
	ck_assert(!shardmap_newer(by_n1, e3));
	shardmap_free(e3);
	shardmap_free(by_n2);
	shardmap_free(by_n1);
	shardmap_free(m);
}
END_TEST

START_TEST(test_shardmap_swap_moves_matching_shards)
{
	Shoal__ShardMap *m = t_map();
	Shoal__ShardMap *ref = t_map();
	Shoal__ShardMap *w, *back, *w2;
	size_t moved = 99, len = 0;
	void *p;

	w = shardmap_swap(m, "n1", "n2", "n2", NULL, &moved);
	ck_assert_ptr_nonnull(w);
	ck_assert_uint_eq(moved, 3);
	ck_assert_uint_eq(w->epoch, 2);
	ck_assert_str_eq(w->author, "n2");
	ck_assert_uint_eq(w->n_shards, 8);
	ck_assert_uint_eq(w->n_nodes, 3);
	for (uint32_t s = 0; s < 8; s++) {
		if (s % 3 == 2)
			t_shard_is(w, s, "n3", ""); /* untouched */
		else
			t_shard_is(w, s, "n2", "n1"); /* 0,3,6 swapped */
	}
	/* the input map is unchanged */
	ck_assert_uint_eq(m->epoch, 1);
	ck_assert_str_eq(m->author, "");
	for (uint32_t s = 0; s < 8; s++)
		t_shard_is(m, s, ref->shards[s]->primary,
			   ref->shards[s]->replica);
	/* a peer accepts it, author included */
	p = shardmap_pack(w, &len);
	back = shardmap_unpack(p, len, 8);
	free(p);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->epoch, 2);
	ck_assert_str_eq(back->author, "n2");
	t_shard_is(back, 0, "n2", "n1");
	shardmap_free(back);

	/* now all six n1/n2 shards are n2 -> n1: all move back */
	w2 = shardmap_swap(w, "n2", "n1", "n1", NULL, &moved);
	ck_assert_uint_eq(moved, 6);
	ck_assert_uint_eq(w2->epoch, 3);
	ck_assert_str_eq(w2->author, "n1");
	for (uint32_t s = 0; s < 8; s++)
		t_shard_is(w2, s, s % 3 == 2 ? "n3" : "n1",
			   s % 3 == 2 ? "" : "n2");
	shardmap_free(w2);
	shardmap_free(w);
	shardmap_free(ref);
	shardmap_free(m);
}
END_TEST

/* Failback: with the first map as home, only the shards that were n1's
 * there go back to n1, not those n2 had of its own. */
START_TEST(test_shardmap_swap_home_filters_failback)
{
	Shoal__ShardMap *m = t_map();
	Shoal__ShardMap *all_n2, *home_n2, *back;
	size_t moved = 99;

	/* n2 takes n1's shards (0,3,6): with its own (1,4,7), every n1/n2
	 * shard now reads n2 -> n1 */
	all_n2 = shardmap_swap(m, "n1", "n2", "n2", NULL, &moved);
	ck_assert_uint_eq(moved, 3);
	home_n2 = shardmap_swap(all_n2, "n2", "n1", "n2", m, &moved);
	/* home says 0,3,6 belong to n1: exactly those return */
	ck_assert_uint_eq(moved, 3);
	for (uint32_t s = 0; s < 8; s++) {
		if (s % 3 == 0)
			t_shard_is(home_n2, s, "n1", "n2");
		else if (s % 3 == 1)
			t_shard_is(home_n2, s, "n2", "n1");
		else
			t_shard_is(home_n2, s, "n3", "");
	}
	/* nothing of n2's own goes to n1 with home */
	back = shardmap_swap(home_n2, "n2", "n1", "n1", m, &moved);
	ck_assert_uint_eq(moved, 0);
	shardmap_free(back);
	shardmap_free(home_n2);
	shardmap_free(all_n2);
	shardmap_free(m);
}
END_TEST

/* No shard has that primary/replica pair: nothing moves, but it is still
 * a new epoch by the author. */
START_TEST(test_shardmap_swap_without_match)
{
	Shoal__ShardMap *m = t_map();
	Shoal__ShardMap *w;
	size_t moved = 99;

	w = shardmap_swap(m, "n1", "n3", "n3", NULL, &moved);
	ck_assert_uint_eq(moved, 0);
	ck_assert_uint_eq(w->epoch, 2);
	ck_assert_str_eq(w->author, "n3");
	for (uint32_t s = 0; s < 8; s++)
		t_shard_is(w, s, m->shards[s]->primary, m->shards[s]->replica);
	shardmap_free(w);
	shardmap_free(m);
}
END_TEST

static Suite *
journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc;

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_journal_only_journaled_shards);
	tcase_add_test(tc, test_journal_off_shard_changes_add_nothing);
	tcase_add_test(tc, test_journal_shards_are_copied_and_replaced);
	tcase_add_test(tc, test_journal_txn_seq_is_last_given);
	tcase_add_test(tc, test_journal_second_change_replaces_entry);
	tcase_add_test(tc, test_journal_del_after_put_gives_one_entry);
	tcase_add_test(tc, test_journal_foreach_after_max_and_stop);
	tcase_add_test(tc, test_journal_trim_upto_and_max);
	tcase_add_test(tc, test_journal_change_after_trim_has_no_body);
	tcase_add_test(tc, test_journal_touch_sets_body);
	tcase_add_test(tc, test_journal_seq_of_names_entry_and_body);
	tcase_add_test(tc, test_journal_seq_survives_reopen);
	tcase_add_test(tc, test_journal_abort_leaves_no_entries);
	suite_add_tcase(s, tc);

	tc = tcase_create("shardmap");
	tcase_add_test(tc, test_shardmap_newer_epoch_and_author);
	tcase_add_test(tc, test_shardmap_swap_moves_matching_shards);
	tcase_add_test(tc, test_shardmap_swap_home_filters_failback);
	tcase_add_test(tc, test_shardmap_swap_without_match);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(journal_suite)
