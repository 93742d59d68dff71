/* What node/suppress/suppress.c (entries, replication, the RCPT check),
 * node/suppress/suppress_admin.c (shoalctl's requests) and node/suppress/suppress_pending.c
 * (adds sent to other nodes) share. Nothing else includes this. */
#ifndef SHOAL_NODE_SUPPRESS_INT_H
#define SHOAL_NODE_SUPPRESS_INT_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/suppress_key.h"
#include "node/suppress/suppress.h"
#include "proto/queue.pb-c.h"

#define SUPP_ENH_MAX 15 /* "5.1.1"; RFC 3463 allows 3.3.3 digits */

struct links;
struct supp_filter;
struct supp_req;

struct suppress {
	struct suppress_deps d;  /* what it was given at suppress_new() */
	struct event *timer;
	struct links *links;      /* to other nodes, for pending adds */
	uint64_t next_id;
	/* the pending adds sent this round: request id -> key */
	struct {
		uint64_t id;
		char key[SUPPRESS_KEY_MAX];
	} sent[SUPPRESS_PENDING_BATCH];
	size_t n_sent;
	size_t n_settling;       /* settles waiting for their commit */
	bool is_round_full;      /* more may wait: next round when settled */
	uint64_t added, refused_checks;
	struct supp_filter *filter; /* the routers' (suppress_filter.c) */
	struct supp_req *settling;  /* adds answered soon (suppress_admin.c) */
};

/* An entry read from the store or a peer, unpacked and its fields in
 * bounds (caller frees with shoal__suppress_entry__free_unpacked()), or
 * NULL. */
Shoal__SuppressEntry *suppress_entry_unpack(const void *p, size_t len);

/* Whether suppression.expire says the entry no longer counts. */
bool suppress_entry_expired(const struct suppress *sp,
			    const Shoal__SuppressEntry *e);

/* Write the entry of a normalised address in t: tag SUPPRESS_KEY_TAG for
 * ours (journaled with its shard), SUPPRESS_PENDING_TAG for an add pending
 * at another owner (local); created in unix seconds. Changes nothing but
 * t. Returns 0 or a store error. */
int suppress_entry_put(const struct suppress *sp, struct store_txn *t,
		       char tag, const char *norm, const char *reply,
		       const char *enhanced, const char *source,
		       const char *qid, uint64_t created);

/* The pending adds' timer (suppress_pending.c): send them. */
void suppress_pending_tick(evutil_socket_t fd, short what, void *arg);

/* Close the links to other nodes. */
void suppress_pending_stop(struct suppress *sp);

/* Drop the adds still waiting to be answered (shutdown: no answer). */
void suppress_admin_stop(struct suppress *sp);

#endif
