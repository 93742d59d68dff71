/* The answer cache behind node/delivery/dns.c and dns_query.c; internal
 * to the resolver.
 *
 * Owns the refcounted answer (struct dns_answer), the entries that hold
 * one per (kind, record type, name) for its TTL, the hash table that finds
 * them (dns.c also files its lookups by id in one) and the heap by expiry
 * that evicts past DNS_CACHE_MAX entries or DNS_CACHE_BYTES_MAX bytes.
 * Leaves querying, TTL choice and what gets cached to dns_query.c and
 * dns_rr.c. Names come from mail senders and DNS: they are hashed with a
 * random seed and compared case-blind. */
#ifndef SHOAL_NODE_DNS_CACHE_H
#define SHOAL_NODE_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/delivery/dns.h"

struct dns_flight;

/* MX and host lookups (dns_resolve_*()), records of one type (dns_query()) */
enum dns_kind { DNS_KIND_MX, DNS_KIND_HOST, DNS_KIND_RR };

struct dns_addr {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t ip[16];
};

/* A host as cached: about 160 bytes instead of a struct dns_host. */
struct dns_ahost {
	char *name;
	uint16_t preference;
	size_t n_addrs;
	struct dns_addr addrs[DNS_ADDRS_MAX];
};

/* Refcounted: one ref for the cache entry, one per lookup it answers. */
struct dns_answer {
	int refs;
	enum dns_status status;
	const char *error;
	uint32_t ttl;
	size_t bytes;            /* heap held beyond the struct (cache bound) */
	/* DNS_KIND_MX and DNS_KIND_HOST */
	int implicit_mx;
	size_t n_hosts;
	struct dns_ahost *hosts; /* by preference; cut to n_hosts when done */
	/* DNS_KIND_RR */
	bool is_secure;          /* the response had AD=1 */
	uint16_t n_rrs, n_dropped;
	uint16_t rr_len[DNS_RR_MAX];
	unsigned char *rr_data;  /* the n_rrs records back to back */
};

/* Intrusive: embed first in the struct filed, with hash set before adding. */
struct dns_hnode {
	struct dns_hnode *next;
	uint64_t hash;
};

struct dns_htab {
	struct dns_hnode **b;
	size_t nb, n; /* nb: 0 or a power of two */
};

/* A cached answer (ans), or a name being resolved (f). */
struct dns_entry {
	struct dns_hnode hn; /* first: the table holds &hn */
	enum dns_kind kind;
	uint16_t rrtype;      /* DNS_KIND_RR: the type asked; else 0 */
	char *name;
	struct dns_flight *f; /* dns.c's; the cache only carries it */
	struct dns_answer *ans;
	uint64_t expire_ms;
	size_t heap_i;
	size_t bytes;         /* counted in the cache's bytes while ans is set */
};

/* Embedded in struct dns. */
struct dns_cache {
	struct dns_htab entries;
	struct dns_entry **heap; /* cached answers, soonest expiry first */
	size_t n_heap, cap_heap;
	size_t bytes;            /* entries with answers: names, answers */
	uint64_t hash_seed;
};

/* The monotonic clock, in ms, that expiries are measured on. */
uint64_t dns_cache_now_ms(void);

/* A new answer with one ref (the caller's, dropped with
 * dns_cache_answer_unref()), no hosts and no records (hosts, when wanted,
 * is the caller's to allocate). error is static text. */
struct dns_answer *dns_cache_answer_new(enum dns_status status,
					const char *error);

/* Drop one ref; the last frees a. NULL does nothing. */
void dns_cache_answer_unref(struct dns_answer *a);

/* File n under n->hash; the table grows as needed. */
void dns_cache_htab_add(struct dns_htab *t, struct dns_hnode *n);

/* Unfile n, which must be in t (else SHOAL_ASSERT). */
void dns_cache_htab_del(struct dns_htab *t, struct dns_hnode *n);

/* The chain that holds any node with this hash (others too: compare), or
 * NULL. Valid until the table changes. */
struct dns_hnode *dns_cache_htab_first(const struct dns_htab *t, uint64_t hash);

/* Start an empty cache; hash_seed keys the hash of names. */
void dns_cache_init(struct dns_cache *c, uint64_t hash_seed);

/* Delete every entry and release the memory. Flights must be over. */
void dns_cache_free(struct dns_cache *c);

/* The entry for (kind, rrtype, name), or NULL; rrtype is 0 unless kind
 * is DNS_KIND_RR. One whose answer has expired is deleted and NULL
 * returned. Valid until dns_cache_del() or the next dns_cache_put(),
 * which may evict it. */
struct dns_entry *dns_cache_find(struct dns_cache *c, enum dns_kind kind,
				 uint16_t rrtype, const char *name);

/* A new entry for (kind, rrtype, name), which must not be in c yet, with
 * neither answer nor flight. Lives until dns_cache_del(). */
struct dns_entry *dns_cache_add(struct dns_cache *c, enum dns_kind kind,
				uint16_t rrtype, const char *name);

/* Give entry e the answer a for a->ttl seconds (takes a ref on a), then
 * delete expired answers and, past DNS_CACHE_MAX entries or
 * DNS_CACHE_BYTES_MAX bytes, those expiring soonest: e itself may go. */
void dns_cache_put(struct dns_cache *c, struct dns_entry *e,
		   struct dns_answer *a);

/* Delete e and drop its answer's ref. Its flight, if any, is the caller's. */
void dns_cache_del(struct dns_cache *c, struct dns_entry *e);

#endif
