/* cli/json.c: string escaping (any bytes in, valid UTF-8 JSON out) and
 * the comma bookkeeping; plus cli/text.c's terminal escaping, which uses
 * the same UTF-8 decoder. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "cli/text.h"
#include "tests/unit/check_helpers.h"

/* Escape len bytes of in; returns a malloc'd NUL-terminated result. */
static char *
t_escape(const void *in, size_t len)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	ck_assert_ptr_nonnull(f);
	json_write_string(f, in, len);
	fclose(f);
	return out;
}

struct t_case {
	const char *in;
	size_t len;
	const char *want;
};

#define T(in, want) { in, sizeof(in) - 1, want }

/* RFC 8259 section 7, RFC 3629 section 4 and the cases in between. */
static const struct t_case t_cases[] = {
	T("", "\"\""),
	T("plain text", "\"plain text\""),
	T("a\"b", "\"a\\\"b\""),
	T("a\\b", "\"a\\\\b\""),
	T("/", "\"/\""),
	T("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""),
	T("\x01\x1f", "\"\\u0001\\u001f\""),
	T("a\0b", "\"a\\u0000b\""),
	T("\x7f", "\"\\u007f\""),
	T("\x1b[31mred", "\"\\u001b[31mred\""),
	/* well-formed UTF-8 stays as it is */
	T("caf\xc3\xa9", "\"caf\xc3\xa9\""),
	T("\xe2\x82\xac", "\"\xe2\x82\xac\""),
	T("\xf0\x9f\x93\xa7", "\"\xf0\x9f\x93\xa7\""),
	T("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""),
	T("\xc2\x80", "\"\xc2\x80\""),
	/* line and paragraph separators break JavaScript string literals */
	T("\xe2\x80\xa8\xe2\x80\xa9", "\"\\u2028\\u2029\""),
	/* not UTF-8: each byte by its value */
	T("\xff", "\"\\u00ff\""),
	T("\x80", "\"\\u0080\""),
	T("a\xe9z", "\"a\\u00e9z\""),
	T("\xc0\xaf", "\"\\u00c0\\u00af\""),             /* overlong '/' */
	T("\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\""),  /* overlong */
	T("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""),  /* surrogate */
	/* past U+10FFFF */
	T("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\""),
	T("\xf5\x80\x80\x80", "\"\\u00f5\\u0080\\u0080\\u0080\""),
	T("\xe2\x82", "\"\\u00e2\\u0082\""),             /* cut short */
	T("\xe2\x82z", "\"\\u00e2\\u0082z\""),
	T("\xc3\xc3\xa9", "\"\\u00c3\xc3\xa9\""),        /* resyncs */
};

START_TEST(test_escape_table)
{
	const struct t_case *c = &t_cases[_i];
	char *got = t_escape(c->in, c->len);

	ck_assert_msg(strcmp(got, c->want) == 0, "case %d: got %s want %s",
		      _i, got, c->want);
	free(got);
}
END_TEST

/* Valid UTF-8 with no raw control characters and balanced quotes. */
static int
t_is_clean_json_string(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return 0;
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char b = (unsigned char)s[i];
		uint32_t cp;
		size_t k;

		if (b < 0x20 || b == 0x7f)
			return 0;
		if (b == '"')
			return 0;
		if (b == '\\') {
			i++; /* the escaped character is checked by the table */
			continue;
		}
		if (b >= 0x80) {
			k = json_utf8_seq((const unsigned char *)s + i,
					  n - 1 - i, &cp);
			if (k == 0)
				return 0;
			i += k - 1;
		}
	}
	return 1;
}

START_TEST(test_random_bytes_give_valid_json)
{
	unsigned seed = 4242;
	unsigned char buf[48];

	for (int round = 0; round < 5000; round++) {
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
		char *got;

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand_r(&seed);
		got = t_escape(buf, len);
		ck_assert_msg(t_is_clean_json_string(got), "round %d: %s",
			      round, got);
		free(got);
	}
}
END_TEST

START_TEST(test_document_structure)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	struct json j;

	json_init(&j, f);
	json_object_begin(&j);
	json_kv_u64(&j, "epoch", 18446744073709551615ull);
	json_kv_bool(&j, "ok", true);
	json_kv_str(&j, "nil", NULL);
	json_key(&j, "list");
	json_array_begin(&j);
	json_u64(&j, 0);
	json_str(&j, "x\n");
	json_object_begin(&j);
	json_object_end(&j);
	json_array_begin(&j);
	json_array_end(&j);
	json_bool(&j, false);
	json_array_end(&j);
	json_key(&j, "k\"ey");
	json_strn(&j, "a\0b", 3);
	json_object_end(&j);
	ck_assert_int_eq(json_end(&j), 0);
	fclose(f);
	ck_assert_str_eq(out, "{\"epoch\":18446744073709551615,\"ok\":true,"
			      "\"nil\":\"\",\"list\":[0,\"x\\n\",{},[],"
			      "false],\"k\\\"ey\":\"a\\u0000b\"}\n");
	free(out);
}
END_TEST

START_TEST(test_unbalanced_end_aborts)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	struct json j;

	json_init(&j, f);
	json_object_begin(&j);
	json_end(&j); /* SHOAL_ASSERT: abort */
}
END_TEST

START_TEST(test_value_without_key_aborts)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	struct json j;

	json_init(&j, f);
	json_object_begin(&j);
	json_u64(&j, 1); /* SHOAL_ASSERT: abort */
}
END_TEST

START_TEST(test_text_clean_escapes_terminal_controls)
{
	char out[TEXT_CLEAN_BUF(64)];

	ck_assert_str_eq(text_clean(out, sizeof(out), "a@b.example", 11),
			 "a@b.example");
	ck_assert_str_eq(text_clean(out, sizeof(out), "\x1b]0;pwn\x07", 8),
			 "\\x1b]0;pwn\\x07");
	ck_assert_str_eq(text_clean(out, sizeof(out), "a\\b", 3), "a\\\\b");
	ck_assert_str_eq(text_clean(out, sizeof(out), "\r\n\x7f", 3),
			 "\\x0d\\x0a\\x7f");
	/* UTF-8 stays, C1 controls (U+009B is CSI) and bad bytes do not */
	ck_assert_str_eq(text_clean(out, sizeof(out), "caf\xc3\xa9", 5),
			 "caf\xc3\xa9");
	ck_assert_str_eq(text_clean(out, sizeof(out), "\xc2\x9b", 2),
			 "\\xc2\\x9b");
	ck_assert_str_eq(text_clean(out, sizeof(out), "\xff", 1), "\\xff");
	/* right-to-left override (U+202E) and isolate (U+2067): escaped,
	 * while a neighbour of theirs (U+2030, per mille) stays */
	ck_assert_str_eq(text_clean(out, sizeof(out), "a\xe2\x80\xae" "b", 5),
			 "a\\xe2\\x80\\xaeb");
	ck_assert_str_eq(text_clean(out, sizeof(out), "\xe2\x81\xa7", 3),
			 "\\xe2\\x81\\xa7");
	ck_assert_str_eq(text_clean(out, sizeof(out), "\xe2\x80\xb0", 3),
			 "\xe2\x80\xb0");
}
END_TEST

START_TEST(test_text_clean_marks_cut)
{
	char out[12];

	ck_assert_str_eq(text_clean(out, sizeof(out), "abcdefghijklmnop", 16),
			 "abcdefgh...");
	/* never splits an escape */
	ck_assert_str_eq(text_clean(out, sizeof(out), "abcdef\x01zz", 9),
			 "abcdef...");
}
END_TEST

START_TEST(test_text_print_lines_keeps_lines_and_tabs)
{
	static const char in[] = "A: 1\r\n\tfolded\r\nB: \x1b[2J\r\n\r\n";
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	text_print_lines(f, in, sizeof(in) - 1);
	fclose(f);
	ck_assert_str_eq(out, "A: 1\n\tfolded\nB: \\x1b[2J\n\n");
	free(out);
}
END_TEST

static Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("escape");
	TCase *tt = tcase_create("text");

	tcase_add_loop_test(tc, test_escape_table, 0,
			    (int)(sizeof(t_cases) / sizeof(*t_cases)));
	tcase_add_test(tc, test_random_bytes_give_valid_json);
	tcase_add_test(tc, test_document_structure);
	tcase_add_test_raise_signal(tc, test_unbalanced_end_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, test_value_without_key_aborts,
				    SIGABRT);
	suite_add_tcase(s, tc);
	tcase_add_test(tt, test_text_clean_escapes_terminal_controls);
	tcase_add_test(tt, test_text_clean_marks_cut);
	tcase_add_test(tt, test_text_print_lines_keeps_lines_and_tabs);
	suite_add_tcase(s, tt);
	return s;
}

CHECK_MAIN(json_suite)
