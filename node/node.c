/* The node process: store, shard map and the front socket where routers
 * and shoalctl reach it. Routes each incoming message by its link tag. */
#include "node/node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/curve.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/queue/actions.h"
#include "node/ops/adapt_ops.h"
#include "node/ops/admin.h"
#include "node/ops/sts_ops.h"
#include "node/ops/tls_ops.h"
#include "node/ops/webhook_ops.h"
#include "node/http/http_client.h"
#include "node/policy/sts.h"
#include "node/policy/tlsrpt.h"
#include "node/store/commit.h"
#include "node/delivery/deliver.h"
#include "node/queue/dlog.h"
#include "node/queue/ingest.h"
#include "node/cluster/join.h"
#include "node/ops/metrics.h"
#include "node/cluster/move.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/queue/scheduler.h"
#include "node/rpc/rpc.h"
#include "node/store/store.h"
#include "node/suppress/suppress.h"
#include "node/webhook/webhook.h"

#define NODE_TOMB_MARGIN_S 86400 /* tombstones: past max_queue_lifetime */

/* Admin requests that change things, answered when done. */
static void
node_on_admin_defer(void *arg, const struct rpc_ticket *t,
		    const Shoal__AdminRequest *rq)
{
	struct node *n = arg;

	if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_FAILOVER)
		owner_failover(n->owner, t, rq->failover);
	else if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_MOVE)
		move_request(n->move, t, rq->move);
	else if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_SUPPRESS)
		suppress_admin(n->supp, t, rq);
	else if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_SHAPING)
		adapt_ops_admin(n->adapt_ops, t, rq);
	else if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_WEBHOOKS)
		webhook_ops_status(n->rpc, n->me->id, n->wh, t);
	else if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_TLS_REPORT)
		tls_ops_report(n->rpc, n->cfg, n->me->id, n->tlsrpt, t,
			       rq->tls_report);
	else if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_STS_POLICY)
		sts_ops_admin(n->sts_ops, t, rq);
	else
		actions_handle(n->actions, t, rq);
}

/* The admin link: what a request reads, as it is now. */
static void
node_on_admin(struct node *n, zmq_msg_t *frames, size_t nframes)
{
	struct admin_ctx ctx = {
		.rpc = n->rpc,
		.store = n->store,
		.node_id = n->me->id,
		.map = owner_map(n->owner),
		.started_at = n->started_at,
		.repl = n->repl,
		.sched = n->sched,
		.owner = n->owner,
		.defer = node_on_admin_defer,
		.defer_arg = n,
	};

	admin_handle(&ctx, frames, nframes);
}

/* The links of the front socket (lib/wire.h tags), each to its module. */
static void
node_on_router_link(void *arg, zmq_msg_t *frames, size_t nframes)
{
	struct node *n = arg;

	ingest_handle(n->ingest, frames, nframes);
}

static void
node_on_admin_link(void *arg, zmq_msg_t *frames, size_t nframes)
{
	node_on_admin(arg, frames, nframes);
}

static void
node_on_peer_link(void *arg, zmq_msg_t *frames, size_t nframes)
{
	struct node *n = arg;

	repl_handle(n->repl, frames, nframes);
}

static void
node_on_move_link(void *arg, zmq_msg_t *frames, size_t nframes)
{
	struct node *n = arg;

	move_handle(n->move, frames, nframes);
}

/* ---- cluster's hooks: what a change of ownership means above it ---- */

static void
node_cluster_map_changed(void *arg, const Shoal__ShardMap *map)
{
	struct node *n = arg;

	n->map = (Shoal__ShardMap *)map; /* the alias in struct node */
	deliver_map_changed(n->deliver, map);
	scheduler_recheck(n->sched);
	if (n->sched)
		scheduler_kick(n->sched);
}

static void
node_cluster_fence_changed(void *arg, bool may_deliver)
{
	struct node *n = arg;

	if (!may_deliver)
		scheduler_recheck(n->sched);
	else if (n->sched)
		scheduler_kick(n->sched);
}

static void
node_cluster_starts_revoked(void *arg)
{
	struct node *n = arg;

	scheduler_recheck(n->sched);
}

static void
node_cluster_work_due(void *arg)
{
	struct node *n = arg;

	if (n->sched)
		scheduler_kick(n->sched);
}

static uint64_t
node_cluster_in_flight(void *arg, const uint8_t *shards, size_t count)
{
	struct node *n = arg;

	if (n->sched == NULL)
		return 0;
	return shards ? scheduler_in_flight_of(n->sched, shards, count) :
			scheduler_in_flight(n->sched);
}

static bool
node_cluster_results_unsaved(void *arg)
{
	struct node *n = arg;

	return n->sched != NULL && !scheduler_results_savable(n->sched);
}

static int
node_cluster_supp_apply(void *arg, struct store_txn *t,
			const Shoal__ReplRecord *rec)
{
	struct node *n = arg;

	return suppress_record_apply(n->supp, t, rec);
}

static int
node_cluster_supp_purge(void *arg, struct store_txn *t, uint32_t shard,
			uint64_t *count)
{
	(void)arg;
	return suppress_purge_shard(t, shard, count);
}

static int
node_cluster_supp_touch(void *arg, struct store_txn *t, uint64_t *count)
{
	struct node *n = arg;

	return suppress_touch(n->supp, t, count);
}

/* Shard ownership, the peer link and shard moves (node/cluster/), given
 * what they need and the hooks above; the owner takes map. */
static int
node_cluster_new(struct node *n, Shoal__ShardMap *map)
{
	const struct cluster_hooks hooks = {
		.map_changed = node_cluster_map_changed,
		.fence_changed = node_cluster_fence_changed,
		.starts_revoked = node_cluster_starts_revoked,
		.work_due = node_cluster_work_due,
		.in_flight = node_cluster_in_flight,
		.results_unsaved = node_cluster_results_unsaved,
		.supp_apply = node_cluster_supp_apply,
		.supp_purge = node_cluster_supp_purge,
		.supp_touch = node_cluster_supp_touch,
		.arg = n,
	};
	struct commit_hook ship;

	n->owner = owner_new(n->base, n->cfg, n->me, n->store, n->rpc, map,
			     &hooks);
	n->map = (Shoal__ShardMap *)owner_map(n->owner);
	n->repl = repl_new(n->base, n->cfg, n->me, n->zctx, n->store,
			   n->commit, n->owner, &hooks);
	if (n->repl == NULL)
		return -EIO;
	owner_set_repl(n->owner, n->repl);
	ship = repl_commit_hook(n->repl);
	commit_set_hook(n->commit, &ship);
	n->move = move_new(n->base, n->cfg, n->me, n->zctx, n->store,
			   n->commit, n->rpc, n->owner, n->repl, &hooks);
	return 0;
}

/* ---- delivery's hooks: it reports to the scheduler, asks the owner ---- */

static void
node_deliver_job_done(void *arg, struct job *j)
{
	struct node *n = arg;

	scheduler_job_done(n->sched, j);
}

static bool
node_deliver_may_start(void *arg, const struct job *j)
{
	struct node *n = arg;

	return owner_may_start(n->owner, j->msg->sm->shard) &&
	       scheduler_results_savable(n->sched);
}

static void
node_deliver_abandon(void *arg, struct job *j)
{
	struct node *n = arg;

	scheduler_job_abandon(n->sched, j);
}

static void
node_deliver_dns_done(void *arg, enum dns_status st)
{
	struct node *n = arg;

	metrics_dns(n->metrics, st);
}

/* A shaping action fired here: a "shaping" webhook event, in a commit of
 * its own (no message transaction reports it). */
static void
node_webhook_shaping(struct node *n, const struct adapt_action *x)
{
	uint64_t now_ms = clock_wall_ms();
	struct webhook_event ev = {
		.type = WEBHOOK_SHAPING,
		.time = now_ms / 1000,
		.node = n->me->id,
		.destination = x->key,
		.provider = x->key,
		.response = x->trigger,
		.action = config_shaping_kind_name(x->kind),
		.rule = x->rule,
		.duration = x->expires_ms > now_ms ?
				    (x->expires_ms - now_ms + 999) / 1000 :
				    0,
	};

	if (n->wh != NULL && !x->cleared)
		webhooks_emit(n->wh, &ev);
}

/* A shaping rule fired here: the cluster hears of it, and webhooks. */
static void
node_deliver_shaping_action(void *arg, const struct adapt_action *x)
{
	struct node *n = arg;

	if (n->adapt_ops)
		adapt_ops_fired(n->adapt_ops, x);
	node_webhook_shaping(n, x);
}

/* ---- TLS policies: MTA-STS lookups and TLS-RPT counts for delivery.
 * Made after delivery (they use its resolver); its hooks reach them
 * only from jobs, which start after node_new(). ---- */

static uint64_t
node_sts_get(void *arg, const char *domain, deliver_sts_fn fn, void *cbarg)
{
	struct node *n = arg;

	return sts_get(n->sts, domain, fn, cbarg);
}

static void
node_sts_cancel(void *arg, uint64_t id)
{
	struct node *n = arg;

	sts_cancel(n->sts, id);
}

static void
node_sts_release(void *arg, const struct sts_policy *p)
{
	struct node *n = arg;

	sts_release(n->sts, p);
}

/* A policy fetched here: every other node hears of it. */
static void
node_sts_fetched(void *arg, const char *domain, const char *id,
		 uint64_t fetched, const char *text, size_t len)
{
	struct node *n = arg;

	sts_ops_fetched(n->sts_ops, domain, id, fetched, text, len);
}

static void
node_tls_session(void *arg, const struct deliver_tls_session *s)
{
	struct node *n = arg;

	if (n->tlsrpt != NULL)
		tlsrpt_count(n->tlsrpt, s);
}

static int
node_policy_new(struct node *n)
{
	n->http = http_client_new(n->base);
	if (n->http == NULL)
		return -ENOMEM;
	n->tlsrpt = tlsrpt_new(&(struct tlsrpt_deps){
		.base = n->base,
		.cfg = n->cfg,
		.node_id = n->me->id,
		.store = n->store,
		.commit = n->commit,
		.dns = deliver_dns(n->deliver),
		.http = n->http,
		.sched = n->sched,
	});
	n->sts = sts_new(&(struct sts_deps){
		.base = n->base,
		.cfg = n->cfg,
		.dns = deliver_dns(n->deliver),
		.http = n->http,
		.store = n->store,
		.commit = n->commit,
		.fetched = node_sts_fetched,
		.fetched_arg = n,
		.report = node_tls_session,
		.report_arg = n,
	});
	if (n->tlsrpt == NULL || n->sts == NULL)
		return -ENOMEM;
	n->sts_ops = sts_ops_new(&(struct sts_ops_deps){
		.base = n->base,
		.zctx = n->zctx,
		.node_id = n->me->id,
		.rpc = n->rpc,
		.owner = n->owner,
		.sts = n->sts,
	});
	return 0;
}

/* Delivery is a leaf (node/delivery/deliver.h): what it needs of the node
 * is handed over here. The hooks run only once the scheduler hands out
 * jobs, after node_new(), when the scheduler and metrics exist. */
static struct deliver *
node_deliver_new(struct node *n)
{
	const struct deliver_hooks hooks = {
		.job_done = node_deliver_job_done,
		.job_may_start = node_deliver_may_start,
		.job_abandon = node_deliver_abandon,
		.dns_done = node_deliver_dns_done,
		.shaping_action = node_deliver_shaping_action,
		.sts_get = node_sts_get,
		.sts_cancel = node_sts_cancel,
		.sts_release = node_sts_release,
		.tls_session = node_tls_session,
		.arg = n,
	};

	return deliver_new(n->base, n->cfg, n->me->id, n->map, &hooks);
}

/* ---- suppression: its list, checks and pending adds ---- */

static struct suppress *
node_suppress_new(struct node *n)
{
	const struct suppress_deps deps = {
		.base = n->base,
		.zctx = n->zctx,
		.cfg = n->cfg,
		.node_id = n->me->id,
		.store = n->store,
		.commit = n->commit,
		.rpc = n->rpc,
		.owner = n->owner,
		.repl = n->repl,
		.incarnation = n->incarnation,
	};

	return suppress_new(&deps);
}

/* ---- the queue: the scheduler asks the owner and ingest, feeds
 * delivery, and tells metrics ---- */

static bool
node_sched_may_deliver(void *arg)
{
	struct node *n = arg;

	return owner_may_deliver(n->owner);
}

static bool
node_sched_may_start(void *arg, uint32_t shard)
{
	struct node *n = arg;

	return owner_may_start(n->owner, shard);
}

static bool
node_sched_is_primary(void *arg, uint32_t shard)
{
	struct node *n = arg;

	return owner_is_primary(n->owner, shard);
}

static bool
node_sched_is_held(void *arg, const char *qid)
{
	struct node *n = arg;

	return ingest_holds(n->ingest, qid);
}

static void
node_sched_submit(void *arg, struct job *j)
{
	struct node *n = arg;

	deliver_submit(n->deliver, j);
}

static void
node_sched_recheck(void *arg)
{
	struct node *n = arg;

	deliver_recheck(n->deliver);
}

static void
node_sched_results(void *arg, const struct job *j)
{
	struct node *n = arg;

	metrics_job(n->metrics, j);
}

/* The delivery log, the scheduler, ingest and queue actions. The hooks
 * run from the loop, once every module exists. */
static void
node_queue_new(struct node *n)
{
	struct scheduler_deps sd = {
		.base = n->base,
		.cfg = n->cfg,
		.node_id = n->me->id,
		.store = n->store,
		.commit = n->commit,
		.supp = n->supp,
		.wh = n->wh,
		.hooks = {
			.may_deliver = node_sched_may_deliver,
			.may_start = node_sched_may_start,
			.is_primary = node_sched_is_primary,
			.is_held = node_sched_is_held,
			.submit = node_sched_submit,
			.recheck = node_sched_recheck,
			.results = node_sched_results,
			.arg = n,
		},
	};
	struct ingest_deps id = {
		.cfg = n->cfg,
		.me = n->me,
		.incarnation = n->incarnation,
		.rpc = n->rpc,
		.commit = n->commit,
		.owner = n->owner,
		.repl = n->repl,
		.supp = n->supp,
		.wh = n->wh,
	};
	struct actions_deps ad = {
		.node_id = n->me->id,
		.rpc = n->rpc,
		.commit = n->commit,
		.owner = n->owner,
	};

	n->dlog = dlog_open(n->base, n->me->data_dir);
	sd.dlog = n->dlog;
	n->sched = scheduler_new(&sd);
	id.sched = ad.sched = n->sched;
	n->ingest = ingest_new(&id);
	n->actions = actions_new(&ad);
}

/* ---- ops: metrics and shaping across the cluster (admin is per
 * request: node_on_admin()) ---- */

static struct metrics *
node_ops_new(struct node *n)
{
	const struct metrics_deps deps = {
		.base = n->base,
		.me = n->me,
		.store = n->store,
		.commit = n->commit,
		.owner = n->owner,
		.repl = n->repl,
		.ingest = n->ingest,
		.sched = n->sched,
		.deliver = n->deliver,
		.wh = n->wh,
		.sts = n->sts,
		.tlsrpt = n->tlsrpt,
	};
	const struct adapt_ops_deps ad = {
		.base = n->base,
		.zctx = n->zctx,
		.node_id = n->me->id,
		.rpc = n->rpc,
		.owner = n->owner,
		.deliver = n->deliver,
		.dlog = n->dlog,
	};

	n->adapt_ops = adapt_ops_new(&ad);
	return metrics_new(&deps);
}

#define NODE_STOP_POLL_MS 20
#define NODE_STOP_SLACK_MS 1000  /* past replication.peer_timeout_ms */

/* Shutting down: leave the loop once every enqueue taken has its answer
 * (committed, and confirmed by the peer or timed out), or at the deadline.
 * What the router got no answer for it sends again: at-least-once. */
static void
node_on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	struct timeval tv = { 0, NODE_STOP_POLL_MS * 1000 };
	uint64_t pending = ingest_pending(n->ingest);

	(void)fd;
	(void)what;
	if (pending == 0 || clock_mono_ms() >= n->stop_deadline_ms) {
		if (pending)
			log_warn("node id=%s event=stop_deadline pending=%llu",
				 n->me->id, (unsigned long long)pending);
		event_base_loopbreak(n->base);
		return;
	}
	evtimer_add(n->stop_timer, &tv);
}

/* SIGTERM/SIGINT: answer new enqueues "try again" (the router resends
 * after our restart or to the peer after a failover), let those already
 * taken finish, then leave the loop; node_free() commits what is pending
 * and closes LMDB. Deliveries in flight are abandoned: due again at the
 * next start. A second signal leaves at once. */
static void
node_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct node *n = arg;

	(void)what;
	if (n->is_stopping) {
		log_warn("node id=%s event=stop_now signal=%d", n->me->id,
			 (int)sig);
		event_base_loopbreak(n->base);
		return;
	}
	n->is_stopping = true;
	ingest_stop(n->ingest);
	sd_notify(0, "STOPPING=1\nSTATUS=Finishing enqueues in flight");
	log_info("node id=%s event=stopping signal=%d pending=%llu", n->me->id,
		 (int)sig, (unsigned long long)ingest_pending(n->ingest));
	n->stop_deadline_ms = clock_mono_ms() +
			      n->cfg->replication.peer_timeout_ms +
			      NODE_STOP_SLACK_MS;
	n->stop_timer = evtimer_new(n->base, node_on_stop_timer, n);
	node_on_stop_timer(-1, 0, n);
}

#define NODE_RELEASE_CHECK_S 1
#define NODE_RELEASE_PAGES_S 10            /* at least this often */
#define NODE_MAPPED_SOFT (48ull << 20)     /* or when more is mapped */

/* The queue pages this node read (to store, deliver, replicate or list)
 * leave its RSS; they stay in the page cache. Every 10 s, and sooner when
 * more than 48 MiB of them are resident: enqueueing at full speed into a
 * million-message queue touched 220 MiB of them in 10 s (bench/scale.sh). */
static void
node_on_release_timer(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;
	unsigned long long mapped = 0;
	uint64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	if (now - n->released_ms < NODE_RELEASE_PAGES_S * 1000 &&
	    (proc_mapped_resident(&mapped) != 0 || mapped <= NODE_MAPPED_SOFT))
		return;
	n->released_ms = now;
	store_release_pages(n->store);
}

/* SIGHUP: reopen log.file and data_dir/delivery.log (logrotate), read
 * the shaping rules again. */
static void
node_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct node *n = arg;

	(void)sig;
	(void)what;
	log_reopen();
	dlog_reopen(n->dlog);
	log_info("node id=%s event=sighup", n->me->id);
	adapt_ops_reload(n->adapt_ops);
}

int
node_new(const struct config *cfg, const struct cfg_node *me,
	 struct event_base *base, bool join, struct node **out)
{
	struct node *n = xcalloc(1, sizeof(*n));
	int64_t max_msg = (int64_t)cfg->router.max_message_size +
			  WIRE_BODY_SLACK + WIRE_META_MAX;
	Shoal__ShardMap *map = NULL;
	int rc;

	n->cfg = cfg;
	n->me = me;
	n->base = base;
	n->started_at = (uint64_t)time(NULL);
	while (n->incarnation == 0)
		if (getrandom(&n->incarnation, sizeof(n->incarnation), 0) !=
		    (ssize_t)sizeof(n->incarnation))
			n->incarnation =
				((uint64_t)time(NULL) << 20) ^ clock_mono_us();
	if (mkdir(me->data_dir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		log_error_errno("node id=%s event=start data_dir=%s", me->id,
				me->data_dir);
		goto fail;
	}
	rc = store_open(me->data_dir, me->map_size, &n->store);
	if (rc != 0)
		goto fail;
	rc = join_load_map(n->store, cfg, me, join, &map);
	if (rc != 0)
		goto fail;
	/* a resend or handback of a finished qid can come as long as a copy
	 * of it may be queued anywhere (node/store/store.c, tombstones) */
	store_tomb_keep(n->store, (uint64_t)cfg->delivery.max_queue_lifetime +
					  NODE_TOMB_MARGIN_S);
	n->commit = commit_new(base, n->store);
	n->zctx = zmq_ctx_new();
	/* bound now, served from the loop: the modules below answer on it */
	rc = rpc_open(base, n->zctx, me->id, me->endpoint, max_msg, &n->rpc);
	if (rc != 0) {
		shardmap_free(map);
		goto fail;
	}
	rc = node_cluster_new(n, map);
	if (rc != 0)
		goto fail;
	n->deliver = node_deliver_new(n);
	if (n->deliver == NULL) {
		rc = SHOAL_E_CONFIG;
		goto fail;
	}
	n->supp = node_suppress_new(n);
	n->wh = webhooks_new(&(struct webhooks_deps){
		.base = base,
		.cfg = cfg,
		.node_id = me->id,
		.store = n->store,
		.commit = n->commit,
		.owner = n->owner,
	});
	if (n->wh == NULL && cfg->delivery.n_webhooks > 0) {
		rc = SHOAL_E_CONFIG;
		goto fail;
	}
	node_queue_new(n);
	rc = node_policy_new(n);
	if (rc != 0)
		goto fail;
	n->metrics = node_ops_new(n);
	rpc_on(n->rpc, WIRE_TAG_ROUTER, node_on_router_link, n);
	rpc_on(n->rpc, WIRE_TAG_ADMIN, node_on_admin_link, n);
	rpc_on(n->rpc, WIRE_TAG_NODE, node_on_peer_link, n);
	rpc_on(n->rpc, WIRE_TAG_MOVE, node_on_move_link, n);
	n->sig_term = evsignal_new(base, SIGTERM, node_on_signal, n);
	n->sig_int = evsignal_new(base, SIGINT, node_on_signal, n);
	n->sig_hup = evsignal_new(base, SIGHUP, node_on_hup, n);
	event_add(n->sig_term, NULL);
	event_add(n->sig_int, NULL);
	event_add(n->sig_hup, NULL);
	n->release_timer = event_new(base, -1, EV_PERSIST,
				     node_on_release_timer, n);
	n->released_ms = clock_mono_ms();
	event_add(n->release_timer,
		  &(struct timeval){ NODE_RELEASE_CHECK_S, 0 });
	*out = n;
	return 0;
fail:
	node_free(n);
	return rc;
}

void
node_free(struct node *n)
{
	if (n == NULL)
		return;
	metrics_free(n->metrics);
	n->metrics = NULL; /* delivery's teardown must not count into it */
	adapt_ops_free(n->adapt_ops); /* reads delivery's table */
	n->adapt_ops = NULL;
	/* TLS-RPT's counts go to the store; the policy lookups stop while
	 * delivery's resolver still runs; delivery, which holds the jobs in
	 * flight, cancels its waits and hands its policies back */
	tlsrpt_free(n->tlsrpt);
	n->tlsrpt = NULL;
	sts_stop(n->sts);
	sts_ops_free(n->sts_ops);
	n->sts_ops = NULL;
	deliver_free(n->deliver);
	n->deliver = NULL;
	sts_free(n->sts);
	n->sts = NULL;
	http_client_free(n->http);
	n->http = NULL;
	/* Then in dependency order: commit items and peer waits call back
	 * into ingest, the scheduler, moves, suppression and the front socket
	 * (replies), so all of those outlive them. Commit what is queued
	 * (a done callback may start a peer wait), answer the peer waits
	 * (a refusal under require_peer queues its withdrawal), commit those
	 * too. The hook ships the journal through repl: off before it goes. */
	if (n->commit) {
		commit_flush(n->commit);
		commit_set_hook(n->commit, NULL);
	}
	repl_free(n->repl);
	n->repl = NULL;
	if (n->commit)
		commit_flush(n->commit);
	/* a move batch's commit and its peer wait call back into the move */
	move_free(n->move);
	n->move = NULL;
	scheduler_free(n->sched);
	n->sched = NULL;
	suppress_free(n->supp);
	n->supp = NULL;
	actions_free(n->actions);
	n->actions = NULL;
	ingest_free(n->ingest);
	n->ingest = NULL;
	dlog_close(n->dlog);
	if (n->sig_term)
		event_free(n->sig_term);
	if (n->sig_int)
		event_free(n->sig_int);
	if (n->sig_hup)
		event_free(n->sig_hup);
	if (n->stop_timer)
		event_free(n->stop_timer);
	if (n->release_timer)
		event_free(n->release_timer);
	rpc_close(n->rpc);
	if (n->zctx)
		zmq_ctx_term(n->zctx);
	commit_free(n->commit);
	/* after the last commit: a deletion's done callback is its */
	webhooks_free(n->wh);
	owner_free(n->owner); /* and the map n->map points to */
	n->map = NULL;
	store_close(n->store);
	free(n);
}
