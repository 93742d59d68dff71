/* The TLS report request (tls_ops.h). A send answers when it is over
 * (the reply waits in a struct of its own, keyed by nothing: the
 * callback carries it); the error text is ours (node/policy/tlsrpt_send.c
 * writes it), cut to TLS_OPS_ERROR_MAX. */
#include "node/ops/tls_ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/policy/tlsrpt.h"
#include "node/rpc/rpc.h"

#define TLS_OPS_ERROR_MAX 200

struct tls_ops_wait {
	struct rpc *rpc;
	struct rpc_ticket ticket;
	char node_id[64];
	char *json;
};

static void
tls_ops_answer(struct rpc *rpc, const char *node_id,
	       const struct rpc_ticket *t, Shoal__Status status,
	       const char *message, const char *json, bool sent,
	       const char *error)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	Shoal__TlsReportReply tr = SHOAL__TLS_REPORT_REPLY__INIT;
	char err[TLS_OPS_ERROR_MAX + 1];

	snprintf(err, sizeof(err), "%s", error ? error : "");
	tr.json = (char *)(json ? json : "");
	tr.sent = sent;
	tr.error = err;
	r.request_id = t->request_id;
	r.node_id = (char *)node_id;
	r.status = status;
	r.message = (char *)(message ? message : "");
	if (status == SHOAL__STATUS__STATUS_OK) {
		r.body_case = SHOAL__ADMIN_REPLY__BODY_TLS_REPORT;
		r.tls_report = &tr;
	}
	rpc_reply_admin(rpc, t, &r);
}

static void
tls_ops_sent(void *arg, int result, const char *error)
{
	struct tls_ops_wait *w = arg;

	if (result != -ECANCELED)
		tls_ops_answer(w->rpc, w->node_id, &w->ticket,
			       SHOAL__STATUS__STATUS_OK, NULL, w->json,
			       result == 0, error);
	free(w->json);
	free(w);
}

void
tls_ops_report(struct rpc *rpc, const struct config *cfg, const char *node_id,
	       struct tlsrpt *r, const struct rpc_ticket *t,
	       const Shoal__TlsReportRequest *rq)
{
	char domain[TLSRPT_DOMAIN_MAX + 1];
	struct tls_ops_wait *w;
	char *json;
	int rc;

	if (tlsrpt_domain_norm(rq->domain, domain) != 0) {
		log_warn("admin request_id=%llu event=bad_request "
			 "reason=\"tls report: not a domain name\"",
			 (unsigned long long)t->request_id);
		tls_ops_answer(rpc, node_id, t,
			       SHOAL__STATUS__STATUS_BAD_REQUEST,
			       "not a domain name", NULL, false, NULL);
		return;
	}
	json = r ? tlsrpt_report_today(r, domain) :
		   tlsrpt_report_empty(cfg, node_id, domain);
	if (json == NULL) {
		tls_ops_answer(rpc, node_id, t, SHOAL__STATUS__STATUS_INTERNAL,
			       "out of memory", NULL, false, NULL);
		return;
	}
	if (!rq->send) {
		tls_ops_answer(rpc, node_id, t, SHOAL__STATUS__STATUS_OK, NULL,
			       json, false, NULL);
		free(json);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->rpc = rpc;
	w->ticket = *t;
	snprintf(w->node_id, sizeof(w->node_id), "%s", node_id);
	w->json = json;
	rc = r ? tlsrpt_send_today(r, domain, tls_ops_sent, w) : -ENOTSUP;
	if (rc != 0) {
		tls_ops_answer(rpc, node_id, t, SHOAL__STATUS__STATUS_OK, NULL,
			       json, false,
			       rc == -ENOENT ? "nothing counted today" :
			       rc == -ENOTSUP ? "TLS reporting cannot send "
						"from this node" :
						strerror(-rc));
		free(json);
		free(w);
		return;
	}
	log_info("tlsrpt domain=%s event=send_requested request_id=%llu",
		 domain, (unsigned long long)t->request_id);
}
