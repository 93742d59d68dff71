/* The router link on a node (proto/router_node.proto): shard map requests
 * and enqueues. An enqueue is checked (epoch, ownership, qid, envelope),
 * queued for group commit, and answered only once it is durable.
 * Handles untrusted input: every frame is validated. */
#ifndef SHOAL_NODE_INGEST_H
#define SHOAL_NODE_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "lib/config.h"

struct commit;
struct rpc;
struct owner;
struct repl;
struct scheduler;
struct suppress;
struct ingest;

/* What ingest needs of the node; every pointer borrowed, outliving it. */
struct webhooks;

struct ingest_deps {
	const struct config *cfg;
	const struct cfg_node *me;  /* its id, and its peer's */
	uint64_t incarnation;       /* this process's, in every reply */
	struct rpc *rpc;            /* replies */
	struct commit *commit;
	struct owner *owner;        /* the map, may we store, router news */
	struct repl *repl;          /* answers wait for the peer */
	struct scheduler *sched;    /* new mail is due; DSNs */
	struct suppress *supp;      /* routers' RCPT checks */
	struct webhooks *wh;        /* "suppressed" events; may be NULL */
};

/* deps is copied. */
struct ingest *ingest_new(const struct ingest_deps *deps);

/* ingest_free(NULL) does nothing. Requests still waiting for their commit
 * or their peer are answered by node_free() first (commit flush, repl_free,
 * commit flush): their callbacks use the ingest. */
void ingest_free(struct ingest *in);

/* Handle one router-link message: frames[0] is the peer identity, frames[1]
 * the tag, frames[2] the RouterRequest, frames[3] the body (enqueue only).
 * May take (zmq_msg_move) the body frame. */
void ingest_handle(struct ingest *in, zmq_msg_t *frames, size_t nframes);

/* Whether the message qid, stored by an enqueue in flight, must not be
 * delivered yet: from the request that stores it (before its
 * transaction) until its reply is OK (or, refused, until it is
 * withdrawn). The scheduler asks before it picks a due message. O(1). */
bool ingest_holds(const struct ingest *in, const char *qid);

/* Messages stored and refused since the start (metrics). */
void ingest_counts(const struct ingest *in, uint64_t *stored,
		   uint64_t *refused);

/* Enqueues taken and not yet answered (waiting for the commit or the
 * peer): shutdown waits for them. */
uint64_t ingest_pending(const struct ingest *in);

/* The node is stopping: new enqueues are answered MOVING "node stopping"
 * (the router tries again, here after the restart or at the peer). */
void ingest_stop(struct ingest *in);

#endif
