/* The content of a message, as DATA (RFC 5321 4.1.1.4, 4.5.2) or BDAT
 * (RFC 3030) brings it: the one checker both feed, so that the same octets
 * get the same answer whichever command carried them. It owns the content
 * rules: lines end in CRLF only (a bare LF or bare CR is refused, or with
 * SMTP_DATA_NORMALIZE_LF a bare LF becomes CRLF), no NUL, at most 1000
 * octets a line, the size limit, the hop limit, and whether any octet is
 * 8-bit. DATA adds its own framing on top: dot-unstuffing and the end of
 * data, with the defences against SMTP smuggling (CVE-2023-51764): only
 * CRLF "." CRLF ends the data. Handles untrusted input.
 *
 * For DATA the checker is fed whatever the socket gave and stops right
 * after the terminating CRLF.CRLF, so the bytes after it (pipelined
 * commands) stay with the caller. For BDAT (SMTP_DATA_CHUNKED) it takes
 * every octet of every chunk, whatever the chunk boundaries cut (a CRLF,
 * a header name), and smtp_data_finish() ends the message after the LAST
 * chunk. Errors are sticky: after the first one the checker keeps
 * consuming (and discarding) so the session stays in step with the
 * client, then the caller reports the error once. */
#ifndef SHOAL_SMTP_DATA_H
#define SHOAL_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define SMTP_TEXT_MAX 1000  /* RFC 5321 4.5.3.1.6, incl. CRLF */
/* Received: fields a message may bring with it (RFC 5321 6.3: a loop
 * shows as a growing trace; Postfix's hopcount_limit is 50). With ours it
 * would carry one more, so one that brings 50 is refused. */
#define SMTP_DATA_HOPS_MAX 50

#define SMTP_DATA_NORMALIZE_LF 0x1  /* router.bare_lf = "normalize" */
#define SMTP_DATA_CHUNKED 0x2       /* BDAT: no dot framing, see above */

enum smtp_data_status {
	SMTP_DATA_MORE = 0,   /* all input consumed, end not seen yet */
	SMTP_DATA_DONE = 1,   /* CRLF.CRLF seen (or finished); see error */
};

enum smtp_data_err {
	SMTP_DATA_OK = 0,
	SMTP_DATA_E_BARE_LF,     /* 550 5.6.11 bare LF */
	SMTP_DATA_E_BARE_CR,     /* 550 5.6.11 bare CR */
	SMTP_DATA_E_TOO_BIG,     /* 552 5.3.4 message size exceeds limit */
	SMTP_DATA_E_LINE_TOO_LONG, /* 550 5.6.0 line longer than 1000 octets */
	SMTP_DATA_E_NUL,         /* 550 5.6.0 NUL octet in message */
	SMTP_DATA_E_TOO_MANY_HOPS, /* 554 5.4.6 SMTP_DATA_HOPS_MAX Received: */
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
	bool in_header;       /* before the first empty line (RFC 5322 2.1) */
	unsigned char hdr_match; /* how much of "Received:" began the line */
	unsigned hops;        /* Received: fields seen in the header */
};

/* Start a message; flags are SMTP_DATA_* bits. The message goes into out
 * (appended), which the caller owns; out->max should be >= max_size plus
 * what out holds already. */
void smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max_size,
		    unsigned flags);

/* Feed in[0..len). Sets *consumed to the bytes used (all of them for
 * SMTP_DATA_MORE; for DATA, up to and including the final CRLF.CRLF for
 * SMTP_DATA_DONE; nothing once done). Returns an smtp_data_status; on
 * DONE, d->error says whether the message is good. Under
 * SMTP_DATA_CHUNKED it returns MORE until smtp_data_finish(). */
int smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
		   size_t *consumed);

/* SMTP_DATA_CHUNKED only: the LAST chunk is in, the message ends. A last
 * line without CRLF is given one, as DATA's CRLF before "." would have
 * (it counts against max_size); a CR still waiting for its LF is a bare
 * CR. Returns d->error. */
enum smtp_data_err smtp_data_finish(struct smtp_data *d);

/* The reply line (without CRLF) for an error, e.g. "552 5.3.4 Message size
 * exceeds fixed limit". Static. */
const char *smtp_data_strerror(enum smtp_data_err err);

#endif
