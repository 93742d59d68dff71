/* Listening sockets: parse "host:port" / "[v6]:port", bind with libevent's
 * evconnlistener, and hand accepted sockets to SMTP sessions
 * (router.listen) or to the HTTP API (router.http_listen, router/http.h). When accept()
 * fails for lack of descriptors the listener pauses briefly instead of
 * spinning. On a proxy_protocol listener a socket first waits for its
 * PROXY header (router/proxy_wait.c); those waiting count toward
 * router.max_sessions like sessions. */
#include "router/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "router/http.h"
#include "router/proxy_wait.h"
#include "router/session.h"

#define LISTENER_BACKLOG 1024
#define LISTENER_PAUSE_MS 100  /* after EMFILE/ENFILE */

struct listener_one {
	struct listener *l;
	const struct cfg_listen *cfg;
	struct evconnlistener *evl;
	bool is_http;
};

struct listener {
	struct session_env *env;
	struct listener_one *ones;
	size_t n;
	struct event *resume;
	struct proxy_wait *waiting;   /* sockets owing a PROXY header */
};

/* A connection starts, as SMTP session or HTTP connection. */
static void
listener_start(struct listener_one *one, int fd, const struct sockaddr *client,
	       int client_len)
{
	struct session_env *env = one->l->env;

	if (one->is_http)
		http_server_add(env->http, one->cfg, fd, client, client_len);
	else
		session_start(env, one->cfg, fd, client, client_len);
}

static void
listener_on_accept(struct evconnlistener *evl, evutil_socket_t fd,
		   struct sockaddr *sa, int salen, void *arg)
{
	struct listener_one *one = arg;
	struct session_env *env = one->l->env;
	static const char busy[] = "421 4.7.0 Too many connections, try "
				   "again later\r\n";
	static const char http_busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
					"Retry-After: 5\r\n"
					"Connection: close\r\n"
					"Content-Length: 0\r\n\r\n";

	(void)evl;
	if (env->sessions + http_server_conns(env->http) +
		    proxy_wait_count(one->l->waiting) >=
	    env->cfg->router.max_sessions) {
		/* best effort: the socket is fresh, its buffer is empty
		 * (a TLS client reads a failed handshake) */
		if (one->cfg->tls != CFG_TLS_IMPLICIT &&
		    (one->is_http ? write(fd, http_busy, sizeof(http_busy) - 1) :
				    write(fd, busy, sizeof(busy) - 1)) < 0) {
			/* the client is gone already */
		}
		evutil_closesocket(fd);
		env->stats.rejected[ROUTER_REJECT_TOO_MANY_SESSIONS]++;
		log_warn("listener event=refused reason=max_sessions "
			 "sessions=%u http=%u",
			 env->sessions, http_server_conns(env->http));
		return;
	}
	if (one->cfg->proxy_protocol) {
		proxy_wait_add(one->l->waiting, fd, sa, salen,
			       one->cfg->address, one);
		return;
	}
	listener_start(one, fd, sa, salen);
}

/* The PROXY header named the client: the connection starts as if it had
 * come from there (relay_networks, limits, Received:, logs). */
static void
listener_on_proxy_header(void *arg, void *ctx, int fd,
			 const struct sockaddr *client, int client_len)
{
	(void)arg;
	listener_start(ctx, fd, client, client_len);
}

static void
listener_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < l->n; i++)
		evconnlistener_enable(l->ones[i].evl);
}

static void
listener_on_error(struct evconnlistener *evl, void *arg)
{
	struct listener_one *one = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, LISTENER_PAUSE_MS * 1000 };

	(void)evl;
	log_warn("listener address=%s event=accept_error error=\"%s\"",
		 one->cfg->address, evutil_socket_error_to_string(err));
	for (size_t i = 0; i < one->l->n; i++)
		evconnlistener_disable(one->l->ones[i].evl);
	event_add(one->l->resume, &tv);
}

/* PROXY_WAIT_MAX_S, or the idle timeout if shorter. */
static unsigned
listener_proxy_timeout_ms(const struct config *cfg)
{
	unsigned s = cfg->router.idle_timeout;

	return (s < PROXY_WAIT_MAX_S ? s : PROXY_WAIT_MAX_S) * 1000u;
}

/* Bind one listener; is_http: an http_listen entry. */
static int
listener_bind(struct listener *l, const struct cfg_listen *ls, bool is_http)
{
	struct listener_one *one = &l->ones[l->n];
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	if (evutil_parse_sockaddr_port(ls->address, (struct sockaddr *)&ss,
				       &sslen) != 0) {
		log_error("listener address=%s error=\"cannot parse "
			  "address\"",
			  ls->address);
		return -1;
	}
	one->l = l;
	one->cfg = ls;
	one->is_http = is_http;
	one->evl = evconnlistener_new_bind(
		l->env->base, listener_on_accept, one,
		LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
			LEV_OPT_CLOSE_ON_EXEC,
		LISTENER_BACKLOG, (struct sockaddr *)&ss, sslen);
	if (one->evl == NULL) {
		log_error_errno("listener address=%s event=bind_failed",
				ls->address);
		return -1;
	}
	evconnlistener_set_error_cb(one->evl, listener_on_error);
	l->n++;
	log_info("listener address=%s event=listening protocol=%s",
		 ls->address, is_http ? "http" : "smtp");
	return 0;
}

struct listener *
listener_new(struct session_env *env)
{
	const struct config *cfg = env->cfg;
	struct listener *l = xcalloc(1, sizeof(*l));

	l->env = env;
	l->ones = xcalloc(cfg->router.n_listen + cfg->router.n_http_listen,
			  sizeof(*l->ones));
	l->resume = evtimer_new(env->base, listener_on_resume, l);
	l->waiting = proxy_wait_new(env->base, listener_proxy_timeout_ms(cfg),
				    listener_on_proxy_header, l);
	for (size_t i = 0; i < cfg->router.n_listen; i++)
		if (listener_bind(l, &cfg->router.listen[i], false) != 0)
			goto fail;
	for (size_t i = 0; i < cfg->router.n_http_listen; i++)
		if (listener_bind(l, &cfg->router.http_listen[i], true) != 0)
			goto fail;
	return l;
fail:
	listener_free(l);
	return NULL;
}

void
listener_stop(struct listener *l)
{
	/* closed, not just disabled: the kernel would still complete
	 * handshakes into the backlog, and those clients would hang */
	for (size_t i = 0; i < l->n; i++) {
		evconnlistener_free(l->ones[i].evl);
		log_info("listener address=%s event=closed",
			 l->ones[i].cfg->address);
	}
	l->n = 0;
	event_del(l->resume);
	proxy_wait_clear(l->waiting);
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		evconnlistener_free(l->ones[i].evl);
	if (l->resume)
		event_free(l->resume);
	proxy_wait_free(l->waiting);
	free(l->ones);
	free(l);
}
