/* Delivery: destinations, connection pools, MX fallback and results.
 *
 * A destination is the sorted set of MX host names a domain resolves to
 * (or "route:HOST:PORT" for a delivery.routes relay). Each holds a FIFO of
 * jobs, its shaping state, and its connections. A connection attempt walks
 * the destination's addresses in MX order, skipping those marked down in
 * the last DELIVER_DOWN_S seconds, and moves to the next one whenever
 * outcome_try_next_host() says so; when every address failed, the jobs
 * still queued are deferred with the last error (unless another connection
 * to the destination is alive and can take them).
 *
 * Handles untrusted input indirectly: DNS answers and SMTP replies have
 * been bounded by node/dns.c and node/smtpc.c. */
#include "node/delivery/deliver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/classify.h"
#include "node/delivery/dns.h"
#include "node/delivery/egress.h"
#include "node/delivery/job.h"
#include "node/delivery/outcome.h"
#include "node/delivery/shaping.h"
#include "node/delivery/smtpc.h"

#define DELIVER_ADDRS_MAX (DNS_HOSTS_MAX * DNS_ADDRS_MAX)
#define DELIVER_IDLE_MS 5000      /* keep an idle connection this long */
#define DELIVER_DOWN_S 60         /* skip an address that just failed */
#define DELIVER_KEY_MAX 1024

struct dest_addr {
	struct sockaddr_storage sa;
	char mx[DNS_NAME_MAX + 1];
	uint64_t down_until;      /* unix seconds */
};

struct dconn;

struct dest {
	struct deliver *d;
	char key[DELIVER_KEY_MAX];    /* "pool:NAME|" + MX key with a pool */
	ssize_t pool;                 /* node/egress.h index, -1 = none */
	char domain[DNS_NAME_MAX + 1]; /* whose job made it: metrics label */
	struct dest_addr addrs[DELIVER_ADDRS_MAX];
	size_t n_addrs;
	struct shaping shape;
	enum smtpc_tls tls;
	struct job *head, *tail;  /* waiting jobs */
	size_t queued;
	struct dconn *conns;      /* all connections */
	uint32_t n_conns, n_connecting;
	struct event *wake;       /* rate limit timer */
	struct dest *next;
};

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

struct dconn {
	struct dest *dest;
	struct smtpc *c;
	enum dconn_state state;
	size_t addr_idx;          /* which address this attempt uses */
	size_t tried;             /* addresses tried by this connection */
	bool tls_off;             /* retrying this address without TLS */
	ssize_t src;              /* pool source address, -1 = none yet */
	size_t src_tries;         /* sources tried for this MX address */
	uint32_t msgs;
	struct dsend send;
	struct event *idle;
	struct dconn *next;
};

struct deliver {
	struct event_base *base;
	const struct config *cfg;   /* borrowed: outlives d */
	char *node_id;              /* ours, for the limits share */
	struct deliver_hooks hooks; /* to the layer above (node.c's) */
	struct dns *dns;
	SSL_CTX *ssl;
	struct smtpc_ctx *smtpc;  /* our SMTP clients, those saying QUIT too */
	struct dest *dests;
	struct dwait *waits;      /* jobs waiting for DNS */
	uint32_t n_conns;
	double share;             /* of the cluster's limits */
	struct egress *egress;    /* IP pools' source addresses */
	uint64_t unknown_pools;   /* messages naming a pool we lack */
};

/* A job waiting for its DNS answer. */
struct dwait {
	struct deliver *d;
	struct job *job;
	uint64_t lookup;          /* for dns_cancel() */
	struct dwait *prev, *next;
	char route_key[DELIVER_KEY_MAX];
	uint16_t route_port;
	enum cfg_tls route_tls;
};

static void dest_pump(struct dest *ds);

static uint64_t
deliver_now(void)
{
	return (uint64_t)time(NULL);
}

static uint64_t
deliver_now_us(void)
{
	return clock_mono_us(); /* for shaping: never steps */
}

/* ---- results -------------------------------------------------------- */

/* One line per recipient result, subject first: the qid. */
static void
deliver_log_result(const struct job *j, size_t k, const char *mx,
		   const char *ip, const char *source, enum outcome oc,
		   enum classify_cat cat, int code, const char *status,
		   const char *text)
{
	char q[LOG_QUOTE_BUF];

	log_info("qid=%s rcpt=<%s> mx=%s ip=%s source=%s result=%s code=%d "
		 "status=%s category=%s text=%s",
		 j->msg->qid, j->msg->sm->envelope->rcpts[j->rcpt[k]]->address,
		 mx && mx[0] ? mx : "-", ip && ip[0] ? ip : "-",
		 source && source[0] ? source : "-", outcome_name(oc), code, status[0] ? status : "-",
		 cat ? classify_name(cat) : "-",
		 log_quote(q, sizeof(q), text, strlen(text)));
}

/* Give every recipient of a job the same verdict (outcome.c's) and hand
 * it back; code and text say what happened. */
static void
deliver_finish_all(struct deliver *d, struct job *j,
		   const struct outcome_verdict *v, int code, const char *text,
		   const char *mx, const char *source)
{
	for (size_t k = 0; k < j->n; k++) {
		struct job_result *r = &j->res[k];

		memset(r, 0, sizeof(*r));
		r->outcome = v->outcome;
		r->category = v->category;
		r->reply.code = code;
		snprintf(r->reply.enhanced, sizeof(r->reply.enhanced), "%s",
			 v->status);
		snprintf(r->reply.text, sizeof(r->reply.text), "%s", text);
		snprintf(r->status, sizeof(r->status), "%s", v->status);
		snprintf(r->mx, sizeof(r->mx), "%s", mx ? mx : "");
		snprintf(r->source, sizeof(r->source), "%s",
			 source ? source : "");
		deliver_log_result(j, k, mx, NULL, source, v->outcome,
				   v->category, code, v->status, text);
	}
	d->hooks.job_done(d->hooks.arg, j);
}

/* A failure found before any server was asked. */
static void
deliver_finish_local(struct deliver *d, struct job *j, enum outcome_local why,
		     const char *text)
{
	struct outcome_verdict v;

	outcome_of_local(why, &v);
	deliver_finish_all(d, j, &v, 0, text, "", NULL);
}

/* Whether j may start now: the lease, ownership and freezes, as the layer
 * above says (node/cluster's owner_may_start() behind the hook). */
static bool
deliver_may_start(const struct deliver *d, const struct job *j)
{
	return d->hooks.job_may_start(d->hooks.arg, j);
}

/* Hand j back without an attempt: it stays due. */
static void
deliver_abandon(struct deliver *d, struct job *j)
{
	d->hooks.job_abandon(d->hooks.arg, j);
}

/* ---- destinations ---------------------------------------------------- */

static struct dest *
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

static struct dest *
dest_new(struct deliver *d, const char *key, const char *domain,
	 ssize_t pool)
{
	struct dest *ds = xcalloc(1, sizeof(*ds));

	ds->d = d;
	ds->pool = pool;
	snprintf(ds->key, sizeof(ds->key), "%s", key);
	snprintf(ds->domain, sizeof(ds->domain), "%s", domain);
	shaping_for_pool(d->cfg, dest_pool_name(ds), domain, d->share,
			 &ds->shape);
	ds->wake = evtimer_new(d->base, dest_on_wake, ds);
	ds->next = d->dests;
	d->dests = ds;
	log_debug(LOG_SUB_SMTP, "dest=%s event=created max_conns=%u", key,
		  ds->shape.max_connections);
	return ds;
}

/* Free a destination with nothing left to do. */
static void
dest_maybe_free(struct dest *ds)
{
	struct deliver *d = ds->d;
	struct dest **pp;

	if (ds->queued || ds->n_conns)
		return;
	for (pp = &d->dests; *pp; pp = &(*pp)->next) {
		if (*pp == ds) {
			*pp = ds->next;
			break;
		}
	}
	event_free(ds->wake);
	free(ds);
}

static enum smtpc_tls
deliver_tls_mode(enum cfg_tls t)
{
	switch (t) {
	case CFG_TLS_REQUIRED:
		return SMTPC_TLS_REQUIRED;
	case CFG_TLS_NONE:
		return SMTPC_TLS_NONE;
	default:
		return SMTPC_TLS_OPPORTUNISTIC;
	}
}

static void
dest_enqueue(struct dest *ds, struct job *j)
{
	struct shaping s;

	/* a limit naming this domain applies to its whole destination */
	shaping_for_pool(ds->d->cfg, dest_pool_name(ds), j->domain,
			 ds->d->share, &s);
	if (s.is_specific && !ds->shape.is_specific) {
		s.tokens = ds->shape.tokens;
		s.refilled_us = ds->shape.refilled_us;
		ds->shape = s;
		ds->tls = deliver_tls_mode(s.tls);
	}
	j->next = NULL;
	if (ds->tail)
		ds->tail->next = j;
	else
		ds->head = j;
	ds->tail = j;
	ds->queued++;
	dest_pump(ds);
}

static struct job *
dest_pop(struct dest *ds)
{
	struct job *j = ds->head;

	if (j == NULL)
		return NULL;
	ds->head = j->next;
	if (ds->head == NULL)
		ds->tail = NULL;
	j->next = NULL;
	ds->queued--;
	return j;
}

/* ---- connections ----------------------------------------------------- */

static void dconn_open(struct dconn *dc);

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
		 * attempt, the message stays due (node/owner.h) */
		deliver_abandon(ds->d, j);
		dconn_free(dc);
		dest_pump(ds);
		dest_maybe_free(ds);
		return;
	}
	dc->msgs++;
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
	ds->d->hooks.job_done(ds->d->hooks.arg, j);
	if (res->conn_lost || !smtpc_is_usable(c) ||
	    dc->msgs >= ds->shape.max_msgs_per_conn ||
	    ds->n_conns > ds->shape.max_connections) {
		dconn_free(dc);
	} else {
		dconn_set_idle(dc);
	}
	dest_pump(ds);
	dest_maybe_free(ds);
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
		j->next = ds->head;
		ds->head = j;
		if (ds->tail == NULL)
			ds->tail = j;
		ds->queued++;
	}
}

/* The next address to try for a connection: the first not marked down,
 * in MX order, starting after those this connection already tried. */
static bool
dconn_next_addr(struct dconn *dc)
{
	struct dest *ds = dc->dest;
	uint64_t now = deliver_now();

	for (size_t i = dc->tried; i < ds->n_addrs; i++) {
		if (ds->addrs[i].down_until <= now || i + 1 == ds->n_addrs) {
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
		 ds->key, ds->queued,
		 log_quote(q, sizeof(q), reply->text, strlen(reply->text)));
	outcome_of_setup_failure(phase, reply, &v);
	while ((j = dest_pop(ds)) != NULL)
		deliver_finish_all(ds->d, j, &v, reply->code, reply->text, mx,
				   source);
}

/* This connection could not be set up at its address: the next MX
 * address, or, when none is left, the destination's jobs deferred. */
static void
dconn_fail(struct dconn *dc, enum smtpc_phase phase,
	   const struct smtpc_reply *reply, const char *source, bool may_free)
{
	struct dest *ds = dc->dest;
	struct dest_addr *a = &ds->addrs[dc->addr_idx];
	struct smtpc_reply last = *reply;
	char mx[DNS_NAME_MAX + 1], src[64];

	dc->tls_off = false;
	if (outcome_try_next_host(phase, reply) && dconn_next_addr(dc)) {
		dconn_open(dc);
		return;
	}
	snprintf(mx, sizeof(mx), "%s", a->mx);
	snprintf(src, sizeof(src), "%s", source);
	dconn_free(dc);
	dest_fail(ds, phase, &last, mx, src);
	/* not from inside dest_pump(), which still holds ds */
	if (may_free)
		dest_maybe_free(ds);
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
		 * connection meanwhile: then it idles out like any other */
		ds->n_connecting--;
		dconn_set_idle(dc);
		a->down_until = 0;
		log_debug(LOG_SUB_SMTP, "dest=%s mx=%s source=%s event=connected",
			  ds->key, a->mx, info->source_ip);
		dest_pump(ds);
		dest_maybe_free(ds);
		return;
	}
	log_info("dest=%s mx=%s source=%s event=connect_failed phase=%d "
		 "code=%d error=%s",
		 ds->key, a->mx, info->source_ip[0] ? info->source_ip : "-",
		 (int)phase, reply->code,
		 log_quote(q, sizeof(q), reply->text, strlen(reply->text)));
	snprintf(source, sizeof(source), "%s", info->source_ip);
	smtpc_close(dc->c);
	dc->c = NULL;
	/* the source's fault: cool it down and try this MX address again
	 * from the pool's next source, at most once per source */
	if (is_source_fault) {
		const struct config *cfg = ds->d->cfg;
		size_t pool = (size_t)ds->pool;

		if (egress_cool(ds->d->egress, pool, (size_t)dc->src,
				deliver_now(), cfg->delivery.pool_cooldown))
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
		dconn_fail(dc, phase, reply, source, true);
		return;
	}
	/* opportunistic TLS that failed: this host again, in plain text */
	if (outcome_retry_plain(phase, ds->tls == SMTPC_TLS_OPPORTUNISTIC,
				dc->tls_off)) {
		dc->tls_off = true;
		dconn_open(dc);
		return;
	}
	if (outcome_marks_host_down(phase))
		a->down_until = deliver_now() + DELIVER_DOWN_S;
	dconn_fail(dc, phase, reply, source, true);
}

static void
dconn_open(struct dconn *dc)
{
	struct dest *ds = dc->dest;
	struct deliver *d = ds->d;
	const struct config *cfg = d->cfg;
	struct dest_addr *a = &ds->addrs[dc->addr_idx];
	struct smtpc_opts o = { 0 };

	o.helo_name = cfg->delivery.helo_name;
	if (ds->pool >= 0) {
		size_t pool = (size_t)ds->pool;
		const struct cfg_pool_addr *pa;

		if (dc->src < 0)
			dc->src = egress_pick(d->egress, pool, a->sa.ss_family,
					      deliver_now());
		if (dc->src < 0) {
			struct smtpc_reply r = { 0 };

			snprintf(r.text, sizeof(r.text),
				 "pool %s has no IPv%c source address",
				 dest_pool_name(ds),
				 a->sa.ss_family == AF_INET6 ? '6' : '4');
			dconn_fail(dc, SMTPC_PH_CONNECT, &r, "", false);
			return;
		}
		pa = &egress_pool(d->egress, pool)->addresses[dc->src];
		o.source = egress_addr(d->egress, pool, (size_t)dc->src);
		if (pa->ehlo)
			o.helo_name = pa->ehlo;
	}
	o.mx_name = a->mx;
	o.tls = dc->tls_off ? SMTPC_TLS_NONE : ds->tls;
	o.ssl_ctx = d->ssl;
	o.addr = (const struct sockaddr *)&a->sa;
	o.timeout_scale_pct = 100;
	dc->c = smtpc_open(d->smtpc, &o, dconn_on_ready, dc);
	if (dc->c == NULL) {
		struct smtpc_reply r = { 0 };

		snprintf(r.text, sizeof(r.text), "cannot create socket");
		dconn_free(dc);
		dest_fail(ds, SMTPC_PH_CONNECT, &r, a->mx, "");
	}
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

static void
dest_pump(struct dest *ds)
{
	while (ds->head) {
		struct dconn *idle = NULL;
		uint64_t wait;

		/* the lease, ownership and freezes, checked now: a paused
		 * or handed-over node starts nothing, reused connection or
		 * not (node/owner.h owner_may_start()) */
		if (!deliver_may_start(ds->d, ds->head)) {
			deliver_abandon(ds->d, dest_pop(ds));
			continue;
		}

		for (struct dconn *dc = ds->conns; dc; dc = dc->next)
			if (dc->state == DCONN_IDLE) {
				idle = dc;
				break;
			}
		if (idle == NULL) {
			/* one new connection per waiting job, within limits */
			while (ds->n_conns < ds->shape.max_connections &&
			       ds->n_connecting < ds->queued)
				dest_connect(ds);
			return;
		}
		wait = shaping_take(&ds->shape, deliver_now_us());
		if (wait) {
			struct timeval tv = { (time_t)(wait / 1000000),
					      (suseconds_t)(wait % 1000000) };

			if (!evtimer_pending(ds->wake, NULL))
				evtimer_add(ds->wake, &tv);
			return;
		}
		dconn_send(idle, dest_pop(ds));
	}
}

/* ---- resolution ------------------------------------------------------ */

static int
deliver_cmp_names(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* The destination key of a DNS answer: its MX host names, sorted. */
static void
deliver_key(const struct dns_result *r, char *key, size_t keylen)
{
	const char *names[DNS_HOSTS_MAX];
	size_t n = 0, o = 0;

	for (size_t i = 0; i < r->n_hosts; i++)
		names[n++] = r->hosts[i].name;
	qsort(names, n, sizeof(*names), deliver_cmp_names);
	key[0] = '\0';
	for (size_t i = 0; i < n && o + 2 < keylen; i++) {
		int w = snprintf(key + o, keylen - o, "%s%s", i ? "," : "",
				 names[i]);

		if (w < 0)
			break;
		o += (size_t)w;
	}
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static void
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
			n++;
		}
	}
	ds->n_addrs = n;
}

/* The pool a job's message goes out from, or -1: none asked, or one this
 * node's config does not know (logged; the host's default source). */
static ssize_t
deliver_pool(struct deliver *d, const struct job *j)
{
	const char *name = j->msg->sm->envelope->pool;
	ssize_t pool = egress_find(d->egress, name);

	/* a config that differs from the router's: once per 1000 */
	if (pool < 0 && name && name[0] && d->unknown_pools++ % 1000 == 0)
		log_warn("qid=%s pool=%.64s event=unknown_pool count=%llu "
			 "note=\"sent from the default source\"",
			 j->msg->qid, name,
			 (unsigned long long)d->unknown_pools);
	return pool;
}

static void
dwait_unlink(struct dwait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		w->d->waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
}

static void
deliver_on_dns(const struct dns_result *r, void *arg)
{
	struct dwait *w = arg;
	struct deliver *d = w->d;
	struct job *j = w->job;
	char key[DELIVER_KEY_MAX], mxkey[DELIVER_KEY_MAX];
	struct outcome_verdict v;
	ssize_t pool;
	struct dest *ds;
	uint16_t port = w->route_key[0] ? w->route_port :
					  (uint16_t)d->cfg->delivery.smtp_port;

	dwait_unlink(w);
	if (d->hooks.dns_done)
		d->hooks.dns_done(d->hooks.arg, r->status);
	if (outcome_of_dns(r->status, &v)) {
		free(w);
		deliver_finish_all(d, j, &v, 0, r->error, "", NULL);
		return;
	}
	pool = deliver_pool(d, j);
	if (w->route_key[0])
		snprintf(mxkey, sizeof(mxkey), "%s", w->route_key);
	else
		deliver_key(r, mxkey, sizeof(mxkey));
	/* a pool's mail has destinations, connections and limits of its
	 * own: a connection from one pool never carries another's mail */
	if (pool >= 0)
		snprintf(key, sizeof(key), "pool:%s|%.*s",
			 egress_pool(d->egress, (size_t)pool)->name,
			 (int)(sizeof(mxkey) - 80), mxkey);
	else
		snprintf(key, sizeof(key), "%s", mxkey);
	ds = dest_find(d, key);
	if (ds == NULL) {
		ds = dest_new(d, key, j->domain, pool);
		ds->tls = deliver_tls_mode(w->route_key[0] ? w->route_tls :
							     ds->shape.tls);
	}
	dest_set_addrs(ds, r, port);
	free(w);
	dest_enqueue(ds, j);
}

static const struct cfg_route *
deliver_route(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->delivery.n_routes; i++)
		if (strcasecmp(cfg->delivery.routes[i].domain, domain) == 0)
			return &cfg->delivery.routes[i];
	return NULL;
}

/* Split "host:port" / "[v6]:port" / "host" of a route. */
static int
deliver_split_hostport(const char *s, char *host, size_t hostlen,
		       uint16_t *port, uint16_t dflt)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl;

	*port = dflt;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close[1] == ':' ? close + 1 : NULL;
	} else if (colon && strchr(s, ':') != colon) {
		colon = NULL; /* a bare IPv6 address */
		hl = strlen(s);
	} else {
		hl = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (colon) {
		char *end;
		unsigned long p = strtoul(colon + 1, &end, 10);

		if (*end || p == 0 || p > 65535)
			return -EINVAL;
		*port = (uint16_t)p;
	}
	if (hl == 0 || hl >= hostlen)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	return 0;
}

static void
deliver_wait(struct deliver *d, struct dwait *w)
{
	w->prev = NULL;
	w->next = d->waits;
	if (d->waits)
		d->waits->prev = w;
	d->waits = w;
}

void
deliver_submit(struct deliver *d, struct job *j)
{
	const struct config *cfg = d->cfg;
	const struct cfg_route *rt = deliver_route(cfg, j->domain);
	struct dwait *w = xcalloc(1, sizeof(*w));

	w->d = d;
	w->job = j;
	if (rt) {
		char host[DNS_NAME_MAX + 1];

		if (deliver_split_hostport(rt->host, host, sizeof(host),
					   &w->route_port,
					   (uint16_t)cfg->delivery.smtp_port) != 0) {
			free(w);
			deliver_finish_local(d, j, OUTCOME_LOCAL_BAD_ROUTE,
					     "bad route host");
			return;
		}
		snprintf(w->route_key, sizeof(w->route_key), "route:%s",
			 rt->host);
		w->route_tls = rt->tls;
		deliver_wait(d, w);
		w->lookup = dns_resolve_host(d->dns, host, deliver_on_dns, w);
		return;
	}
	if (j->domain[0] == '\0') {
		free(w);
		deliver_finish_local(d, j, OUTCOME_LOCAL_NO_DOMAIN,
				     "recipient has no domain");
		return;
	}
	/* an address literal [1.2.3.4] is its own host */
	if (j->domain[0] == '[') {
		char host[DNS_NAME_MAX + 1];
		size_t l = strlen(j->domain);
		const char *h = j->domain + 1;

		if (strncasecmp(h, "ipv6:", 5) == 0)
			h += 5;
		l = strlen(h);
		if (l < 2 || l >= sizeof(host) || h[l - 1] != ']') {
			free(w);
			deliver_finish_local(d, j, OUTCOME_LOCAL_BAD_LITERAL,
					     "bad address literal");
			return;
		}
		memcpy(host, h, l - 1);
		host[l - 1] = '\0';
		deliver_wait(d, w);
		w->lookup = dns_resolve_host(d->dns, host, deliver_on_dns, w);
		return;
	}
	deliver_wait(d, w);
	w->lookup = dns_resolve_mx(d->dns, j->domain, deliver_on_dns, w);
}

void
deliver_recheck(struct deliver *d)
{
	struct dest *ds, *next;

	if (d == NULL)
		return;
	for (ds = d->dests; ds; ds = next) {
		struct job *all = ds->head, *j;

		next = ds->next;
		ds->head = ds->tail = NULL;
		ds->queued = 0;
		while ((j = all) != NULL) {
			all = j->next;
			j->next = NULL;
			if (!deliver_may_start(d, j)) {
				deliver_abandon(d, j);
				continue;
			}
			if (ds->tail)
				ds->tail->next = j;
			else
				ds->head = j;
			ds->tail = j;
			ds->queued++;
		}
		dest_maybe_free(ds);
	}
}

uint32_t
deliver_connections(const struct deliver *d)
{
	return d->n_conns;
}

void
deliver_foreach_dest(const struct deliver *d, deliver_dest_fn fn, void *arg)
{
	if (d == NULL)
		return;
	for (const struct dest *ds = d->dests; ds; ds = ds->next)
		fn(ds->domain, ds->n_conns, arg);
}

struct deliver *
deliver_new(struct event_base *base, const struct config *cfg,
	    const char *node_id, const Shoal__ShardMap *map,
	    const struct deliver_hooks *hooks)
{
	struct deliver *d = xcalloc(1, sizeof(*d));

	d->base = base;
	d->cfg = cfg;
	d->node_id = xstrdup(node_id);
	d->hooks = *hooks;
	if (dns_new(base, cfg, &d->dns) != 0)
		goto fail;
	if ((d->egress = egress_new(cfg)) == NULL)
		goto fail;
	d->ssl = smtpc_ssl_ctx_new();
	d->smtpc = smtpc_ctx_new(base);
	d->share = shaping_share(map, node_id);
	return d;
fail:
	deliver_free(d);
	return NULL;
}

void
deliver_map_changed(struct deliver *d, const Shoal__ShardMap *map)
{
	double share;

	if (d == NULL)
		return;
	share = shaping_share(map, d->node_id);
	if (share == d->share)
		return;
	log_info("node id=%s event=limits_share share=%.4f old_share=%.4f "
		 "epoch=%llu",
		 d->node_id, share, d->share,
		 (unsigned long long)(map ? map->epoch : 0));
	d->share = share;
	for (struct dest *ds = d->dests; ds; ds = ds->next) {
		/* connections above a smaller count close after their next
		 * message (dconn_on_sent) */
		shaping_set_share(&ds->shape, share);
		/* pump on the next loop pass, with the new rate and count */
		evtimer_del(ds->wake);
		event_active(ds->wake, EV_TIMEOUT, 0);
	}
}

void
deliver_free(struct deliver *d)
{
	if (d == NULL)
		return;
	while (d->dests) {
		struct dest *ds = d->dests;
		struct job *j;

		while ((j = dest_pop(ds)) != NULL)
			job_free(j);
		while (ds->conns) {
			struct job *busy = ds->conns->send.job;

			ds->conns->send.job = NULL;
			dconn_free(ds->conns);
			job_free(busy);
		}
		d->dests = ds->next;
		event_free(ds->wake);
		free(ds);
	}
	while (d->waits) {
		struct dwait *w = d->waits;

		d->waits = w->next;
		dns_cancel(d->dns, w->lookup);
		job_free(w->job);
		free(w);
	}
	smtpc_ctx_free(d->smtpc); /* after every connection was closed */
	egress_free(d->egress);
	dns_free(d->dns);
	if (d->ssl)
		SSL_CTX_free(d->ssl);
	free(d->node_id);
	free(d);
}
