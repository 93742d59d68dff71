/* Shard map construction, validation and lookup. Maps from the wire or the
 * disk are untrusted until shardmap_unpack() has checked them. */
#include "lib/shardmap.h"

#include <stdlib.h>
#include <string.h>

#include "lib/wire.h"
#include "lib/xmalloc.h"

#define SHARDMAP_NODES_MAX 1024
#define SHARDMAP_STR_MAX 1024

void *
shardmap_pack(const Shoal__ShardMap *m, size_t *len)
{
	size_t n = shoal__shard_map__get_packed_size(m);
	void *p = xmalloc(n);

	shoal__shard_map__pack(m, p);
	*len = n;
	return p;
}

static Shoal__ShardMap *
shardmap_unpack_raw(const void *data, size_t len)
{
	return shoal__shard_map__unpack(NULL, len, data);
}

Shoal__ShardMap *
shardmap_derive(const struct config *cfg)
{
	Shoal__ShardMap m = SHOAL__SHARD_MAP__INIT;
	Shoal__NodeInfo *infos = xcalloc(cfg->n_nodes, sizeof(*infos));
	Shoal__NodeInfo **info_ptrs = xcalloc(cfg->n_nodes, sizeof(*info_ptrs));
	Shoal__ShardAssignment *as = xcalloc(cfg->cluster.shards, sizeof(*as));
	Shoal__ShardAssignment **as_ptrs =
		xcalloc(cfg->cluster.shards, sizeof(*as_ptrs));
	Shoal__ShardMap *out;
	void *packed;
	size_t len;

	for (size_t i = 0; i < cfg->n_nodes; i++) {
		shoal__node_info__init(&infos[i]);
		infos[i].id = cfg->nodes[i].id;
		infos[i].endpoint = cfg->nodes[i].endpoint;
		infos[i].peer = cfg->nodes[i].peer ? cfg->nodes[i].peer : "";
		info_ptrs[i] = &infos[i];
	}
	for (uint32_t s = 0; s < cfg->cluster.shards; s++) {
		const struct cfg_node *owner = &cfg->nodes[s % cfg->n_nodes];

		shoal__shard_assignment__init(&as[s]);
		as[s].primary = owner->id;
		as[s].replica = owner->peer ? owner->peer : "";
		as_ptrs[s] = &as[s];
	}
	m.epoch = 1;
	m.n_nodes = cfg->n_nodes;
	m.nodes = info_ptrs;
	m.n_shards = cfg->cluster.shards;
	m.shards = as_ptrs;
	/* pack and unpack so that every map is freed the same way */
	packed = shardmap_pack(&m, &len);
	out = shardmap_unpack_raw(packed, len);
	free(packed);
	free(infos);
	free(info_ptrs);
	free(as);
	free(as_ptrs);
	return out;
}

static int
shardmap_str_ok(const char *s, int may_be_empty)
{
	size_t n = strnlen(s, SHARDMAP_STR_MAX + 1);

	return n <= SHARDMAP_STR_MAX && (may_be_empty || n > 0);
}

Shoal__ShardMap *
shardmap_unpack(const void *data, size_t len, uint32_t shards)
{
	Shoal__ShardMap *m;

	if (len > WIRE_META_MAX)
		return NULL;
	m = shardmap_unpack_raw(data, len);
	if (m == NULL)
		return NULL;
	if (!shardmap_str_ok(m->author, 1))
		goto bad;
	if (m->epoch == 0 || m->n_shards != shards || m->n_nodes == 0 ||
	    m->n_nodes > SHARDMAP_NODES_MAX)
		goto bad;
	for (size_t i = 0; i < m->n_nodes; i++) {
		if (!shardmap_str_ok(m->nodes[i]->id, 0) ||
		    !shardmap_str_ok(m->nodes[i]->endpoint, 0) ||
		    !shardmap_str_ok(m->nodes[i]->peer, 1))
			goto bad;
	}
	for (size_t s = 0; s < m->n_shards; s++) {
		const Shoal__ShardAssignment *a = m->shards[s];

		if (shardmap_node(m, a->primary) == NULL)
			goto bad;
		if (a->replica[0] && shardmap_node(m, a->replica) == NULL)
			goto bad;
	}
	return m;
bad:
	shardmap_free(m);
	return NULL;
}

Shoal__ShardMap *
shardmap_dup(const Shoal__ShardMap *m)
{
	size_t len;
	void *p = shardmap_pack(m, &len);
	Shoal__ShardMap *out = shardmap_unpack_raw(p, len);

	free(p);
	return out;
}

void
shardmap_free(Shoal__ShardMap *m)
{
	if (m)
		shoal__shard_map__free_unpacked(m, NULL);
}

const Shoal__NodeInfo *
shardmap_node(const Shoal__ShardMap *m, const char *id)
{
	for (size_t i = 0; i < m->n_nodes; i++)
		if (strcmp(m->nodes[i]->id, id) == 0)
			return m->nodes[i];
	return NULL;
}

const char *
shardmap_primary(const Shoal__ShardMap *m, uint32_t shard)
{
	if (shard >= m->n_shards)
		return NULL;
	return m->shards[shard]->primary;
}

uint32_t
shardmap_shards_of(const Shoal__ShardMap *m, const char *id,
		   enum shardmap_role role, uint32_t *out)
{
	uint32_t n = 0;

	for (uint32_t s = 0; s < m->n_shards; s++) {
		const char *who = role == SHARDMAP_PRIMARY ?
					  m->shards[s]->primary :
					  m->shards[s]->replica;

		if (strcmp(who, id) != 0)
			continue;
		if (out != NULL)
			out[n] = s;
		n++;
	}
	return n;
}

bool
shardmap_newer(const Shoal__ShardMap *m, const Shoal__ShardMap *cur)
{
	if (cur == NULL || m->epoch > cur->epoch)
		return true;
	if (m->epoch < cur->epoch)
		return false;
	return strcmp(m->author, cur->author) < 0;
}

Shoal__ShardMap *
shardmap_swap(const Shoal__ShardMap *m, const char *from, const char *to,
	      const char *author, const Shoal__ShardMap *home, size_t *moved)
{
	Shoal__ShardMap *out = shardmap_dup(m);
	Shoal__ShardAssignment *a;
	char *tmp;

	*moved = 0;
	for (size_t s = 0; s < out->n_shards; s++) {
		a = out->shards[s];
		if (strcmp(a->primary, from) != 0 || strcmp(a->replica, to) != 0)
			continue;
		if (home && (s >= home->n_shards ||
			     strcmp(home->shards[s]->primary, to) != 0))
			continue;
		tmp = a->primary;
		a->primary = a->replica;
		a->replica = tmp;
		(*moved)++;
	}
	/* strings of an unpacked map belong to protobuf-c's free */
	if (out->author != protobuf_c_empty_string)
		free(out->author);
	out->author = xstrdup(author);
	out->epoch = m->epoch + 1;
	return out;
}
