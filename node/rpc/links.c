/* Links to other nodes (see links.h): a small array searched by id; a
 * cluster has tens of nodes, not thousands. */
#include "node/rpc/links.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "proto/cli_node.pb-c.h"

struct link {
	char *id;
	struct zsock *zs;
};

struct links {
	struct event_base *base;
	void *zctx;
	int64_t max_msg;
	zsock_msg_fn on_msg;
	void *arg;
	struct link *v;
	size_t n;
};

struct links *
links_new(struct event_base *base, void *zctx, int64_t max_msg,
	  zsock_msg_fn on_msg, void *arg)
{
	struct links *l = xcalloc(1, sizeof(*l));

	l->base = base;
	l->zctx = zctx;
	l->max_msg = max_msg;
	l->on_msg = on_msg;
	l->arg = arg;
	return l;
}

void
links_free(struct links *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		zsock_free(l->v[i].zs);
		free(l->v[i].id);
	}
	free(l->v);
	free(l);
}

struct zsock *
links_get(struct links *l, const Shoal__ShardMap *map, const char *id)
{
	const Shoal__NodeInfo *ni;
	struct zsock *zs;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].id, id) == 0)
			return l->v[i].zs;
	ni = shardmap_node(map, id);
	if (ni == NULL)
		return NULL;
	zs = zsock_new(l->base, l->zctx, ZMQ_DEALER, l->max_msg, l->on_msg,
		       NULL, l->arg);
	if (zs == NULL)
		return NULL;
	if (zsock_connect(zs, ni->endpoint) != 0) {
		zsock_free(zs);
		return NULL;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n].id = xstrdup(id);
	l->v[l->n].zs = zs;
	l->n++;
	return zs;
}

void
links_send_admin_all(struct links *l, const Shoal__ShardMap *map,
		     const char *self, const void *payload, size_t len)
{
	for (size_t i = 0; map != NULL && i < map->n_nodes; i++) {
		const void *bufs[2] = { WIRE_TAG_ADMIN, payload };
		size_t lens[2] = { WIRE_TAG_LEN, len };
		struct zsock *zs;

		if (strcmp(map->nodes[i]->id, self) == 0)
			continue;
		zs = links_get(l, map, map->nodes[i]->id);
		if (zs != NULL)
			(void)zsock_send(zs, bufs, lens, 2, NULL);
	}
}

Shoal__AdminReply *
links_admin_reply(const zmq_msg_t *frames, size_t nframes)
{
	if (nframes != 1)
		return NULL;
	return shoal__admin_reply__unpack(
		NULL, zmq_msg_size((zmq_msg_t *)&frames[0]),
		zmq_msg_data((zmq_msg_t *)&frames[0]));
}

void
links_log_refusals(struct zsock *zs, zmq_msg_t *frames, size_t nframes,
		   void *arg)
{
	Shoal__AdminReply *r = links_admin_reply(frames, nframes);

	(void)zs;
	if (r == NULL)
		return;
	if (r->status != SHOAL__STATUS__STATUS_OK)
		log_debug(LOG_SUB_MAIN, "%s event=refused node=%.64s "
			  "reason=\"%.128s\"",
			  (const char *)arg, r->node_id, r->message);
	shoal__admin_reply__free_unpacked(r, NULL);
}
