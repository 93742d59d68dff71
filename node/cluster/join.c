/* The shard map a node starts with: the one stored in its data dir, or
 * on the first start the map derived from the config, or, joining a
 * running cluster (shoal-node --join), the cluster's map. The data dir
 * also records whose it is: a node never starts on another's.
 *
 * Joining: a node starting with an
 * empty data dir asks the other nodes of its config for the shard map
 * (the routers' MapRequest), takes the newest answer and adds the nodes
 * of its config that the map does not list yet, in a new epoch that it
 * authors. Ownership does not change: the new nodes own nothing until
 * shards are moved to them (shoalctl shard move / node drain). The other
 * nodes learn the new nodes' endpoints and peers from that epoch.
 *
 * Runs before the event loop, with a ZeroMQ context of its own. */
#include "node/cluster/join.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lib/clock.h"
#include "lib/curve.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/store/store.h"
#include "proto/router_node.pb-c.h"

#define JOIN_ROUND_MS 1000        /* one round of asking everybody */
#define JOIN_TIMEOUT_MS 30000
#define JOIN_META_ID "node_id"    /* whose data dir this is */

/* Read one reply; keep its map when valid and newer than *best. */
static void
join_read(void *sock, const struct config *cfg, Shoal__ShardMap **best)
{
	zmq_msg_t msg;
	Shoal__NodeReply *rep;
	Shoal__ShardMap *m = NULL;

	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&msg);
		return;
	}
	rep = shoal__node_reply__unpack(NULL, zmq_msg_size(&msg),
					zmq_msg_data(&msg));
	zmq_msg_close(&msg);
	if (rep && rep->map) {
		size_t plen;
		void *p = shardmap_pack(rep->map, &plen);

		m = shardmap_unpack(p, plen, cfg->cluster.shards);
		free(p);
	}
	if (rep)
		shoal__node_reply__free_unpacked(rep, NULL);
	if (m && shardmap_newer(m, *best)) {
		shardmap_free(*best);
		*best = m;
	} else {
		shardmap_free(m);
	}
}

/* One round: ask every other node (offering ours, when given), keep the
 * newest valid map answered. */
static Shoal__ShardMap *
join_round(void *ctx, const struct config *cfg, const char *me,
	   Shoal__ShardMap *offer)
{
	Shoal__RouterRequest req = SHOAL__ROUTER_REQUEST__INIT;
	Shoal__MapRequest mr = SHOAL__MAP_REQUEST__INIT;
	zmq_pollitem_t *items = xcalloc(cfg->n_nodes, sizeof(*items));
	bool *sent = xcalloc(cfg->n_nodes, sizeof(*sent));
	bool *got = xcalloc(cfg->n_nodes, sizeof(*got));
	Shoal__ShardMap *best = NULL;
	unsigned char *buf;
	size_t len, n = 0;
	uint64_t deadline = clock_mono_ms() + JOIN_ROUND_MS;
	int linger = 0, one = 1;
	int64_t max = WIRE_META_MAX;

	req.request_id = 1;
	req.router_id = (char *)me;
	req.body_case = SHOAL__ROUTER_REQUEST__BODY_MAP;
	req.map = &mr;
	mr.offer = offer;
	buf = xmalloc(shoal__router_request__get_packed_size(&req));
	len = shoal__router_request__pack(&req, buf);
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		void *s;

		if (strcmp(cfg->nodes[i].id, me) == 0)
			continue;
		s = zmq_socket(ctx, ZMQ_DEALER);
		/* never ask unencrypted or without a size bound (logged) */
		if (s == NULL ||
		    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) ||
		    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) ||
		    zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof(one)) ||
		    curve_client(s) != 0 ||
		    zmq_connect(s, cfg->nodes[i].endpoint) != 0) {
			log_error("join node=%s event=socket_failed",
				  cfg->nodes[i].id);
			if (s != NULL)
				zmq_close(s);
			continue;
		}
		items[n].socket = s;
		items[n].events = ZMQ_POLLIN;
		n++;
	}
	/* connections come up in the background: send to each when it can
	 * take it, read what comes back, until everyone asked answered */
	while (clock_mono_ms() < deadline) {
		size_t asked = 0, answered = 0;

		for (size_t i = 0; i < n; i++) {
			/* multipart is atomic: the second part follows */
			if (!sent[i] &&
			    zmq_send(items[i].socket, WIRE_TAG_ROUTER,
				     WIRE_TAG_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) ==
				    WIRE_TAG_LEN &&
			    zmq_send(items[i].socket, buf, len, ZMQ_DONTWAIT) >= 0)
				sent[i] = true;
			asked += sent[i];
			answered += got[i];
		}
		if (asked > 0 && answered == asked)
			break;
		if (zmq_poll(items, (int)n, 20) <= 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (items[i].revents & ZMQ_POLLIN) {
				join_read(items[i].socket, cfg, &best);
				got[i] = true;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		zmq_close(items[i].socket);
	free(items);
	free(sent);
	free(got);
	free(buf);
	return best;
}

/* The map with every node of cfg listed, in a new epoch by me; NULL when
 * it lists them all already. */
static Shoal__ShardMap *
join_extend(const Shoal__ShardMap *m, const struct config *cfg,
	    const char *me)
{
	Shoal__ShardMap grown = *m;
	Shoal__NodeInfo **nodes;
	Shoal__NodeInfo *added;
	Shoal__ShardMap *out;
	size_t n = m->n_nodes, len;
	void *p;

	nodes = xcalloc(m->n_nodes + cfg->n_nodes, sizeof(*nodes));
	added = xcalloc(cfg->n_nodes, sizeof(*added));
	memcpy(nodes, m->nodes, m->n_nodes * sizeof(*nodes));
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const struct cfg_node *c = &cfg->nodes[i];

		if (shardmap_node(m, c->id) != NULL)
			continue;
		shoal__node_info__init(&added[i]);
		added[i].id = c->id;
		added[i].endpoint = c->endpoint;
		added[i].peer = c->peer ? c->peer : "";
		nodes[n++] = &added[i];
	}
	out = NULL;
	if (n > m->n_nodes) {
		grown.nodes = nodes;
		grown.n_nodes = n;
		grown.epoch = m->epoch + 1;
		grown.author = (char *)me;
		p = shardmap_pack(&grown, &len);
		out = shardmap_unpack(p, len, cfg->cluster.shards);
		free(p);
	}
	free(nodes);
	free(added);
	return out;
}

int
join_fetch_map(const struct config *cfg, const char *me,
	       Shoal__ShardMap **out)
{
	void *ctx = zmq_ctx_new();
	uint64_t deadline = clock_mono_ms() + JOIN_TIMEOUT_MS;
	Shoal__ShardMap *m = NULL, *grown;

	log_info("node id=%s event=joining nodes=%zu", me, cfg->n_nodes);
	while (m == NULL && clock_mono_ms() < deadline)
		m = join_round(ctx, cfg, me, NULL);
	if (m == NULL) {
		zmq_ctx_term(ctx);
		log_error("node id=%s event=join_failed error=\"no node of the "
			  "cluster answered in %d s\"",
			  me, JOIN_TIMEOUT_MS / 1000);
		return -ETIMEDOUT;
	}
	for (size_t s = 0; s < m->n_shards; s++) {
		if (strcmp(m->shards[s]->primary, me) == 0) {
			log_error("node id=%s event=join_failed error=\"the "
				  "cluster's map makes this node primary of "
				  "shard %zu but its data dir is empty: fail "
				  "its shards over first (shoalctl node "
				  "failover %s)\"",
				  me, s, me);
			shardmap_free(m);
			zmq_ctx_term(ctx);
			return SHOAL_E_CONFIG;
		}
	}
	grown = join_extend(m, cfg, me);
	if (grown != NULL) {
		shardmap_free(m);
		m = grown;
		/* tell the nodes: they adopt it (newer) and routers get it
		 * from their heartbeat replies */
		shardmap_free(join_round(ctx, cfg, me, m));
	}
	zmq_ctx_term(ctx);
	log_info("node id=%s event=joined epoch=%llu nodes=%zu", me,
		 (unsigned long long)m->epoch, m->n_nodes);
	*out = m;
	return 0;
}

int
join_load_map(struct store *st, const struct config *cfg,
	      const struct cfg_node *me, bool join, Shoal__ShardMap **out)
{
	Shoal__ShardMap *map = NULL;
	struct store_txn *t;
	const void *p;
	size_t len;
	int rc;

	rc = store_txn_begin(st, false, &t);
	if (rc != 0)
		return rc;
	rc = store_meta_get(t, JOIN_META_ID, &p, &len);
	if (rc == 0 && (len != strlen(me->id) || memcmp(p, me->id, len))) {
		log_error("node id=%s event=start error=\"data_dir %s belongs "
			  "to node %.*s\"",
			  me->id, me->data_dir, (int)len, (const char *)p);
		rc = SHOAL_E_CONFIG;
		goto fail;
	}
	if (rc == -ENOENT)
		rc = store_meta_put(t, JOIN_META_ID, me->id, strlen(me->id));
	if (rc != 0)
		goto fail;
	rc = store_meta_get(t, OWNER_META_MAP, &p, &len);
	if (rc == 0) {
		map = shardmap_unpack(p, len, cfg->cluster.shards);
		if (map == NULL) {
			log_error("node id=%s event=start error=\"stored shard "
				  "map unreadable or cluster.shards changed\"",
				  me->id);
			rc = SHOAL_E_CONFIG;
			goto fail;
		}
		store_txn_abort(t);
		*out = map;
		return 0;
	}
	if (rc != -ENOENT)
		goto fail;
	if (join) {
		/* not the first start of the cluster: take its map */
		store_txn_abort(t);
		rc = join_fetch_map(cfg, me->id, &map);
		if (rc != 0)
			return rc;
		rc = store_txn_begin(st, false, &t);
		if (rc != 0) {
			shardmap_free(map);
			return rc;
		}
		rc = store_meta_put(t, JOIN_META_ID, me->id, strlen(me->id));
		if (rc != 0)
			goto fail;
	} else {
		map = shardmap_derive(cfg);
	}
	{
		void *packed = shardmap_pack(map, &len);

		rc = store_meta_put(t, OWNER_META_MAP, packed, len);
		free(packed);
	}
	if (rc != 0)
		goto fail;
	rc = store_txn_commit(t);
	if (rc != 0) {
		shardmap_free(map);
		return rc;
	}
	*out = map;
	return 0;
fail:
	store_txn_abort(t);
	shardmap_free(map);
	return rc;
}
