/* Adaptive shaping across the cluster: spreading, admin requests, logs
 * (see adapt_ops.h). */
#include "node/ops/adapt_ops.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/cluster/owner.h"
#include "node/delivery/deliver.h"
#include "node/ops/admin.h"
#include "node/queue/dlog.h"
#include "node/rpc/links.h"
#include "node/rpc/rpc.h"

/* Packed bytes of one MERGE request's actions: under what a node reads
 * (ADMIN_REQUEST_MAX), with room for the envelope. */
#define ADAPT_OPS_REQUEST_BYTES (ADMIN_REQUEST_MAX - 1024)

struct adapt_ops {
	struct adapt_ops_deps d;
	struct links *links;
	struct event *round;
	uint64_t next_id;
};

/* ---- the wire form ----------------------------------------------------- */

void
adapt_ops_to_wire(const struct adapt_action *x, Shoal__ShapingAction *out)
{
	shoal__shaping_action__init(out);
	out->key = (char *)x->key;
	out->kind = (Shoal__ShapingKind)x->kind;
	out->source = (char *)x->source;
	out->rate = x->rate;
	out->connections = x->connections;
	out->stamp_ms = x->stamp_ms;
	out->origin = (char *)x->origin;
	out->expires_ms = x->expires_ms;
	out->cleared = x->cleared;
	out->rule = (char *)x->rule;
	out->trigger = (char *)x->trigger;
}

/* Copy s into out (size bytes) when it fits whole. */
static bool
adapt_ops_copy(char *out, size_t size, const char *s)
{
	size_t n = strnlen(s, size);

	if (n == size)
		return false;
	memcpy(out, s, n + 1);
	return true;
}

bool
adapt_ops_from_wire(const Shoal__ShapingAction *w, struct adapt_action *out)
{
	memset(out, 0, sizeof(*out));
	if ((unsigned)w->kind > CFG_SHAPING_SUSPEND_SOURCE)
		return false;
	out->kind = (enum cfg_shaping_kind)w->kind;
	out->rate = w->rate;
	out->connections = w->connections;
	out->stamp_ms = w->stamp_ms;
	out->expires_ms = w->expires_ms;
	out->cleared = w->cleared;
	return adapt_ops_copy(out->key, sizeof(out->key), w->key) &&
	       adapt_ops_copy(out->source, sizeof(out->source), w->source) &&
	       adapt_ops_copy(out->origin, sizeof(out->origin), w->origin) &&
	       adapt_ops_copy(out->rule, sizeof(out->rule), w->rule) &&
	       adapt_ops_copy(out->trigger, sizeof(out->trigger), w->trigger) &&
	       adapt_action_valid(out);
}

/* ---- logs ---------------------------------------------------------------- */

static void
adapt_ops_log(struct adapt_ops *o, const char *event,
	      const struct adapt_action *x)
{
	char q[LOG_QUOTE_BUF], when[32];
	time_t t = (time_t)(x->expires_ms / 1000);
	struct tm tm;
	uint64_t now = clock_wall_ms();

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_warn("shaping event=%s key=%s action=%s source=%s rate=%g "
		 "connections=%u rule=%s origin=%s expires=%s seconds=%llu "
		 "trigger=%s",
		 event, x->key, config_shaping_kind_name(x->kind),
		 x->source[0] ? x->source : "-", x->rate, x->connections,
		 x->rule, x->origin, when,
		 (unsigned long long)(x->expires_ms > now ?
					      (x->expires_ms - now + 999) / 1000 :
					      0),
		 log_quote(q, sizeof(q), x->trigger, strlen(x->trigger)));
	dlog_shaping(o->d.dlog, event, x);
}

/* ---- spreading -------------------------------------------------------- */

/* One MERGE request with v[0..n) to every other node of the map. */
static void
adapt_ops_send(struct adapt_ops *o, Shoal__ShapingAction **v, size_t n)
{
	const Shoal__ShardMap *map = owner_map(o->d.owner);
	Shoal__AdminRequest rq = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__ShapingRequest sr = SHOAL__SHAPING_REQUEST__INIT;
	unsigned char *p;
	size_t len;

	if (map == NULL || n == 0)
		return;
	sr.op = SHOAL__SHAPING_OP__SHAPING_MERGE;
	sr.actions = v;
	sr.n_actions = n;
	rq.request_id = ++o->next_id;
	rq.body_case = SHOAL__ADMIN_REQUEST__BODY_SHAPING;
	rq.shaping = &sr;
	len = shoal__admin_request__get_packed_size(&rq);
	p = xmalloc(len ? len : 1);
	shoal__admin_request__pack(&rq, p);
	/* a node that is away learns it from a later round */
	links_send_admin_all(o->links, map, o->d.node_id, p, len);
	free(p);
}

/* Send copies x[0..n), in requests that fit what a node reads. */
static void
adapt_ops_spread(struct adapt_ops *o, const struct adapt_action *const *x,
		 size_t n)
{
	Shoal__ShapingAction *w = xcalloc(n + 1, sizeof(*w));
	Shoal__ShapingAction **v = xcalloc(n + 1, sizeof(*v));
	size_t start = 0, bytes = 0;

	for (size_t i = 0; i < n; i++) {
		size_t one;

		adapt_ops_to_wire(x[i], &w[i]);
		v[i] = &w[i];
		one = shoal__shaping_action__get_packed_size(&w[i]) + 8;
		if (i > start && (bytes + one > ADAPT_OPS_REQUEST_BYTES ||
				  i - start == ADAPT_OPS_BATCH)) {
			adapt_ops_send(o, v + start, i - start);
			start = i;
			bytes = 0;
		}
		bytes += one;
	}
	adapt_ops_send(o, v + start, n - start);
	free(v);
	free(w);
}

static void
adapt_ops_spread_one(const struct adapt_action *x, void *arg)
{
	adapt_ops_spread(arg, &x, 1);
}

/* Every ADAPT_OPS_ROUND_MS: the whole table to every other node. */
static void
adapt_ops_on_round(evutil_socket_t fd, short what, void *arg)
{
	struct adapt_ops *o = arg;
	const struct adapt *a = deliver_adapt(o->d.deliver);
	size_t n = adapt_count(a);
	const struct adapt_action **v;

	(void)fd;
	(void)what;
	if (n == 0)
		return;
	v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = adapt_at(a, i);
	adapt_ops_spread(o, v, n);
	free(v);
}

void
adapt_ops_fired(struct adapt_ops *o, const struct adapt_action *x)
{
	adapt_ops_log(o, "action", x);
	adapt_ops_spread(o, &x, 1);
}

/* ---- admin requests -------------------------------------------------- */

static void
adapt_ops_answer(struct adapt_ops *o, const struct rpc_ticket *t,
		 Shoal__ShapingReply *sr, const char *error)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;

	r.request_id = t->request_id;
	r.node_id = (char *)o->d.node_id;
	if (error) {
		log_warn("admin request_id=%llu event=bad_request "
			 "reason=\"%s\"",
			 (unsigned long long)t->request_id, error);
		r.status = SHOAL__STATUS__STATUS_BAD_REQUEST;
		r.message = (char *)error;
	} else {
		r.status = SHOAL__STATUS__STATUS_OK;
		r.body_case = SHOAL__ADMIN_REPLY__BODY_SHAPING;
		r.shaping = sr;
	}
	rpc_reply_admin(o->d.rpc, t, &r);
}

/* A key an operator may name: a provider, host or domain name. */
static bool
adapt_ops_key_ok(const char *k)
{
	size_t n = strnlen(k, ADAPT_KEY_MAX);

	if (n == 0 || n == ADAPT_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		      c == '_'))
			return false;
	}
	return true;
}

static void
adapt_ops_list(struct adapt_ops *o, const struct rpc_ticket *t)
{
	const struct adapt *a = deliver_adapt(o->d.deliver);
	size_t n = adapt_count(a);
	Shoal__ShapingReply sr = SHOAL__SHAPING_REPLY__INIT;
	Shoal__ShapingAction *w = xcalloc(n + 1, sizeof(*w));
	Shoal__ShapingAction **v = xcalloc(n + 1, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		adapt_ops_to_wire(adapt_at(a, i), &w[i]);
		v[i] = &w[i];
	}
	sr.actions = v;
	sr.n_actions = n;
	adapt_ops_answer(o, t, &sr, NULL);
	free(v);
	free(w);
}

static void
adapt_ops_add(struct adapt_ops *o, const struct rpc_ticket *t,
	      const Shoal__ShapingRequest *rq)
{
	Shoal__ShapingReply sr = SHOAL__SHAPING_REPLY__INIT;
	Shoal__ShapingAction w, *v[1] = { &w };
	uint32_t secs = rq->duration_s ? rq->duration_s : ADAPT_OPS_DEFAULT_S;
	struct adapt_action x;

	if (!adapt_ops_key_ok(rq->key)) {
		adapt_ops_answer(o, t, NULL, "bad destination: a provider, "
				 "host or domain name");
		return;
	}
	if (secs > ADAPT_DURATION_MAX) {
		adapt_ops_answer(o, t, NULL, "duration over 7 days");
		return;
	}
	if (!deliver_shaping_suspend(o->d.deliver, rq->key, secs, &x)) {
		adapt_ops_answer(o, t, NULL, "the shaping table is full "
				 "(1024 actions)");
		return;
	}
	adapt_ops_log(o, "manual", &x);
	adapt_ops_spread_one(&x, o);
	adapt_ops_to_wire(&x, &w);
	sr.changed = 1;
	sr.actions = v;
	sr.n_actions = 1;
	adapt_ops_answer(o, t, &sr, NULL);
}

static void
adapt_ops_on_cleared(const struct adapt_action *x, void *arg)
{
	struct adapt_ops *o = arg;

	adapt_ops_log(o, "resumed", x);
	adapt_ops_spread_one(x, o);
}

static void
adapt_ops_merge(struct adapt_ops *o, const struct rpc_ticket *t,
		const Shoal__ShapingRequest *rq)
{
	Shoal__ShapingReply sr = SHOAL__SHAPING_REPLY__INIT;
	size_t bad = 0;

	for (size_t i = 0; i < rq->n_actions; i++) {
		struct adapt_action x;

		if (!adapt_ops_from_wire(rq->actions[i], &x)) {
			bad++;
			continue;
		}
		const struct adapt_action *cur =
			adapt_lookup(deliver_adapt(o->d.deliver), &x);
		uint64_t now = clock_wall_ms();
		bool was_live = cur && !cur->cleared && cur->expires_ms > now;
		uint64_t was_expires = cur ? cur->expires_ms : 0;

		if (!deliver_shaping_merge(o->d.deliver, &x))
			continue;
		sr.changed++;
		/* a clear of what is already clear (every node clears its
		 * own copy of a resume) is no news for the log */
		if (x.cleared && was_live)
			adapt_ops_log(o, "resumed", &x);
		else if (!x.cleared && (!was_live || was_expires != x.expires_ms))
			adapt_ops_log(o, "learned", &x);
	}
	if (bad)
		log_warn("shaping event=bad_actions count=%zu of=%zu", bad,
			 rq->n_actions);
	adapt_ops_answer(o, t, &sr, NULL);
}

void
adapt_ops_admin(struct adapt_ops *o, const struct rpc_ticket *t,
		const Shoal__AdminRequest *rq)
{
	const Shoal__ShapingRequest *sq = rq->shaping;
	Shoal__ShapingReply sr = SHOAL__SHAPING_REPLY__INIT;

	switch (sq->op) {
	case SHOAL__SHAPING_OP__SHAPING_LIST:
		adapt_ops_list(o, t);
		return;
	case SHOAL__SHAPING_OP__SHAPING_ADD:
		adapt_ops_add(o, t, sq);
		return;
	case SHOAL__SHAPING_OP__SHAPING_RESUME:
		if (!adapt_ops_key_ok(sq->key)) {
			adapt_ops_answer(o, t, NULL, "bad destination: a "
					 "provider, host or domain name");
			return;
		}
		sr.changed = (uint32_t)deliver_shaping_clear(
			o->d.deliver, sq->key, adapt_ops_on_cleared, o);
		adapt_ops_answer(o, t, &sr, NULL);
		return;
	case SHOAL__SHAPING_OP__SHAPING_MERGE:
		adapt_ops_merge(o, t, sq);
		return;
	default:
		adapt_ops_answer(o, t, NULL, "unknown shaping request");
		return;
	}
}

void
adapt_ops_reload(struct adapt_ops *o)
{
	char err[1024];

	if (deliver_shaping_reload(o->d.deliver, err, sizeof(err)) != 0)
		log_error("shaping event=bad_rules note=\"the rules in use "
			  "stay\" error=\"%s\"",
			  err);
}

/* ---- setup ------------------------------------------------------------- */

struct adapt_ops *
adapt_ops_new(const struct adapt_ops_deps *deps)
{
	struct adapt_ops *o = xcalloc(1, sizeof(*o));
	struct timeval tv = { ADAPT_OPS_ROUND_MS / 1000,
			      (ADAPT_OPS_ROUND_MS % 1000) * 1000 };

	o->d = *deps;
	o->links = links_new(o->d.base, o->d.zctx, 1u << 20,
			     links_log_refusals, (void *)"shaping");
	o->round = event_new(o->d.base, -1, EV_PERSIST, adapt_ops_on_round, o);
	event_add(o->round, &tv);
	return o;
}

void
adapt_ops_free(struct adapt_ops *o)
{
	if (o == NULL)
		return;
	if (o->round)
		event_free(o->round);
	links_free(o->links);
	free(o);
}
