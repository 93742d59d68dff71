/* Check suite for node/delivery/outcome.c, the delivery-error policy, one
 * table per decision it owns: what a final reply means for a recipient
 * (2xx delivered, 4xx and local failures deferred, 5xx bounced) with its
 * DSN status (RFC 3463) and category; what a failure to set up a
 * connection leads to (same host in plain text, host marked down, next MX
 * host per RFC 5321 5.1, the whole destination deferred); what a DNS
 * answer and a local refusal mean for a job; retry times by attempt with
 * jitter; and when queue lifetime turns a deferral into a bounce (the
 * categories themselves: test_classify.c). Replies are data, so this is
 * tables run with tcase_add_loop_test(). */
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

/* ---- one recipient of an attempt ------------------------------------ */

/* reply code / enhanced code / phase the attempt ended in -> verdict */
struct rcpt_case {
	int code;
	const char *enhanced;
	const char *text;
	enum smtpc_phase phase;
	enum outcome want;
	const char *status;
	enum classify_cat cat;
};

static const struct rcpt_case rcpt_cases[] = {
	/* done */
	{ 250, "", "ok", SMTPC_PH_QUIT, OUTCOME_DELIVERED, "2.0.0",
	  CLASSIFY_NONE },
	{ 250, "2.6.0", "queued as 1234", SMTPC_PH_QUIT, OUTCOME_DELIVERED,
	  "2.6.0", CLASSIFY_NONE },
	{ 251, "2.1.5", "will forward", SMTPC_PH_QUIT, OUTCOME_DELIVERED,
	  "2.1.5", CLASSIFY_NONE },
	/* bounce: a 5xx at RCPT, after the dot, or MAIL's for everyone */
	{ 550, "5.1.1", "user unknown", SMTPC_PH_RCPT, OUTCOME_BOUNCED,
	  "5.1.1", CLASSIFY_INVALID_RECIPIENT },
	{ 552, "5.2.2", "mailbox full", SMTPC_PH_DOT, OUTCOME_BOUNCED, "5.2.2",
	  CLASSIFY_MAILBOX_FULL },
	{ 554, "5.7.1", "rejected as spam", SMTPC_PH_DOT, OUTCOME_BOUNCED,
	  "5.7.1", CLASSIFY_POLICY_BLOCK },
	{ 552, "5.3.4", "message too big", SMTPC_PH_MAIL, OUTCOME_BOUNCED,
	  "5.3.4", CLASSIFY_MESSAGE_TOO_LARGE },
	{ 550, "", "no such user here", SMTPC_PH_RCPT, OUTCOME_BOUNCED,
	  "5.0.0", CLASSIFY_INVALID_RECIPIENT },
	/* a contradicting enhanced code: the basic code decides */
	{ 550, "4.2.2", "over quota", SMTPC_PH_RCPT, OUTCOME_BOUNCED, "5.0.0",
	  CLASSIFY_MAILBOX_FULL },
	/* defer: 4xx anywhere */
	{ 451, "4.7.1", "greylisted, try again later", SMTPC_PH_RCPT,
	  OUTCOME_DEFERRED, "4.7.1", CLASSIFY_RATE_LIMITED },
	{ 452, "4.2.2", "mailbox full", SMTPC_PH_RCPT, OUTCOME_DEFERRED,
	  "4.2.2", CLASSIFY_MAILBOX_FULL },
	{ 421, "4.3.2", "shutting down", SMTPC_PH_MAIL, OUTCOME_DEFERRED,
	  "4.3.2", CLASSIFY_OTHER },
	{ 451, "", "local error", SMTPC_PH_DOT, OUTCOME_DEFERRED, "4.0.0",
	  CLASSIFY_OTHER },
	/* defer: no reply at all (lost, timed out) in any phase */
	{ 0, "", "timeout after end of data", SMTPC_PH_DOT, OUTCOME_DEFERRED,
	  "4.4.1", CLASSIFY_CONNECTION_FAILURE },
	{ 0, "4.4.2", "connection lost in MAIL", SMTPC_PH_MAIL,
	  OUTCOME_DEFERRED, "4.4.2", CLASSIFY_CONNECTION_FAILURE },
	{ 0, "", "connection closed by server", SMTPC_PH_DATA,
	  OUTCOME_DEFERRED, "4.4.1", CLASSIFY_CONNECTION_FAILURE },
	/* defer: no sense as a final reply */
	{ 354, "", "go ahead", SMTPC_PH_DATA, OUTCOME_DEFERRED, "4.0.0",
	  CLASSIFY_OTHER },
};

START_TEST(test_outcome_of_rcpt_table)
{
	const struct rcpt_case *c = &rcpt_cases[_i];
	struct smtpc_reply r = reply(c->code, c->enhanced, c->text);
	struct outcome_verdict v;

	memset(&v, 'X', sizeof(v));
	outcome_of_rcpt(&r, c->phase, &v);
	ck_assert_msg(v.outcome == c->want, "row %d: outcome %s want %s", _i,
		      outcome_name(v.outcome), outcome_name(c->want));
	ck_assert_msg(strcmp(v.status, c->status) == 0,
		      "row %d: status %s want %s", _i, v.status, c->status);
	ck_assert_msg(v.category == c->cat, "row %d: category %s want %s", _i,
		      classify_name(v.category), classify_name(c->cat));
}
END_TEST

/* RFC 3461 4.1: "relayed" only for a delivery to a server without DSN. */
START_TEST(test_outcome_is_relayed)
{
	ck_assert(outcome_is_relayed(OUTCOME_DELIVERED, false));
	ck_assert(!outcome_is_relayed(OUTCOME_DELIVERED, true));
	ck_assert(!outcome_is_relayed(OUTCOME_DEFERRED, false));
	ck_assert(!outcome_is_relayed(OUTCOME_BOUNCED, false));
}
END_TEST

START_TEST(test_outcome_name)
{
	ck_assert_str_eq(outcome_name(OUTCOME_DELIVERED), "delivered");
	ck_assert_str_eq(outcome_name(OUTCOME_DEFERRED), "deferred");
	ck_assert_str_eq(outcome_name(OUTCOME_BOUNCED), "bounced");
	ck_assert_str_eq(outcome_name((enum outcome)42), "deferred");
}
END_TEST

/* ---- setting up a connection --------------------------------------- */

/* phase / reply / TLS mode -> same host in plain text? host down? next
 * host? and, when no address is left, the whole destination's verdict */
struct setup_case {
	enum smtpc_phase phase;
	int code;
	const char *enhanced;
	const char *text;
	bool is_tls_opportunistic, is_plain_tried;
	bool want_plain, want_down, want_next;
	const char *status;            /* whole destination: always deferred */
	enum classify_cat cat;
};

static const struct setup_case setup_cases[] = {
	/* nothing answered: down, next host */
	{ SMTPC_PH_CONNECT, 0, "4.4.1", "connect: Connection refused", true,
	  false, false, true, true, "4.4.1", CLASSIFY_CONNECTION_FAILURE },
	{ SMTPC_PH_CONNECT, 0, "", "connection timed out", false, false,
	  false, true, true, "4.4.1", CLASSIFY_CONNECTION_FAILURE },
	/* no SMTP service: down; a 5xx greeting refuses the connection,
	 * not the recipients, so the destination is deferred, class 4 */
	{ SMTPC_PH_GREETING, 554, "5.7.1", "go away", true, false, false,
	  true, true, "4.7.1", CLASSIFY_POLICY_BLOCK },
	{ SMTPC_PH_GREETING, 421, "4.3.2", "busy", true, false, false, true,
	  true, "4.3.2", CLASSIFY_OTHER },
	{ SMTPC_PH_GREETING, 554, "", "no SMTP service here", true, false,
	  false, true, true, "4.0.0", CLASSIFY_OTHER },
	/* EHLO and HELO refused: next host, but not down */
	{ SMTPC_PH_EHLO, 550, "5.5.1", "HELO refused", true, false, false,
	  false, true, "4.5.1", CLASSIFY_OTHER },
	{ SMTPC_PH_EHLO, 421, "", "closing", false, false, false, false, true,
	  "4.0.0", CLASSIFY_OTHER },
	/* a 2xx reported as a setup failure still delivers nothing */
	{ SMTPC_PH_EHLO, 250, "2.0.0", "odd", false, false, false, false, true,
	  "4.0.0", CLASSIFY_NONE },
	/* opportunistic TLS that failed: the same host in plain text once */
	{ SMTPC_PH_TLS, 0, "4.7.5", "TLS: handshake failed", true, false,
	  true, false, true, "4.7.5", CLASSIFY_TLS_FAILURE },
	{ SMTPC_PH_TLS, 454, "4.7.0", "TLS not available", true, false, true,
	  false, true, "4.7.0", CLASSIFY_TLS_FAILURE },
	{ SMTPC_PH_TLS, 0, "4.7.5", "TLS: handshake failed", true, true,
	  false, false, true, "4.7.5", CLASSIFY_TLS_FAILURE },
	/* required TLS: never in plain text */
	{ SMTPC_PH_TLS, 0, "4.7.10", "TLS required but STARTTLS not offered",
	  false, false, false, false, true, "4.7.10", CLASSIFY_TLS_FAILURE },
	{ SMTPC_PH_TLS, 554, "5.7.10", "TLS required", false, false, false,
	  false, true, "4.7.10", CLASSIFY_TLS_FAILURE },
};

START_TEST(test_outcome_setup_failure_table)
{
	const struct setup_case *c = &setup_cases[_i];
	struct smtpc_reply r = reply(c->code, c->enhanced, c->text);
	struct outcome_verdict v;

	ck_assert_msg(outcome_retry_plain(c->phase, c->is_tls_opportunistic,
					  c->is_plain_tried) == c->want_plain,
		      "row %d: plain", _i);
	ck_assert_msg(outcome_marks_host_down(c->phase) == c->want_down,
		      "row %d: down", _i);
	ck_assert_msg(outcome_try_next_host(c->phase, &r) == c->want_next,
		      "row %d: next host", _i);
	memset(&v, 'X', sizeof(v));
	outcome_of_setup_failure(c->phase, &r, &v);
	ck_assert_msg(v.outcome == OUTCOME_DEFERRED, "row %d: outcome %s", _i,
		      outcome_name(v.outcome));
	ck_assert_msg(strcmp(v.status, c->status) == 0,
		      "row %d: status %s want %s", _i, v.status, c->status);
	ck_assert_msg(v.category == c->cat, "row %d: category %s want %s", _i,
		      classify_name(v.category), classify_name(c->cat));
}
END_TEST

/* ---- DNS and local failures ---------------------------------------- */

struct dns_case {
	enum dns_status st;
	bool want_end;
	enum outcome want;
	const char *status;
};

static const struct dns_case dns_cases[] = {
	{ DNS_OK, false, OUTCOME_DELIVERED, "" },
	{ DNS_NULL_MX, true, OUTCOME_BOUNCED, "5.1.10" }, /* RFC 7505 4.2 */
	{ DNS_NXDOMAIN, true, OUTCOME_BOUNCED, "5.1.2" },
	{ DNS_NO_HOSTS, true, OUTCOME_BOUNCED, "5.1.2" },
	{ DNS_TEMPFAIL, true, OUTCOME_DEFERRED, "4.4.3" },
	{ (enum dns_status)99, true, OUTCOME_DEFERRED, "4.4.3" },
};

START_TEST(test_outcome_of_dns_table)
{
	const struct dns_case *c = &dns_cases[_i];
	struct outcome_verdict v;

	memset(&v, 'X', sizeof(v));
	ck_assert_int_eq(outcome_of_dns(c->st, &v), c->want_end);
	if (!c->want_end) {
		ck_assert_int_eq(v.status[0], 'X'); /* untouched */
		return;
	}
	ck_assert_int_eq(v.outcome, c->want);
	ck_assert_str_eq(v.status, c->status);
	ck_assert_int_eq(v.category, CLASSIFY_DNS_FAILURE);
}
END_TEST

struct local_case {
	enum outcome_local why;
	enum outcome want;
	const char *status;
	enum classify_cat cat;
};

static const struct local_case local_cases[] = {
	/* our own config: never the recipient's fault */
	{ OUTCOME_LOCAL_BAD_ROUTE, OUTCOME_DEFERRED, "4.3.5", CLASSIFY_OTHER },
	{ OUTCOME_LOCAL_NO_DOMAIN, OUTCOME_BOUNCED, "5.1.3",
	  CLASSIFY_INVALID_RECIPIENT },
	{ OUTCOME_LOCAL_BAD_LITERAL, OUTCOME_BOUNCED, "5.1.2",
	  CLASSIFY_INVALID_RECIPIENT },
	{ OUTCOME_LOCAL_SUPPRESSED, OUTCOME_BOUNCED, "5.1.1",
	  CLASSIFY_INVALID_RECIPIENT },
};

START_TEST(test_outcome_of_local_table)
{
	const struct local_case *c = &local_cases[_i];
	struct outcome_verdict v;

	memset(&v, 'X', sizeof(v));
	outcome_of_local(c->why, &v);
	ck_assert_int_eq(v.outcome, c->want);
	ck_assert_str_eq(v.status, c->status);
	ck_assert_int_eq(v.category, c->cat);
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

/* attempts -> the slot of delivery.retry_schedule used */
struct try_case {
	uint32_t attempts;
	uint64_t delay;
};

static const struct try_case try_cases[] = {
	{ 0, 60 },   { 1, 60 },   { 2, 300 },	     { 3, 900 },
	{ 4, 900 },  { 10, 900 }, { UINT32_MAX, 900 },
};

START_TEST(test_outcome_next_try_table)
{
	const struct try_case *c = &try_cases[_i];

	for (int k = 0; k < 50; k++)
		assert_within_jitter(outcome_next_try(1700000000, c->attempts,
						      sched3, 3),
				     1700000000, c->delay);
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

/* age -> does the attempt's outcome stand? (lifetime 5 days) */
struct final_case {
	enum outcome oc;
	uint64_t age;
	enum outcome want;
};

#define LIFE 432000u

static const struct final_case final_cases[] = {
	{ OUTCOME_DEFERRED, 0, OUTCOME_DEFERRED },
	{ OUTCOME_DEFERRED, LIFE - 1, OUTCOME_DEFERRED },
	{ OUTCOME_DEFERRED, LIFE, OUTCOME_BOUNCED }, /* expired: it ends */
	{ OUTCOME_DEFERRED, 10ull * LIFE, OUTCOME_BOUNCED },
	{ OUTCOME_DELIVERED, LIFE, OUTCOME_DELIVERED }, /* late, but done */
	{ OUTCOME_DELIVERED, 0, OUTCOME_DELIVERED },
	{ OUTCOME_BOUNCED, 0, OUTCOME_BOUNCED },
	{ OUTCOME_BOUNCED, LIFE, OUTCOME_BOUNCED },
};

START_TEST(test_outcome_final_table)
{
	const struct final_case *c = &final_cases[_i];
	const uint64_t arrival = 1700000000;

	ck_assert_int_eq(outcome_final(c->oc, arrival + c->age, arrival, LIFE),
			 c->want);
}
END_TEST

/* A clock behind the arrival (skew between nodes) never ends anything. */
START_TEST(test_outcome_final_arrival_in_future)
{
	ck_assert_int_eq(outcome_final(OUTCOME_DEFERRED, 1000, 2000, 1),
			 OUTCOME_DEFERRED);
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
	tcase_add_loop_test(tc, test_outcome_of_rcpt_table, 0,
			    sizeof(rcpt_cases) / sizeof(rcpt_cases[0]));
	tcase_add_test(tc, test_outcome_is_relayed);
	tcase_add_test(tc, test_outcome_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("setup");
	tcase_add_loop_test(tc, test_outcome_setup_failure_table, 0,
			    sizeof(setup_cases) / sizeof(setup_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("dns_local");
	tcase_add_loop_test(tc, test_outcome_of_dns_table, 0,
			    sizeof(dns_cases) / sizeof(dns_cases[0]));
	tcase_add_loop_test(tc, test_outcome_of_local_table, 0,
			    sizeof(local_cases) / sizeof(local_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("retry");
	tcase_add_test(tc, test_outcome_next_try_follows_schedule);
	tcase_add_loop_test(tc, test_outcome_next_try_table, 0,
			    sizeof(try_cases) / sizeof(try_cases[0]));
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
	tcase_add_loop_test(tc, test_outcome_final_table, 0,
			    sizeof(final_cases) / sizeof(final_cases[0]));
	tcase_add_test(tc, test_outcome_final_arrival_in_future);
	suite_add_tcase(s, tc);

	tc = tcase_create("status");
	tcase_add_loop_test(tc, test_outcome_status_table, 0,
			    sizeof(status_cases) / sizeof(status_cases[0]));
	tcase_add_test(tc, test_outcome_status_fits_16_bytes);
	suite_add_tcase(s, tc);

	return s;
}

CHECK_MAIN(outcome_suite)
