/* The router's /metrics (see metrics.h): the rendering of the counters
 * kept in struct session_env, and the few helpers that bump more than
 * one of them. HTTP is lib/metrics_http.c, the format lib/metrics.c. A
 * scrape costs O(nodes + reasons): nothing here walks sessions. */
#include "router/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/metrics_http.h"
#include "lib/xmalloc.h"
#include "router/enqueue.h"
#include "router/http.h"
#include "router/session.h"

/* Seconds from the end of DATA (or the last BDAT chunk) until the node
 * answered; the benchmark helper reads this histogram by name. */
static const double router_enqueue_bounds[] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
};

static const char *const router_reject_names[ROUTER_REJECT_N] = {
	[ROUTER_REJECT_RELAY_DENIED] = "relay_denied",
	[ROUTER_REJECT_AUTH_REQUIRED] = "auth_required",
	[ROUTER_REJECT_AUTH_FAILED] = "auth_failed",
	[ROUTER_REJECT_TLS_REQUIRED] = "tls_required",
	[ROUTER_REJECT_TOO_BIG] = "too_big",
	[ROUTER_REJECT_TOO_MANY_RECIPIENTS] = "too_many_recipients",
	[ROUTER_REJECT_BAD_RECIPIENT] = "bad_recipient",
	[ROUTER_REJECT_RATE_LIMITED] = "rate_limited",
	[ROUTER_REJECT_TOO_MANY_SESSIONS] = "too_many_sessions",
	[ROUTER_REJECT_BAD_SYNTAX] = "bad_syntax",
	[ROUTER_REJECT_BAD_SEQUENCE] = "bad_sequence",
	[ROUTER_REJECT_TIMEOUT] = "timeout",
	[ROUTER_REJECT_NODE_UNAVAILABLE] = "node_unavailable",
	[ROUTER_REJECT_STORAGE_FULL] = "storage_full",
	[ROUTER_REJECT_SUPPRESSED] = "suppressed",
};

static const char *const router_enq_names[ROUTER_ENQ_N] = {
	[ROUTER_ENQ_OK] = "ok",
	[ROUTER_ENQ_STORAGE_FULL] = "storage_full",
	[ROUTER_ENQ_NOT_DURABLE] = "not_durable",
	[ROUTER_ENQ_WRONG_EPOCH] = "wrong_epoch",
	[ROUTER_ENQ_TIMEOUT] = "timeout",
	[ROUTER_ENQ_UNAVAILABLE] = "unavailable",
	[ROUTER_ENQ_ERROR] = "error",
};

struct router_metrics {
	struct session_env *env;
	struct metrics_http *http;
};

void
router_stats_init(struct router_stats *st)
{
	metrics_hist_init(&st->enqueue, router_enqueue_bounds,
			  sizeof(router_enqueue_bounds) /
				  sizeof(router_enqueue_bounds[0]));
}

enum router_enqueue_result
router_enqueue_result_of(int result)
{
	switch (result) {
	case 0:
		return ROUTER_ENQ_OK;
	case SHOAL_E_STORAGE_FULL:
		return ROUTER_ENQ_STORAGE_FULL;
	case SHOAL_E_NOT_DURABLE:
		return ROUTER_ENQ_NOT_DURABLE;
	case SHOAL_E_WRONG_EPOCH:
		return ROUTER_ENQ_WRONG_EPOCH;
	case -ETIMEDOUT:
		return ROUTER_ENQ_TIMEOUT;
	case -EAGAIN:
		return ROUTER_ENQ_UNAVAILABLE;
	default:
		return ROUTER_ENQ_ERROR;
	}
}

void
router_stats_enqueued(struct session_env *env, int result, uint64_t data_end_us,
		      size_t msg_size)
{
	struct router_stats *st = &env->stats;
	uint64_t now = clock_mono_us();

	metrics_hist_observe(
		&st->enqueue,
		now > data_end_us ? (double)(now - data_end_us) / 1e6 : 0);
	if (result == 0)
		st->bytes += msg_size;
	else if (result == SHOAL_E_STORAGE_FULL)
		st->rejected[ROUTER_REJECT_STORAGE_FULL]++;
	else
		st->rejected[ROUTER_REJECT_NODE_UNAVAILABLE]++;
}

static const unsigned router_http_codes[ROUTER_HTTP_OTHER] = {
	200, 400, 401, 403, 404, 405, 413, 429, 503,
};

void
router_stats_http(struct router_stats *st, unsigned code)
{
	size_t i = 0;

	while (i < ROUTER_HTTP_OTHER && router_http_codes[i] != code)
		i++;
	st->http[i]++;
}

static void
router_metrics_http(const struct router_stats *st, const struct session_env *env,
		    struct buf *b)
{
	struct metrics_label l;
	char code[16];

	metrics_gauge(b, "shoal_router_http_connections",
		      "HTTP API connections open now.",
		      http_server_conns(env->http));
	metrics_family(b, "shoal_router_http_requests_total", "counter",
		       "HTTP API answers by status code.");
	for (size_t i = 0; i < ROUTER_HTTP_N; i++) {
		if (i < ROUTER_HTTP_OTHER)
			snprintf(code, sizeof(code), "%u",
				 router_http_codes[i]);
		else
			snprintf(code, sizeof(code), "other");
		l = (struct metrics_label){ "code", code };
		metrics_sample(b, "shoal_router_http_requests_total", &l, 1,
			       st->http[i]);
	}
	metrics_family(b, "shoal_router_http_messages_total", "counter",
		       "Messages of HTTP injections: queued (durable on "
		       "their node) or failed (not stored).");
	l = (struct metrics_label){ "result", "queued" };
	metrics_sample(b, "shoal_router_http_messages_total", &l, 1,
		       st->http_queued);
	l = (struct metrics_label){ "result", "failed" };
	metrics_sample(b, "shoal_router_http_messages_total", &l, 1,
		       st->http_failed);
}

/* ---- rendering ------------------------------------------------------- */

static void
router_metrics_node(const char *node_id, const uint64_t *results, void *arg)
{
	struct buf *b = arg;

	for (size_t i = 0; i < ROUTER_ENQ_N; i++) {
		struct metrics_label l[2] = {
			{ "node", node_id },
			{ "result", router_enq_names[i] },
		};

		metrics_sample(b, "shoal_router_enqueue_requests_total", l, 2,
			       results[i]);
	}
}

static void
router_metrics_render(struct buf *b, void *arg)
{
	struct router_metrics *m = arg;
	const struct session_env *env = m->env;
	const struct router_stats *st = &env->stats;
	struct metrics_label l;
	uint64_t asked, filtered, failed_open;

	metrics_gauge(b, "shoal_router_sessions", "SMTP sessions open now.",
		      env->sessions);
	metrics_counter(b, "shoal_router_sessions_total",
			"SMTP sessions started.", st->sessions_total);
	metrics_counter(b, "shoal_router_messages_accepted_total",
			"Messages answered 250 (durable on the node).",
			env->accepted);
	metrics_family(b, "shoal_router_rejected_total", "counter",
		       "Commands, recipients, messages and connections "
		       "refused, by reason.");
	for (size_t i = 0; i < ROUTER_REJECT_N; i++) {
		l = (struct metrics_label){ "reason", router_reject_names[i] };
		metrics_sample(b, "shoal_router_rejected_total", &l, 1,
			       st->rejected[i]);
	}
	metrics_counter(b, "shoal_router_recipients_accepted_total",
			"Recipients answered 250.", st->rcpts);
	metrics_counter(b, "shoal_router_received_bytes_total",
			"Octets of accepted messages, as handed to the node "
			"(our Received header included).",
			st->bytes);
	metrics_family(b, "shoal_router_tls_handshakes_total", "counter",
		       "TLS handshakes (STARTTLS and implicit TLS) by result; "
		       "failed counts sessions a TLS error ended.");
	l = (struct metrics_label){ "result", "ok" };
	metrics_sample(b, "shoal_router_tls_handshakes_total", &l, 1,
		       st->tls_ok);
	l = (struct metrics_label){ "result", "failed" };
	metrics_sample(b, "shoal_router_tls_handshakes_total", &l, 1,
		       st->tls_failed);
	metrics_family(b, "shoal_router_auth_total", "counter",
		       "SMTP AUTH attempts by result.");
	l = (struct metrics_label){ "result", "ok" };
	metrics_sample(b, "shoal_router_auth_total", &l, 1, st->auth_ok);
	l = (struct metrics_label){ "result", "failed" };
	metrics_sample(b, "shoal_router_auth_total", &l, 1, st->auth_failed);
	metrics_family(b, "shoal_router_enqueue_requests_total", "counter",
		       "Messages handed to nodes, by node and outcome "
		       "(node=\"none\": never sent, no map or no connection).");
	enqueue_foreach_node(env->enq, router_metrics_node, b);
	metrics_gauge(b, "shoal_router_enqueue_pending",
		      "Messages waiting for a node's answer.",
		      enqueue_pending(env->enq));
	metrics_family(b, "shoal_router_enqueue_seconds", "histogram",
		       "Seconds from the end of a message's data until its "
		       "node answered.");
	metrics_hist_write(b, "shoal_router_enqueue_seconds", NULL, 0,
			   &st->enqueue);
	enqueue_check_counts(env->enq, &asked, &filtered, &failed_open);
	metrics_family(b, "shoal_router_suppress_checks_total", "counter",
		       "RCPT suppression checks: asked of the owner node, or "
		       "answered by its filter (not listed).");
	l = (struct metrics_label){ "via", "node" };
	metrics_sample(b, "shoal_router_suppress_checks_total", &l, 1, asked);
	l = (struct metrics_label){ "via", "filter" };
	metrics_sample(b, "shoal_router_suppress_checks_total", &l, 1,
		       filtered);
	metrics_family(b, "shoal_router_suppress_checks_failed_open_total",
		       "counter",
		       "RCPT suppression checks the owner node did not answer "
		       "in time: the recipient was accepted unchecked.");
	metrics_sample(b, "shoal_router_suppress_checks_failed_open_total",
		       NULL, 0, failed_open);
	router_metrics_http(st, env, b);
}

struct router_metrics *
router_metrics_new(struct session_env *env)
{
	const char *addr = env->cfg->router.metrics;
	struct router_metrics *m;

	if (addr == NULL || addr[0] == '\0')
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->env = env;
	m->http = metrics_http_new(env->base, addr, router_metrics_render, m);
	if (m->http == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void
router_metrics_free(struct router_metrics *m)
{
	if (m == NULL)
		return;
	metrics_http_free(m->http);
	free(m);
}
