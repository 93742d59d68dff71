/* Check suite for router/session_table.c: the SMTP server's command table
 * held against the RFCs. The expectations below are written from the
 * RFCs, not from the table: for every state in which commands are read
 * and every verb, whether the RFCs require the command to be taken there,
 * require it to be refused (503), or leave it to the server, and where a
 * success leads. RFC 5321 4.1.1, 4.1.4 and 4.3.2 (the command-reply
 * sequences), RFC 3030 2 (BDAT), RFC 3207 4.2 (STARTTLS), RFC 4954 4
 * (AUTH) and RFC 2920 3.1 (which commands end a pipelined group). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "router/session_table.h"
#include "tests/unit/check_helpers.h"

/* The states that read command lines, in the order of the columns. */
static const enum session_state talk[] = {
	SESSION_ST_GREET, SESSION_ST_HELO, SESSION_ST_MAIL,
	SESSION_ST_RCPT,  SESSION_ST_BDAT,
};
#define N_TALK (sizeof(talk) / sizeof(*talk))

enum want {
	MUST_TAKE,   /* the RFCs require the command to be taken here */
	MUST_REFUSE, /* ... to be refused with 503 */
	MAY_EITHER,  /* left to the server; if taken, it leads to next */
};

struct cell {
	enum want want;
	enum session_state next; /* SESSION_ST_SAME: stays */
};

#define T(st)                                                                  \
	{                                                                      \
		MUST_TAKE, SESSION_ST_##st                                     \
	}
#define S                                                                      \
	{                                                                      \
		MUST_TAKE, SESSION_ST_SAME                                     \
	}
#define R                                                                      \
	{                                                                      \
		MUST_REFUSE, SESSION_ST_SAME                                   \
	}
#define E(st)                                                                  \
	{                                                                      \
		MAY_EITHER, SESSION_ST_##st                                    \
	}

struct verb_rule {
	enum smtp_verb verb;
	struct cell in[N_TALK]; /* GREET HELO MAIL RCPT BDAT */
	const char *why;
};

static const struct verb_rule rules[] = {
	{ SMTP_VERB_EHLO,
	  { T(HELO), T(HELO), T(HELO), T(HELO), T(HELO) },
	  "5321 4.1.4: EHLO may come later in the session and then resets "
	  "the state exactly as RSET does (a refusal would be 501/500/502/"
	  "550, never 503); 3030 2: RSET between chunks clears them" },
	{ SMTP_VERB_HELO,
	  { T(HELO), T(HELO), T(HELO), T(HELO), T(HELO) },
	  "5321 4.1.4: as EHLO" },
	{ SMTP_VERB_MAIL,
	  { R, T(MAIL), R, R, R },
	  "5321 4.1.4: HELO/EHLO before a transaction; MAIL MUST NOT be sent "
	  "while one is open (a BDAT transfer is one)" },
	{ SMTP_VERB_RCPT,
	  { R, R, T(RCPT), T(RCPT), R },
	  "5321 3.3: RCPT after MAIL, any number of times; 3030 2: the "
	  "chunks come after all MAIL and RCPT replies" },
	{ SMTP_VERB_DATA,
	  { R, R, R, T(DATA), R },
	  "5321 4.1.1.4: DATA after MAIL and RCPT, else 503; 3030 2: DATA "
	  "after BDAT in the same transaction MUST get 503" },
	{ SMTP_VERB_BDAT,
	  { R, R, R, T(CHUNK), T(CHUNK) },
	  "3030 2: BDAT after the RCPTs, and after BDAT until the LAST one; "
	  "a BDAT after LAST MUST get 503 (the session is out of the "
	  "transaction then, as in HELO)" },
	{ SMTP_VERB_RSET,
	  { S, T(HELO), T(HELO), T(HELO), T(HELO) },
	  "5321 4.1.1.5, 4.1.4: RSET at any time, ends any transaction "
	  "(3030 2: a BDAT transfer too), never makes up for HELO/EHLO" },
	{ SMTP_VERB_NOOP,
	  { S, S, S, S, S },
	  "5321 4.1.1.9, 4.1.4: at any time, changes nothing" },
	{ SMTP_VERB_QUIT,
	  { T(CLOSING), T(CLOSING), T(CLOSING), T(CLOSING), T(CLOSING) },
	  "5321 4.1.1.10: 221, then the server closes" },
	{ SMTP_VERB_VRFY,
	  { S, S, S, S, S },
	  "5321 4.1.4: VRFY, EXPN, HELP at any time, even before EHLO, not "
	  "503" },
	{ SMTP_VERB_EXPN, { S, S, S, S, S }, "5321 4.1.4: as VRFY" },
	{ SMTP_VERB_HELP, { S, S, S, S, S }, "5321 4.1.4: as VRFY" },
	{ SMTP_VERB_STARTTLS,
	  { E(GREET), T(GREET), E(GREET), E(GREET), E(GREET) },
	  "3207 4: offered after EHLO; 4.2: afterwards the server forgets "
	  "what the client said and the client starts with EHLO again; "
	  "silent on STARTTLS inside a transaction" },
	{ SMTP_VERB_AUTH,
	  { E(AUTH), T(AUTH), R, R, R },
	  "4954 4: offered after EHLO, not permitted during a mail "
	  "transaction" },
};
#define N_RULES (sizeof(rules) / sizeof(*rules))

#undef T
#undef S
#undef R
#undef E

static enum session_state
resolve(enum session_state next, enum session_state from)
{
	return next == SESSION_ST_SAME ? from : next;
}

/* ---- the table against the RFCs ----------------------------------- */

START_TEST(test_table_follows_rfc_5321_and_3030)
	{
		const struct verb_rule *r = &rules[_i];

		for (size_t j = 0; j < N_TALK; j++) {
			enum session_state st = talk[j];
			const struct cell *want = &r->in[j];
			const struct session_cmd *c =
				session_table_find(r->verb, st);
			const char *verb = smtp_verb_name(r->verb);
			const char *name = session_state_name(st);

			if (want->want == MUST_TAKE)
				ck_assert_msg(c != NULL,
					      "%s in %s must be taken (%s)",
					      verb, name, r->why);
			if (want->want == MUST_REFUSE)
				ck_assert_msg(c == NULL,
					      "%s in %s must be refused (%s)",
					      verb, name, r->why);
			if (c == NULL) {
				ck_assert_msg(strncmp(session_sequence_error(
							      st, r->verb),
						      "503 5.5.1 ", 10) == 0,
					      "%s refused in %s with a 503",
					      verb, name);
				continue;
			}
			ck_assert_msg(
				resolve(c->next, st) == resolve(want->next, st),
				"%s in %s leads to %s, not %s (%s)", verb, name,
				session_state_name(resolve(c->next, st)),
				session_state_name(resolve(want->next, st)),
				r->why);
		}
	}
END_TEST

START_TEST(test_every_verb_has_a_rule_and_a_row)
	{
		for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
			bool ruled = false;

			for (size_t i = 0; i < N_RULES; i++)
				ruled |= rules[i].verb == (enum smtp_verb)v;
			ck_assert_msg(ruled, "no RFC rule for %s",
				      smtp_verb_name((enum smtp_verb)v));
			ck_assert_msg(session_table_verb((enum smtp_verb)v) !=
					      NULL,
				      "no row for %s",
				      smtp_verb_name((enum smtp_verb)v));
		}
		ck_assert_ptr_null(session_table_verb(SMTP_VERB_UNKNOWN));
	}
END_TEST

/* Only GREET, HELO, MAIL, RCPT and BDAT read command lines: no row may
 * take a command where a message, a chunk or an AUTH line is read, or
 * where nothing is. */
START_TEST(test_no_command_where_none_is_read)
	{
		size_t n;
		const struct session_cmd *rows = session_table_rows(&n);

		ck_assert_uint_gt(n, 0);
		for (size_t i = 0; i < n; i++) {
			ck_assert_msg((rows[i].states & ~SESSION_IN_TALK) == 0,
				      "row %zu (%s) takes a command where none "
				      "is read",
				      i, smtp_verb_name(rows[i].verb));
			ck_assert_msg(rows[i].states != 0,
				      "row %zu takes nothing", i);
			ck_assert_msg(rows[i].next <= SESSION_ST_SAME,
				      "row %zu leads nowhere", i);
			ck_assert_ptr_nonnull(rows[i].fn);
		}
	}
END_TEST

/* Rows of one verb split its states between them (so one row answers for
 * each state) and agree on the handler and the flags. */
START_TEST(test_rows_of_a_verb_agree)
	{
		size_t n;
		const struct session_cmd *rows = session_table_rows(&n);

		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++) {
				if (rows[i].verb != rows[j].verb)
					continue;
				ck_assert_msg(
					(rows[i].states & rows[j].states) == 0,
					"%s: rows %zu and %zu overlap",
					smtp_verb_name(rows[i].verb), i, j);
				ck_assert(rows[i].fn == rows[j].fn);
				ck_assert_uint_eq(rows[i].flags, rows[j].flags);
			}
	}
END_TEST

/* RFC 3030 2: the chunk of a refused BDAT is read and dropped before the
 * 503, or the session would read the chunk's octets as commands. */
START_TEST(test_refused_bdat_still_takes_its_chunk)
	{
		const struct session_cmd *v =
			session_table_verb(SMTP_VERB_BDAT);

		ck_assert_ptr_nonnull(v);
		ck_assert(v->flags & CMD_HAS_CHUNK);
		for (int x = SMTP_VERB_UNKNOWN + 1; x < SMTP_VERB_COUNT; x++)
			if (x != SMTP_VERB_BDAT)
				ck_assert(
					!(session_table_verb((enum smtp_verb)x)
						  ->flags &
					  CMD_HAS_CHUNK));
	}
END_TEST

/* RFC 5321 4.1.1.4: after the end of data the transaction is over; RFC
 * 3030 2: after a chunk not LAST more BDAT may come (and RSET, and DATA
 * gets its 503), after the LAST one the transaction is over and a BDAT
 * MUST get 503. */
START_TEST(test_message_parts_lead_where_the_rfcs_say)
	{
		const char *e;

		ck_assert_int_eq(SESSION_ST_AFTER_MESSAGE, SESSION_ST_HELO);
		ck_assert_int_eq(SESSION_ST_AFTER_CHUNK, SESSION_ST_BDAT);
		ck_assert_ptr_nonnull(session_table_find(
			SMTP_VERB_BDAT, SESSION_ST_AFTER_CHUNK));
		ck_assert_ptr_nonnull(session_table_find(
			SMTP_VERB_MAIL, SESSION_ST_AFTER_MESSAGE));
		ck_assert_ptr_null(session_table_find(
			SMTP_VERB_BDAT, SESSION_ST_AFTER_MESSAGE));
		ck_assert_ptr_null(session_table_find(SMTP_VERB_DATA,
						      SESSION_ST_AFTER_CHUNK));
		e = session_sequence_error(SESSION_ST_AFTER_CHUNK,
					   SMTP_VERB_DATA);
		ck_assert_str_eq(
			e, "503 5.5.1 Error: DATA not allowed during BDAT "
			   "transfer");
		e = session_sequence_error(SESSION_ST_AFTER_MESSAGE,
					   SMTP_VERB_BDAT);
		ck_assert_str_eq(e, "503 5.5.1 Error: need MAIL command");
		e = session_sequence_error(SESSION_ST_GREET, SMTP_VERB_MAIL);
		ck_assert_str_eq(e, "503 5.5.1 Error: send HELO/EHLO first");
	}
END_TEST

/* ---- pipelining (RFC 2920 3.1) ------------------------------------- */

struct pipe_rule {
	enum smtp_verb verb;
	enum want last; /* MUST_TAKE: must end its group */
	const char *why;
};

static const struct pipe_rule pipe_rules[] = {
	{ SMTP_VERB_EHLO, MUST_TAKE, "2920 3.1: last in a group" },
	{ SMTP_VERB_DATA, MUST_TAKE, "2920 3.1" },
	{ SMTP_VERB_VRFY, MUST_TAKE, "2920 3.1" },
	{ SMTP_VERB_EXPN, MUST_TAKE, "2920 3.1" },
	{ SMTP_VERB_NOOP, MUST_TAKE, "2920 3.1" },
	{ SMTP_VERB_QUIT, MAY_EITHER,
	  "2920 3.1 lists it, but the session ends anyway (Postfix does not "
	  "enforce it)" },
	{ SMTP_VERB_HELO, MAY_EITHER, "not ESMTP: PIPELINING not offered" },
	{ SMTP_VERB_MAIL, MUST_REFUSE, "2920 3.1: anywhere in a group" },
	{ SMTP_VERB_RCPT, MUST_REFUSE, "2920 3.1: anywhere in a group" },
	{ SMTP_VERB_RSET, MUST_REFUSE, "2920 3.1: anywhere in a group" },
	{ SMTP_VERB_BDAT, MUST_REFUSE,
	  "3030 2: chunks may be sent without waiting for each 250" },
	{ SMTP_VERB_HELP, MAY_EITHER, "2920 silent" },
	{ SMTP_VERB_STARTTLS, MAY_EITHER,
	  "3207: what follows it in plaintext is dropped" },
	{ SMTP_VERB_AUTH, MAY_EITHER, "2920 silent" },
};

START_TEST(test_last_in_group_follows_rfc_2920)
	{
		const struct pipe_rule *r = &pipe_rules[_i];
		const struct session_cmd *v = session_table_verb(r->verb);
		bool is_last;

		ck_assert_ptr_nonnull(v);
		is_last = (v->flags & CMD_LAST_IN_GROUP) != 0;
		if (r->last == MUST_TAKE)
			ck_assert_msg(is_last, "%s must end its group (%s)",
				      smtp_verb_name(r->verb), r->why);
		if (r->last == MUST_REFUSE)
			ck_assert_msg(!is_last, "%s may stand anywhere (%s)",
				      smtp_verb_name(r->verb), r->why);
	}
END_TEST

/* ---- state names ---------------------------------------------------- */

START_TEST(test_every_state_has_its_own_name)
	{
		static const struct {
			enum session_state st;
			const char *name;
		} names[] = {
			{ SESSION_ST_GREET, "greet" },
			{ SESSION_ST_HELO, "helo" },
			{ SESSION_ST_MAIL, "mail" },
			{ SESSION_ST_RCPT, "rcpt" },
			{ SESSION_ST_DATA, "data" },
			{ SESSION_ST_CHUNK, "chunk" },
			{ SESSION_ST_BDAT, "bdat" },
			{ SESSION_ST_SKIP, "skip" },
			{ SESSION_ST_AUTH, "auth" },
			{ SESSION_ST_WAIT, "wait" },
			{ SESSION_ST_CLOSING, "closing" },
		};

		ck_assert_uint_eq(sizeof(names) / sizeof(*names), SESSION_ST_N);
		for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
			ck_assert_str_eq(session_state_name(names[i].st),
					 names[i].name);
		for (int i = 0; i < SESSION_ST_N; i++) {
			const char *a =
				session_state_name((enum session_state)i);

			ck_assert_ptr_nonnull(a);
			ck_assert_msg(a[0] != '\0' && strcmp(a, "?") != 0,
				      "state %d has no name", i);
			for (int j = 0; j < i; j++)
				ck_assert_str_ne(
					a, session_state_name(
						   (enum session_state)j));
		}
		ck_assert_str_eq(session_state_name(SESSION_ST_N), "?");
	}
END_TEST

static Suite *
session_table_suite(void)
{
	Suite *s = suite_create("session_table");
	TCase *tc = tcase_create("rfc5321_rfc3030");

	tcase_add_loop_test(tc, test_table_follows_rfc_5321_and_3030, 0,
			    N_RULES);
	tcase_add_test(tc, test_every_verb_has_a_rule_and_a_row);
	tcase_add_test(tc, test_no_command_where_none_is_read);
	tcase_add_test(tc, test_rows_of_a_verb_agree);
	tcase_add_test(tc, test_refused_bdat_still_takes_its_chunk);
	tcase_add_test(tc, test_message_parts_lead_where_the_rfcs_say);
	suite_add_tcase(s, tc);

	tc = tcase_create("rfc2920");
	tcase_add_loop_test(tc, test_last_in_group_follows_rfc_2920, 0,
			    sizeof(pipe_rules) / sizeof(*pipe_rules));
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, test_every_state_has_its_own_name);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(session_table_suite)
