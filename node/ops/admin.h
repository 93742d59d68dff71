/* The admin link on a node (proto/cli_node.proto): status, queue listing
 * and queue inspection for shoalctl, answered on the front socket
 * (node/rpc/rpc.h rpc_reply_admin()); node.c hands it the link's messages
 * (lib/wire.h WIRE_TAG_ADMIN) with what it reads, per request.
 *
 * Handles untrusted input: every request is unpacked and checked (qid
 * syntax, string lengths, enum ranges) before use. A bad request gets a
 * reply with STATUS_BAD_REQUEST and a reason, and a warning in the log;
 * it never stops the node. */
#ifndef SHOAL_NODE_ADMIN_H
#define SHOAL_NODE_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "proto/cli_node.pb-c.h"
#include "proto/queue.pb-c.h"

struct store;
struct repl;
struct scheduler;
struct owner;
struct rpc;
struct rpc_ticket;

/* Requests larger than this are refused unread: the biggest real one is a
 * QueueListRequest of a few hundred bytes. */
#define ADMIN_REQUEST_MAX (64u * 1024)

/* Entries in one QueueListReply: a request's limit is capped here, and
 * limit 0 means this many. */
#define ADMIN_LIST_MAX 1000

/* Bytes of packed entries in one QueueListReply before it stops early and
 * sets `more`; keeps replies well under the client's WIRE_META_MAX even
 * for messages with thousands of recipients. */
#define ADMIN_LIST_BYTES_MAX (4u * 1024 * 1024)

/* Queue ids in one queue action request (the request is at most
 * ADMIN_REQUEST_MAX bytes anyway). */
#define ADMIN_ACTION_QIDS_MAX 2000

/* Longest recipient domain a list filter may name (RFC 1035 2.3.4). */
#define ADMIN_DOMAIN_MAX 255

/* Longest tenant a list, flush or action may name: what the router stores
 * (router.pool_rules' tenant and the tenant header are at most 64; an
 * authenticated user's name is cut to 64). No control characters. */
#define ADMIN_TENANT_MAX ENVELOPE_TENANT_MAX

/* The header section a QueueShowReply carries is cut to this size. */
#define ADMIN_HEADERS_MAX (64u * 1024)


/* Requests that change things (failover, queue actions, flush, moves,
 * suppression) are answered later by the node's other modules: the
 * handler gets the request's ticket (who asked, request_id) and must copy
 * it and what it keeps of rq. */
typedef void (*admin_defer_fn)(void *arg, const struct rpc_ticket *t,
			       const Shoal__AdminRequest *rq);

/* What one request reads: borrowed for the call. */
struct admin_ctx {
	struct rpc *rpc;            /* where the reply goes */
	struct store *store;        /* node/store/store.h */
	const char *node_id;
	const Shoal__ShardMap *map; /* current shard map */
	uint64_t started_at;        /* unix seconds */
	struct repl *repl;          /* node/cluster/repl.h, for status; may be NULL */
	const struct scheduler *sched; /* recent results; may be NULL */
	const struct owner *owner;  /* routers heard; may be NULL */
	admin_defer_fn defer;       /* may be NULL: such requests refused */
	void *defer_arg;
};

/* Handle one admin-link message: frames[0] the requester's routing id,
 * frames[1] the tag, frames[2] a packed AdminRequest (untrusted); other
 * shapes are logged and dropped. Always answers: errors become a reply
 * with status BAD_REQUEST (the request is wrong, including an unknown
 * qid) or INTERNAL (the store failed) and a message. A request that
 * cannot be unpacked at all (or is over ADMIN_REQUEST_MAX) gets
 * request_id 0 and BAD_REQUEST.
 *
 * Only messages of shards this node is primary for are counted, listed or
 * shown: the copies it holds as a replica belong to its peer's answers.
 * Status also carries the scheduler's results per tenant since start
 * (node/queue/tenants.h; none when ctx->sched is NULL). A list, flush or
 * action may name a tenant (ADMIN_TENANT_MAX); an action names queue ids
 * or a tenant, never both.
 * A failover, move, queue action, flush or suppress request is handed to
 * ctx->defer, which answers when it is done. Each request runs in one
 * read-only store transaction. Status reads the store's queue counts,
 * O(shards) at any queue size; a list page walks from its after_qid. */
void admin_handle(const struct admin_ctx *ctx, zmq_msg_t *frames,
		  size_t nframes);

/* The queue as `shoalctl status` counts it, for shards this node is
 * primary for: messages, recipients queued and deferred (held messages
 * left out), held messages. */
struct admin_depth {
	uint64_t messages, queued, deferred, held;
};

/* The same figures as status, from the store's queue counts in one read
 * transaction: O(shards), whatever the queue's size. Returns 0 and fills
 * *out, or the store's error. */
int admin_queue_depth(struct store *st, const Shoal__ShardMap *map,
		      const char *node_id, struct admin_depth *out);

#endif
