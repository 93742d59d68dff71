/* Check suite for adaptive shaping: the rules file (lib/config.c
 * config_shaping_load(), its checks in lib/config_check.c, the built-in
 * deploy/shaping.rules), the table of actions (node/delivery/adapt.c:
 * provider rollup by MX patterns, which replies fire which rule, repeats,
 * merging copies from other nodes, clearing, expiry, what applies to a
 * destination), the caps on top of delivery.limits (shaping.c) and the
 * verdict for a held job (outcome.c). Time is passed in, never slept. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"
#include "node/delivery/adapt.h"
#include "node/delivery/outcome.h"
#include "node/delivery/shaping.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/reply_helper.h"

#define NOW 1800000000000ull /* unix ms */

static const char rules_text[] =
	"providers = (\n"
	"  { name = \"google\"; mx = [ \"*.google.com\", \"mx.exact.test\" ]; },\n"
	"  { name = \"other\"; mx = [ \"*.other.test\" ]; }\n"
	");\n"
	"rules = (\n"
	"  { name = \"g-rate\"; provider = \"google\"; code = \"421\";\n"
	"    enhanced = \"4.7.28\"; action = \"suspend\"; duration = 600; },\n"
	"  { name = \"tss04\"; text = \"TSS04\"; action = \"suspend_source\";\n"
	"    duration = 60; },\n"
	"  { name = \"slow\"; code = \"4\"; text = \"slow down\";\n"
	"    action = \"rate\"; rate = 2.5; duration = 30; },\n"
	"  { name = \"conns\"; code = \"5\"; text = \"too many connections\";\n"
	"    action = \"connections\"; connections = 3; duration = 30; }\n"
	");\n";

static struct cfg_shaping *
load_text(const char *text, char *err, size_t errlen, int *rc)
{
	char path[128];
	struct cfg_shaping *sh = NULL;

	check_write_temp(path, sizeof(path), "rules", text, strlen(text));
	*rc = config_shaping_load(path, &sh, err, errlen);
	unlink(path);
	return sh;
}

static struct adapt *
adapt_with_rules(void)
{
	char err[512];
	int rc;
	struct cfg_shaping *sh = load_text(rules_text, err, sizeof(err), &rc);

	ck_assert_msg(rc == 0, "%s", err);
	return adapt_new("n1", sh);
}

static struct adapt_action
action(const char *key, enum cfg_shaping_kind kind, uint64_t stamp,
       uint64_t expires, const char *origin)
{
	struct adapt_action x;

	memset(&x, 0, sizeof(x));
	snprintf(x.key, sizeof(x.key), "%s", key);
	x.kind = kind;
	x.stamp_ms = stamp;
	x.expires_ms = expires;
	snprintf(x.origin, sizeof(x.origin), "%s", origin);
	snprintf(x.rule, sizeof(x.rule), "manual");
	if (kind == CFG_SHAPING_RATE)
		x.rate = 1;
	if (kind == CFG_SHAPING_CONNECTIONS)
		x.connections = 1;
	if (kind == CFG_SHAPING_SUSPEND_SOURCE)
		snprintf(x.source, sizeof(x.source), "192.0.2.1");
	return x;
}

/* ---- the rules file ------------------------------------------------------ */

START_TEST(test_adapt_builtin_rules_load)
{
	struct cfg_shaping *sh = NULL;
	char err[512];
	const char *mx[] = { "alt1.gmail-smtp-in.l.google.com." };
	struct adapt *a;

	ck_assert_msg(config_shaping_load(NULL, &sh, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_str_eq(sh->path, "(built-in)");
	ck_assert_uint_ge(sh->n_providers, 5);
	ck_assert_uint_ge(sh->n_rules, 10);
	a = adapt_new("n1", sh);
	ck_assert_str_eq(adapt_provider(a, mx, 1), "google");
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_rules_file_errors)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "rules = ( { name = \"a\"; action = \"suspend\"; "
		  "duration = 5; } );",
		  "needs code, enhanced or text" },
		{ "rules = ( { name = \"a\"; text = \"x\"; provider = \"nope\"; "
		  "action = \"suspend\"; duration = 5; } );",
		  "provider \"nope\" is not in providers" },
		{ "rules = ( { name = \"a\"; text = \"x\"; action = \"rate\"; "
		  "duration = 5; } );",
		  "needs rate >= 0.001" },
		{ "rules = ( { name = \"a\"; text = \"x\"; "
		  "action = \"connections\"; duration = 5; } );",
		  "needs connections >= 1" },
		{ "rules = ( { name = \"a\"; enhanced = \"4.7\"; "
		  "action = \"suspend\"; duration = 5; } );",
		  "enhanced" },
		{ "rules = ( { name = \"a\"; code = \"42\"; "
		  "action = \"suspend\"; duration = 5; } );",
		  "code" },
		{ "rules = ( { name = \"a\"; text = \"x\"; "
		  "action = \"explode\"; duration = 5; } );",
		  "rules[0].action: unknown value" },
		{ "rules = ( { name = \"a\"; text = \"x\"; "
		  "action = \"suspend\"; duration = 0; } );",
		  "duration" },
		{ "rules = ( { name = \"a\"; text = \"x\"; action = \"suspend\"; "
		  "duration = 5; },\n { name = \"a\"; text = \"y\"; "
		  "action = \"suspend\"; duration = 5; } );",
		  "duplicate rule" },
		{ "providers = ( { name = \"p\"; mx = [ \"bad host!\" ]; } );",
		  "not a host name" },
		{ "rules = ( { name = \"a\"; text = \"x\"; action = \"suspend\"; "
		  "duration = 5; typo = 1; } );",
		  "unknown key" },
		{ "rules = ( { name = \"a\" ", "syntax error" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[512];
		int rc;
		struct cfg_shaping *sh = load_text(bad[i].text, err,
						   sizeof(err), &rc);

		ck_assert_msg(rc != 0 && sh == NULL, "case %zu loaded", i);
		ck_assert_msg(strstr(err, bad[i].want) != NULL,
			      "case %zu: \"%s\" lacks \"%s\"", i, err,
			      bad[i].want);
		ck_assert_msg(strstr(err, "/tmp/shoal-test-rules-") == err,
			      "case %zu: no file name: %s", i, err);
	}
}
END_TEST

START_TEST(test_adapt_missing_file)
{
	struct cfg_shaping *sh = NULL;
	char err[512];

	ck_assert_int_ne(config_shaping_load("/nonexistent/rules", &sh, err,
					     sizeof(err)),
			 0);
	ck_assert_ptr_null(sh);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/rules"));
}
END_TEST

/* ---- providers and rules ------------------------------------------------ */

START_TEST(test_adapt_provider_rollup)
{
	struct adapt *a = adapt_with_rules();
	const char *g[] = { "aspmx.l.google.com", "alt2.aspmx.l.GOOGLE.com." };
	const char *exact[] = { "MX.exact.test." };
	const char *none[] = { "google.com.evil.test", "xgoogle.com",
			       "google.com" };

	ck_assert_str_eq(adapt_provider(a, g, 2), "google");
	ck_assert_str_eq(adapt_provider(a, exact, 1), "google");
	ck_assert_ptr_null(adapt_provider(a, none, 3));
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_rule_matching)
{
	struct adapt *a = adapt_with_rules();
	struct adapt_action x;
	struct smtpc_reply r;

	/* provider-only rule: not from another provider's host */
	r = reply(421, "4.7.28", "rate limited");
	ck_assert(!adapt_observe(a, NULL, "mx.test", "", false, &r, NOW, &x));
	ck_assert(adapt_observe(a, "google", "aspmx.l.google.com", "", false,
				&r, NOW, &x));
	ck_assert_str_eq(x.key, "google");
	ck_assert_int_eq(x.kind, CFG_SHAPING_SUSPEND);
	ck_assert_str_eq(x.rule, "g-rate");
	ck_assert_str_eq(x.origin, "n1");
	ck_assert_uint_eq(x.expires_ms, NOW + 600000);
	ck_assert_ptr_nonnull(strstr(x.trigger, "421 4.7.28 rate limited"));
	/* the code class and text, case-insensitively */
	r = reply(451, "", "Please SLOW DOWN now");
	ck_assert(adapt_observe(a, NULL, "mx.b.test", "", false, &r, NOW, &x));
	ck_assert_int_eq(x.kind, CFG_SHAPING_RATE);
	ck_assert_str_eq(x.key, "mx.b.test"); /* no provider: the host */
	ck_assert(x.rate == 2.5);
	/* wrong class */
	r = reply(550, "", "slow down");
	ck_assert(!adapt_observe(a, NULL, "mx.c.test", "", false, &r, NOW, &x));
	/* 2xx never */
	r = reply(250, "", "slow down TSS04");
	ck_assert(!adapt_observe(a, NULL, "mx.c.test", "", false, &r, NOW, &x));
	ck_assert_uint_eq(adapt_fired(a, CFG_SHAPING_SUSPEND), 1);
	ck_assert_uint_eq(adapt_fired(a, CFG_SHAPING_RATE), 1);
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_text_scan_is_bounded)
{
	struct adapt *a = adapt_with_rules();
	struct adapt_action x;
	struct smtpc_reply r = reply(421, "", "");
	size_t pad = CLASSIFY_SCAN_MAX;

	/* past the scanned bytes: not seen */
	memset(r.text, 'x', pad);
	memcpy(r.text + pad, "TSS04", 6);
	ck_assert(!adapt_observe(a, NULL, "mx.test", "", false, &r, NOW, &x));
	/* positive control: the same words inside the window */
	memcpy(r.text + pad - 10, "TSS04", 5);
	ck_assert(adapt_observe(a, NULL, "mx.test", "", false, &r, NOW, &x));
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_repeats_spread_once)
{
	struct adapt *a = adapt_with_rules();
	struct adapt_action x;
	struct smtpc_reply r = reply(421, "4.7.28", "rate limited");

	ck_assert(adapt_observe(a, "google", "h", "", false, &r, NOW, &x));
	/* a burst: nothing new */
	ck_assert(!adapt_observe(a, "google", "h", "", false, &r, NOW + 1000,
				 &x));
	ck_assert(!adapt_observe(a, "google", "h", "", false, &r,
				 NOW + 299000, &x));
	/* past half of it: lengthened, news again */
	ck_assert(adapt_observe(a, "google", "h", "", false, &r, NOW + 301000,
				&x));
	ck_assert_uint_eq(x.expires_ms, NOW + 301000 + 600000);
	ck_assert_uint_eq(adapt_count(a), 1);
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_source_rule_needs_a_pool)
{
	struct adapt *a = adapt_with_rules();
	struct adapt_action x;
	struct smtpc_reply r = reply(421, "", "[TSS04] deferred");

	ck_assert(adapt_observe(a, NULL, "mx.y.test", "192.0.2.7", true, &r,
				NOW, &x));
	ck_assert_int_eq(x.kind, CFG_SHAPING_SUSPEND_SOURCE);
	ck_assert_str_eq(x.source, "192.0.2.7");
	/* without a pool the one source is the destination */
	ck_assert(adapt_observe(a, NULL, "mx.z.test", "192.0.2.7", false, &r,
				NOW, &x));
	ck_assert_int_eq(x.kind, CFG_SHAPING_SUSPEND);
	ck_assert_str_eq(x.source, "");
	adapt_free(a);
}
END_TEST

/* ---- the table -------------------------------------------------------- */

START_TEST(test_adapt_merge_newest_wins)
{
	struct adapt *a = adapt_new("n1", NULL);
	struct adapt_action x = action("google", CFG_SHAPING_SUSPEND, NOW,
				       NOW + 60000, "n2");
	struct adapt_action older = x, tie = x, cleared = x;

	ck_assert(adapt_merge(a, &x, NOW));
	ck_assert(!adapt_merge(a, &x, NOW)); /* the same copy again */
	older.stamp_ms = NOW - 1;
	older.expires_ms = NOW + 999999;
	ck_assert(!adapt_merge(a, &older, NOW));
	ck_assert_uint_eq(adapt_at(a, 0)->expires_ms, NOW + 60000);
	/* equal stamps: the larger origin, whichever comes first */
	snprintf(tie.origin, sizeof(tie.origin), "n3");
	ck_assert(adapt_merge(a, &tie, NOW));
	ck_assert(!adapt_merge(a, &x, NOW));
	ck_assert_str_eq(adapt_at(a, 0)->origin, "n3");
	/* a resume made later wins; the suspension no longer applies */
	cleared.stamp_ms = NOW + 5;
	cleared.cleared = true;
	ck_assert(adapt_merge(a, &cleared, NOW + 5));
	ck_assert(!adapt_merge(a, &tie, NOW + 6));
	ck_assert_uint_eq(adapt_live(a, CFG_SHAPING_SUSPEND, NOW + 6), 0);
	/* an expired copy is not taken */
	x = action("other", CFG_SHAPING_SUSPEND, NOW, NOW + 10, "n2");
	ck_assert(!adapt_merge(a, &x, NOW + 10));
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_merge_refuses_bad_copies)
{
	struct adapt *a = adapt_new("n1", NULL);
	struct adapt_action x;

	x = action("", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_RATE, NOW, NOW + 1000, "n2");
	x.rate = 0;
	ck_assert(!adapt_merge(a, &x, NOW));
	x.rate = 1.0 / 0.0;
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_CONNECTIONS, NOW, NOW + 1000, "n2");
	x.connections = 0;
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND_SOURCE, NOW, NOW + 1000, "n2");
	x.source[0] = '\0';
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	x.kind = (enum cfg_shaping_kind)9;
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	memset(x.key, 'a', sizeof(x.key)); /* no NUL */
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "");
	ck_assert(!adapt_merge(a, &x, NOW));
	/* bytes that would forge log lines, in key, origin or rule */
	x = action("k\nFAKE", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2 x");
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	snprintf(x.rule, sizeof(x.rule), "a\"b");
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND_SOURCE, NOW, NOW + 1000, "n2");
	snprintf(x.source, sizeof(x.source), "1.2.3.4 x");
	ck_assert(!adapt_merge(a, &x, NOW));
	/* a rate so small it would hold mail unseen */
	x = action("k", CFG_SHAPING_RATE, NOW, NOW + 1000, "n2");
	x.rate = 1e-300;
	ck_assert(!adapt_merge(a, &x, NOW));
	/* stamped or expiring beyond any clock skew: pinned for ever, or
	 * a resume that could not win */
	x = action("k", CFG_SHAPING_SUSPEND, UINT64_MAX, NOW + 1000, "n2");
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW, UINT64_MAX, "n2");
	ck_assert(!adapt_merge(a, &x, NOW));
	x = action("k", CFG_SHAPING_SUSPEND, NOW,
		   NOW + ADAPT_SKEW_MS + ADAPT_DURATION_MAX * 1000ull + 1, "n2");
	ck_assert(!adapt_merge(a, &x, NOW));
	ck_assert_uint_eq(adapt_count(a), 0);
	/* the bounds themselves are fine */
	x = action("k", CFG_SHAPING_SUSPEND, NOW + ADAPT_SKEW_MS,
		   NOW + ADAPT_SKEW_MS + ADAPT_DURATION_MAX * 1000ull, "n2");
	ck_assert(adapt_merge(a, &x, NOW));
	adapt_free(a);
	a = adapt_new("n1", NULL);
	/* positive control */
	x = action("k", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	ck_assert(adapt_merge(a, &x, NOW));
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_table_evicts_what_expires_first)
{
	struct adapt *a = adapt_new("n1", NULL);

	struct adapt_action x;

	/* full of copies, one expiring sooner than the rest */
	for (size_t i = 0; i < ADAPT_ACTIONS_MAX; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%zu.test", i);
		x = action(key, CFG_SHAPING_SUSPEND, NOW,
			   NOW + (i == 7 ? 500 : 1000), "n2");
		ck_assert(adapt_merge(a, &x, NOW));
	}
	ck_assert_uint_eq(adapt_count(a), ADAPT_ACTIONS_MAX);
	/* one more: the copy expiring first makes room, no more */
	x = action("new.test", CFG_SHAPING_SUSPEND, NOW, NOW + 2000, "n2");
	ck_assert(adapt_merge(a, &x, NOW));
	ck_assert_uint_eq(adapt_count(a), ADAPT_ACTIONS_MAX);
	ck_assert_ptr_null(adapt_domain_suspended(a, "k7.test", NOW));
	ck_assert_ptr_nonnull(adapt_domain_suspended(a, "k8.test", NOW));
	ck_assert_ptr_nonnull(adapt_domain_suspended(a, "new.test", NOW));
	/* a cleared copy goes before any live one */
	ck_assert_uint_eq(adapt_clear(a, "k9.test", NOW + 1, NULL, NULL), 1);
	x = action("newer.test", CFG_SHAPING_SUSPEND, NOW, NOW + 2000, "n2");
	ck_assert(adapt_merge(a, &x, NOW + 1));
	x = action("k9.test", CFG_SHAPING_SUSPEND, NOW, NOW + 1000, "n2");
	ck_assert_ptr_null(adapt_lookup(a, &x));
	ck_assert_uint_eq(adapt_expire(a, NOW + 1000), ADAPT_ACTIONS_MAX - 2);
	ck_assert_uint_eq(adapt_count(a), 2);
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_check_applies_by_provider_host_and_domain)
{
	struct adapt *a = adapt_with_rules();
	const char *g[] = { "aspmx.l.google.com" };
	const char *h[] = { "mx1.small.test", "mx2.small.test" };
	struct adapt_verdict v;
	struct adapt_action x;
	uint64_t version = adapt_version(a);

	ck_assert_uint_ne(version, 0);
	x = action("google", CFG_SHAPING_SUSPEND, NOW, NOW + 5000, "n2");
	ck_assert(adapt_merge(a, &x, NOW));
	ck_assert_uint_gt(adapt_version(a), version);
	adapt_check(a, "google", g, 1, NOW, &v);
	ck_assert_uint_eq(v.until_ms, NOW + 5000);
	ck_assert_ptr_nonnull(v.suspend);
	adapt_check(a, NULL, h, 2, NOW, &v); /* positive control: not these */
	ck_assert_uint_eq(v.until_ms, 0);
	/* a host of the destination, any case */
	x = action("MX2.small.test", CFG_SHAPING_RATE, NOW, NOW + 5000, "n2");
	x.rate = 4;
	ck_assert(adapt_merge(a, &x, NOW));
	x = action("mx1.small.test", CFG_SHAPING_RATE, NOW + 1, NOW + 5000,
		   "n2");
	x.rate = 2;
	ck_assert(adapt_merge(a, &x, NOW));
	x = action("mx1.small.test", CFG_SHAPING_CONNECTIONS, NOW, NOW + 5000,
		   "n2");
	x.connections = 7;
	ck_assert(adapt_merge(a, &x, NOW));
	adapt_check(a, NULL, h, 2, NOW, &v);
	ck_assert_uint_eq(v.until_ms, 0);
	ck_assert(v.rate == 2);  /* the smaller cap */
	ck_assert_uint_eq(v.connections, 7);
	/* past expiry nothing applies, even before the sweep */
	adapt_check(a, NULL, h, 2, NOW + 5000, &v);
	ck_assert(v.rate == 0 && v.connections == 0);
	/* a recipient domain */
	x = action("Small.test", CFG_SHAPING_SUSPEND, NOW, NOW + 5000, "n2");
	ck_assert(adapt_merge(a, &x, NOW));
	ck_assert_ptr_nonnull(adapt_domain_suspended(a, "small.test", NOW));
	ck_assert_ptr_null(adapt_domain_suspended(a, "other.test", NOW));
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_source_suspension)
{
	struct adapt *a = adapt_new("n1", NULL);
	const char *h[] = { "mx.big.test" };
	struct adapt_action x = action("mx.big.test", CFG_SHAPING_SUSPEND_SOURCE,
				       NOW, NOW + 9000, "n2");
	uint64_t until = 0;
	struct adapt_verdict v;

	ck_assert(adapt_merge(a, &x, NOW));
	ck_assert(adapt_source_suspended(a, NULL, h, 1, "192.0.2.1", NOW,
					 &until));
	ck_assert_uint_eq(until, NOW + 9000);
	ck_assert(!adapt_source_suspended(a, NULL, h, 1, "192.0.2.2", NOW,
					  &until));
	/* the destination as a whole goes on */
	adapt_check(a, NULL, h, 1, NOW, &v);
	ck_assert_uint_eq(v.until_ms, 0);
	adapt_free(a);
}
END_TEST

START_TEST(test_adapt_clear_and_expire)
{
	struct adapt *a = adapt_new("n1", NULL);
	struct adapt_action x = action("google", CFG_SHAPING_SUSPEND, NOW,
				       NOW + 5000, "n2");
	struct adapt_action y = action("yahoo", CFG_SHAPING_SUSPEND, NOW,
				       NOW + 3000, "n2");

	ck_assert(adapt_merge(a, &x, NOW));
	ck_assert(adapt_merge(a, &y, NOW));
	ck_assert_uint_eq(adapt_next_expiry(a), NOW + 3000);
	ck_assert_uint_eq(adapt_clear(a, "GOOGLE", NOW + 1, NULL, NULL), 1);
	ck_assert_uint_eq(adapt_clear(a, "google", NOW + 2, NULL, NULL), 0);
	ck_assert_uint_eq(adapt_live(a, CFG_SHAPING_SUSPEND, NOW + 2), 1);
	/* the cleared copy stays until its expiry: it beats late copies */
	ck_assert(!adapt_merge(a, &x, NOW + 2));
	ck_assert_uint_eq(adapt_expire(a, NOW + 3000), 1);
	ck_assert_uint_eq(adapt_count(a), 1);
	ck_assert_uint_eq(adapt_expire(a, NOW + 5000), 1);
	ck_assert_uint_eq(adapt_next_expiry(a), 0);
	adapt_free(a);
}
END_TEST

/* ---- caps and the held job's verdict ---------------------------------- */

START_TEST(test_adapt_caps_on_limits)
{
	struct config c;
	struct cfg_limit l = { 0 };
	struct shaping s;
	uint64_t t = 1000000000;

	memset(&c, 0, sizeof(c));
	l.domain = "*";
	l.max_connections = 10;
	l.max_msgs_per_conn = 100;
	l.max_msgs_per_sec = 0;
	c.delivery.limits = &l;
	c.delivery.n_limits = 1;
	shaping_for_domain(&c, "x.test", 1.0, &s);
	ck_assert_uint_eq(shaping_max_conns(&s), 10);
	ck_assert_uint_eq(shaping_take(&s, t), 0); /* unlimited */
	ck_assert_uint_eq(shaping_take(&s, t), 0);
	shaping_set_caps(&s, 2.0, 3);
	ck_assert_uint_eq(shaping_max_conns(&s), 3);
	ck_assert_uint_eq(shaping_take(&s, t), 0);
	ck_assert_uint_gt(shaping_take(&s, t), 0); /* 2/s: paced now */
	shaping_set_caps(&s, 0, 0);
	ck_assert_uint_eq(shaping_max_conns(&s), 10);
	ck_assert_uint_eq(shaping_take(&s, t), 0);
}
END_TEST

START_TEST(test_adapt_held_verdict)
{
	struct outcome_verdict v;

	for (int i = 0; i < 50; i++) {
		outcome_of_suspension(1000, 1600, &v);
		ck_assert_int_eq(v.outcome, OUTCOME_DEFERRED);
		ck_assert_int_eq(v.category, CLASSIFY_RATE_LIMITED);
		ck_assert_str_eq(v.status, "4.4.5");
		ck_assert_uint_ge(v.retry_at, 1600);
		ck_assert_uint_le(v.retry_at, 1660);
	}
	/* a suspension already over: due again at once */
	outcome_of_suspension(1000, 900, &v);
	ck_assert_uint_eq(v.retry_at, 1001);
}
END_TEST

static Suite *
adapt_suite(void)
{
	Suite *s = suite_create("adapt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_adapt_builtin_rules_load);
	tcase_add_test(tc, test_adapt_rules_file_errors);
	tcase_add_test(tc, test_adapt_missing_file);
	tcase_add_test(tc, test_adapt_provider_rollup);
	tcase_add_test(tc, test_adapt_rule_matching);
	tcase_add_test(tc, test_adapt_text_scan_is_bounded);
	tcase_add_test(tc, test_adapt_repeats_spread_once);
	tcase_add_test(tc, test_adapt_source_rule_needs_a_pool);
	tcase_add_test(tc, test_adapt_merge_newest_wins);
	tcase_add_test(tc, test_adapt_merge_refuses_bad_copies);
	tcase_add_test(tc, test_adapt_table_evicts_what_expires_first);
	tcase_add_test(tc, test_adapt_check_applies_by_provider_host_and_domain);
	tcase_add_test(tc, test_adapt_source_suspension);
	tcase_add_test(tc, test_adapt_clear_and_expire);
	tcase_add_test(tc, test_adapt_caps_on_limits);
	tcase_add_test(tc, test_adapt_held_verdict);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(adapt_suite)
