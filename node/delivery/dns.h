/* MX resolution for delivery, with c-ares on the node's event loop.
 *
 * Servers: delivery.dns_servers ("host:port" list) or /etc/resolv.conf.
 * A lookup gives the hosts to try in order: MX records by preference with
 * equal preferences shuffled, each with its A/AAAA addresses; no MX → the
 * domain itself (implicit MX, RFC 5321 5.1); a null MX (RFC 7505: a single
 * MX "." ) → DNS_NULL_MX. Answers are cached for their TTL (bounded: at
 * most DNS_CACHE_MAX domains, TTL clamped to DNS_TTL_MIN..DNS_TTL_MAX).
 * Handles untrusted input: DNS answers are bounded in hosts and addresses. */
#ifndef SHOAL_NODE_DNS_H
#define SHOAL_NODE_DNS_H

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
#define DNS_TTL_MIN 5
#define DNS_TTL_MAX 3600
#define DNS_TIMEOUT_MS 5000   /* per query try; c-ares retries 2 times */

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

/* Forget a lookup: its callback will not be called. */
void dns_cancel(struct dns *d, uint64_t id);

/* Test hook: wait timeout_ms per query try instead of DNS_TIMEOUT_MS (the
 * three tries of a dead server take 7 times that). Call right after
 * dns_new(), before any lookup. Returns 0, -EINVAL (timeout_ms <= 0 or
 * lookups made already), or as dns_new(). */
int dns_set_timeout_ms(struct dns *d, int timeout_ms);

#endif
