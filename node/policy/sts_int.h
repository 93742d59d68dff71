/* The insides of node/policy/sts.c and sts_store.c, shared by them and
 * by nothing else (the interface is sts.h):
 *
 *   sts.c        entries by domain, flights (TXT record, HTTPS fetch),
 *                answers, policies learned from other nodes
 *   sts_store.c  policies as shared objects, their records in the store
 *                (written, read back, swept when expired) */
#ifndef SHOAL_NODE_POLICY_STS_INT_H
#define SHOAL_NODE_POLICY_STS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/util.h>

#include "node/delivery/dns.h"
#include "node/policy/sts.h"
#include "node/store/store.h"
#include "node/tls/sts_policy.h"

struct event;
struct policy_http;

#define STS_BUCKETS 4096
#define STS_TXT_TYPE 16           /* TXT */
#define STS_REC_PREFIX "sts/"
#define STS_REC_VERSION "sts1"
#define STS_TTL_MIN DNS_TTL_MIN   /* look at the TXT record again after */
#define STS_TTL_MAX 3600
#define STS_SWEEP_S 600           /* expired records leave the store */

/* A policy shared by the lookups that were given it. */
struct sts_pol {
	int refs;
	char id[STS_ID_MAX + 1];
	uint64_t expires;         /* unix seconds: fetched + max_age */
	struct sts_policy p;
};

struct sts_entry;
struct sts_sweep;

/* One sts_get() until its callback runs or it is cancelled. */
struct sts_waiter {
	struct sts *s;
	struct sts_entry *e;      /* NULL once on the ready list */
	deliver_sts_fn fn;
	void *cbarg;
	struct sts_pol *pol;      /* the answer (a reference), or NULL */
	struct sts_waiter *prev, *next;
};

struct sts_entry {
	struct sts *s;
	char domain[DNS_NAME_MAX + 1];
	struct sts_pol *pol;      /* cached policy (a reference), or NULL */
	bool is_loaded;           /* the store was read */
	bool is_busy;             /* a flight is under way */
	uint64_t fresh_until;     /* unix s: no new lookup before */
	uint32_t txt_ttl;
	char txt_id[STS_ID_MAX + 1]; /* the record's id, while fetching */
	uint64_t dns_id;          /* TXT or host lookup in flight, or 0 */
	struct policy_http *call; /* fetch in flight, or NULL */
	bool is_fetching;         /* counted in sts.n_fetching */
	struct sts_entry *fnext;  /* waiting for a fetch slot */
	struct sts_waiter *waiters;
	struct sts_entry *hnext;  /* bucket chain */
	struct sts_entry *lprev, *lnext; /* recency: head = newest */
};

struct sts {
	struct sts_deps deps;
	struct sts_entry *buckets[STS_BUCKETS];
	struct sts_entry *lru_head, *lru_tail;
	size_t n_entries;
	struct sts_waiter *ready; /* answered, waiting for the event */
	size_t n_fetching;        /* fetches under way, <= STS_FETCH_MAX */
	struct sts_entry *fq_head, *fq_tail; /* waiting for a slot */
	struct event *ev_ready;
	struct sts_stats stats;
	uint64_t warn_next;       /* unix s: next fetch warning allowed */
	struct event *ev_sweep;   /* STS_SWEEP_S */
	struct sts_sweep *sweep;  /* the sweep item queued, or NULL */
	struct sts_learning *learning; /* learned, waiting for the TXT check */
	size_t n_learning;
	char sweep_from[STORE_LOCAL_NAME_MAX + 1];
};

static inline uint64_t
sts_now(void)
{
	return (uint64_t)time(NULL);
}

#define STS_LEARN_MAX 1024        /* learned policies waiting for DNS */

struct sts_learning;

/* ---- sts.c ---- */

/* Take pol (a reference, handed over) as domain's policy, another node's
 * fetch whose id the domain's TXT record confirmed: unless the cache
 * holds one fetched later, or one in a stronger mode (enforce over
 * testing over none) that has not expired. Returns 0 when taken, 1 when
 * not. */
int sts_adopt(struct sts *s, const char *domain, struct sts_pol *pol);

/* ---- sts_store.c ---- */

struct sts_pol *sts_pol_ref(struct sts_pol *pol);
void sts_pol_unref(struct sts_pol *pol);

/* The policy of a stored record, or NULL when it expired by now or does
 * not parse. */
struct sts_pol *sts_pol_parse_record(const char *rec, size_t len,
				     uint64_t now);

/* p as its policy-string lines, one per line, after head bytes left
 * free, into *out (malloc'd); returns the length of the lines. */
size_t sts_pol_text(const struct sts_policy *p, size_t head, char **out);

/* Write domain's record (pol NULL: delete it) through the commit. */
void sts_store_put(struct sts *s, const char *domain,
		   const struct sts_pol *pol);

/* Read e's record into e->pol (once per entry). */
void sts_store_load(struct sts *s, struct sts_entry *e);

/* The sweep timer's callback (every STS_SWEEP_S). */
void sts_on_sweep(evutil_socket_t fd, short what, void *arg);

/* sts_free() with a sweep item still queued: its done callback must
 * not touch s. */
void sts_sweep_orphan(struct sts_sweep *sw);

#endif
