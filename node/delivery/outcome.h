/* Delivery-error policy, in one place (as Postfix keeps it in
 * smtp_trouble.c): what a reply or a failure means for a recipient
 * (delivered, deferred, bounced), whether a connection failure moves on to
 * the next MX host and when a deferred recipient is tried again. The SMTP
 * client reports; this module decides (node/classify.c names the kind of
 * failure). */
#ifndef SHOAL_NODE_OUTCOME_H
#define SHOAL_NODE_OUTCOME_H

#include <stdbool.h>
#include <stdint.h>

#include "node/delivery/smtpc.h"

enum outcome {
	OUTCOME_DELIVERED = 0,
	OUTCOME_DEFERRED,
	OUTCOME_BOUNCED,
};

/* What a recipient's final reply means. Code 0 (a local failure: lost
 * connection, timeout) defers; 2xx delivers; 4xx defers; 5xx bounces. */
enum outcome outcome_of_reply(const struct smtpc_reply *r);

/* Whether a failure to set up a connection (connect, greeting, EHLO, TLS)
 * should move on to the next MX host. Always true today: RFC 5321 5.1 asks
 * the client to try the next host on any connection-level trouble, and a
 * 5xx greeting says only that this host will not talk to us. Kept as a
 * decision so that it is made here. */
bool outcome_try_next_host(enum smtpc_phase phase, const struct smtpc_reply *r);

/* The next try for a recipient deferred for the attempts-th time
 * (attempts >= 1), from delivery.retry_schedule (the last slot repeats),
 * with +-10% jitter so that deferred mail does not return in a herd. */
uint64_t outcome_next_try(uint64_t now, uint32_t attempts,
			  const uint32_t *schedule, size_t n_schedule);

/* Whether a message that arrived at `arrival` has been queued too long. */
bool outcome_is_expired(uint64_t now, uint64_t arrival,
			uint32_t max_queue_lifetime);

/* The DSN status (RFC 3463) for a reply: its enhanced code when it has
 * one whose class matches, else derived from the basic code ("5.0.0",
 * "4.0.0", "2.0.0"). A code other than 2xx or 5xx (354, 1xx) has class 4:
 * RFC 3463 has no other. For code 0, "4.4.1" (no answer from host) or, with
 * the DNS flag, "4.4.3". Writes at most 16 bytes into out. */
void outcome_status(const struct smtpc_reply *r, char out[16]);

#endif
