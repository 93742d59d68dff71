/* What node/cluster/repl.c (the link, pair health, waits, status),
 * repl_send.c (our stream, acks, trim, resync), repl_hook.c (shipping
 * from the group commit, putting right a failed commit) and
 * repl_apply.c (applying the peer's stream) share: the state of the
 * pair. Nothing outside those four files includes this. */
#ifndef SHOAL_NODE_REPL_INT_H
#define SHOAL_NODE_REPL_INT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/qid.h"
#include "node/cluster/hooks.h"
#include "node/cluster/repl.h"
#include "proto/node_node.pb-c.h"

struct commit;
struct owner;
struct store;
struct zsock;

#define REPL_META_PEER "repl_peer" /* be64 stream || be64 applied */
/* A trim of the journal waits this long for a batch to join (commit.h,
 * commit_add_later): an idle pair pays no sync per ack. */
#define REPL_TRIM_DELAY_MS 100
#define REPL_META_ACKED "repl_acked" /* be64: highest ack of our stream */
/* Batches in flight: the window (repl_pump stops there), and as much
 * again for the state sent after a failed commit (repl_hook.c), which
 * must go even when that commit's own batches filled the window. */
#define REPL_FLIGHTS (2 * REPL_WINDOW)

enum repl_state {
	REPL_OFF,
	REPL_DEGRADED,
	REPL_CATCHING_UP,
	REPL_HEALTHY,
};

struct repl_waiter {
	uint64_t seq;
	uint64_t deadline_ms;
	repl_wait_fn fn;
	void *arg;
};

struct repl_flight {
	uint64_t last;
	size_t bytes;
};

/* Journal keys (qids, suppression and webhook event keys), each shorter
 * than QID_MAX. */
struct repl_keys {
	char (*v)[QID_MAX];
	size_t n, cap;
};

struct repl {
	const struct config *cfg;
	const struct cfg_node *me;
	struct store *store;
	struct commit *commit;
	struct owner *owner;
	struct cluster_hooks hooks;
	const struct cfg_node *peer;
	bool on;
	struct zsock *link;           /* DEALER to the peer */
	enum repl_state state;
	uint64_t catchup_target;
	uint64_t started_ms; /* repl_new(): the peer is awaited from then */

	/* our stream */
	uint64_t stream;
	uint64_t sent, acked;
	uint64_t progress_ms;         /* last ack progress or first send */
	uint32_t rewinds;	      /* go-backs without progress: backoff */
	struct repl_flight fl[REPL_FLIGHTS];
	size_t n_fl;
	bool trim_busy, resync_busy;
	bool resync_again; /* asked past the floor of the one running */
	uint64_t trimmed;
	uint64_t resync_floor; /* the resync's seqs start past this */
	/* repl_hook.c: keys shipped from the transaction now committing,
	 * and those of commits that failed after shipping, to be journaled
	 * again; while any wait, the journal leaves after its commits */
	struct repl_keys prov, repair;
	bool repair_busy;
	bool ship_late;
	uint64_t repair_retry_ms; /* not before: the last repair failed */
	uint64_t repair_dropped;  /* keys beyond REPL_REPAIR_MAX, not logged */
	uint64_t repair_logged_ms; /* last repair_failed line */
	uint64_t repair_failures;  /* since that line */

	/* enqueues waiting for the peer, in seq order (a ring) */
	struct repl_waiter *w;
	size_t w_head, w_n, w_cap;

	/* the peer's stream: applied is durable here (and acknowledged);
	 * accepted >= applied is what the batches queued for the commit
	 * will have applied if they all succeed */
	uint64_t peer_stream;
	uint64_t applied, accepted;
	uint64_t resend_asked_ms;
	bool want_resend;
	size_t applying; /* batches queued for the commit */

	/* a failed apply (full disk...): batches are dropped until
	 * apply_retry_ms, then the stream resumes from applied */
	uint32_t apply_failures; /* in a row; 0 = applying fine */
	uint64_t apply_retry_ms;
	uint64_t apply_failed_at; /* prev_seq of the batch that failed */
	uint64_t apply_failed_ms; /* first failure of this run */
	uint64_t apply_logged_ms;
	uint64_t apply_failures_total;
	char apply_error[64]; /* "" unless apply_failures */

	/* what the peer says about applying our stream (its apply_error),
	 * and since when the pair is not healthy (0 = it is) */
	char peer_apply_error[64];
	uint64_t behind_since_ms, behind_logged_ms;
	char behind_why[96];

	/* the map the peer last carried (repl_header() leaves ours out while
	 * the peer's matches it, but for one message per heartbeat_ms) */
	bool peer_map_known;
	uint64_t peer_map_epoch;
	char peer_map_author[64];
	uint64_t map_sent_ms;
	uint64_t peer_sent_ms; /* its clock in its last message: echoed */

	/* repl_send_batch()'s record arrays, REPL_BATCH_RECORDS each, made
	 * once: a batch fills every entry it uses */
	Shoal__ReplRecord *batch_recs;
	Shoal__ReplRecord **batch_ptrs;

	struct event *timer, *kick_ev, *ack_ev;
	uint64_t batches_sent, batches_applied, records_applied;
};

/* ---- repl.c ---- */

/* Our header (map, ack) with an empty heartbeat, to the peer now. */
void repl_send_heartbeat(struct repl *r);

/* Fill the header every message to the peer carries: who we are, our
 * ack, our clock and its echo, and our map when it is due. */
void repl_header(struct repl *r, Shoal__PeerMessage *pm);

/* Pack pm and send it to the peer (dropped when the link cannot take
 * it: the go-back timer sends again). */
void repl_send_msg(struct repl *r, Shoal__PeerMessage *pm);

/* Pair health moves to s, logged with why. */
void repl_set_state(struct repl *r, enum repl_state s, const char *why);

/* Answer the waits: those at or below seq durable, or all of them with
 * `all`, durable or not. */
void repl_release(struct repl *r, uint64_t seq, bool all, bool durable);

/* ---- repl_send.c ---- */

/* Ship what the window allows of the journal past r->sent. */
void repl_pump(struct repl *r);

/* repl_kick()'s event: repl_pump(arg). */
void repl_on_kick(evutil_socket_t fd, short what, void *arg);

/* Send again from `from` on: the peer asked, or acks stalled. */
void repl_rewind(struct repl *r, uint64_t from);

/* How long acks may stall before the stream goes back to the ack. */
uint64_t repl_stall_ms(const struct repl *r);

/* The peer acknowledges our stream up to seq (less than before: it lost
 * data; more than we ever gave out: our store is older than what it
 * shipped; either way we resync), and maybe asks for a resend from
 * there. */
void repl_on_ack(struct repl *r, uint64_t seq, bool resend);

/* The shard of a journal key: a qid's, or the one a suppression key or
 * a webhook event key names. */
uint32_t repl_key_shard(const char *key, uint32_t shards);

/* r->batch_recs and r->batch_ptrs, made on first use. */
void repl_batch_arrays(struct repl *r);

/* Send r->batch_ptrs[0..n) (about bytes) as the batch after r->sent, up
 * to seq last, and count it in flight. The window must have room. */
void repl_ship(struct repl *r, size_t n, size_t bytes, uint64_t last);

/* Ship what the window allows, from wt (a transaction about to commit)
 * or, NULL, from what is committed. A peer that is not connected makes
 * the send fail with EAGAIN inside zsock; the go-back timer sends
 * again. */
void repl_pump_from(struct repl *r, struct store_txn *wt);

/* ---- repl_hook.c ---- */

/* A record for key left in a batch read from a transaction not yet
 * committed. */
void repl_hook_shipped(struct repl *r, const char *key);

/* Journal again the keys of commits that failed after shipping, in a
 * batch of their own, unless one is under way or the last failed less
 * than REPL_REPAIR_RETRY_MS ago (repl.c's timer calls it again). */
void repl_repair_start(struct repl *r);

/* Waiters for seqs above `above` wait for seq `to` instead (repl.c). */
void repl_waits_move(struct repl *r, uint64_t above, uint64_t to);

/* ---- repl_apply.c ---- */

/* A batch of the peer's stream arrived (repl_apply.c). Takes pm. */
void repl_on_batch(struct repl *r, Shoal__PeerMessage *pm);

/* Each heartbeat_ms (repl.c's timer): once a failed apply's backoff has
 * passed, ask the peer to resend from what we applied (repl_apply.c). */
void repl_apply_tick(struct repl *r, uint64_t now);

/* Applying works again (a batch advanced the applied seq), or the peer
 * has nothing past it: end a run of failed applies (repl_apply.c). */
void repl_apply_recovered(struct repl *r);

#endif
