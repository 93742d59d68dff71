/* Checks on the loaded config that the key table cannot express: the
 * syntax of addresses (network and mail), ZeroMQ endpoints and networks,
 * log.level, unique node ids and peers that name each other. Also the one
 * way every check in lib/config*.c reports a failure, with file, line and
 * key path. Leaves types, ranges and defaults to lib/config.c. Handles
 * untrusted input: every string checked comes from the file. */
#include "lib/config_check.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/cidr.h"
#include "lib/err.h"
#include "lib/smtp_addr.h"

int
config_check_fail(struct cfg_ctx *cx, const config_setting_t *s,
		  const char *path, const char *fmt, ...)
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

static bool cfg_is_rule_name(const char *n);

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
	struct smtp_addr pm;
	struct cidr net;

	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *nd = &c->nodes[i];

		if (!cfg_is_endpoint(nd->endpoint)) {
			snprintf(path, sizeof(path), "nodes[%zu].endpoint", i);
			return config_check_fail(
				cx,
				cfg_at(root, NULL, "nodes", (int)i, "endpoint"),
				path, "expected tcp://host:port or ipc://path");
		}
		if (nd->metrics && !cfg_is_hostport(nd->metrics, hostport)) {
			snprintf(path, sizeof(path), "nodes[%zu].metrics", i);
			return config_check_fail(
				cx,
				cfg_at(root, NULL, "nodes", (int)i, "metrics"),
				path, "%s", want_hostport);
		}
	}
	/* router.listen is filled with a valid default when absent */
	for (size_t i = 0; i < c->router.n_listen; i++) {
		enum cfg_tls t = c->router.listen[i].tls;

		if (t == CFG_TLS_VERIFY || t == CFG_TLS_DANE ||
		    t == CFG_TLS_MTA_STS) {
			snprintf(path, sizeof(path), "router.listen[%zu].tls",
				 i);
			return config_check_fail(
				cx, cfg_at(root, "router", "listen", (int)i, "tls"),
				path, "a listener takes \"none\", "
				      "\"starttls\" or \"implicit\"");
		}
		if (cfg_is_hostport(c->router.listen[i].address, CFG_HOST_PORT))
			continue;
		snprintf(path, sizeof(path), "router.listen[%zu].address", i);
		return config_check_fail(
			cx, cfg_at(root, "router", "listen", (int)i, "address"),
			path, "expected IPv4:port or [IPv6]:port");
	}
	for (size_t i = 0; i < c->router.n_http_listen; i++) {
		const struct cfg_listen *l = &c->router.http_listen[i];
		const char *why = NULL;
		const char *key = "address";

		if (!cfg_is_hostport(l->address, CFG_HOST_PORT)) {
			why = "expected IPv4:port or [IPv6]:port";
		} else if (l->tls != CFG_TLS_DEFAULT &&
			   l->tls != CFG_TLS_NONE &&
			   l->tls != CFG_TLS_IMPLICIT) {
			key = "tls";
			why = "HTTP takes \"none\" or \"implicit\"";
		} else if (l->tls == CFG_TLS_IMPLICIT &&
			   (c->router.tls_cert == NULL ||
			    c->router.tls_key == NULL)) {
			key = "tls";
			why = "\"implicit\" needs router.tls_cert and "
			      "router.tls_key";
		}
		if (why == NULL)
			continue;
		snprintf(path, sizeof(path), "router.http_listen[%zu].%s", i,
			 key);
		return config_check_fail(
			cx, cfg_at(root, "router", "http_listen", (int)i, key),
			path, "%s", why);
	}
	for (size_t i = 0; i < c->router.n_relay_networks; i++) {
		if (cidr_parse(c->router.relay_networks[i], &net) == 0)
			continue;
		snprintf(path, sizeof(path), "router.relay_networks[%zu]", i);
		return config_check_fail(
			cx,
			cfg_at(root, "router", "relay_networks", (int)i, NULL),
			path,
			"expected a network such as 192.0.2.0/24 or "
			"2001:db8::/32");
	}
	/* where RCPT TO:<Postmaster> is sent: a plain ASCII address with a
	 * domain; the default, made from router.hostname, is checked too */
	if (smtp_mailbox_parse(c->router.postmaster,
			       strlen(c->router.postmaster), 0, &pm) != 0) {
		const config_setting_t *at =
			cfg_at(root, "router", "postmaster", -1, NULL);

		if (at == NULL)
			return config_check_fail(
				cx, NULL, "router.postmaster",
				"the default \"%.300s\" (from router.hostname)"
				" is not an address; set router.postmaster",
				c->router.postmaster);
		return config_check_fail(
			cx, at, "router.postmaster",
			"expected an address such as postmaster@example.com");
	}
	if (c->router.metrics && !cfg_is_hostport(c->router.metrics, hostport))
		return config_check_fail(
			cx, cfg_at(root, "router", "metrics", -1, NULL),
			"router.metrics", "%s", want_hostport);
	for (size_t i = 0; i < c->delivery.n_dns_servers; i++) {
		if (cfg_is_hostport(c->delivery.dns_servers[i],
				    CFG_HOST_BARE_V6))
			continue;
		snprintf(path, sizeof(path), "delivery.dns_servers[%zu]", i);
		return config_check_fail(
			cx,
			cfg_at(root, "delivery", "dns_servers", (int)i, NULL),
			path, "expected an IP address, IP:port or [IPv6]:port");
	}
	for (size_t i = 0; i < c->delivery.n_routes; i++) {
		if (cfg_is_hostport(c->delivery.routes[i].host,
				    CFG_HOST_NAME | CFG_HOST_BARE_V6))
			continue;
		snprintf(path, sizeof(path), "delivery.routes[%zu].host", i);
		return config_check_fail(
			cx, cfg_at(root, "delivery", "routes", (int)i, "host"),
			path, "expected host, host:port or [IPv6]:port");
	}
	return 0;
}

/* A header field name (RFC 5322 3.6.8: printable ASCII but colon). */
static bool
cfg_is_field_name(const char *s)
{
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == ':')
			return false;
	return true;
}

/* delivery.pools, default_pool, router.pool_rules, the pool of a limit
 * and router.pool_header (docs/pools.md). */
static int
cfg_check_pools(struct cfg_ctx *cx, const struct config *c,
		const config_setting_t *root)
{
	char path[CFG_PATH_MAX];
	unsigned char bin[16];

	for (size_t i = 0; i < c->delivery.n_pools; i++) {
		const struct cfg_pool *p = &c->delivery.pools[i];

		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->delivery.pools[j].name, p->name))
				continue;
			snprintf(path, sizeof(path), "delivery.pools[%zu].name",
				 i);
			return config_check_fail(
				cx, cfg_at(root, "delivery", "pools", (int)i,
					   "name"),
				path, "duplicate pool name \"%s\"", p->name);
		}
		for (size_t j = 0; j < p->n_addresses; j++) {
			const struct cfg_pool_addr *pa = &p->addresses[j];
			const char *a = pa->address;
			int64_t day;

			snprintf(path, sizeof(path),
				 "delivery.pools[%zu].addresses[%zu].warmup", i,
				 j);
			if ((pa->warmup_start == NULL) != (pa->n_warmup == 0))
				return config_check_fail(
					cx, cfg_at(root, "delivery", "pools",
						   (int)i, "addresses"),
					path, "warmup and warmup_start go "
					"together");
			if (pa->warmup_start &&
			    config_parse_day(pa->warmup_start, &day) != 0)
				return config_check_fail(
					cx, cfg_at(root, "delivery", "pools",
						   (int)i, "addresses"),
					path, "warmup_start: a day as "
					"YYYY-MM-DD");
			if (inet_pton(AF_INET, a, bin) == 1 ||
			    inet_pton(AF_INET6, a, bin) == 1)
				continue;
			snprintf(path, sizeof(path),
				 "delivery.pools[%zu].addresses[%zu].address",
				 i, j);
			return config_check_fail(
				cx, cfg_at(root, "delivery", "pools", (int)i,
					   "addresses"),
				path, "expected an IPv4 or IPv6 address");
		}
	}
	if (c->delivery.default_pool &&
	    !config_find_pool(c, c->delivery.default_pool))
		return config_check_fail(
			cx, cfg_at(root, "delivery", "default_pool", -1, NULL),
			"delivery.default_pool", "no pool named \"%s\"",
			c->delivery.default_pool);
	for (size_t i = 0; i < c->delivery.n_limits; i++) {
		const char *pool = c->delivery.limits[i].pool;

		if (pool == NULL || config_find_pool(c, pool))
			continue;
		snprintf(path, sizeof(path), "delivery.limits[%zu].pool", i);
		return config_check_fail(
			cx, cfg_at(root, "delivery", "limits", (int)i, "pool"),
			path, "no pool named \"%s\"", pool);
	}
	for (size_t i = 0; i < c->router.n_pool_rules; i++) {
		const struct cfg_pool_rule *r = &c->router.pool_rules[i];

		snprintf(path, sizeof(path), "router.pool_rules[%zu]", i);
		if (r->sender_domain == NULL && r->user == NULL)
			return config_check_fail(
				cx,
				cfg_at(root, "router", "pool_rules", (int)i,
				       NULL),
				path, "needs sender_domain or user");
		if (r->pool == NULL && r->priority == CFG_PRIORITY_UNSET &&
		    r->tenant == NULL)
			return config_check_fail(
				cx,
				cfg_at(root, "router", "pool_rules", (int)i,
				       NULL),
				path, "needs pool, priority or tenant");
		if (r->tenant && !cfg_is_rule_name(r->tenant))
			return config_check_fail(
				cx,
				cfg_at(root, "router", "pool_rules", (int)i,
				       "tenant"),
				path, "tenant: letters, digits, '.', '_' and "
				"'-' only");
		if (r->pool == NULL || config_find_pool(c, r->pool))
			continue;
		snprintf(path, sizeof(path), "router.pool_rules[%zu].pool", i);
		return config_check_fail(
			cx, cfg_at(root, "router", "pool_rules", (int)i, "pool"),
			path, "no pool named \"%s\"", r->pool);
	}
	if (!cfg_is_field_name(c->router.pool_header))
		return config_check_fail(
			cx, cfg_at(root, "router", "pool_header", -1, NULL),
			"router.pool_header",
			"expected a header field name (no spaces or colon)");
	if (!cfg_is_field_name(c->router.priority_header))
		return config_check_fail(
			cx, cfg_at(root, "router", "priority_header", -1, NULL),
			"router.priority_header",
			"expected a header field name (no spaces or colon)");
	if (!cfg_is_field_name(c->router.tenant_header))
		return config_check_fail(
			cx, cfg_at(root, "router", "tenant_header", -1, NULL),
			"router.tenant_header",
			"expected a header field name (no spaces or colon)");
	return 0;
}

/* The event names a webhook may ask for (docs/webhooks.md). */
static const char *const cfg_webhook_events[] = {
	"delivered", "deferred", "bounced", "expired", "suppressed", "shaping",
	NULL
};

static bool
cfg_is_webhook_event(const char *e)
{
	for (size_t i = 0; cfg_webhook_events[i]; i++)
		if (strcmp(cfg_webhook_events[i], e) == 0)
			return true;
	return false;
}

static int
cfg_check_webhooks(struct cfg_ctx *cx, const struct config *c,
		   const config_setting_t *root)
{
	char path[CFG_PATH_MAX];

	for (size_t i = 0; i < c->delivery.n_webhooks; i++) {
		const struct cfg_webhook *w = &c->delivery.webhooks[i];

		snprintf(path, sizeof(path), "delivery.webhooks[%zu].name", i);
		if (!cfg_is_rule_name(w->name))
			return config_check_fail(
				cx,
				cfg_at(root, "delivery", "webhooks", (int)i,
				       "name"),
				path, "expected letters, digits, '-', '_', '.'");
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->delivery.webhooks[j].name, w->name) == 0)
				return config_check_fail(
					cx,
					cfg_at(root, "delivery", "webhooks",
					       (int)i, "name"),
					path, "duplicate webhook \"%s\"",
					w->name);
		snprintf(path, sizeof(path), "delivery.webhooks[%zu].url", i);
		if (strncmp(w->url, "http://", 7) != 0 &&
		    strncmp(w->url, "https://", 8) != 0)
			return config_check_fail(
				cx,
				cfg_at(root, "delivery", "webhooks", (int)i,
				       "url"),
				path, "expected an http:// or https:// URL");
		for (size_t j = 0; j < w->n_events; j++) {
			if (cfg_is_webhook_event(w->events[j]))
				continue;
			snprintf(path, sizeof(path),
				 "delivery.webhooks[%zu].events[%zu]", i, j);
			return config_check_fail(
				cx,
				cfg_at(root, "delivery", "webhooks", (int)i,
				       "events"),
				path,
				"expected delivered, deferred, bounced, "
				"expired, suppressed or shaping");
		}
	}
	return 0;
}

int
config_check_all(struct cfg_ctx *cx, const struct config *c,
		 const config_setting_t *root)
{
	int rc;

	if (strcmp(c->log.level, "error") && strcmp(c->log.level, "warn") &&
	    strcmp(c->log.level, "info") && strcmp(c->log.level, "debug"))
		return config_check_fail(
			cx, cfg_at(root, "log", "level", -1, NULL), "log.level",
			"expected error, warn, info or debug");
	for (size_t i = 0; i < c->n_nodes; i++) {
		const struct cfg_node *a = &c->nodes[i];
		char path[CFG_PATH_MAX];

		snprintf(path, sizeof(path), "nodes[%zu].id", i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->nodes[j].id, a->id) == 0)
				return config_check_fail(
					cx,
					cfg_at(root, NULL, "nodes", (int)i,
					       "id"),
					path, "duplicate node id \"%s\"",
					a->id);
		snprintf(path, sizeof(path), "nodes[%zu].peer", i);
		if (a->peer) {
			const struct cfg_node *p = config_find_node(c, a->peer);
			const config_setting_t *at =
				cfg_at(root, NULL, "nodes", (int)i, "peer");

			if (p == NULL || p == a)
				return config_check_fail(
					cx, at, path,
					"peer \"%s\" is not another "
					"node",
					a->peer);
			if (p->peer == NULL || strcmp(p->peer, a->id) != 0)
				return config_check_fail(
					cx, at, path,
					"peer \"%s\" does not name "
					"\"%s\" as its peer",
					a->peer, a->id);
		}
	}
	if ((rc = cfg_check_pools(cx, c, root)) != 0)
		return rc;
	if ((rc = cfg_check_webhooks(cx, c, root)) != 0)
		return rc;
	return cfg_check_addrs(cx, c, root);
}

/* "x.y.z": class 2, 4 or 5, then 1-3 and 1-3 digits (RFC 3463 2). */
static bool
cfg_is_enhanced(const char *e)
{
	const char *p = e + 2;
	size_t a = 0, b = 0;

	if ((e[0] != '2' && e[0] != '4' && e[0] != '5') || e[1] != '.')
		return false;
	while (isdigit((unsigned char)p[a]))
		a++;
	if (a == 0 || a > 3 || p[a] != '.')
		return false;
	p += a + 1;
	while (isdigit((unsigned char)p[b]))
		b++;
	return b > 0 && b <= 3 && p[b] == '\0';
}

/* "421", or a class: "4" (2 to 5). */
static bool
cfg_is_reply_code(const char *c)
{
	size_t n = strlen(c);

	if (c[0] < '2' || c[0] > '5')
		return false;
	return n == 1 || (n == 3 && isdigit((unsigned char)c[1]) &&
			  isdigit((unsigned char)c[2]));
}

/* A rule's name: letters, digits, '.', '_' and '-'. */
static bool
cfg_is_rule_name(const char *n)
{
	for (const char *p = n; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return false;
	return n[0] != '\0';
}

static int
cfg_check_provider(struct cfg_ctx *cx, const struct cfg_shaping *sh, size_t i,
		   const config_setting_t *root)
{
	const struct cfg_provider *p = &sh->providers[i];
	char path[CFG_PATH_MAX];

	snprintf(path, sizeof(path), "providers[%zu].name", i);
	if (!cfg_is_rule_name(p->name))
		return config_check_fail(
			cx, cfg_at(root, NULL, "providers", (int)i, "name"),
			path, "letters, digits, '.', '_' and '-' only");
	for (size_t j = 0; j < i; j++)
		if (strcmp(sh->providers[j].name, p->name) == 0)
			return config_check_fail(
				cx, cfg_at(root, NULL, "providers", (int)i,
					   "name"),
				path, "duplicate provider \"%s\"", p->name);
	for (size_t k = 0; k < p->n_mx; k++) {
		const char *h = p->mx[k];

		if (strncmp(h, "*.", 2) == 0)
			h += 2;
		if (!cfg_is_hostname(h)) {
			snprintf(path, sizeof(path), "providers[%zu].mx", i);
			return config_check_fail(
				cx, cfg_at(root, NULL, "providers", (int)i, "mx"),
				path, "\"%.64s\" is not a host name or "
				"\"*.\" and a domain", p->mx[k]);
		}
	}
	return 0;
}

static int
cfg_check_rule(struct cfg_ctx *cx, const struct cfg_shaping *sh, size_t i,
	       const config_setting_t *root)
{
	const struct cfg_shaping_rule *r = &sh->rules[i];
	const config_setting_t *at = cfg_at(root, NULL, "rules", (int)i, NULL);
	char path[CFG_PATH_MAX];
	bool found = r->provider == NULL;

	snprintf(path, sizeof(path), "rules[%zu].name", i);
	if (!cfg_is_rule_name(r->name))
		return config_check_fail(cx, at, path, "letters, digits, '.', "
					 "'_' and '-' only");
	for (size_t j = 0; j < i; j++)
		if (strcmp(sh->rules[j].name, r->name) == 0)
			return config_check_fail(cx, at, path,
						 "duplicate rule \"%s\"",
						 r->name);
	snprintf(path, sizeof(path), "rules[%zu]", i);
	if (!r->code && !r->enhanced && !r->text)
		return config_check_fail(cx, at, path, "needs code, enhanced "
					 "or text to match replies");
	if (r->code && !cfg_is_reply_code(r->code))
		return config_check_fail(cx, at, path, "code: a reply code "
					 "(\"421\") or a class (\"4\")");
	if (r->enhanced && !cfg_is_enhanced(r->enhanced))
		return config_check_fail(cx, at, path, "enhanced: an enhanced "
					 "status code (\"4.7.28\")");
	for (size_t j = 0; r->provider && j < sh->n_providers; j++)
		found |= strcmp(sh->providers[j].name, r->provider) == 0;
	if (!found)
		return config_check_fail(cx, at, path, "provider \"%s\" is "
					 "not in providers", r->provider);
	if (r->action == CFG_SHAPING_RATE && !(r->rate >= 0.001))
		return config_check_fail(cx, at, path, "action \"rate\" "
					 "needs rate >= 0.001 (messages/s)");
	if (r->action == CFG_SHAPING_CONNECTIONS && r->connections == 0)
		return config_check_fail(cx, at, path, "action "
					 "\"connections\" needs connections "
					 ">= 1");
	return 0;
}

int
config_check_shaping(struct cfg_ctx *cx, const struct cfg_shaping *sh,
		     const config_setting_t *root)
{
	int rc;

	for (size_t i = 0; i < sh->n_providers; i++)
		if ((rc = cfg_check_provider(cx, sh, i, root)) != 0)
			return rc;
	for (size_t i = 0; i < sh->n_rules; i++)
		if ((rc = cfg_check_rule(cx, sh, i, root)) != 0)
			return rc;
	return 0;
}
