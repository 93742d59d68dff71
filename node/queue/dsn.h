/* DSNs queued as messages of their own, to the original sender, due now:
 * for failures the scheduler saves, for recipients ingest bounces because
 * they are suppressed, and for `shoalctl queue bounce` (actions.c).
 *
 * In three steps, because the group commit may run an apply function
 * twice (node/store/commit.h): the DSN's qid is drawn before the commit
 * (dsn_draw), the DSN is built and stored by the apply function and
 * touches nothing but the transaction (dsn_store), and its log line is
 * written by the done callback (dsn_log). bounce.c writes the text. */
#ifndef SHOAL_NODE_QUEUE_DSN_H
#define SHOAL_NODE_QUEUE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/envelope.h"
#include "lib/qid.h"
#include "node/queue/bounce.h"
#include "proto/queue.pb-c.h"

struct store_txn;

/* Whether this node is the primary of shard (node/cluster/owner.h
 * owner_is_primary()): only there is a DSN delivered and replicated. */
typedef bool (*dsn_mine_fn)(void *arg, uint32_t shard);

/* One DSN on its way: its qid, drawn before the commit, and what the
 * apply stored, for the log line after it. Plain data. */
struct dsn_slot {
	char qid[QID_LEN + 1];     /* "" when no shard of ours was found */
	uint32_t shard;
	/* written by dsn_store(), read by dsn_log() */
	bool is_stored;
	bool is_refused;           /* no shard of ours: nothing stored */
	uint64_t due;
	size_t n_rcpts;
	enum bounce_action action;
	char to[ENVELOPE_ADDR_MAX + 1];
	char orig_qid[QID_MAX];
	bool is_report;            /* dsn_store_report() wrote it */
};

/* What a DSN reports: the message orig_qid (its envelope env and, when
 * there, its text orig) and the recipients brs[0..n), n >= 1. */
struct dsn_about {
	const char *orig_qid;
	const Shoal__Envelope *env;
	const void *orig;          /* may be NULL */
	size_t orig_len;
	const struct bounce_rcpt *brs;
	size_t n;
	uint64_t now;              /* unix seconds: arrival and due of DSN */
};

/* Draw a qid from g whose shard (of shards) mine() accepts, trying up to
 * DSN_QID_TRIES qids; slot->qid is "" when none is (this node is primary
 * of no shard). Clears what dsn_store() wrote. */
void dsn_draw(struct qid_gen *g, uint32_t shards, dsn_mine_fn mine,
	      void *arg, struct dsn_slot *slot);

/* Build the DSN about a and store it in t under slot's qid, due at
 * a->now. Only t and slot change (an apply function may call it). Returns
 * 0, -EAGAIN when no qid was drawn or mine() no longer accepts its shard
 * (a map changed since: the caller's item fails, and is tried again or
 * refused), or a store error. */
int dsn_store(struct store_txn *t, const struct config *cfg,
	      dsn_mine_fn mine, void *arg, struct dsn_slot *slot,
	      const struct dsn_about *a);

/* A report of our own, sent by mail like a DSN: RFC 8460 5.3 (TLS-RPT).
 * Every string is ours or checked by the caller: from and to mailboxes
 * (to from DNS, checked with smtp_mailbox_parse()), domain and submitter
 * host names; report_id and unique printable ASCII without blanks. */
struct dsn_report {
	const char *from;          /* envelope sender and From: */
	const char *to;            /* the one recipient and To: */
	const char *domain;        /* TLS-Report-Domain: the policy domain */
	const char *submitter;     /* TLS-Report-Submitter: our domain */
	const char *report_id;
	uint64_t start, end;       /* the report's period, unix seconds */
	const char *unique;        /* the file name's unique-id (node id) */
	const void *gz;            /* the report, application/tlsrpt+gzip */
	size_t gz_len;
	uint64_t now;              /* unix seconds: Date:, arrival and due */
};

#define DSN_REPORT_MAX (8u << 20) /* bytes of a report message */

/* Append the report message (RFC 8460 5.3: multipart/report;
 * report-type="tlsrpt", a text/plain part and the gzip report as a
 * base64 attachment named "<submitter>!<domain>!<start>!<end>!<unique>
 * .json.gz"; CRLF line ends) to out. Returns 0 or -EMSGSIZE. */
int dsn_report_build(const struct dsn_report *r, struct buf *out);

/* Store the report message in t under slot's qid (dsn_draw()), a
 * normal queued message from r->from to r->to (NOTIFY=NEVER: no DSN
 * about a report), due at r->now. Only t and slot change. Returns as
 * dsn_store() does, and -EMSGSIZE past DSN_REPORT_MAX. */
int dsn_store_report(struct store_txn *t, const struct config *cfg,
		     dsn_mine_fn mine, void *arg, struct dsn_slot *slot,
		     const struct dsn_report *r);

/* Forget what dsn_store() wrote (an apply function that runs again
 * starts afresh); the qid stays. */
void dsn_slot_clear(struct dsn_slot *slot);

/* After the commit, with its result: the line for what dsn_store() did
 * (dsn_queued when committed, dsn_not_queued when refused), nothing when
 * it did nothing. */
void dsn_log(const struct dsn_slot *slot, int result);

#endif
