/* The SMTP client's connection (see smtpc.h; smtpc_impl.h maps the three
 * files). Owns the life cycle (open, close with a polite QUIT, the owner's
 * context holding those still saying it), the per-state timeouts (RFC 5321
 * 4.5.3.2), reading replies and handing each complete one to the file that
 * owns the state, writing (commands of one read callback go out together),
 * calling the caller back and failing. Leaves the session before messages
 * to smtpc_session.c and messages to smtpc_msg.c.
 *
 * Callbacks into the caller go through smtpc_call_*(), inside a guard
 * (lib/guard.h): when the caller closes the connection from inside the
 * callback, the reading loop stops touching it and the outermost callback
 * frees it on the way out.
 * Handles untrusted input: reply lines, bounded by SMTPC_LINE_MAX and
 * parsed by smtpc_proto.c. */
#include "node/delivery/smtpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/guard.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/smtpc_impl.h"
#include "node/delivery/smtpc_proto.h"

#define SMTPC_LINE_MAX 2048       /* a longer reply line: protocol error */
#define SMTPC_QUIT_WAIT_S 10      /* after smtpc_close(): wait for 221 */

/* Seconds per state, RFC 5321 4.5.3.2 (connect and TLS after Postfix). */
const struct smtpc_state_info smtpc_states[ST_COUNT] = {
	[ST_CONNECT] = { "connect", 30, SMTPC_PH_CONNECT },
	[ST_GREETING] = { "greeting", 300, SMTPC_PH_GREETING },
	[ST_EHLO] = { "EHLO", 300, SMTPC_PH_EHLO },
	[ST_HELO] = { "HELO", 300, SMTPC_PH_EHLO },
	[ST_STARTTLS] = { "STARTTLS", 300, SMTPC_PH_TLS },
	[ST_HANDSHAKE] = { "TLS handshake", 300, SMTPC_PH_TLS },
	[ST_READY] = { "idle", 0, SMTPC_PH_QUIT },
	[ST_PLAN] = { "MAIL", 300, SMTPC_PH_MAIL },
	[ST_DOT] = { "end of data", 600, SMTPC_PH_DOT },
	[ST_QUIT] = { "QUIT", SMTPC_QUIT_WAIT_S, SMTPC_PH_QUIT },
	[ST_DEAD] = { "closed", 0, SMTPC_PH_QUIT },
};

static void smtpc_addr_text(const struct sockaddr *sa, char *out,
			    size_t outlen);

static void smtpc_free(struct smtpc *c);

struct timeval
smtpc_tv(const struct smtpc *c, int seconds)
{
	uint64_t ms = (uint64_t)seconds * 1000 * c->scale_pct / 100;
	struct timeval tv;

	if (ms == 0)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return tv;
}

void
smtpc_arm(struct smtpc *c, int seconds)
{
	struct timeval tv;

	if (seconds <= 0) {
		evtimer_del(c->timer);
		return;
	}
	tv = smtpc_tv(c, seconds);
	evtimer_add(c->timer, &tv);
}

void
smtpc_enter(struct smtpc *c, enum smtpc_state st)
{
	c->state = st;
	smtpc_arm(c, smtpc_states[st].timeout_s);
}

void
smtpc_local(struct smtpc_reply *r, int code, const char *enhanced,
	    const char *fmt, const char *arg)
{
	memset(r, 0, sizeof(*r));
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	snprintf(r->text, sizeof(r->text), fmt, arg);
}

/* --- calling back, safely ---------------------------------------------- */

/* After a callback: false when the caller closed the connection inside
 * it, and the caller of this function must return at once. */
static bool
smtpc_after_cb(struct smtpc *c)
{
	if (guard_leave(&c->guard)) {
		smtpc_free(c); /* smtpc_close() inside the callback */
		return false;
	}
	return !guard_is_closing(&c->guard);
}

bool
smtpc_call_ready(struct smtpc *c, bool ok, enum smtpc_phase phase,
		 const struct smtpc_reply *r)
{
	if (guard_is_closing(&c->guard) || c->ready == NULL)
		return !guard_is_closing(&c->guard);
	smtpc_ready_fn fn = c->ready;

	c->ready = NULL;
	guard_enter(&c->guard);
	fn(c, ok, phase, r, c->ready_arg);
	return smtpc_after_cb(c);
}

bool
smtpc_call_done(struct smtpc *c)
{
	smtpc_done_fn fn = c->done;
	struct smtpc_result res = c->res;
	bool ok;

	/* the callback may send the next message, which starts a new
	 * result: this one is handed over and freed here */
	c->done = NULL;
	c->res.rcpt = NULL;
	c->res.n_rcpts = 0;
	memset(&c->msg, 0, sizeof(c->msg));
	if (c->state == ST_PLAN || c->state == ST_DOT)
		smtpc_enter(c, ST_READY);
	if (guard_is_closing(&c->guard) || fn == NULL) {
		free(res.rcpt);
		return !guard_is_closing(&c->guard);
	}
	guard_enter(&c->guard);
	fn(c, &res, c->done_arg);
	ok = smtpc_after_cb(c);
	free(res.rcpt);
	return ok;
}

/* --- failing ------------------------------------------------------------ */

/* The connection is finished. Before ready: ready(false). During a message:
 * every recipient without a final reply gets r, and done(). */
bool
smtpc_fail(struct smtpc *c, enum smtpc_phase phase,
	   const struct smtpc_reply *r)
{
	enum smtpc_state was = c->state;

	c->state = ST_DEAD;
	evtimer_del(c->timer);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->ready)
		return smtpc_call_ready(c, false, phase, r);
	if (c->done && (was == ST_PLAN || was == ST_DOT)) {
		c->res.conn_lost = true;
		if (c->res.failed_phase == SMTPC_PH_MAIL &&
		    c->res.msg_reply.code != 0)
			return smtpc_call_done(c); /* MAIL's refusal stands */
		for (size_t k = 0; k < c->res.n_rcpts; k++)
			if (c->rcpt_ok[k] || c->res.rcpt[k].code == 0)
				c->res.rcpt[k] = *r;
		c->res.msg_reply = *r;
		c->res.failed_phase = phase;
		return smtpc_call_done(c);
	}
	return !guard_is_closing(&c->guard);
}

bool
smtpc_fail_local(struct smtpc *c, const char *what)
{
	struct smtpc_reply r;
	enum smtpc_phase ph = smtpc_states[c->state].phase;

	if (c->state == ST_PLAN && c->plan_pos < c->plan_len) {
		switch (c->plan[c->plan_pos]) {
		case PLAN_RSET:
		case PLAN_MAIL:
			ph = SMTPC_PH_MAIL;
			break;
		case PLAN_RCPT:
			ph = SMTPC_PH_RCPT;
			break;
		case PLAN_DATA:
			ph = SMTPC_PH_DATA;
			break;
		}
	}
	smtpc_local(&r, 0, "4.4.2", "%s", what);
	log_debug(LOG_SUB_SMTP, "mx=%s ip=%s event=conn_failed state=%s error=\"%s\"",
		  c->info.mx_name, c->info.peer_ip, smtpc_states[c->state].name,
		  what);
	return smtpc_fail(c, ph, &r);
}

static void
smtpc_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *c = arg;
	char why[96];

	(void)fd;
	(void)what;
	if (c->state == ST_QUIT || (guard_is_closing(&c->guard) &&
				    !guard_is_held(&c->guard))) {
		smtpc_free(c);
		return;
	}
	snprintf(why, sizeof(why), "timeout after %s",
		 smtpc_states[c->state].name);
	if (c->state == ST_CONNECT) {
		struct smtpc_reply r;

		smtpc_local(&r, 0, "4.4.1", "%s", "connection timed out");
		smtpc_fail(c, SMTPC_PH_CONNECT, &r);
		return;
	}
	smtpc_fail_local(c, why);
}

/* Deferred callbacks: a failure found inside smtpc_open() or a result
 * decided inside smtpc_send(). */
static void
smtpc_on_later(evutil_socket_t fd, short what, void *arg)
{
	struct smtpc *c = arg;

	(void)fd;
	(void)what;
	if (c->ready_pending) {
		struct smtpc_reply r = c->fail_reply;

		c->ready_pending = false;
		c->state = ST_DEAD;
		smtpc_call_ready(c, false, c->fail_phase, &r);
		return;
	}
	if (c->done_pending) {
		c->done_pending = false;
		smtpc_call_done(c);
	}
}

/* --- writing ------------------------------------------------------------ */

/* Where output goes now: pend while batching, else the bufferevent (with
 * anything still in pend moved there first, to keep the order). */
struct evbuffer *
smtpc_out(struct smtpc *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->batching && !guard_is_closing(&c->guard) &&
	    c->state != ST_DEAD && bufferevent_get_underlying(c->bev) == NULL)
		return c->pend;
	if (c->pend != NULL && evbuffer_get_length(c->pend) > 0)
		evbuffer_add_buffer(out, c->pend);
	return out;
}

/* Bytes handed to us and not yet written to the socket. */
size_t
smtpc_unsent(struct smtpc *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) +
	       (c->pend != NULL ? evbuffer_get_length(c->pend) : 0);
}

bool
smtpc_may_batch(const struct smtpc *c)
{
	return c->pend != NULL && !c->batching &&
	       bufferevent_get_underlying(c->bev) == NULL;
}


/* End of batching: write pend to the socket now if nothing is queued
 * before it; what the socket does not take goes through the bufferevent
 * (its write timeout and smtpc_on_write included). */
void
smtpc_flush(struct smtpc *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->batching = false;
	if (c->pend == NULL || evbuffer_get_length(c->pend) == 0)
		return;
	if (evbuffer_get_length(out) == 0 &&
	    bufferevent_get_underlying(c->bev) == NULL) {
		/* a failure leaves pend as it was: the bufferevent then
		 * meets the error and reports it */
		(void)evbuffer_write(c->pend, bufferevent_getfd(c->bev));
	}
	if (evbuffer_get_length(c->pend) > 0)
		evbuffer_add_buffer(out, c->pend);
	else
		smtpc_on_write(c->bev, c); /* all out, as if it had drained */
}

void
smtpc_write(struct smtpc *c, const char *line)
{
	evbuffer_add_printf(smtpc_out(c), "%s\r\n", line);
}

/* --- reading replies ---------------------------------------------------- */

static bool smtpc_on_reply(struct smtpc *c);

void
smtpc_on_read(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	/* the commands these replies call for go out together at the end
	 * (every early return below leaves c closing, dead or freed, or
	 * switching to TLS, which flushed) */
	if (smtpc_may_batch(c))
		c->batching = true;
	while (c->state != ST_DEAD) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		int rc;

		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTPC_LINE_MAX) {
				smtpc_fail_local(c, "reply line too long");
				return;
			}
			smtpc_flush(c);
			return;
		}
		if (n > SMTPC_LINE_MAX) {
			free(line);
			smtpc_fail_local(c, "reply line too long");
			return;
		}
		if (c->state == ST_READY || c->state == ST_CONNECT ||
		    c->state == ST_HANDSHAKE) {
			/* nothing asked: a server speaking out of turn (421
			 * before closing, or garbage) makes the link unusable */
			free(line);
			smtpc_fail_local(c, "unexpected reply while idle");
			return;
		}
		if (c->state == ST_EHLO && c->cur.lines > 0 && n > 4)
			smtpc_proto_ehlo_keyword(&c->info, line + 4, n - 4);
		rc = smtpc_proto_reply_line(&c->cur, line, n);
		free(line);
		if (rc < 0) {
			smtpc_fail_local(c, "malformed reply");
			return;
		}
		if (rc > 0)
			continue;
		if (!smtpc_on_reply(c))
			return;
	}
}

/* The output buffer drained. In ST_DOT the whole body is out: now the
 * server has its 10 minutes to answer. */
void
smtpc_on_write(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;

	(void)bev;
	if (c->state == ST_DOT && !evtimer_pending(c->timer, NULL)) {
		bufferevent_set_timeouts(c->bev, NULL, NULL);
		smtpc_arm(c, smtpc_states[ST_DOT].timeout_s);
	}
}

/* A complete reply arrived; false when the connection may be gone. */
static bool
smtpc_on_reply(struct smtpc *c)
{
	switch (c->state) {
	case ST_GREETING:
	case ST_EHLO:
	case ST_HELO:
	case ST_STARTTLS:
		if (c->state == ST_EHLO && c->cur.reply.code / 100 == 2)
			c->info.esmtp = true;
		return smtpc_session_on_reply(c);
	case ST_PLAN:
		return smtpc_msg_on_plan_reply(c);
	case ST_DOT:
		return smtpc_msg_on_dot_reply(c);
	case ST_QUIT:
		smtpc_free(c);
		return false;
	default:
		return smtpc_fail_local(c, "reply in an unexpected state");
	}
}

/* --- connection events ---------------------------------------------------- */

/* A connect error that says the source address, not the server, is at
 * fault: not ours any more, no route from it, or its ports used up. */
static bool
smtpc_is_source_errno(int e)
{
	return e == EADDRNOTAVAIL || e == EADDRINUSE || e == ENETUNREACH;
}

void
smtpc_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpc *c = arg;
	char why[160];

	(void)bev;
	if (c->state == ST_QUIT) {
		smtpc_free(c);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == ST_CONNECT) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			/* our end, for TLS reports (sending-mta-ip) */
			if (getsockname(bufferevent_getfd(c->bev),
					(struct sockaddr *)&ss, &sl) == 0)
				smtpc_addr_text((struct sockaddr *)&ss,
						c->info.local_ip,
						sizeof(c->info.local_ip));
			smtpc_enter(c, ST_GREETING);
			return;
		}
		if (c->state == ST_HANDSHAKE) {
			smtpc_session_tls_up(c);
			return;
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		smtpc_fail_local(c, "timeout while sending the message");
		return;
	}
	if (c->state == ST_CONNECT) {
		struct smtpc_reply r;
		int e = EVUTIL_SOCKET_ERROR();

		smtpc_local(&r, 0, "4.4.1", "connect: %s",
			    e ? evutil_socket_error_to_string(e) :
				"connection refused");
		c->info.source_failed = c->info.source_ip[0] &&
					smtpc_is_source_errno(e);
		smtpc_fail(c, SMTPC_PH_CONNECT, &r);
		return;
	}
	if (c->state == ST_HANDSHAKE) {
		unsigned long e = bufferevent_get_openssl_error(c->bev);
		char ebuf[120] = "handshake failed";
		struct smtpc_reply r;

		if (e)
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
		smtpc_tls_handshake_failed(c, ebuf, &r);
		smtpc_fail(c, SMTPC_PH_TLS, &r);
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed by server in %s",
			 smtpc_states[c->state].name);
	else
		snprintf(why, sizeof(why), "connection lost in %s",
			 smtpc_states[c->state].name);
	if (c->state == ST_READY) {
		/* an idle connection the server dropped: not a failure of
		 * any message; it just cannot be used any more */
		c->state = ST_DEAD;
		evtimer_del(c->timer);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	smtpc_fail_local(c, why);
}

/* --- life cycle ----------------------------------------------------------- */

static void
smtpc_addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
			  out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  out, (socklen_t)outlen);
}

struct smtpc *
smtpc_open(struct smtpc_ctx *x, const struct smtpc_opts *o,
	   smtpc_ready_fn ready, void *arg)
{
	struct event_base *base = x->base;
	struct smtpc *c;
	evutil_socket_t fd;
	socklen_t alen = o->addr->sa_family == AF_INET6 ?
				 sizeof(struct sockaddr_in6) :
				 sizeof(struct sockaddr_in);

	fd = socket(o->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
						SOCK_CLOEXEC,
		    0);
	if (fd < 0) {
		log_warn_errno("smtpc: socket");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->x = x;
	c->base = base;
	c->ready = ready;
	c->ready_arg = arg;
	c->tls = o->tls;
	c->ssl_ctx = o->ssl_ctx;
	c->tls_wanted = o->ssl_ctx != NULL && o->tls != SMTPC_TLS_NONE;
	c->scale_pct = o->timeout_scale_pct ? o->timeout_scale_pct : 100;
	snprintf(c->helo, sizeof(c->helo), "%s",
		 o->helo_name && o->helo_name[0] ? o->helo_name : "localhost");
	snprintf(c->info.mx_name, sizeof(c->info.mx_name), "%s",
		 o->mx_name ? o->mx_name : "");
	smtpc_tls_init(c, o);
	smtpc_addr_text(o->addr, c->info.peer_ip, sizeof(c->info.peer_ip));
	c->timer = evtimer_new(base, smtpc_on_timer, c);
	c->later = event_new(base, -1, 0, smtpc_on_later, c);
	c->pend = evbuffer_new(); /* NULL: output takes the slow way */
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->timer == NULL || c->later == NULL || c->bev == NULL) {
		if (c->bev == NULL)
			evutil_closesocket(fd);
		smtpc_free(c);
		log_warn("smtpc: out of event resources");
		return NULL;
	}
	bufferevent_setcb(c->bev, smtpc_on_read, smtpc_on_write, smtpc_on_event,
			  c);
	if (o->source)
		smtpc_addr_text(o->source, c->info.source_ip,
				sizeof(c->info.source_ip));
	if (o->source && bind(fd, o->source,
			      o->source->sa_family == AF_INET6 ?
				      sizeof(struct sockaddr_in6) :
				      sizeof(struct sockaddr_in)) != 0) {
		char why[128];

		snprintf(why, sizeof(why), "%s: %s", c->info.source_ip,
			 strerror(errno));
		smtpc_local(&c->fail_reply, 0, "4.4.1", "bind source %s", why);
		c->info.source_failed = true;
		c->fail_phase = SMTPC_PH_CONNECT;
		c->ready_pending = true;
		event_active(c->later, EV_TIMEOUT, 0);
		return c;
	}
	smtpc_enter(c, ST_CONNECT);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, o->addr, (int)alen) != 0) {
		smtpc_local(&c->fail_reply, 0, "4.4.1", "connect: %s",
			    strerror(errno ? errno : ECONNREFUSED));
		c->info.source_failed = o->source && smtpc_is_source_errno(errno);
		c->fail_phase = SMTPC_PH_CONNECT;
		c->ready_pending = true;
		event_active(c->later, EV_TIMEOUT, 0);
	}
	return c;
}

int
smtpc_send(struct smtpc *c, const struct smtpc_msg *m, smtpc_done_fn done,
	   void *arg)
{
	if (c->done != NULL || c->done_pending)
		return -EBUSY;
	if (c->state != ST_READY || guard_is_closing(&c->guard))
		return -ENOTCONN;
	smtpc_msg_start(c, m, done, arg);
	return 0;
}

const struct smtpc_info *
smtpc_info(const struct smtpc *c)
{
	return &c->info;
}

bool
smtpc_is_usable(const struct smtpc *c)
{
	return !guard_is_closing(&c->guard) && c->state == ST_READY;
}

static void
smtpc_free(struct smtpc *c)
{
	if (c->qprev) {
		*c->qprev = c->qnext;
		if (c->qnext)
			c->qnext->qprev = c->qprev;
	}
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->timer)
		event_free(c->timer);
	if (c->later)
		event_free(c->later);
	if (c->pend)
		evbuffer_free(c->pend);
	free(c->res.rcpt);
	free(c->plan);
	free(c->rcpt_ok);
	free(c->tlsa);
	free(c);
}

void
smtpc_close(struct smtpc *c)
{
	if (c == NULL || guard_is_closing(&c->guard))
		return;
	if (c->later)
		event_del(c->later);
	c->ready_pending = c->done_pending = false;
	if (c->state == ST_DEAD && c->quit_on_close) {
		/* the certificate failed its check over a working TLS
		 * session: nothing but QUIT goes over it */
		c->quit_on_close = false;
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		c->state = ST_READY;
	}
	if (c->state == ST_READY) {
		/* polite QUIT; freed on its reply, on EOF or after a while */
		guard_close(&c->guard);
		smtpc_write(c, "QUIT");
		smtpc_enter(c, ST_QUIT);
		c->qnext = c->x->quitting;
		if (c->qnext)
			c->qnext->qprev = &c->qnext;
		c->qprev = &c->x->quitting;
		c->x->quitting = c;
		return;
	}
	if (!guard_free(&c->guard)) {
		/* inside one of its callbacks: freed on their way out */
		c->state = ST_DEAD;
		evtimer_del(c->timer);
		if (c->bev)
			bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	smtpc_free(c);
}

struct smtpc_ctx *
smtpc_ctx_new(struct event_base *base)
{
	struct smtpc_ctx *x = xcalloc(1, sizeof(*x));

	x->base = base;
	return x;
}

void
smtpc_ctx_free(struct smtpc_ctx *x)
{
	if (x == NULL)
		return;
	while (x->quitting)
		smtpc_free(x->quitting);
	free(x);
}
