/* shoalctl shaping ...: see cli/shaping.h. Every node holds the whole
 * table (they spread it among themselves), but not always the same copy
 * of it yet: list asks every node and merges the copies the way the nodes
 * do (node/delivery/adapt.c), suspend goes to the first node that takes
 * it (it spreads it), resume to every node (each clears its own copies
 * and spreads the clears).
 *
 * Handles untrusted input: arguments are checked as the node checks them
 * before they are sent; replies are checked (actions out of the node's
 * bounds are dropped and counted), and every string in them is escaped
 * before it is shown: a trigger is a remote server's reply text. */
#include "cli/shaping.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/text.h"
#include "lib/clock.h"
#include "lib/json.h"
#include "lib/xmalloc.h"


/* ---- pure parts ------------------------------------------------------ */

bool
shaping_cmd_key_ok(const char *key)
{
	size_t n = strnlen(key, SHAPING_CMD_KEY_MAX + 1);

	if (n == 0 || n > SHAPING_CMD_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = key[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
		      ch == '_'))
			return false;
	}
	return true;
}

int
shaping_cmd_parse_duration(const char *s, uint32_t *out_s)
{
	unsigned long v, unit_s = 1;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		unit_s = 60;
		break;
	case 'h':
		unit_s = 3600;
		break;
	case 'd':
		unit_s = 86400;
		break;
	default:
		return -EINVAL;
	}
	if (*end != '\0' && end[1] != '\0')
		return -EINVAL;
	if (v == 0 || v > SHAPING_CMD_DURATION_MAX / unit_s)
		return -EINVAL;
	*out_s = (uint32_t)(v * unit_s);
	return 0;
}

/* s has at most max bytes, and some when need is set. */
static bool
shaping_str_ok(const char *s, size_t max, bool need)
{
	size_t n;

	if (s == NULL)
		return !need;
	n = strnlen(s, max + 1);
	return n <= max && (!need || n > 0);
}

bool
shaping_cmd_action_ok(const Shoal__ShapingAction *a)
{
	return (unsigned)a->kind <=
		       SHOAL__SHAPING_KIND__SHAPING_SUSPEND_SOURCE &&
	       shaping_str_ok(a->key, SHAPING_CMD_KEY_MAX, true) &&
	       shaping_str_ok(a->source, SHAPING_CMD_SOURCE_MAX, false) &&
	       shaping_str_ok(a->origin, SHAPING_CMD_NAME_MAX, true) &&
	       shaping_str_ok(a->rule, SHAPING_CMD_NAME_MAX, true) &&
	       shaping_str_ok(a->trigger, SHAPING_CMD_TRIGGER_MAX, false);
}

static bool
shaping_same_identity(const Shoal__ShapingAction *a,
		      const Shoal__ShapingAction *b)
{
	return a->kind == b->kind && strcmp(a->key, b->key) == 0 &&
	       strcmp(a->source, b->source) == 0;
}

/* By identity (key, kind, source); of one identity the copy that wins
 * (newer stamp, then larger origin: node/delivery/adapt.c) first. */
static int
shaping_cmp(const void *x, const void *y)
{
	const Shoal__ShapingAction *a = *(const Shoal__ShapingAction *const *)x;
	const Shoal__ShapingAction *b = *(const Shoal__ShapingAction *const *)y;
	int r;

	if ((r = strcmp(a->key, b->key)) != 0)
		return r;
	if (a->kind != b->kind)
		return (int)a->kind < (int)b->kind ? -1 : 1;
	if ((r = strcmp(a->source, b->source)) != 0)
		return r;
	if (a->stamp_ms != b->stamp_ms)
		return a->stamp_ms > b->stamp_ms ? -1 : 1;
	return strcmp(b->origin, a->origin);
}

size_t
shaping_cmd_merge(const Shoal__ShapingAction **v, size_t n, uint64_t now_ms)
{
	const Shoal__ShapingAction *prev = NULL;
	size_t k = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), shaping_cmp);
	for (size_t i = 0; i < n; i++) {
		const Shoal__ShapingAction *a = v[i];

		if (prev != NULL && shaping_same_identity(a, prev))
			continue; /* an older copy of the winner */
		prev = a;
		/* a cleared winner hides the live copies it replaced */
		if (!a->cleared && a->expires_ms > now_ms)
			v[k++] = a;
	}
	return k;
}

char *
shaping_cmd_span(char out[SHAPING_CMD_SPAN_BUF], uint64_t s)
{
	static const struct {
		uint64_t secs;
		char unit;
	} u[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' } };
	size_t i = 0;
	uint64_t next;

	while (i < 3 && s < u[i].secs)
		i++;
	next = i < 3 ? s % u[i].secs / u[i + 1].secs : 0;
	if (next == 0)
		snprintf(out, SHAPING_CMD_SPAN_BUF, "%llu%c",
			 (unsigned long long)(s / u[i].secs), u[i].unit);
	else
		snprintf(out, SHAPING_CMD_SPAN_BUF, "%llu%c %llu%c",
			 (unsigned long long)(s / u[i].secs), u[i].unit,
			 (unsigned long long)next, u[i + 1].unit);
	return out;
}

/* ---- output ---------------------------------------------------------- */

/* "2026-12-07T01:00:00Z" for unix ms. */
static char *
shaping_iso(char out[24], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 24, "-");
	return out;
}

/* Whole seconds from now_ms until ms, rounded up (0 when past). */
static uint64_t
shaping_left_s(uint64_t ms, uint64_t now_ms)
{
	return ms > now_ms ? (ms - now_ms + 999) / 1000 : 0;
}

/* One row of the table, escaped. */
struct shaping_cells {
	char key[TEXT_CLEAN_BUF(SHAPING_CMD_KEY_MAX)];
	char value[TEXT_CLEAN_BUF(SHAPING_CMD_SOURCE_MAX)];
	char rule[TEXT_CLEAN_BUF(SHAPING_CMD_NAME_MAX)];
	char origin[TEXT_CLEAN_BUF(SHAPING_CMD_NAME_MAX)];
	char expires[64];
	char trigger[TEXT_CLEAN_BUF(SHAPING_CMD_TRIGGER_MAX)];
};

static void
shaping_cells_fill(struct shaping_cells *cl, const Shoal__ShapingAction *a,
		   uint64_t now_ms)
{
	char when[24], left[SHAPING_CMD_SPAN_BUF];

	text_clean(cl->key, sizeof(cl->key), a->key, strlen(a->key));
	switch (a->kind) {
	case SHOAL__SHAPING_KIND__SHAPING_SUSPEND_SOURCE:
		text_clean(cl->value, sizeof(cl->value), a->source,
			   strlen(a->source));
		break;
	case SHOAL__SHAPING_KIND__SHAPING_RATE:
		snprintf(cl->value, sizeof(cl->value), "%g/s", a->rate);
		break;
	case SHOAL__SHAPING_KIND__SHAPING_CONNECTIONS:
		snprintf(cl->value, sizeof(cl->value), "%u", a->connections);
		break;
	default:
		snprintf(cl->value, sizeof(cl->value), "-");
		break;
	}
	text_clean(cl->rule, sizeof(cl->rule), a->rule, strlen(a->rule));
	text_clean(cl->origin, sizeof(cl->origin), a->origin,
		   strlen(a->origin));
	snprintf(cl->expires, sizeof(cl->expires), "%s (in %s)",
		 shaping_iso(when, a->expires_ms),
		 shaping_cmd_span(left, shaping_left_s(a->expires_ms, now_ms)));
	text_clean(cl->trigger, sizeof(cl->trigger), a->trigger,
		   strlen(a->trigger));
}

static int
shaping_width(int w, const char *s)
{
	int n = (int)strlen(s);

	return n > w ? n : w;
}

static void
shaping_print_table(const Shoal__ShapingAction *const *v, size_t n,
		    uint64_t now_ms)
{
	struct shaping_cells cl;
	int wk = 3, wa = 6, wv = 5, wr = 4, wo = 6, we = 7;

	if (n == 0) {
		printf("no active shaping actions\n");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		shaping_cells_fill(&cl, v[i], now_ms);
		wk = shaping_width(wk, cl.key);
		wa = shaping_width(wa, cli_shaping_kind_name(v[i]->kind));
		wv = shaping_width(wv, cl.value);
		wr = shaping_width(wr, cl.rule);
		wo = shaping_width(wo, cl.origin);
		we = shaping_width(we, cl.expires);
	}
	printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wk, "KEY", wa,
	       "ACTION", wv, "VALUE", wr, "RULE", wo, "ORIGIN", we, "EXPIRES",
	       "TRIGGER");
	for (size_t i = 0; i < n; i++) {
		shaping_cells_fill(&cl, v[i], now_ms);
		printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wk, cl.key,
		       wa, cli_shaping_kind_name(v[i]->kind), wv, cl.value, wr,
		       cl.rule, wo, cl.origin, we, cl.expires,
		       cl.trigger[0] ? cl.trigger : "-");
	}
}

static int
shaping_print_json(const Shoal__ShapingAction *const *v, size_t n,
		   uint64_t now_ms, size_t answered, size_t asked)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j);
	json_key(&j, "actions");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++) {
		const Shoal__ShapingAction *a = v[i];

		json_object_begin(&j);
		json_kv_str(&j, "key", a->key);
		json_kv_str(&j, "action", cli_shaping_kind_name(a->kind));
		json_kv_str(&j, "source", a->source);
		json_kv_double(&j, "rate", a->rate);
		json_kv_u64(&j, "connections", a->connections);
		json_kv_str(&j, "rule", a->rule);
		json_kv_str(&j, "origin", a->origin);
		json_kv_u64(&j, "stamp_ms", a->stamp_ms);
		json_kv_u64(&j, "expires_ms", a->expires_ms);
		json_kv_u64(&j, "expires_in_s",
			    shaping_left_s(a->expires_ms, now_ms));
		json_kv_str(&j, "trigger", a->trigger);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_kv_u64(&j, "nodes_answered", answered);
	json_kv_u64(&j, "nodes", asked);
	json_object_end(&j);
	return json_end(&j);
}

/* ---- requests -------------------------------------------------------- */

static void
shaping_request(Shoal__AdminRequest *req, Shoal__ShapingRequest *sr,
		Shoal__ShapingOp op, const char *key, uint32_t duration_s)
{
	sr->op = op;
	sr->key = (char *)key;
	sr->duration_s = duration_s;
	req->body_case = SHOAL__ADMIN_REQUEST__BODY_SHAPING;
	req->shaping = sr;
}

static void
shaping_replies_free(Shoal__AdminReply **replies, size_t n)
{
	for (size_t i = 0; replies != NULL && i < n; i++)
		if (replies[i] != NULL)
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
}

/* ---- commands -------------------------------------------------------- */

static int
shaping_list(struct cli *c)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__ShapingRequest sr = SHOAL__SHAPING_REQUEST__INIT;
	Shoal__AdminReply **replies = NULL;
	const Shoal__ShapingAction **v = NULL;
	struct cli_peer *peers = NULL;
	size_t n = 0, answered, total = 0, k = 0;
	uint64_t now_ms;
	int rc = CLI_EXIT_FAIL;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	shaping_request(&req, &sr, SHOAL__SHAPING_OP__SHAPING_LIST, "", 0);
	replies = xcalloc(n ? n : 1, sizeof(*replies));
	answered = cli_ask_all(peers, n, &req, replies,
			       SHOAL__ADMIN_REPLY__BODY_SHAPING);
	if (answered == 0) {
		cli_error("no node answered");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (replies[i] != NULL)
			total += replies[i]->shaping->n_actions;
	v = xcalloc(total ? total : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		const Shoal__ShapingReply *s =
			replies[i] ? replies[i]->shaping : NULL;
		size_t bad = 0;

		for (size_t x = 0; s != NULL && x < s->n_actions; x++) {
			if (shaping_cmd_action_ok(s->actions[x]))
				v[k++] = s->actions[x];
			else
				bad++;
		}
		if (bad)
			cli_error("node %s: %zu malformed actions left out",
				  peers[i].node->id, bad);
	}
	now_ms = clock_wall_ms();
	k = shaping_cmd_merge(v, k, now_ms);
	if (c->is_json) {
		if (shaping_print_json(v, k, now_ms, answered, n) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else {
		shaping_print_table(v, k, now_ms);
	}
	rc = CLI_EXIT_OK;
done:
	free(v);
	shaping_replies_free(replies, n);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

/* To the nodes in turn until one takes it: it spreads it to the others. */
static int
shaping_suspend(struct cli *c, const char *key, uint32_t duration_s)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__ShapingRequest sr = SHOAL__SHAPING_REQUEST__INIT;
	struct cli_peer *peers = NULL;
	const char *node = NULL;
	char span[SHAPING_CMD_SPAN_BUF], until[24];
	uint32_t secs = duration_s ? duration_s : SHAPING_CMD_DEFAULT_S;
	uint64_t expires_ms = 0;
	size_t n = 0;
	int rc = CLI_EXIT_FAIL;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	shaping_request(&req, &sr, SHOAL__SHAPING_OP__SHAPING_ADD, key,
			duration_s);
	for (size_t i = 0; i < n && node == NULL; i++) {
		Shoal__AdminReply *r = NULL;
		bool is_refused;

		if (cli_peer_call(&peers[i], &req, &r) != 0)
			r = NULL;
		if (!cli_reply_ok(&peers[i], r,
				  SHOAL__ADMIN_REPLY__BODY_SHAPING)) {
			/* checked here as the node checks it: a node that
			 * still refuses it will not be alone */
			is_refused =
				r != NULL &&
				r->status == SHOAL__STATUS__STATUS_BAD_REQUEST;
			if (r != NULL)
				shoal__admin_reply__free_unpacked(r, NULL);
			if (is_refused)
				goto done;
			continue;
		}
		if (r->shaping->changed == 0) {
			cli_error("node %s did not take it (its table is full "
				  "or holds a newer copy)",
				  peers[i].node->id);
		} else {
			node = peers[i].node->id;
			/* the node's own clock set the expiry */
			if (r->shaping->n_actions == 1)
				expires_ms = r->shaping->actions[0]->expires_ms;
		}
		shoal__admin_reply__free_unpacked(r, NULL);
	}
	if (node == NULL) {
		cli_error("no node took the suspension of %s", key);
		goto done;
	}
	if (c->is_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_str(&j, "key", key);
		json_kv_u64(&j, "duration_s", secs);
		json_kv_u64(&j, "expires_ms", expires_ms);
		json_kv_str(&j, "node", node);
		json_object_end(&j);
		if (json_end(&j) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else {
		/* a node of an older version did not say: ours is close */
		if (expires_ms == 0)
			expires_ms = clock_wall_ms() + (uint64_t)secs * 1000;
		printf("shaping: %s suspended for %s (until %s), node %s\n",
		       key, shaping_cmd_span(span, secs),
		       shaping_iso(until, expires_ms), node);
	}
	rc = CLI_EXIT_OK;
done:
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

/* To every node: each clears its own copies of the actions on key (and
 * spreads the clears). They hold the same actions, so the count shown is
 * the most any node cleared, not the sum, which counts each action once
 * per node. */
static int
shaping_resume(struct cli *c, const char *key)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__ShapingRequest sr = SHOAL__SHAPING_REQUEST__INIT;
	Shoal__AdminReply **replies = NULL;
	struct cli_peer *peers = NULL;
	size_t n = 0, answered;
	uint32_t cleared = 0;
	int rc = CLI_EXIT_FAIL;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	shaping_request(&req, &sr, SHOAL__SHAPING_OP__SHAPING_RESUME, key, 0);
	replies = xcalloc(n ? n : 1, sizeof(*replies));
	answered = cli_ask_all(peers, n, &req, replies,
			       SHOAL__ADMIN_REPLY__BODY_SHAPING);
	if (answered == 0) {
		cli_error("no node answered");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (replies[i] != NULL &&
		    replies[i]->shaping->changed > cleared)
			cleared = replies[i]->shaping->changed;
	if (c->is_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_str(&j, "key", key);
		json_kv_u64(&j, "cleared", cleared);
		json_kv_u64(&j, "nodes_answered", answered);
		json_kv_u64(&j, "nodes", n);
		json_object_end(&j);
		if (json_end(&j) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else if (cleared == 0) {
		printf("shaping: no active action on %s\n", key);
	} else {
		printf("shaping: %s resumed (%u action%s cleared)\n", key,
		       (unsigned)cleared, cleared == 1 ? "" : "s");
	}
	rc = CLI_EXIT_OK;
done:
	shaping_replies_free(replies, n);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

int
shaping_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	uint32_t duration_s = 0;

	if (strcmp(verb, "list") == 0) {
		if (argc != 0)
			return cli_usage_error("shaping list takes no "
					       "arguments");
		return shaping_list(c);
	}
	if (argc != 1)
		return cli_usage_error("shaping %s takes one destination",
				       verb);
	if (!shaping_cmd_key_ok(argv[0]))
		return cli_usage_error("shaping %s: the destination is a "
				       "provider, MX host or domain name: "
				       "letters, digits, '.', '-', '_', 1 to "
				       "%d of them",
				       verb, SHAPING_CMD_KEY_MAX);
	if (strcmp(verb, "resume") == 0)
		return shaping_resume(c, argv[0]);
	if (c->opt_for != NULL &&
	    shaping_cmd_parse_duration(c->opt_for, &duration_s) != 0)
		return cli_usage_error("--for needs a duration from 1s to 7d: "
				       "a number with s, m, h or d (90, 15m, "
				       "2h, 1d)");
	return shaping_suspend(c, argv[0], duration_s);
}
