/* Check suite for node/delivery/classify.c, bounce classification: the enhanced
 * code decides first (RFC 3463), then the basic code and reply text, then
 * the phase of a local failure. The replies below are written in the shape
 * large providers use (multi-line text joined by spaces, help links,
 * bracketed tags); they are ours, not copies. */
#include <stdio.h>
#include <string.h>

#include "node/delivery/classify.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/reply_helper.h"

struct cat_case {
	int code;
	const char *enhanced;
	const char *text;
	enum smtpc_phase phase;
	enum classify_cat want;
};

static const struct cat_case cat_cases[] = {
	/* delivered is no failure, whatever the text says */
	{ 250, "2.0.0", "ok, no TLS though", SMTPC_PH_DOT, CLASSIFY_NONE },
	{ 250, "", "", SMTPC_PH_TLS, CLASSIFY_NONE },

	/* invalid recipient */
	{ 550, "5.1.1", "no", SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },
	{ 550, "5.1.0", "Address rejected", SMTPC_PH_RCPT,
	  CLASSIFY_INVALID_RECIPIENT },
	{ 550, "5.1.1",
	  "The mailbox you tried to reach does not exist. Please check the "
	  "spelling. For more information, go to https://support.example/m",
	  SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },
	{ 550, "5.5.0", "Requested action not taken: mailbox unavailable",
	  SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },
	{ 550, "5.4.1",
	  "Recipient address rejected: Access denied. [SN1PR00MB0001.eop]",
	  SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },
	{ 554, "", "delivery error: dd Sorry your message to x@y.example "
		   "cannot be delivered. This mailbox not found - mta.example",
	  SMTPC_PH_DOT, CLASSIFY_INVALID_RECIPIENT },
	{ 550, "", "USER UNKNOWN", SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },
	{ 553, "5.1.3", "bad syntax", SMTPC_PH_RCPT,
	  CLASSIFY_INVALID_RECIPIENT },
	{ 550, "5.2.1", "The account you tried to reach is disabled",
	  SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },

	/* mailbox full */
	{ 552, "5.2.2", "", SMTPC_PH_RCPT, CLASSIFY_MAILBOX_FULL },
	{ 452, "4.2.2",
	  "The account you are trying to reach is over quota. Read more at "
	  "https://support.example/q",
	  SMTPC_PH_RCPT, CLASSIFY_MAILBOX_FULL },
	{ 552, "", "Mailbox full", SMTPC_PH_DOT, CLASSIFY_MAILBOX_FULL },
	{ 554, "", "Sorry, the recipient's quota exceeded", SMTPC_PH_DOT,
	  CLASSIFY_MAILBOX_FULL },

	/* policy block */
	{ 554, "5.7.1", "Message rejected as spam", SMTPC_PH_DOT,
	  CLASSIFY_POLICY_BLOCK },
	{ 550, "5.7.1", "rate limit", SMTPC_PH_DOT, CLASSIFY_POLICY_BLOCK },
	{ 550, "5.7.26",
	  "This mail is unauthenticated, which poses a security risk to the "
	  "sender. Sender domain policy asks to reject.",
	  SMTPC_PH_DOT, CLASSIFY_POLICY_BLOCK },
	{ 550, "5.7.1",
	  "Service unavailable, Client host [192.0.2.1] blocked using DNSBL "
	  "zen.example; see https://lookup.example",
	  SMTPC_PH_RCPT, CLASSIFY_POLICY_BLOCK },
	{ 554, "5.7.9", "Message not accepted for policy reasons. See "
			"https://postmaster.example/err",
	  SMTPC_PH_DOT, CLASSIFY_POLICY_BLOCK },
	{ 451, "4.7.1", "greylisted", SMTPC_PH_RCPT, CLASSIFY_POLICY_BLOCK },
	{ 554, "", "Your IP is on a blocklist", SMTPC_PH_GREETING,
	  CLASSIFY_POLICY_BLOCK },
	{ 550, "", "Blacklisted by local rules", SMTPC_PH_RCPT,
	  CLASSIFY_POLICY_BLOCK },

	/* rate limited: temporary refusals that ask us to slow down */
	{ 421, "4.7.0", "Too many connections from your IP", SMTPC_PH_GREETING,
	  CLASSIFY_RATE_LIMITED },
	{ 452, "4.7.0", "rate limited", SMTPC_PH_RCPT, CLASSIFY_RATE_LIMITED },
	{ 450, "", "rate limit exceeded, try again later", SMTPC_PH_RCPT,
	  CLASSIFY_RATE_LIMITED },
	{ 451, "4.7.1", "You are being throttled", SMTPC_PH_RCPT,
	  CLASSIFY_RATE_LIMITED },
	{ 421, "4.7.28",
	  "Our system has detected an unusual rate of mail originating from "
	  "your IP address. To protect our users, mail has been limited.",
	  SMTPC_PH_DOT, CLASSIFY_RATE_LIMITED },
	{ 450, "4.2.1",
	  "The user you are trying to reach is receiving mail at a rate that "
	  "prevents additional messages from being delivered.",
	  SMTPC_PH_RCPT, CLASSIFY_RATE_LIMITED },
	{ 421, "4.7.0",
	  "[TS01] Messages from 192.0.2.1 temporarily deferred due to "
	  "unexpected volume or user complaints",
	  SMTPC_PH_GREETING, CLASSIFY_RATE_LIMITED },
	{ 451, "4.7.500", "Server busy. Please try again later from [192.0.2.1]",
	  SMTPC_PH_RCPT, CLASSIFY_RATE_LIMITED },
	{ 452, "", "slow down", SMTPC_PH_MAIL, CLASSIFY_RATE_LIMITED },

	/* message too large */
	{ 552, "5.3.4", "", SMTPC_PH_DOT, CLASSIFY_MESSAGE_TOO_LARGE },
	{ 552, "5.2.3",
	  "Your message exceeded our message size limits. Read more at "
	  "https://support.example/s",
	  SMTPC_PH_DOT, CLASSIFY_MESSAGE_TOO_LARGE },
	{ 552, "", "Message size exceeds fixed limit", SMTPC_PH_DOT,
	  CLASSIFY_MESSAGE_TOO_LARGE },
	{ 554, "5.0.0", "message too big", SMTPC_PH_DOT,
	  CLASSIFY_MESSAGE_TOO_LARGE },

	/* DNS */
	{ 550, "5.1.10", "recipient domain has null MX", SMTPC_PH_RCPT,
	  CLASSIFY_DNS_FAILURE },
	{ 0, "4.4.3", "SERVFAIL", SMTPC_PH_CONNECT, CLASSIFY_DNS_FAILURE },
	{ 0, "", "DNS lookup timed out", SMTPC_PH_CONNECT,
	  CLASSIFY_DNS_FAILURE },
	{ 0, "", "NXDOMAIN for b.example", SMTPC_PH_CONNECT,
	  CLASSIFY_DNS_FAILURE },

	/* TLS */
	{ 0, "", "handshake failed", SMTPC_PH_TLS, CLASSIFY_TLS_FAILURE },
	{ 454, "4.7.0", "TLS not available", SMTPC_PH_TLS,
	  CLASSIFY_TLS_FAILURE },
	{ 530, "5.7.10", "encryption needed", SMTPC_PH_MAIL,
	  CLASSIFY_TLS_FAILURE },
	{ 530, "5.7.0", "Must issue a STARTTLS command first", SMTPC_PH_MAIL,
	  CLASSIFY_TLS_FAILURE },
	{ 550, "5.0.0", "tls required", SMTPC_PH_MAIL, CLASSIFY_TLS_FAILURE },

	/* a specific enhanced code decides before the text */
	{ 550, "5.1.1", "User unknown; this domain requires TLS for all mail",
	  SMTPC_PH_RCPT, CLASSIFY_INVALID_RECIPIENT },
	{ 552, "5.2.2", "Mailbox full; DNS is fine", SMTPC_PH_RCPT,
	  CLASSIFY_MAILBOX_FULL },
	{ 554, "5.7.1", "Relay access denied (use TLS)", SMTPC_PH_RCPT,
	  CLASSIFY_POLICY_BLOCK },
	{ 550, "5.7.25",
	  "The IP address sending this message does not have a PTR record; "
	  "its forward DNS entry does not point to the sending IP",
	  SMTPC_PH_RCPT, CLASSIFY_POLICY_BLOCK },

	/* whole words only: "tls" in "mutls", "dns" in "dnsbl" */
	{ 554, "", "listed on dnsbl.example", SMTPC_PH_GREETING,
	  CLASSIFY_OTHER },
	{ 550, "", "Mutls rejected", SMTPC_PH_MAIL, CLASSIFY_OTHER },

	/* no reply at all */
	{ 0, "", "connection refused", SMTPC_PH_CONNECT,
	  CLASSIFY_CONNECTION_FAILURE },
	{ 0, "4.4.1", "timeout after DATA", SMTPC_PH_DATA,
	  CLASSIFY_CONNECTION_FAILURE },
	{ 0, "4.4.1", "bind source: Cannot assign requested address",
	  SMTPC_PH_CONNECT, CLASSIFY_CONNECTION_FAILURE },

	/* anything else */
	{ 554, "5.3.0", "transaction failed", SMTPC_PH_DOT, CLASSIFY_OTHER },
	{ 451, "4.3.0", "local error in processing", SMTPC_PH_DOT,
	  CLASSIFY_OTHER },
	{ 550, "", "", SMTPC_PH_RCPT, CLASSIFY_OTHER },
	{ 450, "4.2.1", "mailbox busy", SMTPC_PH_RCPT, CLASSIFY_OTHER },
	/* a malformed enhanced code is ignored, the text still counts */
	{ 550, "x.1.1", "no such user", SMTPC_PH_RCPT,
	  CLASSIFY_INVALID_RECIPIENT },
};

START_TEST(test_classify_reply_table)
{
	const struct cat_case *c = &cat_cases[_i];
	struct smtpc_reply r = reply(c->code, c->enhanced, c->text);
	enum classify_cat got = classify_reply(&r, c->phase);

	ck_assert_msg(got == c->want, "%d %s \"%s\": got %s want %s", c->code,
		      c->enhanced, c->text, classify_name(got),
		      classify_name(c->want));
}
END_TEST

START_TEST(test_classify_scans_only_the_bound)
{
	struct smtpc_reply r = reply(550, "", "");

	/* a keyword past CLASSIFY_SCAN_MAX is not seen, one within is */
	memset(r.text, 'a', sizeof(r.text) - 1);
	r.text[sizeof(r.text) - 1] = '\0';
	ck_assert_int_gt(sizeof(r.text) - 13, CLASSIFY_SCAN_MAX);
	memcpy(r.text + sizeof(r.text) - 13, " mailbox full", 13);
	ck_assert_int_eq(classify_reply(&r, SMTPC_PH_RCPT), CLASSIFY_OTHER);
	memcpy(r.text + CLASSIFY_SCAN_MAX - 13, " mailbox full", 13);
	ck_assert_int_eq(classify_reply(&r, SMTPC_PH_RCPT),
			 CLASSIFY_MAILBOX_FULL);
}
END_TEST

START_TEST(test_classify_names)
{
	static const char *const want[] = { "", "invalid_recipient",
		"mailbox_full", "policy_block", "dns_failure", "tls_failure",
		"rate_limited", "message_too_large", "connection_failure",
		"other" };

	for (int c = CLASSIFY_NONE; c <= CLASSIFY_OTHER; c++)
		ck_assert_str_eq(classify_name((enum classify_cat)c), want[c]);
	/* out of range never indexes past the table */
	ck_assert_str_eq(classify_name((enum classify_cat)99), "other");
	ck_assert_str_eq(classify_name((enum classify_cat)-1), "other");
}
END_TEST

START_TEST(test_classify_describe_every_name)
{
	ck_assert_str_eq(classify_describe("mailbox_full"),
			 "the recipient's mailbox is full");
	ck_assert_str_eq(classify_describe("other"), "other delivery failure");
	ck_assert_str_eq(classify_describe("no-such"),
			 "other delivery failure");
	ck_assert_str_eq(classify_describe(""), "other delivery failure");
	for (int c = CLASSIFY_INVALID_RECIPIENT; c < CLASSIFY_OTHER; c++)
		ck_assert_str_ne(classify_describe(classify_name(c)),
				 "other delivery failure");
}
END_TEST

static Suite *
classify_suite(void)
{
	Suite *s = suite_create("classify");
	TCase *tc = tcase_create("reply");

	tcase_add_loop_test(tc, test_classify_reply_table, 0,
			    sizeof(cat_cases) / sizeof(cat_cases[0]));
	tcase_add_test(tc, test_classify_scans_only_the_bound);
	tcase_add_test(tc, test_classify_names);
	tcase_add_test(tc, test_classify_describe_every_name);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(classify_suite)
