/* The /metrics HTTP endpoint (see metrics_http.h). evhttp reads and
 * parses the request; the bounds below keep a hostile or stuck client
 * from holding memory or a connection for long. */
#include "lib/metrics_http.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/xmalloc.h"

#define METRICS_HTTP_TIMEOUT_S 10	 /* a slow scraper is cut */
#define METRICS_HTTP_HEADERS_MAX 8192	 /* request line and headers */
#define METRICS_HTTP_BODY_MAX 1024	 /* a GET has no body */
#define METRICS_HTTP_OUT_MAX (16u << 20) /* our answer; labels are bounded */
#define METRICS_HTTP_BACKLOG 128

struct metrics_http {
	struct evhttp *http;
	metrics_render_fn render;
	void *arg;
};

static void
metrics_http_on_request(struct evhttp_request *req, void *arg)
{
	struct metrics_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *out;
	struct buf b;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "GET only");
		return;
	}
	out = evbuffer_new();
	if (out == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	buf_init(&b, METRICS_HTTP_OUT_MAX);
	h->render(&b, h->arg);
	if (b.len)
		evbuffer_add(out, b.data, b.len);
	buf_free(&b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", out);
	evbuffer_free(out);
}

struct metrics_http *
metrics_http_new(struct event_base *base, const char *address,
		 metrics_render_fn render, void *arg)
{
	struct metrics_http *h;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct evconnlistener *l;

	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(address, (struct sockaddr *)&ss,
				       &sslen) != 0) {
		log_error("metrics address=%s error=\"cannot parse; expected "
			  "host:port\"",
			  address);
		return NULL;
	}
	h = xcalloc(1, sizeof(*h));
	h->render = render;
	h->arg = arg;
	h->http = evhttp_new(base);
	if (h->http == NULL)
		goto fail;
	evhttp_set_timeout(h->http, METRICS_HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(h->http, METRICS_HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(h->http, METRICS_HTTP_BODY_MAX);
	/* POST and the rest get our 405, not evhttp's 501 */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_POST);
	evhttp_set_gencb(h->http, metrics_http_on_request, h);
	l = evconnlistener_new_bind(base, NULL, NULL,
				    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					    LEV_OPT_CLOSE_ON_EXEC,
				    METRICS_HTTP_BACKLOG,
				    (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		log_error_errno("metrics address=%s event=listen_failed",
				address);
		goto fail;
	}
	if (evhttp_bind_listener(h->http, l) == NULL) {
		evconnlistener_free(l);
		goto fail;
	}
	log_info("metrics address=%s event=listening", address);
	return h;
fail:
	metrics_http_free(h);
	return NULL;
}

void
metrics_http_free(struct metrics_http *h)
{
	if (h == NULL)
		return;
	if (h->http)
		evhttp_free(h->http);
	free(h);
}
