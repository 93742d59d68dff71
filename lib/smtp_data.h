/* The DATA stream (RFC 5321 4.1.1.4, 4.5.2): dot-unstuffing, the end of
 * data, and the defences against SMTP smuggling (CVE-2023-51764): only
 * CRLF "." CRLF ends the data; a bare LF or bare CR is refused (or, with
 * SMTP_DATA_NORMALIZE_LF, a bare LF becomes CRLF). Handles untrusted input.
 *
 * The parser is fed whatever the socket gave and stops right after the
 * terminating CRLF.CRLF, so the bytes after it (pipelined commands) stay
 * with the caller. Errors are sticky: after the first one the parser keeps
 * consuming (and discarding) until CRLF.CRLF so the session stays in sync,
 * then reports the error once. */
#ifndef SHOAL_SMTP_DATA_H
#define SHOAL_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define SMTP_TEXT_MAX 1000  /* RFC 5321 4.5.3.1.6, incl. CRLF */

#define SMTP_DATA_NORMALIZE_LF 0x1  /* router.bare_lf = "normalize" */

enum smtp_data_status {
	SMTP_DATA_MORE = 0,   /* all input consumed, end not seen yet */
	SMTP_DATA_DONE = 1,   /* CRLF.CRLF seen; see error for the outcome */
};

enum smtp_data_err {
	SMTP_DATA_OK = 0,
	SMTP_DATA_E_BARE_LF,     /* 550 5.6.11 bare LF */
	SMTP_DATA_E_BARE_CR,     /* 550 5.6.11 bare CR */
	SMTP_DATA_E_TOO_BIG,     /* 552 5.3.4 message size exceeds limit */
	SMTP_DATA_E_LINE_TOO_LONG, /* 550 5.6.0 line longer than 1000 octets */
	SMTP_DATA_E_NUL,         /* 550 5.6.0 NUL octet in message */
};

struct smtp_data {
	struct buf *out;      /* unstuffed message, CRLF line ends */
	uint64_t max_size;    /* octets of unstuffed message allowed */
	unsigned flags;
	int state;            /* parser state, private */
	size_t line_len;      /* octets in the current line so far */
	enum smtp_data_err error;
	bool has_8bit;        /* any octet >= 0x80 */
	uint64_t total;       /* unstuffed octets seen (also past errors) */
};

/* Start a message. The message goes into out (appended), which the caller
 * owns; out->max should be >= max_size. */
void smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max_size,
		    unsigned flags);

/* Feed in[0..len). Sets *consumed to the bytes used (all of them for
 * SMTP_DATA_MORE; up to and including the final CRLF.CRLF for
 * SMTP_DATA_DONE). Returns an smtp_data_status; on DONE, d->error says
 * whether the message is good. */
int smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
		   size_t *consumed);

/* The reply line (without CRLF) for an error, e.g. "552 5.3.4 Message size
 * exceeds fixed limit". Static. */
const char *smtp_data_strerror(enum smtp_data_err err);

#endif
