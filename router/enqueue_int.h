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
#define ENQ_SF_BIT (1ull << 62) /* and of suppression filter fetches */
/* a node id (at most 64) and one more: an author cut to fit never equals
 * a map's */
#define ENQ_AUTHOR_MAX 66
#define ENQ_FILTER_ASK_MS 500	/* a fetch unanswered this long: again */
#define ENQ_FILTER_LOG2_MAX 24	/* a bigger filter from a node: refused */

/* A node's filter of its suppression entries (lib/suppress_key.h), as
 * its replies describe it and as far as we hold it. */
struct enq_filter {
	uint8_t *bits;		/* NULL: none held */
	uint32_t log2;
	uint64_t id, gen;	/* what we hold */
	uint64_t heard_id;	/* what the node's last reply said */
	uint64_t heard_gen;
	uint64_t heard_ms;	/* monotonic: when we sent the request that
				 * reply answered (the node said the gen
				 * after it); 0 unknown */
	uint64_t asked_ms;	/* a fetch is out since (0: none) */
	uint64_t ask_id;	/* and its request id */
};

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
	char author[ENQ_AUTHOR_MAX]; /* and its author */
	uint64_t incarnation;  /* the node process answering; 0 unknown */
	uint64_t node_sent_ms; /* its clock in that reply: echoed back */
	uint64_t results[ROUTER_ENQ_N]; /* finished requests, metrics */
	struct enq_filter sf;
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
	uint64_t first_sent_ms; /* monotonic: first sent (a reply to this id
				 * was stamped after it, whichever send it
				 * answers) */
	struct event timer;
	char *check_addr; /* a suppression check, not an enqueue */
	bool is_ruled_out; /* the node's filter answered it: not listed */
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
	uint64_t hb_sent_ms;	/* when heartbeat hb_seq went out */
	uint64_t unsent_results[ROUTER_ENQ_N]; /* never reached a node */
	/* failed suppression checks: the last warning, and those not logged
	 * since (enq_check_failed_flush() logs them within a heartbeat of
	 * the second after it) */
	uint64_t check_warned_ms;
	uint64_t check_folded;
	uint64_t sf_seq;	/* filter fetch ids */
	uint64_t checks_asked, checks_filtered; /* metrics */
	uint64_t checks_failed_open;		/* metrics */
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

/* In router/enqueue_link.c: whether c's filter says the normalised
 * address addr is not on the list (and may be believed now). */
bool enq_filter_rules_out(const struct enqueue *e, const struct enq_conn *c,
			  const char *addr);

/* Node id restarted (its new incarnation inc): what its old process took
 * is sent again. Returns how many requests were. */
size_t enq_reqs_on_restart(struct enqueue *e, const char *id, uint64_t inc);

/* Log the failed suppression checks folded since the last warning, once
 * a second has passed since it (the heartbeat calls it). */
void enq_check_failed_flush(struct enqueue *e, uint64_t now);

#endif
