/* The node's Prometheus endpoint: GET /metrics on nodes[].metrics
 * ("host:port") in the text exposition format, and the counters behind it
 * that delivery and the scheduler bump as they go (plain integers: the
 * node runs one event loop). docs/metrics.md lists every metric.
 *
 * Destination labels are bounded: the first METRICS_DEST_LABELS distinct
 * recipient domains that delivery reports on since the node started keep
 * their own destination="domain" label for good; every later domain is
 * counted as destination="other". Labels never move, so every counter
 * only grows. */
#ifndef SHOAL_NODE_METRICS_H
#define SHOAL_NODE_METRICS_H

#include <stdint.h>

#include "node/delivery/dns.h"
#include "node/delivery/outcome.h"

#define METRICS_DEST_LABELS 20

struct node;
struct metrics;

/* The counters, and the listener when the node has a metrics address
 * (an address that cannot be used is logged; the node runs on without
 * the endpoint but still counts). Never NULL. */
struct metrics *metrics_new(struct node *n);

/* metrics_free(NULL) does nothing. */
void metrics_free(struct metrics *m);

/* Every metrics_* call below does nothing when m is NULL. */

/* One recipient's attempt ended with oc; domain is the recipient's (lower
 * case, any bytes: escaped on output). */
void metrics_delivery(struct metrics *m, const char *domain, enum outcome oc);

/* One delivery job (a message's recipients at one domain) came back;
 * started_us is clock_mono_us() when the scheduler handed it over. */
void metrics_attempt(struct metrics *m, uint64_t started_us);

/* One DNS answer delivery acted on. */
void metrics_dns(struct metrics *m, enum dns_status st);

#endif
