/* The webhooks status request (webhook_ops.h): one WebhookStatus per
 * webhook, as webhooks_stats() reports it. The last error was escaped
 * and bounded where it was kept (node/webhook/webhook_send.c). */
#include "node/ops/webhook_ops.h"

#include <stdlib.h>

#include "lib/xmalloc.h"
#include "node/rpc/rpc.h"
#include "node/webhook/webhook.h"
#include "proto/cli_node.pb-c.h"

void
webhook_ops_status(struct rpc *rpc, const char *node_id, struct webhooks *wh,
		   const struct rpc_ticket *t)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	Shoal__WebhooksReply wr = SHOAL__WEBHOOKS_REPLY__INIT;
	size_t n = webhooks_count(wh);
	Shoal__WebhookStatus *v = xcalloc(n ? n : 1, sizeof(*v));
	Shoal__WebhookStatus **pv = xcalloc(n ? n : 1, sizeof(*pv));

	for (size_t i = 0; i < n; i++) {
		struct webhook_stats st;

		webhooks_stats(wh, i, &st);
		shoal__webhook_status__init(&v[i]);
		v[i].name = (char *)st.name;
		v[i].url = (char *)st.url;
		v[i].backlog = st.backlog;
		v[i].held = st.held;
		v[i].sent = st.sent;
		v[i].dropped = st.dropped;
		v[i].posts_ok = st.posts_ok;
		v[i].posts_failed = st.posts_failed;
		v[i].last_success = st.last_success;
		v[i].last_failure = st.last_failure;
		v[i].failures = st.failures;
		v[i].retry_in_ms = st.retry_in_ms;
		v[i].last_error = (char *)st.last_error;
		pv[i] = &v[i];
	}
	wr.n_webhooks = n;
	wr.webhooks = pv;
	r.request_id = t->request_id;
	r.node_id = (char *)node_id;
	r.status = SHOAL__STATUS__STATUS_OK;
	r.body_case = SHOAL__ADMIN_REPLY__BODY_WEBHOOKS;
	r.webhooks = &wr;
	rpc_reply_admin(rpc, t, &r);
	free(pv);
	free(v);
}
