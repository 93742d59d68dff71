/* Check suite for lib/config.c: the cluster config loader. The contract is
 * ../shared/DESIGN.md's: the example there loads with every value in place,
 * every key but `nodes` has its documented default, and every mistake is an
 * error naming the file, the line and the full key path. Configs are real
 * files made with mkstemp() under /tmp and removed right after loading. The
 * loader handles untrusted input, so hostile files must fail cleanly too. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/err.h"
#include "tests/unit/check_helpers.h"

#define TMP_TEMPLATE "/tmp/shoal-test-config-XXXXXX"

/* One node on line 1, so the line under test is line 2 or later. */
#define N1                                                                   \
	"nodes = ( { id = \"n1\"; endpoint = \"tcp://127.0.0.1:7101\"; "     \
	"data_dir = \"/var/lib/shoal/n1\"; } );\n"

/* The config from DESIGN.md, "Config (libconfig syntax) — the contract". */
static const char design_example[] =
	"cluster: { name = \"demo\"; shards = 256; };\n"
	"\n"
	"nodes = (\n"
	"  { id = \"n1\"; endpoint = \"tcp://127.0.0.1:7101\"; peer = \"n2\";\n"
	"    data_dir = \"/var/lib/shoal/n1\"; metrics = \"127.0.0.1:9101\"; },\n"
	"  { id = \"n2\"; endpoint = \"tcp://127.0.0.1:7102\"; peer = \"n1\";\n"
	"    data_dir = \"/var/lib/shoal/n2\"; metrics = \"127.0.0.1:9102\"; }\n"
	");\n"
	"\n"
	"router: {\n"
	"  hostname = \"mta.example.com\";\n"
	"  listen = (\n"
	"    { address = \"0.0.0.0:25\";  tls = \"starttls\"; },\n"
	"    { address = \"0.0.0.0:465\"; tls = \"implicit\"; },\n"
	"    { address = \"0.0.0.0:587\"; tls = \"starttls\"; auth = \"required\"; proxy_protocol = true; }\n"
	"  );\n"
	"  tls_cert = \"/etc/shoal/tls.crt\"; tls_key = \"/etc/shoal/tls.key\";\n"
	"  relay_networks = [ \"127.0.0.0/8\", \"::1/128\" ];\n"
	"  users_file = \"/etc/shoal/users\";\n"
	"  max_message_size = 52428800; max_recipients = 1000;\n"
	"  metrics = \"127.0.0.1:9201\";\n"
	"  # DKIM: one entry per signing domain and selector; the algorithm follows\n"
	"  # the key (RSA → rsa-sha256, Ed25519 → ed25519-sha256).\n"
	"  dkim = ( { domain = \"example.com\"; selector = \"s2026\"; key_file = \"/etc/shoal/dkim/example.com.pem\"; } );\n"
	"};\n"
	"\n"
	"delivery: {\n"
	"  helo_name = \"mta.example.com\";\n"
	"  dns_servers = [ \"127.0.0.1:5353\" ];\n"
	"  smtp_port = 25;\n"
	"  retry_schedule = [ 60, 300, 900, 1800, 3600, 7200, 14400 ];\n"
	"  max_queue_lifetime = 432000;\n"
	"  routes = ( { domain = \"relay.example\"; host = \"127.0.0.1:2626\"; } );\n"
	"  limits = ( { domain = \"*\"; max_connections = 20; max_msgs_per_conn = 100; max_msgs_per_sec = 0.0; } );\n"
	"};\n"
	"\n"
	"replication: { mode = \"sync\"; heartbeat_ms = 500; failover_after_ms = 3000;\n"
	"               peer_timeout_ms = 2000; require_peer = false; };\n";

/* Out-parameters are written only on success: config_load() must leave
 * *out pointing here when it fails. */
static struct config untouched;

struct run {
	char path[sizeof(TMP_TEMPLATE)];
	char err[1024];
	struct config *cfg;
	int rc;
};

static void
write_temp(char *path, const void *data, size_t len)
{
	check_write_temp(path, sizeof(TMP_TEMPLATE), "config", data, len);
}

/* Write data to a fresh temp file, load it, remove the file. */
static void
run_bytes(struct run *r, const void *data, size_t len)
{
	memset(r, 0, sizeof(*r));
	write_temp(r->path, data, len);
	memset(r->err, 'X', sizeof(r->err)); /* must be overwritten */
	r->cfg = &untouched;
	r->rc = config_load(r->path, &r->cfg, r->err, sizeof(r->err));
	unlink(r->path);
	ck_assert_ptr_nonnull(memchr(r->err, '\0', sizeof(r->err)));
}

static void
run_text(struct run *r, const char *text)
{
	run_bytes(r, text, strlen(text));
}

/* Load text that must be valid. The caller frees with config_free(). */
static struct config *
load_ok(const char *text)
{
	struct run r;

	run_text(&r, text);
	ck_assert_msg(r.rc == 0, "config_load: rc=%d err=%s", r.rc, r.err);
	ck_assert_str_eq(r.err, "");
	ck_assert_ptr_ne(r.cfg, &untouched);
	ck_assert_ptr_nonnull(r.cfg);
	ck_assert_str_eq(r.cfg->path, r.path);
	return r.cfg;
}

/* The failure message r should hold: "PATH:LINE: MSG", or "PATH: MSG"
 * when line is 0. */
static void
assert_failed(const struct run *r, int line, const char *msg)
{
	char want[2048];

	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", r->path, line, msg);
	else
		snprintf(want, sizeof(want), "%s: %s", r->path, msg);
	ck_assert_str_eq(r->err, want);
	ck_assert_int_eq(r->rc, SHOAL_E_CONFIG);
	ck_assert_ptr_eq(r->cfg, &untouched);
}

static void
expect_error(const char *text, int line, const char *msg)
{
	struct run r;

	run_text(&r, text);
	assert_failed(&r, line, msg);
}

/* A config whose error is on line `line`, naming key path and reason. */
struct bad {
	const char *text;
	int line;
	const char *msg;
};

static void
run_bad_table(const struct bad *t, int i)
{
	expect_error(t[i].text, t[i].line, t[i].msg);
}

/* ---- the DESIGN.md example ----------------------------------------------- */

START_TEST(test_config_design_example_loads_every_value)
{
	static const uint32_t retry[] = { 60, 300, 900, 1800, 3600, 7200,
					  14400 };
	struct config *c = load_ok(design_example);

	ck_assert_str_eq(c->cluster.name, "demo");
	ck_assert_uint_eq(c->cluster.shards, 256);

	ck_assert_uint_eq(c->n_nodes, 2);
	ck_assert_str_eq(c->nodes[0].id, "n1");
	ck_assert_str_eq(c->nodes[0].endpoint, "tcp://127.0.0.1:7101");
	ck_assert_str_eq(c->nodes[0].peer, "n2");
	ck_assert_str_eq(c->nodes[0].data_dir, "/var/lib/shoal/n1");
	ck_assert_str_eq(c->nodes[0].metrics, "127.0.0.1:9101");
	ck_assert_uint_eq(c->nodes[0].map_size, 17179869184ull);
	ck_assert_str_eq(c->nodes[1].id, "n2");
	ck_assert_str_eq(c->nodes[1].endpoint, "tcp://127.0.0.1:7102");
	ck_assert_str_eq(c->nodes[1].peer, "n1");
	ck_assert_str_eq(c->nodes[1].data_dir, "/var/lib/shoal/n2");
	ck_assert_str_eq(c->nodes[1].metrics, "127.0.0.1:9102");
	ck_assert_uint_eq(c->nodes[1].map_size, 17179869184ull);

	ck_assert_str_eq(c->router.hostname, "mta.example.com");
	ck_assert_uint_eq(c->router.n_listen, 3);
	ck_assert_str_eq(c->router.listen[0].address, "0.0.0.0:25");
	ck_assert_int_eq(c->router.listen[0].tls, CFG_TLS_STARTTLS);
	ck_assert_int_eq(c->router.listen[0].auth, CFG_AUTH_OPTIONAL);
	ck_assert(!c->router.listen[0].proxy_protocol);
	ck_assert_str_eq(c->router.listen[1].address, "0.0.0.0:465");
	ck_assert_int_eq(c->router.listen[1].tls, CFG_TLS_IMPLICIT);
	ck_assert_int_eq(c->router.listen[1].auth, CFG_AUTH_OPTIONAL);
	ck_assert(!c->router.listen[1].proxy_protocol);
	ck_assert_str_eq(c->router.listen[2].address, "0.0.0.0:587");
	ck_assert_int_eq(c->router.listen[2].tls, CFG_TLS_STARTTLS);
	ck_assert_int_eq(c->router.listen[2].auth, CFG_AUTH_REQUIRED);
	ck_assert(c->router.listen[2].proxy_protocol);
	ck_assert_str_eq(c->router.tls_cert, "/etc/shoal/tls.crt");
	ck_assert_str_eq(c->router.tls_key, "/etc/shoal/tls.key");
	ck_assert_uint_eq(c->router.n_relay_networks, 2);
	ck_assert_str_eq(c->router.relay_networks[0], "127.0.0.0/8");
	ck_assert_str_eq(c->router.relay_networks[1], "::1/128");
	ck_assert_str_eq(c->router.users_file, "/etc/shoal/users");
	ck_assert_uint_eq(c->router.max_message_size, 52428800);
	ck_assert_uint_eq(c->router.max_recipients, 1000);
	ck_assert_str_eq(c->router.metrics, "127.0.0.1:9201");
	ck_assert_uint_eq(c->router.n_dkim, 1);
	ck_assert_str_eq(c->router.dkim[0].domain, "example.com");
	ck_assert_str_eq(c->router.dkim[0].selector, "s2026");
	ck_assert_str_eq(c->router.dkim[0].key_file,
			 "/etc/shoal/dkim/example.com.pem");

	ck_assert_str_eq(c->delivery.helo_name, "mta.example.com");
	ck_assert_uint_eq(c->delivery.n_dns_servers, 1);
	ck_assert_str_eq(c->delivery.dns_servers[0], "127.0.0.1:5353");
	ck_assert_uint_eq(c->delivery.smtp_port, 25);
	ck_assert_uint_eq(c->delivery.n_retry_schedule, 7);
	for (size_t i = 0; i < 7; i++)
		ck_assert_uint_eq(c->delivery.retry_schedule[i], retry[i]);
	ck_assert_uint_eq(c->delivery.max_queue_lifetime, 432000);
	ck_assert_uint_eq(c->delivery.n_routes, 1);
	ck_assert_str_eq(c->delivery.routes[0].domain, "relay.example");
	ck_assert_str_eq(c->delivery.routes[0].host, "127.0.0.1:2626");
	ck_assert_int_eq(c->delivery.routes[0].tls, CFG_TLS_DEFAULT);
	ck_assert_uint_eq(c->delivery.n_limits, 1);
	ck_assert_str_eq(c->delivery.limits[0].domain, "*");
	ck_assert_uint_eq(c->delivery.limits[0].max_connections, 20);
	ck_assert_uint_eq(c->delivery.limits[0].max_msgs_per_conn, 100);
	ck_assert_double_eq(c->delivery.limits[0].max_msgs_per_sec, 0.0);
	ck_assert_int_eq(c->delivery.limits[0].tls, CFG_TLS_DEFAULT);

	ck_assert_int_eq(c->replication.mode, CFG_REPL_SYNC);
	ck_assert_uint_eq(c->replication.heartbeat_ms, 500);
	ck_assert_uint_eq(c->replication.failover_after_ms, 3000);
	ck_assert_uint_eq(c->replication.peer_timeout_ms, 2000);
	ck_assert(!c->replication.require_peer);

	/* keys the example leaves out still get their defaults */
	ck_assert_int_eq(c->router.bare_lf, CFG_BARE_LF_REJECT);
	ck_assert_str_eq(c->log.level, "info");
	ck_assert_int_eq(c->log.format, CFG_LOG_LOGFMT);
	ck_assert_str_eq(c->log.debug, "");

	ck_assert_ptr_eq(config_find_node(c, "n1"), &c->nodes[0]);
	ck_assert_ptr_eq(config_find_node(c, "n2"), &c->nodes[1]);
	ck_assert_ptr_null(config_find_node(c, "n3"));
	ck_assert_ptr_null(config_find_node(c, ""));
	ck_assert_ptr_null(config_find_node(c, "N1"));
	config_free(c);
}
END_TEST

/* Every key the example leaves at its default, set to something else. */
START_TEST(test_config_every_other_key_lands)
{
	static const char text[] =
		"cluster: { name = \"prod-eu\"; shards = 1024; };\n"
		"nodes = (\n"
		"  { id = \"a\"; endpoint = \"tcp://10.0.0.1:7101\"; peer = \"b\";\n"
		"    data_dir = \"/srv/a\"; map_size = 68719476736L; },\n"
		"  { id = \"b\"; endpoint = \"ipc:///run/shoal/b.sock\"; peer = \"a\";\n"
		"    data_dir = \"/srv/b\"; map_size = 1073741824; },\n"
		"  { id = \"c\"; endpoint = \"tcp://[::1]:7103\"; data_dir = \"/srv/c\"; }\n"
		");\n"
		"router: {\n"
		"  listen = ( { address = \"[::1]:2525\"; tls = \"none\"; auth = \"none\"; proxy_protocol = false; } );\n"
		"  bare_lf = \"normalize\";\n"
		"  max_sessions = 42; max_errors = 3;\n"
		"  idle_timeout = 60; session_timeout = 120; node_timeout_ms = 250;\n"
		"  dkim = ( { domain = \"a.example\"; selector = \"s1\"; key_file = \"/k/a\"; },\n"
		"           { domain = \"b.example\"; selector = \"s2\"; key_file = \"/k/b\";\n"
		"             canonicalization = \"simple/relaxed\"; expire = 86400;\n"
		"             headers = [ \"From\", \"Subject\" ]; } );\n"
		"  dkim_default_domain = \"a.example\";\n"
		"};\n"
		"delivery: {\n"
		"  dns_servers = [ \"8.8.8.8\", \"[2001:db8::1]:53\" ];\n"
		"  smtp_port = 2525;\n"
		"  retry_schedule = [ 5 ];\n"
		"  max_queue_lifetime = 3600;\n"
		"  routes = ( { domain = \"a.example\"; host = \"smarthost.example\"; tls = \"required\"; },\n"
		"             { domain = \"b.example\"; host = \"192.0.2.7:587\"; tls = \"none\"; } );\n"
		"  limits = ( { domain = \"*\"; },\n"
		"             { domain = \"gmail.com\"; max_connections = 5; max_msgs_per_conn = 7;\n"
		"               max_msgs_per_sec = 2.5; tls = \"required\"; },\n"
		"             { domain = \"yahoo.com\"; max_msgs_per_sec = 3; } );\n"
		"};\n"
		"replication: { mode = \"async\"; heartbeat_ms = 10; failover_after_ms = 50;\n"
		"               peer_timeout_ms = 600000; require_peer = true; };\n"
		"log: { level = \"debug\"; format = \"json\"; debug = \"smtp,zmq\"; };\n";
	struct config *c = load_ok(text);

	ck_assert_str_eq(c->cluster.name, "prod-eu");
	ck_assert_uint_eq(c->cluster.shards, 1024);
	ck_assert_uint_eq(c->n_nodes, 3);
	ck_assert_uint_eq(c->nodes[0].map_size, 68719476736ull);
	ck_assert_uint_eq(c->nodes[1].map_size, 1073741824ull);
	ck_assert_str_eq(c->nodes[1].endpoint, "ipc:///run/shoal/b.sock");
	ck_assert_str_eq(c->nodes[2].endpoint, "tcp://[::1]:7103");
	ck_assert_ptr_null(c->nodes[2].peer);
	ck_assert_ptr_null(c->nodes[2].metrics);
	ck_assert_uint_eq(c->nodes[2].map_size, 17179869184ull);

	ck_assert_uint_eq(c->router.n_listen, 1);
	ck_assert_str_eq(c->router.listen[0].address, "[::1]:2525");
	ck_assert_int_eq(c->router.listen[0].tls, CFG_TLS_NONE);
	ck_assert_int_eq(c->router.listen[0].auth, CFG_AUTH_NONE);
	ck_assert(!c->router.listen[0].proxy_protocol);
	ck_assert_int_eq(c->router.bare_lf, CFG_BARE_LF_NORMALIZE);
	ck_assert_uint_eq(c->router.max_sessions, 42);
	ck_assert_uint_eq(c->router.max_errors, 3);
	ck_assert_uint_eq(c->router.idle_timeout, 60);
	ck_assert_uint_eq(c->router.session_timeout, 120);
	ck_assert_uint_eq(c->router.node_timeout_ms, 250);
	ck_assert_uint_eq(c->router.n_dkim, 2);
	ck_assert_str_eq(c->router.dkim[1].domain, "b.example");
	ck_assert_str_eq(c->router.dkim[1].selector, "s2");
	ck_assert_str_eq(c->router.dkim[1].key_file, "/k/b");
	ck_assert_int_eq(c->router.dkim[0].canonicalization,
			 CFG_DKIM_RELAXED_RELAXED);
	ck_assert_ptr_null(c->router.dkim[0].headers);
	ck_assert_uint_eq(c->router.dkim[0].expire, 0);
	ck_assert_int_eq(c->router.dkim[1].canonicalization,
			 CFG_DKIM_SIMPLE_RELAXED);
	ck_assert_uint_eq(c->router.dkim[1].expire, 86400);
	ck_assert_uint_eq(c->router.dkim[1].n_headers, 2);
	ck_assert_str_eq(c->router.dkim[1].headers[1], "Subject");
	ck_assert_str_eq(c->router.dkim_default_domain, "a.example");

	ck_assert_uint_eq(c->delivery.n_dns_servers, 2);
	ck_assert_str_eq(c->delivery.dns_servers[0], "8.8.8.8");
	ck_assert_str_eq(c->delivery.dns_servers[1], "[2001:db8::1]:53");
	ck_assert_uint_eq(c->delivery.smtp_port, 2525);
	ck_assert_uint_eq(c->delivery.n_retry_schedule, 1);
	ck_assert_uint_eq(c->delivery.retry_schedule[0], 5);
	ck_assert_uint_eq(c->delivery.max_queue_lifetime, 3600);
	ck_assert_uint_eq(c->delivery.n_routes, 2);
	ck_assert_str_eq(c->delivery.routes[0].host, "smarthost.example");
	ck_assert_int_eq(c->delivery.routes[0].tls, CFG_TLS_REQUIRED);
	ck_assert_int_eq(c->delivery.routes[1].tls, CFG_TLS_NONE);
	ck_assert_uint_eq(c->delivery.n_limits, 3);
	/* a limit that gives only its domain gets the per-key defaults */
	ck_assert_str_eq(c->delivery.limits[0].domain, "*");
	ck_assert_uint_eq(c->delivery.limits[0].max_connections, 20);
	ck_assert_uint_eq(c->delivery.limits[0].max_msgs_per_conn, 100);
	ck_assert_double_eq(c->delivery.limits[0].max_msgs_per_sec, 0.0);
	ck_assert_int_eq(c->delivery.limits[0].tls, CFG_TLS_DEFAULT);
	ck_assert_str_eq(c->delivery.limits[1].domain, "gmail.com");
	ck_assert_uint_eq(c->delivery.limits[1].max_connections, 5);
	ck_assert_uint_eq(c->delivery.limits[1].max_msgs_per_conn, 7);
	ck_assert_double_eq(c->delivery.limits[1].max_msgs_per_sec, 2.5);
	ck_assert_int_eq(c->delivery.limits[1].tls, CFG_TLS_REQUIRED);
	/* an integer is a fine number */
	ck_assert_double_eq(c->delivery.limits[2].max_msgs_per_sec, 3.0);

	ck_assert_int_eq(c->replication.mode, CFG_REPL_ASYNC);
	ck_assert_uint_eq(c->replication.heartbeat_ms, 10);
	ck_assert_uint_eq(c->replication.failover_after_ms, 50);
	ck_assert_uint_eq(c->replication.peer_timeout_ms, 600000);
	ck_assert(c->replication.require_peer);
	ck_assert_str_eq(c->log.level, "debug");
	ck_assert_int_eq(c->log.format, CFG_LOG_JSON);
	ck_assert_str_eq(c->log.debug, "smtp,zmq");
	config_free(c);
}
END_TEST

/* libconfig syntax that operators use: hex, adjacent strings joined,
 * comments of three kinds, "=" or ":" and either separator. */
START_TEST(test_config_libconfig_syntax_variants)
{
	static const char text[] =
		"// leading comment\n"
		"# another\n"
		"/* and a\n   block */\n"
		"nodes : ( { id = \"n\" \"1\", endpoint = \"tcp://127.0.0.1:7101\", "
		"data_dir = \"/d\" } )\n"
		"cluster = { shards = 0x100, name = \"a\" \"b\" }\n"
		"replication: { mode = \"none\"; };\n";
	struct config *c = load_ok(text);

	ck_assert_str_eq(c->nodes[0].id, "n1");
	ck_assert_uint_eq(c->cluster.shards, 256);
	ck_assert_str_eq(c->cluster.name, "ab");
	ck_assert_int_eq(c->replication.mode, CFG_REPL_NONE);
	config_free(c);
}
END_TEST

/* ---- defaults ------------------------------------------------------------ */

/* docs/suppression.md: every key optional; values land; bad ones name
 * the key */
START_TEST(test_config_suppression_defaults_values_and_errors)
{
	struct config *c = load_ok(N1);

	ck_assert(c->suppression.enabled);
	ck_assert_int_eq(c->suppression.mode, CFG_SUPP_REFUSE);
	ck_assert_uint_eq(c->suppression.expire, 0);
	ck_assert_uint_eq(c->suppression.check_timeout_ms, 500);
	config_free(c);
	c = load_ok(N1 "suppression = { enabled = false; mode = \"bounce\"; "
		    "expire = 86400; check_timeout_ms = 50; };\n");
	ck_assert(!c->suppression.enabled);
	ck_assert_int_eq(c->suppression.mode, CFG_SUPP_BOUNCE);
	ck_assert_uint_eq(c->suppression.expire, 86400);
	ck_assert_uint_eq(c->suppression.check_timeout_ms, 50);
	config_free(c);
	expect_error(N1 "suppression = { mode = \"drop\"; };\n", 2,
		     "suppression.mode: unknown value \"drop\"");
	expect_error(N1 "suppression = { check_timeout_ms = 5; };\n", 2,
		     "suppression.check_timeout_ms: 5 is out of range "
		     "(10..60000)");
}
END_TEST

START_TEST(test_config_minimal_gets_every_default)
{
	static const uint32_t retry[] = { 60, 300, 900, 1800, 3600, 7200,
					  14400 };
	struct config *c = load_ok(N1);
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';

	ck_assert_str_eq(c->cluster.name, "shoal");
	ck_assert_uint_eq(c->cluster.shards, 256);

	ck_assert_uint_eq(c->n_nodes, 1);
	ck_assert_str_eq(c->nodes[0].id, "n1");
	ck_assert_str_eq(c->nodes[0].endpoint, "tcp://127.0.0.1:7101");
	ck_assert_str_eq(c->nodes[0].data_dir, "/var/lib/shoal/n1");
	ck_assert_ptr_null(c->nodes[0].peer);
	ck_assert_ptr_null(c->nodes[0].metrics);
	ck_assert_uint_eq(c->nodes[0].map_size, 16ull << 30);

	ck_assert_str_eq(c->router.hostname, host);
	ck_assert_uint_eq(c->router.n_listen, 1);
	ck_assert_str_eq(c->router.listen[0].address, "127.0.0.1:2525");
	ck_assert_int_eq(c->router.listen[0].tls, CFG_TLS_DEFAULT);
	ck_assert_int_eq(c->router.listen[0].auth, CFG_AUTH_OPTIONAL);
	ck_assert(!c->router.listen[0].proxy_protocol);
	ck_assert_ptr_null(c->router.tls_cert);
	ck_assert_ptr_null(c->router.tls_key);
	ck_assert_uint_eq(c->router.n_relay_networks, 2);
	ck_assert_str_eq(c->router.relay_networks[0], "127.0.0.0/8");
	ck_assert_str_eq(c->router.relay_networks[1], "::1/128");
	ck_assert_ptr_null(c->router.users_file);
	ck_assert_uint_eq(c->router.max_message_size, 52428800);
	ck_assert_uint_eq(c->router.max_recipients, 1000);
	ck_assert_ptr_null(c->router.metrics);
	ck_assert_uint_eq(c->router.n_dkim, 0);
	ck_assert_ptr_null(c->router.dkim_default_domain);
	ck_assert_int_eq(c->router.bare_lf, CFG_BARE_LF_REJECT);
	ck_assert_uint_eq(c->router.max_sessions, 10000);
	ck_assert_uint_eq(c->router.max_errors, 20);
	ck_assert_uint_eq(c->router.idle_timeout, 300);
	ck_assert_uint_eq(c->router.session_timeout, 3600);
	ck_assert_uint_eq(c->router.node_timeout_ms, 10000);

	ck_assert_str_eq(c->delivery.helo_name, host);
	ck_assert_uint_eq(c->delivery.n_dns_servers, 0);
	ck_assert_ptr_null(c->delivery.dns_servers);
	ck_assert_uint_eq(c->delivery.smtp_port, 25);
	ck_assert_uint_eq(c->delivery.n_retry_schedule, 7);
	for (size_t i = 0; i < 7; i++)
		ck_assert_uint_eq(c->delivery.retry_schedule[i], retry[i]);
	ck_assert_uint_eq(c->delivery.max_queue_lifetime, 432000);
	ck_assert_uint_eq(c->delivery.n_routes, 0);
	ck_assert_uint_eq(c->delivery.n_limits, 1);
	ck_assert_str_eq(c->delivery.limits[0].domain, "*");
	ck_assert_uint_eq(c->delivery.limits[0].max_connections, 20);
	ck_assert_uint_eq(c->delivery.limits[0].max_msgs_per_conn, 100);
	ck_assert_double_eq(c->delivery.limits[0].max_msgs_per_sec, 0.0);
	ck_assert_int_eq(c->delivery.limits[0].tls, CFG_TLS_DEFAULT);
	ck_assert_ptr_null(c->delivery.tls_ca_file);
	ck_assert_uint_eq(c->delivery.mta_sts_port, 443);
	ck_assert_str_eq(c->delivery.tls_report.organization,
			 c->cluster.name);
	ck_assert_str_eq(c->delivery.tls_report.contact, c->delivery.tls_report.from);
	ck_assert_int_eq(strncmp(c->delivery.tls_report.from, "postmaster@", 11), 0);

	ck_assert_int_eq(c->replication.mode, CFG_REPL_SYNC);
	ck_assert_uint_eq(c->replication.heartbeat_ms, 500);
	ck_assert_uint_eq(c->replication.failover_after_ms, 3000);
	ck_assert_uint_eq(c->replication.peer_timeout_ms, 2000);
	ck_assert(!c->replication.require_peer);

	ck_assert_str_eq(c->log.level, "info");
	ck_assert_int_eq(c->log.format, CFG_LOG_LOGFMT);
	ck_assert_str_eq(c->log.debug, "");
	config_free(c);
}
END_TEST

/* Empty groups are the same as absent ones. */
START_TEST(test_config_empty_groups_get_defaults)
{
	struct config *c = load_ok(N1 "cluster: {};\nrouter: {};\n"
				      "delivery: {};\nreplication: {};\n"
				      "log: {};\n");

	ck_assert_str_eq(c->cluster.name, "shoal");
	ck_assert_uint_eq(c->cluster.shards, 256);
	ck_assert_uint_eq(c->router.n_listen, 1);
	ck_assert_uint_eq(c->router.n_relay_networks, 2);
	ck_assert_uint_eq(c->delivery.n_retry_schedule, 7);
	ck_assert_uint_eq(c->delivery.n_limits, 1);
	ck_assert_int_eq(c->replication.mode, CFG_REPL_SYNC);
	ck_assert_str_eq(c->log.level, "info");
	config_free(c);
}
END_TEST

/* delivery.helo_name follows router.hostname when only that is set. */
START_TEST(test_config_helo_name_defaults_to_hostname)
{
	struct config *c =
		load_ok(N1 "router: { hostname = \"mx.example\"; };\n");

	ck_assert_str_eq(c->router.hostname, "mx.example");
	ck_assert_str_eq(c->delivery.helo_name, "mx.example");
	config_free(c);
}
END_TEST

/* router.postmaster (RFC 5321 4.5.1): postmaster@<router.hostname>
 * unless set; set, it must be an address with a domain. */
START_TEST(test_config_postmaster_default_and_value)
{
	struct config *c =
		load_ok(N1 "router: { hostname = \"mx.example\"; };\n");

	ck_assert_str_eq(c->router.postmaster, "postmaster@mx.example");
	config_free(c);
	c = load_ok(N1 "router: { hostname = \"mx.example\";\n"
		       "  postmaster = \"abuse-desk@ops.example\"; };\n");
	ck_assert_str_eq(c->router.postmaster, "abuse-desk@ops.example");
	config_free(c);
}
END_TEST

/* Issue 20: the delivery TLS policy keys and values. */
START_TEST(test_config_delivery_tls_policy_keys)
{
	struct config *c = load_ok(
		N1 "cluster: { name = \"blue\"; };\n"
		"delivery: { helo_name = \"out.example\";\n"
		"  tls_ca_file = \"/etc/test-ca.pem\"; mta_sts_port = 8443;\n"
		"  tls_report = { organization = \"Blue Mail\";\n"
		"                 contact = \"mailto:tls@blue.example\"; };\n"
		"  routes = ( { domain = \"a.example\"; host = \"h:25\"; tls = \"dane\"; },\n"
		"             { domain = \"b.example\"; host = \"h:25\"; tls = \"verify\"; },\n"
		"             { domain = \"c.example\"; host = \"h:25\"; tls = \"mta-sts\"; },\n"
		"             { domain = \"d.example\"; host = \"h:25\"; } );\n"
		"  limits = ( { domain = \"*\"; tls = \"opportunistic\"; } ); };\n");

	ck_assert_str_eq(c->delivery.tls_ca_file, "/etc/test-ca.pem");
	ck_assert_uint_eq(c->delivery.mta_sts_port, 8443);
	ck_assert_str_eq(c->delivery.tls_report.organization, "Blue Mail");
	ck_assert_str_eq(c->delivery.tls_report.contact,
			 "mailto:tls@blue.example");
	ck_assert_str_eq(c->delivery.tls_report.from, "postmaster@out.example");
	ck_assert_int_eq(c->delivery.routes[0].tls, CFG_TLS_DANE);
	ck_assert_int_eq(c->delivery.routes[1].tls, CFG_TLS_VERIFY);
	ck_assert_int_eq(c->delivery.routes[2].tls, CFG_TLS_MTA_STS);
	ck_assert_int_eq(c->delivery.routes[3].tls, CFG_TLS_DEFAULT);
	ck_assert_int_eq(c->delivery.limits[0].tls, CFG_TLS_OPPORTUNISTIC);
	config_free(c);
}
END_TEST

/* A listener that leaves out tls, auth and proxy_protocol. */
START_TEST(test_config_listener_defaults)
{
	struct config *c = load_ok(
		N1 "router: { tls_cert = \"/c\"; tls_key = \"/k\";\n"
		   "  listen = ( { address = \"127.0.0.1:25\"; } ); };\n");

	ck_assert_uint_eq(c->router.n_listen, 1);
	ck_assert_str_eq(c->router.listen[0].address, "127.0.0.1:25");
	/* DEFAULT: STARTTLS because tls_cert is set, decided by the router */
	ck_assert_int_eq(c->router.listen[0].tls, CFG_TLS_DEFAULT);
	ck_assert_int_eq(c->router.listen[0].auth, CFG_AUTH_OPTIONAL);
	ck_assert(!c->router.listen[0].proxy_protocol);
	ck_assert_str_eq(c->router.tls_cert, "/c");
	ck_assert_str_eq(c->router.tls_key, "/k");
	config_free(c);
}
END_TEST

/* An explicit empty relay list means "relay for nobody", not the default. */
START_TEST(test_config_empty_relay_networks_stays_empty)
{
	struct config *c = load_ok(N1 "router: { relay_networks = [ ]; };\n");

	ck_assert_uint_eq(c->router.n_relay_networks, 0);
	config_free(c);
}
END_TEST

/* Every bound is inclusive. */
START_TEST(test_config_bounds_are_inclusive)
{
	char text[8192];
	struct config *c;
	int n;

	n = snprintf(text, sizeof(text),
		     "nodes = ( { id = \"%064d\"; endpoint = \"tcp://h:1\";"
		     " data_dir = \"/d\"; map_size = 65536; } );\n"
		     "cluster: { shards = 65536; };\n"
		     "router: { max_message_size = 2147483648;"
		     " max_recipients = 100000; node_timeout_ms = 100;\n"
		     "  dkim = ( { domain = \"d\"; selector = \"%063d\";"
		     " key_file = \"/k\"; } ); };\n"
		     "delivery: { smtp_port = 65535;"
		     " max_queue_lifetime = 31536000;\n"
		     "  limits = ( { domain = \"*\"; max_msgs_per_sec = 1000000.0;"
		     " max_connections = 100000; max_msgs_per_conn = 1; } );\n"
		     "  dns_servers = [ ",
		     0, 0);
	for (int i = 0; i < 16; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
			      "%s\"127.0.0.%d\"", i ? ", " : "", i + 1);
	n += snprintf(text + n, sizeof(text) - (size_t)n,
		      " ];\n  retry_schedule = [ 31536000");
	for (int i = 1; i < 100; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, ", 1");
	n += snprintf(text + n, sizeof(text) - (size_t)n, " ]; };\n");
	ck_assert_int_lt(n, (int)sizeof(text));

	c = load_ok(text);
	ck_assert_uint_eq(strlen(c->nodes[0].id), 64);
	ck_assert_uint_eq(c->nodes[0].map_size, 65536);
	ck_assert_uint_eq(c->cluster.shards, 65536);
	ck_assert_uint_eq(c->router.max_message_size, 2147483648ull);
	ck_assert_uint_eq(c->router.max_recipients, 100000);
	ck_assert_uint_eq(c->router.node_timeout_ms, 100);
	ck_assert_uint_eq(strlen(c->router.dkim[0].selector), 63);
	ck_assert_uint_eq(c->delivery.smtp_port, 65535);
	ck_assert_uint_eq(c->delivery.max_queue_lifetime, 31536000);
	ck_assert_double_eq(c->delivery.limits[0].max_msgs_per_sec, 1e6);
	ck_assert_uint_eq(c->delivery.limits[0].max_connections, 100000);
	ck_assert_uint_eq(c->delivery.n_dns_servers, 16);
	ck_assert_str_eq(c->delivery.dns_servers[15], "127.0.0.16");
	ck_assert_uint_eq(c->delivery.n_retry_schedule, 100);
	ck_assert_uint_eq(c->delivery.retry_schedule[0], 31536000);
	ck_assert_uint_eq(c->delivery.retry_schedule[99], 1);
	config_free(c);

	c = load_ok(N1 "cluster: { shards = 1; };\n");
	ck_assert_uint_eq(c->cluster.shards, 1);
	config_free(c);
}
END_TEST

/* Past 32 bits libconfig 1.5 keeps only the low bits of an integer written
 * without L: 5368709120 would be 1 GiB, 4294967552 would be 256. */
START_TEST(test_config_integers_past_32_bits_keep_their_value)
{
	struct config *c = load_ok(
		"nodes = ( { id = \"n1\"; endpoint = \"tcp://h:1\";"
		" data_dir = \"/12345678901\"; map_size = 5368709120; },\n"
		"  { id = \"n2\"; endpoint = \"tcp://h:2\"; data_dir = \"/d\";"
		" map_size = 0x140000000; } );\n"
		"# 4294967552 in a comment is left alone\n"
		"router: { hostname = \"h4294967552\"; };\n");

	ck_assert_uint_eq(c->nodes[0].map_size, 5368709120ull);
	ck_assert_uint_eq(c->nodes[1].map_size, 5368709120ull);
	ck_assert_str_eq(c->nodes[0].data_dir, "/12345678901");
	ck_assert_str_eq(c->router.hostname, "h4294967552");
	config_free(c);

	expect_error(N1 "cluster: { shards = 4294967552; };\n", 2,
		     "cluster.shards: 4294967552 is out of range (1..65536)");
	expect_error(N1 "cluster: { shards = 0x100000100; };\n", 2,
		     "cluster.shards: 4294967552 is out of range (1..65536)");
	expect_error(N1 "cluster: { shards = -4294967040; };\n", 2,
		     "cluster.shards: -4294967040 is out of range (1..65536)");
	expect_error(N1 "router: { max_message_size = 4294968320; };\n", 2,
		     "router.max_message_size: 4294968320 is out of range "
		     "(1024..2147483648)");
}
END_TEST

/* ---- errors: file, line, key --------------------------------------------- */

static const struct bad unknown_keys[] = {
	{ N1 "clustr: { name = \"x\"; };\n", 2, "clustr: unknown key" },
	{ N1 "cluster: {\n  name = \"x\";\n  shard = 4;\n};\n", 4,
	  "cluster.shard: unknown key" },
	{ "nodes = (\n  { id = \"n1\"; endpoint = \"tcp://h:1\";\n"
	  "    data_dir = \"/d\"; role = \"primary\"; }\n);\n",
	  3, "nodes[0].role: unknown key" },
	{ N1 "router: {\n  listen = (\n    { address = \"0.0.0.0:25\"; },\n"
	     "    { adress = \"0.0.0.0:587\"; }\n  );\n};\n",
	  5, "router.listen[1].adress: unknown key" },
	{ N1 "Cluster: { };\n", 2, "Cluster: unknown key" },
	{ N1 "nodes2 = 1;\n", 2, "nodes2: unknown key" },
	{ N1 "log: { levle = \"debug\"; };\n", 2, "log.levle: unknown key" },
	{ N1 "delivery: {\n  limits = ( { domain = \"*\"; max_conns = 5; } );\n};\n",
	  3, "delivery.limits[0].max_conns: unknown key" },
	{ N1 "router: { dkim = ( { domain = \"a.example\"; selector = \"s\";"
	     " key_file = \"/k\"; algo = \"rsa\"; } ); };\n",
	  2, "router.dkim[0].algo: unknown key" },
	{ N1 "replication: { mode = \"sync\"; peer_timeout = 5; };\n", 2,
	  "replication.peer_timeout: unknown key" },
	/* reported before the missing nodes: a typo is the likeliest mistake */
	{ "node = ( );\n", 1, "node: unknown key" },
	/* a group nested where a scalar belongs is still just unknown */
	{ N1 "extra: { a: { b: { c = 1; }; }; };\n", 2, "extra: unknown key" },
};

START_TEST(test_config_unknown_key_names_file_line_key)
{
	run_bad_table(unknown_keys, _i);
}
END_TEST

static const struct bad wrong_types[] = {
	{ N1 "router: { dkim = ( { domain = \"d\"; selector = \"s\";"
	     " key_file = \"/k\"; canonicalization = \"fast\"; } ); };\n",
	  2, "router.dkim[0].canonicalization: unknown value \"fast\"" },
	{ N1 "cluster: { shards = \"256\"; };\n", 2,
	  "cluster.shards: expected an integer" },
	{ N1 "cluster: { shards = 2.5; };\n", 2,
	  "cluster.shards: expected an integer" },
	{ N1 "cluster: { name = 5; };\n", 2,
	  "cluster.name: expected a string" },
	{ N1 "router: { max_message_size = true; };\n", 2,
	  "router.max_message_size: expected an integer" },
	{ N1 "replication: { require_peer = \"false\"; };\n", 2,
	  "replication.require_peer: expected true or false" },
	{ N1 "replication: { require_peer = 1; };\n", 2,
	  "replication.require_peer: expected true or false" },
	{ N1 "delivery: { limits = ( { domain = \"*\";\n"
	     "  max_msgs_per_sec = \"1\"; } ); };\n",
	  3, "delivery.limits[0].max_msgs_per_sec: expected a number" },
	{ N1 "cluster = 5;\n", 2, "cluster: expected a group { ... }" },
	{ N1 "router = ( 1 );\n", 2, "router: expected a group { ... }" },
	{ "nodes = { id = \"n1\"; };\n", 1,
	  "nodes: expected a list ( { ... }, ... )" },
	{ "nodes = [ \"n1\" ];\n", 1,
	  "nodes: expected a list ( { ... }, ... )" },
	{ "nodes = (\n  \"n1\" );\n", 2, "nodes[0]: expected a group { ... }" },
	{ N1 "router: { relay_networks = \"127.0.0.0/8\"; };\n", 2,
	  "router.relay_networks: expected an array" },
	{ N1 "router: { relay_networks = [ 1 ]; };\n", 2,
	  "router.relay_networks[0]: expected a string" },
	{ N1 "delivery: { retry_schedule = ( 60,\n \"x\" ); };\n", 3,
	  "delivery.retry_schedule[1]: expected an integer" },
	{ N1 "delivery: { retry_schedule = [ 1.5 ]; };\n", 2,
	  "delivery.retry_schedule[0]: expected an integer" },
	{ N1 "router: { listen = ( { address = \"0.0.0.0:25\"; tls = 1; } ); };\n",
	  2, "router.listen[0].tls: expected a string" },
	{ N1 "router: { listen = ( { address = \"0.0.0.0:25\"; tls = \"tls\"; } ); };\n",
	  2, "router.listen[0].tls: unknown value \"tls\"" },
	/* "" names CFG_TLS_DEFAULT in the table but must not be choosable */
	{ N1 "router: { listen = ( { address = \"0.0.0.0:25\"; tls = \"\"; } ); };\n",
	  2, "router.listen[0].tls: unknown value \"\"" },
	{ N1 "router: { listen = ( { address = \"0.0.0.0:25\";\n"
	     "  auth = \"sometimes\"; } ); };\n",
	  3, "router.listen[0].auth: unknown value \"sometimes\"" },
	{ N1 "router: { listen = ( { address = \"0.0.0.0:25\";"
	     " proxy_protocol = \"yes\"; } ); };\n",
	  2, "router.listen[0].proxy_protocol: expected true or false" },
	{ N1 "router: { listen = ( ( 1 ) ); };\n", 2,
	  "router.listen[0]: expected a group { ... }" },
	{ N1 "router: { dkim = { domain = \"d\"; }; };\n", 2,
	  "router.dkim: expected a list ( { ... }, ... )" },
	{ N1 "router: { bare_lf = \"strip\"; };\n", 2,
	  "router.bare_lf: unknown value \"strip\"" },
	{ N1 "replication: { mode = \"semi\"; };\n", 2,
	  "replication.mode: unknown value \"semi\"" },
	{ N1 "replication: { mode = \"SYNC\"; };\n", 2,
	  "replication.mode: unknown value \"SYNC\"" },
	{ N1 "log: { format = \"xml\"; };\n", 2,
	  "log.format: unknown value \"xml\"" },
	{ N1 "delivery: { routes = ( { domain = \"a\"; host = \"h\";"
	     " tls = true; } ); };\n",
	  2, "delivery.routes[0].tls: expected a string" },
	{ "nodes = ( { id = 7; endpoint = \"tcp://h:1\"; data_dir = \"/d\"; } );\n",
	  1, "nodes[0].id: expected a string" },
	{ "nodes = ( { id = \"n1\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\";\n"
	  "  map_size = 1.5e10; } );\n",
	  2, "nodes[0].map_size: expected an integer" },
};

START_TEST(test_config_wrong_type_names_file_line_key)
{
	run_bad_table(wrong_types, _i);
}
END_TEST

static const struct bad missing_keys[] = {
	/* nothing to point at: the message names the file and the key */
	{ "cluster: { name = \"x\"; };\n", 0, "nodes: required key missing" },
	{ "nodes = ( );\n", 1, "nodes: 0 entries, expected 1..1024" },
	{ "nodes = (\n  { endpoint = \"tcp://h:1\";\n    data_dir = \"/d\"; }\n);\n",
	  2, "nodes[0].id: required key missing" },
	{ "nodes = (\n  { id = \"n1\";\n    data_dir = \"/d\"; }\n);\n", 2,
	  "nodes[0].endpoint: required key missing" },
	{ "nodes = ( { id = \"n1\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\"; },\n"
	  "  { id = \"n2\"; endpoint = \"tcp://h:2\"; } );\n",
	  2, "nodes[1].data_dir: required key missing" },
	{ N1 "router: {\n  listen = ( { tls = \"starttls\"; } ); };\n", 3,
	  "router.listen[0].address: required key missing" },
	{ N1 "router: { dkim = (\n  { domain = \"d\"; selector = \"s\"; } ); };\n",
	  3, "router.dkim[0].key_file: required key missing" },
	{ N1 "delivery: { routes = ( { domain = \"d\"; } ); };\n", 2,
	  "delivery.routes[0].host: required key missing" },
	{ N1 "delivery: { limits = ( { max_connections = 3; } ); };\n", 2,
	  "delivery.limits[0].domain: required key missing" },
};

START_TEST(test_config_missing_key_names_file_and_key)
{
	run_bad_table(missing_keys, _i);
}
END_TEST

static const struct bad out_of_range[] = {
	{ N1 "cluster: { shards = 0; };\n", 2,
	  "cluster.shards: 0 is out of range (1..65536)" },
	{ N1 "cluster: { shards = 65537; };\n", 2,
	  "cluster.shards: 65537 is out of range (1..65536)" },
	{ N1 "cluster: { shards = -1; };\n", 2,
	  "cluster.shards: -1 is out of range (1..65536)" },
	/* would be 256 if cut to 32 bits */
	{ N1 "cluster: { shards = 4294967552L; };\n", 2,
	  "cluster.shards: 4294967552 is out of range (1..65536)" },
	{ N1 "delivery: { smtp_port = 65536; };\n", 2,
	  "delivery.smtp_port: 65536 is out of range (1..65535)" },
	{ N1 "delivery: { smtp_port = 0; };\n", 2,
	  "delivery.smtp_port: 0 is out of range (1..65535)" },
	{ N1 "router: { max_message_size = 1023; };\n", 2,
	  "router.max_message_size: 1023 is out of range (1024..2147483648)" },
	{ N1 "router: { max_message_size = 2147483649L; };\n", 2,
	  "router.max_message_size: 2147483649 is out of range "
	  "(1024..2147483648)" },
	{ N1 "router: { max_recipients = 100001; };\n", 2,
	  "router.max_recipients: 100001 is out of range (1..100000)" },
	{ N1 "router: { node_timeout_ms = 99; };\n", 2,
	  "router.node_timeout_ms: 99 is out of range (100..600000)" },
	{ N1 "router: { idle_timeout = 0; };\n", 2,
	  "router.idle_timeout: 0 is out of range (1..86400)" },
	{ "nodes = ( { id = \"n1\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\";\n"
	  "  map_size = 100; } );\n",
	  2, "nodes[0].map_size: 100 is out of range (65536..1e+15)" },
	{ N1 "replication: { heartbeat_ms = 9; };\n", 2,
	  "replication.heartbeat_ms: 9 is out of range (10..60000)" },
	{ N1 "replication: { failover_after_ms = 600001; };\n", 2,
	  "replication.failover_after_ms: 600001 is out of range (50..600000)" },
	{ N1 "delivery: { limits = ( { domain = \"*\"; max_msgs_per_sec = -0.5; } ); };\n",
	  2, "delivery.limits[0].max_msgs_per_sec: -0.5 is out of range "
	     "(0..1000000)" },
	{ N1 "delivery: { limits = ( { domain = \"*\"; max_connections = 0; } ); };\n",
	  2, "delivery.limits[0].max_connections: 0 is out of range (1..100000)" },
	{ N1 "delivery: { max_queue_lifetime = 31536001; };\n", 2,
	  "delivery.max_queue_lifetime: 31536001 is out of range (1..31536000)" },
	{ N1 "delivery: { retry_schedule = [ 60,\n 0 ]; };\n", 3,
	  "delivery.retry_schedule[1]: 0 is out of range (1..31536000)" },
	{ N1 "delivery: { retry_schedule = [ -60 ]; };\n", 2,
	  "delivery.retry_schedule[0]: -60 is out of range (1..31536000)" },
	{ N1 "delivery: { retry_schedule = [ ]; };\n", 2,
	  "delivery.retry_schedule: 0 entries, expected 1..100" },
	{ N1 "delivery: { dns_servers = [ \"127.0.0.1\", \"127.0.0.2\","
	     " \"127.0.0.3\", \"127.0.0.4\", \"127.0.0.5\", \"127.0.0.6\","
	     " \"127.0.0.7\", \"127.0.0.8\", \"127.0.0.9\", \"127.0.0.10\","
	     " \"127.0.0.11\", \"127.0.0.12\", \"127.0.0.13\", \"127.0.0.14\","
	     " \"127.0.0.15\", \"127.0.0.16\", \"127.0.0.17\" ]; };\n",
	  2, "delivery.dns_servers: 17 entries, expected 0..16" },
	{ "nodes = ( { id = \"12345678901234567890123456789012345678901234567890"
	  "123456789012345\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\"; } );\n",
	  1, "nodes[0].id: length 65 out of range (1..64)" },
	{ "nodes = ( { id = \"\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\"; } );\n",
	  1, "nodes[0].id: length 0 out of range (1..64)" },
	{ N1 "router: { dkim = ( { domain = \"d\"; key_file = \"/k\"; selector ="
	     " \"1234567890123456789012345678901234567890123456789012345678901234\";"
	     " } ); };\n",
	  2, "router.dkim[0].selector: length 64 out of range (1..63)" },
	{ N1 "cluster: { name = \"\"; };\n", 2,
	  "cluster.name: length 0 out of range (1..64)" },
	{ N1 "router: { relay_networks = [ \"\" ]; };\n", 2,
	  "router.relay_networks[0]: length 0 out of range (1..1024)" },
	{ N1 "log: {\n  level = \"verbose\"; };\n", 3,
	  "log.level: expected error, warn, info or debug" },
	{ N1 "log: { level = \"\"; };\n", 2,
	  "log.level: length 0 out of range (1..16)" },
};

START_TEST(test_config_out_of_range_names_file_line_key)
{
	run_bad_table(out_of_range, _i);
}
END_TEST

#define NODE(id, port, peer)                                                 \
	"  { id = \"" id "\"; endpoint = \"tcp://127.0.0.1:" port "\";"      \
	" data_dir = \"/d/" id "\";" peer " }"

static const struct bad cross_checks[] = {
	{ "nodes = (\n" NODE("n1", "7101", "") ",\n" NODE("n2", "7102", "")
	  ",\n  { id = \"n1\";\n    endpoint = \"tcp://127.0.0.1:7103\";"
	  " data_dir = \"/d3\"; }\n);\n",
	  4, "nodes[2].id: duplicate node id \"n1\"" },
	{ "nodes = (\n" NODE("n1", "7101", " peer = \"n9\";") "\n);\n", 2,
	  "nodes[0].peer: peer \"n9\" is not another node" },
	{ "nodes = (\n" NODE("n1", "7101", " peer = \"n1\";") "\n);\n", 2,
	  "nodes[0].peer: peer \"n1\" is not another node" },
	{ "nodes = (\n" NODE("n1", "7101", " peer = \"n2\";") ",\n"
	  NODE("n2", "7102", "") "\n);\n",
	  2, "nodes[0].peer: peer \"n2\" does not name \"n1\" as its peer" },
	{ "nodes = (\n" NODE("n1", "7101", "") ",\n"
	  NODE("n2", "7102", " peer = \"n1\";") "\n);\n",
	  3, "nodes[1].peer: peer \"n1\" does not name \"n2\" as its peer" },
	{ "nodes = (\n" NODE("n1", "7101", " peer = \"n2\";") ",\n"
	  NODE("n2", "7102", " peer = \"n3\";") ",\n"
	  NODE("n3", "7103", " peer = \"n2\";") "\n);\n",
	  2, "nodes[0].peer: peer \"n2\" does not name \"n1\" as its peer" },
	/* a delivery policy is no listener mode */
	{ N1 "router: { listen = (\n  { address = \"127.0.0.1:25\"; tls = \"dane\"; } ); };\n",
	  3, "router.listen[0].tls: a listener takes \"none\", \"starttls\" or \"implicit\"" },
	{ N1 "router: { http_listen = (\n  { address = \"127.0.0.1:80\"; tls = \"verify\"; } ); };\n",
	  3, "router.http_listen[0].tls: HTTP takes \"none\" or \"implicit\"" },
	/* libconfig itself refuses a key given twice */
	{ N1 "cluster: { shards = 1;\n  shards = 2; };\n", 3,
	  "duplicate setting name" },
	{ N1 "cluster: { };\ncluster: { };\n", 3, "duplicate setting name" },
};

START_TEST(test_config_cross_checks_name_file_line_key)
{
	run_bad_table(cross_checks, _i);
}
END_TEST

START_TEST(test_config_pairs_and_lone_nodes_load)
{
	struct config *c = load_ok(
		"nodes = (\n" NODE("n1", "7101", " peer = \"n2\";") ",\n"
		NODE("n2", "7102", " peer = \"n1\";") ",\n"
		NODE("n3", "7103", " peer = \"n4\";") ",\n"
		NODE("n4", "7104", " peer = \"n3\";") ",\n"
		NODE("n5", "7105", "") "\n);\n");

	ck_assert_uint_eq(c->n_nodes, 5);
	ck_assert_str_eq(config_find_node(c, "n3")->peer, "n4");
	ck_assert_str_eq(config_find_node(c, "n4")->peer, "n3");
	ck_assert_ptr_null(config_find_node(c, "n5")->peer);
	ck_assert_str_eq(config_find_node(c, "n5")->endpoint,
			 "tcp://127.0.0.1:7105");
	config_free(c);
}
END_TEST

/* ---- addresses ----------------------------------------------------------- */

#define LISTEN(a)                                                            \
	N1 "router: {\n  listen = ( { address = \"0.0.0.0:25\"; },\n"        \
	   "    { address = \"" a "\"; } ); };\n"
#define LISTEN_MSG "router.listen[1].address: expected IPv4:port or [IPv6]:port"
#define ENDPOINT(e)                                                          \
	"nodes = (\n  { id = \"n1\";\n    endpoint = \"" e "\";"             \
	" data_dir = \"/d\"; }\n);\n"
#define ENDPOINT_MSG "nodes[0].endpoint: expected tcp://host:port or ipc://path"
#define RELAY(n)                                                             \
	N1 "router: { relay_networks = [\n  \"10.0.0.0/8\",\n  \"" n "\" ]; };\n"
#define RELAY_MSG                                                            \
	"router.relay_networks[1]: expected a network such as 192.0.2.0/24 or " \
	"2001:db8::/32"
#define DNS(s) N1 "delivery: {\n  dns_servers = [ \"" s "\" ]; };\n"
#define DNS_MSG                                                              \
	"delivery.dns_servers[0]: expected an IP address, IP:port or [IPv6]:port"
#define ROUTE(h)                                                             \
	N1 "delivery: { routes = (\n  { domain = \"a\"; host = \"a.example\"; },\n" \
	   "  { domain = \"b\";\n    host = \"" h "\"; } ); };\n"
#define ROUTE_MSG                                                            \
	"delivery.routes[1].host: expected host, host:port or [IPv6]:port"

static const struct bad bad_addresses[] = {
	{ LISTEN("localhost:25"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1:0"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1:65536"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1:x"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1:25x"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1:+25"), 4, LISTEN_MSG },
	{ LISTEN("127.0.0.1:25 "), 4, LISTEN_MSG },
	{ LISTEN("::1:25"), 4, LISTEN_MSG },
	{ LISTEN("[::1"), 4, LISTEN_MSG },
	{ LISTEN("[::1]"), 4, LISTEN_MSG },
	{ LISTEN("[::1]25"), 4, LISTEN_MSG },
	{ LISTEN("[127.0.0.1]:25"), 4, LISTEN_MSG },
	{ LISTEN("300.1.1.1:25"), 4, LISTEN_MSG },
	{ LISTEN(":25"), 4, LISTEN_MSG },
	{ LISTEN("*:25"), 4, LISTEN_MSG },
	{ ENDPOINT("127.0.0.1:7101"), 3, ENDPOINT_MSG },
	{ ENDPOINT("tcp://127.0.0.1"), 3, ENDPOINT_MSG },
	{ ENDPOINT("tcp://:7101"), 3, ENDPOINT_MSG },
	{ ENDPOINT("tcp://*:7101"), 3, ENDPOINT_MSG },
	{ ENDPOINT("tcp://127.0.0.1:99999"), 3, ENDPOINT_MSG },
	{ ENDPOINT("tcp://bad host:7101"), 3, ENDPOINT_MSG },
	{ ENDPOINT("udp://127.0.0.1:7101"), 3, ENDPOINT_MSG },
	{ ENDPOINT("ipc://"), 3, ENDPOINT_MSG },
	{ ENDPOINT("TCP://127.0.0.1:7101"), 3, ENDPOINT_MSG },
	{ "nodes = ( { id = \"n1\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\";\n"
	  "  metrics = \"9101\"; } );\n",
	  2, "nodes[0].metrics: expected host:port or [IPv6]:port" },
	{ "nodes = ( { id = \"n1\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\";\n"
	  "  metrics = \"127.0.0.1:\"; } );\n",
	  2, "nodes[0].metrics: expected host:port or [IPv6]:port" },
	{ N1 "router: {\n  metrics = \"localhost\"; };\n", 3,
	  "router.metrics: expected host:port or [IPv6]:port" },
	{ RELAY("10.0.0.0/33"), 4, RELAY_MSG },
	{ RELAY("10.0.0/8"), 4, RELAY_MSG },
	{ RELAY("banana"), 4, RELAY_MSG },
	{ RELAY("::1/129"), 4, RELAY_MSG },
	{ RELAY("10.0.0.0/"), 4, RELAY_MSG },
	{ RELAY("10.0.0.0/-8"), 4, RELAY_MSG },
	{ RELAY("example.com/24"), 4, RELAY_MSG },
	{ DNS("dns.example"), 3, DNS_MSG },
	{ DNS("1.1.1.1:0"), 3, DNS_MSG },
	{ DNS("[::1]:"), 3, DNS_MSG },
	{ DNS("1.1.1.1:53:53"), 3, DNS_MSG },
	{ DNS("[1.1.1.1]:53"), 3, DNS_MSG },
	{ ROUTE("relay example:25"), 5, ROUTE_MSG },
	{ ROUTE("relay.example:99999"), 5, ROUTE_MSG },
	{ ROUTE("relay.example:"), 5, ROUTE_MSG },
	{ ROUTE("[::1"), 5, ROUTE_MSG },
	{ ROUTE("relay..example"), 5, ROUTE_MSG },
	{ ROUTE(".relay.example"), 5, ROUTE_MSG },
	{ ROUTE("relay/example"), 5, ROUTE_MSG },
	{ N1 "router: {\n  hostname = \"not a host\"; };\n", 0,
	  "router.postmaster: the default \"postmaster@not a host\" (from "
	  "router.hostname) is not an address; set router.postmaster" },
	{ N1 "router: {\n  postmaster = \"postmaster\"; };\n", 3,
	  "router.postmaster: expected an address such as "
	  "postmaster@example.com" },
	{ N1 "router: {\n  postmaster = \"<pm@ops.example>\"; };\n", 3,
	  "router.postmaster: expected an address such as "
	  "postmaster@example.com" },
	{ N1 "router: {\n  postmaster = \"pm@ops..example\"; };\n", 3,
	  "router.postmaster: expected an address such as "
	  "postmaster@example.com" },
};

START_TEST(test_config_bad_address_names_file_line_key)
{
	run_bad_table(bad_addresses, _i);
}
END_TEST

START_TEST(test_config_good_addresses_load)
{
	struct config *c = load_ok(
		"nodes = (\n"
		"  { id = \"a\"; endpoint = \"tcp://[::1]:7101\"; data_dir = \"/a\";"
		" metrics = \"localhost:9101\"; },\n"
		"  { id = \"b\"; endpoint = \"tcp://node-1.internal:7102\";"
		" data_dir = \"/b\"; metrics = \"[::1]:9102\"; },\n"
		"  { id = \"c\"; endpoint = \"ipc:///run/shoal/c.sock\";"
		" data_dir = \"/c\"; metrics = \"0.0.0.0:9103\"; }\n"
		");\n"
		"router: {\n"
		"  listen = ( { address = \"[::1]:2525\"; },"
		" { address = \"[::]:25\"; }, { address = \"192.0.2.1:65535\"; } );\n"
		"  relay_networks = [ \"10.0.0.1\", \"2001:db8::/32\", \"0.0.0.0/0\","
		" \"::/0\", \"192.0.2.7/32\" ];\n"
		"  metrics = \"metrics.internal:9201\";\n"
		"};\n"
		"delivery: {\n"
		"  dns_servers = [ \"8.8.8.8\", \"[2001:db8::1]:53\", \"2001:db8::53\","
		" \"127.0.0.1:5353\" ];\n"
		"  routes = ( { domain = \"a\"; host = \"smarthost.example\"; },\n"
		"             { domain = \"b\"; host = \"[2001:db8::25]:587\"; },\n"
		"             { domain = \"c\"; host = \"2001:db8::25\"; },\n"
		"             { domain = \"d\"; host = \"192.0.2.1:2525\"; },\n"
		"             { domain = \"e\"; host = \"mx_1.example.:25\"; } );\n"
		"};\n");

	ck_assert_uint_eq(c->n_nodes, 3);
	ck_assert_uint_eq(c->router.n_listen, 3);
	ck_assert_str_eq(c->router.listen[1].address, "[::]:25");
	ck_assert_uint_eq(c->router.n_relay_networks, 5);
	ck_assert_uint_eq(c->delivery.n_dns_servers, 4);
	ck_assert_uint_eq(c->delivery.n_routes, 5);
	ck_assert_str_eq(c->delivery.routes[2].host, "2001:db8::25");
	config_free(c);
}
END_TEST

/* ---- syntax errors ------------------------------------------------------- */

static const struct bad syntax_errors[] = {
	{ N1 "cluster: { shards = ; };\n", 2, "syntax error" },
	{ N1 "\ncluster: {\n  name = \"x\";\n", 5, "syntax error" },
	{ N1 "cluster: { name = \"unterminated; };\n\n", 4, "syntax error" },
	{ N1 "cluster: { name = x; };\n", 2, "syntax error" },
	{ N1 "cluster: { name = 'x'; };\n", 2, "syntax error" },
	{ N1 "cluster: { shards = 1 2; };\n", 2, "syntax error" },
	{ N1 "\n\n\nrouter: { listen = ( { address = \"0.0.0.0:25\"; } ; ); };\n",
	  5, "syntax error" },
	{ "nodes = ( { id = \"n1\"; } ;\n", 1, "syntax error" },
	{ "{ }\n", 1, "syntax error" },
	{ "nodes\n", 2, "syntax error" },
	/* a UTF-8 byte order mark is not libconfig */
	{ "\xef\xbb\xbf" N1, 1, "syntax error" },
	/* an array holds scalars only */
	{ N1 "delivery: { dns_servers = [ [ \"x\" ] ]; };\n", 2,
	  "syntax error" },
	{ N1 "@include \"/nonexistent/shoal-test-include.conf\"\n", 2,
	  "cannot open include file" },
};

START_TEST(test_config_syntax_error_names_file_and_line)
{
	run_bad_table(syntax_errors, _i);
}
END_TEST

/* A mistake inside an @include'd file names that file and its line. */
START_TEST(test_config_include_errors_name_the_included_file)
{
	static const char bad_key[] = "cluster: {\n  shard = 3; };\n";
	static const char bad_syntax[] = "\ncluster: { shards = ; };\n";
	char inc[sizeof(TMP_TEMPLATE)], text[256], want[256];
	struct config *c;
	struct run r;

	write_temp(inc, "cluster: { shards = 7; };\n", 26);
	snprintf(text, sizeof(text), N1 "@include \"%s\"\n", inc);
	c = load_ok(text);
	ck_assert_uint_eq(c->cluster.shards, 7);
	config_free(c);
	unlink(inc);

	write_temp(inc, bad_key, sizeof(bad_key) - 1);
	snprintf(text, sizeof(text), N1 "@include \"%s\"\n", inc);
	run_text(&r, text);
	unlink(inc);
	snprintf(want, sizeof(want), "%s:2: cluster.shard: unknown key", inc);
	ck_assert_str_eq(r.err, want);
	ck_assert_int_eq(r.rc, SHOAL_E_CONFIG);

	write_temp(inc, bad_syntax, sizeof(bad_syntax) - 1);
	snprintf(text, sizeof(text), N1 "@include \"%s\"\n", inc);
	run_text(&r, text);
	unlink(inc);
	snprintf(want, sizeof(want), "%s:2: syntax error", inc);
	ck_assert_str_eq(r.err, want);
	ck_assert_int_eq(r.rc, SHOAL_E_CONFIG);
}
END_TEST

/* ---- hostile input ------------------------------------------------------- */

START_TEST(test_config_empty_file_wants_nodes)
{
	expect_error("", 0, "nodes: required key missing");
	expect_error("\n\n   \t\n", 0, "nodes: required key missing");
	expect_error("# only\n// comments\n/* here */\n", 0,
		     "nodes: required key missing");
}
END_TEST

START_TEST(test_config_dev_null_wants_nodes)
{
	struct config *c = &untouched;
	char err[256];

	ck_assert_int_eq(config_load("/dev/null", &c, err, sizeof(err)),
			 SHOAL_E_CONFIG);
	ck_assert_str_eq(err, "/dev/null: nodes: required key missing");
	ck_assert_ptr_eq(c, &untouched);
}
END_TEST

START_TEST(test_config_nonexistent_file_is_enoent)
{
	char dir[] = "/tmp/shoal-test-config-dir-XXXXXX", path[64], want[128];
	struct config *c = &untouched;
	char err[256];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(c, &untouched);

	snprintf(path, sizeof(path), "%s/no/such/dir.conf", dir);
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_eq(c, &untouched);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Regression: a directory opens fine with fopen() and libconfig's scanner
 * then called exit(2) on the read error, killing the whole program. */
START_TEST(test_config_directory_is_eisdir)
{
	char dir[] = "/tmp/shoal-test-config-dir-XXXXXX", want[128];
	struct config *c = &untouched;
	char err[256];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(config_load(dir, &c, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: %s", dir, strerror(EISDIR));
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(c, &untouched);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Deterministic junk: a 64-bit LCG, high bytes. */
static void
fill_garbage(unsigned char *p, size_t n, uint64_t seed, bool allow_nul)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (unsigned char)(seed >> 56);
		if (!allow_nul && p[i] == 0)
			p[i] = 0xff;
	}
}

START_TEST(test_config_binary_garbage_fails_cleanly)
{
	unsigned char junk[4096];

	for (uint64_t seed = 1; seed <= 32; seed++) {
		struct run r;
		size_t plen;

		fill_garbage(junk, sizeof(junk), seed, seed % 2 == 0);
		run_bytes(&r, junk, sizeof(junk));
		plen = strlen(r.path);
		ck_assert_int_eq(r.rc, SHOAL_E_CONFIG);
		ck_assert_ptr_eq(r.cfg, &untouched);
		/* "PATH:LINE: ..." */
		ck_assert_int_eq(strncmp(r.err, r.path, plen), 0);
		ck_assert_int_eq(r.err[plen], ':');
		ck_assert_int_ge(atoi(r.err + plen + 1), 1);
		ck_assert_uint_gt(strlen(r.err), plen + 3);
	}
}
END_TEST

/* A NUL byte would end the text for libconfig, hiding whatever follows. */
START_TEST(test_config_nul_byte_is_an_error)
{
	static const char text[] = N1 "cluster: { name = \"a\"; };\n"
				      "\0bogus = 1;\n";
	static const char in_string[] =
		"nodes = ( { id = \"n1\0x\"; endpoint = \"tcp://h:1\";"
		" data_dir = \"/d\"; } );\n";
	struct run r;

	run_bytes(&r, text, sizeof(text) - 1);
	assert_failed(&r, 3, "NUL byte in the file");
	run_bytes(&r, in_string, sizeof(in_string) - 1);
	assert_failed(&r, 1, "NUL byte in the file");
}
END_TEST

/* Every string is bounded; a huge one is refused by length, promptly.
 * Regression: read through a FILE, libconfig rescanned the token on every
 * 8 KiB refill, so 8 MiB took about a minute and 50 MiB most of an hour. */
START_TEST(test_config_huge_string_is_refused_quickly)
{
	enum { LEN = 8 << 20 };
	static const char head[] = "nodes = ( { id = \"";
	static const char tail[] =
		"\"; endpoint = \"tcp://h:1\"; data_dir = \"/d\"; } );\n";
	size_t n = sizeof(head) - 1 + LEN + sizeof(tail) - 1;
	char *text = malloc(n + 1), msg[128];
	struct run r;

	ck_assert_ptr_nonnull(text);
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'A', LEN);
	memcpy(text + sizeof(head) - 1 + LEN, tail, sizeof(tail));
	run_bytes(&r, text, n);
	snprintf(msg, sizeof(msg),
		 "nodes[0].id: length %d out of range (1..64)", LEN);
	assert_failed(&r, 1, msg);
	free(text);
}
END_TEST

/* Long comments are fine, and fast for the same reason. */
START_TEST(test_config_huge_comment_loads)
{
	enum { LEN = 8 << 20 };
	size_t n = 2 + LEN + 1 + sizeof(N1) - 1;
	char *text = malloc(n + 1);
	struct config *c;

	ck_assert_ptr_nonnull(text);
	memcpy(text, "# ", 2);
	memset(text + 2, 'c', LEN);
	text[2 + LEN] = '\n';
	memcpy(text + 3 + LEN, N1, sizeof(N1));
	c = load_ok(text);
	ck_assert_uint_eq(c->n_nodes, 1);
	config_free(c);
	free(text);
}
END_TEST

/* A file past 16 MiB is refused before parsing: /dev/urandom or a log
 * given by mistake must not be read forever. Exactly 16 MiB is fine. */
START_TEST(test_config_file_size_is_bounded)
{
	enum { MAX = 16 << 20 };
	char path[sizeof(TMP_TEMPLATE)], want[128];
	struct config *c = &untouched;
	char err[256];
	char *text;
	int fd;

	/* sparse: MAX + 1 zero bytes */
	memcpy(path, TMP_TEMPLATE, sizeof(TMP_TEMPLATE));
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)MAX + 1), 0);
	close(fd);
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)),
			 SHOAL_E_CONFIG);
	unlink(path);
	snprintf(want, sizeof(want), "%s: larger than %d bytes", path, MAX);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_eq(c, &untouched);

	text = malloc(MAX + 1);
	ck_assert_ptr_nonnull(text);
	memcpy(text, N1, sizeof(N1) - 1);
	memset(text + sizeof(N1) - 1, ' ', MAX - (sizeof(N1) - 1));
	text[MAX - 1] = '\n';
	text[MAX] = '\0';
	c = load_ok(text);
	ck_assert_uint_eq(c->n_nodes, 1);
	config_free(c);
	free(text);
}
END_TEST

/* Build "x = " + depth openers + "1" + depth closers + ";" after N1. */
static char *
nested(int depth, const char *open, const char *close, const char *key)
{
	size_t lo = strlen(open), lc = strlen(close);
	size_t n = sizeof(N1) + strlen(key) + 8 + (size_t)depth * (lo + lc);
	char *t = malloc(n), *p = t;

	ck_assert_ptr_nonnull(t);
	p += sprintf(p, N1 "%s = ", key);
	for (int i = 0; i < depth; i++, p += lo)
		memcpy(p, open, lo);
	*p++ = '1';
	for (int i = 0; i < depth; i++, p += lc)
		memcpy(p, close, lc);
	strcpy(p, ";\n");
	return t;
}

START_TEST(test_config_deep_nesting_fails_cleanly)
{
	static const struct {
		const char *open, *close;
	} kinds[] = {
		{ "{ a = ", "; }" },
		{ "(", ")" },
		{ "( { a = ", "; } )" },
	};

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char *t;
		struct run r;
		size_t plen;

		/* moderately deep: parses, and is refused by key */
		t = nested(1000, kinds[k].open, kinds[k].close, "x");
		run_text(&r, t);
		assert_failed(&r, 2, "x: unknown key");
		free(t);

		t = nested(1000, kinds[k].open, kinds[k].close, "cluster");
		run_text(&r, t);
		ck_assert_int_eq(r.rc, SHOAL_E_CONFIG);
		ck_assert_ptr_eq(r.cfg, &untouched);
		free(t);

		/* far too deep for the parser: its own error, no crash */
		t = nested(200000, kinds[k].open, kinds[k].close, "x");
		run_text(&r, t);
		plen = strlen(r.path);
		ck_assert_int_eq(r.rc, SHOAL_E_CONFIG);
		ck_assert_ptr_eq(r.cfg, &untouched);
		ck_assert_int_eq(strncmp(r.err, r.path, plen), 0);
		ck_assert_int_eq(strncmp(r.err + plen, ":2: ", 4), 0);
		free(t);
	}
}
END_TEST

/* A nested value where a node's string belongs. */
START_TEST(test_config_nested_value_in_node_is_wrong_type)
{
	expect_error("nodes = ( { id = { a = { b = 1; }; }; endpoint = \"tcp://h:1\";"
		     " data_dir = \"/d\"; } );\n",
		     1, "nodes[0].id: expected a string");
	expect_error("nodes = ( { id = \"n1\"; endpoint = ( ( \"tcp://h:1\" ) );"
		     " data_dir = \"/d\"; } );\n",
		     1, "nodes[0].endpoint: expected a string");
}
END_TEST

/* An unknown key of 100000 characters: the key path in the message is cut
 * to fit, and the message stays whole. */
START_TEST(test_config_long_unknown_key_is_cut)
{
	enum { LEN = 100000 };
	char *text = malloc(sizeof(N1) + LEN + 8), want[512];
	struct run r;

	ck_assert_ptr_nonnull(text);
	memcpy(text, N1, sizeof(N1) - 1);
	memset(text + sizeof(N1) - 1, 'k', LEN);
	strcpy(text + sizeof(N1) - 1 + LEN, " = 1;\n");
	run_text(&r, text);
	snprintf(want, sizeof(want), "%s:2: %.255s: unknown key", r.path,
		 text + sizeof(N1) - 1);
	ck_assert_str_eq(r.err, want);
	ck_assert_int_eq(r.rc, SHOAL_E_CONFIG);
	free(text);
}
END_TEST

/* Lists are bounded by count, before anything is copied. */
START_TEST(test_config_too_many_entries)
{
	size_t cap = 5000 * 24 + 256, n;
	char *text = malloc(cap);
	struct run r;

	ck_assert_ptr_nonnull(text);
	n = (size_t)snprintf(text, cap, N1 "router: { relay_networks = [ ");
	for (int i = 0; i < 5000; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s\"10.0.0.1\"",
				      i ? "," : "");
	snprintf(text + n, cap - n, " ]; };\n");
	run_text(&r, text);
	assert_failed(&r, 2,
		      "router.relay_networks: 5000 entries, expected 0..4096");

	n = (size_t)snprintf(text, cap, "nodes = (\n");
	for (int i = 0; i < 1025; i++)
		n += (size_t)snprintf(text + n, cap - n,
				      "%s{id=\"n%d\";endpoint=\"tcp://h:1\";"
				      "data_dir=\"/d\";}",
				      i ? "," : "", i);
	ck_assert_uint_lt(n, cap - 8);
	snprintf(text + n, cap - n, ");\n");
	run_text(&r, text);
	assert_failed(&r, 1, "nodes: 1025 entries, expected 1..1024");
	free(text);
}
END_TEST

/* The message is cut to errlen and always NUL-terminated. */
START_TEST(test_config_small_error_buffer_is_terminated)
{
	char path[sizeof(TMP_TEMPLATE)], err[16];
	struct config *c = &untouched;

	write_temp(path, "bogus = 1;\n", 11);
	memset(err, 'X', sizeof(err));
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)),
			 SHOAL_E_CONFIG);
	unlink(path);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(strncmp(err, path, sizeof(err) - 1), 0);
	ck_assert_ptr_eq(c, &untouched);
}
END_TEST

/* Loading twice gives two independent configs; freeing NULL is a no-op. */
START_TEST(test_config_loads_are_independent)
{
	struct config *a = load_ok(design_example);
	struct config *b = load_ok(design_example);

	ck_assert_ptr_ne(a, b);
	ck_assert_ptr_ne(a->nodes, b->nodes);
	ck_assert_str_eq(a->nodes[1].id, b->nodes[1].id);
	config_free(a);
	ck_assert_str_eq(b->router.dkim[0].selector, "s2026");
	config_free(b);
	config_free(NULL);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_test(tc, test_config_design_example_loads_every_value);
	tcase_add_test(tc, test_config_every_other_key_lands);
	tcase_add_test(tc, test_config_libconfig_syntax_variants);
	tcase_add_test(tc, test_config_pairs_and_lone_nodes_load);
	tcase_add_test(tc, test_config_good_addresses_load);
	tcase_add_test(tc, test_config_bounds_are_inclusive);
	tcase_add_test(tc, test_config_integers_past_32_bits_keep_their_value);
	tcase_add_test(tc, test_config_loads_are_independent);
	suite_add_tcase(s, tc);

	tc = tcase_create("defaults");
	tcase_add_test(tc, test_config_minimal_gets_every_default);
	tcase_add_test(tc, test_config_delivery_tls_policy_keys);
	tcase_add_test(tc, test_config_suppression_defaults_values_and_errors);
	tcase_add_test(tc, test_config_empty_groups_get_defaults);
	tcase_add_test(tc, test_config_helo_name_defaults_to_hostname);
	tcase_add_test(tc, test_config_postmaster_default_and_value);
	tcase_add_test(tc, test_config_listener_defaults);
	tcase_add_test(tc, test_config_empty_relay_networks_stays_empty);
	suite_add_tcase(s, tc);

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tc = tcase_create("errors");
	tcase_add_loop_test(tc, test_config_unknown_key_names_file_line_key, 0,
			    N(unknown_keys));
	tcase_add_loop_test(tc, test_config_wrong_type_names_file_line_key, 0,
			    N(wrong_types));
	tcase_add_loop_test(tc, test_config_missing_key_names_file_and_key, 0,
			    N(missing_keys));
	tcase_add_loop_test(tc, test_config_out_of_range_names_file_line_key, 0,
			    N(out_of_range));
	tcase_add_loop_test(tc, test_config_cross_checks_name_file_line_key, 0,
			    N(cross_checks));
	tcase_add_loop_test(tc, test_config_bad_address_names_file_line_key, 0,
			    N(bad_addresses));
	tcase_add_loop_test(tc, test_config_syntax_error_names_file_and_line, 0,
			    N(syntax_errors));
	tcase_add_test(tc, test_config_include_errors_name_the_included_file);
	suite_add_tcase(s, tc);
#undef N

	tc = tcase_create("hostile");
	/* the huge inputs take well under a second each; 4 s was the default */
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_config_empty_file_wants_nodes);
	tcase_add_test(tc, test_config_dev_null_wants_nodes);
	tcase_add_test(tc, test_config_nonexistent_file_is_enoent);
	tcase_add_test(tc, test_config_directory_is_eisdir);
	tcase_add_test(tc, test_config_binary_garbage_fails_cleanly);
	tcase_add_test(tc, test_config_nul_byte_is_an_error);
	tcase_add_test(tc, test_config_huge_string_is_refused_quickly);
	tcase_add_test(tc, test_config_huge_comment_loads);
	tcase_add_test(tc, test_config_file_size_is_bounded);
	tcase_add_test(tc, test_config_deep_nesting_fails_cleanly);
	tcase_add_test(tc, test_config_nested_value_in_node_is_wrong_type);
	tcase_add_test(tc, test_config_long_unknown_key_is_cut);
	tcase_add_test(tc, test_config_too_many_entries);
	tcase_add_test(tc, test_config_small_error_buffer_is_terminated);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(config_suite)
