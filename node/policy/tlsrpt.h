/* TLS reporting (RFC 8460): what this node's SMTP sessions met, counted per
 * UTC day and policy domain, kept in the store (node-local records, so a
 * restart loses at most the last TLSRPT_FLUSH_MS of counts), and sent
 * once a day as the RFC's JSON report to the domains that publish
 * `_smtp._tls` TXT with a rua: mailto: as a message queued here (like a
 * DSN), https: POSTed gzip. `shoalctl tls report DOMAIN` reads today's.
 *
 * Handles untrusted input: the rua TXT records (node/tls/tlsrpt_json.h
 * parses them) and the report endpoints' answers. */
#ifndef SHOAL_NODE_POLICY_TLSRPT_H
#define SHOAL_NODE_POLICY_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "node/delivery/deliver.h"

struct event_base;
struct store;
struct commit;
struct dns;
struct http_client;
struct scheduler;
struct tlsrpt;

#define TLSRPT_DOMAINS_MAX 50000  /* policy domains counted per day */
#define TLSRPT_FAILS_MAX 32       /* failure-details kept per policy */
#define TLSRPT_FLUSH_MS 10000     /* counts reach the store this often */

struct tlsrpt_deps {
	struct event_base *base;
	const struct config *cfg;
	const char *node_id;
	struct store *store;
	struct commit *commit;
	struct dns *dns;               /* _smtp._tls TXT lookups */
	struct http_client *http;      /* https: reports */
	struct scheduler *sched;       /* mailto: reports, queued as DSNs are */
};

/* Returns NULL (logged) when out of memory. */
struct tlsrpt *tlsrpt_new(const struct tlsrpt_deps *deps);

/* Writes what is counted, cancels what is in flight.
 * tlsrpt_free(NULL) does nothing. */
void tlsrpt_free(struct tlsrpt *r);

/* Count one session (deliver.h's hooks.tls_session). */
void tlsrpt_count(struct tlsrpt *r, const struct deliver_tls_session *s);

/* Today's (UTC) report of domain from this node's counts: RFC 8460 JSON,
 * malloc'd (policies [] when nothing was counted), or NULL when out of
 * memory. */
char *tlsrpt_report_today(struct tlsrpt *r, const char *domain);

/* Send today's report of domain now to its rua (the daily run does the
 * same for yesterday, for every domain counted). Returns 0 when started,
 * -ENOENT when nothing was counted. */
int tlsrpt_send_today(struct tlsrpt *r, const char *domain);

#endif
