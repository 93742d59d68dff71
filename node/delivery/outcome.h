/* Delivery-error policy, in one place (as Postfix keeps it in
 * smtp_trouble.c): what a reply or a failure means for a recipient
 * (delivered, deferred, bounced) and with which DSN status (RFC 3463),
 * what a DNS answer or a local refusal means for a job, whether a
 * connection failure moves on to the next MX host (or retries the host in
 * plain text, or marks it down) and when the whole destination is
 * deferred, when a deferred recipient is tried again, and when a deferral
 * becomes a bounce (queue lifetime). The SMTP client, the resolver and the
 * scheduler report; this module decides (classify.c names the kind of
 * failure). Pure functions; no I/O. */
#ifndef SHOAL_NODE_OUTCOME_H
#define SHOAL_NODE_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

#include "node/delivery/classify.h"
#include "node/delivery/dns.h"
#include "node/delivery/smtpc.h"

enum outcome {
	OUTCOME_DELIVERED = 0,
	OUTCOME_DEFERRED,
	OUTCOME_BOUNCED,
};

/* What a recipient's attempt came to. */
struct outcome_verdict {
	enum outcome outcome;
	enum classify_cat category;  /* CLASSIFY_NONE when delivered */
	char status[16];             /* DSN status (RFC 3463), "5.1.1" */
	uint64_t retry_at;           /* deferred: 0 = the retry schedule
					decides; else due again then (unix
					s), and the attempt does not count */
};

/* Failures found before any server was asked (node/delivery/deliver.c,
 * node/queue/ingest.c). */
enum outcome_local {
	OUTCOME_LOCAL_BAD_ROUTE = 0, /* a delivery.routes host that does not
					parse: our config, deferred 4.3.5 */
	OUTCOME_LOCAL_NO_DOMAIN,     /* recipient without a domain: 5.1.3 */
	OUTCOME_LOCAL_BAD_LITERAL,   /* a malformed [address literal]: 5.1.2 */
	OUTCOME_LOCAL_SUPPRESSED,    /* on the suppression list (mode
					"bounce"): bounced at once, 5.1.1 */
};

/* "delivered", "deferred" or "bounced" (a value out of range reads
 * "deferred"). Static storage. */
const char *outcome_name(enum outcome oc);

/* What a recipient's final reply means. Code 0 (a local failure: lost
 * connection, timeout) defers; 2xx delivers; 4xx defers; 5xx bounces. */
enum outcome outcome_of_reply(const struct smtpc_reply *r);

/* The verdict for one recipient of a message the server was asked to take:
 * r is its own reply (RCPT's, or for a recipient accepted at RCPT the
 * reply after the final dot, or the local failure that ended the attempt,
 * code 0) and failed_phase where the attempt ended (SMTPC_PH_QUIT when
 * every phase ran). outcome_of_reply(), classify_reply(), outcome_status(). */
void outcome_of_rcpt(const struct smtpc_reply *r, enum smtpc_phase failed_phase,
		     struct outcome_verdict *out);

/* Whether a delivered recipient gets a "relayed" DSN (RFC 3461 4.1): the
 * server did not offer DSN, so no notification will come from beyond it. */
bool outcome_is_relayed(enum outcome oc, bool peer_has_dsn);

/* Whether a failure to set up a connection (connect, greeting, EHLO, TLS)
 * should move on to the next MX host. Always true today: RFC 5321 5.1 asks
 * the client to try the next host on any connection-level trouble, and a
 * 5xx greeting says only that this host will not talk to us. Kept as a
 * decision so that it is made here. */
bool outcome_try_next_host(enum smtpc_phase phase, const struct smtpc_reply *r);

/* Whether a setup failure tries the same address again in plain text:
 * TLS failed (phase SMTPC_PH_TLS) where it was opportunistic (RFC 7435)
 * and this address has not been tried in plain text yet. Comes before
 * outcome_try_next_host(). */
bool outcome_retry_plain(enum smtpc_phase phase, bool is_tls_opportunistic,
			 bool is_plain_tried);

/* Whether a setup failure marks the address down for a while (others are
 * tried first): nothing answered (connect) or no SMTP service (greeting).
 * An EHLO or TLS failure says nothing about other senders' chances. */
bool outcome_marks_host_down(enum smtpc_phase phase);

/* The verdict for every job waiting on a destination whose every address
 * failed to set up a connection (the whole destination), from the last
 * failure: always deferred, whatever the reply (a 5xx greeting refuses the
 * connection, not the recipients), with a class 4 status. */
void outcome_of_setup_failure(enum smtpc_phase phase,
			      const struct smtpc_reply *r,
			      struct outcome_verdict *out);

/* The verdict for a job whose domain lookup failed. Returns false for
 * DNS_OK (the job goes on; out untouched), else true and out: null MX
 * bounces 5.1.10 (RFC 7505 4.2), NXDOMAIN and no hosts bounce 5.1.2,
 * anything else (SERVFAIL, timeout) defers 4.4.3. */
bool outcome_of_dns(enum dns_status st, struct outcome_verdict *out);

/* The verdict for a failure found before any server was asked. */
void outcome_of_local(enum outcome_local why, struct outcome_verdict *out);

/* The verdict for a job that adaptive shaping held back (a suspension
 * until until_s, unix seconds; node/delivery/adapt.h): deferred, rate
 * limited, 4.4.5 (congestion), not an attempt, due again at until_s plus
 * a spread of up to a tenth of the wait (at most 60 s), so that held mail
 * does not return in one herd. */
void outcome_of_suspension(uint64_t now, uint64_t until_s,
			   struct outcome_verdict *out);

/* The next try for a recipient deferred for the attempts-th time
 * (attempts >= 1), from delivery.retry_schedule (the last slot repeats),
 * with +-10% jitter so that deferred mail does not return in a herd. */
uint64_t outcome_next_try(uint64_t now, uint32_t attempts,
			  const uint32_t *schedule, size_t n_schedule);

/* Whether a message that arrived at `arrival` has been queued too long. */
bool outcome_is_expired(uint64_t now, uint64_t arrival,
			uint32_t max_queue_lifetime);

/* The outcome that stands for a recipient after an attempt: a deferral of
 * a message queued past max_queue_lifetime (outcome_is_expired()) ends the
 * recipient as a bounce with this attempt's error; anything else stands. */
enum outcome outcome_final(enum outcome oc, uint64_t now, uint64_t arrival,
			   uint32_t max_queue_lifetime);

/* The DSN status (RFC 3463) for a reply: its enhanced code when it has
 * one whose class matches, else derived from the basic code ("5.0.0",
 * "4.0.0", "2.0.0"). A code other than 2xx or 5xx (354, 1xx) has class 4:
 * RFC 3463 has no other. For code 0, "4.4.1" (no answer from host) or, with
 * the DNS flag, "4.4.3". Writes at most 16 bytes into out. */
void outcome_status(const struct smtpc_reply *r, char out[16]);

#endif
