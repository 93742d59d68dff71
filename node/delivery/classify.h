/* Bounce classification: which of a fixed list of categories a delivery
 * failure belongs to, for the delivery log, the recipient's queue record
 * (`shoalctl queue show`) and DSNs. Derived from the RFC 3463 enhanced
 * status code first, then the basic reply code and a bounded,
 * case-insensitive scan of the reply text, then the phase a local failure
 * happened in. Pure functions; no I/O. Handles untrusted input: reply text
 * comes from remote servers and is read only within CLASSIFY_SCAN_MAX.
 *
 * The categories (their names are the contract; docs/pools.md lists them):
 *   invalid_recipient   the mailbox does not exist (5.1.1, 5.1.0, ...)
 *   mailbox_full        over quota (X.2.2)
 *   policy_block        spam, policy, reputation, blocklists (X.7.x)
 *   dns_failure         NXDOMAIN, SERVFAIL, null MX (5.1.10, X.4.3)
 *   tls_failure         TLS required but unavailable or failed
 *   rate_limited        a temporary refusal asking us to slow down
 *   message_too_large   X.3.4, X.2.3
 *   connection_failure  no reply at all: refused, timed out, lost
 *   other               none of the above */
#ifndef SHOAL_NODE_CLASSIFY_H
#define SHOAL_NODE_CLASSIFY_H

#include "node/delivery/smtpc.h"

#define CLASSIFY_SCAN_MAX 384 /* bytes of reply text looked at */

enum classify_cat {
	CLASSIFY_NONE = 0, /* not a failure (delivered) */
	CLASSIFY_INVALID_RECIPIENT,
	CLASSIFY_MAILBOX_FULL,
	CLASSIFY_POLICY_BLOCK,
	CLASSIFY_DNS_FAILURE,
	CLASSIFY_TLS_FAILURE,
	CLASSIFY_RATE_LIMITED,
	CLASSIFY_MESSAGE_TOO_LARGE,
	CLASSIFY_CONNECTION_FAILURE,
	CLASSIFY_OTHER,
};

/* Classify one reply (or local failure, code 0) that ended an attempt in
 * phase. A 2xx reply is CLASSIFY_NONE. A specific enhanced code decides
 * whatever the text says; the text decides only when there is no enhanced
 * code or it says little (X.0.0, X.5.0, ...). */
enum classify_cat classify_reply(const struct smtpc_reply *r,
				 enum smtpc_phase phase);

/* "invalid_recipient", ..., "other"; "" for CLASSIFY_NONE; "other" for a
 * value out of range. Static storage. */
const char *classify_name(enum classify_cat c);

/* A few words about the category named name (classify_name()'s text) for
 * a person reading a DSN; "other delivery failure" for an unknown name.
 * Static storage. */
const char *classify_describe(const char *name);

#endif
