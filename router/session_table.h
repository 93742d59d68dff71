/* The SMTP server's protocol as data (router/session_table.c): the states
 * of a session, and one row per command and the states it is taken in,
 * with the state a success leads to. Anyone can hold the table against
 * RFC 5321 4.3.2, RFC 3030 and RFC 2920 (tests/unit/test_session_table.c
 * does). Read-only: the rows are static and const. */
#ifndef SHOAL_ROUTER_SESSION_TABLE_H
#define SHOAL_ROUTER_SESSION_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/smtp_cmd.h"

/* Commands are read only in GREET, HELO, MAIL, RCPT and BDAT; the other
 * states read a message part or a dialog line, or nothing at all. */
enum session_state {
	SESSION_ST_GREET = 0, /* before HELO/EHLO */
	SESSION_ST_HELO,      /* greeted, no transaction */
	SESSION_ST_MAIL,      /* MAIL accepted */
	SESSION_ST_RCPT,      /* at least one RCPT accepted */
	SESSION_ST_DATA,      /* reading DATA's message, up to CRLF.CRLF */
	SESSION_ST_CHUNK,     /* reading a BDAT chunk of the message */
	SESSION_ST_BDAT,      /* between chunks: a chunk not LAST answered */
	SESSION_ST_SKIP,      /* reading a refused BDAT's chunk, to drop it */
	SESSION_ST_AUTH,      /* in the AUTH 334 dialog */
	SESSION_ST_WAIT,      /* waiting for the node or a password check */
	SESSION_ST_CLOSING,   /* flushing the last reply */
	SESSION_ST_N
};

/* A set of states, as a row's "taken in" column. */
#define SESSION_IN(st) (1u << (st))
#define SESSION_IN_TALK                                                        \
	(SESSION_IN(SESSION_ST_GREET) | SESSION_IN(SESSION_ST_HELO) |          \
	 SESSION_IN(SESSION_ST_MAIL) | SESSION_IN(SESSION_ST_RCPT) |           \
	 SESSION_IN(SESSION_ST_BDAT))

/* A row's "leads to" for a command that leaves the state as it is. */
#define SESSION_ST_SAME SESSION_ST_N

/* Where a message part leads once it is in and answered: the end of DATA
 * and the LAST chunk end the transaction (RFC 5321 4.1.1.4, RFC 3030 2),
 * by way of SESSION_ST_WAIT while the node makes the message durable;
 * any other chunk leaves the session between chunks. */
#define SESSION_ST_AFTER_MESSAGE SESSION_ST_HELO
#define SESSION_ST_AFTER_CHUNK SESSION_ST_BDAT

enum session_cmd_flag {
	/* RFC 2920 3.1: the client must wait for this reply before it sends
	 * more; input already there behind it is improper pipelining. Every
	 * command of a client that did not say EHLO is such a command (it
	 * was not offered PIPELINING). */
	CMD_LAST_IN_GROUP = 1 << 0,
	/* Octets follow the command line (BDAT's chunk): a refused command
	 * still has them read and dropped (SESSION_ST_SKIP) before its 503,
	 * RFC 3030 2, or the session would lose its framing. */
	CMD_HAS_CHUNK = 1 << 1,
};

struct session;
struct smtp_cmd;

/* A command's handler: parses, acts and replies; on success it calls
 * session_cmd_ok() (router/session_int.h), which takes the row's "leads
 * to"; a failure keeps the state, or closes the session. */
typedef void session_cmd_fn(struct session *s, const struct smtp_cmd *cmd);

struct session_cmd {
	enum smtp_verb verb;
	unsigned states;	 /* taken in: SESSION_IN() set */
	enum session_state next; /* leads to on success, or SESSION_ST_SAME */
	unsigned flags;		 /* enum session_cmd_flag */
	session_cmd_fn *fn;
};

/* The row that takes verb in state st, or NULL: the command is out of
 * sequence there (or unknown, see session_table_verb()). */
const struct session_cmd *session_table_find(enum smtp_verb verb,
					     enum session_state st);

/* The first row of verb (every row of a verb has the same flags and
 * handler), or NULL for SMTP_VERB_UNKNOWN: every verb lib/smtp_cmd.c
 * parses has rows (test_session_table checks it), so NULL means a line
 * that names no command, answered 500 5.5.2. */
const struct session_cmd *session_table_verb(enum smtp_verb verb);

/* Every row, for reading (*n of them); valid for the program's life. */
const struct session_cmd *session_table_rows(size_t *n);

/* The state's name for logs ("rcpt"); "?" for a value out of range. */
const char *session_state_name(enum session_state st);

/* The 503 for verb refused in state st (RFC 5321 4.3.2, RFC 3030 2).
 * Returns a static string. */
const char *session_sequence_error(enum session_state st, enum smtp_verb verb);

static inline bool
session_state_in(enum session_state st, unsigned states)
{
	return (SESSION_IN(st) & states) != 0;
}

#endif
