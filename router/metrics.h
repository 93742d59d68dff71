/* The router's Prometheus endpoint: GET /metrics on router.metrics
 * ("host:port"), and the counters behind it. The counters live in
 * struct session_env (router/session.h) as plain integers: the router runs
 * one event loop, and every increment happens on it. docs/metrics.md lists
 * every metric. */
#ifndef SHOAL_ROUTER_METRICS_H
#define SHOAL_ROUTER_METRICS_H

#include <stdint.h>

#include "lib/metrics.h"

struct session_env;
struct router_metrics;

/* Why the router refused something (a command, a recipient, a message or
 * a connection): the `reason` label, a fixed set. */
enum router_reject {
	ROUTER_REJECT_RELAY_DENIED = 0, /* RCPT from outside relay_networks */
	ROUTER_REJECT_AUTH_REQUIRED,	/* MAIL before AUTH where required */
	ROUTER_REJECT_AUTH_FAILED,	/* 535 */
	ROUTER_REJECT_TLS_REQUIRED,	/* AUTH before STARTTLS */
	ROUTER_REJECT_TOO_BIG,		/* SIZE= or the data itself */
	ROUTER_REJECT_TOO_MANY_RECIPIENTS,
	ROUTER_REJECT_BAD_RECIPIENT,	 /* no domain */
	ROUTER_REJECT_RATE_LIMITED,	 /* per-client message rate */
	ROUTER_REJECT_TOO_MANY_SESSIONS, /* max_sessions, per-address cap */
	ROUTER_REJECT_BAD_SYNTAX,	 /* commands, parameters, bare CR/LF */
	ROUTER_REJECT_BAD_SEQUENCE,	 /* 503 */
	ROUTER_REJECT_TIMEOUT,		 /* idle or session lifetime */
	ROUTER_REJECT_NODE_UNAVAILABLE,	 /* 451: not made durable */
	ROUTER_REJECT_STORAGE_FULL,	 /* 452 from the node */
	ROUTER_REJECT_SUPPRESSED,	 /* RCPT on the suppression list */
	ROUTER_REJECT_N
};

/* Results of enqueue requests (router/enqueue.h outcomes), per node. */
enum router_enqueue_result {
	ROUTER_ENQ_OK = 0,
	ROUTER_ENQ_STORAGE_FULL,
	ROUTER_ENQ_NOT_DURABLE,
	ROUTER_ENQ_WRONG_EPOCH,
	ROUTER_ENQ_TIMEOUT,
	ROUTER_ENQ_UNAVAILABLE,
	ROUTER_ENQ_ERROR,
	ROUTER_ENQ_N
};

/* HTTP API answers by status code (the `code` label; HTTP_CODE_OTHER
 * for a code not listed). */
enum router_http_code {
	ROUTER_HTTP_200 = 0, ROUTER_HTTP_400, ROUTER_HTTP_401, ROUTER_HTTP_403,
	ROUTER_HTTP_404, ROUTER_HTTP_405, ROUTER_HTTP_413, ROUTER_HTTP_429,
	ROUTER_HTTP_503, ROUTER_HTTP_OTHER, ROUTER_HTTP_N
};

struct router_stats {
	uint64_t sessions_total;
	uint64_t rejected[ROUTER_REJECT_N];
	uint64_t rcpts; /* RCPT answered 250 */
	uint64_t bytes; /* of accepted messages */
	uint64_t tls_ok, tls_failed;
	uint64_t auth_ok, auth_failed;
	struct metrics_hist enqueue; /* seconds, end of data to answer */
	uint64_t http[ROUTER_HTTP_N];  /* HTTP API answers by code */
	uint64_t http_queued, http_failed; /* messages by the HTTP API */
};

/* An HTTP API answer with this status code was sent. */
void router_stats_http(struct router_stats *st, unsigned code);

/* Start the counters (the histogram's buckets). */
void router_stats_init(struct router_stats *st);

/* A message's hand-off ended: result is enqueue_done_fn's, data_end_us
 * clock_mono_us() when its data was complete. Counts the bytes or the
 * rejection reason, and the latency histogram (env->accepted is the
 * caller's). */
void router_stats_enqueued(struct session_env *env, int result,
			   uint64_t data_end_us, size_t msg_size);

/* The label of an enqueue outcome (enqueue_done_fn's result). */
enum router_enqueue_result router_enqueue_result_of(int result);

/* Listen on router.metrics when it is set. Returns NULL without it, or
 * when the address cannot be used (logged: the router runs on). env must
 * outlive the result. */
struct router_metrics *router_metrics_new(struct session_env *env);

/* router_metrics_free(NULL) does nothing. */
void router_metrics_free(struct router_metrics *m);

#endif
