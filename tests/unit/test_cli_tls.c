/* cli/tls.c's pure parts: the DOMAIN check and the merge of the nodes'
 * RFC 8460 reports (policies and failure-details summed by their keys,
 * hostile or malformed reports refused). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tls.h"
#include "tests/unit/check_helpers.h"

START_TEST(test_domain_checked_and_lowered)
{
	char out[TLS_CMD_DOMAIN_MAX + 1] = "x";

	ck_assert_int_eq(tls_cmd_domain("Dest.TEST.", out), 0);
	ck_assert_str_eq(out, "dest.test");
	ck_assert_int_eq(tls_cmd_domain("a b.test", out), -EINVAL);
	ck_assert_int_eq(tls_cmd_domain("a..test", out), -EINVAL);
	ck_assert_int_eq(tls_cmd_domain("", out), -EINVAL);
	ck_assert_int_eq(tls_cmd_domain("-x;rm", out), -EINVAL);
	ck_assert_str_eq(out, "dest.test");
}
END_TEST

static const char t_a[] =
	"{\"organization-name\":\"Org\",\"date-range\":{},"
	"\"contact-info\":\"mailto:a@b\",\"report-id\":\"x.n1\","
	"\"policies\":[{\"policy\":{\"policy-type\":\"sts\","
	"\"policy-string\":[\"version: STSv1\",\"mode: enforce\"],"
	"\"policy-domain\":\"d.test\",\"mx-host\":[\"*.d.test\"]},"
	"\"summary\":{\"total-successful-session-count\":5,"
	"\"total-failure-session-count\":2},"
	"\"failure-details\":[{\"result-type\":\"certificate-expired\","
	"\"sending-mta-ip\":\"10.0.0.1\",\"receiving-mx-hostname\":"
	"\"mx.d.test\",\"receiving-ip\":\"192.0.2.1\","
	"\"failed-session-count\":2}]},"
	"{\"policy\":{\"policy-type\":\"no-policy-found\","
	"\"policy-domain\":\"d.test\"},\"summary\":{"
	"\"total-successful-session-count\":1,"
	"\"total-failure-session-count\":0}}]}";

static const char t_b[] =
	"{\"organization-name\":\"Org\",\"contact-info\":\"mailto:a@b\","
	"\"policies\":[{\"policy\":{\"policy-type\":\"sts\","
	"\"policy-string\":[\"version: STSv1\",\"mode: enforce\"],"
	"\"policy-domain\":\"d.test\",\"mx-host\":[\"*.d.test\"]},"
	"\"summary\":{\"total-successful-session-count\":7,"
	"\"total-failure-session-count\":4},"
	"\"failure-details\":[{\"result-type\":\"certificate-expired\","
	"\"sending-mta-ip\":\"10.0.0.1\",\"receiving-mx-hostname\":"
	"\"mx.d.test\",\"receiving-ip\":\"192.0.2.1\","
	"\"failed-session-count\":3},{\"result-type\":"
	"\"starttls-not-supported\",\"sending-mta-ip\":\"10.0.0.2\","
	"\"receiving-mx-hostname\":\"mx.d.test\",\"receiving-ip\":"
	"\"192.0.2.1\",\"failed-session-count\":1}]},"
	"{\"policy\":{\"policy-type\":\"sts\","
	"\"policy-string\":[\"version: STSv1\",\"mode: testing\"],"
	"\"policy-domain\":\"d.test\",\"mx-host\":[\"*.d.test\"]},"
	"\"summary\":{\"total-successful-session-count\":1,"
	"\"total-failure-session-count\":0}}]}";

static json_int_t
t_sum(const json_t *p, const char *key)
{
	return json_integer_value(
		json_object_get(json_object_get(p, "summary"), key));
}

START_TEST(test_merge_sums_by_key)
{
	const char *in[2] = { t_a, t_b };
	size_t lens[2] = { strlen(t_a), strlen(t_b) };
	char err[128] = "";
	char *out = tls_cmd_merge(in, lens, 2, "d.test", "2026-12-07", false,
				  err, sizeof(err));
	json_t *j, *pols, *p, *fd;

	ck_assert_msg(out != NULL, "%s", err);
	ck_assert_ptr_null(strchr(out, '\n')); /* compact: one line */
	j = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "report-id")),
			 "2026-12-07.d.test@cluster");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(j, "date-range"),
				 "start-datetime")),
			 "2026-12-07T00:00:00Z");
	ck_assert_str_eq(json_string_value(json_object_get(
				 j, "organization-name")),
			 "Org");
	pols = json_object_get(j, "policies");
	ck_assert_uint_eq(json_array_size(pols), 3);
	p = json_array_get(pols, 0);
	ck_assert_int_eq(t_sum(p, "total-successful-session-count"), 12);
	ck_assert_int_eq(t_sum(p, "total-failure-session-count"), 6);
	fd = json_object_get(p, "failure-details");
	ck_assert_uint_eq(json_array_size(fd), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(fd, 0),
				 "failed-session-count")),
			 5);
	ck_assert_int_eq(t_sum(json_array_get(pols, 1),
			       "total-successful-session-count"),
			 1);
	ck_assert_int_eq(t_sum(json_array_get(pols, 2),
			       "total-successful-session-count"),
			 1);
	json_decref(j);
	free(out);

	/* pretty: indented; no reports at all: policies [] */
	out = tls_cmd_merge(NULL, NULL, 0, "d.test", "2026-12-07", true, err,
			    sizeof(err));
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(strstr(out, "\n  \"policies\": []"));
	free(out);
}
END_TEST

static const char *const t_bad[] = {
	"not json",
	"[]",
	"{\"policies\":{}}",
	"{\"policies\":[1]}",
	"{\"policies\":[{\"policy\":{},\"summary\":{"
	"\"total-successful-session-count\":-1}}]}",
	"{\"policies\":[{\"policy\":{},\"summary\":{"
	"\"total-successful-session-count\":\"5\"}}]}",
	"{\"policies\":[{\"policy\":{},\"summary\":{},"
	"\"failure-details\":{}}]}",
	"{\"policies\":[{\"policy\":{},\"summary\":{"
	"\"total-successful-session-count\":9223372036854775807}}]}",
	"{\"policies\":[],\"policies\":[]}",
};

START_TEST(test_merge_refuses_bad_reports)
{
	/* the last one only overflows when added to itself */
	const char *in[2] = { t_bad[_i], t_bad[_i] };
	size_t lens[2] = { strlen(t_bad[_i]), strlen(t_bad[_i]) };
	char err[128] = "";
	char *out = tls_cmd_merge(in, lens, 2, "d.test", "2026-12-07", false,
				  err, sizeof(err));

	ck_assert_msg(out == NULL, "%s merged", t_bad[_i]);
	ck_assert_str_ne(err, "");
}
END_TEST

static Suite *
cli_tls_suite(void)
{
	Suite *s = suite_create("cli_tls");
	TCase *tc = tcase_create("merge");

	tcase_add_test(tc, test_domain_checked_and_lowered);
	tcase_add_test(tc, test_merge_sums_by_key);
	tcase_add_loop_test(tc, test_merge_refuses_bad_reports, 0,
			    sizeof(t_bad) / sizeof(t_bad[0]));
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(cli_tls_suite)
