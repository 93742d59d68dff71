/* The SMTP server's protocol as data (see session_table.h), and the
 * dispatcher that holds every command line to it: a command out of
 * sequence gets its 503 here (RFC 5321 4.3.2, RFC 3030 2), improper
 * pipelining its 554 (RFC 2920 3.1, as Postfix's smtpd answers it), and
 * only then does the row's handler run, to parse, act and reply. The
 * handlers are router/session_cmd.c's, router/transfer.c's (DATA, BDAT)
 * and router/session_auth.c's (AUTH); reading the lines is
 * router/session.c's. Handles untrusted input: the line is the client's. */
#include "router/session_table.h"

#include <stdbool.h>
#include <stddef.h>

#include "lib/log.h"
#include "lib/smtp_cmd.h"
#include "router/session_auth.h"
#include "router/session_cmd.h"
#include "router/session_int.h"
#include "router/transfer.h"

#define SESSION_PEEK_MAX 100 /* octets of improper input logged */

/* In the order of enum session_state. A state added there without a name
 * here does not compile. */
static const char *const session_state_names[] = {
	"greet", "helo", "mail", "rcpt", "data",    "chunk",
	"bdat",	 "skip", "auth", "wait", "closing",
};
_Static_assert(sizeof(session_state_names) / sizeof(*session_state_names) ==
		       SESSION_ST_N,
	       "every session state has a name");

#define IN(st) SESSION_IN(SESSION_ST_##st)
#define TO(st) SESSION_ST_##st
#define LAST CMD_LAST_IN_GROUP

/* One row per command and the states it is taken in. A verb may have
 * several rows when where it leads depends on where it came from (RSET);
 * a verb in a state none of its rows names is out of sequence. */
static const struct session_cmd session_cmds[] = {
	/* verb, taken in, leads to on success, flags, handler */
	{ SMTP_VERB_HELO, SESSION_IN_TALK, TO(HELO), LAST, session_cmd_helo },
	{ SMTP_VERB_EHLO, SESSION_IN_TALK, TO(HELO), LAST, session_cmd_ehlo },
	{ SMTP_VERB_MAIL, IN(HELO), TO(MAIL), 0, session_cmd_mail },
	{ SMTP_VERB_RCPT, IN(MAIL) | IN(RCPT), TO(RCPT), 0, session_cmd_rcpt },
	{ SMTP_VERB_DATA, IN(RCPT), TO(DATA), LAST, transfer_cmd_data },
	{ SMTP_VERB_BDAT, IN(RCPT) | IN(BDAT), TO(CHUNK), CMD_HAS_CHUNK,
	  transfer_cmd_bdat },
	{ SMTP_VERB_RSET, IN(GREET), TO(SAME), 0, session_cmd_rset },
	{ SMTP_VERB_RSET, IN(HELO) | IN(MAIL) | IN(RCPT) | IN(BDAT), TO(HELO),
	  0, session_cmd_rset },
	{ SMTP_VERB_NOOP, SESSION_IN_TALK, TO(SAME), LAST, session_cmd_noop },
	{ SMTP_VERB_QUIT, SESSION_IN_TALK, TO(CLOSING), 0, session_cmd_quit },
	{ SMTP_VERB_VRFY, SESSION_IN_TALK, TO(SAME), LAST, session_cmd_vrfy },
	{ SMTP_VERB_EXPN, SESSION_IN_TALK, TO(SAME), LAST, session_cmd_expn },
	{ SMTP_VERB_HELP, SESSION_IN_TALK, TO(SAME), 0, session_cmd_help },
	{ SMTP_VERB_STARTTLS, IN(GREET) | IN(HELO), TO(GREET), 0,
	  session_cmd_starttls },
	{ SMTP_VERB_AUTH, IN(HELO), TO(AUTH), 0, session_cmd_auth },
};

#undef IN
#undef TO
#undef LAST

#define SESSION_N_CMDS (sizeof(session_cmds) / sizeof(*session_cmds))

const struct session_cmd *
session_table_find(enum smtp_verb verb, enum session_state st)
{
	for (size_t i = 0; i < SESSION_N_CMDS; i++)
		if (session_cmds[i].verb == verb &&
		    session_state_in(st, session_cmds[i].states))
			return &session_cmds[i];
	return NULL;
}

const struct session_cmd *
session_table_verb(enum smtp_verb verb)
{
	for (size_t i = 0; i < SESSION_N_CMDS; i++)
		if (session_cmds[i].verb == verb)
			return &session_cmds[i];
	return NULL;
}

const struct session_cmd *
session_table_rows(size_t *n)
{
	*n = SESSION_N_CMDS;
	return session_cmds;
}

const char *
session_state_name(enum session_state st)
{
	return (unsigned)st < SESSION_ST_N ? session_state_names[st] : "?";
}

const char *
session_sequence_error(enum session_state st, enum smtp_verb verb)
{
	if (st == SESSION_ST_GREET)
		return "503 5.5.1 Error: send HELO/EHLO first";
	switch (verb) {
	case SMTP_VERB_MAIL:
		return st == SESSION_ST_BDAT ?
			       "503 5.5.1 Error: BDAT transfer in progress" :
			       "503 5.5.1 Error: nested MAIL command";
	case SMTP_VERB_RCPT:
		return st == SESSION_ST_BDAT ?
			       "503 5.5.1 Error: BDAT transfer in progress" :
			       "503 5.5.1 Error: need MAIL command";
	case SMTP_VERB_DATA:
	case SMTP_VERB_BDAT:
		if (st == SESSION_ST_BDAT)
			return "503 5.5.1 Error: DATA not allowed during BDAT "
			       "transfer";
		return st == SESSION_ST_MAIL ?
			       "503 5.5.1 Error: need RCPT command" :
			       "503 5.5.1 Error: need MAIL command";
	default:
		return "503 5.5.1 Error: bad sequence of commands";
	}
}

/* RFC 2920 3.1, enforced as Postfix's smtpd does: a command that must end
 * its group (or any command of a client that was not offered PIPELINING)
 * with input already behind it ends the session with a 554, before it
 * runs. BDAT's chunk is the command's own (RFC 3030 2), never pipelined
 * input. Returns true when it did. */
static bool
session_refuse_pipelining(struct session *s, const struct session_cmd *v)
{
	char seen[SESSION_PEEK_MAX], q[LOG_QUOTE_BUF];
	size_t n;

	if ((v->flags & CMD_HAS_CHUNK) ||
	    (!(v->flags & CMD_LAST_IN_GROUP) && s->is_esmtp))
		return false;
	n = session_peek_input(s, seen, sizeof(seen));
	if (n == 0)
		return false;
	log_info("client=%s event=improper_pipelining after=%s input=%s",
		 s->client, smtp_verb_name(v->verb),
		 log_quote(q, sizeof(q), seen, n));
	s->env->stats.rejected[ROUTER_REJECT_BAD_SEQUENCE]++;
	session_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
	session_close_after_reply(s);
	return true;
}

void
session_dispatch(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	int rc = smtp_cmd_parse(line, len, &cmd);
	const struct session_cmd *v, *c;

	if (rc != 0) {
		/* a BDAT we cannot parse loses framing: handled there */
		if (cmd.verb == SMTP_VERB_BDAT && rc != SMTP_CMD_E_NUL &&
		    rc != SMTP_CMD_E_8BIT) {
			cmd.arg = "";
			cmd.arg_len = 0;
			transfer_skip_bdat(s, &cmd);
			return;
		}
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(rc, cmd.verb));
		return;
	}
	v = session_table_verb(cmd.verb);
	if (v == NULL) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(
			s, smtp_cmd_strerror(SMTP_CMD_E_UNKNOWN, cmd.verb));
		return;
	}
	if (session_refuse_pipelining(s, v))
		return;
	c = session_table_find(cmd.verb, s->state);
	if (c == NULL && (v->flags & CMD_HAS_CHUNK)) {
		transfer_skip_bdat(s, &cmd);
		return;
	}
	if (c == NULL) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SEQUENCE]++;
		session_reply_error(s,
				    session_sequence_error(s->state, cmd.verb));
		return;
	}
	s->cmd = c;
	c->fn(s, &cmd);
}
