/* The router's HTTP API server (see http.h): libmicrohttpd daemons without
 * listening sockets of their own (router/listener.c accepts), polled
 * through their epoll descriptor on the router's libevent loop; one for
 * plain HTTP and one for TLS, each made only when a listener needs it.
 *
 * A request is judged when its headers are in, before any of its body is
 * read: the route (404, 405), its framing (two Content-Lengths, both
 * Content-Length and Transfer-Encoding, a coding we do not take, no Host:
 * refused, so that nothing behind a proxy can read it differently), the
 * bound of its body (413) and who asks (router/http_inject.c: the relay
 * rule and the password check). Only then is the body read, and the
 * request handed to its handler, which answers now or later (the
 * connection waits suspended meanwhile).
 *
 * Bounds: headers live in a connection's memory pool (HTTP_CONN_MEMORY),
 * a body may be twice router.max_message_size plus HTTP_BODY_SLACK (JSON
 * escapes the message it carries; only inject takes one), bodies and the
 * messages built from them count toward one bound for all requests
 * (http_held_max()), a connection idles at most
 * router.idle_timeout, the head of each request must be in within
 * HTTP_HEAD_MAX_S of the connection or the previous answer (a client
 * trickling headers holds no slot for long), and connections count
 * toward router.max_sessions and router.max_sessions_per_ip like SMTP
 * sessions. A sweep each second enforces the head deadline and closes a
 * connection whose client hung up in the middle of its body. */
#include "router/http.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/cidr.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/workq.h"
#include "lib/xmalloc.h"
#include "router/http_int.h"
#include "router/limits.h"
#include "router/session.h"

#define HTTP_CONN_MEMORY (64u * 1024) /* request line and headers */
#define HTTP_BODY_SLACK (64u * 1024)
#define HTTP_PEM_MAX (1u << 20)
#define HTTP_HEAD_MAX_S 10            /* or router.idle_timeout if less */
#define HTTP_SWEEP_MS 1000
/* Workers that read requests (parse, build, sign): few, below the loop. */
#define HTTP_WORKERS 2
#define HTTP_WORK_QUEUED 256
#define HTTP_WORK_NICE 5
/* Messages held at once, all requests together: this many times
 * router.max_message_size, and at least HTTP_HELD_MIN. */
#define HTTP_HELD_FACTOR 8
#define HTTP_HELD_MIN (64ull << 20)

enum {
	HTTP_ROUTE_NONE = 0, /* 404 */
	HTTP_ROUTE_HEALTH,
	HTTP_ROUTE_INJECT,
	HTTP_ROUTE_METHOD, /* a known path, a method it does not take */
};

struct http_daemon {
	struct http_server *h;
	struct MHD_Daemon *mhd;
	struct event *ready;   /* the epoll descriptor is readable */
	struct event *timer;   /* MHD_get_timeout() */
	struct event *kick;    /* run soon: a connection added or resumed */
};

struct http_server {
	struct session_env *env;
	struct http_daemon plain, tls;
	struct workq *wq;           /* reads requests off the loop */
	struct event *sweep;
	struct http_conn *adding;   /* being added: NOTIFY_STARTED takes it */
	struct http_conn *conns;    /* every open connection */
	struct http_req *reqs;      /* every open request */
	unsigned n_conns, busy;
	size_t body_max;
	uint64_t head_max_ms;
	_Atomic uint64_t held;      /* see http_held() */
	uint64_t held_max;
	bool is_stopping;
};

struct session_env *
http_env(struct http_server *h)
{
	return h->env;
}

struct workq *
http_workq(struct http_server *h)
{
	return h->wq;
}

bool
http_is_stopping(const struct http_server *h)
{
	return h->is_stopping;
}

_Atomic uint64_t *
http_held(struct http_server *h)
{
	return &h->held;
}

uint64_t
http_held_max(const struct http_server *h)
{
	return h->held_max;
}

unsigned
http_server_conns(const struct http_server *h)
{
	return h ? h->n_conns : 0;
}

unsigned
http_server_busy(const struct http_server *h)
{
	return h ? h->busy : 0;
}

/* ---- the daemons on the event loop ---------------------------------- */

static void
http_run(struct http_daemon *d)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(d->mhd);
	if (MHD_get_timeout(d->mhd, &ms) == MHD_YES) {
		struct timeval tv = { (time_t)(ms / 1000),
				      (suseconds_t)(ms % 1000) * 1000 };

		evtimer_add(d->timer, &tv);
	} else {
		evtimer_del(d->timer);
	}
}

static void
http_on_ready(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_run(arg);
}

static void
http_kick(struct http_daemon *d)
{
	event_active(d->kick, EV_TIMEOUT, 0);
}

static struct http_daemon *
http_daemon_of(struct http_req *r)
{
	return r->conn->is_tls ? &r->h->tls : &r->h->plain;
}

static void
http_resume(struct http_req *r)
{
	if (!r->is_suspended)
		return;
	r->is_suspended = false;
	MHD_resume_connection(r->c);
	http_kick(http_daemon_of(r));
}

/* ---- answers -------------------------------------------------------- */

void
http_answer(struct http_req *r, unsigned code, char *json)
{
	free(r->reply);
	r->code = code;
	r->reply = json;
	r->is_waiting = false;
	http_resume(r);
}

void
http_answer_error(struct http_req *r, unsigned code, const char *field,
		  const char *message)
{
	json_t *o = json_pack("{s:s}", "error", message);

	if (field)
		json_object_set_new(o, "field", json_string(field));
	http_answer(r, code, json_dumps(o, JSON_COMPACT));
	json_decref(o);
}

void
http_wait(struct http_req *r)
{
	r->is_waiting = true;
}

void
http_go_on(struct http_req *r)
{
	r->is_waiting = false;
	http_resume(r);
}

void
http_set_busy(struct http_req *r, bool on)
{
	if (on == r->is_busy)
		return;
	r->is_busy = on;
	if (on) {
		r->h->busy++;
		return;
	}
	r->h->busy--;
	if (r->h->is_stopping && r->h->busy == 0 && r->h->env->on_close)
		r->h->env->on_close(r->h->env->on_close_arg);
}

static enum MHD_Result
http_send(struct http_req *r)
{
	const char *text = r->reply ? r->reply : "{}";
	struct MHD_Response *resp;
	enum MHD_Result rc;
	char n[16];

	resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
					       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (r->retry_after) {
		snprintf(n, sizeof(n), "%u", r->retry_after);
		MHD_add_response_header(resp, "Retry-After", n);
	}
	if (r->wants_auth)
		MHD_add_response_header(resp, "WWW-Authenticate",
					"Basic realm=\"shoal\", "
					"charset=\"UTF-8\"");
	if (r->allow)
		MHD_add_response_header(resp, "Allow", r->allow);
	/* an answer before the body, or while stopping: the connection
	 * closes (a body we did not read must not be taken for the next
	 * request) */
	if (r->h->is_stopping || !r->is_headers_done)
		MHD_add_response_header(resp, "Connection", "close");
	router_stats_http(&r->h->env->stats, r->code);
	rc = MHD_queue_response(r->c, r->code, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* ---- judging a request by its headers -------------------------------- */

/* The route of a request; *allow gets the methods of a known path. */
static int
http_route(const char *url, const char *method, const char **allow)
{
	bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (strcmp(url, "/api/v1/health") == 0) {
		*allow = "GET, HEAD";
		return is_get ? HTTP_ROUTE_HEALTH : HTTP_ROUTE_METHOD;
	}
	if (strcmp(url, "/api/v1/inject") == 0) {
		*allow = "POST";
		return strcmp(method, "POST") == 0 ? HTTP_ROUTE_INJECT :
						     HTTP_ROUTE_METHOD;
	}
	return HTTP_ROUTE_NONE;
}

struct http_framing {
	unsigned content_length, transfer_encoding, host;
	bool is_chunked_only;
	bool has_bad_name;    /* white space in a field name */
};

static enum MHD_Result
http_count_header(void *arg, enum MHD_ValueKind kind, const char *key,
		  const char *value)
{
	struct http_framing *f = arg;

	(void)kind;
	/* RFC 9112 5.1: "Content-Length :" must be refused, not taken
	 * for another field (the next request would hide in its body) */
	if (strpbrk(key, " \t") != NULL)
		f->has_bad_name = true;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		f->host++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->transfer_encoding++;
		f->is_chunked_only = value && strcasecmp(value, "chunked") == 0;
	}
	return MHD_YES;
}

/* A request whose length two readers could take differently (RFC 9112
 * 6.3: request smuggling) is refused whole. 0, or an answer given. */
static int
http_check_framing(struct http_req *r, const char *version)
{
	struct http_framing f = { 0 };

	MHD_get_connection_values(r->c, MHD_HEADER_KIND, http_count_header,
				  &f);
	if (f.has_bad_name) {
		http_answer_error(r, 400, NULL,
				  "white space in a header field name");
		return -1;
	}
	if (r->route == HTTP_ROUTE_HEALTH &&
	    (f.transfer_encoding || f.content_length)) {
		const char *cl = MHD_lookup_connection_value(
			r->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

		if (f.transfer_encoding || (cl && strcmp(cl, "0") != 0)) {
			http_answer_error(r, 400, NULL,
					  "no body is taken here");
			return -1;
		}
	}
	if (f.content_length > 1 ||
	    (f.content_length && f.transfer_encoding)) {
		http_answer_error(r, 400, NULL,
				  "ambiguous message length (RFC 9112 6.3)");
		return -1;
	}
	if (f.transfer_encoding > 1 ||
	    (f.transfer_encoding && !f.is_chunked_only)) {
		http_answer_error(r, 501, NULL,
				  "only the chunked transfer coding is taken");
		return -1;
	}
	if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && f.host != 1) {
		http_answer_error(r, 400, NULL,
				  "HTTP/1.1 needs one Host header");
		return -1;
	}
	return 0;
}

/* The first call for a request: judged before its body is read. */
static void
http_admit(struct http_req *r, const char *version)
{
	const char *cl;

	if (r->route == HTTP_ROUTE_NONE) {
		http_answer_error(r, 404, NULL, "not found");
		return;
	}
	if (r->route == HTTP_ROUTE_METHOD) {
		http_answer_error(r, 405, NULL, "method not allowed");
		return;
	}
	if (http_check_framing(r, version) != 0)
		return;
	cl = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > r->h->body_max) {
		http_answer_error(r, 413, NULL, "request body too large");
		return;
	}
	if (r->route == HTTP_ROUTE_INJECT)
		http_inject_admit(r);
}

/* ---- requests ------------------------------------------------------- */

static void
http_health(struct http_req *r)
{
	struct http_server *h = r->h;
	const char *status = "ok";
	unsigned code = 200;
	json_t *o;

	if (h->is_stopping) {
		status = "stopping";
		code = 503;
	} else if (!h->env->is_ready) {
		status = "starting"; /* no shard map yet */
		code = 503;
	}
	o = json_pack("{s:s}", "status", status);
	if (code != 200)
		r->retry_after = 1;
	http_answer(r, code, json_dumps(o, JSON_COMPACT));
	json_decref(o);
}

/* The body is in: hand the request to its handler; it answers now or
 * later. */
static void
http_dispatch(struct http_req *r)
{
	r->is_started = true;
	if (r->route == HTTP_ROUTE_HEALTH) {
		http_health(r);
	} else if (r->is_too_big) {
		http_answer_error(r, 413, NULL, "request body too large");
	} else if (r->is_over_held) {
		r->retry_after = 1;
		http_answer_error(r, 503, NULL,
				  "too much mail being read, try again");
	} else if (r->h->is_stopping) {
		r->retry_after = 5;
		http_answer_error(r, 503, NULL, "shutting down");
	} else {
		http_inject_start(r);
	}
}

static struct http_req *
http_req_new(struct http_server *h, struct MHD_Connection *c, const char *url,
	     const char *method)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct http_req *r = xcalloc(1, sizeof(*r));
	const char *allow = NULL;

	r->h = h;
	r->c = c;
	r->conn = ci ? ci->socket_context : NULL;
	r->route = http_route(url, method, &allow);
	if (r->route == HTTP_ROUTE_METHOD)
		r->allow = allow;
	buf_init(&r->body, h->body_max);
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	if (r->conn)
		r->conn->req = r;
	return r;
}

static void
http_req_free(struct http_req *r)
{
	struct http_server *h = r->h;

	http_inject_free(r);
	http_set_busy(r, false);
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->conn && r->conn->req == r) {
		r->conn->req = NULL;
		r->conn->since_ms = clock_mono_ms();
	}
	atomic_fetch_sub(&h->held, r->body_held);
	buf_free(&r->body);
	free(r->reply);
	free(r);
}

/* A piece of the body: kept within the request's bound and, counted
 * with the messages being built, the server's (the rest is read and
 * dropped, and the request answered 413 or 503). Only inject takes a
 * body. */
static void
http_take_body(struct http_req *r, const char *p, size_t n)
{
	_Atomic uint64_t *held = &r->h->held;

	if (r->route != HTTP_ROUTE_INJECT || r->is_too_big ||
	    r->is_over_held)
		return;
	if (atomic_fetch_add(held, n) + n > r->h->held_max) {
		atomic_fetch_sub(held, n);
		r->is_over_held = true;
		return;
	}
	r->body_held += n;
	if (buf_append(&r->body, p, n) != 0)
		r->is_too_big = true;
}

static enum MHD_Result
http_on_request(void *cls, struct MHD_Connection *c, const char *url,
		const char *method, const char *version,
		const char *upload_data, size_t *upload_size, void **req_cls)
{
	struct http_server *h = cls;
	struct http_req *r = *req_cls;

	if (r == NULL) {
		r = http_req_new(h, c, url, method);
		*req_cls = r;
		if (r->conn == NULL)
			return MHD_NO; /* cannot happen: see http_server_add */
		http_admit(r, version);
	}
	if (!r->is_headers_done && *upload_size == 0) {
		/* the first call, or the same again after a wait in it */
		if (r->code)
			return http_send(r); /* the body is never read */
		if (r->is_waiting) {
			r->is_suspended = true;
			MHD_suspend_connection(c);
			return MHD_YES;
		}
		r->is_headers_done = true;
		return MHD_YES;
	}
	r->is_headers_done = true;
	if (*upload_size > 0) {
		http_take_body(r, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->is_started)
		http_dispatch(r);
	if (r->code)
		return http_send(r);
	r->is_suspended = true;
	MHD_suspend_connection(c);
	return MHD_YES;
}

static void
http_on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
		  enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *req_cls;
	char q[LOG_QUOTE_BUF];

	(void)cls;
	(void)c;
	if (r == NULL)
		return;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || r->code >= 500)
		log_info("http client=%s route=%d code=%u event=%s%s%s",
			 r->conn ? r->conn->client : "?", r->route, r->code,
			 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ?
				 "answered" :
				 "ended",
			 r->reply ? " reply=" : "",
			 r->reply ? log_quote(q, sizeof(q), r->reply,
					      strlen(r->reply)) :
				    "");
	*req_cls = NULL;
	http_req_free(r);
}

/* ---- connections ---------------------------------------------------- */

static void
http_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
		   enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *h = cls;
	struct http_conn *hc;

	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		hc = h->adding;
		*socket_context = hc;
		h->adding = NULL;
		if (hc == NULL)
			return;
		hc->next = h->conns;
		if (h->conns)
			h->conns->prev = hc;
		h->conns = hc;
		h->n_conns++;
		return;
	}
	hc = *socket_context;
	if (hc == NULL)
		return;
	if (hc->has_limit_slot)
		limits_session_end(h->env->limits, hc->client);
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		h->conns = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	h->n_conns--;
	free(hc);
	*socket_context = NULL;
	if (h->is_stopping && h->env->on_close)
		h->env->on_close(h->env->on_close_arg);
}

/* Whether the client of a connection has hung up (its FIN is read). */
static bool
http_conn_hung_up(const struct http_conn *hc)
{
	char b;
	ssize_t n = recv(hc->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return n == 0;
}

/* Each second: a connection whose request head is late, or whose client
 * hung up in the middle of a body, is shut down (libmicrohttpd then sees
 * the error and closes it). A request waiting for its answer is left
 * alone. */
static void
http_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *h = arg;
	uint64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	for (struct http_conn *hc = h->conns; hc; hc = hc->next) {
		const struct http_req *r = hc->req;
		const char *why = NULL;

		if (r == NULL || (!r->is_headers_done && !r->is_waiting)) {
			if (now - hc->since_ms > h->head_max_ms)
				why = "head_timeout";
		} else if (!r->is_started && !r->is_waiting &&
			   http_conn_hung_up(hc)) {
			why = "hung_up_in_body";
		}
		if (why == NULL)
			continue;
		log_info("client=%s event=http_closed reason=%s", hc->client,
			 why);
		shutdown(hc->fd, SHUT_RDWR);
		hc->since_ms = now; /* once */
	}
}

void
http_server_add(struct http_server *h, const struct cfg_listen *ls, int fd,
		const struct sockaddr *client, int client_len)
{
	struct session_env *env = h->env;
	struct http_conn *hc = xcalloc(1, sizeof(*hc));
	struct http_daemon *d;

	hc->h = h;
	hc->ls = ls;
	hc->fd = fd;
	hc->since_ms = clock_mono_ms();
	hc->is_tls = ls->tls == CFG_TLS_IMPLICIT;
	cidr_addr_str(client, hc->client, sizeof(hc->client));
	hc->is_relay_client =
		cidr_match(env->relay_nets, env->n_relay_nets, client);
	if (!limits_connection_start(env->limits, hc->client,
				     hc->is_relay_client,
				     &hc->has_limit_slot)) {
		static const char busy[] =
			"HTTP/1.1 503 Service Unavailable\r\n"
			"Retry-After: 5\r\nConnection: close\r\n"
			"Content-Length: 0\r\n\r\n";

		/* best effort: the socket is fresh, its buffer is empty
		 * (a TLS client sees a failed handshake) */
		if (!hc->is_tls && write(fd, busy, sizeof(busy) - 1) < 0) {
			/* the client is gone already */
		}
		close(fd);
		env->stats.rejected[ROUTER_REJECT_TOO_MANY_SESSIONS]++;
		log_info("client=%s event=refused reason=max_sessions_per_ip "
			 "protocol=http",
			 hc->client);
		free(hc);
		return;
	}
	d = hc->is_tls ? &h->tls : &h->plain;
	h->adding = hc;
	if (MHD_add_connection(d->mhd, fd, client, (socklen_t)client_len) !=
	    MHD_YES)
		log_warn("client=%s event=http_add_failed error=\"%s\"",
			 hc->client, strerror(errno));
	if (h->adding) {
		/* MHD did not take it (the socket is closed) */
		h->adding = NULL;
		if (hc->has_limit_slot)
			limits_session_end(env->limits, hc->client);
		free(hc);
		return;
	}
	http_kick(d);
}

/* ---- set up --------------------------------------------------------- */

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512], q[LOG_QUOTE_BUF];
	int n;

	(void)cls;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_debug(LOG_SUB_SMTP, "http event=mhd message=%s",
		  log_quote(q, sizeof(q), line, (size_t)n));
}

static char *
http_read_pem(const char *path)
{
	FILE *f = fopen(path, "re");
	char *p;
	size_t n;

	if (f == NULL)
		return NULL;
	p = xmalloc(HTTP_PEM_MAX + 1);
	n = fread(p, 1, HTTP_PEM_MAX, f);
	fclose(f);
	if (n == 0 || n == HTTP_PEM_MAX) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	return p;
}

static int
http_daemon_start(struct http_server *h, struct http_daemon *d, bool tls)
{
	const struct config *cfg = h->env->cfg;
	unsigned flags = MHD_USE_NO_LISTEN_SOCKET | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME;
	char *key = NULL, *cert = NULL;
	const union MHD_DaemonInfo *info;

	d->h = h;
	if (tls) {
		key = http_read_pem(cfg->router.tls_key);
		cert = http_read_pem(cfg->router.tls_cert);
		if (key == NULL || cert == NULL) {
			log_error("http event=tls_failed error=\"cannot read "
				  "router.tls_cert / router.tls_key\"");
			free(key);
			free(cert);
			return -EINVAL;
		}
		flags |= MHD_USE_TLS;
	}
	d->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, http_on_request, h,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)cfg->router.max_sessions,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)cfg->router.idle_timeout,
		MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, h,
		MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, h,
		MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, h,
		tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, key,
		MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
	free(key);
	free(cert);
	if (d->mhd == NULL) {
		log_error("http event=start_failed tls=%d", tls);
		return -EIO;
	}
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		log_error("http event=start_failed error=\"no epoll\"");
		return -EIO;
	}
	d->ready = event_new(h->env->base, info->epoll_fd, EV_READ | EV_PERSIST,
			     http_on_ready, d);
	d->timer = evtimer_new(h->env->base, http_on_ready, d);
	d->kick = event_new(h->env->base, -1, 0, http_on_ready, d);
	event_add(d->ready, NULL);
	return 0;
}

struct http_server *
http_server_new(struct session_env *env, int *err)
{
	const struct config *cfg = env->cfg;
	struct http_server *h;
	bool want_plain = false, want_tls = false;
	struct timeval sweep = { 0, HTTP_SWEEP_MS * 1000 };
	uint64_t head_s = cfg->router.idle_timeout < HTTP_HEAD_MAX_S ?
				  cfg->router.idle_timeout :
				  HTTP_HEAD_MAX_S;

	*err = 0;
	if (cfg->router.n_http_listen == 0)
		return NULL;
	for (size_t i = 0; i < cfg->router.n_http_listen; i++) {
		if (cfg->router.http_listen[i].tls == CFG_TLS_IMPLICIT)
			want_tls = true;
		else
			want_plain = true;
	}
	h = xcalloc(1, sizeof(*h));
	h->env = env;
	h->body_max = cfg->router.max_message_size * 2 + HTTP_BODY_SLACK;
	h->head_max_ms = head_s * 1000;
	h->held_max = cfg->router.max_message_size * HTTP_HELD_FACTOR;
	if (h->held_max < HTTP_HELD_MIN)
		h->held_max = HTTP_HELD_MIN;
	atomic_init(&h->held, 0);
	if ((*err = workq_new(env->base, HTTP_WORKERS, HTTP_WORK_QUEUED,
			      HTTP_WORK_NICE, &h->wq)) != 0) {
		free(h);
		return NULL;
	}
	if ((want_plain && (*err = http_daemon_start(h, &h->plain, false))) ||
	    (want_tls && (*err = http_daemon_start(h, &h->tls, true)))) {
		http_server_free(h);
		return NULL;
	}
	h->sweep = event_new(env->base, -1, EV_PERSIST, http_on_sweep, h);
	event_add(h->sweep, &sweep);
	return h;
}

void
http_server_stop(struct http_server *h)
{
	if (h)
		h->is_stopping = true;
}

static void
http_daemon_free(struct http_daemon *d)
{
	if (d->mhd)
		MHD_stop_daemon(d->mhd);
	if (d->ready)
		event_free(d->ready);
	if (d->timer)
		event_free(d->timer);
	if (d->kick)
		event_free(d->kick);
}

void
http_server_free(struct http_server *h)
{
	if (h == NULL)
		return;
	h->is_stopping = true;
	/* a suspended connection must be resumed before its daemon stops */
	for (struct http_req *r = h->reqs; r; r = r->next) {
		http_inject_free(r);
		if (r->code == 0) {
			r->retry_after = 5;
			http_answer_error(r, 503, NULL, "shutting down");
		}
	}
	/* jobs still on a worker stop at their next message, and are
	 * dropped */
	workq_free(h->wq);
	if (h->plain.mhd)
		MHD_run(h->plain.mhd);
	if (h->tls.mhd)
		MHD_run(h->tls.mhd);
	http_daemon_free(&h->plain);
	http_daemon_free(&h->tls);
	if (h->sweep)
		event_free(h->sweep);
	free(h);
}
