/* MTA-STS policies across the cluster (docs/tls.md): a policy one node
 * fetched goes to every other node at once (an AdminRequest with a
 * StsPolicyRequest over a DEALER link, as shaping actions go), and each
 * takes it into its own cache (node/policy/sts.h sts_learn()), so that a
 * node that never fetched it, or takes over a failed node's mail, does
 * not meet the domain for the first time while an attacker hides its
 * policy. Nothing is resent: a node that was away learns the policy at
 * its own first lookup (or the next fetch anywhere).
 *
 * Handles untrusted input: requests from the admin link; domain, id and
 * policy text are checked by sts_learn(). */
#ifndef SHOAL_NODE_STS_OPS_H
#define SHOAL_NODE_STS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/cli_node.pb-c.h"

struct event_base;
struct rpc;
struct rpc_ticket;
struct owner;
struct sts;
struct sts_ops;

#define STS_OPS_POLICY_MAX 16384 /* bytes of a policy's text on the wire */

struct sts_ops_deps {
	struct event_base *base;
	void *zctx;
	const char *node_id;
	struct rpc *rpc;           /* admin replies */
	const struct owner *owner; /* the map: which nodes to tell */
	struct sts *sts;
};

/* deps is copied; the pointers must outlive the result. */
struct sts_ops *sts_ops_new(const struct sts_ops_deps *deps);

/* sts_ops_free(NULL) does nothing. */
void sts_ops_free(struct sts_ops *o);

/* sts.h's fetched hook: tell every other node. */
void sts_ops_fetched(void *arg, const char *domain, const char *id,
		     uint64_t fetched, const char *text, size_t len);

/* An admin request with a StsPolicyRequest: taken, and answered. */
void sts_ops_admin(struct sts_ops *o, const struct rpc_ticket *t,
		   const Shoal__AdminRequest *rq);

#endif
