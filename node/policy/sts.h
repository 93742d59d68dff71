/* MTA-STS policies (RFC 8461) as delivery needs them: for a recipient
 * domain, the policy in force, found by
 *
 *   1. the `_mta-sts.DOMAIN` TXT record (its id), through the node's
 *      resolver, cached for the answer's TTL;
 *   2. the policy cached here (memory, and the store's node-local records
 *      so that a restart keeps it) when its id is the record's and its
 *      max_age has not passed;
 *   3. else a fetch of https://mta-sts.DOMAIN/.well-known/mta-sts.txt
 *      (delivery.mta_sts_port), the host resolved by our resolver, the
 *      certificate verified against delivery.tls_ca_file (or the system
 *      store), no redirects, 64 KiB at most, text/plain, within
 *      STS_FETCH_TIMEOUT_MS.
 *
 * A fetch that fails, or a TXT record that went away, leaves a cached
 * policy in force until its max_age ends (RFC 8461 3.3, 5.1): stripping
 * the record or blocking the fetch does not turn enforcement off. A
 * failed fetch is counted for TLS-RPT (sts-policy-fetch-error,
 * sts-policy-invalid, sts-webpki-invalid). A policy in mode "none" is no
 * policy.
 *
 * Lookups of one domain share one flight; answers come from the loop,
 * never inside sts_get(). Memory holds at most STS_ENTRIES_MAX domains
 * (least recently used leave first). Handles untrusted input: TXT
 * records, the policy server's answers (parsed by node/tls/sts_policy.h). */
#ifndef SHOAL_NODE_POLICY_STS_H
#define SHOAL_NODE_POLICY_STS_H

#include <stdint.h>

#include "lib/config.h"
#include "node/delivery/deliver.h"

struct event_base;
struct dns;
struct http_client;
struct store;
struct commit;
struct sts;

#define STS_ENTRIES_MAX 20000     /* domains kept in memory */
#define STS_FETCH_TIMEOUT_MS 20000
#define STS_RETRY_S 10            /* after a failure, look again after */
#define STS_FETCH_MAX 32          /* policy fetches at once; more wait */

struct sts_deps {
	struct event_base *base;
	const struct config *cfg;
	struct dns *dns;
	struct http_client *http;
	struct store *store;
	struct commit *commit;
	/* a policy fetched here (new to this node), for the other nodes;
	 * text is its policy-string lines (may be NULL) */
	void (*fetched)(void *arg, const char *domain, const char *id,
			uint64_t fetched, const char *text, size_t len);
	void *fetched_arg;
	/* a failed fetch, for TLS-RPT (may be NULL) */
	void (*report)(void *arg, const struct deliver_tls_session *s);
	void *report_arg;
};

struct sts_stats {
	uint64_t fetched;         /* policies fetched and taken */
	uint64_t fetch_failed;
	uint64_t from_cache;      /* answers from a cached policy */
	uint64_t none;            /* answers without a policy */
};

/* Returns NULL (logged) when out of memory. */
struct sts *sts_new(const struct sts_deps *deps);

/* Shutdown, before the resolver goes (deliver_free()): the lookups and
 * fetches of every flight are cancelled; the waiting sts_get()s stay, for
 * delivery to cancel. sts_stop(NULL) does nothing. */
void sts_stop(struct sts *s);

/* Frees everything; lookups still waiting are dropped without their
 * callbacks. Calls sts_stop() if it was not. Policies still held by
 * delivery must have been released. sts_free(NULL) does nothing. */
void sts_free(struct sts *s);

/* deliver.h's hooks: look up domain's policy (lower case), fn called
 * once from the loop; the id is for sts_cancel() while fn has not run. */
uint64_t sts_get(struct sts *s, const char *domain, deliver_sts_fn fn,
		 void *cbarg);
void sts_cancel(struct sts *s, uint64_t id);
void sts_release(struct sts *s, const struct sts_policy *p);

struct sts_stats sts_stats(const struct sts *s);

/* Test hook: queue the sweep of expired records now. */
void sts_sweep_now(struct sts *s);

/* Another node fetched domain's policy (id, at unix time fetched, text
 * its policy-string lines): once the domain's own `_mta-sts` TXT record
 * (looked up here) shows that id, it is taken into this node's cache
 * (memory and store), unless the cache holds one fetched later or one in
 * a stronger mode. Returns 0 when the check started, 1 when refused at
 * once (expired, stamped in the future, too many waiting), -EINVAL when
 * domain, id or text do not parse. */
int sts_learn(struct sts *s, const char *domain, const char *id,
	      uint64_t fetched, const char *text, size_t len);

#endif
