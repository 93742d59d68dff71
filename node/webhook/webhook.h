/* Delivery webhooks (docs/webhooks.md): events written in the store in
 * the transaction of the outcome they report (node/store/store_whev.c),
 * replicated with the queue, and POSTed in batches by the primary of
 * their shard; deleted (journaled, so the replica drops its copy too)
 * once a POST of them got a 2xx. At-least-once: an event is sent until
 * confirmed, by whichever node is its shard's primary then.
 *
 * Writing (from inside a group commit apply, node/store/commit.h):
 * draw each event's id before the commit (webhooks_draw_id), write it in
 * the apply (webhooks_write: only t and the note change), then tell the
 * module in the done callback (webhooks_noted: counters, log, kick). A
 * full backlog drops the webhook's oldest events in that same
 * transaction: a write never waits and never fails for want of a
 * receiver.
 *
 * Sending: webhook_send.c, one sender per webhook on the loop. */
#ifndef SHOAL_NODE_WEBHOOK_H
#define SHOAL_NODE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/qid.h"
#include "node/webhook/webhook_event.h"

struct commit;
struct event_base;
struct owner;
struct store;
struct store_txn;
struct webhooks;

/* At most this many webhooks (lib/config.c's list bound). */
#define WEBHOOK_MAX 16
/* Oldest events dropped by one write at most (a backlog over its bound
 * by more, e.g. after max_backlog was lowered, shrinks over a few). */
#define WEBHOOK_DROP_PER_WRITE 16

struct webhooks_deps {
	struct event_base *base;
	const struct config *cfg;   /* delivery.webhooks; borrowed */
	const char *node_id;        /* borrowed */
	struct store *store;
	struct commit *commit;
	struct owner *owner;        /* who sends: owner_is_primary() */
};

/* The webhooks of cfg, their senders started. Returns NULL when none is
 * configured (every call below takes NULL and does nothing), or when two
 * names share their store digits (logged: rename one). */
struct webhooks *webhooks_new(const struct webhooks_deps *deps);

/* Stops the senders (a POST in flight is dropped; its events are sent
 * again later). webhooks_free(NULL) does nothing. */
void webhooks_free(struct webhooks *wh);

/* Whether some webhook wants events of type t. */
bool webhooks_wants(const struct webhooks *wh, enum webhook_type t);

/* Draw a new event id (a qid: unique cluster-wide): before the commit. */
void webhooks_draw_id(struct webhooks *wh, char out[QID_LEN + 1]);

/* What writes in one apply did, for the done callback: reset by
 * webhooks_note_clear() at the start of each run of the apply. */
struct webhook_note {
	uint32_t written;
	uint32_t dropped[WEBHOOK_MAX];
};

void webhooks_note_clear(struct webhook_note *n);

/* Write ev (its id drawn) for each webhook that wants its type, in t,
 * under shard (the shard whose primary sends it), dropping the oldest
 * events of a webhook over its max_backlog. Only t and note change.
 * Returns 0 or a store error. */
int webhooks_write(struct webhooks *wh, struct store_txn *t,
		   const struct webhook_event *ev, uint32_t shard,
		   struct webhook_note *note);

/* The "suppressed" events of a message just stored (meta: its packed
 * shoal.StoredMessage): one per recipient the router found on the
 * suppression list, ids[i] for recipient i (drawn before the commit),
 * under the message's shard. As webhooks_write otherwise. */
int webhooks_write_suppressed(struct webhooks *wh, struct store_txn *t,
			      const void *meta, size_t meta_len,
			      const char (*ids)[QID_LEN + 1],
			      struct webhook_note *note);

/* After the commit of writes noted in note (result 0: durable): count
 * and log drops, and wake the senders. */
void webhooks_noted(struct webhooks *wh, const struct webhook_note *note,
		    int result);

/* An event without a message transaction (shaping): written in a commit
 * of its own under the first shard this node is primary for (none: not
 * written, logged at debug). ev's strings are copied; its id is drawn
 * here. */
void webhooks_emit(struct webhooks *wh, const struct webhook_event *ev);

/* ---- status (shoalctl webhooks status, /metrics) ---- */

struct webhook_stats {
	const char *name;           /* valid while wh lives */
	const char *url;
	uint64_t backlog;           /* events this node is to send */
	uint64_t held;              /* events held here, the peer's copies
				       included */
	uint64_t sent, dropped;     /* events, since start */
	uint64_t posts_ok, posts_failed;
	uint64_t last_success;      /* unix seconds, 0 = never */
	uint64_t last_failure;      /* unix seconds, 0 = never */
	uint32_t failures;          /* failed POSTs in a row */
	uint64_t retry_in_ms;       /* 0 when not backing off */
	const char *last_error;     /* escaped (printable ASCII), bounded;
				       "" = none */
};

/* Number of webhooks (0 for NULL). */
size_t webhooks_count(const struct webhooks *wh);

/* Stats of webhook i (< webhooks_count()). Reads the store (O(shards
 * holding its events)). Returns 0, or a store error (out then has the
 * counters and a zero backlog). */
int webhooks_stats(struct webhooks *wh, size_t i, struct webhook_stats *out);

#endif
