/* Queue actions from shoalctl (proto/cli_node.proto QueueActionRequest,
 * QueueFlushRequest): hold, release, delete, bounce and flush. Each runs
 * through group commit, so it is journaled and reaches the peer like any
 * other change, and is answered once durable. Only messages of shards this
 * node is primary for are touched: every other qid gets "unknown qid", and
 * shoalctl, which asks every node, takes the answer of the one that has
 * it. */
#ifndef SHOAL_NODE_ACTIONS_H
#define SHOAL_NODE_ACTIONS_H

#include <stddef.h>

#include "proto/cli_node.pb-c.h"

struct node;

/* Run the action or flush in rq (already checked by node/admin.c) and
 * answer reply_to on the admin link when it is durable. rq is copied. */
void actions_handle(struct node *n, const void *reply_to,
		    size_t reply_to_len, const Shoal__AdminRequest *rq);

#endif
