/* Adaptive shaping: the rules on replies and the table of actions (see
 * adapt.h). The table is an array searched from end to end: it holds a
 * few actions in practice and ADAPT_ACTIONS_MAX at worst, and
 * destinations cache adapt_check()'s answer by adapt_version(). */
#include "node/delivery/adapt.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/classify.h"

struct adapt {
	char node_id[ADAPT_NAME_MAX];
	struct cfg_shaping *rules;
	struct adapt_action *v;
	size_t n;
	uint64_t version;
	uint64_t rules_gen;
	uint64_t evicted;          /* copies dropped to make room */
	uint64_t fired[CFG_SHAPING_SUSPEND_SOURCE + 1]; /* by our rules */
};

struct adapt *
adapt_new(const char *node_id, struct cfg_shaping *rules)
{
	struct adapt *a = xcalloc(1, sizeof(*a));

	snprintf(a->node_id, sizeof(a->node_id), "%s", node_id);
	a->rules = rules;
	a->v = xcalloc(ADAPT_ACTIONS_MAX, sizeof(*a->v));
	a->version = 1; /* 0 is no version: "not checked yet" */
	return a;
}

void
adapt_free(struct adapt *a)
{
	if (a == NULL)
		return;
	config_shaping_free(a->rules);
	free(a->v);
	free(a);
}

void
adapt_set_rules(struct adapt *a, struct cfg_shaping *rules)
{
	config_shaping_free(a->rules);
	a->rules = rules;
	a->version++;
	a->rules_gen++;
}

const struct cfg_shaping *
adapt_rules(const struct adapt *a)
{
	return a->rules;
}

/* ---- matching ---------------------------------------------------------- */

/* host matches pattern: "*.suffix" any name below suffix, else exactly;
 * case-insensitive, a trailing dot on host ignored. */
static bool
adapt_host_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host), sl;

	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (strncmp(pattern, "*.", 2) != 0)
		return strlen(pattern) == hl &&
		       strncasecmp(pattern, host, hl) == 0;
	sl = strlen(pattern + 1); /* ".suffix" */
	return hl > sl && strncasecmp(host + hl - sl, pattern + 1, sl) == 0;
}

/* Whether host names the same host as name (case, trailing dot). */
static bool
adapt_same_host(const char *name, const char *host)
{
	return name[0] != '*' && adapt_host_match(name, host);
}

const char *
adapt_provider(const struct adapt *a, const char *const *mx, size_t n_mx)
{
	const struct cfg_shaping *r = a->rules;

	for (size_t p = 0; r && p < r->n_providers; p++)
		for (size_t k = 0; k < r->providers[p].n_mx; k++)
			for (size_t i = 0; i < n_mx; i++)
				if (adapt_host_match(r->providers[p].mx[k],
						     mx[i]))
					return r->providers[p].name;
	return NULL;
}

/* Case-insensitive needle in the first CLASSIFY_SCAN_MAX bytes of text. */
static bool
adapt_text_has(const char *text, const char *needle)
{
	size_t n = strnlen(text, CLASSIFY_SCAN_MAX), nl = strlen(needle);

	for (size_t i = 0; i + nl <= n; i++)
		if (strncasecmp(text + i, needle, nl) == 0)
			return true;
	return false;
}

static bool
adapt_rule_match(const struct cfg_shaping_rule *rule, const char *provider,
		 const struct smtpc_reply *r)
{
	char code[4];

	if (rule->provider &&
	    (provider == NULL || strcmp(rule->provider, provider) != 0))
		return false;
	snprintf(code, sizeof(code), "%03d", r->code);
	if (rule->code && strncmp(rule->code, code, strlen(rule->code)) != 0)
		return false;
	if (rule->enhanced && strcmp(rule->enhanced, r->enhanced) != 0)
		return false;
	if (rule->text && !adapt_text_has(r->text, rule->text))
		return false;
	return true;
}

/* ---- the table ----------------------------------------------------------- */

static bool
adapt_same_identity(const struct adapt_action *x, const struct adapt_action *y)
{
	return x->kind == y->kind && strcasecmp(x->key, y->key) == 0 &&
	       strcmp(x->source, y->source) == 0;
}

static struct adapt_action *
adapt_find(struct adapt *a, const struct adapt_action *x)
{
	for (size_t i = 0; i < a->n; i++)
		if (adapt_same_identity(&a->v[i], x))
			return &a->v[i];
	return NULL;
}

/* Whether x is to replace y (same identity). */
static bool
adapt_newer(const struct adapt_action *x, const struct adapt_action *y)
{
	if (x->stamp_ms != y->stamp_ms)
		return x->stamp_ms > y->stamp_ms;
	return strcmp(x->origin, y->origin) > 0;
}

static bool
adapt_is_live(const struct adapt_action *x, uint64_t now_ms)
{
	return !x->cleared && x->expires_ms > now_ms;
}

/* Room for one more copy in a full table: the copy that expires first
 * goes, cleared ones before live ones (a resume is worth less than a
 * suspension). */
static void
adapt_evict(struct adapt *a, const struct adapt_action *x)
{
	size_t victim = 0;

	for (size_t i = 1; i < a->n; i++) {
		const struct adapt_action *v = &a->v[victim], *c = &a->v[i];

		if (c->cleared != v->cleared ? c->cleared :
					       c->expires_ms < v->expires_ms)
			victim = i;
	}
	if (a->evicted++ % 1000 == 0)
		log_warn("shaping event=table_full actions=%d evicted=%llu "
			 "key=%.64s for=%.64s",
			 ADAPT_ACTIONS_MAX, (unsigned long long)a->evicted,
			 a->v[victim].key, x->key);
	a->v[victim] = a->v[--a->n];
}

/* Put x in (its key in lower case, as every key in the table): over its
 * older copy, or in a free slot. */
static bool
adapt_put(struct adapt *a, const struct adapt_action *in)
{
	struct adapt_action lc = *in, *cur;
	const struct adapt_action *x = &lc;

	for (char *p = lc.key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	cur = adapt_find(a, x);
	if (cur != NULL) {
		if (!adapt_newer(x, cur))
			return false;
		*cur = *x;
	} else {
		if (a->n == ADAPT_ACTIONS_MAX)
			adapt_evict(a, x);
		a->v[a->n++] = *x;
	}
	a->version++;
	return true;
}

static bool adapt_str_ok(const char *s, size_t size, bool need, char cls);

bool
adapt_observe(struct adapt *a, const char *provider, const char *mx,
	      const char *source, bool has_pool, const struct smtpc_reply *r,
	      uint64_t now_ms, struct adapt_action *out)
{
	const struct cfg_shaping *rs = a->rules;
	const struct cfg_shaping_rule *rule = NULL;
	struct adapt_action x = { 0 };
	struct adapt_action *cur;

	if (rs == NULL || (r->code >= 200 && r->code < 300))
		return false;
	for (size_t i = 0; i < rs->n_rules && rule == NULL; i++)
		if (adapt_rule_match(&rs->rules[i], provider, r))
			rule = &rs->rules[i];
	if (rule == NULL)
		return false;
	snprintf(x.key, sizeof(x.key), "%s", provider ? provider : mx);
	/* a host name no other node would take (adapt_action_valid) */
	if (!adapt_str_ok(x.key, sizeof(x.key), true, 'k'))
		return false;
	x.kind = rule->action;
	if (x.kind == CFG_SHAPING_SUSPEND_SOURCE) {
		if (has_pool && source[0])
			snprintf(x.source, sizeof(x.source), "%s", source);
		else
			x.kind = CFG_SHAPING_SUSPEND; /* the one source */
	}
	x.rate = rule->rate;
	x.connections = rule->connections;
	x.stamp_ms = now_ms;
	x.expires_ms = now_ms + (uint64_t)rule->duration * 1000;
	snprintf(x.origin, sizeof(x.origin), "%s", a->node_id);
	snprintf(x.rule, sizeof(x.rule), "%s", rule->name);
	if (r->enhanced[0])
		snprintf(x.trigger, sizeof(x.trigger), "%d %.15s %.200s",
			 r->code, r->enhanced, r->text);
	else
		snprintf(x.trigger, sizeof(x.trigger), "%d %.200s", r->code,
			 r->text);
	/* the table says as much already: a burst of replies is one action,
	 * spread once, and lengthened only when half of it has passed */
	cur = adapt_find(a, &x);
	if (cur && adapt_is_live(cur, now_ms) &&
	    cur->expires_ms >= now_ms + (uint64_t)rule->duration * 500 &&
	    cur->rate == x.rate && cur->connections == x.connections)
		return false;
	if (!adapt_put(a, &x))
		return false;
	a->fired[x.kind]++;
	*out = *adapt_find(a, &x);
	return true;
}

bool
adapt_suspend(struct adapt *a, const char *key, uint32_t seconds,
	      uint64_t now_ms, struct adapt_action *out)
{
	struct adapt_action x = { 0 };
	const struct adapt_action *cur;

	snprintf(x.key, sizeof(x.key), "%s", key);
	x.kind = CFG_SHAPING_SUSPEND;
	x.stamp_ms = now_ms;
	/* newer than any copy of it here (a resume in the same ms, or one
	 * stamped by a node whose clock runs ahead), or it would lose */
	cur = adapt_find(a, &x);
	if (cur && cur->stamp_ms >= now_ms)
		x.stamp_ms = cur->stamp_ms < UINT64_MAX ? cur->stamp_ms + 1 :
							  UINT64_MAX;
	x.expires_ms = now_ms + (uint64_t)seconds * 1000;
	snprintf(x.origin, sizeof(x.origin), "%s", a->node_id);
	snprintf(x.rule, sizeof(x.rule), "manual");
	snprintf(x.trigger, sizeof(x.trigger), "shoalctl shaping suspend");
	if (!adapt_put(a, &x))
		return false;
	*out = *adapt_find(a, &x);
	return true;
}

const struct adapt_action *
adapt_lookup(const struct adapt *a, const struct adapt_action *x)
{
	return adapt_find((struct adapt *)a, x);
}

/* s, NUL-terminated within size, non-empty when need, every character
 * in the class: 'k' a key (letters, digits, '.', '_', '-'), 'n' a name
 * (printable, no space, quote or backslash), 'a' an address (hex digits,
 * '.', ':'), 't' any text (the logs escape it). */
static bool
adapt_str_ok(const char *s, size_t size, bool need, char cls)
{
	size_t n = strnlen(s, size);

	if (n == size || (need && n == 0))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool ok;

		switch (cls) {
		case 'k':
			ok = isalnum(c) || c == '.' || c == '_' || c == '-';
			break;
		case 'n':
			ok = c > 0x20 && c < 0x7f && c != '"' && c != '\\';
			break;
		case 'a':
			ok = isxdigit(c) || c == '.' || c == ':';
			break;
		default:
			ok = true;
			break;
		}
		if (!ok)
			return false;
	}
	return true;
}

bool
adapt_action_valid(const struct adapt_action *x)
{
	if (!adapt_str_ok(x->key, sizeof(x->key), true, 'k') ||
	    !adapt_str_ok(x->source, sizeof(x->source), false, 'a') ||
	    !adapt_str_ok(x->origin, sizeof(x->origin), true, 'n') ||
	    !adapt_str_ok(x->rule, sizeof(x->rule), true, 'n') ||
	    !adapt_str_ok(x->trigger, sizeof(x->trigger), false, 't'))
		return false;
	switch (x->kind) {
	case CFG_SHAPING_SUSPEND:
		return true;
	case CFG_SHAPING_RATE:
		return isfinite(x->rate) && x->rate >= ADAPT_RATE_MIN;
	case CFG_SHAPING_CONNECTIONS:
		return x->connections > 0;
	case CFG_SHAPING_SUSPEND_SOURCE:
		return x->source[0] != '\0';
	}
	return false;
}

bool
adapt_merge(struct adapt *a, const struct adapt_action *x, uint64_t now_ms)
{
	uint64_t latest = now_ms + ADAPT_SKEW_MS;

	if (!adapt_action_valid(x) || x->expires_ms <= now_ms ||
	    x->stamp_ms > latest ||
	    x->expires_ms > latest + (uint64_t)ADAPT_DURATION_MAX * 1000)
		return false;
	return adapt_put(a, x);
}

size_t
adapt_clear(struct adapt *a, const char *key, uint64_t now_ms,
	    void (*fn)(const struct adapt_action *x, void *arg), void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++) {
		struct adapt_action *x = &a->v[i];

		if (!adapt_is_live(x, now_ms) || strcasecmp(x->key, key) != 0)
			continue;
		x->cleared = true;
		/* newer than every copy of it elsewhere, however skewed */
		x->stamp_ms = now_ms > x->stamp_ms ? now_ms :
			      x->stamp_ms < UINT64_MAX ? x->stamp_ms + 1 :
							 UINT64_MAX;
		snprintf(x->origin, sizeof(x->origin), "%s", a->node_id);
		a->version++;
		n++;
		if (fn)
			fn(x, arg);
	}
	return n;
}

/* Whether action key applies to a destination of provider with mx. */
static bool
adapt_key_applies(const char *key, const char *provider,
		  const char *const *mx, size_t n_mx)
{
	if (provider && strcasecmp(key, provider) == 0)
		return true;
	for (size_t i = 0; i < n_mx; i++)
		if (adapt_same_host(key, mx[i]))
			return true;
	return false;
}

void
adapt_check(const struct adapt *a, const char *provider,
	    const char *const *mx, size_t n_mx, uint64_t now_ms,
	    struct adapt_verdict *v)
{
	memset(v, 0, sizeof(*v));
	for (size_t i = 0; i < a->n; i++) {
		const struct adapt_action *x = &a->v[i];

		if (!adapt_is_live(x, now_ms) ||
		    x->kind == CFG_SHAPING_SUSPEND_SOURCE ||
		    !adapt_key_applies(x->key, provider, mx, n_mx))
			continue;
		switch (x->kind) {
		case CFG_SHAPING_SUSPEND:
			if (x->expires_ms > v->until_ms) {
				v->until_ms = x->expires_ms;
				v->suspend = x;
			}
			break;
		case CFG_SHAPING_RATE:
			if (v->rate == 0 || x->rate < v->rate)
				v->rate = x->rate;
			break;
		case CFG_SHAPING_CONNECTIONS:
			if (v->connections == 0 ||
			    x->connections < v->connections)
				v->connections = x->connections;
			break;
		default:
			break;
		}
	}
}

const struct adapt_action *
adapt_domain_suspended(const struct adapt *a, const char *domain,
		       uint64_t now_ms)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct adapt_action *x = &a->v[i];

		if (x->kind == CFG_SHAPING_SUSPEND && adapt_is_live(x, now_ms) &&
		    adapt_same_host(x->key, domain))
			return x;
	}
	return NULL;
}

bool
adapt_source_suspended(const struct adapt *a, const char *provider,
		       const char *const *mx, size_t n_mx, const char *source,
		       uint64_t now_ms, uint64_t *until_ms)
{
	bool found = false;

	for (size_t i = 0; i < a->n; i++) {
		const struct adapt_action *x = &a->v[i];

		if (x->kind != CFG_SHAPING_SUSPEND_SOURCE ||
		    !adapt_is_live(x, now_ms) || strcmp(x->source, source) != 0 ||
		    !adapt_key_applies(x->key, provider, mx, n_mx))
			continue;
		if (!found || x->expires_ms > *until_ms)
			*until_ms = x->expires_ms;
		found = true;
	}
	return found;
}

size_t
adapt_expire(struct adapt *a, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n;) {
		if (a->v[i].expires_ms <= now_ms) {
			a->v[i] = a->v[--a->n];
			n++;
			continue;
		}
		i++;
	}
	if (n)
		a->version++;
	return n;
}

uint64_t
adapt_next_expiry(const struct adapt *a)
{
	uint64_t first = 0;

	for (size_t i = 0; i < a->n; i++)
		if (first == 0 || a->v[i].expires_ms < first)
			first = a->v[i].expires_ms;
	return first;
}

uint64_t
adapt_version(const struct adapt *a)
{
	return a->version;
}

uint64_t
adapt_rules_gen(const struct adapt *a)
{
	return a->rules_gen;
}

size_t
adapt_count(const struct adapt *a)
{
	return a->n;
}

const struct adapt_action *
adapt_at(const struct adapt *a, size_t i)
{
	return i < a->n ? &a->v[i] : NULL;
}

size_t
adapt_live(const struct adapt *a, enum cfg_shaping_kind kind, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		n += a->v[i].kind == kind && adapt_is_live(&a->v[i], now_ms);
	return n;
}

uint64_t
adapt_fired(const struct adapt *a, enum cfg_shaping_kind kind)
{
	return (unsigned)kind <= CFG_SHAPING_SUSPEND_SOURCE ? a->fired[kind] : 0;
}
