/* The router link on a node: answers shard map requests and stores
 * enqueued messages through group commit, replying once each is durable.
 * Handles untrusted input: a malformed request gets BAD_REQUEST and a
 * warning naming the router; it never stops the node.
 *
 * What a reply promises (DESIGN.md "Guarantees"): OK, the message will be
 * delivered; anything else, it will not be, from this request. Two rules
 * keep that where paths meet:
 *   - ingest_admit() decides whether this node may store a shard's new
 *     mail; it is asked when the request arrives and again inside the
 *     transaction that stores it, since a map change (failback, a peer's
 *     or router's newer map) can come in between and a message stored
 *     for a shard no longer ours is neither delivered nor replicated.
 *   - a message stored here is held back from delivery (ingest_holds())
 *     from the request that stores it until its reply is OK, or
 *     until its withdrawal is committed when the reply is a refusal
 *     (require_peer without the peer's ack). The hold is in memory only:
 *     after a crash a stored message is due at once, as its client may
 *     have had its 250 (at-least-once), and the router sends the
 *     request again to the new process (router/enqueue.c), which then
 *     finds it stored.
 *   - the reply to a qid stored here already (a router's resend: it had
 *     no answer, so this one is what its client gets) matches what
 *     becomes of the stored copy (ingest_known()): OK at once when the
 *     peer has the message; else it is held and answered as a new one
 *     would be, OK once the peer has it or refused and withdrawn; and
 *     while another request for the qid waits here, the resend gets
 *     that request's answer (ingest_follow()).
 *
 * The apply function of the group commit may run twice: it writes the
 * transaction and the item's own record of what it found, nothing else.
 * The hold is taken before (at the request), a DSN's qid drawn before,
 * and the log lines follow in the done callback. */
#include "node/queue/ingest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/idmap.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/delivery/classify.h"
#include "node/delivery/outcome.h"
#include "node/queue/bounce.h"
#include "node/queue/dsn.h"
#include "node/queue/scheduler.h"
#include "node/rpc/rpc.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/suppress/suppress.h"
#include "node/webhook/webhook.h"
#include "proto/router_node.pb-c.h"

struct ingest {
	struct ingest_deps d;
	bool is_stopping;    /* ingest_stop(): new enqueues turned away */
	uint64_t stored, refused;
	uint64_t pending;    /* items between commit_add and their answer */
	struct idmap *holds; /* shard_hash(qid) -> how many items hold it
			      * back from delivery (ingest_holds) */
	struct idmap *leads; /* shard_hash(qid) -> the item other requests
			      * for it follow (ingest_follow) */
};

/* One enqueue waiting for its commit. */
struct ingest_item {
	struct ingest *in;
	struct rpc_ticket ticket;
	char qid[QID_MAX];
	uint32_t shard;
	uint32_t n_rcpts;
	uint64_t now;
	uint64_t seq;        /* journal seq of the put, 0 = none */
	bool known;          /* the qid was stored already (a resend) */
	bool finished;	     /* and is delivered or removed (a tombstone) */
	bool has_hold;	     /* counted in in->holds */
	bool is_leader;	     /* in in->leads */
	Shoal__Status answer;	       /* what the router was told */
	const char *answer_text;       /* static */
	struct ingest_item *followers; /* resends of the qid given our answer */
	struct ingest_item *next;      /* in the holder's followers */
	Shoal__Status turned;  /* ingest_admit() said no at commit time */
	uint32_t n_suppressed; /* recipients to bounce without an attempt */
	uint32_t cls;          /* envelope_class(), for the due index */
	struct dsn_slot dsn;   /* their DSN, drawn at the request */
	char (*wh_ids)[QID_LEN + 1]; /* their webhook events' ids, or NULL */
	struct webhook_note wh_note;
	void *meta;
	size_t meta_len;
	zmq_msg_t body;
};

static void
ingest_reply(struct ingest *in, const struct rpc_ticket *t,
	     Shoal__Status status, const char *text, bool with_map)
{
	const Shoal__ShardMap *map = owner_map(in->d.owner);
	Shoal__NodeReply r = SHOAL__NODE_REPLY__INIT;
	unsigned char small[512];
	unsigned char *p = small;
	size_t len;

	r.request_id = t->request_id;
	r.status = status;
	r.message = (char *)(text ? text : "");
	r.node_id = in->d.me->id;
	r.epoch = map->epoch;
	r.author = map->author;
	r.incarnation = in->d.incarnation;
	r.sent_ms = clock_mono_ms(); /* echoed: our lease (node/cluster/owner.c) */
	suppress_stamp(in->d.supp, &r);
	if (with_map)
		r.map = (Shoal__ShardMap *)map;
	len = shoal__node_reply__get_packed_size(&r);
	if (len > sizeof(small))
		p = xmalloc(len);
	shoal__node_reply__pack(&r, p);
	rpc_reply(in->d.rpc, t, p, len);
	if (p != small)
		free(p);
}

/* Answer an item's request, and remember the answer for the resends that
 * follow it (ingest_follow()). text: static. */
static void
ingest_answer(struct ingest_item *it, Shoal__Status status, const char *text)
{
	it->answer = status;
	it->answer_text = text;
	ingest_reply(it->in, &it->ticket, status, text, false);
}

/* Whether this node may store new mail of shard now: STATUS_OK, or what
 * to answer (NOT_OWNER carries our map; MOVING, try again shortly). The
 * one place that decides it, at the request and again at the commit. */
static Shoal__Status
ingest_admit(const struct ingest *in, uint32_t shard)
{
	if (!owner_is_primary(in->d.owner, shard))
		return SHOAL__STATUS__STATUS_NOT_OWNER;
	if (owner_is_frozen(in->d.owner, shard))
		return SHOAL__STATUS__STATUS_MOVING;
	return SHOAL__STATUS__STATUS_OK;
}

/* Answer what ingest_admit() refused: NOT_OWNER with our map (the router
 * sends the message to the owner it names), MOVING (it tries again). */
static void
ingest_turn_away(struct ingest *in, const struct rpc_ticket *t,
		 Shoal__Status status)
{
	bool moved = status == SHOAL__STATUS__STATUS_NOT_OWNER;

	ingest_reply(in, t, status, moved ? "not owner" : "shard moving",
		     moved);
}

/* Hold the message back from delivery until this request's reply is
 * known to be OK: taken at the request, before the transaction that may
 * store it (from which its due entry is visible), and ended with the
 * item. Every request for a qid holds it (a hash twin's too). */
static void
ingest_hold(struct ingest_item *it)
{
	uint64_t h = shard_hash(it->qid, strlen(it->qid));
	uintptr_t n = (uintptr_t)idmap_get(it->in->holds, h);

	idmap_put(it->in->holds, h, (void *)(n + 1));
	it->has_hold = true;
}

/* The request that stored the qid, or found it stored and not yet on the
 * peer, is the one later requests for it follow (ingest_follow()),
 * unless one leads already. From its done callback: whether it stored
 * the qid is known only after the commit. */
static void
ingest_lead(struct ingest_item *it)
{
	uint64_t h = shard_hash(it->qid, strlen(it->qid));

	if (it->is_leader || idmap_get(it->in->leads, h) != NULL)
		return;
	idmap_put(it->in->leads, h, it);
	it->is_leader = true;
}

static void
ingest_release(struct ingest_item *it)
{
	uint64_t h = shard_hash(it->qid, strlen(it->qid));

	if (it->has_hold) {
		uintptr_t n = (uintptr_t)idmap_get(it->in->holds, h);

		if (n > 1)
			idmap_put(it->in->holds, h, (void *)(n - 1));
		else
			idmap_del(it->in->holds, h);
		it->has_hold = false;
	}
	if (it->is_leader) {
		idmap_del(it->in->leads, h);
		it->is_leader = false;
	}
}

bool
ingest_holds(const struct ingest *in, const char *qid)
{
	return idmap_get(in->holds, shard_hash(qid, strlen(qid))) != NULL;
}

/* Another request for the same qid waits here for its answer (the
 * router sent the qid again meanwhile): this resend gets that answer,
 * when that request does, so that the two cannot differ (one OK, one
 * refusal that withdraws the copy). */
static bool
ingest_follow(struct ingest_item *it)
{
	struct ingest_item *h =
		idmap_get(it->in->leads, shard_hash(it->qid, strlen(it->qid)));

	if (h == NULL || h == it || strcmp(h->qid, it->qid) != 0)
		return false;
	log_info("qid=%s event=follows reason=\"an earlier request for it "
		 "waits here\"",
		 it->qid);
	it->next = h->followers;
	h->followers = it;
	return true;
}

/* A resend of a qid stored here: is the message durable on the peer?
 * Then it->seq = 0 and it is answered OK at once (the copy stands, with
 * whatever delivery state it has). It is when its journal entry, one
 * that carries the body, is acknowledged. Such an entry not yet
 * acknowledged makes the resend wait for its seq as a new message would,
 * held back from delivery meanwhile (the hold taken at the request
 * stays): after a restart the copy is due at once, and a copy delivered
 * while its answer turns out a refusal would be delivered twice.
 *
 * A copy with no such entry (trimmed after the ack, or never journaled
 * here: one adopted from the peer's stream at a takeover) is answered at
 * once too, and journaled again with its body. The peer may not have
 * it: its stream ships a change before the commit that makes it durable
 * there (node/cluster/repl.h), so a peer killed in that commit comes back
 * without what we adopted, and once the shard is handed back the copy
 * would stay here as a replica's, never delivered (a failback waits for
 * our journal's ack). Not a wait and maybe a refusal: the peer, paused
 * rather than dead, may have answered OK for its copy already, and a
 * refusal withdraws ours. */
static int
ingest_known(struct ingest_item *it, struct store_txn *t)
{
	bool body = false;
	int rc = store_journal_seq_of(t, it->qid, &it->seq, &body);

	if (rc != 0 && rc != -ENOENT)
		return rc;
	if (rc == 0 && body) {
		if (repl_acked_upto(it->in->d.repl, it->seq))
			it->seq = 0;
		return 0;
	}
	it->seq = 0;
	return store_journal_touch(t, it->qid, it->shard);
}

/* Mode "bounce" of the suppression list: the DSN for the recipients the
 * router found listed, in the transaction that stores the message (they
 * are bounced already in its record; the scheduler tidies the message
 * up when nothing else is pending). Its verdict is outcome.c's. */
static int
ingest_bounce_suppressed(struct ingest_item *it, struct store_txn *t)
{
	Shoal__StoredMessage *sm =
		shoal__stored_message__unpack(NULL, it->meta_len, it->meta);
	struct outcome_verdict v;
	struct bounce_rcpt *brs;
	size_t n = 0;
	int rc = 0;

	if (sm == NULL || sm->envelope == NULL) {
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		return -EIO;
	}
	outcome_of_local(OUTCOME_LOCAL_SUPPRESSED, &v);
	brs = xcalloc(sm->envelope->n_rcpts, sizeof(*brs));
	for (size_t i = 0; i < sm->envelope->n_rcpts; i++) {
		const Shoal__Recipient *r = sm->envelope->rcpts[i];

		if (r->suppressed && bounce_wanted(sm->envelope, r,
						   BOUNCE_FAILED))
			brs[n++] = (struct bounce_rcpt){
				r->address, r->orcpt, BOUNCE_FAILED, v.status,
				"", 0, r->last_reply,
				classify_name(v.category), "", "",
			};
	}
	if (n > 0) {
		struct dsn_about a = {
			.orig_qid = it->qid,
			.env = sm->envelope,
			.orig = zmq_msg_data(&it->body),
			.orig_len = zmq_msg_size(&it->body),
			.brs = brs,
			.n = n,
			.now = it->now,
		};

		rc = scheduler_dsn_store(it->in->d.sched, t, &it->dsn, &a);
	}
	free(brs);
	shoal__stored_message__free_unpacked(sm, NULL);
	return rc;
}

/* After the commit: the recipients bounced for being suppressed. */
static void
ingest_log_suppressed(const struct ingest_item *it)
{
	Shoal__StoredMessage *sm =
		shoal__stored_message__unpack(NULL, it->meta_len, it->meta);

	for (size_t i = 0; sm && sm->envelope && i < sm->envelope->n_rcpts;
	     i++)
		if (sm->envelope->rcpts[i]->suppressed)
			log_info("qid=%s rcpt=<%s> event=bounced "
				 "reason=suppressed",
				 it->qid, sm->envelope->rcpts[i]->address);
	if (sm)
		shoal__stored_message__free_unpacked(sm, NULL);
}

/* May run twice (commit.c retries a failed batch item by item): every
 * outcome is set afresh, and nothing but t and the item changes. */
static int
ingest_apply(struct store_txn *t, void *arg)
{
	struct ingest_item *it = arg;
	const void *p;
	size_t len;
	int rc;

	it->known = it->finished = false;
	it->seq = 0;
	dsn_slot_clear(&it->dsn);
	webhooks_note_clear(&it->wh_note);
	/* the map may have changed since the request was checked */
	it->turned = ingest_admit(it->in, it->shard);
	if (it->turned != SHOAL__STATUS__STATUS_OK)
		return 0;
	/* a router resends after a failover, a restart or a lost reply: the
	 * first copy stands, and the answer follows it (ingest_known) */
	rc = store_msg_get_meta(t, it->qid, &p, &len);
	if (rc == 0) {
		it->known = true;
		return ingest_known(it, t);
	}
	if (rc != -ENOENT)
		return rc;
	/* or it is delivered already: nothing to do again */
	rc = store_tomb_has(t, it->qid);
	if (rc == 0) {
		it->known = it->finished = true;
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	/* new mail leaves the store's reserve for what frees space */
	rc = store_admit(t, it->meta_len + zmq_msg_size(&it->body),
			 STORE_ADMIT_MAIL);
	if (rc == 0)
		rc = store_msg_put(t, it->qid, it->shard, it->meta,
				   it->meta_len, zmq_msg_data(&it->body),
				   zmq_msg_size(&it->body));
	if (rc == 0)
		rc = store_due_put(t, it->now, it->qid, it->cls);
	if (rc == 0 && it->n_suppressed)
		rc = ingest_bounce_suppressed(it, t);
	if (rc == 0 && it->n_suppressed)
		rc = webhooks_write_suppressed(it->in->d.wh, t, it->meta,
					       it->meta_len, it->wh_ids,
					       &it->wh_note);
	it->seq = store_txn_journal_seq(t);
	return rc;
}

static void
ingest_item_free(struct ingest_item *it)
{
	struct ingest_item *f;

	ingest_release(it);
	/* resends of the qid that waited for our answer get it now */
	while ((f = it->followers) != NULL) {
		it->followers = f->next;
		if (it->answer != SHOAL__STATUS__STATUS_OK)
			it->in->refused++;
		ingest_reply(it->in, &f->ticket, it->answer, it->answer_text,
			     false);
		ingest_item_free(f);
	}
	it->in->pending--;
	zmq_msg_close(&it->body);
	free(it->meta);
	free(it->wh_ids);
	free(it);
}

/* Undo a message the peer never confirmed (require_peer): the client got
 * a 4xx and sends it again, so keeping this copy would deliver it twice.
 * Its due entry is the one its record names now (a resend's copy may
 * have been tried since it was stored). No tombstone: the qid may come
 * again, and the replica keeps none either (node/store/store.h). */
static int
ingest_undo_apply(struct store_txn *t, void *arg)
{
	struct ingest_item *it = arg;
	Shoal__StoredMessage *sm;
	const void *p;
	size_t len;
	uint64_t due = 0;
	int rc = store_msg_get_meta(t, it->qid, &p, &len);

	if (rc != 0)
		return rc == -ENOENT ? 0 : rc;
	sm = shoal__stored_message__unpack(NULL, len, p);
	if (sm != NULL) {
		due = sm->due;
		shoal__stored_message__free_unpacked(sm, NULL);
	}
	if (due != 0 && (rc = store_due_del(t, due, it->qid)) != 0 &&
	    rc != -ENOENT)
		return rc;
	rc = store_msg_del(t, it->qid, it->shard);
	return rc == -ENOENT ? 0 : rc;
}

/* The withdrawal is committed: now the refusal goes out, and the hold
 * ends with the item. Had it gone out first, a crash before this commit
 * would leave a copy due at the restart for a message its client was
 * told 4xx. (A withdrawal that failed leaves the copy, which is then
 * delivered, at-least-once: still refused, as the peer does not have
 * it.) */
static void
ingest_undo_done(int result, void *arg)
{
	struct ingest_item *it = arg;

	log_info("qid=%s event=withdrawn reason=\"peer did not confirm\" "
		 "result=%s", it->qid, shoal_strerror(result));
	ingest_answer(it, SHOAL__STATUS__STATUS_NOT_DURABLE,
		      "peer unavailable");
	ingest_item_free(it);
}

/* The peer has it too (or need not): answer the router. Only an OK ends
 * the hold on delivery. A refusal withdraws the copy first, whether this
 * request stored it or found it stored (a resend: the refusal is what its
 * client gets, and the copy must not be delivered after it), and is
 * answered once the withdrawal is committed (ingest_undo_done). The
 * withdrawal leaves no tombstone, here or on the peer, so it may reach
 * the peer before the router has the refusal: a resend finds nothing
 * and stores the message anew. */
static void
ingest_durable(bool durable, void *arg)
{
	struct ingest_item *it = arg;
	struct ingest *in = it->in;

	if (durable) {
		ingest_answer(it, SHOAL__STATUS__STATUS_OK, "");
		if (!it->known) /* stored by this request: due now */
			scheduler_kick_due(in->d.sched, it->now, it->qid);
		else if (it->is_leader) /* due since it was stored */
			scheduler_kick(in->d.sched);
		ingest_item_free(it);
		return;
	}
	in->refused++;
	log_warn("qid=%s event=refused shard=%u error=\"not durable: peer "
		 "unavailable and replication.require_peer is set\"",
		 it->qid, it->shard);
	commit_add(in->d.commit, ingest_undo_apply, ingest_undo_done, it);
}

static void
ingest_done(int result, void *arg)
{
	struct ingest_item *it = arg;
	struct ingest *in = it->in;
	Shoal__Status status = SHOAL__STATUS__STATUS_OK;
	const char *text = "";

	if (result == 0 && it->turned != SHOAL__STATUS__STATUS_OK) {
		/* the router fetches the map and sends it to the new owner */
		log_info("qid=%s event=turned_away shard=%u reason=\"%s since "
			 "the request came\"",
			 it->qid, it->shard,
			 it->turned == SHOAL__STATUS__STATUS_NOT_OWNER ?
				 "not the owner" :
				 "shard moving");
		ingest_turn_away(in, &it->ticket, it->turned);
		ingest_item_free(it);
		return;
	}
	if (result == 0 && it->known) {
		log_info("qid=%s event=stored_already shard=%u state=%s",
			 it->qid, it->shard,
			 it->finished ? "finished" : "queued");
		if (!it->finished && it->seq != 0)
			ingest_lead(it);
		if (it->finished)
			ingest_durable(true, it);
		else if (!ingest_follow(it))
			repl_wait(in->d.repl, it->seq, ingest_durable, it);
		return;
	}
	if (result == 0) {
		ingest_lead(it);
		in->stored++;
		if (it->n_suppressed)
			ingest_log_suppressed(it);
		webhooks_noted(in->d.wh, &it->wh_note, result);
		scheduler_dsn_done(in->d.sched, &it->dsn, result);
		log_info("qid=%s event=stored shard=%u size=%zu rcpts=%u",
			 it->qid, it->shard, zmq_msg_size(&it->body),
			 it->n_rcpts);
		repl_wait(in->d.repl, it->seq, ingest_durable, it);
		return;
	} else {
		scheduler_dsn_done(in->d.sched, &it->dsn, result);
		in->refused++;
		status = result == SHOAL_E_STORAGE_FULL ?
				 SHOAL__STATUS__STATUS_STORAGE_FULL :
				 SHOAL__STATUS__STATUS_INTERNAL;
		text = shoal_strerror(result);
		log_warn("qid=%s event=refused shard=%u size=%zu error=\"%s\"",
			 it->qid, it->shard, zmq_msg_size(&it->body), text);
	}
	ingest_answer(it, status, text);
	ingest_item_free(it);
}

/* The stored state of a recipient whose outcome is known at once. */
static Shoal__RcptState
ingest_rcpt_state(enum outcome oc)
{
	switch (oc) {
	case OUTCOME_DELIVERED:
		return SHOAL__RCPT_STATE__RCPT_DELIVERED;
	case OUTCOME_BOUNCED:
		return SHOAL__RCPT_STATE__RCPT_BOUNCED;
	default:
		return SHOAL__RCPT_STATE__RCPT_QUEUED;
	}
}

/* Build the stored record: the router's envelope with each recipient
 * queued and due now; a suppressed one as outcome.c judges it (bounced
 * at once). */
static void *
ingest_pack_meta(const char *qid, uint32_t shard, Shoal__Envelope *env,
		 uint64_t now, size_t body_len, size_t *len)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	struct outcome_verdict v;
	void *p;

	outcome_of_local(OUTCOME_LOCAL_SUPPRESSED, &v);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		Shoal__Recipient *r = env->rcpts[i];

		r->state = SHOAL__RCPT_STATE__RCPT_QUEUED;
		r->attempts = 0;
		r->next_try = now;
		if (r->suppressed) {
			/* listed (docs/suppression.md): final now */
			char text[SUPPRESS_REPLY_MAX + 1], *line;
			size_t n = sizeof(text) + 16;

			suppress_sanitize(r->suppressed_reply, text);
			line = xmalloc(n);
			snprintf(line, n, "suppressed: %s", text);
			if (r->last_reply != protobuf_c_empty_string)
				free(r->last_reply);
			r->last_reply = line;
			r->state = ingest_rcpt_state(v.outcome);
		}
	}
	env->size = body_len;
	if (env->arrival_time == 0)
		env->arrival_time = now;
	sm.qid = (char *)qid;
	sm.shard = shard;
	sm.envelope = env;
	sm.due = now;
	*len = shoal__stored_message__get_packed_size(&sm);
	p = xmalloc(*len ? *len : 1);
	shoal__stored_message__pack(&sm, p);
	return p;
}

static void
ingest_enqueue(struct ingest *in, const struct rpc_ticket *tk,
	       zmq_msg_t *frames, size_t nframes,
	       const Shoal__RouterRequest *req)
{
	const struct config *cfg = in->d.cfg;
	const Shoal__EnqueueRequest *eq = req->enqueue;
	const char *why = NULL;
	struct ingest_item *it;
	Shoal__Status admit;
	size_t body_len;

	if (req->epoch != owner_map(in->d.owner)->epoch) {
		ingest_reply(in, tk, SHOAL__STATUS__STATUS_WRONG_EPOCH,
			     "wrong epoch", true);
		return;
	}
	if (nframes != 4) {
		why = "missing body frame";
		goto bad;
	}
	body_len = zmq_msg_size(&frames[3]);
	if (!qid_valid(eq->qid, strlen(eq->qid)))
		why = "bad qid";
	else if (eq->shard >= cfg->cluster.shards ||
		 eq->shard != shard_of(eq->qid, cfg->cluster.shards))
		why = "shard does not match qid";
	else if (envelope_validate(eq->envelope, &why) != 0)
		;
	else if (body_len == 0 ||
		 body_len > cfg->router.max_message_size + WIRE_BODY_SLACK)
		why = "body size out of range";
	if (why)
		goto bad;
	admit = ingest_admit(in, eq->shard);
	if (admit != SHOAL__STATUS__STATUS_OK) {
		ingest_turn_away(in, tk, admit);
		return;
	}
	if (in->is_stopping) {
		/* the router tries again shortly, here after our restart or
		 * at the peer after a failover */
		log_debug(LOG_SUB_MAIN, "qid=%s event=turned_away "
			  "reason=stopping", eq->qid);
		ingest_reply(in, tk, SHOAL__STATUS__STATUS_MOVING,
			     "node stopping", false);
		return;
	}

	it = xcalloc(1, sizeof(*it));
	it->in = in;
	it->ticket = *tk;
	it->answer = SHOAL__STATUS__STATUS_INTERNAL; /* until answered */
	it->answer_text = "no answer";
	snprintf(it->qid, sizeof(it->qid), "%s", eq->qid);
	it->shard = eq->shard;
	it->n_rcpts = (uint32_t)eq->envelope->n_rcpts;
	for (size_t i = 0; i < eq->envelope->n_rcpts; i++)
		if (eq->envelope->rcpts[i]->suppressed)
			it->n_suppressed++;
	if (it->n_suppressed)
		scheduler_dsn_draw(in->d.sched, &it->dsn);
	if (it->n_suppressed && webhooks_wants(in->d.wh, WEBHOOK_SUPPRESSED)) {
		it->wh_ids = xcalloc(it->n_rcpts, sizeof(*it->wh_ids));
		for (size_t i = 0; i < it->n_rcpts; i++)
			if (eq->envelope->rcpts[i]->suppressed)
				webhooks_draw_id(in->d.wh, it->wh_ids[i]);
	}
	it->now = (uint64_t)time(NULL);
	it->cls = envelope_class(eq->envelope);
	it->meta = ingest_pack_meta(eq->qid, eq->shard, eq->envelope, it->now,
				    body_len, &it->meta_len);
	zmq_msg_init(&it->body);
	zmq_msg_move(&it->body, &frames[3]);
	in->pending++;
	ingest_hold(it);
	commit_add(in->d.commit, ingest_apply, ingest_done, it);
	return;
bad:
	{
		char q[LOG_QUOTE_BUF];

		log_warn("router=%s event=bad_request reason=\"%s\"",
			 log_quote(q, sizeof(q), req->router_id,
				   strlen(req->router_id)),
			 why);
	}
	ingest_reply(in, tk, SHOAL__STATUS__STATUS_BAD_REQUEST, why, false);
}

#define INGEST_SEEN_MAX 1024   /* node ids in one router heartbeat */

/* A router's heartbeat: remember it (fencing, failover votes) and trade
 * maps with it. */
static void
ingest_heartbeat(struct ingest *in, const struct rpc_ticket *tk,
		 const Shoal__RouterRequest *req)
{
	const Shoal__RouterHeartbeat *hb = req->heartbeat;
	const char *peer = in->d.me->peer;
	bool sees_peer = false;
	bool offer_refused;

	if (hb->n_seen > INGEST_SEEN_MAX || req->router_id[0] == '\0') {
		log_warn("router=? event=bad_request reason=\"bad heartbeat\"");
		return;
	}
	for (size_t i = 0; peer && i < hb->n_seen; i++)
		if (strcmp(hb->seen[i], peer) == 0)
			sees_peer = true;
	owner_heard_router(in->d.owner, req->router_id, sees_peer,
			   hb->echo_ms);
	/* a map the router sent us that we do not take (ours wins) goes
	 * back with the reply, so that both end up with the same one */
	offer_refused = hb->map && !owner_offer(in->d.owner, hb->map);
	ingest_reply(in, tk, SHOAL__STATUS__STATUS_OK, "",
		     offer_refused ||
			     req->epoch != owner_map(in->d.owner)->epoch);
}

void
ingest_handle(struct ingest *in, zmq_msg_t *frames, size_t nframes)
{
	Shoal__RouterRequest *req;
	struct rpc_ticket tk;

	if (rpc_ticket_set(&tk, &frames[0], 0) != 0) {
		/* no routing id to answer */
		log_warn("router=? event=bad_request reason=\"undecodable "
			 "request\"");
		return;
	}
	if (nframes < 3 || zmq_msg_size(&frames[2]) > WIRE_META_MAX)
		goto bad;
	req = shoal__router_request__unpack(NULL, zmq_msg_size(&frames[2]),
					    zmq_msg_data(&frames[2]));
	if (req == NULL)
		goto bad;
	if (strnlen(req->router_id, 256) > 255) {
		shoal__router_request__free_unpacked(req, NULL);
		goto bad;
	}
	tk.request_id = req->request_id;
	switch (req->body_case) {
	case SHOAL__ROUTER_REQUEST__BODY_MAP:
		if (req->map->offer)
			owner_offer(in->d.owner, req->map->offer);
		ingest_reply(in, &tk, SHOAL__STATUS__STATUS_OK, "", true);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_ENQUEUE:
		ingest_enqueue(in, &tk, frames, nframes, req);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_HEARTBEAT:
		ingest_heartbeat(in, &tk, req);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_CHECK:
		suppress_check(in->d.supp, &tk, req->check);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_SUPP_FILTER:
		suppress_filter_request(in->d.supp, &tk, req->supp_filter);
		break;
	default:
		ingest_reply(in, &tk, SHOAL__STATUS__STATUS_BAD_REQUEST,
			     "unknown request", false);
		break;
	}
	shoal__router_request__free_unpacked(req, NULL);
	return;
bad:
	log_warn("router=? event=bad_request reason=\"undecodable request\"");
	ingest_reply(in, &tk, SHOAL__STATUS__STATUS_BAD_REQUEST,
		     "undecodable request", false);
}

struct ingest *
ingest_new(const struct ingest_deps *deps)
{
	struct ingest *in = xcalloc(1, sizeof(*in));

	in->d = *deps;
	in->holds = idmap_new();
	in->leads = idmap_new();
	return in;
}

void
ingest_stop(struct ingest *in)
{
	in->is_stopping = true;
}

void
ingest_free(struct ingest *in)
{
	if (in == NULL)
		return;
	/* node_free() answered every item first: none is held any more */
	if (in->pending)
		log_warn("node event=ingest_free pending=%llu",
			 (unsigned long long)in->pending);
	idmap_free(in->holds);
	idmap_free(in->leads);
	free(in);
}

uint64_t
ingest_pending(const struct ingest *in)
{
	return in->pending;
}

void
ingest_counts(const struct ingest *in, uint64_t *stored, uint64_t *refused)
{
	*stored = in->stored;
	*refused = in->refused;
}
