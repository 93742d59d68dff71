/* Check suite for node/cluster/owner.c, built without the rest of the
 * node: an owner on a fresh LMDB store, with hooks that count what it
 * asks of the node above it. The rules under test are those of
 * docs/replication.md: the failover conditions, the epoch comparison
 * (lib/shardmap.c shardmap_newer), the fencing rule (a lease from echoes,
 * a stall fences, fenced until the peer's map after a lapse), freezes and
 * owner_may_start().
 *
 * Time is the real monotonic clock: each test sets failover_after_ms
 * (the lease is half of it) and waits past it where the rule needs a
 * silence; the checks leave a wide margin either side. */
#include "node/cluster/owner.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"
#include "node/rpc/rpc.h"
#include "node/store/store.h"
#include "proto/cli_node.pb-c.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/store_helper.h"

#define T_SHARDS 4 /* n1 primary of 0 and 2, n2 of 1 and 3 */
#define T_MINE 0
#define T_MINE2 2
#define T_PEERS 1

static char t_dir[64];
static struct config *t_cfg;
static struct event_base *t_base;
static struct store *t_store;
static struct owner *t_owner;

/* What the owner asked of the node. */
static int t_map_changes, t_fence_changes, t_revoked, t_due;
static bool t_last_fence;
static uint64_t t_busy; /* deliveries in flight, for every question */

static void
t_hook_map_changed(void *arg, const Shoal__ShardMap *map)
{
	(void)arg;
	ck_assert_ptr_eq(map, owner_map(t_owner));
	t_map_changes++;
}

static void
t_hook_fence_changed(void *arg, bool may_deliver)
{
	(void)arg;
	t_fence_changes++;
	t_last_fence = may_deliver;
}

static void
t_hook_starts_revoked(void *arg)
{
	(void)arg;
	t_revoked++;
}

static void
t_hook_work_due(void *arg)
{
	(void)arg;
	t_due++;
}

static uint64_t
t_hook_in_flight(void *arg, const uint8_t *shards, size_t n)
{
	(void)arg;
	(void)shards;
	(void)n;
	return t_busy;
}

static bool t_unsaved; /* what results_unsaved says */

static bool
t_hook_results_unsaved(void *arg)
{
	(void)arg;
	return t_unsaved;
}

static int
t_hook_supp_apply(void *arg, struct store_txn *t, const Shoal__ReplRecord *rec)
{
	(void)arg;
	(void)t;
	(void)rec;
	return 0;
}

static int
t_hook_supp_purge(void *arg, struct store_txn *t, uint32_t shard, uint64_t *n)
{
	(void)arg;
	(void)t;
	(void)shard;
	(void)n;
	return 0;
}

static int
t_hook_supp_touch(void *arg, struct store_txn *t, uint64_t *n)
{
	(void)arg;
	(void)t;
	(void)n;
	return 0;
}

static const struct cluster_hooks t_hooks = {
	.map_changed = t_hook_map_changed,
	.fence_changed = t_hook_fence_changed,
	.starts_revoked = t_hook_starts_revoked,
	.work_due = t_hook_work_due,
	.in_flight = t_hook_in_flight,
	.results_unsaved = t_hook_results_unsaved,
	.supp_apply = t_hook_supp_apply,
	.supp_purge = t_hook_supp_purge,
	.supp_touch = t_hook_supp_touch,
};

/* A pair n1/n2; the owner under test is n1's (made by t_start(), after a
 * test has adjusted t_cfg). */
static void
t_setup(void)
{
	char conf[128], text[1024], err[256], n1[96];
	FILE *f;

	log_init("test_owner", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "owner");
	snprintf(text, sizeof(text),
		 "cluster: { name = \"t\"; shards = %d; };\n"
		 "nodes = (\n"
		 "  { id = \"n1\"; endpoint = \"tcp://127.0.0.1:1\";"
		 " peer = \"n2\"; data_dir = \"%s/n1\";"
		 " map_size = 1048576; },\n"
		 "  { id = \"n2\"; endpoint = \"tcp://127.0.0.1:2\";"
		 " peer = \"n1\"; data_dir = \"%s/n2\"; }\n"
		 ");\n"
		 "router: { hostname = \"t.example\";"
		 " listen = ( { address = \"127.0.0.1:1\"; } ); };\n"
		 "delivery: { dns_servers = [ \"127.0.0.1:9\" ]; };\n"
		 "replication: { heartbeat_ms = 20; failover_after_ms = 400;"
		 " peer_timeout_ms = 400; };\n",
		 T_SHARDS, t_dir, t_dir);
	snprintf(conf, sizeof(conf), "%s/shoal.conf", t_dir);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_msg(config_load(conf, &t_cfg, err, sizeof(err)) == 0, "%s",
		      err);
	snprintf(n1, sizeof(n1), "%s/n1", t_dir);
	ck_assert_int_eq(mkdir(n1, 0700), 0);
	ck_assert_int_eq(store_open(n1, 1048576, &t_store), 0);
	t_base = event_base_new();
	t_map_changes = t_fence_changes = t_revoked = t_due = 0;
	t_last_fence = false;
	t_busy = 0;
	t_unsaved = false;
	t_owner = NULL;
}

static void
t_teardown(void)
{
	owner_free(t_owner);
	store_close(t_store);
	event_base_free(t_base);
	config_free(t_cfg);
	check_rmtree(t_dir);
}

/* The owner's clock: the tests move it on instead of waiting for it. */
static uint64_t t_clock;

static uint64_t
t_now(void)
{
	return t_clock;
}

static uint64_t
t_clock_read(void *arg)
{
	(void)arg;
	return t_clock;
}

static void
t_start(void)
{
	t_clock = 1000000;
	t_owner = owner_new(t_base, t_cfg, config_find_node(t_cfg, "n1"),
			    t_store, NULL, shardmap_derive(t_cfg), &t_hooks);
	owner_set_clock(t_owner, t_clock_read, NULL);
}

static uint64_t
t_after_ms(void)
{
	return t_cfg->replication.failover_after_ms;
}

/* Time passes for the owner: no call reaches it meanwhile, as in a pause
 * or a silence. */
static void
t_pass_ms(uint64_t ms)
{
	t_clock += ms;
}

/* The peer's message with its map, echoing a time of ours. */
static void
t_peer_map(uint64_t echo_ms)
{
	owner_heard_peer(t_owner, t_now(), echo_ms);
	owner_heard_peer_map(t_owner, t_now(), echo_ms);
}

/* ---- the failover rule ------------------------------------------------- */

/* docs/replication.md "Failover": the replica takes over when the peer
 * has been silent for failover_after_ms, at least one router was heard in
 * that time, and none of those routers still hears the peer. */
static const struct {
	const char *why;
	bool peer_heard_now;   /* else silent since the start */
	int routers;           /* heard just before the decision */
	bool first_sees_peer;
	bool second_sees_peer;
	bool routers_stale;    /* heard only before the silence began */
	bool takes_over;
} t_failover_rows[] = {
	{ "silent, a router agrees", false, 1, false, false, false, true },
	{ "silent, two routers agree", false, 2, false, false, false, true },
	{ "silent, no router heard", false, 0, false, false, false, false },
	{ "silent, the router still sees the peer", false, 1, true, false,
	  false, false },
	{ "silent, one of two routers sees the peer", false, 2, false, true,
	  false, false },
	{ "silent, routers heard too long ago", false, 1, false, false, true,
	  false },
	{ "peer heard, a router does not see it", true, 1, false, false, false,
	  false },
};

START_TEST(test_failover_needs_silence_and_every_router_agreeing)
	{
		const char *peer_of_1;

		t_cfg->replication.failover_after_ms = 150;
		t_start();
		if (t_failover_rows[_i].routers_stale)
			owner_heard_router(t_owner, "r1", false, 0);
		t_pass_ms(t_after_ms() + 100);
		if (t_failover_rows[_i].peer_heard_now)
			owner_heard_peer(t_owner, t_now(), 0);
		if (!t_failover_rows[_i].routers_stale &&
		    t_failover_rows[_i].routers >= 1)
			owner_heard_router(t_owner, "r1",
					   t_failover_rows[_i].first_sees_peer,
					   0);
		if (t_failover_rows[_i].routers >= 2)
			owner_heard_router(t_owner, "r2",
					   t_failover_rows[_i].second_sees_peer,
					   0);
		owner_tick(t_owner);
		peer_of_1 = shardmap_primary(owner_map(t_owner), T_PEERS);
		ck_assert_msg(owner_is_primary(t_owner, T_PEERS) ==
				      t_failover_rows[_i].takes_over,
			      "%s: shard %d's primary is %s",
			      t_failover_rows[_i].why, T_PEERS, peer_of_1);
		if (t_failover_rows[_i].takes_over) {
			ck_assert_int_eq(owner_map(t_owner)->epoch, 2);
			ck_assert_str_eq(owner_map(t_owner)->author, "n1");
			ck_assert_int_eq(t_map_changes, 1);
			ck_assert_uint_eq(owner_primary_shards(t_owner, NULL),
					  T_SHARDS);
		} else {
			ck_assert_int_eq(owner_map(t_owner)->epoch, 1);
			ck_assert_int_eq(t_map_changes, 0);
		}
	}
END_TEST

/* Without a peer to take from (replication.mode = "none"), never. */
START_TEST(test_no_failover_without_replication)
	{
		t_cfg->replication.failover_after_ms = 100;
		t_cfg->replication.mode = CFG_REPL_NONE;
		t_start();
		t_pass_ms(t_after_ms() + 50);
		owner_heard_router(t_owner, "r1", false, 0);
		owner_tick(t_owner);
		ck_assert(!owner_is_primary(t_owner, T_PEERS));
		ck_assert_int_eq(t_map_changes, 0);
	}
END_TEST

/* ---- epochs -------------------------------------------------------------- */

/* A copy of the derived map at epoch, by author, with primary (and its
 * peer as replica) for every shard when primary is not NULL. */
static Shoal__ShardMap *
t_map(uint64_t epoch, const char *author, const char *primary)
{
	Shoal__ShardMap *m = shardmap_derive(t_cfg);

	m->epoch = epoch;
	if (m->author != protobuf_c_empty_string)
		free(m->author);
	m->author = xstrdup(author);
	for (size_t s = 0; primary && s < m->n_shards; s++) {
		Shoal__ShardAssignment *a = m->shards[s];
		bool n1 = strcmp(primary, "n1") == 0;

		free(a->primary);
		free(a->replica);
		a->primary = xstrdup(primary);
		a->replica = xstrdup(n1 ? "n2" : "n1");
	}
	return m;
}

/* After n2's epoch 5 (author "n2") is in force: which offers replace it
 * (lib/shardmap.c shardmap_newer, docs/replication.md "Maps are compared
 * by epoch"). */
static const struct {
	uint64_t epoch;
	const char *author;
	bool adopted;
} t_offer_rows[] = {
	{ 4, "a", false },   /* older, whoever made it */
	{ 5, "n2", false },  /* the same map */
	{ 5, "n3", false },  /* same epoch, author sorts after */
	{ 5, "n1", true },   /* same epoch, author sorts first */
	{ 5, "", true },     /* "" (the config's) sorts first of all */
	{ 6, "z", true },    /* newer, whoever made it */
};

START_TEST(test_offer_takes_newer_epochs_and_at_equal_the_first_author)
	{
		Shoal__ShardMap *base, *m;

		t_start();
		base = t_map(5, "n2", NULL);
		ck_assert(owner_offer(t_owner, base));
		shardmap_free(base);
		ck_assert_int_eq(t_map_changes, 1);
		m = t_map(t_offer_rows[_i].epoch, t_offer_rows[_i].author,
			  "n2");
		ck_assert_int_eq(owner_offer(t_owner, m),
				 t_offer_rows[_i].adopted);
		ck_assert_int_eq(t_map_changes,
				 t_offer_rows[_i].adopted ? 2 : 1);
		ck_assert_int_eq(owner_map(t_owner)->epoch,
				 t_offer_rows[_i].adopted ?
					 t_offer_rows[_i].epoch :
					 5);
		/* adopted: every shard went to n2 */
		ck_assert_int_eq(owner_is_primary(t_owner, T_MINE),
				 !t_offer_rows[_i].adopted);
		ck_assert_uint_eq(owner_primary_shards(t_owner, NULL),
				  t_offer_rows[_i].adopted ? 0 : 2);
		shardmap_free(m);
	}
END_TEST

/* Untrusted maps are checked again: one for another shard count, or one
 * that does not list this node, is refused however new. */
START_TEST(test_offer_refuses_malformed_maps_and_maps_without_us)
	{
		Shoal__ShardMap *m;
		Shoal__ShardMap bad;
		Shoal__NodeInfo *nodes[1];

		t_start();
		m = t_map(9, "n2", "n2");
		bad = *m;
		bad.n_shards = T_SHARDS - 1;
		ck_assert(!owner_offer(t_owner, &bad));
		/* a map of n2 alone (its shards' replica dropped) */
		nodes[0] = m->nodes[1];
		ck_assert_str_eq(nodes[0]->id, "n2");
		bad = *m;
		bad.n_nodes = 1;
		bad.nodes = nodes;
		for (size_t s = 0; s < m->n_shards; s++)
			m->shards[s]->replica[0] = '\0';
		ck_assert(!owner_offer(t_owner, &bad));
		ck_assert(!owner_offer(t_owner, NULL));
		ck_assert_int_eq(owner_map(t_owner)->epoch, 1);
		ck_assert_int_eq(t_map_changes, 0);
		shardmap_free(m);
	}
END_TEST

/* ---- fencing --------------------------------------------------------- */

/* A node with a peer starts fenced, stays so on contact alone, and may
 * deliver once it hears its peer's map in a message echoing its time. */
START_TEST(test_starts_fenced_until_the_peers_map)
	{
		uint64_t t0;

		t_start();
		t0 = t_now();
		ck_assert(!owner_may_deliver(t_owner));
		owner_heard_peer(t_owner, t_now(), t_now());
		owner_heard_router(t_owner, "r1", true, t_now());
		ck_assert_msg(!owner_may_deliver(t_owner),
			      "contact without the peer's map unfenced a node "
			      "just started");
		ck_assert_int_eq(t_fence_changes, 0);
		t_peer_map(t_now());
		ck_assert(owner_may_deliver(t_owner));
		ck_assert_int_eq(t_fence_changes, 1);
		ck_assert(t_last_fence);
		ck_assert_uint_eq(t_now(), t0); /* no lease could lapse */
	}
END_TEST

/* Without the peer's map, failover_after_ms of contact unfences too (the
 * peer may be gone for good: its shards are ours then). */
START_TEST(test_without_the_peers_map_failover_after_ms_unfences)
	{
		uint64_t until;

		t_start();
		until = t_now() + t_after_ms() + 100;
		while (t_now() < until) {
			owner_heard_router(t_owner, "r1", false,
					   t_now());
			if (t_now() + 100 < until - 100)
				ck_assert(!owner_may_deliver(t_owner));
			t_pass_ms(20);
		}
		owner_heard_router(t_owner, "r1", false, t_now());
		ck_assert(owner_may_deliver(t_owner));
	}
END_TEST

/* The lease counts from echoes: messages that keep arriving but echo an
 * old time of ours (they waited through a pause) let it lapse; after the
 * lapse the node is fenced until the peer's map comes in a message that
 * echoes a time after it. */
START_TEST(test_lease_counts_from_echoes_and_a_lapse_needs_the_peers_map)
	{
		uint64_t stale, until;

		t_start();
		t_peer_map(t_now());
		ck_assert(owner_may_deliver(t_owner));
		stale = t_now();
		until = stale + t_after_ms() / 2 + 100;
		while (t_now() < until) {
			owner_heard_peer(t_owner, t_now(), stale);
			owner_heard_router(t_owner, "r1", true, stale);
			t_pass_ms(20);
		}
		ck_assert_msg(!owner_may_deliver(t_owner),
			      "a lease kept alive by stale echoes");
		ck_assert(!t_last_fence);
		/* fresh contact again, but no map: still fenced */
		owner_heard_router(t_owner, "r1", true, t_now());
		owner_heard_peer(t_owner, t_now(), t_now());
		ck_assert(!owner_may_deliver(t_owner));
		/* the map in a message from before the lapse: still fenced */
		owner_heard_peer_map(t_owner, t_now(), stale);
		ck_assert_msg(!owner_may_deliver(t_owner),
			      "unfenced by a map that predates the lapse");
		t_peer_map(t_now());
		ck_assert(owner_may_deliver(t_owner));
		ck_assert(t_last_fence);
	}
END_TEST

/* A loop that did not run for longer than the lease (a pause seen from
 * inside) fences as a lapse does, from when it is noticed: even a map
 * echoing a time just before that does not unfence. */
START_TEST(test_a_stalled_loop_fences)
	{
		uint64_t before;

		t_start();
		t_peer_map(t_now());
		owner_tick(t_owner);
		ck_assert(owner_may_deliver(t_owner));
		t_pass_ms(t_after_ms() / 2 + 100);
		before = t_now();
		t_pass_ms(5);
		/* fresh messages, read after the stall */
		owner_heard_peer(t_owner, t_now(), t_now());
		ck_assert(!owner_may_deliver(t_owner));
		owner_tick(t_owner); /* the loop runs again */
		owner_heard_peer_map(t_owner, t_now(), before);
		ck_assert(!owner_may_deliver(t_owner));
		t_peer_map(t_now());
		ck_assert(owner_may_deliver(t_owner));
	}
END_TEST

/* A peer that sends no clock (an older release) counts from arrival;
 * its map then counts unless the lease lapsed. */
START_TEST(test_a_peer_without_echo_counts_from_arrival)
	{
		t_start();
		owner_heard_peer(t_owner, 0, 0);
		owner_heard_peer_map(t_owner, 0, 0);
		ck_assert(owner_may_deliver(t_owner));
	}
END_TEST

/* The peer took our shards (a newer map) while our disk was full: the
 * map cannot be stored, so which shards are ours is not known and the
 * node stays fenced however often it hears the peer, until the map is
 * stored. Before, hearing the peer's map unfenced it with the old map,
 * under which it still owned the shards the peer now delivers. */
START_TEST(test_a_newer_map_not_stored_fences)
	{
		struct store_txn *reader;
		Shoal__ShardMap *m;

		t_start();
		t_peer_map(t_now());
		ck_assert(owner_may_deliver(t_owner));
		ck_assert(owner_is_primary(t_owner, T_MINE));
		reader = store_helper_fill(t_store);
		m = t_map(2, "n2", "n2");
		ck_assert(!owner_offer(t_owner, m));
		ck_assert_int_eq(owner_map(t_owner)->epoch, 1); /* the control */
		t_pass_ms(t_cfg->replication.heartbeat_ms);
		t_peer_map(t_now());
		owner_heard_router(t_owner, "r1", true, t_now());
		ck_assert_msg(!owner_may_deliver(t_owner),
			      "unfenced with a map older than the peer's");
		ck_assert(!t_last_fence);
		/* failover_after_ms does not lift it either */
		t_pass_ms(t_after_ms() + 100);
		t_peer_map(t_now());
		owner_heard_router(t_owner, "r1", true, t_now());
		ck_assert(!owner_may_deliver(t_owner));
		/* room again: the next offer is stored and the fence lifts */
		store_helper_unpin(reader);
		ck_assert(owner_offer(t_owner, m));
		shardmap_free(m);
		t_peer_map(t_now());
		ck_assert(owner_may_deliver(t_owner));
		ck_assert(!owner_is_primary(t_owner, T_MINE));
	}
END_TEST

/* No peer to fear (replication.mode = "none"): never fenced. */
START_TEST(test_never_fenced_without_replication)
	{
		t_cfg->replication.mode = CFG_REPL_NONE;
		t_start();
		ck_assert(owner_may_deliver(t_owner));
		ck_assert(owner_may_start(t_owner, T_MINE));
		t_pass_ms(t_after_ms() / 2 + 50); /* a lease would lapse */
		ck_assert(owner_may_deliver(t_owner));
		ck_assert_int_eq(t_fence_changes, 0);
	}
END_TEST

/* ---- freezes and owner_may_start() ------------------------------------- */

/* A shard moved away is frozen: none of its deliveries starts, those
 * waiting are asked again; the others go on. */
START_TEST(test_frozen_shard_starts_nothing)
	{
		t_start();
		t_peer_map(t_now());
		owner_set_frozen(t_owner, T_MINE);
		ck_assert_int_eq(t_revoked, 1);
		ck_assert(owner_is_frozen(t_owner, T_MINE));
		ck_assert(!owner_is_frozen(t_owner, T_MINE2));
		ck_assert(!owner_may_start(t_owner, T_MINE));
		ck_assert(owner_may_start(t_owner, T_MINE2));
		ck_assert_msg(owner_is_primary(t_owner, T_MINE),
			      "a freeze is no change of ownership");
		owner_set_frozen(t_owner, -1);
		ck_assert(!owner_is_frozen(t_owner, T_MINE));
		ck_assert(owner_may_start(t_owner, T_MINE));
		ck_assert_int_eq(t_revoked, 1);
	}
END_TEST

/* owner_may_start(): the one answer to "may this delivery start now". */
enum t_state { T_UNFENCED, T_FENCED, T_FROZEN, T_HANDING };

static const struct {
	const char *why;
	enum t_state state;
	uint32_t shard;
	bool may;
} t_start_rows[] = {
	{ "own shard", T_UNFENCED, T_MINE, true },
	{ "the peer's shard", T_UNFENCED, T_PEERS, false },
	{ "fenced", T_FENCED, T_MINE, false },
	{ "own shard, frozen", T_FROZEN, T_MINE, false },
	{ "own shard, another frozen", T_FROZEN, T_MINE2, true },
	{ "own shard, handed over", T_HANDING, T_MINE, false },
	{ "own shard 2, handed over with 0", T_HANDING, T_MINE2, false },
	{ "out of range", T_UNFENCED, T_SHARDS, false },
};

START_TEST(test_may_start_table)
	{
		t_start();
		if (t_start_rows[_i].state != T_FENCED)
			t_peer_map(t_now());
		if (t_start_rows[_i].state == T_FROZEN)
			owner_set_frozen(t_owner, T_MINE);
		if (t_start_rows[_i].state == T_HANDING) {
			/* a planned failover of n1 with a delivery in flight:
			 * it waits, the shards it gives away frozen */
			Shoal__FailoverRequest req =
				SHOAL__FAILOVER_REQUEST__INIT;
			struct rpc_ticket asker = { .id = "ctl", .id_len = 3 };

			req.node_id = "n1";
			t_busy = 1;
			owner_failover(t_owner, &asker, &req);
			ck_assert_int_eq(t_revoked, 1);
		}
		ck_assert_msg(owner_may_start(t_owner,
					      t_start_rows[_i].shard) ==
				      t_start_rows[_i].may,
			      "%s", t_start_rows[_i].why);
		/* still the primary meanwhile */
		ck_assert(owner_is_primary(t_owner, T_MINE));
	}
END_TEST

/* The one count of the shards we are primary for, and its mask. */
START_TEST(test_primary_shards_counts_and_masks)
	{
		uint8_t mask[T_SHARDS];

		t_start();
		memset(mask, 7, sizeof(mask));
		ck_assert_uint_eq(owner_primary_shards(t_owner, mask), 2);
		ck_assert(mask[T_MINE] == 1 && mask[T_MINE2] == 1);
		ck_assert(mask[T_PEERS] == 0 && mask[3] == 0);
	}
END_TEST

/* A failover or move that gives up says why its deliveries did not end:
 * on a full store their results wait for room, not for remote MXs. */
START_TEST(test_giveup_names_results_that_cannot_be_saved)
{
	ck_assert_str_eq(owner_in_flight_giveup(&t_hooks),
			 "deliveries still in flight after 30 s; nothing moved");
	t_unsaved = true;
	ck_assert_ptr_nonnull(strstr(owner_in_flight_giveup(&t_hooks),
				     "results cannot be saved (storage full)"));
}
END_TEST

static Suite *
owner_suite(void)
{
	Suite *s = suite_create("owner");
	TCase *tc = tcase_create("failover");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(
		tc, test_failover_needs_silence_and_every_router_agreeing, 0,
		(int)(sizeof(t_failover_rows) / sizeof(t_failover_rows[0])));
	tcase_add_test(tc, test_no_failover_without_replication);
	suite_add_tcase(s, tc);

	tc = tcase_create("epoch");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_loop_test(
		tc, test_offer_takes_newer_epochs_and_at_equal_the_first_author,
		0, (int)(sizeof(t_offer_rows) / sizeof(t_offer_rows[0])));
	tcase_add_test(tc,
		       test_offer_refuses_malformed_maps_and_maps_without_us);
	suite_add_tcase(s, tc);

	tc = tcase_create("fencing");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_starts_fenced_until_the_peers_map);
	tcase_add_test(tc,
		       test_without_the_peers_map_failover_after_ms_unfences);
	tcase_add_test(
		tc,
		test_lease_counts_from_echoes_and_a_lapse_needs_the_peers_map);
	tcase_add_test(tc, test_a_stalled_loop_fences);
	tcase_add_test(tc, test_a_peer_without_echo_counts_from_arrival);
	tcase_add_test(tc, test_a_newer_map_not_stored_fences);
	tcase_add_test(tc, test_never_fenced_without_replication);
	suite_add_tcase(s, tc);

	tc = tcase_create("may_start");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_test(tc, test_frozen_shard_starts_nothing);
	tcase_add_loop_test(tc, test_may_start_table, 0,
			    (int)(sizeof(t_start_rows) /
				  sizeof(t_start_rows[0])));
	tcase_add_test(tc, test_primary_shards_counts_and_masks);
	tcase_add_test(tc, test_giveup_names_results_that_cannot_be_saved);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(owner_suite)
