/* MTA-STS policies across the cluster (sts_ops.h): the request out to
 * every other node, and one in from another node. */
#include "node/ops/sts_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/cluster/owner.h"
#include "node/ops/admin.h"
#include "node/policy/sts.h"
#include "node/rpc/links.h"
#include "node/rpc/rpc.h"

struct sts_ops {
	struct sts_ops_deps d;
	struct links *links;
	uint64_t next_id;
};

void
sts_ops_fetched(void *arg, const char *domain, const char *id,
		uint64_t fetched, const char *text, size_t len)
{
	struct sts_ops *o = arg;
	Shoal__AdminRequest rq = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StsPolicyRequest sp = SHOAL__STS_POLICY_REQUEST__INIT;
	char *policy;
	unsigned char *p;
	size_t n;

	if (o == NULL || len > STS_OPS_POLICY_MAX)
		return;
	policy = xmalloc(len + 1);
	memcpy(policy, text, len);
	policy[len] = '\0';
	sp.domain = (char *)domain;
	sp.id = (char *)id;
	sp.fetched = fetched;
	sp.policy = policy;
	rq.request_id = ++o->next_id;
	rq.body_case = SHOAL__ADMIN_REQUEST__BODY_STS_POLICY;
	rq.sts_policy = &sp;
	n = shoal__admin_request__get_packed_size(&rq);
	p = xmalloc(n ? n : 1);
	shoal__admin_request__pack(&rq, p);
	links_send_admin_all(o->links, owner_map(o->d.owner), o->d.node_id, p,
			     n);
	free(p);
	free(policy);
}

void
sts_ops_admin(struct sts_ops *o, const struct rpc_ticket *t,
	      const Shoal__AdminRequest *rq)
{
	const Shoal__StsPolicyRequest *sp = rq->sts_policy;
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	size_t len = sp ? strnlen(sp->policy, STS_OPS_POLICY_MAX + 1) : 0;
	int rc = -1;

	if (sp != NULL && len <= STS_OPS_POLICY_MAX)
		rc = sts_learn(o->d.sts, sp->domain, sp->id, sp->fetched,
			       sp->policy, len);
	r.request_id = t->request_id;
	r.node_id = (char *)o->d.node_id;
	if (rc < 0) {
		r.status = SHOAL__STATUS__STATUS_BAD_REQUEST;
		r.message = "not a valid MTA-STS policy";
	} else {
		r.status = SHOAL__STATUS__STATUS_OK;
	}
	rpc_reply_admin(o->d.rpc, t, &r);
}

struct sts_ops *
sts_ops_new(const struct sts_ops_deps *deps)
{
	struct sts_ops *o = xcalloc(1, sizeof(*o));

	o->d = *deps;
	o->links = links_new(o->d.base, o->d.zctx, 1u << 20,
			     links_log_refusals, (void *)"sts");
	return o;
}

void
sts_ops_free(struct sts_ops *o)
{
	if (o == NULL)
		return;
	links_free(o->links);
	free(o);
}
