/* `shoalctl webhooks status` on a node (docs/webhooks.md): each webhook's
 * backlog, counters, last success and last error, from
 * node/webhook/webhook.h. Read-only. */
#ifndef SHOAL_NODE_WEBHOOK_OPS_H
#define SHOAL_NODE_WEBHOOK_OPS_H

struct rpc;
struct rpc_ticket;
struct webhooks;

/* Answer t with a WebhooksReply on rpc (an empty list when wh is NULL:
 * none configured). */
void webhook_ops_status(struct rpc *rpc, const char *node_id,
			struct webhooks *wh, const struct rpc_ticket *t);

#endif
