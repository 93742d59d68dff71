/* Shard moves: the source side (freeze, drain, copy in batches, hand
 * over) and the target side (store, replicate, acknowledge, take the
 * map). See move.h for the protocol and why nothing is lost or
 * delivered twice. One timer drives both sides. */
#include "node/cluster/move.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/be.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/suppress_key.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/rpc/rpc.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "proto/node_node.pb-c.h"

#define MOVE_TICK_MS 100
#define MOVE_RESEND_MS 3000        /* a batch not acknowledged: again */
#define MOVE_RETRY_MS 5000         /* a paused move starts again */
#define MOVE_ID_MAX 255
#define MOVE_META "move_out"       /* be32 shard || target id */

enum move_phase {
	MOVE_IDLE,
	MOVE_DRAIN,                /* frozen, attempts in flight finishing */
	MOVE_COPY,                 /* batches going out */
	MOVE_PAUSED,               /* target silent: unfrozen, retry later */
};

/* The move of one of our shards to another node. */
struct move_out {
	enum move_phase phase;
	uint32_t shard;
	char to[MOVE_ID_MAX + 1];
	struct zsock *link;        /* DEALER to the target's endpoint */
	uint64_t id;
	uint64_t batch;            /* the batch in flight (0: none yet) */
	size_t batch_records;
	char cursor[QID_MAX];      /* last qid the target has */
	char next_cursor[QID_MAX]; /* last qid of the batch in flight */
	bool last_sent;
	Shoal__ShardMap *map;      /* the map the last batch carries */
	uint64_t sent_ms, heard_ms, retry_ms;
	uint64_t drain_ms;         /* when MOVE_DRAIN began */
	uint64_t messages;
	bool has_reply;
	struct rpc_ticket asker;   /* shoalctl, answered when done */
	uint64_t ask_id;           /* its MoveRequest.ask_id (0: none) */
	/* the last move that failed, for an ask that comes after its end */
	uint64_t failed_ask_id;
	char failed_why[128];
	bool is_forget_due;        /* a failed forget: again at each tick */
};

/* A shard being moved here. */
struct move_in {
	bool active;
	bool applying;
	uint32_t shard;
	uint64_t id;
	uint64_t batch;            /* the last batch durable here and there */
	char from[MOVE_ID_MAX + 1];
	struct rpc_ticket source;  /* the source's DEALER: acks go there */
	uint64_t heard_ms;
};

struct move {
	struct event_base *base;
	const struct config *cfg;
	const struct cfg_node *me;
	void *zctx;
	struct store *store;
	struct commit *commit;
	struct rpc *rpc;
	struct owner *owner;
	struct repl *repl;
	struct cluster_hooks hooks;
	struct event *timer;
	struct move_out out;
	struct move_in in;
};

/* ---- both sides -------------------------------------------------------- */

static uint64_t
move_giveup_ms(const struct move *m)
{
	return 3 * (uint64_t)m->cfg->replication.failover_after_ms;
}

static void
move_zfree(void *data, void *hint)
{
	(void)hint;
	free(data);
}

/* ---- source ---------------------------------------------------------- */

/* Answer a move request: OK with the shard's assignment now, or an
 * error. */
static void
move_reply(struct move *m, const struct rpc_ticket *to, uint32_t shard,
	   uint64_t messages, Shoal__Status status, const char *message)
{
	const Shoal__ShardMap *map = owner_map(m->owner);
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	Shoal__MoveReply mr = SHOAL__MOVE_REPLY__INIT;

	r.node_id = (char *)m->me->id;
	r.status = status;
	r.message = (char *)(message ? message : "");
	if (status == SHOAL__STATUS__STATUS_OK) {
		mr.epoch = map->epoch;
		mr.shard = shard;
		mr.primary = map->shards[shard]->primary;
		mr.replica = map->shards[shard]->replica;
		mr.messages = messages;
		r.body_case = SHOAL__ADMIN_REPLY__BODY_MOVE;
		r.move = &mr;
	}
	rpc_reply_admin(m->rpc, to, &r);
}

static void
move_answer(struct move *m, Shoal__Status status, const char *message)
{
	struct move_out *o = &m->out;

	if (!o->has_reply)
		return;
	move_reply(m, &o->asker, o->shard, o->messages, status, message);
	o->has_reply = false;
}

/* Keep (or forget, shard < 0) the move across restarts. A forget that
 * fails (a full store) is tried again at every tick: a move that was
 * answered "nothing moved" must not resume after a restart. */
static void
move_remember(struct move *m, int64_t shard, const char *to)
{
	unsigned char v[4 + MOVE_ID_MAX];
	struct store_txn *t;
	size_t len = 0;
	int rc;

	if (shard >= 0) {
		be32_put(v, (uint32_t)shard);
		len = strnlen(to, MOVE_ID_MAX);
		memcpy(v + 4, to, len);
		len += 4;
	}
	rc = store_txn_begin(m->store, false, &t);
	if (rc == 0 && (rc = store_meta_put(t, MOVE_META, v, len)) != 0)
		store_txn_abort(t);
	else if (rc == 0)
		rc = store_txn_commit(t);
	if (shard < 0 && rc != 0 && !m->out.is_forget_due)
		log_warn("node id=%s event=move_not_forgotten error=\"%s\" "
			 "note=\"tried again every %d ms; a restart before "
			 "then resumes the move\"",
			 m->me->id, shoal_strerror(rc), MOVE_TICK_MS);
	else if (shard < 0 && rc == 0 && m->out.is_forget_due)
		log_info("node id=%s event=move_forgotten", m->me->id);
	if (shard < 0)
		m->out.is_forget_due = rc != 0;
	else if (rc == 0)
		m->out.is_forget_due = false;
}

static void
move_out_end(struct move *m, Shoal__Status status, const char *why)
{
	struct move_out *o = &m->out;
	uint64_t epoch = owner_map(m->owner)->epoch;

	if (status == SHOAL__STATUS__STATUS_OK)
		log_info("node id=%s event=move_done shard=%u to=%s "
			 "messages=%llu epoch=%llu",
			 m->me->id, o->shard, o->to,
			 (unsigned long long)o->messages,
			 (unsigned long long)epoch);
	else
		log_warn("node id=%s event=move_failed shard=%u to=%s "
			 "error=\"%s\"",
			 m->me->id, o->shard, o->to, why);
	if (status != SHOAL__STATUS__STATUS_OK) {
		o->failed_ask_id = o->ask_id;
		snprintf(o->failed_why, sizeof(o->failed_why), "%s", why);
	}
	move_answer(m, status, why);
	owner_set_frozen(m->owner, -1);
	move_remember(m, -1, "");
	/* the link stays until the next move or move_free(): we may be in
	 * its own callback here */
	shardmap_free(o->map);
	o->map = NULL;
	o->phase = MOVE_IDLE;
	m->hooks.work_due(m->hooks.arg);
}

/* The map the last batch carries: the target primary, its peer replica. */
static Shoal__ShardMap *
move_new_map(struct move *m)
{
	struct move_out *o = &m->out;
	Shoal__ShardMap *nm = shardmap_dup(owner_map(m->owner));
	const Shoal__NodeInfo *to = shardmap_node(nm, o->to);
	Shoal__ShardAssignment *a = nm->shards[o->shard];

	if (a->primary != protobuf_c_empty_string)
		free(a->primary);
	if (a->replica != protobuf_c_empty_string)
		free(a->replica);
	a->primary = xstrdup(o->to);
	a->replica = xstrdup(to ? to->peer : "");
	if (nm->author != protobuf_c_empty_string)
		free(nm->author);
	nm->author = xstrdup(m->me->id);
	nm->epoch = owner_map(m->owner)->epoch + 1;
	return nm;
}

struct move_build {
	struct store_txn *t;
	uint32_t shard;
	Shoal__ReplRecord *recs;
	Shoal__ReplRecord **ptrs;
	size_t n, bytes;
	char last[QID_MAX];
};

static int
move_collect(const char *qid, uint32_t shard, const void *meta,
	     size_t meta_len, void *arg)
{
	struct move_build *b = arg;

	(void)meta;
	(void)meta_len;
	if (b->n == REPL_BATCH_RECORDS ||
	    (b->n > 0 && b->bytes >= REPL_BATCH_BYTES))
		return 1;
	b->bytes += repl_record_fill(b->t, qid, shard, true, &b->recs[b->n]);
	b->ptrs[b->n] = &b->recs[b->n];
	b->n++;
	snprintf(b->last, sizeof(b->last), "%s", qid);
	return 0;
}

/* A webhook event goes with its shard (the rest are walked past). */
static int
move_collect_whev(const char *key, uint32_t shard, const void *ev, size_t len,
		  void *arg)
{
	struct move_build *b = arg;

	(void)ev;
	(void)len;
	return shard == b->shard ? move_collect(key, shard, NULL, 0, b) : 0;
}

/* (Re)send the batch after the cursor, or the last one with the map. */
static void
move_send_batch(struct move *m)
{
	struct move_out *o = &m->out;
	Shoal__MoveBatch mb = SHOAL__MOVE_BATCH__INIT;
	struct move_build b = { 0 };
	const void *bufs[2] = { WIRE_TAG_MOVE, NULL };
	size_t lens[2] = { WIRE_TAG_LEN, 0 }, len;
	zmq_msg_t msg;
	void *p;
	int rc;

	if (store_txn_begin(m->store, true, &b.t) != 0)
		return;
	b.recs = xcalloc(REPL_BATCH_RECORDS, sizeof(*b.recs));
	b.ptrs = xcalloc(REPL_BATCH_RECORDS, sizeof(*b.ptrs));
	/* the shard's messages, then its suppression entries, then its
	 * webhook events not sent yet (keys starting with SUPPRESS_KEY_TAG
	 * and STORE_WHEV_TAG: the cursor tells the phase) */
	rc = 0;
	b.shard = o->shard;
	if (o->cursor[0] != SUPPRESS_KEY_TAG &&
	    o->cursor[0] != STORE_WHEV_TAG)
		rc = store_shard_foreach_after(b.t, o->shard, o->cursor,
					       move_collect, &b);
	if (rc == 0 && o->cursor[0] != STORE_WHEV_TAG) {
		char prefix[10];

		suppress_key_prefix(o->shard, prefix);
		rc = store_supp_foreach(b.t, prefix,
					o->cursor[0] == SUPPRESS_KEY_TAG ?
						o->cursor : "",
					move_collect, &b);
	}
	if (rc == 0)
		rc = store_whev_foreach(b.t, NULL,
					o->cursor[0] == STORE_WHEV_TAG ?
						o->cursor : "",
					move_collect_whev, &b);
	mb.from = m->me->id;
	mb.shard = o->shard;
	mb.move_id = o->id;
	mb.batch = o->batch;
	if ((rc == 0 || rc == 1) && b.n > 0) {
		mb.n_records = b.n;
		mb.records = b.ptrs;
		snprintf(o->next_cursor, sizeof(o->next_cursor), "%s", b.last);
		o->last_sent = false;
	} else if (rc == 0) {
		if (o->map == NULL)
			o->map = move_new_map(m);
		mb.last = true;
		mb.map = o->map;
		o->last_sent = true;
	}
	o->batch_records = b.n;
	len = shoal__move_batch__get_packed_size(&mb);
	p = xmalloc(len ? len : 1);
	shoal__move_batch__pack(&mb, p);	/* while t lends the bodies */
	store_txn_abort(b.t);
	free(b.recs);
	free(b.ptrs);
	zmq_msg_init_data(&msg, p, len, move_zfree, NULL);
	zsock_send(o->link, bufs, lens, 2, &msg);
	o->sent_ms = clock_mono_ms();
}

static void
move_next_batch(struct move *m)
{
	m->out.batch++;
	move_send_batch(m);
}

static void
move_restart(struct move *m)
{
	struct move_out *o = &m->out;

	while (getrandom(&o->id, sizeof(o->id), 0) != sizeof(o->id) ||
	       o->id == 0)
		o->id = clock_mono_us() ^ ((uint64_t)o->shard << 40);
	o->batch = 0;
	o->cursor[0] = '\0';
	o->messages = 0;
	o->last_sent = false;
	shardmap_free(o->map);
	o->map = NULL;
	o->heard_ms = o->drain_ms = clock_mono_ms();
	o->phase = MOVE_DRAIN;
	owner_set_frozen(m->owner, o->shard);
	log_info("node id=%s event=move_start shard=%u to=%s", m->me->id,
		 o->shard, o->to);
}

/* The target's ack, on our DEALER. */
static void
move_on_ack(struct zsock *zs, zmq_msg_t *frames, size_t nframes, void *arg)
{
	struct move *m = arg;
	struct move_out *o = &m->out;
	Shoal__MoveAck *ack;

	(void)zs;
	if (nframes != 1)
		return;
	ack = shoal__move_ack__unpack(NULL, zmq_msg_size(&frames[0]),
				      zmq_msg_data(&frames[0]));
	if (ack == NULL)
		return;
	if (o->phase != MOVE_COPY || ack->move_id != o->id ||
	    ack->shard != o->shard || strcmp(ack->from, o->to) != 0) {
		shoal__move_ack__free_unpacked(ack, NULL);
		return;
	}
	o->heard_ms = clock_mono_ms();
	if (!ack->ok) {
		log_info("node id=%s event=move_restart shard=%u to=%s "
			 "reason=\"%.200s\"",
			 m->me->id, o->shard, o->to, ack->error);
		o->batch = 0;
		o->cursor[0] = '\0';
		o->messages = 0;
		move_next_batch(m);
	} else if (ack->batch == o->batch && o->last_sent) {
		/* the target has it all and the map: hand over */
		if (!owner_offer(m->owner, o->map) &&
		    strcmp(shardmap_primary(owner_map(m->owner), o->shard),
			   o->to) != 0)
			move_out_end(m, SHOAL__STATUS__STATUS_INTERNAL,
				     "a newer map came first");
		else
			move_out_end(m, SHOAL__STATUS__STATUS_OK, "");
	} else if (ack->batch == o->batch) {
		o->messages += o->batch_records;
		snprintf(o->cursor, sizeof(o->cursor), "%s", o->next_cursor);
		move_next_batch(m);
	}
	shoal__move_ack__free_unpacked(ack, NULL);
}

static int
move_out_begin(struct move *m, uint32_t shard, const char *to)
{
	struct move_out *o = &m->out;
	/* the map, not our config: it names nodes that joined since */
	const Shoal__NodeInfo *t = shardmap_node(owner_map(m->owner), to);
	int64_t max = WIRE_META_MAX;

	if (t == NULL)
		return -ENOENT;
	zsock_free(o->link);
	o->shard = shard;
	snprintf(o->to, sizeof(o->to), "%s", to);
	o->link = zsock_new(m->base, m->zctx, ZMQ_DEALER, max,
			    move_on_ack, NULL, m);
	if (o->link == NULL || zsock_connect(o->link, t->endpoint) != 0) {
		zsock_free(o->link);
		o->link = NULL;
		return -EIO;
	}
	move_remember(m, shard, to);
	move_restart(m);
	return 0;
}

/* Whether deliveries of shard are in flight. */
static bool
move_shard_busy(struct move *m, uint32_t shard)
{
	uint8_t *one = xcalloc((size_t)shard + 1, 1);
	bool busy;

	one[shard] = 1;
	busy = m->hooks.in_flight(m->hooks.arg, one, (size_t)shard + 1) > 0;
	free(one);
	return busy;
}

static void
move_out_tick(struct move *m, uint64_t now)
{
	struct move_out *o = &m->out;

	if (o->phase == MOVE_IDLE)
		return;
	if (!owner_is_primary(m->owner, o->shard)) {
		move_out_end(m, SHOAL__STATUS__STATUS_INTERNAL,
			     "no longer the shard's primary (failover?)");
		return;
	}
	switch (o->phase) {
	case MOVE_DRAIN:
		if (!move_shard_busy(m, o->shard)) {
			o->phase = MOVE_COPY;
			move_next_batch(m);
		} else if (now - o->drain_ms >= OWNER_IN_FLIGHT_WAIT_MS) {
			move_out_end(m, SHOAL__STATUS__STATUS_INTERNAL,
				     owner_in_flight_giveup(&m->hooks));
		}
		break;
	case MOVE_COPY:
		if (now - o->heard_ms >= move_giveup_ms(m)) {
			log_warn("node id=%s event=move_paused shard=%u to=%s "
				 "reason=\"target silent\"",
				 m->me->id, o->shard, o->to);
			owner_set_frozen(m->owner, -1);
			m->hooks.work_due(m->hooks.arg);
			o->phase = MOVE_PAUSED;
			o->retry_ms = now + MOVE_RETRY_MS;
		} else if (now - o->sent_ms >= MOVE_RESEND_MS) {
			move_send_batch(m);
		}
		break;
	case MOVE_PAUSED:
		if (now >= o->retry_ms)
			move_restart(m);
		break;
	default:
		break;
	}
}

void
move_request(struct move *m, const struct rpc_ticket *t,
	     const Shoal__MoveRequest *req)
{
	struct move_out *o = &m->out;
	const Shoal__ShardMap *map = owner_map(m->owner);
	const char *why = NULL;
	int rc;

	if (o->phase != MOVE_IDLE && o->shard == req->shard &&
	    strcmp(o->to, req->to) == 0) {
		/* the same move asked again (shoalctl waits in slices):
		 * answer this request when it is done */
		o->has_reply = true;
		o->asker = *t;
		o->ask_id = req->ask_id;
		return;
	}
	if (o->phase == MOVE_IDLE && req->ask_id != 0 &&
	    req->ask_id == o->failed_ask_id) {
		/* it failed between two asks: say so, start nothing */
		move_reply(m, t, req->shard, 0, SHOAL__STATUS__STATUS_INTERNAL,
			   o->failed_why);
		return;
	}
	if (req->shard >= map->n_shards)
		why = "shard out of range";
	else if (shardmap_node(map, req->to) == NULL)
		why = "unknown node (not in the shard map: did it join?)";
	else if (!owner_is_primary(m->owner, req->shard))
		why = "not the shard's primary";
	else if (strcmp(req->to, m->me->id) == 0)
		why = "the shard is here already";
	else if (o->phase != MOVE_IDLE)
		why = "a move is in progress";
	else if ((rc = move_out_begin(m, req->shard, req->to)) != 0)
		why = shoal_strerror(rc);
	if (why != NULL) {
		log_warn("node id=%s event=move_refused shard=%u to=%.64s "
			 "reason=\"%s\"",
			 m->me->id, req->shard, req->to, why);
		move_reply(m, t, req->shard, 0,
			   SHOAL__STATUS__STATUS_BAD_REQUEST, why);
		return;
	}
	o->has_reply = true;
	o->asker = *t;
	o->ask_id = req->ask_id;
}

/* ---- target -------------------------------------------------------------- */

static void
move_ack(struct move *m, bool ok, const char *error)
{
	struct move_in *in = &m->in;
	Shoal__MoveAck ack = SHOAL__MOVE_ACK__INIT;
	unsigned char buf[512];
	size_t len;

	ack.from = m->me->id;
	ack.shard = in->shard;
	ack.move_id = in->id;
	ack.batch = in->batch;
	ack.ok = ok;
	ack.error = (char *)(error ? error : "");
	if (shoal__move_ack__get_packed_size(&ack) > sizeof(buf))
		ack.error = "";
	len = shoal__move_ack__pack(&ack, buf);
	rpc_reply(m->rpc, &in->source, buf, len);
}

static void
move_in_end(struct move *m, bool purge)
{
	struct move_in *in = &m->in;
	uint32_t shard = in->shard;

	in->active = false;
	owner_set_incoming(m->owner, -1);
	if (purge)
		owner_purge(m->owner, shard);
}

/* A batch through group commit; move_apply() may run more than once
 * (node/store/commit.h): seq and notes are set afresh by each run. */
struct move_apply {
	struct move *m;
	Shoal__MoveBatch *mb;
	uint64_t id;
	uint64_t seq;
	uint8_t *notes; /* enum repl_note per record, logged once durable */
};

static int
move_apply(struct store_txn *t, void *arg)
{
	struct move_apply *a = arg;
	size_t n = a->mb->n_records;
	int rc = 0;

	if (a->notes == NULL)
		a->notes = xcalloc(n ? n : 1, 1);
	memset(a->notes, REPL_NOTE_NONE, n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = repl_record_apply(a->m->repl, t, a->mb->records[i],
				       &a->notes[i]);
	a->seq = store_txn_journal_seq(t);
	return rc;
}

/* Durable here and on our peer: acknowledge. */
static void
move_replicated(bool durable, void *arg)
{
	struct move_apply *a = arg;
	struct move *m = a->m;

	(void)durable;	/* degraded: acknowledged on our own fsync */
	if (m->in.active && m->in.id == a->id) {
		m->in.applying = false;
		m->in.batch = a->mb->batch;
		move_ack(m, true, "");
	}
	shoal__move_batch__free_unpacked(a->mb, NULL);
	free(a);
}

static void
move_applied(int result, void *arg)
{
	struct move_apply *a = arg;
	struct move *m = a->m;

	for (size_t i = 0; result == 0 && i < a->mb->n_records; i++)
		repl_record_log(m->repl, a->mb->records[i], a->notes[i]);
	free(a->notes);
	a->notes = NULL;
	if (result != 0) {
		if (m->in.active && m->in.id == a->id) {
			m->in.applying = false;
			move_ack(m, false, shoal_strerror(result));
		}
		shoal__move_batch__free_unpacked(a->mb, NULL);
		free(a);
		return;
	}
	repl_wait(m->repl, a->seq, move_replicated, a);
}

static bool
move_batch_ok(const struct move *m, const Shoal__MoveBatch *mb)
{
	const char *primary = shardmap_primary(owner_map(m->owner), mb->shard);

	if (primary == NULL || mb->move_id == 0 || mb->batch == 0 ||
	    strnlen(mb->from, MOVE_ID_MAX + 1) > MOVE_ID_MAX)
		return false;
	/* from the shard's primary, or a repeat of the last batch after we
	 * took the shard */
	if (strcmp(primary, mb->from) != 0 &&
	    strcmp(primary, m->me->id) != 0)
		return false;
	for (size_t i = 0; i < mb->n_records; i++)
		if (!repl_record_ok(mb->records[i], m->cfg->cluster.shards) ||
		    mb->records[i]->shard != mb->shard)
			return false;
	return !mb->last || mb->map != NULL;
}

/* Takes mb; from is the source's DEALER. */
static void
move_on_batch(struct move *m, const struct rpc_ticket *from,
	      Shoal__MoveBatch *mb)
{
	struct move_in *in = &m->in;
	struct move_apply *a;

	if (mb->batch == 1 && !(in->active && in->id == mb->move_id)) {
		if (in->active && in->shard != mb->shard) {
			shoal__move_batch__free_unpacked(mb, NULL);
			return;	/* one move here at a time: it will retry */
		}
		memset(in, 0, sizeof(*in));
		in->active = true;
		in->shard = mb->shard;
		in->id = mb->move_id;
		snprintf(in->from, sizeof(in->from), "%s", mb->from);
		owner_set_incoming(m->owner, mb->shard);
		log_info("node id=%s event=move_incoming shard=%u from=%s",
			 m->me->id, mb->shard, mb->from);
	}
	in->source = *from;
	if (!in->active || in->id != mb->move_id || in->shard != mb->shard) {
		in->batch = 0;
		move_ack(m, false, "unknown move: start again");
		shoal__move_batch__free_unpacked(mb, NULL);
		return;
	}
	in->heard_ms = clock_mono_ms();
	if (mb->batch <= in->batch || in->applying ||
	    mb->batch != in->batch + 1) {
		if (mb->batch <= in->batch)
			move_ack(m, true, "");	/* a repeat: ack again */
		shoal__move_batch__free_unpacked(mb, NULL);
		return;
	}
	if (mb->last) {
		bool mine;

		owner_offer(m->owner, mb->map);
		mine = strcmp(shardmap_primary(owner_map(m->owner), mb->shard),
			      m->me->id) == 0;
		in->batch = mb->batch;
		move_ack(m, mine, mine ? "" : "map not taken");
		if (mine) {
			log_info("node id=%s event=move_received shard=%u "
				 "from=%s epoch=%llu",
				 m->me->id, mb->shard, mb->from,
				 (unsigned long long)owner_map(m->owner)
					 ->epoch);
			move_in_end(m, false);
		}
		shoal__move_batch__free_unpacked(mb, NULL);
		return;
	}
	in->applying = true;
	a = xcalloc(1, sizeof(*a));
	a->m = m;
	a->mb = mb;
	a->id = in->id;
	commit_add(m->commit, move_apply, move_applied, a);
}

void
move_handle(struct move *m, zmq_msg_t *frames, size_t nframes)
{
	Shoal__MoveBatch *mb;
	struct rpc_ticket from;

	if (nframes != 3 || rpc_ticket_set(&from, &frames[0], 0) != 0) {
		log_warn("move event=bad_message reason=\"frames\"");
		return;
	}
	mb = shoal__move_batch__unpack(NULL, zmq_msg_size(&frames[2]),
				       zmq_msg_data(&frames[2]));
	if (mb == NULL || !move_batch_ok(m, mb)) {
		log_warn("move event=bad_message reason=\"%s\"",
			 mb ? "not a batch we take" : "undecodable");
		if (mb)
			shoal__move_batch__free_unpacked(mb, NULL);
		return;
	}
	move_on_batch(m, &from, mb);
}

/* ---- life cycle ---------------------------------------------------------- */

static void
move_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct move *m = arg;
	uint64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	if (m->out.is_forget_due && m->out.phase == MOVE_IDLE)
		move_remember(m, -1, "");
	move_out_tick(m, now);
	if (m->in.active && now - m->in.heard_ms >= 2 * move_giveup_ms(m)) {
		log_warn("node id=%s event=move_abandoned shard=%u from=%s",
			 m->me->id, m->in.shard, m->in.from);
		move_in_end(m, true);
	}
}

/* A move that was going on when we stopped goes on. */
static void
move_resume(struct move *m)
{
	struct store_txn *t;
	const void *p;
	size_t len;
	char to[MOVE_ID_MAX + 1];
	uint32_t shard = 0;

	if (store_txn_begin(m->store, true, &t) != 0)
		return;
	if (store_meta_get(t, MOVE_META, &p, &len) != 0 || len <= 4 ||
	    len > 4 + MOVE_ID_MAX) {
		store_txn_abort(t);
		return;
	}
	shard = be32_get(p);
	memcpy(to, (const char *)p + 4, len - 4);
	to[len - 4] = '\0';
	store_txn_abort(t);
	if (shard < owner_map(m->owner)->n_shards &&
	    owner_is_primary(m->owner, shard) &&
	    move_out_begin(m, shard, to) == 0)
		log_info("node id=%s event=move_resumed shard=%u to=%s",
			 m->me->id, shard, to);
	else
		move_remember(m, -1, "");
}

struct move *
move_new(struct event_base *base, const struct config *cfg,
	 const struct cfg_node *me, void *zctx, struct store *st,
	 struct commit *commit, struct rpc *rpc, struct owner *o,
	 struct repl *r, const struct cluster_hooks *hooks)
{
	struct move *m = xcalloc(1, sizeof(*m));
	struct timeval tv = { 0, MOVE_TICK_MS * 1000 };

	m->base = base;
	m->cfg = cfg;
	m->me = me;
	m->zctx = zctx;
	m->store = st;
	m->commit = commit;
	m->rpc = rpc;
	m->owner = o;
	m->repl = r;
	m->hooks = *hooks;
	m->timer = event_new(base, -1, EV_PERSIST, move_on_timer, m);
	event_add(m->timer, &tv);
	move_resume(m);
	return m;
}

void
move_free(struct move *m)
{
	if (m == NULL)
		return;
	event_free(m->timer);
	zsock_free(m->out.link);
	shardmap_free(m->out.map);
	free(m);
}
