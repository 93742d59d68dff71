/* Delivery's job flow (see deliver.h; deliver_impl.h maps the files).
 *
 * A job comes in through deliver_submit(): its domain is a delivery.routes
 * relay, an address literal or a name to resolve (MX, dns.c); the answer
 * files it under its destination (the sorted MX host names, per IP pool:
 * MX rollup), which dest.c serves. Every job goes back through the hooks
 * with one result per recipient: the verdicts are outcome.c's, found
 * here for lookups and local refusals and in dest.c for SMTP. Owns setup,
 * this node's share of the cluster-wide limits and shutdown.
 *
 * Handles untrusted input indirectly: DNS answers and SMTP replies have
 * been bounded by dns.c and smtpc.c; route hosts come from the config. */
#include "node/delivery/deliver.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/adapt.h"
#include "node/delivery/classify.h"
#include "node/delivery/deliver_impl.h"
#include "node/delivery/dns.h"
#include "node/delivery/egress.h"
#include "node/delivery/job.h"
#include "node/delivery/outcome.h"
#include "node/delivery/shaping.h"
#include "node/delivery/smtpc.h"
#include "node/tls/sts_policy.h"

/* A job waiting for its DNS answer. */
struct dwait {
	struct deliver *d;
	struct job *job;
	uint64_t lookup;          /* for dns_cancel() */
	uint64_t sts_lookup;      /* for hooks.sts_cancel, while it runs */
	const struct sts_policy *sts; /* the domain's MTA-STS policy, or NULL */
	char sts_id[STS_ID_MAX + 1];
	struct dwait *prev, *next;
	char route_key[DELIVER_MXKEY_MAX + 1]; /* "route:HOST:PORT" */
	uint16_t route_port;
	enum cfg_tls route_tls;
};

/* ---- results -------------------------------------------------------- */

void
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
		 source && source[0] ? source : "-", outcome_name(oc), code,
		 status[0] ? status : "-",
		 cat ? classify_name(cat) : "-",
		 log_quote(q, sizeof(q), text, strlen(text)));
}

void
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
		r->retry_at = v->retry_at;
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

/* the lease, ownership and freezes, as the layer above says
 * (node/cluster/owner.h owner_may_start() behind the hook) */
bool
deliver_may_start(const struct deliver *d, const struct job *j)
{
	return d->hooks.job_may_start(d->hooks.arg, j);
}

void
deliver_abandon(struct deliver *d, struct job *j)
{
	d->hooks.job_abandon(d->hooks.arg, j);
}

/* ---- resolution ------------------------------------------------------ */

static int
deliver_cmp_names(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* The destination key of a DNS answer: its MX host names, sorted and
 * lower-cased; a list longer than DELIVER_MXKEY_MAX is named by its hash
 * instead ("mx#" and 16 hex digits), so that what follows it in the full
 * key is never cut off. */
static void
deliver_key(const struct dns_result *r, char key[DELIVER_MXKEY_MAX + 1])
{
	const char *names[DNS_HOSTS_MAX];
	char all[DNS_HOSTS_MAX * (DNS_NAME_MAX + 1) + 1];
	size_t n = 0, o = 0;
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < r->n_hosts; i++)
		names[n++] = r->hosts[i].name;
	qsort(names, n, sizeof(*names), deliver_cmp_names);
	all[0] = '\0';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(all + o, sizeof(all) - o, "%s%s",
				      i ? "," : "", names[i]);
	for (char *p = all; *p; p++) {
		*p = (char)tolower((unsigned char)*p);
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	}
	if (o <= DELIVER_MXKEY_MAX)
		memcpy(key, all, o + 1);
	else
		snprintf(key, DELIVER_MXKEY_MAX + 1, "mx#%016llx",
			 (unsigned long long)h);
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

/* A wait is over: the policy it holds goes back. */
static void
dwait_free(struct dwait *w)
{
	if (w->sts != NULL)
		w->d->hooks.sts_release(w->d->hooks.arg, w->sts);
	free(w);
}

static bool deliver_sts_any_match(const struct sts_policy *p,
				  const struct dns_result *r);
static bool deliver_may_dane(const struct deliver *d, const struct job *j);
static enum cfg_tls deliver_limit_tls(const struct deliver *d,
				      const struct job *j);
static void deliver_sts_refuse(struct deliver *d, struct dwait *w);

static void
deliver_on_dns(const struct dns_result *r, void *arg)
{
	struct dwait *w = arg;
	struct deliver *d = w->d;
	struct job *j = w->job;
	char key[DELIVER_KEY_MAX], mxkey[DELIVER_MXKEY_MAX + 1];
	char tls[24] = "", sts[DNS_NAME_MAX + STS_ID_MAX + 32] = "";
	enum cfg_tls tls_cfg = w->route_key[0] ? w->route_tls :
						deliver_limit_tls(d, j);
	struct outcome_verdict v;
	ssize_t pool;
	struct dest *ds;
	uint16_t port = w->route_key[0] ? w->route_port :
					  (uint16_t)d->cfg->delivery.smtp_port;

	dwait_unlink(w);
	if (d->hooks.dns_done)
		d->hooks.dns_done(d->hooks.arg, r->status);
	if (outcome_of_dns(r->status, &v)) {
		dwait_free(w);
		deliver_finish_all(d, j, &v, 0, r->error, "", NULL);
		return;
	}
	/* an enforced policy that names none of the MX hosts: deferred
	 * at once, unless a host has DANE (it wins, RFC 8461 2: then
	 * dest_tls.c decides per host) */
	if (w->sts != NULL && w->sts->mode == STS_MODE_ENFORCE &&
	    !deliver_sts_any_match(w->sts, r) && !deliver_may_dane(d, j)) {
		deliver_sts_refuse(d, w);
		return;
	}
	pool = deliver_pool(d, j);
	if (w->route_key[0])
		snprintf(mxkey, sizeof(mxkey), "%s", w->route_key);
	else
		deliver_key(r, mxkey);
	/* what a connection must check is part of the key, in front of
	 * the MX list: a destination's TLS setting (limits may differ for
	 * two domains of one MX set), and a domain's MTA-STS policy (its
	 * connections are checked against it, TLS-RPT counts them for that
	 * domain) */
	if (tls_cfg != CFG_TLS_DEFAULT)
		snprintf(tls, sizeof(tls), "tls:%d|", (int)tls_cfg);
	if (w->sts != NULL)
		snprintf(sts, sizeof(sts), "sts:%s:%s:%s|",
			 sts_mode_name(w->sts->mode), j->domain, w->sts_id);
	/* a pool's mail has destinations, connections and limits of its
	 * own: a connection from one pool never carries another's mail */
	if (snprintf(key, sizeof(key), "%s%s%s%s%s%s",
		     pool >= 0 ? "pool:" : "",
		     pool >= 0 ? egress_pool(d->egress, (size_t)pool)->name : "",
		     pool >= 0 ? "|" : "", tls, sts, mxkey) >= (int)sizeof(key))
		SHOAL_ASSERT(!"destination key cut short"); /* sizes add up */
	ds = dest_find(d, key);
	if (ds == NULL) {
		ds = dest_new(d, key, j->domain, pool,
			      w->route_key[0] ? &w->route_tls : NULL);
		ds->sts = w->sts; /* the destination keeps the reference */
		w->sts = NULL;
	}
	dest_set_addrs(ds, r, port);
	dwait_free(w);
	dest_enqueue(ds, j);
}

/* Whether an MX host of r matches policy p (RFC 8461 4.1). */
static bool
deliver_sts_any_match(const struct sts_policy *p, const struct dns_result *r)
{
	for (size_t i = 0; i < r->n_hosts; i++)
		if (sts_mx_match(p, r->hosts[i].name))
			return true;
	return false;
}

/* Whether j's destination looks for DANE (dest_tls.c): the default
 * policy of its limits. */
static bool
deliver_may_dane(const struct deliver *d, const struct job *j)
{
	return deliver_limit_tls(d, j) == CFG_TLS_DEFAULT;
}

/* No MX host of the domain matches its enforced policy: deferred, never
 * sent elsewhere (RFC 8461 5.1), and counted for TLS-RPT. */
static void
deliver_sts_refuse(struct deliver *d, struct dwait *w)
{
	struct job *j = w->job;
	struct smtpc_reply r = { 0 };
	struct outcome_verdict v;

	snprintf(r.enhanced, sizeof(r.enhanced), "4.7.5");
	snprintf(r.text, sizeof(r.text),
		 "MTA-STS: no MX host of %s matches the policy", j->domain);
	if (d->hooks.tls_session) {
		struct deliver_tls_session ts = {
			.domain = j->domain,
			.policy_type = "sts",
			.sts = w->sts,
			.mx = "",
			.ip = "",
			.source = "",
			.result = "validation-failure",
		};

		d->hooks.tls_session(d->hooks.arg, &ts);
	}
	snprintf(j->tls_policy, sizeof(j->tls_policy), "mta-sts");
	dwait_free(w);
	outcome_of_setup_failure(SMTPC_PH_TLS, &r, &v);
	deliver_finish_all(d, j, &v, 0, r.text, "", NULL);
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

/* The tls of the limits that apply to j's (MX-delivered) domain. */
static enum cfg_tls
deliver_limit_tls(const struct deliver *d, const struct job *j)
{
	ssize_t pool = egress_find(d->egress, j->msg->sm->envelope->pool);
	const struct cfg_limit *l = shaping_match(
		d->cfg, pool >= 0 ? egress_pool(d->egress, (size_t)pool)->name :
				    NULL,
		j->domain);

	return l ? l->tls : CFG_TLS_DEFAULT;
}

/* Whether j's domain has its MTA-STS policy looked up: MX delivery
 * (not a route) whose limits' tls is the default or "mta-sts". */
static bool
deliver_wants_sts(const struct deliver *d, const struct job *j)
{
	enum cfg_tls t = deliver_limit_tls(d, j);

	return d->hooks.sts_get != NULL &&
	       (t == CFG_TLS_DEFAULT || t == CFG_TLS_MTA_STS);
}

/* The domain's MTA-STS policy is known: now its MX hosts. */
static void
deliver_on_sts(void *cbarg, const struct sts_policy *p, const char *id)
{
	struct dwait *w = cbarg;

	w->sts_lookup = 0;
	w->sts = p;
	snprintf(w->sts_id, sizeof(w->sts_id), "%s", id);
	w->lookup = dns_resolve_mx(w->d->dns, w->job->domain, deliver_on_dns,
				   w);
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
	if (deliver_wants_sts(d, j)) {
		w->sts_lookup = d->hooks.sts_get(d->hooks.arg, j->domain,
						 deliver_on_sts, w);
		return;
	}
	w->lookup = dns_resolve_mx(d->dns, j->domain, deliver_on_dns, w);
}

struct dns *
deliver_dns(struct deliver *d)
{
	return d->dns;
}

void
deliver_recheck(struct deliver *d)
{
	struct dest *ds, *next;

	if (d == NULL)
		return;
	for (ds = d->dests; ds; ds = next) {
		next = ds->next;
		dest_recheck(ds); /* may free ds */
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

/* ---- adaptive shaping ------------------------------------------------- */

static void
deliver_shaping_changed(struct deliver *d)
{
	uint64_t next = adapt_next_expiry(d->adapt), now = clock_wall_ms();

	for (struct dest *ds = d->dests; ds; ds = ds->next)
		dest_shaping_changed(ds);
	evtimer_del(d->adapt_timer);
	if (next) {
		uint64_t ms = next > now ? next - now : 0;
		struct timeval tv = { (time_t)(ms / 1000),
				      (suseconds_t)(ms % 1000) * 1000 + 1000 };

		evtimer_add(d->adapt_timer, &tv);
	}
}

static void
deliver_on_adapt_timer(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;
	uint64_t now = clock_wall_ms();

	(void)fd;
	(void)what;
	for (size_t i = 0; i < adapt_count(d->adapt); i++) {
		const struct adapt_action *x = adapt_at(d->adapt, i);

		if (x->expires_ms <= now && !x->cleared)
			log_info("shaping event=expired key=%s action=%s "
				 "source=%s rule=%s origin=%s",
				 x->key, config_shaping_kind_name(x->kind),
				 x->source[0] ? x->source : "-", x->rule,
				 x->origin);
	}
	adapt_expire(d->adapt, now);
	deliver_shaping_changed(d);
}

void
deliver_observe(struct deliver *d, struct dest *ds, const char *mx,
		const char *source, const struct smtpc_reply *r)
{
	struct adapt_action x;

	const char *provider;

	if (r->code == 0 || (r->code >= 200 && r->code < 300))
		return;
	/* the provider of the host that replied, not of the destination:
	 * anyone can list a provider's host beside their own MX, and their
	 * server's reply must not speak for that provider */
	provider = adapt_provider(d->adapt, &mx, 1);
	if (!adapt_observe(d->adapt, provider, mx, source, ds->pool >= 0, r,
			   clock_wall_ms(), &x))
		return;
	if (d->hooks.shaping_action)
		d->hooks.shaping_action(d->hooks.arg, &x);
	deliver_shaping_changed(d);
}

int
deliver_shaping_reload(struct deliver *d, char *err, size_t errlen)
{
	struct cfg_shaping *rules;
	int rc;

	rc = config_shaping_load(d->cfg->delivery.shaping_rules, &rules, err,
				 errlen);
	if (rc != 0)
		return rc;
	log_info("shaping event=rules_loaded file=%s providers=%zu rules=%zu",
		 rules->path, rules->n_providers, rules->n_rules);
	adapt_set_rules(d->adapt, rules);
	/* provider names come from the rules: find them again */
	for (struct dest *ds = d->dests; ds; ds = ds->next)
		ds->provider[0] = '\0';
	deliver_shaping_changed(d);
	return 0;
}

bool
deliver_shaping_merge(struct deliver *d, const struct adapt_action *x)
{
	if (!adapt_merge(d->adapt, x, clock_wall_ms()))
		return false;
	deliver_shaping_changed(d);
	return true;
}

bool
deliver_shaping_suspend(struct deliver *d, const char *key, uint32_t seconds,
			struct adapt_action *out)
{
	if (!adapt_suspend(d->adapt, key, seconds, clock_wall_ms(), out))
		return false;
	deliver_shaping_changed(d);
	return true;
}

size_t
deliver_shaping_clear(struct deliver *d, const char *key,
		      void (*fn)(const struct adapt_action *x, void *arg),
		      void *arg)
{
	size_t n = adapt_clear(d->adapt, key, clock_wall_ms(), fn, arg);

	if (n)
		deliver_shaping_changed(d);
	return n;
}

const struct adapt *
deliver_adapt(const struct deliver *d)
{
	return d->adapt;
}

uint64_t
deliver_held(const struct deliver *d)
{
	return d->held;
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
	/* no client context means no TLS at all: with a CA file named, a
	 * node that cannot read it does not start */
	d->ssl = smtpc_ssl_ctx_new(cfg->delivery.tls_ca_file);
	if (d->ssl == NULL && cfg->delivery.tls_ca_file != NULL)
		goto fail;
	d->smtpc = smtpc_ctx_new(base);
	d->share = shaping_share(map, node_id);
	d->adapt = adapt_new(node_id, NULL);
	d->tenants = tenant_set_new();
	d->adapt_timer = evtimer_new(base, deliver_on_adapt_timer, d);
	{
		char err[1024];

		if (deliver_shaping_reload(d, err, sizeof(err)) != 0) {
			log_error("shaping event=bad_rules error=\"%s\"", err);
			goto fail;
		}
	}
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
	for (struct dest *ds = d->dests; ds; ds = ds->next)
		dest_set_share(ds, share);
}

void
deliver_free(struct deliver *d)
{
	if (d == NULL)
		return;
	while (d->dests)
		dest_free(d->dests);
	while (d->waits) {
		struct dwait *w = d->waits;

		d->waits = w->next;
		if (w->sts_lookup != 0)
			d->hooks.sts_cancel(d->hooks.arg, w->sts_lookup);
		else
			dns_cancel(d->dns, w->lookup);
		job_free(w->job);
		dwait_free(w);
	}
	if (d->adapt_timer)
		event_free(d->adapt_timer);
	adapt_free(d->adapt);
	tenant_set_free(d->tenants);
	smtpc_ctx_free(d->smtpc); /* after every connection was closed */
	egress_free(d->egress);
	dns_free(d->dns);
	if (d->ssl)
		SSL_CTX_free(d->ssl);
	free(d->node_id);
	free(d);
}
