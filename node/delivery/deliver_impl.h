/* Delivery's insides, shared by its two files and by nothing else (the
 * interface is deliver.h):
 *
 *   deliver.c  the job flow: a job in (deliver_submit), its route or DNS
 *              lookup, the destination it joins, its results out through
 *              the hooks; setup, the limits share, shutdown
 *   dest.c     destinations and their connection pools: jobs waiting per
 *              destination, connections within the shaping limits, MX
 *              fallback, the TLS retry, IP-pool sources, reuse and idling
 *   dest_hold.c what holds a destination's jobs back or steers them to
 *              another source: adaptive shaping's actions, IP warm-up
 *   dest_tls.c the TLS policy of one connection (DANE, MTA-STS, verify,
 *              opportunistic) and its TLS-RPT count
 *
 * outcome.c judges every result either file hands out. */
#ifndef SHOAL_NODE_DELIVER_IMPL_H
#define SHOAL_NODE_DELIVER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lib/config.h"
#include "lib/guard.h"
#include "node/delivery/adapt.h"
#include "node/delivery/deliver.h"
#include "node/delivery/dns.h"
#include "node/delivery/dqueue.h"
#include "node/delivery/outcome.h"
#include "node/delivery/shaping.h"
#include "node/delivery/smtpc.h"
#include "node/delivery/tenant.h"

#define DELIVER_ADDRS_MAX (DNS_HOSTS_MAX * DNS_ADDRS_MAX)
#define DELIVER_KEY_MAX 1024
#define DELIVER_MXKEY_MAX 512   /* longer MX lists are keyed by a hash */

struct event;
struct event_base;
struct job;
struct dconn;
struct dwait;

struct deliver {
	struct event_base *base;
	const struct config *cfg;   /* borrowed: outlives d */
	char *node_id;              /* ours, for the limits share */
	struct deliver_hooks hooks; /* to the layer above (node.c's) */
	struct dns *dns;
	SSL_CTX *ssl;
	struct smtpc_ctx *smtpc;  /* our SMTP clients, those saying QUIT too */
	struct dest *dests;
	struct dwait *waits;      /* jobs waiting for DNS */
	uint32_t n_conns;
	double share;             /* of the cluster's limits */
	struct egress *egress;    /* IP pools' source addresses */
	uint64_t unknown_pools;   /* messages naming a pool we lack */
	struct adapt *adapt;      /* adaptive shaping: rules and actions */
	struct tenant_set *tenants; /* tenants' buckets (tenant.h) */
	struct event *adapt_timer; /* the next action's expiry */
	uint64_t held;            /* jobs deferred by a suspension */
};

struct dest_addr {
	struct sockaddr_storage sa;
	char mx[DNS_NAME_MAX + 1];
	uint64_t down_until;      /* unix seconds */
};

/* A destination: the sorted set of MX host names a domain resolves to (or
 * "route:HOST:PORT" for a delivery.routes relay), per IP pool. */
struct dest {
	struct deliver *d;
	char key[DELIVER_KEY_MAX];    /* "pool:NAME|" + MX key with a pool */
	ssize_t pool;                 /* egress.h index, -1 = none */
	char domain[DNS_NAME_MAX + 1]; /* whose job made it: metrics label */
	struct dest_addr addrs[DELIVER_ADDRS_MAX];
	size_t n_addrs;
	const char *mx[DELIVER_ADDRS_MAX]; /* addrs[i].mx, for adapt.h */
	char provider[ADAPT_NAME_MAX]; /* adapt_provider(), "" = none */
	uint64_t provider_gen;    /* adapt_rules_gen() it was found at */
	struct adapt_verdict av;  /* adapt_check() at av_version */
	uint64_t av_version;      /* 0: not checked yet */
	struct shaping shape;
	enum cfg_tls tls_cfg;     /* the route's or the limits' tls */
	bool is_route;            /* a delivery.routes relay */
	const char *last_policy;  /* of the last failed connection (static) */
	const struct sts_policy *sts; /* the domain's MTA-STS policy (a
				   * reference, hooks.sts_release), or NULL:
				   * such a destination serves one domain */
	struct dqueue q;          /* waiting jobs, by class and tenant */
	struct dconn *conns;      /* all connections */
	uint32_t n_conns, n_connecting;
	struct event *wake;       /* rate limit timer */
	uint64_t wake_at_us;      /* when it fires (clock_mono_us) */
	struct guard guard;       /* held while dest_pump() runs */
	struct dest *next;
};

/* ---- deliver.c: results ------------------------------------------------ */

/* One log line for recipient k of j, subject first: the qid. */
void deliver_log_result(const struct job *j, size_t k, const char *mx,
			const char *ip, const char *source, enum outcome oc,
			enum classify_cat cat, int code, const char *status,
			const char *text);

/* Give every recipient of j the same verdict (outcome.c's) and hand j
 * back through hooks.job_done; code and text say what happened. */
void deliver_finish_all(struct deliver *d, struct job *j,
			const struct outcome_verdict *v, int code,
			const char *text, const char *mx, const char *source);

/* Whether j may start now (hooks.job_may_start). */
bool deliver_may_start(const struct deliver *d, const struct job *j);

/* Hand j back without an attempt (hooks.job_abandon); it stays due. */
void deliver_abandon(struct deliver *d, struct job *j);

/* A reply from host mx of ds, sent from source, that ended an attempt or
 * a connection's setup: adaptive shaping's rules see it (adapt.h) as a
 * reply of the provider mx itself belongs to (not ds's: a domain may list
 * a provider's host beside its own); a new action goes up through
 * hooks.shaping_action and every destination looks at the table again. */
void deliver_observe(struct deliver *d, struct dest *ds, const char *mx,
		     const char *source, const struct smtpc_reply *r);

/* ---- dest.c: destinations ------------------------------------------------ */

/* The destination filed under key, or NULL. */
struct dest *dest_find(struct deliver *d, const char *key);

/* A new, empty destination under key, made for a job of domain, sending
 * from IP pool pool (-1: none), with route_tls (a delivery.routes relay's
 * TLS mode) or, when NULL, the TLS mode of the limits that apply. */
struct dest *dest_new(struct deliver *d, const char *key, const char *domain,
		      ssize_t pool, const enum cfg_tls *route_tls);

/* Take the addresses of a DNS answer (port set to port), keeping the
 * down marks of addresses already known. */
void dest_set_addrs(struct dest *ds, const struct dns_result *r,
		    uint16_t port);

/* Queue j and start what the limits allow. May free ds (nothing left
 * to do: j could not start). */
void dest_enqueue(struct dest *ds, struct job *j);

/* Hand back every waiting job that may not start now. May free ds. */
void dest_recheck(struct dest *ds);

/* Apply a new share of the limits; the next pump (on the next loop pass)
 * uses it. */
void dest_set_share(struct dest *ds, double share);

/* The shaping actions or rules changed: ds looks at them again on the
 * next loop pass. */
void dest_shaping_changed(struct dest *ds);

/* ---- dest_tls.c: one connection's TLS policy ------------------------------ */

#define DEST_TLSA_MAX SMTPC_TLSA_MAX

/* What TLS one connection attempt to one address asks for. Ready at once,
 * or after a TLSA lookup (then fn(arg) is called from the loop). */
struct dest_tls {
	struct dest *ds;
	char mx[DNS_NAME_MAX + 1];
	int family;
	bool is_ready;
	uint64_t lookup;          /* dns_query() in flight, or 0 */
	void (*fn)(void *arg);
	void *arg;
	enum smtpc_tls mode;
	const char *policy;       /* job.tls_policy: "none", "opportunistic",
				   * "required", "verify", "dane", "mta-sts",
				   * "mta-sts-testing" */
	const char *rpt_type;     /* TLS-RPT policy-type, NULL: not counted */
	bool evaluate;            /* opportunistic, checked for the report */
	bool is_unlisted;         /* testing: a host the policy does not name */
	const char *fail_type;    /* refused before connecting: RFC 8460 type */
	char fail_text[SMTPC_REPLY_TEXT_MAX];
	size_t n_tlsa;
	struct smtpc_tlsa tlsa[DEST_TLSA_MAX];
	unsigned char *tlsa_data;
	char *tlsa_text[DEST_TLSA_MAX]; /* "3 1 1 AB..." for the report */
};

/* The policy of a connection of ds to ds->addrs[addr_idx]. */
struct dest_tls *dest_tls_new(struct dest *ds, size_t addr_idx,
			      void (*fn)(void *arg), void *arg);
/* Cancels a lookup in flight. dest_tls_free(NULL) does nothing. */
void dest_tls_free(struct dest_tls *t);
/* Fill o's TLS fields (mode, names, TLSA records) from a ready t. */
void dest_tls_opts(const struct dest_tls *t, struct smtpc_opts *o);
/* The RFC 8460 result of a session under t: "" for a success. info may
 * be NULL (no connection was made); ok: the session became ready. */
const char *dest_tls_result(const struct dest_tls *t,
			    const struct smtpc_info *info, bool ok);
/* Count a session for domain through hooks.tls_session (nothing for a
 * policy TLS-RPT does not cover). */
void dest_tls_report(const struct dest_tls *t, const char *domain,
		     const struct smtpc_info *info, const char *result);

/* ---- dest_hold.c: what holds jobs back ---------------------------------- */

#define DEST_HOLD_TEXT_MAX (ADAPT_KEY_MAX + 200)

/* Whether job j of ds may not start now: its provider, MX host or domain
 * is suspended, or no source of its pool may send to it (suspended, or
 * its warm-up allowance spent today). Then *v is the held verdict
 * (outcome_of_suspension()) and text says why. Refreshes ds's shaping
 * caps first. */
bool dest_hold_check(struct dest *ds, const struct job *j,
		     struct outcome_verdict *v, char *text, size_t len);

/* egress_pick()'s skip for ds (arg): a source that may not send to it. */
bool dest_source_held(void *arg, size_t src);

/* The same for a source already picked (-1: none, never held). */
bool dest_source_full(const struct dest *ds, ssize_t src);

/* A message goes to ds from source src (-1: none): warm-up counts it. */
void dest_count_sent(struct dest *ds, ssize_t src);

/* Shutdown: close every connection, free the jobs (waiting and in flight)
 * without results, unlink and free ds. */
void dest_free(struct dest *ds);

#endif
