/* SMTP server sessions: the command table, the state machine, replies and
 * the session's life cycle. The message itself (DATA, BDAT, the Received:
 * header, the hand-off to its node) is router/transfer.c's; struct session,
 * which both use, is in router/session_int.h. Untrusted input throughout:
 * every line and chunk is bounded, every error has its own reply.
 *
 * A session reads into one bufferevent input buffer with a high watermark;
 * while it waits for a node to make a message durable it stops parsing
 * (reading stops at the watermark) and resumes when the answer comes.
 * A session is freed only on the way out of a libevent callback, never in
 * the middle of processing. */
#include "router/session.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/smtp_cmd.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "router/enqueue.h"
#include "router/session_auth.h"
#include "router/session_int.h"
#include "router/limits.h"
#include "router/tls.h"
#include "router/transfer.h"

#define SESSION_INPUT_MAX (256 * 1024) /* read watermark per connection */
#define SESSION_OUTPUT_MAX (64 * 1024) /* replies queued before we stop reading */
#define SESSION_FLUSH_POLL_MS 10       /* TLS: is the last reply out yet? */
#define SESSION_FLUSH_MAX_MS 2000

#define SESSION_ST_ANY                                                       \
	(SESSION_ST_GREET | SESSION_ST_HELO | SESSION_ST_MAIL |             \
	 SESSION_ST_RCPT | SESSION_ST_BDAT)

/* RFC 2920 3.1: which commands may stand anywhere in a pipelined group. */
enum session_cmd_flag {
	CMD_PIPELINED = 1 << 0,
	CMD_LAST_IN_GROUP = 1 << 1,
};

struct session_cmd {
	enum smtp_verb verb;
	unsigned states;
	unsigned flags;
	void (*fn)(struct session *s, const struct smtp_cmd *cmd);
};

/* The message a log line is about: its qid once DATA or BDAT began, "-"
 * before (a qid is drawn only for a body). */
static const char *
session_qid(const struct session *s)
{
	return s->qid[0] ? s->qid : "-";
}

static const char *const session_state_names[] = {
	"greet", "helo", "mail", "rcpt", "data", "bdat", "wait", "closing",
	"auth",
};

static const char *
session_state_name(enum session_state st)
{
	for (unsigned i = 0; i < 8; i++)
		if (st == (1u << i))
			return session_state_names[i];
	return "?";
}

void
session_set_state(struct session *s, enum session_state st)
{
	log_debug(LOG_SUB_SMTP, "client=%s state=%s next=%s", s->client,
		  session_state_name(s->state), session_state_name(st));
	s->state = st;
}

/* The bufferevent's output, for bytes that go the slow way: a plain
 * session's bufferevent writes only once asked to (see session_setup_bev). */
static struct evbuffer *
session_bev_output(struct session *s)
{
	if (!(bufferevent_get_enabled(s->bev) & EV_WRITE))
		bufferevent_enable(s->bev, EV_WRITE);
	return bufferevent_get_output(s->bev);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = s->in_callback > 0 && s->pend != NULL ?
				       s->pend : session_bev_output(s);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* Replies not yet written: the bufferevent's and those of this callback. */
static size_t
session_output_len(struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev)) +
	       (s->pend != NULL ? evbuffer_get_length(s->pend) : 0);
}

/* Hand this callback's replies on. When the bufferevent has nothing
 * waiting, the socket is plain and the client has nothing more buffered
 * (so no write callback is needed to go on reading), write them to the
 * socket now; the rest, if any, goes through the bufferevent. */
static void
session_flush(struct session *s)
{
	struct evbuffer *out;

	if (s->pend == NULL || evbuffer_get_length(s->pend) == 0)
		return;
	out = bufferevent_get_output(s->bev);
	if (!s->is_tls && evbuffer_get_length(out) == 0 &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) == 0) {
		/* a failure leaves pend as it was; the bufferevent then
		 * meets the error and reports it */
		(void)evbuffer_write(s->pend, bufferevent_getfd(s->bev));
	}
	if (evbuffer_get_length(s->pend) > 0)
		evbuffer_add_buffer(session_bev_output(s), s->pend);
	else if (s->state == SESSION_ST_CLOSING)
		session_free_when_flushed(s);
}

/* Close after the pending output is written. */
void
session_close_after_reply(struct session *s)
{
	session_set_state(s, SESSION_ST_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	session_free_when_flushed(s);
}

/* Free once the last reply has left: for STARTTLS the TLS filter's output
 * drains into the socket's bufferevent below it first, so look there too
 * (every SESSION_FLUSH_POLL_MS, for at most SESSION_FLUSH_MAX_MS). */
void
session_free_when_flushed(struct session *s)
{
	struct bufferevent *below = bufferevent_get_underlying(s->bev);
	struct timeval tv = { 0, SESSION_FLUSH_POLL_MS * 1000 };

	if (session_output_len(s) > 0)
		return;	/* the write callback or session_flush() comes back */
	if (below == NULL ||
	    evbuffer_get_length(bufferevent_get_output(below)) == 0 ||
	    s->flush_polls++ >= SESSION_FLUSH_MAX_MS / SESSION_FLUSH_POLL_MS) {
		s->want_free = true;
		return;
	}
	evtimer_del(s->lifetime);
	evtimer_add(s->lifetime, &tv);
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
	s->in_chunk = false;
	s->bdat_discard = false;
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
	if (s->pend)
		evbuffer_free(s->pend);
	if (s->has_limit_slot)
		limits_session_end(s->env->limits, s->client);
	bufferevent_free(s->bev);
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
	if (--s->in_callback > 0)
		return;
	if (!s->want_free)
		session_flush(s);
	if (s->want_free)
		session_free(s);
}

/* ---- commands ------------------------------------------------------- */

/* RFC 5321 4.3.2: the 503 for a command out of sequence. */
const char *
session_sequence_error(const struct session *s, enum smtp_verb verb)
{
	if (s->state == SESSION_ST_GREET)
		return "503 5.5.1 Error: send HELO/EHLO first";
	switch (verb) {
	case SMTP_VERB_MAIL:
		return s->state == SESSION_ST_BDAT ?
			       "503 5.5.1 Error: BDAT transfer in progress" :
			       "503 5.5.1 Error: nested MAIL command";
	case SMTP_VERB_RCPT:
		return s->state == SESSION_ST_BDAT ?
			       "503 5.5.1 Error: BDAT transfer in progress" :
			       "503 5.5.1 Error: need MAIL command";
	case SMTP_VERB_DATA:
		if (s->state == SESSION_ST_BDAT)
			return "503 5.5.1 Error: DATA not allowed during BDAT "
			       "transfer";
		return s->state == SESSION_ST_MAIL ?
			       "503 5.5.1 Error: need RCPT command" :
			       "503 5.5.1 Error: need MAIL command";
	default:
		return "503 5.5.1 Error: bad sequence of commands";
	}
}


static bool
session_offers_starttls(const struct session *s)
{
	return !s->is_tls &&
	       tls_listener_starttls(s->ls, s->env->tls != NULL);
}

static void
session_helo(struct session *s, const struct smtp_cmd *cmd, bool esmtp)
{
	const struct config *cfg = s->env->cfg;
	size_t n = strcspn(cmd->arg, " ");

	if (n > cmd->arg_len)
		n = cmd->arg_len;
	if (n > SESSION_HELO_MAX) {
		session_reply_error(s, "501 5.5.4 Syntax: HELO/EHLO hostname "
				       "(hostname too long)");
		return;
	}
	/* the name goes into our Received: header: keep it to the
	 * characters of a domain or address literal */
	for (size_t i = 0; i < n; i++) {
		char c = cmd->arg[i];

		s->helo[i] = (isalnum((unsigned char)c) || strchr(".-_:[]", c)) ?
				     c :
				     '_';
	}
	s->helo[n] = '\0';
	s->is_esmtp = esmtp;
	session_reset_txn(s);
	session_set_state(s, SESSION_ST_HELO);
	if (!esmtp) {
		session_reply(s, "250 %s", cfg->router.hostname);
		return;
	}
	session_reply(s, "250-%s", cfg->router.hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu",
		      (unsigned long long)cfg->router.max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-SMTPUTF8");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-CHUNKING");
	if (session_offers_starttls(s))
		session_reply(s, "250-STARTTLS");
	if (session_auth_offered(s))
		session_reply(s, "250-AUTH PLAIN LOGIN");
	session_reply(s, "250 DSN");
}

static void
session_cmd_helo(struct session *s, const struct smtp_cmd *cmd)
{
	session_helo(s, cmd, false);
}

static void
session_cmd_ehlo(struct session *s, const struct smtp_cmd *cmd)
{
	session_helo(s, cmd, true);
}

static void
session_cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;
	int rc = smtp_mail_parse(cmd->arg, cmd->arg_len, &s->mail);

	if (rc != 0) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(rc, SMTP_VERB_MAIL));
		return;
	}
	if (!s->is_esmtp && (s->mail.has_size || s->mail.smtputf8 ||
			     s->mail.body != SMTP_BODY_7BIT ||
			     s->mail.ret != SMTP_RET_DEFAULT ||
			     s->mail.envid[0])) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "555 5.5.4 MAIL parameters need EHLO");
		return;
	}
	if (s->mail.body == SMTP_BODY_BINARYMIME) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "555 5.5.4 BODY=BINARYMIME is not "
				       "supported");
		return;
	}
	if (s->mail.has_size && s->mail.size > cfg->router.max_message_size) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_TOO_BIG]++;
		session_reply_error(s, "552 5.3.4 Message size exceeds fixed "
				       "limit");
		return;
	}
	if (s->ls->auth == CFG_AUTH_REQUIRED && !s->is_authed) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_AUTH_REQUIRED]++;
		session_reply_error(s, "530 5.7.0 Authentication required");
		return;
	}
	if (!limits_message(s->env->limits,
			    s->is_relay_client ? "" : s->client,
			    s->auth_user)) {
		memset(&s->mail, 0, sizeof(s->mail));
		log_info("client=%s event=rate_limited user=%s", s->client,
			 s->auth_user[0] ? s->auth_user : "-");
		s->env->stats.rejected[ROUTER_REJECT_RATE_LIMITED]++;
		session_reply(s, "451 4.7.1 Error: too many messages, slow "
				 "down");
		return;
	}
	session_set_state(s, SESSION_ST_MAIL);
	session_reply(s, "250 2.1.0 Ok");
}

/* The checked recipient joins the transaction. */
static void
session_add_rcpt(struct session *s)
{
	if (s->n_rcpts == s->cap_rcpts) {
		s->cap_rcpts = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->cap_rcpts * sizeof(*s->rcpts));
	}
	s->rcpts[s->n_rcpts++] = s->checking;
	memset(&s->checking, 0, sizeof(s->checking));
	session_set_state(s, SESSION_ST_RCPT);
	s->env->stats.rcpts++;
	session_reply(s, "250 2.1.5 Ok");
}

/* The suppression list's answer (docs/suppression.md). Anything but a
 * clear answer fails open: suppression must never lose or delay mail. */
static void
session_on_checked(int result, const struct enqueue_check_result *res,
		   void *arg)
{
	struct session *s = arg;
	struct session_rcpt *sr = &s->checking;

	s->in_callback++;
	s->check_id = 0;
	session_set_state(s, s->check_state);
	if (result != 0) {
		/* warned about in router/enqueue.c, rate-limited */
		log_debug(LOG_SUB_SMTP, "client=%s rcpt=<%s> "
			  "event=suppress_check_failed action=accept "
			  "error=\"%s\"",
			  s->client, sr->addr, shoal_strerror(result));
		session_add_rcpt(s);
	} else if (res->suppressed &&
		   s->env->cfg->suppression.mode == CFG_SUPP_REFUSE) {
		char q[LOG_QUOTE_BUF];

		log_info("client=%s rcpt=<%s> event=suppressed action=refuse "
			 "reply=%s",
			 s->client, sr->addr,
			 log_quote(q, sizeof(q), res->reply,
				   strlen(res->reply)));
		s->env->stats.rejected[ROUTER_REJECT_SUPPRESSED]++;
		/* the stored reply is printable ASCII and bounded */
		session_reply(s, "550 5.1.1 <%s>: suppressed: %.300s",
			      sr->addr, res->reply);
		free(sr->addr);
		free(sr->orcpt);
		memset(sr, 0, sizeof(*sr));
	} else {
		if (res->suppressed) {
			log_info("client=%s rcpt=<%s> event=suppressed "
				 "action=bounce", s->client, sr->addr);
			sr->suppressed_reply = xstrdup(res->reply[0] ?
						       res->reply :
						       "550 5.1.1 suppressed");
		}
		session_add_rcpt(s);
	}
	session_process(s);
	session_leave(s);
}

static void
session_cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;
	char norm[SUPPRESS_ADDR_MAX + 1];
	struct smtp_rcpt r;
	struct session_rcpt *sr;
	bool is_postmaster;
	int rc;

	rc = smtp_rcpt_parse(cmd->arg, cmd->arg_len, s->mail.smtputf8, &r);
	/* RFC 5321 4.5.1: our postmaster takes mail from anyone */
	is_postmaster =
		rc == 0 && smtp_addr_is_postmaster(&r.to, cfg->router.hostname);
	/* every other recipient is remote to us: an outsider gets the same
	 * answer for any of them, whatever shape the address has */
	if (!is_postmaster && !s->is_relay_client && !s->is_authed) {
		char q[LOG_QUOTE_BUF];

		log_info("client=%s event=relay_denied rcpt=%s", s->client,
			 log_quote(q, sizeof(q), cmd->arg, cmd->arg_len));
		s->env->stats.rejected[ROUTER_REJECT_RELAY_DENIED]++;
		session_reply_error(s, "554 5.7.1 Relay access denied");
		return;
	}
	if (rc != 0) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(rc, SMTP_VERB_RCPT));
		return;
	}
	if (!is_postmaster &&
	    (r.to.mailbox[0] == '\0' || r.to.domain[0] == '\0')) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_RECIPIENT]++;
		session_reply_error(s, "550 5.1.1 No local mailboxes here: "
				       "recipient needs a domain");
		return;
	}
	if (s->n_rcpts >= cfg->router.max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452, the client sends the rest later */
		s->env->stats.rejected[ROUTER_REJECT_TOO_MANY_RECIPIENTS]++;
		session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	sr = &s->checking;
	if (is_postmaster) {
		/* the operator's postmaster, through the normal path */
		log_info("client=%s event=postmaster rcpt=<%s> to=<%s>",
			 s->client, r.to.mailbox, cfg->router.postmaster);
		sr->addr = xstrdup(cfg->router.postmaster);
	} else {
		sr->addr = xstrdup(r.to.mailbox);
	}
	sr->notify = r.notify;
	sr->orcpt = r.orcpt[0] ? xstrdup(r.orcpt) : NULL;
	sr->suppressed_reply = NULL;
	if (cfg->suppression.enabled &&
	    suppress_addr_norm(sr->addr, strlen(sr->addr), norm) == 0) {
		/* park until the owner of the address's shard answers */
		s->check_state = s->state;
		session_set_state(s, SESSION_ST_WAIT);
		s->check_id = enqueue_check(s->env->enq, norm,
					    cfg->suppression.check_timeout_ms,
					    session_on_checked, s);
		return;
	}
	session_add_rcpt(s);
}

static void
session_cmd_rset(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reset_txn(s);
	if (s->state != SESSION_ST_GREET)
		session_set_state(s, SESSION_ST_HELO);
	session_reply(s, "250 2.0.0 Ok");
}

static void
session_cmd_noop(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "250 2.0.0 Ok");
}

static void
session_cmd_quit(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "221 2.0.0 Bye");
	session_close_after_reply(s);
}

static void
session_cmd_vrfy(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: we cannot verify, but will try delivery */
	session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept "
			 "message and attempt delivery");
}

static void
session_cmd_expn(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply_error(s, "502 5.5.1 Error: EXPN is disabled");
}

static void
session_cmd_help(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT");
	session_reply(s, "214-2.0.0 RSET NOOP QUIT VRFY HELP");
	session_reply(s, "214 2.0.0 See RFC 5321");
}

/* AUTH, and STARTTLS where it is not offered (no certificate, or a
 * listener with tls = "none"): the RFC 5321 4.2.4 reply for a command we
 * do not implement. */
static void
session_cmd_not_offered(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply_error(s, "502 5.5.1 Error: command not implemented");
}

/* Callbacks, watermark and timeouts of a session's bufferevent. */
static void session_setup_bev(struct session *s);

/* RFC 3207. Whatever the client sent after the command line is thrown
 * away before the handshake (CVE-2011-0411: commands pipelined in
 * plaintext must not run inside TLS), and the session starts over: the
 * client must say EHLO again. */
static void
session_cmd_starttls(struct session *s, const struct smtp_cmd *cmd)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tb;
	size_t junk;
	SSL *ssl;

	if (!session_offers_starttls(s) && !s->is_tls) {
		session_cmd_not_offered(s, cmd);
		return;
	}
	if (s->is_tls) {
		session_reply_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (cmd->arg_len != 0) {
		session_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	ssl = tls_server_ssl(s->env->tls);
	if (ssl == NULL) {
		session_reply(s, "454 4.7.0 TLS not available due to "
				 "temporary reason");
		return;
	}
	junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_warn("client=%s event=starttls_pipelined bytes=%zu "
			 "note=\"discarded\"",
			 s->client, junk);
		evbuffer_drain(in, junk);
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	session_flush(s);	/* in plaintext, before the filter */
	tb = bufferevent_openssl_filter_new(s->env->base, s->bev, ssl,
					    BUFFEREVENT_SSL_ACCEPTING,
					    BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		session_close_after_reply(s);
		return;
	}
	s->bev = tb;
	s->is_tls = true;
	session_setup_bev(s);
	/* RFC 3207 4.2: forget everything the client said before */
	s->is_esmtp = false;
	s->is_authed = false;
	s->auth_user[0] = '\0';
	snprintf(s->helo, sizeof(s->helo), "unknown");
	session_reset_txn(s);
	session_set_state(s, SESSION_ST_GREET);
	log_debug(LOG_SUB_SMTP, "client=%s event=starttls", s->client);
}

static const struct session_cmd session_cmds[] = {
	{ SMTP_VERB_HELO, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_helo },
	{ SMTP_VERB_EHLO, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_ehlo },
	{ SMTP_VERB_MAIL, SESSION_ST_HELO, CMD_PIPELINED, session_cmd_mail },
	{ SMTP_VERB_RCPT, SESSION_ST_MAIL | SESSION_ST_RCPT, CMD_PIPELINED,
	  session_cmd_rcpt },
	{ SMTP_VERB_DATA, SESSION_ST_RCPT, CMD_LAST_IN_GROUP, transfer_cmd_data },
	{ SMTP_VERB_BDAT, SESSION_ST_ANY, CMD_PIPELINED, transfer_cmd_bdat },
	{ SMTP_VERB_RSET, SESSION_ST_ANY, CMD_PIPELINED, session_cmd_rset },
	{ SMTP_VERB_NOOP, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_noop },
	{ SMTP_VERB_QUIT, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_quit },
	{ SMTP_VERB_VRFY, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_vrfy },
	{ SMTP_VERB_EXPN, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_expn },
	{ SMTP_VERB_HELP, SESSION_ST_ANY, CMD_LAST_IN_GROUP, session_cmd_help },
	{ SMTP_VERB_STARTTLS, SESSION_ST_GREET | SESSION_ST_HELO,
	  CMD_LAST_IN_GROUP, session_cmd_starttls },
	{ SMTP_VERB_AUTH, SESSION_ST_HELO, CMD_LAST_IN_GROUP,
	  session_cmd_auth },
};

static void
session_dispatch(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	int rc = smtp_cmd_parse(line, len, &cmd);
	const struct session_cmd *c = NULL;

	if (rc != 0) {
		/* a BDAT we cannot parse loses framing: handled there */
		if (cmd.verb == SMTP_VERB_BDAT && rc != SMTP_CMD_E_NUL &&
		    rc != SMTP_CMD_E_8BIT) {
			cmd.arg = "";
			cmd.arg_len = 0;
			transfer_cmd_bdat(s, &cmd);
			return;
		}
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(rc, cmd.verb));
		return;
	}
	for (size_t i = 0; i < sizeof(session_cmds) / sizeof(*session_cmds); i++)
		if (session_cmds[i].verb == cmd.verb)
			c = &session_cmds[i];
	if (c == NULL) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(SMTP_CMD_E_UNKNOWN,
							 cmd.verb));
		return;
	}
	if (!(s->state & c->states)) {
		/* BDAT in the wrong state still has a chunk to swallow */
		if (cmd.verb == SMTP_VERB_BDAT) {
			transfer_cmd_bdat(s, &cmd);
			s->bdat_discard = true;
			return;
		}
		if (s->state == SESSION_ST_BDAT &&
		    (cmd.verb == SMTP_VERB_HELO || cmd.verb == SMTP_VERB_EHLO)) {
			session_reply_error(s, "503 5.5.1 Error: BDAT transfer "
					       "in progress");
			return;
		}
		s->env->stats.rejected[ROUTER_REJECT_BAD_SEQUENCE]++;
		session_reply_error(s, session_sequence_error(s, cmd.verb));
		return;
	}
	c->fn(s, &cmd);
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
			session_reply_error(s, "500 5.5.2 Error: line too long");
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

/* Shutting down: whether this session is to get its 421 now. A message
 * being made durable always gets its answer first. */
static bool
session_must_stop(const struct session *s)
{
	const struct session_env *env = s->env;

	if (!env->is_stopping || (s->state & SESSION_ST_WAIT))
		return false;
	if (env->is_past_deadline)
		return true;
	return (s->state & (SESSION_ST_GREET | SESSION_ST_HELO)) &&
	       !s->in_chunk;
}

void
session_process(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (!s->want_free) {
		if (s->state & (SESSION_ST_WAIT | SESSION_ST_CLOSING))
			break;
		if (session_must_stop(s)) {
			log_info("qid=%s client=%s event=shutdown state=%s",
				 session_qid(s), s->client,
				 session_state_name(s->state));
			session_reply(s, "421 4.3.2 %s shutting down",
				      s->env->cfg->router.hostname);
			session_close_after_reply(s);
			break;
		}
		/* a client that does not read its replies waits for us */
		if (session_output_len(s) > SESSION_OUTPUT_MAX)
			break;
		if (s->state == SESSION_ST_DATA) {
			if (!transfer_read_data(s, in))
				break;
			continue;
		}
		if (s->in_chunk) {
			if (!transfer_read_chunk(s, in))
				break;
			continue;
		}
		if (s->state == SESSION_ST_AUTH) {
			if (!session_auth_read(s, in))
				break;
			continue;
		}
		if (!session_read_command(s, in))
			break;
	}
}

static void
session_on_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	s->in_callback++;
	session_process(s);
	session_leave(s);
}

static void
session_on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	s->in_callback++;
	if (s->state == SESSION_ST_CLOSING)
		session_free_when_flushed(s);
	else
		session_process(s);
	session_leave(s);
}

static void
session_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	s->in_callback++;
	s->env->stats.tls_ok += (what & BEV_EVENT_CONNECTED) != 0;
	if ((what & BEV_EVENT_TIMEOUT) &&
	    ((what & BEV_EVENT_WRITING) || s->state == SESSION_ST_CLOSING)) {
		/* the client does not read: nothing more can be said */
		log_info("qid=%s client=%s event=timeout state=%s writing=1",
			 session_qid(s), s->client,
			 session_state_name(s->state));
		s->want_free = true;
	} else if (what & BEV_EVENT_TIMEOUT) {
		log_info("qid=%s client=%s event=timeout state=%s",
			 session_qid(s), s->client,
			 session_state_name(s->state));
		s->env->stats.rejected[ROUTER_REJECT_TIMEOUT]++;
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
			      s->env->cfg->router.hostname);
		session_close_after_reply(s);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		unsigned long e = s->is_tls ? bufferevent_get_openssl_error(bev) :
					      0;

		if (e) {
			char why[256];

			ERR_error_string_n(e, why, sizeof(why));
			s->env->stats.tls_failed++;
			log_info("client=%s event=tls_failed state=%s "
				 "error=\"%s\"",
				 s->client, session_state_name(s->state), why);
		} else if (s->state & (SESSION_ST_DATA | SESSION_ST_BDAT |
					SESSION_ST_WAIT)) {
			log_info("qid=%s client=%s event=lost_connection "
				 "state=%s",
				 session_qid(s), s->client,
				 session_state_name(s->state));
		}
		s->want_free = true;
	}
	session_leave(s);
}

static void
session_on_lifetime(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	s->in_callback++;
	if (s->state != SESSION_ST_CLOSING) {
		log_info("qid=%s client=%s event=session_timeout",
			 session_qid(s), s->client);
		s->env->stats.rejected[ROUTER_REJECT_TIMEOUT]++;
		session_reply(s, "421 4.4.2 %s Error: session too long",
			      s->env->cfg->router.hostname);
		session_close_after_reply(s);
	} else {
		session_free_when_flushed(s);
	}
	session_leave(s);
}

static void
session_setup_bev(struct session *s)
{
	const struct config *cfg = s->env->cfg;
	struct timeval idle = { cfg->router.idle_timeout, 0 };

	bufferevent_setcb(s->bev, session_on_read, session_on_write,
			  session_on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_MAX);
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	if (s->is_tls)	/* a client that just closes is an EOF, not an error */
		bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	/* A plain session writes its replies to the socket itself
	 * (session_flush); enabling EV_WRITE here would add a write event,
	 * wake up to an empty buffer and remove it again for every
	 * connection. session_bev_output() enables it when a reply has to
	 * wait for the socket. */
	bufferevent_enable(s->bev, s->is_tls ? EV_READ | EV_WRITE : EV_READ);
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
	s->is_relay_client = cidr_match(env->relay_nets, env->n_relay_nets, peer);
	/* clients in relay_networks (the senders behind the balancer) are
	 * not limited per address, like Postfix's mynetworks */
	if (!s->is_relay_client &&
	    !limits_session_start(env->limits, s->client)) {
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
	s->has_limit_slot = !s->is_relay_client;
	snprintf(s->helo, sizeof(s->helo), "unknown");
	if (tls_listener_implicit(ls) && env->tls != NULL) {
		SSL *ssl = tls_server_ssl(env->tls);

		s->bev = ssl ? bufferevent_openssl_socket_new(
				       env->base, fd, ssl,
				       BUFFEREVENT_SSL_ACCEPTING,
				       BEV_OPT_CLOSE_ON_FREE) :
			       NULL;
		s->is_tls = true;
		if (s->bev == NULL) {
			SSL_free(ssl);
			evutil_closesocket(fd);
			free(s);
			log_warn("client=%s event=tls_failed error=\"no SSL\"",
				 "-");
			return;
		}
	} else {
		s->bev = bufferevent_socket_new(env->base, fd,
						BEV_OPT_CLOSE_ON_FREE);
	}
	SHOAL_ASSERT(s->bev != NULL);
	env->sessions++;
	env->stats.sessions_total++;
	s->next = env->all;
	if (env->all)
		env->all->prev = s;
	env->all = s;
	session_setup_bev(s);
	s->lifetime = evtimer_new(env->base, session_on_lifetime, s);
	evtimer_add(s->lifetime, &life);
	s->pend = evbuffer_new();	/* NULL: replies go the slow way */
	log_debug(LOG_SUB_SMTP, "client=%s event=connect", s->client);
	s->in_callback++;	/* the greeting goes out as a callback's would */
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
		if (s->want_free)
			continue;
		s->in_callback++;
		session_process(s);
		session_leave(s);
	}
}
