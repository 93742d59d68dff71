/* The router's link to its nodes (see router/enqueue_int.h): one DEALER
 * socket per node (ZMQ_IMMEDIATE, so nothing is queued inside libzmq for
 * a node that is not connected; ZMTP heartbeats notice a cut link), the
 * shard map (fetched from any node at start, adopted from any reply that
 * carries a newer one, pushed in our heartbeats to a node that is
 * behind), and node restarts (a reply's incarnation). What to do with the
 * requests when the map changes or a node restarted is
 * router/enqueue.c's. Handles untrusted input: replies and their maps are
 * validated before use. */
#include "router/enqueue_link.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/suppress_key.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "proto/router_node.pb-c.h"
#include "router/enqueue_int.h"

/* ---- connections -------------------------------------------------- */

struct enq_conn *
enq_conn_find(struct enqueue *e, const char *id)
{
	for (size_t i = 0; i < e->n_conns; i++)
		if (strcmp(e->conns[i].id, id) == 0)
			return &e->conns[i];
	return NULL;
}

static void enq_on_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes,
		       void *arg);

/* ---- the nodes' suppression filters --------------------------------- */

bool
enq_filter_rules_out(const struct enqueue *e, const struct enq_conn *c,
		     const char *addr)
{
	const struct enq_filter *f = &c->sf;
	char key[SUPPRESS_KEY_MAX];

	/* and only a node at our map (epoch and author): one that is not
	 * may no longer own the shard, and the owner's entries are not in
	 * its filter */
	if (f->bits == NULL || f->id == 0 || f->id != f->heard_id ||
	    f->gen != f->heard_gen || f->heard_ms == 0 ||
	    clock_mono_ms() - f->heard_ms > SUPPRESS_FILTER_TRUST_MS ||
	    e->map == NULL || c->epoch != e->map->epoch ||
	    strcmp(c->author, e->map->author) != 0)
		return false;
	suppress_key(addr, e->cfg->cluster.shards, SUPPRESS_KEY_TAG, key);
	return !suppress_filter_has(f->bits, f->log2, key);
}

/* Ask c for its filter: the bits after ours, or all of it. */
static void
enq_filter_fetch(struct enqueue *e, struct enq_conn *c, uint64_t now)
{
	Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
	Shoal__SuppFilterRequest q = SHOAL__SUPP_FILTER_REQUEST__INIT;

	q.filter_id = c->sf.bits ? c->sf.id : 0;
	q.since_gen = c->sf.bits ? c->sf.gen : 0;
	req.request_id = ENQ_SF_BIT | ++e->sf_seq;
	req.epoch = e->map ? e->map->epoch : 0;
	req.router_id = e->router_id;
	req.body_case = SHOAL__ROUTER_REQUEST__BODY_SUPP_FILTER;
	req.supp_filter = &q;
	if (enq_send_small(c, &req) == 0) {
		c->sf.asked_ms = now ? now : 1;
		c->sf.ask_id = req.request_id;
	}
}

/* A filter (or the bits after ours) from c, the whole one in bits (the
 * reply's second frame, len bytes; NULL without): checked whole before
 * use. A bad one is logged and not asked for again before
 * ENQ_FILTER_ASK_MS. */
static void
enq_filter_take(struct enq_conn *c, const Shoal__SuppFilter *sf,
		const void *bits, size_t bits_len)
{
	struct enq_filter *f = &c->sf;
	size_t len;

	if (sf->filter_id == 0 || sf->log2_bits < SUPPRESS_FILTER_LOG2_MIN ||
	    sf->log2_bits > ENQ_FILTER_LOG2_MAX)
		goto bad;
	len = (size_t)1 << (sf->log2_bits - 3);
	if (sf->bits_in_frame) {
		if (bits == NULL || bits_len != len || sf->n_positions != 0)
			goto bad;
		if (f->bits == NULL || f->log2 != sf->log2_bits)
			f->bits = xrealloc(f->bits, len);
		memcpy(f->bits, bits, len);
		f->log2 = sf->log2_bits;
		f->id = sf->filter_id;
		f->gen = sf->gen;
		f->asked_ms = 0;
		return;
	}
	/* the bits after ours: only onto the same filter, no gap */
	if (f->bits == NULL || f->id != sf->filter_id ||
	    f->log2 != sf->log2_bits || sf->since_gen != f->gen ||
	    sf->gen < sf->since_gen || sf->gen - sf->since_gen != sf->n_positions) {
		f->asked_ms = 0; /* a late answer: the next reply asks again */
		return;
	}
	for (size_t i = 0; i < sf->n_positions; i++)
		if (sf->positions[i] >> sf->log2_bits)
			goto bad;
	for (size_t i = 0; i < sf->n_positions; i++)
		suppress_filter_set(f->bits, sf->positions[i]);
	f->gen = sf->gen;
	f->asked_ms = 0;
	return;
bad:
	log_warn("zmq event=bad_reply node=%s reason=\"suppression filter "
		 "out of bounds\"", c->id);
}

/* When we sent the request rep answers (to c): the node stamped its
 * filter's gen after that. 0 when not known (a map fetch, an older
 * heartbeat, a request gone). */
static uint64_t
enq_reply_asked_ms(const struct enqueue *e, const struct enq_conn *c,
		   const Shoal__NodeReply *rep)
{
	const struct enq_req *r;

	if (rep->request_id & ENQ_SF_BIT)
		return rep->request_id == c->sf.ask_id ? c->sf.asked_ms : 0;
	if (rep->request_id & ENQ_HB_BIT)
		return (rep->request_id & ~ENQ_HB_BIT) == e->hb_seq ?
			       e->hb_sent_ms :
			       0;
	r = idmap_get(e->pending, rep->request_id);
	return r != NULL ? r->first_sent_ms : 0;
}

/* What c's reply says of its filter; fetch what we lack. The filter is
 * believed from the time we sent the request the reply answers (the
 * reply's stamp is later), not from when the reply came: a reply that
 * waited in a queue or on the wire extends nothing. */
static void
enq_filter_heard(struct enqueue *e, struct enq_conn *c,
		 const Shoal__NodeReply *rep, const void *bits,
		 size_t bits_len, uint64_t asked, uint64_t now)
{
	struct enq_filter *f = &c->sf;

	if (rep->supp_filter != NULL && (rep->request_id & ENQ_SF_BIT) &&
	    rep->request_id == f->ask_id) {
		enq_filter_take(c, rep->supp_filter, bits, bits_len);
		/* a whole filter older than the node's (a copy it shares):
		 * the bits after it, but not at once, or a node that keeps
		 * sending the old copy would have us ask in a loop */
		if (f->gen < rep->supp_gen && f->asked_ms == 0)
			f->asked_ms = now ? now : 1;
	}
	if (f->heard_id != rep->supp_filter_id ||
	    f->heard_gen != rep->supp_gen)
		f->heard_ms = asked;
	else if (asked > f->heard_ms)
		f->heard_ms = asked;
	f->heard_id = rep->supp_filter_id;
	f->heard_gen = rep->supp_gen;
	if (f->heard_id == 0 || !e->cfg->suppression.enabled)
		return;
	if (f->bits != NULL && f->id == f->heard_id && f->gen >= f->heard_gen)
		return;
	if (f->asked_ms == 0 || now - f->asked_ms >= ENQ_FILTER_ASK_MS)
		enq_filter_fetch(e, c, now);
}

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
struct enq_conn *
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

/* ---- sending ------------------------------------------------------ */

/* Pack a request into a new buffer (caller frees). */
unsigned char *
enq_pack(const Shoal__RouterRequest *req, size_t *len)
{
	unsigned char *p;

	*len = shoal__router_request__get_packed_size(req);
	p = xmalloc(*len ? *len : 1);
	shoal__router_request__pack(req, p);
	return p;
}

/* A request without a body frame, to one node. Returns zsock_send's. */
int
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

/* ---- replies: maps and restarts ------------------------------------ */

/* A reply from conns[i] told its incarnation: note it, and when it is a
 * new one, resend what the old one left unanswered. */
static void
enq_note_incarnation(struct enqueue *e, size_t i, uint64_t inc)
{
	uint64_t old = e->conns[i].incarnation;
	size_t resent;

	if (inc == 0 || inc == old)
		return;
	e->conns[i].incarnation = inc;
	if (old == 0)
		return;
	resent = enq_reqs_on_restart(e, e->conns[i].id, inc);
	log_info("node=%s event=node_restarted resent=%zu", e->conns[i].id,
		 resent);
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
		enq_reqs_on_map(e);
	}
	/* nodes that joined: heartbeats reach them from now on */
	for (size_t i = 0; i < e->map->n_nodes; i++)
		enq_conn_for(e, e->map->nodes[i]->id);
}

/* The map a reply carried, checked and adopted if newer; NULL for none
 * or a bad one (logged). Caller frees with shardmap_free(). */
static Shoal__ShardMap *
enq_reply_map(struct enqueue *e, const Shoal__NodeReply *rep)
{
	Shoal__ShardMap *m = NULL;

	if (rep->map) {
		/* the map arrived nested; re-check it as if packed alone */
		size_t len = shoal__shard_map__get_packed_size(rep->map);
		void *p = xmalloc(len ? len : 1);

		shoal__shard_map__pack(rep->map, p);
		m = shardmap_unpack(p, len, e->cfg->cluster.shards);
		free(p);
		if (m == NULL)
			log_warn(
				"node=%.64s event=bad_reply reason=\"bad map\"",
				rep->node_id);
		else
			enq_adopt_map(e, m);
	}
	return m;
}

static void
enq_on_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes, void *arg)
{
	struct enqueue *e = arg;
	Shoal__NodeReply *rep;
	Shoal__ShardMap *m;

	/* one frame, or two: a whole suppression filter after the reply */
	if (nframes != 1 && nframes != 2) {
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
			/* before a restart the reply reveals resends them */
			uint64_t asked =
				enq_reply_asked_ms(e, &e->conns[i], rep);

			e->conns[i].heard_ms = clock_mono_ms();
			e->conns[i].epoch = rep->epoch;
			/* a reply without it (0) keeps the last: echoed in
			 * our heartbeats, the node's lease */
			if (rep->sent_ms != 0)
				e->conns[i].node_sent_ms = rep->sent_ms;
			snprintf(e->conns[i].author, sizeof(e->conns[i].author),
				 "%s", rep->author);
			enq_note_incarnation(e, i, rep->incarnation);
			enq_filter_heard(
				e, &e->conns[i], rep,
				nframes == 2 ? zmq_msg_data(&frames[1]) : NULL,
				nframes == 2 ? zmq_msg_size(&frames[1]) : 0,
				asked, e->conns[i].heard_ms);
			break;
		}
	}
	m = enq_reply_map(e, rep);
	if (rep->request_id != e->map_request_id &&
	    !(rep->request_id & (ENQ_HB_BIT | ENQ_SF_BIT)))
		enq_req_on_reply(e, rep, m != NULL);
	shardmap_free(m);
	shoal__node_reply__free_unpacked(rep, NULL);
}

/* ---- timers: the first map, heartbeats ----------------------------- */

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
 * vote, see node/cluster/owner.c), and our map to a node whose epoch is older. The
 * replies keep our map current. */
static void
enq_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct enqueue *e = arg;
	uint64_t now = clock_mono_ms();
	uint64_t window = e->cfg->replication.failover_after_ms;
	const char **seen = xcalloc(e->n_conns ? e->n_conns : 1, sizeof(*seen));
	size_t n_seen = 0;

	(void)fd;
	(void)what;
	enq_check_failed_flush(e, now);
	for (size_t i = 0; i < e->n_conns; i++)
		if (e->conns[i].heard_ms &&
		    now - e->conns[i].heard_ms <= window)
			seen[n_seen++] = e->conns[i].id;
	e->hb_seq++;
	e->hb_sent_ms = now;
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

int
enq_link_open(struct enqueue *e)
{
	const struct config *cfg = e->cfg;

	e->zctx = zmq_ctx_new();
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (enq_conn_add(e, cfg->nodes[i].id, cfg->nodes[i].endpoint) ==
		    NULL)
			return -1;
	e->map_timer = event_new(e->base, -1, 0, enq_fetch_map, e);
	event_active(e->map_timer, 0, 0);
	e->hb_timer = event_new(e->base, -1, EV_PERSIST, enq_heartbeat, e);
	{
		uint32_t ms = cfg->replication.heartbeat_ms;
		struct timeval tv = { (time_t)(ms / 1000),
				      (suseconds_t)(ms % 1000) * 1000 };

		event_add(e->hb_timer, &tv);
	}
	return 0;
}

void
enq_link_close(struct enqueue *e)
{
	if (e->map_timer)
		event_free(e->map_timer);
	if (e->hb_timer)
		event_free(e->hb_timer);
	for (size_t i = 0; i < e->n_conns; i++) {
		zsock_free(e->conns[i].zs);
		free(e->conns[i].sf.bits);
		free(e->conns[i].id);
		free(e->conns[i].endpoint);
	}
	free(e->conns);
	shardmap_free(e->map);
	if (e->zctx)
		zmq_ctx_term(e->zctx);
}

void
enqueue_foreach_node(const struct enqueue *e, enqueue_node_fn fn, void *arg)
{
	for (size_t i = 0; i < e->n_conns; i++)
		fn(e->conns[i].id, e->conns[i].results, arg);
	fn("none", e->unsent_results, arg);
}
