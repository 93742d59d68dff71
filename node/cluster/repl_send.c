/* Our stream to the peer: the journal read from the last seq sent and
 * shipped in batches, each record a message's (or suppression entry's)
 * state now, mostly from a transaction about to commit (the group
 * commit's hook: repl_hook.c); at most REPL_WINDOW batches
 * unacknowledged; the peer's acks,
 * which free the window, answer the waits and trim the journal; go-back-N
 * to the ack on a resend request or a stall (repl.c's timer); and a full
 * resync when the peer has less than it once acknowledged. The link, the
 * header every message carries, pair health and the waits are repl.c;
 * applying the peer's stream is repl_apply.c. The protocol: repl.h. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lib/be.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl_int.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "proto/node_node.pb-c.h"

#define REPL_TRIM_MAX 100000            /* journal entries per trim */
#define REPL_REWIND_SHIFT_MAX 3		/* stall rewinds: backoff up to 8x */
/* The seq a wait moved behind a resync waits for until it is committed */
#define REPL_SEQ_RESYNC UINT64_MAX

/* ---- records ------------------------------------------------------------ */

size_t
repl_record_fill(struct store_txn *t, const char *qid, uint32_t shard,
		 bool body, Shoal__ReplRecord *rec)
{
	const void *p;
	size_t len, bytes = strlen(qid) + 16;

	shoal__repl_record__init(rec);
	rec->qid = (char *)qid;
	rec->shard = shard;
	if (qid[0] == STORE_WHEV_TAG) {
		/* a webhook event (node/store/store_whev.c): no body; gone
		 * once sent (or dropped) */
		rec->webhook = true;
		if (store_whev_get(t, qid, &p, &len) != 0) {
			rec->deleted = true;
			return bytes;
		}
		rec->meta.data = (uint8_t *)p;
		rec->meta.len = len;
		return bytes + len;
	}
	if (qid[0] == SUPPRESS_KEY_TAG) {
		/* a suppression entry (node/suppress/suppress.h): no body */
		rec->suppression = true;
		if (store_supp_get(t, qid, &p, &len) != 0) {
			rec->deleted = true;
			return bytes;
		}
		rec->meta.data = (uint8_t *)p;
		rec->meta.len = len;
		return bytes + len;
	}
	if (store_msg_get_meta(t, qid, &p, &len) != 0) {
		/* gone: for good when we finished it (our tombstone), or
		 * withdrawn (its client was told 4xx: the qid may come again) */
		rec->deleted = true;
		rec->finished = store_tomb_has(t, qid) == 0;
		return bytes;
	}
	rec->meta.data = (uint8_t *)p;
	rec->meta.len = len;
	bytes += len;
	if (body && store_msg_get_body(t, qid, &p, &len) == 0) {
		rec->has_body = true;
		rec->body.data = (uint8_t *)p;
		rec->body.len = len;
		bytes += len;
	}
	return bytes;
}

/* ---- batches, the window and go-back-N --------------------------------- */

/* The shard of a journal key: a qid's, or the one a suppression key or
 * a webhook event key names. */
uint32_t
repl_key_shard(const char *key, uint32_t shards)
{
	uint32_t shard;

	if (suppress_key_parse(key, &shard) ||
	    store_whev_key_parse(key, &shard))
		return shard;
	return shard_of(key, shards);
}

struct repl_build {
	struct repl *r;
	struct store_txn *t;
	Shoal__ReplRecord *recs;
	Shoal__ReplRecord **ptrs;
	size_t n;
	size_t bytes;
	uint64_t last;
};

static int
repl_collect(uint64_t seq, const char *qid, bool body, uint64_t noted,
	     void *arg)
{
	struct repl_build *b = arg;
	Shoal__ReplRecord *rec;

	(void)noted;
	if (b->n == REPL_BATCH_RECORDS ||
	    (b->n > 0 && b->bytes >= REPL_BATCH_BYTES))
		return 1;
	rec = &b->recs[b->n];
	b->bytes += repl_record_fill(b->t, qid,
				     repl_key_shard(qid,
						    b->r->cfg->cluster.shards),
				     body, rec);
	rec->seq = seq;
	b->ptrs[b->n++] = rec;
	b->last = seq;
	return 0;
}

void
repl_batch_arrays(struct repl *r)
{
	if (r->batch_recs == NULL) {
		r->batch_recs = xcalloc(REPL_BATCH_RECORDS, sizeof(*r->batch_recs));
		r->batch_ptrs = xcalloc(REPL_BATCH_RECORDS, sizeof(*r->batch_ptrs));
	}
}

void
repl_ship(struct repl *r, size_t n, size_t bytes, uint64_t last)
{
	Shoal__PeerMessage pm = SHOAL__PEER_MESSAGE__INIT;
	Shoal__ReplBatch batch = SHOAL__REPL_BATCH__INIT;

	repl_header(r, &pm);
	batch.prev_seq = r->sent;
	batch.last_seq = last;
	batch.n_records = n;
	batch.records = r->batch_ptrs;
	pm.body_case = SHOAL__PEER_MESSAGE__BODY_BATCH;
	pm.batch = &batch;
	repl_send_msg(r, &pm);
	r->want_resend = false;
	if (r->sent == r->acked)
		r->progress_ms = clock_mono_ms();
	r->fl[r->n_fl++] = (struct repl_flight){ last, bytes };
	log_debug(LOG_SUB_REPL, "repl event=batch_sent prev=%llu last=%llu "
		  "records=%zu bytes=%zu",
		  (unsigned long long)r->sent, (unsigned long long)last, n,
		  bytes);
	r->sent = last;
}

/* Send one batch from r->sent on, read from wt (a transaction about to
 * commit: its keys are noted, repl_hook.c) or, NULL, from what is
 * committed. Returns true when one was sent. */
static bool
repl_send_batch(struct repl *r, struct store_txn *wt)
{
	struct repl_build b = { .r = r, .t = wt };
	bool is_sent;
	int rc;

	/* nothing journaled past what was sent: no transaction, no arrays
	 * (every pump ends with this call) */
	if (store_journal_seq(r->store) <= r->sent)
		return false;
	if (wt == NULL && store_txn_begin(r->store, true, &b.t) != 0)
		return false;
	repl_batch_arrays(r);
	b.recs = r->batch_recs;
	b.ptrs = r->batch_ptrs;
	rc = store_journal_foreach(b.t, r->sent, REPL_BATCH_RECORDS, repl_collect,
				   &b);
	/* no entry past sent, yet seqs given out past it (skipped at a
	 * start): an empty batch moves the peer's ack up to them, so that
	 * the waits on the head end. Never a seq another transaction still
	 * open may give out: only what t holds (wt is the only writer). */
	if (rc == 0 && b.n == 0)
		b.last = store_journal_head(b.t);
	is_sent = (rc == 0 || rc == 1) && b.last > r->sent;
	if (is_sent) {
		/* packed while the transaction still lends meta and bodies */
		repl_ship(r, b.n, b.bytes, b.last);
		for (size_t i = 0; wt != NULL && i < b.n; i++)
			repl_hook_shipped(r, b.ptrs[i]->qid);
	}
	if (wt == NULL)
		store_txn_abort(b.t);
	return is_sent;
}

void
repl_pump_from(struct repl *r, struct store_txn *wt)
{
	if (!r->on)
		return;
	while (r->n_fl < REPL_WINDOW && repl_send_batch(r, wt))
		;
}

void
repl_pump(struct repl *r)
{
	repl_pump_from(r, NULL);
}

void
repl_on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	repl_pump(arg);
}

void
repl_kick(struct repl *r)
{
	if (r != NULL && r->on)
		event_active(r->kick_ev, 0, 0);
}

/* Start over from `from`: the peer said so, or acks stalled. */
void
repl_rewind(struct repl *r, uint64_t from)
{
	r->sent = from;
	r->n_fl = 0;
	r->progress_ms = clock_mono_ms();
}

/* How long acks may stall before the stream goes back to the ack:
 * 2 x heartbeat_ms (at least 1 s), doubled for each go-back that brought
 * nothing (a peer that cannot apply), up to 8 times that. */
uint64_t
repl_stall_ms(const struct repl *r)
{
	uint64_t ms = 2 * (uint64_t)r->cfg->replication.heartbeat_ms;
	uint32_t shift = r->rewinds < REPL_REWIND_SHIFT_MAX ?
				 r->rewinds :
				 REPL_REWIND_SHIFT_MAX;

	return (ms < 1000 ? 1000 : ms) << shift;
}

/* ---- trimming and full resync (through group commit) ------------------- */

struct repl_trim {
	struct repl *r;
	uint64_t upto;
	bool is_partial;	/* REPL_TRIM_MAX dropped: more may be left */
};

static void repl_maybe_trim(struct repl *r);

static int
repl_trim_apply(struct store_txn *t, void *arg)
{
	struct repl_trim *tr = arg;
	unsigned char v[8];
	int rc = store_journal_trim(t, tr->upto, REPL_TRIM_MAX);

	if (rc < 0)
		return rc;
	tr->is_partial = rc >= REPL_TRIM_MAX; /* this run's answer */
	be64_put(v, tr->upto);
	return store_meta_put(t, REPL_META_ACKED, v, sizeof(v));
}

/* Trimmed: up to the ack it was for, unless it stopped at REPL_TRIM_MAX;
 * either way go again for what is left or was acknowledged meanwhile, so
 * the journal ends empty once the peer has everything (not only when the
 * next ack comes). */
static void
repl_trim_done(int result, void *arg)
{
	struct repl_trim *tr = arg;
	struct repl *r = tr->r;

	r->trim_busy = false;
	if (result == 0 && !tr->is_partial)
		r->trimmed = tr->upto;
	free(tr);
	if (result == 0)
		repl_maybe_trim(r);
}

static void
repl_maybe_trim(struct repl *r)
{
	struct repl_trim *tr;

	if (r->trim_busy || r->acked <= r->trimmed)
		return;
	tr = xmalloc(sizeof(*tr));
	tr->r = r;
	tr->upto = r->acked;
	r->trim_busy = true;
	/* with the next batch: an idle pair would pay a sync per ack */
	commit_add_later(r->commit, repl_trim_apply, repl_trim_done, tr,
			 REPL_TRIM_DELAY_MS);
}

struct repl_resync {
	struct repl *r;
	struct store_txn *t;
	uint64_t n;
};

static int
repl_resync_one(const char *qid, uint32_t shard, const void *meta,
		size_t meta_len, void *arg)
{
	struct repl_resync *rs = arg;

	(void)meta;
	(void)meta_len;
	if (!owner_is_primary(rs->r->owner, shard))
		return 0;
	rs->n++;
	return store_journal_touch(rs->t, qid, shard);
}

static int
repl_resync_apply(struct store_txn *t, void *arg)
{
	struct repl_resync *rs = arg;
	uint64_t head = store_journal_seq(rs->r->store);
	int rc = 0;

	rs->t = t;
	rs->n = 0;
	/* every seq the peer may hold stays behind the new entries */
	if (head < rs->r->resync_floor)
		rc = store_journal_skip(t, rs->r->resync_floor - head);
	if (rc == 0)
		rc = store_msg_foreach(t, repl_resync_one, rs);
	if (rc == 0)
		rc = store_whev_touch(t, &rs->n);
	return rc ? rc : rs->r->hooks.supp_touch(rs->r->hooks.arg, t, &rs->n);
}

static void repl_resync(struct repl *r, uint64_t peer_has, const char *event);

static void
repl_resync_done(int result, void *arg)
{
	struct repl_resync *rs = arg;
	struct repl *r = rs->r;

	r->resync_busy = false;
	log_info("repl node=%s peer=%s event=resync messages=%llu result=%s",
		 r->me->id, r->peer->id, (unsigned long long)rs->n,
		 shoal_strerror(result));
	/* the messages are journaled again: their waits end with the ack of
	 * all of it (a failed resync leaves them to their deadline) */
	if (result == 0)
		repl_waits_move(r, REPL_SEQ_RESYNC - 1, store_journal_seq(r->store));
	free(rs);
	if (r->resync_again) {
		r->resync_again = false;
		repl_resync(r, r->acked, "resync_again");
		return;
	}
	repl_pump(r);
}

/* What the peer has of our stream is not what we shipped: less than it
 * once acknowledged (its data was lost or replaced), or seqs we never
 * gave out (our store is older than what was shipped from it: a copy put
 * back, a disk that lost its cache). Journal every message of ours again
 * under seqs past what it has; the enqueues waiting for a seq it claims
 * to have wait for that instead. */
static void
repl_resync(struct repl *r, uint64_t peer_has, const char *event)
{
	struct repl_resync *rs;

	log_warn("repl node=%s peer=%s event=%s acked=%llu peer_has=%llu "
		 "head=%llu",
		 r->me->id, r->peer->id, event, (unsigned long long)r->acked,
		 (unsigned long long)peer_has,
		 (unsigned long long)store_journal_seq(r->store));
	if (peer_has > r->resync_floor) {
		r->resync_floor = peer_has;
		r->resync_again = r->resync_busy;
	}
	repl_waits_move(r, peer_has < r->acked ? peer_has : 0, REPL_SEQ_RESYNC);
	r->acked = peer_has;
	r->trimmed = peer_has;
	repl_rewind(r, peer_has);
	if (r->resync_busy)
		return;
	rs = xcalloc(1, sizeof(*rs));
	rs->r = r;
	r->resync_busy = true;
	commit_add(r->commit, repl_resync_apply, repl_resync_done, rs);
}

/* ---- acks of our stream ------------------------------------------------ */

void
repl_on_ack(struct repl *r, uint64_t seq, bool resend)
{
	if (seq > store_journal_seq(r->store)) {
		/* its acks say so until it has our resync */
		if (!r->resync_busy || seq > r->resync_floor)
			repl_resync(r, seq, "peer_ahead");
		return;
	}
	if (seq < r->acked) {
		repl_resync(r, seq, "peer_lost_data");
		return;
	}
	if (seq > r->acked) {
		r->acked = seq;
		r->progress_ms = clock_mono_ms();
		r->rewinds = 0;
		while (r->n_fl > 0 && r->fl[0].last <= seq) {
			memmove(&r->fl[0], &r->fl[1],
				(r->n_fl - 1) * sizeof(r->fl[0]));
			r->n_fl--;
		}
		if (r->sent < seq)
			r->sent = seq;
		repl_release(r, seq, false, true);
		repl_maybe_trim(r);
		if (r->state == REPL_CATCHING_UP && seq >= r->catchup_target)
			repl_set_state(r, REPL_HEALTHY, "peer caught up");
	}
	if (resend && r->sent > seq)
		repl_rewind(r, seq);
	repl_pump(r);
}
