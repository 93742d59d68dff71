/* Queue actions: hold, release, delete, bounce, flush. One commit item per
 * request; its apply function may run twice (commit.c retries a failed
 * batch item by item), so it starts its results afresh each time and
 * changes nothing but the transaction and the item's results: the DSN
 * qids of a bounce are drawn at the request, the log lines written once
 * it is committed.
 *
 *   hold     no attempts until released: the due entry goes, held is set
 *            (an attempt in flight finishes; its result keeps it held)
 *   release  held cleared, every pending recipient due now
 *   delete   the message is removed, no DSN
 *   bounce   every pending recipient fails now with 5.0.0; a DSN goes to
 *            the sender as for any failure (not for <> or NOTIFY=NEVER);
 *            then the message is removed
 *   flush    every pending recipient (of one domain, when given) of every
 *            message not held is due now */
#include "node/queue/actions.h"

#include <errno.h>
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

struct actions {
	struct actions_deps d;
};

/* What the apply did to one qid, for the log lines after the commit. */
struct act_out {
	char **bounced;                   /* recipients bounced (bounce) */
	size_t n_bounced;
	struct dsn_slot dsn;              /* bounce: drawn at the request */
};

struct act_item {
	struct actions *a;
	struct rpc_ticket ticket;
	Shoal__AdminRequest *rq;          /* our copy */
	Shoal__QueueActionResult *res;    /* one per qid */
	Shoal__QueueActionResult **ptrs;
	struct act_out *outs;             /* one per qid */
	uint64_t now;                     /* when it came: "due now" */
	uint64_t flushed;
	bool kick;                        /* new due work: wake the scheduler */
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

struct act_flush {
	struct act_item *it;
	char (*qids)[QID_MAX];
	size_t n, cap;
};

/* Collect the qids of our messages that flush would touch. */
static int
act_flush_collect(const char *qid, uint32_t shard, const void *meta,
		  size_t meta_len, void *arg)
{
	struct act_flush *f = arg;

	(void)meta;
	(void)meta_len;
	if (!owner_is_primary(f->it->a->d.owner, shard))
		return 0;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 256;
		f->qids = xrealloc(f->qids, f->cap * sizeof(*f->qids));
	}
	snprintf(f->qids[f->n++], QID_MAX, "%s", qid);
	return 0;
}

static int
act_flush(struct act_item *it, struct store_txn *t, uint64_t now)
{
	const char *domain = it->rq->flush->domain;
	struct act_flush f = { .it = it };
	int rc = store_msg_foreach(t, act_flush_collect, &f);

	for (size_t i = 0; rc == 0 && i < f.n; i++) {
		Shoal__StoredMessage *sm;
		const void *p;
		size_t len;
		uint64_t old_due;

		if (store_msg_get_meta(t, f.qids[i], &p, &len) != 0)
			continue;
		sm = shoal__stored_message__unpack(NULL, len, p);
		if (sm == NULL || sm->envelope == NULL) {
			if (sm)
				shoal__stored_message__free_unpacked(sm, NULL);
			continue;
		}
		old_due = sm->due;
		if (!sm->held && act_due_now(sm, domain, now) > 0) {
			rc = act_save(t, sm, old_due);
			it->flushed++;
		}
		shoal__stored_message__free_unpacked(sm, NULL);
	}
	free(f.qids);
	if (it->flushed)
		it->kick = true;
	return rc;
}

static int
act_apply(struct store_txn *t, void *arg)
{
	struct act_item *it = arg;
	uint64_t now = it->now;
	int rc = 0;

	it->flushed = 0;
	it->kick = false;
	if (it->rq->body_case == SHOAL__ADMIN_REQUEST__BODY_FLUSH)
		return act_flush(it, t, now);
	for (size_t i = 0; i < it->rq->action->n_qids; i++) {
		shoal__queue_action_result__init(&it->res[i]);
		it->res[i].qid = it->rq->action->qids[i];
		act_out_clear(&it->outs[i]);
	}
	for (size_t i = 0; rc == 0 && i < it->rq->action->n_qids; i++)
		rc = act_one(it, t, it->rq->action->qids[i], &it->res[i],
			     &it->outs[i], now);
	return rc;
}

/* After the commit: a line per qid acted on (and per recipient bounced),
 * the DSNs. */
static void
act_log(const struct act_item *it, int result)
{
	Shoal__QueueAction what = it->rq->action->action;

	for (size_t i = 0; i < it->rq->action->n_qids; i++) {
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

static void
act_done(int result, void *arg)
{
	struct act_item *it = arg;
	struct actions *a = it->a;
	bool is_flush = it->rq->body_case == SHOAL__ADMIN_REQUEST__BODY_FLUSH;
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	Shoal__QueueActionReply ar = SHOAL__QUEUE_ACTION_REPLY__INIT;
	Shoal__QueueFlushReply fr = SHOAL__QUEUE_FLUSH_REPLY__INIT;
	size_t nq = is_flush ? 0 : it->rq->action->n_qids;

	if (!is_flush)
		act_log(it, result);
	r.node_id = (char *)a->d.node_id;
	if (result != 0) {
		log_error("admin request_id=%llu event=failed op=%s "
			  "error=\"%s\"",
			  (unsigned long long)it->ticket.request_id,
			  is_flush ? "flush" :
				     act_names[it->rq->action->action],
			  shoal_strerror(result));
		r.status = result == SHOAL_E_STORAGE_FULL ?
				   SHOAL__STATUS__STATUS_STORAGE_FULL :
				   SHOAL__STATUS__STATUS_INTERNAL;
		r.message = (char *)shoal_strerror(result);
	} else if (is_flush) {
		fr.messages = it->flushed;
		r.body_case = SHOAL__ADMIN_REPLY__BODY_FLUSH;
		r.flush = &fr;
	} else {
		ar.n_results = nq;
		ar.results = it->ptrs;
		r.body_case = SHOAL__ADMIN_REPLY__BODY_ACTION;
		r.action = &ar;
	}
	rpc_reply_admin(a->d.rpc, &it->ticket, &r);
	if (result == 0 && it->kick)
		scheduler_kick(a->d.sched);
	for (size_t i = 0; i < nq; i++)
		act_out_clear(&it->outs[i]);
	shoal__admin_request__free_unpacked(it->rq, NULL);
	free(it->outs);
	free(it->res);
	free(it->ptrs);
	free(it);
}

void
actions_handle(struct actions *a, const struct rpc_ticket *t,
	       const Shoal__AdminRequest *rq)
{
	struct act_item *it = xcalloc(1, sizeof(*it));
	size_t len = shoal__admin_request__get_packed_size(rq), nq;
	bool is_bounce;
	void *p;

	it->a = a;
	it->ticket = *t;
	it->now = (uint64_t)time(NULL);
	/* our own copy: the caller frees rq when we return */
	p = xmalloc(len ? len : 1);
	shoal__admin_request__pack(rq, p);
	it->rq = shoal__admin_request__unpack(NULL, len, p);
	free(p);
	SHOAL_ASSERT(it->rq != NULL);
	nq = it->rq->body_case == SHOAL__ADMIN_REQUEST__BODY_ACTION ?
		     it->rq->action->n_qids :
		     0;
	it->res = xcalloc(nq ? nq : 1, sizeof(*it->res));
	it->ptrs = xcalloc(nq ? nq : 1, sizeof(*it->ptrs));
	it->outs = xcalloc(nq ? nq : 1, sizeof(*it->outs));
	is_bounce = nq > 0 &&
		    it->rq->action->action == SHOAL__QUEUE_ACTION__ACTION_BOUNCE;
	for (size_t i = 0; i < nq; i++) {
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
	free(a);
}
