/* dns_query(): the records of one type at one name, with the DNSSEC
 * "authenticated data" bit, for MTA-STS and TLS-RPT (TXT, RFC 8461 3.1,
 * RFC 8460 3) and DANE (TLSA, and whether an address answer is secure,
 * RFC 7672 2.1-2.2).
 *
 * Owns the name check, the query (built here: c-ares 1.18 has no flag for
 * the AD bit; RFC 6840 5.7 has a resolver set AD in its response when the
 * query had it and the data validated; EDNS0, RFC 6891, for answers past
 * 512 bytes), its answer parsed from the raw message, and handing the
 * record set out. Leaves the lookups by id, the coalescing and the cache
 * to dns.c and dns_cache.c, the flight's end (TTL clamp, caching, waking)
 * and the message walker to dns_query.c.
 * Handles untrusted input: every answer is walked with bounds checked and
 * kept to DNS_RR_MAX records of at most DNS_RR_DATA_MAX bytes. */
#include <arpa/nameser.h>
#include <ares.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/dns.h"
#include "node/delivery/dns_cache.h"
#include "node/delivery/dns_impl.h"

#define DNS_RR_UDP_MAX 1232 /* EDNS0 payload offered: DNS flag day 2020 */
#define DNS_RR_LABEL_MAX 63 /* RFC 1035 2.3.4 */
#define DNS_HDR_TC 0x02	    /* byte 2 of the header */
#define DNS_HDR_AD 0x20	    /* byte 3: RFC 4035 3.2.3, RFC 6840 5.7 */
#define DNS_HDR_RCODE 0x0f  /* byte 3 */
#define DNS_CLASS_IN 1

static const char DNS_ERR_TRUNCATED[] =
	"DNS temporary failure: truncated answer";

/* The records of the asked type while the answer is walked: pointers into
 * the message, copied out once it is known to be well formed. */
struct dns_rr_walk {
	struct dns_flight *f;
	uint16_t type;
	bool is_bad_txt;
	size_t n, n_dropped, total;
	const unsigned char *rdata[DNS_RR_MAX];
	uint16_t rdlen[DNS_RR_MAX], len[DNS_RR_MAX];
};

/* Copy name to out (DNS_RR_NAME_MAX + 1 bytes) lower-cased, without one
 * trailing dot, if it is a host-style name (underscore allowed, RFC 8552):
 * no escapes, spaces or controls reach c-ares or the cache. */
static bool
dns_rr_name_ok(const char *name, char *out)
{
	size_t len = strnlen(name, DNS_RR_NAME_MAX + 2), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_RR_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '-' || c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
			label++;
		} else {
			return false;
		}
		if (label > DNS_RR_LABEL_MAX)
			return false;
		out[i] = c;
	}
	out[len] = '\0';
	return true;
}

/* TXT RDATA: one or more <length><bytes> strings, which must fill it.
 * Returns the joined length, or -1 when a string runs past the end. */
static int
dns_rr_txt_len(const unsigned char *p, uint16_t rdlen)
{
	int n = 0;

	for (size_t off = 0; off < rdlen; off += 1 + (size_t)p[off]) {
		if (off + 1 + p[off] > rdlen)
			return -1;
		n += p[off];
	}
	return n;
}

static void
dns_rr_txt_join(unsigned char *out, const unsigned char *p, uint16_t rdlen)
{
	for (size_t off = 0; off < rdlen; off += 1 + (size_t)p[off]) {
		memcpy(out, p + off + 1, p[off]);
		out += p[off];
	}
}

static int
dns_rr_take_one(const struct dns_msg_rr *rr, void *arg)
{
	struct dns_rr_walk *w = arg;
	int len = rr->rdlen;

	dns_msg_rr_ttls(rr, &w->f->ttl, &w->f->neg_ttl);
	if (!rr->is_answer || rr->type != w->type ||
	    rr->rrclass != DNS_CLASS_IN)
		return 0;
	if (w->type == DNS_TYPE_TXT &&
	    (len = dns_rr_txt_len(rr->rdata, rr->rdlen)) < 0) {
		w->is_bad_txt = true;
		return 1;
	}
	if (len > DNS_RR_DATA_MAX || w->n == DNS_RR_MAX) {
		w->n_dropped++;
		return 0;
	}
	w->rdata[w->n] = rr->rdata;
	w->rdlen[w->n] = rr->rdlen;
	w->len[w->n++] = (uint16_t)len;
	w->total += (size_t)len;
	return 0;
}

/* Static text for a response code other than NOERROR and NXDOMAIN. */
static const char *
dns_rr_rcode_error(int rcode)
{
	switch (rcode) {
	case 1:
		return dns_ares_error(ARES_EFORMERR);
	case 2:
		return dns_ares_error(ARES_ESERVFAIL);
	case 4:
		return dns_ares_error(ARES_ENOTIMP);
	case 5:
		return dns_ares_error(ARES_EREFUSED);
	default:
		return "DNS temporary failure";
	}
}

/* Take the records of the asked type from response m, whose header c-ares
 * matched to our query (id and question). */
static void
dns_rr_take(struct dns_flight *f, const unsigned char *m, int len)
{
	struct dns_rr_walk *w = xcalloc(1, sizeof(*w));
	struct dns_answer *a = f->ans;
	int rcode, rc;
	unsigned char *p;

	w->f = f;
	w->type = f->e->rrtype;
	if (len < 12 || !(m[2] & 0x80)) { /* QR: c-ares may echo the query */
		dns_warn_malformed(f, "RR", ARES_EBADRESP);
		dns_flight_decide(f, DNS_TEMPFAIL, DNS_ERR_MALFORMED);
		goto done;
	}
	rcode = m[3] & DNS_HDR_RCODE;
	if (rcode != 0 && rcode != 3) {
		dns_flight_decide(f, DNS_TEMPFAIL, dns_rr_rcode_error(rcode));
		goto done;
	}
	/* c-ares retried over TCP on TC; still cut short: records missing */
	if (m[2] & DNS_HDR_TC) {
		dns_flight_decide(f, DNS_TEMPFAIL, DNS_ERR_TRUNCATED);
		goto done;
	}
	rc = dns_msg_walk(m, len, dns_rr_take_one, w);
	if (rc != 0) {
		dns_warn_malformed(f, "RR", ARES_EBADRESP);
		dns_flight_decide(f, DNS_TEMPFAIL, DNS_ERR_MALFORMED);
		goto done;
	}
	if (rcode == 3) {
		dns_flight_decide(f, DNS_NXDOMAIN, DNS_ERR_NX);
		w->n = w->n_dropped = w->total = 0;
	} else {
		dns_flight_decide(f, DNS_OK, "");
	}
	if (w->n == 0) /* RFC 2308: NODATA lives as long as NXDOMAIN */
		f->ttl = f->neg_ttl < f->ttl ? f->neg_ttl : f->ttl;
	a->is_secure = (m[3] & DNS_HDR_AD) != 0;
	a->n_rrs = (uint16_t)w->n;
	a->n_dropped = (uint16_t)(w->n_dropped > UINT16_MAX ? UINT16_MAX :
							      w->n_dropped);
	a->rr_data = p = xmalloc(w->total ? w->total : 1);
	a->bytes = w->total;
	for (size_t i = 0; i < w->n; i++) {
		a->rr_len[i] = w->len[i];
		if (w->type == DNS_TYPE_TXT)
			dns_rr_txt_join(p, w->rdata[i], w->rdlen[i]);
		else
			memcpy(p, w->rdata[i], w->rdlen[i]);
		p += w->len[i];
	}
done:
	free(w);
}

static void
dns_rr_on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
		 int alen)
{
	struct dns_flight *f = arg;

	if (status == ARES_EDESTRUCTION || f->d->is_closing) {
		dns_flight_done(f);
		return;
	}
	if (status == ARES_SUCCESS)
		dns_rr_take(f, abuf, alen);
	else
		dns_flight_decide(f, DNS_TEMPFAIL, dns_ares_error(status));
	dns_flight_done(f);
}

void
dns_rr_flight_start(struct dns_flight *f)
{
	unsigned char *q;
	int qlen, rc;

	f->pending = 1; /* this launch */
	rc = ares_create_query(f->e->name, ns_c_in, f->e->rrtype, 0, 1, &q,
			       &qlen, DNS_RR_UDP_MAX);
	if (rc != ARES_SUCCESS) {
		if (rc == ARES_EBADNAME)
			dns_flight_decide(f, DNS_NXDOMAIN, DNS_ERR_BAD_NAME);
		else
			dns_flight_decide(f, DNS_TEMPFAIL, dns_ares_error(rc));
		dns_flight_done(f);
		return;
	}
	q[3] |= DNS_HDR_AD;
	f->pending++;
	ares_send(f->d->ch, q, qlen, dns_rr_on_answer, f);
	ares_free_string(q);
	dns_flight_done(f);
}

/* The answer is ready: copy it out, forget r, then call back (last, so
 * the callback may cancel, query again or even dns_free()). */
static void
dns_rr_fire(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *r = arg;
	const struct dns_answer *a = r->ans;
	struct dns_rrset *set = xmalloc(sizeof(*set)); /* 64 KiB: not stack */
	const unsigned char *p = a->rr_data;
	dns_rr_fn fn = r->rr_fn;
	void *fn_arg = r->arg;

	memset(set, 0, offsetof(struct dns_rrset, rr));
	set->status = a->status;
	set->error = a->error;
	set->secure = a->is_secure;
	set->ttl = r->ttl;
	set->n = a->n_rrs;
	set->n_dropped = a->n_dropped;
	for (size_t i = 0; i < a->n_rrs; i++) {
		set->rr[i].len = a->rr_len[i];
		memcpy(set->rr[i].data, p, a->rr_len[i]);
		p += a->rr_len[i];
	}
	dns_req_free(r->d, r);
	fn(set, fn_arg);
	free(set);
}

uint64_t
dns_query(struct dns *d, const char *name, uint16_t type, dns_rr_fn fn,
	  void *arg)
{
	struct dns_req *r = dns_req_new(d, dns_rr_fire);
	char key[DNS_RR_NAME_MAX + 1];

	r->rr_fn = fn;
	r->arg = arg;
	if (log_enabled(LOG_LVL_DEBUG, LOG_SUB_DNS)) {
		char q[LOG_QUOTE_BUF];

		log_debug(LOG_SUB_DNS,
			  "dns domain=%s kind=rr type=%u lookup=%llu",
			  log_quote(q, sizeof(q), name,
				    strnlen(name, DNS_RR_NAME_MAX + 2)),
			  (unsigned)type, (unsigned long long)r->id);
	}
	if (dns_rr_name_ok(name, key)) {
		dns_req_lookup(r, DNS_KIND_RR, type, key);
	} else {
		struct dns_answer *a =
			dns_cache_answer_new(DNS_NXDOMAIN, DNS_ERR_BAD_NAME);

		a->ttl = DNS_TTL_MIN;
		dns_req_ready(r, a, a->ttl);
	}
	return r->id;
}
