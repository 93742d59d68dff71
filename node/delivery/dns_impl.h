/* The resolver's insides, shared by dns.c, dns_query.c and dns_rr.c and
 * by nothing else (the interface is dns.h):
 *
 *   dns.c        lookups by id (coalesced onto one flight per name, or
 *                answered from the cache), the answer handed out with
 *                equal preferences shuffled, c-ares on libevent, setup
 *   dns_query.c  one flight: the c-ares queries for one name, their
 *                TTLs, the decision, caching it and waking the lookups;
 *                the raw message walker
 *   dns_rr.c     dns_query(): records of one type with the AD bit, one
 *                hand-built query per flight, the answer parsed raw
 *
 * dns_cache.c holds the answers. */
#ifndef SHOAL_NODE_DNS_IMPL_H
#define SHOAL_NODE_DNS_IMPL_H

#include <ares.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/delivery/dns.h"
#include "node/delivery/dns_cache.h"

/* One dns_resolve_*() or dns_query() call, until its callback runs or it
 * is cancelled. */
struct dns_req {
	struct dns_hnode hn; /* hash: the id */
	struct dns *d;
	uint64_t id;
	dns_mx_fn fn;                 /* dns_resolve_*() */
	dns_rr_fn rr_fn;              /* dns_query() */
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

/* The c-ares queries answering one entry. Lives until the last returns.
 * A DNS_KIND_RR flight (dns_rr.c) uses no host slots: one query. */
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

extern const char DNS_ERR_BAD_NAME[]; /* "Invalid domain name" */
extern const char DNS_ERR_MALFORMED[];
extern const char DNS_ERR_NX[];       /* NXDOMAIN */

/* ---- dns.c --------------------------------------------------------------- */

/* A lookup filed under a new id, whose event runs fire(r) once it is
 * ready; the caller sets fn or rr_fn and arg, then calls dns_req_ready()
 * or dns_req_lookup(). Freed with dns_req_free(). */
struct dns_req *dns_req_new(struct dns *d, event_callback_fn fire);

/* r is answered with a (r takes over one ref of a) for ttl seconds: its
 * event runs from the loop. */
void dns_req_ready(struct dns_req *r, struct dns_answer *a, uint32_t ttl);

/* Answer r from the cache, or wait on the flight for (kind, rrtype, name),
 * starting one if there is none. name is valid for its kind. */
void dns_req_lookup(struct dns_req *r, enum dns_kind kind, uint16_t rrtype,
		    const char *name);

/* Unfile r, take it off its flight, drop its answer's ref, free it. */
void dns_req_free(struct dns *d, struct dns_req *r);

/* Permute order[] (indexes into h, sorted by preference): Fisher-Yates
 * within each run of equal preference, RFC 5321 5.1. */
void dns_shuffle_runs(struct dns *d, const struct dns_ahost *h, size_t *order,
		      size_t n);

/* Whether a warning about an answer may be logged now (one per 10 s);
 * if so, *folded is how many were left out since the last one. */
bool dns_warn_ok(struct dns *d, uint64_t *folded);

/* ---- dns_query.c --------------------------------------------------------- */

/* A flight for entry e (e->f is set); started with dns_flight_start()
 * once its first waiter is on it (an answer may come inside ares_query()). */
void dns_flight_new(struct dns *d, struct dns_entry *e);
void dns_flight_start(struct dns_flight *f);

/* One query of f came back (or c-ares is being destroyed): the last one
 * decides, caches and wakes the waiters, and frees f. */
void dns_flight_done(struct dns_flight *f);

/* Set f's answer, final whatever the other queries bring. */
void dns_flight_decide(struct dns_flight *f, enum dns_status st,
		       const char *err);

/* Log, rate-limited, that query of f's name got a malformed answer. */
void dns_warn_malformed(struct dns_flight *f, const char *query, int rc);

/* Static text for a c-ares failure (ARES_ESERVFAIL, ARES_ETIMEOUT, ...). */
const char *dns_ares_error(int status);

/* One answer or authority record met by dns_msg_walk(). rdata points into
 * the message, rdlen bytes, all of them inside it. */
struct dns_msg_rr {
	bool is_answer;             /* else authority */
	uint16_t type, rrclass;
	uint32_t ttl;               /* RFC 2181 8: over 2^31 - 1 reads 0 */
	const unsigned char *rdata;
	uint16_t rdlen;
};

/* Called per record; nonzero stops the walk with that value. */
typedef int (*dns_msg_rr_fn)(const struct dns_msg_rr *rr, void *arg);

/* Walk the question, answer and authority sections of the response m of
 * len bytes (QR must be set), calling fn for each answer and authority
 * record; owner names are skipped, never followed. Returns 0, -1 when m
 * is malformed (fn may have seen records before), or fn's nonzero. */
int dns_msg_walk(const unsigned char *m, int len, dns_msg_rr_fn fn,
		 void *arg);

/* Fold rr's TTL into *pos (answer records: their minimum) or *neg (an SOA
 * in the authority section, RFC 2308 5: min(TTL, MINIMUM)). */
void dns_msg_rr_ttls(const struct dns_msg_rr *rr, uint32_t *pos,
		     uint32_t *neg);

/* ---- dns_rr.c ------------------------------------------------------------ */

/* Send f's one query (f->e->kind is DNS_KIND_RR). */
void dns_rr_flight_start(struct dns_flight *f);

#endif
