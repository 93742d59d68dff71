/* The HTTP injection API's requests (docs/http.md, "Request format";
 * modelled on KumoMTA's /api/inject/v1): a JSON document naming a sender,
 * recipients and the content, parsed and checked here, planned into one
 * message for all recipients or one per recipient, and each message built
 * as RFC 5322 text (RFC 2045-2047 and 2231 for MIME). Pure: no I/O, no
 * event loop, no global state; calls on different requests may run in
 * different threads, and a parsed request may be read by several threads
 * at once (it is never changed after inject_parse()). The HTTP server,
 * the pool's existence, the SMTP content check of raw content
 * (lib/smtp_data.h) and queueing are the caller's. Handles untrusted
 * input: the request body, bounded by the caller.
 *
 * Errors name the offending field as a JSON path ("recipients[3].email",
 * "content.attachments[0].data"; "" is the document as a whole) plus a
 * short English message, for a 400 answer. */
#ifndef SHOAL_ROUTER_INJECT_H
#define SHOAL_ROUTER_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

#define INJECT_FIELD_MAX 160
#define INJECT_ATTACH_MAX 100	/* content.attachments entries */
#define INJECT_HEADERS_MAX 1000 /* content.headers entries */
#define INJECT_SUBST_MAX 1000	/* keys of one substitutions object */
#define INJECT_KEY_MAX 64	/* a substitution key, bytes */
#define INJECT_POOL_MAX 64	/* a pool name, bytes (config bound) */
#define INJECT_HNAME_MAX 76	/* a header field name: 78 less ": " */
#define INJECT_FILENAME_MAX 255 /* an attachment's file_name, bytes */
#define INJECT_CID_MAX 250	/* an attachment's content_id, bytes */
#define INJECT_CTYPE_MAX 127	/* an attachment's content_type, bytes */
/* The plan's messages together: at most this many times
 * max_message_size. */
#define INJECT_TOTAL_FACTOR 4

struct inject_error {
	char field[INJECT_FIELD_MAX]; /* JSON path; "" = the whole document */
	char message[256];	      /* printable ASCII */
};

struct inject_limits {
	size_t max_message_size; /* bytes of one built message */
	size_t max_recipients;	 /* entries of "recipients" */
};

struct inject_req; /* opaque */

/* Parse json[0..len) (the request body, not NUL-terminated) and check
 * everything that does not need building: syntax (UTF-8, no duplicate
 * keys, nothing after the document), keys, types, counts, addresses,
 * names, header fields, attachments (base64 decoded here) and the text
 * of every field. Substitution keys, header injection through a
 * substitution's value and the sizes of the built messages are found by
 * inject_check_all(), which the caller runs before queueing anything.
 * Returns 0 and sets *out (caller frees with inject_free(); it copies
 * *lim), or -EINVAL with e filled and *out untouched. */
int inject_parse(const char *json, size_t len, const struct inject_limits *lim,
		 struct inject_req **out, struct inject_error *e);

/* inject_free(NULL) does nothing. */
void inject_free(struct inject_req *r);

/* The accessors' strings live as long as r. */

/* The envelope sender: a mailbox, or "" for the null sender <>. */
const char *inject_sender(const struct inject_req *r);
/* The pool named by the request (1 to 64 of A-Z a-z 0-9 _ . -), or NULL;
 * whether it exists is the caller's to check. */
const char *inject_pool(const struct inject_req *r);
/* NULL, or "high", "normal" or "bulk" (lower-cased). */
const char *inject_priority(const struct inject_req *r);
/* A name envelope_tenant_ok() takes, or NULL. */
const char *inject_tenant(const struct inject_req *r);
/* Whether some address (sender, recipient, from, reply_to) or a given
 * "To" header field is non-ASCII: the messages need SMTPUTF8. For raw
 * content the caller's content check sees 8-bit header fields. */
bool inject_smtputf8(const struct inject_req *r);

size_t inject_n_rcpts(const struct inject_req *r);
/* Recipient i's mailbox (i < inject_n_rcpts()), as given. */
const char *inject_rcpt(const struct inject_req *r, size_t i);

/* The plan: how many messages to queue (1, or one per recipient; see
 * docs/http.md, "Planning"). */
size_t inject_n_messages(const struct inject_req *r);
/* Message m's recipients (m < inject_n_messages()) as indexes into the
 * recipient list: sets *idx to them and returns how many. */
size_t inject_message_rcpts(const struct inject_req *r, size_t m,
			    const size_t **idx);

/* Build message m as RFC 5322 text with CRLF line ends, appended to out
 * (whose max is the caller's bound, at least max_message_size), with
 * Message-ID <qid@host> and Date now (qid and host: dot-atom text, as
 * lib/qid.h and a host name are; else SHOAL_ASSERT). Returns 0; -EINVAL
 * (e filled: unknown substitution key, CR or LF or a control character
 * brought into a header field by a substitution, a header word too long
 * to fold, bare CR in the content); -E2BIG (e filled, field "content":
 * the message would pass max_message_size, or out's max). On error out
 * is as it was. The same request, m, host and length of qid always give
 * the same result and size. */
int inject_build(const struct inject_req *r, size_t m, const char *qid,
		 const char *host, time_t now, struct buf *out,
		 struct inject_error *e);

/* Build every message of the plan into a scratch buffer, keeping none,
 * with a stand-in qid of QID_LEN characters: a request that passes makes
 * messages of the same sizes with a real qid (and the same host). Returns
 * 0; the first -EINVAL or -E2BIG of inject_build(); or -E2BIG with field
 * "recipients" when the messages together pass INJECT_TOTAL_FACTOR times
 * max_message_size. */
int inject_check_all(const struct inject_req *r, const char *host, time_t now,
		     struct inject_error *e);

#endif
