/* MX resolution for delivery, and records of any type with the DNSSEC
 * "authenticated data" bit (MTA-STS and TLS-RPT TXT, DANE TLSA), with
 * c-ares on the node's event loop.
 *
 * Servers: delivery.dns_servers ("host:port" list) or /etc/resolv.conf.
 * A lookup gives the hosts to try in order: MX records by preference with
 * equal preferences shuffled, each with its A/AAAA addresses; no MX → the
 * domain itself (implicit MX, RFC 5321 5.1); a null MX (RFC 7505: a single
 * MX "." ) → DNS_NULL_MX. Answers are cached for their TTL (bounded: at
 * most DNS_CACHE_MAX names and DNS_CACHE_BYTES_MAX bytes, TTL clamped to
 * DNS_TTL_MIN..DNS_TTL_MAX, negative answers to at most 60 s).
 * The servers must be a validating resolver for dns_query()'s secure flag
 * to mean anything (RFC 4035 3.2.3, RFC 6840 5.7); it is taken as is.
 * Handles untrusted input: DNS answers are bounded in hosts and addresses,
 * records and record sizes. */
#ifndef SHOAL_NODE_DNS_H
#define SHOAL_NODE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/config.h"

struct event_base;
struct dns;

#define DNS_HOSTS_MAX 16      /* MX hosts kept per domain */
#define DNS_ADDRS_MAX 8       /* addresses kept per host */
#define DNS_NAME_MAX 255
#define DNS_CACHE_MAX 100000
#define DNS_CACHE_BYTES_MAX ((size_t)128 << 20) /* held by cached answers */
#define DNS_TTL_MIN 5
#define DNS_TTL_MAX 3600
#define DNS_TIMEOUT_MS 5000   /* per query try; c-ares retries 2 times */
#define DNS_RR_MAX 16         /* records kept per dns_query() answer */
#define DNS_RR_DATA_MAX 4096  /* bytes kept per record; bigger ones dropped */
#define DNS_RR_NAME_MAX 253   /* RFC 1035 2.3.4: 255 octets on the wire */

/* Record types for dns_query() (RFC 1035, 3596, 6698) */
#define DNS_TYPE_A 1
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_TLSA 52

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,    /* domain does not exist: bounce 5.1.2 */
	DNS_NO_HOSTS,    /* exists but has no MX and no A/AAAA: bounce 5.1.2 */
	DNS_NULL_MX,     /* RFC 7505: accepts no mail: bounce 5.1.10 */
	DNS_TEMPFAIL,    /* SERVFAIL, timeout, refused: defer */
};

struct dns_host {
	char name[DNS_NAME_MAX + 1];
	uint16_t preference;       /* 0 for an implicit MX */
	size_t n_addrs;            /* may be 0 when the host's lookup failed */
	struct sockaddr_storage addrs[DNS_ADDRS_MAX]; /* port 0 */
};

struct dns_result {
	enum dns_status status;
	const char *error;        /* static text for logs and bounces */
	int implicit_mx;          /* hosts[0] is the domain itself */
	size_t n_hosts;
	struct dns_host hosts[DNS_HOSTS_MAX];
	uint32_t ttl;             /* seconds the answer is good for */
};

/* Called once per lookup with the result, which lives only during the
 * call. Never called before dns_resolve_mx() returns. */
typedef void (*dns_mx_fn)(const struct dns_result *r, void *arg);

/* One record of a dns_query() answer. TXT: its character-strings joined
 * with nothing between (RFC 7208 3.3, RFC 8461 3.1), so an MTA-STS or
 * TLS-RPT record reads as one string; data may hold NUL bytes (and has no
 * terminator). Any other type: the RDATA as sent, e.g. TLSA: usage,
 * selector, matching type, then the association data (RFC 6698 2.1); A: 4
 * bytes, AAAA: 16. Names inside RDATA may be compressed pointers into a
 * message that is gone: ask only for types without names in their data. */
struct dns_rr {
	uint16_t len;
	unsigned char data[DNS_RR_DATA_MAX];
};

/* A dns_query() answer.
 *   DNS_OK        the name exists; n records of the type asked (n may be
 *                 0: NODATA). CNAMEs are followed by the resolver; records
 *                 of the asked type are taken whatever their owner.
 *   DNS_NXDOMAIN  the name does not exist (n = 0), or it is not a valid
 *                 host-style name (error "Invalid domain name", asked of
 *                 nobody, never secure): either way no record.
 *   DNS_TEMPFAIL  SERVFAIL (a validating resolver's answer to bogus data
 *                 too), REFUSED, timeout, a malformed or truncated answer:
 *                 ask again later. n = 0, never secure.
 * secure: the response carried AD=1, i.e. the resolver validated the
 * answer (a record set, or the proof of NXDOMAIN / NODATA) with DNSSEC.
 * n_dropped: records of the asked type left out, past DNS_RR_MAX or over
 * DNS_RR_DATA_MAX bytes (a caller that must see every record, like
 * MTA-STS's "exactly one v=STSv1 record", checks it is 0). */
struct dns_rrset {
	enum dns_status status;
	const char *error;  /* static text for logs; "" when DNS_OK */
	bool secure;
	uint32_t ttl;       /* seconds the answer is good for */
	size_t n, n_dropped;
	struct dns_rr rr[DNS_RR_MAX];
};

/* Called once per dns_query() with the answer, which lives only during
 * the call (it is about 64 KiB: copy what you keep). Never called before
 * dns_query() returns. */
typedef void (*dns_rr_fn)(const struct dns_rrset *r, void *arg);

/* Set up c-ares with the configured servers. Returns 0 and sets *out, or
 * -errno / SHOAL_E_CONFIG (bad server string, logged). */
int dns_new(struct event_base *base, const struct config *cfg,
	    struct dns **out);

/* Cancels lookups in flight (their callbacks are not called).
 * dns_free(NULL) does nothing. */
void dns_free(struct dns *d);

/* Resolve the delivery hosts for a domain (lower-cased, no trailing dot).
 * Returns a lookup id (never 0) for dns_cancel(). */
uint64_t dns_resolve_mx(struct dns *d, const char *domain, dns_mx_fn fn,
			void *arg);

/* Resolve one host name to addresses (for delivery.routes hosts): the
 * result has one host, or DNS_NXDOMAIN / DNS_NO_HOSTS / DNS_TEMPFAIL.
 * An IP address literal resolves at once (still via the callback). */
uint64_t dns_resolve_host(struct dns *d, const char *host, dns_mx_fn fn,
			  void *arg);

/* Ask for the records of type (DNS_TYPE_*, or any other number) at name
 * (case-blind, one trailing dot allowed; letters, digits, '-' and '_' in
 * labels of 1 to 63, at most DNS_RR_NAME_MAX in all), with the AD bit
 * set in the query and EDNS0 (1232-byte UDP payload; c-ares retries over
 * TCP when the answer is truncated). Concurrent queries of one (type,
 * name) share one flight; answers are cached, the secure flag with them,
 * TEMPFAIL never. Returns a lookup id (never 0) for dns_cancel(). */
uint64_t dns_query(struct dns *d, const char *name, uint16_t type,
		   dns_rr_fn fn, void *arg);

/* Forget a lookup (any kind): its callback will not be called. */
void dns_cancel(struct dns *d, uint64_t id);

/* Test hook: wait timeout_ms per query try instead of DNS_TIMEOUT_MS (the
 * three tries of a dead server take 7 times that). Call right after
 * dns_new(), before any lookup. Returns 0, -EINVAL (timeout_ms <= 0 or
 * lookups made already), or as dns_new(). */
int dns_set_timeout_ms(struct dns *d, int timeout_ms);

#endif
