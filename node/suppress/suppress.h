/* The suppression list on a node (docs/suppression.md): dead addresses
 * kept by the primary of shard_of(address) in the node's store
 * (node/store/store.h supp), journaled, replicated and moved with their shard
 * like messages. This module answers the routers' RCPT checks and
 * shoalctl's suppress requests, notes "no such user" bounces, and sends
 * the adds for addresses of shards other nodes own, durably pending in
 * the local store until the owner acknowledges them.
 *
 * Handles untrusted input: addresses, reasons and keys from routers,
 * shoalctl, peers and remote SMTP servers are bounded and checked. */
#ifndef SHOAL_NODE_SUPPRESS_H
#define SHOAL_NODE_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/qid.h"
#include "lib/suppress_key.h"
#include "proto/cli_node.pb-c.h"
#include "proto/node_node.pb-c.h"
#include "proto/router_node.pb-c.h"

struct event_base;
struct store;
struct store_txn;
struct commit;
struct rpc;
struct rpc_ticket;
struct owner;
struct repl;
struct suppress;

#define SUPPRESS_REPLY_MAX 400	  /* stored reply text, sanitised */
#define SUPPRESS_LIST_MAX 1000	  /* entries in one list reply */
#define SUPPRESS_PENDING_BATCH 256 /* pending adds sent per round */

/* Whether a final 5xx reply says the mailbox does not exist: enhanced
 * code 5.1.1 (bad destination mailbox), or, with no enhanced code or one
 * that says little (5.0.0, 5.1.0), a text such as "user unknown", "no
 * such user", "does not exist". 5.1.10 (null MX) and other codes are
 * about the domain or policy, not the mailbox. Pure. */
bool suppress_is_no_such_user(int code, const char *enhanced, const char *text);

/* Copy text into out[SUPPRESS_REPLY_MAX + 1], printable ASCII only (others
 * become '?'), cut to the bound. */
void suppress_sanitize(const char *text, char out[SUPPRESS_REPLY_MAX + 1]);

/* What the suppression list needs of the node; every pointer borrowed,
 * outliving the list. */
struct suppress_deps {
	struct event_base *base;
	void *zctx;                 /* DEALERs to other nodes (pending adds) */
	const struct config *cfg;
	const char *node_id;
	struct store *store;
	struct commit *commit;
	struct rpc *rpc;            /* replies to routers and shoalctl */
	struct owner *owner;        /* the map in force, primary, frozen */
	struct repl *repl;          /* shoalctl's changes wait for the peer */
	uint64_t incarnation;       /* this process's, in replies to routers */
};

/* deps is copied. */
struct suppress *suppress_new(const struct suppress_deps *deps);

/* suppress_free(NULL) does nothing. */
void suppress_free(struct suppress *sp);

/* What suppress_note_bounce() wrote, for suppress_noted() once it is
 * committed. Plain data; all zero: nothing. */
struct suppress_note {
	bool is_noted;
	bool is_mine;        /* an entry here, else a pending add */
	uint32_t shard;
	char addr[SUPPRESS_ADDR_MAX + 1];   /* normalised */
	char qid[QID_MAX];
};

/* A recipient bounced with a "no such user" reply, noted in the caller's
 * write transaction t (the one that records the bounce; now is its time):
 * the entry itself when this node owns the address's shard, else a pending
 * add that is sent to the owner until acknowledged. Changes nothing but t
 * and *note (an apply function may call it, and again). Returns 0 (also
 * when sp is NULL, the list disabled or the address unusable: *note then
 * says nothing) or a store error. */
int suppress_note_bounce(const struct suppress *sp, struct store_txn *t,
			 const char *addr, const char *reply,
			 const char *enhanced, const char *qid, uint64_t now,
			 struct suppress_note *note);

/* The transaction of a note committed: its log line, and a pending add
 * is sent soon. Does nothing for an empty note or a NULL sp. */
void suppress_noted(struct suppress *sp, const struct suppress_note *note);

/* Answer a router's SuppressCheck (t: who asked, and its request id).
 * Never blocks: one read transaction. */
void suppress_check(struct suppress *sp, const struct rpc_ticket *t,
		    const Shoal__SuppressCheck *c);

/* Answer a router's SuppFilterRequest: the routers' filter of our
 * entries, or the bits set since the router's copy
 * (node/suppress/suppress_filter.c). */
void suppress_filter_request(struct suppress *sp, const struct rpc_ticket *t,
			     const Shoal__SuppFilterRequest *q);

/* Put the filter's id and gen in a reply to a router (every reply
 * carries them, so that a router knows when its copy is behind). */
void suppress_stamp(const struct suppress *sp, Shoal__NodeReply *r);

/* Handle an AdminRequest with a SuppressRequest body; the reply goes to
 * t (now or after the commit; t is copied). */
void suppress_admin(struct suppress *sp, const struct rpc_ticket *t,
		    const Shoal__AdminRequest *rq);

/* Replication and moves: whether a record is a suppression record and
 * well-formed (key shape, shard of key, shards); applying one (a put or a
 * delete, never a body) in t: 0, SUPPRESS_RECORD_SKIPPED when the entry
 * is not the one its key names (nothing written; the caller logs it once
 * its commit is done: an apply logs nothing), or a store error. */
#define SUPPRESS_RECORD_SKIPPED 1
bool suppress_record_ok(const Shoal__ReplRecord *rec, uint32_t shards);
int suppress_record_apply(struct suppress *sp, struct store_txn *t,
			  const Shoal__ReplRecord *rec);

/* Drop every entry of a shard (it moved away); not journaled. */
int suppress_purge_shard(struct store_txn *t, uint32_t shard, uint64_t *n);

/* Journal every entry of the shards this node is primary for (a peer
 * that lost its data gets them all again); *n_out grows by their number.
 * Returns 0 or a store error. */
int suppress_touch(const struct suppress *sp, struct store_txn *t,
		   uint64_t *n_out);

#endif
