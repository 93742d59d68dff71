/* The node's Prometheus endpoint: GET /metrics on nodes[].metrics
 * ("host:port") in the text exposition format. What a scrape costs is
 * O(1) in the queue's size: counters and LMDB's own entry counts. */
#ifndef SHOAL_NODE_METRICS_H
#define SHOAL_NODE_METRICS_H

struct node;
struct metrics;

/* Listen when the node has a metrics address. Returns NULL when it has
 * none, or when the address cannot be used (logged: the node runs on
 * without metrics). */
struct metrics *metrics_new(struct node *n);

/* metrics_free(NULL) does nothing. */
void metrics_free(struct metrics *m);

#endif
