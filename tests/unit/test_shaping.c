/* Check suite for node/delivery/shaping.c: which delivery.limits entry applies to a
 * destination ("*" the default, a named domain matched without regard to
 * case, the first of duplicates), how the cluster-wide budget is split by
 * this node's share of shards (rounded down, never below one connection),
 * how that share follows the shard map through a failover, a failback and
 * a join, and the token bucket that paces messages per second. Time is
 * passed in, so the bucket is tested without sleeping. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/shardmap.h"
#include "node/delivery/shaping.h"
#include "tests/unit/check_helpers.h"

#define T0 1700000000000000ull /* a clock reading in microseconds */

static char d_star[] = "*";
static char d_example[] = "example.com";
static char d_Example[] = "Example.COM";
static char d_other[] = "other.test";

static struct config
cfg_with(struct cfg_limit *limits, size_t n)
{
	struct config c;

	memset(&c, 0, sizeof(c));
	c.delivery.limits = limits;
	c.delivery.n_limits = n;
	return c;
}

static struct cfg_limit
limit(char *domain, uint32_t conns, uint32_t per_conn, double per_sec,
      enum cfg_tls tls)
{
	struct cfg_limit l;

	memset(&l, 0, sizeof(l));
	l.domain = domain;
	l.max_connections = conns;
	l.max_msgs_per_conn = per_conn;
	l.max_msgs_per_sec = per_sec;
	l.tls = tls;
	return l;
}

/* A bucket for `rate` messages per second at share 1. */
static struct shaping
bucket(double rate)
{
	struct cfg_limit l = limit(d_star, 10, 10, rate, CFG_TLS_OPPORTUNISTIC);
	struct config c = cfg_with(&l, 1);
	struct shaping s;

	shaping_for_domain(&c, "any.test", 1.0, &s);
	return s;
}

/* ---- which limit --------------------------------------------------- */

START_TEST(test_shaping_no_limits_gives_builtin_defaults)
{
	struct config c = cfg_with(NULL, 0);
	struct shaping s;

	memset(&s, 0xff, sizeof(s));
	shaping_for_domain(&c, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 20);
	ck_assert_uint_eq(s.max_msgs_per_conn, 100);
	ck_assert(s.max_msgs_per_sec == 0);
	ck_assert_int_eq(s.tls, CFG_TLS_DEFAULT);
	ck_assert(!s.is_specific);
	ck_assert(s.bucket.tokens == 1);
	ck_assert_uint_eq(s.bucket.refilled_us, 0);
}
END_TEST

START_TEST(test_shaping_star_applies_to_unnamed_domains)
{
	struct cfg_limit ls[2] = {
		limit(d_star, 8, 50, 0, CFG_TLS_OPPORTUNISTIC),
		limit(d_example, 2, 5, 1.5, CFG_TLS_REQUIRED),
	};
	struct config c = cfg_with(ls, 2);
	struct shaping s;

	shaping_for_domain(&c, "elsewhere.test", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 8);
	ck_assert_uint_eq(s.max_msgs_per_conn, 50);
	ck_assert(s.max_msgs_per_sec == 0);
	ck_assert_int_eq(s.tls, CFG_TLS_OPPORTUNISTIC);
	ck_assert(!s.is_specific);
}
END_TEST

START_TEST(test_shaping_named_domain_wins_over_star)
{
	struct cfg_limit ls[2] = {
		limit(d_star, 8, 50, 0, CFG_TLS_OPPORTUNISTIC),
		limit(d_example, 2, 5, 1.5, CFG_TLS_REQUIRED),
	};
	struct cfg_limit rev[2] = { ls[1], ls[0] };
	struct config c = cfg_with(ls, 2);
	struct config cr = cfg_with(rev, 2);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 2);
	ck_assert_uint_eq(s.max_msgs_per_conn, 5);
	ck_assert(s.max_msgs_per_sec == 1.5);
	ck_assert_int_eq(s.tls, CFG_TLS_REQUIRED);
	ck_assert(s.is_specific);

	/* the order of the entries does not matter */
	shaping_for_domain(&cr, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 2);
	ck_assert(s.is_specific);
	shaping_for_domain(&cr, "elsewhere.test", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 8);
	ck_assert(!s.is_specific);
}
END_TEST

/* Domains are case-insensitive (RFC 5321 2.4). */
START_TEST(test_shaping_domain_match_ignores_case)
{
	struct cfg_limit ls[2] = {
		limit(d_star, 8, 50, 0, CFG_TLS_OPPORTUNISTIC),
		limit(d_Example, 3, 7, 0, CFG_TLS_NONE),
	};
	struct config c = cfg_with(ls, 2);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 3);
	ck_assert(s.is_specific);
	shaping_for_domain(&c, "EXAMPLE.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 3);
	ck_assert_int_eq(s.tls, CFG_TLS_NONE);
}
END_TEST

/* A limit names exactly the destination it is looked up with: neither
 * subdomains nor parent domains nor prefixes match. */
START_TEST(test_shaping_domain_match_is_exact)
{
	struct cfg_limit ls[2] = {
		limit(d_star, 8, 50, 0, CFG_TLS_OPPORTUNISTIC),
		limit(d_example, 3, 7, 0, CFG_TLS_NONE),
	};
	struct config c = cfg_with(ls, 2);
	static const char *const misses[] = {
		"mx.example.com", "com", "example.co", "example.com.",
		"xexample.com", "", "*",
	};
	struct shaping s;

	for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
		shaping_for_domain(&c, misses[i], 1.0, &s);
		ck_assert_msg(!s.is_specific, "%s matched", misses[i]);
		ck_assert_uint_eq(s.max_connections, 8);
	}
}
END_TEST

START_TEST(test_shaping_first_of_duplicates_wins)
{
	struct cfg_limit ls[4] = {
		limit(d_star, 8, 50, 0, CFG_TLS_OPPORTUNISTIC),
		limit(d_example, 3, 7, 0, CFG_TLS_NONE),
		limit(d_star, 99, 99, 9, CFG_TLS_REQUIRED),
		limit(d_Example, 4, 4, 4, CFG_TLS_REQUIRED),
	};
	struct config c = cfg_with(ls, 4);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 3);
	ck_assert_int_eq(s.tls, CFG_TLS_NONE);
	shaping_for_domain(&c, d_other, 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 8);
	ck_assert_int_eq(s.tls, CFG_TLS_OPPORTUNISTIC);
}
END_TEST

/* With only named limits, other domains get the built-in defaults. */
START_TEST(test_shaping_named_only_falls_back_to_builtin)
{
	struct cfg_limit l = limit(d_example, 3, 7, 2, CFG_TLS_REQUIRED);
	struct config c = cfg_with(&l, 1);
	struct shaping s;

	shaping_for_domain(&c, d_other, 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 20);
	ck_assert_uint_eq(s.max_msgs_per_conn, 100);
	ck_assert(s.max_msgs_per_sec == 0);
	ck_assert_int_eq(s.tls, CFG_TLS_DEFAULT);
	ck_assert(!s.is_specific);
}
END_TEST

/* ---- the split by share -------------------------------------------- */

struct share_case {
	uint32_t conns;
	double rate;
	double share;
	uint32_t want_conns;
	double want_rate;
};

static const struct share_case share_cases[] = {
	{ 20, 10, 1.0, 20, 10 },
	{ 20, 10, 0.5, 10, 5 },
	{ 20, 10, 0.25, 5, 2.5 },
	{ 20, 0, 0.33, 6, 0 },      /* 6.6 rounds down; 0 stays unlimited */
	{ 10, 3, 1.0 / 3, 3, 1 },   /* 3.33 rounds down */
	{ 3, 1, 0.1, 1, 0.1 },      /* 0.3: at least one connection */
	{ 1, 1, 0.01, 1, 0.01 },
	{ 100000, 1e6, 1e-9, 1, 1e-3 },
	/* a share outside (0, 1] is taken as the whole */
	{ 20, 10, 0, 20, 10 },
	{ 20, 10, -0.5, 20, 10 },
	{ 20, 10, 1.5, 20, 10 },
};

START_TEST(test_shaping_split_by_share)
{
	const struct share_case *sc = &share_cases[_i];
	struct cfg_limit l =
		limit(d_star, sc->conns, 9, sc->rate, CFG_TLS_OPPORTUNISTIC);
	struct config c = cfg_with(&l, 1);
	struct shaping s;
	double diff;

	shaping_for_domain(&c, "example.com", sc->share, &s);
	ck_assert_uint_eq(s.max_connections, sc->want_conns);
	diff = s.max_msgs_per_sec - sc->want_rate;
	ck_assert_msg(diff < 1e-9 && diff > -1e-9, "rate %g want %g",
		      s.max_msgs_per_sec, sc->want_rate);
	ck_assert_uint_eq(s.max_msgs_per_conn, 9); /* never split */
}
END_TEST

/* Cluster-wide, the split holds the limit when every owner gets its
 * share: 3 nodes owning 86, 85, 85 of 256 shards and 20 connections. */
START_TEST(test_shaping_split_sums_within_limit)
{
	static const unsigned owned[] = { 86, 85, 85 };
	struct cfg_limit l = limit(d_star, 20, 9, 30, CFG_TLS_OPPORTUNISTIC);
	struct config c = cfg_with(&l, 1);
	uint32_t conns = 0;
	double rate = 0;

	for (size_t i = 0; i < 3; i++) {
		struct shaping s;

		shaping_for_domain(&c, "example.com", owned[i] / 256.0, &s);
		conns += s.max_connections;
		rate += s.max_msgs_per_sec;
	}
	ck_assert_uint_le(conns, 20);
	ck_assert_uint_ge(conns, 18);
	ck_assert(rate <= 30 + 1e-9);
}
END_TEST

START_TEST(test_shaping_msgs_per_conn_at_least_one)
{
	struct cfg_limit l = limit(d_star, 5, 0, 0, CFG_TLS_OPPORTUNISTIC);
	struct config c = cfg_with(&l, 1);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_msgs_per_conn, 1);
}
END_TEST

START_TEST(test_shaping_zero_connections_becomes_one)
{
	struct cfg_limit l = limit(d_star, 0, 5, 0, CFG_TLS_OPPORTUNISTIC);
	struct config c = cfg_with(&l, 1);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 1);
}
END_TEST

/* The bucket starts full: max(rate, 1) tokens, refill time unset. */
START_TEST(test_shaping_bucket_starts_full)
{
	struct shaping s;

	s = bucket(5);
	ck_assert(s.bucket.tokens == 5);
	ck_assert_uint_eq(s.bucket.refilled_us, 0);
	s = bucket(0.5);
	ck_assert(s.bucket.tokens == 1);
	s = bucket(0);
	ck_assert(s.bucket.tokens == 1);
}
END_TEST

/* ---- the token bucket ---------------------------------------------- */

START_TEST(test_shaping_take_unlimited_never_waits)
{
	struct shaping s = bucket(0);

	for (uint64_t i = 0; i < 10000; i++)
		ck_assert_uint_eq(shaping_take(&s, T0), 0);
}
END_TEST

START_TEST(test_shaping_take_burst_then_wait)
{
	struct shaping s = bucket(2);
	uint64_t w;

	ck_assert_uint_eq(shaping_take(&s, T0), 0);
	ck_assert_uint_eq(shaping_take(&s, T0), 0);
	w = shaping_take(&s, T0);
	/* one token at 2/s takes 0.5 s */
	ck_assert_uint_ge(w, 500000);
	ck_assert_uint_le(w, 500001);
	/* a refused take does not consume: the same wait is still right */
	ck_assert_uint_eq(shaping_take(&s, T0 + w), 0);
	ck_assert_uint_gt(shaping_take(&s, T0 + w), 0);
}
END_TEST

START_TEST(test_shaping_take_below_one_per_second)
{
	struct shaping s = bucket(0.5);
	uint64_t w;

	ck_assert_uint_eq(shaping_take(&s, T0), 0);
	w = shaping_take(&s, T0);
	ck_assert_uint_ge(w, 2000000);
	ck_assert_uint_le(w, 2000001);
	/* half-way there, half the wait is left */
	w = shaping_take(&s, T0 + 1000000);
	ck_assert_uint_ge(w, 1000000);
	ck_assert_uint_le(w, 1000001);
	ck_assert_uint_eq(shaping_take(&s, T0 + 2000000), 0);
}
END_TEST

/* A long idle spell refills only up to max(rate, 1): no huge burst. */
START_TEST(test_shaping_take_idle_refill_is_capped)
{
	struct shaping s = bucket(3);
	uint64_t t = T0;
	int allowed = 0;

	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(shaping_take(&s, t), 0);
	ck_assert_uint_gt(shaping_take(&s, t), 0);
	t += 3600ull * 1000000; /* an hour later */
	while (shaping_take(&s, t) == 0 && allowed < 100)
		allowed++;
	ck_assert_int_eq(allowed, 3);

	s = bucket(0.2);
	ck_assert_uint_eq(shaping_take(&s, T0), 0);
	ck_assert_uint_eq(shaping_take(&s, T0 + 3600ull * 1000000), 0);
	ck_assert_uint_gt(shaping_take(&s, T0 + 3600ull * 1000000), 0);
}
END_TEST

/* A clock that steps back counts as no time passed: the bucket does not
 * refill (an unsigned now - then would wrap and fill it to the cap), and
 * time is measured again from the earlier reading. */
START_TEST(test_shaping_take_clock_step_back_refills_nothing)
{
	struct shaping s = bucket(2);
	uint64_t back = T0 - 3600ull * 1000000, w;

	ck_assert_uint_eq(shaping_take(&s, T0), 0);
	ck_assert_uint_eq(shaping_take(&s, T0), 0);
	ck_assert_uint_gt(shaping_take(&s, T0), 0);
	w = shaping_take(&s, back);
	ck_assert_uint_ge(w, 500000);
	ck_assert_uint_le(w, 500001);
	ck_assert_uint_gt(shaping_take(&s, back + 1), 0);
	/* half a second after the step back, one token is there again */
	ck_assert_uint_eq(shaping_take(&s, back + 500001), 0);
	ck_assert_uint_gt(shaping_take(&s, back + 500001), 0);
}
END_TEST

/* Taking at exactly the pace of the rate never waits. */
START_TEST(test_shaping_take_steady_pace_never_waits)
{
	struct shaping s = bucket(10);
	uint64_t t = T0;

	for (int i = 0; i < 10; i++) /* spend the initial burst */
		ck_assert_uint_eq(shaping_take(&s, t), 0);
	for (int i = 0; i < 1000; i++) {
		t += 100000; /* 10 per second */
		ck_assert_uint_eq(shaping_take(&s, t), 0);
	}
	ck_assert_uint_gt(shaping_take(&s, t), 0);
}
END_TEST

/* Whatever the rate, waiting exactly the time returned is enough: the +1
 * rounding never leaves the bucket a hair short. */
START_TEST(test_shaping_take_wait_is_sufficient)
{
	static const double rates[] = { 0.1, 0.3, 1, 3, 7, 9.99, 33.3, 100,
					977, 1e6 };

	for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++) {
		struct shaping s = bucket(rates[k]);
		uint64_t t = T0;
		int sent = 0;

		while (sent < 200) {
			uint64_t w = shaping_take(&s, t);

			if (w == 0) {
				sent++;
				continue;
			}
			t += w;
			ck_assert_msg(shaping_take(&s, t) == 0,
				      "rate %g: still waiting after %llu us",
				      rates[k], (unsigned long long)w);
			sent++;
		}
	}
}
END_TEST

/* Over a long run the bucket lets through rate * time (+ the burst). */
START_TEST(test_shaping_take_long_run_rate)
{
	struct shaping s = bucket(4);
	uint64_t t = T0, end = T0 + 60ull * 1000000;
	int sent = 0;

	while (t <= end) {
		uint64_t w = shaping_take(&s, t);

		if (w == 0)
			sent++;
		else
			t += w;
	}
	/* 4/s for 60 s plus the initial 4 */
	ck_assert_int_ge(sent, 240);
	ck_assert_int_le(sent, 245);
}
END_TEST

/* ---- the share follows the shard map ------------------------------- */

#define MAP_SHARDS 16

static char id_n1[] = "n1", id_n2[] = "n2", id_n3[] = "n3";

/* A pair's first map: n1 primary of the even shards, n2 of the odd, each
 * the other's replica; n3 (a node that joined) owns nothing. The map's
 * strings are the static ids above; free with map_free(). */
static Shoal__ShardMap *
pair_map(void)
{
	Shoal__ShardMap *m = calloc(1, sizeof(*m));

	ck_assert_ptr_nonnull(m);
	shoal__shard_map__init(m);
	m->epoch = 1;
	m->n_shards = MAP_SHARDS;
	m->shards = calloc(MAP_SHARDS, sizeof(*m->shards));
	ck_assert_ptr_nonnull(m->shards);
	for (size_t s = 0; s < MAP_SHARDS; s++) {
		Shoal__ShardAssignment *a = calloc(1, sizeof(*a));

		ck_assert_ptr_nonnull(a);
		shoal__shard_assignment__init(a);
		a->primary = s % 2 ? id_n2 : id_n1;
		a->replica = s % 2 ? id_n1 : id_n2;
		m->shards[s] = a;
	}
	return m;
}

static void
map_free(Shoal__ShardMap *m)
{
	for (size_t s = 0; s < m->n_shards; s++)
		free(m->shards[s]);
	free(m->shards);
	free(m);
}

static void
assert_share(double got, double want)
{
	ck_assert_msg(got > want - 1e-12 && got < want + 1e-12,
		      "share %g, want %g", got, want);
}

START_TEST(test_shaping_share_follows_failover_and_failback)
{
	Shoal__ShardMap *first = pair_map(), *taken, *back;
	size_t moved;

	assert_share(shaping_share(first, "n1"), 0.5);
	assert_share(shaping_share(first, "n2"), 0.5);
	/* n1 failed: n2 takes its shards (owner_take_over()) */
	taken = shardmap_swap(first, "n1", "n2", "n2", NULL, &moved);
	ck_assert_uint_eq(moved, MAP_SHARDS / 2);
	assert_share(shaping_share(taken, "n2"), 1.0);
	assert_share(shaping_share(taken, "n1"), 1.0 / MAP_SHARDS);
	/* failback: n1 gets back the shards it had in the first map */
	back = shardmap_swap(taken, "n2", "n1", "n2", first, &moved);
	ck_assert_uint_eq(moved, MAP_SHARDS / 2);
	assert_share(shaping_share(back, "n1"), 0.5);
	assert_share(shaping_share(back, "n2"), 0.5);
	shardmap_free(taken);
	shardmap_free(back);
	map_free(first);
}
END_TEST

START_TEST(test_shaping_share_of_a_joining_node)
{
	Shoal__ShardMap *m = pair_map();

	/* no shard yet: the smallest share, never 0 */
	assert_share(shaping_share(m, "n3"), 1.0 / MAP_SHARDS);
	/* shards moved to it one by one */
	m->shards[0]->primary = id_n3;
	assert_share(shaping_share(m, "n3"), 1.0 / MAP_SHARDS);
	m->shards[1]->primary = id_n3;
	m->shards[2]->primary = id_n3;
	m->shards[3]->primary = id_n3;
	assert_share(shaping_share(m, "n3"), 4.0 / MAP_SHARDS);
	assert_share(shaping_share(m, "n1"), 6.0 / MAP_SHARDS);
	assert_share(shaping_share(m, "n2"), 6.0 / MAP_SHARDS);
	map_free(m);
}
END_TEST

START_TEST(test_shaping_share_without_shards_is_whole)
{
	Shoal__ShardMap empty = SHOAL__SHARD_MAP__INIT;

	assert_share(shaping_share(NULL, "n1"), 1.0);
	assert_share(shaping_share(&empty, "n1"), 1.0);
}
END_TEST

/* A destination's limits follow a new share: connections and rate scale
 * from the entry, not from the old share; the bucket keeps its tokens
 * within the new burst. */
START_TEST(test_shaping_set_share_rescales_from_the_entry)
{
	struct cfg_limit l = limit(d_star, 4, 7, 10, CFG_TLS_REQUIRED);
	struct config c = cfg_with(&l, 1);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 0.5, &s);
	ck_assert_ptr_eq(s.limit, &l);
	ck_assert_uint_eq(s.max_connections, 2);
	ck_assert(s.max_msgs_per_sec == 5);
	ck_assert(s.bucket.tokens == 5);
	(void)shaping_take(&s, T0);
	shaping_set_share(&s, 1.0);		/* failover: all shards */
	ck_assert_uint_eq(s.max_connections, 4);
	ck_assert(s.max_msgs_per_sec == 10);
	ck_assert(s.bucket.tokens == 4);		/* kept, not refilled */
	ck_assert_uint_eq(s.bucket.refilled_us, T0);
	shaping_set_share(&s, 1.0 / 16);	/* shards moved away */
	ck_assert_uint_eq(s.max_connections, 1);
	ck_assert(s.max_msgs_per_sec == 10.0 / 16);
	ck_assert(s.bucket.tokens == 1);		/* capped to the new burst */
	shaping_set_share(&s, 0.5);
	ck_assert_uint_eq(s.max_connections, 2);
	ck_assert_uint_eq(s.max_msgs_per_conn, 7);	/* never split */
	ck_assert_int_eq(s.tls, CFG_TLS_REQUIRED);
}
END_TEST

START_TEST(test_shaping_set_share_of_the_builtin_default)
{
	struct config c = cfg_with(NULL, 0);
	struct shaping s;

	shaping_for_domain(&c, "example.com", 0.25, &s);
	ck_assert_ptr_null(s.limit);
	ck_assert_uint_eq(s.max_connections, 5);
	shaping_set_share(&s, 1.0);
	ck_assert_uint_eq(s.max_connections, 20);
	ck_assert(s.max_msgs_per_sec == 0);	/* unlimited stays so */
}
END_TEST

static Suite *
shaping_suite(void)
{
	Suite *s = suite_create("shaping");
	TCase *tc;

	tc = tcase_create("limits");
	tcase_add_test(tc, test_shaping_no_limits_gives_builtin_defaults);
	tcase_add_test(tc, test_shaping_star_applies_to_unnamed_domains);
	tcase_add_test(tc, test_shaping_named_domain_wins_over_star);
	tcase_add_test(tc, test_shaping_domain_match_ignores_case);
	tcase_add_test(tc, test_shaping_domain_match_is_exact);
	tcase_add_test(tc, test_shaping_first_of_duplicates_wins);
	tcase_add_test(tc, test_shaping_named_only_falls_back_to_builtin);
	suite_add_tcase(s, tc);

	tc = tcase_create("share");
	tcase_add_loop_test(tc, test_shaping_split_by_share, 0,
			    sizeof(share_cases) / sizeof(share_cases[0]));
	tcase_add_test(tc, test_shaping_split_sums_within_limit);
	tcase_add_test(tc, test_shaping_msgs_per_conn_at_least_one);
	tcase_add_test(tc, test_shaping_zero_connections_becomes_one);
	tcase_add_test(tc, test_shaping_bucket_starts_full);
	tcase_add_test(tc, test_shaping_share_follows_failover_and_failback);
	tcase_add_test(tc, test_shaping_share_of_a_joining_node);
	tcase_add_test(tc, test_shaping_share_without_shards_is_whole);
	tcase_add_test(tc, test_shaping_set_share_rescales_from_the_entry);
	tcase_add_test(tc, test_shaping_set_share_of_the_builtin_default);
	suite_add_tcase(s, tc);

	tc = tcase_create("bucket");
	tcase_add_test(tc, test_shaping_take_unlimited_never_waits);
	tcase_add_test(tc, test_shaping_take_burst_then_wait);
	tcase_add_test(tc, test_shaping_take_below_one_per_second);
	tcase_add_test(tc, test_shaping_take_idle_refill_is_capped);
	tcase_add_test(tc, test_shaping_take_clock_step_back_refills_nothing);
	tcase_add_test(tc, test_shaping_take_steady_pace_never_waits);
	tcase_add_test(tc, test_shaping_take_wait_is_sufficient);
	tcase_add_test(tc, test_shaping_take_long_run_rate);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(shaping_suite)
