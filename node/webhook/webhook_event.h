/* One webhook event (docs/webhooks.md, "Event format") and its JSON
 * text: what is stored (node/store/store_whev.c), replicated and POSTed
 * as it is. Pure: no I/O, no state; unit tested in
 * tests/unit/test_webhook.c. */
#ifndef SHOAL_NODE_WEBHOOK_EVENT_H
#define SHOAL_NODE_WEBHOOK_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/qid.h"

enum webhook_type {
	WEBHOOK_DELIVERED,
	WEBHOOK_DEFERRED,
	WEBHOOK_BOUNCED,
	WEBHOOK_EXPIRED,    /* bounced for being queued too long */
	WEBHOOK_SUPPRESSED, /* bounced for being on the suppression list */
	WEBHOOK_SHAPING,    /* an adaptive shaping action fired */
	WEBHOOK_TYPES,
};

/* Bounds of the text fields in an event; longer values are cut (at a
 * character boundary) and marked with "...". */
#define WEBHOOK_FIELD_MAX 320   /* RFC 5321 4.5.3.1.3 path, names */
#define WEBHOOK_TEXT_MAX 1000   /* RFC 5321 4.5.3.1.6 reply line */

/* An event as its producer knows it. Strings are borrowed (NULL = "");
 * fields that do not apply are left 0 / NULL and omitted from the JSON
 * (a shaping event has no qid; a delivery has no action). */
struct webhook_event {
	enum webhook_type type;
	char id[QID_LEN + 1];   /* stable: drawn once, kept by the store */
	uint64_t time;          /* unix seconds */
	const char *node;
	const char *qid;
	const char *sender;     /* "" for the null sender */
	const char *recipient;
	const char *destination; /* the recipient's domain, or shaping's key */
	const char *mx;
	const char *response;   /* the SMTP reply text, or a local reason */
	uint32_t code;
	const char *enhanced;
	uint32_t attempt;
	const char *tenant;
	const char *pool;
	const char *priority;
	/* shaping */
	const char *action;     /* suspend, rate, connections, ... */
	const char *provider;
	uint64_t duration;      /* seconds the action lasts */
	const char *rule;
};

/* "delivered", ... ; "" for a bad value. */
const char *webhook_type_name(enum webhook_type t);

/* The type of a name (config events): 0 and *out, or -EINVAL. */
int webhook_type_parse(const char *name, enum webhook_type *out);

/* The event as one compact JSON object, UTF-8 (bytes that are not valid
 * UTF-8 become U+FFFD). Returns a string the caller frees, with its
 * length in *len, or NULL when it would exceed max bytes (fields are
 * bounded, so only a max below WEBHOOK_FIELD_MAX * 12 can refuse). */
char *webhook_event_encode(const struct webhook_event *ev, size_t max,
			   size_t *len);

#endif
