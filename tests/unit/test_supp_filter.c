/* Check suite for the routers' suppression filter: the bit positions and
 * tests of lib/suppress_key.c, and the node's filter
 * (node/suppress/suppress_filter.c): not offered until its walk of the
 * store ends, every stored key in it afterwards, keys noted meanwhile
 * too, the bits after a gen while its ring holds them and the whole
 * filter otherwise. The store gets a fresh mkdtemp() directory. */
#include "node/suppress/suppress_filter.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/suppress_key.h"
#include "node/store/store.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (256ull << 20)
#define T_SHARDS 64
#define T_STORED 20000 /* more than two slices of the walk */
#define T_LOG2_LOW 16  /* the node's filter (suppress_filter.c): 8 KiB */
#define T_LOG2_MAX 23  /* ... to 1 MiB */

static void
t_key(const char *fmt, int i, char key[SUPPRESS_KEY_MAX])
{
	char addr[64];

	snprintf(addr, sizeof(addr), fmt, i);
	suppress_key(addr, T_SHARDS, SUPPRESS_KEY_TAG, key);
}

/* ---- positions ---------------------------------------------------------- */

START_TEST(test_positions_in_range_and_stable)
{
	uint32_t a[SUPPRESS_FILTER_K], b[SUPPRESS_FILTER_K];
	char key[SUPPRESS_KEY_MAX], other[SUPPRESS_KEY_MAX];
	uint8_t *bits = calloc(1u << (12 - 3), 1);
	bool differs = false;

	t_key("a%d@x.test", 1, key);
	t_key("a%d@x.test", 2, other);
	suppress_filter_pos(key, 12, a);
	suppress_filter_pos(key, 12, b);
	ck_assert_mem_eq(a, b, sizeof(a));
	suppress_filter_pos(other, 12, b);
	for (int i = 0; i < SUPPRESS_FILTER_K; i++) {
		ck_assert_uint_lt(a[i], 1u << 12);
		differs |= a[i] != b[i];
	}
	ck_assert(differs);
	ck_assert(!suppress_filter_has(bits, 12, key));
	for (int i = 0; i < SUPPRESS_FILTER_K; i++)
		suppress_filter_set(bits, a[i]);
	ck_assert(suppress_filter_has(bits, 12, key));
	ck_assert(!suppress_filter_set(bits, a[0]));	/* set already */
	free(bits);
}
END_TEST

/* ---- the node's filter -------------------------------------------------- */

/* The size the node picks for n entries: 32 bits each, within bounds. */
static uint32_t
t_log2_for(uint64_t n)
{
	uint32_t l = T_LOG2_LOW;

	while (l < T_LOG2_MAX && ((uint64_t)1 << l) < n * 32)
		l++;
	return l;
}

static char t_dir[64];
static struct store *t_st;
static struct event_base *t_base;
static uint8_t *t_bits; /* the last whole filter answered */

static void
t_setup(void)
{
	log_init("test_supp_filter", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "suppfilter");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	t_base = event_base_new();
}

static void
t_teardown(void)
{
	event_base_free(t_base);
	free(t_bits);
	t_bits = NULL;
	store_close(t_st);
	check_rmtree(t_dir);
}

static void
t_store(const char *fmt, int n)
{
	struct store_txn *t;
	char key[SUPPRESS_KEY_MAX];
	uint8_t v = 1;

	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	for (int i = 0; i < n; i++) {
		uint32_t shard;

		t_key(fmt, i, key);
		ck_assert(suppress_key_parse(key, &shard));
		ck_assert_int_eq(store_supp_put(t, key, shard, &v, 1), 0);
	}
	ck_assert_int_eq(store_txn_commit(t), 0);
}

/* Answer q; a whole filter (its frame) lands in t_bits, as
 * out->bits.data. */
static bool
t_answer(struct supp_filter *f, const Shoal__SuppFilterRequest *q,
	 Shoal__SuppFilter *out)
{
	zmq_msg_t frame;

	*out = (Shoal__SuppFilter)SHOAL__SUPP_FILTER__INIT;
	if (!supp_filter_answer(f, q, out, &frame))
		return false;
	if (out->bits_in_frame) {
		free(t_bits);
		t_bits = malloc(zmq_msg_size(&frame));
		memcpy(t_bits, zmq_msg_data(&frame), zmq_msg_size(&frame));
		out->bits.data = t_bits;
		out->bits.len = zmq_msg_size(&frame);
		zmq_msg_close(&frame);
	}
	return true;
}

/* The whole filter as a router would fetch it first. */
static bool
t_fetch(struct supp_filter *f, Shoal__SuppFilter *out)
{
	Shoal__SuppFilterRequest q = SHOAL__SUPP_FILTER_REQUEST__INIT;

	return t_answer(f, &q, out);
}

/* Run the loop until the walk ends (bounded: a pass walks 8192 keys);
 * the passes it took. */
static int
t_walk(struct supp_filter *f, Shoal__SuppFilter *sf)
{
	int passes = 0;

	while (!t_fetch(f, sf)) {
		ck_assert_int_lt(passes++, 100);
		event_base_loop(t_base, EVLOOP_ONCE);
	}
	return passes;
}

START_TEST(test_walk_offers_every_stored_key)
{
	Shoal__SuppFilter sf;
	struct supp_filter *f;
	char key[SUPPRESS_KEY_MAX];
	int fp = 0;
	uint64_t t0;

	t_store("s%d@x.test", T_STORED);
	f = supp_filter_new(t_base, t_st);
	ck_assert(!t_fetch(f, &sf));	/* not offered before the walk */
	t_key("during%d@x.test", 0, key);
	supp_filter_note(f, key);	/* written while it walks */
	t0 = clock_mono_ms();
	ck_assert_int_ge(t_walk(f, &sf), T_STORED / 8192); /* in slices */
	fprintf(stderr, "walk of %d keys: %llu ms\n", T_STORED,
		(unsigned long long)(clock_mono_ms() - t0));
	ck_assert_uint_eq(sf.log2_bits, t_log2_for(T_STORED)); /* 2^20 */
	ck_assert_uint_eq(sf.bits.len, 1u << (sf.log2_bits - 3));
	ck_assert_uint_ne(sf.filter_id, 0);
	ck_assert_uint_gt(sf.gen, T_STORED);
	for (int i = 0; i < T_STORED; i++) {
		t_key("s%d@x.test", i, key);
		ck_assert_msg(suppress_filter_has(sf.bits.data, sf.log2_bits,
						  key),
			      "stored key %d", i);
	}
	t_key("during%d@x.test", 0, key);
	ck_assert(suppress_filter_has(sf.bits.data, sf.log2_bits, key));
	for (int i = 0; i < 10000; i++) {
		t_key("never%d@x.test", i, key);
		fp += suppress_filter_has(sf.bits.data, sf.log2_bits, key);
	}
	ck_assert_int_lt(fp, 10);	/* 1 in 35,000 at 20,000 of 2^20 */
	/* other tags are not entries */
	key[0] = SUPPRESS_PENDING_TAG;
	{
		uint64_t gen = sf.gen;

		supp_filter_note(f, key);
		ck_assert(t_fetch(f, &sf));
		ck_assert_uint_eq(sf.gen, gen);
	}
	supp_filter_free(f);
}
END_TEST

START_TEST(test_answers_the_bits_after_a_gen_or_all)
{
	Shoal__SuppFilterRequest q = SHOAL__SUPP_FILTER_REQUEST__INIT;
	Shoal__SuppFilter sf, d;
	struct supp_filter *f;
	char key[SUPPRESS_KEY_MAX];
	uint8_t *copy;
	uint64_t gen;

	/* big enough that the 20,100 keys noted below do not make it grow */
	t_store("s%d@x.test", T_STORED);
	f = supp_filter_new(t_base, t_st);
	t_walk(f, &sf);
	gen = sf.gen;
	copy = malloc(sf.bits.len);
	memcpy(copy, sf.bits.data, sf.bits.len);
	for (int i = 0; i < 100; i++) {
		t_key("new%d@x.test", i, key);
		supp_filter_note(f, key);
		supp_filter_note(f, key);	/* twice: nothing more */
	}
	/* the bits after gen, applied to the copy, make the filter */
	q.filter_id = sf.filter_id;
	q.since_gen = gen;
	ck_assert(t_answer(f, &q, &d));
	ck_assert_uint_eq(d.bits.len, 0);
	ck_assert_uint_eq(d.since_gen, gen);
	ck_assert_uint_eq(d.n_positions, d.gen - gen);
	ck_assert_uint_gt(d.n_positions, 0);
	ck_assert_uint_le(d.n_positions, 100 * SUPPRESS_FILTER_K);
	for (size_t i = 0; i < d.n_positions; i++)
		ck_assert(suppress_filter_set(copy, d.positions[i]));
	for (int i = 0; i < 100; i++) {
		t_key("new%d@x.test", i, key);
		ck_assert(suppress_filter_has(copy, sf.log2_bits, key));
	}
	/* a whole filter now is the same, or (a copy is made at most
	 * every 100 ms) the one before, which says its older gen */
	ck_assert(t_fetch(f, &sf));
	if (sf.gen == d.gen)
		ck_assert_mem_eq(copy, sf.bits.data, sf.bits.len);
	else
		ck_assert_uint_eq(sf.gen, gen);
	free(d.positions);
	/* another filter's id, or a gen the ring no longer holds: all */
	q.filter_id = sf.filter_id + 1;
	ck_assert(t_answer(f, &q, &d));
	ck_assert_uint_eq(d.bits.len, sf.bits.len);
	ck_assert_ptr_null(d.positions);
	q.filter_id = sf.filter_id;
	for (int i = 0; i < 20000; i++) {	/* > 65,536 bits set */
		t_key("more%d@x.test", i, key);
		supp_filter_note(f, key);
	}
	ck_assert(t_answer(f, &q, &d));
	ck_assert_uint_eq(d.bits.len, sf.bits.len);
	ck_assert_uint_eq(d.n_positions, 0);
	/* a gen from the future (a hostile router): all */
	q.since_gen = d.gen + 1;
	ck_assert(t_answer(f, &q, &d));
	ck_assert_uint_eq(d.bits.len, sf.bits.len);
	free(copy);
	supp_filter_free(f);
	supp_filter_note(NULL, key);	/* no filter: nothing */
}
END_TEST

/* A filter past its fill grows 4x: a new one with a new id, offered once
 * it has walked the store again, with every entry in it. */
START_TEST(test_grows_past_its_fill)
{
	Shoal__SuppFilter sf;
	struct supp_filter *f;
	char key[SUPPRESS_KEY_MAX];
	uint64_t id;
	int fp = 0;

	f = supp_filter_new(t_base, t_st); /* an empty list: the least */
	t_walk(f, &sf);
	ck_assert_uint_eq(sf.log2_bits, T_LOG2_LOW);
	ck_assert_uint_eq(sf.bits.len, 8192);
	id = sf.filter_id;
	/* 3,000 entries written (stored and noted, as a write does): 12,000
	 * bits, 17 % of 2^16, not yet past the fill */
	t_store("a%d@x.test", 3000);
	for (int i = 0; i < 3000; i++) {
		t_key("a%d@x.test", i, key);
		supp_filter_note(f, key);
	}
	ck_assert(t_fetch(f, &sf));
	event_base_loop(t_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ck_assert(t_fetch(f, &sf));
	ck_assert_uint_eq(sf.filter_id, id);
	/* 1,500 more: past 22 %; from the next pass a bigger one walks */
	t_store("b%d@x.test", 1500);
	for (int i = 0; i < 1500; i++) {
		t_key("b%d@x.test", i, key);
		supp_filter_note(f, key);
	}
	event_base_loop(t_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	ck_assert(!t_fetch(f, &sf)); /* not offered while it walks */
	t_key("c%d@x.test", 0, key);
	supp_filter_note(f, key);	/* written while it walks */
	t_walk(f, &sf);
	ck_assert_uint_eq(sf.log2_bits, T_LOG2_LOW + 2);
	ck_assert_uint_eq(sf.bits.len, 32768);
	ck_assert_uint_ne(sf.filter_id, id);
	for (int i = 0; i < 3000; i++) {
		t_key("a%d@x.test", i, key);
		ck_assert(suppress_filter_has(sf.bits.data, sf.log2_bits, key));
	}
	for (int i = 0; i < 1500; i++) {
		t_key("b%d@x.test", i, key);
		ck_assert(suppress_filter_has(sf.bits.data, sf.log2_bits, key));
	}
	t_key("c%d@x.test", 0, key);
	ck_assert(suppress_filter_has(sf.bits.data, sf.log2_bits, key));
	for (int i = 0; i < 10000; i++) {
		t_key("never%d@x.test", i, key);
		fp += suppress_filter_has(sf.bits.data, sf.log2_bits, key);
	}
	ck_assert_int_lt(fp, 30);	/* 4,501 keys in 2^18: 1 in 2,000 */
	supp_filter_free(f);
}
END_TEST

static Suite *
supp_filter_suite(void)
{
	Suite *s = suite_create("supp_filter");
	TCase *pure = tcase_create("positions");
	TCase *node = tcase_create("node");

	tcase_add_test(pure, test_positions_in_range_and_stable);
	tcase_add_checked_fixture(node, t_setup, t_teardown);
	tcase_set_timeout(node, 60);
	tcase_add_test(node, test_walk_offers_every_stored_key);
	tcase_add_test(node, test_answers_the_bits_after_a_gen_or_all);
	tcase_add_test(node, test_grows_past_its_fill);
	suite_add_tcase(s, pure);
	suite_add_tcase(s, node);
	return s;
}

CHECK_MAIN(supp_filter_suite)
