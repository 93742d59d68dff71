/* GET /metrics for Prometheus: the node's pair (state, lag, whether it may
 * deliver), its shard map, its queue, and what delivery did. The HTTP side
 * is lib/metrics_http.c, the format lib/metrics.c; this file owns the
 * node's counters, the bounded destination labels (metrics.h) and the
 * rendering.
 *
 * Cost of a scrape: O(1) in the queue's size. The queue depth is read from
 * the store's per-shard counts, kept in the commit that changes a message
 * (node/store/store.h), as `shoalctl status` reads them: O(shards), and as fresh
 * as the last commit. */
#include "node/ops/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/metrics_http.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/delivery/deliver.h"
#include "node/delivery/outcome.h"
#include "node/ops/admin.h"
#include "node/policy/sts.h"
#include "node/policy/tlsrpt.h"
#include "node/queue/ingest.h"
#include "node/queue/scheduler.h"
#include "node/queue/tenants.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/webhook/webhook.h"

#define METRICS_OUTCOMES 3		  /* enum outcome */
#define METRICS_DNS_RESULTS 5		  /* enum dns_status */
#define METRICS_OTHER METRICS_DEST_LABELS /* the slot past the named ones */

/* Seconds from hand-over to delivery until the job's results came back:
 * DNS, waiting for a connection or the rate limit, and the SMTP exchange. */
static const double metrics_attempt_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
};

static const char *const metrics_states[] = {
	"healthy",
	"degraded",
	"catching_up",
	"off",
};

static const char *const metrics_dns_results[METRICS_DNS_RESULTS] = {
	[DNS_OK] = "ok",
	[DNS_NXDOMAIN] = "nxdomain",
	[DNS_NO_HOSTS] = "no_hosts",
	[DNS_NULL_MX] = "null_mx",
	[DNS_TEMPFAIL] = "tempfail",
};

struct metrics_dest {
	char domain[DNS_NAME_MAX + 1];
	uint64_t results[METRICS_OUTCOMES];
	uint32_t conns; /* scratch while rendering */
};

struct metrics {
	struct metrics_deps d;
	struct metrics_http *http; /* NULL without an address */
	/* dests[0..n_dests) named, dests[METRICS_OTHER] the rest */
	struct metrics_dest dests[METRICS_DEST_LABELS + 1];
	size_t n_dests;
	uint64_t dns[METRICS_DNS_RESULTS];
	struct metrics_hist attempt;
};

/* The slot counting domain: its own, a new one while some are free, or
 * "other". O(METRICS_DEST_LABELS). */
static struct metrics_dest *
metrics_dest_for(struct metrics *m, const char *domain)
{
	size_t i;

	for (i = 0; i < m->n_dests; i++)
		if (strcmp(m->dests[i].domain, domain) == 0)
			return &m->dests[i];
	if (m->n_dests == METRICS_DEST_LABELS || domain[0] == '\0' ||
	    strlen(domain) > DNS_NAME_MAX)
		return &m->dests[METRICS_OTHER];
	snprintf(m->dests[i].domain, sizeof(m->dests[i].domain), "%s", domain);
	m->n_dests++;
	return &m->dests[i];
}

void
metrics_job(struct metrics *m, const struct job *j)
{
	uint64_t now = clock_mono_us();
	size_t n_rcpts = j->msg->sm->envelope->n_rcpts;

	if (m == NULL)
		return;
	for (size_t k = 0; k < j->n; k++)
		if (j->rcpt[k] < n_rcpts &&
		    (unsigned)j->res[k].outcome < METRICS_OUTCOMES)
			metrics_dest_for(m, j->domain)
				->results[j->res[k].outcome]++;
	metrics_hist_observe(&m->attempt, now > j->started_us ?
				 (double)(now - j->started_us) / 1e6 :
				 0);
}

void
metrics_dns(struct metrics *m, enum dns_status st)
{
	if (m == NULL || (unsigned)st >= METRICS_DNS_RESULTS)
		return;
	m->dns[st]++;
}

/* ---- rendering ------------------------------------------------------- */

static void
metrics_count_conns(const char *domain, uint32_t n_conns, void *arg)
{
	struct metrics *m = arg;

	metrics_dest_for(m, domain)->conns += n_conns;
}

static const char *
metrics_dest_name(const struct metrics *m, size_t i)
{
	return i == METRICS_OTHER ? "other" : m->dests[i].domain;
}

static void
metrics_render_delivery(struct metrics *m, struct buf *b)
{
	struct metrics_label l[2];
	size_t slots[METRICS_DEST_LABELS + 1], n = 0;

	for (size_t i = 0; i <= METRICS_DEST_LABELS; i++)
		m->dests[i].conns = 0;
	deliver_foreach_dest(m->d.deliver, metrics_count_conns, m);
	for (size_t i = 0; i < m->n_dests; i++)
		slots[n++] = i;
	slots[n++] = METRICS_OTHER;

	metrics_family(b, "shoal_deliveries_total", "counter",
		       "Recipient delivery attempts by result and destination "
		       "domain (the first 20 domains seen since start by name, "
		       "the rest as \"other\").");
	for (size_t k = 0; k < n; k++) {
		const struct metrics_dest *d = &m->dests[slots[k]];

		for (size_t oc = 0; oc < METRICS_OUTCOMES; oc++) {
			l[0] = (struct metrics_label){ "result",
						       outcome_name(oc) };
			l[1] = (struct metrics_label){
				"destination", metrics_dest_name(m, slots[k])
			};
			metrics_sample(b, "shoal_deliveries_total", l, 2,
				       d->results[oc]);
		}
	}
	metrics_family(b, "shoal_delivery_connections", "gauge",
		       "Outgoing SMTP connections open, by destination "
		       "(labelled as shoal_deliveries_total).");
	for (size_t k = 0; k < n; k++) {
		l[0] = (struct metrics_label){ "destination",
					       metrics_dest_name(m, slots[k]) };
		metrics_sample(b, "shoal_delivery_connections", l, 1,
			       m->dests[slots[k]].conns);
	}
	metrics_gauge(b, "shoal_delivery_connections_open",
		      "Outgoing SMTP connections open, all destinations.",
		      deliver_connections(m->d.deliver));
	metrics_family(b, "shoal_dns_lookups_total", "counter",
		       "DNS answers delivery acted on, by result.");
	for (size_t i = 0; i < METRICS_DNS_RESULTS; i++) {
		l[0] = (struct metrics_label){ "result",
					       metrics_dns_results[i] };
		metrics_sample(b, "shoal_dns_lookups_total", l, 1, m->dns[i]);
	}
	metrics_family(b, "shoal_delivery_attempt_seconds", "histogram",
		       "Delivery jobs (one message, one domain) from hand-over "
		       "to result: DNS, queueing for a connection, SMTP.");
	metrics_hist_write(b, "shoal_delivery_attempt_seconds", NULL, 0,
			   &m->attempt);
}

static void
metrics_render_queue(struct metrics *m, struct buf *b)
{
	struct metrics_label l;
	struct admin_depth d = { 0 };

	/* a store error is logged there; the scrape still answers */
	admin_queue_depth(m->d.store, owner_map(m->d.owner), m->d.me->id, &d);
	metrics_family(b, "shoal_queue_depth", "gauge",
		       "The queue of this node's primary shards as shoalctl "
		       "status counts it: recipients queued and deferred, "
		       "held messages.");
	l = (struct metrics_label){ "state", "queued" };
	metrics_sample(b, "shoal_queue_depth", &l, 1, d.queued);
	l = (struct metrics_label){ "state", "deferred" };
	metrics_sample(b, "shoal_queue_depth", &l, 1, d.deferred);
	l = (struct metrics_label){ "state", "held" };
	metrics_sample(b, "shoal_queue_depth", &l, 1, d.held);
	metrics_gauge(b, "shoal_queue_messages",
		      "Messages of this node's primary shards.", d.messages);
}

/* Tenants with a label of their own in shoal_tenant_deliveries_total:
 * the first ones seen; the rest are summed under tenant="other". */
#define METRICS_TENANT_LABELS 50

struct metrics_tenant_walk {
	struct buf *b;
	size_t seen;
	uint64_t other[3];
};

static void
metrics_tenant_one(void *arg, const char *tenant, uint64_t delivered,
		   uint64_t deferred, uint64_t bounced)
{
	struct metrics_tenant_walk *w = arg;
	const uint64_t n[3] = { delivered, deferred, bounced };
	static const char *const results[3] = { "delivered", "deferred",
						"bounced" };
	struct metrics_label l[2];

	if (w->seen++ >= METRICS_TENANT_LABELS ||
	    strcmp(tenant, TENANTS_OTHER) == 0) {
		for (int i = 0; i < 3; i++)
			w->other[i] += n[i];
		return;
	}
	for (int i = 0; i < 3; i++) {
		l[0] = (struct metrics_label){ "tenant", tenant };
		l[1] = (struct metrics_label){ "result", results[i] };
		metrics_sample(w->b, "shoal_tenant_deliveries_total", l, 2,
			       n[i]);
	}
}

/* Results per tenant since start (node/queue/tenants.h). */
static void
metrics_render_tenants(struct metrics *m, struct buf *b)
{
	struct metrics_tenant_walk w = { b, 0, { 0, 0, 0 } };
	static const char *const results[3] = { "delivered", "deferred",
						"bounced" };
	struct metrics_label l[2];

	metrics_family(b, "shoal_tenant_deliveries_total", "counter",
		       "Recipient results by the message's tenant (\"\" for "
		       "none; past the first 50 seen, \"(other tenants)\").");
	tenants_foreach(scheduler_tenants(m->d.sched), metrics_tenant_one, &w);
	if (w.other[0] || w.other[1] || w.other[2])
		for (int i = 0; i < 3; i++) {
			l[0] = (struct metrics_label){ "tenant",
						       "(other tenants)" };
			l[1] = (struct metrics_label){ "result", results[i] };
			metrics_sample(b, "shoal_tenant_deliveries_total", l,
				       2, w.other[i]);
		}
}

/* Adaptive shaping (docs/shaping.md): what this node's rules did, what
 * the cluster's table holds now, and the jobs held back. */
static void
metrics_render_shaping(struct metrics *m, struct buf *b)
{
	const struct adapt *a = deliver_adapt(m->d.deliver);
	uint64_t now = clock_wall_ms();
	struct metrics_label l;

	metrics_family(b, "shoal_shaping_actions_total", "counter",
		       "Shaping actions this node's rules took, by action.");
	for (int k = CFG_SHAPING_SUSPEND; k <= CFG_SHAPING_SUSPEND_SOURCE;
	     k++) {
		l = (struct metrics_label){ "action",
					    config_shaping_kind_name(k) };
		metrics_sample(b, "shoal_shaping_actions_total", &l, 1,
			       adapt_fired(a, k));
	}
	metrics_family(b, "shoal_shaping_active", "gauge",
		       "Shaping actions in force in the cluster, as this node "
		       "knows them, by action.");
	for (int k = CFG_SHAPING_SUSPEND; k <= CFG_SHAPING_SUSPEND_SOURCE;
	     k++) {
		l = (struct metrics_label){ "action",
					    config_shaping_kind_name(k) };
		metrics_sample(b, "shoal_shaping_active", &l, 1,
			       adapt_live(a, k, now));
	}
	metrics_counter(b, "shoal_shaping_held_total",
			"Delivery jobs held back by a suspension (deferred "
			"without an attempt until it ends).",
			deliver_held(m->d.deliver));
}

/* Delivery webhooks (docs/webhooks.md), one series per webhook. */
static void
metrics_render_webhooks(struct metrics *m, struct buf *b)
{
	size_t n = webhooks_count(m->d.wh);
	struct webhook_stats st;
	struct metrics_label l[2];

	if (n == 0)
		return;
	metrics_family(b, "shoal_webhook_backlog", "gauge",
		       "Webhook events this node is to send (its shards).");
	for (size_t i = 0; i < n; i++) {
		webhooks_stats(m->d.wh, i, &st);
		l[0] = (struct metrics_label){ "webhook", st.name };
		metrics_sample(b, "shoal_webhook_backlog", l, 1, st.backlog);
	}
	metrics_family(b, "shoal_webhook_events_total", "counter",
		       "Webhook events sent (confirmed by a 2xx) or dropped "
		       "(backlog over max_backlog).");
	for (size_t i = 0; i < n; i++) {
		webhooks_stats(m->d.wh, i, &st);
		l[0] = (struct metrics_label){ "webhook", st.name };
		l[1] = (struct metrics_label){ "result", "sent" };
		metrics_sample(b, "shoal_webhook_events_total", l, 2, st.sent);
		l[1] = (struct metrics_label){ "result", "dropped" };
		metrics_sample(b, "shoal_webhook_events_total", l, 2,
			       st.dropped);
	}
	metrics_family(b, "shoal_webhook_posts_total", "counter",
		       "Webhook POSTs, by outcome (ok: a 2xx).");
	for (size_t i = 0; i < n; i++) {
		webhooks_stats(m->d.wh, i, &st);
		l[0] = (struct metrics_label){ "webhook", st.name };
		l[1] = (struct metrics_label){ "result", "ok" };
		metrics_sample(b, "shoal_webhook_posts_total", l, 2,
			       st.posts_ok);
		l[1] = (struct metrics_label){ "result", "failed" };
		metrics_sample(b, "shoal_webhook_posts_total", l, 2,
			       st.posts_failed);
	}
	metrics_family(b, "shoal_webhook_last_success_timestamp_seconds",
		       "gauge",
		       "When a POST of the webhook last got a 2xx (unix "
		       "seconds; 0: not since start).");
	for (size_t i = 0; i < n; i++) {
		webhooks_stats(m->d.wh, i, &st);
		l[0] = (struct metrics_label){ "webhook", st.name };
		metrics_sample(b, "shoal_webhook_last_success_timestamp_seconds",
			       l, 1, st.last_success);
	}
}

static void
metrics_tls_one(void *arg, const char *policy, const char *result,
		uint64_t n)
{
	struct metrics_label l[2] = {
		{ "policy", policy },
		{ "result", result },
	};

	metrics_sample(arg, "shoal_tls_sessions_total", l, 2, n);
}

/* SMTP sessions under a TLS policy, as TLS-RPT counts them
 * (node/policy/tlsrpt.h): a fixed set of series. */
static void
metrics_render_tls(struct metrics *m, struct buf *b)
{
	metrics_family(b, "shoal_tls_sessions_total", "counter",
		       "Delivery SMTP sessions by TLS policy (sts, tlsa, "
		       "no-policy-found) and RFC 8460 result, since start.");
	tlsrpt_sessions(m->d.tlsrpt, metrics_tls_one, b);
	if (m->d.sts != NULL) {
		struct sts_stats st = sts_stats(m->d.sts);
		const struct {
			const char *result;
			uint64_t n;
		} rows[] = {
			{ "fetched", st.fetched },
			{ "fetch_failed", st.fetch_failed },
			{ "cached", st.from_cache },
		};

		metrics_family(b, "shoal_mta_sts_lookups_total", "counter",
			       "MTA-STS policy lookups that fetched a policy, "
			       "failed to fetch one, or kept the cached one "
			       "(same id), since start.");
		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			struct metrics_label l = { "result", rows[i].result };

			metrics_sample(b, "shoal_mta_sts_lookups_total", &l, 1,
				       rows[i].n);
		}
	}
}

static void
metrics_render(struct buf *b, void *arg)
{
	struct metrics *m = arg;
	const Shoal__ShardMap *map = owner_map(m->d.owner);
	const char *id = m->d.me->id;
	Shoal__Replication r = SHOAL__REPLICATION__INIT;
	struct store_txn *t;
	struct metrics_label l[3];
	uint64_t stored = 0, refused = 0, held = 0, primary = 0, replica = 0;
	uint64_t oldest = 0, used = 0, capacity = 0, room = 0;
	uint64_t batches, items, syncs;

	repl_status(m->d.repl, &r);
	ingest_counts(m->d.ingest, &stored, &refused);
	if (store_txn_begin(m->d.store, true, &t) == 0) {
		char qid[QID_LEN + 1];

		held = store_msg_count(t);
		if (store_msg_oldest(t, qid) == 0) {
			uint64_t born = qid_time_us(qid) / 1000000;
			uint64_t now = (uint64_t)time(NULL);

			oldest = now > born ? now - born : 0;
		}
		store_txn_abort(t);
	}
	if (store_usage(m->d.store, &used, &capacity, &room) != 0)
		used = capacity = room = 0;
	primary = shardmap_shards_of(map, id, SHARDMAP_PRIMARY, NULL);
	replica = shardmap_shards_of(map, id, SHARDMAP_REPLICA, NULL);
	metrics_family(b, "shoal_node_info", "gauge",
		       "This node, its peer and replication mode.");
	l[0] = (struct metrics_label){ "node", id };
	l[1] = (struct metrics_label){ "peer", r.peer };
	l[2] = (struct metrics_label){ "mode", r.mode };
	metrics_sample(b, "shoal_node_info", l, 3, 1);
	metrics_family(b, "shoal_replication_state", "gauge",
		       "The pair's state (1 for the current one).");
	for (size_t i = 0; i < 4; i++) {
		l[0] = (struct metrics_label){ "state", metrics_states[i] };
		metrics_sample(b, "shoal_replication_state", l, 1,
			       strcmp(r.state, metrics_states[i]) == 0);
	}
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
	metrics_gauge(b, "shoal_replication_behind_seconds",
		      "How long the pair has not been healthy (0 when it is).",
		      r.behind_s);
	metrics_counter(b, "shoal_replication_apply_failures_total",
			"Batches of the peer's stream that failed to apply "
			"here (a full disk...); retried until they succeed.",
			r.apply_failures);
	metrics_gauge(b, "shoal_shard_map_epoch", "Epoch of the shard map.",
		      map->epoch);
	metrics_gauge(b, "shoal_node_primary_shards",
		      "Shards this node is primary for.", primary);
	metrics_gauge(b, "shoal_node_replica_shards",
		      "Shards this node is the replica for.", replica);
	metrics_gauge(b, "shoal_store_messages",
		      "Messages held, replica copies included.", held);
	metrics_gauge(b, "shoal_store_oldest_message_seconds",
		      "Age of the oldest message held, replica copies "
		      "included (0 when none).",
		      oldest);
	metrics_gauge(b, "shoal_store_used_bytes",
		      "Bytes the queue file uses.", used);
	metrics_gauge(b, "shoal_store_capacity_bytes",
		      "The most the queue file can hold now: what it uses "
		      "plus what the map size and the disk still allow.",
		      capacity);
	metrics_gauge(b, "shoal_store_free_bytes",
		      "Room left for new mail: what the queue file may grow "
		      "by plus the pages freed inside it (the file never "
		      "shrinks); free / capacity is how empty the store is.",
		      room);
	metrics_gauge(b, "shoal_scheduler_in_flight",
		      "Messages with a delivery attempt in flight.",
		      scheduler_in_flight(m->d.sched));
	metrics_gauge(b, "shoal_scheduler_paused_storage_full",
		      "1 while no delivery starts because delivery results "
		      "cannot be saved (storage full).",
		      !scheduler_results_savable(m->d.sched));
	metrics_counter(b, "shoal_messages_stored_total",
			"Messages stored for routers.", stored);
	metrics_counter(b, "shoal_messages_refused_total",
			"Messages refused to routers (storage, durability).",
			refused);
	commit_stats(m->d.commit, &batches, &items, &syncs);
	metrics_counter(b, "shoal_store_commits_total",
			"Group commits (LMDB write transactions).", batches);
	metrics_counter(b, "shoal_store_commit_items_total",
			"Writes those commits carried (stores, replicated "
			"changes, delivery results).",
			items);
	metrics_counter(b, "shoal_store_syncs_total",
			"Extra fdatasyncs: commits no later commit made "
			"durable.",
			syncs);
	metrics_render_queue(m, b);
	metrics_render_delivery(m, b);
	metrics_render_shaping(m, b);
	metrics_render_tenants(m, b);
	metrics_render_webhooks(m, b);
	metrics_render_tls(m, b);
}

struct metrics *
metrics_new(const struct metrics_deps *deps)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	const char *addr = deps->me->metrics;

	m->d = *deps;
	metrics_hist_init(&m->attempt, metrics_attempt_bounds,
			  sizeof(metrics_attempt_bounds) /
				  sizeof(metrics_attempt_bounds[0]));
	if (addr != NULL && addr[0] != '\0')
		m->http = metrics_http_new(m->d.base, addr, metrics_render, m);
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	metrics_http_free(m->http);
	free(m);
}
