/* Check suite for lib/qid.c: queue id shape and order, time round trip,
 * and the FNV-1a 64 shard hash that every router and node must compute
 * alike (values from the FNV reference, http://www.isthe.com/chongo/tech/
 * comp/fnv/, and recomputed here by a separate implementation). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "lib/qid.h"
#include "tests/unit/check_helpers.h"

#define QID_ALPHABET "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define QID_RUN 100000

/* A qid fixed forever: its shard must never change. */
#define QID_FIXED "01HZX3N8Q2K4M7ZX1P9Q0"

/* FNV-1a 64, written from the definition for this test alone. */
static uint64_t
ref_fnv1a64(const char *s)
{
	uint64_t h = 14695981039346656037ull; /* offset basis */

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ull; /* 2^40 + 2^8 + 0xb3 */
	}
	return h;
}

static uint64_t
now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void
gen_init(struct qid_gen *g)
{
	ck_assert_int_eq(qid_gen_init(g), 0);
}

START_TEST(test_qid_init_draws_30_bits)
{
	struct qid_gen g;

	gen_init(&g);
	ck_assert_uint_lt(g.instance, 1u << 30);
	ck_assert_uint_eq(g.seq, 0);
}
END_TEST

START_TEST(test_qid_has_21_alphabet_chars)
{
	struct qid_gen g;
	char q[QID_LEN + 1];

	gen_init(&g);
	for (int i = 0; i < 1000; i++) {
		memset(q, '!', sizeof(q));
		qid_next(&g, q);
		ck_assert_uint_eq(strlen(q), 21);
		ck_assert_uint_eq(strspn(q, QID_ALPHABET), 21);
		ck_assert(qid_valid(q, strlen(q)));
	}
}
END_TEST

START_TEST(test_qid_valid_rejects_bad_input)
{
	char q[QID_LEN + 2];

	ck_assert(qid_valid(QID_FIXED, 21));
	ck_assert(!qid_valid(QID_FIXED, 20));
	ck_assert(!qid_valid(QID_FIXED "0", 22));
	ck_assert(!qid_valid("", 0));
	/* Crockford leaves out I, L, O, U; we take no lower case */
	const char *bad = "ILOUilou!-_ \x80\xff";
	for (const char *b = bad; *b; b++) {
		memcpy(q, QID_FIXED, sizeof(QID_FIXED));
		q[7] = *b;
		ck_assert_msg(!qid_valid(q, 21), "accepted 0x%02x",
			      (unsigned char)*b);
	}
	memcpy(q, QID_FIXED, sizeof(QID_FIXED));
	q[20] = '\0'; /* a NUL inside the counted length */
	ck_assert(!qid_valid(q, 21));
}
END_TEST

START_TEST(test_qid_strictly_increasing_100000)
{
	struct qid_gen g;
	char prev[QID_LEN + 1], q[QID_LEN + 1];

	gen_init(&g);
	qid_next(&g, prev);
	for (int i = 0; i < QID_RUN; i++) {
		qid_next(&g, q);
		ck_assert_msg(strcmp(prev, q) < 0, "%s then %s", prev, q);
		memcpy(prev, q, sizeof(q));
	}
}
END_TEST

/* The clock stands still (or went back): every qid falls in the same
 * microsecond, and the sequence keeps them apart and in order. */
START_TEST(test_qid_increasing_within_one_microsecond)
{
	struct qid_gen g;
	char prev[QID_LEN + 1], q[QID_LEN + 1];
	uint64_t frozen = now_us() + 3600ull * 1000000u;

	gen_init(&g);
	g.last_us = frozen;
	qid_next(&g, prev);
	for (int i = 0; i < QID_RUN; i++) {
		qid_next(&g, q);
		ck_assert_msg(strcmp(prev, q) < 0, "%s then %s", prev, q);
		ck_assert_uint_eq(qid_time_us(q), frozen);
		memcpy(prev, q, sizeof(q));
	}
}
END_TEST

/* 2^20 qids in one microsecond: the time moves on by one. */
START_TEST(test_qid_sequence_wrap_moves_time)
{
	struct qid_gen g;
	char a[QID_LEN + 1], b[QID_LEN + 1], c[QID_LEN + 1];
	uint64_t frozen = now_us() + 3600ull * 1000000u;

	gen_init(&g);
	g.last_us = frozen;
	g.seq = (1u << 20) - 2;
	qid_next(&g, a);
	qid_next(&g, b);
	qid_next(&g, c);
	ck_assert_str_eq(a + 17, "ZZZZ");
	ck_assert_str_eq(b + 17, "0000");
	ck_assert_str_eq(c + 17, "0001");
	ck_assert_uint_eq(qid_time_us(a), frozen);
	ck_assert_uint_eq(qid_time_us(b), frozen + 1);
	ck_assert_int_lt(strcmp(a, b), 0);
	ck_assert_int_lt(strcmp(b, c), 0);
}
END_TEST

START_TEST(test_qid_two_generators_differ)
{
	struct qid_gen g1, g2;
	char a[QID_LEN + 1], b[QID_LEN + 1];

	gen_init(&g1);
	gen_init(&g2);
	/* 30 random bits each: equal once in 2^30 runs */
	ck_assert_uint_ne(g1.instance, g2.instance);
	for (int i = 0; i < 1000; i++) {
		qid_next(&g1, a);
		qid_next(&g2, b);
		ck_assert_str_ne(a, b);
		ck_assert_int_ne(memcmp(a + 11, b + 11, 6), 0);
	}
}
END_TEST

START_TEST(test_qid_layout)
{
	struct qid_gen g;
	char q[QID_LEN + 1];
	uint64_t t = now_us() + 3600ull * 1000000u;

	gen_init(&g);
	g.instance = (1u << 30) - 1;
	g.last_us = t;
	qid_next(&g, q);
	ck_assert_mem_eq(q + 11, "ZZZZZZ", 6);
	ck_assert_str_eq(q + 17, "0001");
	ck_assert_uint_eq(qid_time_us(q), t);

	g.instance = 33; /* "11" in base 32 */
	qid_next(&g, q);
	ck_assert_mem_eq(q + 11, "000011", 6);

	ck_assert_uint_eq(qid_time_us("00000000001" "0000000000"), 1);
	ck_assert_uint_eq(qid_time_us("0000000000Z" "0000000000"), 31);
	ck_assert_uint_eq(qid_time_us("00000000010" "0000000000"), 32);
}
END_TEST

START_TEST(test_qid_time_round_trips_now)
{
	struct qid_gen g;
	char q[QID_LEN + 1];
	uint64_t before, after, t;

	gen_init(&g);
	for (int i = 0; i < 100; i++) {
		before = now_us();
		qid_next(&g, q);
		after = now_us();
		t = qid_time_us(q);
		ck_assert_msg(t >= before && t <= after,
			      "%s: %llu not in [%llu, %llu]", q,
			      (unsigned long long)t,
			      (unsigned long long)before,
			      (unsigned long long)after);
	}
}
END_TEST

START_TEST(test_shard_hash_is_fnv1a64)
{
	/* the reference model first, on the published vectors */
	ck_assert_uint_eq(ref_fnv1a64(""), 0xcbf29ce484222325ull);
	ck_assert_uint_eq(ref_fnv1a64("a"), 0xaf63dc4c8601ec8cull);
	ck_assert_uint_eq(ref_fnv1a64("foobar"), 0x85944171f73967e8ull);

	ck_assert_uint_eq(shard_hash("", 0), 0xcbf29ce484222325ull);
	ck_assert_uint_eq(shard_hash("a", 1), 0xaf63dc4c8601ec8cull);
	ck_assert_uint_eq(shard_hash("foobar", 6), 0x85944171f73967e8ull);
	ck_assert_uint_eq(shard_hash(QID_FIXED, QID_LEN),
			  ref_fnv1a64(QID_FIXED));
	/* octets are unsigned: 0xff must not sign-extend */
	ck_assert_uint_eq(shard_hash("\xff", 1), ref_fnv1a64("\xff"));
}
END_TEST

/* Routers and nodes agree only while this never changes. */
START_TEST(test_shard_of_fixed_qid_is_stable)
{
	static const uint32_t shards[] = { 1, 2, 7, 16, 256, 1000, 65536 };

	ck_assert_uint_eq(ref_fnv1a64(QID_FIXED), 0x0be81f53f231f106ull);
	for (size_t i = 0; i < sizeof(shards) / sizeof(shards[0]); i++)
		ck_assert_uint_eq(shard_of(QID_FIXED, shards[i]),
				  ref_fnv1a64(QID_FIXED) % shards[i]);
	ck_assert_uint_eq(shard_of(QID_FIXED, 1), 0);
	ck_assert_uint_eq(shard_of(QID_FIXED, 7), 6);
	ck_assert_uint_eq(shard_of(QID_FIXED, 256), 6);
	ck_assert_uint_eq(shard_of("a", 256), 140);
}
END_TEST

START_TEST(test_shard_of_spreads_evenly_over_256)
{
	struct qid_gen g;
	char q[QID_LEN + 1];
	unsigned count[256] = { 0 };
	double mean = QID_RUN / 256.0;

	gen_init(&g);
	for (int i = 0; i < QID_RUN; i++) {
		uint32_t s;

		qid_next(&g, q);
		s = shard_of(q, 256);
		ck_assert_uint_lt(s, 256);
		count[s]++;
	}
	for (int s = 0; s < 256; s++)
		ck_assert_msg(count[s] >= 0.7 * mean && count[s] <= 1.3 * mean,
			      "shard %d holds %u qids, mean %.1f", s, count[s],
			      mean);
}
END_TEST

static Suite *
qid_suite(void)
{
	Suite *s = suite_create("qid");
	TCase *tc;

	tc = tcase_create("qid");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_qid_init_draws_30_bits);
	tcase_add_test(tc, test_qid_has_21_alphabet_chars);
	tcase_add_test(tc, test_qid_valid_rejects_bad_input);
	tcase_add_test(tc, test_qid_strictly_increasing_100000);
	tcase_add_test(tc, test_qid_increasing_within_one_microsecond);
	tcase_add_test(tc, test_qid_sequence_wrap_moves_time);
	tcase_add_test(tc, test_qid_two_generators_differ);
	tcase_add_test(tc, test_qid_layout);
	tcase_add_test(tc, test_qid_time_round_trips_now);
	suite_add_tcase(s, tc);

	tc = tcase_create("shard");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_shard_hash_is_fnv1a64);
	tcase_add_test(tc, test_shard_of_fixed_qid_is_stable);
	tcase_add_test(tc, test_shard_of_spreads_evenly_over_256);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(qid_suite)
