/* Check suite for lib/buf.c: the bounded byte buffer. The bound is the
 * point: every append that would pass max fails with -EMSGSIZE and leaves
 * the buffer as it was. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "tests/unit/check_helpers.h"

/* Content is len octets plus the NUL that buf keeps after them. */
static void
assert_content(const struct buf *b, const char *want, size_t n)
{
	ck_assert_uint_eq(b->len, n);
	ck_assert_ptr_nonnull(b->data);
	if (n)
		ck_assert_mem_eq(b->data, want, n);
	ck_assert_int_eq(b->data[n], '\0');
	ck_assert_uint_le(b->len + 1, b->cap);
	ck_assert_uint_le(b->cap, b->max + 1);
}

START_TEST(test_buf_init_is_empty)
{
	struct buf b;

	buf_init(&b, 100);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 100);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_append_keeps_octets)
{
	struct buf b;

	buf_init(&b, 100);
	ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
	ck_assert_int_eq(buf_append(&b, "\0de", 3), 0);
	assert_content(&b, "abc\0de", 6);
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	assert_content(&b, "abc\0de", 6);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_append_zero_to_empty)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
	assert_content(&b, "", 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_append_exactly_to_max)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, "012345", 6), 0);
	ck_assert_int_eq(buf_append(&b, "6789", 4), 0);
	assert_content(&b, "0123456789", 10);
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_append_one_past_max_is_emsgsize)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, "012345", 6), 0);
	ck_assert_int_eq(buf_append(&b, "6789X", 5), -EMSGSIZE);
	assert_content(&b, "012345", 6); /* nothing appended */
	ck_assert_int_eq(buf_append(&b, "6789", 4), 0);
	ck_assert_int_eq(buf_append(&b, "X", 1), -EMSGSIZE);
	assert_content(&b, "0123456789", 10);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_append_past_max_on_empty)
{
	struct buf b;
	char big[11] = "0123456789";

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, big, 11), -EMSGSIZE);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_null(b.data);
	buf_free(&b);
}
END_TEST

/* n near SIZE_MAX must not wrap len + n round to something small. */
START_TEST(test_buf_append_huge_length_is_emsgsize)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, "ab", 2), 0);
	ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX), -EMSGSIZE);
	ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX - 1), -EMSGSIZE);
	ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX - 8), -EMSGSIZE);
	assert_content(&b, "ab", 2);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_max_zero_holds_nothing)
{
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_append(&b, "x", 1), -EMSGSIZE);
	ck_assert_int_eq(buf_printf(&b, "%s", "x"), -EMSGSIZE);
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_int_eq(buf_printf(&b, "%s", ""), 0);
	assert_content(&b, "", 0);
	buf_free(&b);
}
END_TEST

/* Growth by doubling stops at max + 1 (room for the NUL), never beyond. */
START_TEST(test_buf_grows_to_max_one_octet_at_a_time)
{
	enum { MAX = 100000 };
	struct buf b;

	buf_init(&b, MAX);
	for (size_t i = 0; i < MAX; i++) {
		char c = (char)('a' + i % 26);

		ck_assert_int_eq(buf_append(&b, &c, 1), 0);
	}
	ck_assert_int_eq(buf_append(&b, "x", 1), -EMSGSIZE);
	ck_assert_uint_eq(b.len, MAX);
	ck_assert_uint_eq(b.cap, MAX + 1);
	for (size_t i = 0; i < MAX; i++)
		ck_assert_int_eq(b.data[i], 'a' + i % 26);
	ck_assert_int_eq(b.data[MAX], '\0');
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_printf_formats)
{
	struct buf b;

	buf_init(&b, 100);
	ck_assert_int_eq(buf_printf(&b, "%d %s", 250, "ok"), 0);
	ck_assert_int_eq(buf_printf(&b, "|%05u|", 42u), 0);
	assert_content(&b, "250 ok|00042|", 13);
	buf_free(&b);
}
END_TEST

/* buf_printf formats into 512 octets on the stack first; 511, 512, 513
 * and far longer must all come out whole. */
START_TEST(test_buf_printf_long_strings)
{
	static const size_t lens[] = { 511, 512, 513, 5000, 100000 };
	char *s = malloc(100001);

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < 100000; i++)
		s[i] = (char)('A' + i % 26);
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		struct buf b;
		size_t n = lens[k];

		buf_init(&b, 200000);
		ck_assert_int_eq(buf_append(&b, "<", 1), 0);
		ck_assert_int_eq(buf_printf(&b, "%.*s>", (int)n, s), 0);
		ck_assert_uint_eq(b.len, n + 2);
		ck_assert_int_eq(b.data[0], '<');
		ck_assert_mem_eq(b.data + 1, s, n);
		ck_assert_int_eq(b.data[n + 1], '>');
		ck_assert_int_eq(b.data[n + 2], '\0');
		buf_free(&b);
	}
	free(s);
}
END_TEST

START_TEST(test_buf_printf_long_past_max_is_emsgsize)
{
	char s[2001];
	struct buf b;

	memset(s, 'z', 2000);
	s[2000] = '\0';
	buf_init(&b, 2000);
	ck_assert_int_eq(buf_append(&b, "ab", 2), 0);
	ck_assert_int_eq(buf_printf(&b, "%s", s), -EMSGSIZE);
	assert_content(&b, "ab", 2);
	ck_assert_int_eq(buf_printf(&b, "%.1998s", s), 0); /* exactly max */
	ck_assert_uint_eq(b.len, 2000);
	ck_assert_int_eq(buf_printf(&b, "%s", "y"), -EMSGSIZE);
	ck_assert_uint_eq(b.len, 2000);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_steal_hands_memory_over)
{
	struct buf b;
	size_t len = 0;
	char *p;

	buf_init(&b, 50);
	ck_assert_int_eq(buf_printf(&b, "hello %s", "world"), 0);
	p = buf_steal(&b, &len);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(len, 11);
	ck_assert_str_eq(p, "hello world");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 50);

	/* the buffer starts over, with the same bound */
	ck_assert_int_eq(buf_append(&b, "again", 5), 0);
	assert_content(&b, "again", 5);
	ck_assert_str_eq(p, "hello world"); /* untouched by the reuse */
	free(p);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_steal_empty_and_null_len)
{
	struct buf b;
	size_t len = 99;
	char *p;

	buf_init(&b, 50);
	ck_assert_ptr_null(buf_steal(&b, &len));
	ck_assert_uint_eq(len, 0);

	ck_assert_int_eq(buf_append(&b, "xy", 2), 0);
	p = buf_steal(&b, NULL);
	ck_assert_str_eq(p, "xy");
	free(p);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_reset_keeps_memory)
{
	struct buf b;
	char *data;
	size_t cap;

	buf_init(&b, 1000);
	ck_assert_int_eq(buf_printf(&b, "%0500d", 7), 0);
	data = b.data;
	cap = b.cap;
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_eq(b.data, data);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_int_eq(buf_append(&b, "q", 1), 0);
	assert_content(&b, "q", 1);
	ck_assert_ptr_eq(b.data, data);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_free_twice_and_reuse)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_append(&b, "12345678", 8), 0);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	buf_free(&b);
	ck_assert_int_eq(buf_append(&b, "87654321", 8), 0);
	assert_content(&b, "87654321", 8);
	ck_assert_int_eq(buf_append(&b, "9", 1), -EMSGSIZE);
	buf_free(&b);
}
END_TEST

/* Regression: max + 1 wrapped to 0 for an unbounded buffer, so the first
 * append wrote past a zero-sized allocation. */
START_TEST(test_buf_unbounded_max_appends)
{
	struct buf b;

	buf_init(&b, SIZE_MAX);
	ck_assert_int_eq(buf_append(&b, "hello", 5), 0);
	ck_assert_int_eq(buf_append(&b, " world", 6), 0);
	ck_assert_uint_eq(b.len, 11);
	ck_assert_str_eq(b.data, "hello world");
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_insert_moves_the_rest)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_append(&b, "cdef", 4), 0);
	ck_assert_int_eq(buf_insert(&b, 0, "ab", 2), 0);
	assert_content(&b, "abcdef", 6);
	ck_assert_int_eq(buf_insert(&b, 6, "gh", 2), 0);
	ck_assert_int_eq(buf_insert(&b, 3, "-", 1), 0);
	assert_content(&b, "abc-defgh", 9);
	/* past max or past the end: nothing changes */
	ck_assert_int_eq(buf_insert(&b, 0, "xy", 2), -EMSGSIZE);
	ck_assert_int_eq(buf_insert(&b, 10, "x", 1), -EMSGSIZE);
	assert_content(&b, "abc-defgh", 9);
	buf_free(&b);
}
END_TEST

static Suite *
buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc;

	tc = tcase_create("bounds");
	tcase_add_test(tc, test_buf_init_is_empty);
	tcase_add_test(tc, test_buf_append_keeps_octets);
	tcase_add_test(tc, test_buf_append_zero_to_empty);
	tcase_add_test(tc, test_buf_append_exactly_to_max);
	tcase_add_test(tc, test_buf_append_one_past_max_is_emsgsize);
	tcase_add_test(tc, test_buf_append_past_max_on_empty);
	tcase_add_test(tc, test_buf_append_huge_length_is_emsgsize);
	tcase_add_test(tc, test_buf_max_zero_holds_nothing);
	tcase_add_test(tc, test_buf_grows_to_max_one_octet_at_a_time);
	suite_add_tcase(s, tc);

	tc = tcase_create("printf");
	tcase_add_test(tc, test_buf_printf_formats);
	tcase_add_test(tc, test_buf_printf_long_strings);
	tcase_add_test(tc, test_buf_printf_long_past_max_is_emsgsize);
	suite_add_tcase(s, tc);

	tc = tcase_create("ownership");
	tcase_add_test(tc, test_buf_steal_hands_memory_over);
	tcase_add_test(tc, test_buf_steal_empty_and_null_len);
	tcase_add_test(tc, test_buf_reset_keeps_memory);
	tcase_add_test(tc, test_buf_free_twice_and_reuse);
	tcase_add_test(tc, test_buf_unbounded_max_appends);
	tcase_add_test(tc, test_buf_insert_moves_the_rest);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(buf_suite)
