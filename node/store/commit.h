/* Group commit: work that arrives together shares one LMDB write
 * transaction and one fsync. Each item's done callback runs only after its
 * own writes are durable (or have failed).
 *
 * Items are queued with commit_add(); the batch runs from the event loop
 * right after the current callbacks (so everything read in one pass of a
 * socket lands in one transaction). While an fsync runs, new requests queue
 * up in ZeroMQ and form the next batch; that batch's fsync also makes the
 * previous one durable, so a batch's callbacks run after the next commit
 * (or after an explicit sync when the loop finds nothing new). */
#ifndef SHOAL_NODE_COMMIT_H
#define SHOAL_NODE_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct store_txn;
struct commit;

/* Perform an item's writes in t. Returns 0, or an error (a store code, or
 * the caller's own) that fails the item: done gets it and nothing of the
 * item is kept.
 *
 * An apply must be pure, because it may run more than once for one item,
 * each time in a new write transaction of which only the last can commit:
 * a batch that fails as a whole is aborted and each of its items runs
 * again alone, and commit_set_rehearse() runs every batch once more in a
 * transaction it aborts. What a run did outside t is not undone. So:
 * - It writes only through t, and decides from what t holds (an earlier
 *   batch may have failed since the item was queued). It may read
 *   in-memory state and the clock.
 * - Nothing outside t: no log lines, no counters or metrics, no qid drawn
 *   (qid_next() draws for good), no event or timer armed, no message sent,
 *   no in-memory table changed (a resume point, a hold). Each of those
 *   goes in done, which runs once, knowing the outcome; an apply notes in
 *   arg what done needs for it.
 * - What it leaves in arg for done (found, the journal seq, a count) is set
 *   afresh by every run: done sees the last run's values. Memory it hangs
 *   on arg is replaced (the earlier run's freed) or reused, and done frees
 *   it; a repeated run must not leak.
 * - It opens no other write transaction and calls nothing of this module
 *   (one writer: LMDB would wait on itself).
 * commit_set_rehearse() makes a break of these rules visible to tests: a
 * side effect then happens twice. */
typedef int (*commit_apply_fn)(struct store_txn *t, void *arg);

/* The item's outcome: 0 when its writes are durable, else
 * SHOAL_E_STORAGE_FULL, -errno or the apply's error (nothing of the item
 * kept). Called exactly once per item, never from inside commit_add();
 * after the hook (commit_set_hook) heard of its commit. It is where the
 * item's side effects go (logs, counters, replies, kicks) and where arg
 * is freed; it may queue new items with commit_add(). */
typedef void (*commit_done_fn)(int result, void *arg);

struct commit *commit_new(struct event_base *base, struct store *st);

/* Runs pending batches first. commit_free(NULL) does nothing. */
void commit_free(struct commit *c);

/* Queue an item for the next batch. apply (see commit_apply_fn: it may
 * run more than once) and then done (exactly once) get arg, which stays
 * the caller's: commit never frees it. */
void commit_add(struct commit *c, commit_apply_fn apply, commit_done_fn done,
		void *arg);

/* Queue an item that need not be durable soon (trimming the journal):
 * it joins the next batch that runs for other items, or runs by itself
 * once delay_ms pass (the first such item's delay counts). An idle node
 * then pays one sync for all of them instead of a sync for each. Same
 * rules as commit_add() otherwise. */
void commit_add_later(struct commit *c, commit_apply_fn apply,
		      commit_done_fn done, void *arg, unsigned delay_ms);

/* Rehearse every batch (on) or not (off, the default): before its real
 * run, a batch's applies run once in a write transaction that is then
 * aborted, as after a failed batch. Pure applies commit exactly what they
 * would without it; an impure one shows its side effect twice (two log
 * lines, two qids drawn, a counter counted twice). For tests: it doubles
 * the apply work of every batch. */
void commit_set_rehearse(struct commit *c, bool on);

/* Who ships the journal (node/cluster/repl.c) hears of every real commit
 * (never of a rehearsal):
 * - ship(arg, t): t holds a batch's writes, all applies done, about to be
 *   committed: the commit writes its pages, fdatasyncs them and writes
 *   the meta page. What ship reads from t and sends leaves before that
 *   sync, so that the peer's writes overlap it. It may read t, never
 *   write it, and call nothing of this module.
 * - then committed(arg) when that commit succeeded (its items wait for
 *   the next sync), or failed(arg) when it did not: nothing of t was
 *   kept, and what ship sent from it must be put right. failed may
 *   queue items (commit_add, commit_add_later); they run in a later
 *   batch.
 * A crash of the process or the machine may also cut a commit short
 * after ship: node/cluster/repl.h says how the stream allows for that. */
struct commit_hook {
	void (*ship)(void *arg, struct store_txn *t);
	void (*committed)(void *arg);
	void (*failed)(void *arg);
	void *arg;
};

/* Set the hook (copied); NULL removes it. */
void commit_set_hook(struct commit *c, const struct commit_hook *h);

/* Batches committed, items in them, and explicit syncs (a batch no later
 * batch carried), since start. */
void commit_stats(const struct commit *c, uint64_t *batches, uint64_t *items,
		  uint64_t *syncs);

/* Run the pending batch now and make it and every earlier one durable,
 * with their done callbacks called, and then the items those callbacks
 * queued, until none is left (a few rounds at most; shutdown, tests). */
void commit_flush(struct commit *c);

#endif
