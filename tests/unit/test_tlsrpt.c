/* node/policy/tlsrpt: counting per day and policy, the bounds, the day
 * change, the records through a real store (flush at tlsrpt_free, load at
 * tlsrpt_new, markers, cleanup), the report's JSON (parsed back with
 * jansson), and the mailto: report message of node/queue/dsn.c (MIME
 * taken apart, the attachment decoded and gunzipped). Each store test
 * gets a fresh mkdtemp() directory. */
#include "node/policy/tlsrpt.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/log.h"
#include "node/policy/tlsrpt_int.h"
#include "node/queue/dsn.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/tls/sts_policy.h"
#include "node/tls/tlsrpt_json.h"
#include "proto/queue.pb-c.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (256ull << 20)
#define T_DAY 20000u /* 2024-10-04 */

static char t_dir[256];
static struct store *t_st;
static struct commit *t_c;
static struct event_base *t_base;
static struct config t_cfg;

static void
t_setup(void)
{
	log_init("test_tlsrpt", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "tlsrpt");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	t_base = event_base_new();
	t_c = commit_new(t_base, t_st);
	commit_set_rehearse(t_c, true); /* applies must be pure */
	memset(&t_cfg, 0, sizeof(t_cfg));
	t_cfg.cluster.shards = 8;
	t_cfg.delivery.helo_name = "mx.sender.test";
	t_cfg.delivery.tls_report.organization = "Sender Org";
	t_cfg.delivery.tls_report.contact = "mailto:tls@sender.test";
	t_cfg.delivery.tls_report.from = "tlsrpt@sender.test";
}

static void
t_teardown(void)
{
	commit_free(t_c);
	store_close(t_st);
	event_base_free(t_base);
	check_rmtree(t_dir);
}

static struct tlsrpt *
t_new(void)
{
	struct tlsrpt_deps d = {
		.base = t_base, .cfg = &t_cfg, .node_id = "n1",
		.store = t_st, .commit = t_c,
	};
	struct tlsrpt *r = tlsrpt_new(&d);

	ck_assert_ptr_nonnull(r);
	return r;
}

static void
t_count(struct tlsrpt *r, const char *domain, const char *type,
	const char *mx, const char *result)
{
	struct deliver_tls_session s = {
		.domain = domain, .policy_type = type, .mx = mx,
		.ip = "192.0.2.1", .source = "198.51.100.7", .result = result,
	};

	tlsrpt_count(r, &s);
}

/* Today's report of domain, parsed. */
static json_t *
t_report(struct tlsrpt *r, const char *domain)
{
	char *s = tlsrpt_report_today(r, domain);
	json_error_t e;
	json_t *j;

	ck_assert_ptr_nonnull(s);
	j = json_loads(s, 0, &e);
	ck_assert_msg(j != NULL, "bad JSON %s: %s", s, e.text);
	free(s);
	return j;
}

static json_int_t
t_int(const json_t *o, const char *path1, const char *path2)
{
	const json_t *v = json_object_get(o, path1);

	if (path2)
		v = json_object_get(v, path2);
	ck_assert_msg(json_is_integer(v), "%s.%s", path1, path2 ? path2 : "");
	return json_integer_value(v);
}

/* ---- pure ---- */

struct t_dom {
	const char *in, *out;
};

static const struct t_dom t_doms[] = {
	{ "Example.COM", "example.com" },
	{ "example.com.", "example.com" },
	{ "_a-b.x1.test", "_a-b.x1.test" },
	{ "", NULL },
	{ ".", NULL },
	{ "a..b", NULL },
	{ ".a", NULL },
	{ "a b", NULL },
	{ "a\nb", NULL },
	{ "\xc3\xa9.test", NULL },
	{ "a/b", NULL },
	{ "0123456789012345678901234567890123456789012345678901234567890123"
	  ".test", NULL },
};

START_TEST(test_domain_norm_table)
{
	const struct t_dom *t = &t_doms[_i];
	char out[TLSRPT_DOMAIN_MAX + 1] = "untouched";
	int rc = tlsrpt_domain_norm(t->in, out);

	if (t->out) {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(out, t->out);
	} else {
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert_str_eq(out, "untouched");
	}
}
END_TEST

START_TEST(test_domain_norm_length)
{
	char in[300], out[TLSRPT_DOMAIN_MAX + 1];

	/* 4 labels of 63 and one of 1: 253 */
	snprintf(in, sizeof(in), "%.63s.%.63s.%.63s.%.61s",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		 "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	ck_assert_uint_eq(strlen(in), 253);
	ck_assert_int_eq(tlsrpt_domain_norm(in, out), 0);
	strcat(in, "e");
	ck_assert_int_eq(tlsrpt_domain_norm(in, out), -EINVAL);
}
END_TEST

/* A record with hostile bytes in every text field reads back the same. */
START_TEST(test_record_round_trip)
{
	struct tr_domain *a = calloc(1, sizeof(*a) + 16);
	struct tr_domain *b = calloc(1, sizeof(*b) + 16);
	struct tr_policy *p;
	struct buf out;

	a->pol = calloc(2, sizeof(*a->pol));
	a->n_pol = 2;
	a->pols_dropped = 3;
	p = &a->pol[0];
	p->type = 0;
	p->strs = malloc(40);
	memcpy(p->strs, "version: STSv1\0mode: enforce\0", 29);
	p->strs_len = 29;
	p->n_strs = 2;
	p->mxs = strdup("");
	p->mxs_len = 1;
	p->n_mxs = 1; /* one empty string */
	p->success = 12345678901234ull;
	p->failure = 2;
	p->fails_dropped = 1;
	p->n_fail = p->cap_fail = 1;
	p->fail = calloc(1, sizeof(*p->fail));
	strcpy(p->fail[0].result_type, "certificate-expired");
	strcpy(p->fail[0].sending_ip, "");
	strcpy(p->fail[0].receiving_mx, "m x%20\x7f\xff.test");
	strcpy(p->fail[0].receiving_ip, "2001:db8::1");
	p->fail[0].count = 1;
	a->pol[1].type = 2;
	a->pol[1].success = 5;

	buf_init(&out, STORE_LOCAL_MAX);
	tr_encode(a, &out);
	ck_assert_ptr_null(memchr(out.data, '\0', out.len));
	ck_assert_int_eq(tr_decode(out.data, out.len, b), 0);
	ck_assert_uint_eq(b->n_pol, 2);
	ck_assert_uint_eq(b->pols_dropped, 3);
	ck_assert_int_eq(b->pol[0].type, 0);
	ck_assert_uint_eq(b->pol[0].strs_len, 29);
	ck_assert_mem_eq(b->pol[0].strs, p->strs, 29);
	ck_assert_uint_eq(b->pol[0].n_mxs, 1);
	ck_assert_uint_eq(b->pol[0].success, 12345678901234ull);
	ck_assert_uint_eq(b->pol[0].fails_dropped, 1);
	ck_assert_uint_eq(b->pol[0].n_fail, 1);
	ck_assert_str_eq(b->pol[0].fail[0].receiving_mx,
			 "m x%20\x7f\xff.test");
	ck_assert_str_eq(b->pol[0].fail[0].sending_ip, "");
	ck_assert_uint_eq(b->pol[1].success, 5);

	/* damaged records are refused, never half-read */
	ck_assert_int_eq(tr_decode("tlsrpt 2\n", 9, b), -EINVAL);
	ck_assert_int_eq(tr_decode("tlsrpt 1\np sts 1", 16, b), -EINVAL);
	ck_assert_int_eq(tr_decode("tlsrpt 1\np bad 1 1\n", 19, b), -EINVAL);
	ck_assert_int_eq(tr_decode("tlsrpt 1\ns x\n", 13, b), -EINVAL);
	ck_assert_int_eq(tr_decode("tlsrpt 1\np sts 1 -1\n", 20, b),
			 -EINVAL);
	ck_assert_int_eq(tr_decode("tlsrpt 1\np sts 1 1\ns %0\n", 24, b),
			 -EINVAL);
	ck_assert_int_eq(tr_decode("tlsrpt 1\np sts 1 1\ns %00\n", 25, b),
			 -EINVAL);
	ck_assert_uint_eq(b->n_pol, 0);

	buf_free(&out);
	for (size_t i = 0; i < 2; i++)
		tr_policy_clear(&a->pol[i]);
	free(a->pol);
	free(a);
	free(b->pol);
	free(b);
}
END_TEST

/* ---- counting ---- */

START_TEST(test_count_and_report)
{
	struct tlsrpt *r = t_new();
	struct sts_policy sts;
	struct deliver_tls_session s = {
		.domain = "Dest.TEST", .policy_type = "sts", .sts = &sts,
		.mx = "mx1.dest.test", .ip = "192.0.2.1", .source = "10.0.0.1",
		.result = "",
	};
	const char *tlsa[] = { "3 1 1 abcdef" };
	json_t *j, *pols, *p, *fd;
	char date[11];

	memset(&sts, 0, sizeof(sts));
	sts.mode = STS_MODE_ENFORCE;
	sts.max_age = 86400;
	sts.n_mx = 1;
	strcpy(sts.mx[0], "*.dest.test");
	tlsrpt_count(r, &s);
	tlsrpt_count(r, &s);
	s.result = "certificate-expired";
	tlsrpt_count(r, &s);
	tlsrpt_count(r, &s);
	s.mx = "mx2.dest.test";
	tlsrpt_count(r, &s);
	s.policy_type = "tlsa";
	s.sts = NULL;
	s.tlsa = tlsa;
	s.n_tlsa = 1;
	s.result = "";
	tlsrpt_count(r, &s);
	t_count(r, "dest.test", "no-policy-found", "", "");
	t_count(r, "other.test", "no-policy-found", "", "");
	t_count(r, "dest.test", "bogus", "", ""); /* not counted */
	t_count(r, "bad domain", "sts", "", "");  /* not counted */

	j = t_report(r, "dest.test");
	tr_day_date((uint32_t)(time(NULL) / 86400), date);
	ck_assert_str_eq(json_string_value(json_object_get(
				 j, "organization-name")),
			 "Sender Org");
	ck_assert_str_eq(json_string_value(json_object_get(j, "contact-info")),
			 "mailto:tls@sender.test");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
					     j, "report-id")),
				     ".dest.test.n1@mx.sender.test"));
	ck_assert_int_eq(strncmp(json_string_value(json_object_get(
					 j, "report-id")),
				 date, 10),
			 0);
	pols = json_object_get(j, "policies");
	ck_assert_uint_eq(json_array_size(pols), 3);
	p = json_array_get(pols, 0);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(p, "policy"), "policy-type")),
			 "sts");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(p, "policy"),
				 "policy-domain")),
			 "dest.test");
	ck_assert_int_eq(t_int(p, "summary", "total-successful-session-count"),
			 2);
	ck_assert_int_eq(t_int(p, "summary", "total-failure-session-count"),
			 3);
	fd = json_object_get(p, "failure-details");
	ck_assert_uint_eq(json_array_size(fd), 2);
	ck_assert_int_eq(t_int(json_array_get(fd, 0), "failed-session-count",
			       NULL),
			 2);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(fd, 1),
				 "receiving-mx-hostname")),
			 "mx2.dest.test");
	p = json_array_get(pols, 1);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(p, "policy"), "policy-type")),
			 "tlsa");
	ck_assert_int_eq(t_int(p, "summary", "total-successful-session-count"),
			 1);
	json_decref(j);

	j = t_report(r, "nothing.test"); /* no counts: policies [] */
	ck_assert_uint_eq(json_array_size(json_object_get(j, "policies")), 0);
	json_decref(j);
	tlsrpt_free(r);
}
END_TEST

struct t_metric {
	uint64_t sts_success, sts_expired, none_success, total;
};

static void
t_metric_one(void *arg, const char *policy, const char *result, uint64_t n)
{
	struct t_metric *m = arg;

	m->total += n;
	if (strcmp(policy, "sts") == 0 && strcmp(result, "success") == 0)
		m->sts_success = n;
	if (strcmp(policy, "sts") == 0 &&
	    strcmp(result, "certificate-expired") == 0)
		m->sts_expired = n;
	if (strcmp(policy, "no-policy-found") == 0 &&
	    strcmp(result, "success") == 0)
		m->none_success = n;
}

START_TEST(test_sessions_metric)
{
	struct tlsrpt *r = t_new();
	struct t_metric m = { 0 };

	t_count(r, "a.test", "sts", "mx.a.test", "");
	t_count(r, "a.test", "sts", "mx.a.test", "certificate-expired");
	t_count(r, "b.test", "no-policy-found", "", "");
	t_count(r, "c.test", "sts", "mx.c.test", "made-up-result");
	tlsrpt_sessions(r, t_metric_one, &m);
	ck_assert_uint_eq(m.sts_success, 1);
	ck_assert_uint_eq(m.sts_expired, 1);
	ck_assert_uint_eq(m.none_success, 1);
	ck_assert_uint_eq(m.total, 4);
	memset(&m, 0, sizeof(m));
	tlsrpt_sessions(NULL, t_metric_one, &m);
	ck_assert_uint_eq(m.total, 0);
	tlsrpt_free(r);
}
END_TEST

START_TEST(test_failure_rows_bounded)
{
	struct tlsrpt *r = t_new();
	json_t *j, *p;
	char mx[64];

	for (int i = 0; i < TLSRPT_FAILS_MAX + 8; i++) {
		snprintf(mx, sizeof(mx), "mx%d.dest.test", i);
		t_count(r, "dest.test", "no-policy-found", mx,
			"starttls-not-supported");
	}
	j = t_report(r, "dest.test");
	p = json_array_get(json_object_get(j, "policies"), 0);
	ck_assert_int_eq(t_int(p, "summary", "total-failure-session-count"),
			 TLSRPT_FAILS_MAX + 8);
	ck_assert_uint_eq(json_array_size(json_object_get(p,
							  "failure-details")),
			  TLSRPT_FAILS_MAX);
	json_decref(j);
	tlsrpt_free(r);
}
END_TEST

START_TEST(test_domains_bounded)
{
	struct tlsrpt *r = t_new();
	char d[64];

	for (int i = 0; i < TLSRPT_DOMAINS_MAX + 10; i++) {
		snprintf(d, sizeof(d), "d%d.test", i);
		t_count(r, d, "no-policy-found", "", "");
	}
	ck_assert_uint_eq(r->today.n, TLSRPT_DOMAINS_MAX);
	ck_assert_uint_eq(r->today.dropped, 10);
	/* the first ones are still found through the grown table */
	ck_assert_ptr_nonnull(tr_day_find(&r->today, "d0.test"));
	ck_assert_ptr_nonnull(tr_day_find(&r->today, "d49999.test"));
	ck_assert_ptr_null(tr_day_find(&r->today, "d50000.test"));
	tlsrpt_free(r);
}
END_TEST

START_TEST(test_day_rollover)
{
	struct tlsrpt *r = t_new();
	/* days ahead of the clock: a day before the current one is never
	 * taken (the clock went back) */
	uint32_t d0 = (uint32_t)(time(NULL) / 86400) + 10;
	char t0[32], t1[32];
	json_t *j;

	tlsrpt_set_time(r, (uint64_t)d0 * 86400 + 86000);
	t_count(r, "dest.test", "no-policy-found", "", "");
	ck_assert_uint_eq(r->today.day, d0);
	tlsrpt_set_time(r, (uint64_t)(d0 + 1) * 86400 + 10);
	t_count(r, "dest.test", "no-policy-found", "", "");
	t_count(r, "dest.test", "no-policy-found", "", "");
	ck_assert_uint_eq(r->today.day, d0 + 1);
	ck_assert_uint_eq(r->yday.day, d0);
	ck_assert_uint_eq(tr_day_find(&r->yday, "dest.test")->pol[0].success,
			  1);
	j = t_report(r, "dest.test");
	ck_assert_int_eq(t_int(json_array_get(json_object_get(j, "policies"),
					      0),
			       "summary", "total-successful-session-count"),
			 2);
	tr_day_date(d0 + 1, t0);
	strcpy(t1, t0);
	strcat(t0, "T00:00:00Z");
	strcat(t1, "T23:59:59Z");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(j, "date-range"),
				 "start-datetime")),
			 t0);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(j, "date-range"),
				 "end-datetime")),
			 t1);
	json_decref(j);
	/* two days on: yesterday is gone too */
	tlsrpt_set_time(r, (uint64_t)(d0 + 3) * 86400);
	t_count(r, "x.test", "no-policy-found", "", "");
	ck_assert_uint_eq(r->yday.n, 0);
	ck_assert_ptr_null(tr_day_find(&r->today, "dest.test"));
	tlsrpt_free(r);
}
END_TEST

/* ---- the store ---- */

static bool
t_has_record(const char *name)
{
	struct store_txn *t;
	const void *p;
	size_t len;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	rc = store_local_get(t, name, &p, &len);
	store_txn_abort(t);
	return rc == 0;
}

START_TEST(test_flush_and_load)
{
	struct tlsrpt *r = t_new();
	uint32_t today = (uint32_t)(time(NULL) / 86400);
	char name[TR_NAME_MAX + 1];
	json_t *j;

	t_count(r, "dest.test", "no-policy-found", "", "");
	t_count(r, "dest.test", "no-policy-found", "mx.dest.test",
		"starttls-not-supported");
	tlsrpt_free(r); /* writes the counts */
	tr_name("tlsrpt/", today, "dest.test", name);
	ck_assert(t_has_record(name));

	r = t_new();
	t_count(r, "dest.test", "no-policy-found", "", "");
	j = t_report(r, "dest.test");
	ck_assert_int_eq(t_int(json_array_get(json_object_get(j, "policies"),
					      0),
			       "summary", "total-successful-session-count"),
			 2);
	ck_assert_int_eq(t_int(json_array_get(json_object_get(j, "policies"),
					      0),
			       "summary", "total-failure-session-count"),
			 1);
	json_decref(j);
	tlsrpt_free(r);
}
END_TEST

static void
t_put(const char *name, const char *val)
{
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_local_put(t, name, val, strlen(val)), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
}

START_TEST(test_load_yesterday_marker_and_cleanup)
{
	uint32_t today = (uint32_t)(time(NULL) / 86400);
	char y[TR_NAME_MAX + 1], ys[TR_NAME_MAX + 1], old[TR_NAME_MAX + 1];
	char olds[TR_NAME_MAX + 1], bad[TR_NAME_MAX + 1];
	struct tlsrpt *r;
	struct tr_domain *dom;

	tr_name("tlsrpt/", today - 1, "sent.test", y);
	t_put(y, "tlsrpt 1\nd 0\np sts 4 1\nx 0\n");
	tr_name("tlsrpt-sent/", today - 1, "sent.test", ys);
	t_put(ys, "1");
	tr_name("tlsrpt/", today - 1, "open.test", y);
	t_put(y, "tlsrpt 1\nd 0\np tlsa 7 0\ns 3%201%201%20ab\nm mx.open.test"
		 "\nx 0\n");
	tr_name("tlsrpt/", today - 1, "broken.test", bad);
	t_put(bad, "tlsrpt 1\np sts x\n");
	tr_name("tlsrpt/", today - TLSRPT_KEEP_DAYS - 1, "old.test", old);
	t_put(old, "tlsrpt 1\nd 0\n");
	tr_name("tlsrpt-sent/", today - TLSRPT_KEEP_DAYS - 3, "old.test",
		olds);
	t_put(olds, "1");

	r = t_new();
	ck_assert_uint_eq(r->yday.day, today - 1);
	dom = tr_day_find(&r->yday, "sent.test");
	ck_assert_ptr_nonnull(dom);
	ck_assert(dom->is_sent);
	dom = tr_day_find(&r->yday, "open.test");
	ck_assert_ptr_nonnull(dom);
	ck_assert(!dom->is_sent);
	ck_assert_uint_eq(dom->pol[0].success, 7);
	ck_assert_str_eq(dom->pol[0].strs, "3 1 1 ab");
	ck_assert(tr_has_counts(dom));
	/* a damaged record is skipped: counted as nothing */
	ck_assert(!tr_has_counts(tr_day_find(&r->yday, "broken.test")));

	/* the report went out: the marker is in, the counts are out */
	tr_mark_sent(r, today - 1, "open.test");
	commit_flush(t_c); /* and the cleanup queued at start */
	ck_assert(!t_has_record(y));
	tr_name("tlsrpt-sent/", today - 1, "open.test", ys);
	ck_assert(t_has_record(ys));
	ck_assert(!t_has_record(old));
	ck_assert(!t_has_record(olds));
	tlsrpt_free(r);
}
END_TEST

/* Without DNS nothing can be sent: the daily run goes through and marks
 * nothing; a send by hand is refused at once. */
START_TEST(test_send_without_dns)
{
	struct tlsrpt *r = t_new();

	t_count(r, "dest.test", "no-policy-found", "", "");
	ck_assert_int_eq(tlsrpt_send_today(r, "dest.test", NULL, NULL),
			 -ENOTSUP);
	ck_assert_int_eq(tlsrpt_send_today(r, "bad domain", NULL, NULL),
			 -EINVAL);
	tlsrpt_set_time(r, (uint64_t)time(NULL) + 86400);
	t_count(r, "x.test", "no-policy-found", "", "");
	tr_run_start(r);
	ck_assert_uint_eq(r->run_day, 0); /* over */
	ck_assert(!tr_day_find(&r->yday, "dest.test")->is_sent);
	tlsrpt_free(r);
}
END_TEST

/* ---- the mailto: message ---- */

static char *
t_header(const char *msg, const char *name)
{
	size_t n = strlen(name);
	const char *p = msg;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == msg || p[-1] == '\n') && p[n] == ':') {
			const char *e = strstr(p, "\r\n");

			return strndup(p + n + 2, (size_t)(e - p - n - 2));
		}
		p += n;
	}
	return NULL;
}

static void
t_gunzip(const void *in, size_t len, struct buf *out)
{
	z_stream z;
	char chunk[4096];
	int rc;

	memset(&z, 0, sizeof(z));
	ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	do {
		z.next_out = (Bytef *)chunk;
		z.avail_out = sizeof(chunk);
		rc = inflate(&z, Z_NO_FLUSH);
		ck_assert(rc == Z_OK || rc == Z_STREAM_END);
		buf_append(out, chunk, sizeof(chunk) - z.avail_out);
	} while (rc != Z_STREAM_END);
	inflateEnd(&z);
}

static void
t_check_message(const char *msg, const char *json)
{
	char *h, *boundary, *att, *b64, *end;
	unsigned char *raw;
	size_t o = 0;
	struct buf plain;
	int n;

	ck_assert_ptr_nonnull(strstr(msg, "\r\n\r\n"));
	h = t_header(msg, "TLS-Report-Domain");
	ck_assert_str_eq(h, "dest.test");
	free(h);
	h = t_header(msg, "TLS-Report-Submitter");
	ck_assert_str_eq(h, "mx.sender.test");
	free(h);
	h = t_header(msg, "Subject");
	ck_assert_str_eq(h, "Report Domain: dest.test Submitter: "
			    "mx.sender.test Report-ID: <id-1@mx.sender.test>");
	free(h);
	h = t_header(msg, "To");
	ck_assert_str_eq(h, "<tls@dest.test>");
	free(h);
	h = t_header(msg, "Content-Type");
	ck_assert_ptr_nonnull(strstr(h, "multipart/report"));
	ck_assert_ptr_nonnull(strstr(h, "report-type=\"tlsrpt\""));
	free(h);
	boundary = strstr(msg, "boundary=\"") + 10;
	*strchr(boundary, '"') = '\0';
	ck_assert_ptr_nonnull(strstr(boundary + strlen(boundary) + 1,
				     "Content-Type: text/plain"));
	att = strstr(boundary + strlen(boundary) + 1,
		     "Content-Type: application/tlsrpt+gzip");
	ck_assert_ptr_nonnull(att);
	ck_assert_ptr_nonnull(strstr(att, "Content-Transfer-Encoding: base64"));
	ck_assert_ptr_nonnull(strstr(att, "filename=\"mx.sender.test!dest.test"
					  "!1728000000!1728086399!n1.json.gz"
					  "\""));
	b64 = strstr(att, "\r\n\r\n") + 4;
	end = strstr(b64, "\r\n--");
	ck_assert_ptr_nonnull(end);
	ck_assert_ptr_nonnull(strstr(end + 4, "--\r\n")); /* closed */
	raw = malloc((size_t)(end - b64));
	for (char *line = b64; line < end;) {
		char *e = strstr(line, "\r\n");

		ck_assert_int_le(e - line, 76);
		n = EVP_DecodeBlock(raw + o, (unsigned char *)line,
				    (int)(e - line));
		ck_assert_int_ge(n, 0);
		o += (size_t)n;
		if (e[-1] == '=')
			o -= e[-2] == '=' ? 2 : 1;
		line = e + 2;
	}
	buf_init(&plain, 1 << 20);
	t_gunzip(raw, o, &plain);
	ck_assert_uint_eq(plain.len, strlen(json));
	ck_assert_mem_eq(plain.data, json, plain.len);
	buf_free(&plain);
	free(raw);
}

static const char t_json[] =
	"{\"organization-name\":\"Sender Org\",\"policies\":[]}\n";

static void
t_rep(struct dsn_report *rep, struct buf *gz)
{
	buf_init(gz, 1 << 20);
	ck_assert_int_eq(tlsrpt_gzip(t_json, strlen(t_json), gz), 0);
	*rep = (struct dsn_report){
		.from = "tlsrpt@sender.test", .to = "tls@dest.test",
		.domain = "dest.test", .submitter = "mx.sender.test",
		.report_id = "id-1@mx.sender.test",
		.start = (uint64_t)T_DAY * 86400,
		.end = (uint64_t)T_DAY * 86400 + 86399, .unique = "n1",
		.gz = gz->data, .gz_len = gz->len, .now = 1728000100,
	};
}

START_TEST(test_report_message_mime)
{
	struct dsn_report rep;
	struct buf gz, msg;

	t_rep(&rep, &gz);
	buf_init(&msg, DSN_REPORT_MAX);
	ck_assert_int_eq(dsn_report_build(&rep, &msg), 0);
	buf_append(&msg, "", 1);
	t_check_message(msg.data, t_json);
	buf_free(&msg);
	buf_free(&gz);
}
END_TEST

static bool
t_mine(void *arg, uint32_t shard)
{
	return arg != NULL || shard == 0 || shard != 0;
}

START_TEST(test_report_queued_as_message)
{
	struct dsn_report rep;
	struct dsn_slot slot;
	struct qid_gen g;
	struct buf gz;
	struct store_txn *t;
	const void *p;
	size_t len;
	Shoal__StoredMessage *sm;
	char *body;

	t_rep(&rep, &gz);
	ck_assert_int_eq(qid_gen_init(&g), 0);
	dsn_draw(&g, 8, t_mine, NULL, &slot);
	ck_assert_str_ne(slot.qid, "");
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(dsn_store_report(t, &t_cfg, t_mine, NULL, &slot,
					  &rep),
			 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	ck_assert(slot.is_stored && slot.is_report);
	ck_assert_str_eq(slot.to, "tls@dest.test");

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_msg_get_meta(t, slot.qid, &p, &len), 0);
	sm = shoal__stored_message__unpack(NULL, len, p);
	ck_assert_ptr_nonnull(sm);
	ck_assert_str_eq(sm->envelope->mail_from, "tlsrpt@sender.test");
	ck_assert_uint_eq(sm->envelope->n_rcpts, 1);
	ck_assert_str_eq(sm->envelope->rcpts[0]->address, "tls@dest.test");
	ck_assert_uint_eq(sm->envelope->rcpts[0]->notify,
			  SHOAL__NOTIFY__NOTIFY_NEVER);
	ck_assert_uint_eq(sm->due, rep.now);
	ck_assert_int_eq(store_msg_get_body(t, slot.qid, &p, &len), 0);
	ck_assert_uint_eq(sm->envelope->size, len);
	body = strndup(p, len);
	store_txn_abort(t);
	t_check_message(body, t_json);
	free(body);
	shoal__stored_message__free_unpacked(sm, NULL);
	buf_free(&gz);
}
END_TEST

static bool
t_none(void *arg, uint32_t shard)
{
	(void)arg;
	(void)shard;
	return false;
}

START_TEST(test_report_refused_without_a_shard)
{
	struct dsn_report rep;
	struct dsn_slot slot;
	struct qid_gen g;
	struct buf gz;
	struct store_txn *t;

	t_rep(&rep, &gz);
	ck_assert_int_eq(qid_gen_init(&g), 0);
	dsn_draw(&g, 8, t_none, NULL, &slot);
	ck_assert_str_eq(slot.qid, "");
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(dsn_store_report(t, &t_cfg, t_none, NULL, &slot,
					  &rep),
			 -EAGAIN);
	store_txn_abort(t);
	ck_assert(slot.is_refused && !slot.is_stored);
	buf_free(&gz);
}
END_TEST

static Suite *
tlsrpt_suite(void)
{
	Suite *s = suite_create("tlsrpt");
	TCase *tc = tcase_create("pure");

	tcase_add_loop_test(tc, test_domain_norm_table, 0,
			    sizeof(t_doms) / sizeof(t_doms[0]));
	tcase_add_test(tc, test_domain_norm_length);
	tcase_add_test(tc, test_record_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_count_and_report);
	tcase_add_test(tc, test_sessions_metric);
	tcase_add_test(tc, test_failure_rows_bounded);
	tcase_add_test(tc, test_domains_bounded);
	tcase_add_test(tc, test_day_rollover);
	tcase_add_test(tc, test_flush_and_load);
	tcase_add_test(tc, test_load_yesterday_marker_and_cleanup);
	tcase_add_test(tc, test_send_without_dns);
	tcase_add_test(tc, test_report_message_mime);
	tcase_add_test(tc, test_report_queued_as_message);
	tcase_add_test(tc, test_report_refused_without_a_shard);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(tlsrpt_suite)
