/* HTTP requests from the node (webhook POSTs, MTA-STS policy fetches,
 * TLS-RPT reports): libcurl's multi interface driven by the node's
 * libevent loop (curl_multi_socket_action, with curl's sockets and timer
 * as libevent events), so nothing waits on the loop. TLS verified unless
 * asked not to, no redirects followed, http and https only, a
 * whole-request timeout, and the response body read into a bounded
 * buffer (past its read limit the transfer is cut).
 *
 * Handles untrusted input: the server's responses. */
#ifndef SHOAL_NODE_HTTP_CLIENT_H
#define SHOAL_NODE_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_client;
struct http_call;

/* Response bytes read at most unless a request says otherwise: past this
 * the transfer is cut (HTTP_ERR_TOO_BIG). */
#define HTTP_READ_MAX_DEFAULT (1u << 20)
#define HTTP_KEEP_MAX (1u << 20) /* bytes of a body a request may keep */

extern const char HTTP_ERR_TOO_BIG[]; /* "response body too large" */

/* A request's outcome, valid during the done callback: status is the
 * HTTP status (0 when none arrived); error is "" on a complete exchange,
 * else the reason (curl's, or HTTP_ERR_TOO_BIG when the body passed
 * read_max); body is the start of the response body (at most the
 * request's keep bytes, not NUL-free); content_type is the response's
 * Content-Type or "". The call is gone after the callback returns. */
struct http_response {
	long status;
	const char *error;
	const char *body;
	size_t body_len;
	bool is_cut;              /* the body passed read_max */
	bool is_tls_untrusted;    /* the server's certificate did not verify */
	const char *content_type;
};

typedef void (*http_done_fn)(void *arg, const struct http_response *r);

struct http_request {
	const char *url;
	const char *body;         /* copied; NULL: a GET */
	size_t body_len;
	const char *const *headers; /* "Name: value", NULL-terminated, or NULL */
	uint32_t timeout_ms;      /* the whole request */
	bool tls_verify;
	const char *ca_file;      /* NULL: the system store */
	const char *resolve;      /* "host:port:address" (the name resolved
				   * by our own resolver), or NULL */
	size_t keep;              /* body bytes kept, <= HTTP_KEEP_MAX */
	size_t read_max;          /* body bytes read at most, 0 = default */
	const char *user_agent;   /* NULL: "shoal/1" */
};

/* One client on base. Returns NULL when curl cannot start (logged). */
struct http_client *http_client_new(struct event_base *base);

/* Cancels every call without calling back. http_client_free(NULL) does
 * nothing. */
void http_client_free(struct http_client *h);

/* Start a request; done is called once, later, from the loop (never
 * from inside this call). Returns the call, or NULL when curl refused it
 * (logged; done is not called). */
struct http_call *http_client_start(struct http_client *h,
				    const struct http_request *q,
				    http_done_fn done, void *arg);

/* Drop a call in flight without calling back. */
void http_client_cancel(struct http_client *h, struct http_call *c);

/* The loop h runs on. */
struct event_base *http_client_base(const struct http_client *h);

/* Calls in flight. */
size_t http_client_active(const struct http_client *h);

#endif
