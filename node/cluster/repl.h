/* Replication between the two nodes of a pair (proto/node_node.proto).
 *
 * Sending: the store journals every change to the shards this node is
 * primary for (node/store/store.h). After each commit the journal is read from
 * the last seq sent and shipped in batches holding each message's state
 * now (full record and body, meta only, or deleted). The peer acknowledges
 * the highest seq it has made durable; the journal is trimmed up to it.
 * A stalled or refused stream goes back to the acknowledged seq (go-back-N);
 * a peer that lost acknowledged data gets every message again.
 *
 * Receiving: batches of the peer's stream are applied in order through
 * group commit; the applied seq is stored in the same transaction, then
 * acknowledged. Records for shards this node is not primary for are kept as
 * a replica copy (no due entries: a replica delivers nothing); records for
 * shards it now owns (the peer owned them before a failover) are adopted
 * only when new to it, and deletions applied: see docs/replication.md.
 *
 * Durability of enqueues: repl_wait() holds an enqueue's reply until the
 * peer has its seq (mode "sync" with a healthy peer), or answers at once
 * (async, none, degraded), or refuses it (require_peer without a peer). */
#ifndef SHOAL_NODE_REPL_H
#define SHOAL_NODE_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "lib/config.h"
#include "node/cluster/hooks.h"
#include "node/store/commit.h"
#include "proto/cli_node.pb-c.h"
#include "proto/node_node.pb-c.h"

struct commit;
struct event_base;
struct owner;
struct repl;
struct store;

/* Records per batch, and bytes per batch (one bigger message may exceed
 * it alone), and batches sent but not yet acknowledged. */
#define REPL_BATCH_RECORDS 512
#define REPL_BATCH_BYTES (4u << 20)
#define REPL_WINDOW 8

/* The peer link of node me (a DEALER in zctx to its peer's endpoint, a
 * timer each replication.heartbeat_ms), our stream read from st's journal,
 * the peer's applied through commit, ownership asked of o, hooks copied.
 * Without a peer or with replication.mode = "none": off (waits answered
 * at once, nothing sent). Loads the stream ids and seqs kept in st's
 * meta. Returns NULL when that or the socket fails. */
struct repl *repl_new(struct event_base *base, const struct config *cfg,
		      const struct cfg_node *me, void *zctx, struct store *st,
		      struct commit *commit, struct owner *o,
		      const struct cluster_hooks *hooks);

/* repl_free(NULL) does nothing. Enqueues still waiting are answered as a
 * silent peer would have them answered (durable unless require_peer). */
void repl_free(struct repl *r);

/* A message on the node's front socket with the peer-link tag: frames[0]
 * identity, [1] tag, [2] PeerMessage. Untrusted. */
void repl_handle(struct repl *r, zmq_msg_t *frames, size_t nframes);

/* The journal grew (a commit with journaled changes): ship it soon. */
void repl_kick(struct repl *r);

/* The group commit's hook (node/store/commit.h) for r: each transaction
 * about to commit ships the journal it holds, so that the peer writes its
 * copy while we write and sync ours. The peer may thus apply a change we
 * then fail to commit: the keys of such a commit are journaled again
 * (event=shipped_uncommitted, then event=repaired), and the peer gets
 * their state here. A crash that cuts a commit short after it shipped
 * leaves the peer ahead of us instead: seqs are never given out twice
 * (REPL_RESTART_SEQ_GAP), and docs/replication.md says what the peer's
 * copy then holds. */
struct commit_hook repl_commit_hook(struct repl *r);

/* Outcome of a wait: durable as asked, or not (require_peer). */
typedef void (*repl_wait_fn)(bool durable, void *arg);

/* Call fn once the change with journal seq `seq` (just committed locally)
 * is as durable as the mode asks; maybe at once, from inside this call.
 * With require_peer and a pair not healthy, fn(false) at once only when
 * the peer is silent: a node just started first gives it peer_timeout_ms
 * to be heard. */
void repl_wait(struct repl *r, uint64_t seq, repl_wait_fn fn, void *arg);

/* Whether the peer has acknowledged every change journaled so far (always
 * true without replication). */
bool repl_caught_up(const struct repl *r);

/* Whether the peer has acknowledged the journal up to seq (always true
 * without replication). */
bool repl_acked_upto(const struct repl *r, uint64_t seq);

/* Send a heartbeat (with our map) to the peer now. */
void repl_heartbeat_now(struct repl *r);

/* ---- records, shared with shard moves (move.c) ---- */

struct store_txn;

/* A record of a message's state now in t: meta (and body, when body),
 * or deleted, and then finished when t holds its tombstone (a final
 * outcome, not a withdrawal). The record borrows from t. Returns about
 * the bytes it holds. */
size_t repl_record_fill(struct store_txn *t, const char *qid, uint32_t shard,
			bool body, Shoal__ReplRecord *rec);

/* Whether a record from a peer is well formed for a cluster of shards. */
bool repl_record_ok(const Shoal__ReplRecord *rec, uint32_t shards);

/* What applying a record found worth a log line. An apply of the group
 * commit may run more than once (node/store/commit.h), so it notes what
 * happened and its done callback logs it (repl_record_log()). */
enum repl_note {
	REPL_NOTE_NONE,
	REPL_NOTE_GAP,               /* an update of a message never received */
	REPL_NOTE_HANDBACK_KEPT,     /* a withdrawal there: our copy kept */
	REPL_NOTE_HANDBACK_DELETED,  /* finished there: ours retired */
	REPL_NOTE_HANDBACK_FINISHED, /* finished here: not adopted again */
	REPL_NOTE_HANDBACK_BAD,      /* unreadable record: skipped */
	REPL_NOTE_HANDBACK_ADOPTED,  /* new to us: adopted, due */
	REPL_NOTE_SUPP_BAD,          /* a suppression entry its key does
					not name: skipped */
};

/* Apply a record as a copy in t: put, meta update or delete (with a
 * tombstone only when finished); no due entry. A suppression entry goes
 * to r's supp_apply hook. Sets *note (enum repl_note). Returns 0 or a
 * store error. Writes nothing outside t. */
int repl_record_apply(struct repl *r, struct store_txn *t,
		      const Shoal__ReplRecord *rec, uint8_t *note);

/* Log what applying rec noted (nothing for REPL_NOTE_NONE): once the
 * transaction committed. */
void repl_record_log(const struct repl *r, const Shoal__ReplRecord *rec,
		     uint8_t note);

/* Fill a status message (strings point into static storage or r), all
 * but replica_messages (the store's queue counts have it: node/ops/admin.c).
 * O(1): the lag comes from the journal's size, never a walk. */
void repl_status(struct repl *r, Shoal__Replication *out);

#endif
