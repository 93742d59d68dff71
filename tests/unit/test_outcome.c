/* Check suite for node/outcome.c, the delivery-error policy: what a final
 * reply means for a recipient (2xx delivered, 4xx and local failures
 * deferred, 5xx bounced), moving to the next MX host on connection-level
 * trouble (RFC 5321 5.1), retry times with jitter, queue lifetime expiry,
 * and the RFC 3463 status a DSN carries (categories: test_classify.c). Replies are
 * data, so most of this is tables run with tcase_add_loop_test(). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "node/delivery/outcome.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/reply_helper.h"

/* ---- reply -> outcome ---------------------------------------------- */

struct of_case {
	int code;
	enum outcome want;
};

static const struct of_case of_cases[] = {
	{ 250, OUTCOME_DELIVERED },
	{ 251, OUTCOME_DELIVERED }, /* user not local; will forward */
	{ 200, OUTCOME_DELIVERED },
	{ 299, OUTCOME_DELIVERED },
	{ 0, OUTCOME_DEFERRED },    /* lost connection, timeout */
	{ 421, OUTCOME_DEFERRED },
	{ 450, OUTCOME_DEFERRED },
	{ 451, OUTCOME_DEFERRED },
	{ 452, OUTCOME_DEFERRED },
	{ 400, OUTCOME_DEFERRED },
	{ 499, OUTCOME_DEFERRED },
	{ 500, OUTCOME_BOUNCED },
	{ 550, OUTCOME_BOUNCED },
	{ 551, OUTCOME_BOUNCED },
	{ 552, OUTCOME_BOUNCED },
	{ 553, OUTCOME_BOUNCED },
	{ 554, OUTCOME_BOUNCED },
	{ 599, OUTCOME_BOUNCED },
	/* nonsense as a final reply is never taken as success or failure */
	{ 354, OUTCOME_DEFERRED },
	{ 199, OUTCOME_DEFERRED },
	{ 600, OUTCOME_DEFERRED },
	{ 999, OUTCOME_DEFERRED },
	{ -1, OUTCOME_DEFERRED },
};

START_TEST(test_outcome_of_reply_table)
{
	const struct of_case *c = &of_cases[_i];
	struct smtpc_reply r = reply(c->code, "", "whatever");

	ck_assert_msg(outcome_of_reply(&r) == c->want,
		      "code %d: got %d want %d", c->code,
		      (int)outcome_of_reply(&r), (int)c->want);
}
END_TEST

/* The enhanced code and text do not change the verdict: the basic code
 * decides (a 550 saying "4.2.2" still bounces). */
START_TEST(test_outcome_of_reply_uses_basic_code_only)
{
	struct smtpc_reply r;

	r = reply(550, "4.2.2", "mailbox full, try later");
	ck_assert_int_eq(outcome_of_reply(&r), OUTCOME_BOUNCED);
	r = reply(451, "5.1.1", "user unknown");
	ck_assert_int_eq(outcome_of_reply(&r), OUTCOME_DEFERRED);
	r = reply(250, "5.0.0", "");
	ck_assert_int_eq(outcome_of_reply(&r), OUTCOME_DELIVERED);
	r = reply(0, "5.1.1", "local failure");
	ck_assert_int_eq(outcome_of_reply(&r), OUTCOME_DEFERRED);
}
END_TEST

/* ---- next MX ------------------------------------------------------- */

START_TEST(test_outcome_try_next_host_on_any_connection_trouble)
{
	static const enum smtpc_phase phases[] = {
		SMTPC_PH_CONNECT,
		SMTPC_PH_GREETING,
		SMTPC_PH_EHLO,
		SMTPC_PH_TLS,
	};
	struct smtpc_reply rs[4];

	rs[0] = reply(0, "", "connection refused");
	rs[1] = reply(554, "5.7.1", "go away");   /* 5xx greeting */
	rs[2] = reply(421, "4.3.2", "shutting down");
	rs[3] = reply(0, "", "timeout after EHLO");
	for (size_t p = 0; p < sizeof(phases) / sizeof(phases[0]); p++)
		for (size_t i = 0; i < 4; i++)
			ck_assert(outcome_try_next_host(phases[p], &rs[i]));
}
END_TEST

/* ---- retry times --------------------------------------------------- */

static const uint32_t sched3[] = { 60, 300, 900 };

/* delay - 10% .. delay + 10%, as outcome.c rounds it. */
static void
assert_within_jitter(uint64_t got, uint64_t now, uint64_t delay)
{
	uint64_t lo = now + delay - delay / 10;
	uint64_t hi = lo + delay / 5;

	ck_assert_msg(got >= lo && got <= hi,
		      "next_try %llu not in [%llu, %llu] for delay %llu",
		      (unsigned long long)got, (unsigned long long)lo,
		      (unsigned long long)hi, (unsigned long long)delay);
}

START_TEST(test_outcome_next_try_follows_schedule)
{
	const uint64_t now = 1700000000;

	for (int k = 0; k < 200; k++) {
		assert_within_jitter(outcome_next_try(now, 1, sched3, 3), now,
				     60);
		assert_within_jitter(outcome_next_try(now, 2, sched3, 3), now,
				     300);
		assert_within_jitter(outcome_next_try(now, 3, sched3, 3), now,
				     900);
	}
}
END_TEST

START_TEST(test_outcome_next_try_last_slot_repeats)
{
	const uint64_t now = 1000;

	for (int k = 0; k < 200; k++) {
		assert_within_jitter(outcome_next_try(now, 4, sched3, 3), now,
				     900);
		assert_within_jitter(outcome_next_try(now, 50, sched3, 3), now,
				     900);
		assert_within_jitter(
			outcome_next_try(now, UINT32_MAX, sched3, 3), now, 900);
	}
}
END_TEST

START_TEST(test_outcome_next_try_attempt_zero_uses_first_slot)
{
	for (int k = 0; k < 100; k++)
		assert_within_jitter(outcome_next_try(5000, 0, sched3, 3), 5000,
				     60);
}
END_TEST

START_TEST(test_outcome_next_try_empty_schedule_is_60s)
{
	for (int k = 0; k < 100; k++) {
		assert_within_jitter(outcome_next_try(5000, 1, NULL, 0), 5000,
				     60);
		assert_within_jitter(outcome_next_try(5000, 9, sched3, 0), 5000,
				     60);
	}
}
END_TEST

/* Never "now": a zero or tiny delay still moves the recipient forward. */
START_TEST(test_outcome_next_try_is_always_later)
{
	static const uint32_t zero[] = { 0 };
	static const uint32_t one[] = { 1 };
	static const uint32_t two[] = { 2 };

	for (int k = 0; k < 100; k++) {
		ck_assert_uint_eq(outcome_next_try(777, 1, zero, 1), 778);
		ck_assert_uint_eq(outcome_next_try(777, 1, one, 1), 778);
		ck_assert_uint_eq(outcome_next_try(777, 1, two, 1), 777 + 2);
		ck_assert_uint_gt(outcome_next_try(0, 1, zero, 1), 0);
	}
}
END_TEST

START_TEST(test_outcome_next_try_large_delay_no_overflow)
{
	static const uint32_t huge[] = { UINT32_MAX };
	const uint64_t now = 1700000000;

	for (int k = 0; k < 100; k++)
		assert_within_jitter(outcome_next_try(now, 1, huge, 1), now,
				     UINT32_MAX);
}
END_TEST

/* The jitter is real: repeated calls spread over both sides of the delay
 * instead of returning one value (deferred mail must not come back in a
 * herd). 2000 draws over 201 values. */
START_TEST(test_outcome_next_try_jitter_spreads)
{
	static const uint32_t s[] = { 1000 };
	uint64_t lo = UINT64_MAX, hi = 0;
	size_t below = 0, above = 0;

	for (int k = 0; k < 2000; k++) {
		uint64_t t = outcome_next_try(0, 1, s, 1);

		assert_within_jitter(t, 0, 1000);
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
		below += t < 1000;
		above += t > 1000;
	}
	ck_assert_uint_gt(hi - lo, 100);
	ck_assert_uint_gt(below, 500);
	ck_assert_uint_gt(above, 500);
}
END_TEST

/* ---- expiry -------------------------------------------------------- */

START_TEST(test_outcome_expiry_boundary)
{
	const uint64_t arrival = 1700000000;
	const uint32_t life = 432000; /* the 5-day default */

	ck_assert(!outcome_is_expired(arrival, arrival, life));
	ck_assert(!outcome_is_expired(arrival + 1, arrival, life));
	ck_assert(!outcome_is_expired(arrival + life - 1, arrival, life));
	ck_assert(outcome_is_expired(arrival + life, arrival, life));
	ck_assert(outcome_is_expired(arrival + life + 1, arrival, life));
	ck_assert(outcome_is_expired(arrival + 10ull * life, arrival, life));
}
END_TEST

/* A clock behind the arrival time (skew between nodes) never expires. */
START_TEST(test_outcome_expiry_arrival_in_future)
{
	ck_assert(!outcome_is_expired(1000, 2000, 1));
	ck_assert(!outcome_is_expired(0, 1, 1));
}
END_TEST

START_TEST(test_outcome_expiry_shortest_lifetime)
{
	ck_assert(!outcome_is_expired(99, 100, 1));
	ck_assert(!outcome_is_expired(100, 100, 1));
	ck_assert(outcome_is_expired(101, 100, 1));
	ck_assert(outcome_is_expired(100, 100, 0));
}
END_TEST

/* ---- DSN status (RFC 3463) ----------------------------------------- */

struct status_case {
	int code;
	const char *enhanced;
	const char *want;
};

static const struct status_case status_cases[] = {
	/* an enhanced code of the right class is kept */
	{ 250, "2.0.0", "2.0.0" },
	{ 250, "2.1.5", "2.1.5" },
	{ 550, "5.1.1", "5.1.1" },
	{ 552, "5.2.2", "5.2.2" },
	{ 554, "5.7.1", "5.7.1" },
	{ 451, "4.7.1", "4.7.1" },
	{ 421, "4.4.2", "4.4.2" },
	{ 550, "5.123.456", "5.123.456" },  /* 1-3 digits each */
	{ 550, "5.0.0", "5.0.0" },
	/* none: derived from the basic code */
	{ 250, "", "2.0.0" },
	{ 550, "", "5.0.0" },
	{ 554, "", "5.0.0" },
	{ 421, "", "4.0.0" },
	{ 451, "", "4.0.0" },
	/* a class that contradicts the basic code is not believed */
	{ 550, "4.1.1", "5.0.0" },
	{ 451, "5.7.1", "4.0.0" },
	{ 250, "5.0.0", "2.0.0" },
	/* malformed enhanced codes are ignored */
	{ 550, "5.1", "5.0.0" },
	{ 550, "5.1.", "5.0.0" },
	{ 550, "5..1", "5.0.0" },
	{ 550, "5.1.1234", "5.0.0" },
	{ 550, "5.1234.1", "5.0.0" },
	{ 550, "5.1.1 ", "5.0.0" },
	{ 550, "5.1.x", "5.0.0" },
	{ 550, "x.1.1", "5.0.0" },
	{ 550, "51.1.1", "5.0.0" },
	{ 550, ".1.1", "5.0.0" },
	/* no reply at all: no answer from host, or DNS as the caller says */
	{ 0, "", "4.4.1" },
	{ 0, "4.4.3", "4.4.3" },
	/* no 3xx class in RFC 3463; odd codes are temporary */
	{ 354, "", "4.0.0" },
	{ 354, "3.0.0", "4.0.0" },
	{ 354, "3.7.1", "4.0.0" },
	{ 199, "1.0.0", "4.0.0" },
	{ 600, "6.0.0", "4.0.0" },
	{ 199, "", "4.0.0" },
	{ 600, "", "4.0.0" },
};

START_TEST(test_outcome_status_table)
{
	const struct status_case *c = &status_cases[_i];
	struct smtpc_reply r = reply(c->code, c->enhanced, "text");
	char out[16];

	memset(out, 'X', sizeof(out));
	outcome_status(&r, out);
	ck_assert_msg(strcmp(out, c->want) == 0,
		      "%d \"%s\": got \"%s\" want \"%s\"", c->code, c->enhanced,
		      out, c->want);
}
END_TEST

/* The longest well-formed code plus NUL fits the 16-byte out. */
START_TEST(test_outcome_status_fits_16_bytes)
{
	struct smtpc_reply r = reply(550, "5.999.999", "");
	char out[17];

	memset(out, 'X', sizeof(out));
	outcome_status(&r, out);
	ck_assert_str_eq(out, "5.999.999");
	ck_assert_int_eq(out[16], 'X'); /* nothing past 16 bytes */
}
END_TEST

static Suite *
outcome_suite(void)
{
	Suite *s = suite_create("outcome");
	TCase *tc;

	tc = tcase_create("reply");
	tcase_add_loop_test(tc, test_outcome_of_reply_table, 0,
			    sizeof(of_cases) / sizeof(of_cases[0]));
	tcase_add_test(tc, test_outcome_of_reply_uses_basic_code_only);
	tcase_add_test(tc,
		       test_outcome_try_next_host_on_any_connection_trouble);
	suite_add_tcase(s, tc);

	tc = tcase_create("retry");
	tcase_add_test(tc, test_outcome_next_try_follows_schedule);
	tcase_add_test(tc, test_outcome_next_try_last_slot_repeats);
	tcase_add_test(tc, test_outcome_next_try_attempt_zero_uses_first_slot);
	tcase_add_test(tc, test_outcome_next_try_empty_schedule_is_60s);
	tcase_add_test(tc, test_outcome_next_try_is_always_later);
	tcase_add_test(tc, test_outcome_next_try_large_delay_no_overflow);
	tcase_add_test(tc, test_outcome_next_try_jitter_spreads);
	suite_add_tcase(s, tc);

	tc = tcase_create("expiry");
	tcase_add_test(tc, test_outcome_expiry_boundary);
	tcase_add_test(tc, test_outcome_expiry_arrival_in_future);
	tcase_add_test(tc, test_outcome_expiry_shortest_lifetime);
	suite_add_tcase(s, tc);

	tc = tcase_create("status");
	tcase_add_loop_test(tc, test_outcome_status_table, 0,
			    sizeof(status_cases) / sizeof(status_cases[0]));
	tcase_add_test(tc, test_outcome_status_fits_16_bytes);
	suite_add_tcase(s, tc);

	return s;
}

CHECK_MAIN(outcome_suite)
