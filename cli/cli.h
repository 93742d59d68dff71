/* What shoalctl's command groups share: the parsed global options, the
 * loaded config, the connections to nodes, error printing and the names
 * of protocol enums. main.c parses; status.c, queue.c, shard.c, node.c,
 * suppress.c, shaping.c and the others run commands and return an exit
 * status. */
#ifndef SHOAL_CLI_CLI_H
#define SHOAL_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/envelope.h"
#include "proto/cli_node.pb-c.h"

/* Exit statuses (DESIGN.md "Command lines"). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_CONFIG_DEFAULT "/etc/shoal/shoal.conf"
#define CLI_TIMEOUT_MAX_MS 3600000   /* --timeout bound: one hour */
#define CLI_DOMAIN_MAX 255           /* RFC 1035 2.3.4 */
#define CLI_TENANT_MAX ENVELOPE_TENANT_MAX

/* Command options, given anywhere on the line; each command says which
 * it takes (CLI_OPT_* bits) and main.c refuses the others. */
enum cli_opt {
	CLI_OPT_NODE = 1 << 0,   /* --node ID */
	CLI_OPT_DOMAIN = 1 << 1, /* --domain D */
	CLI_OPT_STATE = 1 << 2,  /* --state S */
	CLI_OPT_TO = 1 << 3,     /* --to NODE */
	CLI_OPT_TYPE = 1 << 4,   /* --type rsa|ed25519 (dkim keygen) */
	CLI_OPT_BITS = 1 << 5,   /* --bits N (dkim keygen) */
	CLI_OPT_OUT = 1 << 6,    /* --out FILE (dkim keygen) */
	CLI_OPT_FORCE = 1 << 7,  /* --force (dkim keygen) */
	CLI_OPT_LIMIT = 1 << 8,  /* --limit N */
	CLI_OPT_REASON = 1 << 9, /* --reason TEXT */
	CLI_OPT_FOR = 1 << 10,   /* --for DURATION (shaping suspend) */
	CLI_OPT_TENANT = 1 << 11, /* --tenant T */
	CLI_OPT_SEND = 1 << 12,  /* --send (tls report) */
};

struct cli {
	const char *config_path;
	bool is_json;
	int timeout_ms;
	bool has_timeout;        /* --timeout given */
	const char *opt_node, *opt_domain, *opt_state, *opt_to;
	const char *opt_type, *opt_bits, *opt_out;  /* dkim keygen */
	const char *opt_limit, *opt_reason;
	const char *opt_for;     /* shaping suspend */
	const char *opt_tenant;  /* queue list, flush and actions */
	unsigned opts_given;     /* CLI_OPT_* */
	struct config *cfg;      /* set by cli_load() */
	void *zctx;              /* set by cli_load() */
};

/* One node being asked. */
struct cli_peer {
	const struct cfg_node *node;
	struct client *cl;       /* NULL when err says why */
	int err;                 /* 0, or why the node cannot be asked */
};

/* Load the config and start ZeroMQ. Returns 0, or prints why on stderr
 * and returns -1. */
int cli_load(struct cli *c);

/* Release what cli_load() made. */
void cli_unload(struct cli *c);

/* Print "shoalctl: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "shoalctl: MESSAGE" and a pointer to --help on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* "shoalctl: COMMAND is not available in this version"; CLI_EXIT_FAIL. */
int cli_not_available(const char *command);

/* Open one peer per node of the config, or only the node named only (when
 * not NULL). Returns 0 and sets *out (free with cli_peers_free()) and *n,
 * or prints "no node ..." and returns -1. A node whose endpoint cannot be
 * used gets a peer with err set, not a failure. */
int cli_peers_open(struct cli *c, const char *only, struct cli_peer **out,
		   size_t *n);
void cli_peers_free(struct cli_peer *p, size_t n);

/* The same, for every node, for a request that may keep a node busy for
 * long (a walk of its whole queue): each node is first asked a status
 * within --timeout, and the peers returned wait wait_ms for an answer
 * (--timeout instead, when it was given), except those of nodes that
 * did not answer the status, which keep its error. So a node that is
 * down costs one short timeout. Same returns. */
int cli_peers_open_slow(struct cli *c, int wait_ms, struct cli_peer **out,
			size_t *n);

/* Ask peer p: returns 0 with *out set, or an error (also kept in p->err
 * once the link is unusable). A reply whose status is not OK is returned
 * as a reply; callers check it. */
int cli_peer_call(struct cli_peer *p, Shoal__AdminRequest *req,
		  Shoal__AdminReply **out);

/* Ask every usable peer at once, reqs[i] to p[i] (one request may serve
 * all: it is packed as it is sent), waiting one timeout in all. Sets
 * replies[i] (caller frees with shoal__admin_reply__free_unpacked()) or
 * leaves it NULL with p[i].err saying why. */
void cli_peers_call_all(struct cli_peer *p, size_t n,
			Shoal__AdminRequest *const *reqs,
			Shoal__AdminReply **replies);

/* Why a node did not answer: "timeout", "malformed reply", ZeroMQ's word
 * for a bad endpoint. Static. */
const char *cli_peer_strerror(int err);

/* Whether r, node p's reply (NULL: none came), is OK and carries the
 * body it should (body_case: protobuf-c sets the body's message whenever
 * its case is set); says why not on stderr, the node's message cleaned
 * and cut to CLI_MESSAGE_MAX. */
#define CLI_MESSAGE_MAX 512
bool cli_reply_ok(const struct cli_peer *p, const Shoal__AdminReply *r,
		  int body_case);

/* The same request to every peer: replies[i] is node i's reply if it is
 * one cli_reply_ok() takes, else NULL (why said on stderr). Returns how
 * many answered. */
size_t cli_ask_all(struct cli_peer *peers, size_t n, Shoal__AdminRequest *req,
		   Shoal__AdminReply **replies, int body_case);

/* Enum names as shoalctl shows them ("queued", "8bitmime", "hdrs"). Out of
 * range values from a newer node read "unknown". Static. */
const char *cli_rcpt_state_name(int state);
const char *cli_body_name(int body);
const char *cli_priority_name(int priority); /* "high", "normal", "bulk" */
const char *cli_ret_name(int ret);    /* "" for RET_DEFAULT */
const char *cli_status_name(int status);
const char *cli_shaping_kind_name(int kind);   /* "suspend", "rate", ... */

/* Unix seconds now. */
uint64_t cli_now(void);

#endif
