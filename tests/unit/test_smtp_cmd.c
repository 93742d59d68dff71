/* Check suite for lib/smtp_cmd.c: command lines (RFC 5321 4.1.1 verbs and
 * their arguments), MAIL and RCPT with every ESMTP parameter we take (RFC
 * 1870 SIZE, RFC 6152/3030 BODY, RFC 6531 SMTPUTF8, RFC 3461 RET, ENVID,
 * NOTIFY, ORCPT, RFC 4954 AUTH), BDAT (RFC 3030 2), xtext (RFC 3461 4)
 * and the reply lines. Each table row names the behaviour it pins down;
 * hex escapes are split from the next literal ("\xbc" "cher"). */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_cmd.h"
#include "tests/unit/check_helpers.h"

#define U_UE "\xc3\xbc" /* U+00FC */

/* ---- command lines -------------------------------------------------- */

struct cmd_case {
	const char *name;
	const char *line;
	size_t len; /* 0: strlen(line) */
	int rc;
	enum smtp_verb verb;
	const char *arg; /* checked when rc is 0 */
};

static const struct cmd_case cmd_cases[] = {
	/* every verb, as RFC 5321 4.1.1 and the extensions spell it */
	{ "HELO with a name", "HELO client.example", 0, SMTP_CMD_OK,
	  SMTP_VERB_HELO, "client.example" },
	{ "EHLO with a name", "EHLO client.example", 0, SMTP_CMD_OK,
	  SMTP_VERB_EHLO, "client.example" },
	{ "EHLO with an address literal", "EHLO [192.0.2.1]", 0, SMTP_CMD_OK,
	  SMTP_VERB_EHLO, "[192.0.2.1]" },
	{ "MAIL with its argument", "MAIL FROM:<a@b.example>", 0, SMTP_CMD_OK,
	  SMTP_VERB_MAIL, "FROM:<a@b.example>" },
	{ "RCPT with its argument", "RCPT TO:<a@b.example>", 0, SMTP_CMD_OK,
	  SMTP_VERB_RCPT, "TO:<a@b.example>" },
	{ "DATA alone", "DATA", 0, SMTP_CMD_OK, SMTP_VERB_DATA, "" },
	{ "BDAT with a size", "BDAT 100", 0, SMTP_CMD_OK, SMTP_VERB_BDAT,
	  "100" },
	{ "BDAT with size and LAST", "BDAT 100 LAST", 0, SMTP_CMD_OK,
	  SMTP_VERB_BDAT, "100 LAST" },
	{ "RSET alone", "RSET", 0, SMTP_CMD_OK, SMTP_VERB_RSET, "" },
	{ "NOOP alone", "NOOP", 0, SMTP_CMD_OK, SMTP_VERB_NOOP, "" },
	{ "NOOP with a string", "NOOP hello there", 0, SMTP_CMD_OK,
	  SMTP_VERB_NOOP, "hello there" },
	{ "QUIT alone", "QUIT", 0, SMTP_CMD_OK, SMTP_VERB_QUIT, "" },
	{ "VRFY with a string", "VRFY user", 0, SMTP_CMD_OK, SMTP_VERB_VRFY,
	  "user" },
	{ "EXPN with a string", "EXPN list", 0, SMTP_CMD_OK, SMTP_VERB_EXPN,
	  "list" },
	{ "HELP alone", "HELP", 0, SMTP_CMD_OK, SMTP_VERB_HELP, "" },
	{ "HELP with a topic", "HELP MAIL", 0, SMTP_CMD_OK, SMTP_VERB_HELP,
	  "MAIL" },
	{ "STARTTLS alone", "STARTTLS", 0, SMTP_CMD_OK, SMTP_VERB_STARTTLS,
	  "" },
	{ "AUTH with a mechanism", "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", 0,
	  SMTP_CMD_OK, SMTP_VERB_AUTH, "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },

	/* case of the verb */
	{ "lower-case verb", "helo client.example", 0, SMTP_CMD_OK,
	  SMTP_VERB_HELO, "client.example" },
	{ "mixed-case verb", "mAiL FROM:<a@b.example>", 0, SMTP_CMD_OK,
	  SMTP_VERB_MAIL, "FROM:<a@b.example>" },
	{ "lower-case STARTTLS", "starttls", 0, SMTP_CMD_OK, SMTP_VERB_STARTTLS,
	  "" },
	{ "lower-case quit", "quit", 0, SMTP_CMD_OK, SMTP_VERB_QUIT, "" },
	{ "argument case kept", "ehlo Client.Example", 0, SMTP_CMD_OK,
	  SMTP_VERB_EHLO, "Client.Example" },

	/* spaces */
	{ "several spaces after the verb", "MAIL   FROM:<a@b.example>", 0,
	  SMTP_CMD_OK, SMTP_VERB_MAIL, "FROM:<a@b.example>" },
	{ "trailing spaces trimmed", "RCPT TO:<a@b.example>   ", 0, SMTP_CMD_OK,
	  SMTP_VERB_RCPT, "TO:<a@b.example>" },
	{ "inner spaces kept", "NOOP a  b", 0, SMTP_CMD_OK, SMTP_VERB_NOOP,
	  "a  b" },
	{ "DATA with trailing spaces has no argument", "DATA  ", 0, SMTP_CMD_OK,
	  SMTP_VERB_DATA, "" },
	{ "QUIT with one trailing space", "QUIT ", 0, SMTP_CMD_OK,
	  SMTP_VERB_QUIT, "" },

	/* arguments required */
	{ "HELO without a name", "HELO", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_HELO, NULL },
	{ "EHLO with only spaces", "EHLO   ", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_EHLO, NULL },
	{ "MAIL without an argument", "MAIL", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_MAIL, NULL },
	{ "RCPT without an argument", "RCPT ", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_RCPT, NULL },
	{ "BDAT without a size", "BDAT", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_BDAT, NULL },
	{ "VRFY without a string", "VRFY", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_VRFY, NULL },
	{ "EXPN without a string", "EXPN", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_EXPN, NULL },
	{ "AUTH without a mechanism", "AUTH", 0, SMTP_CMD_E_ARG_EXPECTED,
	  SMTP_VERB_AUTH, NULL },

	/* arguments forbidden */
	{ "DATA with an argument", "DATA x", 0, SMTP_CMD_E_NO_ARG_ALLOWED,
	  SMTP_VERB_DATA, NULL },
	{ "RSET with an argument", "RSET now", 0, SMTP_CMD_E_NO_ARG_ALLOWED,
	  SMTP_VERB_RSET, NULL },
	{ "QUIT with an argument", "QUIT bye", 0, SMTP_CMD_E_NO_ARG_ALLOWED,
	  SMTP_VERB_QUIT, NULL },
	{ "STARTTLS with an argument (RFC 3207 4)", "STARTTLS x", 0,
	  SMTP_CMD_E_NO_ARG_ALLOWED, SMTP_VERB_STARTTLS, NULL },

	/* unknown verbs */
	{ "empty line", "", 0, SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "line of spaces", "   ", 0, SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN,
	  NULL },
	{ "MAILFROM without the space", "MAILFROM:<a@b.example>", 0,
	  SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "MAIL glued to its colon", "MAIL:FROM", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "leading space before the verb", " MAIL FROM:<a@b.example>", 0,
	  SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "tab after the verb", "MAIL\tFROM:<a@b.example>", 0,
	  SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "verb prefix", "MAI FROM:<a@b.example>", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "verb with a suffix", "QUITS", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "STARTTLS with a suffix", "STARTTLSX", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "obsolete SEND", "SEND FROM:<a@b.example>", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "obsolete TURN", "TURN", 0, SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN,
	  NULL },
	{ "ETRN is not ours", "ETRN example.com", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "XCLIENT is not ours", "XCLIENT ADDR=192.0.2.1", 0,
	  SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
	{ "HTTP request", "GET / HTTP/1.1", 0, SMTP_CMD_E_UNKNOWN,
	  SMTP_VERB_UNKNOWN, NULL },

	/* NUL anywhere */
	{ "NUL inside the verb", "NO\0OP", 5, SMTP_CMD_E_NUL, SMTP_VERB_UNKNOWN,
	  NULL },
	{ "NUL alone", "\0", 1, SMTP_CMD_E_NUL, SMTP_VERB_UNKNOWN, NULL },
	{ "NUL in a MAIL argument", "MAIL FROM:<a\0@b.example>", 24,
	  SMTP_CMD_E_NUL, SMTP_VERB_MAIL, NULL },
	{ "NUL at the end of DATA", "DATA\0", 5, SMTP_CMD_E_NUL,
	  SMTP_VERB_UNKNOWN, NULL },
	{ "NUL after BDAT's size", "BDAT 10\0", 8, SMTP_CMD_E_NUL,
	  SMTP_VERB_BDAT, NULL },

	/* 8-bit: only MAIL and RCPT arguments may carry it (RFC 6531) */
	{ "UTF-8 in a MAIL argument", "MAIL FROM:<" U_UE "@b.example> SMTPUTF8",
	  0, SMTP_CMD_OK, SMTP_VERB_MAIL,
	  "FROM:<" U_UE "@b.example> SMTPUTF8" },
	{ "UTF-8 in a RCPT argument", "RCPT TO:<" U_UE "@b.example>", 0,
	  SMTP_CMD_OK, SMTP_VERB_RCPT, "TO:<" U_UE "@b.example>" },
	{ "UTF-8 in the verb", "M" U_UE "IL FROM:<a@b.example>", 0,
	  SMTP_CMD_E_8BIT, SMTP_VERB_UNKNOWN, NULL },
	{ "UTF-8 in EHLO", "EHLO b" U_UE "cher.example", 0, SMTP_CMD_E_8BIT,
	  SMTP_VERB_EHLO, NULL },
	{ "octet FF in HELO", "HELO \xff", 0, SMTP_CMD_E_8BIT, SMTP_VERB_HELO,
	  NULL },
	{ "UTF-8 in NOOP", "NOOP " U_UE, 0, SMTP_CMD_E_8BIT, SMTP_VERB_NOOP,
	  NULL },
	{ "UTF-8 in VRFY", "VRFY " U_UE, 0, SMTP_CMD_E_8BIT, SMTP_VERB_VRFY,
	  NULL },
	{ "8-bit in BDAT", "BDAT 1\x80", 0, SMTP_CMD_E_8BIT, SMTP_VERB_BDAT,
	  NULL },
	{ "8-bit after DATA", "DATA \x80", 0, SMTP_CMD_E_8BIT, SMTP_VERB_DATA,
	  NULL },
	{ "8-bit in an unknown verb's argument", "FOO \x80", 0,
	  SMTP_CMD_E_UNKNOWN, SMTP_VERB_UNKNOWN, NULL },
};

START_TEST(test_cmd_parse_follows_verb_table)
	{
		const struct cmd_case *c = &cmd_cases[_i];
		size_t len = c->len ? c->len : strlen(c->line);
		struct smtp_cmd cmd;
		int rc;

		memset(&cmd, 0x5a, sizeof(cmd));
		rc = smtp_cmd_parse(c->line, len, &cmd);
		ck_assert_msg(rc == c->rc, "%s: got %d, want %d", c->name, rc,
			      c->rc);
		/* the verb is reported even on failure: the reply depends on it */
		ck_assert_msg(cmd.verb == c->verb, "%s: verb %d, want %d",
			      c->name, cmd.verb, c->verb);
		if (c->arg != NULL) {
			ck_assert_msg(cmd.arg_len == strlen(c->arg) &&
					      memcmp(cmd.arg, c->arg,
						     cmd.arg_len) == 0,
				      "%s: arg '%.*s'", c->name,
				      (int)cmd.arg_len, cmd.arg);
			/* and it points into the line */
			ck_assert(cmd.arg >= c->line &&
				  cmd.arg + cmd.arg_len <= c->line + len);
		}
	}
END_TEST

START_TEST(test_cmd_parse_reads_only_len_octets)
	{
		struct smtp_cmd cmd;

		/* "DATA x" cut after DATA is a plain DATA */
		ck_assert_int_eq(smtp_cmd_parse("DATA x", 4, &cmd),
				 SMTP_CMD_OK);
		ck_assert_int_eq(cmd.verb, SMTP_VERB_DATA);
		ck_assert_uint_eq(cmd.arg_len, 0);
		/* "QUITS" cut to four octets is QUIT */
		ck_assert_int_eq(smtp_cmd_parse("QUITS", 4, &cmd), SMTP_CMD_OK);
		ck_assert_int_eq(cmd.verb, SMTP_VERB_QUIT);
	}
END_TEST

START_TEST(test_verb_name_round_trips_through_parse)
	{
		for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
			const char *name = smtp_verb_name((enum smtp_verb)v);
			char line[32];
			struct smtp_cmd cmd;
			int rc;

			snprintf(line, sizeof(line), "%s x", name);
			rc = smtp_cmd_parse(line, strlen(line), &cmd);
			ck_assert_msg(cmd.verb == (enum smtp_verb)v, "%s",
				      name);
			ck_assert(rc == SMTP_CMD_OK ||
				  rc == SMTP_CMD_E_NO_ARG_ALLOWED);
		}
	}
END_TEST

START_TEST(test_verb_name_of_bad_values_is_unknown)
	{
		ck_assert_str_eq(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
		ck_assert_str_eq(smtp_verb_name(SMTP_VERB_COUNT), "UNKNOWN");
		ck_assert_str_eq(smtp_verb_name((enum smtp_verb) - 1),
				 "UNKNOWN");
		ck_assert_str_eq(smtp_verb_name(SMTP_VERB_STARTTLS),
				 "STARTTLS");
		ck_assert_str_eq(smtp_verb_name(SMTP_VERB_MAIL), "MAIL");
	}
END_TEST

/* ---- MAIL ----------------------------------------------------------- */

struct mail_ok {
	const char *name;
	const char *arg;
	const char *mailbox;
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	const char *envid;
	const char *auth;
};

#define B7 SMTP_BODY_7BIT
#define B8 SMTP_BODY_8BITMIME
#define BB SMTP_BODY_BINARYMIME
#define RD SMTP_RET_DEFAULT

static const struct mail_ok mail_ok_cases[] = {
	{ "plain sender", "FROM:<a@b.example>", "a@b.example", false, 0, B7,
	  false, RD, "", "" },
	{ "FROM: in lower case", "from:<a@b.example>", "a@b.example", false, 0,
	  B7, false, RD, "", "" },
	{ "FROM: in mixed case", "From:<a@b.example>", "a@b.example", false, 0,
	  B7, false, RD, "", "" },
	{ "one space after the colon", "FROM: <a@b.example>", "a@b.example",
	  false, 0, B7, false, RD, "", "" },
	{ "null reverse-path", "FROM:<>", "", false, 0, B7, false, RD, "", "" },
	{ "null reverse-path with SIZE", "FROM:<> SIZE=0", "", true, 0, B7,
	  false, RD, "", "" },
	{ "source route dropped", "FROM:<@r.example:a@b.example>",
	  "a@b.example", false, 0, B7, false, RD, "", "" },
	{ "quoted local part with a space", "FROM:<\"a b\"@b.example> SIZE=1",
	  "\"a b\"@b.example", true, 1, B7, false, RD, "", "" },
	{ "SIZE", "FROM:<a@b.example> SIZE=12345", "a@b.example", true, 12345,
	  B7, false, RD, "", "" },
	{ "keyword in lower case", "FROM:<a@b.example> size=12345",
	  "a@b.example", true, 12345, B7, false, RD, "", "" },
	{ "SIZE of 2^64 - 1", "FROM:<a@b.example> SIZE=18446744073709551615",
	  "a@b.example", true, UINT64_MAX, B7, false, RD, "", "" },
	{ "SIZE of 20 digits with leading zeros",
	  "FROM:<a@b.example> SIZE=00000000000000000042", "a@b.example", true,
	  42, B7, false, RD, "", "" },
	/* RFC 1870 4: 1*20DIGIT is the syntax; a value past 2^64 - 1 is
	 * valid, only too big (552 5.3.4 from the session, not 501) */
	{ "SIZE of 2^64 is too big, not bad syntax",
	  "FROM:<a@b.example> SIZE=18446744073709551616", "a@b.example", true,
	  UINT64_MAX, B7, false, RD, "", "" },
	{ "SIZE of 20 nines is too big, not bad syntax",
	  "FROM:<a@b.example> SIZE=99999999999999999999", "a@b.example", true,
	  UINT64_MAX, B7, false, RD, "", "" },
	{ "BODY=7BIT", "FROM:<a@b.example> BODY=7BIT", "a@b.example", false, 0,
	  B7, false, RD, "", "" },
	{ "BODY=8BITMIME", "FROM:<a@b.example> BODY=8BITMIME", "a@b.example",
	  false, 0, B8, false, RD, "", "" },
	{ "BODY=BINARYMIME", "FROM:<a@b.example> BODY=BINARYMIME",
	  "a@b.example", false, 0, BB, false, RD, "", "" },
	{ "BODY value in lower case", "FROM:<a@b.example> body=8bitmime",
	  "a@b.example", false, 0, B8, false, RD, "", "" },
	{ "SMTPUTF8 with an ASCII path", "FROM:<a@b.example> SMTPUTF8",
	  "a@b.example", false, 0, B7, true, RD, "", "" },
	{ "SMTPUTF8 allows a UTF-8 path", "FROM:<" U_UE "@b.example> SMTPUTF8",
	  U_UE "@b.example", false, 0, B7, true, RD, "", "" },
	{ "SMTPUTF8 after another parameter",
	  "FROM:<" U_UE "@b" U_UE "cher.example> SIZE=1 smtputf8",
	  U_UE "@b" U_UE "cher.example", true, 1, B7, true, RD, "", "" },
	{ "RET=FULL", "FROM:<a@b.example> RET=FULL", "a@b.example", false, 0,
	  B7, false, SMTP_RET_FULL, "", "" },
	{ "RET=HDRS", "FROM:<a@b.example> RET=HDRS", "a@b.example", false, 0,
	  B7, false, SMTP_RET_HDRS, "", "" },
	{ "RET value in lower case", "FROM:<a@b.example> ret=hdrs",
	  "a@b.example", false, 0, B7, false, SMTP_RET_HDRS, "", "" },
	{ "ENVID", "FROM:<a@b.example> ENVID=QQ314159", "a@b.example", false, 0,
	  B7, false, RD, "QQ314159", "" },
	{ "ENVID is xtext-decoded", "FROM:<a@b.example> ENVID=a+2Bb+3Dc+20d",
	  "a@b.example", false, 0, B7, false, RD, "a+b=c d", "" },
	{ "AUTH=<>", "FROM:<a@b.example> AUTH=<>", "a@b.example", false, 0, B7,
	  false, RD, "", "<>" },
	{ "AUTH is only checked as xtext", "FROM:<a@b.example> AUTH=<",
	  "a@b.example", false, 0, B7, false, RD, "", "<" },
	{ "AUTH kept encoded", "FROM:<a@b.example> AUTH=e+2Bx@b.example",
	  "a@b.example", false, 0, B7, false, RD, "", "e+2Bx@b.example" },
	{ "every parameter at once",
	  "FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS "
	  "ENVID=id1 AUTH=<>",
	  "a@b.example", true, 1000, B8, true, SMTP_RET_HDRS, "id1", "<>" },
	{ "two spaces between parameters",
	  "FROM:<a@b.example>  SIZE=1  RET=FULL", "a@b.example", true, 1, B7,
	  false, SMTP_RET_FULL, "", "" },
	{ "trailing space", "FROM:<a@b.example> SIZE=1 ", "a@b.example", true,
	  1, B7, false, RD, "", "" },
	{ "SMTPUTF8 inside quotes is only text",
	  "FROM:<\"x SMTPUTF8 y\"@b.example>", "\"x SMTPUTF8 y\"@b.example",
	  false, 0, B7, false, RD, "", "" },
};

START_TEST(test_mail_accepts_table)
	{
		const struct mail_ok *c = &mail_ok_cases[_i];
		struct smtp_mail m;
		int rc;

		memset(&m, 0x5a, sizeof(m));
		rc = smtp_mail_parse(c->arg, strlen(c->arg), &m);
		ck_assert_msg(rc == SMTP_CMD_OK, "%s: '%s' gave %d", c->name,
			      c->arg, rc);
		ck_assert_msg(strcmp(m.from.mailbox, c->mailbox) == 0,
			      "%s: mailbox '%s'", c->name, m.from.mailbox);
		ck_assert_msg(m.from.is_null == (c->mailbox[0] == '\0'),
			      "%s: is_null", c->name);
		ck_assert_msg(m.has_size == c->has_size, "%s: has_size",
			      c->name);
		ck_assert_msg(m.size == c->size, "%s: size", c->name);
		ck_assert_msg(m.body == c->body, "%s: body", c->name);
		ck_assert_msg(m.smtputf8 == c->smtputf8, "%s: smtputf8",
			      c->name);
		ck_assert_msg(m.ret == c->ret, "%s: ret", c->name);
		ck_assert_msg(strcmp(m.envid, c->envid) == 0, "%s: envid '%s'",
			      c->name, m.envid);
		ck_assert_msg(strcmp(m.auth, c->auth) == 0, "%s: auth '%s'",
			      c->name, m.auth);
	}
END_TEST

struct cmd_bad {
	const char *name;
	const char *arg;
	int rc;
};

#define ADDR(e) (SMTP_CMD_E_ADDR_BASE + (e))

static const struct cmd_bad mail_bad_cases[] = {
	/* FROM: and the path around it */
	{ "empty argument", "", SMTP_CMD_E_SYNTAX },
	{ "FROM without a colon", "FROM <a@b.example>", SMTP_CMD_E_SYNTAX },
	{ "FROM: and nothing", "FROM:", SMTP_CMD_E_SYNTAX },
	{ "TO: on MAIL", "TO:<a@b.example>", SMTP_CMD_E_SYNTAX },
	{ "path without brackets", "FROM:a@b.example", SMTP_CMD_E_SYNTAX },
	{ "two spaces after the colon", "FROM:  <a@b.example>",
	  SMTP_CMD_E_SYNTAX },
	{ "space before the colon", "FROM :<a@b.example>", SMTP_CMD_E_SYNTAX },
	{ "leading space", " FROM:<a@b.example>", SMTP_CMD_E_SYNTAX },
	{ "parameter glued to the path", "FROM:<a@b.example>SIZE=1",
	  SMTP_CMD_E_SYNTAX },
	{ "tab before a parameter", "FROM:<a@b.example>\tSIZE=1",
	  SMTP_CMD_E_SYNTAX },
	{ "unterminated path", "FROM:<a@b.example", ADDR(SMTP_ADDR_E_SYNTAX) },
	{ "trailing dot in the domain", "FROM:<a@b.example.>",
	  ADDR(SMTP_ADDR_E_BAD_DOMAIN) },
	{ "no domain", "FROM:<a>", ADDR(SMTP_ADDR_E_NO_DOMAIN) },
	{ "Postmaster alone is for RCPT only", "FROM:<Postmaster>",
	  ADDR(SMTP_ADDR_E_NO_DOMAIN) },
	/* UTF-8 and SMTPUTF8 */
	{ "UTF-8 path without SMTPUTF8", "FROM:<" U_UE "@b.example>",
	  ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8) },
	{ "UTF-8 path with other parameters only",
	  "FROM:<" U_UE "@b.example> SIZE=1 BODY=8BITMIME",
	  ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8) },
	{ "SMTPUTF8 inside the quotes does not count",
	  "FROM:<\"" U_UE " SMTPUTF8\"@b.example>",
	  ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8) },
	{ "SMTPUTF8 inside the quotes does not cover the route",
	  "FROM:<@b" U_UE "cher.example:\"x SMTPUTF8 y\"@b.example>",
	  ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8) },
	{ "overlong UTF-8 with SMTPUTF8", "FROM:<\xc0\xaf@b.example> SMTPUTF8",
	  ADDR(SMTP_ADDR_E_BAD_UTF8) },
	{ "surrogate with SMTPUTF8", "FROM:<\xed\xa0\x80@b.example> SMTPUTF8",
	  ADDR(SMTP_ADDR_E_BAD_UTF8) },
	{ "SMTPUTF8 with a value", "FROM:<a@b.example> SMTPUTF8=yes",
	  SMTP_CMD_E_PARAM_SYNTAX },
	/* SIZE */
	{ "SIZE without a value", "FROM:<a@b.example> SIZE",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "SIZE with an empty value",
	  "FROM:<a@b.example> SIZE=", SMTP_CMD_E_PARAM_SYNTAX },
	{ "SIZE not a number", "FROM:<a@b.example> SIZE=abc",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "SIZE negative", "FROM:<a@b.example> SIZE=-1",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "SIZE with a sign", "FROM:<a@b.example> SIZE=+1",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "SIZE with a unit", "FROM:<a@b.example> SIZE=10k",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "SIZE of 21 digits", "FROM:<a@b.example> SIZE=000000000000000000001",
	  SMTP_CMD_E_PARAM_SYNTAX },
	/* BODY, RET */
	{ "BODY=8BIT", "FROM:<a@b.example> BODY=8BIT",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "BODY without a value", "FROM:<a@b.example> BODY",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "BODY with a suffix", "FROM:<a@b.example> BODY=7BITX",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "RET=NONE", "FROM:<a@b.example> RET=NONE", SMTP_CMD_E_PARAM_SYNTAX },
	{ "RET without a value", "FROM:<a@b.example> RET",
	  SMTP_CMD_E_PARAM_SYNTAX },
	/* ENVID */
	{ "ENVID empty", "FROM:<a@b.example> ENVID=", SMTP_CMD_E_PARAM_SYNTAX },
	{ "ENVID with lower-case hex", "FROM:<a@b.example> ENVID=a+2b",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ENVID with a cut hexchar", "FROM:<a@b.example> ENVID=a+2",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ENVID with =", "FROM:<a@b.example> ENVID=a=b",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ENVID decoding to CR", "FROM:<a@b.example> ENVID=a+0Db",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ENVID decoding to 8-bit", "FROM:<a@b.example> ENVID=+C3+BC",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ENVID with raw 8-bit", "FROM:<a@b.example> ENVID=" U_UE,
	  SMTP_CMD_E_PARAM_SYNTAX },
	/* AUTH */
	{ "AUTH empty", "FROM:<a@b.example> AUTH=", SMTP_CMD_E_PARAM_SYNTAX },
	{ "AUTH with a raw =", "FROM:<a@b.example> AUTH=a=b@c.example",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "AUTH with bad xtext", "FROM:<a@b.example> AUTH=a+zz",
	  SMTP_CMD_E_PARAM_SYNTAX },
	/* duplicates */
	{ "SIZE twice", "FROM:<a@b.example> SIZE=1 SIZE=2",
	  SMTP_CMD_E_PARAM_DUP },
	{ "SMTPUTF8 twice", "FROM:<a@b.example> SMTPUTF8 SMTPUTF8",
	  SMTP_CMD_E_PARAM_DUP },
	{ "BODY twice in different case",
	  "FROM:<a@b.example> BODY=7BIT body=8BITMIME", SMTP_CMD_E_PARAM_DUP },
	{ "RET twice", "FROM:<a@b.example> RET=FULL RET=FULL",
	  SMTP_CMD_E_PARAM_DUP },
	{ "ENVID twice", "FROM:<a@b.example> ENVID=a ENVID=b",
	  SMTP_CMD_E_PARAM_DUP },
	{ "AUTH twice", "FROM:<a@b.example> AUTH=<> AUTH=<>",
	  SMTP_CMD_E_PARAM_DUP },
	/* unknown and malformed keywords */
	{ "unknown keyword with a value", "FROM:<a@b.example> FOO=BAR",
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "unknown keyword alone", "FROM:<a@b.example> XYZZY",
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "NOTIFY belongs to RCPT", "FROM:<a@b.example> NOTIFY=NEVER",
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "ORCPT belongs to RCPT", "FROM:<a@b.example> ORCPT=rfc822;a@b",
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "keyword prefix is not the keyword", "FROM:<a@b.example> SIZ=1",
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "empty keyword", "FROM:<a@b.example> =1", SMTP_CMD_E_PARAM_SYNTAX },
	{ "keyword starting with -", "FROM:<a@b.example> -X=1",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "underscore in a keyword", "FROM:<a@b.example> S_Z=1",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "8-bit keyword", "FROM:<a@b.example> " U_UE "=1",
	  SMTP_CMD_E_PARAM_SYNTAX },
	/* the first bad parameter decides */
	{ "bad SIZE before an unknown", "FROM:<a@b.example> SIZE=x FOO=1",
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "unknown before a bad SIZE", "FROM:<a@b.example> FOO=1 SIZE=x",
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "address error before parameter error", "FROM:<a@b.example.> FOO=1",
	  ADDR(SMTP_ADDR_E_BAD_DOMAIN) },
};

START_TEST(test_mail_rejects_table)
	{
		const struct cmd_bad *c = &mail_bad_cases[_i];
		struct smtp_mail m, before;
		int rc;

		memset(&m, 0xa5, sizeof(m));
		before = m;
		rc = smtp_mail_parse(c->arg, strlen(c->arg), &m);
		ck_assert_msg(rc == c->rc, "%s: '%s' gave %d, want %d", c->name,
			      c->arg, rc, c->rc);
		ck_assert_msg(memcmp(&m, &before, sizeof(m)) == 0,
			      "%s: out written on failure", c->name);
	}
END_TEST

static void
mail_with_param(char *buf, size_t size, const char *key, char fill, size_t n)
{
	int k = snprintf(buf, size, "FROM:<a@b.example> %s=", key);

	ck_assert(k > 0 && (size_t)k + n < size);
	memset(buf + k, fill, n);
	buf[k + n] = '\0';
}

START_TEST(test_mail_envid_of_100_ok_101_too_long)
	{
		char buf[600];
		struct smtp_mail m;

		mail_with_param(buf, sizeof(buf), "ENVID", 'e', 100);
		ck_assert_int_eq(smtp_mail_parse(buf, strlen(buf), &m),
				 SMTP_CMD_OK);
		ck_assert_uint_eq(strlen(m.envid), 100);
		mail_with_param(buf, sizeof(buf), "ENVID", 'e', 101);
		ck_assert_int_eq(smtp_mail_parse(buf, strlen(buf), &m),
				 SMTP_CMD_E_ENVID_TOO_LONG);
	}
END_TEST

START_TEST(test_mail_envid_limit_counts_decoded_octets)
	{
		char buf[600];
		struct smtp_mail m;
		int k = snprintf(buf, sizeof(buf), "FROM:<a@b.example> ENVID=");

		/* 300 encoded octets, 100 decoded */
		for (int i = 0; i < 100; i++)
			k += snprintf(buf + k, sizeof(buf) - (size_t)k, "+41");
		ck_assert_int_eq(smtp_mail_parse(buf, strlen(buf), &m),
				 SMTP_CMD_OK);
		ck_assert_uint_eq(strlen(m.envid), 100);
		ck_assert_int_eq(m.envid[0], 'A');
		snprintf(buf + k, sizeof(buf) - (size_t)k, "+41");
		ck_assert_int_eq(smtp_mail_parse(buf, strlen(buf), &m),
				 SMTP_CMD_E_ENVID_TOO_LONG);
	}
END_TEST

START_TEST(test_mail_auth_of_320_ok_321_refused)
	{
		char buf[600];
		struct smtp_mail m;

		mail_with_param(buf, sizeof(buf), "AUTH", 'x',
				SMTP_MAILBOX_MAX);
		ck_assert_int_eq(smtp_mail_parse(buf, strlen(buf), &m),
				 SMTP_CMD_OK);
		ck_assert_uint_eq(strlen(m.auth), SMTP_MAILBOX_MAX);
		mail_with_param(buf, sizeof(buf), "AUTH", 'x',
				SMTP_MAILBOX_MAX + 1);
		ck_assert_int_eq(smtp_mail_parse(buf, strlen(buf), &m),
				 SMTP_CMD_E_PARAM_SYNTAX);
	}
END_TEST

START_TEST(test_mail_line_at_every_maximum_fits_cmd_max)
	{
		char line[SMTP_CMD_MAX], local[SMTP_LOCAL_MAX + 1], domain[256];
		struct smtp_cmd cmd;
		struct smtp_mail m;
		int k;

		/* a 256-octet path: 64 + "@" + 189 + "<>" */
		memset(local, 'l', SMTP_LOCAL_MAX);
		local[SMTP_LOCAL_MAX] = '\0';
		memset(domain, 'd', 189);
		for (int i = 60; i < 189; i += 61)
			domain[i] = '.';
		domain[189] = '\0';
		k = snprintf(line, sizeof(line),
			     "MAIL FROM:<%s@%s> SIZE=18446744073709551615 "
			     "BODY=BINARYMIME SMTPUTF8 RET=HDRS ENVID=",
			     local, domain);
		for (int i = 0; i < SMTP_ENVID_MAX; i++)
			k += snprintf(line + k, sizeof(line) - (size_t)k,
				      "+2B");
		k += snprintf(line + k, sizeof(line) - (size_t)k, " AUTH=");
		memset(line + k, 'a', SMTP_MAILBOX_MAX);
		k += SMTP_MAILBOX_MAX;
		line[k] = '\0';
		ck_assert_uint_lt((size_t)k + 2, SMTP_CMD_MAX); /* + CRLF */

		ck_assert_int_eq(smtp_cmd_parse(line, (size_t)k, &cmd),
				 SMTP_CMD_OK);
		ck_assert_int_eq(smtp_mail_parse(cmd.arg, cmd.arg_len, &m),
				 SMTP_CMD_OK);
		ck_assert_uint_eq(strlen(m.from.mailbox), 254);
		ck_assert(m.size == UINT64_MAX);
		ck_assert_uint_eq(strlen(m.envid), SMTP_ENVID_MAX);
		ck_assert_uint_eq(strlen(m.auth), SMTP_MAILBOX_MAX);
	}
END_TEST

/* ---- RCPT ----------------------------------------------------------- */

struct rcpt_ok {
	const char *name;
	const char *arg;
	bool utf8_ok;
	const char *mailbox, *domain;
	unsigned notify;
	const char *orcpt;
	bool had_route;
};

#define N_NEVER SMTP_NOTIFY_NEVER
#define N_SUCC SMTP_NOTIFY_SUCCESS
#define N_FAIL SMTP_NOTIFY_FAILURE
#define N_DELAY SMTP_NOTIFY_DELAY

static const struct rcpt_ok rcpt_ok_cases[] = {
	{ "plain recipient", "TO:<a@b.example>", false, "a@b.example",
	  "b.example", 0, "", false },
	{ "TO: in lower case", "to:<a@b.example>", false, "a@b.example",
	  "b.example", 0, "", false },
	{ "one space after the colon", "TO: <a@b.example>", false,
	  "a@b.example", "b.example", 0, "", false },
	{ "Postmaster without a domain", "TO:<Postmaster>", false, "Postmaster",
	  "", 0, "", false },
	{ "postmaster in lower case", "TO:<postmaster>", false, "postmaster",
	  "", 0, "", false },
	{ "source route dropped", "TO:<@r1.example,@r2.example:a@b.example>",
	  false, "a@b.example", "b.example", 0, "", true },
	{ "quoted local part with @", "TO:<\"a@b\"@c.example>", false,
	  "\"a@b\"@c.example", "c.example", 0, "", false },
	{ "IPv4 literal", "TO:<a@[192.0.2.1]>", false, "a@[192.0.2.1]",
	  "[192.0.2.1]", 0, "", false },
	{ "IPv6 literal", "TO:<a@[IPv6:2001:db8::1]>", false,
	  "a@[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", 0, "", false },
	{ "UTF-8 when MAIL had SMTPUTF8", "TO:<" U_UE "@b.example>", true,
	  U_UE "@b.example", "b.example", 0, "", false },
	{ "NOTIFY=NEVER", "TO:<a@b.example> NOTIFY=NEVER", false, "a@b.example",
	  "b.example", N_NEVER, "", false },
	{ "NOTIFY=SUCCESS", "TO:<a@b.example> NOTIFY=SUCCESS", false,
	  "a@b.example", "b.example", N_SUCC, "", false },
	{ "NOTIFY with all three",
	  "TO:<a@b.example> NOTIFY=SUCCESS,FAILURE,DELAY", false, "a@b.example",
	  "b.example", N_SUCC | N_FAIL | N_DELAY, "", false },
	{ "NOTIFY in lower case and any order",
	  "TO:<a@b.example> notify=delay,failure", false, "a@b.example",
	  "b.example", N_FAIL | N_DELAY, "", false },
	{ "NOTIFY element repeated", "TO:<a@b.example> NOTIFY=DELAY,DELAY",
	  false, "a@b.example", "b.example", N_DELAY, "", false },
	{ "ORCPT rfc822", "TO:<a@b.example> ORCPT=rfc822;a@b.example", false,
	  "a@b.example", "b.example", 0, "rfc822;a@b.example", false },
	{ "ORCPT kept encoded", "TO:<a@b.example> ORCPT=rfc822;a+2Bx@b.example",
	  false, "a@b.example", "b.example", 0, "rfc822;a+2Bx@b.example",
	  false },
	{ "ORCPT addr-type in upper case", "TO:<a@b.example> ORCPT=RFC822;x",
	  false, "a@b.example", "b.example", 0, "RFC822;x", false },
	{ "ORCPT of another addr-type", "TO:<a@b.example> ORCPT=x400;c+3Dus",
	  false, "a@b.example", "b.example", 0, "x400;c+3Dus", false },
	{ "ORCPT utf-8 in 7-bit form (RFC 6533)",
	  "TO:<a@b.example> ORCPT=utf-8;u\\x{FC}@b.example", false,
	  "a@b.example", "b.example", 0, "utf-8;u\\x{FC}@b.example", false },
	{ "ORCPT utf-8 raw under SMTPUTF8 (RFC 6533)",
	  "TO:<a@b.example> ORCPT=utf-8;" U_UE "@b.example", true,
	  "a@b.example", "b.example", 0, "utf-8;" U_UE "@b.example", false },
	{ "NOTIFY and ORCPT together",
	  "TO:<a@b.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a@b.example",
	  false, "a@b.example", "b.example", N_FAIL | N_DELAY,
	  "rfc822;a@b.example", false },
};

START_TEST(test_rcpt_accepts_table)
	{
		const struct rcpt_ok *c = &rcpt_ok_cases[_i];
		struct smtp_rcpt r;
		int rc;

		memset(&r, 0x5a, sizeof(r));
		rc = smtp_rcpt_parse(c->arg, strlen(c->arg), c->utf8_ok, &r);
		ck_assert_msg(rc == SMTP_CMD_OK, "%s: '%s' gave %d", c->name,
			      c->arg, rc);
		ck_assert_msg(strcmp(r.to.mailbox, c->mailbox) == 0,
			      "%s: mailbox '%s'", c->name, r.to.mailbox);
		ck_assert_msg(strcmp(r.to.domain, c->domain) == 0,
			      "%s: domain '%s'", c->name, r.to.domain);
		ck_assert_msg(r.notify == c->notify, "%s: notify %#x", c->name,
			      r.notify);
		ck_assert_msg(strcmp(r.orcpt, c->orcpt) == 0, "%s: orcpt '%s'",
			      c->name, r.orcpt);
		ck_assert_msg(r.to.had_source_route == c->had_route,
			      "%s: route", c->name);
		ck_assert(!r.to.is_null);
	}
END_TEST

struct rcpt_bad {
	const char *name;
	const char *arg;
	bool utf8_ok;
	int rc;
};

static const struct rcpt_bad rcpt_bad_cases[] = {
	{ "empty argument", "", false, SMTP_CMD_E_SYNTAX },
	{ "FROM: on RCPT", "FROM:<a@b.example>", false, SMTP_CMD_E_SYNTAX },
	{ "path without brackets", "TO:a@b.example", false, SMTP_CMD_E_SYNTAX },
	{ "two spaces after the colon", "TO:  <a@b.example>", false,
	  SMTP_CMD_E_SYNTAX },
	{ "parameter glued to the path", "TO:<a@b.example>NOTIFY=NEVER", false,
	  SMTP_CMD_E_SYNTAX },
	{ "null path", "TO:<>", false, ADDR(SMTP_ADDR_E_SYNTAX) },
	{ "no domain", "TO:<a>", false, ADDR(SMTP_ADDR_E_NO_DOMAIN) },
	{ "double dot", "TO:<a..b@c.example>", false,
	  ADDR(SMTP_ADDR_E_SYNTAX) },
	{ "bad IPv4 literal", "TO:<a@[192.0.2.300]>", false,
	  ADDR(SMTP_ADDR_E_BAD_DOMAIN) },
	{ "UTF-8 without SMTPUTF8 on MAIL", "TO:<" U_UE "@b.example>", false,
	  ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8) },
	{ "SMTPUTF8 on RCPT does not count", "TO:<" U_UE "@b.example> SMTPUTF8",
	  false, ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8) },
	{ "bad UTF-8 under SMTPUTF8", "TO:<\xe0\x80\xaf@b.example>", true,
	  ADDR(SMTP_ADDR_E_BAD_UTF8) },
	{ "SMTPUTF8 is a MAIL parameter", "TO:<a@b.example> SMTPUTF8", false,
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "SIZE is a MAIL parameter", "TO:<a@b.example> SIZE=1", false,
	  SMTP_CMD_E_PARAM_UNKNOWN },
	{ "unknown parameter", "TO:<a@b.example> XFOO", false,
	  SMTP_CMD_E_PARAM_UNKNOWN },
	/* NOTIFY */
	{ "NOTIFY without a value", "TO:<a@b.example> NOTIFY", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "NOTIFY empty", "TO:<a@b.example> NOTIFY=", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "NEVER with SUCCESS", "TO:<a@b.example> NOTIFY=NEVER,SUCCESS", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "SUCCESS with NEVER", "TO:<a@b.example> NOTIFY=SUCCESS,NEVER", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "NOTIFY with a trailing comma", "TO:<a@b.example> NOTIFY=SUCCESS,",
	  false, SMTP_CMD_E_PARAM_SYNTAX },
	{ "NOTIFY with a leading comma", "TO:<a@b.example> NOTIFY=,SUCCESS",
	  false, SMTP_CMD_E_PARAM_SYNTAX },
	{ "NOTIFY with an empty element",
	  "TO:<a@b.example> NOTIFY=SUCCESS,,DELAY", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "NOTIFY=ALWAYS", "TO:<a@b.example> NOTIFY=ALWAYS", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "NOTIFY twice", "TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER", false,
	  SMTP_CMD_E_PARAM_DUP },
	/* ORCPT */
	{ "ORCPT empty", "TO:<a@b.example> ORCPT=", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT without ;", "TO:<a@b.example> ORCPT=rfc822", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT without addr-type", "TO:<a@b.example> ORCPT=;a@b.example",
	  false, SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT without address", "TO:<a@b.example> ORCPT=rfc822;", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT addr-type not an atom", "TO:<a@b.example> ORCPT=rf(c;x", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT with bad xtext", "TO:<a@b.example> ORCPT=rfc822;a+zz", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT with a raw =", "TO:<a@b.example> ORCPT=rfc822;a=b", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT rfc822 decoding to CR LF",
	  "TO:<a@b.example> ORCPT=rfc822;a+0D+0Ab", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT rfc822 with raw UTF-8",
	  "TO:<a@b.example> ORCPT=rfc822;" U_UE "@b.example", true,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT utf-8 raw without SMTPUTF8",
	  "TO:<a@b.example> ORCPT=utf-8;" U_UE "@b.example", false,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT utf-8 with bad UTF-8",
	  "TO:<a@b.example> ORCPT=utf-8;\xc0\xaf@b.example", true,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT utf-8 raw with a +",
	  "TO:<a@b.example> ORCPT=utf-8;a+" U_UE "@b.example", true,
	  SMTP_CMD_E_PARAM_SYNTAX },
	{ "ORCPT twice", "TO:<a@b.example> ORCPT=rfc822;a ORCPT=rfc822;b",
	  false, SMTP_CMD_E_PARAM_DUP },
};

START_TEST(test_rcpt_rejects_table)
	{
		const struct rcpt_bad *c = &rcpt_bad_cases[_i];
		struct smtp_rcpt r, before;
		int rc;

		memset(&r, 0xa5, sizeof(r));
		before = r;
		rc = smtp_rcpt_parse(c->arg, strlen(c->arg), c->utf8_ok, &r);
		ck_assert_msg(rc == c->rc, "%s: '%s' gave %d, want %d", c->name,
			      c->arg, rc, c->rc);
		ck_assert_msg(memcmp(&r, &before, sizeof(r)) == 0,
			      "%s: out written on failure", c->name);
	}
END_TEST

START_TEST(test_rcpt_orcpt_of_500_ok_501_too_long)
	{
		char buf[700];
		struct smtp_rcpt r;
		int k = snprintf(buf, sizeof(buf),
				 "TO:<a@b.example> ORCPT=rfc822;");

		/* "rfc822;" is 7 of the 500 */
		memset(buf + k, 'o', 493);
		buf[k + 493] = '\0';
		ck_assert_int_eq(smtp_rcpt_parse(buf, strlen(buf), false, &r),
				 SMTP_CMD_OK);
		ck_assert_uint_eq(strlen(r.orcpt), SMTP_ORCPT_MAX);
		buf[k + 493] = 'o';
		buf[k + 494] = '\0';
		ck_assert_int_eq(smtp_rcpt_parse(buf, strlen(buf), false, &r),
				 SMTP_CMD_E_ORCPT_TOO_LONG);
	}
END_TEST

START_TEST(test_rcpt_path_over_256_refused)
	{
		char buf[400], domain[200];
		struct smtp_rcpt r;

		memset(domain, 'd', 190);
		domain[60] = domain[121] = domain[182] = '.';
		domain[190] = '\0';
		snprintf(buf, sizeof(buf), "TO:<%064d@%s>", 0, domain);
		ck_assert_int_eq(smtp_rcpt_parse(buf, strlen(buf), false, &r),
				 ADDR(SMTP_ADDR_E_PATH_TOO_LONG));
		ck_assert_str_eq(
			smtp_cmd_strerror(ADDR(SMTP_ADDR_E_PATH_TOO_LONG),
					  SMTP_VERB_RCPT),
			"501 5.1.3 Recipient path longer than 256 octets");
	}
END_TEST

/* ---- BDAT ----------------------------------------------------------- */

struct bdat_case {
	const char *name;
	const char *arg;
	int rc;
	uint64_t size;
	bool last;
};

static const struct bdat_case bdat_cases[] = {
	{ "size zero", "0", SMTP_CMD_OK, 0, false },
	{ "size zero LAST", "0 LAST", SMTP_CMD_OK, 0, true },
	{ "plain size", "100", SMTP_CMD_OK, 100, false },
	{ "size and LAST", "100 LAST", SMTP_CMD_OK, 100, true },
	{ "LAST in lower case", "100 last", SMTP_CMD_OK, 100, true },
	{ "LAST in mixed case", "100 LaSt", SMTP_CMD_OK, 100, true },
	{ "leading zeros", "007", SMTP_CMD_OK, 7, false },
	{ "largest 64-bit size", "18446744073709551615 LAST", SMTP_CMD_OK,
	  UINT64_MAX, true },
	{ "two spaces before LAST", "100  LAST", SMTP_CMD_OK, 100, true },
	{ "trailing space", "100 ", SMTP_CMD_OK, 100, false },
	{ "trailing space after LAST", "100 LAST ", SMTP_CMD_OK, 100, true },
	{ "empty", "", SMTP_CMD_E_SYNTAX, 0, false },
	{ "LAST alone", "LAST", SMTP_CMD_E_SYNTAX, 0, false },
	{ "negative", "-1", SMTP_CMD_E_SYNTAX, 0, false },
	{ "with a sign", "+1", SMTP_CMD_E_SYNTAX, 0, false },
	{ "fraction", "1.5", SMTP_CMD_E_SYNTAX, 0, false },
	{ "exponent", "1e3", SMTP_CMD_E_SYNTAX, 0, false },
	{ "hex", "0x10", SMTP_CMD_E_SYNTAX, 0, false },
	{ "2^64", "18446744073709551616", SMTP_CMD_E_SYNTAX, 0, false },
	{ "20 nines", "99999999999999999999", SMTP_CMD_E_SYNTAX, 0, false },
	{ "LAST with a suffix", "100 LASTX", SMTP_CMD_E_SYNTAX, 0, false },
	{ "text after LAST", "100 LAST x", SMTP_CMD_E_SYNTAX, 0, false },
	{ "LAST twice", "100 LAST LAST", SMTP_CMD_E_SYNTAX, 0, false },
	{ "other end marker", "100 FIRST", SMTP_CMD_E_SYNTAX, 0, false },
	{ "tab before LAST", "100\tLAST", SMTP_CMD_E_SYNTAX, 0, false },
	{ "LAST glued to the size", "100LAST", SMTP_CMD_E_SYNTAX, 0, false },
	{ "leading space", " 100", SMTP_CMD_E_SYNTAX, 0, false },
	{ "two sizes", "100 200", SMTP_CMD_E_SYNTAX, 0, false },
};

START_TEST(test_bdat_follows_rfc3030_table)
	{
		const struct bdat_case *c = &bdat_cases[_i];
		uint64_t size = 0xdeadbeef;
		bool last = true;
		int rc;

		if (c->rc != SMTP_CMD_OK)
			last = false;
		rc = smtp_bdat_parse(c->arg, strlen(c->arg), &size, &last);
		ck_assert_msg(rc == c->rc, "%s: got %d, want %d", c->name, rc,
			      c->rc);
		if (rc == SMTP_CMD_OK) {
			ck_assert_msg(size == c->size, "%s: size", c->name);
			ck_assert_msg(last == c->last, "%s: last", c->name);
		} else {
			ck_assert_msg(size == 0xdeadbeef && !last,
				      "%s: out written on failure", c->name);
		}
	}
END_TEST

START_TEST(test_bdat_through_cmd_parse)
	{
		static const char line[] = "bdat 4096 last   ";
		struct smtp_cmd cmd;
		uint64_t size;
		bool last;

		ck_assert_int_eq(smtp_cmd_parse(line, strlen(line), &cmd),
				 SMTP_CMD_OK);
		ck_assert_int_eq(cmd.verb, SMTP_VERB_BDAT);
		ck_assert_int_eq(
			smtp_bdat_parse(cmd.arg, cmd.arg_len, &size, &last),
			SMTP_CMD_OK);
		ck_assert(size == 4096);
		ck_assert(last);
	}
END_TEST

/* ---- xtext (RFC 3461 4) --------------------------------------------- */

struct xtext_case {
	const char *name;
	const char *in;
	int rc;
	const char *out;
};

static const struct xtext_case xtext_cases[] = {
	{ "empty", "", 0, "" },
	{ "plain xchars", "abc", 3, "abc" },
	{ "hexchar for +", "a+2Bb", 3, "a+b" },
	{ "hexchar for =", "+3D", 1, "=" },
	{ "hexchar for space", "+20", 1, " " },
	{ "hexchar at the end", "ab+41", 3, "abA" },
	{ "hexchars in a row", "+41+42+43", 3, "ABC" },
	{ "the xchar range ends", "!~", 2, "!~" },
	{ "a mailbox", "user@example.com", 16, "user@example.com" },
	{ "space", "a b", -1, "" },
	{ "raw =", "a=b", -1, "" },
	{ "lone +", "a+", -1, "" },
	{ "+ with one digit", "a+2", -1, "" },
	{ "lower-case hex", "a+2b", -1, "" },
	{ "non-hex digit", "a+G0", -1, "" },
	{ "DEL", "a\x7f", -1, "" },
	{ "tab", "a\tb", -1, "" },
	{ "8-bit", U_UE, -1, "" },
};

START_TEST(test_xtext_follows_rfc3461_table)
	{
		const struct xtext_case *c = &xtext_cases[_i];
		char out[64];
		int rc;

		memset(out, '#', sizeof(out));
		rc = smtp_xtext_decode(c->in, strlen(c->in), out, sizeof(out));
		ck_assert_msg(rc == c->rc, "%s: got %d, want %d", c->name, rc,
			      c->rc);
		if (rc >= 0)
			ck_assert_str_eq(out, c->out);
		else
			ck_assert_msg(out[0] == '#',
				      "%s: out written on failure", c->name);
	}
END_TEST

START_TEST(test_xtext_every_xchar_decodes_to_itself)
	{
		for (int c = 0; c < 256; c++) {
			char in = (char)c, out[2];
			bool is_xchar =
				c >= 33 && c <= 126 && c != '+' && c != '=';

			ck_assert_int_eq(
				smtp_xtext_decode(&in, 1, out, sizeof(out)),
				is_xchar ? 1 : -1);
			if (is_xchar)
				ck_assert_int_eq((unsigned char)out[0], c);
		}
	}
END_TEST

START_TEST(test_xtext_every_octet_round_trips_as_hexchar)
	{
		for (int c = 0; c < 256; c++) {
			char in[4], out[2];

			snprintf(in, sizeof(in), "+%02X", c);
			ck_assert_int_eq(
				smtp_xtext_decode(in, 3, out, sizeof(out)), 1);
			ck_assert_int_eq((unsigned char)out[0], c);
		}
	}
END_TEST

START_TEST(test_xtext_respects_outlen)
	{
		char out[8];

		memset(out, '#', sizeof(out));
		ck_assert_int_eq(smtp_xtext_decode("abc", 3, out, 3), -1);
		ck_assert_int_eq(out[0], '#');
		ck_assert_int_eq(smtp_xtext_decode("abc", 3, out, 4), 3);
		ck_assert_str_eq(out, "abc");
		ck_assert_int_eq(smtp_xtext_decode("", 0, out, 0), -1);
		ck_assert_int_eq(smtp_xtext_decode("", 0, out, 1), 0);
		ck_assert_str_eq(out, "");
		/* the limit is on decoded octets, not encoded ones */
		ck_assert_int_eq(smtp_xtext_decode("+41+42", 6, out, 3), 2);
		ck_assert_str_eq(out, "AB");
	}
END_TEST

/* ---- replies -------------------------------------------------------- */

static const int cmd_errors[] = {
	SMTP_CMD_E_UNKNOWN,
	SMTP_CMD_E_SYNTAX,
	SMTP_CMD_E_PARAM_UNKNOWN,
	SMTP_CMD_E_PARAM_SYNTAX,
	SMTP_CMD_E_PARAM_DUP,
	SMTP_CMD_E_NUL,
	SMTP_CMD_E_8BIT,
	SMTP_CMD_E_ARG_EXPECTED,
	SMTP_CMD_E_NO_ARG_ALLOWED,
	SMTP_CMD_E_ENVID_TOO_LONG,
	SMTP_CMD_E_ORCPT_TOO_LONG,
	ADDR(SMTP_ADDR_E_SYNTAX),
	ADDR(SMTP_ADDR_E_LOCAL_TOO_LONG),
	ADDR(SMTP_ADDR_E_DOMAIN_TOO_LONG),
	ADDR(SMTP_ADDR_E_PATH_TOO_LONG),
	ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8),
	ADDR(SMTP_ADDR_E_BAD_UTF8),
	ADDR(SMTP_ADDR_E_BAD_DOMAIN),
	ADDR(SMTP_ADDR_E_NO_DOMAIN),
	-50, /* not a code: still a reply */
	INT_MIN,
};
#define N_CMD_ERRORS (int)(sizeof(cmd_errors) / sizeof(*cmd_errors))

static bool
digits(const char *s, int min, int max, const char **end)
{
	int n = 0;

	while (s[n] >= '0' && s[n] <= '9')
		n++;
	*end = s + n;
	return n >= min && n <= max;
}

/* "5yz x.y.z text": RFC 5321 4.2 reply code, RFC 3463 2 enhanced code of
 * the same class, some text, no line break. */
static void
check_reply_line(const char *s, const char *what)
{
	const char *p;

	ck_assert_msg(s != NULL, "%s: NULL", what);
	ck_assert_msg(digits(s, 3, 3, &p) && *p == ' ', "%s: '%s'", what, s);
	ck_assert_msg(s[0] == '4' || s[0] == '5', "%s: '%s' not an error", what,
		      s);
	ck_assert_msg(p[1] == s[0] && p[2] == '.', "%s: class of '%s'", what,
		      s);
	ck_assert_msg(digits(p + 3, 1, 3, &p) && *p == '.', "%s: '%s'", what,
		      s);
	ck_assert_msg(digits(p + 1, 1, 3, &p) && *p == ' ' && p[1] != '\0',
		      "%s: '%s'", what, s);
	ck_assert_msg(strpbrk(s, "\r\n") == NULL, "%s: line break", what);
}

START_TEST(test_strerror_every_code_and_verb_is_a_reply_line)
	{
		char what[64];

		for (int v = 0; v <= SMTP_VERB_COUNT; v++) {
			snprintf(what, sizeof(what), "err %d verb %d",
				 cmd_errors[_i], v);
			check_reply_line(smtp_cmd_strerror(cmd_errors[_i],
							   (enum smtp_verb)v),
					 what);
		}
	}
END_TEST

START_TEST(test_strerror_known_texts)
	{
		ck_assert_str_eq(smtp_cmd_strerror(SMTP_CMD_E_UNKNOWN,
						   SMTP_VERB_UNKNOWN),
				 "500 5.5.2 Error: command not recognized");
		ck_assert_str_eq(
			smtp_cmd_strerror(SMTP_CMD_E_SYNTAX, SMTP_VERB_MAIL),
			"501 5.5.4 Syntax: MAIL FROM:<address>");
		ck_assert_str_eq(
			smtp_cmd_strerror(SMTP_CMD_E_SYNTAX, SMTP_VERB_RCPT),
			"501 5.5.4 Syntax: RCPT TO:<address>");
		ck_assert_str_eq(
			smtp_cmd_strerror(SMTP_CMD_E_SYNTAX, SMTP_VERB_BDAT),
			"501 5.5.4 Syntax: BDAT chunk-size [LAST]");
		ck_assert_str_eq(smtp_cmd_strerror(SMTP_CMD_E_ARG_EXPECTED,
						   SMTP_VERB_EHLO),
				 "501 5.5.4 Syntax: EHLO hostname");
		ck_assert_str_eq(smtp_cmd_strerror(SMTP_CMD_E_NO_ARG_ALLOWED,
						   SMTP_VERB_STARTTLS),
				 "501 5.5.4 Syntax: STARTTLS");
		ck_assert_str_eq(smtp_cmd_strerror(SMTP_CMD_E_PARAM_UNKNOWN,
						   SMTP_VERB_MAIL),
				 "555 5.5.4 Unsupported MAIL parameter");
		ck_assert_str_eq(smtp_cmd_strerror(SMTP_CMD_E_PARAM_UNKNOWN,
						   SMTP_VERB_RCPT),
				 "555 5.5.4 Unsupported RCPT parameter");
		ck_assert_str_eq(
			smtp_cmd_strerror(SMTP_CMD_E_NUL, SMTP_VERB_MAIL),
			"500 5.5.2 Error: NUL character in command");
	}
END_TEST

START_TEST(test_strerror_address_errors_name_sender_or_recipient)
	{
		ck_assert_str_eq(
			smtp_cmd_strerror(ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8),
					  SMTP_VERB_MAIL),
			smtp_addr_strerror(SMTP_ADDR_E_NEEDS_SMTPUTF8, false));
		ck_assert_str_eq(
			smtp_cmd_strerror(ADDR(SMTP_ADDR_E_NEEDS_SMTPUTF8),
					  SMTP_VERB_RCPT),
			smtp_addr_strerror(SMTP_ADDR_E_NEEDS_SMTPUTF8, true));
		ck_assert(strstr(smtp_cmd_strerror(ADDR(SMTP_ADDR_E_SYNTAX),
						   SMTP_VERB_MAIL),
				 " 5.1.7 ") != NULL);
		ck_assert(strstr(smtp_cmd_strerror(ADDR(SMTP_ADDR_E_SYNTAX),
						   SMTP_VERB_RCPT),
				 " 5.1.3 ") != NULL);
	}
END_TEST

START_TEST(test_strerror_parse_errors_end_to_end)
	{
		static const char *const lines[] = {
			"MAIL FROM:<a@b.example> FOO=1",
			"MAIL FROM:<a@b.example> SIZE=1 SIZE=1",
			"MAIL FROM:a@b.example",
			"RCPT TO:<" U_UE "@b.example>",
			"RCPT TO:<a@b.example> NOTIFY=NEVER,DELAY",
		};
		static const char *const want[] = {
			"555 5.5.4 Unsupported MAIL parameter",
			"501 5.5.4 Duplicate MAIL parameter",
			"501 5.5.4 Syntax: MAIL FROM:<address>",
			"553 5.6.7 Non-ASCII recipient address requires "
			"SMTPUTF8",
			"501 5.5.4 Bad RCPT parameter value",
		};

		for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++) {
			struct smtp_cmd cmd;
			struct smtp_mail m;
			struct smtp_rcpt r;
			int rc;

			ck_assert_int_eq(smtp_cmd_parse(lines[i],
							strlen(lines[i]), &cmd),
					 SMTP_CMD_OK);
			if (cmd.verb == SMTP_VERB_MAIL)
				rc = smtp_mail_parse(cmd.arg, cmd.arg_len, &m);
			else
				rc = smtp_rcpt_parse(cmd.arg, cmd.arg_len,
						     false, &r);
			ck_assert_str_eq(smtp_cmd_strerror(rc, cmd.verb),
					 want[i]);
		}
	}
END_TEST

static Suite *
smtp_cmd_suite(void)
{
	Suite *s = suite_create("smtp_cmd");
	TCase *tc;

	tc = tcase_create("line");
	tcase_add_loop_test(tc, test_cmd_parse_follows_verb_table, 0,
			    sizeof(cmd_cases) / sizeof(*cmd_cases));
	tcase_add_test(tc, test_cmd_parse_reads_only_len_octets);
	tcase_add_test(tc, test_verb_name_round_trips_through_parse);
	tcase_add_test(tc, test_verb_name_of_bad_values_is_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("mail");
	tcase_add_loop_test(tc, test_mail_accepts_table, 0,
			    sizeof(mail_ok_cases) / sizeof(*mail_ok_cases));
	tcase_add_loop_test(tc, test_mail_rejects_table, 0,
			    sizeof(mail_bad_cases) / sizeof(*mail_bad_cases));
	tcase_add_test(tc, test_mail_envid_of_100_ok_101_too_long);
	tcase_add_test(tc, test_mail_envid_limit_counts_decoded_octets);
	tcase_add_test(tc, test_mail_auth_of_320_ok_321_refused);
	tcase_add_test(tc, test_mail_line_at_every_maximum_fits_cmd_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("rcpt");
	tcase_add_loop_test(tc, test_rcpt_accepts_table, 0,
			    sizeof(rcpt_ok_cases) / sizeof(*rcpt_ok_cases));
	tcase_add_loop_test(tc, test_rcpt_rejects_table, 0,
			    sizeof(rcpt_bad_cases) / sizeof(*rcpt_bad_cases));
	tcase_add_test(tc, test_rcpt_orcpt_of_500_ok_501_too_long);
	tcase_add_test(tc, test_rcpt_path_over_256_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat");
	tcase_add_loop_test(tc, test_bdat_follows_rfc3030_table, 0,
			    sizeof(bdat_cases) / sizeof(*bdat_cases));
	tcase_add_test(tc, test_bdat_through_cmd_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("xtext");
	tcase_add_loop_test(tc, test_xtext_follows_rfc3461_table, 0,
			    sizeof(xtext_cases) / sizeof(*xtext_cases));
	tcase_add_test(tc, test_xtext_every_xchar_decodes_to_itself);
	tcase_add_test(tc, test_xtext_every_octet_round_trips_as_hexchar);
	tcase_add_test(tc, test_xtext_respects_outlen);
	suite_add_tcase(s, tc);

	tc = tcase_create("strerror");
	tcase_add_loop_test(tc,
			    test_strerror_every_code_and_verb_is_a_reply_line,
			    0, N_CMD_ERRORS);
	tcase_add_test(tc, test_strerror_known_texts);
	tcase_add_test(tc,
		       test_strerror_address_errors_name_sender_or_recipient);
	tcase_add_test(tc, test_strerror_parse_errors_end_to_end);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(smtp_cmd_suite)
