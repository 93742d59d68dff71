/* Check suite for lib/shardmap.c: deriving the first map from the config,
 * packing and unpacking it, and the checks shardmap_unpack() makes on a map
 * from a peer or the disk (epoch 0, wrong shard count, a primary or
 * replica that is not among the nodes, empty or over-long strings,
 * truncated or garbage bytes). Maps built by hand here are packed with
 * shardmap_pack() and fed back as a peer would send them. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "tests/unit/check_helpers.h"

/* ---- a hand-built map ---------------------------------------------- */

#define MB_NODES_MAX 8
#define MB_SHARDS_MAX 64

struct mb {
	Shoal__ShardMap m;
	Shoal__NodeInfo nodes[MB_NODES_MAX];
	Shoal__NodeInfo *np[MB_NODES_MAX];
	Shoal__ShardAssignment shards[MB_SHARDS_MAX];
	Shoal__ShardAssignment *sp[MB_SHARDS_MAX];
};

static char id_n1[] = "n1", id_n2[] = "n2", id_n3[] = "n3";
static char ep_n1[] = "tcp://127.0.0.1:7101";
static char ep_n2[] = "tcp://127.0.0.1:7102";
static char ep_n3[] = "tcp://127.0.0.1:7103";
static char empty[] = "";

/* Three nodes (n1 <-> n2 peers, n3 alone), shard s on node s % 3 with its
 * peer as replica, epoch 5. */
static void
mb_init(struct mb *b, size_t n_shards)
{
	static char *ids[] = { id_n1, id_n2, id_n3 };
	static char *eps[] = { ep_n1, ep_n2, ep_n3 };
	static char *peers[] = { id_n2, id_n1, empty };

	ck_assert_uint_le(n_shards, MB_SHARDS_MAX);
	memset(b, 0, sizeof(*b));
	shoal__shard_map__init(&b->m);
	for (size_t i = 0; i < 3; i++) {
		shoal__node_info__init(&b->nodes[i]);
		b->nodes[i].id = ids[i];
		b->nodes[i].endpoint = eps[i];
		b->nodes[i].peer = peers[i];
		b->np[i] = &b->nodes[i];
	}
	for (size_t s = 0; s < n_shards; s++) {
		shoal__shard_assignment__init(&b->shards[s]);
		b->shards[s].primary = ids[s % 3];
		b->shards[s].replica = peers[s % 3];
		b->sp[s] = &b->shards[s];
	}
	b->m.epoch = 5;
	b->m.n_nodes = 3;
	b->m.nodes = b->np;
	b->m.n_shards = n_shards;
	b->m.shards = b->sp;
}

/* Pack m and unpack it as a peer's map for `shards` shards. */
static Shoal__ShardMap *
roundtrip(const Shoal__ShardMap *m, uint32_t shards)
{
	size_t len = 0;
	void *p = shardmap_pack(m, &len);
	Shoal__ShardMap *out;

	ck_assert_ptr_nonnull(p);
	out = shardmap_unpack(p, len, shards);
	free(p);
	return out;
}

/* Field by field equality of two maps. */
static void
assert_map_eq(const Shoal__ShardMap *a, const Shoal__ShardMap *b)
{
	ck_assert_uint_eq(a->epoch, b->epoch);
	ck_assert_uint_eq(a->n_nodes, b->n_nodes);
	for (size_t i = 0; i < a->n_nodes; i++) {
		ck_assert_str_eq(a->nodes[i]->id, b->nodes[i]->id);
		ck_assert_str_eq(a->nodes[i]->endpoint, b->nodes[i]->endpoint);
		ck_assert_str_eq(a->nodes[i]->peer, b->nodes[i]->peer);
	}
	ck_assert_uint_eq(a->n_shards, b->n_shards);
	for (size_t s = 0; s < a->n_shards; s++) {
		ck_assert_str_eq(a->shards[s]->primary, b->shards[s]->primary);
		ck_assert_str_eq(a->shards[s]->replica, b->shards[s]->replica);
	}
}

static char *
str_of(size_t n, char c)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- derive -------------------------------------------------------- */

static struct cfg_node cfg_nodes[3] = {
	{ .id = id_n1, .endpoint = ep_n1, .peer = id_n2 },
	{ .id = id_n2, .endpoint = ep_n2, .peer = id_n1 },
	{ .id = id_n3, .endpoint = ep_n3, .peer = NULL },
};

static struct config
cfg_of(size_t n_nodes, uint32_t shards)
{
	struct config c;

	memset(&c, 0, sizeof(c));
	c.cluster.shards = shards;
	c.nodes = cfg_nodes;
	c.n_nodes = n_nodes;
	return c;
}

START_TEST(test_shardmap_derive_follows_config_order)
{
	struct config cfg = cfg_of(3, 8);
	Shoal__ShardMap *m = shardmap_derive(&cfg);

	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->epoch, 1);
	ck_assert_uint_eq(m->n_nodes, 3);
	ck_assert_str_eq(m->nodes[0]->id, "n1");
	ck_assert_str_eq(m->nodes[0]->endpoint, "tcp://127.0.0.1:7101");
	ck_assert_str_eq(m->nodes[0]->peer, "n2");
	ck_assert_str_eq(m->nodes[1]->id, "n2");
	ck_assert_str_eq(m->nodes[1]->endpoint, "tcp://127.0.0.1:7102");
	ck_assert_str_eq(m->nodes[1]->peer, "n1");
	ck_assert_str_eq(m->nodes[2]->id, "n3");
	ck_assert_str_eq(m->nodes[2]->endpoint, "tcp://127.0.0.1:7103");
	ck_assert_str_eq(m->nodes[2]->peer, ""); /* no peer */
	ck_assert_uint_eq(m->n_shards, 8);
	for (uint32_t s = 0; s < 8; s++) {
		static const char *const prim[] = { "n1", "n2", "n3" };
		static const char *const repl[] = { "n2", "n1", "" };

		ck_assert_str_eq(m->shards[s]->primary, prim[s % 3]);
		ck_assert_str_eq(m->shards[s]->replica, repl[s % 3]);
		ck_assert_str_eq(shardmap_primary(m, s), prim[s % 3]);
	}
	shardmap_free(m);
}
END_TEST

START_TEST(test_shardmap_derive_single_node_single_shard)
{
	struct cfg_node solo = { .id = id_n3, .endpoint = ep_n3, .peer = NULL };
	struct config cfg = cfg_of(1, 1);
	Shoal__ShardMap *m, *back;

	cfg.nodes = &solo;
	m = shardmap_derive(&cfg);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->epoch, 1);
	ck_assert_uint_eq(m->n_nodes, 1);
	ck_assert_uint_eq(m->n_shards, 1);
	ck_assert_str_eq(m->shards[0]->primary, "n3");
	ck_assert_str_eq(m->shards[0]->replica, "");
	back = roundtrip(m, 1);
	ck_assert_ptr_nonnull(back);
	assert_map_eq(m, back);
	shardmap_free(back);
	shardmap_free(m);
}
END_TEST

/* Fewer shards than nodes: the last nodes own nothing, the map is valid. */
START_TEST(test_shardmap_derive_fewer_shards_than_nodes)
{
	struct config cfg = cfg_of(3, 2);
	Shoal__ShardMap *m = shardmap_derive(&cfg);
	Shoal__ShardMap *back;

	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->n_nodes, 3);
	ck_assert_uint_eq(m->n_shards, 2);
	ck_assert_str_eq(shardmap_primary(m, 0), "n1");
	ck_assert_str_eq(shardmap_primary(m, 1), "n2");
	ck_assert_ptr_null(shardmap_primary(m, 2));
	back = roundtrip(m, 2);
	ck_assert_ptr_nonnull(back);
	assert_map_eq(m, back);
	shardmap_free(back);
	shardmap_free(m);
}
END_TEST

/* The default 256 and the maximum 65536 shards both derive and pass
 * the checks a peer's map goes through. */
START_TEST(test_shardmap_derive_passes_unpack_checks)
{
	static const uint32_t counts[] = { 1, 3, 256, 65536 };

	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		struct config cfg = cfg_of(3, counts[k]);
		Shoal__ShardMap *m = shardmap_derive(&cfg);
		Shoal__ShardMap *back;

		ck_assert_ptr_nonnull(m);
		ck_assert_uint_eq(m->n_shards, counts[k]);
		back = roundtrip(m, counts[k]);
		ck_assert_ptr_nonnull(back);
		assert_map_eq(m, back);
		ck_assert_str_eq(shardmap_primary(back, counts[k] - 1),
				 cfg_nodes[(counts[k] - 1) % 3].id);
		shardmap_free(back);
		shardmap_free(m);
	}
}
END_TEST

/* ---- lookups, dup, free -------------------------------------------- */

START_TEST(test_shardmap_node_and_primary_lookups)
{
	struct config cfg = cfg_of(3, 4);
	Shoal__ShardMap *m = shardmap_derive(&cfg);
	const Shoal__NodeInfo *ni;

	ni = shardmap_node(m, "n2");
	ck_assert_ptr_nonnull(ni);
	ck_assert_ptr_eq(ni, m->nodes[1]);
	ck_assert_str_eq(ni->endpoint, "tcp://127.0.0.1:7102");
	ck_assert_ptr_null(shardmap_node(m, "n4"));
	ck_assert_ptr_null(shardmap_node(m, ""));
	ck_assert_ptr_null(shardmap_node(m, "N1")); /* ids are exact */
	ck_assert_ptr_null(shardmap_node(m, "n"));
	ck_assert_ptr_null(shardmap_node(m, "n12"));

	ck_assert_str_eq(shardmap_primary(m, 0), "n1");
	ck_assert_str_eq(shardmap_primary(m, 3), "n1");
	ck_assert_ptr_null(shardmap_primary(m, 4));
	ck_assert_ptr_null(shardmap_primary(m, UINT32_MAX));
	shardmap_free(m);
}
END_TEST

/* The one count of a node's shards by role: 8 shards over n1, n2, n3
 * (primaries n1 n2 n3 n1 n2 n3 n1 n2; replicas n2 n1 - n2 n1 - n2 n1). */
START_TEST(test_shardmap_shards_of_counts_and_lists)
{
	struct config cfg = cfg_of(3, 8);
	Shoal__ShardMap *m = shardmap_derive(&cfg);
	uint32_t v[8];

	ck_assert_uint_eq(shardmap_shards_of(m, "n1", SHARDMAP_PRIMARY, v), 3);
	ck_assert_uint_eq(v[0], 0);
	ck_assert_uint_eq(v[1], 3);
	ck_assert_uint_eq(v[2], 6);
	ck_assert_uint_eq(shardmap_shards_of(m, "n1", SHARDMAP_REPLICA, v), 3);
	ck_assert_uint_eq(v[0], 1);
	ck_assert_uint_eq(v[1], 4);
	ck_assert_uint_eq(v[2], 7);
	ck_assert_uint_eq(shardmap_shards_of(m, "n3", SHARDMAP_PRIMARY, NULL),
			  2);
	ck_assert_uint_eq(shardmap_shards_of(m, "n3", SHARDMAP_REPLICA, NULL),
			  0);
	ck_assert_uint_eq(shardmap_shards_of(m, "n4", SHARDMAP_PRIMARY, NULL),
			  0);
	ck_assert_uint_eq(shardmap_shards_of(m, "", SHARDMAP_REPLICA, NULL), 2);
	shardmap_free(m);
}
END_TEST

START_TEST(test_shardmap_dup_is_deep)
{
	struct config cfg = cfg_of(3, 6);
	Shoal__ShardMap *m = shardmap_derive(&cfg);
	Shoal__ShardMap *d = shardmap_dup(m);
	Shoal__ShardMap *ref = shardmap_derive(&cfg);

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_ne(d, m);
	ck_assert_ptr_ne(d->nodes[0], m->nodes[0]);
	ck_assert_ptr_ne(d->nodes[0]->id, m->nodes[0]->id);
	ck_assert_ptr_ne(d->shards[0]->primary, m->shards[0]->primary);
	assert_map_eq(m, d);
	shardmap_free(m); /* the copy outlives its source */
	assert_map_eq(ref, d);
	shardmap_free(ref);
	shardmap_free(d);
}
END_TEST

START_TEST(test_shardmap_free_null_does_nothing)
{
	shardmap_free(NULL);
}
END_TEST

/* ---- pack / unpack ------------------------------------------------- */

START_TEST(test_shardmap_pack_unpack_round_trip)
{
	struct mb b;
	Shoal__ShardMap *m;

	mb_init(&b, 10);
	b.m.epoch = 12345678901234ull;
	m = roundtrip(&b.m, 10);
	ck_assert_ptr_nonnull(m);
	assert_map_eq(&b.m, m);
	ck_assert_uint_eq(m->epoch, 12345678901234ull);
	shardmap_free(m);

	b.m.epoch = UINT64_MAX;
	m = roundtrip(&b.m, 10);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->epoch, UINT64_MAX);
	shardmap_free(m);
}
END_TEST

START_TEST(test_shardmap_pack_sets_length)
{
	struct mb b;
	size_t len = 0;
	void *p;

	mb_init(&b, 4);
	p = shardmap_pack(&b.m, &len);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(len, shoal__shard_map__get_packed_size(&b.m));
	ck_assert_uint_gt(len, 0);
	free(p);
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_wrong_shard_count)
{
	struct mb b;
	Shoal__ShardMap *m;

	mb_init(&b, 8);
	ck_assert_ptr_null(roundtrip(&b.m, 7));
	ck_assert_ptr_null(roundtrip(&b.m, 9));
	ck_assert_ptr_null(roundtrip(&b.m, 0));
	ck_assert_ptr_null(roundtrip(&b.m, 256));
	m = roundtrip(&b.m, 8);
	ck_assert_ptr_nonnull(m);
	shardmap_free(m);

	/* a map without shards is never right: shards is at least 1 */
	mb_init(&b, 0);
	ck_assert_ptr_null(roundtrip(&b.m, 1));
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_epoch_zero)
{
	struct mb b;

	mb_init(&b, 4);
	b.m.epoch = 0;
	ck_assert_ptr_null(roundtrip(&b.m, 4));
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_unknown_primary)
{
	struct mb b;
	char ghost[] = "n9";

	mb_init(&b, 4);
	b.shards[3].primary = ghost;
	ck_assert_ptr_null(roundtrip(&b.m, 4));

	mb_init(&b, 4);
	b.shards[0].primary = empty;
	ck_assert_ptr_null(roundtrip(&b.m, 4));
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_unknown_replica)
{
	struct mb b;
	char ghost[] = "n9";
	Shoal__ShardMap *m;

	mb_init(&b, 4);
	b.shards[1].replica = ghost;
	ck_assert_ptr_null(roundtrip(&b.m, 4));

	/* no replica at all is fine */
	mb_init(&b, 4);
	b.shards[1].replica = empty;
	m = roundtrip(&b.m, 4);
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->shards[1]->replica, "");
	shardmap_free(m);
}
END_TEST

/* A node that was dropped from the list while shards still point at it. */
START_TEST(test_shardmap_unpack_rejects_shard_on_dropped_node)
{
	struct mb b;

	mb_init(&b, 6);
	b.m.n_nodes = 2; /* n3 gone; shards 2 and 5 are still on it */
	ck_assert_ptr_null(roundtrip(&b.m, 6));
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_no_nodes)
{
	struct mb b;

	mb_init(&b, 0);
	b.m.n_nodes = 0;
	ck_assert_ptr_null(roundtrip(&b.m, 0));
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_empty_node_fields)
{
	struct mb b;
	Shoal__ShardMap *m;

	mb_init(&b, 3);
	b.nodes[2].endpoint = empty;
	ck_assert_ptr_null(roundtrip(&b.m, 3));

	/* an empty id, even for a node that owns nothing */
	mb_init(&b, 2);
	b.nodes[2].id = empty;
	ck_assert_ptr_null(roundtrip(&b.m, 2));

	/* an empty peer is "no peer" */
	mb_init(&b, 3);
	b.nodes[0].peer = empty;
	m = roundtrip(&b.m, 3);
	ck_assert_ptr_nonnull(m);
	shardmap_free(m);
}
END_TEST

/* Strings are bounded at 1024 octets: 1024 passes, 1025 does not. */
START_TEST(test_shardmap_unpack_string_bounds)
{
	char *s1024 = str_of(1024, 'e');
	char *s1025 = str_of(1025, 'e');
	char *id1024 = str_of(1024, 'i');
	char *id1025 = str_of(1025, 'i');
	struct mb b;
	Shoal__ShardMap *m;

	mb_init(&b, 3);
	b.nodes[1].endpoint = s1024;
	b.nodes[1].peer = s1024;
	m = roundtrip(&b.m, 3);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(strlen(m->nodes[1]->endpoint), 1024);
	shardmap_free(m);

	mb_init(&b, 3);
	b.nodes[1].endpoint = s1025;
	ck_assert_ptr_null(roundtrip(&b.m, 3));

	mb_init(&b, 3);
	b.nodes[1].peer = s1025;
	ck_assert_ptr_null(roundtrip(&b.m, 3));

	/* a long id, used consistently by its shards */
	mb_init(&b, 3);
	b.nodes[2].id = id1024;
	b.shards[2].primary = id1024;
	m = roundtrip(&b.m, 3);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(shardmap_node(m, id1024));
	shardmap_free(m);

	mb_init(&b, 3);
	b.nodes[2].id = id1025;
	b.shards[2].primary = id1025;
	ck_assert_ptr_null(roundtrip(&b.m, 3));

	free(s1024);
	free(s1025);
	free(id1024);
	free(id1025);
}
END_TEST

/* At most 1024 nodes. */
START_TEST(test_shardmap_unpack_node_count_bound)
{
	enum { N = 1025 };
	Shoal__NodeInfo *nodes = calloc(N, sizeof(*nodes));
	Shoal__NodeInfo **np = calloc(N, sizeof(*np));
	char (*ids)[16] = calloc(N, sizeof(*ids));
	Shoal__ShardAssignment sa;
	Shoal__ShardAssignment *sap = &sa;
	Shoal__ShardMap m;
	Shoal__ShardMap *out;

	ck_assert_ptr_nonnull(nodes);
	ck_assert_ptr_nonnull(np);
	ck_assert_ptr_nonnull(ids);
	for (size_t i = 0; i < N; i++) {
		shoal__node_info__init(&nodes[i]);
		snprintf(ids[i], sizeof(ids[i]), "n%zu", i);
		nodes[i].id = ids[i];
		nodes[i].endpoint = ep_n1;
		np[i] = &nodes[i];
	}
	shoal__shard_assignment__init(&sa);
	sa.primary = ids[0];
	shoal__shard_map__init(&m);
	m.epoch = 1;
	m.nodes = np;
	m.n_shards = 1;
	m.shards = &sap;

	m.n_nodes = N - 1;
	out = roundtrip(&m, 1);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(out->n_nodes, N - 1);
	shardmap_free(out);

	m.n_nodes = N;
	ck_assert_ptr_null(roundtrip(&m, 1));

	free(nodes);
	free(np);
	free(ids);
}
END_TEST

/* Every proper prefix of a valid map is rejected: either protobuf-c
 * cannot parse it or what parses lacks shards. */
START_TEST(test_shardmap_unpack_rejects_truncated_bytes)
{
	struct mb b;
	size_t len = 0;
	uint8_t *p;
	Shoal__ShardMap *m;

	mb_init(&b, 12);
	p = shardmap_pack(&b.m, &len);
	for (size_t n = 0; n < len; n++) {
		/* exactly n readable bytes, so overreads show under ASan */
		uint8_t *copy = malloc(n ? n : 1);

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, p, n);
		m = shardmap_unpack(copy, n, 12);
		ck_assert_msg(m == NULL, "prefix of %zu of %zu accepted", n,
			      len);
		free(copy);
	}
	m = shardmap_unpack(p, len, 12);
	ck_assert_ptr_nonnull(m);
	shardmap_free(m);
	free(p);
}
END_TEST

START_TEST(test_shardmap_unpack_rejects_garbage)
{
	static const uint8_t junk1[] = { 0xff, 0xff, 0xff, 0xff, 0xff };
	/* a nodes field whose length runs past the end */
	static const uint8_t junk2[] = { 0x12, 0x7f, 0x0a };
	/* the epoch's tag with no value */
	static const uint8_t junk3[] = { 0x08 };
	static const char text[] = "HELO shard map";

	ck_assert_ptr_null(shardmap_unpack(junk1, sizeof(junk1), 1));
	ck_assert_ptr_null(shardmap_unpack(junk2, sizeof(junk2), 1));
	ck_assert_ptr_null(shardmap_unpack(junk3, sizeof(junk3), 1));
	ck_assert_ptr_null(shardmap_unpack(text, sizeof(text) - 1, 1));
	ck_assert_ptr_null(shardmap_unpack("", 0, 1));
}
END_TEST

/* Over WIRE_META_MAX is refused before it is read. */
START_TEST(test_shardmap_unpack_rejects_oversize)
{
	struct mb b;
	size_t len = 0;
	void *p;

	mb_init(&b, 2);
	p = shardmap_pack(&b.m, &len);
	ck_assert_ptr_null(shardmap_unpack(p, (size_t)WIRE_META_MAX + 1, 2));
	ck_assert_ptr_null(shardmap_unpack(p, SIZE_MAX, 2));
	free(p);
}
END_TEST

/* Random mutations of a valid map never crash and never yield a map
 * that breaks the promised invariants. */
START_TEST(test_shardmap_unpack_mutations_keep_invariants)
{
	struct mb b;
	size_t len = 0;
	uint8_t *p, *q;
	uint64_t rng = 0x2545f4914f6cdd1dull;

	mb_init(&b, 9);
	p = shardmap_pack(&b.m, &len);
	q = malloc(len);
	ck_assert_ptr_nonnull(q);
	for (int iter = 0; iter < 20000; iter++) {
		Shoal__ShardMap *m;
		int flips;

		memcpy(q, p, len);
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		flips = 1 + (int)(rng % 3);
		for (int f = 0; f < flips; f++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			q[(rng >> 8) % len] = (uint8_t)(rng >> 40);
		}
		m = shardmap_unpack(q, len, 9);
		if (m == NULL)
			continue;
		ck_assert_uint_ne(m->epoch, 0);
		ck_assert_uint_eq(m->n_shards, 9);
		ck_assert_uint_gt(m->n_nodes, 0);
		for (size_t i = 0; i < m->n_nodes; i++) {
			ck_assert_uint_gt(strlen(m->nodes[i]->id), 0);
			ck_assert_uint_gt(strlen(m->nodes[i]->endpoint), 0);
		}
		for (uint32_t s = 0; s < 9; s++) {
			ck_assert_ptr_nonnull(
				shardmap_node(m, shardmap_primary(m, s)));
			if (m->shards[s]->replica[0])
				ck_assert_ptr_nonnull(shardmap_node(
					m, m->shards[s]->replica));
		}
		shardmap_free(m);
	}
	free(q);
	free(p);
}
END_TEST

static Suite *
shardmap_suite(void)
{
	Suite *s = suite_create("shardmap");
	TCase *tc;

	tc = tcase_create("derive");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_shardmap_derive_follows_config_order);
	tcase_add_test(tc, test_shardmap_shards_of_counts_and_lists);
	tcase_add_test(tc, test_shardmap_derive_single_node_single_shard);
	tcase_add_test(tc, test_shardmap_derive_fewer_shards_than_nodes);
	tcase_add_test(tc, test_shardmap_derive_passes_unpack_checks);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_test(tc, test_shardmap_node_and_primary_lookups);
	tcase_add_test(tc, test_shardmap_dup_is_deep);
	tcase_add_test(tc, test_shardmap_free_null_does_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("unpack");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_shardmap_pack_unpack_round_trip);
	tcase_add_test(tc, test_shardmap_pack_sets_length);
	tcase_add_test(tc, test_shardmap_unpack_rejects_wrong_shard_count);
	tcase_add_test(tc, test_shardmap_unpack_rejects_epoch_zero);
	tcase_add_test(tc, test_shardmap_unpack_rejects_unknown_primary);
	tcase_add_test(tc, test_shardmap_unpack_rejects_unknown_replica);
	tcase_add_test(tc, test_shardmap_unpack_rejects_shard_on_dropped_node);
	tcase_add_test(tc, test_shardmap_unpack_rejects_no_nodes);
	tcase_add_test(tc, test_shardmap_unpack_rejects_empty_node_fields);
	tcase_add_test(tc, test_shardmap_unpack_string_bounds);
	tcase_add_test(tc, test_shardmap_unpack_node_count_bound);
	tcase_add_test(tc, test_shardmap_unpack_rejects_truncated_bytes);
	tcase_add_test(tc, test_shardmap_unpack_rejects_garbage);
	tcase_add_test(tc, test_shardmap_unpack_rejects_oversize);
	tcase_add_test(tc, test_shardmap_unpack_mutations_keep_invariants);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(shardmap_suite)
