/* The admin link on a node: answers shoalctl's status, queue list and
 * queue show requests from the store, in one read-only transaction each,
 * through rpc_reply_admin() (node/rpc/rpc.h, which also owns the rule for
 * a reply too large to read). Status counts come from the store's
 * per-shard queue counts (kept in the commit, node/store/store.h), never from a
 * walk: a status costs O(shards) at any queue size. Requests that change
 * things (failover, moves, queue actions, suppression) go to the defer
 * hook node.c installs, with the request's ticket.
 *
 * Handles untrusted input: the request comes from whoever reached the node
 * endpoint. Everything is checked before use; a bad request is answered
 * with STATUS_BAD_REQUEST and logged, never trusted.
 *
 * Error mapping: a request that is wrong (bad qid, over-long domain, state
 * out of range, a qid this node does not hold) gets STATUS_BAD_REQUEST; a
 * store failure gets STATUS_INTERNAL with the error's name. An unknown qid
 * is BAD_REQUEST with the message WIRE_MSG_UNKNOWN_QID, so shoalctl can
 * tell "not here" apart from a refused request. */
#include "node/ops/admin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/queue/scheduler.h"
#include "node/queue/tenants.h"
#include "node/rpc/rpc.h"
#include "node/store/store.h"
#include "proto/cli_node.pb-c.h"

/* A store walk callback's "stop here" value; never a store error code. */
#define ADMIN_WALK_STOP 1

/* Bytes a QueueListReply adds per entry on top of the entry itself: the
 * field tag and a length prefix of at most 5 bytes. */
#define ADMIN_ENTRY_OVERHEAD 6

static const char *const admin_kind_names[] = {
	[SHOAL__ADMIN_REQUEST__BODY_STATUS] = "status",
	[SHOAL__ADMIN_REQUEST__BODY_LIST] = "list",
	[SHOAL__ADMIN_REQUEST__BODY_SHOW] = "show",
	[SHOAL__ADMIN_REQUEST__BODY_FAILOVER] = "failover",
	[SHOAL__ADMIN_REQUEST__BODY_ACTION] = "action",
	[SHOAL__ADMIN_REQUEST__BODY_FLUSH] = "flush",
	[SHOAL__ADMIN_REQUEST__BODY_MOVE] = "move",
	[SHOAL__ADMIN_REQUEST__BODY_SUPPRESS] = "suppress",
	[SHOAL__ADMIN_REQUEST__BODY_SHAPING] = "shaping",
	[SHOAL__ADMIN_REQUEST__BODY_WEBHOOKS] = "webhooks",
	[SHOAL__ADMIN_REQUEST__BODY_TLS_REPORT] = "tls_report",
	[SHOAL__ADMIN_REQUEST__BODY_STS_POLICY] = "sts_policy",
};

/* Answer with an error: no body, a status and a message. */
static void
admin_fail(const struct admin_ctx *ctx, const struct rpc_ticket *t,
	   Shoal__AdminReply *r, Shoal__Status status, const char *text)
{
	r->body_case = SHOAL__ADMIN_REPLY__BODY__NOT_SET;
	r->status = status;
	r->message = (char *)text;
	rpc_reply_admin(ctx->rpc, t, r);
}

static void
admin_bad(const struct admin_ctx *ctx, const struct rpc_ticket *t,
	  Shoal__AdminReply *r, const char *why)
{
	log_warn("admin request_id=%llu event=bad_request reason=\"%s\"",
		 (unsigned long long)t->request_id, why);
	admin_fail(ctx, t, r, SHOAL__STATUS__STATUS_BAD_REQUEST, why);
}

static void
admin_internal(const struct admin_ctx *ctx, const struct rpc_ticket *t,
	       Shoal__AdminReply *r, const char *what, int err)
{
	log_error("admin request_id=%llu event=failed op=%s error=\"%s\"",
		  (unsigned long long)t->request_id, what,
		  shoal_strerror(err));
	admin_fail(ctx, t, r, SHOAL__STATUS__STATUS_INTERNAL,
		   shoal_strerror(err));
}

/* Unpack a stored meta record. Our own disk wrote it, but a record we
 * cannot read must not take the admin link down: NULL, and the caller
 * counts it. Caller frees with shoal__stored_message__free_unpacked(). */
static Shoal__StoredMessage *
admin_meta_unpack(const void *meta, size_t len)
{
	Shoal__StoredMessage *sm;

	sm = shoal__stored_message__unpack(NULL, len, meta);
	if (sm != NULL && sm->envelope == NULL) {
		shoal__stored_message__free_unpacked(sm, NULL);
		sm = NULL;
	}
	return sm;
}

/* One warning per walk, not one per record (STYLE: rate-limit repeats). */
static void
admin_log_unreadable(uint64_t request_id, uint64_t n, const char *first)
{
	if (n > 0)
		log_warn("admin request_id=%llu event=unreadable_meta "
			 "count=%llu first_qid=%s",
			 (unsigned long long)request_id, (unsigned long long)n,
			 first);
}

/* A tenant a request names: "" (none), or a name envelope_tenant_ok()
 * takes (what the router can have stored). NULL when it may be used,
 * else why not. */
static const char *
admin_tenant_check(const char *tenant)
{
	if (tenant[0] == '\0')
		return NULL;
	if (strnlen(tenant, ADMIN_TENANT_MAX + 1) > ADMIN_TENANT_MAX)
		return "tenant too long";
	return envelope_tenant_ok(tenant) ? NULL : "bad tenant";
}

/* ---- status ---------------------------------------------------------- */

/* Whether the message is ours to report (not a replica copy). */
static bool
admin_is_primary(const struct admin_ctx *ctx, uint32_t shard)
{
	const char *p = shardmap_primary(ctx->map, shard);

	return p != NULL && strcmp(p, ctx->node_id) == 0;
}

/* The queue as status reports it, from the store's counts: O(shards),
 * whatever the queue's size (node/store/store.h, "queue counts"). */
struct admin_count {
	const struct admin_ctx *ctx;
	uint64_t *per_shard;           /* n_shards of them */
	struct admin_depth depth;      /* the primary shards' */
	uint64_t replica;              /* messages of the other shards */
};

static int
admin_count_shard(uint32_t shard, const struct store_counts *sc, void *arg)
{
	struct admin_count *c = arg;

	if (!admin_is_primary(c->ctx, shard)) {
		c->replica += sc->messages;
		return 0;
	}
	if (c->per_shard != NULL)
		c->per_shard[shard] = sc->messages; /* < n_shards: primary */
	c->depth.messages += sc->messages;
	c->depth.queued += sc->queued;
	c->depth.deferred += sc->deferred;
	c->depth.held += sc->held;
	return 0;
}

/* The arrival time of a shard's first message: qids sort by the time
 * they were made, so the first key of the shard's index is its oldest
 * message. One that does not say (unreadable, no arrival time) gives
 * its qid's time. */
static int
admin_first_arrival(const char *qid, uint32_t shard, const void *meta,
		    size_t meta_len, void *arg)
{
	Shoal__StoredMessage *sm = admin_meta_unpack(meta, meta_len);
	uint64_t *at = arg;

	(void)shard;
	if (sm != NULL)
		*at = sm->envelope->arrival_time;
	if (*at == 0 && qid_valid(qid, strlen(qid)))
		*at = qid_time_us(qid) / 1000000;
	if (sm != NULL)
		shoal__stored_message__free_unpacked(sm, NULL);
	return ADMIN_WALK_STOP;
}

/* The oldest arrival among the primary shards' messages, 0 when none:
 * one index lookup per shard that holds messages, O(shards log queue). */
static uint64_t
admin_oldest(struct store_txn *t, const struct admin_count *c)
{
	uint64_t oldest = 0;

	for (size_t s = 0; s < c->ctx->map->n_shards; s++) {
		uint64_t at = 0;

		if (c->per_shard[s] == 0)
			continue;
		store_shard_foreach(t, (uint32_t)s, admin_first_arrival, &at);
		if (at != 0 && (oldest == 0 || at < oldest))
			oldest = at;
	}
	return oldest;
}

/* The shards whose primary (or replica) is this node, per the map. Caller
 * frees *out with free(). */
static size_t
admin_shards_of(const Shoal__ShardMap *map, const char *id, bool primary,
		uint32_t **out)
{
	uint32_t *v = xcalloc(map->n_shards ? map->n_shards : 1, sizeof(*v));

	*out = v;
	return shardmap_shards_of(map, id,
				  primary ? SHARDMAP_PRIMARY : SHARDMAP_REPLICA,
				  v);
}

/* The scheduler's results per tenant, as StatusReply.tenants: names
 * borrowed from it for the reply. */
struct admin_tenants {
	Shoal__TenantCount *v;
	Shoal__TenantCount **ptrs;
	size_t n, cap;
};

static void
admin_tenant_one(void *arg, const char *tenant, uint64_t delivered,
		 uint64_t deferred, uint64_t bounced)
{
	struct admin_tenants *ts = arg;
	Shoal__TenantCount *tc;

	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 16;
		ts->v = xrealloc(ts->v, ts->cap * sizeof(*ts->v));
	}
	tc = &ts->v[ts->n++];
	shoal__tenant_count__init(tc);
	tc->tenant = (char *)tenant;
	tc->delivered = delivered;
	tc->deferred = deferred;
	tc->bounced = bounced;
}

/* Fill sr's tenants from the scheduler's (none without one); the caller
 * frees ts->v and ts->ptrs after the reply. */
static void
admin_status_tenants(const struct admin_ctx *ctx, Shoal__StatusReply *sr,
		     struct admin_tenants *ts)
{
	const struct tenants *t =
		ctx->sched ? scheduler_tenants(ctx->sched) : NULL;

	if (t != NULL)
		tenants_foreach(t, admin_tenant_one, ts);
	/* pointers only once v has stopped moving */
	ts->ptrs = xcalloc(ts->n ? ts->n : 1, sizeof(*ts->ptrs));
	for (size_t i = 0; i < ts->n; i++)
		ts->ptrs[i] = &ts->v[i];
	sr->n_tenants = ts->n;
	sr->tenants = ts->ptrs;
}

struct admin_routers {
	Shoal__RouterSeen v[OWNER_ROUTERS_MAX];
	Shoal__RouterSeen *ptrs[OWNER_ROUTERS_MAX];
	size_t n;
};

static void
admin_router_one(const char *id, uint64_t ms_ago, void *arg)
{
	struct admin_routers *rs = arg;

	if (rs->n == OWNER_ROUTERS_MAX)
		return;
	shoal__router_seen__init(&rs->v[rs->n]);
	rs->v[rs->n].id = (char *)id;
	rs->v[rs->n].seen_ms = ms_ago;
	rs->ptrs[rs->n] = &rs->v[rs->n];
	rs->n++;
}

static void
admin_status(const struct admin_ctx *ctx, const struct rpc_ticket *tk,
	     Shoal__AdminReply *r)
{
	Shoal__StatusReply sr = SHOAL__STATUS_REPLY__INIT;
	Shoal__Replication repl = SHOAL__REPLICATION__INIT;
	struct admin_routers routers = { 0 };
	struct admin_tenants tenants = { 0 };
	struct admin_count c;
	struct store_txn *t;
	uint64_t now = (uint64_t)time(NULL);
	int rc;

	memset(&c, 0, sizeof(c));
	c.ctx = ctx;
	c.per_shard = xcalloc(ctx->map->n_shards ? ctx->map->n_shards : 1,
			      sizeof(*c.per_shard));
	rc = store_txn_begin(ctx->store, true, &t);
	if (rc != 0) {
		admin_internal(ctx, tk, r, "txn_begin", rc);
		free(c.per_shard);
		return;
	}
	rc = store_count_foreach(t, admin_count_shard, &c);
	if (rc == 0)
		sr.oldest_arrival = admin_oldest(t, &c);
	store_txn_abort(t);
	if (rc != 0) {
		admin_internal(ctx, tk, r, "count_foreach", rc);
		free(c.per_shard);
		return;
	}
	sr.node_id = (char *)ctx->node_id;
	sr.epoch = ctx->map->epoch;
	sr.messages = c.depth.messages;
	sr.rcpts_queued = c.depth.queued;
	sr.rcpts_deferred = c.depth.deferred;
	sr.msgs_held = c.depth.held;
	sr.n_primary_shards = admin_shards_of(ctx->map, ctx->node_id, true,
					      &sr.primary_shards);
	sr.n_replica_shards = admin_shards_of(ctx->map, ctx->node_id, false,
					      &sr.replica_shards);
	sr.uptime_s = now > ctx->started_at ? now - ctx->started_at : 0;
	sr.map = (Shoal__ShardMap *)ctx->map;
	if (ctx->repl) {
		/* the copies come from the counts too, not from a walk */
		repl_status(ctx->repl, &repl);
		repl.replica_messages = c.replica;
		sr.replication = &repl;
	}
	if (ctx->sched)
		scheduler_last_minute(ctx->sched, &sr.delivered_1m,
				      &sr.deferred_1m, &sr.bounced_1m);
	if (ctx->owner)
		owner_routers(ctx->owner, admin_router_one, &routers);
	sr.n_routers = routers.n;
	sr.routers = routers.ptrs;
	sr.n_shard_messages = ctx->map->n_shards;
	sr.shard_messages = c.per_shard;
	admin_status_tenants(ctx, &sr, &tenants);
	r->body_case = SHOAL__ADMIN_REPLY__BODY_STATUS_REPLY;
	r->status_reply = &sr;
	rpc_reply_admin(ctx->rpc, tk, r);
	free(tenants.ptrs);
	free(tenants.v);
	free(sr.primary_shards);
	free(sr.replica_shards);
	free(c.per_shard);
}

int
admin_queue_depth(struct store *st, const Shoal__ShardMap *map,
		  const char *node_id, struct admin_depth *out)
{
	struct admin_ctx ctx = { .store = st, .node_id = node_id, .map = map };
	struct admin_count c;
	struct store_txn *t;
	int rc;

	memset(&c, 0, sizeof(c));
	c.ctx = &ctx;
	rc = store_txn_begin(st, true, &t);
	if (rc != 0)
		return rc;
	rc = store_count_foreach(t, admin_count_shard, &c);
	store_txn_abort(t);
	if (rc != 0)
		return rc;
	*out = c.depth;
	return 0;
}

/* ---- queue list ------------------------------------------------------ */

struct admin_list_item {
	char qid[QID_MAX];
	Shoal__StoredMessage *sm;      /* owned */
	Shoal__QueueEntry entry;       /* points into sm and qid */
};

struct admin_list {
	const struct admin_ctx *ctx;
	const Shoal__QueueListRequest *req;
	size_t limit;
	struct admin_list_item *items; /* limit of them */
	size_t n;
	size_t bytes;                  /* packed entries so far */
	bool has_more;
	uint64_t unreadable;
	char first_unreadable[QID_MAX];
};

/* A message matches when it is of the tenant (if given, exactly), the
 * held test passes and one recipient matches both the domain (if given)
 * and the state (for QUEUED / DEFERRED): so "--domain d --state deferred"
 * means "deferred for d", not "deferred for someone and also addressed to
 * d". */
static bool
admin_list_match(const Shoal__QueueListRequest *req,
		 const Shoal__StoredMessage *sm)
{
	const Shoal__Envelope *env = sm->envelope;
	int want = -1;

	if (req->tenant[0] != '\0' && strcmp(env->tenant, req->tenant) != 0)
		return false;
	switch (req->state) {
	case SHOAL__STATE_FILTER__FILTER_ANY:
		break;
	case SHOAL__STATE_FILTER__FILTER_QUEUED:
		if (sm->held)
			return false;
		want = SHOAL__RCPT_STATE__RCPT_QUEUED;
		break;
	case SHOAL__STATE_FILTER__FILTER_DEFERRED:
		if (sm->held)
			return false;
		want = SHOAL__RCPT_STATE__RCPT_DEFERRED;
		break;
	case SHOAL__STATE_FILTER__FILTER_HELD:
		if (!sm->held)
			return false;
		break;
	default:
		return false;
	}
	if (req->domain[0] == '\0' && want < 0)
		return true;
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const Shoal__Recipient *rc = env->rcpts[i];

		if (want >= 0 && (int)rc->state != want)
			continue;
		if (req->domain[0] != '\0' &&
		    strcasecmp(envelope_domain(rc->address), req->domain) != 0)
			continue;
		return true;
	}
	return false;
}

static int
admin_list_one(const char *qid, uint32_t shard, const void *meta,
	       size_t meta_len, void *arg)
{
	struct admin_list *l = arg;
	const Shoal__QueueListRequest *req = l->req;
	struct admin_list_item *it;
	Shoal__StoredMessage *sm;
	size_t size;

	/* the walk starts at the first qid: paging is O(queue) per page */
	if (req->after_qid[0] != '\0' && strcmp(qid, req->after_qid) <= 0)
		return 0;
	if (!admin_is_primary(l->ctx, shard))
		return 0;
	sm = admin_meta_unpack(meta, meta_len);
	if (sm == NULL) {
		if (l->unreadable++ == 0)
			snprintf(l->first_unreadable,
				 sizeof(l->first_unreadable), "%.*s",
				 QID_MAX - 1, qid);
		return 0;
	}
	if (!admin_list_match(req, sm)) {
		shoal__stored_message__free_unpacked(sm, NULL);
		return 0;
	}
	if (l->n == l->limit) {
		l->has_more = true;
		shoal__stored_message__free_unpacked(sm, NULL);
		return ADMIN_WALK_STOP;
	}
	it = &l->items[l->n];
	snprintf(it->qid, sizeof(it->qid), "%.*s", QID_MAX - 1, qid);
	shoal__queue_entry__init(&it->entry);
	it->entry.qid = it->qid;
	it->entry.shard = shard;
	it->entry.sender = sm->envelope->mail_from;
	it->entry.n_rcpts = sm->envelope->n_rcpts;
	it->entry.rcpts = sm->envelope->rcpts;
	it->entry.size = sm->envelope->size;
	it->entry.arrival_time = sm->envelope->arrival_time;
	it->entry.held = sm->held;
	it->entry.tenant = sm->envelope->tenant;
	size = shoal__queue_entry__get_packed_size(&it->entry) +
	       ADMIN_ENTRY_OVERHEAD;
	if (l->n > 0 && l->bytes + size > ADMIN_LIST_BYTES_MAX) {
		l->has_more = true;
		shoal__stored_message__free_unpacked(sm, NULL);
		return ADMIN_WALK_STOP;
	}
	it->sm = sm;
	l->bytes += size;
	l->n++;
	return 0;
}

static const char *
admin_list_check(const Shoal__QueueListRequest *req)
{
	size_t n;

	if (strnlen(req->domain, ADMIN_DOMAIN_MAX + 1) > ADMIN_DOMAIN_MAX)
		return "domain too long";
	n = strnlen(req->after_qid, QID_MAX);
	if (n > 0 && !qid_valid(req->after_qid, n))
		return "bad after_qid";
	if ((unsigned)req->state > SHOAL__STATE_FILTER__FILTER_HELD)
		return "bad state filter";
	return admin_tenant_check(req->tenant);
}

static void
admin_list(const struct admin_ctx *ctx, const struct rpc_ticket *tk,
	   const Shoal__QueueListRequest *req, Shoal__AdminReply *r)
{
	Shoal__QueueListReply lr = SHOAL__QUEUE_LIST_REPLY__INIT;
	Shoal__QueueEntry **ptrs = NULL;
	struct admin_list l;
	struct store_txn *t;
	const char *why;
	int rc;

	why = admin_list_check(req);
	if (why != NULL) {
		admin_bad(ctx, tk, r, why);
		return;
	}
	memset(&l, 0, sizeof(l));
	l.ctx = ctx;
	l.req = req;
	l.limit = req->limit == 0 || req->limit > ADMIN_LIST_MAX ?
			  ADMIN_LIST_MAX :
			  req->limit;
	l.items = xcalloc(l.limit, sizeof(*l.items));
	rc = store_txn_begin(ctx->store, true, &t);
	if (rc != 0) {
		admin_internal(ctx, tk, r, "txn_begin", rc);
		goto done;
	}
	/* the entries borrow qids and records we copied or unpacked, so the
	 * transaction need not outlive the walk */
	rc = store_msg_foreach_after(t, req->after_qid, admin_list_one, &l);
	store_txn_abort(t);
	admin_log_unreadable(tk->request_id, l.unreadable, l.first_unreadable);
	if (rc != 0 && rc != ADMIN_WALK_STOP) {
		admin_internal(ctx, tk, r, "msg_foreach", rc);
		goto done;
	}
	ptrs = xcalloc(l.n ? l.n : 1, sizeof(*ptrs));
	for (size_t i = 0; i < l.n; i++)
		ptrs[i] = &l.items[i].entry;
	lr.n_entries = l.n;
	lr.entries = ptrs;
	lr.more = l.has_more;
	r->body_case = SHOAL__ADMIN_REPLY__BODY_LIST;
	r->list = &lr;
	rpc_reply_admin(ctx->rpc, tk, r);
done:
	for (size_t i = 0; i < l.n; i++)
		shoal__stored_message__free_unpacked(l.items[i].sm, NULL);
	free(ptrs);
	free(l.items);
}

/* ---- queue show ------------------------------------------------------ */

/* The header section: up to and including the first empty line, or the
 * whole body when it has none, cut to ADMIN_HEADERS_MAX either way. */
static size_t
admin_header_len(const char *body, size_t len)
{
	size_t scan = len < ADMIN_HEADERS_MAX ? len : ADMIN_HEADERS_MAX;
	const char *end;

	if (scan >= 2 && body[0] == '\r' && body[1] == '\n')
		return 2; /* no header fields at all */
	end = memmem(body, scan, "\r\n\r\n", 4);
	if (end != NULL)
		return (size_t)(end - body) + 4;
	return scan;
}

static void
admin_show(const struct admin_ctx *ctx, const struct rpc_ticket *tk,
	   const Shoal__QueueShowRequest *req, Shoal__AdminReply *r)
{
	Shoal__QueueShowReply shr = SHOAL__QUEUE_SHOW_REPLY__INIT;
	Shoal__StoredMessage *sm = NULL;
	struct store_txn *t;
	const void *p;
	size_t len, qlen;
	int rc;

	qlen = strnlen(req->qid, QID_MAX);
	if (!qid_valid(req->qid, qlen)) {
		admin_bad(ctx, tk, r, "bad qid");
		return;
	}
	rc = store_txn_begin(ctx->store, true, &t);
	if (rc != 0) {
		admin_internal(ctx, tk, r, "txn_begin", rc);
		return;
	}
	rc = store_msg_get_meta(t, req->qid, &p, &len);
	if (rc == -ENOENT) {
		/* not a warning: asking every node is how shoalctl finds it */
		log_debug(LOG_SUB_MAIN, "admin request_id=%llu qid=%s "
			  "event=unknown_qid",
			  (unsigned long long)tk->request_id, req->qid);
		admin_fail(ctx, tk, r, SHOAL__STATUS__STATUS_BAD_REQUEST,
			   WIRE_MSG_UNKNOWN_QID);
		goto done;
	}
	if (rc != 0) {
		admin_internal(ctx, tk, r, "get_meta", rc);
		goto done;
	}
	sm = admin_meta_unpack(p, len);
	if (sm != NULL && !admin_is_primary(ctx, sm->shard)) {
		/* a replica copy: the primary answers for it */
		admin_fail(ctx, tk, r, SHOAL__STATUS__STATUS_BAD_REQUEST,
			   WIRE_MSG_UNKNOWN_QID);
		goto done;
	}
	if (sm == NULL) {
		admin_log_unreadable(tk->request_id, 1, req->qid);
		admin_internal(ctx, tk, r, "unpack_meta", SHOAL_E_PROTO);
		goto done;
	}
	rc = store_msg_get_body(t, req->qid, &p, &len);
	if (rc == 0) {
		shr.headers.data = (uint8_t *)p;
		shr.headers.len = admin_header_len(p, len);
	} else {
		/* the envelope is still worth showing */
		log_warn("admin request_id=%llu qid=%s event=body_unreadable "
			 "error=\"%s\"",
			 (unsigned long long)tk->request_id, req->qid,
			 shoal_strerror(rc));
	}
	shr.msg = sm;
	r->body_case = SHOAL__ADMIN_REPLY__BODY_SHOW;
	r->show = &shr;
	/* the body is borrowed from t: reply before it ends */
	rpc_reply_admin(ctx->rpc, tk, r);
done:
	store_txn_abort(t);
	if (sm != NULL)
		shoal__stored_message__free_unpacked(sm, NULL);
}

/* ---- requests answered later ------------------------------------------ */

/* The shape of a deferred request; NULL when it may go on. */
static const char *
admin_defer_check(const Shoal__AdminRequest *rq)
{
	const char *why;

	switch (rq->body_case) {
	case SHOAL__ADMIN_REQUEST__BODY_FAILOVER:
		if (strnlen(rq->failover->node_id, 256) > 255)
			return "node id too long";
		return NULL;
	case SHOAL__ADMIN_REQUEST__BODY_ACTION:
		if ((unsigned)rq->action->action >
		    SHOAL__QUEUE_ACTION__ACTION_BOUNCE)
			return "unknown action";
		if ((why = admin_tenant_check(rq->action->tenant)) != NULL)
			return why;
		/* a tenant means "all its messages": never with qids */
		if (rq->action->tenant[0] != '\0')
			return rq->action->n_qids ? "tenant and queue ids "
						    "together" :
						    NULL;
		if (rq->action->n_qids == 0 ||
		    rq->action->n_qids > ADMIN_ACTION_QIDS_MAX)
			return "bad number of queue ids";
		for (size_t i = 0; i < rq->action->n_qids; i++)
			if (!qid_valid(rq->action->qids[i],
				       strnlen(rq->action->qids[i], QID_MAX)))
				return "bad qid";
		return NULL;
	case SHOAL__ADMIN_REQUEST__BODY_FLUSH:
		if (strnlen(rq->flush->domain, ADMIN_DOMAIN_MAX + 1) >
		    ADMIN_DOMAIN_MAX)
			return "domain too long";
		return admin_tenant_check(rq->flush->tenant);
	case SHOAL__ADMIN_REQUEST__BODY_MOVE:
		if (strnlen(rq->move->to, 256) > 255)
			return "node id too long";
		return NULL;
	case SHOAL__ADMIN_REQUEST__BODY_SUPPRESS:
		return NULL;	/* node/suppress/suppress.c checks the rest */
	case SHOAL__ADMIN_REQUEST__BODY_SHAPING:
		return NULL;	/* node/ops/adapt_ops.c checks the rest */
	case SHOAL__ADMIN_REQUEST__BODY_WEBHOOKS:
		return NULL;	/* no fields */
	case SHOAL__ADMIN_REQUEST__BODY_TLS_REPORT:
		if (strnlen(rq->tls_report->domain, ADMIN_DOMAIN_MAX + 1) >
		    ADMIN_DOMAIN_MAX)
			return "domain too long";
		return NULL;	/* node/ops/tls_ops.c checks the rest */
	case SHOAL__ADMIN_REQUEST__BODY_STS_POLICY:
		return NULL;	/* node/policy/sts.c sts_learn() checks it */
	default:
		return "unknown request";
	}
}

/* ---- dispatch -------------------------------------------------------- */

void
admin_handle(const struct admin_ctx *ctx, zmq_msg_t *frames, size_t nframes)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	Shoal__AdminRequest *rq = NULL;
	struct rpc_ticket tk;
	const char *why;
	size_t len;

	if (nframes != 3) {
		log_warn("admin event=bad_request reason=\"%zu frames\"",
			 nframes);
		return;
	}
	if (rpc_ticket_set(&tk, &frames[0], 0) != 0) {
		log_warn("admin event=bad_request reason=\"no routing id\"");
		return;
	}
	r.node_id = (char *)ctx->node_id;
	len = zmq_msg_size(&frames[2]);
	if (len > ADMIN_REQUEST_MAX) {
		admin_bad(ctx, &tk, &r, "request too large");
		return;
	}
	rq = shoal__admin_request__unpack(NULL, len, zmq_msg_data(&frames[2]));
	if (rq == NULL) {
		admin_bad(ctx, &tk, &r, "undecodable request");
		return;
	}
	tk.request_id = rq->request_id;
	if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_STATUS ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_LIST ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_SHOW ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_FAILOVER ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_ACTION ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_FLUSH ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_MOVE ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_SUPPRESS ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_SHAPING ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_WEBHOOKS ||
	    rq->body_case == SHOAL__ADMIN_REQUEST__BODY_TLS_REPORT)
		log_debug(LOG_SUB_MAIN, "admin request_id=%llu event=request "
			  "kind=%s",
			  (unsigned long long)rq->request_id,
			  admin_kind_names[rq->body_case]);
	switch (rq->body_case) {
	case SHOAL__ADMIN_REQUEST__BODY_STATUS:
		admin_status(ctx, &tk, &r);
		break;
	case SHOAL__ADMIN_REQUEST__BODY_LIST:
		admin_list(ctx, &tk, rq->list, &r);
		break;
	case SHOAL__ADMIN_REQUEST__BODY_SHOW:
		admin_show(ctx, &tk, rq->show, &r);
		break;
	case SHOAL__ADMIN_REQUEST__BODY_FAILOVER:
	case SHOAL__ADMIN_REQUEST__BODY_ACTION:
	case SHOAL__ADMIN_REQUEST__BODY_FLUSH:
	case SHOAL__ADMIN_REQUEST__BODY_MOVE:
	case SHOAL__ADMIN_REQUEST__BODY_SUPPRESS:
	case SHOAL__ADMIN_REQUEST__BODY_SHAPING:
	case SHOAL__ADMIN_REQUEST__BODY_WEBHOOKS:
	case SHOAL__ADMIN_REQUEST__BODY_TLS_REPORT:
	case SHOAL__ADMIN_REQUEST__BODY_STS_POLICY:
		why = admin_defer_check(rq);
		if (ctx->defer == NULL)
			admin_bad(ctx, &tk, &r, "not possible on this node");
		else if (why != NULL)
			admin_bad(ctx, &tk, &r, why);
		else
			ctx->defer(ctx->defer_arg, &tk, rq);
		break;
	default:
		admin_bad(ctx, &tk, &r, "unknown request");
		break;
	}
	shoal__admin_request__free_unpacked(rq, NULL);
}
