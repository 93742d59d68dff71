/* HTTPS requests of the TLS policies (MTA-STS fetches, TLS-RPT posts)
 * whose host name is found by the node's own resolver
 * (delivery.dns_servers), as every other name delivery looks up, not by
 * the system's: the host is resolved first, then curl is handed the
 * address for that name (CURLOPT_RESOLVE), so the certificate is still
 * checked against the name. The first address is used.
 * Handles untrusted input: the URL (from a DNS record, for TLS-RPT) is
 * checked before anything is asked. */
#ifndef SHOAL_NODE_POLICY_HTTP_H
#define SHOAL_NODE_POLICY_HTTP_H

#include "node/http/http_client.h"

struct dns;
struct policy_http;

/* Start q (q->resolve is set here); done is called once, later, from the
 * loop: with the answer, or with status 0 and an error ("bad URL",
 * "DNS: ...") when the host could not be found. Returns NULL only when
 * out of memory (done is not called). */
struct policy_http *policy_http_start(struct dns *dns, struct http_client *h,
				      const struct http_request *q,
				      http_done_fn done, void *arg);

/* Drop a request in flight without calling back. NULL does nothing. */
void policy_http_cancel(struct policy_http *p);

#endif
