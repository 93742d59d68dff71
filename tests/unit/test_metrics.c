/* Check suite for lib/metrics.c: the Prometheus text format writer. What
 * a scraper relies on: HELP and TYPE before samples, label values with
 * backslash, quote and newline escaped, histogram buckets cumulative in
 * ascending le order ending in +Inf == _count, numbers without exponents. */
#include <math.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/metrics.h"
#include "tests/unit/check_helpers.h"

#define OUT_MAX (1u << 20)

static const char *
text(struct buf *b)
{
	return b->data ? b->data : "";
}

START_TEST(test_metrics_counter_has_help_type_and_value)
{
	struct buf b;

	buf_init(&b, OUT_MAX);
	metrics_counter(&b, "x_total", "Things done.", 42);
	ck_assert_str_eq(text(&b), "# HELP x_total Things done.\n"
				   "# TYPE x_total counter\n"
				   "x_total 42\n");
	buf_free(&b);
}
END_TEST

START_TEST(test_metrics_gauge_holds_full_uint64)
{
	struct buf b;

	buf_init(&b, OUT_MAX);
	metrics_gauge(&b, "g", "G.", UINT64_MAX);
	ck_assert_str_eq(text(&b), "# HELP g G.\n# TYPE g gauge\n"
				   "g 18446744073709551615\n");
	buf_free(&b);
}
END_TEST

START_TEST(test_metrics_help_escapes_backslash_and_newline_only)
{
	struct buf b;

	buf_init(&b, OUT_MAX);
	metrics_family(&b, "f", "gauge", "a \\ b\nc \"q\"");
	ck_assert_str_eq(text(&b), "# HELP f a \\\\ b\\nc \"q\"\n"
				   "# TYPE f gauge\n");
	buf_free(&b);
}
END_TEST

/* label value in, escaped text out */
static const struct {
	const char *in, *out;
} escapes[] = {
	{ "plain.example", "plain.example" },
	{ "", "" },
	{ "a\"b", "a\\\"b" },
	{ "a\\b", "a\\\\b" },
	{ "a\nb", "a\\nb" },
	{ "\\\"\n", "\\\\\\\"\\n" },
	{ "tab\tstays", "tab\tstays" },
	{ "\"\"", "\\\"\\\"" },
};

START_TEST(test_metrics_escape_label_value)
{
	struct buf b;

	buf_init(&b, OUT_MAX);
	buf_append(&b, "", 0);
	metrics_escape(&b, escapes[_i].in);
	ck_assert_str_eq(text(&b), escapes[_i].out);
	buf_free(&b);
}
END_TEST

START_TEST(test_metrics_sample_labels_in_order_and_escaped)
{
	struct buf b;
	struct metrics_label l[2] = {
		{ "destination", "ev\"il\n.example" },
		{ "result", "delivered" },
	};

	buf_init(&b, OUT_MAX);
	metrics_sample(&b, "d_total", l, 2, 7);
	ck_assert_str_eq(text(&b), "d_total{destination=\"ev\\\"il\\n.example\","
				   "result=\"delivered\"} 7\n");
	buf_reset(&b);
	metrics_sample(&b, "d_total", NULL, 0, 0);
	ck_assert_str_eq(text(&b), "d_total 0\n");
	buf_free(&b);
}
END_TEST

START_TEST(test_metrics_double_has_no_exponent)
{
	struct buf b;

	buf_init(&b, OUT_MAX);
	metrics_sample_double(&b, "a", NULL, 0, 0.0000125);
	metrics_sample_double(&b, "b", NULL, 0, 3.0);
	metrics_sample_double(&b, "c", NULL, 0, 0.25);
	metrics_sample_double(&b, "d", NULL, 0, 1e12);
	metrics_sample_double(&b, "e", NULL, 0, INFINITY);
	metrics_sample_double(&b, "f", NULL, 0, NAN);
	metrics_sample_double(&b, "g", NULL, 0, -0.0);
	ck_assert_str_eq(text(&b), "a 0.000013\nb 3\nc 0.25\n"
				   "d 1000000000000\ne +Inf\nf NaN\ng 0\n");
	buf_free(&b);
}
END_TEST

static const double bounds[] = { 0.0005, 0.001, 0.5, 1, 5 };

START_TEST(test_metrics_hist_buckets_are_cumulative)
{
	struct buf b;
	struct metrics_hist h;
	struct metrics_label l = { "node", "n1" };

	buf_init(&b, OUT_MAX);
	metrics_hist_init(&h, bounds, 5);
	metrics_hist_observe(&h, 0.0005);  /* on the bound: le counts it */
	metrics_hist_observe(&h, 0.0006);
	metrics_hist_observe(&h, 0.75);
	metrics_hist_observe(&h, 0.75);
	metrics_hist_observe(&h, 100);     /* only in +Inf */
	metrics_hist_write(&b, "lat_seconds", &l, 1, &h);
	ck_assert_str_eq(text(&b),
			 "lat_seconds_bucket{node=\"n1\",le=\"0.0005\"} 1\n"
			 "lat_seconds_bucket{node=\"n1\",le=\"0.001\"} 2\n"
			 "lat_seconds_bucket{node=\"n1\",le=\"0.5\"} 2\n"
			 "lat_seconds_bucket{node=\"n1\",le=\"1\"} 4\n"
			 "lat_seconds_bucket{node=\"n1\",le=\"5\"} 4\n"
			 "lat_seconds_bucket{node=\"n1\",le=\"+Inf\"} 5\n"
			 "lat_seconds_sum{node=\"n1\"} 101.5011\n"
			 "lat_seconds_count{node=\"n1\"} 5\n");
	buf_free(&b);
}
END_TEST

START_TEST(test_metrics_hist_empty_and_unlabelled)
{
	struct buf b;
	struct metrics_hist h;

	buf_init(&b, OUT_MAX);
	metrics_hist_init(&h, bounds, 1);
	metrics_hist_write(&b, "e", NULL, 0, &h);
	ck_assert_str_eq(text(&b), "e_bucket{le=\"0.0005\"} 0\n"
				   "e_bucket{le=\"+Inf\"} 0\n"
				   "e_sum 0\ne_count 0\n");
	buf_free(&b);
}
END_TEST

START_TEST(test_metrics_hist_nan_counts_in_inf_not_sum)
{
	struct metrics_hist h;

	metrics_hist_init(&h, bounds, 5);
	metrics_hist_observe(&h, NAN);
	metrics_hist_observe(&h, -1);      /* below every bound: first */
	ck_assert_uint_eq(h.counts[5], 1);
	ck_assert_uint_eq(h.counts[0], 1);
	ck_assert_uint_eq(h.count, 2);
	ck_assert(h.sum == -1);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_metrics_counter_has_help_type_and_value);
	tcase_add_test(tc, test_metrics_gauge_holds_full_uint64);
	tcase_add_test(tc, test_metrics_help_escapes_backslash_and_newline_only);
	tcase_add_loop_test(tc, test_metrics_escape_label_value, 0,
			    sizeof(escapes) / sizeof(escapes[0]));
	tcase_add_test(tc, test_metrics_sample_labels_in_order_and_escaped);
	tcase_add_test(tc, test_metrics_double_has_no_exponent);
	tcase_add_test(tc, test_metrics_hist_buckets_are_cumulative);
	tcase_add_test(tc, test_metrics_hist_empty_and_unlabelled);
	tcase_add_test(tc, test_metrics_hist_nan_counts_in_inf_not_sum);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(metrics_suite)
