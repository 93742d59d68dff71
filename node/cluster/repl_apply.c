/* Applying the peer's stream: batches checked, applied in order through
 * group commit with the applied seq stored in the same transaction, then
 * acknowledged. A record for a shard we are not primary for is a replica
 * copy (no due entry); a record for one we are primary for is a handback
 * from the node that owned it before a failover (docs/replication.md).
 *
 * Order is checked where it is decided: inside the transaction, against
 * the applied seq that transaction sees. A batch queued behind one that
 * failed (a full disk) finds a hole there and writes nothing, so nothing
 * is ever applied, acknowledged and trimmed on the primary over a hole.
 * A failed apply is retried until it succeeds: batches are dropped for a
 * backoff (250 ms doubling to 5 s), then the peer is asked to resend from
 * what we applied. Meanwhile every message to the peer says why
 * (apply_error), and the log says so every 10 s.
 *
 * Handles untrusted input: every record is checked before use. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/be.h"
#include "lib/clock.h"
#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl_int.h"
#include "node/store/commit.h"
#include "node/store/store.h"

#define REPL_RESEND_ASK_MS 200          /* between two resend requests */
#define REPL_RETRY_MIN_MS 250		/* after a failed apply, doubling */
#define REPL_RETRY_MAX_MS 5000
#define REPL_FAIL_LOG_MS 10000 /* failing applies: one line per */

/* A batch through group commit. repl_apply() may run more than once
 * (node/store/commit.h): it sets every field below pm afresh, and what is
 * worth a log line is noted per record for repl_applied() to log once. */
struct repl_apply {
	struct repl *r;
	Shoal__PeerMessage *pm;
	uint64_t stream;
	uint64_t have;		      /* applied seq the transaction saw */
	bool adopted;                 /* a handback added due work */
	bool skipped;		      /* did not follow `have`: not applied */
	uint8_t *notes;		      /* enum repl_note per record */
};

/* A record for a shard we are primary for: the peer owned it before a
 * failover and is handing back what we did not get from it. New messages
 * are adopted, final deletions (it delivered them) applied; any other
 * state of ours wins over its older one.
 *
 * A withdrawal there (deleted, not finished: its client was answered 4xx)
 * removes nothing here and leaves no tombstone. The router may have sent
 * the qid again since, to us (the refusal was lost, the old primary
 * died), and had our OK: removing our copy would lose that mail. Keeping
 * it costs at worst a second delivery, when the refusal did reach the
 * client and our copy is the replica's, made due by the takeover. */
static int
repl_apply_handback(struct repl_apply *a, struct store_txn *t,
		    const Shoal__ReplRecord *rec, uint8_t *note)
{
	Shoal__StoredMessage *sm;
	const void *p;
	size_t len;
	uint64_t due = 0;
	bool held = false;
	uint32_t cls;
	int rc = store_msg_get_meta(t, rec->qid, &p, &len);

	if (rc != 0 && rc != -ENOENT)
		return rc;
	if (rec->deleted && !rec->finished) {
		if (rc == 0)
			*note = REPL_NOTE_HANDBACK_KEPT;
		return 0;
	}
	if (rec->deleted && rc == 0) {
		sm = shoal__stored_message__unpack(NULL, len, p);
		if (sm != NULL) {
			due = sm->due;
			shoal__stored_message__free_unpacked(sm, NULL);
		}
		if (due != 0 && (rc = store_due_del(t, due, rec->qid)) != 0)
			return rc;
		*note = REPL_NOTE_HANDBACK_DELETED;
		return store_msg_retire(t, rec->qid, rec->shard);
	}
	if (rec->deleted) /* finished there: a resend here is a no-op */
		return store_msg_retire(t, rec->qid, rec->shard);
	if (rc == 0 || !rec->has_body)
		return 0;
	/* finished here already (delivered after the takeover): adopting
	 * it would deliver it again */
	rc = store_tomb_has(t, rec->qid);
	if (rc != -ENOENT) {
		if (rc == 0)
			*note = REPL_NOTE_HANDBACK_FINISHED;
		return rc;
	}
	sm = shoal__stored_message__unpack(NULL, rec->meta.len, rec->meta.data);
	if (sm == NULL || sm->envelope == NULL) {
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		*note = REPL_NOTE_HANDBACK_BAD;
		return 0;
	}
	due = sm->due;
	held = sm->held;
	cls = envelope_class(sm->envelope);
	shoal__stored_message__free_unpacked(sm, NULL);
	rc = store_msg_put(t, rec->qid, rec->shard, rec->meta.data,
			   rec->meta.len, rec->body.data, rec->body.len);
	if (rc == 0 && !held)
		rc = store_due_put(t, due ? due : (uint64_t)time(NULL),
				   rec->qid, cls);
	if (rc == 0) {
		a->adopted = true;
		*note = REPL_NOTE_HANDBACK_ADOPTED;
	}
	return rc;
}

/* A replica copy: the record as it is, without due entries. */
int
repl_record_apply(struct repl *r, struct store_txn *t,
		  const Shoal__ReplRecord *rec, uint8_t *note)
{
	int rc;

	*note = REPL_NOTE_NONE;
	if (rec->webhook) {
		/* an event as it is, for any shard: sent, or still to send */
		if (rec->deleted) {
			rc = store_whev_del(t, rec->qid);
			return rc == -ENOENT ? 0 : rc;
		}
		rc = store_whev_put(t, rec->qid, rec->meta.data,
				    rec->meta.len);
		/* no room to spare: the copy is not kept (the peer still
		 * sends it; a failover before then loses it), the stream
		 * goes on */
		return rc == -EDQUOT ? 0 : rc;
	}
	if (rec->suppression) {
		rc = r->hooks.supp_apply(r->hooks.arg, t, rec);
		if (rc > 0) {
			*note = REPL_NOTE_SUPP_BAD;
			rc = 0;
		}
		return rc;
	}
	if (rec->deleted && rec->finished) /* for good: a tombstone too */
		return store_msg_retire(t, rec->qid, rec->shard);
	if (rec->deleted) { /* withdrawn: the qid may come again */
		rc = store_msg_del(t, rec->qid, rec->shard);
		return rc == -ENOENT ? 0 : rc;
	}
	if (rec->has_body) {
		/* a copy new to us leaves the store's reserve alone (a
		 * refusal stalls the stream, loudly, until there is room);
		 * one sent again replaces ours and takes no more */
		const void *p;
		size_t len;

		rc = store_msg_get_meta(t, rec->qid, &p, &len);
		if (rc == -ENOENT)
			rc = store_admit(t, rec->meta.len + rec->body.len,
					 STORE_ADMIT_REPLICA);
		if (rc != 0)
			return rc;
		return store_msg_put(t, rec->qid, rec->shard, rec->meta.data,
				     rec->meta.len, rec->body.data,
				     rec->body.len);
	}
	rc = store_msg_set_meta(t, rec->qid, rec->meta.data, rec->meta.len);
	if (rc == -ENOENT) {
		*note = REPL_NOTE_GAP;
		rc = 0;
	}
	return rc;
}

void
repl_record_log(const struct repl *r, const Shoal__ReplRecord *rec,
		uint8_t note)
{
	const char *peer = r->peer ? r->peer->id : "";

	switch (note) {
	case REPL_NOTE_GAP:
		log_warn("qid=%s event=replica_gap reason=\"update of a "
			 "message never received\"", rec->qid);
		break;
	case REPL_NOTE_HANDBACK_KEPT:
		log_info("qid=%s event=handback action=kept "
			 "reason=\"withdrawn there\" peer=%s",
			 rec->qid, peer);
		break;
	case REPL_NOTE_HANDBACK_DELETED:
		log_info("qid=%s event=handback action=deleted peer=%s",
			 rec->qid, peer);
		break;
	case REPL_NOTE_HANDBACK_FINISHED:
		log_info("qid=%s event=handback action=skipped "
			 "reason=finished peer=%s",
			 rec->qid, peer);
		break;
	case REPL_NOTE_HANDBACK_BAD:
		log_warn("qid=%s event=handback action=skipped reason=\"bad "
			 "record\"", rec->qid);
		break;
	case REPL_NOTE_SUPP_BAD:
		log_warn("key=%.40s event=suppress_record_skipped "
			 "reason=\"bad entry\"", rec->qid);
		break;
	case REPL_NOTE_HANDBACK_ADOPTED:
		log_info("qid=%s event=handback action=adopted peer=%s",
			 rec->qid, peer);
		break;
	default:
		break;
	}
}

/* The applied seq of stream that t holds (0 for another stream). */
static uint64_t
repl_stored_applied(struct store_txn *t, uint64_t stream)
{
	const void *p;
	size_t len;

	if (store_meta_get(t, REPL_META_PEER, &p, &len) != 0 || len != 16 ||
	    be64_get(p) != stream)
		return 0;
	return be64_get((const char *)p + 8);
}

static int
repl_apply(struct store_txn *t, void *arg)
{
	struct repl_apply *a = arg;
	const Shoal__ReplBatch *b = a->pm->batch;
	unsigned char v[16];
	int rc = 0;

	/* what this transaction holds decides: an earlier batch may have
	 * failed after this one was queued */
	a->have = repl_stored_applied(t, a->stream);
	a->skipped = b->prev_seq > a->have;
	a->adopted = false;
	if (a->notes == NULL)
		a->notes = xcalloc(b->n_records ? b->n_records : 1, 1);
	memset(a->notes, REPL_NOTE_NONE, b->n_records);
	if (a->skipped || b->last_seq <= a->have)
		return 0;
	for (size_t i = 0; rc == 0 && i < b->n_records; i++) {
		const Shoal__ReplRecord *rec = b->records[i];

		if (rec->seq <= a->have)
			continue; /* applied already (a resend) */
		/* suppression entries and webhook events: the record as it
		 * is, either way */
		if (!rec->suppression && !rec->webhook &&
		    owner_is_primary(a->r->owner, rec->shard))
			rc = repl_apply_handback(a, t, rec, &a->notes[i]);
		else
			rc = repl_record_apply(a->r, t, rec, &a->notes[i]);
	}
	be64_put(v, a->stream);
	be64_put(v + 8, b->last_seq);
	return rc ? rc : store_meta_put(t, REPL_META_PEER, v, sizeof(v));
}

/* Ask the peer to go back to what we applied (at most every
 * REPL_RESEND_ASK_MS). */
static void
repl_ask_resend(struct repl *r, uint64_t now)
{
	if (now - r->resend_asked_ms < REPL_RESEND_ASK_MS)
		return;
	r->resend_asked_ms = now;
	r->want_resend = true;
	repl_send_heartbeat(r);
}

static uint64_t
repl_retry_ms(uint32_t failures)
{
	uint64_t ms = REPL_RETRY_MIN_MS;

	for (uint32_t i = 1; i < failures && ms < REPL_RETRY_MAX_MS; i++)
		ms *= 2;
	return ms < REPL_RETRY_MAX_MS ? ms : REPL_RETRY_MAX_MS;
}

/* An apply failed: nothing of it is stored. Drop batches for a while,
 * then resume from what is applied. */
static void
repl_apply_failed(struct repl *r, uint64_t prev, uint64_t last, int result)
{
	uint64_t now = clock_mono_ms();
	uint64_t wait;

	r->accepted = r->applied;
	r->apply_failures_total++;
	if (r->apply_failures++ == 0) {
		r->apply_failed_ms = now;
		r->apply_logged_ms = 0;
	}
	r->apply_failed_at = prev;
	wait = repl_retry_ms(r->apply_failures);
	r->apply_retry_ms = now + wait;
	snprintf(r->apply_error, sizeof(r->apply_error), "%s",
		 shoal_strerror(result));
	if (r->apply_failures == 1 ||
	    now - r->apply_logged_ms >= REPL_FAIL_LOG_MS) {
		r->apply_logged_ms = now;
		log_error("repl node=%s peer=%s event=apply_failed last=%llu "
			  "applied=%llu failures=%u failing_s=%llu "
			  "retry_in_ms=%llu error=\"%s\"",
			  r->me->id, r->peer->id, (unsigned long long)last,
			  (unsigned long long)r->applied, r->apply_failures,
			  (unsigned long long)(now - r->apply_failed_ms) / 1000,
			  (unsigned long long)wait, r->apply_error);
	}
}

void
repl_apply_recovered(struct repl *r)
{
	if (r->apply_failures == 0)
		return;
	log_info("repl node=%s peer=%s event=apply_recovered applied=%llu "
		 "failures=%u failing_s=%llu",
		 r->me->id, r->peer->id, (unsigned long long)r->applied,
		 r->apply_failures,
		 (unsigned long long)(clock_mono_ms() - r->apply_failed_ms) /
			 1000);
	r->apply_failures = 0;
	r->apply_error[0] = '\0';
}

void
repl_apply_tick(struct repl *r, uint64_t now)
{
	if (r->apply_failures == 0 || now < r->apply_retry_ms ||
	    r->applying > 0)
		return;
	/* the backoff is over and nothing is being tried: from `applied` */
	r->resend_asked_ms = 0;
	repl_ask_resend(r, now);
}

static void
repl_applied(int result, void *arg)
{
	struct repl_apply *a = arg;
	struct repl *r = a->r;
	const Shoal__ReplBatch *b = a->pm->batch;

	r->applying--;
	for (size_t i = 0; result == 0 && a->notes && i < b->n_records; i++)
		repl_record_log(r, b->records[i], a->notes[i]);
	if (a->stream != r->peer_stream) {
		/* a batch of the peer's previous stream: forget it */
	} else if (result != 0) {
		repl_apply_failed(r, b->prev_seq, b->last_seq, result);
	} else if (a->skipped) {
		/* behind a failed batch: the resend brings it again */
		log_debug(LOG_SUB_REPL,
			  "repl event=apply_skipped prev=%llu "
			  "have=%llu",
			  (unsigned long long)b->prev_seq,
			  (unsigned long long)a->have);
	} else {
		if (b->last_seq > r->applied)
			r->applied = b->last_seq;
		/* past the hole a failed batch left (an earlier batch may
		 * only now be durable: that is no recovery) */
		if (r->apply_failures > 0 && r->applied > r->apply_failed_at)
			repl_apply_recovered(r);
		if (r->accepted < r->applied)
			r->accepted = r->applied;
		r->batches_applied++;
		r->records_applied += b->n_records;
		event_active(r->ack_ev, 0, 0);
		if (a->adopted)
			r->hooks.work_due(r->hooks.arg);
	}
	shoal__peer_message__free_unpacked(a->pm, NULL);
	free(a->notes);
	free(a);
}

static bool
repl_batch_ok(const struct repl *r, const Shoal__ReplBatch *b)
{
	if (b->last_seq < b->prev_seq)
		return false;
	for (size_t i = 0; i < b->n_records; i++) {
		const Shoal__ReplRecord *rec = b->records[i];

		if (!repl_record_ok(rec, r->cfg->cluster.shards) ||
		    rec->seq <= b->prev_seq || rec->seq > b->last_seq)
			return false;
	}
	return true;
}

bool
repl_record_ok(const Shoal__ReplRecord *rec, uint32_t shards)
{
	size_t ql = strnlen(rec->qid, QID_MAX);
	uint32_t shard;

	if (rec->webhook) /* an event: its key names its shard */
		return store_whev_key_parse(rec->qid, &shard) &&
		       shard == rec->shard && shard < shards &&
		       !rec->has_body && !rec->suppression &&
		       (rec->deleted || (rec->meta.len > 0 &&
					 rec->meta.len <= STORE_WHEV_MAX));
	if (rec->suppression) /* an entry: its key names its shard */
		return suppress_key_parse(rec->qid, &shard) &&
		       shard == rec->shard && shard < shards &&
		       !rec->has_body && (rec->deleted || rec->meta.len > 0);
	return qid_valid(rec->qid, ql) &&
	       rec->shard == shard_of(rec->qid, shards) &&
	       (rec->deleted || rec->meta.len > 0) &&
	       (!rec->has_body || rec->body.len > 0);
}

/* Takes pm. */
void
repl_on_batch(struct repl *r, Shoal__PeerMessage *pm)
{
	const Shoal__ReplBatch *b = pm->batch;
	uint64_t now = clock_mono_ms();
	struct repl_apply *a;

	if (!repl_batch_ok(r, b)) {
		log_warn("repl node=%s peer=%s event=bad_batch", r->me->id,
			 r->peer->id);
		shoal__peer_message__free_unpacked(pm, NULL);
		return;
	}
	if (pm->stream != r->peer_stream) {
		/* a new stream (the peer's data dir is new): from its start */
		log_info("repl node=%s peer=%s event=new_stream stream=%llx",
			 r->me->id, r->peer->id,
			 (unsigned long long)pm->stream);
		r->peer_stream = pm->stream;
		r->applied = r->accepted = 0;
		r->apply_failures = 0;
		r->apply_error[0] = '\0';
	}
	if (r->apply_failures > 0 && now < r->apply_retry_ms) {
		/* backing off after a failed apply: this would fail too */
		shoal__peer_message__free_unpacked(pm, NULL);
		return;
	}
	if (b->prev_seq > r->accepted) {
		log_debug(LOG_SUB_REPL, "repl event=gap prev=%llu have=%llu",
			  (unsigned long long)b->prev_seq,
			  (unsigned long long)r->applied);
		repl_ask_resend(r, now);
		shoal__peer_message__free_unpacked(pm, NULL);
		return;
	}
	if (b->last_seq > r->accepted)
		r->accepted = b->last_seq;
	a = xcalloc(1, sizeof(*a));
	a->r = r;
	a->pm = pm;
	a->stream = pm->stream;
	r->applying++;
	commit_add(r->commit, repl_apply, repl_applied, a);
}
