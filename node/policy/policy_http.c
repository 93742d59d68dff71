/* HTTPS requests with the node's resolver (policy_http.h): the URL's
 * host and port taken apart, the name resolved, the request started with
 * the address pinned to the name.
 * Handles untrusted input: URLs from DNS records (TLS-RPT rua), bounded
 * and checked here; curl parses them again. */
#include "node/policy/policy_http.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xmalloc.h"
#include "node/delivery/dns.h"

#define PHTTP_URL_MAX 2048

struct policy_http {
	struct dns *dns;
	struct http_client *h;
	struct http_request q;
	char url[PHTTP_URL_MAX + 1];
	char host[DNS_NAME_MAX + 1];
	unsigned port;
	char *body;                 /* the request's, copied */
	uint64_t lookup;            /* dns id while resolving */
	struct http_call *call;     /* then the request */
	struct event *ev_fail;      /* a failure reported from the loop */
	char error[DNS_NAME_MAX + 200];
	http_done_fn done;
	void *arg;
};

/* "https://host[:port]/..." or "http://...": host and port, or -1. */
static int
phttp_split(struct policy_http *p)
{
	const char *s = p->url, *h, *end;
	size_t hl;

	if (strncasecmp(s, "https://", 8) == 0) {
		h = s + 8;
		p->port = 443;
	} else if (strncasecmp(s, "http://", 7) == 0) {
		h = s + 7;
		p->port = 80;
	} else {
		return -1;
	}
	end = h + strcspn(h, ":/?#");
	hl = (size_t)(end - h);
	if (hl == 0 || hl >= sizeof(p->host) || memchr(h, '@', hl) ||
	    memchr(h, '[', hl))
		return -1; /* no user info, no IPv6 literal in a report URI */
	memcpy(p->host, h, hl);
	p->host[hl] = '\0';
	if (*end == ':') {
		char *e;
		unsigned long port = strtoul(end + 1, &e, 10);

		if (e == end + 1 || port == 0 || port > 65535 ||
		    (*e != '\0' && *e != '/' && *e != '?' && *e != '#'))
			return -1;
		p->port = (unsigned)port;
	}
	return 0;
}

static void
phttp_free(struct policy_http *p)
{
	if (p->ev_fail)
		event_free(p->ev_fail);
	free(p->body);
	free(p);
}

static void
phttp_on_done(void *arg, const struct http_response *r)
{
	struct policy_http *p = arg;

	p->call = NULL;
	p->done(p->arg, r);
	phttp_free(p);
}

static void
phttp_on_fail(evutil_socket_t fd, short what, void *arg)
{
	struct policy_http *p = arg;
	struct http_response r = {
		.error = p->error,
		.body = "",
		.content_type = "",
	};

	(void)fd;
	(void)what;
	p->done(p->arg, &r);
	phttp_free(p);
}

static void
phttp_fail(struct policy_http *p, const char *why)
{
	snprintf(p->error, sizeof(p->error), "%s", why);
	event_active(p->ev_fail, EV_TIMEOUT, 0);
}

static void
phttp_go(struct policy_http *p, const char *ip, int family)
{
	char resolve[DNS_NAME_MAX + INET6_ADDRSTRLEN + 16];

	snprintf(resolve, sizeof(resolve),
		 family == AF_INET6 ? "%s:%u:[%s]" : "%s:%u:%s", p->host,
		 p->port, ip);
	p->q.resolve = resolve;
	p->call = http_client_start(p->h, &p->q, phttp_on_done, p);
	if (p->call == NULL)
		phttp_fail(p, "could not start the request");
}

static void
phttp_on_host(const struct dns_result *r, void *arg)
{
	struct policy_http *p = arg;
	const struct sockaddr_storage *sa;
	char ip[INET6_ADDRSTRLEN], why[DNS_NAME_MAX + 200];

	p->lookup = 0;
	if (r->status != DNS_OK || r->n_hosts == 0 ||
	    r->hosts[0].n_addrs == 0) {
		snprintf(why, sizeof(why), "DNS: %s: %s", p->host,
			 r->error ? r->error : "no address");
		phttp_fail(p, why);
		return;
	}
	sa = &r->hosts[0].addrs[0];
	if (sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
			  sizeof(ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  ip, sizeof(ip));
	phttp_go(p, ip, sa->ss_family);
}

struct policy_http *
policy_http_start(struct dns *dns, struct http_client *h,
		  const struct http_request *q, http_done_fn done, void *arg)
{
	struct policy_http *p = xcalloc(1, sizeof(*p));
	struct in_addr a4;

	p->dns = dns;
	p->h = h;
	p->q = *q;
	p->done = done;
	p->arg = arg;
	p->ev_fail = event_new(http_client_base(h), -1, 0, phttp_on_fail, p);
	if (p->ev_fail == NULL) {
		phttp_free(p);
		return NULL;
	}
	if (q->body != NULL) {
		p->body = xmalloc(q->body_len ? q->body_len : 1);
		memcpy(p->body, q->body, q->body_len);
		p->q.body = p->body;
	}
	if (strlen(q->url) > PHTTP_URL_MAX) {
		phttp_fail(p, "bad URL: too long");
		return p;
	}
	snprintf(p->url, sizeof(p->url), "%s", q->url);
	p->q.url = p->url;
	if (phttp_split(p) != 0) {
		phttp_fail(p, "bad URL");
		return p;
	}
	if (inet_pton(AF_INET, p->host, &a4) == 1)
		phttp_go(p, p->host, AF_INET);
	else
		p->lookup = dns_resolve_host(dns, p->host, phttp_on_host, p);
	return p;
}

void
policy_http_cancel(struct policy_http *p)
{
	if (p == NULL)
		return;
	if (p->lookup != 0)
		dns_cancel(p->dns, p->lookup);
	if (p->call != NULL)
		http_client_cancel(p->h, p->call);
	phttp_free(p);
}
