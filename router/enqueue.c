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
 * its incarnation stays the same.
 *
 * This file holds the requests; the link to the nodes (sockets, the shard
 * map, heartbeats, noticing restarts) is router/enqueue_link.c's. */
#include "router/enqueue.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
#include "router/enqueue_int.h"
#include "router/enqueue_link.h"
#include "router/metrics.h"

/* ---- requests ------------------------------------------------------- */

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

/* Metrics: one finished request, under the node it was last sent to. */
static void
enq_count(struct enq_req *r, int result)
{
	struct enq_conn *c =
		r->sent_to ? enq_conn_find(r->e, r->sent_to) : NULL;
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

	e->checks_failed_open++;
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

void
enq_check_failed_flush(struct enqueue *e, uint64_t now)
{
	if (e->check_folded == 0 || now - e->check_warned_ms < 1000)
		return;
	log_warn("event=suppress_check_failed action=accept folded=%llu "
		 "note=\"recipients accepted unchecked since the last "
		 "warning\"",
		 (unsigned long long)e->check_folded);
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

/* Send now, or, while there is no map or the owner is not connected
 * (a router just started, a node reconnecting), try again every
 * ENQ_MAP_RETRY_MS until the request's deadline. */
static void
enq_try_send(struct enq_req *r)
{
	uint64_t now = enq_now_ms();
	int rc = r->e->map ? enq_send(r->e, r) : -EAGAIN;
	struct timeval tv;

	if (rc == 0 && r->is_ruled_out) {
		r->unsent = false; /* answered: enq_send_check() armed it */
		return;
	}
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
	if (r->is_ruled_out) {
		enq_req_finish(r, 0); /* cres: not listed */
		return;
	}
	if (r->result == 0 && r->unsent) {
		enq_try_send(r);
		return;
	}
	if (r->result == 0 && r->check_addr) {
		r->result = -ETIMEDOUT; /* logged by enq_check_failed() */
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

static int
enq_send_check(struct enqueue *e, struct enq_req *r, struct enq_conn *c)
{
	Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
	Shoal__SuppressCheck ck = SHOAL__SUPPRESS_CHECK__INIT;
	int rc;

	/* the owner's filter says the address is not listed: no question,
	 * answered from the loop as a reply would be */
	if (enq_filter_rules_out(e, c, r->check_addr)) {
		struct timeval now = { 0, 0 };

		e->checks_filtered++;
		r->is_ruled_out = true;
		r->sent_to = c->id;
		event_del(&r->timer);
		event_add(&r->timer, &now);
		return 0;
	}
	e->checks_asked++;
	ck.address = r->check_addr;
	req.request_id = r->id;
	req.epoch = e->map->epoch;
	req.router_id = e->router_id;
	req.body_case = SHOAL__ROUTER_REQUEST__BODY_CHECK;
	req.check = &ck;
	rc = enq_send_small(c, &req);
	if (rc == 0) {
		r->sent_to = c->id;
		if (r->first_sent_ms == 0)
			r->first_sent_ms = enq_now_ms();
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
	zmq_msg_init_data(&body, r->body->data, r->body->len, enq_body_zmq_free,
			  r->body);
	{
		const void *bufs[3] = { WIRE_TAG_ROUTER, packed, NULL };
		size_t lens[3] = { WIRE_TAG_LEN, len, 0 };

		rc = zsock_send(c->zs, bufs, lens, 3, &body);
	}
	free(packed);
	if (rc == 0) {
		r->sent_to = c->id;
		if (r->first_sent_ms == 0)
			r->first_sent_ms = enq_now_ms();
		r->sent_inc = c->incarnation;
	}
	/* not connected yet: enq_try_send() tries again until the deadline */
	if (rc == -EAGAIN)
		log_debug(LOG_SUB_ZMQ,
			  "qid=%s event=node_not_connected node=%s", r->qid,
			  c->id);
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

void
enqueue_check_counts(const struct enqueue *e, uint64_t *asked,
		     uint64_t *filtered, uint64_t *failed_open)
{
	*asked = e->checks_asked;
	*filtered = e->checks_filtered;
	*failed_open = e->checks_failed_open;
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

/* ---- node events: a new map, a restart ---------------------------- */

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
		log_debug(LOG_SUB_ZMQ,
			  "rcpt=<%s> event=check_resend_after_map "
			  "from=%s to=%s",
			  r->check_addr, r->sent_to, owner);
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

void
enq_reqs_on_map(struct enqueue *e)
{
	idmap_foreach(e->pending, enq_resend_moved, e);
}

size_t
enq_reqs_on_restart(struct enqueue *e, const char *id, uint64_t inc)
{
	struct enq_restart rs = { e, id, inc, 0 };

	idmap_foreach(e->pending, enq_resend_restarted, &rs);
	return rs.resent;
}

/* ---- replies ------------------------------------------------------ */

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
		   r->redirects++ < ENQ_REDIRECTS_MAX && enq_send(e, r) == 0) {
		return;
	} else {
		enq_req_finish(r, -EAGAIN);
	}
}

void
enq_req_on_reply(struct enqueue *e, const Shoal__NodeReply *rep, bool has_map)
{
	struct enq_req *r;

	r = idmap_get(e->pending, rep->request_id);
	if (r == NULL) {
		log_debug(LOG_SUB_ZMQ, "zmq event=late_reply request_id=%llu",
			  (unsigned long long)rep->request_id);
		return;
	}
	if (r->check_addr) {
		enq_on_check_reply(e, r, rep, has_map);
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
		} else if (has_map && r->redirects++ < ENQ_REDIRECTS_MAX) {
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
}

/* ---- life ----------------------------------------------------------- */

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
	if (enq_link_open(e) != 0)
		goto fail;
	return e;
fail:
	enqueue_free(e);
	return NULL;
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
	enq_link_close(e);
	free(e);
}
