/* `shoalctl tls report DOMAIN [--send]` on a node (docs/tls.md): this
 * node's RFC 8460 report of DOMAIN for today, from node/policy/tlsrpt.h,
 * and with send the report sent to the domain's rua now. */
#ifndef SHOAL_NODE_TLS_OPS_H
#define SHOAL_NODE_TLS_OPS_H

#include "lib/config.h"
#include "proto/cli_node.pb-c.h"

struct rpc;
struct rpc_ticket;
struct tlsrpt;

/* Answer t with a TlsReportReply on rpc: the report (an empty one when r
 * is NULL: TLS reporting is off here), and with rq->send the outcome of
 * sending it, once known (rpc must then outlive r: tlsrpt_free() cancels
 * a send without an answer). A domain that is not a host name gets
 * STATUS_BAD_REQUEST. cfg and node_id are borrowed for the call. */
void tls_ops_report(struct rpc *rpc, const struct config *cfg,
		    const char *node_id, struct tlsrpt *r,
		    const struct rpc_ticket *t,
		    const Shoal__TlsReportRequest *rq);

#endif
