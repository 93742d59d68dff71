/* MX resolution for delivery: c-ares driven from the node's libevent loop
 * (dns_impl.h maps the files).
 *
 * Owns the c-ares channel, the lookups by id and their coalescing onto
 * one flight per name, and the answer handed to each caller with equal
 * preferences shuffled anew (RFC 5321 5.1). Leaves the queries and the
 * decision to dns_query.c (RFC 5321 5.1, RFC 7505, RFC 2308), the answer
 * cache to dns_cache.c and what an answer means for delivery to
 * outcome.c.
 * Handles untrusted input: every DNS answer, bounded to DNS_HOSTS_MAX
 * hosts of DNS_ADDRS_MAX addresses. Callbacks always run from their own
 * event, never inside c-ares or inside dns_resolve_*() or dns_query()
 * (dns_rr.c). */
#include "node/delivery/dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/dns_cache.h"
#include "node/delivery/dns_impl.h"

#define DNS_TRIES 3
#define DNS_SERVER_MAX 64 /* "[v6]:port" as rebuilt for c-ares */
#define DNS_WARN_EVERY_MS 10000

/* splitmix64, seeded once from getrandom() in dns_new() */
static uint64_t
dns_rand(struct dns *d)
{
	uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
dns_shuffle_runs(struct dns *d, const struct dns_ahost *h, size_t *order,
		 size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		uint16_t pref = h[order[i]].preference;

		for (j = i + 1; j < n && h[order[j]].preference == pref; j++)
			;
		for (size_t k = j - 1; k > i; k--) {
			uint64_t span = k - i + 1;
			uint64_t x, lim = UINT64_MAX - UINT64_MAX % span;
			size_t t, r;

			do
				x = dns_rand(d);
			while (x >= lim);
			r = i + (size_t)(x % span);
			t = order[k];
			order[k] = order[r];
			order[r] = t;
		}
	}
}

/* Warnings about answers repeat per lookup: one per 10 s, counting the rest. */
bool
dns_warn_ok(struct dns *d, uint64_t *folded)
{
	uint64_t now = dns_cache_now_ms();

	if (now < d->warn_next_ms) {
		d->warn_folded++;
		return false;
	}
	*folded = d->warn_folded;
	d->warn_folded = 0;
	d->warn_next_ms = now + DNS_WARN_EVERY_MS;
	return true;
}

/* ---- c-ares on libevent ---------------------------------------------- */

static void
dns_timer_reset(struct dns *d)
{
	struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);

	if (tvp)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

static void
dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_reset(d);
}

/* The arg is d, never the dns_sock: c-ares may close the socket (and we
 * free its event) inside ares_process_fd(). */
static void
dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_reset(d);
}

static void
dns_on_sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = arg;
	struct dns_sock **pp = &d->socks, *s;
	short what = EV_PERSIST | (readable ? EV_READ : 0) |
		     (writable ? EV_WRITE : 0);

	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	s = *pp;
	if (s && s->ev) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s) {
			*pp = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	}
	s->ev = event_new(d->base, fd, what, dns_on_sock, d);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		log_error("dns fd=%d result=event_failed", (int)fd);
}

void
dns_req_free(struct dns *d, struct dns_req *r)
{
	dns_cache_htab_del(&d->reqs, &r->hn);
	if (r->f) {
		if (r->prev)
			r->prev->next = r->next;
		else
			r->f->waiters = r->next;
		if (r->next)
			r->next->prev = r->prev;
	}
	event_free(r->ev);
	dns_cache_answer_unref(r->ans); /* taken when r became ready */
	free(r);
}

/* The answer is ready: copy it out, forget r, then call back (last, so
 * the callback may cancel, resolve again or even dns_free()). */
static void
dns_req_fire(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *r = arg;
	struct dns *d = r->d;
	const struct dns_answer *a = r->ans;
	struct dns_result res;
	size_t order[DNS_HOSTS_MAX];
	dns_mx_fn fn = r->fn;
	void *fn_arg = r->arg;

	/* res is about 20 KiB (DNS_HOSTS_MAX hosts of DNS_ADDRS_MAX
	 * addresses) and this runs for every delivery: clear only the
	 * header and the hosts and addresses that are used */
	memset(&res, 0, offsetof(struct dns_result, hosts));
	res.status = a->status;
	res.error = a->error;
	res.implicit_mx = a->implicit_mx;
	res.n_hosts = a->n_hosts;
	res.ttl = r->ttl;
	for (size_t i = 0; i < a->n_hosts; i++)
		order[i] = i;
	dns_shuffle_runs(d, a->hosts, order, a->n_hosts); /* per delivery */
	for (size_t i = 0; i < a->n_hosts; i++) {
		const struct dns_ahost *h = &a->hosts[order[i]];
		struct dns_host *o = &res.hosts[i];

		memset(o->addrs, 0, h->n_addrs * sizeof(o->addrs[0]));
		snprintf(o->name, sizeof(o->name), "%s", h->name);
		o->preference = h->preference;
		o->n_addrs = h->n_addrs;
		for (size_t k = 0; k < h->n_addrs; k++) {
			struct sockaddr_in *s4 = (void *)&o->addrs[k];
			struct sockaddr_in6 *s6 = (void *)&o->addrs[k];

			if (h->addrs[k].family == AF_INET) {
				s4->sin_family = AF_INET;
				memcpy(&s4->sin_addr, h->addrs[k].ip, 4);
			} else {
				s6->sin6_family = AF_INET6;
				memcpy(&s6->sin6_addr, h->addrs[k].ip, 16);
			}
		}
	}
	dns_req_free(d, r);
	fn(&res, fn_arg);
}

struct dns_req *
dns_req_new(struct dns *d, event_callback_fn fire)
{
	struct dns_req *r = xcalloc(1, sizeof(*r));

	r->d = d;
	r->id = ++d->next_id;
	r->hn.hash = r->id * 0x9e3779b97f4a7c15ULL;
	r->ev = event_new(d->base, -1, 0, fire, r);
	SHOAL_ASSERT(r->ev != NULL);
	dns_cache_htab_add(&d->reqs, &r->hn);
	return r;
}

void
dns_req_ready(struct dns_req *r, struct dns_answer *a, uint32_t ttl)
{
	r->ans = a; /* released in dns_req_free() */
	r->ttl = ttl;
	event_active(r->ev, 0, 0);
}

void
dns_req_lookup(struct dns_req *r, enum dns_kind kind, uint16_t rrtype,
	       const char *name)
{
	struct dns *d = r->d;
	struct dns_entry *e = dns_cache_find(&d->cache, kind, rrtype, name);
	bool is_new = e == NULL;

	if (e && e->ans) {
		uint64_t left_ms = e->expire_ms - dns_cache_now_ms();

		e->ans->refs++; /* released in dns_req_free() */
		dns_req_ready(r, e->ans, (uint32_t)((left_ms + 999) / 1000));
		return;
	}
	if (is_new) {
		e = dns_cache_add(&d->cache, kind, rrtype, name);
		dns_flight_new(d, e);
	}
	/* a waiter before the start: it may end inside ares_query() */
	r->f = e->f;
	r->next = e->f->waiters;
	if (r->next)
		r->next->prev = r;
	e->f->waiters = r;
	if (is_new)
		dns_flight_start(e->f);
	dns_timer_reset(d);
}

static uint64_t
dns_resolve(struct dns *d, enum dns_kind kind, const char *name, dns_mx_fn fn,
	    void *arg)
{
	struct dns_req *r = dns_req_new(d, dns_req_fire);
	struct dns_answer *a;
	struct dns_addr lit;
	size_t len = strlen(name);

	r->fn = fn;
	r->arg = arg;
	if (log_enabled(LOG_LVL_DEBUG, LOG_SUB_DNS)) {
		char q[LOG_QUOTE_BUF];

		log_debug(LOG_SUB_DNS, "dns domain=%s kind=%s lookup=%llu",
			  log_quote(q, sizeof(q), name, len),
			  kind == DNS_KIND_MX ? "mx" : "host",
			  (unsigned long long)r->id);
	}
	if (kind == DNS_KIND_HOST &&
	    (inet_pton(AF_INET, name, lit.ip) == 1 ||
	     inet_pton(AF_INET6, name, lit.ip) == 1)) {
		lit.family = strchr(name, ':') ? AF_INET6 : AF_INET;
		a = dns_cache_answer_new(DNS_OK, "");
		a->hosts = xcalloc(1, sizeof(*a->hosts));
		a->hosts[0].name = xstrdup(name);
		a->hosts[0].addrs[0] = lit;
		a->hosts[0].n_addrs = 1;
		a->n_hosts = 1;
		a->ttl = DNS_TTL_MAX;
		dns_req_ready(r, a, a->ttl);
	} else if (len == 0 || len > DNS_NAME_MAX) {
		a = dns_cache_answer_new(DNS_NXDOMAIN, DNS_ERR_BAD_NAME);
		a->ttl = DNS_TTL_MIN;
		dns_req_ready(r, a, a->ttl);
	} else {
		dns_req_lookup(r, kind, 0, name);
	}
	return r->id;
}

uint64_t
dns_resolve_mx(struct dns *d, const char *domain, dns_mx_fn fn, void *arg)
{
	return dns_resolve(d, DNS_KIND_MX, domain, fn, arg);
}

uint64_t
dns_resolve_host(struct dns *d, const char *host, dns_mx_fn fn, void *arg)
{
	return dns_resolve(d, DNS_KIND_HOST, host, fn, arg);
}

void
dns_cancel(struct dns *d, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ULL;

	for (struct dns_hnode *n = dns_cache_htab_first(&d->reqs, h); n;
	     n = n->next) {
		struct dns_req *r = (struct dns_req *)n;

		if (r->id == id) {
			dns_req_free(d, r); /* any flight goes on: cache */
			return;
		}
	}
}

/* ---- setup --------------------------------------------------------------- */

/* "host:port", "[v6]:port" or a bare address (port 53), as c-ares wants
 * it: an IP address, never a name (it would need a resolver itself). */
static int
dns_parse_server(const char *s, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];
	const char *h = s, *port = NULL, *c;
	size_t hl;
	unsigned char bin[16];
	long p = 53;
	bool is_v6;

	if (*s == '[') {
		if ((c = strchr(s, ']')) == NULL || (c[1] && c[1] != ':'))
			return -1;
		h = s + 1;
		hl = (size_t)(c - h);
		port = c[1] ? c + 2 : NULL;
	} else if ((c = strchr(s, ':')) != NULL && strchr(c + 1, ':') == NULL) {
		hl = (size_t)(c - s);
		port = c + 1;
	} else {
		hl = strlen(s); /* bare IPv4 or IPv6 */
	}
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (port) {
		char *end;

		if (*port < '0' || *port > '9')
			return -1;
		p = strtol(port, &end, 10);
		if (*end || p < 1 || p > 65535)
			return -1;
	}
	is_v6 = inet_pton(AF_INET6, host, bin) == 1;
	if (!is_v6 && inet_pton(AF_INET, host, bin) != 1)
		return -1;
	snprintf(out, outlen, is_v6 ? "[%s]:%ld" : "%s:%ld", host, p);
	return 0;
}

static int
dns_channel_open(struct dns *d)
{
	struct ares_options o;
	int rc, mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
		       ARES_OPT_DOMAINS | ARES_OPT_SOCK_STATE_CB;

	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOSEARCH; /* domains are always fully qualified */
	/* c-ares 1.18 reports a SERVFAIL or REFUSED that used up the tries as
	 * ECONNREFUSED. With one server there is no other to ask: take its
	 * answer as final and keep the real code for the logs. */
	if (d->n_servers == 1)
		o.flags |= ARES_FLAG_NOCHECKRESP;
	o.timeout = d->timeout_ms;
	o.tries = DNS_TRIES;
	o.domains = NULL;
	o.ndomains = 0;
	o.sock_state_cb = dns_on_sock_state;
	o.sock_state_cb_data = d;
	rc = ares_init_options(&d->ch, &o, mask);
	if (rc != ARES_SUCCESS) {
		log_error("dns result=init_failed error=\"%s\"",
			  ares_strerror(rc));
		return rc == ARES_ENOMEM ? -ENOMEM : -EIO;
	}
	d->has_ch = true;
	rc = d->servers ? ares_set_servers_ports_csv(d->ch, d->servers) :
			  ARES_SUCCESS;
	if (rc != ARES_SUCCESS) {
		log_error("dns servers=\"%s\" result=rejected error=\"%s\"",
			  d->servers, ares_strerror(rc));
		return SHOAL_E_CONFIG;
	}
	return 0;
}

int
dns_new(struct event_base *base, const struct config *cfg, struct dns **out)
{
	struct dns *d = xcalloc(1, sizeof(*d));
	size_t n = cfg->delivery.n_dns_servers;
	int rc;

	d->base = base;
	d->timeout_ms = DNS_TIMEOUT_MS;
	if (getrandom(&d->rng, sizeof(d->rng), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(d->rng))
		d->rng = dns_cache_now_ms() ^ (uint64_t)(uintptr_t)d;
	dns_cache_init(&d->cache, dns_rand(d));
	d->n_servers = n;
	if (n > 0) {
		d->servers = xcalloc(n, DNS_SERVER_MAX + 1);
		for (size_t i = 0; i < n; i++) {
			const char *s = cfg->delivery.dns_servers[i];
			char one[DNS_SERVER_MAX];

			if (dns_parse_server(s, one, sizeof(one)) != 0) {
				log_error("config key=delivery.dns_servers "
					  "value=\"%s\" error=\"want an IP "
					  "address, host:port or [v6]:port\"",
					  s);
				rc = SHOAL_E_CONFIG;
				goto fail;
			}
			if (i)
				strcat(d->servers, ",");
			strcat(d->servers, one);
		}
	}
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		rc = -ENOMEM;
		goto fail;
	}
	d->has_lib = true;
	d->timer = evtimer_new(base, dns_on_timer, d);
	if (d->timer == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = dns_channel_open(d)) != 0)
		goto fail;
	*out = d;
	return 0;
fail:
	dns_free(d);
	return rc;
}

int
dns_set_timeout_ms(struct dns *d, int timeout_ms)
{
	if (timeout_ms <= 0 || d->next_id > 0)
		return -EINVAL;
	if (d->has_ch)
		ares_destroy(d->ch);
	d->has_ch = false;
	d->timeout_ms = timeout_ms;
	return dns_channel_open(d);
}

void
dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	d->is_closing = true;
	for (size_t i = 0; i < d->reqs.nb; i++)
		while (d->reqs.b[i])
			dns_req_free(d, (struct dns_req *)d->reqs.b[i]);
	if (d->has_ch)
		ares_destroy(d->ch); /* flights end in dns_flight_done() */
	if (d->has_lib)
		ares_library_cleanup();
	dns_cache_free(&d->cache);
	while (d->socks) {
		struct dns_sock *s = d->socks;

		d->socks = s->next;
		if (s->ev)
			event_free(s->ev);
		free(s);
	}
	if (d->timer)
		event_free(d->timer);
	free(d->reqs.b);
	free(d->servers);
	free(d);
}
