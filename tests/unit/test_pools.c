/* Check suite for IP pools (docs/pools.md): the config keys and their
 * checks (lib/config.c, lib/config_check.c), the router's choice of pool
 * and removal of the pool header (router/pool.c), the node's round robin
 * and cool-down over a pool's source addresses (node/delivery/egress.c), and which
 * delivery.limits entry applies to a pool's mail (node/delivery/shaping.c). All
 * pure logic on real config files written under /tmp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/err.h"
#include "node/delivery/egress.h"
#include "node/delivery/shaping.h"
#include "router/pool.h"
#include "tests/unit/check_helpers.h"

#define N1                                                                   \
	"nodes = ( { id = \"n1\"; endpoint = \"tcp://127.0.0.1:7101\"; "     \
	"data_dir = \"/tmp/n1\"; } );\n"

#define POOLS                                                                \
	"delivery: {\n"                                                      \
	"  pools = (\n"                                                      \
	"    { name = \"bulk\"; addresses = (\n"                             \
	"        { address = \"127.0.0.2\"; ehlo = \"mta2.example.com\"; },\n" \
	"        { address = \"::1\"; } ); },\n"                             \
	"    { name = \"tx\"; addresses = ( { address = \"127.0.0.3\"; } ); }\n" \
	"  );\n"                                                             \
	"  default_pool = \"tx\";\n"                                         \
	"  limits = (\n"                                                     \
	"    { domain = \"*\"; max_connections = 20; },\n"                   \
	"    { domain = \"*\"; pool = \"bulk\"; max_connections = 7; },\n"   \
	"    { domain = \"gmail.com\"; max_connections = 9; },\n"            \
	"    { domain = \"gmail.com\"; pool = \"bulk\"; max_connections = 1; }\n" \
	"  );\n"                                                             \
	"};\n"

#define RULES                                                                \
	"router: {\n"                                                        \
	"  pool_rules = (\n"                                                 \
	"    { sender_domain = \"news.example.com\"; pool = \"bulk\"; },\n"  \
	"    { user = \"alice\"; pool = \"tx\"; },\n"                        \
	"    { user = \"bob\"; sender_domain = \"b.example\"; pool = \"bulk\"; }\n" \
	"  );\n"                                                             \
	"};\n"

static int
load(const char *text, struct config **out, char *err, size_t errlen)
{
	char path[64];
	int rc;

	check_write_temp(path, sizeof(path), "pools", text, strlen(text));
	rc = config_load(path, out, err, errlen);
	unlink(path);
	return rc;
}

static struct config *
load_ok(const char *text)
{
	struct config *cfg = NULL;
	char err[512];
	int rc = load(text, &cfg, err, sizeof(err));

	ck_assert_msg(rc == 0, "config_load: %s", err);
	return cfg;
}

/* ---- config -------------------------------------------------------- */

START_TEST(test_pools_config_defaults_to_none)
{
	struct config *cfg = load_ok(N1);

	ck_assert_uint_eq(cfg->delivery.n_pools, 0);
	ck_assert_ptr_null(cfg->delivery.default_pool);
	ck_assert_uint_eq(cfg->delivery.pool_cooldown, 60);
	ck_assert_uint_eq(cfg->router.n_pool_rules, 0);
	ck_assert_str_eq(cfg->router.pool_header, "X-Shoal-Pool");
	ck_assert_ptr_null(config_find_pool(cfg, "bulk"));
	ck_assert_ptr_null(config_find_pool(cfg, ""));
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_config_loads_every_key)
{
	struct config *cfg = load_ok(N1 POOLS RULES);
	const struct cfg_pool *p = config_find_pool(cfg, "bulk");

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->n_addresses, 2);
	ck_assert_str_eq(p->addresses[0].address, "127.0.0.2");
	ck_assert_str_eq(p->addresses[0].ehlo, "mta2.example.com");
	ck_assert_ptr_null(p->addresses[1].ehlo);
	ck_assert_str_eq(cfg->delivery.default_pool, "tx");
	ck_assert_uint_eq(cfg->router.n_pool_rules, 3);
	ck_assert_str_eq(cfg->router.pool_rules[1].user, "alice");
	ck_assert_str_eq(cfg->delivery.limits[3].pool, "bulk");
	config_free(cfg);
}
END_TEST

struct bad_case {
	const char *text;
	const char *want; /* in the error */
};

static const struct bad_case bad_cases[] = {
	{ N1 "delivery: { pools = ( { name = \"a\"; addresses = ( { address = "
	     "\"127.0.0.2\"; } ); }, { name = \"a\"; addresses = ( { address "
	     "= \"127.0.0.3\"; } ); } ); };\n",
	  "delivery.pools[1].name: duplicate pool name \"a\"" },
	{ N1 "delivery: { pools = ( { name = \"a\"; addresses = ( { address = "
	     "\"mta.example.com\"; } ); } ); };\n",
	  "delivery.pools[0].addresses[0].address: expected an IPv4 or IPv6" },
	{ N1 "delivery: { pools = ( { name = \"a\"; addresses = ( { address = "
	     "\"127.0.0.2:25\"; } ); } ); };\n",
	  "expected an IPv4 or IPv6" },
	{ N1 "delivery: { pools = ( { name = \"a\"; addresses = ( ); } ); };\n",
	  "delivery.pools[0].addresses: 0 entries" },
	{ N1 "delivery: { pools = ( { name = \"a\"; } ); };\n",
	  "delivery.pools[0].addresses: required key missing" },
	{ N1 "delivery: { default_pool = \"nope\"; };\n",
	  "delivery.default_pool: no pool named \"nope\"" },
	{ N1 "delivery: { limits = ( { domain = \"*\"; pool = \"nope\"; } ); "
	     "};\n",
	  "delivery.limits[0].pool: no pool named \"nope\"" },
	{ N1 "router: { pool_rules = ( { user = \"a\"; pool = \"nope\"; } ); "
	     "};\n",
	  "router.pool_rules[0].pool: no pool named \"nope\"" },
	{ N1 POOLS "router: { pool_rules = ( { pool = \"bulk\"; } ); };\n",
	  "router.pool_rules[0]: needs sender_domain or user" },
	{ N1 POOLS "router: { pool_rules = ( { user = \"a\"; } ); };\n",
	  "router.pool_rules[0]: needs pool, priority or tenant" },
	{ N1 POOLS "router: { pool_rules = ( { user = \"a\"; priority = "
	     "\"urgent\"; } ); };\n",
	  "router.pool_rules[0].priority: unknown value \"urgent\"" },
	{ N1 POOLS "router: { pool_rules = ( { user = \"a\"; tenant = "
	     "\"a b\"; } ); };\n",
	  "tenant: letters, digits" },
	{ N1 "router: { priority_header = \"X Prio\"; };\n",
	  "router.priority_header: expected a header field name" },
	{ N1 "router: { tenant_header = \"X-T:\"; };\n",
	  "router.tenant_header: expected a header field name" },
	{ N1 "router: { pool_header = \"X Pool\"; };\n",
	  "router.pool_header: expected a header field name" },
	{ N1 "router: { pool_header = \"X-Pool:\"; };\n",
	  "router.pool_header: expected a header field name" },
	{ N1 "delivery: { pools = ( { name = \"a\"; addresses = ( { address = "
	     "\"127.0.0.2\"; bogus = 1; } ); } ); };\n",
	  "delivery.pools[0].addresses[0].bogus: unknown key" },
	{ N1 "delivery: { pool_cooldown = 0; };\n",
	  "delivery.pool_cooldown: 0 is out of range" },
	{ N1 "delivery: { pools = ( { name = \"p\"; addresses = ( { "
	     "address = \"127.0.0.2\"; warmup = [ 5 ]; } ); } ); };\n",
	  "delivery.pools[0].addresses[0].warmup: warmup and warmup_start go "
	  "together" },
	{ N1 "delivery: { pools = ( { name = \"p\"; addresses = ( { "
	     "address = \"127.0.0.2\"; warmup_start = \"2025-13-01\"; "
	     "warmup = [ 5 ]; } ); } ); };\n",
	  "warmup_start: a day as YYYY-MM-DD" },
	{ N1 "delivery: { pools = ( { name = \"p\"; addresses = ( { "
	     "address = \"127.0.0.2\"; warmup_start = \"2025-12-01\"; "
	     "warmup = [ ]; } ); } ); };\n",
	  "warmup" },
};

START_TEST(test_pools_config_refuses_mistakes)
{
	const struct bad_case *c = &bad_cases[_i];
	struct config *cfg = NULL;
	char err[512];
	int rc = load(c->text, &cfg, err, sizeof(err));

	ck_assert_int_eq(rc, SHOAL_E_CONFIG);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, c->want), "error \"%s\" lacks \"%s\"", err,
		      c->want);
}
END_TEST

START_TEST(test_pools_config_empty_header_disables)
{
	struct config *cfg = load_ok(N1 "router: { pool_header = \"\"; };\n");

	ck_assert_str_eq(cfg->router.pool_header, "");
	config_free(cfg);
}
END_TEST

/* ---- choice -------------------------------------------------------- */

struct choose_case {
	const char *header;  /* NULL: no header */
	int is_trusted;
	const char *user, *from;
	const char *want;    /* NULL: no pool */
};

static const struct choose_case choose_cases[] = {
	/* the header, from a trusted client, when it names a pool */
	{ "bulk", 1, "", "a@x.example", "bulk" },
	{ "bulk", 1, "alice", "a@news.example.com", "bulk" },
	/* not from anyone else: the rules decide */
	{ "bulk", 0, "", "a@x.example", "tx" },
	/* an unknown pool in the header falls through to the rules */
	{ "nope", 1, "", "a@news.example.com", "bulk" },
	{ "BULK", 1, "", "a@x.example", "tx" },
	/* the user's rule before the sender domain's */
	{ NULL, 1, "alice", "a@news.example.com", "tx" },
	{ NULL, 1, "", "a@NEWS.example.COM", "bulk" },
	{ NULL, 1, "", "a@sub.news.example.com", "tx" },
	/* a rule with both keys needs both */
	{ NULL, 1, "bob", "bob@b.example", "bulk" },
	{ NULL, 1, "bob", "bob@c.example", "tx" },
	{ NULL, 1, "", "bob@b.example", "tx" },
	/* the null sender and the default */
	{ NULL, 1, "", "", "tx" },
};

START_TEST(test_pools_choose_table)
{
	const struct choose_case *c = &choose_cases[_i];
	struct config *cfg = load_ok(N1 POOLS RULES);
	const char *got =
		pool_choose(cfg, c->header, c->is_trusted, c->user, c->from);

	ck_assert_pstr_eq(got, c->want);
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_choose_none_without_default)
{
	struct config *cfg = load_ok(
		N1 "delivery: { pools = ( { name = \"a\"; addresses = ( { "
		   "address = \"127.0.0.2\"; } ); } ); };\n");

	ck_assert_ptr_null(pool_choose(cfg, NULL, 1, "", "x@y.example"));
	ck_assert_ptr_null(pool_choose(cfg, "b", 1, "", "x@y.example"));
	ck_assert_str_eq(pool_choose(cfg, "a", 1, "", "x@y.example"), "a");
	config_free(cfg);
}
END_TEST

#define CLASSES                                                              \
	"router: {\n"                                                        \
	"  pool_rules = (\n"                                                 \
	"    { sender_domain = \"news.example.com\"; pool = \"bulk\";\n"   \
	"      priority = \"bulk\"; tenant = \"news\"; },\n"                 \
	"    { user = \"alice\"; priority = \"high\"; },\n"                  \
	"    { sender_domain = \"shop.example\"; tenant = \"shop\"; }\n"     \
	"  );\n"                                                             \
	"};\n"

START_TEST(test_pools_classify_priority_and_tenant)
{
	struct config *cfg = load_ok(N1 POOLS CLASSES);
	struct pool_choice c;

	/* nothing says: normal, the default pool, no tenant */
	pool_classify(cfg, NULL, NULL, NULL, true, "", "a@x.example", &c);
	ck_assert_str_eq(c.pool, "tx");
	ck_assert_int_eq(c.priority, CFG_PRIORITY_NORMAL);
	ck_assert_str_eq(c.tenant, "");
	/* a rule sets all three */
	pool_classify(cfg, NULL, NULL, NULL, true, "", "n@news.example.com",
		      &c);
	ck_assert_str_eq(c.pool, "bulk");
	ck_assert_int_eq(c.priority, CFG_PRIORITY_BULK);
	ck_assert_str_eq(c.tenant, "news");
	/* per field: the user's rule gives the class, the domain's rule
	 * the pool and tenant the user's rule leaves open */
	pool_classify(cfg, NULL, NULL, NULL, true, "alice",
		      "a@news.example.com", &c);
	ck_assert_int_eq(c.priority, CFG_PRIORITY_HIGH);
	ck_assert_str_eq(c.pool, "bulk");
	ck_assert_str_eq(c.tenant, "news");
	/* no rule names a tenant: the authenticated user */
	pool_classify(cfg, NULL, NULL, NULL, true, "alice", "a@x.example", &c);
	ck_assert_str_eq(c.tenant, "alice");
	/* headers from a trusted client win, any case */
	pool_classify(cfg, NULL, "HIGH", "acme-2", true, "",
		      "n@news.example.com", &c);
	ck_assert_int_eq(c.priority, CFG_PRIORITY_HIGH);
	ck_assert_str_eq(c.tenant, "acme-2");
	ck_assert_str_eq(c.pool, "bulk");
	/* not from anyone else, and not when they say nothing valid */
	pool_classify(cfg, NULL, "high", "acme", false, "", "a@x.example", &c);
	ck_assert_int_eq(c.priority, CFG_PRIORITY_NORMAL);
	ck_assert_str_eq(c.tenant, "");
	pool_classify(cfg, NULL, "urgent!", "a b", true, "",
		      "s@shop.example", &c);
	ck_assert_int_eq(c.priority, CFG_PRIORITY_NORMAL);
	ck_assert_str_eq(c.tenant, "shop");
	config_free(cfg);
}
END_TEST

/* ---- the header ---------------------------------------------------- */

struct strip_case {
	const char *in, *out, *value;
	size_t removed;
};

static const struct strip_case strip_cases[] = {
	{ "Received: x\r\nX-Shoal-Pool: bulk\r\nSubject: s\r\n\r\nbody\r\n",
	  "Received: x\r\nSubject: s\r\n\r\nbody\r\n", "bulk", 1 },
	/* every occurrence, any case, folded, the first value counts */
	{ "x-shoal-pool:  tx \r\nSubject: s\r\nX-SHOAL-POOL: bulk\r\n"
	  "\tmore\r\n\r\nX-Shoal-Pool: in body\r\n",
	  "Subject: s\r\n\r\nX-Shoal-Pool: in body\r\n", "tx", 2 },
	{ "X-Shoal-Pool: a\r\n b\r\n\r\n", "\r\n", "a b", 1 },
	/* WSP before the colon (obsolete syntax) */
	{ "X-Shoal-Pool : bulk\r\n\r\n", "\r\n", "bulk", 1 },
	/* a longer name is another field */
	{ "X-Shoal-Pools: bulk\r\nX-Shoal-Poo: x\r\n\r\n",
	  "X-Shoal-Pools: bulk\r\nX-Shoal-Poo: x\r\n\r\n", "", 0 },
	/* headers only, no empty line, no final CRLF */
	{ "Subject: s\r\nX-Shoal-Pool: bulk", "Subject: s\r\n", "bulk", 1 },
	{ "", "", "", 0 },
};

START_TEST(test_pools_strip_header_table)
{
	const struct strip_case *c = &strip_cases[_i];
	struct buf b;
	char value[POOL_VALUE_MAX];
	size_t n;

	buf_init(&b, 4096);
	buf_append(&b, "R: 1\r\n", 6); /* our Received stand-in, kept */
	buf_append(&b, c->in, strlen(c->in));
	n = pool_strip_header(&b, 6, "X-Shoal-Pool", value, sizeof(value));
	ck_assert_uint_eq(n, c->removed);
	ck_assert_str_eq(value, c->value);
	ck_assert_uint_eq(b.len, 6 + strlen(c->out));
	ck_assert_mem_eq(b.data, "R: 1\r\n", 6);
	ck_assert_mem_eq(b.data + 6, c->out, strlen(c->out));
	buf_free(&b);
}
END_TEST

START_TEST(test_pools_strip_header_value_is_bounded)
{
	struct buf b;
	char value[8];
	char line[300];

	memset(line, 'v', sizeof(line));
	memcpy(line, "X-Shoal-Pool: ", 14);
	memcpy(line + sizeof(line) - 4, "\r\n\r\n", 4);
	buf_init(&b, 4096);
	buf_append(&b, line, sizeof(line));
	ck_assert_uint_eq(pool_strip_header(&b, 0, "X-Shoal-Pool", value,
					    sizeof(value)),
			  1);
	ck_assert_str_eq(value, "vvvvvvv");
	ck_assert_uint_eq(b.len, 2);
	buf_free(&b);
}
END_TEST

/* ---- limits -------------------------------------------------------- */

struct limit_case {
	const char *pool, *domain;
	uint32_t want_conns;
};

static const struct limit_case limit_cases[] = {
	{ "bulk", "gmail.com", 1 },   /* pool + domain */
	{ "tx", "gmail.com", 9 },     /* domain, any pool */
	{ NULL, "GMAIL.com", 9 },
	{ "bulk", "other.example", 7 }, /* pool + "*" */
	{ "tx", "other.example", 20 },  /* "*" */
	{ NULL, "other.example", 20 },
	{ "", "other.example", 20 },
};

START_TEST(test_pools_limit_most_specific_wins)
{
	const struct limit_case *c = &limit_cases[_i];
	struct config *cfg = load_ok(N1 POOLS);
	struct shaping s;

	shaping_for_pool(cfg, c->pool, c->domain, 1.0, &s);
	ck_assert_uint_eq(s.max_connections, c->want_conns);
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_limit_of_a_pool_never_applies_without_it)
{
	struct config *cfg = load_ok(
		N1 "delivery: { pools = ( { name = \"a\"; addresses = ( { "
		   "address = \"127.0.0.2\"; } ); } );\n"
		   "limits = ( { domain = \"x.example\"; pool = \"a\"; "
		   "max_connections = 2; } ); };\n");
	struct shaping s;

	ck_assert_ptr_null(shaping_match(cfg, NULL, "x.example"));
	shaping_for_pool(cfg, NULL, "x.example", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 20); /* built-in default */
	ck_assert(!s.is_specific);
	shaping_for_pool(cfg, "a", "x.example", 1.0, &s);
	ck_assert_uint_eq(s.max_connections, 2);
	ck_assert(s.is_specific);
	config_free(cfg);
}
END_TEST

/* ---- source addresses (node/delivery/egress.c) ------------------------------ */

#define SOURCES                                                              \
	"delivery: { pools = ( { name = \"p\"; addresses = ( "              \
	"{ address = \"127.0.0.2\"; }, { address = \"::1\"; }, "            \
	"{ address = \"127.0.0.3\"; }, { address = \"127.0.0.4\"; } ); } ); };\n"

START_TEST(test_pools_sources_round_robin_by_family)
{
	struct config *cfg = load_ok(N1 SOURCES);
	struct egress *e = egress_new(cfg);
	const ssize_t want[] = { 0, 2, 3, 0, 2 };

	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(egress_find(e, "p"), 0);
	ck_assert_int_eq(egress_find(e, "q"), -1);
	ck_assert_int_eq(egress_find(e, ""), -1);
	ck_assert_int_eq(egress_find(e, NULL), -1);
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
		ck_assert_int_eq(egress_pick(e, 0, AF_INET, 100, NULL, NULL), want[i]);
	/* the one IPv6 source, every time */
	ck_assert_int_eq(egress_pick(e, 0, AF_INET6, 100, NULL, NULL), 1);
	ck_assert_int_eq(egress_pick(e, 0, AF_INET6, 100, NULL, NULL), 1);
	ck_assert_int_eq(egress_addr(e, 0, 1)->sa_family, AF_INET6);
	egress_free(e);
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_sources_cool_down_and_come_back)
{
	struct config *cfg = load_ok(N1 SOURCES);
	struct egress *e = egress_new(cfg);

	ck_assert(egress_cool(e, 0, 2, 100, 60));
	ck_assert(!egress_cool(e, 0, 2, 110, 60)); /* already cooling */
	/* 127.0.0.3 is skipped until 170 */
	ck_assert_int_eq(egress_pick(e, 0, AF_INET, 120, NULL, NULL), 0);
	ck_assert_int_eq(egress_pick(e, 0, AF_INET, 120, NULL, NULL), 3);
	ck_assert_int_eq(egress_pick(e, 0, AF_INET, 120, NULL, NULL), 0);
	ck_assert_int_eq(egress_pick(e, 0, AF_INET, 170, NULL, NULL), 2);
	/* all cooling: still used, in turn */
	egress_cool(e, 0, 0, 200, 60);
	egress_cool(e, 0, 2, 200, 60);
	egress_cool(e, 0, 3, 200, 60);
	ck_assert_int_ge(egress_pick(e, 0, AF_INET, 210, NULL, NULL), 0);
	ck_assert_int_ne(egress_pick(e, 0, AF_INET, 210, NULL, NULL), 1);
	egress_free(e);
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_sources_family_missing)
{
	struct config *cfg = load_ok(
		N1 "delivery: { pools = ( { name = \"v4\"; addresses = ( { "
		   "address = \"127.0.0.2\"; } ); } ); };\n");
	struct egress *e = egress_new(cfg);

	ck_assert_int_eq(egress_pick(e, 0, AF_INET6, 1, NULL, NULL), -1);
	ck_assert_int_eq(egress_pick(e, 0, AF_INET, 1, NULL, NULL), 0);
	egress_free(e);
	config_free(cfg);
	egress_free(NULL);
}
END_TEST

/* ---- IP warm-up (node/delivery/egress.c) -------------------------------- */

#define DAY 86400ull
#define DAY0 20423ull /* 2025-12-01 */

#define WARM                                                                 \
	"delivery: { pools = ( { name = \"p\"; addresses = ( "              \
	"{ address = \"127.0.0.2\"; warmup_start = \"2025-12-01\"; "     \
	"warmup = [ 3, 10, 100 ]; }, { address = \"127.0.0.3\"; } ); } ); };\n"

START_TEST(test_pools_warmup_allowance_by_day)
{
	struct config *cfg = load_ok(N1 WARM);
	struct egress *e = egress_new(cfg);
	uint64_t noon = DAY0 * DAY + DAY / 2;

	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon - DAY, 1), 3);
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon, 1), 3);
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon + DAY, 1), 10);
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon + 2 * DAY, 1), 100);
	/* warm after the schedule; the address without one always */
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon + 3 * DAY, 1),
			  UINT32_MAX);
	ck_assert_uint_eq(egress_allowance(e, 0, 1, noon, 1), UINT32_MAX);
	/* this node's share, rounded up, at least one */
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon + DAY, 0.25), 3);
	ck_assert_uint_eq(egress_allowance(e, 0, 0, noon, 0.01), 1);
	egress_free(e);
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_warmup_counts_per_provider_and_day)
{
	struct config *cfg = load_ok(N1 WARM);
	struct egress *e = egress_new(cfg);
	uint64_t noon = DAY0 * DAY + DAY / 2;

	ck_assert(!egress_warm_count(e, 0, 0, "google", noon, 1));
	ck_assert(!egress_warm_count(e, 0, 0, "google", noon, 1));
	ck_assert(!egress_warm_full(e, 0, 0, "google", noon, 1));
	ck_assert(egress_warm_count(e, 0, 0, "google", noon, 1)); /* 3rd */
	ck_assert(egress_warm_full(e, 0, 0, "google", noon, 1));
	/* another provider has its own allowance */
	ck_assert(!egress_warm_full(e, 0, 0, "yahoo", noon, 1));
	ck_assert_uint_eq(egress_warm_sent(e, 0, 0, "yahoo", noon), 0);
	/* the next UTC day starts again, with that day's allowance */
	ck_assert(!egress_warm_full(e, 0, 0, "google", noon + DAY, 1));
	ck_assert_uint_eq(egress_warm_sent(e, 0, 0, "google", noon + DAY), 0);
	/* an address without a schedule never fills */
	for (int i = 0; i < 50; i++)
		ck_assert(!egress_warm_count(e, 0, 1, "google", noon, 1));
	ck_assert(!egress_warm_full(e, 0, 1, "google", noon, 1));
	egress_free(e);
	config_free(cfg);
}
END_TEST

START_TEST(test_pools_warmup_bounded_providers)
{
	struct config *cfg = load_ok(N1 WARM);
	struct egress *e = egress_new(cfg);
	uint64_t noon = DAY0 * DAY + DAY / 2;
	char key[32];

	for (int i = 0; i < EGRESS_WARM_KEYS; i++) {
		snprintf(key, sizeof(key), "p%d", i);
		egress_warm_count(e, 0, 0, key, noon, 1);
	}
	/* no room today for one more: full, its mail goes warm */
	ck_assert(egress_warm_full(e, 0, 0, "one-more", noon, 1));
	ck_assert(!egress_warm_full(e, 0, 0, "p7", noon, 1));
	/* tomorrow the slots are reused */
	ck_assert(!egress_warm_full(e, 0, 0, "one-more", noon + DAY, 1));
	egress_warm_count(e, 0, 0, "one-more", noon + DAY, 1);
	ck_assert_uint_eq(egress_warm_sent(e, 0, 0, "one-more", noon + DAY), 1);
	egress_free(e);
	config_free(cfg);
}
END_TEST

static Suite *
pools_suite(void)
{
	Suite *s = suite_create("pools");
	TCase *tc;

	tc = tcase_create("config");
	tcase_add_test(tc, test_pools_config_defaults_to_none);
	tcase_add_test(tc, test_pools_config_loads_every_key);
	tcase_add_loop_test(tc, test_pools_config_refuses_mistakes, 0,
			    sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, test_pools_config_empty_header_disables);
	suite_add_tcase(s, tc);

	tc = tcase_create("choice");
	tcase_add_loop_test(tc, test_pools_choose_table, 0,
			    sizeof(choose_cases) / sizeof(choose_cases[0]));
	tcase_add_test(tc, test_pools_choose_none_without_default);
	tcase_add_loop_test(tc, test_pools_strip_header_table, 0,
			    sizeof(strip_cases) / sizeof(strip_cases[0]));
	tcase_add_test(tc, test_pools_strip_header_value_is_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("sources");
	tcase_add_test(tc, test_pools_sources_round_robin_by_family);
	tcase_add_test(tc, test_pools_sources_cool_down_and_come_back);
	tcase_add_test(tc, test_pools_sources_family_missing);
	tcase_add_test(tc, test_pools_classify_priority_and_tenant);
	tcase_add_test(tc, test_pools_warmup_allowance_by_day);
	tcase_add_test(tc, test_pools_warmup_counts_per_provider_and_day);
	tcase_add_test(tc, test_pools_warmup_bounded_providers);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_pools_limit_most_specific_wins, 0,
			    sizeof(limit_cases) / sizeof(limit_cases[0]));
	tcase_add_test(tc, test_pools_limit_of_a_pool_never_applies_without_it);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(pools_suite)
