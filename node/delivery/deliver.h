/* Delivery: turns jobs into SMTP transactions. Resolves each job's domain
 * (or takes its delivery.routes relay), groups jobs by destination (the
 * set of MX hosts, so every domain of one provider shares a queue and its
 * limits: MX rollup), keeps a pool of connections per destination within
 * the traffic-shaping limits (shaping.c), tries MX hosts in order and
 * moves to the next on connection trouble (backup MX), reuses connections
 * for several messages, and hands every job back with one result per
 * recipient, as outcome.c judges it.
 *
 * A leaf: uses lib/ and proto/ only. What it needs of the node comes at
 * deliver_new(); it reports upward only through struct deliver_hooks,
 * which the composition root (node/node.c) installs. */
#ifndef SHOAL_NODE_DELIVER_H
#define SHOAL_NODE_DELIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"
#include "node/delivery/adapt.h"
#include "node/delivery/dns.h"
#include "proto/queue.pb-c.h"

struct event_base;
struct job;
struct deliver;
struct sts_policy;

/* The TLS of one SMTP session as TLS-RPT (RFC 8460) counts it: under
 * which policy, with which result. Lives during the call. */
struct deliver_tls_session {
	const char *domain;      /* the policy domain: the recipient domain */
	const char *policy_type; /* "sts", "tlsa" or "no-policy-found" */
	const struct sts_policy *sts; /* "sts": the policy applied */
	const char *const *tlsa; /* "tlsa": the records, presentation form */
	size_t n_tlsa;
	const char *mx;          /* the receiving MX host, or "" */
	const char *ip;          /* its address, or "" */
	const char *source;      /* our address, or "" */
	const char *result;      /* "" for a success, else an RFC 8460
				  * result-type ("starttls-not-supported"...) */
};

/* The MTA-STS policy of a domain, once looked up: p is NULL when the
 * domain has none (or none could be had); id is the policy's id; p stays
 * valid until handed back with hooks.sts_release. */
typedef void (*deliver_sts_fn)(void *cbarg, const struct sts_policy *p,
			       const char *id);

/* How delivery reports to the layer above. A hook may run from inside
 * deliver_submit() (a job refused before any lookup) or deliver_recheck()
 * (abandoned jobs) as well as from delivery's own events; it must not call
 * back into delivery. A hook that takes a job owns it from then on. */
struct deliver_hooks {
	/* A job is over: j->res holds one result per recipient. */
	void (*job_done)(void *arg, struct job *j);
	/* Whether j may start now (the lease, shard ownership, fencing,
	 * freezes): asked before it starts on a new or a reused connection,
	 * and again at the 354, the last moment a message can be withdrawn
	 * (node/cluster/owner.h owner_may_start()). */
	bool (*job_may_start)(void *arg, const struct job *j);
	/* j may not start, or was withdrawn at the 354: handed back
	 * without an attempt (it stays due). */
	void (*job_abandon)(void *arg, struct job *j);
	/* A domain lookup ended with st (metrics); may be NULL. */
	void (*dns_done)(void *arg, enum dns_status st);
	/* A rule of adaptive shaping fired here: x is a new action (or
	 * one lengthened) in this node's table, to be logged and spread to
	 * the other nodes. May be NULL. */
	void (*shaping_action)(void *arg, const struct adapt_action *x);
	/* MTA-STS (node/policy/sts.h): start looking up domain's policy;
	 * fn is called once, never from inside the call. Returns an id for
	 * sts_cancel. All three NULL: no MTA-STS. */
	uint64_t (*sts_get)(void *arg, const char *domain, deliver_sts_fn fn,
			    void *cbarg);
	void (*sts_cancel)(void *arg, uint64_t id);
	void (*sts_release)(void *arg, const struct sts_policy *p);
	/* A session's TLS outcome under a policy, for TLS-RPT; may be
	 * NULL. */
	void (*tls_session)(void *arg, const struct deliver_tls_session *s);
	void *arg;
};

/* Set up delivery on base with cfg (borrowed: it must outlive the
 * result). node_id is this node's (copied); map is the shard map at start
 * (read now only, for this node's share of the limits; may be NULL: the
 * whole limits). hooks is copied; job_done, job_may_start and job_abandon
 * must be set. Returns NULL (logged) when DNS, the IP pools or the shaping
 * rules (delivery.shaping_rules, else the built-in ones) cannot be set
 * up. */
struct deliver *deliver_new(struct event_base *base, const struct config *cfg,
			    const char *node_id, const Shoal__ShardMap *map,
			    const struct deliver_hooks *hooks);

/* Closes connections and drops jobs without results (they are due again
 * at the next start). deliver_free(NULL) does nothing. */
void deliver_free(struct deliver *d);

/* The node adopted a new shard map (map, read during the call only): its
 * share of the cluster-wide limits (shaping.h) is computed again and
 * applied to every destination (the rate at once, connections above a
 * smaller count as they finish). deliver_map_changed(NULL, ...) does
 * nothing. */
void deliver_map_changed(struct deliver *d, const Shoal__ShardMap *map);

/* The resolver delivery owns, for the modules that look names up beside
 * it (node/policy/); it lives until deliver_free(). */
struct dns *deliver_dns(struct deliver *d);

/* Take a job; its results go to hooks.job_done. Before the job starts
 * (on a new or a reused connection) delivery asks hooks.job_may_start; a
 * job that may not start is handed back with hooks.job_abandon. */
void deliver_submit(struct deliver *d, struct job *j);

/* Hand back every waiting job that may not start now (ownership, fencing
 * or a freeze changed); attempts already under way finish. Not from
 * inside delivery's own callbacks. */
void deliver_recheck(struct deliver *d);

/* Adaptive shaping (adapt.h). Read the rules file again (SIGHUP): 0, or
 * an error with err saying where the file is wrong (the old rules stay). */
int deliver_shaping_reload(struct deliver *d, char *err, size_t errlen);

/* Take a copy of an action from another node or an operator; returns
 * true when it changed the table (destinations look again). */
bool deliver_shaping_merge(struct deliver *d, const struct adapt_action *x);

/* Suspend key by hand for seconds (adapt_suspend()); false when the
 * table is full, else *out is the action. */
bool deliver_shaping_suspend(struct deliver *d, const char *key,
			     uint32_t seconds, struct adapt_action *out);

/* Clear every live action on key by hand; each cleared copy goes to fn
 * (to spread it). Returns how many. */
size_t deliver_shaping_clear(struct deliver *d, const char *key,
			     void (*fn)(const struct adapt_action *x,
					void *arg),
			     void *arg);

/* The table, to read (list, metrics). */
const struct adapt *deliver_adapt(const struct deliver *d);

/* Jobs deferred by a suspension so far (metrics). */
uint64_t deliver_held(const struct deliver *d);

/* Open connections now (all destinations). */
uint32_t deliver_connections(const struct deliver *d);

/* Call fn for every destination with the domain of the job that created
 * it (destinations are MX sets; several domains may share one) and its
 * open connections. fn must not submit jobs. */
typedef void (*deliver_dest_fn)(const char *domain, uint32_t n_conns,
				void *arg);
void deliver_foreach_dest(const struct deliver *d, deliver_dest_fn fn,
			  void *arg);

#endif
