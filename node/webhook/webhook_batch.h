/* The pieces of a webhook POST that need no network (docs/webhooks.md):
 * the body built from stored events, its signature, and the wait before
 * the next try. Pure; unit tested in tests/unit/test_webhook.c. */
#ifndef SHOAL_NODE_WEBHOOK_BATCH_H
#define SHOAL_NODE_WEBHOOK_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* A POST body holds at most this much: a batch stops early past it (the
 * rest goes in the next POST). One event is at most STORE_WHEV_MAX. */
#define WEBHOOK_BODY_MAX (4u << 20)

/* The wait after a failed POST: 1 s, doubling per failure in a row, at
 * most 60 s. */
#define WEBHOOK_BACKOFF_MIN_MS 1000
#define WEBHOOK_BACKOFF_MAX_MS 60000

/* Start a body: `{"events":[`. */
void webhook_body_begin(struct buf *b);

/* Add one event's JSON text (as stored). Returns false, adding nothing,
 * when the body would pass WEBHOOK_BODY_MAX with it (never for the first
 * event). */
bool webhook_body_add(struct buf *b, size_t n_before, const void *ev,
		      size_t len);

/* End a body: `]}`. */
void webhook_body_end(struct buf *b);

/* "sha256=" and the hex HMAC-SHA256 of body under secret into
 * out[WEBHOOK_SIG_MAX]. */
#define WEBHOOK_SIG_MAX (7 + 64 + 1)
void webhook_sign(const char *secret, const void *body, size_t len,
		  char out[WEBHOOK_SIG_MAX]);

/* The wait in ms after `failures` failed POSTs in a row (>= 1), before
 * jitter; jitter_ms (0..999, the caller's draw) is added below the cap. */
uint64_t webhook_backoff_ms(uint32_t failures, uint32_t jitter_ms);

/* A response status that confirms the events: 2xx. */
bool webhook_status_ok(long status);

/* Copy at most out_len - 1 bytes of text into out with every byte that
 * is not printable ASCII (and the backslash and double quote) escaped
 * as \xHH, cut at a whole escape: for the last error of a webhook (a
 * server's text). */
void webhook_escape(const char *text, size_t len, char *out, size_t out_len);

#endif
