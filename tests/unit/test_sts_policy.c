/* Check suite for MTA-STS text (node/tls/sts_policy.c): the _mta-sts TXT
 * record and the choice among several (RFC 8461 3.1), the policy body
 * (3.2) with every rejection, its bounds and hostile bytes, MX pattern
 * matching (4.1) and the policy-string lines of RFC 8460 4.4. */
#include "node/tls/sts_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check_helpers.h"

/* RFC 8461 3.2's example policy. */
#define T_RFC_POLICY                                                           \
	"version: STSv1\n"                                                     \
	"mode: enforce\n"                                                      \
	"mx: mail.example.com\n"                                               \
	"mx: *.example.net\n"                                                  \
	"mx: backupmx.example.com\n"                                           \
	"max_age: 604800\n"

/* ---- the TXT record ---------------------------------------------------- */

static const struct {
	const char *txt;
	size_t len; /* 0: strlen(txt) */
	int want;
	const char *id;
} t_txts[] = {
	/* RFC 8461 3.1's example and its variants */
	{ "v=STSv1; id=20160831085700Z;", 0, 0, "20160831085700Z" },
	{ "v=STSv1; id=20160831085700Z", 0, 0, "20160831085700Z" },
	{ "v=STSv1;id=abc", 0, 0, "abc" },
	{ "v=STSv1 ;\tid=abc ; ", 0, 0, "abc" },
	{ "v=STSv1; id=abc  ", 0, 0, "abc" },
	{ "v=STSv1; id=abc; ext=val; x_y.z-1=a:b/c", 0, 0, "abc" },
	{ "v=STSv1; ext=1; id=XYZ123;", 0, 0, "XYZ123" },
	{ "v=STSv1; id=12345678901234567890123456789012", 0, 0,
	  "12345678901234567890123456789012" },
	{ "v=STSv1; e2345678901234567890123456789012=1; id=a", 0, 0, "a" },
	/* v first, exactly */
	{ "id=abc; v=STSv1;", 0, -EINVAL, NULL },
	{ " v=STSv1; id=abc", 0, -EINVAL, NULL },
	{ "v=STSv2; id=abc", 0, -EINVAL, NULL },
	{ "v=stsv1; id=abc", 0, -EINVAL, NULL },
	{ "v=STSv1id=abc", 0, -EINVAL, NULL },
	{ "v=STSv10; id=abc", 0, -EINVAL, NULL },
	{ "", 0, -EINVAL, NULL },
	/* id required, once, 1..32 letters and digits */
	{ "v=STSv1", 0, -EINVAL, NULL },
	{ "v=STSv1;", 0, -EINVAL, NULL },
	{ "v=STSv1; ID=abc", 0, -EINVAL, NULL },
	{ "v=STSv1; id=", 0, -EINVAL, NULL },
	{ "v=STSv1; id=abc-def", 0, -EINVAL, NULL },
	{ "v=STSv1; id=123456789012345678901234567890123", 0, -EINVAL, NULL },
	{ "v=STSv1; id=a; id=b", 0, -EINVAL, NULL },
	{ "v=STSv1; id=a; id=a", 0, -EINVAL, NULL },
	/* separators and fields */
	{ "v=STSv1; id=abc;;", 0, -EINVAL, NULL },
	{ "v=STSv1 id=abc", 0, -EINVAL, NULL },
	{ "v=STSv1; id=abc def", 0, -EINVAL, NULL },
	{ "v=STSv1; ext=; id=abc", 0, -EINVAL, NULL },
	{ "v=STSv1; =x; id=abc", 0, -EINVAL, NULL },
	{ "v=STSv1; _x=1; id=abc", 0, -EINVAL, NULL },
	{ "v=STSv1; ext; id=abc", 0, -EINVAL, NULL },
	{ "v=STSv1; id=abc; e=a=b", 0, -EINVAL, NULL },
	{ "v=STSv1; e23456789012345678901234567890123=1; id=a", 0, -EINVAL,
	  NULL },
	/* hostile bytes */
	{ "v=STSv1; id=ab\0c", 16, -EINVAL, NULL },
	{ "v=STSv1; id=abc\0", 16, -EINVAL, NULL },
	{ "v=STSv1; id=abc\r\n", 0, -EINVAL, NULL },
	{ "v=STSv1; id=abc; e=\xc3\xa9", 0, -EINVAL, NULL },
	{ "v=STSv1; id=\xff", 0, -EINVAL, NULL },
};

START_TEST(test_txt_table)
	{
		const char *txt = t_txts[_i].txt;
		size_t len = t_txts[_i].len ? t_txts[_i].len : strlen(txt);
		char id[STS_ID_MAX + 1] = "untouched";
		int rc = sts_txt_parse(txt, len, id);

		ck_assert_msg(rc == t_txts[_i].want, "\"%s\": %d, want %d", txt,
			      rc, t_txts[_i].want);
		if (t_txts[_i].id != NULL)
			ck_assert_str_eq(id, t_txts[_i].id);
		else
			ck_assert_str_eq(id, "untouched");
	}
END_TEST

START_TEST(test_txt_null_is_invalid)
	{
		char id[STS_ID_MAX + 1];

		ck_assert_int_eq(sts_txt_parse(NULL, 0, id), -EINVAL);
		ck_assert_int_eq(sts_txt_parse(NULL, 10, id), -EINVAL);
	}
END_TEST

START_TEST(test_txt_reads_only_len_bytes)
	{
		char id[STS_ID_MAX + 1];

		/* the rest of the buffer is not part of the record */
		ck_assert_int_eq(
			sts_txt_parse("v=STSv1; id=abcGARBAGE", 15, id), 0);
		ck_assert_str_eq(id, "abc");
	}
END_TEST

START_TEST(test_pick_the_one_record)
	{
		const char *txts[] = { "v=spf1 -all", "v=STSv1; id=one;",
				       "something else" };
		size_t lens[3];
		char id[STS_ID_MAX + 1];

		for (int i = 0; i < 3; i++)
			lens[i] = strlen(txts[i]);
		ck_assert_int_eq(sts_txt_pick(txts, lens, 3, id), 0);
		ck_assert_str_eq(id, "one");
	}
END_TEST

START_TEST(test_pick_several_or_none_is_no_record)
	{
		const char *two[] = { "v=STSv1; id=one;", "v=STSv1; id=two;" };
		const char *same[] = { "v=STSv1; id=one;", "v=STSv1; id=one;" };
		const char *none[] = { "v=spf1 -all", "v=STSv10; id=x",
				       "v=STSv2;" };
		const char *bad_too[] = { "v=STSv1; id=one;",
					  "v=STSv1 garbage" };
		const char *nul[] = { NULL, "v=STSv1; id=x" };
		size_t lens[3];
		char id[STS_ID_MAX + 1] = "untouched";

		lens[0] = strlen(two[0]);
		lens[1] = strlen(two[1]);
		ck_assert_int_eq(sts_txt_pick(two, lens, 2, id), -ENOENT);
		ck_assert_int_eq(sts_txt_pick(same, lens, 2, id), -ENOENT);
		/* an invalid second candidate still counts (RFC 8461 3.1) */
		lens[1] = strlen(bad_too[1]);
		ck_assert_int_eq(sts_txt_pick(bad_too, lens, 2, id), -ENOENT);
		for (int i = 0; i < 3; i++)
			lens[i] = strlen(none[i]);
		ck_assert_int_eq(sts_txt_pick(none, lens, 3, id), -ENOENT);
		ck_assert_int_eq(sts_txt_pick(none, lens, 0, id), -ENOENT);
		ck_assert_int_eq(sts_txt_pick(NULL, NULL, 3, id), -ENOENT);
		lens[0] = 0;
		lens[1] = strlen(nul[1]);
		ck_assert_int_eq(sts_txt_pick(nul, lens, 2, id), 0);
		ck_assert_str_eq(id, "x");
	}
END_TEST

START_TEST(test_pick_one_invalid_candidate_is_einval)
	{
		const char *txts[] = { "v=STSv1; id=no-dashes", "v=spf1" };
		size_t lens[] = { strlen(txts[0]), strlen(txts[1]) };
		const char *bare[] = { "v=STSv1" };
		size_t bare_len[] = { 7 };
		char id[STS_ID_MAX + 1] = "untouched";

		ck_assert_int_eq(sts_txt_pick(txts, lens, 2, id), -EINVAL);
		ck_assert_int_eq(sts_txt_pick(bare, bare_len, 1, id), -EINVAL);
		ck_assert_str_eq(id, "untouched");
	}
END_TEST

/* ---- the policy -------------------------------------------------------- */

static int
t_parse(const char *text, struct sts_policy *p, char *err, size_t errlen)
{
	return sts_policy_parse(text, strlen(text), p, err, errlen);
}

START_TEST(test_policy_rfc_example)
	{
		static const char *const bodies[] = {
			T_RFC_POLICY,
			"version: STSv1\r\nmode: enforce\r\nmx: "
			"mail.example.com\r\n"
			"mx: *.example.net\r\nmx: backupmx.example.com\r\n"
			"max_age: 604800\r\n",
			/* no final line end, fields in another order, blanks */
			"max_age:604800\nmx: mail.example.com \t\n"
			"mx:\t*.example.net\nmode: enforce\n\n"
			"mx: backupmx.example.com\r\nversion: STSv1",
		};

		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]);
		     i++) {
			struct sts_policy p;
			char err[64] = "untouched";

			memset(&p, 0xa5, sizeof(p));
			ck_assert_int_eq(
				t_parse(bodies[i], &p, err, sizeof(err)), 0);
			ck_assert_str_eq(err, "untouched");
			ck_assert_int_eq(p.mode, STS_MODE_ENFORCE);
			ck_assert_uint_eq(p.max_age, 604800);
			ck_assert_uint_eq(p.n_mx, 3);
			ck_assert_str_eq(p.mx[0], "mail.example.com");
			ck_assert_str_eq(p.mx[1], "*.example.net");
			ck_assert_str_eq(p.mx[2], "backupmx.example.com");
		}
	}
END_TEST

START_TEST(test_policy_modes_and_optional_mx)
	{
		struct sts_policy p;

		ck_assert_int_eq(
			t_parse("version: STSv1\nmode: none\nmax_age: 0\n", &p,
				NULL, 0),
			0);
		ck_assert_int_eq(p.mode, STS_MODE_NONE);
		ck_assert_uint_eq(p.max_age, 0);
		ck_assert_uint_eq(p.n_mx, 0);
		ck_assert_int_eq(
			t_parse("version: STSv1\nmode: testing\n"
				"mx: MX.Example.ORG\nmax_age: 31557600\n",
				&p, NULL, 0),
			0);
		ck_assert_int_eq(p.mode, STS_MODE_TESTING);
		ck_assert_uint_eq(p.max_age, STS_MAX_AGE_MAX);
		ck_assert_str_eq(p.mx[0], "mx.example.org");
		/* mode none may still list mx */
		ck_assert_int_eq(
			t_parse("version: STSv1\nmode: none\nmax_age: 1\n"
				"mx: a.example\n",
				&p, NULL, 0),
			0);
		ck_assert_uint_eq(p.n_mx, 1);
		/* leading zeros are digits */
		ck_assert_int_eq(t_parse("version: STSv1\nmode: none\n"
					 "max_age: 0000000060\n",
					 &p, NULL, 0),
				 0);
		ck_assert_uint_eq(p.max_age, 60);
	}
END_TEST

START_TEST(test_policy_ignores_unknown_fields)
	{
		struct sts_policy p;

		ck_assert_int_eq(t_parse("version: STSv1\nfoo: bar baz\n"
					 "x_y.z-1: caf\xc3\xa9 \xe2\x82\xac\n"
					 "mode: enforce\nVersion: whatever\n"
					 "mx: a.example\nmax_age: 5\nempty:\n",
					 &p, NULL, 0),
				 0);
		ck_assert_int_eq(p.mode, STS_MODE_ENFORCE);
		ck_assert_uint_eq(p.n_mx, 1);
	}
END_TEST

#define T_HEAD "version: STSv1\nmode: enforce\nmax_age: 86400\n"

static const struct {
	const char *text;
	size_t len; /* 0: strlen(text) */
	const char *err;
} t_bad_policies[] = {
	{ "mode: enforce\nmx: a.example\nmax_age: 1\n", 0, "missing version" },
	{ "version: STSv1\nmx: a.example\nmax_age: 1\n", 0, "missing mode" },
	{ "version: STSv1\nmode: enforce\nmx: a.example\n", 0,
	  "missing max_age" },
	{ T_HEAD, 0, "missing mx" },
	{ "version: STSv1\nmode: testing\nmax_age: 1\n", 0, "missing mx" },
	{ "", 0, "missing version" },
	{ "\n\r\n\n", 0, "missing version" },
	{ "version: STSv2\nmode: none\nmax_age: 1\n", 0,
	  "line 1: bad version" },
	{ "version: stsv1\n", 0, "line 1: bad version" },
	{ "version: STSv1 x\n", 0, "line 1: bad version" },
	{ "version: STSv1\nmode: Enforce\n", 0, "line 2: bad mode" },
	{ "version: STSv1\nmode: reject\n", 0, "line 2: bad mode" },
	{ "version: STSv1\nmode:\n", 0, "line 2: bad mode" },
	{ "version: STSv1\nmax_age: -1\n", 0, "line 2: bad max_age" },
	{ "version: STSv1\nmax_age: 1 2\n", 0, "line 2: bad max_age" },
	{ "version: STSv1\nmax_age:\n", 0, "line 2: bad max_age" },
	{ "version: STSv1\nmax_age: 0x10\n", 0, "line 2: bad max_age" },
	{ "version: STSv1\nmax_age: 00000000001\n", 0, "line 2: bad max_age" },
	{ "version: STSv1\nmax_age: 31557601\n", 0,
	  "line 2: max_age over 31557600" },
	{ "version: STSv1\nmax_age: 9999999999\n", 0,
	  "line 2: max_age over 31557600" },
	{ T_HEAD "mode: enforce\n", 0, "line 4: duplicate mode" },
	{ T_HEAD "mode: none\n", 0, "line 4: duplicate mode" },
	{ T_HEAD "version: STSv1\n", 0, "line 4: duplicate version" },
	{ T_HEAD "max_age: 86400\n", 0, "line 4: duplicate max_age" },
	{ T_HEAD "no colon here\n", 0, "line 4: bad key" },
	{ T_HEAD "mode : enforce\n", 0, "line 4: bad key" },
	{ T_HEAD " mx: a.example\n", 0, "line 4: bad key" },
	{ T_HEAD ": value\n", 0, "line 4: bad key" },
	{ T_HEAD "_x: value\n", 0, "line 4: bad key" },
	{ T_HEAD "k234567890123456789012345678901234: v\n", 0,
	  "line 4: bad key" },
	{ T_HEAD "ext: a\x01 b\n", 0, "line 4: bad value" },
	{ T_HEAD "ext: a\x7f\n", 0, "line 4: bad value" },
	{ T_HEAD "ext: a\rb\n", 0, "line 4: bad value" },
	{ T_HEAD "mx: a.example\r\r\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx:\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: *\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: *.\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: **.example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: a.*.example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: *example.com\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: mx.example.com.\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: .example.com\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: a..example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: -a.example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: a-.example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: a.example-\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: under_score.example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: b\xc3\xbc"
		 "cher.example\n",
	  0, "line 4: bad mx" },
	{ T_HEAD "mx: a.example b.example\n", 0, "line 4: bad mx" },
	{ T_HEAD "mx: a.example,b.example\n", 0, "line 4: bad mx" },
	/* NUL bytes inside */
	{ T_HEAD "mx: a.ex\0ample\n", sizeof(T_HEAD) - 1 + 15,
	  "line 4: bad mx" },
	{ T_HEAD "ext: \0\n", sizeof(T_HEAD) - 1 + 7, "line 4: bad value" },
	{ T_HEAD "\0mx: a.example\n", sizeof(T_HEAD) - 1 + 15,
	  "line 4: bad key" },
};

START_TEST(test_policy_rejections)
	{
		const char *text = t_bad_policies[_i].text;
		size_t len = t_bad_policies[_i].len ? t_bad_policies[_i].len :
						      strlen(text);
		struct sts_policy p, before;
		char err[80] = "";

		memset(&p, 0x5a, sizeof(p));
		before = p;
		ck_assert_msg(sts_policy_parse(text, len, &p, err,
					       sizeof(err)) == -EINVAL,
			      "case %d accepted", _i);
		ck_assert_msg(strcmp(err, t_bad_policies[_i].err) == 0,
			      "case %d: err \"%s\", want \"%s\"", _i, err,
			      t_bad_policies[_i].err);
		ck_assert(memcmp(&p, &before, sizeof(p)) == 0);
	}
END_TEST

START_TEST(test_policy_err_is_bounded_and_optional)
	{
		struct sts_policy p;
		char err[8];

		memset(err, 'x', sizeof(err));
		ck_assert_int_eq(t_parse("mode: none\n", &p, err, sizeof(err)),
				 -EINVAL);
		ck_assert_str_eq(err, "missing");
		ck_assert_int_eq(t_parse("mode: none\n", &p, NULL, 0), -EINVAL);
		ck_assert_int_eq(t_parse("mode: none\n", &p, err, 0), -EINVAL);
		ck_assert_int_eq(sts_policy_parse(NULL, 0, &p, NULL, 0),
				 -EINVAL);
	}
END_TEST

/* A valid policy of exactly len bytes: the RFC example padded with an
 * unknown field's long value. */
static char *
t_padded_policy(size_t len)
{
	static const char head[] = T_RFC_POLICY "pad: ";
	char *s = malloc(len);

	ck_assert_uint_gt(len, sizeof(head));
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, 'p', len - sizeof(head));
	s[len - 1] = '\n';
	return s;
}

START_TEST(test_policy_size_bound)
	{
		struct sts_policy p;
		char err[64] = "";
		char *s;

		s = t_padded_policy(STS_POLICY_MAX);
		ck_assert_int_eq(sts_policy_parse(s, STS_POLICY_MAX, &p, err,
						  sizeof(err)),
				 0);
		ck_assert_uint_eq(p.n_mx, 3);
		free(s);
		s = t_padded_policy(STS_POLICY_MAX + 1);
		ck_assert_int_eq(sts_policy_parse(s, STS_POLICY_MAX + 1, &p,
						  err, sizeof(err)),
				 -EMSGSIZE);
		ck_assert_str_eq(err, "policy over 65536 bytes");
		free(s);
	}
END_TEST

/* T_HEAD and n lines "mx: mxI.example". */
static char *
t_mx_policy(size_t n)
{
	size_t cap = sizeof(T_HEAD) + n * 32, len;
	char *s = malloc(cap);

	len = (size_t)snprintf(s, cap, "%s", T_HEAD);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len,
					"mx: mx%zu.example\n", i);
	return s;
}

START_TEST(test_policy_mx_count_bound)
	{
		struct sts_policy p;
		char err[64] = "";
		char *s;

		s = t_mx_policy(STS_MX_MAX);
		ck_assert_int_eq(t_parse(s, &p, err, sizeof(err)), 0);
		ck_assert_uint_eq(p.n_mx, STS_MX_MAX);
		ck_assert_str_eq(p.mx[STS_MX_MAX - 1], "mx31.example");
		free(s);
		s = t_mx_policy(STS_MX_MAX + 1);
		ck_assert_int_eq(t_parse(s, &p, err, sizeof(err)), -EINVAL);
		ck_assert_str_eq(err, "more than 32 mx");
		free(s);
	}
END_TEST

/* A name of len bytes: labels of 63 'a' (or up to the end), and a
 * 1..63-byte last label, prefixed with "*." when wild (counted). */
static void
t_name(char *out, size_t len, bool is_wild)
{
	size_t i = 0, label = 0;

	if (is_wild) {
		memcpy(out, "*.", 2);
		i = 2;
	}
	for (; i < len; i++) {
		/* a dot after 63 bytes, never first or last */
		if (label == 63 && i + 1 < len) {
			out[i] = '.';
			label = 0;
		} else {
			out[i] = (char)('a' + (label % 26));
			label++;
		}
	}
	out[len] = '\0';
}

START_TEST(test_policy_name_and_label_bounds)
	{
		char name[400], text[600];
		struct sts_policy p;

		/* 253 bytes: the longest name; 254 is too long */
		t_name(name, STS_NAME_MAX, false);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), 0);
		ck_assert_str_eq(p.mx[0], name);
		ck_assert(sts_mx_match(&p, name));
		t_name(name, STS_NAME_MAX + 1, false);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), -EINVAL);
		/* "*." counts */
		t_name(name, STS_NAME_MAX, true);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), 0);
		t_name(name, STS_NAME_MAX + 1, true);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), -EINVAL);
		/* 300 bytes */
		t_name(name, 300, false);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), -EINVAL);
		/* labels: 63 bytes fit, 64 do not */
		memset(name, 'a', 64);
		memcpy(name + 64, ".example", 9);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name + 1);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), 0);
		snprintf(text, sizeof(text), T_HEAD "mx: %s\n", name);
		ck_assert_int_eq(t_parse(text, &p, NULL, 0), -EINVAL);
	}
END_TEST

START_TEST(test_policy_accepts_idn_a_labels_and_digits)
	{
		struct sts_policy p;

		ck_assert_int_eq(t_parse(T_HEAD
					 "mx: XN--Bcher-KVA.Example\n"
					 "mx: *.xn--80ak6aa92e.com\n"
					 "mx: 123.45.example\nmx: localhost\n",
					 &p, NULL, 0),
				 0);
		ck_assert_uint_eq(p.n_mx, 4);
		ck_assert_str_eq(p.mx[0], "xn--bcher-kva.example");
		ck_assert_str_eq(p.mx[1], "*.xn--80ak6aa92e.com");
	}
END_TEST

/* ---- MX patterns ------------------------------------------------------- */

static const struct {
	const char *host;
	bool want;
} t_hosts[] = {
	{ "mail.example.com", true },
	{ "MAIL.Example.COM", true },
	{ "mail.example.com.", true },
	{ "mail.example.com..", false },
	{ "mail.example.com.evil.test", false },
	{ "evilmail.example.com", false },
	{ "ail.example.com", false },
	{ "example.com", false },
	/* wildcard: exactly one extra leftmost label */
	{ "mx.example.net", true },
	{ "MX1.EXAMPLE.NET.", true },
	{ "x.example.net", true },
	{ "a.b.example.net", false },
	{ "example.net", false },
	{ ".example.net", false },
	{ "mx..example.net", false },
	{ "mxexample.net", false },
	{ "mx.example.net.evil", false },
	{ "mx.xexample.net", false },
	{ "mx.example.neT.", true },
	/* IDN-looking labels: A-labels compare as ASCII; raw UTF-8 does not
	 * equal its A-label */
	{ "xn--bcher-kva.example", true },
	{ "XN--BCHER-KVA.EXAMPLE.", true },
	{ "b\xc3\xbc"
	  "cher.example",
	  false },
	{ "B\xc3\x9c"
	  "CHER.example",
	  false },
	{ "mx.xn--80ak6aa92e.com", true },
	{ "a.mx.xn--80ak6aa92e.com", false },
	/* degenerate */
	{ "", false },
	{ ".", false },
	{ "..", false },
	{ "*.example.org", false },
};

static void
t_match_policy(struct sts_policy *p)
{
	ck_assert_int_eq(t_parse(T_HEAD "mx: mail.example.com\n"
					"mx: *.example.net\n"
					"mx: xn--bcher-kva.example\n"
					"mx: *.xn--80ak6aa92e.com\n",
				 p, NULL, 0),
			 0);
}

START_TEST(test_mx_match_table)
	{
		struct sts_policy p;

		t_match_policy(&p);
		ck_assert_msg(
			sts_mx_match(&p, t_hosts[_i].host) == t_hosts[_i].want,
			"\"%s\": want %d", t_hosts[_i].host, t_hosts[_i].want);
	}
END_TEST

START_TEST(test_mx_match_bounds)
	{
		struct sts_policy p, none;
		char host[400];

		t_match_policy(&p);
		ck_assert(!sts_mx_match(&p, NULL));
		ck_assert(!sts_mx_match(NULL, "mail.example.com"));
		memset(&none, 0, sizeof(none));
		ck_assert(!sts_mx_match(&none, "mail.example.com"));
		/* over-long names match nothing, even with the wildcard's suffix */
		memset(host, 'a', 300);
		memcpy(host + 300, ".example.net", 13);
		ck_assert(!sts_mx_match(&p, host));
		/* a 253-byte name under the wildcard matches, 254 does not */
		memset(host, 'a', sizeof(host));
		memcpy(host + 253 - 12, ".example.net", 13);
		host[0] = 'a';
		ck_assert_uint_eq(strlen(host), 253);
		/* one 241-byte label is not a DNS name, but the match only counts
	 * dots; what matters is the length bound */
		ck_assert(sts_mx_match(&p, host));
		memmove(host + 1, host, 254);
		ck_assert_uint_eq(strlen(host), 254);
		ck_assert(!sts_mx_match(&p, host));
		/* a trailing dot does not count against the bound */
		memmove(host, host + 1, 254);
		strcat(host, ".");
		ck_assert(sts_mx_match(&p, host));
		/* n_mx past STS_MX_MAX (a corrupt cache) is read as STS_MX_MAX */
		p.n_mx = 1000;
		ck_assert(sts_mx_match(&p, "mail.example.com"));
	}
END_TEST

/* ---- policy-string ----------------------------------------------------- */

START_TEST(test_policy_strings_lines)
	{
		char lines[STS_LINES_MAX][STS_LINE_MAX];
		struct sts_policy p;
		size_t n;

		ck_assert_int_eq(t_parse(T_RFC_POLICY, &p, NULL, 0), 0);
		n = sts_policy_strings(&p, lines, STS_LINES_MAX);
		ck_assert_uint_eq(n, 6);
		ck_assert_str_eq(lines[0], "version: STSv1");
		ck_assert_str_eq(lines[1], "mode: enforce");
		ck_assert_str_eq(lines[2], "mx: mail.example.com");
		ck_assert_str_eq(lines[3], "mx: *.example.net");
		ck_assert_str_eq(lines[4], "mx: backupmx.example.com");
		ck_assert_str_eq(lines[5], "max_age: 604800");
		/* bounded by max */
		ck_assert_uint_eq(sts_policy_strings(&p, lines, 3), 3);
		ck_assert_str_eq(lines[2], "mx: mail.example.com");
		ck_assert_uint_eq(sts_policy_strings(&p, lines, 0), 0);
		ck_assert_uint_eq(sts_policy_strings(NULL, lines, 5), 0);
		/* a policy without mx */
		ck_assert_int_eq(
			t_parse("version: STSv1\nmode: none\nmax_age: 9\n", &p,
				NULL, 0),
			0);
		ck_assert_uint_eq(sts_policy_strings(&p, lines, STS_LINES_MAX),
				  3);
		ck_assert_str_eq(lines[1], "mode: none");
		ck_assert_str_eq(lines[2], "max_age: 9");
	}
END_TEST

START_TEST(test_policy_strings_fit_the_largest_policy)
	{
		char lines[STS_LINES_MAX][STS_LINE_MAX], name[STS_NAME_MAX + 1];
		struct sts_policy p;

		memset(&p, 0, sizeof(p));
		p.mode = STS_MODE_TESTING;
		p.max_age = STS_MAX_AGE_MAX;
		p.n_mx = STS_MX_MAX;
		t_name(name, STS_NAME_MAX, true);
		for (size_t i = 0; i < STS_MX_MAX; i++)
			memcpy(p.mx[i], name, sizeof(name));
		ck_assert_uint_eq(sts_policy_strings(&p, lines, STS_LINES_MAX),
				  STS_LINES_MAX);
		ck_assert_uint_eq(strlen(lines[2]), 4 + STS_NAME_MAX);
		ck_assert_str_eq(lines[STS_LINES_MAX - 1], "max_age: 31557600");
		ck_assert_str_eq(sts_mode_name(STS_MODE_ENFORCE), "enforce");
		ck_assert_str_eq(sts_mode_name(STS_MODE_NONE), "none");
		ck_assert_str_eq(sts_mode_name((enum sts_mode)42), "");
	}
END_TEST

static Suite *
sts_policy_suite(void)
{
	Suite *s = suite_create("sts_policy");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_txt_table, 0,
			    sizeof(t_txts) / sizeof(t_txts[0]));
	tcase_add_test(tc, test_txt_null_is_invalid);
	tcase_add_test(tc, test_txt_reads_only_len_bytes);
	tcase_add_test(tc, test_pick_the_one_record);
	tcase_add_test(tc, test_pick_several_or_none_is_no_record);
	tcase_add_test(tc, test_pick_one_invalid_candidate_is_einval);
	tcase_add_test(tc, test_policy_rfc_example);
	tcase_add_test(tc, test_policy_modes_and_optional_mx);
	tcase_add_test(tc, test_policy_ignores_unknown_fields);
	tcase_add_loop_test(tc, test_policy_rejections, 0,
			    sizeof(t_bad_policies) / sizeof(t_bad_policies[0]));
	tcase_add_test(tc, test_policy_err_is_bounded_and_optional);
	tcase_add_test(tc, test_policy_size_bound);
	tcase_add_test(tc, test_policy_mx_count_bound);
	tcase_add_test(tc, test_policy_name_and_label_bounds);
	tcase_add_test(tc, test_policy_accepts_idn_a_labels_and_digits);
	tcase_add_loop_test(tc, test_mx_match_table, 0,
			    sizeof(t_hosts) / sizeof(t_hosts[0]));
	tcase_add_test(tc, test_mx_match_bounds);
	tcase_add_test(tc, test_policy_strings_lines);
	tcase_add_test(tc, test_policy_strings_fit_the_largest_policy);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(sts_policy_suite)
