/* Replication to and from the peer: the link, the header every message
 * carries, what the peer's messages say, pair health, the heartbeat timer,
 * the durability waits of enqueues and status. Our stream (batches, acks,
 * trim, resync) is repl_send.c; applying the peer's stream is
 * repl_apply.c. The protocol and its invariants are in repl.h; ownership
 * rules in owner.c. Messages from the peer are untrusted: checked here
 * and in repl_apply.c.
 *
 * Pair health, as status shows it:
 *   healthy      the peer acknowledges; sync enqueues wait for it
 *   degraded     the peer is silent (or an ack took peer_timeout_ms):
 *                enqueues are acknowledged on our fsync alone, or refused
 *                with require_peer (right after our start, not before the
 *                peer has had peer_timeout_ms to be heard)
 *   catching_up  the peer is back and receiving what it missed; healthy
 *                again once it has everything journaled when it returned
 *   off          no peer, or replication.mode = "none"
 * A pair that is not healthy says so every REPL_BEHIND_LOG_MS (and at
 * once when the reason changes): lag, how long, what enqueues get, and
 * why, including the peer's own reason when it cannot apply our stream
 * (its apply_error: a full disk, say). A stream that stalls goes back to
 * the ack after 2 x heartbeat_ms (at least 1 s), doubling up to 8 times
 * that while nothing moves; a resend the peer asks for goes back at once. */
#include "node/cluster/repl.h"
#include "node/cluster/repl_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/be.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/cluster/owner.h"
#include "node/store/store.h"
#include "proto/node_node.pb-c.h"

#define REPL_META_STREAM "repl_stream"  /* be64: our stream id */
/* Seqs skipped at each start: more than one commit can journal. */
#define REPL_RESTART_SEQ_GAP (UINT64_C(1) << 32)
#define REPL_BEHIND_LOG_MS 10000	/* a pair behind: one line per */

static const char *const repl_state_names[] = {
	"off", "degraded", "catching_up", "healthy",
};

/* ---- small helpers ---------------------------------------------------- */

void
repl_set_state(struct repl *r, enum repl_state s, const char *why)
{
	if (r->state == s)
		return;
	if (s == REPL_DEGRADED)
		log_warn("repl node=%s peer=%s event=state state=%s "
			 "reason=\"%s\"",
			 r->me->id, r->peer->id, repl_state_names[s], why);
	else
		log_info("repl node=%s peer=%s event=state state=%s "
			 "reason=\"%s\"",
			 r->me->id, r->peer->id, repl_state_names[s], why);
	r->state = s;
}

static bool
repl_peer_alive(const struct repl *r, uint64_t now)
{
	uint64_t heard = owner_peer_heard_ms(r->owner);

	return heard != 0 &&
	       now - heard <= r->cfg->replication.peer_timeout_ms;
}

/* Whether the peer may still be heard for the first time since we
 * started: not yet silent for peer_timeout_ms, counted from our start. A
 * node just (re)started has not heard anyone; refusing at once then would
 * refuse what a moment's wait confirms (and answer 4xx to a resend of a
 * message that is stored here and will be delivered). */
static bool
repl_peer_awaited(const struct repl *r, uint64_t now)
{
	return owner_peer_heard_ms(r->owner) == 0 &&
	       now - r->started_ms < r->cfg->replication.peer_timeout_ms;
}

/* ---- waits ---------------------------------------------------------- */

static void
repl_waiter_push(struct repl *r, const struct repl_waiter *w)
{
	if (r->w_n == r->w_cap) {
		size_t cap = r->w_cap ? r->w_cap * 2 : 256;
		struct repl_waiter *v = xcalloc(cap, sizeof(*v));

		for (size_t i = 0; i < r->w_n; i++)
			v[i] = r->w[(r->w_head + i) % r->w_cap];
		free(r->w);
		r->w = v;
		r->w_cap = cap;
		r->w_head = 0;
	}
	r->w[(r->w_head + r->w_n) % r->w_cap] = *w;
	r->w_n++;
}

/* Answer waiters: those at or below seq durable, or all with `all`. */
void
repl_release(struct repl *r, uint64_t seq, bool all, bool durable)
{
	while (r->w_n > 0) {
		struct repl_waiter w = r->w[r->w_head];

		if (!all && w.seq > seq)
			break;
		r->w_head = (r->w_head + 1) % r->w_cap;
		r->w_n--;
		w.fn(all ? durable : true, w.arg);
	}
}

void
repl_waits_move(struct repl *r, uint64_t above, uint64_t to)
{
	for (size_t i = 0; i < r->w_n; i++) {
		struct repl_waiter *w = &r->w[(r->w_head + i) % r->w_cap];

		if (w->seq > above)
			w->seq = to;
	}
}

void
repl_wait(struct repl *r, uint64_t seq, repl_wait_fn fn, void *arg)
{
	const struct config *cfg = r->cfg;
	uint64_t now = clock_mono_ms();
	struct repl_waiter w = { seq, now + cfg->replication.peer_timeout_ms,
				 fn, arg };

	if (!r->on || cfg->replication.mode != CFG_REPL_SYNC || seq == 0 ||
	    seq <= r->acked) {
		fn(true, arg);
		return;
	}
	if (r->state != REPL_HEALTHY) {
		if (!cfg->replication.require_peer) {
			fn(true, arg);	/* degraded: our fsync alone */
			return;
		}
		if (!repl_peer_alive(r, now) && !repl_peer_awaited(r, now)) {
			fn(false, arg);
			return;
		}
	}
	repl_waiter_push(r, &w);
}

/* ---- the link, and the header of every message ----------------------- */

/* libzmq's free callback for a packed message (its I/O thread). */
static void
repl_zfree(void *data, void *hint)
{
	(void)hint;
	free(data);
}

/* Nothing comes back on our DEALER: the peer talks on its own. */
static void
repl_on_link_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes,
		 void *arg)
{
	(void)zs;
	(void)frames;
	(void)arg;
	log_debug(LOG_SUB_REPL, "repl event=unexpected_reply frames=%zu",
		  nframes);
}

void
repl_send_msg(struct repl *r, Shoal__PeerMessage *pm)
{
	size_t len = shoal__peer_message__get_packed_size(pm);
	void *p = xmalloc(len ? len : 1);
	const void *bufs[2] = { WIRE_TAG_NODE, NULL };
	size_t lens[2] = { WIRE_TAG_LEN, 0 };
	zmq_msg_t msg;
	int rc;

	shoal__peer_message__pack(pm, p);
	zmq_msg_init_data(&msg, p, len, repl_zfree, NULL);
	rc = zsock_send(r->link, bufs, lens, 2, &msg);
	if (pm->body_case == SHOAL__PEER_MESSAGE__BODY_BATCH && rc == 0)
		r->batches_sent++;
	if (rc != 0)
		log_debug(LOG_SUB_REPL, "repl event=send_failed error=\"%s\"",
			  shoal_strerror(rc));
}

/* Whether our map must ride on the next message: while the peer's last
 * map differs from ours (or we have not heard one since it was silent or
 * restarted), and at least once per heartbeat_ms in any case. Packing and
 * unpacking the whole map on every batch and ack was over a third of a
 * node's instructions per message (bench/profile.sh -t callgrind). */
static bool
repl_map_due(struct repl *r, uint64_t now)
{
	const Shoal__ShardMap *m = owner_map(r->owner);

	if (m == NULL)
		return false;
	if (!r->peer_map_known || r->peer_map_epoch != m->epoch ||
	    strcmp(r->peer_map_author, m->author) != 0)
		return true;
	return now - r->map_sent_ms >= r->cfg->replication.heartbeat_ms;
}

/* Note the map the peer carried; NULL: forget it (the peer was silent or
 * is a new process and may have lost ours). */
static void
repl_note_peer_map(struct repl *r, const Shoal__ShardMap *m)
{
	r->peer_map_known = m != NULL && m->author != NULL &&
			    strlen(m->author) < sizeof(r->peer_map_author);
	if (!r->peer_map_known)
		return;
	r->peer_map_epoch = m->epoch;
	memcpy(r->peer_map_author, m->author, strlen(m->author) + 1);
}

/* The header every message carries: who we are, our ack, and our map when
 * repl_map_due(). */
void
repl_header(struct repl *r, Shoal__PeerMessage *pm)
{
	uint64_t now = clock_mono_ms();

	pm->from = r->me->id;
	pm->stream = r->stream;
	pm->head_seq = store_journal_seq(r->store);
	if (repl_map_due(r, now)) {
		/* protobuf-c fields are not const: packed, never changed */
		pm->map = (Shoal__ShardMap *)owner_map(r->owner);
		r->map_sent_ms = now;
	}
	pm->acked_stream = r->peer_stream;
	pm->acked_seq = r->applied;
	pm->resend = r->want_resend;
	pm->apply_error = r->apply_error;
	pm->sent_ms = now;
	pm->echo_ms = r->peer_sent_ms;
}

void
repl_send_heartbeat(struct repl *r)
{
	Shoal__PeerMessage pm = SHOAL__PEER_MESSAGE__INIT;
	Shoal__PeerHeartbeat hb = SHOAL__PEER_HEARTBEAT__INIT;

	repl_header(r, &pm);
	pm.body_case = SHOAL__PEER_MESSAGE__BODY_HEARTBEAT;
	pm.heartbeat = &hb;
	repl_send_msg(r, &pm);
	r->want_resend = false;
}

/* ---- the peer's messages -------------------------------------------- */

/* Applied past what we last acknowledged: say so (repl_apply.c). */
static void
repl_on_ack_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	repl_send_heartbeat(arg);
}

void
repl_handle(struct repl *r, zmq_msg_t *frames, size_t nframes)
{
	Shoal__PeerMessage *pm;
	uint64_t now = clock_mono_ms();
	bool was_alive;

	if (nframes != 3 || !r->on) {
		log_warn("repl event=bad_message reason=\"%s\"",
			 r->on ? "frames" : "no peer configured");
		return;
	}
	pm = shoal__peer_message__unpack(NULL, zmq_msg_size(&frames[2]),
					 zmq_msg_data(&frames[2]));
	if (pm == NULL) {
		log_warn("repl event=bad_message reason=\"undecodable\"");
		return;
	}
	if (strcmp(pm->from, r->peer->id) != 0) {
		log_warn("repl event=bad_message reason=\"not from our peer\" "
			 "from=%.64s", pm->from);
		shoal__peer_message__free_unpacked(pm, NULL);
		return;
	}
	was_alive = repl_peer_alive(r, now);
	owner_heard_peer(r->owner, pm->sent_ms, pm->echo_ms);
	r->peer_sent_ms = pm->sent_ms; /* echoed in our next message */
	if (!was_alive) {
		log_info("repl node=%s peer=%s event=peer_heard", r->me->id,
			 r->peer->id);
		/* back: resend what it lacks now, not after a stall backoff */
		r->rewinds = 0;
		if (r->sent > r->acked)
			repl_rewind(r, r->acked);
	}
	/* bounded and sanitized again when logged */
	snprintf(r->peer_apply_error, sizeof(r->peer_apply_error), "%s",
		 pm->apply_error ? pm->apply_error : "");
	if (pm->stream == r->peer_stream && pm->head_seq <= r->applied)
		repl_apply_recovered(r); /* nothing left to retry */
	if (r->state == REPL_DEGRADED) {
		r->catchup_target = store_journal_seq(r->store);
		repl_set_state(r, REPL_CATCHING_UP, "peer heard");
	}
	if (!was_alive || pm->stream != r->peer_stream)
		repl_note_peer_map(r, NULL);
	if (pm->map) {
		owner_offer(r->owner, pm->map);
		owner_heard_peer_map(r->owner, pm->sent_ms, pm->echo_ms);
		repl_note_peer_map(r, pm->map);
	}
	/* the peer is back or new: our map at once, echoing what it just
	 * sent, so that it need not wait a heartbeat to deliver
	 * (owner.c counts only a map that echoes its own time) */
	if (!was_alive) {
		r->map_sent_ms = 0;
		repl_send_heartbeat(r);
	}
	if (pm->acked_stream == r->stream)
		repl_on_ack(r, pm->acked_seq, pm->resend);
	else if (r->acked > 0)
		repl_on_ack(r, 0, true);  /* it acked ours, now has none */
	if (r->state == REPL_CATCHING_UP && r->acked >= r->catchup_target)
		repl_set_state(r, REPL_HEALTHY, "peer caught up");
	if (pm->body_case == SHOAL__PEER_MESSAGE__BODY_BATCH) {
		repl_on_batch(r, pm);
		return;
	}
	shoal__peer_message__free_unpacked(pm, NULL);
}

/* ---- the heartbeat timer --------------------------------------------- */

/* Why the pair is not healthy, for the log and status ("" when it is). */
static void
repl_behind_why(const struct repl *r, uint64_t now, char *out, size_t len)
{
	char q[LOG_QUOTE_BUF];

	out[0] = '\0';
	if (!r->on || r->state == REPL_HEALTHY)
		return;
	if (!repl_peer_alive(r, now))
		snprintf(out, len, "peer silent");
	else if (r->peer_apply_error[0])
		snprintf(out, len, "peer cannot apply our stream: %s",
			 log_quote(q, sizeof(q), r->peer_apply_error,
				   strlen(r->peer_apply_error)));
	else if (r->state == REPL_DEGRADED)
		snprintf(out, len, "peer acknowledged too late");
	else
		snprintf(out, len, "peer receiving what it missed");
}

/* A pair that is not healthy is loud: when it starts, when the reason
 * changes, and every REPL_BEHIND_LOG_MS. */
static void
repl_report_behind(struct repl *r, uint64_t now)
{
	const struct config *cfg = r->cfg;
	char why[sizeof(r->behind_why)];
	Shoal__Replication st = SHOAL__REPLICATION__INIT;

	repl_behind_why(r, now, why, sizeof(why));
	if (why[0] == '\0') {
		if (r->behind_since_ms != 0)
			log_info(
				"repl node=%s peer=%s event=behind_ended "
				"behind_s=%llu acked=%llu",
				r->me->id, r->peer->id,
				(unsigned long long)(now - r->behind_since_ms) /
					1000,
				(unsigned long long)r->acked);
		r->behind_since_ms = 0;
		r->behind_why[0] = '\0';
		return;
	}
	if (r->behind_since_ms == 0)
		r->behind_since_ms = now;
	if (strcmp(why, r->behind_why) == 0 &&
	    now - r->behind_logged_ms < REPL_BEHIND_LOG_MS)
		return;
	r->behind_logged_ms = now;
	memcpy(r->behind_why, why, sizeof(why));
	repl_status(r, &st);
	log_warn("repl node=%s peer=%s event=behind state=%s behind_s=%llu "
		 "lag_ops=%llu lag_s=%llu head=%llu acked=%llu enqueues=\"%s\" "
		 "reason=\"%s\"",
		 r->me->id, r->peer->id, repl_state_names[r->state],
		 (unsigned long long)(now - r->behind_since_ms) / 1000,
		 (unsigned long long)st.lag_ops, (unsigned long long)st.lag_s,
		 (unsigned long long)st.head_seq,
		 (unsigned long long)st.acked_seq,
		 cfg->replication.mode != CFG_REPL_SYNC ?
			 "not waiting (async)" :
		 cfg->replication.require_peer ?
			 "refused unless the peer acknowledges" :
			 "acknowledged on this node alone",
		 why);
}

static void
repl_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct repl *r = arg;
	const struct config *cfg = r->cfg;
	uint64_t now = clock_mono_ms();
	uint64_t resend_ms = repl_stall_ms(r);

	(void)fd;
	(void)what;
	if (!repl_peer_alive(r, now) && r->state != REPL_DEGRADED) {
		repl_set_state(r, REPL_DEGRADED, "peer silent");
		repl_release(r, 0, true, !cfg->replication.require_peer);
	} else if (r->w_n > 0 && r->w[r->w_head].deadline_ms <= now) {
		if (r->state == REPL_HEALTHY)
			repl_set_state(r, REPL_DEGRADED, "ack too late");
		repl_release(r, 0, true, !cfg->replication.require_peer);
	}
	if (r->sent > r->acked && now - r->progress_ms >= resend_ms) {
		log_debug(LOG_SUB_REPL,
			  "repl event=rewind from=%llu to=%llu "
			  "rewinds=%u",
			  (unsigned long long)r->sent,
			  (unsigned long long)r->acked, r->rewinds);
		repl_rewind(r, r->acked);
		r->rewinds++;
	}
	repl_apply_tick(r, now);
	repl_repair_start(r);
	repl_send_heartbeat(r);
	repl_pump(r);
	repl_report_behind(r, now);
}

bool
repl_caught_up(const struct repl *r)
{
	return !r->on || r->acked >= store_journal_seq(r->store);
}

bool
repl_acked_upto(const struct repl *r, uint64_t seq)
{
	return !r->on || r->acked >= seq;
}

void
repl_heartbeat_now(struct repl *r)
{
	if (r->on)
		repl_send_heartbeat(r);
}

/* ---- status ------------------------------------------------------------ */

/* When the oldest change the peer does not have was journaled. */
static int
repl_oldest(uint64_t seq, const char *qid, bool body, uint64_t noted,
	    void *arg)
{
	(void)seq;
	(void)qid;
	(void)body;
	*(uint64_t *)arg = noted;
	return 0;
}

void
repl_status(struct repl *r, Shoal__Replication *out)
{
	static const char *const modes[] = { "sync", "async", "none" };
	uint64_t lag = 0, oldest = 0;
	struct store_txn *t;
	uint64_t now = clock_mono_ms(), heard = owner_peer_heard_ms(r->owner);

	out->mode = (char *)modes[r->cfg->replication.mode];
	out->peer = r->peer ? r->peer->id : "";
	out->state = (char *)repl_state_names[r->state];
	out->head_seq = store_journal_seq(r->store);
	out->acked_seq = r->acked;
	out->peer_seen_ms = heard ? now - heard : 0;
	out->may_deliver = owner_may_deliver(r->owner);
	/* O(1): entries up to the ack are trimmed with the next batch (at
	 * most REPL_TRIM_DELAY_MS later); until then the seqs past the ack
	 * bound the count (no entries at all once the ack is at the head) */
	if (store_txn_begin(r->store, true, &t) == 0) {
		lag = store_journal_count(t);
		store_journal_foreach(t, r->acked, 1, repl_oldest, &oldest);
		store_txn_abort(t);
	}
	if (r->acked <= out->head_seq && out->head_seq - r->acked < lag)
		lag = out->head_seq - r->acked;
	out->lag_ops = r->on ? lag : 0;
	out->lag_s = r->on && oldest && (uint64_t)time(NULL) > oldest ?
			     (uint64_t)time(NULL) - oldest : 0;
	out->behind = r->behind_why;
	out->behind_s =
		r->behind_since_ms ? (now - r->behind_since_ms) / 1000 : 0;
	out->apply_failures = r->apply_failures_total;
	out->apply_error = r->apply_error;
}

/* ---- life cycle -------------------------------------------------------- */

/* Our stream id and acked seq, the peer's stream and applied seq. */
static int
repl_load(struct repl *r)
{
	struct store_txn *t;
	const void *p;
	size_t len;
	unsigned char v[8];
	bool is_first_start = false;
	int rc = store_txn_begin(r->store, false, &t);

	if (rc != 0)
		return rc;
	if (store_meta_get(t, REPL_META_STREAM, &p, &len) == 0 && len == 8) {
		r->stream = be64_get(p);
	} else {
		is_first_start = true;
		while (r->stream == 0)
			if (getrandom(&r->stream, sizeof(r->stream), 0) !=
			    sizeof(r->stream))
				r->stream = ((uint64_t)time(NULL) << 20) ^
					    (uint64_t)clock_mono_us();
		be64_put(v, r->stream);
		rc = store_meta_put(t, REPL_META_STREAM, v, sizeof(v));
	}
	/* The journal ships a batch before the commit that holds it writes
	 * and syncs it (commit.h, the hook): a node killed in that commit, or
	 * a machine that crashes before its sync, may come back without a
	 * batch its peer applied. Its
	 * seqs must never be given out again, or the peer would take the new
	 * changes for the ones it has and skip them: start past them, stored
	 * durably before anything is journaled. (The first start of a store
	 * shipped nothing before: its stream id is stored here.) */
	if (rc == 0 && r->on && !is_first_start)
		rc = store_journal_skip(t, REPL_RESTART_SEQ_GAP);
	if (rc == 0 && store_meta_get(t, REPL_META_ACKED, &p, &len) == 0 &&
	    len == 8)
		r->acked = r->sent = r->trimmed = be64_get(p);
	if (rc == 0 && store_meta_get(t, REPL_META_PEER, &p, &len) == 0 &&
	    len == 16) {
		r->peer_stream = be64_get(p);
		r->applied = r->accepted = be64_get((const char *)p + 8);
	}
	if (rc != 0) {
		store_txn_abort(t);
		return rc;
	}
	return store_txn_commit(t);
}

struct repl *
repl_new(struct event_base *base, const struct config *cfg,
	 const struct cfg_node *me, void *zctx, struct store *st,
	 struct commit *commit, struct owner *o,
	 const struct cluster_hooks *hooks)
{
	struct repl *r = xcalloc(1, sizeof(*r));
	int64_t max_msg = (int64_t)cfg->router.max_message_size +
			  WIRE_BODY_SLACK + WIRE_META_MAX;
	struct timeval tv = { (time_t)(cfg->replication.heartbeat_ms / 1000),
			      (suseconds_t)(cfg->replication.heartbeat_ms % 1000) *
				      1000 };
	int one = 1;

	r->cfg = cfg;
	r->me = me;
	r->store = st;
	r->commit = commit;
	r->owner = o;
	r->hooks = *hooks;
	r->peer = me->peer ? config_find_node(cfg, me->peer) : NULL;
	r->on = r->peer != NULL && cfg->replication.mode != CFG_REPL_NONE;
	r->state = r->on ? REPL_DEGRADED : REPL_OFF;
	r->started_ms = clock_mono_ms();
	if (repl_load(r) != 0) {
		repl_free(r);
		return NULL;
	}
	r->kick_ev = event_new(base, -1, 0, repl_on_kick, r);
	r->ack_ev = event_new(base, -1, 0, repl_on_ack_event, r);
	r->timer = event_new(base, -1, EV_PERSIST, repl_on_timer, r);
	if (!r->on)
		return r;
	r->link = zsock_new(base, zctx, ZMQ_DEALER, max_msg,
			    repl_on_link_msg, NULL, r);
	if (r->link == NULL) {
		repl_free(r);
		return NULL;
	}
	zmq_setsockopt(zsock_raw(r->link), ZMQ_IMMEDIATE, &one, sizeof(one));
	{
		/* ZMTP pings: a connection through a cut link is dropped and
		 * made again, instead of waiting for TCP's retransmissions */
		int ivl = (int)cfg->replication.heartbeat_ms;
		int tmo = (int)cfg->replication.peer_timeout_ms;

		zmq_setsockopt(zsock_raw(r->link), ZMQ_HEARTBEAT_IVL, &ivl,
			       sizeof(ivl));
		zmq_setsockopt(zsock_raw(r->link), ZMQ_HEARTBEAT_TIMEOUT, &tmo,
			       sizeof(tmo));
	}
	if (zsock_connect(r->link, r->peer->endpoint) != 0) {
		repl_free(r);
		return NULL;
	}
	event_add(r->timer, &tv);
	log_info("repl node=%s peer=%s event=start mode=%s stream=%llx "
		 "acked=%llu peer_applied=%llu",
		 me->id, r->peer->id,
		 cfg->replication.mode == CFG_REPL_SYNC ? "sync" : "async",
		 (unsigned long long)r->stream, (unsigned long long)r->acked,
		 (unsigned long long)r->applied);
	return r;
}

void
repl_free(struct repl *r)
{
	if (r == NULL)
		return;
	/* what still waits was committed here: answer as a silent peer
	 * would have it answered */
	if (r->w_n > 0)
		repl_release(r, 0, true, !r->cfg->replication.require_peer);
	if (r->timer)
		event_free(r->timer);
	if (r->kick_ev)
		event_free(r->kick_ev);
	if (r->ack_ev)
		event_free(r->ack_ev);
	zsock_free(r->link);
	free(r->batch_recs);
	free(r->batch_ptrs);
	free(r->prov.v);
	free(r->repair.v);
	free(r->w);
	free(r);
}
