/* The cluster config loader: libconfig parses, a table of keys (name,
 * type, default, min, max, offset) checks and copies, then cross-checks
 * (node peers) and address syntax run on the result. Every error names
 * file, line and full key path. Handles untrusted input: the file may be
 * anything, so the file, every string, list and number is bounded. */
#include "lib/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/cidr.h"
#include "lib/err.h"
#include "lib/xmalloc.h"

#define CFG_STR_MAX 4096
#define CFG_PATH_MAX 256
/* Whole file, read before parsing: 100000 routes fit, /dev/urandom does not.
 * libconfig's scanner rescans a token on every refill from a FILE, which is
 * quadratic in the token's length; from one string it is linear. */
#define CFG_FILE_MAX (16 * 1024 * 1024)

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
	"implicit", "required", "opportunistic", NULL };
static const char *const cfg_auth_names[] = { "optional", "required", "none",
	NULL };
static const char *const cfg_bare_lf_names[] = { "reject", "normalize", NULL };
static const char *const cfg_repl_names[] = { "sync", "async", "none", NULL };
static const char *const cfg_logfmt_names[] = { "logfmt", "json", NULL };

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
	END
};

static const struct cfg_key cfg_dkim_keys[] = {
	{ "domain", CT_STR, offsetof(struct cfg_dkim, domain), 0, 1, 255, NULL, NULL, NULL, 0, true },
	{ "selector", CT_STR, offsetof(struct cfg_dkim, selector), 0, 1, 63, NULL, NULL, NULL, 0, true },
	{ "key_file", CT_STR, offsetof(struct cfg_dkim, key_file), 0, 1, 1024, NULL, NULL, NULL, 0, true },
	END
};

static const struct cfg_key cfg_route_keys[] = {
	{ "domain", CT_STR, offsetof(struct cfg_route, domain), 0, 1, 255, NULL, NULL, NULL, 0, true },
	{ "host", CT_STR, offsetof(struct cfg_route, host), 0, 1, 300, NULL, NULL, NULL, 0, true },
	{ "tls", CT_ENUM, offsetof(struct cfg_route, tls), 0, 0, 0, "opportunistic", cfg_tls_names, NULL, 0, false },
	END
};

static const struct cfg_key cfg_limit_keys[] = {
	{ "domain", CT_STR, offsetof(struct cfg_limit, domain), 0, 1, 255, NULL, NULL, NULL, 0, true },
	{ "max_connections", CT_U32, offsetof(struct cfg_limit, max_connections), 0, 1, 100000, "20", NULL, NULL, 0, false },
	{ "max_msgs_per_conn", CT_U32, offsetof(struct cfg_limit, max_msgs_per_conn), 0, 1, 1000000, "100", NULL, NULL, 0, false },
	{ "max_msgs_per_sec", CT_DBL, offsetof(struct cfg_limit, max_msgs_per_sec), 0, 0, 1e6, "0", NULL, NULL, 0, false },
	{ "tls", CT_ENUM, offsetof(struct cfg_limit, tls), 0, 0, 0, "opportunistic", cfg_tls_names, NULL, 0, false },
	END
};

static const struct cfg_key cfg_cluster_keys[] = {
	{ "name", CT_STR, OFF(cluster.name), 0, 1, 64, "shoal", NULL, NULL, 0, false },
	{ "shards", CT_U32, OFF(cluster.shards), 0, 1, 65536, "256", NULL, NULL, 0, false },
	END
};

static const struct cfg_key cfg_router_keys[] = {
	{ "hostname", CT_STR, OFF(router.hostname), 0, 1, 255, NULL, NULL, NULL, 0, false },
	{ "listen", CT_LIST, OFF(router.listen), OFF(router.n_listen), 0, 64, NULL, NULL, cfg_listen_keys, sizeof(struct cfg_listen), false },
	{ "tls_cert", CT_STR, OFF(router.tls_cert), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "tls_key", CT_STR, OFF(router.tls_key), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "relay_networks", CT_STRS, OFF(router.relay_networks), OFF(router.n_relay_networks), 0, 4096, NULL, NULL, NULL, 0, false },
	{ "users_file", CT_STR, OFF(router.users_file), 0, 1, 1024, NULL, NULL, NULL, 0, false },
	{ "max_message_size", CT_U64, OFF(router.max_message_size), 0, 1024, 2147483648.0, "52428800", NULL, NULL, 0, false },
	{ "max_recipients", CT_U32, OFF(router.max_recipients), 0, 1, 100000, "1000", NULL, NULL, 0, false },
	{ "metrics", CT_STR, OFF(router.metrics), 0, 1, 256, NULL, NULL, NULL, 0, false },
	{ "dkim", CT_LIST, OFF(router.dkim), OFF(router.n_dkim), 0, 1024, NULL, NULL, cfg_dkim_keys, sizeof(struct cfg_dkim), false },
	{ "bare_lf", CT_ENUM, OFF(router.bare_lf), 0, 0, 0, "reject", cfg_bare_lf_names, NULL, 0, false },
	{ "max_sessions", CT_U32, OFF(router.max_sessions), 0, 1, 1000000, "10000", NULL, NULL, 0, false },
	{ "max_errors", CT_U32, OFF(router.max_errors), 0, 1, 1000, "20", NULL, NULL, 0, false },
	{ "idle_timeout", CT_U32, OFF(router.idle_timeout), 0, 1, 86400, "300", NULL, NULL, 0, false },
	{ "session_timeout", CT_U32, OFF(router.session_timeout), 0, 1, 604800, "3600", NULL, NULL, 0, false },
	{ "node_timeout_ms", CT_U32, OFF(router.node_timeout_ms), 0, 100, 600000, "10000", NULL, NULL, 0, false },
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
	END
};

static const struct cfg_key cfg_top_keys[] = {
	{ "cluster", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_cluster_keys, 0, false },
	{ "nodes", CT_LIST, OFF(nodes), OFF(n_nodes), 1, 1024, NULL, NULL, cfg_node_keys, sizeof(struct cfg_node), true },
	{ "router", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_router_keys, 0, false },
	{ "delivery", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_delivery_keys, 0, false },
	{ "replication", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_repl_keys, 0, false },
	{ "log", CT_GROUP, 0, 0, 0, 0, NULL, NULL, cfg_log_keys, 0, false },
	END
};

struct cfg_ctx {
	const char *file;
	char *err;
	size_t errlen;
};

static int cfg_fail(struct cfg_ctx *cx, const config_setting_t *s,
		    const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write "file:line: path: what" for setting s (NULL: "file: path: what").
 * The file is the one s came from, which @include may make another. */
static int
cfg_fail(struct cfg_ctx *cx, const config_setting_t *s, const char *path,
	 const char *fmt, ...)
{
	const char *file = s ? config_setting_source_file(s) : NULL;
	int line = s ? (int)config_setting_source_line(s) : 0;
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (file == NULL)
		file = cx->file;
	if (line > 0)
		snprintf(cx->err, cx->errlen, "%s:%d: %s: %s", file, line, path,
			 what);
	else
		snprintf(cx->err, cx->errlen, "%s: %s: %s", file, path, what);
	return SHOAL_E_CONFIG;
}

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
		return cfg_fail(cx, s, path, "expected %s",
				k->type == CT_DBL ? "a number" : "an integer");
	if (v < k->min || v > k->max)
		return cfg_fail(cx, s, path,
				"%.15g is out of range (%.15g..%.15g)", v,
				k->min, k->max);
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
		return cfg_fail(cx, s, path, "expected a string");
	v = config_setting_get_string(s);
	n = strlen(v);
	if ((double)n < min || (double)n > max)
		return cfg_fail(cx, s, path,
				"length %zu out of range (%.15g..%.15g)", n,
				min, max);
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
			return cfg_fail(cx, s, path, "expected true or false");
		*(bool *)p = config_setting_get_bool(s) != 0;
		return 0;
	case CT_ENUM:
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return cfg_fail(cx, s, path, "expected a string");
		str = config_setting_get_string(s);
		for (int i = 0; k->names[i]; i++) {
			if (k->names[i][0] && strcmp(k->names[i], str) == 0) {
				*(int *)p = i;
				return 0;
			}
		}
		return cfg_fail(cx, s, path, "unknown value \"%.64s\"", str);
	default:
		return cfg_fail(cx, s, path, "internal: bad key type");
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
		return cfg_fail(cx, s, path, "expected an array");
	if (n < k->min || n > k->max)
		return cfg_fail(cx, s, path,
				"%d entries, expected %.15g..%.15g", n, k->min,
				k->max);
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
		return cfg_fail(cx, s, path,
				"expected a list ( { ... }, ... )");
	if (n < k->min || n > k->max)
		return cfg_fail(cx, s, path,
				"%d entries, expected %.15g..%.15g", n, k->min,
				k->max);
	arr = xcalloc((size_t)n + 1, k->elem_size);
	*(char **)((char *)base + k->off) = arr;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		char ep[CFG_PATH_MAX + 32];
		int rc;

		snprintf(ep, sizeof(ep), "%s[%d]", path, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return cfg_fail(cx, e, ep, "expected a group { ... }");
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
			return cfg_fail(cx, s, path, "unknown key");
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
				return cfg_fail(cx, g, path,
						"required key missing");
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
				return cfg_fail(cx, s, path,
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

/* The setting root.group.key[idx].member (group, member NULL and idx < 0
 * skip that step), or NULL, for the line of an error found after parsing. */
static const config_setting_t *
cfg_at(const config_setting_t *root, const char *group, const char *key,
       int idx, const char *member)
{
	const config_setting_t *s = root;

	if (group && s)
		s = config_setting_get_member(s, group);
	if (s)
		s = config_setting_get_member(s, key);
	if (idx >= 0 && s)
		s = config_setting_get_elem(s, (unsigned)idx);
	if (member && s)
		s = config_setting_get_member(s, member);
	return s;
}

/* A host name (letters, digits, '-', '_', dots between labels) or an IPv4
 * literal, which has that shape too. */
static bool
cfg_is_hostname(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 253 || h[0] == '.' || strstr(h, ".."))
		return false;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			return false;
	return true;
}

/* What cfg_is_hostport() takes besides an IPv4 literal or [IPv6]. */
enum cfg_host {
	CFG_HOST_NAME = 1 << 0,	   /* a host name */
	CFG_HOST_PORT = 1 << 1,	   /* the port is required */
	CFG_HOST_BARE_V6 = 1 << 2, /* "2001:db8::1" without brackets, no port */
};

/* Check "host:port", "[v6]:port", "host" or a bare IPv6 address against
 * flags. A port is 1..65535. Returns true when s fits. */
static bool
cfg_is_hostport(const char *s, unsigned flags)
{
	char host[256];
	const char *h = s, *port = NULL, *c;
	unsigned char bin[16];
	bool is_v6 = false;
	size_t hl;

	if (s[0] == '[') {
		if ((c = strchr(s, ']')) == NULL || (c[1] && c[1] != ':'))
			return false;
		h = s + 1;
		hl = (size_t)(c - h);
		port = c[1] ? c + 2 : NULL;
		is_v6 = true;
	} else if ((c = strchr(s, ':')) != NULL && strchr(c + 1, ':')) {
		if (!(flags & CFG_HOST_BARE_V6))
			return false;
		hl = strlen(s);
		is_v6 = true;
	} else if (c != NULL) {
		hl = (size_t)(c - s);
		port = c + 1;
	} else {
		hl = strlen(s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (port) {
		char *end;
		unsigned long p;

		if (*port < '0' || *port > '9' || strlen(port) > 5)
			return false;
		p = strtoul(port, &end, 10);
		if (*end || p < 1 || p > 65535)
			return false;
	} else if (flags & CFG_HOST_PORT) {
		return false;
	}
	if (is_v6)
		return inet_pton(AF_INET6, host, bin) == 1;
	if (inet_pton(AF_INET, host, bin) == 1)
		return true;
	return (flags & CFG_HOST_NAME) && cfg_is_hostname(host);
}

/* A ZeroMQ endpoint both binds (the node) and connects (routers, shoalctl):
 * tcp://host:port or ipc://path. */
static bool
cfg_is_endpoint(const char *s)
{
	if (strncmp(s, "tcp://", 6) == 0)
		return cfg_is_hostport(s + 6, CFG_HOST_NAME | CFG_HOST_PORT);
	return strncmp(s, "ipc://", 6) == 0 && s[6] != '\0';
}

/* Addresses are checked here, with the line, rather than when a program
 * first binds or connects to them. */
static int
cfg_check_addrs(struct cfg_ctx *cx, const struct config *c,
		const config_setting_t *root)
{
	static const char want_hostport[] = "expected host:port or [IPv6]:port";
	const unsigned hostport = CFG_HOST_NAME | CFG_HOST_PORT;
	char path[CFG_PATH_MAX];
	struct cidr net;

	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *nd = &c->nodes[i];

		if (!cfg_is_endpoint(nd->endpoint)) {
			snprintf(path, sizeof(path), "nodes[%zu].endpoint", i);
			return cfg_fail(
				cx,
				cfg_at(root, NULL, "nodes", (int)i, "endpoint"),
				path, "expected tcp://host:port or ipc://path");
		}
		if (nd->metrics && !cfg_is_hostport(nd->metrics, hostport)) {
			snprintf(path, sizeof(path), "nodes[%zu].metrics", i);
			return cfg_fail(
				cx,
				cfg_at(root, NULL, "nodes", (int)i, "metrics"),
				path, "%s", want_hostport);
		}
	}
	/* router.listen is filled with a valid default when absent */
	for (size_t i = 0; i < c->router.n_listen; i++) {
		if (cfg_is_hostport(c->router.listen[i].address, CFG_HOST_PORT))
			continue;
		snprintf(path, sizeof(path), "router.listen[%zu].address", i);
		return cfg_fail(
			cx, cfg_at(root, "router", "listen", (int)i, "address"),
			path, "expected IPv4:port or [IPv6]:port");
	}
	for (size_t i = 0; i < c->router.n_relay_networks; i++) {
		if (cidr_parse(c->router.relay_networks[i], &net) == 0)
			continue;
		snprintf(path, sizeof(path), "router.relay_networks[%zu]", i);
		return cfg_fail(
			cx,
			cfg_at(root, "router", "relay_networks", (int)i, NULL),
			path,
			"expected a network such as 192.0.2.0/24 or "
			"2001:db8::/32");
	}
	if (c->router.metrics && !cfg_is_hostport(c->router.metrics, hostport))
		return cfg_fail(cx, cfg_at(root, "router", "metrics", -1, NULL),
				"router.metrics", "%s", want_hostport);
	for (size_t i = 0; i < c->delivery.n_dns_servers; i++) {
		if (cfg_is_hostport(c->delivery.dns_servers[i],
				    CFG_HOST_BARE_V6))
			continue;
		snprintf(path, sizeof(path), "delivery.dns_servers[%zu]", i);
		return cfg_fail(
			cx,
			cfg_at(root, "delivery", "dns_servers", (int)i, NULL),
			path, "expected an IP address, IP:port or [IPv6]:port");
	}
	for (size_t i = 0; i < c->delivery.n_routes; i++) {
		if (cfg_is_hostport(c->delivery.routes[i].host,
				    CFG_HOST_NAME | CFG_HOST_BARE_V6))
			continue;
		snprintf(path, sizeof(path), "delivery.routes[%zu].host", i);
		return cfg_fail(
			cx, cfg_at(root, "delivery", "routes", (int)i, "host"),
			path, "expected host, host:port or [IPv6]:port");
	}
	return 0;
}

/* Defaults that depend on other keys, and checks across keys. root is the
 * parsed file, for the lines of errors. */
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
	if (c->delivery.helo_name == NULL)
		c->delivery.helo_name = xstrdup(c->router.hostname);
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
		c->delivery.limits[0].tls = CFG_TLS_OPPORTUNISTIC;
		c->delivery.n_limits = 1;
	}
	if (strcmp(c->log.level, "error") && strcmp(c->log.level, "warn") &&
	    strcmp(c->log.level, "info") && strcmp(c->log.level, "debug"))
		return cfg_fail(cx, cfg_at(root, "log", "level", -1, NULL),
				"log.level",
				"expected error, warn, info or debug");
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *a = &c->nodes[i];
		char path[CFG_PATH_MAX];

		snprintf(path, sizeof(path), "nodes[%zu].id", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->nodes[j].id, a->id) == 0)
				return cfg_fail(cx,
						cfg_at(root, NULL, "nodes",
						       (int)i, "id"),
						path,
						"duplicate node id \"%s\"",
						a->id);
		snprintf(path, sizeof(path), "nodes[%zu].peer", i);
		if (a->peer) {
			const struct cfg_node *p = config_find_node(c, a->peer);
			const config_setting_t *at =
				cfg_at(root, NULL, "nodes", (int)i, "peer");

			if (p == NULL || p == a)
				return cfg_fail(cx, at, path,
						"peer \"%s\" is not another "
						"node",
						a->peer);
			if (p->peer == NULL || strcmp(p->peer, a->id) != 0)
				return cfg_fail(cx, at, path,
						"peer \"%s\" does not name "
						"\"%s\" as its peer",
						a->peer, a->id);
		}
	}
	return cfg_check_addrs(cx, c, root);
}

/* Read the whole file into a NUL-terminated buffer (caller frees *out).
 * Returns 0, -errno, or SHOAL_E_CONFIG for a file over CFG_FILE_MAX or one
 * holding a NUL byte (libconfig would end the text there, unseen); err
 * says which. */
static int
cfg_read_file(const char *path, char **out, char *err, size_t errlen)
{
	size_t len = 0, cap = 65536;
	const char *nul;
	char *buf;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			cap = cap * 2 > CFG_FILE_MAX + 2 ? CFG_FILE_MAX + 2 :
							   cap * 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CFG_FILE_MAX) {
			rc = SHOAL_E_CONFIG;
			snprintf(err, errlen, "%s: larger than %d bytes", path,
				 CFG_FILE_MAX);
			goto fail;
		}
	}
	buf[len] = '\0';
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		int line = 1;

		for (const char *p = buf; p < nul; p++)
			line += *p == '\n';
		rc = SHOAL_E_CONFIG;
		snprintf(err, errlen, "%s:%d: NUL byte in the file", path,
			 line);
		goto fail;
	}
	close(fd);
	*out = buf;
	return 0;
fail:
	free(buf);
	close(fd);
	return rc;
}

static bool
cfg_is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-';
}

/* Whether the integer literal s[0..n) (hex after "0x" when is_hex) needs
 * 64 bits: below INT32_MIN or above INT32_MAX, or above 0xFFFFFFFF in hex. */
static bool
cfg_int_is_wide(const char *s, size_t n, bool is_hex, bool is_neg)
{
	unsigned long long v = 0, lim;

	lim = is_hex ? 0xFFFFFFFFull : is_neg ? 2147483648ull : 2147483647ull;
	for (size_t i = 0; i < n; i++) {
		unsigned d = isdigit((unsigned char)s[i]) ?
				     (unsigned)(s[i] - '0') :
				     (unsigned)(tolower((unsigned char)s[i]) -
						'a' + 10);

		v = v * (is_hex ? 16 : 10) + d;
		if (v > lim)
			return true;
	}
	return false;
}

/* libconfig 1.5 reads an integer without the L suffix as 32 bits and keeps
 * the low bits of a larger one, so "map_size = 5368709120" would quietly
 * become 1 GiB. Copy text with an L after every such literal outside
 * strings and comments, as libconfig 1.6 and later do by themselves; range
 * checks then see the real value. Lines are unchanged. Caller frees. */
static char *
cfg_widen_ints(const char *in, size_t len)
{
	char *out = xmalloc(len + len / 8 + 2); /* an L needs 10+ digits */
	size_t i = 0, o = 0;

	while (i < len) {
		size_t j = i;

		if (in[i] == '"') {
			for (j = i + 1; j < len && in[j] != '"'; j++)
				if (in[j] == '\\' && j + 1 < len)
					j++;
			j = j < len ? j + 1 : len;
		} else if (in[i] == '#' || (in[i] == '/' && in[i + 1] == '/')) {
			while (j < len && in[j] != '\n')
				j++;
		} else if (in[i] == '/' && in[i + 1] == '*') {
			const char *end = strstr(in + i + 2, "*/");

			j = end ? (size_t)(end - in) + 2 : len;
		} else if (isdigit((unsigned char)in[i]) &&
			   !(i > 0 &&
			     (cfg_is_name_char(in[i - 1]) ||
			      in[i - 1] == '.') &&
			     !(in[i - 1] == '-' &&
			       !(i > 1 && cfg_is_name_char(in[i - 2]))))) {
			bool is_hex = in[i] == '0' &&
				      (in[i + 1] == 'x' || in[i + 1] == 'X');
			bool is_neg = i > 0 && in[i - 1] == '-';
			size_t d = is_hex ? i + 2 : i;

			for (j = d; j < len &&
				    (is_hex ? isxdigit((unsigned char)in[j]) :
					      isdigit((unsigned char)in[j]));
			     j++)
				;
			memcpy(out + o, in + i, j - i);
			o += j - i;
			if (in[j] != 'L' && in[j] != '.' &&
			    (is_hex || (in[j] != 'e' && in[j] != 'E')) &&
			    cfg_int_is_wide(in + d, j - d, is_hex, is_neg))
				out[o++] = 'L';
			i = j;
			continue;
		} else {
			j = i + 1;
		}
		memcpy(out + o, in + i, j - i);
		o += j - i;
		i = j;
	}
	out[o] = '\0';
	return out;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct cfg_ctx cx = { path, err, errlen };
	const config_setting_t *root;
	struct config *c;
	config_t lc;
	char *text = NULL, *wide;
	int rc;

	err[0] = '\0';
	if ((rc = cfg_read_file(path, &text, err, errlen)) != 0)
		return rc;
	wide = cfg_widen_ints(text, strlen(text));
	free(text);
	text = wide;
	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		const char *file = config_error_file(&lc); /* an @include */

		snprintf(err, errlen, "%s:%d: %s", file ? file : path,
			 config_error_line(&lc), config_error_text(&lc));
		config_destroy(&lc);
		free(text);
		return SHOAL_E_CONFIG;
	}
	free(text);
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

const struct cfg_node *
config_find_node(const struct config *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (strcmp(cfg->nodes[i].id, id) == 0)
			return &cfg->nodes[i];
	return NULL;
}
