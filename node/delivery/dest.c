/* Destinations and their connection pools (see deliver_impl.h).
 *
 * A destination is the sorted set of MX host names a domain resolves to
 * (or "route:HOST:PORT" for a delivery.routes relay), per IP pool. Each
 * holds a FIFO of jobs, its shaping state (shaping.c) and its connections.
 * A connection attempt walks the destination's addresses in MX order,
 * skipping those marked down in the last DELIVER_DOWN_S seconds; what a
 * failure leads to (the same address in plain text, a down mark, the next
 * address, or every waiting job deferred when none is left and no other
 * connection lives) is outcome.c's decision. A pool's destination sends
 * from the pool's source addresses (egress.c), trying the next source when
 * one is at fault. Connections carry several messages in turn and close
 * when idle for DELIVER_IDLE_MS. Adaptive shaping (adapt.c) sees the
 * replies that end attempts, and its actions decide here, before each
 * job starts, whether the job is held back (deferred without an attempt
 * until a suspension ends) and what rate and connections are allowed.
 *
 * Leaves the job flow (lookups, results, hooks) to deliver.c.
 * Handles untrusted input indirectly: DNS answers and SMTP replies have
 * been bounded by dns.c and smtpc.c. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/guard.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/adapt.h"
#include "node/delivery/deliver_impl.h"
#include "node/delivery/egress.h"
#include "node/delivery/job.h"
#include "node/delivery/outcome.h"
#include "node/delivery/shaping.h"
#include "node/delivery/smtpc.h"

#define DELIVER_IDLE_MS 5000      /* keep an idle connection this long */
#define DELIVER_DOWN_S 60         /* skip an address that just failed */
/* jobs of one tenant at its limit waiting here in memory (the rest is
 * held back, dest_tenant_overflow()) */
#define DEST_TENANT_QUEUE 100
/* failed recipient replies of one transaction that adaptive shaping's
 * rules look at (the first ones; a provider says the same to all) */
#define DELIVER_OBSERVE_MAX 4

enum dconn_state {
	DCONN_CONNECTING,
	DCONN_IDLE,
	DCONN_BUSY,
};

/* One message being sent: smtpc borrows these arrays until done. */
struct dsend {
	struct job *job;
	const char **rcpts;
	unsigned *notify;
	const char **orcpt;
};

/* One connection of a destination. */
struct dconn {
	struct dest *dest;
	struct smtpc *c;
	enum dconn_state state;
	size_t addr_idx;          /* which address this attempt uses */
	size_t tried;             /* addresses tried by this connection */
	bool tls_off;             /* retrying this address without TLS */
	struct dest_tls *tls;     /* this address's TLS policy, or NULL */
	uint32_t counted[4];      /* domains counted for TLS-RPT (hashes) */
	ssize_t src;              /* pool source address, -1 = none yet */
	size_t src_tries;         /* sources tried for this MX address */
	uint32_t msgs;
	struct dsend send;
	struct event *idle;
	struct dconn *next;
};

static void dest_pump(struct dest *ds);

static uint64_t
dest_now(void)
{
	return (uint64_t)time(NULL);
}

static uint64_t
dest_now_us(void)
{
	return clock_mono_us(); /* for shaping: never steps */
}

struct dest *
dest_find(struct deliver *d, const char *key)
{
	for (struct dest *ds = d->dests; ds; ds = ds->next)
		if (strcmp(ds->key, key) == 0)
			return ds;
	return NULL;
}

static void
dest_on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dest_pump(arg);
}

/* The name of the destination's IP pool, or NULL. */
static const char *
dest_pool_name(const struct dest *ds)
{
	return ds->pool >= 0 ? egress_pool(ds->d->egress, (size_t)ds->pool)->name :
			       NULL;
}

struct dest *
dest_new(struct deliver *d, const char *key, const char *domain, ssize_t pool,
	 const enum cfg_tls *route_tls)
{
	struct dest *ds = xcalloc(1, sizeof(*ds));

	ds->d = d;
	ds->pool = pool;
	snprintf(ds->key, sizeof(ds->key), "%s", key);
	snprintf(ds->domain, sizeof(ds->domain), "%s", domain);
	shaping_for_pool(d->cfg, dest_pool_name(ds), domain, d->share,
			 &ds->shape);
	ds->tls_cfg = route_tls ? *route_tls : ds->shape.tls;
	ds->is_route = route_tls != NULL;
	ds->wake = evtimer_new(d->base, dest_on_wake, ds);
	ds->next = d->dests;
	d->dests = ds;
	log_debug(LOG_SUB_SMTP, "dest=%s event=created max_conns=%u", key,
		  ds->shape.max_connections);
	return ds;
}

static void
dest_unlink_free(struct dest *ds)
{
	struct deliver *d = ds->d;
	struct dest **pp;

	for (pp = &d->dests; *pp; pp = &(*pp)->next) {
		if (*pp == ds) {
			*pp = ds->next;
			break;
		}
	}
	event_free(ds->wake);
	if (ds->sts != NULL)
		d->hooks.sts_release(d->hooks.arg, ds->sts);
	free(ds);
}

/* Free a destination with nothing left to do: at once, or when the
 * dest_pump() running on it (lib/guard.h) returns. The caller must not
 * touch ds afterwards. */
static void
dest_maybe_free(struct dest *ds)
{
	if (ds->q.n || ds->n_conns)
		return;
	if (guard_free(&ds->guard))
		dest_unlink_free(ds);
}

/* A tenant at its limit here keeps at most DEST_TENANT_QUEUE jobs
 * waiting in memory: the rest is held back (deferred without an attempt)
 * until about when its turn comes, so that its backlog does not fill
 * the scheduler's in-flight table and hold up other tenants' mail. */
static bool
dest_tenant_overflow(struct dest *ds, struct job *j)
{
	struct deliver *d = ds->d;
	struct outcome_verdict v;
	char text[DEST_HOLD_TEXT_MAX];
	size_t waiting = dqueue_tenant_len(&ds->q, j);
	double rate;
	uint64_t now = (uint64_t)time(NULL), until;

	if (waiting < DEST_TENANT_QUEUE ||
	    tenant_wait(d->cfg, d->tenants, ds->key, ds->domain, j, d->share,
			dest_now_us(), &rate) == 0 ||
	    rate <= 0)
		return false;
	until = now + (uint64_t)((double)waiting / rate) + 1;
	snprintf(text, sizeof(text),
		 "held: tenant %.64s is at its limit for this destination "
		 "(%.3g msgs/s here)",
		 j->msg->sm->envelope->tenant, rate);
	outcome_of_suspension(now, until, &v);
	d->held++;
	deliver_finish_all(d, j, &v, 0, text, "", NULL);
	return true;
}

void
dest_enqueue(struct dest *ds, struct job *j)
{
	struct shaping s;

	/* a limit naming this domain applies to its whole destination */
	shaping_for_pool(ds->d->cfg, dest_pool_name(ds), j->domain,
			 ds->d->share, &s);
	if (s.is_specific && !ds->shape.is_specific) {
		s.bucket = ds->shape.bucket;
		ds->shape = s;
		if (!ds->is_route)
			ds->tls_cfg = s.tls;
		ds->av_version = 0; /* the caps again */
	}
	if (dest_tenant_overflow(ds, j)) {
		dest_maybe_free(ds);
		return;
	}
	dqueue_push(&ds->q, j);
	dest_pump(ds);
}

/* The next job in service order, taken out; NULL when none waits. */
static struct job *
dest_pop(struct dest *ds)
{
	struct job *j = dqueue_next(&ds->q, NULL, NULL);

	if (j != NULL)
		dqueue_remove(&ds->q, j);
	return j;
}

/* ---- connections ----------------------------------------------------- */

static void dconn_open(struct dconn *dc);
static void dconn_on_tls(void *arg);

static void
dconn_free(struct dconn *dc)
{
	struct dest *ds = dc->dest;
	struct dconn **pp;

	for (pp = &ds->conns; *pp; pp = &(*pp)->next) {
		if (*pp == dc) {
			*pp = dc->next;
			break;
		}
	}
	if (dc->state == DCONN_CONNECTING)
		ds->n_connecting--;
	ds->n_conns--;
	ds->d->n_conns--;
	smtpc_close(dc->c);
	dest_tls_free(dc->tls);
	if (dc->idle)
		event_free(dc->idle);
	free(dc->send.rcpts);
	free(dc->send.notify);
	free(dc->send.orcpt);
	free(dc);
}

static void
dconn_on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct dconn *dc = arg;
	struct dest *ds = dc->dest;

	(void)fd;
	(void)what;
	log_debug(LOG_SUB_SMTP, "dest=%s event=idle_close msgs=%u", ds->key,
		  dc->msgs);
	dconn_free(dc);
	dest_maybe_free(ds);
}

/* Ready for a job; closed if none comes within DELIVER_IDLE_MS. */
static void
dconn_set_idle(struct dconn *dc)
{
	struct timeval tv = { DELIVER_IDLE_MS / 1000,
			      (DELIVER_IDLE_MS % 1000) * 1000 };

	dc->state = DCONN_IDLE;
	evtimer_add(dc->idle, &tv);
}

/* Adaptive shaping sees the replies that refused: the message's, and
 * the first DELIVER_OBSERVE_MAX refused recipients'. */
static void
dconn_observe(struct dconn *dc, const struct smtpc_result *res,
	      const char *mx, const char *source)
{
	struct dest *ds = dc->dest;
	size_t seen = 0;

	for (size_t k = 0; k < res->n_rcpts && seen < DELIVER_OBSERVE_MAX;
	     k++) {
		if (res->rcpt[k].code >= 200 && res->rcpt[k].code < 300)
			continue;
		deliver_observe(ds->d, ds, mx, source, &res->rcpt[k]);
		seen++;
	}
	deliver_observe(ds->d, ds, mx, source, &res->msg_reply);
}

/* TLS-RPT: a session counts once for each domain it carries mail for
 * (the first few; a connection rarely serves more). */
static void
dconn_count_domain(struct dconn *dc, const char *domain,
		   const struct smtpc_info *info)
{
	uint32_t h = 2166136261u;
	size_t i;

	if (dc->tls == NULL || dc->tls->rpt_type == NULL || dc->tls_off)
		return;
	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h |= 1; /* never 0, the empty slot */
	for (i = 0; i < 4 && dc->counted[i] != 0; i++)
		if (dc->counted[i] == h)
			return;
	if (i < 4)
		dc->counted[i] = h;
	dest_tls_report(dc->tls, domain, info,
			dest_tls_result(dc->tls, info, true));
}

static void
dconn_on_sent(struct smtpc *c, const struct smtpc_result *res, void *arg)
{
	struct dconn *dc = arg;
	struct dest *ds = dc->dest;
	struct job *j = dc->send.job;
	const struct smtpc_info *info = smtpc_info(c);
	const char *mx = ds->addrs[dc->addr_idx].mx;

	dc->send.job = NULL;
	if (res->withdrawn) {
		/* fenced or handed over while the commands were out: not an
		 * attempt, the message stays due (node/cluster/owner.h) */
		deliver_abandon(ds->d, j);
		dconn_free(dc);
		dest_pump(ds);
		return;
	}
	dc->msgs++;
	dconn_count_domain(dc, j->domain, info);
	snprintf(j->tls_policy, sizeof(j->tls_policy), "%s",
		 dc->tls ? dc->tls->policy : "none");
	for (size_t k = 0; k < j->n; k++) {
		struct job_result *r = &j->res[k];
		const struct smtpc_reply *rep =
			k < res->n_rcpts ? &res->rcpt[k] : &res->msg_reply;
		struct outcome_verdict v;

		outcome_of_rcpt(rep, res->failed_phase, &v);
		memset(r, 0, sizeof(*r));
		r->reply = *rep;
		r->outcome = v.outcome;
		r->category = v.category;
		snprintf(r->status, sizeof(r->status), "%s", v.status);
		snprintf(r->mx, sizeof(r->mx), "%s", mx);
		snprintf(r->ip, sizeof(r->ip), "%s", info->peer_ip);
		snprintf(r->source, sizeof(r->source), "%s", info->source_ip);
		if (info->tls_active)
			snprintf(r->tls, sizeof(r->tls), "%s %s",
				 info->tls_version, info->tls_cipher);
		r->relayed_no_dsn = outcome_is_relayed(r->outcome, info->dsn);
		deliver_log_result(j, k, mx, info->peer_ip, info->source_ip,
				   r->outcome, r->category, rep->code, r->status,
				   rep->text);
	}
	dconn_observe(dc, res, mx, info->source_ip);
	ds->d->hooks.job_done(ds->d->hooks.arg, j);
	if (res->conn_lost || !smtpc_is_usable(c) ||
	    dc->msgs >= ds->shape.max_msgs_per_conn ||
	    ds->n_conns > shaping_max_conns(&ds->shape)) {
		dconn_free(dc);
	} else {
		dconn_set_idle(dc);
	}
	dest_pump(ds);
}

/* smtpc's last check before the message goes out (its 354): the lease
 * may have lapsed while the commands were on the wire. */
static bool
dconn_may_commit(void *arg)
{
	struct dconn *dc = arg;

	return deliver_may_start(dc->dest->d, dc->send.job);
}

static void
dconn_send(struct dconn *dc, struct job *j)
{
	const Shoal__Envelope *env = j->msg->sm->envelope;
	struct smtpc_msg m = { 0 };

	evtimer_del(dc->idle);
	dc->state = DCONN_BUSY;
	dc->send.job = j;
	if (dc->src >= 0)
		dest_count_sent(dc->dest, dc->src);
	dc->send.rcpts = xrealloc(dc->send.rcpts, j->n * sizeof(char *));
	dc->send.notify = xrealloc(dc->send.notify, j->n * sizeof(unsigned));
	dc->send.orcpt = xrealloc(dc->send.orcpt, j->n * sizeof(char *));
	for (size_t k = 0; k < j->n; k++) {
		const Shoal__Recipient *r = env->rcpts[j->rcpt[k]];

		dc->send.rcpts[k] = r->address;
		dc->send.notify[k] = r->notify;
		dc->send.orcpt[k] = r->orcpt;
	}
	m.mail_from = env->mail_from;
	m.n_rcpts = j->n;
	m.rcpts = dc->send.rcpts;
	m.notify = dc->send.notify;
	m.orcpt = dc->send.orcpt;
	m.ret = env->ret;
	m.envid = env->envid;
	m.smtputf8 = env->smtputf8;
	m.body_8bit = env->body != SHOAL__BODY_TYPE__BODY_7BIT;
	m.body = j->msg->body;
	m.body_len = j->msg->body_len;
	m.qid = j->msg->qid;
	m.may_commit = dconn_may_commit;
	m.commit_arg = dc;
	if (smtpc_send(dc->c, &m, dconn_on_sent, dc) != 0) {
		struct dest *ds = dc->dest;

		/* the connection went bad while idle: the job goes back to
		 * the head of the line and another connection takes it */
		dc->send.job = NULL;
		dconn_free(dc);
		dqueue_push_front(&ds->q, j);
	}
}

/* The next address to try for a connection: the first not marked down,
 * in MX order, starting after those this connection already tried. */
static bool
dconn_next_addr(struct dconn *dc)
{
	struct dest *ds = dc->dest;
	uint64_t now = dest_now();

	for (size_t i = dc->tried; i < ds->n_addrs; i++) {
		if (ds->addrs[i].down_until <= now || i + 1 == ds->n_addrs) {
			dest_tls_free(dc->tls);
			dc->tls = NULL;
			dc->addr_idx = i;
			dc->tried = i + 1;
			dc->src = -1;
			dc->src_tries = 0;
			return true;
		}
	}
	return false;
}

/* Every address failed: defer what waits, unless a connection lives. */
static void
dest_fail(struct dest *ds, enum smtpc_phase phase,
	  const struct smtpc_reply *reply, const char *mx, const char *source)
{
	char q[LOG_QUOTE_BUF];
	struct outcome_verdict v;
	struct job *j;

	if (ds->n_conns > ds->n_connecting)
		return; /* a live connection will take them */
	log_info("dest=%s event=all_hosts_failed queued=%zu error=%s",
		 ds->key, ds->q.n,
		 log_quote(q, sizeof(q), reply->text, strlen(reply->text)));
	outcome_of_setup_failure(phase, reply, &v);
	while ((j = dest_pop(ds)) != NULL) {
		snprintf(j->tls_policy, sizeof(j->tls_policy), "%s",
			 ds->last_policy ? ds->last_policy : "");
		deliver_finish_all(ds->d, j, &v, reply->code, reply->text, mx,
				   source);
	}
}

/* This connection could not be set up at its address: the next MX
 * address, or, when none is left, the destination's jobs deferred. */
static void
dconn_fail(struct dconn *dc, enum smtpc_phase phase,
	   const struct smtpc_reply *reply, const char *source)
{
	struct dest *ds = dc->dest;
	struct dest_addr *a = &ds->addrs[dc->addr_idx];
	struct smtpc_reply last = *reply;
	char mx[DNS_NAME_MAX + 1], src[64];

	dc->tls_off = false;
	ds->last_policy = dc->tls ? dc->tls->policy : NULL;
	if (outcome_try_next_host(phase, reply) && dconn_next_addr(dc)) {
		dconn_open(dc);
		return;
	}
	snprintf(mx, sizeof(mx), "%s", a->mx);
	snprintf(src, sizeof(src), "%s", source);
	dconn_free(dc);
	dest_fail(ds, phase, &last, mx, src);
	dest_maybe_free(ds); /* inside dest_pump(): when it returns */
}

static void
dconn_on_ready(struct smtpc *c, bool ok, enum smtpc_phase phase,
	       const struct smtpc_reply *reply, void *arg)
{
	struct dconn *dc = arg;
	struct dest *ds = dc->dest;
	struct dest_addr *a = &ds->addrs[dc->addr_idx];
	char q[LOG_QUOTE_BUF];
	const struct smtpc_info *info = smtpc_info(c);
	bool is_source_fault = info->source_failed && ds->pool >= 0 &&
			       dc->src >= 0;
	char source[64];

	if (ok) {
		/* the job it was opened for may have gone to another
		 * connection meanwhile: then it idles out like any other.
		 * TLS-RPT counts the session with its first message. */
		ds->n_connecting--;
		dconn_set_idle(dc);
		a->down_until = 0;
		log_debug(LOG_SUB_SMTP, "dest=%s mx=%s source=%s event=connected",
			  ds->key, a->mx, info->source_ip);
		dest_pump(ds);
		return;
	}
	log_info("dest=%s mx=%s source=%s event=connect_failed phase=%d "
		 "code=%d error=%s",
		 ds->key, a->mx, info->source_ip[0] ? info->source_ip : "-",
		 (int)phase, reply->code,
		 log_quote(q, sizeof(q), reply->text, strlen(reply->text)));
	snprintf(source, sizeof(source), "%s", info->source_ip);
	if (phase == SMTPC_PH_TLS && dc->tls != NULL && !dc->tls_off)
		dest_tls_report(dc->tls, ds->domain, info,
				dest_tls_result(dc->tls, info, false));
	deliver_observe(ds->d, ds, a->mx, source, reply);
	smtpc_close(dc->c);
	dc->c = NULL;
	/* the source's fault: cool it down and try this MX address again
	 * from the pool's next source, at most once per source */
	if (is_source_fault) {
		const struct config *cfg = ds->d->cfg;
		size_t pool = (size_t)ds->pool;

		if (egress_cool(ds->d->egress, pool, (size_t)dc->src,
				dest_now(), cfg->delivery.pool_cooldown))
			log_warn("pool=%s source=%s event=source_cooling_down "
				 "seconds=%u",
				 dest_pool_name(ds), source,
				 cfg->delivery.pool_cooldown);
		dc->src = -1;
		if (++dc->src_tries <
		    egress_pool(ds->d->egress, pool)->n_addresses) {
			dconn_open(dc);
			return;
		}
		dconn_fail(dc, phase, reply, source);
		return;
	}
	/* opportunistic TLS that failed: this host again, in plain text */
	if (outcome_retry_plain(phase,
				dc->tls != NULL &&
					dc->tls->mode == SMTPC_TLS_OPPORTUNISTIC,
				dc->tls_off)) {
		dc->tls_off = true;
		dconn_open(dc);
		return;
	}
	if (outcome_marks_host_down(phase))
		a->down_until = dest_now() + DELIVER_DOWN_S;
	dconn_fail(dc, phase, reply, source);
}

static void
dconn_open(struct dconn *dc)
{
	struct dest *ds = dc->dest;
	struct deliver *d = ds->d;
	const struct config *cfg = d->cfg;
	struct dest_addr *a = &ds->addrs[dc->addr_idx];
	struct smtpc_opts o = { 0 };

	if (dc->tls == NULL)
		dc->tls = dest_tls_new(ds, dc->addr_idx, dconn_on_tls, dc);
	if (!dc->tls->is_ready)
		return; /* dconn_on_tls() comes back */
	if (dc->tls->fail_type != NULL) {
		struct smtpc_reply r = { 0 };

		snprintf(r.enhanced, sizeof(r.enhanced), "4.7.5");
		snprintf(r.text, sizeof(r.text), "%s", dc->tls->fail_text);
		dest_tls_report(dc->tls, ds->domain, NULL, dc->tls->fail_type);
		a->down_until = dest_now() + DELIVER_DOWN_S;
		dconn_fail(dc, SMTPC_PH_TLS, &r, "");
		return;
	}
	o.helo_name = cfg->delivery.helo_name;
	if (ds->pool >= 0) {
		size_t pool = (size_t)ds->pool;
		const struct cfg_pool_addr *pa;

		if (dc->src < 0)
			dc->src = egress_pick(d->egress, pool, a->sa.ss_family,
					      dest_now(), dest_source_held, ds);
		if (dc->src < 0) {
			struct smtpc_reply r = { 0 };

			snprintf(r.text, sizeof(r.text),
				 "pool %s has no IPv%c source address",
				 dest_pool_name(ds),
				 a->sa.ss_family == AF_INET6 ? '6' : '4');
			dconn_fail(dc, SMTPC_PH_CONNECT, &r, "");
			return;
		}
		pa = &egress_pool(d->egress, pool)->addresses[dc->src];
		o.source = egress_addr(d->egress, pool, (size_t)dc->src);
		if (pa->ehlo)
			o.helo_name = pa->ehlo;
	}
	o.mx_name = a->mx;
	dest_tls_opts(dc->tls, &o);
	if (dc->tls_off)
		o.tls = SMTPC_TLS_NONE;
	o.ssl_ctx = d->ssl;
	o.addr = (const struct sockaddr *)&a->sa;
	o.timeout_scale_pct = 100;
	dc->c = smtpc_open(d->smtpc, &o, dconn_on_ready, dc);
	if (dc->c == NULL) {
		struct smtpc_reply r = { 0 };

		snprintf(r.text, sizeof(r.text), "cannot create socket");
		dconn_free(dc);
		dest_fail(ds, SMTPC_PH_CONNECT, &r, a->mx, "");
		dest_maybe_free(ds);
	}
}

/* The TLS policy's lookup is back: open the connection. */
static void
dconn_on_tls(void *arg)
{
	struct dconn *dc = arg;
	struct dest *ds = dc->dest;

	guard_enter(&ds->guard);
	dconn_open(dc);
	(void)guard_leave(&ds->guard);
	dest_maybe_free(ds);
}

static void
dest_connect(struct dest *ds)
{
	struct dconn *dc = xcalloc(1, sizeof(*dc));

	dc->dest = ds;
	dc->state = DCONN_CONNECTING;
	dc->idle = evtimer_new(ds->d->base, dconn_on_idle, dc);
	dc->next = ds->conns;
	ds->conns = dc;
	ds->n_conns++;
	ds->n_connecting++;
	ds->d->n_conns++;
	if (!dconn_next_addr(dc)) {
		struct smtpc_reply r = { 0 };

		snprintf(r.text, sizeof(r.text), "no usable address");
		dconn_free(dc);
		dest_fail(ds, SMTPC_PH_CONNECT, &r, "", "");
		return;
	}
	dconn_open(dc);
}

/* dqueue_next()'s test: may the job's tenant send here now? The
 * shortest wait of those that may not is kept for the wake timer. */
struct dest_pick {
	struct dest *ds;
	uint64_t now_us;
	uint64_t wait;
};

static bool
dest_tenant_ok(void *arg, const struct job *j)
{
	struct dest_pick *p = arg;
	struct deliver *d = p->ds->d;
	double rate;
	uint64_t w = tenant_wait(d->cfg, d->tenants, p->ds->key, p->ds->domain,
				 j, d->share, p->now_us, &rate);

	if (w && (p->wait == 0 || w < p->wait))
		p->wait = w;
	return w == 0;
}

/* Wake ds in wait_us, unless a wake is due sooner already (a long wait
 * of one tenant must not put off a shorter one of another). */
static void
dest_wake_in(struct dest *ds, uint64_t wait_us)
{
	struct timeval tv = { (time_t)(wait_us / 1000000),
			      (suseconds_t)(wait_us % 1000000) };
	uint64_t at = dest_now_us() + wait_us;

	if (evtimer_pending(ds->wake, NULL) && ds->wake_at_us <= at)
		return;
	ds->wake_at_us = at;
	evtimer_add(ds->wake, &tv);
}

static void
dest_pump_jobs(struct dest *ds)
{
	struct dest_pick pick = { ds, dest_now_us(), 0 };
	struct job *j;

	/* in service order: classes, then tenants in turn (dqueue.h), each
	 * tenant within its limits (tenant.h) */
	while ((j = dqueue_next(&ds->q, dest_tenant_ok, &pick)) != NULL) {
		struct dconn *idle = NULL, *next;
		struct outcome_verdict hold;
		char why[DEST_HOLD_TEXT_MAX];
		uint64_t wait;

		/* the lease, ownership and freezes, checked now: a paused
		 * or handed-over node starts nothing, reused connection or
		 * not (node/cluster/owner.h owner_may_start()) */
		if (!deliver_may_start(ds->d, j)) {
			dqueue_remove(&ds->q, j);
			deliver_abandon(ds->d, j);
			continue;
		}
		/* adaptive shaping or warm-up holds it back */
		if (dest_hold_check(ds, j, &hold, why, sizeof(why))) {
			dqueue_remove(&ds->q, j);
			ds->d->held++;
			deliver_finish_all(ds->d, j, &hold, 0, why, "", NULL);
			continue;
		}

		for (struct dconn *dc = ds->conns; dc; dc = next) {
			next = dc->next;
			if (dc->state != DCONN_IDLE)
				continue;
			/* its source sent its warm-up allowance today: a
			 * new connection picks a warm one */
			if (dc->src >= 0 && dest_source_full(ds, dc->src)) {
				dconn_free(dc);
				continue;
			}
			idle = dc;
			break;
		}
		if (idle == NULL) {
			/* one new connection per waiting job, within limits */
			while (ds->n_conns < shaping_max_conns(&ds->shape) &&
			       ds->n_connecting < ds->q.n)
				dest_connect(ds);
			return;
		}
		wait = shaping_take(&ds->shape, pick.now_us);
		if (wait) {
			dest_wake_in(ds, wait);
			return;
		}
		tenant_take(ds->d->cfg, ds->d->tenants, ds->key, ds->domain, j,
			    ds->d->share, pick.now_us);
		dqueue_remove(&ds->q, j);
		dconn_send(idle, j);
	}
	/* jobs wait only for their tenants' limits: look again then */
	if (ds->q.n && pick.wait)
		dest_wake_in(ds, pick.wait);
}

/* Start what waits, within the limits. Frees ds when nothing is left to
 * do (also when that was found while pumping): the caller must not touch
 * ds afterwards. */
static void
dest_pump(struct dest *ds)
{
	guard_enter(&ds->guard);
	dest_pump_jobs(ds);
	(void)guard_leave(&ds->guard);
	dest_maybe_free(ds);
}

void
dest_set_addrs(struct dest *ds, const struct dns_result *r, uint16_t port)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_hosts; i++) {
		const struct dns_host *h = &r->hosts[i];

		for (size_t k = 0; k < h->n_addrs && n < DELIVER_ADDRS_MAX; k++) {
			struct dest_addr *a = &ds->addrs[n];
			uint64_t down = 0;

			/* keep the down mark of an address we know */
			for (size_t m = 0; m < ds->n_addrs; m++)
				if (memcmp(&ds->addrs[m].sa, &h->addrs[k],
					   sizeof(h->addrs[k])) == 0)
					down = ds->addrs[m].down_until;
			memcpy(&a->sa, &h->addrs[k], sizeof(a->sa));
			if (a->sa.ss_family == AF_INET)
				((struct sockaddr_in *)&a->sa)->sin_port = htons(port);
			else
				((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(port);
			snprintf(a->mx, sizeof(a->mx), "%s", h->name);
			a->down_until = down;
			ds->mx[n] = a->mx;
			n++;
		}
	}
	ds->n_addrs = n;
	ds->av_version = 0; /* another provider, maybe */
}

void
dest_recheck(struct dest *ds)
{
	struct job *all = dqueue_take_all(&ds->q), *j;

	while ((j = all) != NULL) {
		all = j->next;
		j->next = NULL;
		if (!deliver_may_start(ds->d, j)) {
			deliver_abandon(ds->d, j);
			continue;
		}
		dqueue_push(&ds->q, j);
	}
	dest_maybe_free(ds);
}

void
dest_shaping_changed(struct dest *ds)
{
	ds->av_version = 0;
	evtimer_del(ds->wake);
	event_active(ds->wake, EV_TIMEOUT, 0);
}

void
dest_set_share(struct dest *ds, double share)
{
	/* connections above a smaller count close after their next
	 * message (dconn_on_sent) */
	shaping_set_share(&ds->shape, share);
	ds->av_version = 0; /* the caps at the new share */
	/* pump on the next loop pass, with the new rate and count */
	evtimer_del(ds->wake);
	event_active(ds->wake, EV_TIMEOUT, 0);
}

void
dest_free(struct dest *ds)
{
	struct job *j;

	while ((j = dest_pop(ds)) != NULL)
		job_free(j);
	while (ds->conns) {
		struct job *busy = ds->conns->send.job;

		ds->conns->send.job = NULL;
		dconn_free(ds->conns);
		job_free(busy);
	}
	dest_unlink_free(ds);
}
