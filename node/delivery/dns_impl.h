/* The resolver's insides, shared by dns.c and dns_query.c and by nothing
 * else (the interface is dns.h):
 *
 *   dns.c        lookups by id (coalesced onto one flight per name, or
 *                answered from the cache), the answer handed out with
 *                equal preferences shuffled, c-ares on libevent, setup
 *   dns_query.c  one flight: the c-ares queries for one name, their
 *                TTLs, the decision, caching it and waking the lookups
 *
 * dns_cache.c holds the answers. */
#ifndef SHOAL_NODE_DNS_IMPL_H
#define SHOAL_NODE_DNS_IMPL_H

#include <ares.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/delivery/dns.h"
#include "node/delivery/dns_cache.h"

struct event;
struct event_base;

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

extern const char DNS_ERR_BAD_NAME[]; /* "Invalid domain name" */

/* ---- dns.c --------------------------------------------------------------- */

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

#endif
