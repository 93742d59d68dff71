/* SMTP server sessions: the connection and the session's life cycle:
 * replies, reading the client's input as far as the state allows, TLS
 * under the session, timeouts and shutdown. What may come when (the
 * states, the command table, the dispatcher) is router/session_table.c's,
 * the commands router/session_cmd.c's, the message itself (DATA, BDAT,
 * the Received: header, the hand-off to its node) router/transfer.c's;
 * struct session, which all use, is in router/session_int.h. Untrusted
 * input throughout: every line and chunk is bounded, every error has its
 * own reply.
 *
 * A session reads into its connection's input buffer (router/conn.h) up to a
 * limit; while it waits for a node to make a message durable it stops
 * parsing (reading stops at the limit) and resumes when the answer comes.
 * A session is freed only on the way out of a libevent callback, never in
 * the middle of processing. */
#include "router/session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/buf.h"
#include "router/conn.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/smtp_cmd.h"
#include "lib/xmalloc.h"
#include "router/enqueue.h"
#include "router/limits.h"
#include "router/session_auth.h"
#include "router/session_int.h"
#include "router/session_table.h"
#include "router/tls.h"
#include "router/transfer.h"

#define SESSION_INPUT_MAX (256 * 1024) /* read watermark per connection */
#define SESSION_OUTPUT_MAX (64 * 1024) /* queued replies that stop reading */

/* The message a log line is about: its qid once DATA or BDAT began, "-"
 * before (a qid is drawn only for a body). */
static const char *
session_qid(const struct session *s)
{
	return s->qid[0] ? s->qid : "-";
}

void
session_set_state(struct session *s, enum session_state st)
{
	log_debug(LOG_SUB_SMTP, "client=%s state=%s next=%s", s->client,
		  session_state_name(s->state), session_state_name(st));
	s->state = st;
}

void
session_cmd_ok(struct session *s)
{
	SHOAL_ASSERT(s->cmd != NULL); /* set by session_dispatch() */
	if (s->cmd->next != SESSION_ST_SAME)
		session_set_state(s, s->cmd->next);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = conn_output(s->conn);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (!guard_is_held(&s->guard))
		(void)conn_flush(s->conn); /* what is left: the write callback */
}

/* Replies not yet written. */
static size_t
session_output_len(struct session *s)
{
	return evbuffer_get_length(conn_output(s->conn));
}

/* Write this callback's replies. What the socket does not take now goes
 * when it can, and the write callback follows (session_on_write). */
static void
session_flush(struct session *s)
{
	if (conn_flush(s->conn) && s->state == SESSION_ST_CLOSING)
		session_free_when_flushed(s);
}

/* Close after the pending output is written, or after idle_timeout if
 * it cannot be (a client that stopped reading, a TLS handshake that never
 * came: neither may keep the session). */
void
session_close_after_reply(struct session *s)
{
	struct timeval tv = { s->env->cfg->router.idle_timeout, 0 };

	if (s->state != SESSION_ST_CLOSING) /* QUIT is there already */
		session_set_state(s, SESSION_ST_CLOSING);
	conn_enable_read(s->conn, false);
	evtimer_del(s->lifetime);
	evtimer_add(s->lifetime, &tv);
	session_free_when_flushed(s);
}

/* Free once the last reply has left (TLS too: the TLS connection writes
 * straight to the socket, router/conn.h). */
void
session_free_when_flushed(struct session *s)
{
	if (session_output_len(s) > 0)
		return; /* the write callback or session_flush() comes back */
	(void)guard_free(&s->guard);
}

/* A reply for a client mistake; too many of them end the session. */
void
session_reply_error(struct session *s, const char *line)
{
	session_reply(s, "%s", line);
	if (++s->errors >= s->env->cfg->router.max_errors) {
		session_reply(s, "421 4.7.0 %s Error: too many errors",
			      s->env->cfg->router.hostname);
		log_warn("client=%s event=disconnect reason=too_many_errors",
			 s->client);
		session_close_after_reply(s);
	}
}

void
session_reset_txn(struct session *s)
{
	for (size_t i = 0; i < s->n_rcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
		free(s->rcpts[i].suppressed_reply);
	}
	s->n_rcpts = 0;
	buf_free(&s->body);
	s->qid[0] = '\0';
	s->header_len = 0;
	s->bdat_remaining = 0;
	s->bdat_last = false;
	memset(&s->mail, 0, sizeof(s->mail));
}

static void
session_free(struct session *s)
{
	if (s->request_id)
		enqueue_cancel(s->env->enq, s->request_id);
	if (s->check_id)
		enqueue_cancel(s->env->enq, s->check_id);
	free(s->checking.addr);
	free(s->checking.orcpt);
	session_reset_txn(s);
	free(s->rcpts);
	if (s->lifetime)
		event_free(s->lifetime);
	if (s->auth_timer)
		event_free(s->auth_timer);
	session_auth_end(s);
	if (s->has_limit_slot)
		limits_session_end(s->env->limits, s->client);
	conn_free(s->conn);
	if (s->prev)
		s->prev->next = s->next;
	else
		s->env->all = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->env->sessions--;
	log_debug(LOG_SUB_SMTP, "client=%s event=disconnect", s->client);
	if (s->env->on_close)
		s->env->on_close(s->env->on_close_arg);
	free(s);
}

/* Leave a libevent callback: free the session if it asked for it. */
void
session_leave(struct session *s)
{
	if (guard_is_outermost(&s->guard) && !guard_is_closing(&s->guard))
		session_flush(s); /* may ask for the free: done on the way out */
	if (guard_leave(&s->guard))
		session_free(s);
}

/* ---- STARTTLS ------------------------------------------------------ */

int
session_start_tls(struct session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	size_t junk;
	SSL *ssl;

	/* earlier replies the client has not read yet would have to go out
	 * before the 220, in plaintext, and TLS wait for them: say no */
	if (!conn_flush(s->conn)) {
		log_info("client=%s event=starttls_refused reason=\"earlier "
			 "replies not read yet\" unwritten=%zu",
			 s->client, session_output_len(s));
		session_reply(s, "454 4.7.0 TLS not available due to "
				 "temporary reason");
		return -1;
	}
	ssl = tls_server_ssl(s->env->tls);
	if (ssl == NULL) {
		session_reply(s, "454 4.7.0 TLS not available due to "
				 "temporary reason");
		return -1;
	}
	junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_warn("client=%s event=starttls_pipelined bytes=%zu "
			 "note=\"discarded\"",
			 s->client, junk);
		evbuffer_drain(in, junk);
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	/* in plaintext, all of it, before TLS takes the socket: a socket
	 * with nothing waiting that cannot take 30 octets is broken */
	if (!conn_flush(s->conn) ||
	    conn_start_tls(s->conn, ssl, true) != 0) {
		log_info("client=%s event=tls_failed error=\"cannot start TLS: "
			 "the 220 is not written or no TLS connection\"",
			 s->client);
		session_close_after_reply(s);
		return -1;
	}
	s->is_tls = true;
	return 0;
}

/* ---- input ---------------------------------------------------------- */

/* Take one command line. Returns true when a line was handled, false when
 * a whole line is not there yet. */
static bool
session_read_command(struct session *s, struct evbuffer *in)
{
	char line[SMTP_CMD_MAX + 1];
	struct evbuffer_ptr lf;
	size_t avail = evbuffer_get_length(in);
	size_t len;

	lf = evbuffer_search(in, "\n", 1, NULL);
	if (lf.pos < 0 || (size_t)lf.pos >= SMTP_CMD_MAX) {
		if (lf.pos < 0 && avail < SMTP_CMD_MAX)
			return false;
		/* over-long line: say so once, then skip to its end */
		if (!s->skipping_line) {
			s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
			session_reply_error(s,
					    "500 5.5.2 Error: line too long");
		}
		s->skipping_line = lf.pos < 0;
		evbuffer_drain(in, lf.pos < 0 ? avail : (size_t)lf.pos + 1);
		return true;
	}
	len = (size_t)lf.pos + 1;
	evbuffer_remove(in, line, len);
	if (s->skipping_line) {
		s->skipping_line = false;
		return true;
	}
	if (len < 2 || line[len - 2] != '\r') {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "500 5.5.2 Error: bare LF in command "
				       "(use CRLF)");
		return true;
	}
	len -= 2;
	if (memchr(line, '\r', len)) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "500 5.5.2 Error: bare CR in command");
		return true;
	}
	line[len] = '\0';
	session_dispatch(s, line, len);
	return true;
}

size_t
session_peek_input(struct session *s, char *buf, size_t n)
{
	return conn_peek(s->conn, buf, n);
}

/* Take what the state reads: a message part, an AUTH dialog line or a
 * command line. Returns false when more input is needed. */
static bool
session_read(struct session *s, struct evbuffer *in)
{
	switch (s->state) {
	case SESSION_ST_DATA:
		return transfer_read_data(s, in);
	case SESSION_ST_CHUNK:
	case SESSION_ST_SKIP:
		return transfer_read_chunk(s, in);
	case SESSION_ST_AUTH:
		return session_auth_read(s, in);
	default:
		return session_read_command(s, in);
	}
}

/* Shutting down: whether this session is to get its 421 now. A message
 * being made durable always gets its answer first. */
static bool
session_must_stop(const struct session *s)
{
	const struct session_env *env = s->env;

	if (!env->is_stopping || s->state == SESSION_ST_WAIT)
		return false;
	if (env->is_past_deadline)
		return true;
	return s->state == SESSION_ST_GREET || s->state == SESSION_ST_HELO;
}

/* A lost connection in the middle of a message is worth a line. */
static void
session_log_lost(const struct session *s)
{
	if (session_state_in(s->state, SESSION_IN(SESSION_ST_DATA) |
					       SESSION_IN(SESSION_ST_CHUNK) |
					       SESSION_IN(SESSION_ST_BDAT) |
					       SESSION_IN(SESSION_ST_WAIT)))
		log_info("qid=%s client=%s event=lost_connection state=%s",
			 session_qid(s), s->client,
			 session_state_name(s->state));
}

/* Whether a client that half-closed is still to be answered: when what
 * it sent may carry a message (one being made durable, or input not read
 * yet: a pipelined group). An AUTH verdict or a suppression check alone
 * is not worth keeping the session for (a client that closes after AUTH
 * would hold it for the failure delay). */
static bool
session_owes_answers(struct session *s)
{
	if (s->request_id != 0)
		return true;
	if (s->state == SESSION_ST_WAIT && s->check_id == 0)
		return false; /* an AUTH verdict */
	return evbuffer_get_length(conn_input(s->conn)) > 0;
}

/* The client half-closed and everything it sent before is handled: the
 * rest of a message it began will not come; the session ends once its
 * replies are out. */
static void
session_end_of_input(struct session *s)
{
	session_log_lost(s);
	session_close_after_reply(s);
}

void
session_process(struct session *s)
{
	while (!guard_is_closing(&s->guard)) {
		if (s->state == SESSION_ST_WAIT ||
		    s->state == SESSION_ST_CLOSING)
			break;
		if (s->is_expired) {
			s->env->stats.rejected[ROUTER_REJECT_TIMEOUT]++;
			session_reply(s, "421 4.4.2 %s Error: session too long",
				      s->env->cfg->router.hostname);
			session_close_after_reply(s);
			break;
		}
		if (session_must_stop(s)) {
			log_info("qid=%s client=%s event=shutdown state=%s",
				 session_qid(s), s->client,
				 session_state_name(s->state));
			session_reply(s, "421 4.3.2 %s shutting down",
				      s->env->cfg->router.hostname);
			session_close_after_reply(s);
			break;
		}
		/* a client that does not read its replies waits for us (the
		 * write callback resumes: some output waits for the socket) */
		if (session_output_len(s) > SESSION_OUTPUT_MAX &&
		    !conn_flush(s->conn))
			break;
		/* asked each time: STARTTLS puts a new buffer there */
		if (!session_read(s, conn_input(s->conn))) {
			if (s->is_input_ended)
				session_end_of_input(s);
			break;
		}
	}
}

static void
session_on_read(struct conn *c, void *arg)
{
	struct session *s = arg;

	(void)c;
	guard_enter(&s->guard);
	session_process(s);
	session_leave(s);
}

static void
session_on_write(struct conn *c, void *arg)
{
	struct session *s = arg;

	(void)c;
	guard_enter(&s->guard);
	if (s->state == SESSION_ST_CLOSING)
		session_free_when_flushed(s);
	else
		session_process(s);
	session_leave(s);
}

static void
session_on_event(struct conn *c, short what, void *arg)
{
	struct session *s = arg;

	guard_enter(&s->guard);
	s->env->stats.tls_ok += (what & BEV_EVENT_CONNECTED) != 0;
	if ((what & BEV_EVENT_TIMEOUT) &&
	    ((what & BEV_EVENT_WRITING) || s->state == SESSION_ST_CLOSING)) {
		/* the client does not read: nothing more can be said */
		log_info("qid=%s client=%s event=timeout state=%s writing=1",
			 session_qid(s), s->client,
			 session_state_name(s->state));
		(void)guard_free(&s->guard);
	} else if (what & BEV_EVENT_TIMEOUT) {
		log_info("qid=%s client=%s event=timeout state=%s",
			 session_qid(s), s->client,
			 session_state_name(s->state));
		s->env->stats.rejected[ROUTER_REJECT_TIMEOUT]++;
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
			      s->env->cfg->router.hostname);
		session_close_after_reply(s);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		unsigned long e = conn_tls_error(c);

		if (e) {
			char why[256];

			ERR_error_string_n(e, why, sizeof(why));
			s->env->stats.tls_failed++;
			log_info("client=%s event=tls_failed state=%s "
				 "error=\"%s\"",
				 s->client, session_state_name(s->state), why);
			(void)guard_free(&s->guard);
		} else if ((what & BEV_EVENT_EOF) &&
			   s->state != SESSION_ST_CLOSING &&
			   session_owes_answers(s)) {
			/* a half-close: the client may still read; what it
			 * sent (a message, a pipelined group) is answered */
			s->is_input_ended = true;
			session_process(s);
		} else {
			session_log_lost(s);
			(void)guard_free(&s->guard);
		}
	}
	session_leave(s);
}

static void
session_on_lifetime(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	guard_enter(&s->guard);
	if (s->state == SESSION_ST_WAIT) {
		/* the client waits for the answer to its message: a 421 now
		 * would leave it not knowing whether the message was taken
		 * (it would send it again); answer first, then close */
		s->is_expired = true;
		log_info("qid=%s client=%s event=session_timeout "
			 "note=\"waiting for the node: 421 after its answer\"",
			 session_qid(s), s->client);
	} else if (s->state != SESSION_ST_CLOSING) {
		log_info("qid=%s client=%s event=session_timeout",
			 session_qid(s), s->client);
		s->env->stats.rejected[ROUTER_REJECT_TIMEOUT]++;
		session_reply(s, "421 4.4.2 %s Error: session too long",
			      s->env->cfg->router.hostname);
		session_close_after_reply(s);
	} else {
		/* closing for idle_timeout: its last replies cannot go */
		log_info("qid=%s client=%s event=timeout state=closing "
			 "unwritten=%zu",
			 session_qid(s), s->client, session_output_len(s));
		(void)guard_free(&s->guard);
	}
	session_leave(s);
}

/* Callbacks, input limit and timeouts of a session's connection (they
 * carry over to TLS after STARTTLS). */
static void
session_setup_conn(struct session *s)
{
	const struct config *cfg = s->env->cfg;
	struct timeval idle = { cfg->router.idle_timeout, 0 };

	conn_setcb(s->conn, session_on_read, session_on_write,
		   session_on_event, s);
	conn_set_read_max(s->conn, SESSION_INPUT_MAX);
	conn_set_timeouts(s->conn, &idle, &idle);
	conn_enable_read(s->conn, true);
}

void
session_start(struct session_env *env, const struct cfg_listen *ls, int fd,
	      const struct sockaddr *peer, int peer_len)
{
	const struct config *cfg = env->cfg;
	struct session *s = xcalloc(1, sizeof(*s));
	struct timeval life = { cfg->router.session_timeout, 0 };

	(void)peer_len;
	s->env = env;
	s->ls = ls;
	s->state = SESSION_ST_GREET;
	cidr_addr_str(peer, s->client, sizeof(s->client));
	s->is_relay_client =
		cidr_match(env->relay_nets, env->n_relay_nets, peer);
	if (!limits_connection_start(env->limits, s->client,
				     s->is_relay_client, &s->has_limit_slot)) {
		static const char busy[] = "421 4.7.0 Error: too many "
					   "connections from your address\r\n";

		/* best effort: the socket is fresh, its buffer is empty */
		if (write(fd, busy, sizeof(busy) - 1) < 0) {
			/* the client is gone already */
		}
		evutil_closesocket(fd);
		env->stats.rejected[ROUTER_REJECT_TOO_MANY_SESSIONS]++;
		log_info("client=%s event=refused reason=max_sessions_per_ip",
			 s->client);
		free(s);
		return;
	}
	snprintf(s->helo, sizeof(s->helo), "unknown");
	if (tls_listener_implicit(ls) && env->tls != NULL) {
		SSL *ssl = tls_server_ssl(env->tls);

		s->is_tls = true;
		if (ssl != NULL)
			s->conn = conn_new_tls(env->base, fd, ssl, true);
		else
			evutil_closesocket(fd);
	} else {
		s->conn = conn_new(env->base, fd);
	}
	if (s->conn == NULL) { /* fd closed */
		log_warn("client=%s event=%s error=\"out of resources\"",
			 s->client, s->is_tls ? "tls_failed" : "refused");
		if (s->has_limit_slot)
			limits_session_end(env->limits, s->client);
		free(s);
		return;
	}
	env->sessions++;
	env->stats.sessions_total++;
	s->next = env->all;
	if (env->all)
		env->all->prev = s;
	env->all = s;
	session_setup_conn(s);
	s->lifetime = evtimer_new(env->base, session_on_lifetime, s);
	evtimer_add(s->lifetime, &life);
	log_debug(LOG_SUB_SMTP, "client=%s event=connect", s->client);
	guard_enter(&s->guard); /* the greeting goes out as a callback's would */
	session_reply(s, "220 %s ESMTP Shoal", cfg->router.hostname);
	session_leave(s);
}

void
session_shutdown_all(struct session_env *env, bool is_past_deadline)
{
	struct session *s = env->all, *next;

	env->is_stopping = true;
	env->is_past_deadline = is_past_deadline;
	for (; s != NULL; s = next) {
		next = s->next;
		if (guard_is_closing(&s->guard))
			continue;
		guard_enter(&s->guard);
		session_process(s);
		session_leave(s);
	}
}
