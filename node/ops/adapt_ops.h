/* Adaptive shaping across the cluster (docs/shaping.md): the actions of
 * this node's table (node/delivery/adapt.h) go to every other node, and
 * theirs come here; operators list, add and clear them (shoalctl
 * shaping); every change is logged and written to the delivery log.
 *
 * Spreading: a new action goes to every node of the map at once (an
 * AdminRequest with a ShapingRequest MERGE over a DEALER link, the way
 * shoalctl reaches a node), and every ADAPT_OPS_ROUND_MS the whole table
 * goes again, so a node that restarted or was cut off learns what it
 * missed within one round. Nothing is stored: a node that restarts while
 * every other node is down starts with an empty table and its rules
 * learn again from the next refusals.
 *
 * Handles untrusted input: requests come from shoalctl and other nodes
 * over the admin link; every action is bounded and checked before it is
 * taken (adapt_action_valid()). */
#ifndef SHOAL_NODE_ADAPT_OPS_H
#define SHOAL_NODE_ADAPT_OPS_H

#include "lib/config.h"
#include "node/delivery/adapt.h"
#include "proto/cli_node.pb-c.h"

#define ADAPT_OPS_ROUND_MS 5000   /* the whole table to every node */
#define ADAPT_OPS_BATCH 256       /* actions in one MERGE request */
#define ADAPT_OPS_DEFAULT_S 3600  /* shaping suspend without --for */

struct event_base;
struct rpc;
struct rpc_ticket;
struct owner;
struct deliver;
struct dlog;
struct adapt_ops;

struct adapt_ops_deps {
	struct event_base *base;
	void *zctx;
	const char *node_id;
	struct rpc *rpc;             /* admin replies */
	const struct owner *owner;   /* the map: which nodes to tell */
	struct deliver *deliver;     /* the table */
	struct dlog *dlog;           /* may be NULL */
};

/* deps is copied; the pointers must outlive the result. */
struct adapt_ops *adapt_ops_new(const struct adapt_ops_deps *deps);

/* adapt_ops_free(NULL) does nothing. */
void adapt_ops_free(struct adapt_ops *o);

/* A rule fired on this node (delivery's shaping_action hook): log it and
 * tell every other node now. */
void adapt_ops_fired(struct adapt_ops *o, const struct adapt_action *x);

/* An admin request with a ShapingRequest: answered now. */
void adapt_ops_admin(struct adapt_ops *o, const struct rpc_ticket *t,
		     const Shoal__AdminRequest *rq);

/* SIGHUP: the rules file again; a bad one is logged with where it is
 * wrong, and the rules in use stay. */
void adapt_ops_reload(struct adapt_ops *o);

/* The wire form of an action and back (bounded, checked: false for a
 * copy that does not fit or fails adapt_action_valid()). The strings of
 * out point into x. */
void adapt_ops_to_wire(const struct adapt_action *x, Shoal__ShapingAction *out);
bool adapt_ops_from_wire(const Shoal__ShapingAction *w,
			 struct adapt_action *out);

#endif
