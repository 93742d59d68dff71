/* libcurl multi on libevent (webhook_http.h). The pattern is curl's own
 * (docs/examples/hiperfifo.c): CURLMOPT_SOCKETFUNCTION tells which
 * sockets to watch, each gets a libevent event; CURLMOPT_TIMERFUNCTION
 * sets one timer; both call curl_multi_socket_action() and then collect
 * the finished transfers. Done callbacks run from there, after curl has
 * returned, so a callback may start or cancel calls.
 *
 * Handles untrusted input: a receiver's response (status line, headers,
 * body) is parsed by curl; we keep WEBHOOK_RESP_KEEP bytes of the body
 * and cut the transfer past WEBHOOK_RESP_READ_MAX, and curl bounds the
 * headers (CURL_MAX_HTTP_HEADER). A slow or silent receiver ends at the
 * call's timeout. */
#include "node/webhook/webhook_http.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define WEBHOOK_CONNECT_MS_MAX 5000 /* connect within the request's time */

struct webhook_call {
	struct webhook_http *h;
	CURL *easy;
	struct curl_slist *headers;
	char *body;                     /* the request body (curl reads it) */
	char resp[WEBHOOK_RESP_KEEP];   /* start of the response body */
	size_t resp_len;                /* bytes kept */
	size_t resp_seen;               /* bytes received */
	bool is_cut;                    /* stopped reading: too big */
	char err[CURL_ERROR_SIZE];
	webhook_http_done_fn done;
	void *arg;
	struct webhook_call *next, *prev;
};

struct webhook_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct webhook_call *calls;
	size_t n_calls;
	int running;
};

/* One watched socket: its event, made and changed by the socket
 * callback, freed when curl says CURL_POLL_REMOVE. */
struct webhook_sock {
	struct event *ev;
	curl_socket_t fd;
};

static void webhook_http_collect(struct webhook_http *h);

static void
webhook_http_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_http *h = arg;
	int flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, fd, flags, &h->running);
	webhook_http_collect(h);
}

static void
webhook_http_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_http *h = arg;

	(void)fd;
	(void)what;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
	webhook_http_collect(h);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl asks, or stop. */
static int
webhook_http_sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	struct webhook_http *h = userp;
	struct webhook_sock *ws = socketp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (ws != NULL) {
			event_free(ws->ev);
			free(ws);
		}
		curl_multi_assign(h->multi, s, NULL);
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	       ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (ws == NULL) {
		ws = xcalloc(1, sizeof(*ws));
		ws->fd = s;
		curl_multi_assign(h->multi, s, ws);
	} else {
		event_free(ws->ev);
	}
	ws->ev = event_new(h->base, s, kind, webhook_http_on_sock, h);
	SHOAL_ASSERT(ws->ev != NULL);
	event_add(ws->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer, -1 = none. */
static int
webhook_http_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct webhook_http *h = userp;
	struct timeval tv;

	(void)m;
	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(h->timer, &tv);
	return 0;
}

/* CURLOPT_WRITEFUNCTION: keep the start of the body, count the rest, and
 * stop (a write error) once too much came. */
static size_t
webhook_http_write(char *p, size_t size, size_t n, void *arg)
{
	struct webhook_call *c = arg;
	size_t len = size * n;

	if (c->resp_len < sizeof(c->resp)) {
		size_t k = sizeof(c->resp) - c->resp_len;

		if (k > len)
			k = len;
		memcpy(c->resp + c->resp_len, p, k);
		c->resp_len += k;
	}
	c->resp_seen += len;
	if (c->resp_seen > WEBHOOK_RESP_READ_MAX) {
		c->is_cut = true;
		return 0;
	}
	return len;
}

static void
webhook_call_free(struct webhook_call *c)
{
	struct webhook_http *h = c->h;

	if (c->prev)
		c->prev->next = c->next;
	else
		h->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->n_calls--;
	curl_multi_remove_handle(h->multi, c->easy);
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->body);
	free(c);
}

/* The finished transfers: their outcome to their owners. */
static void
webhook_http_collect(struct webhook_http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		struct webhook_call *c = NULL;
		long status = 0;
		const char *error = "";

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&c);
		if (c == NULL)
			continue;
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
		if (c->is_cut && (status < 200 || status > 299))
			error = "response body too large";
		else if (c->is_cut)
			error = ""; /* a 2xx took the batch; its body is
				     * nothing to us */
		else if (msg->data.result != CURLE_OK)
			error = c->err[0] ? c->err :
					    curl_easy_strerror(msg->data.result);
		c->done(c->arg, status, error, c->resp, c->resp_len);
		webhook_call_free(c);
	}
}

struct webhook_http *
webhook_http_new(struct event_base *base)
{
	struct webhook_http *h;
	static bool is_global_done;

	if (!is_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_error("webhook event=curl_init_failed");
			return NULL;
		}
		is_global_done = true;
	}
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, webhook_http_on_timer, h);
	if (h->multi == NULL || h->timer == NULL) {
		log_error("webhook event=curl_init_failed");
		webhook_http_free(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
			  webhook_http_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
			  webhook_http_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void
webhook_http_free(struct webhook_http *h)
{
	if (h == NULL)
		return;
	while (h->calls != NULL)
		webhook_call_free(h->calls);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	if (h->timer)
		event_free(h->timer);
	free(h);
}

static bool
webhook_http_setup(struct webhook_call *c, const struct webhook_post *p)
{
	CURL *e = c->easy;
	long connect_ms = p->timeout_ms < WEBHOOK_CONNECT_MS_MAX ?
				  (long)p->timeout_ms :
				  WEBHOOK_CONNECT_MS_MAX;
	bool ok = true;

	for (size_t i = 0; p->headers && p->headers[i]; i++) {
		struct curl_slist *l = curl_slist_append(c->headers,
							 p->headers[i]);

		if (l == NULL)
			return false;
		c->headers = l;
	}
	/* no "Expect: 100-continue" round trip for big bodies */
	c->headers = curl_slist_append(c->headers, "Expect:");
	if (c->headers == NULL)
		return false;
	ok = ok && curl_easy_setopt(e, CURLOPT_URL, p->url) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ==
			   CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				    (curl_off_t)p->body_len) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) ==
			   CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
				    (long)p->timeout_ms) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) ==
			   CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER,
				    p->tls_verify ? 1L : 0L) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST,
				    p->tls_verify ? 2L : 0L) == CURLE_OK;
	if (p->ca_file != NULL)
		ok = ok && curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file) ==
				   CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION,
				    webhook_http_write) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->err) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, c) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_USERAGENT, "shoal-webhook/1") ==
			   CURLE_OK;
	return ok;
}

struct webhook_call *
webhook_http_post(struct webhook_http *h, const struct webhook_post *p,
		  webhook_http_done_fn done, void *arg)
{
	struct webhook_call *c = xcalloc(1, sizeof(*c));

	c->h = h;
	c->done = done;
	c->arg = arg;
	c->body = xmalloc(p->body_len ? p->body_len : 1);
	memcpy(c->body, p->body, p->body_len);
	c->easy = curl_easy_init();
	if (c->easy == NULL || !webhook_http_setup(c, p)) {
		log_error("webhook event=curl_setup_failed url_len=%zu",
			  strlen(p->url));
		goto fail;
	}
	if (curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
		log_error("webhook event=curl_add_failed");
		goto fail;
	}
	c->next = h->calls;
	if (h->calls)
		h->calls->prev = c;
	h->calls = c;
	h->n_calls++;
	/* curl_multi_add_handle() set a timer (0 ms): the transfer starts
	 * from the loop, and done never runs inside this call */
	return c;
fail:
	if (c->easy)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->body);
	free(c);
	return NULL;
}

void
webhook_http_cancel(struct webhook_http *h, struct webhook_call *c)
{
	(void)h;
	if (c != NULL)
		webhook_call_free(c);
}

size_t
webhook_http_active(const struct webhook_http *h)
{
	return h ? h->n_calls : 0;
}
