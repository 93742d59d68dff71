/* The router-to-node client's insides, shared by router/enqueue.c (the
 * requests: enqueues and suppression checks, their deadlines, answers
 * and resends) and router/enqueue_link.c (the link to the nodes: one
 * DEALER socket per node, the shard map, heartbeats, node restarts).
 * Internal to the two; everyone else uses router/enqueue.h. */
#ifndef SHOAL_ROUTER_ENQUEUE_INT_H
#define SHOAL_ROUTER_ENQUEUE_INT_H

#include <event2/event_struct.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/idmap.h"
#include "lib/qid.h"
#include "lib/zsock.h"
#include "proto/router_node.pb-c.h"
#include "router/enqueue.h"
#include "router/metrics.h"

#define ENQ_REDIRECTS_MAX 3	/* wrong-epoch / not-owner resends */
#define ENQ_RESTARTS_MAX 3	/* resends after a node restarted */
#define ENQ_MAP_RETRY_MS 100	/* map fetch retry while we have none */
#define ENQ_HB_BIT (1ull << 63) /* request ids of heartbeats */

/* A body shared between us and libzmq's I/O thread. */
struct enq_body {
	atomic_int refs;
	char *data;
	size_t len;
};

struct enq_conn {
	char *id;
	char *endpoint;
	struct zsock *zs;
	struct enqueue *e;
	uint64_t heard_ms;     /* monotonic, last reply; 0 = never */
	uint64_t epoch;	       /* the node's epoch in that reply */
	char author[64];       /* and its author */
	uint64_t incarnation;  /* the node process answering; 0 unknown */
	uint64_t node_sent_ms; /* its clock in that reply: echoed back */
	uint64_t results[ROUTER_ENQ_N]; /* finished requests, metrics */
};

struct enq_req {
	struct enqueue *e;
	uint64_t id;
	char qid[QID_LEN + 1];
	uint32_t shard;
	void *env; /* packed Envelope */
	size_t env_len;
	struct enq_body *body;
	enqueue_done_fn done;
	void *arg;
	int redirects;
	int result;	      /* set before a deferred completion */
	bool unsent;	      /* waiting for a map or a connected owner */
	const char *sent_to;  /* node id (owned by its conn), or NULL */
	uint64_t sent_inc;    /* its incarnation then (0 unknown) */
	int restarts;	      /* resends because it restarted */
	uint64_t deadline_ms; /* monotonic: node_timeout_ms after submit */
	struct event timer;
	char *check_addr; /* a suppression check, not an enqueue */
	enqueue_check_fn check_done;
	struct enqueue_check_result cres;
};

struct enqueue {
	struct event_base *base;
	const struct config *cfg;
	void *zctx;
	struct enq_conn *conns;
	size_t n_conns;
	Shoal__ShardMap *map;
	struct idmap *pending;
	uint64_t next_id;
	char router_id[96];
	enqueue_ready_fn ready;
	void *ready_arg;
	struct event *map_timer;
	uint64_t map_request_id;
	struct event *hb_timer;
	uint64_t hb_seq;
	uint64_t unsent_results[ROUTER_ENQ_N]; /* never reached a node */
	/* failed suppression checks: the last warning, and those not logged
	 * since */
	uint64_t check_warned_ms;
	uint64_t check_folded;
};

/* In router/enqueue.c, called by the link when the nodes speak (the
 * other way round is router/enqueue_link.h). */

/* A node's reply to a request of ours (not a map fetch or a heartbeat);
 * has_map: it carried a valid map, adopted already. */
void enq_req_on_reply(struct enqueue *e, const Shoal__NodeReply *rep,
		      bool has_map);

/* A new map was adopted: requests sent to a node that no longer owns
 * their shard go to the new owner now. */
void enq_reqs_on_map(struct enqueue *e);

/* Node id restarted (its new incarnation inc): what its old process took
 * is sent again. Returns how many requests were. */
size_t enq_reqs_on_restart(struct enqueue *e, const char *id, uint64_t inc);

#endif
