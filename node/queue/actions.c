/* Queue actions: hold, release, delete, bounce, flush. One commit item per
 * request, or per batch of a walk; its apply function may run twice
 * (commit.c retries a failed batch item by item), so it starts its results
 * afresh each time and changes nothing but the transaction and the item's
 * results: the DSN qids of a bounce are drawn before the item is queued,
 * the log lines written once it is committed.
 *
 *   hold     no attempts until released: the due entry goes, held is set
 *            (an attempt in flight finishes; its result keeps it held)
 *   release  held cleared, every pending recipient due now
 *   delete   the message is removed, no DSN
 *   bounce   every pending recipient fails now with 5.0.0; a DSN goes to
 *            the sender as for any failure (not for <> or NOTIFY=NEVER);
 *            then the message is removed
 *   flush    every pending recipient (of one domain, when given) of every
 *            message not held (of one tenant, when given) is due now
 *
 * A walk (a flush, or an action on every message of a tenant) goes
 * through the queue in qid order, one batch per commit item: a batch looks
 * at no more than ACT_SCAN_MAX messages past the point where the one
 * before ended and acts on no more than ACT_BATCH of them, so no pass of
 * the event loop grows with the queue. The next batch is queued once the
 * last is durable; the answer goes when the walk reaches the end. Each
 * message of a tenant goes through act_one(), the code a qid asked by name
 * goes through. */
#include "node/queue/actions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/queue/bounce.h"
#include "node/queue/dsn.h"
#include "node/queue/scheduler.h"
#include "node/rpc/rpc.h"
#include "node/store/commit.h"
#include "node/store/store.h"

#define ACT_BOUNCE_STATUS "5.0.0"
#define ACT_BOUNCE_TEXT "bounced by the postmaster (shoalctl queue bounce)"

static const char *const act_names[] = {
	"hold", "release", "delete", "bounce",
};

/* A walk's batch: messages looked at, and acted on. */
#define ACT_SCAN_MAX 4096
#define ACT_BATCH 512

/* Results a walk's reply lists (about 30 bytes each packed); the rest are
 * only counted, in the reply's message. */
#define ACT_WALK_LISTED_MAX 100000

/* A store walk callback's "stop here" value; never a store error code. */
#define ACT_WALK_STOP 1

struct act_item;

static void act_done(int result, void *arg);

struct actions {
	struct actions_deps d;
	struct act_item *walks;           /* walks going on, for actions_free */
};

/* What the apply did to one qid, for the log lines after the commit. */
struct act_out {
	char **bounced;                   /* recipients bounced (bounce) */
	size_t n_bounced;
	struct dsn_slot dsn;              /* bounce: drawn before the item */
};

/* One result of a walk, kept for the reply. */
struct act_rec {
	char qid[QID_MAX];
	bool done;
	const char *message;              /* static text */
};

struct act_item {
	struct actions *a;                /* NULL: abandoned by actions_free */
	struct act_item *prev, *next;     /* a->walks, while a walk */
	struct rpc_ticket ticket;
	Shoal__AdminRequest *rq;          /* our copy */
	bool is_flush;
	bool is_walk;                     /* flush, or every msg of a tenant */
	const char *tenant;               /* "" = any; points into rq */
	const char *domain;               /* flush: "" = any; into rq */
	/* this run's qids: rq's, or the batch a walk found */
	char (*batch)[QID_MAX];           /* walk: ACT_BATCH of them */
	size_t nq;
	size_t cap;                       /* entries of res, ptrs and outs */
	Shoal__QueueActionResult *res;    /* one per qid */
	Shoal__QueueActionResult **ptrs;
	struct act_out *outs;             /* one per qid */
	uint64_t now;                     /* when it came: "due now" */
	uint64_t flushed;                 /* this run */
	bool kick;                        /* new due work: wake the scheduler */
	/* a walk: where it is, and what it did so far */
	char after[QID_MAX];              /* the durable batches ended here */
	char next_after[QID_MAX];         /* this run ended here */
	bool has_more;                    /* this run stopped before the end */
	uint64_t batches;
	uint64_t flushed_total;
	struct act_rec *recs;             /* listed results */
	size_t n_recs, cap_recs;
	uint64_t unlisted_done, unlisted_failed;
};

static bool
act_pending(const Shoal__Recipient *r)
{
	return r->state == SHOAL__RCPT_STATE__RCPT_QUEUED ||
	       r->state == SHOAL__RCPT_STATE__RCPT_DEFERRED;
}

/* Store sm back, its due entry moved from old_due to sm->due. */
static int
act_save(struct store_txn *t, Shoal__StoredMessage *sm, uint64_t old_due)
{
	size_t len = shoal__stored_message__get_packed_size(sm);
	void *p = xmalloc(len ? len : 1);
	int rc = 0;

	if (old_due != sm->due && old_due != 0)
		rc = store_due_del(t, old_due, sm->qid);
	if (rc == 0 && old_due != sm->due && sm->due != 0)
		rc = store_due_put(t, sm->due, sm->qid,
				   envelope_class(sm->envelope));
	shoal__stored_message__pack(sm, p);
	if (rc == 0)
		rc = store_msg_set_meta(t, sm->qid, p, len);
	free(p);
	return rc;
}

/* Every pending recipient (of domain, when not empty) due now; returns
 * how many. */
static size_t
act_due_now(Shoal__StoredMessage *sm, const char *domain, uint64_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < sm->envelope->n_rcpts; i++) {
		Shoal__Recipient *r = sm->envelope->rcpts[i];

		if (!act_pending(r) ||
		    (domain[0] &&
		     strcasecmp(envelope_domain(r->address), domain) != 0))
			continue;
		r->next_try = now;
		n++;
	}
	if (n > 0)
		sm->due = now;
	return n;
}

/* Remove a message and its due entry. */
static int
act_remove(struct store_txn *t, const Shoal__StoredMessage *sm)
{
	int rc = sm->due ? store_due_del(t, sm->due, sm->qid) : 0;

	return rc ? rc : store_msg_retire(t, sm->qid, sm->shard);
}

static void
act_out_clear(struct act_out *o)
{
	for (size_t i = 0; i < o->n_bounced; i++)
		free(o->bounced[i]);
	free(o->bounced);
	o->bounced = NULL;
	o->n_bounced = 0;
	dsn_slot_clear(&o->dsn);
}

static int
act_bounce(struct act_item *it, struct store_txn *t, Shoal__StoredMessage *sm,
	   struct act_out *out, uint64_t now)
{
	Shoal__Envelope *env = sm->envelope;
	struct bounce_rcpt *brs = xcalloc(env->n_rcpts + 1, sizeof(*brs));
	const void *body = NULL;
	size_t n = 0, body_len = 0;
	int rc = 0;

	out->bounced = xcalloc(env->n_rcpts + 1, sizeof(*out->bounced));
	for (size_t i = 0; i < env->n_rcpts; i++) {
		Shoal__Recipient *r = env->rcpts[i];

		if (!act_pending(r))
			continue;
		r->state = SHOAL__RCPT_STATE__RCPT_BOUNCED;
		out->bounced[out->n_bounced++] = xstrdup(r->address);
		if (bounce_wanted(env, r, BOUNCE_FAILED))
			brs[n++] = (struct bounce_rcpt){
				r->address, r->orcpt, BOUNCE_FAILED,
				ACT_BOUNCE_STATUS, "", 0, ACT_BOUNCE_TEXT, "",
				r->last_tls_policy, r->last_tls,
			};
	}
	if (n > 0) {
		rc = store_msg_get_body(t, sm->qid, &body, &body_len);
		if (rc == 0) {
			struct dsn_about a = {
				.orig_qid = sm->qid,
				.env = env,
				.orig = body,
				.orig_len = body_len,
				.brs = brs,
				.n = n,
				.now = now,
			};

			rc = scheduler_dsn_store(it->a->d.sched, t, &out->dsn,
						 &a);
		}
		it->kick = true;
	}
	free(brs);
	return rc ? rc : act_remove(t, sm);
}

/* One qid: the result's text, and 0 or a store error. */
static int
act_one(struct act_item *it, struct store_txn *t, const char *qid,
	Shoal__QueueActionResult *res, struct act_out *out, uint64_t now)
{
	Shoal__QueueAction what = it->rq->action->action;
	Shoal__StoredMessage *sm;
	const void *p;
	size_t len;
	uint64_t old_due;
	int rc = store_msg_get_meta(t, qid, &p, &len);

	res->message = "";
	if (rc == -ENOENT) {
		res->message = "unknown qid";
		return 0;
	}
	if (rc != 0)
		return rc;
	sm = shoal__stored_message__unpack(NULL, len, p);
	if (sm == NULL || sm->envelope == NULL) {
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		res->message = "unreadable record";
		return 0;
	}
	if (!owner_is_primary(it->a->d.owner, sm->shard)) {
		/* a replica copy: its primary answers for it */
		res->message = "unknown qid";
		shoal__stored_message__free_unpacked(sm, NULL);
		return 0;
	}
	old_due = sm->due;
	res->done = true;
	switch (what) {
	case SHOAL__QUEUE_ACTION__ACTION_HOLD:
		if (sm->held) {
			res->message = "already held";
			break;
		}
		sm->held = true;
		sm->due = 0;
		rc = act_save(t, sm, old_due);
		break;
	case SHOAL__QUEUE_ACTION__ACTION_RELEASE:
		if (!sm->held) {
			res->message = "not held";
			break;
		}
		sm->held = false;
		sm->due = 0;
		act_due_now(sm, "", now);
		rc = act_save(t, sm, old_due);
		it->kick = true;
		break;
	case SHOAL__QUEUE_ACTION__ACTION_DELETE:
		rc = act_remove(t, sm);
		break;
	default:
		rc = act_bounce(it, t, sm, out, now);
		break;
	}
	shoal__stored_message__free_unpacked(sm, NULL);
	return rc;
}

/* The qid of this run's entry i. */
static const char *
act_qid(const struct act_item *it, size_t i)
{
	return it->is_walk ? it->batch[i] : it->rq->action->qids[i];
}

/* ---- walks ----------------------------------------------------------- */

/* Whether a stored meta record is of tenant (exactly). An unreadable one
 * is of nobody's. */
static bool
act_is_tenant(const void *meta, size_t len, const char *tenant)
{
	Shoal__StoredMessage *sm =
		shoal__stored_message__unpack(NULL, len, meta);
	bool is = sm != NULL && sm->envelope != NULL &&
		  strcmp(sm->envelope->tenant, tenant) == 0;

	if (sm)
		shoal__stored_message__free_unpacked(sm, NULL);
	return is;
}

/* One message of the walk: ours (and of the tenant, when one is given)
 * goes in the batch. */
static int
act_walk_one(const char *qid, uint32_t shard, const void *meta, size_t meta_len,
	     void *arg)
{
	struct act_item *it = arg;

	if (it->nq == ACT_BATCH) {
		it->has_more = true;
		return ACT_WALK_STOP;
	}
	if (strnlen(qid, QID_MAX) == QID_MAX) {
		/* not a key we wrote, and not one to resume after: the walk
		 * ends here rather than going round again */
		log_error("qid=%.*s... event=walk_stopped reason=\"key too "
			  "long\"",
			  QID_LEN, qid);
		return ACT_WALK_STOP;
	}
	snprintf(it->next_after, sizeof(it->next_after), "%s", qid);
	if (!owner_is_primary(it->a->d.owner, shard))
		return 0;
	if (it->tenant[0] && !act_is_tenant(meta, meta_len, it->tenant))
		return 0;
	snprintf(it->batch[it->nq++], QID_MAX, "%s", qid);
	return 0;
}

struct act_scan {
	struct act_item *it;
	size_t seen;
};

/* Count the messages looked at; stop past ACT_SCAN_MAX. */
static int
act_walk_scan(const char *qid, uint32_t shard, const void *meta,
	      size_t meta_len, void *arg)
{
	struct act_scan *sc = arg;

	if (sc->seen++ == ACT_SCAN_MAX) {
		sc->it->has_more = true;
		return ACT_WALK_STOP;
	}
	return act_walk_one(qid, shard, meta, meta_len, sc->it);
}

/* Find this run's batch: the qids after it->after that it acts on. */
static int
act_walk_batch(struct act_item *it, struct store_txn *t)
{
	struct act_scan sc = { .it = it };
	int rc;

	it->nq = 0;
	it->has_more = false;
	snprintf(it->next_after, sizeof(it->next_after), "%s", it->after);
	rc = store_msg_foreach_after(t, it->after, act_walk_scan, &sc);
	return rc == ACT_WALK_STOP ? 0 : rc;
}

/* Flush the batch's messages. */
static int
act_flush(struct act_item *it, struct store_txn *t)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < it->nq; i++) {
		Shoal__StoredMessage *sm;
		const void *p;
		size_t len;
		uint64_t old_due;

		if (store_msg_get_meta(t, it->batch[i], &p, &len) != 0)
			continue;
		sm = shoal__stored_message__unpack(NULL, len, p);
		if (sm == NULL || sm->envelope == NULL) {
			if (sm)
				shoal__stored_message__free_unpacked(sm, NULL);
			continue;
		}
		old_due = sm->due;
		if (!sm->held && act_due_now(sm, it->domain, it->now) > 0) {
			rc = act_save(t, sm, old_due);
			it->flushed++;
		}
		shoal__stored_message__free_unpacked(sm, NULL);
	}
	if (it->flushed)
		it->kick = true;
	return rc;
}

static int
act_apply(struct store_txn *t, void *arg)
{
	struct act_item *it = arg;
	int rc = 0;

	it->flushed = 0;
	it->kick = false;
	if (it->a == NULL) {
		it->nq = 0;
		return 0; /* abandoned at shutdown: nothing more */
	}
	if (it->is_walk && (rc = act_walk_batch(it, t)) != 0)
		return rc;
	if (it->is_flush)
		return act_flush(it, t);
	for (size_t i = 0; i < it->nq; i++) {
		shoal__queue_action_result__init(&it->res[i]);
		it->res[i].qid = (char *)act_qid(it, i);
		act_out_clear(&it->outs[i]);
	}
	for (size_t i = 0; rc == 0 && i < it->nq; i++)
		rc = act_one(it, t, act_qid(it, i), &it->res[i], &it->outs[i],
			     it->now);
	return rc;
}

/* After the commit: a line per qid acted on (and per recipient bounced),
 * the DSNs. */
static void
act_log(const struct act_item *it, int result)
{
	Shoal__QueueAction what = it->rq->action->action;

	for (size_t i = 0; i < it->nq; i++) {
		const Shoal__QueueActionResult *res = &it->res[i];
		const struct act_out *o = &it->outs[i];

		for (size_t k = 0; result == 0 && k < o->n_bounced; k++)
			log_info("qid=%s rcpt=<%s> event=bounced by=admin",
				 res->qid, o->bounced[k]);
		scheduler_dsn_done(it->a->d.sched, &o->dsn, result);
		if (result == 0 && res->done)
			log_info("qid=%s event=%s by=admin%s%s", res->qid,
				 act_names[what],
				 res->message[0] ? " note=" : "", res->message);
	}
}

/* Keep a durable batch's results for the walk's reply. */
static void
act_walk_keep(struct act_item *it)
{
	it->batches++;
	it->flushed_total += it->flushed;
	for (size_t i = 0; !it->is_flush && i < it->nq; i++) {
		const Shoal__QueueActionResult *res = &it->res[i];
		struct act_rec *rec;

		if (it->n_recs == ACT_WALK_LISTED_MAX) {
			if (res->done)
				it->unlisted_done++;
			else
				it->unlisted_failed++;
			continue;
		}
		if (it->n_recs == it->cap_recs) {
			it->cap_recs = it->cap_recs ? it->cap_recs * 2 : 64;
			it->recs = xrealloc(it->recs,
					    it->cap_recs * sizeof(*it->recs));
		}
		rec = &it->recs[it->n_recs++];
		snprintf(rec->qid, sizeof(rec->qid), "%s", res->qid);
		rec->done = res->done;
		rec->message = res->message;
	}
}

/* The next batch of a walk: the DSN qids its bounces may use, drawn now
 * (not in the apply), for the slots the last batch used. */
static void
act_walk_next(struct act_item *it)
{
	bool is_bounce =
		!it->is_flush &&
		it->rq->action->action == SHOAL__QUEUE_ACTION__ACTION_BOUNCE;

	for (size_t i = 0; i < it->nq; i++) {
		act_out_clear(&it->outs[i]);
		if (is_bounce)
			scheduler_dsn_draw(it->a->d.sched, &it->outs[i].dsn);
	}
	snprintf(it->after, sizeof(it->after), "%s", it->next_after);
	commit_add(it->a->d.commit, act_apply, act_done, it);
}

static void
act_item_free(struct act_item *it)
{
	if (it->a != NULL && it->is_walk) {
		if (it->prev)
			it->prev->next = it->next;
		else
			it->a->walks = it->next;
		if (it->next)
			it->next->prev = it->prev;
	}
	for (size_t i = 0; i < it->cap; i++)
		act_out_clear(&it->outs[i]);
	shoal__admin_request__free_unpacked(it->rq, NULL);
	free(it->outs);
	free(it->res);
	free(it->ptrs);
	free(it->batch);
	free(it->recs);
	free(it);
}

/* The answer: an error, the flush count, or the results. */
static void
act_reply(struct act_item *it, int result)
{
	struct actions *a = it->a;
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	Shoal__QueueActionReply ar = SHOAL__QUEUE_ACTION_REPLY__INIT;
	Shoal__QueueFlushReply fr = SHOAL__QUEUE_FLUSH_REPLY__INIT;
	Shoal__QueueActionResult *wres = NULL, **wptrs = NULL;
	const char *op =
		it->is_flush ? "flush" : act_names[it->rq->action->action];
	uint64_t n = it->is_flush ? it->flushed_total :
				    it->n_recs + it->unlisted_done +
					    it->unlisted_failed;
	char note[96], tq[LOG_QUOTE_BUF];

	r.node_id = (char *)a->d.node_id;
	if (it->is_walk)
		log_info("admin request_id=%llu event=walk_%s op=%s "
			 "tenant=%s batches=%llu messages=%llu",
			 (unsigned long long)it->ticket.request_id,
			 result == 0 ? "done" : "failed", op,
			 log_quote(tq, sizeof(tq), it->tenant,
				   strlen(it->tenant)),
			 (unsigned long long)it->batches,
			 (unsigned long long)n);
	if (result != 0) {
		log_error("admin request_id=%llu event=failed op=%s "
			  "error=\"%s\"",
			  (unsigned long long)it->ticket.request_id, op,
			  shoal_strerror(result));
		r.status = result == SHOAL_E_STORAGE_FULL ?
				   SHOAL__STATUS__STATUS_STORAGE_FULL :
				   SHOAL__STATUS__STATUS_INTERNAL;
		r.message = (char *)shoal_strerror(result);
	} else if (it->is_flush) {
		fr.messages = it->flushed_total;
		r.body_case = SHOAL__ADMIN_REPLY__BODY_FLUSH;
		r.flush = &fr;
	} else if (it->is_walk) {
		wres = xcalloc(it->n_recs ? it->n_recs : 1, sizeof(*wres));
		wptrs = xcalloc(it->n_recs ? it->n_recs : 1, sizeof(*wptrs));
		for (size_t i = 0; i < it->n_recs; i++) {
			shoal__queue_action_result__init(&wres[i]);
			wres[i].qid = it->recs[i].qid;
			wres[i].done = it->recs[i].done;
			wres[i].message = (char *)it->recs[i].message;
			wptrs[i] = &wres[i];
		}
		ar.n_results = it->n_recs;
		ar.results = wptrs;
		if (it->unlisted_done || it->unlisted_failed) {
			snprintf(note, sizeof(note),
				 "not listed: %llu done, %llu failed",
				 (unsigned long long)it->unlisted_done,
				 (unsigned long long)it->unlisted_failed);
			r.message = note;
		}
		r.body_case = SHOAL__ADMIN_REPLY__BODY_ACTION;
		r.action = &ar;
	} else {
		ar.n_results = it->nq;
		ar.results = it->ptrs;
		r.body_case = SHOAL__ADMIN_REPLY__BODY_ACTION;
		r.action = &ar;
	}
	rpc_reply_admin(a->d.rpc, &it->ticket, &r);
	free(wptrs);
	free(wres);
}

static void
act_done(int result, void *arg)
{
	struct act_item *it = arg;

	if (it->a == NULL) {
		/* abandoned by actions_free: its module is gone */
		act_item_free(it);
		return;
	}
	if (!it->is_flush)
		act_log(it, result);
	if (result == 0 && it->kick)
		scheduler_kick(it->a->d.sched);
	if (result == 0 && it->is_walk) {
		act_walk_keep(it);
		if (it->has_more) {
			act_walk_next(it);
			return;
		}
	}
	act_reply(it, result);
	act_item_free(it);
}

/* Refuse a request admin.c should have refused. */
static void
act_refuse(struct actions *a, const struct rpc_ticket *t, const char *why)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;

	log_warn("admin request_id=%llu event=bad_request reason=\"%s\"",
		 (unsigned long long)t->request_id, why);
	r.node_id = (char *)a->d.node_id;
	r.status = SHOAL__STATUS__STATUS_BAD_REQUEST;
	r.message = (char *)why;
	rpc_reply_admin(a->d.rpc, t, &r);
}

void
actions_handle(struct actions *a, const struct rpc_ticket *t,
	       const Shoal__AdminRequest *rq)
{
	struct act_item *it;
	size_t len;
	bool is_bounce;
	void *p;

	if (rq->body_case == SHOAL__ADMIN_REQUEST__BODY_ACTION &&
	    rq->action->n_qids == 0 && rq->action->tenant[0] == '\0') {
		/* no qids and no tenant: never "every message" */
		act_refuse(a, t, "bad number of queue ids");
		return;
	}
	it = xcalloc(1, sizeof(*it));
	it->a = a;
	it->ticket = *t;
	it->now = (uint64_t)time(NULL);
	/* our own copy: the caller frees rq when we return */
	len = shoal__admin_request__get_packed_size(rq);
	p = xmalloc(len ? len : 1);
	shoal__admin_request__pack(rq, p);
	it->rq = shoal__admin_request__unpack(NULL, len, p);
	free(p);
	SHOAL_ASSERT(it->rq != NULL);
	it->is_flush = it->rq->body_case == SHOAL__ADMIN_REQUEST__BODY_FLUSH;
	if (it->is_flush) {
		it->is_walk = true;
		it->tenant = it->rq->flush->tenant;
		it->domain = it->rq->flush->domain;
	} else {
		it->is_walk = it->rq->action->n_qids == 0;
		it->tenant = it->rq->action->tenant;
		it->domain = "";
	}
	it->nq = it->is_walk ? 0 : it->rq->action->n_qids;
	it->cap = it->is_walk ? ACT_BATCH : it->nq;
	it->res = xcalloc(it->cap ? it->cap : 1, sizeof(*it->res));
	it->ptrs = xcalloc(it->cap ? it->cap : 1, sizeof(*it->ptrs));
	it->outs = xcalloc(it->cap ? it->cap : 1, sizeof(*it->outs));
	if (it->is_walk) {
		it->batch = xcalloc(ACT_BATCH, sizeof(*it->batch));
		it->next = a->walks;
		if (a->walks)
			a->walks->prev = it;
		a->walks = it;
	}
	is_bounce = !it->is_flush &&
		    it->rq->action->action == SHOAL__QUEUE_ACTION__ACTION_BOUNCE;
	for (size_t i = 0; i < it->cap; i++) {
		shoal__queue_action_result__init(&it->res[i]);
		it->ptrs[i] = &it->res[i];
		/* a bounce may queue a DSN per qid: qids drawn now, not in
		 * the apply */
		if (is_bounce)
			scheduler_dsn_draw(a->d.sched, &it->outs[i].dsn);
	}
	commit_add(a->d.commit, act_apply, act_done, it);
}

struct actions *
actions_new(const struct actions_deps *deps)
{
	struct actions *a = xcalloc(1, sizeof(*a));

	a->d = *deps;
	return a;
}

void
actions_free(struct actions *a)
{
	if (a == NULL)
		return;
	/* a walk's next batch is in the commit: it runs as nothing and frees
	 * its item, answering nobody */
	for (struct act_item *it = a->walks, *next; it != NULL; it = next) {
		next = it->next;
		log_warn("admin request_id=%llu event=walk_abandoned "
			 "reason=\"node stopping\"",
			 (unsigned long long)it->ticket.request_id);
		it->a = NULL;
		it->prev = it->next = NULL;
	}
	free(a);
}
