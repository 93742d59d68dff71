/* Check suite for the rules SMTP and the HTTP API share at the router:
 * how a suppression check's answer is read (router/message.c), our
 * Received header, who may send a password (auth_offered(),
 * router/auth.c) and who is limited per address
 * (limits_connection_start(), router/limits.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/err.h"
#include "router/auth.h"
#include "router/enqueue.h"
#include "router/limits.h"
#include "router/message.h"
#include "tests/unit/check_helpers.h"

#define N1                                                                   \
	"nodes = ( { id = \"n1\"; endpoint = \"tcp://127.0.0.1:7101\"; "     \
	"data_dir = \"/tmp/n1\"; } );\n"

static struct config *
load(const char *text)
{
	char path[256], err[512];
	struct config *cfg = NULL;
	int rc;

	check_write_temp(path, sizeof(path), "message", text, strlen(text));
	rc = config_load(path, &cfg, err, sizeof(err));
	unlink(path);
	ck_assert_msg(rc == 0, "config_load: %s", err);
	return cfg;
}

static struct enqueue_check_result
listed(const char *reply)
{
	struct enqueue_check_result r;

	memset(&r, 0, sizeof(r));
	r.suppressed = true;
	snprintf(r.reply, sizeof(r.reply), "%s", reply);
	return r;
}

START_TEST(test_verdict_refuse_mode)
{
	struct config *cfg = load(N1);
	struct enqueue_check_result r = listed("550 5.1.1 no such user");
	char refusal[600], *bounce = NULL;

	ck_assert_int_eq(message_check_verdict(cfg, 0, &r, "192.0.2.1",
					       "a@x.test", &bounce, refusal,
					       sizeof(refusal)),
			 MESSAGE_CHECK_REFUSE);
	ck_assert_str_eq(refusal, "550 5.1.1 <a@x.test>: suppressed: "
				  "550 5.1.1 no such user");
	ck_assert_ptr_null(bounce);
	/* not listed: accepted (the negative control) */
	r.suppressed = false;
	ck_assert_int_eq(message_check_verdict(cfg, 0, &r, "192.0.2.1",
					       "a@x.test", &bounce, refusal,
					       sizeof(refusal)),
			 MESSAGE_CHECK_ACCEPT);
	config_free(cfg);
}
END_TEST

START_TEST(test_verdict_bounce_mode)
{
	struct config *cfg = load(N1 "suppression: { mode = \"bounce\"; };\n");
	struct enqueue_check_result r = listed("");
	char refusal[600], *bounce = NULL;

	ck_assert_int_eq(message_check_verdict(cfg, 0, &r, "192.0.2.1",
					       "a@x.test", &bounce, refusal,
					       sizeof(refusal)),
			 MESSAGE_CHECK_BOUNCE);
	ck_assert_str_eq(bounce, "550 5.1.1 suppressed"); /* no reply kept */
	free(bounce);
	config_free(cfg);
}
END_TEST

/* no clear answer (timeout, no node): the recipient is taken, listed or
 * not: suppression never loses or delays mail */
START_TEST(test_verdict_fails_open)
{
	struct config *cfg = load(N1);
	struct enqueue_check_result r = listed("550 gone");
	char refusal[600], *bounce = NULL;

	ck_assert_int_eq(message_check_verdict(cfg, -ETIMEDOUT, &r, "c",
					       "a@x.test", &bounce, refusal,
					       sizeof(refusal)),
			 MESSAGE_CHECK_ACCEPT);
	ck_assert_ptr_null(bounce);
	config_free(cfg);
}
END_TEST

START_TEST(test_received_header)
{
	struct config *cfg = load(N1 "router: { hostname = \"mx.e.test\"; };\n");
	struct buf b;
	size_t n;

	buf_init(&b, 4096);
	n = message_received(&b, cfg, "", "192.0.2.7", "HTTP", "QID1", NULL);
	ck_assert_uint_eq(n, b.len);
	ck_assert(strncmp(b.data,
			  "Received: from unknown ([192.0.2.7])\r\n\tby "
			  "mx.e.test (Shoal) with HTTP id QID1; ",
			  strlen("Received: from unknown ([192.0.2.7])\r\n\tby "
				 "mx.e.test (Shoal) with HTTP id QID1; ")) == 0);
	ck_assert(b.data[b.len - 2] == '\r' && b.data[b.len - 1] == '\n');
	buf_reset(&b);
	message_received(&b, cfg, "client.test", "::1", "ESMTPS", "Q2",
			 "a@x.test");
	ck_assert_ptr_nonnull(strstr(b.data, "from client.test ([::1])"));
	ck_assert_ptr_nonnull(strstr(b.data, "\r\n\tfor <a@x.test>; "));
	buf_free(&b);
	config_free(cfg);
}
END_TEST

/* one rule for SMTP AUTH and HTTP Basic */
START_TEST(test_auth_offered_rule)
{
	struct cfg_listen ls = { .auth = CFG_AUTH_OPTIONAL };
	const struct auth *a = (const struct auth *)&ls; /* only != NULL */

	ck_assert(!auth_offered(NULL, &ls, true, "192.0.2.1"));
	ck_assert(auth_offered(a, &ls, true, "192.0.2.1"));
	ck_assert(!auth_offered(a, &ls, false, "192.0.2.1"));
	ck_assert(!auth_offered(a, &ls, false, "127.0.0.1"));
	ls.auth_plaintext = true;
	ck_assert(auth_offered(a, &ls, false, "127.0.0.1"));
	ck_assert(auth_offered(a, &ls, false, "::1"));
	ck_assert(!auth_offered(a, &ls, false, "192.0.2.1"));
	ls.auth = CFG_AUTH_NONE;
	ck_assert(!auth_offered(a, &ls, true, "192.0.2.1"));
}
END_TEST

START_TEST(test_connection_limit_rule)
{
	struct config *cfg =
		load(N1 "router: { max_sessions_per_ip = 1; };\n");
	struct limits *l = limits_new(cfg);
	bool slot;

	ck_assert(limits_connection_start(l, "192.0.2.1", false, &slot));
	ck_assert(slot);
	ck_assert(!limits_connection_start(l, "192.0.2.1", false, &slot));
	ck_assert(!slot);
	/* relay networks are not limited per address, and owe no end */
	ck_assert(limits_connection_start(l, "192.0.2.1", true, &slot));
	ck_assert(!slot);
	limits_session_end(l, "192.0.2.1");
	ck_assert(limits_connection_start(l, "192.0.2.1", false, &slot));
	limits_free(l);
	config_free(cfg);
}
END_TEST

static Suite *
message_suite(void)
{
	Suite *s = suite_create("message");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_verdict_refuse_mode);
	tcase_add_test(tc, test_verdict_bounce_mode);
	tcase_add_test(tc, test_verdict_fails_open);
	tcase_add_test(tc, test_received_header);
	tcase_add_test(tc, test_auth_offered_rule);
	tcase_add_test(tc, test_connection_limit_rule);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(message_suite)
