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

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;
struct store_txn;
struct commit;

/* Perform an item's writes in t. Returns 0 or an error (store codes). */
typedef int (*commit_apply_fn)(struct store_txn *t, void *arg);

/* The item's outcome: 0 when durable, else SHOAL_E_STORAGE_FULL, -errno or
 * the apply function's error. Called exactly once per item. */
typedef void (*commit_done_fn)(int result, void *arg);

struct commit *commit_new(struct event_base *base, struct store *st);

/* Runs pending batches first. commit_free(NULL) does nothing. */
void commit_free(struct commit *c);

/* Queue an item for the next batch. */
void commit_add(struct commit *c, commit_apply_fn apply, commit_done_fn done,
		void *arg);

/* Call fn(arg) whenever committed batches become durable (before their
 * items' done callbacks), e.g. to ship the journal. One hook; NULL removes
 * it. */
void commit_set_hook(struct commit *c, void (*fn)(void *), void *arg);

/* Batches committed, items in them, and explicit syncs (a batch no later
 * batch carried), since start. */
void commit_stats(const struct commit *c, uint64_t *batches, uint64_t *items,
		  uint64_t *syncs);

/* Run the pending batch now and make it and every earlier one durable,
 * with their done callbacks called, and then the items those callbacks
 * queued, until none is left (a few rounds at most; shutdown, tests). */
void commit_flush(struct commit *c);

#endif
