/* lib/log.c: the JSON line format (logfmt parsed back into fields, hostile
 * values through log_quote() and out as valid JSON holding the original
 * bytes), key renaming, truncation, and log.file with reopen after a
 * logrotate-style rename. A small JSON reader below parses every line
 * back: a line that is not one valid object fails the test. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/log.h"
#include "tests/unit/check_helpers.h"

#define T_FIELDS_MAX 80

/* One parsed object: keys and values decoded to bytes (UTF-8). */
struct t_obj {
	size_t n;
	char *key[T_FIELDS_MAX];
	char *val[T_FIELDS_MAX];
	size_t val_len[T_FIELDS_MAX];
};

static void
t_put_utf8(char *out, size_t *o, uint32_t cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xc0 | cp >> 6);
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*o)++] = (char)(0xe0 | cp >> 12);
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* A JSON string at *p (RFC 8259 section 7): returns the decoded bytes
 * (malloc'd) or NULL when it is not a valid string. */
static char *
t_string(const char **p, size_t *len)
{
	const char *s = *p;
	char *out;
	size_t o = 0;

	if (*s++ != '"')
		return NULL;
	out = malloc(strlen(s) * 3 + 1);
	while (*s && *s != '"') {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20) {
			free(out);
			return NULL;
		}
		if (c >= 0x80) {
			uint32_t cp;
			size_t n = json_utf8_seq((const unsigned char *)s,
						 strlen(s), &cp);

			if (n == 0) {
				free(out);
				return NULL;
			}
			memcpy(out + o, s, n);
			o += n;
			s += n;
			continue;
		}
		if (c != '\\') {
			out[o++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case '"':
		case '\\':
		case '/':
			out[o++] = *s++;
			break;
		case 'b':
			out[o++] = '\b';
			s++;
			break;
		case 'f':
			out[o++] = '\f';
			s++;
			break;
		case 'n':
			out[o++] = '\n';
			s++;
			break;
		case 'r':
			out[o++] = '\r';
			s++;
			break;
		case 't':
			out[o++] = '\t';
			s++;
			break;
		case 'u': {
			char hex[5] = { 0 };
			char *end;
			uint32_t cp;

			memcpy(hex, s + 1, 4);
			cp = (uint32_t)strtoul(hex, &end, 16);
			if (strlen(hex) != 4 || *end != '\0') {
				free(out);
				return NULL;
			}
			t_put_utf8(out, &o, cp);
			s += 5;
			break;
		}
		default:
			free(out);
			return NULL;
		}
	}
	if (*s != '"') {
		free(out);
		return NULL;
	}
	*p = s + 1;
	out[o] = '\0';
	*len = o;
	return out;
}

/* Parse one line "{...}\n" of string and integer values. Returns 0 or -1. */
static int
t_parse(const char *line, struct t_obj *obj)
{
	const char *p = line;

	memset(obj, 0, sizeof(*obj));
	if (*p++ != '{')
		return -1;
	while (*p != '}') {
		size_t klen;

		if (obj->n == T_FIELDS_MAX)
			return -1;
		if (obj->n > 0 && *p++ != ',')
			return -1;
		obj->key[obj->n] = t_string(&p, &klen);
		if (obj->key[obj->n] == NULL || *p++ != ':')
			return -1;
		if (*p == '"') {
			obj->val[obj->n] = t_string(&p, &obj->val_len[obj->n]);
			if (obj->val[obj->n] == NULL)
				return -1;
		} else {
			const char *d = p;

			while (*p >= '0' && *p <= '9')
				p++;
			if (p == d)
				return -1;
			obj->val[obj->n] = strndup(d, (size_t)(p - d));
			obj->val_len[obj->n] = (size_t)(p - d);
		}
		obj->n++;
	}
	return strcmp(p, "}\n") == 0 ? 0 : -1;
}

static void
t_obj_free(struct t_obj *obj)
{
	for (size_t i = 0; i < obj->n; i++) {
		free(obj->key[i]);
		free(obj->val[i]);
	}
	obj->n = 0;
}

/* The value of key, or NULL; its length in *len. */
static const char *
t_get(const struct t_obj *obj, const char *key, size_t *len)
{
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->key[i], key) == 0) {
			if (len)
				*len = obj->val_len[i];
			return obj->val[i];
		}
	return NULL;
}

static size_t
t_format(char *out, size_t outlen, const char *body)
{
	return log_format_json(out, outlen, "2026-11-30T00:00:00.000Z",
			       LOG_LVL_INFO, body, strlen(body));
}

/* The bytes that come back out of the JSON for in: in itself when it is
 * valid UTF-8; else each stray byte reads as U+00XX (lib/json.h). */
static char *
t_expected(const void *in, size_t len, size_t *out_len)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	struct t_obj obj;
	char line[8192];
	const char *p;

	ck_assert_ptr_nonnull(f);
	json_write_string(f, in, len);
	fclose(f);
	snprintf(line, sizeof(line), "{\"v\":%s}\n", out);
	free(out);
	ck_assert_int_eq(t_parse(line, &obj), 0);
	p = t_get(&obj, "v", out_len);
	out = malloc(*out_len + 1);
	memcpy(out, p, *out_len + 1);
	t_obj_free(&obj);
	return out;
}

struct t_hostile {
	const char *in;
	size_t len;
};

#define H(s)                                                                   \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}

static const struct t_hostile t_hostiles[] = {
	H(""),
	H("plain"),
	H("two words"),
	H("a=b c=\"d\""),
	H("\"quoted\""),
	H("back\\slash\\"),
	H("\\x41 is not A"),
	H("\\\"\\\\"),
	H("line\nbreak\r\n"),
	H("tab\tand\bbell\a\x1b[31m"),
	H("nul\0inside"),
	H("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7"),
	H("bad \xff\xfe utf8 \xc3"),
	H("\xe2\x80\xa8 line separator"),
	H("}{\"level\":\"error\"}"),
	H("\x7f DEL"),
};

static void
t_check_one(const void *in, size_t len)
{
	char q[LOG_QUOTE_BUF], body[LOG_QUOTE_BUF + 64], out[16384];
	size_t n, got_len = 0, want_len = 0;
	struct t_obj obj;
	const char *got;
	char *want;

	snprintf(body, sizeof(body), "qid=0ABC event=test text=%s tail=1",
		 log_quote(q, sizeof(q), in, len));
	n = t_format(out, sizeof(out), body);
	ck_assert_uint_eq(n, strlen(out));
	/* one line: the newline at the end is the only one */
	ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1);
	ck_assert_msg(t_parse(out, &obj) == 0, "not JSON: %s", out);
	ck_assert_str_eq(t_get(&obj, "qid", NULL), "0ABC");
	ck_assert_str_eq(t_get(&obj, "event", NULL), "test");
	ck_assert_str_eq(t_get(&obj, "tail", NULL), "1");
	ck_assert_str_eq(t_get(&obj, "msg", NULL), body);
	ck_assert_str_eq(t_get(&obj, "level", NULL), "info");
	ck_assert_ptr_nonnull(t_get(&obj, "pid", NULL));
	got = t_get(&obj, "text", &got_len);
	ck_assert_ptr_nonnull(got);
	want = t_expected(in, len > LOG_QUOTE_MAX ? LOG_QUOTE_MAX : len,
			  &want_len);
	if (len > LOG_QUOTE_MAX) {
		/* log_quote() cut it and said so */
		ck_assert_uint_eq(got_len, want_len + 3);
		ck_assert_mem_eq(got + want_len, "...", 3);
	} else {
		ck_assert_uint_eq(got_len, want_len);
	}
	ck_assert_mem_eq(got, want, want_len);
	free(want);
	t_obj_free(&obj);
}

START_TEST(test_json_round_trips_hostile_values)
	{
		t_check_one(t_hostiles[_i].in, t_hostiles[_i].len);
	}
END_TEST

START_TEST(test_json_round_trips_every_byte)
	{
		char all[256];

		for (int i = 0; i < 256; i++)
			all[i] = (char)i;
		t_check_one(all, 100);
		t_check_one(all + 100, 100);
		t_check_one(all + 200, 56);
		t_check_one(all, 256); /* cut at LOG_QUOTE_MAX */
	}
END_TEST

START_TEST(test_json_renames_fixed_and_repeated_keys)
	{
		char out[4096];
		struct t_obj obj;

		t_format(out, sizeof(out),
			 "node msg=a level=b x=1 x=2 x=3 ts=c");
		ck_assert_int_eq(t_parse(out, &obj), 0);
		ck_assert_str_eq(t_get(&obj, "level", NULL), "info");
		ck_assert_str_eq(t_get(&obj, "_msg", NULL), "a");
		ck_assert_str_eq(t_get(&obj, "_level", NULL), "b");
		ck_assert_str_eq(t_get(&obj, "_ts", NULL), "c");
		ck_assert_str_eq(t_get(&obj, "x", NULL), "1");
		ck_assert_str_eq(t_get(&obj, "x_2", NULL), "2");
		ck_assert_str_eq(t_get(&obj, "x_3", NULL), "3");
		/* the bare subject is in msg only */
		ck_assert_ptr_null(t_get(&obj, "node", NULL));
		ck_assert_str_eq(t_get(&obj, "msg", NULL),
				 "node msg=a level=b x=1 x=2 x=3 ts=c");
		t_obj_free(&obj);
	}
END_TEST

START_TEST(test_json_values_stay_strings)
	{
		char out[4096];
		struct t_obj obj;

		t_format(out, sizeof(out),
			 "qid=0123456789 size=42 empty= n=-1");
		ck_assert_int_eq(t_parse(out, &obj), 0);
		ck_assert_ptr_nonnull(strstr(out, "\"qid\":\"0123456789\""));
		ck_assert_ptr_nonnull(strstr(out, "\"size\":\"42\""));
		ck_assert_str_eq(t_get(&obj, "empty", NULL), "");
		ck_assert_str_eq(t_get(&obj, "n", NULL), "-1");
		t_obj_free(&obj);
	}
END_TEST

START_TEST(test_json_survives_unquoted_hostile_text)
	{
		/* callers that printf raw text (a bug, but it must not break the
	 * line): unterminated quotes, stray escapes, raw control bytes */
		static const char *const bodies[] = {
			"text=\"never closed",
			"text=\"ends in backslash\\",
			"text=\"\\x4 short\\xZZ\\q\" next=1",
			"a=\x01\x02 b=\xff\xfe =novalue ==",
			"\"\"\"=\"\"\"",
			"k=v\nsecond=line",
		};
		char out[4096];
		struct t_obj obj;

		for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
			size_t want_len, got_len;
			char *want = t_expected(bodies[i], strlen(bodies[i]),
						&want_len);
			const char *got;

			t_format(out, sizeof(out), bodies[i]);
			ck_assert_msg(t_parse(out, &obj) == 0, "not JSON: %s",
				      out);
			got = t_get(&obj, "msg", &got_len);
			ck_assert_uint_eq(got_len, want_len);
			ck_assert_mem_eq(got, want, want_len);
			free(want);
			t_obj_free(&obj);
		}
		t_format(out, sizeof(out),
			 "text=\"\\x4 short\\xZZ\\q\" next=1");
		ck_assert_int_eq(t_parse(out, &obj), 0);
		ck_assert_str_eq(t_get(&obj, "text", NULL),
				 "\\x4 short\\xZZ\\q");
		ck_assert_str_eq(t_get(&obj, "next", NULL), "1");
		t_obj_free(&obj);
	}
END_TEST

START_TEST(test_json_cut_line_stays_valid)
	{
		char body[4000], out[1024];
		struct t_obj obj;
		size_t o = 0, n;

		while (o + 20 < sizeof(body))
			o += (size_t)snprintf(body + o, sizeof(body) - o,
					      "k%zu=\"\\x01\\x02\" ", o);
		n = t_format(out, sizeof(out), body);
		ck_assert_uint_lt(n, sizeof(out));
		ck_assert_msg(t_parse(out, &obj) == 0, "not JSON: %s", out);
		/* msg alone is too long here: the line says what happened */
		ck_assert_ptr_nonnull(t_get(&obj, "msg", NULL));
		t_obj_free(&obj);

		/* a body that fits but whose fields do not */
		snprintf(body, 300, "%s",
			 "k=\"\\x01\\x01\\x01\\x01\\x01\\x01\\x01\" "
			 "l=\"\\x01\\x01\\x01\\x01\\x01\\x01\" "
			 "m=\"\\x01\\x01\\x01\\x01\\x01\\x01\"");
		n = t_format(out, sizeof(out), body);
		ck_assert_msg(t_parse(out, &obj) == 0, "not JSON: %s", out);
		ck_assert_ptr_nonnull(t_get(&obj, "m", NULL));
		ck_assert_ptr_null(t_get(&obj, "truncated", NULL));
		t_obj_free(&obj);
		/* 10 bytes short: the last field ("m":"\u0001" x 6, 45 bytes) goes */
		n = t_format(out, n - 10, body);
		ck_assert_msg(t_parse(out, &obj) == 0, "not JSON: %s", out);
		ck_assert_str_eq(t_get(&obj, "truncated", NULL), "true");
		ck_assert_ptr_nonnull(t_get(&obj, "k", NULL));
		ck_assert_ptr_nonnull(t_get(&obj, "l", NULL));
		ck_assert_ptr_null(t_get(&obj, "m", NULL));
		t_obj_free(&obj);
	}
END_TEST

static char *
t_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *out;
	long n;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	out = calloc(1, (size_t)n + 1);
	ck_assert_uint_eq(fread(out, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return out;
}

START_TEST(test_file_reopens_after_rename)
	{
		char dir[256], path[300], old[310], moved[300], moved_path[320];
		char *text;
		struct t_obj obj;

		check_mkdtemp(dir, sizeof(dir), "log");
		snprintf(path, sizeof(path), "%s/shoal.log", dir);
		snprintf(old, sizeof(old), "%s.1", path);
		log_init("test-log", LOG_LVL_INFO);
		log_set_json(true);
		ck_assert_int_eq(log_open_file(path), 0);
		log_info("qid=A event=before");
		ck_assert_int_eq(rename(path, old), 0);
		log_info("qid=B event=still_old_fd");
		ck_assert_int_eq(log_reopen(), 0);
		log_info("qid=C event=after");

		text = t_slurp(old);
		ck_assert_ptr_nonnull(strstr(text, "\"qid\":\"A\""));
		ck_assert_ptr_nonnull(strstr(text, "\"qid\":\"B\""));
		ck_assert_ptr_null(strstr(text, "\"qid\":\"C\""));
		free(text);
		text = t_slurp(path);
		ck_assert_int_eq(t_parse(text, &obj), 0);
		ck_assert_str_eq(t_get(&obj, "qid", NULL), "C");
		ck_assert_str_eq(t_get(&obj, "prog", NULL), "test-log");
		t_obj_free(&obj);
		free(text);

		/* the directory goes away: the reopen fails, lines keep going to
	 * the old file, with the error among them */
		snprintf(moved, sizeof(moved), "%s.gone", dir);
		ck_assert_int_eq(rename(dir, moved), 0);
		ck_assert_int_eq(log_reopen(), -ENOENT);
		log_info("qid=D event=kept");
		snprintf(moved_path, sizeof(moved_path), "%s/shoal.log", moved);
		text = t_slurp(moved_path);
		ck_assert_ptr_nonnull(
			strstr(text, "\"event\":\"reopen_failed\""));
		ck_assert_ptr_nonnull(strstr(text, "\"qid\":\"D\""));
		free(text);
		log_close();
		log_set_json(false);
		check_rmtree(moved);
	}
END_TEST

START_TEST(test_file_logfmt_one_line_per_event)
	{
		char dir[256], path[300];
		char *text;

		check_mkdtemp(dir, sizeof(dir), "logfmt");
		snprintf(path, sizeof(path), "%s/x.log", dir);
		log_init("test-log", LOG_LVL_INFO);
		ck_assert_int_eq(log_open_file(path), 0);
		log_info("qid=E event=one");
		log_debug(LOG_SUB_SMTP, "qid=F event=hidden");
		errno = ENOSPC;
		log_error_errno("qid=G event=two");
		log_close();
		text = t_slurp(path);
		ck_assert_ptr_nonnull(strstr(text, " test-log["));
		ck_assert_ptr_nonnull(
			strstr(text, "] info: qid=E event=one\n"));
		ck_assert_ptr_null(strstr(text, "hidden"));
		ck_assert_ptr_nonnull(
			strstr(text, "] error: qid=G event=two error=\""));
		free(text);
		check_rmtree(dir);
	}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("json");

	tcase_add_loop_test(tc, test_json_round_trips_hostile_values, 0,
			    sizeof(t_hostiles) / sizeof(*t_hostiles));
	tcase_add_test(tc, test_json_round_trips_every_byte);
	tcase_add_test(tc, test_json_renames_fixed_and_repeated_keys);
	tcase_add_test(tc, test_json_values_stay_strings);
	tcase_add_test(tc, test_json_survives_unquoted_hostile_text);
	tcase_add_test(tc, test_json_cut_line_stays_valid);
	suite_add_tcase(s, tc);
	tc = tcase_create("file");
	tcase_add_test(tc, test_file_reopens_after_rename);
	tcase_add_test(tc, test_file_logfmt_one_line_per_event);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(log_suite)
