/* HTTP POSTs for webhooks: libcurl's multi interface driven by the
 * node's libevent loop (curl_multi_socket_action, with curl's sockets and
 * timer as libevent events), so nothing waits on the loop. TLS verified
 * unless asked not to, no redirects followed, http and https only, a
 * whole-request timeout, and the response body read into a bounded
 * buffer (the rest is discarded: its first bytes explain a failure).
 *
 * Handles untrusted input: the receiver's responses. */
#ifndef SHOAL_NODE_WEBHOOK_HTTP_H
#define SHOAL_NODE_WEBHOOK_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct webhook_http;
struct webhook_call;

/* Bytes of a response body kept (for the error text) and read at all:
 * past the second the transfer is cut (WEBHOOK_RESP_READ_MAX). */
#define WEBHOOK_RESP_KEEP 256
#define WEBHOOK_RESP_READ_MAX (1u << 20)

/* A POST's outcome: status is the HTTP status (0 when none arrived);
 * error is "" on a complete exchange, else curl's reason (static or the
 * call's: valid during the callback); body is the start of the response
 * body (at most WEBHOOK_RESP_KEEP bytes, not NUL-free). The call is gone
 * after the callback returns. */
typedef void (*webhook_http_done_fn)(void *arg, long status,
				     const char *error, const char *body,
				     size_t body_len);

struct webhook_post {
	const char *url;
	const char *body;       /* copied */
	size_t body_len;
	const char *const *headers; /* "Name: value", NULL-terminated */
	uint32_t timeout_ms;    /* the whole request */
	bool tls_verify;
	const char *ca_file;    /* NULL: the system store */
};

/* One client per node on base. Returns NULL when curl cannot start. */
struct webhook_http *webhook_http_new(struct event_base *base);

/* Cancels every call without calling back. webhook_http_free(NULL) does
 * nothing. */
void webhook_http_free(struct webhook_http *h);

/* Start a POST; done is called once, later, from the loop (never from
 * inside this call). Returns the call, or NULL when curl refused it
 * (logged; done is not called). */
struct webhook_call *webhook_http_post(struct webhook_http *h,
				       const struct webhook_post *p,
				       webhook_http_done_fn done, void *arg);

/* Drop a call in flight without calling back. */
void webhook_http_cancel(struct webhook_http *h, struct webhook_call *c);

/* Calls in flight. */
size_t webhook_http_active(const struct webhook_http *h);

#endif
