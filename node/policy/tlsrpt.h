/* TLS reporting (RFC 8460): what this node's SMTP sessions met, counted per
 * UTC day and policy domain, kept in the store (node-local records, so a
 * restart loses at most the last TLSRPT_FLUSH_MS of counts), and sent
 * once a day as the RFC's JSON report to the domains that publish
 * `_smtp._tls` TXT with a rua: mailto: as a message queued here (like a
 * DSN), https: POSTed gzip. `shoalctl tls report DOMAIN` reads today's.
 *
 * Each node reports its own sessions (report-id names the node); shoalctl
 * merges the nodes' reports for its view. Counting is O(1) per session
 * in the number of domains (a hash by domain; linear only in the bounded
 * policies and failure rows of one domain).
 *
 * Store records (node/store/store.h node-local records, docs/tls.md):
 *   tlsrpt/<YYYYMMDD>/<domain>       the day's counts (tlsrpt_store.c)
 *   tlsrpt-sent/<YYYYMMDD>/<domain>  the day's report went out
 * Today's and yesterday's counts are loaded at tlsrpt_new(); a day's
 * counts are deleted once its report is sent, every record after
 * TLSRPT_KEEP_DAYS.
 *
 * Handles untrusted input: the rua TXT records (node/tls/tlsrpt_json.h
 * parses them), the report endpoints' answers, and the names and results
 * of sessions (MX names from DNS): all bounded below. */
#ifndef SHOAL_NODE_POLICY_TLSRPT_H
#define SHOAL_NODE_POLICY_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/smtp_addr.h"
#include "node/delivery/deliver.h"

struct event_base;
struct store;
struct commit;
struct dns;
struct http_client;
struct scheduler;
struct tlsrpt;

#define TLSRPT_DOMAINS_MAX 50000  /* policy domains counted per day */
#define TLSRPT_POLICIES_MAX 8     /* policies kept per domain and day */
#define TLSRPT_FAILS_MAX 32       /* failure-details kept per policy */
#define TLSRPT_FLUSH_MS 10000     /* counts reach the store this often */
#define TLSRPT_KEEP_DAYS 7        /* records older than this are deleted */
#define TLSRPT_DOMAIN_MAX SMTP_NAME_TEXT_MAX
#define TLSRPT_HTTP_TIMEOUT_MS 30000 /* one https: report POST */
#define TLSRPT_JITTER_S 1800      /* the daily run: 00:00 UTC + up to this */

struct tlsrpt_deps {
	struct event_base *base;
	const struct config *cfg;      /* borrowed: outlives the module */
	const char *node_id;           /* copied */
	struct store *store;
	struct commit *commit;
	struct dns *dns;               /* _smtp._tls TXT lookups; NULL: no
					* report is sent */
	struct http_client *http;      /* https: reports; NULL: none */
	struct scheduler *sched;       /* mailto: reports, queued as DSNs
					* are; NULL: none */
};

/* Load today's and yesterday's counts from the store, schedule the flush
 * and the daily run, and queue the deletion of old records. deps is
 * copied. Returns NULL (logged) when the store cannot be read. */
struct tlsrpt *tlsrpt_new(const struct tlsrpt_deps *deps);

/* Writes what is counted (through the commit, made durable before it
 * returns: commit_flush()), then cancels what is in flight: pending
 * tlsrpt_send_today() callbacks get -ECANCELED. Call before the commit,
 * DNS, HTTP client and scheduler are freed. tlsrpt_free(NULL) does
 * nothing. */
void tlsrpt_free(struct tlsrpt *r);

/* Count one session (deliver.h's hooks.tls_session). r may be NULL.
 * Sessions whose domain is not an ASCII host name or whose policy type
 * is unknown are not counted (a rate-limited warning). */
void tlsrpt_count(struct tlsrpt *r, const struct deliver_tls_session *s);

/* Today's (UTC) report of domain (any case; not a host name: an empty
 * report for "invalid") from this node's counts: RFC 8460 JSON, one
 * line, malloc'd (caller frees; policies [] when nothing was counted),
 * report-id "<YYYY-MM-DD>.<domain>.<node_id>@<helo_name>", date-range
 * the whole day. NULL when out of memory or r is NULL.
 * tlsrpt_report_empty(): the same with no counts, for a node without
 * TLS reporting. */
char *tlsrpt_report_today(struct tlsrpt *r, const char *domain);
char *tlsrpt_report_empty(const struct config *cfg, const char *node_id,
			  const char *domain);

/* The outcome of tlsrpt_send_today(): 0 when the report reached at least
 * one rua (queued for mailto:, a 2xx for https:), else a negative errno
 * with error saying why (printable ASCII, lives during the call). */
typedef void (*tlsrpt_sent_fn)(void *arg, int result, const char *error);

/* Send today's report of domain now to its rua (the daily run does the
 * same for yesterday, for every domain counted, and remembers it sent
 * it; this does not). fn is called once, later (never from inside the
 * call), or with -ECANCELED from tlsrpt_free(). Returns 0 when started,
 * -ENOENT when nothing was counted today, -EINVAL when domain is not a
 * host name, -ENOTSUP when the node cannot send (no DNS, HTTP client or
 * scheduler): then fn is not called. */
int tlsrpt_send_today(struct tlsrpt *r, const char *domain, tlsrpt_sent_fn fn,
		      void *arg);

/* For shoal_tls_sessions_total: fn is called for every policy type
 * ("sts", "tlsa", "no-policy-found") and result ("success", each
 * RFC 8460 result-type, "other") with the sessions counted since start.
 * Always the same series, in the same order. r may be NULL (all 0). */
typedef void (*tlsrpt_sessions_fn)(void *arg, const char *policy,
				   const char *result, uint64_t n);
void tlsrpt_sessions(const struct tlsrpt *r, tlsrpt_sessions_fn fn, void *arg);

/* Lower-case a policy domain into out and check it: ASCII letters,
 * digits, '-', '_' in dot-separated labels of 1..63, at most
 * TLSRPT_DOMAIN_MAX in all, one trailing dot dropped. Returns 0 or
 * -EINVAL (out untouched). */
int tlsrpt_domain_norm(const char *in, char out[TLSRPT_DOMAIN_MAX + 1]);

/* Tests: the clock this module reads (unix seconds), 0 for the real one.
 * Day changes take effect at the next call that reads the clock. */
void tlsrpt_set_time(struct tlsrpt *r, uint64_t now);

#endif
