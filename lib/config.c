/* The cluster config loader: lib/config_file.c reads the file and
 * libconfig parses it, a table of keys (name, type, default, min, max,
 * offset) here checks and copies, then lib/config_check.c runs the
 * cross-checks (node peers) and address syntax on the result. Every error
 * names file, line and full key path. Handles untrusted input: the file
 * may be anything, so the file, every string, list and number is bounded. */
#include "lib/config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/config_check.h"
#include "lib/config_file.h"
#include "lib/xmalloc.h"

#define CFG_STR_MAX 4096

enum cfg_type {
	CT_STR,      /* char * */
	CT_U32,      /* uint32_t */
	CT_U64,      /* uint64_t */
	CT_DBL,      /* double */
	CT_BOOL,     /* bool */
	CT_ENUM,     /* int-sized enum, names in .names */
	CT_STRS,     /* char **, count at .count_off */
	CT_U32S,     /* uint32_t *, count at .count_off */
	CT_GROUP,    /* nested table at .sub */
	CT_LIST,     /* list of groups: array at .off, count at .count_off */
};

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t off;
	size_t count_off;            /* CT_STRS, CT_U32S, CT_LIST */
	double min, max;             /* numbers; string length; list count */
	const char *dflt;            /* default, as text ("" = none) */
	const char *const *names;    /* CT_ENUM */
	const struct cfg_key *sub;   /* CT_GROUP, CT_LIST element */
	size_t elem_size;            /* CT_LIST */
	bool required;
};

#define OFF(f) offsetof(struct config, f)
#define END { NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, false }

static const char *const cfg_tls_names[] = { "", "none", "starttls",
	"implicit", "required", "opportunistic", "verify", "dane", "mta-sts",
	NULL };
static const char *const cfg_auth_names[] = { "optional", "required", "none",
	NULL };
static const char *const cfg_bare_lf_names[] = { "reject", "normalize", NULL };
static const char *const cfg_repl_names[] = { "sync", "async", "none", NULL };
static const char *const cfg_logfmt_names[] = { "logfmt", "json", NULL };
static const char *const cfg_dkim_canon_names[] = { "relaxed/relaxed",
	"relaxed/simple", "simple/relaxed", "simple/simple", "relaxed",
	"simple", NULL };
static const char *const cfg_supp_mode_names[] = { "refuse", "bounce", NULL };
static const char *const cfg_priority_names[] = { "", "high", "normal", "bulk",
	NULL };

static const struct cfg_key cfg_node_keys[] = {
	{ "id", CT_STR, offsetof(struct cfg_node, id), 0, 1, 64, NULL, NULL, NULL, 0, true },
	{ "endpoint", CT_STR, offsetof(struct cfg_node, endpoint), 0, 1, 256, NULL, NULL, NULL, 0, true },
	{ "peer", CT_STR, offsetof(struct cfg_node, peer), 0, 1, 64, NULL, NULL, NULL, 0, false },
	{ "data_dir", CT_STR, offsetof(struct cfg_node, data_dir), 0, 1, 1024, NULL, NULL, NULL, 0, true },
	{ "metrics", CT_STR, offsetof(struct cfg_node, metrics), 0, 1, 256, NULL, NULL, NULL, 0, false },
	{ "map_size", CT_U64, offsetof(struct cfg_node, map_size), 0, 65536, 1e15, "17179869184", NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_listen_keys[] = {
	{ "address", CT_STR, offsetof(struct cfg_listen, address), 0, 1, 256, NULL, NULL, NULL, 0, true },
	{ "tls", CT_ENUM, offsetof(struct cfg_listen, tls), 0, 0, 0, "", cfg_tls_names, NULL, 0, false },
	{ "auth", CT_ENUM, offsetof(struct cfg_listen, auth), 0, 0, 0, "optional", cfg_auth_names, NULL, 0, false },
	{ "proxy_protocol", CT_BOOL, offsetof(struct cfg_listen, proxy_protocol), 0, 0, 0, "false", NULL, NULL, 0, false },
	{ "auth_plaintext", CT_BOOL, offsetof(struct cfg_listen, auth_plaintext), 0, 0, 0, "false", NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_dkim_keys[] = {
	{ "domain", CT_STR, offsetof(struct cfg_dkim, domain), 0, 1, 255, NULL, NULL, NULL, 0, true },
	{ "selector", CT_STR, offsetof(struct cfg_dkim, selector), 0, 1, 63, NULL, NULL, NULL, 0, true },
	{ "key_file", CT_STR, offsetof(struct cfg_dkim, key_file), 0, 1, 1024, NULL, NULL, NULL, 0, true },
	{ "canonicalization", CT_ENUM, offsetof(struct cfg_dkim, canonicalization), 0, 0, 0, "relaxed/relaxed", cfg_dkim_canon_names, NULL, 0, false },
	{ "headers", CT_STRS, offsetof(struct cfg_dkim, headers), offsetof(struct cfg_dkim, n_headers), 1, 64, NULL, NULL, NULL, 0, false },
	{ "expire", CT_U32, offsetof(struct cfg_dkim, expire), 0, 0, 315360000, "0", NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_tls_report_keys[] = {
	{ "organization", CT_STR, OFF(delivery.tls_report.organization), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "contact", CT_STR, OFF(delivery.tls_report.contact), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "from", CT_STR, OFF(delivery.tls_report.from), 0, 3, 255, NULL, NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_route_keys[] = {
	{ "domain", CT_STR, offsetof(struct cfg_route, domain), 0, 1, 255, NULL, NULL, NULL, 0, true },
	{ "host", CT_STR, offsetof(struct cfg_route, host), 0, 1, 300, NULL, NULL, NULL, 0, true },
	{ "tls", CT_ENUM, offsetof(struct cfg_route, tls), 0, 0, 0, "", cfg_tls_names, NULL, 0, false },
	END
};

static const struct cfg_key cfg_limit_keys[] = {
	{ "domain", CT_STR, offsetof(struct cfg_limit, domain), 0, 1, 255, NULL, NULL, NULL, 0, true },
	{ "pool", CT_STR, offsetof(struct cfg_limit, pool), 0, 1, 64, NULL, NULL, NULL, 0, false },
	{ "max_connections", CT_U32, offsetof(struct cfg_limit, max_connections), 0, 1, 100000, "20", NULL, NULL, 0, false },
	{ "max_msgs_per_conn", CT_U32, offsetof(struct cfg_limit, max_msgs_per_conn), 0, 1, 1000000, "100", NULL, NULL, 0, false },
	{ "max_msgs_per_sec", CT_DBL, offsetof(struct cfg_limit, max_msgs_per_sec), 0, 0, 1e6, "0", NULL, NULL, 0, false },
	{ "tls", CT_ENUM, offsetof(struct cfg_limit, tls), 0, 0, 0, "", cfg_tls_names, NULL, 0, false },
	END
};

static const struct cfg_key cfg_pool_addr_keys[] = {
	{ "address", CT_STR, offsetof(struct cfg_pool_addr, address), 0, 1, 64, NULL, NULL, NULL, 0, true },
	{ "ehlo", CT_STR, offsetof(struct cfg_pool_addr, ehlo), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "warmup_start", CT_STR, offsetof(struct cfg_pool_addr, warmup_start), 0, 10, 10, NULL, NULL, NULL, 0, false },
	{ "warmup", CT_U32S, offsetof(struct cfg_pool_addr, warmup), offsetof(struct cfg_pool_addr, n_warmup), 1, 366, NULL, NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_pool_keys[] = {
	{ "name", CT_STR, offsetof(struct cfg_pool, name), 0, 1, 64, NULL, NULL, NULL, 0, true },
	{ "addresses", CT_LIST, offsetof(struct cfg_pool, addresses), offsetof(struct cfg_pool, n_addresses), 1, 1024, NULL, NULL, cfg_pool_addr_keys, sizeof(struct cfg_pool_addr), true },
	END
};

#define WOFF(f) offsetof(struct cfg_webhook, f)
static const struct cfg_key cfg_webhook_keys[] = {
	{ "name", CT_STR, WOFF(name), 0, 1, 64, NULL, NULL, NULL, 0, false },
	{ "url", CT_STR, WOFF(url), 0, 8, 2048, NULL, NULL, NULL, 0, true },
	{ "events", CT_STRS, WOFF(events), WOFF(n_events), 1, 16, NULL, NULL, NULL, 0, false },
	{ "batch_size", CT_U32, WOFF(batch_size), 0, 1, 10000, "100", NULL, NULL, 0, false },
	{ "max_delay_ms", CT_U32, WOFF(max_delay_ms), 0, 0, 3600000, "1000", NULL, NULL, 0, false },
	{ "secret", CT_STR, WOFF(secret), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "tls_verify", CT_BOOL, WOFF(tls_verify), 0, 0, 0, "true", NULL, NULL, 0, false },
	{ "ca_file", CT_STR, WOFF(ca_file), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "max_backlog", CT_U32, WOFF(max_backlog), 0, 1, 100000000, "100000", NULL, NULL, 0, false },
	{ "timeout_ms", CT_U32, WOFF(timeout_ms), 0, 100, 600000, "10000", NULL, NULL, 0, false },
	END
};
#undef WOFF

static const struct cfg_key cfg_tenant_limit_keys[] = {
	{ "tenant", CT_STR, offsetof(struct cfg_tenant_limit, tenant), 0, 1, 64, NULL, NULL, NULL, 0, true },
	{ "domain", CT_STR, offsetof(struct cfg_tenant_limit, domain), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "max_msgs_per_sec", CT_DBL, offsetof(struct cfg_tenant_limit, max_msgs_per_sec), 0, 0.001, 1000000, NULL, NULL, NULL, 0, true },
	END
};

static const struct cfg_key cfg_pool_rule_keys[] = {
	{ "sender_domain", CT_STR, offsetof(struct cfg_pool_rule, sender_domain), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "user", CT_STR, offsetof(struct cfg_pool_rule, user), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "pool", CT_STR, offsetof(struct cfg_pool_rule, pool), 0, 1, 64, NULL, NULL, NULL, 0, false },
	{ "priority", CT_ENUM, offsetof(struct cfg_pool_rule, priority), 0, 0, 0, "", cfg_priority_names, NULL, 0, false },
	{ "tenant", CT_STR, offsetof(struct cfg_pool_rule, tenant), 0, 1, 64, NULL, NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_cluster_keys[] = {
	{ "name", CT_STR, OFF(cluster.name), 0, 1, 64, "shoal", NULL, NULL, 0, false },
	{ "curve_keys", CT_STR, OFF(cluster.curve_keys), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "shards", CT_U32, OFF(cluster.shards), 0, 1, 65536, "256", NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_router_keys[] = {
	{ "hostname", CT_STR, OFF(router.hostname), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "listen", CT_LIST, OFF(router.listen), OFF(router.n_listen), 0, 64, NULL, NULL, cfg_listen_keys, sizeof(struct cfg_listen), false },
	{ "http_listen", CT_LIST, OFF(router.http_listen), OFF(router.n_http_listen), 0, 64, NULL, NULL, cfg_listen_keys, sizeof(struct cfg_listen), false },
	{ "tls_cert", CT_STR, OFF(router.tls_cert), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "tls_key", CT_STR, OFF(router.tls_key), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "relay_networks", CT_STRS, OFF(router.relay_networks), OFF(router.n_relay_networks), 0, 4096, NULL, NULL, NULL, 0, false },
	{ "users_file", CT_STR, OFF(router.users_file), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "max_message_size", CT_U64, OFF(router.max_message_size), 0, 1024, 2147483648.0, "52428800", NULL, NULL, 0, false },
	{ "max_recipients", CT_U32, OFF(router.max_recipients), 0, 1, 100000, "1000", NULL, NULL, 0, false },
	{ "metrics", CT_STR, OFF(router.metrics), 0, 1, 256, NULL, NULL, NULL, 0, false },
	{ "dkim", CT_LIST, OFF(router.dkim), OFF(router.n_dkim), 0, 1024, NULL, NULL, cfg_dkim_keys, sizeof(struct cfg_dkim), false },
	{ "dkim_default_domain", CT_STR, OFF(router.dkim_default_domain), 0, 1, 253, NULL, NULL, NULL, 0, false },
	{ "bare_lf", CT_ENUM, OFF(router.bare_lf), 0, 0, 0, "reject", cfg_bare_lf_names, NULL, 0, false },
	{ "max_sessions", CT_U32, OFF(router.max_sessions), 0, 1, 1000000, "10000", NULL, NULL, 0, false },
	{ "max_errors", CT_U32, OFF(router.max_errors), 0, 1, 1000, "20", NULL, NULL, 0, false },
	{ "max_sessions_per_ip", CT_U32, OFF(router.max_sessions_per_ip), 0, 0, 1000000, "50", NULL, NULL, 0, false },
	{ "max_msgs_per_minute_per_ip", CT_U32, OFF(router.max_msgs_per_minute_per_ip), 0, 0, 100000000, "0", NULL, NULL, 0, false },
	{ "max_msgs_per_minute_per_user", CT_U32, OFF(router.max_msgs_per_minute_per_user), 0, 0, 100000000, "0", NULL, NULL, 0, false },
	{ "idle_timeout", CT_U32, OFF(router.idle_timeout), 0, 1, 86400, "300", NULL, NULL, 0, false },
	{ "session_timeout", CT_U32, OFF(router.session_timeout), 0, 1, 604800, "3600", NULL, NULL, 0, false },
	{ "node_timeout_ms", CT_U32, OFF(router.node_timeout_ms), 0, 100, 600000, "10000", NULL, NULL, 0, false },
	{ "shutdown_timeout", CT_U32, OFF(router.shutdown_timeout), 0, 0, 3600, "30", NULL, NULL, 0, false },
	{ "pool_rules", CT_LIST, OFF(router.pool_rules), OFF(router.n_pool_rules), 0, 100000, NULL, NULL, cfg_pool_rule_keys, sizeof(struct cfg_pool_rule), false },
	{ "pool_header", CT_STR, OFF(router.pool_header), 0, 0, 64, "X-Shoal-Pool", NULL, NULL, 0, false },
	{ "priority_header", CT_STR, OFF(router.priority_header), 0, 0, 64, "X-Shoal-Priority", NULL, NULL, 0, false },
	{ "tenant_header", CT_STR, OFF(router.tenant_header), 0, 0, 64, "X-Shoal-Tenant", NULL, NULL, 0, false },
	{ "postmaster", CT_STR, OFF(router.postmaster), 0, 3, 254, NULL, NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_delivery_keys[] = {
	{ "helo_name", CT_STR, OFF(delivery.helo_name), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "dns_servers", CT_STRS, OFF(delivery.dns_servers), OFF(delivery.n_dns_servers), 0, 16, NULL, NULL, NULL, 0, false },
	{ "smtp_port", CT_U32, OFF(delivery.smtp_port), 0, 1, 65535, "25", NULL, NULL, 0, false },
	{ "retry_schedule", CT_U32S, OFF(delivery.retry_schedule), OFF(delivery.n_retry_schedule), 1, 100, NULL, NULL, NULL, 0, false },
	{ "max_queue_lifetime", CT_U32, OFF(delivery.max_queue_lifetime), 0, 1, 31536000, "432000", NULL, NULL, 0, false },
	{ "routes", CT_LIST, OFF(delivery.routes), OFF(delivery.n_routes), 0, 100000, NULL, NULL, cfg_route_keys, sizeof(struct cfg_route), false },
	{ "limits", CT_LIST, OFF(delivery.limits), OFF(delivery.n_limits), 0, 100000, NULL, NULL, cfg_limit_keys, sizeof(struct cfg_limit), false },
	{ "pools", CT_LIST, OFF(delivery.pools), OFF(delivery.n_pools), 0, 1024, NULL, NULL, cfg_pool_keys, sizeof(struct cfg_pool), false },
	{ "default_pool", CT_STR, OFF(delivery.default_pool), 0, 1, 64, NULL, NULL, NULL, 0, false },
	{ "pool_cooldown", CT_U32, OFF(delivery.pool_cooldown), 0, 1, 86400, "60", NULL, NULL, 0, false },
	{ "shaping_rules", CT_STR, OFF(delivery.shaping_rules), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "tenant_limits", CT_LIST, OFF(delivery.tenant_limits), OFF(delivery.n_tenant_limits), 0, 100000, NULL, NULL, cfg_tenant_limit_keys, sizeof(struct cfg_tenant_limit), false },
	{ "webhooks", CT_LIST, OFF(delivery.webhooks), OFF(delivery.n_webhooks), 0, 16, NULL, NULL, cfg_webhook_keys, sizeof(struct cfg_webhook), false },
	{ "tls_ca_file", CT_STR, OFF(delivery.tls_ca_file), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "mta_sts_port", CT_U32, OFF(delivery.mta_sts_port), 0, 1, 65535, "443", NULL, NULL, 0, false },
	{ "tls_report", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_tls_report_keys, 0, false },
	END
};

static const struct cfg_key cfg_repl_keys[] = {
	{ "mode", CT_ENUM, OFF(replication.mode), 0, 0, 0, "sync", cfg_repl_names, NULL, 0, false },
	{ "heartbeat_ms", CT_U32, OFF(replication.heartbeat_ms), 0, 10, 60000, "500", NULL, NULL, 0, false },
	{ "failover_after_ms", CT_U32, OFF(replication.failover_after_ms), 0, 50, 600000, "3000", NULL, NULL, 0, false },
	{ "peer_timeout_ms", CT_U32, OFF(replication.peer_timeout_ms), 0, 10, 600000, "2000", NULL, NULL, 0, false },
	{ "require_peer", CT_BOOL, OFF(replication.require_peer), 0, 0, 0, "false", NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_log_keys[] = {
	{ "level", CT_STR, OFF(log.level), 0, 1, 16, "info", NULL, NULL, 0, false },
	{ "format", CT_ENUM, OFF(log.format), 0, 0, 0, "logfmt", cfg_logfmt_names, NULL, 0, false },
	{ "debug", CT_STR, OFF(log.debug), 0, 0, 256, "", NULL, NULL, 0, false },
	{ "file", CT_STR, OFF(log.file), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_supp_keys[] = {
	{ "enabled", CT_BOOL, OFF(suppression.enabled), 0, 0, 0, "true", NULL, NULL, 0, false },
	{ "mode", CT_ENUM, OFF(suppression.mode), 0, 0, 0, "refuse", cfg_supp_mode_names, NULL, 0, false },
	{ "expire", CT_U32, OFF(suppression.expire), 0, 0, 315360000, "0", NULL, NULL, 0, false },
	{ "check_timeout_ms", CT_U32, OFF(suppression.check_timeout_ms), 0, 10, 60000, "500", NULL, NULL, 0, false },
	END
};

static const char *const cfg_shaping_kind_names[] = { "suspend", "rate",
	"connections", "suspend_source", NULL };

#define SOFF(f) offsetof(struct cfg_shaping_rule, f)
static const struct cfg_key cfg_shaping_rule_keys[] = {
	{ "name", CT_STR, SOFF(name), 0, 1, 64, NULL, NULL, NULL, 0, true },
	{ "provider", CT_STR, SOFF(provider), 0, 1, 64, NULL, NULL, NULL, 0, false },
	{ "code", CT_STR, SOFF(code), 0, 1, 3, NULL, NULL, NULL, 0, false },
	{ "enhanced", CT_STR, SOFF(enhanced), 0, 5, 11, NULL, NULL, NULL, 0, false },
	{ "text", CT_STR, SOFF(text), 0, 1, 128, NULL, NULL, NULL, 0, false },
	{ "action", CT_ENUM, SOFF(action), 0, 0, 0, NULL, cfg_shaping_kind_names, NULL, 0, true },
	{ "rate", CT_DBL, SOFF(rate), 0, 0, 1e6, "0", NULL, NULL, 0, false }, /* >= 0.001 when set: config_check.c */
	{ "connections", CT_U32, SOFF(connections), 0, 0, 100000, "0", NULL, NULL, 0, false },
	{ "duration", CT_U32, SOFF(duration), 0, 1, 604800, NULL, NULL, NULL, 0, true },
	END
};
#undef SOFF

static const struct cfg_key cfg_provider_keys[] = {
	{ "name", CT_STR, offsetof(struct cfg_provider, name), 0, 1, 64, NULL, NULL, NULL, 0, true },
	{ "mx", CT_STRS, offsetof(struct cfg_provider, mx), offsetof(struct cfg_provider, n_mx), 1, 256, NULL, NULL, NULL, 0, true },
	END
};

static const struct cfg_key cfg_shaping_keys[] = {
	{ "providers", CT_LIST, offsetof(struct cfg_shaping, providers), offsetof(struct cfg_shaping, n_providers), 0, 4096, NULL, NULL, cfg_provider_keys, sizeof(struct cfg_provider), false },
	{ "rules", CT_LIST, offsetof(struct cfg_shaping, rules), offsetof(struct cfg_shaping, n_rules), 0, 4096, NULL, NULL, cfg_shaping_rule_keys, sizeof(struct cfg_shaping_rule), false },
	END
};

static const struct cfg_key cfg_top_keys[] = {
	{ "cluster", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_cluster_keys, 0, false },
	{ "nodes", CT_LIST, OFF(nodes), OFF(n_nodes), 1, 1024, NULL, NULL, cfg_node_keys, sizeof(struct cfg_node), true },
	{ "router", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_router_keys, 0, false },
	{ "delivery", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_delivery_keys, 0, false },
	{ "replication", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_repl_keys, 0, false },
	{ "log", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_log_keys, 0, false },
	{ "suppression", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_supp_keys, 0, false },
	END
};

static void
cfg_join(char *out, size_t outlen, const char *prefix, const char *name)
{
	if (prefix[0])
		snprintf(out, outlen, "%s.%s", prefix, name);
	else
		snprintf(out, outlen, "%s", name);
}

static bool
cfg_is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static int
cfg_number(struct cfg_ctx *cx, const config_setting_t *s, const char *path,
	   const struct cfg_key *k, double *out)
{
	double v;

	if (k->type == CT_DBL && config_setting_type(s) == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else if (cfg_is_int(s))
		v = (double)config_setting_get_int64(s);
	else
		return config_check_fail(cx, s, path, "expected %s",
					 k->type == CT_DBL ? "a number" :
							     "an integer");
	if (v < k->min || v > k->max)
		return config_check_fail(cx, s, path,
					 "%.15g is out of range (%.15g..%.15g)",
					 v, k->min, k->max);
	*out = v;
	return 0;
}

static int
cfg_string(struct cfg_ctx *cx, const config_setting_t *s, const char *path,
	   double min, double max, const char **out)
{
	const char *v;
	size_t n;

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_check_fail(cx, s, path, "expected a string");
	v = config_setting_get_string(s);
	n = strlen(v);
	if ((double)n < min || (double)n > max)
		return config_check_fail(
			cx, s, path, "length %zu out of range (%.15g..%.15g)",
			n, min, max);
	*out = v;
	return 0;
}

static int cfg_group(struct cfg_ctx *cx, const config_setting_t *g,
		     const char *prefix, const struct cfg_key *keys,
		     void *base);

/* Store a default (text form) for a missing scalar key. */
static void
cfg_default(const struct cfg_key *k, void *base)
{
	char *p = (char *)base + k->off;

	if (k->dflt == NULL)
		return;
	switch (k->type) {
	case CT_STR:
		*(char **)p = xstrdup(k->dflt);
		break;
	case CT_U32:
		*(uint32_t *)p = (uint32_t)strtoul(k->dflt, NULL, 10);
		break;
	case CT_U64:
		*(uint64_t *)p = strtoull(k->dflt, NULL, 10);
		break;
	case CT_DBL:
		*(double *)p = strtod(k->dflt, NULL);
		break;
	case CT_BOOL:
		*(bool *)p = strcmp(k->dflt, "true") == 0;
		break;
	case CT_ENUM:
		for (int i = 0; k->names[i]; i++)
			if (strcmp(k->names[i], k->dflt) == 0)
				*(int *)p = i;
		break;
	default:
		break;
	}
}

static int
cfg_scalar(struct cfg_ctx *cx, const config_setting_t *s, const char *path,
	   const struct cfg_key *k, void *base)
{
	char *p = (char *)base + k->off;
	const char *str = NULL;
	double v;
	int rc;

	switch (k->type) {
	case CT_STR:
		if ((rc = cfg_string(cx, s, path, k->min, k->max, &str)) != 0)
			return rc;
		*(char **)p = xstrdup(str);
		return 0;
	case CT_U32:
	case CT_U64:
	case CT_DBL:
		if ((rc = cfg_number(cx, s, path, k, &v)) != 0)
			return rc;
		if (k->type == CT_U32)
			*(uint32_t *)p = (uint32_t)v;
		else if (k->type == CT_U64)
			*(uint64_t *)p = (uint64_t)config_setting_get_int64(s);
		else
			*(double *)p = v;
		return 0;
	case CT_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return config_check_fail(cx, s, path,
						 "expected true or false");
		*(bool *)p = config_setting_get_bool(s) != 0;
		return 0;
	case CT_ENUM:
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return config_check_fail(cx, s, path,
						 "expected a string");
		str = config_setting_get_string(s);
		for (int i = 0; k->names[i]; i++) {
			if (k->names[i][0] && strcmp(k->names[i], str) == 0) {
				*(int *)p = i;
				return 0;
			}
		}
		return config_check_fail(cx, s, path, "unknown value \"%.64s\"",
					 str);
	default:
		return config_check_fail(cx, s, path, "internal: bad key type");
	}
}

static int
cfg_array(struct cfg_ctx *cx, const config_setting_t *s, const char *path,
	  const struct cfg_key *k, void *base)
{
	int t = config_setting_type(s);
	int n = config_setting_length(s);
	size_t *count = (size_t *)((char *)base + k->count_off);

	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
		return config_check_fail(cx, s, path, "expected an array");
	if (n < k->min || n > k->max)
		return config_check_fail(cx, s, path,
					 "%d entries, expected %.15g..%.15g", n,
					 k->min, k->max);
	if (k->type == CT_STRS) {
		char **v = xcalloc((size_t)n + 1, sizeof(*v));

		*(char ***)((char *)base + k->off) = v;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			char ep[CFG_PATH_MAX + 32];
			const char *str = NULL;
			int rc;

			snprintf(ep, sizeof(ep), "%s[%d]", path, i);
			if ((rc = cfg_string(cx, e, ep, 1, 1024, &str)) != 0)
				return rc;
			v[i] = xstrdup(str);
			*count = (size_t)i + 1;
		}
		return 0;
	}
	{
		uint32_t *v = xcalloc((size_t)n + 1, sizeof(*v));

		*(uint32_t **)((char *)base + k->off) = v;
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
			char ep[CFG_PATH_MAX + 32];
			struct cfg_key ek = *k;
			double d;
			int rc;

			ek.type = CT_U32;
			ek.min = 1;
			ek.max = 31536000;
			snprintf(ep, sizeof(ep), "%s[%d]", path, i);
			if ((rc = cfg_number(cx, e, ep, &ek, &d)) != 0)
				return rc;
			v[i] = (uint32_t)d;
			*count = (size_t)i + 1;
		}
	}
	return 0;
}

static int
cfg_list(struct cfg_ctx *cx, const config_setting_t *s, const char *path,
	 const struct cfg_key *k, void *base)
{
	int n = config_setting_length(s);
	size_t *count = (size_t *)((char *)base + k->count_off);
	char *arr;

	if (config_setting_type(s) != CONFIG_TYPE_LIST)
		return config_check_fail(cx, s, path,
					 "expected a list ( { ... }, ... )");
	if (n < k->min || n > k->max)
		return config_check_fail(cx, s, path,
					 "%d entries, expected %.15g..%.15g", n,
					 k->min, k->max);
	arr = xcalloc((size_t)n + 1, k->elem_size);
	*(char **)((char *)base + k->off) = arr;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		char ep[CFG_PATH_MAX + 32];
		int rc;

		snprintf(ep, sizeof(ep), "%s[%d]", path, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return config_check_fail(cx, e, ep,
						 "expected a group { ... }");
		*count = (size_t)i + 1;
		rc = cfg_group(cx, e, ep, k->sub, arr + (size_t)i * k->elem_size);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
cfg_group(struct cfg_ctx *cx, const config_setting_t *g, const char *prefix,
	  const struct cfg_key *keys, void *base)
{
	int n = g ? config_setting_length(g) : 0;

	/* unknown keys first: a typo is the likeliest mistake */
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct cfg_key *k;
		char path[CFG_PATH_MAX];

		for (k = keys; k->name; k++)
			if (name && strcmp(k->name, name) == 0)
				break;
		if (k->name == NULL) {
			cfg_join(path, sizeof(path), prefix, name ? name : "?");
			return config_check_fail(cx, s, path, "unknown key");
		}
	}
	for (const struct cfg_key *k = keys; k->name; k++) {
		const config_setting_t *s =
			g ? config_setting_get_member(g, k->name) : NULL;
		char path[CFG_PATH_MAX];
		int rc = 0;

		cfg_join(path, sizeof(path), prefix, k->name);
		if (s == NULL) {
			if (k->required)
				return config_check_fail(
					cx, g, path, "required key missing");
			if (k->type == CT_GROUP)
				rc = cfg_group(cx, NULL, path, k->sub, base);
			else
				cfg_default(k, base);
			if (rc != 0)
				return rc;
			continue;
		}
		switch (k->type) {
		case CT_GROUP:
			if (config_setting_type(s) != CONFIG_TYPE_GROUP)
				return config_check_fail(
					cx, s, path,
					"expected a group { ... }");
			rc = cfg_group(cx, s, path, k->sub, base);
			break;
		case CT_LIST:
			rc = cfg_list(cx, s, path, k, base);
			break;
		case CT_STRS:
		case CT_U32S:
			rc = cfg_array(cx, s, path, k, base);
			break;
		default:
			rc = cfg_scalar(cx, s, path, k, base);
			break;
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Defaults that depend on other keys, then the checks across keys. root is
 * the parsed file, for the lines of errors. */
static int
cfg_finish(struct cfg_ctx *cx, struct config *c, const config_setting_t *root)
{
	static const uint32_t retry[] = { 60, 300, 900, 1800, 3600, 7200,
					  14400 };
	static const char *const relay[] = { "127.0.0.0/8", "::1/128" };

	if (c->router.hostname == NULL) {
		char host[256] = "localhost";

		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		c->router.hostname = xstrdup(host);
	}
	for (size_t i = 0; i < c->delivery.n_webhooks; i++) {
		char name[32];

		if (c->delivery.webhooks[i].name)
			continue;
		snprintf(name, sizeof(name), "webhook%zu", i + 1);
		c->delivery.webhooks[i].name = xstrdup(name);
	}
	if (c->delivery.helo_name == NULL)
		c->delivery.helo_name = xstrdup(c->router.hostname);
	if (c->delivery.tls_report.organization == NULL)
		c->delivery.tls_report.organization = xstrdup(c->cluster.name);
	for (int i = 0; i < 2; i++) {
		char **f = i ? &c->delivery.tls_report.from :
			       &c->delivery.tls_report.contact;
		char a[300];

		if (*f != NULL)
			continue;
		snprintf(a, sizeof(a), "postmaster@%s", c->delivery.helo_name);
		*f = xstrdup(a);
	}
	if (c->router.postmaster == NULL) {
		/* RFC 5321 4.5.1: the postmaster of the name we greet with */
		size_t n = sizeof("postmaster@") + strlen(c->router.hostname);

		c->router.postmaster = xmalloc(n);
		snprintf(c->router.postmaster, n, "postmaster@%s",
			 c->router.hostname);
	}
	if (c->router.n_listen == 0) {
		free(c->router.listen);
		c->router.listen = xcalloc(1, sizeof(*c->router.listen));
		c->router.listen[0].address = xstrdup("127.0.0.1:2525");
		c->router.n_listen = 1;
	}
	if (c->router.relay_networks == NULL) {
		c->router.relay_networks = xcalloc(3, sizeof(char *));
		for (size_t i = 0; i < 2; i++)
			c->router.relay_networks[i] = xstrdup(relay[i]);
		c->router.n_relay_networks = 2;
	}
	if (c->delivery.n_retry_schedule == 0) {
		free(c->delivery.retry_schedule);
		c->delivery.retry_schedule = xmalloc(sizeof(retry));
		memcpy(c->delivery.retry_schedule, retry, sizeof(retry));
		c->delivery.n_retry_schedule = sizeof(retry) / sizeof(*retry);
	}
	if (c->delivery.n_limits == 0) {
		free(c->delivery.limits);
		c->delivery.limits = xcalloc(1, sizeof(*c->delivery.limits));
		c->delivery.limits[0].domain = xstrdup("*");
		c->delivery.limits[0].max_connections = 20;
		c->delivery.limits[0].max_msgs_per_conn = 100;
		c->delivery.limits[0].tls = CFG_TLS_DEFAULT;
		c->delivery.n_limits = 1;
	}
	return config_check_all(cx, c, root);
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct cfg_ctx cx = { path, err, errlen };
	const config_setting_t *root;
	struct config *c;
	config_t lc;
	int rc;

	err[0] = '\0';
	if ((rc = config_file_parse(path, &lc, err, errlen)) != 0)
		return rc;
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	root = config_root_setting(&lc);
	rc = cfg_group(&cx, root, "", cfg_top_keys, c);
	if (rc == 0)
		rc = cfg_finish(&cx, c, root);
	config_destroy(&lc);
	if (rc != 0) {
		config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void
cfg_free_keys(const struct cfg_key *keys, void *base)
{
	for (const struct cfg_key *k = keys; k->name; k++) {
		char *p = (char *)base + k->off;

		switch (k->type) {
		case CT_STR:
			free(*(char **)p);
			break;
		case CT_STRS: {
			size_t n = *(size_t *)((char *)base + k->count_off);
			char **v = *(char ***)p;

			for (size_t i = 0; v && i < n; i++)
				free(v[i]);
			free(v);
			break;
		}
		case CT_U32S:
			free(*(uint32_t **)p);
			break;
		case CT_GROUP:
			cfg_free_keys(k->sub, base);
			break;
		case CT_LIST: {
			size_t n = *(size_t *)((char *)base + k->count_off);
			char *arr = *(char **)p;

			for (size_t i = 0; arr && i < n; i++)
				cfg_free_keys(k->sub, arr + i * k->elem_size);
			free(arr);
			break;
		}
		default:
			break;
		}
	}
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	cfg_free_keys(cfg_top_keys, cfg);
	/* defaults filled in by cfg_finish() live in the same fields */
	free(cfg->path);
	free(cfg);
}

int
config_shaping_load(const char *path, struct cfg_shaping **out, char *err,
		    size_t errlen)
{
	const char *name = path ? path : "(built-in)";
	struct cfg_ctx cx = { name, err, errlen };
	const config_setting_t *root;
	struct cfg_shaping *sh;
	config_t lc;
	int rc;

	err[0] = '\0';
	rc = path ? config_file_parse(path, &lc, err, errlen) :
		    config_text_parse(name, config_builtin_shaping_rules, &lc,
				      err, errlen);
	if (rc != 0)
		return rc;
	sh = xcalloc(1, sizeof(*sh));
	sh->path = xstrdup(name);
	root = config_root_setting(&lc);
	rc = cfg_group(&cx, root, "", cfg_shaping_keys, sh);
	if (rc == 0)
		rc = config_check_shaping(&cx, sh, root);
	config_destroy(&lc);
	if (rc != 0) {
		config_shaping_free(sh);
		return rc;
	}
	*out = sh;
	return 0;
}

void
config_shaping_free(struct cfg_shaping *sh)
{
	if (sh == NULL)
		return;
	cfg_free_keys(cfg_shaping_keys, sh);
	free(sh->path);
	free(sh);
}

int
config_parse_day(const char *s, int64_t *days)
{
	struct tm tm;
	const char *end;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end == NULL || *end != '\0' || strlen(s) != 10 ||
	    tm.tm_year < 70 || tm.tm_year > 1100)
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*days = (int64_t)t / 86400;
	return 0;
}

const char *
config_shaping_kind_name(enum cfg_shaping_kind k)
{
	return (unsigned)k < sizeof(cfg_shaping_kind_names) /
					 sizeof(*cfg_shaping_kind_names) - 1 ?
		       cfg_shaping_kind_names[k] :
		       "?";
}

const struct cfg_node *
config_find_node(const struct config *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (strcmp(cfg->nodes[i].id, id) == 0)
			return &cfg->nodes[i];
	return NULL;
}

const struct cfg_pool *
config_find_pool(const struct config *cfg, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return NULL;
	for (size_t i = 0; i < cfg->delivery.n_pools; i++)
		if (strcmp(cfg->delivery.pools[i].name, name) == 0)
			return &cfg->delivery.pools[i];
	return NULL;
}
