/* Router-to-node client. One DEALER socket per node (ZMQ_IMMEDIATE, so a
 * message is never queued inside libzmq for a node that is not connected:
 * we hold it and try again until node_timeout_ms, then the session gets
 * a 4xx, instead of a late, duplicate delivery). Bodies are
 * sent zero-copy: libzmq holds a reference until its I/O thread is done.
 * Handles untrusted input: replies are validated before use.
 *
 * A request that reached a node is sent again, before its deadline, when
 * the answer can no longer come from where it went: the map names another
 * owner (a failover), or the node's replies carry a new incarnation (it
 * restarted: what the old process took, and maybe stored, it never
 * answered). Enqueues are idempotent by qid on the node, so the answer to
 * the resend is the message's real state. A slow node is never resent to:
 * its incarnation stays the same. */
#include "router/enqueue.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/idmap.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/suppress_key.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "proto/router_node.pb-c.h"
#include "router/metrics.h"

#define ENQ_REDIRECTS_MAX 3       /* wrong-epoch / not-owner resends */
#define ENQ_RESTARTS_MAX 3	  /* resends after a node restarted */
#define ENQ_MAP_RETRY_MS 100      /* map fetch retry while we have none */
#define ENQ_HB_BIT (1ull << 63)   /* request ids of heartbeats */

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
	uint64_t heard_ms;        /* monotonic, last reply; 0 = never */
	uint64_t epoch;           /* the node's epoch in that reply */
	char author[64];          /* and its author */
	uint64_t incarnation;	  /* the node process answering; 0 unknown */
	uint64_t node_sent_ms;	  /* its clock in that reply: echoed back */
	uint64_t results[ROUTER_ENQ_N]; /* finished requests, metrics */
};

struct enq_req {
	struct enqueue *e;
	uint64_t id;
	char qid[QID_LEN + 1];
	uint32_t shard;
	void *env;                /* packed Envelope */
	size_t env_len;
	struct enq_body *body;
	enqueue_done_fn done;
	void *arg;
	int redirects;
	int result;               /* set before a deferred completion */
	bool unsent;              /* waiting for a map or a connected owner */
	const char *sent_to;      /* node id (owned by its conn), or NULL */
	uint64_t sent_inc;	  /* its incarnation then (0 unknown) */
	int restarts;		  /* resends because it restarted */
	uint64_t deadline_ms;     /* monotonic: node_timeout_ms after submit */
	struct event timer;
	char *check_addr;         /* a suppression check, not an enqueue */
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
	uint64_t check_warned_ms;  /* last failed-check warning */
	uint64_t check_folded;     /* failed checks since, not logged */
};

static void
enq_body_unref(struct enq_body *b)
{
	if (atomic_fetch_sub(&b->refs, 1) == 1) {
		free(b->data);
		free(b);
	}
}

/* libzmq's free callback, run on its I/O thread. */
static void
enq_body_zmq_free(void *data, void *hint)
{
	(void)data;
	enq_body_unref(hint);
}

static void
enq_req_free(struct enq_req *r)
{
	event_del(&r->timer);
	free(r->check_addr);
	free(r->env);
	if (r->body)
		enq_body_unref(r->body);
	free(r);
}

static struct enq_conn *enq_conn_find(struct enqueue *e, const char *id);

/* Metrics: one finished request, under the node it was last sent to. */
static void
enq_count(struct enq_req *r, int result)
{
	struct enq_conn *c = r->sent_to ? enq_conn_find(r->e, r->sent_to) :
					  NULL;
	uint64_t *v = c ? c->results : r->e->unsent_results;

	v[router_enqueue_result_of(result)]++;
}

/* A suppression check that got no answer: the recipient is accepted
 * (fail open). One warning a second at most, with the count folded. */
static void
enq_check_failed(struct enq_req *r, int result)
{
	struct enqueue *e = r->e;
	uint64_t now = clock_mono_ms();

	if (e->check_warned_ms != 0 && now - e->check_warned_ms < 1000) {
		e->check_folded++;
		return;
	}
	log_warn("rcpt=<%s> event=suppress_check_failed action=accept "
		 "shard=%u node=%s error=\"%s\" folded=%llu",
		 r->check_addr, r->shard, r->sent_to ? r->sent_to : "-",
		 shoal_strerror(result), (unsigned long long)e->check_folded);
	e->check_warned_ms = now;
	e->check_folded = 0;
}

/* Finish a request: out of the table, callback, gone. */
static void
enq_req_finish(struct enq_req *r, int result)
{
	idmap_del(r->e->pending, r->id);
	if (r->check_addr) {
		if (result != 0)
			enq_check_failed(r, result);
		r->check_done(result, &r->cres, r->arg);
	} else {
		enq_count(r, result);
		r->done(result, r->arg);
	}
	enq_req_free(r);
}

static uint64_t
enq_now_ms(void)
{
	return clock_mono_ms();
}

static int enq_send(struct enqueue *e, struct enq_req *r);

/* Pack a request into a new buffer (caller frees). */
static unsigned char *
enq_pack(const Shoal__RouterRequest *req, size_t *len)
{
	unsigned char *p;

	*len = shoal__router_request__get_packed_size(req);
	p = xmalloc(*len ? *len : 1);
	shoal__router_request__pack(req, p);
	return p;
}

/* Send now, or, while there is no map or the owner is not connected
 * (a router just started, a node reconnecting), try again every
 * ENQ_MAP_RETRY_MS until the request's deadline. */
static void
enq_try_send(struct enq_req *r)
{
	uint64_t now = enq_now_ms();
	int rc = r->e->map ? enq_send(r->e, r) : -EAGAIN;
	struct timeval tv;

	if (rc == 0) {
		uint64_t left = r->deadline_ms > now ? r->deadline_ms - now : 1;

		r->unsent = false;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
		event_add(&r->timer, &tv);
		return;
	}
	if (rc != -EAGAIN && rc != -EHOSTUNREACH) {
		r->result = -EIO;
	} else if (now + ENQ_MAP_RETRY_MS < r->deadline_ms) {
		r->unsent = true;
		tv.tv_sec = 0;
		tv.tv_usec = ENQ_MAP_RETRY_MS * 1000;
		event_add(&r->timer, &tv);
		return;
	} else {
		r->result = -EAGAIN;
	}
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	event_add(&r->timer, &tv);
}

static void
enq_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct enq_req *r = arg;

	(void)fd;
	(void)what;
	if (r->result == 0 && r->unsent) {
		enq_try_send(r);
		return;
	}
	if (r->result == 0 && r->check_addr) {
		r->result = -ETIMEDOUT;	/* logged by enq_check_failed() */
	} else if (r->result == 0) {
		log_warn("qid=%s event=node_timeout shard=%u timeout_ms=%u",
			 r->qid, r->shard, r->e->cfg->router.node_timeout_ms);
		r->result = -ETIMEDOUT;
	}
	enq_req_finish(r, r->result);
}

/* Complete from the loop, not from inside the caller's stack. */
static void
enq_req_fail_soon(struct enq_req *r, int result)
{
	struct timeval now = { 0, 0 };

	r->result = result;
	event_del(&r->timer);
	event_add(&r->timer, &now);
}

static struct enq_conn *
enq_conn_find(struct enqueue *e, const char *id)
{
	for (size_t i = 0; i < e->n_conns; i++)
		if (strcmp(e->conns[i].id, id) == 0)
			return &e->conns[i];
	return NULL;
}

static void enq_on_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes,
		       void *arg);

static struct enq_conn *
enq_conn_add(struct enqueue *e, const char *id, const char *endpoint)
{
	int64_t max = WIRE_META_MAX;
	int one = 1;
	struct enq_conn *c;

	e->conns = xrealloc(e->conns, (e->n_conns + 1) * sizeof(*e->conns));
	c = &e->conns[e->n_conns];
	memset(c, 0, sizeof(*c)); /* heard_ms, epoch, results start at 0 */
	c->id = xstrdup(id);
	c->endpoint = xstrdup(endpoint);
	c->e = e;
	c->zs = zsock_new(e->base, e->zctx, ZMQ_DEALER, max, enq_on_msg, NULL,
			  e);
	if (c->zs == NULL) {
		free(c->id);
		free(c->endpoint);
		return NULL;
	}
	zmq_setsockopt(zsock_raw(c->zs), ZMQ_IMMEDIATE, &one, sizeof(one));
	{
		/* a node behind a cut link is noticed by ZMTP pings */
		int ivl = (int)e->cfg->replication.heartbeat_ms;
		int tmo = (int)e->cfg->replication.failover_after_ms;

		zmq_setsockopt(zsock_raw(c->zs), ZMQ_HEARTBEAT_IVL, &ivl,
			       sizeof(ivl));
		zmq_setsockopt(zsock_raw(c->zs), ZMQ_HEARTBEAT_TIMEOUT, &tmo,
			       sizeof(tmo));
	}
	if (zsock_connect(c->zs, endpoint) != 0) {
		zsock_free(c->zs);
		free(c->id);
		free(c->endpoint);
		return NULL;
	}
	e->n_conns++;
	/* conns moved: the zsock callbacks carry e, not c, so that is fine */
	return c;
}

/* The connection for a node of the current map, made on first use. */
static struct enq_conn *
enq_conn_for(struct enqueue *e, const char *id)
{
	struct enq_conn *c = enq_conn_find(e, id);
	const Shoal__NodeInfo *ni;

	if (c)
		return c;
	ni = e->map ? shardmap_node(e->map, id) : NULL;
	if (ni == NULL)
		return NULL;
	return enq_conn_add(e, ni->id, ni->endpoint);
}

/* A request without a body frame, to one node. Returns zsock_send's. */
static int
enq_send_small(struct enq_conn *c, const Shoal__RouterRequest *req)
{
	size_t len;
	unsigned char *packed = enq_pack(req, &len);
	const void *bufs[2] = { WIRE_TAG_ROUTER, packed };
	size_t lens[2] = { WIRE_TAG_LEN, len };
	int rc = zsock_send(c->zs, bufs, lens, 2, NULL);

	free(packed);
	return rc;
}

static int
enq_send_check(struct enqueue *e, struct enq_req *r, struct enq_conn *c)
{
	Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
	Shoal__SuppressCheck ck = SHOAL__SUPPRESS_CHECK__INIT;
	int rc;

	ck.address = r->check_addr;
	req.request_id = r->id;
	req.epoch = e->map->epoch;
	req.router_id = e->router_id;
	req.body_case = SHOAL__ROUTER_REQUEST__BODY_CHECK;
	req.check = &ck;
	rc = enq_send_small(c, &req);
	if (rc == 0) {
		r->sent_to = c->id;
		r->sent_inc = c->incarnation;
	}
	return rc;
}

static int
enq_send(struct enqueue *e, struct enq_req *r)
{
	Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
	Shoal__EnqueueRequest eq = SHOAL__ENQUEUE_REQUEST__INIT;
	Shoal__Envelope *env;
	struct enq_conn *c;
	const char *owner;
	unsigned char *packed;
	size_t len;
	zmq_msg_t body;
	int rc;

	owner = shardmap_primary(e->map, r->shard);
	c = owner ? enq_conn_for(e, owner) : NULL;
	if (c == NULL)
		return -EAGAIN;
	if (r->check_addr)
		return enq_send_check(e, r, c);
	env = shoal__envelope__unpack(NULL, r->env_len, r->env);
	if (env == NULL)
		return -EIO;
	eq.qid = r->qid;
	eq.shard = r->shard;
	eq.envelope = env;
	req.request_id = r->id;
	req.epoch = e->map->epoch;
	req.router_id = e->router_id;
	req.body_case = SHOAL__ROUTER_REQUEST__BODY_ENQUEUE;
	req.enqueue = &eq;
	packed = enq_pack(&req, &len);
	shoal__envelope__free_unpacked(env, NULL);

	atomic_fetch_add(&r->body->refs, 1);
	zmq_msg_init_data(&body, r->body->data, r->body->len,
			  enq_body_zmq_free, r->body);
	{
		const void *bufs[3] = { WIRE_TAG_ROUTER, packed, NULL };
		size_t lens[3] = { WIRE_TAG_LEN, len, 0 };

		rc = zsock_send(c->zs, bufs, lens, 3, &body);
	}
	free(packed);
	if (rc == 0) {
		r->sent_to = c->id;
		r->sent_inc = c->incarnation;
	}
	/* not connected yet: enq_try_send() tries again until the deadline */
	if (rc == -EAGAIN)
		log_debug(LOG_SUB_ZMQ, "qid=%s event=node_not_connected node=%s",
			  r->qid, c->id);
	else if (rc != 0)
		log_warn("qid=%s event=node_unreachable node=%s error=\"%s\"",
			 r->qid, c->id, shoal_strerror(rc));
	return rc;
}

uint64_t
enqueue_submit(struct enqueue *e, const char *qid, const Shoal__Envelope *env,
	       char *body, size_t body_len, enqueue_done_fn done, void *arg)
{
	struct enq_req *r = xcalloc(1, sizeof(*r));

	r->e = e;
	r->id = ++e->next_id;
	snprintf(r->qid, sizeof(r->qid), "%s", qid);
	r->shard = shard_of(qid, e->cfg->cluster.shards);
	r->env_len = shoal__envelope__get_packed_size(env);
	r->env = xmalloc(r->env_len ? r->env_len : 1);
	shoal__envelope__pack(env, r->env);
	r->body = xmalloc(sizeof(*r->body));
	atomic_init(&r->body->refs, 1);
	r->body->data = body;
	r->body->len = body_len;
	r->done = done;
	r->arg = arg;
	event_assign(&r->timer, e->base, -1, 0, enq_on_timer, r);
	r->deadline_ms = enq_now_ms() + e->cfg->router.node_timeout_ms;
	idmap_put(e->pending, r->id, r);
	enq_try_send(r);
	return r->id;
}

uint64_t
enqueue_check(struct enqueue *e, const char *addr, uint32_t timeout_ms,
	      enqueue_check_fn done, void *arg)
{
	struct enq_req *r = xcalloc(1, sizeof(*r));

	r->e = e;
	r->id = ++e->next_id;
	r->check_addr = xstrdup(addr);
	r->shard = suppress_shard(addr, e->cfg->cluster.shards);
	r->check_done = done;
	r->arg = arg;
	event_assign(&r->timer, e->base, -1, 0, enq_on_timer, r);
	r->deadline_ms = enq_now_ms() + timeout_ms;
	idmap_put(e->pending, r->id, r);
	enq_try_send(r);
	return r->id;
}

void
enqueue_cancel(struct enqueue *e, uint64_t request_id)
{
	struct enq_req *r = idmap_del(e->pending, request_id);

	if (r)
		enq_req_free(r);
}

size_t
enqueue_pending(const struct enqueue *e)
{
	return idmap_count(e->pending);
}

uint32_t
enqueue_shards(const struct enqueue *e)
{
	return e->cfg->cluster.shards;
}

/* After a new map: a request sent to a node that no longer owns its shard
 * (a failover) goes to the new owner now rather than wait out its timeout.
 * The node that had it may have stored it too: nodes take a qid they hold
 * already as done, and delivery is at-least-once. */
static void
enq_resend_moved(uint64_t id, void *value, void *arg)
{
	struct enq_req *r = value;
	struct enqueue *e = arg;
	const char *owner = shardmap_primary(e->map, r->shard);

	(void)id;
	if (r->result != 0 || r->unsent || r->sent_to == NULL ||
	    owner == NULL || strcmp(owner, r->sent_to) == 0)
		return;
	if (r->check_addr)
		log_debug(LOG_SUB_ZMQ, "rcpt=<%s> event=check_resend_after_map "
			  "from=%s to=%s", r->check_addr, r->sent_to, owner);
	else
		log_info("qid=%s event=resend_after_map from=%s to=%s", r->qid,
			 r->sent_to, owner);
	if (enq_send(e, r) != 0) {
		/* the new owner is not connected yet: retry until the end */
		r->unsent = true;
		event_del(&r->timer);
		enq_try_send(r);
	}
}

/* A node that restarted: its id (owned by its conn, which a resend may
 * move: e->conns can grow) and its new incarnation. */
struct enq_restart {
	struct enqueue *e;
	const char *id;
	uint64_t inc;
	size_t resent;
};

/* A request the node's old process took will get no answer: send it
 * again, to the shard's owner now. */
static void
enq_resend_restarted(uint64_t id, void *value, void *arg)
{
	struct enq_req *r = value;
	struct enq_restart *rs = arg;

	(void)id;
	if (r->result != 0 || r->unsent || r->sent_to == NULL ||
	    strcmp(r->sent_to, rs->id) != 0 || r->sent_inc == 0 ||
	    r->sent_inc == rs->inc || r->restarts >= ENQ_RESTARTS_MAX)
		return;
	r->restarts++;
	rs->resent++;
	if (r->check_addr)
		log_debug(LOG_SUB_ZMQ,
			  "rcpt=<%s> event=check_resend_after_restart "
			  "node=%s",
			  r->check_addr, rs->id);
	else
		log_info("qid=%s event=resend_after_restart node=%s", r->qid,
			 rs->id);
	if (enq_send(rs->e, r) != 0) {
		r->unsent = true;
		event_del(&r->timer);
		enq_try_send(r);
	}
}

/* A reply from conns[i] told its incarnation: note it, and when it is a
 * new one, resend what the old one left unanswered. */
static void
enq_note_incarnation(struct enqueue *e, size_t i, uint64_t inc)
{
	struct enq_restart rs = { e, e->conns[i].id, inc, 0 };
	uint64_t old = e->conns[i].incarnation;

	if (inc == 0 || inc == old)
		return;
	e->conns[i].incarnation = inc;
	if (old == 0)
		return;
	idmap_foreach(e->pending, enq_resend_restarted, &rs);
	log_info("node=%s event=node_restarted resent=%zu", rs.id, rs.resent);
}

/* Adopt a map from a node if it is newer than ours. */
static void
enq_adopt_map(struct enqueue *e, const Shoal__ShardMap *m)
{
	Shoal__ShardMap *copy;
	bool first = e->map == NULL;

	if (!shardmap_newer(m, e->map))
		return;
	copy = shardmap_dup(m);
	if (copy == NULL)
		return;
	shardmap_free(e->map);
	e->map = copy;
	log_info("router event=shard_map epoch=%llu author=%s",
		 (unsigned long long)m->epoch,
		 m->author[0] ? m->author : "config");
	if (first) {
		event_del(e->map_timer);
		if (e->ready)
			e->ready(e->ready_arg);
	} else {
		idmap_foreach(e->pending, enq_resend_moved, e);
	}
	/* nodes that joined: heartbeats reach them from now on */
	for (size_t i = 0; i < e->map->n_nodes; i++)
		enq_conn_for(e, e->map->nodes[i]->id);
}

/* A suppression check answered: listed or not, or (moved shard) once
 * more to the owner the new map names; anything else fails open. */
static void
enq_on_check_reply(struct enqueue *e, struct enq_req *r,
		   const Shoal__NodeReply *rep, bool has_map)
{
	if (rep->status == SHOAL__STATUS__STATUS_OK) {
		r->cres.suppressed = rep->suppressed;
		snprintf(r->cres.reply, sizeof(r->cres.reply), "%s",
			 rep->suppressed_reply);
		snprintf(r->cres.enhanced, sizeof(r->cres.enhanced), "%s",
			 rep->suppressed_enhanced);
		enq_req_finish(r, 0);
	} else if (has_map &&
		   (rep->status == SHOAL__STATUS__STATUS_NOT_OWNER ||
		    rep->status == SHOAL__STATUS__STATUS_WRONG_EPOCH) &&
		   r->redirects++ < ENQ_REDIRECTS_MAX &&
		   enq_send(e, r) == 0) {
		return;
	} else {
		enq_req_finish(r, -EAGAIN);
	}
}

static void
enq_on_reply(struct enqueue *e, const Shoal__NodeReply *rep)
{
	struct enq_req *r;
	Shoal__ShardMap *m = NULL;

	if (rep->map) {
		/* the map arrived nested; re-check it as if packed alone */
		size_t len = shoal__shard_map__get_packed_size(rep->map);
		void *p = xmalloc(len ? len : 1);

		shoal__shard_map__pack(rep->map, p);
		m = shardmap_unpack(p, len, e->cfg->cluster.shards);
		free(p);
		if (m == NULL)
			log_warn("node=%.64s event=bad_reply reason=\"bad map\"",
				 rep->node_id);
		else
			enq_adopt_map(e, m);
	}
	if (rep->request_id == e->map_request_id ||
	    (rep->request_id & ENQ_HB_BIT)) {
		shardmap_free(m);
		return;
	}
	r = idmap_get(e->pending, rep->request_id);
	if (r == NULL) {
		log_debug(LOG_SUB_ZMQ, "zmq event=late_reply request_id=%llu",
			  (unsigned long long)rep->request_id);
		shardmap_free(m);
		return;
	}
	if (r->check_addr) {
		enq_on_check_reply(e, r, rep, m != NULL);
		shardmap_free(m);
		return;
	}
	switch (rep->status) {
	case SHOAL__STATUS__STATUS_OK:
		enq_req_finish(r, 0);
		break;
	case SHOAL__STATUS__STATUS_MOVING:
	case SHOAL__STATUS__STATUS_WRONG_EPOCH:
	case SHOAL__STATUS__STATUS_NOT_OWNER:
		if (rep->status == SHOAL__STATUS__STATUS_MOVING ||
		    (e->map && rep->epoch < e->map->epoch)) {
			/* the shard is being moved, or the node is behind
			 * (our next heartbeat brings it our map): try again
			 * shortly, until the deadline */
			struct timeval tv = { 0, ENQ_MAP_RETRY_MS * 1000 };

			r->unsent = true;
			event_del(&r->timer);
			event_add(&r->timer, &tv);
		} else if (m && r->redirects++ < ENQ_REDIRECTS_MAX) {
			int rc = enq_send(e, r);

			if (rc != 0)
				enq_req_fail_soon(r, -EAGAIN);
		} else {
			enq_req_finish(r, SHOAL_E_WRONG_EPOCH);
		}
		break;
	case SHOAL__STATUS__STATUS_STORAGE_FULL:
		enq_req_finish(r, SHOAL_E_STORAGE_FULL);
		break;
	case SHOAL__STATUS__STATUS_NOT_DURABLE:
		enq_req_finish(r, SHOAL_E_NOT_DURABLE);
		break;
	default: {
		char qn[LOG_QUOTE_BUF], qt[LOG_QUOTE_BUF];

		log_warn("qid=%s event=node_error node=%s text=%s", r->qid,
			 log_quote(qn, sizeof(qn), rep->node_id,
				   strlen(rep->node_id)),
			 log_quote(qt, sizeof(qt), rep->message,
				   strlen(rep->message)));
		enq_req_finish(r, -EIO);
		break;
	}
	}
	shardmap_free(m);
}

static void
enq_on_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes, void *arg)
{
	struct enqueue *e = arg;
	Shoal__NodeReply *rep;

	if (nframes != 1) {
		log_warn("zmq event=bad_reply reason=\"%zu frames\"", nframes);
		return;
	}
	rep = shoal__node_reply__unpack(NULL, zmq_msg_size(&frames[0]),
					zmq_msg_data(&frames[0]));
	if (rep == NULL) {
		log_warn("zmq event=bad_reply reason=\"undecodable\"");
		return;
	}
	for (size_t i = 0; i < e->n_conns; i++) {
		if (e->conns[i].zs == zs) {
			e->conns[i].heard_ms = enq_now_ms();
			e->conns[i].epoch = rep->epoch;
			e->conns[i].node_sent_ms = rep->sent_ms;
			snprintf(e->conns[i].author,
				 sizeof(e->conns[i].author), "%s",
				 rep->author);
			enq_note_incarnation(e, i, rep->incarnation);
			break;
		}
	}
	enq_on_reply(e, rep);
	shoal__node_reply__free_unpacked(rep, NULL);
}

/* Ask every configured node for the map until one answers. */
static void
enq_fetch_map(evutil_socket_t fd, short what, void *arg)
{
	struct enqueue *e = arg;
	Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
	Shoal__MapRequest mr = SHOAL__MAP_REQUEST__INIT;
	struct timeval tv = { 0, ENQ_MAP_RETRY_MS * 1000 };
	unsigned char buf[256];
	size_t len;

	(void)fd;
	(void)what;
	if (e->map)
		return;
	e->map_request_id = ++e->next_id;
	req.request_id = e->map_request_id;
	req.router_id = e->router_id;
	req.body_case = SHOAL__ROUTER_REQUEST__BODY_MAP;
	req.map = &mr;
	len = shoal__router_request__pack(&req, buf);
	for (size_t i = 0; i < e->n_conns; i++) {
		const void *bufs[2] = { WIRE_TAG_ROUTER, buf };
		size_t lens[2] = { WIRE_TAG_LEN, len };

		zsock_send(e->conns[i].zs, bufs, lens, 2, NULL);
	}
	event_add(e->map_timer, &tv);
}

/* Every heartbeat_ms, to every node: which nodes we hear (the failover
 * vote, see node/owner.c), and our map to a node whose epoch is older. The
 * replies keep our map current. */
static void
enq_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct enqueue *e = arg;
	uint64_t now = enq_now_ms();
	uint64_t window = e->cfg->replication.failover_after_ms;
	const char **seen = xcalloc(e->n_conns ? e->n_conns : 1, sizeof(*seen));
	size_t n_seen = 0;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < e->n_conns; i++)
		if (e->conns[i].heard_ms && now - e->conns[i].heard_ms <= window)
			seen[n_seen++] = e->conns[i].id;
	e->hb_seq++;
	for (size_t i = 0; i < e->n_conns; i++) {
		struct enq_conn *c = &e->conns[i];
		Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
		Shoal__RouterHeartbeat hb = SHOAL__ROUTER_HEARTBEAT__INIT;

		hb.n_seen = n_seen;
		hb.seen = (char **)seen;
		hb.echo_ms = c->node_sent_ms; /* the node's lease */
		/* a node behind us, or at our epoch made by another node
		 * (two pairs failed over at once): it gets our map */
		if (e->map && c->heard_ms &&
		    (c->epoch < e->map->epoch ||
		     (c->epoch == e->map->epoch &&
		      strncmp(c->author, e->map->author,
			      sizeof(c->author) - 1) != 0)))
			hb.map = e->map;
		req.request_id = ENQ_HB_BIT | e->hb_seq;
		req.epoch = e->map ? e->map->epoch : 0;
		req.router_id = e->router_id;
		req.body_case = SHOAL__ROUTER_REQUEST__BODY_HEARTBEAT;
		req.heartbeat = &hb;
		enq_send_small(c, &req);
	}
	free(seen);
}

struct enqueue *
enqueue_new(struct event_base *base, const struct config *cfg,
	    enqueue_ready_fn ready, void *arg)
{
	struct enqueue *e = xcalloc(1, sizeof(*e));
	char host[64] = "router";

	e->base = base;
	e->cfg = cfg;
	e->ready = ready;
	e->ready_arg = arg;
	e->pending = idmap_new();
	gethostname(host, sizeof(host) - 1);
	snprintf(e->router_id, sizeof(e->router_id), "%s:%d", host,
		 (int)getpid());
	e->zctx = zmq_ctx_new();
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (enq_conn_add(e, cfg->nodes[i].id, cfg->nodes[i].endpoint) ==
		    NULL)
			goto fail;
	e->map_timer = event_new(base, -1, 0, enq_fetch_map, e);
	event_active(e->map_timer, 0, 0);
	e->hb_timer = event_new(base, -1, EV_PERSIST, enq_heartbeat, e);
	{
		uint32_t ms = cfg->replication.heartbeat_ms;
		struct timeval tv = { (time_t)(ms / 1000),
				      (suseconds_t)(ms % 1000) * 1000 };

		event_add(e->hb_timer, &tv);
	}
	return e;
fail:
	enqueue_free(e);
	return NULL;
}

void
enqueue_foreach_node(const struct enqueue *e, enqueue_node_fn fn, void *arg)
{
	for (size_t i = 0; i < e->n_conns; i++)
		fn(e->conns[i].id, e->conns[i].results, arg);
	fn("none", e->unsent_results, arg);
}

static void
enq_drop_one(uint64_t id, void *value, void *arg)
{
	(void)id;
	(void)arg;
	enq_req_free(value);
}

void
enqueue_free(struct enqueue *e)
{
	if (e == NULL)
		return;
	if (e->pending) {
		idmap_foreach(e->pending, enq_drop_one, NULL);
		idmap_free(e->pending);
	}
	if (e->map_timer)
		event_free(e->map_timer);
	if (e->hb_timer)
		event_free(e->hb_timer);
	for (size_t i = 0; i < e->n_conns; i++) {
		zsock_free(e->conns[i].zs);
		free(e->conns[i].id);
		free(e->conns[i].endpoint);
	}
	free(e->conns);
	shardmap_free(e->map);
	if (e->zctx)
		zmq_ctx_term(e->zctx);
	free(e);
}
