/* Check suite for lib/be.h, the big-endian codec of every hand-encoded
 * key, value and wire field: byte order, round trips at the edges,
 * unaligned buffers, and the property LMDB's keys rely on (memcmp order of
 * the bytes is the numbers' order). */
#include <stdint.h>
#include <string.h>

#include "lib/be.h"
#include "tests/unit/check_helpers.h"

START_TEST(test_be_writes_most_significant_byte_first)
{
	unsigned char b[8];

	be16_put(b, 0x0102);
	ck_assert(memcmp(b, "\x01\x02", 2) == 0);
	be32_put(b, 0x01020304u);
	ck_assert(memcmp(b, "\x01\x02\x03\x04", 4) == 0);
	be64_put(b, 0x0102030405060708ull);
	ck_assert(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
}
END_TEST

START_TEST(test_be_reads_most_significant_byte_first)
{
	ck_assert_uint_eq(be16_get("\xfe\x01"), 0xfe01);
	ck_assert_uint_eq(be32_get("\xfe\x01\x02\x03"), 0xfe010203u);
	ck_assert_uint_eq(be64_get("\xfe\x01\x02\x03\x04\x05\x06\x07"),
			  0xfe01020304050607ull);
}
END_TEST

static const uint64_t t_values[] = {
	0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
	0x7fffffff, 0x80000000u, 0xffffffffu, 0x100000000ull,
	0x7fffffffffffffffull, 0x8000000000000000ull, UINT64_MAX,
};
#define T_N_VALUES (sizeof(t_values) / sizeof(t_values[0]))

START_TEST(test_be_round_trips_at_the_edges)
{
	uint64_t v = t_values[_i];
	unsigned char b[8];

	be16_put(b, (uint16_t)v);
	ck_assert_uint_eq(be16_get(b), (uint16_t)v);
	be32_put(b, (uint32_t)v);
	ck_assert_uint_eq(be32_get(b), (uint32_t)v);
	be64_put(b, v);
	ck_assert_uint_eq(be64_get(b), v);
}
END_TEST

/* LMDB values are rarely aligned: every offset works, and nothing
 * outside the field is touched. */
START_TEST(test_be_works_at_any_alignment)
{
	unsigned char b[24];

	for (size_t off = 0; off < 8; off++) {
		memset(b, 0xaa, sizeof(b));
		be64_put(b + off, 0x1122334455667788ull);
		ck_assert_uint_eq(be64_get(b + off), 0x1122334455667788ull);
		ck_assert_uint_eq(be32_get(b + off + 4), 0x55667788u);
		ck_assert_uint_eq(be16_get(b + off + 2), 0x3344);
		for (size_t i = 0; i < off; i++)
			ck_assert_uint_eq(b[i], 0xaa);
		for (size_t i = off + 8; i < sizeof(b); i++)
			ck_assert_uint_eq(b[i], 0xaa);
	}
}
END_TEST

static int
t_sign(int v)
{
	return (v > 0) - (v < 0);
}

/* Why the store's keys are big-endian: memcmp() sorts them as numbers. */
START_TEST(test_be_bytes_sort_as_their_numbers)
{
	for (size_t i = 0; i < T_N_VALUES; i++) {
		for (size_t j = 0; j < T_N_VALUES; j++) {
			uint64_t a = t_values[i], b = t_values[j];
			unsigned char ka[8], kb[8];
			int want = (a > b) - (a < b);

			be64_put(ka, a);
			be64_put(kb, b);
			ck_assert_int_eq(t_sign(memcmp(ka, kb, 8)), want);
			be32_put(ka, (uint32_t)a);
			be32_put(kb, (uint32_t)b);
			want = ((uint32_t)a > (uint32_t)b) -
			       ((uint32_t)a < (uint32_t)b);
			ck_assert_int_eq(t_sign(memcmp(ka, kb, 4)), want);
		}
	}
}
END_TEST

static Suite *
be_suite(void)
{
	Suite *s = suite_create("be");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_be_writes_most_significant_byte_first);
	tcase_add_test(tc, test_be_reads_most_significant_byte_first);
	tcase_add_loop_test(tc, test_be_round_trips_at_the_edges, 0,
			    (int)T_N_VALUES);
	tcase_add_test(tc, test_be_works_at_any_alignment);
	tcase_add_test(tc, test_be_bytes_sort_as_their_numbers);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(be_suite)
