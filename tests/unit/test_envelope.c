/* Check suite for lib/envelope.c: the checks a node runs on every envelope
 * a peer sends before storing it (counts, string bounds, enum ranges), and
 * the domain of a mailbox. Envelopes are built by hand, and for the enum
 * checks also packed and unpacked as they would arrive off the wire. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/envelope.h"
#include "tests/unit/check_helpers.h"

/* ---- a valid envelope to break ------------------------------------- */

#define FX_RCPTS 3

struct fx {
	Shoal__Envelope env;
	Shoal__Recipient r[FX_RCPTS];
	Shoal__Recipient *rp[FX_RCPTS];
};

static char fx_from[] = "sender@a.example";
static char fx_rcpt0[] = "one@b.example";
static char fx_rcpt1[] = "two@b.example";
static char fx_rcpt2[] = "three@c.example";
static char fx_orcpt[] = "rfc822;one@b.example";
static char fx_reply[] = "451 4.7.1 try later";
static char fx_envid[] = "QQ314159";
static char fx_client[] = "192.0.2.1";
static char fx_helo[] = "client.a.example";
static char fx_empty[] = "";

static void
fx_init(struct fx *f)
{
	static char *addrs[FX_RCPTS] = { fx_rcpt0, fx_rcpt1, fx_rcpt2 };

	memset(f, 0, sizeof(*f));
	shoal__envelope__init(&f->env);
	for (size_t i = 0; i < FX_RCPTS; i++) {
		shoal__recipient__init(&f->r[i]);
		f->r[i].address = addrs[i];
		f->rp[i] = &f->r[i];
	}
	f->r[0].orcpt = fx_orcpt;
	f->r[0].notify = SHOAL__NOTIFY__NOTIFY_FAILURE |
			 SHOAL__NOTIFY__NOTIFY_DELAY;
	f->r[1].state = SHOAL__RCPT_STATE__RCPT_DEFERRED;
	f->r[1].last_reply = fx_reply;
	f->r[1].attempts = 3;
	f->env.mail_from = fx_from;
	f->env.n_rcpts = FX_RCPTS;
	f->env.rcpts = f->rp;
	f->env.ret = SHOAL__RET__RET_HDRS;
	f->env.envid = fx_envid;
	f->env.body = SHOAL__BODY_TYPE__BODY_8BITMIME;
	f->env.client_addr = fx_client;
	f->env.helo = fx_helo;
	f->env.arrival_time = 1700000000;
	f->env.size = 1234;
}

static char *
str_of(size_t n, char c)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Validate and expect -EPROTO with exactly this reason. */
static void
assert_rejected(const Shoal__Envelope *env, const char *why_want)
{
	const char *why = NULL;

	ck_assert_int_eq(envelope_validate(env, &why), -EPROTO);
	ck_assert_ptr_nonnull(why);
	ck_assert_str_eq(why, why_want);
}

static void
assert_valid(const Shoal__Envelope *env)
{
	const char *why = NULL;
	int rc = envelope_validate(env, &why);

	ck_assert_msg(rc == 0, "rejected: %s", why ? why : "(no reason)");
}

/* ---- validate ------------------------------------------------------ */

START_TEST(test_envelope_valid_passes)
{
	struct fx f;

	fx_init(&f);
	assert_valid(&f.env);
}
END_TEST

START_TEST(test_envelope_null_is_rejected)
{
	assert_rejected(NULL, "no envelope");
}
END_TEST

START_TEST(test_envelope_null_sender_passes)
{
	struct fx f;

	fx_init(&f);
	f.env.mail_from = fx_empty; /* MAIL FROM:<>, a bounce */
	assert_valid(&f.env);
}
END_TEST

START_TEST(test_envelope_default_fields_pass)
{
	Shoal__Envelope env;
	Shoal__Recipient r;
	Shoal__Recipient *rp = &r;

	/* everything at its protobuf default except one recipient */
	shoal__envelope__init(&env);
	shoal__recipient__init(&r);
	r.address = fx_rcpt0;
	env.n_rcpts = 1;
	env.rcpts = &rp;
	assert_valid(&env);
}
END_TEST

/* RFC 5321 4.5.3.1: 64 + 1 + 255 = 320 octets of mailbox. */
START_TEST(test_envelope_sender_bound_320)
{
	char *ok = str_of(ENVELOPE_ADDR_MAX, 's');
	char *big = str_of(ENVELOPE_ADDR_MAX + 1, 's');
	struct fx f;

	fx_init(&f);
	f.env.mail_from = ok;
	assert_valid(&f.env);
	f.env.mail_from = big;
	assert_rejected(&f.env, "sender too long");
	free(ok);
	free(big);
}
END_TEST

START_TEST(test_envelope_no_recipients_is_rejected)
{
	struct fx f;

	fx_init(&f);
	f.env.n_rcpts = 0;
	assert_rejected(&f.env, "recipient count out of range");
}
END_TEST

START_TEST(test_envelope_recipient_count_bound)
{
	Shoal__Recipient **many = calloc(ENVELOPE_RCPTS_MAX + 1, sizeof(*many));
	struct fx f;

	ck_assert_ptr_nonnull(many);
	fx_init(&f);
	for (size_t i = 0; i <= ENVELOPE_RCPTS_MAX; i++)
		many[i] = &f.r[i % FX_RCPTS];
	f.env.rcpts = many;
	f.env.n_rcpts = ENVELOPE_RCPTS_MAX;
	assert_valid(&f.env);
	f.env.n_rcpts = ENVELOPE_RCPTS_MAX + 1;
	assert_rejected(&f.env, "recipient count out of range");
	f.env.n_rcpts = SIZE_MAX; /* rejected before any is read */
	assert_rejected(&f.env, "recipient count out of range");
	free(many);
}
END_TEST

START_TEST(test_envelope_empty_recipient_is_rejected)
{
	struct fx f;

	fx_init(&f);
	f.r[2].address = fx_empty; /* the last one too is looked at */
	assert_rejected(&f.env, "bad recipient");
	fx_init(&f);
	f.r[0].address = fx_empty;
	assert_rejected(&f.env, "bad recipient");
}
END_TEST

START_TEST(test_envelope_recipient_address_bound_320)
{
	char *ok = str_of(ENVELOPE_ADDR_MAX, 'r');
	char *big = str_of(ENVELOPE_ADDR_MAX + 1, 'r');
	struct fx f;

	fx_init(&f);
	f.r[1].address = ok;
	assert_valid(&f.env);
	f.r[1].address = big;
	assert_rejected(&f.env, "bad recipient");
	free(ok);
	free(big);
}
END_TEST

START_TEST(test_envelope_orcpt_and_reply_bound_1024)
{
	char *ok = str_of(ENVELOPE_TEXT_MAX, 'o');
	char *big = str_of(ENVELOPE_TEXT_MAX + 1, 'o');
	struct fx f;

	fx_init(&f);
	f.r[0].orcpt = ok;
	f.r[0].last_reply = ok;
	assert_valid(&f.env);

	f.r[0].orcpt = big;
	assert_rejected(&f.env, "bad recipient");

	fx_init(&f);
	f.r[2].last_reply = big;
	assert_rejected(&f.env, "bad recipient");
	free(ok);
	free(big);
}
END_TEST

/* NOTIFY is a set of the four bits of queue.proto's Notify: 0..15. */
START_TEST(test_envelope_notify_bits_bound)
{
	struct fx f;

	fx_init(&f);
	f.r[0].notify =
		SHOAL__NOTIFY__NOTIFY_NEVER | SHOAL__NOTIFY__NOTIFY_SUCCESS |
		SHOAL__NOTIFY__NOTIFY_FAILURE | SHOAL__NOTIFY__NOTIFY_DELAY;
	assert_valid(&f.env);
	f.r[0].notify = 16;
	assert_rejected(&f.env, "bad recipient");
	f.r[0].notify = UINT32_MAX;
	assert_rejected(&f.env, "bad recipient");
}
END_TEST

START_TEST(test_envelope_recipient_state_bound)
{
	static const int good[] = {
		SHOAL__RCPT_STATE__RCPT_QUEUED,
		SHOAL__RCPT_STATE__RCPT_DEFERRED,
		SHOAL__RCPT_STATE__RCPT_DELIVERED,
		SHOAL__RCPT_STATE__RCPT_BOUNCED,
	};
	struct fx f;

	fx_init(&f);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		f.r[1].state = (Shoal__RcptState)good[i];
		assert_valid(&f.env);
	}
	f.r[1].state = (Shoal__RcptState)4;
	assert_rejected(&f.env, "bad recipient state");
	f.r[1].state = (Shoal__RcptState)-1;
	assert_rejected(&f.env, "bad recipient state");
}
END_TEST

START_TEST(test_envelope_ret_and_body_bounds)
{
	struct fx f;

	fx_init(&f);
	for (int v = 0; v <= 2; v++) {
		f.env.ret = (Shoal__Ret)v;
		f.env.body = (Shoal__BodyType)v;
		assert_valid(&f.env);
	}
	fx_init(&f);
	f.env.ret = (Shoal__Ret)3;
	assert_rejected(&f.env, "bad enum value");
	f.env.ret = (Shoal__Ret)-1;
	assert_rejected(&f.env, "bad enum value");
	fx_init(&f);
	f.env.body = (Shoal__BodyType)3;
	assert_rejected(&f.env, "bad enum value");
	f.env.body = (Shoal__BodyType)-5;
	assert_rejected(&f.env, "bad enum value");
}
END_TEST

/* RFC 3461 4.4: ENVID is at most 100 characters. */
START_TEST(test_envelope_envid_bound_100)
{
	char *ok = str_of(100, 'E');
	char *big = str_of(101, 'E');
	struct fx f;

	fx_init(&f);
	f.env.envid = ok;
	assert_valid(&f.env);
	f.env.envid = big;
	assert_rejected(&f.env, "field too long");
	free(ok);
	free(big);
}
END_TEST

START_TEST(test_envelope_text_fields_bound_1024)
{
	char *ok = str_of(ENVELOPE_TEXT_MAX, 't');
	char *big = str_of(ENVELOPE_TEXT_MAX + 1, 't');
	struct fx f;

	fx_init(&f);
	f.env.client_addr = ok;
	f.env.helo = ok;
	f.env.auth_user = ok;
	assert_valid(&f.env);

	fx_init(&f);
	f.env.client_addr = big;
	assert_rejected(&f.env, "field too long");
	fx_init(&f);
	f.env.helo = big;
	assert_rejected(&f.env, "field too long");
	fx_init(&f);
	f.env.auth_user = big;
	assert_rejected(&f.env, "field too long");
	free(ok);
	free(big);
}
END_TEST

/* node/queue/bounce.c copies the sender, each recipient address and ORCPT, and
 * the ENVID into DSN header fields: a CR, LF or any other control character
 * in one of them could add a header field, so it is refused. */
static const char *const ctl_strings[] = {
	"a@b.example\r\nBcc: x@evil.example",
	"a@b.example\n",
	"a\r@b.example",
	"a\t@b.example",
	"\x01" "a@b.example",
	"a@b.example\x1f",
	"a@b.example\x7f",
};

START_TEST(test_envelope_control_characters_rejected)
{
	char *bad = strdup(ctl_strings[_i]);
	struct fx f;

	ck_assert_ptr_nonnull(bad);
	fx_init(&f);
	f.env.mail_from = bad;
	assert_rejected(&f.env, "control character in sender");

	fx_init(&f);
	f.r[2].address = bad;
	assert_rejected(&f.env, "control character in recipient or orcpt");

	fx_init(&f);
	f.r[1].orcpt = bad;
	assert_rejected(&f.env, "control character in recipient or orcpt");

	fx_init(&f);
	f.env.envid = bad;
	assert_rejected(&f.env, "control character in envid");
	free(bad);
}
END_TEST

/* Printable ASCII at the edges, and UTF-8 (SMTPUTF8), still pass. */
START_TEST(test_envelope_printable_and_utf8_pass)
{
	static char edges[] = " ~@b.example";
	static char utf8[] = "us\xc3\xa9r@\xc3\xa9xample.test";
	struct fx f;

	fx_init(&f);
	f.env.mail_from = edges;
	f.r[0].address = utf8;
	f.r[0].orcpt = edges;
	f.env.envid = edges;
	assert_valid(&f.env);
}
END_TEST

/* What arrives off the wire: protobuf-c keeps unknown enum numbers as
 * they are, so validation is what stops them. */
static Shoal__Envelope *
wire_roundtrip(const Shoal__Envelope *env)
{
	size_t len = shoal__envelope__get_packed_size(env);
	uint8_t *p = malloc(len ? len : 1);
	Shoal__Envelope *out;

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(shoal__envelope__pack(env, p), len);
	out = shoal__envelope__unpack(NULL, len, p);
	free(p);
	ck_assert_ptr_nonnull(out);
	return out;
}

START_TEST(test_envelope_from_wire_valid)
{
	struct fx f;
	Shoal__Envelope *w;

	fx_init(&f);
	w = wire_roundtrip(&f.env);
	assert_valid(w);
	ck_assert_uint_eq(w->n_rcpts, FX_RCPTS);
	ck_assert_str_eq(w->rcpts[0]->orcpt, "rfc822;one@b.example");
	shoal__envelope__free_unpacked(w, NULL);
}
END_TEST

START_TEST(test_envelope_from_wire_bad_enums)
{
	struct fx f;
	Shoal__Envelope *w;

	fx_init(&f);
	f.env.ret = (Shoal__Ret)7;
	w = wire_roundtrip(&f.env);
	assert_rejected(w, "bad enum value");
	shoal__envelope__free_unpacked(w, NULL);

	fx_init(&f);
	f.env.body = (Shoal__BodyType)99;
	w = wire_roundtrip(&f.env);
	assert_rejected(w, "bad enum value");
	shoal__envelope__free_unpacked(w, NULL);

	fx_init(&f);
	f.r[2].state = (Shoal__RcptState)9;
	w = wire_roundtrip(&f.env);
	assert_rejected(w, "bad recipient state");
	shoal__envelope__free_unpacked(w, NULL);
}
END_TEST

START_TEST(test_envelope_from_wire_no_recipients)
{
	Shoal__Envelope env;
	Shoal__Envelope *w;

	shoal__envelope__init(&env);
	env.mail_from = fx_from;
	w = wire_roundtrip(&env);
	assert_rejected(w, "recipient count out of range");
	shoal__envelope__free_unpacked(w, NULL);
}
END_TEST

/* A control character off the wire is refused the same way. */
START_TEST(test_envelope_from_wire_control_character_rejected)
{
	static char crlf[] = "two@b.example\r\nX-Injected: yes";
	struct fx f;
	Shoal__Envelope *w;

	fx_init(&f);
	f.r[1].address = crlf;
	w = wire_roundtrip(&f.env);
	assert_rejected(w, "control character in recipient or orcpt");
	shoal__envelope__free_unpacked(w, NULL);
}
END_TEST

/* The order of checks decides the reason given; the first failing rule
 * in header order wins (sender before recipients before enums). */
START_TEST(test_envelope_first_failure_is_reported)
{
	char *big = str_of(ENVELOPE_ADDR_MAX + 1, 'x');
	struct fx f;

	fx_init(&f);
	f.env.mail_from = big;
	f.env.n_rcpts = 0;
	f.env.ret = (Shoal__Ret)9;
	assert_rejected(&f.env, "sender too long");

	fx_init(&f);
	f.r[0].notify = 99;
	f.env.envid = big;
	assert_rejected(&f.env, "bad recipient");
	free(big);
}
END_TEST

/* ---- domain -------------------------------------------------------- */

struct domain_case {
	const char *addr;
	const char *want;
};

static const struct domain_case domain_cases[] = {
	{ "user@example.com", "example.com" },
	{ "User@Example.COM", "Example.COM" },        /* case kept */
	{ "a@b", "b" },
	{ "\"a@b\"@c.example", "c.example" },          /* the last '@' */
	{ "a@b@c.example", "c.example" },
	{ "postmaster", "" },                          /* no domain */
	{ "", "" },
	{ "user@", "" },
	{ "@only.example", "only.example" },
	{ "user@[192.0.2.1]", "[192.0.2.1]" },        /* address literal */
	{ "us\xc3\xa9r@\xc3\xa9xample.test", "\xc3\xa9xample.test" },
};

START_TEST(test_envelope_domain_table)
{
	const struct domain_case *dc = &domain_cases[_i];
	const char *d = envelope_domain(dc->addr);

	ck_assert_str_eq(d, dc->want);
}
END_TEST

/* It points into addr, just after the last '@': never a copy to free. */
START_TEST(test_envelope_domain_points_into_addr)
{
	char addr[] = "x@y.example";
	const char *d = envelope_domain(addr);

	ck_assert_ptr_eq(d, addr + 2);
	addr[3] = 'Z';
	ck_assert_str_eq(d, "yZexample");
}
END_TEST

static Suite *
envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc;

	tc = tcase_create("validate");
	tcase_add_test(tc, test_envelope_valid_passes);
	tcase_add_test(tc, test_envelope_null_is_rejected);
	tcase_add_test(tc, test_envelope_null_sender_passes);
	tcase_add_test(tc, test_envelope_default_fields_pass);
	tcase_add_test(tc, test_envelope_sender_bound_320);
	tcase_add_test(tc, test_envelope_no_recipients_is_rejected);
	tcase_add_test(tc, test_envelope_recipient_count_bound);
	tcase_add_test(tc, test_envelope_empty_recipient_is_rejected);
	tcase_add_test(tc, test_envelope_recipient_address_bound_320);
	tcase_add_test(tc, test_envelope_orcpt_and_reply_bound_1024);
	tcase_add_test(tc, test_envelope_notify_bits_bound);
	tcase_add_test(tc, test_envelope_recipient_state_bound);
	tcase_add_test(tc, test_envelope_ret_and_body_bounds);
	tcase_add_test(tc, test_envelope_envid_bound_100);
	tcase_add_test(tc, test_envelope_text_fields_bound_1024);
	tcase_add_test(tc, test_envelope_first_failure_is_reported);
	tcase_add_loop_test(tc, test_envelope_control_characters_rejected, 0,
			    sizeof(ctl_strings) / sizeof(ctl_strings[0]));
	tcase_add_test(tc, test_envelope_printable_and_utf8_pass);
	suite_add_tcase(s, tc);

	tc = tcase_create("wire");
	tcase_add_test(tc, test_envelope_from_wire_valid);
	tcase_add_test(tc, test_envelope_from_wire_bad_enums);
	tcase_add_test(tc, test_envelope_from_wire_no_recipients);
	tcase_add_test(tc, test_envelope_from_wire_control_character_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("domain");
	tcase_add_loop_test(tc, test_envelope_domain_table, 0,
			    sizeof(domain_cases) / sizeof(domain_cases[0]));
	tcase_add_test(tc, test_envelope_domain_points_into_addr);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(envelope_suite)
