/* Check suite for router/auth.c: password checks run on worker threads
 * and answer on the loop; a failure is counted for the client address
 * even when nobody waits for it any more; a reload does not disturb the
 * checks under way (they keep the users they started with); a full
 * queue answers -EBUSY at once; freeing with checks under way calls no
 * callback and leaks nothing (run it under ASan). */
#include <crypt.h>
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/config.h"
#include "router/auth.h"
#include "tests/unit/check_helpers.h"

struct verdict {
	int n;             /* callbacks */
	bool is_ok;
	uint32_t delay_ms;
	void *arg;
	char user[64];
};

static void
on_done(void *ctx, void *arg, const struct auth_result *r)
{
	struct verdict *v = ctx;

	v->n++;
	v->is_ok = r->is_ok;
	v->delay_ms = r->delay_ms;
	v->arg = arg;
	snprintf(v->user, sizeof(v->user), "%s", r->user);
}

static char users_path[256];
static struct config cfg;

/* "name:yescrypt(pass)\n" lines into the users file. */
static void
write_users(const char *const *names, const char *const *passes, size_t n)
{
	char text[4096] = "";
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	FILE *f;

	for (size_t i = 0; i < n; i++) {
		memset(&cd, 0, sizeof(cd));
		ck_assert_ptr_nonnull(crypt_gensalt_rn("$y$", 0, NULL, 0, salt,
						       sizeof(salt)));
		ck_assert_ptr_nonnull(crypt_r(passes[i], salt, &cd));
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 "%s:%s\n", names[i], cd.output);
	}
	f = fopen(users_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static struct auth *
auth_open(struct event_base *base)
{
	static const char *const names[] = { "alice" };
	static const char *const passes[] = { "right" };
	struct auth *a;
	int err;

	check_write_temp(users_path, sizeof(users_path), "auth", "", 0);
	write_users(names, passes, 1);
	memset(&cfg, 0, sizeof(cfg));
	cfg.router.users_file = users_path;
	a = auth_new(&cfg, &err);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(auth_start(a, base), 0);
	return a;
}

/* Run the loop until every verdict has its callback, or 20 s. */
static void
loop_until(struct event_base *base, struct verdict *vs, size_t n)
{
	for (int i = 0; i < 20000; i++) {
		size_t got = 0;

		for (size_t k = 0; k < n; k++)
			got += vs[k].n > 0;
		if (got == n)
			return;
		event_base_loopexit(base, &(struct timeval){ 0, 1000 });
		event_base_dispatch(base);
	}
	ck_abort_msg("no verdict within 20 s");
}

START_TEST(test_auth_checks_answer_on_the_loop_and_count_failures)
{
	struct event_base *base = event_base_new();
	struct auth *a = auth_open(base);
	struct verdict v[4];
	int owner;

	memset(v, 0, sizeof(v));
	ck_assert_int_eq(auth_check_start(a, "192.0.2.1", "alice", "right",
					  on_done, &v[0], &owner),
			 0);
	ck_assert_int_eq(auth_check_start(a, "192.0.2.1", "alice", "wrong",
					  on_done, &v[1], &owner),
			 0);
	ck_assert_int_eq(auth_check_start(a, "192.0.2.1", "nobody", "right",
					  on_done, &v[2], &owner),
			 0);
	ck_assert_int_eq(v[0].n + v[1].n + v[2].n, 0);	/* not from start */
	loop_until(base, v, 3);
	ck_assert(v[0].is_ok);
	ck_assert_uint_eq(v[0].delay_ms, 0);
	ck_assert_ptr_eq(v[0].arg, &owner);
	ck_assert_str_eq(v[0].user, "alice");
	ck_assert(!v[1].is_ok);
	ck_assert(!v[2].is_ok);
	/* two failures from that address: 500 ms, then 1000 ms (either order) */
	ck_assert_uint_eq(v[1].delay_ms + v[2].delay_ms, 1500);
	/* too long: refused without a hash, and counted */
	{
		char big[AUTH_PASS_MAX + 2];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_int_eq(auth_check_start(a, "192.0.2.1", "alice", big,
						  on_done, &v[3], &owner),
				 0);
		loop_until(base, &v[3], 1);
		ck_assert(!v[3].is_ok);
		ck_assert_uint_eq(v[3].delay_ms, 1500);
	}
	auth_free(a);
	event_base_free(base);
	unlink(users_path);
}
END_TEST

START_TEST(test_auth_forgotten_check_still_counts)
{
	struct event_base *base = event_base_new();
	struct auth *a = auth_open(base);
	struct verdict v[2];
	int gone, other;

	memset(v, 0, sizeof(v));
	ck_assert_int_eq(auth_check_start(a, "192.0.2.7", "alice", "wrong",
					  on_done, &v[0], &gone),
			 0);
	ck_assert_int_eq(auth_check_start(a, "192.0.2.7", "alice", "right",
					  on_done, &v[1], &other),
			 0);
	auth_check_forget(a, &gone);
	loop_until(base, v, 2);
	ck_assert_ptr_null(v[0].arg);	/* the owner is not touched */
	ck_assert(!v[0].is_ok);
	ck_assert_ptr_eq(v[1].arg, &other);	/* the other one is */
	ck_assert(v[1].is_ok);
	/* the forgotten failure was counted: the next one waits longer */
	ck_assert_uint_eq(auth_failed(a, "192.0.2.7"), 1000);
	auth_free(a);
	event_base_free(base);
	unlink(users_path);
}
END_TEST

START_TEST(test_auth_reload_keeps_checks_under_way)
{
	static const char *const names[] = { "bob" };
	static const char *const passes[] = { "other" };
	struct event_base *base = event_base_new();
	struct auth *a = auth_open(base);
	struct verdict v[8];
	int owner;

	memset(v, 0, sizeof(v));
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(auth_check_start(a, "192.0.2.2", "alice",
						  "right", on_done, &v[i],
						  &owner),
				 0);
	/* alice leaves the file while her checks are hashed */
	write_users(names, passes, 1);
	ck_assert_int_eq(auth_reload(a), 0);
	loop_until(base, v, 6);
	for (size_t i = 0; i < 6; i++)
		ck_assert_msg(v[i].is_ok, "check %zu started before reload", i);
	ck_assert_int_eq(auth_check_start(a, "192.0.2.2", "alice", "right",
					  on_done, &v[6], &owner),
			 0);
	ck_assert_int_eq(auth_check_start(a, "192.0.2.2", "bob", "other",
					  on_done, &v[7], &owner),
			 0);
	loop_until(base, &v[6], 2);
	ck_assert(!v[6].is_ok);
	ck_assert(v[7].is_ok);
	auth_free(a);
	event_base_free(base);
	unlink(users_path);
}
END_TEST

START_TEST(test_auth_full_queue_is_busy_not_longer)
{
	struct event_base *base = event_base_new();
	struct auth *a = auth_open(base);
	struct verdict v[200];
	size_t started = 0, busy = 0;
	int owner;

	memset(v, 0, sizeof(v));
	for (size_t i = 0; i < 200; i++) {
		int rc = auth_check_start(a, "192.0.2.3", "alice", "wrong",
					  on_done, &v[started], &owner);

		ck_assert(rc == 0 || rc == -EBUSY);
		if (rc == 0)
			started++;
		else
			busy++;
	}
	ck_assert_uint_gt(busy, 0);
	ck_assert_uint_le(started, 64 + 4);	/* queue + threads */
	loop_until(base, v, started);
	for (size_t i = started; i < 200; i++)
		ck_assert_int_eq(v[i].n, 0);
	auth_free(a);
	event_base_free(base);
	unlink(users_path);
}
END_TEST

START_TEST(test_auth_free_with_checks_under_way)
{
	struct event_base *base = event_base_new();
	struct auth *a = auth_open(base);
	struct verdict v[10];
	int owner;

	memset(v, 0, sizeof(v));
	for (size_t i = 0; i < 10; i++)
		ck_assert_int_eq(auth_check_start(a, "192.0.2.4", "alice",
						  "wrong", on_done, &v[i],
						  &owner),
				 0);
	auth_free(a);
	for (size_t i = 0; i < 10; i++)
		ck_assert_int_eq(v[i].n, 0);
	event_base_free(base);
	unlink(users_path);
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
		       test_auth_checks_answer_on_the_loop_and_count_failures);
	tcase_add_test(tc, test_auth_forgotten_check_still_counts);
	tcase_add_test(tc, test_auth_reload_keeps_checks_under_way);
	tcase_add_test(tc, test_auth_full_queue_is_busy_not_longer);
	tcase_add_test(tc, test_auth_free_with_checks_under_way);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(auth_suite)
