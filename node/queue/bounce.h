/* Delivery status notifications (RFC 3464 multipart/report, RFC 3461
 * semantics): failure bounces, delay warnings and success notices, sent to
 * the original envelope sender from the null sender. Builds the message
 * text only; queuing it is the caller's job. Never called for a message
 * whose sender is <> (RFC 3461 6.2, RFC 5321 6.1). */
#ifndef SHOAL_NODE_BOUNCE_H
#define SHOAL_NODE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "proto/queue.pb-c.h"

enum bounce_action {
	BOUNCE_FAILED = 0,
	BOUNCE_DELAYED,
	BOUNCE_DELIVERED,  /* NOTIFY=SUCCESS to a server without DSN: "relayed" */
};

struct bounce_rcpt {
	const char *address;      /* final recipient */
	const char *orcpt;        /* "rfc822;..." as given, or "" */
	enum bounce_action action;
	const char *status;       /* "5.1.1" */
	const char *remote_mta;   /* MX host name, or "" */
	int code;                 /* remote reply code, 0 for a local reason */
	const char *text;         /* remote reply text or local reason (untrusted) */
	const char *category;     /* node/delivery/classify.h name, "" or NULL for none */
	const char *tls_policy;   /* the last attempt's TLS policy, "" or NULL */
	const char *tls;          /* its TLS version and cipher, "" or NULL */
};

struct bounce_info {
	const char *reporting_mta; /* our name (delivery.helo_name) */
	const char *qid;
	const char *sender;        /* original MAIL FROM, the DSN's recipient */
	const char *envid;         /* "" for none */
	int ret;                   /* 0 default (headers), 1 FULL, 2 HDRS */
	uint64_t arrival;          /* unix seconds */
	uint64_t now;
	const struct bounce_rcpt *rcpts;
	size_t n_rcpts;
	const char *orig;          /* the original message as queued */
	size_t orig_len;
};

/* Whether the sender asked for (or by default gets) this notice about
 * recipient r: never for the null sender or NOTIFY=NEVER; failures unless
 * NOTIFY leaves them out; delays and successes only when asked. */
bool bounce_wanted(const Shoal__Envelope *env, const Shoal__Recipient *r,
		   enum bounce_action a);

/* Append the DSN message (headers and body, CRLF line ends) to out.
 * Returns 0 or -EMSGSIZE when out's bound is too small. */
int bounce_build(const struct bounce_info *bi, struct buf *out);

/* The length of the header section of msg (up to and including the empty
 * line): 2 when msg starts with the empty line (no header fields), len when
 * it has no empty line (headers only). */
size_t bounce_header_len(const char *msg, size_t len);

#endif
