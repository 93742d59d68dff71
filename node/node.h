/* One shoal-node process: its config, store, shard map and the ZeroMQ
 * socket on which routers, shoalctl and its peer reach it. The
 * struct is shared by the node's modules; nothing outside node/ sees it. */
#ifndef SHOAL_NODE_NODE_H
#define SHOAL_NODE_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "lib/config.h"
#include "proto/queue.pb-c.h"

struct event_base;
struct store;
struct commit;
struct zsock;
struct rpc;
struct ingest;
struct actions;
struct scheduler;
struct deliver;
struct dlog;
struct owner;
struct repl;
struct metrics;
struct move;
struct suppress;
struct adapt_ops;
struct webhooks;
struct http_client;
struct sts;
struct sts_ops;
struct tlsrpt;

struct node {
	const struct config *cfg;
	const struct cfg_node *me;
	struct event_base *base;
	void *zctx;
	struct store *store;
	struct commit *commit;
	struct rpc *rpc;           /* the front socket (node/rpc/rpc.h) */
	struct ingest *ingest;
	struct actions *actions;   /* shoalctl's queue actions */
	struct scheduler *sched;
	struct deliver *deliver;
	struct dlog *dlog;         /* delivery log, may be NULL */
	struct owner *owner;       /* shard ownership, failover, fencing */
	struct repl *repl;         /* the peer link */
	struct metrics *metrics;   /* GET /metrics, may be NULL */
	struct move *move;         /* shard moves, both directions */
	struct suppress *supp;     /* the suppression list */
	struct adapt_ops *adapt_ops; /* shaping actions across the cluster */
	struct webhooks *wh;       /* delivery webhooks, NULL = none */
	struct http_client *http;  /* MTA-STS fetches, TLS-RPT posts */
	struct sts *sts;           /* MTA-STS policies (node/policy/sts.h) */
	struct sts_ops *sts_ops;   /* ... told to and by the other nodes */
	struct tlsrpt *tlsrpt;     /* TLS reports (node/policy/tlsrpt.h) */
	Shoal__ShardMap *map;      /* owner_map(owner), borrowed: kept
				    * current by node.c's map_changed hook
				    * for the modules that still read it */
	uint64_t started_at;       /* unix seconds */
	uint64_t incarnation;	   /* random, new at each start, never 0:
				    * routers resend what this process's
				    * predecessor left unanswered */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *stop_timer;  /* shutdown: waits for enqueues in flight */
	struct event *release_timer; /* store_release_pages(), periodic */
	uint64_t released_ms;      /* monotonic time of the last release */
	uint64_t stop_deadline_ms; /* monotonic */
	bool is_stopping;          /* SIGTERM: new enqueues are turned away */
};

/* Open the store, load the shard map (on the first start: derive it from
 * the config, or with join take the running cluster's, node/cluster/join.h), bind
 * the endpoint. Returns 0 and sets *out, or an error (logged). */
int node_new(const struct config *cfg, const struct cfg_node *me,
	     struct event_base *base, bool join, struct node **out);

/* Commit what is pending, answer every enqueue still waiting (for the
 * commit or the peer), then release everything in dependency order.
 * node_free(NULL) does nothing. */
void node_free(struct node *n);

#endif
