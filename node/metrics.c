/* GET /metrics for Prometheus: the node's pair (state, lag, whether it may
 * deliver), its shard map and a few counters. Served by libevent's evhttp
 * on the node's loop; anything but GET /metrics gets 404 or 405. */
#include "node/metrics.h"

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
#include "node/ingest.h"
#include "node/node.h"
#include "node/owner.h"
#include "node/repl.h"
#include "node/scheduler.h"
#include "node/store.h"

#define METRICS_TIMEOUT_S 10     /* a slow scraper is cut */
#define METRICS_HEADERS_MAX 8192
#define METRICS_BODY_MAX 1024    /* a GET has no body */

struct metrics {
	struct node *n;
	struct evhttp *http;
};

static const char *const metrics_states[] = {
	"healthy", "degraded", "catching_up", "off",
};

static void
metrics_gauge(struct evbuffer *b, const char *name, const char *help,
	      unsigned long long v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n",
			    name, help, name, name, v);
}

static void
metrics_counter(struct evbuffer *b, const char *name, const char *help,
		unsigned long long v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
			    name, help, name, name, v);
}

static void
metrics_render(struct metrics *m, struct evbuffer *b)
{
	struct node *n = m->n;
	Shoal__Replication r = SHOAL__REPLICATION__INIT;
	struct store_txn *t;
	uint64_t stored = 0, refused = 0, held = 0, primary = 0, replica = 0;

	repl_status(n->repl, &r, false);
	ingest_counts(n->ingest, &stored, &refused);
	if (store_txn_begin(n->store, true, &t) == 0) {
		held = store_msg_count(t);
		store_txn_abort(t);
	}
	for (size_t s = 0; s < n->map->n_shards; s++) {
		if (strcmp(n->map->shards[s]->primary, n->me->id) == 0)
			primary++;
		else if (strcmp(n->map->shards[s]->replica, n->me->id) == 0)
			replica++;
	}
	evbuffer_add_printf(b,
			    "# HELP shoal_node_info This node, its peer and "
			    "replication mode.\n# TYPE shoal_node_info gauge\n"
			    "shoal_node_info{node=\"%s\",peer=\"%s\","
			    "mode=\"%s\"} 1\n",
			    n->me->id, r.peer, r.mode);
	evbuffer_add_printf(b, "# HELP shoal_replication_state The pair's "
			       "state (1 for the current one).\n"
			       "# TYPE shoal_replication_state gauge\n");
	for (size_t i = 0; i < 4; i++)
		evbuffer_add_printf(b,
				    "shoal_replication_state{state=\"%s\"} %d\n",
				    metrics_states[i],
				    strcmp(r.state, metrics_states[i]) == 0);
	metrics_gauge(b, "shoal_replication_degraded",
		      "1 when the pair is degraded or catching up.",
		      strcmp(r.state, "degraded") == 0 ||
			      strcmp(r.state, "catching_up") == 0);
	metrics_gauge(b, "shoal_replication_lag_ops",
		      "Changes the peer has not acknowledged.", r.lag_ops);
	metrics_gauge(b, "shoal_replication_lag_seconds",
		      "Age of the oldest change the peer has not acknowledged.",
		      r.lag_s);
	metrics_gauge(b, "shoal_replication_head_seq",
		      "Newest journal sequence number.", r.head_seq);
	metrics_gauge(b, "shoal_replication_acked_seq",
		      "Newest sequence number the peer acknowledged.",
		      r.acked_seq);
	metrics_gauge(b, "shoal_replication_peer_seen_ms",
		      "Milliseconds since the peer was last heard.",
		      r.peer_seen_ms);
	metrics_gauge(b, "shoal_node_may_deliver",
		      "0 while the node is fenced (docs/replication.md).",
		      r.may_deliver);
	metrics_gauge(b, "shoal_shard_map_epoch", "Epoch of the shard map.",
		      n->map->epoch);
	metrics_gauge(b, "shoal_node_primary_shards",
		      "Shards this node is primary for.", primary);
	metrics_gauge(b, "shoal_node_replica_shards",
		      "Shards this node is the replica for.", replica);
	metrics_gauge(b, "shoal_store_messages",
		      "Messages held, replica copies included.", held);
	metrics_gauge(b, "shoal_scheduler_in_flight",
		      "Messages with a delivery attempt in flight.",
		      scheduler_in_flight(n->sched));
	metrics_counter(b, "shoal_messages_stored_total",
			"Messages stored for routers.", stored);
	metrics_counter(b, "shoal_messages_refused_total",
			"Messages refused to routers (storage, durability).",
			refused);
}

static void
metrics_on_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *b;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "GET only");
		return;
	}
	b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(m, b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

struct metrics *
metrics_new(struct node *n)
{
	struct metrics *m;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct evconnlistener *l;
	const char *addr = n->me->metrics;

	if (addr == NULL || addr[0] == '\0')
		return NULL;
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss,
				       &sslen) != 0) {
		log_error("metrics address=%s error=\"cannot parse; expected "
			  "host:port\"", addr);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->n = n;
	m->http = evhttp_new(n->base);
	if (m->http == NULL)
		goto fail;
	evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(m->http, METRICS_BODY_MAX);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_POST);
	evhttp_set_gencb(m->http, metrics_on_request, m);
	l = evconnlistener_new_bind(n->base, NULL, NULL,
				    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					    LEV_OPT_CLOSE_ON_EXEC,
				    128, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		log_error_errno("metrics address=%s event=listen_failed", addr);
		goto fail;
	}
	if (evhttp_bind_listener(m->http, l) == NULL) {
		evconnlistener_free(l);
		goto fail;
	}
	log_info("metrics address=%s event=listening", addr);
	return m;
fail:
	metrics_free(m);
	return NULL;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http)
		evhttp_free(m->http);
	free(m);
}
