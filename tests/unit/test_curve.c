/* Check suite for lib/curve.c: with keys configured, setting CURVE up
 * fails closed. curve_init() asks libzmq itself about the keys on a
 * scratch socket (a key it refuses, or a public key that is not the
 * secret key's, is a startup error naming the file and the cause), and
 * curve_server()/curve_client() report the option libzmq refused on a
 * real socket instead of leaving it unencrypted. The zmq_has("curve")
 * branch cannot be reached with Debian's libzmq (it has CURVE): the e2e
 * test reaches it with an LD_PRELOAD shim (tests/e2e/test_curve.py). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "lib/curve.h"
#include "tests/unit/check_helpers.h"

static char keys_path[256];

/* A key file of two lines; pub and sec as given. */
static void
write_keys(const char *pub, const char *sec)
{
	char text[128];

	snprintf(text, sizeof(text), "%s\n%s\n", pub, sec);
	check_write_temp(keys_path, sizeof(keys_path), "curve", text,
			 strlen(text));
}

START_TEST(test_curve_init_takes_good_keys)
{
	struct curve_keys k;
	char err[512] = "";

	ck_assert_int_eq(curve_generate(&k), 0);
	write_keys(k.pub, k.sec);
	ck_assert_int_eq(curve_init(keys_path, err, sizeof(err)), 0);
	ck_assert(curve_on());
	unlink(keys_path);
}
END_TEST

START_TEST(test_curve_init_reports_the_key_libzmq_refuses)
{
	struct curve_keys k;
	char err[512] = "";

	ck_assert_int_eq(curve_generate(&k), 0);
	k.sec[7] = '~';		/* not a Z85 character */
	write_keys(k.pub, k.sec);
	ck_assert_int_eq(curve_init(keys_path, err, sizeof(err)), -1);
	ck_assert(!curve_on());
	ck_assert_msg(strstr(err, keys_path) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "ZMQ_CURVE_SECRETKEY failed") != NULL, "%s",
		      err);
	ck_assert_msg(strstr(err, "unencrypted") != NULL, "%s", err);
	unlink(keys_path);
}
END_TEST

START_TEST(test_curve_init_refuses_a_foreign_public_key)
{
	struct curve_keys a, b;
	char err[512] = "";

	ck_assert_int_eq(curve_generate(&a), 0);
	ck_assert_int_eq(curve_generate(&b), 0);
	write_keys(b.pub, a.sec);
	ck_assert_int_eq(curve_init(keys_path, err, sizeof(err)), -1);
	ck_assert(!curve_on());
	ck_assert_msg(strstr(err, "is not the secret key's") != NULL, "%s",
		      err);
	unlink(keys_path);
}
END_TEST

START_TEST(test_curve_setup_reports_a_refused_option)
{
	struct curve_keys k;
	char err[512] = "";
	void *ctx, *sock;

	/* off: nothing is set, nothing fails */
	ck_assert_int_eq(curve_init(NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(curve_server(NULL), 0);
	ck_assert_int_eq(curve_client(NULL), 0);
	ck_assert_int_eq(curve_generate(&k), 0);
	write_keys(k.pub, k.sec);
	ck_assert_int_eq(curve_init(keys_path, err, sizeof(err)), 0);
	/* on: libzmq refusing the options (here: not a socket) is an error */
	ck_assert_int_eq(curve_server(NULL), -ENOTSOCK);
	ck_assert_int_eq(curve_client(NULL), -ENOTSOCK);
	/* and a real socket takes them */
	ctx = zmq_ctx_new();
	sock = zmq_socket(ctx, ZMQ_DEALER);
	ck_assert_int_eq(curve_client(sock), 0);
	ck_assert_int_eq(curve_server(sock), 0);
	zmq_close(sock);
	zmq_ctx_term(ctx);
	unlink(keys_path);
}
END_TEST

static Suite *
curve_suite(void)
{
	Suite *s = suite_create("curve");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_curve_init_takes_good_keys);
	tcase_add_test(tc, test_curve_init_reports_the_key_libzmq_refuses);
	tcase_add_test(tc, test_curve_init_refuses_a_foreign_public_key);
	tcase_add_test(tc, test_curve_setup_reports_a_refused_option);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(curve_suite)
