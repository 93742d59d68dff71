/* MX resolution for delivery: c-ares driven from the node's libevent loop.
 *
 * Owns the c-ares channel and the coalescing of lookups for one name;
 * leaves the answer cache to node/dns_cache.c and the retry policy to
 * node/outcome.c. Implements RFC 5321 5.1 (MX order, equal preferences
 * shuffled, implicit MX), RFC 7505 (null MX) and RFC 2308 (negative
 * answers, capped at 60 s).
 * Handles untrusted input: every DNS answer, bounded to DNS_HOSTS_MAX
 * hosts of DNS_ADDRS_MAX addresses. Callbacks always run from their own
 * event, never inside c-ares or inside dns_resolve_*(). */
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

#define DNS_TRIES 3
#define DNS_NEG_TTL_MAX (DNS_TTL_MIN * 12) /* NXDOMAIN / NODATA */
#define DNS_SERVER_MAX 64 /* "[v6]:port" as rebuilt for c-ares */
#define DNS_WARN_EVERY_MS 10000

static const char DNS_ERR_NX[] =
	"Host or domain name not found (NXDOMAIN)";
static const char DNS_ERR_NULL_MX[] =
	"Domain accepts no mail (null MX, RFC 7505)";
static const char DNS_ERR_NO_MX_HOSTS[] = "No address found for any MX host";
static const char DNS_ERR_NO_ADDR[] = "Domain has no MX and no A/AAAA records";
static const char DNS_ERR_BAD_NAME[] = "Invalid domain name";
static const char DNS_ERR_MALFORMED[] =
	"DNS temporary failure: malformed answer";
static const char *const DNS_STATUS_NAMES[] = { "ok", "nxdomain", "no_hosts",
						"null_mx", "tempfail" };

/* One dns_resolve_*() call, until its callback runs or it is cancelled. */
struct dns_req {
	struct dns_hnode hn; /* hash: the id */
	struct dns *d;
	uint64_t id;
	dns_mx_fn fn;
	void *arg;
	struct event *ev;             /* delivers ans */
	struct dns_flight *f;         /* while waiting for it */
	struct dns_req *prev, *next;  /* in f->waiters */
	struct dns_answer *ans;       /* once ready */
	uint32_t ttl;
};

struct dns_qslot {
	struct dns_flight *f;
	int host, family;
};

/* The c-ares queries answering one entry. Lives until the last returns. */
struct dns_flight {
	struct dns *d;
	struct dns_entry *e;
	int pending;              /* queries out, plus 1 while launching */
	bool is_decided;          /* ans->status set by the MX answer */
	struct dns_req *waiters;
	struct dns_answer *ans;
	struct dns_addr v6[DNS_HOSTS_MAX][DNS_ADDRS_MAX]; /* placed after v4 */
	size_t n_v6[DNS_HOSTS_MAX];
	uint32_t ttl, neg_ttl;    /* minimum of positive / negative answers */
	const char *tf_error;     /* first temporary failure */
	int n_nx;                 /* host queries answered NXDOMAIN */
	struct dns_qslot mx_slot, slots[DNS_HOSTS_MAX][2];
};

struct dns_sock {
	struct dns_sock *next;
	ares_socket_t fd;
	struct event *ev;
};

struct dns {
	struct event_base *base;
	ares_channel ch;
	bool has_lib, has_ch, is_closing;
	char *servers;            /* CSV for c-ares, NULL: resolv.conf */
	size_t n_servers;
	int timeout_ms;
	struct event *timer;
	struct dns_sock *socks;
	struct dns_cache cache;
	struct dns_htab reqs;     /* struct dns_req by id */
	uint64_t next_id, rng;
	uint64_t warn_next_ms, warn_folded;
};

static void dns_flight_hosts(struct dns_flight *f);

/* splitmix64, seeded once from getrandom() in dns_new() */
static uint64_t
dns_rand(struct dns *d)
{
	uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Permute order[] (indexes into h, sorted by preference): Fisher-Yates
 * within each run of equal preference, RFC 5321 5.1. */
static void
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
static bool
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

/* ---- lookups ----------------------------------------------------------- */

static const char *
dns_ares_error(int status)
{
	switch (status) {
	case ARES_ESERVFAIL:
		return "DNS temporary failure: SERVFAIL";
	case ARES_EREFUSED:
		return "DNS temporary failure: REFUSED";
	case ARES_ENOTIMP:
		return "DNS temporary failure: NOTIMP";
	case ARES_ETIMEOUT:
		return "DNS timeout";
	case ARES_ECONNREFUSED:
		return "DNS temporary failure: every server refused or failed";
	case ARES_EFORMERR:
	case ARES_EBADRESP:
		return DNS_ERR_MALFORMED;
	default:
		return "DNS temporary failure";
	}
}

/* RFC 2308 5: a negative answer lives min(SOA TTL, SOA MINIMUM); no SOA
 * in the authority section leaves DNS_NEG_TTL_MAX. Answer-section TTLs
 * go to *pos. Returns -1 when the message is malformed. */
static int
dns_msg_ttls(const unsigned char *m, int len, uint32_t *pos, uint32_t *neg)
{
	int off = 12, qd, an, ns;

	if (m == NULL || len < 12 || !(m[2] & 0x80)) /* QR: a response */
		return -1;
	qd = m[4] << 8 | m[5];
	an = m[6] << 8 | m[7];
	ns = m[8] << 8 | m[9];
	for (int i = 0; i < qd + an + ns; i++) {
		uint32_t ttl;
		int type, rdlen;

		while (off < len && m[off] != 0 && (m[off] & 0xc0) == 0)
			off += m[off] + 1;
		if (off >= len || (m[off] & 0xc0) == 0x40 ||
		    (m[off] & 0xc0) == 0x80)
			return -1;
		off += (m[off] & 0xc0) ? 2 : 1;
		if (i < qd) {
			off += 4;
			continue;
		}
		if (off + 10 > len)
			return -1;
		type = m[off] << 8 | m[off + 1];
		ttl = (uint32_t)m[off + 4] << 24 | (uint32_t)m[off + 5] << 16 |
		      (uint32_t)m[off + 6] << 8 | m[off + 7];
		ttl = ttl > INT32_MAX ? 0 : ttl; /* RFC 2181 8 */
		rdlen = m[off + 8] << 8 | m[off + 9];
		off += 10 + rdlen;
		if (off > len)
			return -1;
		if (i < qd + an) {
			*pos = ttl < *pos ? ttl : *pos;
		} else if (type == 6 && rdlen >= 22) { /* SOA, MINIMUM last */
			const unsigned char *mn = m + off - 4;
			uint32_t min = (uint32_t)mn[0] << 24 |
				       (uint32_t)mn[1] << 16 |
				       (uint32_t)mn[2] << 8 | mn[3];

			ttl = min < ttl ? min : ttl;
			*neg = ttl < *neg ? ttl : *neg;
		}
	}
	return 0;
}

static void
dns_warn_malformed(struct dns_flight *f, const char *query, int rc)
{
	char q[LOG_QUOTE_BUF];
	uint64_t folded;

	if (!dns_warn_ok(f->d, &folded))
		return;
	log_warn("dns domain=%s query=%s result=malformed error=\"%s\" "
		 "folded=%llu",
		 log_quote(q, sizeof(q), f->e->name, strlen(f->e->name)), query,
		 ares_strerror(rc), (unsigned long long)folded);
}

/* An answer (not an error) must parse, QR bit and all: c-ares 1.18 takes
 * its own query echoed back for one. Its TTLs go to the flight. */
static int
dns_flight_check(struct dns_flight *f, const char *query, int status,
		 const unsigned char *abuf, int alen)
{
	if (status != ARES_SUCCESS && status != ARES_ENODATA &&
	    status != ARES_ENOTFOUND)
		return status;
	if (dns_msg_ttls(abuf, alen, &f->ttl, &f->neg_ttl) == 0)
		return status;
	dns_warn_malformed(f, query, ARES_EBADRESP);
	return ARES_EBADRESP;
}

static uint32_t
dns_clamp_ttl(uint32_t ttl, uint32_t max)
{
	return ttl < DNS_TTL_MIN ? DNS_TTL_MIN : ttl > max ? max : ttl;
}

/* The flight's queries are all back: decide, cache, wake the waiters. */
static void
dns_flight_finish(struct dns_flight *f)
{
	struct dns *d = f->d;
	struct dns_answer *a = f->ans;
	struct dns_entry *e = f->e;
	size_t n_with_addrs = 0;

	for (size_t i = 0; i < a->n_hosts; i++) {
		struct dns_ahost *h = &a->hosts[i];

		for (size_t k = 0; k < f->n_v6[i] && h->n_addrs < DNS_ADDRS_MAX;
		     k++)
			h->addrs[h->n_addrs++] = f->v6[i][k];
		n_with_addrs += h->n_addrs > 0;
	}
	a->hosts = xrealloc(a->hosts, (a->n_hosts ? a->n_hosts : 1) *
					      sizeof(*a->hosts));
	if (!f->is_decided) {
		if (n_with_addrs > 0) {
			a->status = DNS_OK;
			a->error = "";
		} else if (f->tf_error) {
			a->status = DNS_TEMPFAIL;
			a->error = f->tf_error;
		} else if (e->kind == DNS_KIND_HOST && f->n_nx == 2) {
			a->status = DNS_NXDOMAIN;
			a->error = DNS_ERR_NX;
		} else if (e->kind == DNS_KIND_MX && !a->implicit_mx) {
			a->status = DNS_NO_HOSTS;
			a->error = DNS_ERR_NO_MX_HOSTS;
		} else {
			a->status = DNS_NO_HOSTS;
			a->error = DNS_ERR_NO_ADDR;
		}
	}
	if (a->status == DNS_OK || a->status == DNS_NULL_MX)
		a->ttl = dns_clamp_ttl(f->ttl, DNS_TTL_MAX);
	else
		a->ttl = dns_clamp_ttl(f->neg_ttl, DNS_NEG_TTL_MAX);
	if (f->tf_error && a->status == DNS_OK)
		a->ttl = DNS_TTL_MIN; /* partial answer: ask again soon */
	if (log_enabled(LOG_LVL_DEBUG, LOG_SUB_DNS)) {
		char q[LOG_QUOTE_BUF];

		log_debug(LOG_SUB_DNS,
			  "dns domain=%s kind=%s result=%s hosts=%zu "
			  "with_addrs=%zu ttl=%u error=\"%s\"",
			  log_quote(q, sizeof(q), e->name, strlen(e->name)),
			  e->kind == DNS_KIND_MX ? "mx" : "host",
			  DNS_STATUS_NAMES[a->status], a->n_hosts, n_with_addrs,
			  (unsigned)a->ttl, a->error);
	}
	e->f = NULL;
	if (a->status == DNS_TEMPFAIL)
		dns_cache_del(&d->cache, e); /* never cached */
	else
		dns_cache_put(&d->cache, e, a);
	while (f->waiters) {
		struct dns_req *r = f->waiters;

		f->waiters = r->next;
		r->f = NULL;
		r->prev = r->next = NULL;
		r->ans = a;
		a->refs++; /* released in dns_req_free() */
		r->ttl = a->ttl;
		event_active(r->ev, 0, 0);
	}
	dns_cache_answer_unref(a); /* the flight's, from dns_flight_new() */
	free(f);
}

/* One query came back (or c-ares is being destroyed). */
static void
dns_flight_done(struct dns_flight *f)
{
	if (--f->pending > 0)
		return;
	if (f->d->is_closing) {
		f->e->f = NULL;
		dns_cache_del(&f->d->cache, f->e);
		dns_cache_answer_unref(f->ans);
		free(f);
		return;
	}
	dns_flight_finish(f);
}

static void
dns_flight_decide(struct dns_flight *f, enum dns_status st, const char *err)
{
	f->is_decided = true;
	f->ans->status = st;
	f->ans->error = err;
}

static int
dns_cmp_pref(const void *a, const void *b)
{
	const struct dns_ahost *x = a, *y = b;

	return (int)x->preference - (int)y->preference;
}

/* Keep the non-null MX targets, by preference, equal ones shuffled. */
static void
dns_flight_take_mx(struct dns_flight *f, struct ares_mx_reply *mx)
{
	struct dns_ahost *tmp;
	size_t n = 0, n_null = 0, *order;

	for (struct ares_mx_reply *p = mx; p; p = p->next) {
		if (p->host[0] == '\0' || strcmp(p->host, ".") == 0)
			n_null++;
		else if (strlen(p->host) <= DNS_NAME_MAX)
			n++;
	}
	if (n == 0) {
		if (n_null)
			dns_flight_decide(f, DNS_NULL_MX, DNS_ERR_NULL_MX);
		else
			dns_flight_decide(f, DNS_NO_HOSTS, DNS_ERR_NO_MX_HOSTS);
		return;
	}
	tmp = xcalloc(n, sizeof(*tmp));
	order = xcalloc(n, sizeof(*order));
	n = 0;
	for (struct ares_mx_reply *p = mx; p; p = p->next) {
		if (p->host[0] == '\0' || strcmp(p->host, ".") == 0 ||
		    strlen(p->host) > DNS_NAME_MAX)
			continue;
		tmp[n].name = p->host;
		tmp[n++].preference = p->priority;
	}
	qsort(tmp, n, sizeof(*tmp), dns_cmp_pref);
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	dns_shuffle_runs(f->d, tmp, order, n);
	for (size_t i = 0; i < n && i < DNS_HOSTS_MAX; i++) {
		f->ans->hosts[i].name = xstrdup(tmp[order[i]].name);
		f->ans->hosts[i].preference = tmp[order[i]].preference;
		f->ans->n_hosts++;
	}
	free(order);
	free(tmp);
}

static void
dns_on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_qslot *s = arg;
	struct dns_flight *f = s->f;
	struct ares_mx_reply *mx = NULL;
	int rc;

	if (status == ARES_EDESTRUCTION || f->d->is_closing) {
		dns_flight_done(f);
		return;
	}
	status = dns_flight_check(f, "MX", status, abuf, alen);
	if (status == ARES_SUCCESS) {
		rc = ares_parse_mx_reply(abuf, alen, &mx);
		if (rc == ARES_SUCCESS) {
			dns_flight_take_mx(f, mx);
		} else if (rc == ARES_ENODATA) {
			status = ARES_ENODATA; /* e.g. only a CNAME */
		} else {
			dns_warn_malformed(f, "MX", rc);
			status = rc;
		}
		ares_free_data(mx);
	}
	if (status == ARES_ENODATA) { /* RFC 5321 5.1: implicit MX */
		f->ttl = f->neg_ttl < f->ttl ? f->neg_ttl : f->ttl;
		f->ans->implicit_mx = 1;
		f->ans->hosts[0].name = xstrdup(f->e->name);
		f->ans->n_hosts = 1;
	} else if (status == ARES_ENOTFOUND) {
		dns_flight_decide(f, DNS_NXDOMAIN, DNS_ERR_NX);
	} else if (status == ARES_EBADNAME) {
		dns_flight_decide(f, DNS_NXDOMAIN, DNS_ERR_BAD_NAME);
	} else if (status != ARES_SUCCESS) {
		dns_flight_decide(f, DNS_TEMPFAIL, dns_ares_error(status));
	}
	if (!f->is_decided)
		dns_flight_hosts(f);
	dns_flight_done(f);
}

static void
dns_on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_qslot *s = arg;
	struct dns_flight *f = s->f;
	struct dns_ahost *h = &f->ans->hosts[s->host];
	bool is_v4 = s->family == AF_INET;
	int rc, n = DNS_ADDRS_MAX;

	if (status == ARES_EDESTRUCTION || f->d->is_closing) {
		dns_flight_done(f);
		return;
	}
	rc = dns_flight_check(f, is_v4 ? "A" : "AAAA", status, abuf, alen);
	if (rc == ARES_SUCCESS) {
		struct ares_addrttl t4[DNS_ADDRS_MAX];
		struct ares_addr6ttl t6[DNS_ADDRS_MAX];

		rc = is_v4 ? ares_parse_a_reply(abuf, alen, NULL, t4, &n) :
			     ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
			size_t *nv6 = &f->n_v6[s->host];
			struct dns_addr *o = is_v4 ? &h->addrs[h->n_addrs++] :
						     &f->v6[s->host][(*nv6)++];

			o->family = (uint8_t)s->family;
			if (is_v4)
				memcpy(o->ip, &t4[i].ipaddr, 4);
			else
				memcpy(o->ip, &t6[i].ip6addr, 16);
		}
		if (rc != ARES_SUCCESS && rc != ARES_ENODATA)
			dns_warn_malformed(f, is_v4 ? "A" : "AAAA", rc);
	}
	if (rc == ARES_ENOTFOUND || rc == ARES_EBADNAME)
		f->n_nx++;
	else if (rc != ARES_SUCCESS && rc != ARES_ENODATA && !f->tf_error)
		f->tf_error = dns_ares_error(rc);
	dns_flight_done(f);
}

/* A and AAAA for every host, all in parallel. */
static void
dns_flight_hosts(struct dns_flight *f)
{
	f->pending++; /* a query may answer inside ares_query() */
	for (size_t i = 0; i < f->ans->n_hosts; i++) {
		struct dns_ahost *h = &f->ans->hosts[i];
		struct in_addr ip4;

		/* RFC 5321 5.1 wants a name, but IP literal MX targets exist */
		if (!f->ans->implicit_mx &&
		    inet_pton(AF_INET, h->name, &ip4) == 1) {
			h->addrs[0].family = AF_INET;
			memcpy(h->addrs[0].ip, &ip4, 4);
			h->n_addrs = 1;
			continue;
		}
		for (int k = 0; k < 2; k++) {
			struct dns_qslot *s = &f->slots[i][k];

			s->f = f;
			s->host = (int)i;
			s->family = k == 0 ? AF_INET : AF_INET6;
			f->pending++;
			ares_query(f->d->ch, h->name, ns_c_in,
				   k == 0 ? ns_t_a : ns_t_aaaa, dns_on_addr, s);
		}
	}
	dns_flight_done(f);
}

static void
dns_flight_new(struct dns *d, struct dns_entry *e)
{
	struct dns_flight *f = xcalloc(1, sizeof(*f));

	f->d = d;
	f->e = e;
	f->ans = dns_cache_answer_new(DNS_TEMPFAIL, "");
	f->ttl = DNS_TTL_MAX;
	f->neg_ttl = DNS_NEG_TTL_MAX;
	e->f = f;
}

static void
dns_flight_start(struct dns_flight *f)
{
	if (f->e->kind == DNS_KIND_HOST) {
		f->ans->hosts[0].name = xstrdup(f->e->name);
		f->ans->n_hosts = 1;
		dns_flight_hosts(f);
		return;
	}
	f->mx_slot.f = f;
	f->pending = 2; /* the MX query, and this launch */
	ares_query(f->d->ch, f->e->name, ns_c_in, ns_t_mx, dns_on_mx,
		   &f->mx_slot);
	dns_flight_done(f);
}

static void
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

static uint64_t
dns_resolve(struct dns *d, enum dns_kind kind, const char *name, dns_mx_fn fn,
	    void *arg)
{
	struct dns_req *r = xcalloc(1, sizeof(*r));
	struct dns_entry *e;
	struct dns_addr lit;
	size_t len = strlen(name);

	r->d = d;
	r->id = ++d->next_id;
	r->fn = fn;
	r->arg = arg;
	r->hn.hash = r->id * 0x9e3779b97f4a7c15ULL;
	r->ev = event_new(d->base, -1, 0, dns_req_fire, r);
	SHOAL_ASSERT(r->ev != NULL);
	dns_cache_htab_add(&d->reqs, &r->hn);
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
		r->ans = dns_cache_answer_new(DNS_OK, "");
		r->ans->hosts[0].name = xstrdup(name);
		r->ans->hosts[0].addrs[0] = lit;
		r->ans->hosts[0].n_addrs = 1;
		r->ans->n_hosts = 1;
		r->ttl = r->ans->ttl = DNS_TTL_MAX;
	} else if (len == 0 || len > DNS_NAME_MAX) {
		r->ans = dns_cache_answer_new(DNS_NXDOMAIN, DNS_ERR_BAD_NAME);
		r->ttl = r->ans->ttl = DNS_TTL_MIN;
	} else if ((e = dns_cache_find(&d->cache, kind, name)) != NULL &&
		   e->ans) {
		r->ans = e->ans;
		r->ans->refs++; /* released in dns_req_free() */
		r->ttl = (uint32_t)((e->expire_ms - dns_cache_now_ms() + 999) /
				    1000);
	} else {
		bool is_new = e == NULL;

		if (is_new) {
			e = dns_cache_add(&d->cache, kind, name);
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
		return r->id;
	}
	event_active(r->ev, 0, 0);
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
