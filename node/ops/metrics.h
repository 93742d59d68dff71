/* The node's Prometheus endpoint: GET /metrics on nodes[].metrics
 * ("host:port") in the text exposition format, and the counters behind it
 * that delivery and the scheduler feed as they go, through the hooks
 * node.c installs (plain integers: the node runs one event loop).
 * docs/metrics.md lists every metric.
 *
 * Destination labels are bounded: the first METRICS_DEST_LABELS distinct
 * recipient domains that delivery reports on since the node started keep
 * their own destination="domain" label for good; every later domain is
 * counted as destination="other". Labels never move, so every counter
 * only grows. */
#ifndef SHOAL_NODE_METRICS_H
#define SHOAL_NODE_METRICS_H

#include <stdint.h>

#include "lib/config.h"
#include "node/delivery/dns.h"
#include "node/delivery/job.h"

#define METRICS_DEST_LABELS 20

struct event_base;
struct store;
struct commit;
struct owner;
struct repl;
struct ingest;
struct scheduler;
struct deliver;
struct metrics;

/* What a scrape reads; every pointer borrowed, outliving the metrics. */
struct webhooks;
struct tlsrpt;
struct sts;

struct metrics_deps {
	struct event_base *base;
	const struct cfg_node *me;       /* its id and metrics address */
	struct store *store;
	const struct commit *commit;
	const struct owner *owner;       /* the map in force */
	struct repl *repl;
	const struct ingest *ingest;
	const struct scheduler *sched;
	const struct deliver *deliver;
	struct webhooks *wh;             /* may be NULL: none configured */
	const struct sts *sts;           /* MTA-STS lookups; may be NULL */
	const struct tlsrpt *tlsrpt;     /* TLS-RPT session counts
					  * (node/policy/tlsrpt.h); may be
					  * NULL: all 0 */
};

/* The counters, and the listener when the node has a metrics address
 * (an address that cannot be used is logged; the node runs on without
 * the endpoint but still counts). deps is copied. Never NULL. */
struct metrics *metrics_new(const struct metrics_deps *deps);

/* metrics_free(NULL) does nothing. */
void metrics_free(struct metrics *m);

/* Every metrics_* call below does nothing when m is NULL. */

/* One delivery job (a message's recipients at one domain) came back with
 * its results as the scheduler saves them: each recipient's outcome
 * counted for the job's domain (lower case, any bytes: escaped on
 * output), and the time since the scheduler handed it over
 * (j->started_us, clock_mono_us()). */
void metrics_job(struct metrics *m, const struct job *j);

/* One DNS answer delivery acted on. */
void metrics_dns(struct metrics *m, enum dns_status st);

#endif
