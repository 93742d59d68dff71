/* GET /metrics over HTTP/1.x on one "host:port", served by libevent's
 * evhttp on the caller's loop. The caller renders the body (lib/metrics.h)
 * each time it is asked; this file owns the socket, the limits on what a
 * scraper may send, and the status codes: anything but /metrics is 404,
 * any method but GET or HEAD is 405. Handles untrusted input (the
 * request): evhttp parses it under the bounds set here. */
#ifndef SHOAL_METRICS_HTTP_H
#define SHOAL_METRICS_HTTP_H

#include "lib/buf.h"

struct event_base;
struct metrics_http;

/* Fill out (empty, bounded) with the exposition text. */
typedef void (*metrics_render_fn)(struct buf *out, void *arg);

/* Listen on address ("host:port", "[v6]:port"). Returns NULL when the
 * address cannot be parsed or bound (logged with what names it; the
 * program runs on without metrics). render is called on the loop for
 * every scrape with arg. */
struct metrics_http *metrics_http_new(struct event_base *base,
				      const char *address,
				      metrics_render_fn render, void *arg);

/* Close the socket and every scrape in progress. metrics_http_free(NULL)
 * does nothing. */
void metrics_http_free(struct metrics_http *h);

#endif
