/* Queue actions from shoalctl (proto/cli_node.proto QueueActionRequest,
 * QueueFlushRequest): hold, release, delete, bounce and flush. Each runs
 * through group commit, so it is journaled and reaches the peer like any
 * other change, and is answered once durable. Only messages of shards this
 * node is primary for are touched: every other qid gets "unknown qid", and
 * shoalctl, which asks every node, takes the answer of the one that has
 * it.
 *
 * A flush, and an action on every message of a tenant (a request with a
 * tenant and no qids), walk the queue in batches of bounded size, one
 * commit item each, and are answered after the last: each batch is
 * durable (and replicated) on its own, so an error or a stop part way
 * leaves the batches before it done. */
#ifndef SHOAL_NODE_ACTIONS_H
#define SHOAL_NODE_ACTIONS_H

#include <stddef.h>

#include "proto/cli_node.pb-c.h"

struct rpc;
struct rpc_ticket;
struct commit;
struct owner;
struct scheduler;
struct actions;

/* What queue actions need of the node; every pointer borrowed, outliving
 * them. */
struct actions_deps {
	const char *node_id;
	struct rpc *rpc;            /* the answers */
	struct commit *commit;
	const struct owner *owner;  /* which messages are ours */
	struct scheduler *sched;    /* released and flushed mail is due;
				       DSNs of bounces */
};

/* deps is copied. */
struct actions *actions_new(const struct actions_deps *deps);

/* actions_free(NULL) does nothing. Actions still in the commit must be
 * done first (commit_flush()): their callbacks use it. A walk still going
 * then (its next batch queued by the last one's callback) is abandoned:
 * when the commit runs that batch it does nothing and answers nobody. */
void actions_free(struct actions *a);

/* Run the action or flush in rq (already checked by node/ops/admin.c:
 * qids, or a tenant, never both) and answer t on the admin link when it is
 * durable. rq and t are copied. */
void actions_handle(struct actions *a, const struct rpc_ticket *t,
		    const Shoal__AdminRequest *rq);

#endif
