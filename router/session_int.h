/* The SMTP server session as the router/session*.c files and
 * router/transfer.c see it; internal to them (everyone else uses
 * router/session.h).
 *
 * Owns struct session and the calls router/session.c lends the others:
 * replies, state changes, the transaction reset and resuming input.
 * router/session.c owns the connection and the session's life cycle,
 * router/session_table.c the states, the command table and the
 * dispatcher, router/session_cmd.c the commands up to the message,
 * router/transfer.c the message itself (DATA, BDAT, the hand-off) and
 * router/session_auth.c AUTH. */
#ifndef SHOAL_ROUTER_SESSION_INT_H
#define SHOAL_ROUTER_SESSION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/guard.h"
#include "lib/qid.h"
#include "lib/smtp_cmd.h"
#include "lib/smtp_data.h"
#include "router/session.h"
#include "router/session_table.h"

#define SESSION_HELO_MAX 255 /* RFC 5321 4.5.3.1.2 domain */

struct conn;

enum session_auth_step {
	SESSION_AUTH_NONE = 0,
	SESSION_AUTH_PLAIN,
	SESSION_AUTH_LOGIN_USER,
	SESSION_AUTH_LOGIN_PASS,
};

struct session_rcpt {
	char *addr;
	unsigned notify;
	char *orcpt;
	char *suppressed_reply; /* mode "bounce": listed, bounce it */
};

struct session {
	struct session_env *env;
	struct session *next, *prev; /* env->all */
	const struct cfg_listen *ls;
	struct conn *conn;
	struct event *lifetime;
	enum session_state state;
	const struct session_cmd *cmd; /* the row of the command being run */
	char client[64];	       /* printable client address */
	bool is_relay_client;
	bool is_esmtp;
	bool is_tls;	      /* STARTTLS done, or implicit TLS */
	bool is_authed;
	char auth_user[256];
	char auth_login_user[256]; /* LOGIN: the name, until the password */
	enum session_auth_step auth_step;
	struct event *auth_timer; /* a failure's delayed answer */
	bool has_limit_slot;	  /* counted in limits_session_start() */
	char helo[SESSION_HELO_MAX + 1];
	unsigned errors;
	bool skipping_line; /* discarding the rest of a long line */
	struct guard guard;  /* callbacks on the stack; freed on the way out
				(lib/guard.h) */
	bool is_expired;     /* session_timeout passed while waiting for the
				node: 421 once its answer is given */
	bool is_input_ended; /* the client half-closed: what it sent is
				still answered, then the session ends */

	/* the transaction */
	struct smtp_mail mail;
	struct session_rcpt *rcpts;
	size_t n_rcpts, cap_rcpts;
	char qid[QID_LEN + 1];
	struct buf body;
	size_t header_len;	 /* our Received header, not counted */
	struct smtp_data data;	 /* the content checker, DATA and BDAT */
	uint64_t bdat_remaining; /* octets of the current chunk still due */
	bool bdat_last;		 /* the chunk being read is LAST */
	uint64_t request_id;	 /* enqueue waiting, 0 if none */
	uint64_t check_id;	 /* suppression check waiting, 0 if none */
	struct session_rcpt checking;	 /* the RCPT being checked */
	enum session_state resume_state; /* where a detour returns: the
					  * suppression check (WAIT), a
					  * refused chunk (SKIP) */
	size_t msg_size;		 /* octets handed to the node */
	uint64_t data_end_us; /* clock_mono_us() at the end of data */
};

/* Move to st; logs old and new at debug. Every transition goes here. */
void session_set_state(struct session *s, enum session_state st);

/* The command being run (s->cmd) succeeded: move to where its row leads
 * (nothing to do for SESSION_ST_SAME). Handlers call it at the point of
 * success, before anything that may move the session on (an AUTH initial
 * response, a park in SESSION_ST_WAIT). */
void session_cmd_ok(struct session *s);

/* Queue one reply line; CRLF is added. Inside a callback (guard held)
 * replies collect in the output and session_leave() writes them, all in
 * one write (router/conn.h); outside one, at once. */
void session_reply(struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A reply for a client mistake; too many of them end the session. */
void session_reply_error(struct session *s, const char *line);

/* Close after the pending output is written. */
void session_close_after_reply(struct session *s);

/* Closing: free the session once its output has left (now or later). */
void session_free_when_flushed(struct session *s);

/* Forget the transaction: recipients, body, qid, BDAT progress, MAIL. */
void session_reset_txn(struct session *s);

/* Handle what is buffered from the client, as far as the state allows. */
void session_process(struct session *s);

/* One command line (CRLF removed, NUL-terminated) through the table
 * (router/session_table.c): refused there, or run by its row's handler. */
void session_dispatch(struct session *s, const char *line, size_t len);

/* What the client sent that is not read yet: up to n octets of it copied
 * into buf, from the session's input buffer or, for a plain session, the
 * socket (a TLS socket holds records, not input). Returns how many, 0
 * when there is nothing. */
size_t session_peek_input(struct session *s, char *buf, size_t n);

/* STARTTLS accepted: throw away whatever the client sent behind it
 * (CVE-2011-0411), send the 220 in plaintext and put TLS under the
 * session. Returns 0, or -1 when the session could not be set up (it is
 * closing then). */
int session_start_tls(struct session *s);

/* Leave a libevent callback (balances guard_enter(&s->guard)): free the session
 * if it asked for it. s may be gone afterwards. */
void session_leave(struct session *s);

#endif
