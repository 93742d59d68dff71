/* libcurl multi on libevent (http_client.h). The pattern is curl's own
 * (docs/examples/hiperfifo.c): CURLMOPT_SOCKETFUNCTION tells which
 * sockets to watch, each gets a libevent event; CURLMOPT_TIMERFUNCTION
 * sets one timer; both call curl_multi_socket_action() and then collect
 * the finished transfers. Done callbacks run from there, after curl has
 * returned, so a callback may start or cancel calls.
 *
 * Handles untrusted input: a receiver's response (status line, headers,
 * body) is parsed by curl; we keep the request's `keep` bytes of the
 * body and cut the transfer past its read_max, and curl bounds the
 * headers (CURL_MAX_HTTP_HEADER). A slow or silent receiver ends at the
 * call's timeout. */
#include "node/http/http_client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define HTTP_CONNECT_MS_MAX 5000 /* connect within the request's time */
#define HTTP_CA_CACHE_S 3600L    /* a CA bundle read is kept this long */

const char HTTP_ERR_TOO_BIG[] = "response body too large";

struct http_call {
	struct http_client *h;
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *resolve;     /* CURLOPT_RESOLVE's one entry */
	char *body;                     /* the request body (curl reads it) */
	char *resp;                     /* start of the response body */
	size_t resp_keep, resp_len;     /* bytes to keep, kept */
	size_t read_max;
	size_t resp_seen;               /* bytes received */
	bool is_cut;                    /* stopped reading: too big */
	char err[CURL_ERROR_SIZE];
	http_done_fn done;
	void *arg;
	struct http_call *next, *prev;
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct http_call *calls;
	size_t n_calls;
	int running;
};

/* One watched socket: its event, made and changed by the socket
 * callback, freed when curl says CURL_POLL_REMOVE. */
struct http_sock {
	struct event *ev;
	curl_socket_t fd;
};

static void http_client_collect(struct http_client *h);

static void
http_client_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *h = arg;
	int flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, fd, flags, &h->running);
	http_client_collect(h);
}

static void
http_client_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *h = arg;

	(void)fd;
	(void)what;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
	http_client_collect(h);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl asks, or stop. */
static int
http_client_sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	struct http_client *h = userp;
	struct http_sock *ws = socketp;
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
	ws->ev = event_new(h->base, s, kind, http_client_on_sock, h);
	SHOAL_ASSERT(ws->ev != NULL);
	event_add(ws->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer, -1 = none. */
static int
http_client_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http_client *h = userp;
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
http_client_write(char *p, size_t size, size_t n, void *arg)
{
	struct http_call *c = arg;
	size_t len = size * n;

	if (c->resp_len < c->resp_keep) {
		size_t k = c->resp_keep - c->resp_len;

		if (k > len)
			k = len;
		memcpy(c->resp + c->resp_len, p, k);
		c->resp_len += k;
	}
	c->resp_seen += len;
	if (c->resp_seen > c->read_max) {
		c->is_cut = true;
		return 0;
	}
	return len;
}

static void
http_call_free(struct http_call *c)
{
	struct http_client *h = c->h;

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
	curl_slist_free_all(c->resolve);
	free(c->body);
	free(c->resp);
	free(c);
}

/* The finished transfers: their outcome to their owners. */
static void
http_client_collect(struct http_client *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		struct http_call *c = NULL;
		long status = 0;
		const char *error = "";

		struct http_response r = { 0 };
		char *ct = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&c);
		if (c == NULL)
			continue;
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
		if (c->is_cut)
			error = HTTP_ERR_TOO_BIG;
		else if (msg->data.result != CURLE_OK)
			error = c->err[0] ? c->err :
					    curl_easy_strerror(msg->data.result);
		r.status = status;
		r.error = error;
		r.body = c->resp ? c->resp : "";
		r.body_len = c->resp_len;
		r.is_cut = c->is_cut;
		r.is_tls_untrusted =
			msg->data.result == CURLE_PEER_FAILED_VERIFICATION;
		r.content_type = ct ? ct : "";
		c->done(c->arg, &r);
		http_call_free(c);
	}
}

struct http_client *
http_client_new(struct event_base *base)
{
	struct http_client *h;
	static bool is_global_done;

	if (!is_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_error("http event=curl_init_failed");
			return NULL;
		}
		is_global_done = true;
	}
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, http_client_on_timer, h);
	if (h->multi == NULL || h->timer == NULL) {
		log_error("http event=curl_init_failed");
		http_client_free(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
			  http_client_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
			  http_client_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void
http_client_free(struct http_client *h)
{
	if (h == NULL)
		return;
	while (h->calls != NULL)
		http_call_free(h->calls);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	if (h->timer)
		event_free(h->timer);
	free(h);
}

static bool
http_client_setup(struct http_call *c, const struct http_request *p)
{
	CURL *e = c->easy;
	long connect_ms = p->timeout_ms < HTTP_CONNECT_MS_MAX ?
				  (long)p->timeout_ms :
				  HTTP_CONNECT_MS_MAX;
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
	if (c->body != NULL) {
		ok = ok && curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK;
		ok = ok && curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body) ==
				   CURLE_OK;
		ok = ok && curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
					    (curl_off_t)p->body_len) == CURLE_OK;
	}
	if (p->resolve != NULL) {
		c->resolve = curl_slist_append(NULL, p->resolve);
		ok = ok && c->resolve != NULL &&
		     curl_easy_setopt(e, CURLOPT_RESOLVE, c->resolve) ==
			     CURLE_OK;
	}
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
	/* the CA bundle is parsed once per client and hour, not once per
	 * request (a system bundle takes 25 ms of the loop to read): curl
	 * caches it only without a CA directory, and the bundle holds the
	 * same certificates as the directory */
	ok = ok && curl_easy_setopt(e, CURLOPT_CAPATH, NULL) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT,
				    HTTP_CA_CACHE_S) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION,
				    http_client_write) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->err) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_PRIVATE, c) == CURLE_OK;
	ok = ok && curl_easy_setopt(e, CURLOPT_USERAGENT,
				    p->user_agent ? p->user_agent : "shoal/1") ==
			   CURLE_OK;
	return ok;
}

struct http_call *
http_client_start(struct http_client *h, const struct http_request *q,
		  http_done_fn done, void *arg)
{
	struct http_call *c = xcalloc(1, sizeof(*c));

	c->h = h;
	c->done = done;
	c->arg = arg;
	if (q->body != NULL) {
		c->body = xmalloc(q->body_len ? q->body_len : 1);
		memcpy(c->body, q->body, q->body_len);
	}
	c->resp_keep = q->keep < HTTP_KEEP_MAX ? q->keep : HTTP_KEEP_MAX;
	if (c->resp_keep > 0)
		c->resp = xmalloc(c->resp_keep);
	c->read_max = q->read_max ? q->read_max : HTTP_READ_MAX_DEFAULT;
	c->easy = curl_easy_init();
	if (c->easy == NULL || !http_client_setup(c, q)) {
		log_error("http event=curl_setup_failed url_len=%zu",
			  strlen(q->url));
		goto fail;
	}
	if (curl_multi_add_handle(h->multi, c->easy) != CURLM_OK) {
		log_error("http event=curl_add_failed");
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
	curl_slist_free_all(c->resolve);
	free(c->body);
	free(c->resp);
	free(c);
	return NULL;
}

void
http_client_cancel(struct http_client *h, struct http_call *c)
{
	(void)h;
	if (c != NULL)
		http_call_free(c);
}

size_t
http_client_active(const struct http_client *h)
{
	return h ? h->n_calls : 0;
}

struct event_base *
http_client_base(const struct http_client *h)
{
	return h->base;
}
