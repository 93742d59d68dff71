/* The cluster configuration (libconfig syntax), as ../shared/DESIGN.md
 * defines it. One file describes the whole cluster; every program reads it.
 *
 * Keys are declared in a table (name, type, default, min, max) in config.c.
 * An unknown key, a wrong type or a value out of range is an error naming the
 * file, the line and the full key path. Every key has a default except
 * `nodes`. Durations are whole seconds unless the key ends in _ms.
 * Handles untrusted input: the file may be anything. */
#ifndef SHOAL_CONFIG_H
#define SHOAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cfg_tls {
	CFG_TLS_DEFAULT = 0,   /* listener: STARTTLS iff tls_cert is set */
	CFG_TLS_NONE,          /* "none" */
	CFG_TLS_STARTTLS,      /* "starttls" */
	CFG_TLS_IMPLICIT,      /* "implicit" (listeners only) */
	CFG_TLS_REQUIRED,      /* "required" (delivery routes and limits) */
	CFG_TLS_OPPORTUNISTIC, /* "opportunistic" (delivery): STARTTLS when
				* offered, no DANE, no MTA-STS */
	CFG_TLS_VERIFY,        /* "verify" (delivery): CA-verified, name checked */
	CFG_TLS_DANE,          /* "dane" (delivery): secure TLSA required */
	CFG_TLS_MTA_STS,       /* "mta-sts" (delivery): the domain's MTA-STS
				* policy, no DANE */
};
/* Delivery (routes, limits) reads CFG_TLS_DEFAULT as opportunistic
 * STARTTLS plus DANE where the MX host has DNSSEC-secure TLSA records plus
 * the recipient domain's MTA-STS policy (docs/tls.md). */

enum cfg_auth {
	CFG_AUTH_OPTIONAL = 0, /* "optional" */
	CFG_AUTH_REQUIRED,     /* "required" */
	CFG_AUTH_NONE,         /* "none": AUTH not offered */
};

enum cfg_bare_lf {
	CFG_BARE_LF_REJECT = 0, /* "reject" */
	CFG_BARE_LF_NORMALIZE,  /* "normalize" */
};

enum cfg_supp_mode {
	CFG_SUPP_REFUSE = 0,
	CFG_SUPP_BOUNCE,
};

enum cfg_repl_mode {
	CFG_REPL_SYNC = 0, /* "sync" */
	CFG_REPL_ASYNC,    /* "async" */
	CFG_REPL_NONE,     /* "none" */
};

enum cfg_log_format {
	CFG_LOG_LOGFMT = 0, /* "logfmt" */
	CFG_LOG_JSON,       /* "json" */
};

struct cfg_node {
	char *id;           /* required, unique */
	char *endpoint;     /* required, ZeroMQ endpoint, e.g. tcp://127.0.0.1:7101 */
	char *peer;         /* id of another node, or NULL for none */
	char *data_dir;     /* required */
	char *metrics;      /* host:port or NULL */
	uint64_t map_size;  /* LMDB map size in bytes, default 16 GiB */
};

struct cfg_listen {
	char *address;      /* required, "host:port" or "[v6]:port" */
	enum cfg_tls tls;
	enum cfg_auth auth;
	bool proxy_protocol;
	bool auth_plaintext; /* AUTH without TLS, to loopback clients only */
};

/* router.dkim[].canonicalization: header/body (RFC 6376 3.5 c=) */
enum cfg_dkim_canon {
	CFG_DKIM_RELAXED_RELAXED = 0, /* "relaxed/relaxed", the default */
	CFG_DKIM_RELAXED_SIMPLE,      /* "relaxed/simple", also "relaxed" */
	CFG_DKIM_SIMPLE_RELAXED,      /* "simple/relaxed" */
	CFG_DKIM_SIMPLE_SIMPLE,       /* "simple/simple", also "simple" */
	CFG_DKIM_RELAXED,             /* "relaxed" = relaxed/simple */
	CFG_DKIM_SIMPLE,              /* "simple" = simple/simple */
};

struct cfg_dkim {
	char *domain;
	char *selector;
	char *key_file;
	enum cfg_dkim_canon canonicalization;
	char **headers;     /* names to sign; NULL = lib/dkim.h default */
	size_t n_headers;
	uint32_t expire;    /* seconds for x=, default 0 = no x= */
};

struct cfg_route {
	char *domain;       /* required */
	char *host;         /* required, host:port */
	enum cfg_tls tls;   /* default CFG_TLS_DEFAULT (DANE, no MTA-STS:
			     * a route is not the domain's MX) */
};

struct cfg_limit {
	char *domain;              /* "*" for the default */
	char *pool;                /* delivery.pools name, NULL = any pool */
	uint32_t max_connections;  /* default 20 */
	uint32_t max_msgs_per_conn; /* default 100 */
	double max_msgs_per_sec;   /* 0 = unlimited */
	enum cfg_tls tls;          /* default CFG_TLS_DEFAULT */
};

/* A tenant's delivery rate (docs/shaping.md), cluster-wide: with a
 * domain, to that domain's destination ("*": to each destination); without,
 * in total. The most specific entry applies. */
struct cfg_tenant_limit {
	char *tenant;              /* required: a tenant, or "*" for any */
	char *domain;              /* NULL = in total */
	double max_msgs_per_sec;   /* required, > 0 */
};

/* A delivery webhook (docs/webhooks.md): events POSTed in JSON batches. */
struct cfg_webhook {
	char *name;                /* unique; default "webhook1", "webhook2"... */
	char *url;                 /* required, http:// or https:// */
	char **events;             /* delivered, deferred, bounced, expired,
				    * suppressed, shaping; NULL = all */
	size_t n_events;
	uint32_t batch_size;       /* events per POST, default 100 */
	uint32_t max_delay_ms;     /* a batch waits at most this, default 1000 */
	char *secret;              /* HMAC-SHA256 key, NULL = unsigned */
	bool tls_verify;           /* default true */
	char *ca_file;             /* NULL = the system store */
	uint32_t max_backlog;      /* events kept per node, default 100000 */
	uint32_t timeout_ms;       /* per POST, default 10000 */
};

/* IP pools (docs/pools.md): named sets of source addresses. */
struct cfg_pool_addr {
	char *address;             /* required, an IPv4 or IPv6 literal */
	char *ehlo;                /* NULL = delivery.helo_name */
	/* IP warm-up: messages per UTC day per provider on day 1, 2, ...
	 * of the schedule, which starts on warmup_start ("YYYY-MM-DD");
	 * past its last day, no limit. Both or neither. */
	char *warmup_start;
	uint32_t *warmup;
	size_t n_warmup;
};

struct cfg_pool {
	char *name;                /* required, unique */
	struct cfg_pool_addr *addresses;
	size_t n_addresses;        /* at least one */
};

/* Which pool a message uses when its pool header does not choose one; a
 * rule with both keys needs both to match. */
/* A message's priority class as a rule names it (docs/shaping.md). */
enum cfg_priority {
	CFG_PRIORITY_UNSET = 0,    /* the rule does not say */
	CFG_PRIORITY_HIGH,         /* "high" */
	CFG_PRIORITY_NORMAL,       /* "normal" */
	CFG_PRIORITY_BULK,         /* "bulk" */
};

/* How the router classifies a message its header does not classify
 * (from a trusted client): per field, the first rule for the
 * authenticated user, then the first for the sender's domain, that sets
 * it. At least one of pool, priority and tenant. */
struct cfg_pool_rule {
	char *sender_domain;       /* NULL = any */
	char *user;                /* authenticated user, NULL = any */
	char *pool;                /* names a pool, NULL = the rule does not say */
	enum cfg_priority priority;
	char *tenant;              /* NULL = the rule does not say */
};

/* Adaptive shaping (docs/shaping.md): the rules file. The kinds follow
 * proto/cli_node.proto's ShapingKind, value for value. */
enum cfg_shaping_kind {
	CFG_SHAPING_SUSPEND = 0,     /* "suspend" */
	CFG_SHAPING_RATE,            /* "rate" */
	CFG_SHAPING_CONNECTIONS,     /* "connections" */
	CFG_SHAPING_SUSPEND_SOURCE,  /* "suspend_source" */
};

/* A mailbox provider: the MX hosts that share one shaping state. */
struct cfg_provider {
	char *name;                /* required, unique */
	char **mx;                 /* "*.suffix" or an exact host name */
	size_t n_mx;               /* at least one */
};

/* A rule on replies: every matcher set must match (at least one is). */
struct cfg_shaping_rule {
	char *name;                /* required, unique */
	char *provider;            /* only replies from its MX hosts */
	char *code;                /* "421", or a class: "4" */
	char *enhanced;            /* "4.7.28", exactly */
	char *text;                /* case-insensitive substring */
	enum cfg_shaping_kind action;
	double rate;               /* CFG_SHAPING_RATE: msgs/s, > 0 */
	uint32_t connections;      /* CFG_SHAPING_CONNECTIONS: >= 1 */
	uint32_t duration;         /* seconds, 1..604800 */
};

struct cfg_shaping {
	char *path;                /* the file, or "(built-in)" */
	struct cfg_provider *providers;
	size_t n_providers;
	struct cfg_shaping_rule *rules;
	size_t n_rules;
};

struct config {
	char *path;

	struct {
		char *name;          /* default "shoal" */
		uint32_t shards;     /* default 256, 1..65536 */
		char *curve_keys;    /* lib/curve.h key file, or NULL */
	} cluster;

	struct cfg_node *nodes;
	size_t n_nodes;

	struct {
		char *hostname;       /* default: gethostname() */
		struct cfg_listen *listen;
		size_t n_listen;      /* default: one listener on 127.0.0.1:2525 */
		struct cfg_listen *http_listen; /* the HTTP API (docs/http.md) */
		size_t n_http_listen; /* default none */
		char *tls_cert, *tls_key;
		char **relay_networks; /* default 127.0.0.0/8, ::1/128 */
		size_t n_relay_networks;
		char *users_file;
		uint64_t max_message_size; /* default 52428800 */
		uint32_t max_recipients;   /* default 1000 */
		char *metrics;
		struct cfg_dkim *dkim;
		size_t n_dkim;
		char *dkim_default_domain; /* signs mail from unkeyed domains */
		enum cfg_bare_lf bare_lf;  /* default reject */
		uint32_t max_sessions;     /* default 10000 */
		uint32_t max_errors;       /* default 20 per session */
		uint32_t max_sessions_per_ip; /* default 50, 0 = no limit */
		uint32_t max_msgs_per_minute_per_ip;   /* default 0 = none */
		uint32_t max_msgs_per_minute_per_user; /* default 0 = none */
		uint32_t idle_timeout;     /* seconds, default 300 (RFC 5321 4.5.3.2.7) */
		uint32_t session_timeout;  /* seconds, default 3600 */
		uint32_t node_timeout_ms;  /* default 10000 */
		uint32_t shutdown_timeout; /* seconds sessions get to finish on SIGTERM, default 30 */
		struct cfg_pool_rule *pool_rules;
		size_t n_pool_rules;
		char *pool_header;         /* default "X-Shoal-Pool", "" = none */
		char *priority_header;     /* default "X-Shoal-Priority", "" = none */
		char *tenant_header;       /* default "X-Shoal-Tenant", "" = none */
		char *postmaster;          /* RCPT TO:<Postmaster> goes here;
					    * default postmaster@<hostname> */
	} router;

	struct {
		char *helo_name;           /* default: router.hostname */
		char **dns_servers;
		size_t n_dns_servers;
		uint32_t smtp_port;        /* default 25 */
		uint32_t *retry_schedule;  /* seconds */
		size_t n_retry_schedule;   /* default 60,300,900,1800,3600,7200,14400 */
		uint32_t max_queue_lifetime; /* seconds, default 432000 */
		struct cfg_route *routes;
		size_t n_routes;
		struct cfg_limit *limits;
		size_t n_limits;           /* default: one "*" entry */
		struct cfg_pool *pools;
		size_t n_pools;            /* default none */
		char *default_pool;        /* NULL = no pool */
		uint32_t pool_cooldown;    /* seconds a failed source is skipped, default 60 */
		char *shaping_rules;       /* rules file, NULL = the built-in one */
		struct cfg_tenant_limit *tenant_limits;
		size_t n_tenant_limits;    /* default none */
		struct cfg_webhook *webhooks;
		size_t n_webhooks;         /* default none */
		char *tls_ca_file;         /* MTA-STS fetches and MX
					    * verification; NULL = the system
					    * store */
		uint32_t mta_sts_port;     /* HTTPS port of policy fetches,
					    * default 443 */
		struct {                   /* TLS-RPT (RFC 8460) reports */
			char *organization; /* default cluster.name */
			char *contact;     /* default postmaster@helo_name */
			char *from;        /* default postmaster@helo_name */
		} tls_report;
	} delivery;

	struct {
		enum cfg_repl_mode mode;   /* default sync */
		uint32_t heartbeat_ms;     /* default 500 */
		uint32_t failover_after_ms; /* default 3000 */
		uint32_t peer_timeout_ms;  /* default 2000 */
		bool require_peer;         /* default false */
	} replication;

	struct {
		char *level;               /* default "info" */
		enum cfg_log_format format; /* default logfmt */
		char *debug;               /* subsystems, default "" */
		char *file;                /* append here, reopened on SIGHUP; NULL = stderr */
	} log;

	struct {                           /* docs/suppression.md */
		bool enabled;              /* default true */
		enum cfg_supp_mode mode;   /* default refuse */
		uint32_t expire;           /* seconds, default 0 = never */
		uint32_t check_timeout_ms; /* router's RCPT check, default 500 */
	} suppression;
};

/* Read and check a config file. Returns 0 and sets *out (free it with
 * config_free()), or SHOAL_E_CONFIG / -errno with a message such as
 * "shoal.conf:12: router.max_recipients: expected an integer" written to
 * err (always NUL-terminated). Cross-checks: node ids unique, peers name
 * existing nodes, a peer's peer is the node itself. */
int config_load(const char *path, struct config **out, char *err,
		size_t errlen);

/* config_free(NULL) does nothing. */
void config_free(struct config *cfg);

/* Read and check a shaping rules file (path), or the rules built into the
 * binary (path NULL: deploy/shaping.rules at build time). Returns 0 and
 * sets *out (free it with config_shaping_free()), or SHOAL_E_CONFIG /
 * -errno with "file:line: rules[2].action: ..." written to err. */
int config_shaping_load(const char *path, struct cfg_shaping **out, char *err,
			size_t errlen);

/* config_shaping_free(NULL) does nothing. */
void config_shaping_free(struct cfg_shaping *s);

/* "YYYY-MM-DD" (a UTC day) as days since 1970-01-01: 0, or -EINVAL. */
int config_parse_day(const char *s, int64_t *days);

/* "suspend", "rate", "connections", "suspend_source"; "?" out of range. */
const char *config_shaping_kind_name(enum cfg_shaping_kind k);

/* The node with this id, or NULL. Valid while cfg lives. */
const struct cfg_node *config_find_node(const struct config *cfg,
					const char *id);

/* The pool named name, or NULL (also for NULL or ""). Valid while cfg
 * lives. */
const struct cfg_pool *config_find_pool(const struct config *cfg,
					const char *name);

#endif
