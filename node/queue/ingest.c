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
 *     from the transaction that stores it until its reply is OK, or
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
 *     that request's answer (ingest_follow()). */
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
#include "node/queue/bounce.h"
#include "node/delivery/classify.h"
#include "node/store/commit.h"
#include "node/node.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/queue/scheduler.h"
#include "node/store/store.h"
#include "node/suppress/suppress.h"
#include "proto/router_node.pb-c.h"

#define INGEST_ID_MAX 255   /* ZeroMQ routing ids are at most 255 bytes */

struct ingest {
	struct node *n;
	uint64_t stored, refused;
	uint64_t pending;    /* items between commit_add and their answer */
	struct idmap *held;  /* shard_hash(qid) -> item: stored, not yet
			      * answered OK (ingest_holds) */
};

/* One enqueue waiting for its commit. */
struct ingest_item {
	struct ingest *in;
	unsigned char id[INGEST_ID_MAX];
	size_t id_len;
	uint64_t request_id;
	char qid[QID_MAX];
	uint32_t shard;
	uint32_t n_rcpts;
	uint64_t now;
	uint64_t seq;        /* journal seq of the put, 0 = none */
	bool known;          /* the qid was stored already (a resend) */
	bool finished;	     /* and is delivered or removed (a tombstone) */
	bool is_held;	     /* in in->held */
	Shoal__Status answer;	       /* what the router was told */
	const char *answer_text;       /* static */
	struct ingest_item *followers; /* resends of the qid given our answer */
	struct ingest_item *next;      /* in the holder's followers */
	Shoal__Status turned;  /* ingest_admit() said no at commit time */
	uint32_t n_suppressed; /* recipients to bounce without an attempt */
	void *meta;
	size_t meta_len;
	zmq_msg_t body;
};

static void
ingest_reply(struct ingest *in, const void *id, size_t id_len,
	     uint64_t request_id, Shoal__Status status, const char *text,
	     bool with_map)
{
	Shoal__NodeReply r = SHOAL__NODE_REPLY__INIT;
	unsigned char small[512];
	unsigned char *p = small;
	size_t len;

	r.request_id = request_id;
	r.status = status;
	r.message = (char *)(text ? text : "");
	r.node_id = in->n->me->id;
	r.epoch = in->n->map->epoch;
	r.author = in->n->map->author;
	r.incarnation = in->n->incarnation;
	r.sent_ms = clock_mono_ms(); /* echoed: our lease (node/owner.c) */
	if (with_map)
		r.map = in->n->map;
	len = shoal__node_reply__get_packed_size(&r);
	if (len > sizeof(small))
		p = xmalloc(len);
	shoal__node_reply__pack(&r, p);
	node_reply(in->n, id, id_len, p, len);
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
	ingest_reply(it->in, it->id, it->id_len, it->request_id, status, text,
		     false);
}

/* Whether this node may store new mail of shard now: STATUS_OK, or what
 * to answer (NOT_OWNER carries our map; MOVING, try again shortly). The
 * one place that decides it, at the request and again at the commit. */
static Shoal__Status
ingest_admit(const struct node *n, uint32_t shard)
{
	if (!owner_is_primary(n->owner, shard))
		return SHOAL__STATUS__STATUS_NOT_OWNER;
	if (owner_is_frozen(n->owner, shard))
		return SHOAL__STATUS__STATUS_MOVING;
	return SHOAL__STATUS__STATUS_OK;
}

/* Answer what ingest_admit() refused: NOT_OWNER with our map (the router
 * sends the message to the owner it names), MOVING (it tries again). */
static void
ingest_turn_away(struct ingest *in, const void *id, size_t id_len,
		 uint64_t request_id, Shoal__Status status)
{
	bool moved = status == SHOAL__STATUS__STATUS_NOT_OWNER;

	ingest_reply(in, id, id_len, request_id, status,
		     moved ? "not owner" : "shard moving", moved);
}

/* Hold the message back from delivery until its reply is known to be OK
 * (its due entry is visible from this transaction on). */
static void
ingest_hold(struct ingest_item *it)
{
	uint64_t h = shard_hash(it->qid, strlen(it->qid));

	/* a second item for the same qid (or a hash twin) finds it held */
	if (it->is_held || idmap_get(it->in->held, h) != NULL)
		return;
	idmap_put(it->in->held, h, it);
	it->is_held = true;
}

static void
ingest_release(struct ingest_item *it)
{
	if (!it->is_held)
		return;
	idmap_del(it->in->held, shard_hash(it->qid, strlen(it->qid)));
	it->is_held = false;
}

bool
ingest_holds(const struct ingest *in, const char *qid)
{
	const struct ingest_item *it =
		idmap_get(in->held, shard_hash(qid, strlen(qid)));

	return it != NULL && strcmp(it->qid, qid) == 0;
}

/* Another request for the same qid waits here for its answer (the
 * router sent the qid again meanwhile): this resend gets that answer,
 * when that request does, so that the two cannot differ (one OK, one
 * refusal that withdraws the copy). */
static bool
ingest_follow(struct ingest_item *it)
{
	struct ingest_item *h =
		idmap_get(it->in->held, shard_hash(it->qid, strlen(it->qid)));

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
 * whatever delivery state it has). It is when its journal entry is
 * acknowledged, or gone (trimmed after the ack), or only notes a later
 * change (the body was acknowledged before). Else it waits for the
 * entry's seq as a new message would, held back from delivery meanwhile:
 * after a restart the copy is due at once, and a copy delivered while
 * its answer turns out a refusal would be delivered twice. */
static int
ingest_known(struct ingest_item *it, struct store_txn *t)
{
	bool body = false;
	int rc = store_journal_seq_of(t, it->qid, &it->seq, &body);

	if (rc != 0 && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT || !body ||
	    repl_acked_upto(it->in->n->repl, it->seq)) {
		it->seq = 0;
		return 0;
	}
	ingest_hold(it);
	return 0;
}

/* Mode "bounce" of the suppression list: the DSN for the recipients the
 * router found listed, in the transaction that stores the message (they
 * are bounced already in its record; the scheduler tidies the message
 * up when nothing else is pending). */
static int
ingest_bounce_suppressed(struct ingest_item *it, struct store_txn *t)
{
	Shoal__StoredMessage *sm =
		shoal__stored_message__unpack(NULL, it->meta_len, it->meta);
	struct bounce_rcpt *brs;
	size_t n = 0;
	int rc = 0;

	if (sm == NULL || sm->envelope == NULL) {
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		return -EIO;
	}
	brs = xcalloc(sm->envelope->n_rcpts, sizeof(*brs));
	for (size_t i = 0; i < sm->envelope->n_rcpts; i++) {
		const Shoal__Recipient *r = sm->envelope->rcpts[i];

		if (!r->suppressed)
			continue;
		log_info("qid=%s rcpt=<%s> event=bounced reason=suppressed",
			 it->qid, r->address);
		if (bounce_wanted(sm->envelope, r, BOUNCE_FAILED))
			brs[n++] = (struct bounce_rcpt){
				r->address, r->orcpt, BOUNCE_FAILED, "5.1.1",
				"", 0, r->last_reply,
				classify_name(CLASSIFY_INVALID_RECIPIENT),
			};
	}
	if (n > 0)
		rc = scheduler_queue_dsn(it->in->n->sched, t, it->qid,
					 sm->envelope, zmq_msg_data(&it->body),
					 zmq_msg_size(&it->body), brs, n,
					 it->now);
	free(brs);
	shoal__stored_message__free_unpacked(sm, NULL);
	return rc;
}

/* May run twice (commit.c retries a failed batch item by item): every
 * outcome is set afresh. */
static int
ingest_apply(struct store_txn *t, void *arg)
{
	struct ingest_item *it = arg;
	const void *p;
	size_t len;
	int rc;

	it->known = it->finished = false;
	it->seq = 0;
	/* the map may have changed since the request was checked */
	it->turned = ingest_admit(it->in->n, it->shard);
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
	rc = store_msg_put(t, it->qid, it->shard, it->meta, it->meta_len,
			   zmq_msg_data(&it->body), zmq_msg_size(&it->body));
	if (rc == 0)
		rc = store_due_add(t, it->now, it->qid);
	if (rc == 0 && it->n_suppressed)
		rc = ingest_bounce_suppressed(it, t);
	it->seq = store_txn_journal_seq(t);
	if (rc == 0)
		ingest_hold(it);
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
		ingest_reply(it->in, f->id, f->id_len, f->request_id,
			     it->answer, it->answer_text, false);
		ingest_item_free(f);
	}
	it->in->pending--;
	zmq_msg_close(&it->body);
	free(it->meta);
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
			scheduler_kick_due(in->n->sched, it->now, it->qid);
		else if (it->is_held) /* due since it was stored */
			scheduler_kick(in->n->sched);
		ingest_item_free(it);
		return;
	}
	in->refused++;
	log_warn("qid=%s event=refused shard=%u error=\"not durable: peer "
		 "unavailable and replication.require_peer is set\"",
		 it->qid, it->shard);
	commit_add(in->n->commit, ingest_undo_apply, ingest_undo_done, it);
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
		ingest_turn_away(in, it->id, it->id_len, it->request_id,
				 it->turned);
		ingest_item_free(it);
		return;
	}
	if (result == 0 && it->known) {
		log_info("qid=%s event=stored_already shard=%u state=%s",
			 it->qid, it->shard,
			 it->finished ? "finished" : "queued");
		if (it->finished)
			ingest_durable(true, it);
		else if (!ingest_follow(it))
			repl_wait(in->n->repl, it->seq, ingest_durable, it);
		return;
	}
	if (result == 0) {
		in->stored++;
		log_info("qid=%s event=stored shard=%u size=%zu rcpts=%u",
			 it->qid, it->shard, zmq_msg_size(&it->body),
			 it->n_rcpts);
		repl_wait(in->n->repl, it->seq, ingest_durable, it);
		return;
	} else {
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

/* Build the stored record: the router's envelope with each recipient
 * queued and due now. */
static void *
ingest_pack_meta(const char *qid, uint32_t shard, Shoal__Envelope *env,
		 uint64_t now, size_t body_len, size_t *len)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	void *p;

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
			r->state = SHOAL__RCPT_STATE__RCPT_BOUNCED;
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
ingest_enqueue(struct ingest *in, zmq_msg_t *frames, size_t nframes,
	       const Shoal__RouterRequest *req)
{
	struct node *n = in->n;
	const Shoal__EnqueueRequest *eq = req->enqueue;
	const void *id = zmq_msg_data(&frames[0]);
	size_t id_len = zmq_msg_size(&frames[0]);
	const char *why = NULL;
	struct ingest_item *it;
	Shoal__Status admit;
	size_t body_len;

	if (req->epoch != n->map->epoch) {
		ingest_reply(in, id, id_len, req->request_id,
			     SHOAL__STATUS__STATUS_WRONG_EPOCH, "wrong epoch",
			     true);
		return;
	}
	if (nframes != 4) {
		why = "missing body frame";
		goto bad;
	}
	body_len = zmq_msg_size(&frames[3]);
	if (!qid_valid(eq->qid, strlen(eq->qid)))
		why = "bad qid";
	else if (eq->shard >= n->cfg->cluster.shards ||
		 eq->shard != shard_of(eq->qid, n->cfg->cluster.shards))
		why = "shard does not match qid";
	else if (envelope_validate(eq->envelope, &why) != 0)
		;
	else if (body_len == 0 ||
		 body_len > n->cfg->router.max_message_size + WIRE_BODY_SLACK)
		why = "body size out of range";
	if (why)
		goto bad;
	admit = ingest_admit(n, eq->shard);
	if (admit != SHOAL__STATUS__STATUS_OK) {
		ingest_turn_away(in, id, id_len, req->request_id, admit);
		return;
	}
	if (n->is_stopping) {
		/* the router tries again shortly, here after our restart or
		 * at the peer after a failover */
		log_debug(LOG_SUB_MAIN, "qid=%s event=turned_away "
			  "reason=stopping", eq->qid);
		ingest_reply(in, id, id_len, req->request_id,
			     SHOAL__STATUS__STATUS_MOVING, "node stopping",
			     false);
		return;
	}

	it = xcalloc(1, sizeof(*it));
	it->in = in;
	memcpy(it->id, id, id_len);
	it->id_len = id_len;
	it->request_id = req->request_id;
	it->answer = SHOAL__STATUS__STATUS_INTERNAL; /* until answered */
	it->answer_text = "no answer";
	snprintf(it->qid, sizeof(it->qid), "%s", eq->qid);
	it->shard = eq->shard;
	it->n_rcpts = (uint32_t)eq->envelope->n_rcpts;
	for (size_t i = 0; i < eq->envelope->n_rcpts; i++)
		if (eq->envelope->rcpts[i]->suppressed)
			it->n_suppressed++;
	it->now = (uint64_t)time(NULL);
	it->meta = ingest_pack_meta(eq->qid, eq->shard, eq->envelope, it->now,
				    body_len, &it->meta_len);
	zmq_msg_init(&it->body);
	zmq_msg_move(&it->body, &frames[3]);
	in->pending++;
	commit_add(n->commit, ingest_apply, ingest_done, it);
	return;
bad:
	{
		char q[LOG_QUOTE_BUF];

		log_warn("router=%s event=bad_request reason=\"%s\"",
			 log_quote(q, sizeof(q), req->router_id,
				   strlen(req->router_id)),
			 why);
	}
	ingest_reply(in, id, id_len, req->request_id,
		     SHOAL__STATUS__STATUS_BAD_REQUEST, why, false);
}

#define INGEST_SEEN_MAX 1024   /* node ids in one router heartbeat */

/* A router's heartbeat: remember it (fencing, failover votes) and trade
 * maps with it. */
static void
ingest_heartbeat(struct ingest *in, zmq_msg_t *frames,
		 const Shoal__RouterRequest *req)
{
	const Shoal__RouterHeartbeat *hb = req->heartbeat;
	const char *peer = in->n->me->peer;
	bool sees_peer = false;

	if (hb->n_seen > INGEST_SEEN_MAX || req->router_id[0] == '\0') {
		log_warn("router=? event=bad_request reason=\"bad heartbeat\"");
		return;
	}
	for (size_t i = 0; peer && i < hb->n_seen; i++)
		if (strcmp(hb->seen[i], peer) == 0)
			sees_peer = true;
	owner_heard_router(in->n->owner, req->router_id, sees_peer,
			   hb->echo_ms);
	/* a map the router sent us that we do not take (ours wins) goes
	 * back with the reply, so that both end up with the same one */
	ingest_reply(in, zmq_msg_data(&frames[0]), zmq_msg_size(&frames[0]),
		     req->request_id, SHOAL__STATUS__STATUS_OK, "",
		     (hb->map && !owner_offer(in->n->owner, hb->map)) ||
			     req->epoch != in->n->map->epoch);
}

void
ingest_handle(struct ingest *in, zmq_msg_t *frames, size_t nframes)
{
	Shoal__RouterRequest *req;
	size_t id_len = zmq_msg_size(&frames[0]);

	if (id_len == 0 || id_len > INGEST_ID_MAX || nframes < 3 ||
	    zmq_msg_size(&frames[2]) > WIRE_META_MAX)
		goto bad;
	req = shoal__router_request__unpack(NULL, zmq_msg_size(&frames[2]),
					    zmq_msg_data(&frames[2]));
	if (req == NULL)
		goto bad;
	if (strnlen(req->router_id, 256) > 255) {
		shoal__router_request__free_unpacked(req, NULL);
		goto bad;
	}
	switch (req->body_case) {
	case SHOAL__ROUTER_REQUEST__BODY_MAP:
		if (req->map->offer)
			owner_offer(in->n->owner, req->map->offer);
		ingest_reply(in, zmq_msg_data(&frames[0]), id_len,
			     req->request_id, SHOAL__STATUS__STATUS_OK, "",
			     true);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_ENQUEUE:
		ingest_enqueue(in, frames, nframes, req);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_HEARTBEAT:
		ingest_heartbeat(in, frames, req);
		break;
	case SHOAL__ROUTER_REQUEST__BODY_CHECK:
		suppress_check(in->n->supp, zmq_msg_data(&frames[0]), id_len,
			       req->request_id, req->check);
		break;
	default:
		ingest_reply(in, zmq_msg_data(&frames[0]), id_len,
			     req->request_id,
			     SHOAL__STATUS__STATUS_BAD_REQUEST,
			     "unknown request", false);
		break;
	}
	shoal__router_request__free_unpacked(req, NULL);
	return;
bad:
	log_warn("router=? event=bad_request reason=\"undecodable request\"");
	if (id_len > 0 && id_len <= INGEST_ID_MAX)
		ingest_reply(in, zmq_msg_data(&frames[0]), id_len, 0,
			     SHOAL__STATUS__STATUS_BAD_REQUEST,
			     "undecodable request", false);
}

struct ingest *
ingest_new(struct node *n)
{
	struct ingest *in = xcalloc(1, sizeof(*in));

	in->n = n;
	in->held = idmap_new();
	return in;
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
	idmap_free(in->held);
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
