/* Adaptive shaping (docs/shaping.md): what mailbox providers said, turned
 * into actions against their destinations. A rules file (lib/config.h
 * struct cfg_shaping) names providers by their MX hosts and lists rules on
 * remote replies; a reply that matches a rule becomes an action (suspend
 * the provider, cap its rate or connections, or stop using one source
 * address for it) that lasts the rule's duration and then expires by
 * itself. Operators add and clear actions by hand (shoalctl shaping).
 *
 * The table holds every action this node knows: its own and those other
 * nodes spread (node/ops/shaping.c carries them). One action is known by
 * (key, kind, source); of two copies the newer stamp wins, ties going to
 * the larger origin, and a cleared copy (a resume) wins the same way. So
 * every node ends up with the same table whatever order copies arrive in.
 *
 * An action's key is a provider name (rules file), an MX host name or a
 * recipient domain, kept in lower case (names are matched without case). It applies to a destination whose provider or one of
 * whose MX hosts it names, and, for a suspension, to a job of that domain.
 *
 * Pure: no I/O and no clock of its own (callers pass unix ms). Handles
 * untrusted input: reply text comes from remote servers and is scanned
 * only within CLASSIFY_SCAN_MAX; copies from other nodes are bounded and
 * checked (adapt_action_valid) before they are taken. */
#ifndef SHOAL_NODE_ADAPT_H
#define SHOAL_NODE_ADAPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "node/delivery/smtpc.h"

#define ADAPT_ACTIONS_MAX 1024   /* the table; more are refused (logged) */
#define ADAPT_KEY_MAX 256        /* a host name fits */
#define ADAPT_NAME_MAX 65        /* rule and node names: 64 + NUL */
#define ADAPT_SOURCE_MAX 64      /* an IPv6 literal fits */
#define ADAPT_TRIGGER_MAX 256    /* of the reply that fired a rule */
#define ADAPT_DURATION_MAX 604800 /* seconds: a rule's and by hand */
#define ADAPT_SKEW_MS 600000     /* clocks of two nodes may differ this much */
#define ADAPT_RATE_MIN 0.001     /* msgs/s: a slower cap is a suspension */

struct adapt;

struct adapt_action {
	char key[ADAPT_KEY_MAX];
	enum cfg_shaping_kind kind;
	char source[ADAPT_SOURCE_MAX];    /* CFG_SHAPING_SUSPEND_SOURCE */
	double rate;                      /* CFG_SHAPING_RATE, msgs/s */
	uint32_t connections;             /* CFG_SHAPING_CONNECTIONS */
	uint64_t stamp_ms, expires_ms;    /* unix ms */
	char origin[ADAPT_NAME_MAX];      /* node id */
	bool cleared;                     /* resumed by hand */
	char rule[ADAPT_NAME_MAX];        /* or "manual" */
	char trigger[ADAPT_TRIGGER_MAX];  /* "421 4.7.28 ..." */
};

/* What applies to one destination now (adapt_check). */
struct adapt_verdict {
	uint64_t until_ms;        /* suspended until then; 0 = not */
	const struct adapt_action *suspend; /* the longest suspension */
	double rate;              /* cluster-wide cap, 0 = none */
	uint32_t connections;     /* cluster-wide cap, 0 = none */
};

/* A table for node node_id (copied) with rules (owned from now on; may
 * be NULL: no rules, actions by hand and from other nodes still apply). */
struct adapt *adapt_new(const char *node_id, struct cfg_shaping *rules);

/* adapt_free(NULL) does nothing. */
void adapt_free(struct adapt *a);

/* Use these rules from now on (owned; the old ones are freed). Actions
 * already taken stay until they expire. */
void adapt_set_rules(struct adapt *a, struct cfg_shaping *rules);

/* The rules in use (NULL: none). */
const struct cfg_shaping *adapt_rules(const struct adapt *a);

/* The provider of a destination with these MX host names: the first
 * provider of the rules file with a pattern that matches one of them, or
 * NULL. Valid until the rules change. */
const char *adapt_provider(const struct adapt *a, const char *const *mx,
			   size_t n_mx);

/* A reply that ended an attempt (or the setup of a connection) from host
 * mx of a destination of provider (NULL: none), sent from source ("" when
 * unknown; has_pool false when the mail has no IP pool, then a
 * suspend_source rule suspends the whole destination). The first rule
 * that matches decides. Returns true and fills *out when that made a new
 * action or lengthened one by more than half its duration (news to
 * spread); false when no rule matched or the table already says as much.
 * 2xx replies never match. */
bool adapt_observe(struct adapt *a, const char *provider, const char *mx,
		   const char *source, bool has_pool,
		   const struct smtpc_reply *r, uint64_t now_ms,
		   struct adapt_action *out);

/* Whether a copy from outside (another node, an operator) is well formed:
 * NUL-terminated strings; a key of letters, digits, '.', '_' and '-'; an
 * origin and rule of printable characters without quotes or spaces; a
 * source of an address's characters; a known kind, with the source,
 * rate (>= ADAPT_RATE_MIN) or connections it needs. */
bool adapt_action_valid(const struct adapt_action *x);

/* Take a copy (adapt_action_valid, stamped no later than now_ms +
 * ADAPT_SKEW_MS, expiring no later than ADAPT_DURATION_MAX after that):
 * kept when it is newer than what the table holds for its identity.
 * When the table is full, the copy that expires first makes room
 * (cleared copies before live ones). Returns true when the table
 * changed. */
bool adapt_merge(struct adapt *a, const struct adapt_action *x,
		 uint64_t now_ms);

/* Suspend key by hand for seconds from now_ms (origin this node, rule
 * "manual"), stamped after any copy of it in the table so that it wins
 * (a full table makes room as for adapt_merge()). Returns true and sets
 * *out to the action. */
bool adapt_suspend(struct adapt *a, const char *key, uint32_t seconds,
		   uint64_t now_ms, struct adapt_action *out);

/* The table's copy of x's action (same key, kind and source), or NULL. */
const struct adapt_action *adapt_lookup(const struct adapt *a,
					const struct adapt_action *x);

/* Clear every live action on key, by hand (stamped now, origin this
 * node): each cleared copy is passed to fn (for spreading). Returns how
 * many were cleared. */
size_t adapt_clear(struct adapt *a, const char *key, uint64_t now_ms,
		   void (*fn)(const struct adapt_action *x, void *arg),
		   void *arg);

/* What applies now to a destination of provider (or NULL) with these MX
 * host names. */
void adapt_check(const struct adapt *a, const char *provider,
		 const char *const *mx, size_t n_mx, uint64_t now_ms,
		 struct adapt_verdict *v);

/* A live suspension of recipient domain domain, or NULL. */
const struct adapt_action *adapt_domain_suspended(const struct adapt *a,
						  const char *domain,
						  uint64_t now_ms);

/* Whether source may not send to a destination of provider (or NULL)
 * with these MX host names now; *until_ms set when it may not. */
bool adapt_source_suspended(const struct adapt *a, const char *provider,
			    const char *const *mx, size_t n_mx,
			    const char *source, uint64_t now_ms,
			    uint64_t *until_ms);

/* Drop every copy past its expiry at now_ms; returns how many. */
size_t adapt_expire(struct adapt *a, uint64_t now_ms);

/* The earliest expiry in the table, 0 when it is empty. */
uint64_t adapt_next_expiry(const struct adapt *a);

/* Grows with every change of the table (for caches of adapt_check). */
uint64_t adapt_version(const struct adapt *a);

/* Grows with every change of the rules (for caches of adapt_provider). */
uint64_t adapt_rules_gen(const struct adapt *a);

/* Every copy in the table (cleared ones too), in no order. */
size_t adapt_count(const struct adapt *a);
const struct adapt_action *adapt_at(const struct adapt *a, size_t i);

/* Actions of kind this node's rules made (adapt_observe true). */
uint64_t adapt_fired(const struct adapt *a, enum cfg_shaping_kind kind);

/* Live (not cleared, not expired) actions of kind at now_ms. */
size_t adapt_live(const struct adapt *a, enum cfg_shaping_kind kind,
		  uint64_t now_ms);

#endif
