/* Check suite for TLS-RPT text (node/tls/tlsrpt_json.c): the _smtp._tls
 * TXT record and its rua URIs (RFC 8460 3) with every rejection and
 * bound, the choice among several records, the report JSON (4.3, 4.4)
 * parsed back with jansson, hostile strings still giving valid JSON, and
 * gzip checked by inflating it with zlib. */
#include "node/tls/tlsrpt_json.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "node/tls/sts_policy.h"
#include "tests/unit/check_helpers.h"

/* 2026-12-07T00:00:00Z and 23:59:59Z */
#define T_DAY_START 1796601600ull
#define T_DAY_END 1796687999ull

/* ---- the TXT record ---------------------------------------------------- */

static const struct {
	const char *txt;
	int want;
	size_t n, n_skipped;
	const char *uri0, *addr0; /* the first URI kept and its address */
} t_txts[] = {
	/* RFC 8460 3's examples */
	{ "v=TLSRPTv1; rua=mailto:reports@example.com", 0, 1, 0,
	  "mailto:reports@example.com", "reports@example.com" },
	{ "v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", 0, 1, 0,
	  "https://reporting.example.com/v1/tlsrpt", "" },
	{ "v=TLSRPTv1; rua=mailto:reports@example.com,"
	  "https://reporting.example.com/v1/tlsrpt",
	  0, 2, 0, "mailto:reports@example.com", "reports@example.com" },
	/* separators */
	{ "v=TLSRPTv1;rua=mailto:a@x.test , https://r.test/p ;", 0, 2, 0,
	  "mailto:a@x.test", "a@x.test" },
	{ "v=TLSRPTv1 ;\trua=mailto:a@x.test\t; ", 0, 1, 0, "mailto:a@x.test",
	  "a@x.test" },
	{ "v=TLSRPTv1; foo=bar; rua=mailto:a@x.test; baz=1", 0, 1, 0,
	  "mailto:a@x.test", "a@x.test" },
	/* two rua fields add up */
	{ "v=TLSRPTv1; rua=mailto:a@x.test; rua=https://r.test/", 0, 2, 0,
	  "mailto:a@x.test", "a@x.test" },
	/* schemes in any case; the URI is kept as written */
	{ "v=TLSRPTv1; rua=MAILTO:A@X.test", 0, 1, 0, "MAILTO:A@X.test",
	  "A@X.test" },
	{ "v=TLSRPTv1; rua=HTTPS://R.test/x?y=z&w=1", 0, 1, 0,
	  "HTTPS://R.test/x?y=z&w=1", "" },
	/* mailto: address decoding, query and size suffix */
	{ "v=TLSRPTv1; rua=mailto:tls%2Drpt%40x.test", 0, 1, 0,
	  "mailto:tls%2Drpt%40x.test", "tls-rpt@x.test" },
	{ "v=TLSRPTv1; rua=mailto:a@x.test?subject=tls", 0, 1, 0,
	  "mailto:a@x.test?subject=tls", "a@x.test" },
	{ "v=TLSRPTv1; rua=mailto:a@x.test!10m", 0, 1, 0, "mailto:a@x.test",
	  "a@x.test" },
	{ "v=TLSRPTv1; rua=mailto:a@x.test!100", 0, 1, 0, "mailto:a@x.test",
	  "a@x.test" },
	{ "v=TLSRPTv1; rua=mailto:a!b@x.test", 0, 1, 0, "mailto:a!b@x.test",
	  "a!b@x.test" },
	/* unusable URIs are skipped, counted */
	{ "v=TLSRPTv1; rua=http://r.test/,mailto:a@x.test", 0, 1, 1,
	  "mailto:a@x.test", "a@x.test" },
	{ "v=TLSRPTv1; rua=mailto:nobody,mailto:a@x.test", 0, 1, 1,
	  "mailto:a@x.test", "a@x.test" },
	{ "v=TLSRPTv1; rua=mailto:a%2Cb@x.test,mailto:@x.test,mailto:a@,"
	  "mailto:a%0Ab@x.test,mailto:%zz@x.test,mailto:a@x.test%",
	  -ENOTSUP, 0, 6, NULL, NULL },
	{ "v=TLSRPTv1; rua=https://,https:///p,https://?q,https:r.test,"
	  "ftp://r.test/,mailto:",
	  -ENOTSUP, 0, 6, NULL, NULL },
	{ "v=TLSRPTv1; rua=http://r.test/", -ENOTSUP, 0, 1, NULL, NULL },
	/* malformed records */
	{ "v=TLSRPTv1", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1;", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; foo=bar", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; RUA=mailto:a@x.test", -EINVAL, 0, 0, NULL, NULL },
	{ "V=TLSRPTv1; rua=mailto:a@x.test", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv2; rua=mailto:a@x.test", -EINVAL, 0, 0, NULL, NULL },
	{ "rua=mailto:a@x.test; v=TLSRPTv1", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1rua=mailto:a@x.test", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1 rua=mailto:a@x.test", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=;", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b,,mailto:c@d", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b,", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b mailto:c@d", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=<mailto:a@b>", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b\x01", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:\xc3\xa9@b", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=\"mailto:a@b\"", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b; x=", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b; =x", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b; x=a=b", -EINVAL, 0, 0, NULL, NULL },
	{ "v=TLSRPTv1; rua=mailto:a@b;;", -EINVAL, 0, 0, NULL, NULL },
};

START_TEST(test_txt_table)
	{
		struct tlsrpt_rua r;
		int rc;

		memset(&r, 0x5a, sizeof(r));
		rc = tlsrpt_txt_parse(t_txts[_i].txt, strlen(t_txts[_i].txt),
				      &r);
		ck_assert_msg(rc == t_txts[_i].want, "\"%s\": %d, want %d",
			      t_txts[_i].txt, rc, t_txts[_i].want);
		if (rc != 0) {
			ck_assert_uint_eq(
				r.n, 0x5a5a5a5a5a5a5a5aull); /* untouched */
			return;
		}
		ck_assert_uint_eq(r.n, t_txts[_i].n);
		ck_assert_uint_eq(r.n_skipped, t_txts[_i].n_skipped);
		ck_assert_str_eq(r.uri[0], t_txts[_i].uri0);
		ck_assert_str_eq(r.addr[0], t_txts[_i].addr0);
		ck_assert_int_eq(r.scheme[0], t_txts[_i].addr0[0] != '\0' ?
						      TLSRPT_MAILTO :
						      TLSRPT_HTTPS);
	}
END_TEST

START_TEST(test_txt_schemes_of_each_uri)
	{
		static const char txt[] = "v=TLSRPTv1; rua=mailto:a@x.test,"
					  "https://r.test/v1,mailto:b@x.test";
		struct tlsrpt_rua r;

		ck_assert_int_eq(tlsrpt_txt_parse(txt, strlen(txt), &r), 0);
		ck_assert_uint_eq(r.n, 3);
		ck_assert_int_eq(r.scheme[0], TLSRPT_MAILTO);
		ck_assert_int_eq(r.scheme[1], TLSRPT_HTTPS);
		ck_assert_str_eq(r.uri[1], "https://r.test/v1");
		ck_assert_str_eq(r.addr[1], "");
		ck_assert_int_eq(r.scheme[2], TLSRPT_MAILTO);
		ck_assert_str_eq(r.addr[2], "b@x.test");
	}
END_TEST

START_TEST(test_txt_keeps_eight_uris)
	{
		char txt[1024];
		size_t len =
			(size_t)snprintf(txt, sizeof(txt), "v=TLSRPTv1; rua=");
		struct tlsrpt_rua r;

		for (int i = 0; i < 10; i++)
			len += (size_t)snprintf(txt + len, sizeof(txt) - len,
						"%smailto:r%d@x.test",
						i ? "," : "", i);
		ck_assert_int_eq(tlsrpt_txt_parse(txt, len, &r), 0);
		ck_assert_uint_eq(r.n, TLSRPT_RUA_MAX);
		ck_assert_uint_eq(r.n_skipped, 2);
		ck_assert_str_eq(r.addr[7], "r7@x.test");
	}
END_TEST

START_TEST(test_txt_uri_length_bound)
	{
		char txt[2048], uri[TLSRPT_URI_MAX + 2];
		struct tlsrpt_rua r;
		size_t len;

		/* https://r.test/ and a path up to 512 bytes in all */
		memcpy(uri, "https://r.test/", 15);
		memset(uri + 15, 'p', TLSRPT_URI_MAX - 15);
		uri[TLSRPT_URI_MAX] = '\0';
		len = (size_t)snprintf(txt, sizeof(txt), "v=TLSRPTv1; rua=%s",
				       uri);
		ck_assert_int_eq(tlsrpt_txt_parse(txt, len, &r), 0);
		ck_assert_str_eq(r.uri[0], uri);
		uri[TLSRPT_URI_MAX] = 'p';
		uri[TLSRPT_URI_MAX + 1] = '\0';
		len = (size_t)snprintf(txt, sizeof(txt),
				       "v=TLSRPTv1; rua=%s,mailto:a@x.test",
				       uri);
		ck_assert_int_eq(tlsrpt_txt_parse(txt, len, &r), 0);
		ck_assert_uint_eq(r.n, 1);
		ck_assert_uint_eq(r.n_skipped, 1);
		ck_assert_str_eq(r.uri[0], "mailto:a@x.test");
		/* the "!size" suffix does not count */
		uri[TLSRPT_URI_MAX] = '\0';
		len = (size_t)snprintf(txt, sizeof(txt),
				       "v=TLSRPTv1; rua=%s!50m", uri);
		ck_assert_int_eq(tlsrpt_txt_parse(txt, len, &r), 0);
		ck_assert_str_eq(r.uri[0], uri);
	}
END_TEST

START_TEST(test_txt_mailto_address_bound)
	{
		char txt[1024], local[400];
		struct tlsrpt_rua r;
		size_t len;

		/* 320 bytes decoded fit, 321 do not */
		memset(local, 'l', 320 - 7);
		local[320 - 7] = '\0';
		len = (size_t)snprintf(txt, sizeof(txt),
				       "v=TLSRPTv1; rua=mailto:%s@x.test",
				       local);
		ck_assert_int_eq(tlsrpt_txt_parse(txt, len, &r), 0);
		ck_assert_uint_eq(strlen(r.addr[0]), TLSRPT_ADDR_MAX);
		len = (size_t)snprintf(txt, sizeof(txt),
				       "v=TLSRPTv1; rua=mailto:l%s@x.test",
				       local);
		ck_assert_int_eq(tlsrpt_txt_parse(txt, len, &r), -ENOTSUP);
	}
END_TEST

START_TEST(test_txt_nul_and_null)
	{
		static const char txt[] = "v=TLSRPTv1; rua=mailto:a@x\0.test";
		struct tlsrpt_rua r;

		ck_assert_int_eq(tlsrpt_txt_parse(txt, sizeof(txt) - 1, &r),
				 -EINVAL);
		ck_assert_int_eq(tlsrpt_txt_parse(NULL, 10, &r), -EINVAL);
		/* only len bytes are read */
		ck_assert_int_eq(tlsrpt_txt_parse(txt, 26, &r), 0);
		ck_assert_str_eq(r.addr[0], "a@x");
	}
END_TEST

START_TEST(test_pick_records)
	{
		const char *one[] = { "v=spf1 -all",
				      "v=TLSRPTv1; rua=mailto:a@x.test",
				      "v=TLSRPTv10; rua=mailto:b@x.test" };
		const char *two[] = { "v=TLSRPTv1; rua=mailto:a@x.test",
				      "v=TLSRPTv1; rua=mailto:b@x.test" };
		const char *bad[] = { "v=TLSRPTv1; rua=ftp://x.test/" };
		size_t lens[3];
		struct tlsrpt_rua r;

		for (int i = 0; i < 3; i++)
			lens[i] = strlen(one[i]);
		ck_assert_int_eq(tlsrpt_txt_pick(one, lens, 3, &r), 0);
		ck_assert_str_eq(r.addr[0], "a@x.test");
		ck_assert_int_eq(tlsrpt_txt_pick(one, lens, 1, &r), -ENOENT);
		ck_assert_int_eq(tlsrpt_txt_pick(one, lens, 0, &r), -ENOENT);
		ck_assert_int_eq(tlsrpt_txt_pick(NULL, NULL, 2, &r), -ENOENT);
		lens[0] = strlen(two[0]);
		lens[1] = strlen(two[1]);
		ck_assert_int_eq(tlsrpt_txt_pick(two, lens, 2, &r), -ENOENT);
		lens[0] = strlen(bad[0]);
		ck_assert_int_eq(tlsrpt_txt_pick(bad, lens, 1, &r), -ENOTSUP);
	}
END_TEST

/* ---- the report -------------------------------------------------------- */

static json_t *
t_load(const char *text)
{
	json_error_t e;
	json_t *doc;

	ck_assert_ptr_nonnull(text);
	doc = json_loads(text, 0, &e);
	ck_assert_msg(doc != NULL, "invalid JSON (%s at %d): %s", e.text,
		      e.position, text);
	return doc;
}

static const char *
t_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "no string \"%s\"", key);
	return json_string_value(v);
}

static json_int_t
t_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "no integer \"%s\"", key);
	return json_integer_value(v);
}

START_TEST(test_report_fields)
	{
		static const struct tlsrpt_failure fail[] = {
			{ "certificate-expired", "192.0.2.1", "mx1.dest.test",
			  "198.51.100.7", 3 },
			{ "starttls-not-supported", "", "mx2.dest.test", "",
			  1 },
		};
		char lines[STS_LINES_MAX][STS_LINE_MAX];
		const char *strings[STS_LINES_MAX];
		const char *mx[] = { "*.dest.test" };
		struct tlsrpt_policy pol[2];
		struct tlsrpt_report r;
		struct sts_policy sp;
		static const char body[] = "version: STSv1\nmode: testing\n"
					   "mx: *.dest.test\nmax_age: 86400\n";
		json_t *doc, *p, *o, *f;
		size_t n;
		char *text;

		ck_assert_int_eq(
			sts_policy_parse(body, strlen(body), &sp, NULL, 0), 0);
		n = sts_policy_strings(&sp, lines, STS_LINES_MAX);
		for (size_t i = 0; i < n; i++)
			strings[i] = lines[i];
		memset(pol, 0, sizeof(pol));
		strcpy(pol[0].type, "sts");
		pol[0].n_strings = n;
		pol[0].strings = strings;
		strcpy(pol[0].domain, "dest.test");
		pol[0].n_mx_host = 1;
		pol[0].mx_host = mx;
		pol[0].success = 1000;
		pol[0].failure = 4;
		pol[0].n_fail = 2;
		pol[0].fail = fail;
		strcpy(pol[1].type, "no-policy-found");
		strcpy(pol[1].domain, "dest.test");
		pol[1].success = 7;
		r = (struct tlsrpt_report){
			.org = "Shoal Test",
			.contact = "mailto:postmaster@shoal.test",
			.report_id = "2026-12-07T00:00:00Z_dest.test",
			.start = T_DAY_START,
			.end = T_DAY_END,
			.n = 2,
			.pol = pol
		};
		text = tlsrpt_report_json(&r);
		doc = t_load(text);
		ck_assert_str_eq(t_str(doc, "organization-name"), "Shoal Test");
		ck_assert_str_eq(t_str(doc, "contact-info"),
				 "mailto:postmaster@shoal.test");
		ck_assert_str_eq(t_str(doc, "report-id"),
				 "2026-12-07T00:00:00Z_dest.test");
		o = json_object_get(doc, "date-range");
		ck_assert_str_eq(t_str(o, "start-datetime"),
				 "2026-12-07T00:00:00Z");
		ck_assert_str_eq(t_str(o, "end-datetime"),
				 "2026-12-07T23:59:59Z");
		p = json_object_get(doc, "policies");
		ck_assert(json_is_array(p));
		ck_assert_uint_eq(json_array_size(p), 2);
		/* the sts policy */
		o = json_object_get(json_array_get(p, 0), "policy");
		ck_assert_str_eq(t_str(o, "policy-type"), "sts");
		ck_assert_str_eq(t_str(o, "policy-domain"), "dest.test");
		ck_assert_uint_eq(
			json_array_size(json_object_get(o, "policy-string")),
			4);
		ck_assert_str_eq(
			json_string_value(json_array_get(
				json_object_get(o, "policy-string"), 2)),
			"mx: *.dest.test");
		ck_assert_str_eq(json_string_value(json_array_get(
					 json_object_get(o, "mx-host"), 0)),
				 "*.dest.test");
		o = json_object_get(json_array_get(p, 0), "summary");
		ck_assert_int_eq(t_int(o, "total-successful-session-count"),
				 1000);
		ck_assert_int_eq(t_int(o, "total-failure-session-count"), 4);
		o = json_object_get(json_array_get(p, 0), "failure-details");
		ck_assert_uint_eq(json_array_size(o), 2);
		f = json_array_get(o, 0);
		ck_assert_str_eq(t_str(f, "result-type"),
				 "certificate-expired");
		ck_assert_str_eq(t_str(f, "sending-mta-ip"), "192.0.2.1");
		ck_assert_str_eq(t_str(f, "receiving-mx-hostname"),
				 "mx1.dest.test");
		ck_assert_str_eq(t_str(f, "receiving-ip"), "198.51.100.7");
		ck_assert_int_eq(t_int(f, "failed-session-count"), 3);
		ck_assert_uint_eq(json_object_size(f), 5);
		/* empty optional fields are left out */
		f = json_array_get(o, 1);
		ck_assert_ptr_null(json_object_get(f, "sending-mta-ip"));
		ck_assert_ptr_null(json_object_get(f, "receiving-ip"));
		ck_assert_str_eq(t_str(f, "receiving-mx-hostname"),
				 "mx2.dest.test");
		ck_assert_uint_eq(json_object_size(f), 3);
		/* no-policy-found: no policy-string, mx-host or failure-details */
		o = json_object_get(json_array_get(p, 1), "policy");
		ck_assert_str_eq(t_str(o, "policy-type"), "no-policy-found");
		ck_assert_ptr_null(json_object_get(o, "policy-string"));
		ck_assert_ptr_null(json_object_get(o, "mx-host"));
		ck_assert_uint_eq(json_object_size(o), 2);
		ck_assert_ptr_null(json_object_get(json_array_get(p, 1),
						   "failure-details"));
		ck_assert_int_eq(
			t_int(json_object_get(json_array_get(p, 1), "summary"),
			      "total-successful-session-count"),
			7);
		ck_assert_uint_eq(json_object_size(doc), 5);
		/* one line */
		ck_assert_ptr_eq(strchr(text, '\n'), text + strlen(text) - 1);
		json_decref(doc);
		free(text);
	}
END_TEST

START_TEST(test_report_empty_and_defaults)
	{
		struct tlsrpt_report r;
		json_t *doc, *o;
		char *text;

		memset(&r, 0, sizeof(r));
		text = tlsrpt_report_json(&r);
		doc = t_load(text);
		ck_assert_str_eq(t_str(doc, "organization-name"), "");
		ck_assert_str_eq(t_str(doc, "contact-info"), "");
		ck_assert_str_eq(t_str(doc, "report-id"), "");
		ck_assert(json_is_array(json_object_get(doc, "policies")));
		ck_assert_uint_eq(
			json_array_size(json_object_get(doc, "policies")), 0);
		o = json_object_get(doc, "date-range");
		ck_assert_str_eq(t_str(o, "start-datetime"),
				 "1970-01-01T00:00:00Z");
		json_decref(doc);
		free(text);
		/* dates past year 9999 are clamped */
		r.start = UINT64_MAX;
		r.end = 253402300800ull;
		text = tlsrpt_report_json(&r);
		doc = t_load(text);
		o = json_object_get(doc, "date-range");
		ck_assert_str_eq(t_str(o, "start-datetime"),
				 "9999-12-31T23:59:59Z");
		ck_assert_str_eq(t_str(o, "end-datetime"),
				 "9999-12-31T23:59:59Z");
		json_decref(doc);
		free(text);
	}
END_TEST

/* Bytes a remote server or a DNS answer may hand us. */
static const char *const t_hostile[] = {
	"quote\" back\\slash /",
	"ctl \x01\x02\x1f\x7f\n\r\t\b\f end",
	"bad utf-8 \xff\xfe \xc3( \x80 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80",
	"cut \xe2\x82",
	"line sep \xe2\x80\xa8 para \xe2\x80\xa9",
	"</script><!-- {\"a\":1} ]]",
	"",
};

START_TEST(test_report_hostile_strings_give_valid_json)
	{
		const char *h = t_hostile[_i];
		struct tlsrpt_failure fail;
		struct tlsrpt_policy pol;
		struct tlsrpt_report r;
		const char *strings[3] = { h, h, NULL };
		json_t *doc, *o, *f;
		char *text;

		memset(&fail, 0, sizeof(fail));
		memset(&pol, 0, sizeof(pol));
		snprintf(fail.result_type, sizeof(fail.result_type), "%s", h);
		snprintf(fail.sending_ip, sizeof(fail.sending_ip), "%s", h);
		snprintf(fail.receiving_mx, sizeof(fail.receiving_mx), "%s", h);
		snprintf(fail.receiving_ip, sizeof(fail.receiving_ip), "%s", h);
		fail.count = UINT64_MAX;
		snprintf(pol.type, sizeof(pol.type), "%s", h);
		snprintf(pol.domain, sizeof(pol.domain), "%s", h);
		pol.n_strings = 3; /* one NULL: written as "" */
		pol.strings = strings;
		pol.n_mx_host = 2;
		pol.mx_host = strings;
		pol.n_fail = 1;
		pol.fail = &fail;
		r = (struct tlsrpt_report){ .org = h,
					    .contact = h,
					    .report_id = h,
					    .n = 1,
					    .pol = &pol };
		text = tlsrpt_report_json(&r);
		doc = t_load(text);
		/* plain ASCII and well-formed UTF-8 come back as they were */
		if (_i == 0 || _i == 1 || _i == 4 || _i == 5) {
			ck_assert_str_eq(t_str(doc, "organization-name"), h);
			ck_assert_str_eq(t_str(doc, "report-id"), h);
		}
		o = json_object_get(
			json_array_get(json_object_get(doc, "policies"), 0),
			"policy");
		ck_assert_uint_eq(
			json_array_size(json_object_get(o, "policy-string")),
			3);
		ck_assert_str_eq(
			json_string_value(json_array_get(
				json_object_get(o, "policy-string"), 2)),
			"");
		f = json_array_get(
			json_object_get(
				json_array_get(json_object_get(doc, "policies"),
					       0),
				"failure-details"),
			0);
		ck_assert(json_is_object(f));
		/* counts past 2^53 - 1 are clamped, so jansson reads them */
		ck_assert_int_eq(t_int(f, "failed-session-count"),
				 9007199254740991ll);
		json_decref(doc);
		free(text);
	}
END_TEST

START_TEST(test_report_invalid_bytes_read_as_latin1)
	{
		struct tlsrpt_report r;
		json_t *doc;
		char *text;

		memset(&r, 0, sizeof(r));
		r.org = "a\xff"
			"b";
		text = tlsrpt_report_json(&r);
		ck_assert_ptr_nonnull(strstr(text, "\"a\\u00ffb\""));
		doc = t_load(text);
		ck_assert_str_eq(t_str(doc, "organization-name"), "a\xc3\xbf"
								  "b");
		json_decref(doc);
		free(text);
	}
END_TEST

START_TEST(test_report_fields_without_nul_are_bounded)
	{
		struct tlsrpt_failure fail;
		struct tlsrpt_policy pol;
		struct tlsrpt_report r;
		json_t *doc, *p, *f;
		char *text;

		/* every fixed field filled to its end, no NUL anywhere */
		memset(&fail, 'f', sizeof(fail));
		fail.count = 1;
		memset(&pol, 0, sizeof(pol));
		memset(pol.type, 't', sizeof(pol.type));
		memset(pol.domain, 'd', sizeof(pol.domain));
		pol.n_fail = 1;
		pol.fail = &fail;
		memset(&r, 0, sizeof(r));
		r.n = 1;
		r.pol = &pol;
		text = tlsrpt_report_json(&r);
		doc = t_load(text);
		p = json_object_get(
			json_array_get(json_object_get(doc, "policies"), 0),
			"policy");
		ck_assert_uint_eq(strlen(t_str(p, "policy-type")),
				  sizeof(pol.type));
		ck_assert_uint_eq(strlen(t_str(p, "policy-domain")),
				  sizeof(pol.domain));
		f = json_array_get(
			json_object_get(
				json_array_get(json_object_get(doc, "policies"),
					       0),
				"failure-details"),
			0);
		ck_assert_uint_eq(strlen(t_str(f, "result-type")),
				  sizeof(fail.result_type));
		ck_assert_uint_eq(strlen(t_str(f, "receiving-mx-hostname")),
				  sizeof(fail.receiving_mx));
		json_decref(doc);
		free(text);
	}
END_TEST

/* ---- gzip -------------------------------------------------------------- */

/* Inflate a gzip stream; the result in *out (caller frees). */
static size_t
t_gunzip(const void *in, size_t len, unsigned char **out)
{
	size_t cap = 1024, n = 0;
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
	*out = malloc(cap);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		if (n == cap) {
			cap *= 2;
			*out = realloc(*out, cap);
		}
		z.next_out = *out + n;
		z.avail_out = (uInt)(cap - n);
		rc = inflate(&z, Z_NO_FLUSH);
		ck_assert_msg(rc == Z_OK || rc == Z_STREAM_END, "inflate %d",
			      rc);
		n = cap - z.avail_out;
	} while (rc != Z_STREAM_END);
	ck_assert_uint_eq(z.avail_in, 0); /* nothing after the trailer */
	inflateEnd(&z);
	return n;
}

START_TEST(test_gzip_round_trip)
	{
		static const size_t sizes[] = { 0,     1,      100,
						16384, 100000, 1 << 20 };
		unsigned char *data = malloc(1 << 20), *back;
		uint32_t x = 12345;

		/* half compressible text, half noise */
		for (size_t i = 0; i < (1u << 20); i++) {
			x = x * 1103515245u + 12345u;
			data[i] = i % 2 ? (unsigned char)(x >> 16) :
					  (unsigned char)("tlsrpt"[i % 6]);
		}
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			struct buf out;
			size_t n;

			buf_init(&out, 4u << 20);
			ck_assert_int_eq(tlsrpt_gzip(data, sizes[k], &out), 0);
			ck_assert_uint_ge(out.len, 18); /* header and trailer */
			ck_assert_int_eq((unsigned char)out.data[0], 0x1f);
			ck_assert_int_eq((unsigned char)out.data[1], 0x8b);
			n = t_gunzip(out.data, out.len, &back);
			ck_assert_uint_eq(n, sizes[k]);
			ck_assert(n == 0 || memcmp(back, data, n) == 0);
			free(back);
			buf_free(&out);
		}
		free(data);
	}
END_TEST

START_TEST(test_gzip_a_report_appends)
	{
		struct tlsrpt_report r;
		struct buf out;
		unsigned char *back;
		char *text;
		size_t n;

		memset(&r, 0, sizeof(r));
		r.org = "Shoal";
		text = tlsrpt_report_json(&r);
		buf_init(&out, 1 << 16);
		ck_assert_int_eq(buf_append(&out, "HEAD", 4), 0);
		ck_assert_int_eq(tlsrpt_gzip(text, strlen(text), &out), 0);
		ck_assert(memcmp(out.data, "HEAD", 4) == 0);
		n = t_gunzip(out.data + 4, out.len - 4, &back);
		ck_assert_uint_eq(n, strlen(text));
		ck_assert(memcmp(back, text, n) == 0);
		free(back);
		buf_free(&out);
		free(text);
	}
END_TEST

START_TEST(test_gzip_bound_keeps_out)
	{
		unsigned char *noise = malloc(100000);
		struct buf out;
		uint32_t x = 7;

		for (size_t i = 0; i < 100000; i++) {
			x = x * 1103515245u + 12345u;
			noise[i] = (unsigned char)(x >> 16);
		}
		buf_init(&out, 1000);
		ck_assert_int_eq(buf_append(&out, "keep", 4), 0);
		ck_assert_int_eq(tlsrpt_gzip(noise, 100000, &out), -EMSGSIZE);
		ck_assert_uint_eq(out.len, 4);
		ck_assert(memcmp(out.data, "keep", 4) == 0);
		/* an exact fit is no error; one byte short is */
		buf_free(&out);
		buf_init(&out, 1 << 20);
		ck_assert_int_eq(tlsrpt_gzip(noise, 500, &out), 0);
		{
			size_t need = out.len;

			buf_free(&out);
			buf_init(&out, need);
			ck_assert_int_eq(tlsrpt_gzip(noise, 500, &out), 0);
			buf_free(&out);
			buf_init(&out, need - 1);
			ck_assert_int_eq(tlsrpt_gzip(noise, 500, &out),
					 -EMSGSIZE);
			ck_assert_uint_eq(out.len, 0);
		}
		buf_free(&out);
		free(noise);
	}
END_TEST

static Suite *
tlsrpt_json_suite(void)
{
	Suite *s = suite_create("tlsrpt_json");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_txt_table, 0,
			    sizeof(t_txts) / sizeof(t_txts[0]));
	tcase_add_test(tc, test_txt_schemes_of_each_uri);
	tcase_add_test(tc, test_txt_keeps_eight_uris);
	tcase_add_test(tc, test_txt_uri_length_bound);
	tcase_add_test(tc, test_txt_mailto_address_bound);
	tcase_add_test(tc, test_txt_nul_and_null);
	tcase_add_test(tc, test_pick_records);
	tcase_add_test(tc, test_report_fields);
	tcase_add_test(tc, test_report_empty_and_defaults);
	tcase_add_loop_test(tc, test_report_hostile_strings_give_valid_json, 0,
			    sizeof(t_hostile) / sizeof(t_hostile[0]));
	tcase_add_test(tc, test_report_invalid_bytes_read_as_latin1);
	tcase_add_test(tc, test_report_fields_without_nul_are_bounded);
	tcase_add_test(tc, test_gzip_round_trip);
	tcase_add_test(tc, test_gzip_a_report_appends);
	tcase_add_test(tc, test_gzip_bound_keeps_out);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(tlsrpt_json_suite)
