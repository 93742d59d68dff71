/* cli/shaping.c's pure parts: the destination and --for checks (the same
 * as the node's), the merge of several nodes' copies of the table, the
 * checks on actions that come back, and the span shown. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cli/shaping.h"
#include "tests/unit/check_helpers.h"

/* ---- --for ---- */

struct t_dur {
	const char *in;
	int rc;
	uint32_t want;
};

static const struct t_dur t_durs[] = {
	{ "90", 0, 90 },
	{ "90s", 0, 90 },
	{ "1", 0, 1 },
	{ "15m", 0, 900 },
	{ "2h", 0, 7200 },
	{ "1d", 0, 86400 },
	{ "7d", 0, 604800 },
	{ "168h", 0, 604800 },
	{ "10080m", 0, 604800 },
	{ "604800", 0, 604800 },
	{ "604801", -EINVAL, 0 },
	{ "8d", -EINVAL, 0 },
	{ "169h", -EINVAL, 0 },
	{ "0", -EINVAL, 0 },
	{ "0m", -EINVAL, 0 },
	{ "", -EINVAL, 0 },
	{ "m", -EINVAL, 0 },
	{ "-5", -EINVAL, 0 },
	{ "+5", -EINVAL, 0 },
	{ " 5", -EINVAL, 0 },
	{ "5 ", -EINVAL, 0 },
	{ "5x", -EINVAL, 0 },
	{ "5mm", -EINVAL, 0 },
	{ "5M", -EINVAL, 0 },
	{ "1.5h", -EINVAL, 0 },
	{ "99999999999999999999999", -EINVAL, 0 },
	{ "18446744073709551617d", -EINVAL, 0 },
};

START_TEST(test_parse_duration_table)
{
	const struct t_dur *t = &t_durs[_i];
	uint32_t got = 12345;
	int rc = shaping_cmd_parse_duration(t->in, &got);

	ck_assert_msg(rc == t->rc, "\"%s\": rc %d, want %d", t->in, rc,
		      t->rc);
	/* out-parameter written only on success */
	ck_assert_uint_eq(got, t->rc == 0 ? t->want : 12345);
}
END_TEST

/* ---- DEST ---- */

START_TEST(test_key_ok_takes_names_and_refuses_the_rest)
{
	char k[SHAPING_CMD_KEY_MAX + 2];

	ck_assert(shaping_cmd_key_ok("example.com"));
	ck_assert(shaping_cmd_key_ok("gmail-smtp-in.l.google.com"));
	ck_assert(shaping_cmd_key_ok("google"));
	ck_assert(shaping_cmd_key_ok("A_b-9."));
	ck_assert(!shaping_cmd_key_ok(""));
	ck_assert(!shaping_cmd_key_ok("exa mple.com"));
	ck_assert(!shaping_cmd_key_ok("a@b.example"));
	ck_assert(!shaping_cmd_key_ok("*.example.com"));
	ck_assert(!shaping_cmd_key_ok("a/b"));
	ck_assert(!shaping_cmd_key_ok("\x1b[2J"));
	ck_assert(!shaping_cmd_key_ok("caf\xc3\xa9.example"));
	memset(k, 'a', SHAPING_CMD_KEY_MAX);
	k[SHAPING_CMD_KEY_MAX] = '\0';
	ck_assert(shaping_cmd_key_ok(k));           /* 255 */
	k[SHAPING_CMD_KEY_MAX] = 'a';
	k[SHAPING_CMD_KEY_MAX + 1] = '\0';
	ck_assert(!shaping_cmd_key_ok(k));          /* 256 */
}
END_TEST

/* ---- the merge ---- */

static Shoal__ShapingAction
t_action(const char *key, Shoal__ShapingKind kind, const char *source,
	 uint64_t stamp_ms, const char *origin, uint64_t expires_ms,
	 bool cleared)
{
	Shoal__ShapingAction a = SHOAL__SHAPING_ACTION__INIT;

	a.key = (char *)key;
	a.kind = kind;
	a.source = (char *)source;
	a.stamp_ms = stamp_ms;
	a.origin = (char *)origin;
	a.expires_ms = expires_ms;
	a.cleared = cleared;
	a.rule = "manual";
	return a;
}

#define SUSPEND SHOAL__SHAPING_KIND__SHAPING_SUSPEND
#define RATE SHOAL__SHAPING_KIND__SHAPING_RATE
#define SOURCE SHOAL__SHAPING_KIND__SHAPING_SUSPEND_SOURCE
#define NOW 1000000

START_TEST(test_merge_keeps_the_newer_copy)
{
	Shoal__ShapingAction a = t_action("x.example", SUSPEND, "", 10, "n1",
					  NOW + 5000, false);
	Shoal__ShapingAction b = t_action("x.example", SUSPEND, "", 20, "n2",
					  NOW + 9000, false);
	const Shoal__ShapingAction *v[] = { &a, &b };

	ck_assert_uint_eq(shaping_cmd_merge(v, 2, NOW), 1);
	ck_assert_ptr_eq(v[0], &b);
}
END_TEST

START_TEST(test_merge_tie_goes_to_the_larger_origin)
{
	Shoal__ShapingAction a = t_action("x.example", SUSPEND, "", 10, "n2",
					  NOW + 5000, false);
	Shoal__ShapingAction b = t_action("x.example", SUSPEND, "", 10, "n10",
					  NOW + 9000, false);
	const Shoal__ShapingAction *v[] = { &b, &a };

	ck_assert_uint_eq(shaping_cmd_merge(v, 2, NOW), 1);
	ck_assert_ptr_eq(v[0], &a);   /* "n2" > "n10" as strings */
}
END_TEST

START_TEST(test_merge_newer_clear_hides_an_older_live_copy)
{
	Shoal__ShapingAction live = t_action("x.example", SUSPEND, "", 10,
					     "n1", NOW + 5000, false);
	Shoal__ShapingAction clr = t_action("x.example", SUSPEND, "", 11, "n2",
					    NOW + 5000, true);
	const Shoal__ShapingAction *v[] = { &live, &clr };

	ck_assert_uint_eq(shaping_cmd_merge(v, 2, NOW), 0);
}
END_TEST

START_TEST(test_merge_older_clear_loses_to_a_newer_suspension)
{
	Shoal__ShapingAction clr = t_action("x.example", SUSPEND, "", 10, "n2",
					    NOW + 5000, true);
	Shoal__ShapingAction live = t_action("x.example", SUSPEND, "", 11,
					     "n1", NOW + 5000, false);
	const Shoal__ShapingAction *v[] = { &clr, &live };

	ck_assert_uint_eq(shaping_cmd_merge(v, 2, NOW), 1);
	ck_assert_ptr_eq(v[0], &live);
}
END_TEST

START_TEST(test_merge_drops_expired_and_hides_older_copies_of_them)
{
	Shoal__ShapingAction old = t_action("x.example", SUSPEND, "", 10,
					    "n1", NOW + 5000, false);
	Shoal__ShapingAction gone = t_action("x.example", SUSPEND, "", 11,
					     "n1", NOW, false);
	Shoal__ShapingAction other = t_action("y.example", SUSPEND, "", 11,
					      "n1", NOW + 1, false);
	const Shoal__ShapingAction *v[] = { &old, &gone, &other };

	ck_assert_uint_eq(shaping_cmd_merge(v, 3, NOW), 1);
	ck_assert_ptr_eq(v[0], &other);
}
END_TEST

START_TEST(test_merge_keeps_identities_apart_and_sorts)
{
	Shoal__ShapingAction a = t_action("b.example", RATE, "", 1, "n1",
					  NOW + 1, false);
	Shoal__ShapingAction b = t_action("b.example", SUSPEND, "", 1, "n1",
					  NOW + 1, false);
	Shoal__ShapingAction c = t_action("a.example", SOURCE, "192.0.2.2", 1,
					  "n1", NOW + 1, false);
	Shoal__ShapingAction d = t_action("a.example", SOURCE, "192.0.2.1", 1,
					  "n1", NOW + 1, false);
	Shoal__ShapingAction d2 = t_action("a.example", SOURCE, "192.0.2.1",
					   1, "n1", NOW + 1, false);
	const Shoal__ShapingAction *v[] = { &a, &b, &c, &d, &d2 };

	a.rate = 5;
	ck_assert_uint_eq(shaping_cmd_merge(v, 5, NOW), 4);
	ck_assert_str_eq(v[0]->source, "192.0.2.1");
	ck_assert_ptr_eq(v[1], &c);
	ck_assert_ptr_eq(v[2], &b);
	ck_assert_ptr_eq(v[3], &a);
}
END_TEST

START_TEST(test_merge_of_nothing)
{
	const Shoal__ShapingAction *v[1] = { NULL };

	ck_assert_uint_eq(shaping_cmd_merge(v, 0, NOW), 0);
}
END_TEST

/* ---- actions from a node ---- */

START_TEST(test_action_ok_checks_kind_and_bounds)
{
	char big[SHAPING_CMD_KEY_MAX + 2];
	Shoal__ShapingAction a = t_action("x.example", SUSPEND, "", 1, "n1",
					  NOW, false);

	ck_assert(shaping_cmd_action_ok(&a));
	a.kind = (Shoal__ShapingKind)4;
	ck_assert(!shaping_cmd_action_ok(&a));
	a.kind = SUSPEND;
	a.origin = "";
	ck_assert(!shaping_cmd_action_ok(&a));
	a.origin = "n1";
	a.rule = "";
	ck_assert(!shaping_cmd_action_ok(&a));
	a.rule = "manual";
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	a.key = big;
	ck_assert(!shaping_cmd_action_ok(&a));
	big[SHAPING_CMD_KEY_MAX] = '\0';
	ck_assert(shaping_cmd_action_ok(&a));
	a.key = "";
	ck_assert(!shaping_cmd_action_ok(&a));
}
END_TEST

/* ---- spans ---- */

START_TEST(test_span_shows_two_units)
{
	char b[SHAPING_CMD_SPAN_BUF];

	ck_assert_str_eq(shaping_cmd_span(b, 0), "0s");
	ck_assert_str_eq(shaping_cmd_span(b, 45), "45s");
	ck_assert_str_eq(shaping_cmd_span(b, 60), "1m");
	ck_assert_str_eq(shaping_cmd_span(b, 599), "9m 59s");
	ck_assert_str_eq(shaping_cmd_span(b, 3600), "1h");
	ck_assert_str_eq(shaping_cmd_span(b, 3601), "1h");
	ck_assert_str_eq(shaping_cmd_span(b, 7500), "2h 5m");
	ck_assert_str_eq(shaping_cmd_span(b, 93600), "1d 2h");
	ck_assert_str_eq(shaping_cmd_span(b, 604800), "7d");
	ck_assert_str_eq(shaping_cmd_span(b, UINT64_MAX),
			 "213503982334601d 7h");
}
END_TEST

static Suite *
cli_shaping_suite(void)
{
	Suite *s = suite_create("cli_shaping");
	TCase *ta = tcase_create("args");
	TCase *tm = tcase_create("merge");

	tcase_add_loop_test(ta, test_parse_duration_table, 0,
			    (int)(sizeof(t_durs) / sizeof(*t_durs)));
	tcase_add_test(ta, test_key_ok_takes_names_and_refuses_the_rest);
	tcase_add_test(ta, test_span_shows_two_units);
	suite_add_tcase(s, ta);
	tcase_add_test(tm, test_merge_keeps_the_newer_copy);
	tcase_add_test(tm, test_merge_tie_goes_to_the_larger_origin);
	tcase_add_test(tm, test_merge_newer_clear_hides_an_older_live_copy);
	tcase_add_test(tm, test_merge_older_clear_loses_to_a_newer_suspension);
	tcase_add_test(tm,
		       test_merge_drops_expired_and_hides_older_copies_of_them);
	tcase_add_test(tm, test_merge_keeps_identities_apart_and_sorts);
	tcase_add_test(tm, test_merge_of_nothing);
	tcase_add_test(tm, test_action_ok_checks_kind_and_bounds);
	suite_add_tcase(s, tm);
	return s;
}

CHECK_MAIN(cli_shaping_suite)
