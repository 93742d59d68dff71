/* The c-ares queries behind one name, as one flight (see dns_impl.h):
 * the MX query, then A and AAAA for every host in parallel; the answers'
 * TTLs (RFC 2308 5 for negative ones, capped at 60 s); the decision
 * (ok, NXDOMAIN, no hosts, null MX, temporary failure) made once every
 * query is back; the answer cached and the waiting lookups woken. Owns
 * RFC 5321 5.1 (MX order, equal preferences shuffled, implicit MX) and
 * RFC 7505 (null MX). Leaves the lookups, the channel and the event glue
 * to dns.c, the cache to dns_cache.c.
 * Also the end of dns_rr.c's one-query flights, and the raw message
 * walker both use.
 * Handles untrusted input: every DNS answer (the raw message is walked
 * for its TTLs with bounds checked), kept to DNS_HOSTS_MAX hosts of
 * DNS_ADDRS_MAX addresses. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/be.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/dns_cache.h"
#include "node/delivery/dns_impl.h"

#define DNS_NEG_TTL_MAX (DNS_TTL_MIN * 12) /* NXDOMAIN / NODATA */

const char DNS_ERR_NX[] =
	"Host or domain name not found (NXDOMAIN)";
static const char DNS_ERR_NULL_MX[] =
	"Domain accepts no mail (null MX, RFC 7505)";
static const char DNS_ERR_NO_MX_HOSTS[] = "No address found for any MX host";
static const char DNS_ERR_NO_ADDR[] = "Domain has no MX and no A/AAAA records";
const char DNS_ERR_BAD_NAME[] = "Invalid domain name";
const char DNS_ERR_MALFORMED[] =
	"DNS temporary failure: malformed answer";
static const char *const DNS_STATUS_NAMES[] = { "ok", "nxdomain", "no_hosts",
						"null_mx", "tempfail" };
static const char *const DNS_KIND_NAMES[] = { "mx", "host", "rr" };

static void dns_flight_hosts(struct dns_flight *f);

const char *
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

int
dns_msg_walk(const unsigned char *m, int len, dns_msg_rr_fn fn, void *arg)
{
	int off = 12, qd, an, ns, rc;

	if (m == NULL || len < 12 || !(m[2] & 0x80)) /* QR: a response */
		return -1;
	qd = be16_get(m + 4);
	an = be16_get(m + 6);
	ns = be16_get(m + 8);
	for (int i = 0; i < qd + an + ns; i++) {
		struct dns_msg_rr rr;

		/* labels up to the root or a pointer, never followed: no
		 * compression loop can hold us */
		while (off < len && m[off] != 0 && (m[off] & 0xc0) == 0)
			off += m[off] + 1;
		if (off >= len || (m[off] & 0xc0) == 0x40 ||
		    (m[off] & 0xc0) == 0x80)
			return -1;
		off += (m[off] & 0xc0) ? 2 : 1;
		if (i < qd) {
			off += 4;
			if (off > len)
				return -1;
			continue;
		}
		if (off + 10 > len)
			return -1;
		rr.is_answer = i < qd + an;
		rr.type = be16_get(m + off);
		rr.rrclass = be16_get(m + off + 2);
		rr.ttl = be32_get(m + off + 4);
		rr.ttl = rr.ttl > INT32_MAX ? 0 : rr.ttl; /* RFC 2181 8 */
		rr.rdlen = be16_get(m + off + 8);
		rr.rdata = m + off + 10;
		off += 10 + rr.rdlen;
		if (off > len)
			return -1;
		if ((rc = fn(&rr, arg)) != 0)
			return rc;
	}
	return 0;
}

void
dns_msg_rr_ttls(const struct dns_msg_rr *rr, uint32_t *pos, uint32_t *neg)
{
	uint32_t ttl = rr->ttl;

	if (rr->is_answer) {
		*pos = ttl < *pos ? ttl : *pos;
	} else if (rr->type == 6 && rr->rdlen >= 22) { /* SOA, MINIMUM last */
		uint32_t min = be32_get(rr->rdata + rr->rdlen - 4);

		ttl = min < ttl ? min : ttl;
		*neg = ttl < *neg ? ttl : *neg;
	}
}

static int
dns_flight_rr_ttls(const struct dns_msg_rr *rr, void *arg)
{
	struct dns_flight *f = arg;

	dns_msg_rr_ttls(rr, &f->ttl, &f->neg_ttl);
	return 0;
}

void
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
	/* RFC 2308 5: a negative answer lives min(SOA TTL, SOA MINIMUM); no
	 * SOA in the authority section leaves DNS_NEG_TTL_MAX */
	if (dns_msg_walk(abuf, alen, dns_flight_rr_ttls, f) == 0)
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
		a->bytes += sizeof(*h) + strlen(h->name) + 1;
	}
	if (e->kind != DNS_KIND_RR)
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
			  "dns domain=%s kind=%s type=%u result=%s hosts=%zu "
			  "with_addrs=%zu records=%u dropped=%u secure=%d "
			  "ttl=%u error=\"%s\"",
			  log_quote(q, sizeof(q), e->name, strlen(e->name)),
			  DNS_KIND_NAMES[e->kind], (unsigned)e->rrtype,
			  DNS_STATUS_NAMES[a->status], a->n_hosts, n_with_addrs,
			  (unsigned)a->n_rrs, (unsigned)a->n_dropped,
			  (int)a->is_secure, (unsigned)a->ttl, a->error);
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

void
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

void
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

void
dns_flight_new(struct dns *d, struct dns_entry *e)
{
	struct dns_flight *f = xcalloc(1, sizeof(*f));

	f->d = d;
	f->e = e;
	f->ans = dns_cache_answer_new(DNS_TEMPFAIL, "");
	if (e->kind != DNS_KIND_RR)
		f->ans->hosts = xcalloc(DNS_HOSTS_MAX, sizeof(*f->ans->hosts));
	f->ttl = DNS_TTL_MAX;
	f->neg_ttl = DNS_NEG_TTL_MAX;
	e->f = f;
}

void
dns_flight_start(struct dns_flight *f)
{
	if (f->e->kind == DNS_KIND_RR) {
		dns_rr_flight_start(f);
		return;
	}
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
