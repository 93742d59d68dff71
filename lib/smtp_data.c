/* The message content checker: turns the octets a client sends after
 * "354" (DATA) or in BDAT chunks into the message and holds every octet
 * to the same content rules either way. Handles untrusted input.
 *
 * The content rules, one state machine for both commands: RFC 5321 2.3.8
 * (lines end in CRLF only), 4.5.3.1.6 (1000 octets per line incl. CRLF,
 * not counting a stuffing dot), no NUL, router.max_message_size, 6.3 (at
 * most SMTP_DATA_HOPS_MAX Received: fields in the header, against mail
 * loops), and the 8-bit flag that decides BODY=8BITMIME on the way out.
 * DATA's framing on top of them, skipped under SMTP_DATA_CHUNKED: RFC
 * 5321 4.1.1.4 (end of data is CRLF "." CRLF; the CRLF of the DATA
 * command counts as the first CRLF, so ".\r\n" right away is the empty
 * message) and 4.5.2 (a line starting with "." has that dot removed). A
 * BDAT chunk may end anywhere (between CR and LF, inside "Received:"):
 * all state lives in struct smtp_data, so how the octets are cut never
 * changes the outcome. It leaves the SMTP replies, the SIZE announcement
 * (RFC 1870), BDAT's chunk sizes and the Received header to router/.
 *
 * SMTP smuggling (CVE-2023-51764): only a "." line that follows a real CRLF
 * and is itself ended by a real CRLF ends the data. "\n.\n", "\r.\n",
 * "\n.\r\n", "\r\n.\n", "\r\n.\r" and the like never do, whatever the flags.
 * In BDAT nothing in the content ends anything, but the same octets are
 * refused all the same: a message we would refuse by DATA must not get in
 * by BDAT and then be sent on by DATA to a next hop that reads it
 * differently.
 *
 * Bare LF is refused by default. With SMTP_DATA_NORMALIZE_LF a bare LF is
 * written out as CRLF but still does not count as CRLF for the end of data,
 * as in Postfix 3.9's smtpd_forbid_bare_newline = normalize: a line start
 * reached through a bare LF is "soft", and a "." there, or a "." line ended
 * by a bare LF, is message content, kept as the one-octet line "." (4.5.2
 * removes the dot only when other characters follow it on the line). So
 * the message keeps what a smuggling attempt would have hidden, and the
 * next hop, which re-stuffs it, sees "..". Taking "\n.\n" as the end would
 * reopen the very hole; dropping the line would hide the attempt. A client
 * that ends every line with bare LF never ends the data and times out,
 * which is what it would get from Postfix too. Bare CR is always refused.
 *
 * Errors are sticky and the first one wins; afterwards nothing more is
 * appended but state, total and has_8bit stay exact, so the parser still
 * finds the real end. d->out then holds the message up to the first error
 * (exactly max_size octets for SMTP_DATA_E_TOO_BIG) and must be discarded.
 *
 * Speed: this is the router's hot path. Ordinary text is scanned a word at
 * a time and whole runs of clean lines go out in one buf_append(); the
 * byte-wise state machine only sees line starts with ".", CR at the end of
 * a chunk, and the bytes that are errors. Header lines (usually a few
 * dozen) go out one at a time, for the hop count. */
#include "lib/smtp_data.h"

#include <string.h>

#include "lib/err.h"

/* Content octets of one line, CRLF excluded: RFC 5321 4.5.3.1.6. */
#define DATA_LINE_MAX (SMTP_TEXT_MAX - 2)

enum data_state {
	DATA_ST_BOL = 0, /* at a line start */
	DATA_ST_TEXT,    /* inside a line */
	DATA_ST_CR,      /* inside a line, CR seen, LF not yet */
	DATA_ST_DOT,     /* a line start, then "." */
	DATA_ST_DOT_CR,  /* a line start, then "." CR */
	DATA_ST_DONE,    /* CRLF.CRLF consumed */
};

/* Or'ed into BOL, DOT and DOT_CR when the line start came from a bare LF:
 * such a "." line is never the end of data. */
#define DATA_ST_SOFT 0x100

/* The field name counted for hops, in lower case; hdr_match is how much of
 * it the current line started with, or DATA_HDR_NO once it differs. */
static const char data_received[] = "received:";
#define DATA_RECEIVED_LEN (sizeof(data_received) - 1)
#define DATA_HDR_NO 0xff

_Static_assert(SMTP_DATA_HOPS_MAX == 50, "the 554 5.4.6 reply names 50");

#define DATA_ONES 0x0101010101010101ull
#define DATA_HIGHS 0x8080808080808080ull

void
smtp_data_init(struct smtp_data *d, struct buf *out, uint64_t max_size,
	       unsigned flags)
{
	d->out = out;
	d->max_size = max_size;
	d->flags = flags;
	d->state = DATA_ST_BOL; /* the DATA command's CRLF was the last CRLF */
	d->line_len = 0;
	d->error = SMTP_DATA_OK;
	d->has_8bit = false;
	d->total = 0;
	d->in_header = true;
	d->hdr_match = 0;
	d->hops = 0;
}

static bool
data_is_chunked(const struct smtp_data *d)
{
	return (d->flags & SMTP_DATA_CHUNKED) != 0;
}

static void
data_fail(struct smtp_data *d, enum smtp_data_err err)
{
	if (d->error == SMTP_DATA_OK)
		d->error = err;
}

/* n octets of unstuffed message: count them, and append them while the
 * message is good. The octets that would pass max_size (or out->max) are
 * not appended and make the message too big. */
static void
data_emit(struct smtp_data *d, const char *p, size_t n)
{
	uint64_t room;
	int rc;

	d->total += n;
	if (d->error != SMTP_DATA_OK || n == 0)
		return;
	/* while the message is good, total - n <= max_size */
	room = d->max_size - (d->total - n);
	if (room > d->out->max - d->out->len)
		room = d->out->max - d->out->len;
	if (n > room) {
		rc = buf_append(d->out, p, (size_t)room);
		SHOAL_ASSERT(rc == 0);
		data_fail(d, SMTP_DATA_E_TOO_BIG);
		return;
	}
	rc = buf_append(d->out, p, n);
	SHOAL_ASSERT(rc == 0);
}

/* Header bookkeeping, for the hop count: n more octets of the current
 * line's content. Only its first DATA_RECEIVED_LEN octets matter. */
static void
data_header_text(struct smtp_data *d, const char *p, size_t n)
{
	for (size_t k = 0; k < n && d->hdr_match < DATA_RECEIVED_LEN; k++) {
		char c = p[k];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != data_received[d->hdr_match]) {
			d->hdr_match = DATA_HDR_NO;
			return;
		}
		d->hdr_match++;
	}
}

/* A header line ended (its CRLF already out): an empty one ends the
 * header (RFC 5322 2.1), a "Received:" one is a hop (RFC 5321 6.3). */
static void
data_header_eol(struct smtp_data *d)
{
	if (d->line_len == 0)
		d->in_header = false;
	else if (d->hdr_match == DATA_RECEIVED_LEN &&
		 ++d->hops >= SMTP_DATA_HOPS_MAX)
		data_fail(d, SMTP_DATA_E_TOO_MANY_HOPS);
	d->hdr_match = 0;
}

/* n octets of line content from the byte-wise path: the line-length check
 * comes before the size check, as in data_span(). */
static void
data_content(struct smtp_data *d, const char *p, size_t n)
{
	if (d->in_header)
		data_header_text(d, p, n);
	d->line_len += n;
	if (d->line_len > DATA_LINE_MAX)
		data_fail(d, SMTP_DATA_E_LINE_TOO_LONG);
	data_emit(d, p, n);
}

/* A line ends: CRLF goes out, for a bare LF too (an error unless
 * normalizing, so then it is only counted). */
static void
data_eol(struct smtp_data *d, int next_state)
{
	data_emit(d, "\r\n", 2);
	if (d->in_header)
		data_header_eol(d);
	d->line_len = 0;
	d->state = next_state;
}

static inline uint64_t
data_has_zero(uint64_t v)
{
	return (v - DATA_ONES) & ~v & DATA_HIGHS;
}

/* The index of the first CR, LF or NUL in p[0..n), or n. Ors the octets
 * before it into *acc (for the 8-bit flag). */
static size_t
data_scan(const char *p, size_t n, uint64_t *acc)
{
	uint64_t seen = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (data_has_zero(w) | data_has_zero(w ^ (DATA_ONES * '\r')) |
		    data_has_zero(w ^ (DATA_ONES * '\n')))
			break;
		seen |= w;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r' || c == '\n' || c == '\0')
			break;
		seen |= c;
	}
	*acc |= seen;
	return i;
}

/* In DATA_ST_TEXT: consume the longest run of ordinary text from p[0..n),
 * whole CRLF lines and then a partial line. Stops before a NUL, a bare LF,
 * or a CR whose LF is not in p; and after a CRLF when what follows is the
 * end of p or (DATA only) ".", leaving DATA_ST_BOL. The run goes out in
 * one data_emit(), two when a line passes DATA_LINE_MAX, and one per line
 * in the header. Returns the octets consumed. */
static size_t
data_span(struct smtp_data *d, const char *p, size_t n)
{
	bool is_chunked = data_is_chunked(d);
	uint64_t acc = 0;
	size_t run = 0; /* first octet not yet emitted */
	size_t i = 0;

	d->state = DATA_ST_TEXT;
	for (;;) {
		size_t s = i + data_scan(p + i, n - i, &acc);

		if (d->in_header)
			data_header_text(d, p + i, s - i);
		if (d->error == SMTP_DATA_OK &&
		    d->line_len + (s - i) > DATA_LINE_MAX) {
			size_t cross = i + (DATA_LINE_MAX - d->line_len);

			/* what came before the long line may be too big */
			data_emit(d, p + run, cross - run);
			run = cross;
			data_fail(d, SMTP_DATA_E_LINE_TOO_LONG);
		}
		d->line_len += s - i;
		i = s;
		if (i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n')
			break;
		i += 2;
		if (d->in_header) {
			/* the line goes out before a hop error, as in
			 * data_eol(), so that chunking changes nothing */
			data_emit(d, p + run, i - run);
			run = i;
			data_header_eol(d);
		}
		d->line_len = 0;
		if (i == n || (p[i] == '.' && !is_chunked)) {
			d->state = DATA_ST_BOL;
			break;
		}
	}
	data_emit(d, p + run, i - run);
	if (acc & DATA_HIGHS)
		d->has_8bit = true;
	return i;
}

/* A bare LF ends a line: refused, or written as CRLF when normalizing.
 * Either way the next line start is soft. */
static void
data_bare_lf(struct smtp_data *d)
{
	if (!(d->flags & SMTP_DATA_NORMALIZE_LF))
		data_fail(d, SMTP_DATA_E_BARE_LF);
	data_eol(d, DATA_ST_BOL | DATA_ST_SOFT);
}

int
smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
	       size_t *consumed)
{
	size_t i = 0;

	while (i < len && d->state != DATA_ST_DONE) {
		int soft = d->state & DATA_ST_SOFT;
		char c = in[i];

		switch (d->state & ~DATA_ST_SOFT) {
		case DATA_ST_BOL:
			if (c == '.' && !data_is_chunked(d)) {
				d->state = DATA_ST_DOT | soft;
				i++;
			} else {
				d->state = DATA_ST_TEXT;
			}
			break;
		case DATA_ST_TEXT:
			i += data_span(d, in + i, len - i);
			if (i == len || d->state != DATA_ST_TEXT)
				break;
			/* data_span() stopped at a CR, LF or NUL */
			c = in[i++];
			if (c == '\r') {
				d->state = DATA_ST_CR;
			} else if (c == '\n') {
				data_bare_lf(d);
			} else {
				data_fail(d, SMTP_DATA_E_NUL);
				data_content(d, &c, 1);
			}
			break;
		case DATA_ST_CR:
			if (c == '\n') {
				data_eol(d, DATA_ST_BOL);
				i++;
			} else {
				/* bare CR: refused; c is seen afresh */
				data_fail(d, SMTP_DATA_E_BARE_CR);
				data_content(d, "\r", 1);
				d->state = DATA_ST_TEXT;
			}
			break;
		case DATA_ST_DOT:
			if (c == '\r') {
				d->state = DATA_ST_DOT_CR | soft;
				i++;
			} else if (c == '\n') {
				/* "." bare LF: content, not the end */
				data_content(d, ".", 1);
				data_bare_lf(d);
				i++;
			} else {
				/* RFC 5321 4.5.2: drop one leading dot */
				d->state = DATA_ST_TEXT;
			}
			break;
		case DATA_ST_DOT_CR:
			if (c == '\n' && !soft) {
				/* CRLF "." CRLF: the dot line is not output */
				d->state = DATA_ST_DONE;
				i++;
			} else if (c == '\n') {
				/* "." CRLF after a bare LF: content */
				data_content(d, ".", 1);
				data_eol(d, DATA_ST_BOL);
				i++;
			} else {
				/* "." bare CR: drop the dot (4.5.2) */
				data_fail(d, SMTP_DATA_E_BARE_CR);
				data_content(d, "\r", 1);
				d->state = DATA_ST_TEXT;
			}
			break;
		default:
			SHOAL_ASSERT(!"smtp_data: bad state");
		}
	}
	*consumed = i;
	return d->state == DATA_ST_DONE ? SMTP_DATA_DONE : SMTP_DATA_MORE;
}

enum smtp_data_err
smtp_data_finish(struct smtp_data *d)
{
	SHOAL_ASSERT(data_is_chunked(d));
	switch (d->state & ~DATA_ST_SOFT) {
	case DATA_ST_BOL:
		break;
	case DATA_ST_CR:
		/* nothing more will come: the CR stays bare */
		data_fail(d, SMTP_DATA_E_BARE_CR);
		data_content(d, "\r", 1);
		data_eol(d, DATA_ST_BOL);
		break;
	case DATA_ST_TEXT:
		/* the last line lacks its CRLF: RFC 5322 2.1 lines end in
		 * CRLF, and the next hop's DATA needs it before "." */
		if (d->line_len > 0)
			data_eol(d, DATA_ST_BOL);
		break;
	case DATA_ST_DONE:
		return d->error;
	default:
		SHOAL_ASSERT(!"smtp_data: dot state in a chunked message");
	}
	d->state = DATA_ST_DONE;
	return d->error;
}

const char *
smtp_data_strerror(enum smtp_data_err err)
{
	switch (err) {
	case SMTP_DATA_OK:
		return "250 2.0.0 Ok";
	case SMTP_DATA_E_BARE_LF:
		return "550 5.6.11 Message contains bare LF; lines must end "
		       "with CRLF (RFC 5321 2.3.8)";
	case SMTP_DATA_E_BARE_CR:
		return "550 5.6.11 Message contains bare CR; lines must end "
		       "with CRLF (RFC 5321 2.3.8)";
	case SMTP_DATA_E_TOO_BIG:
		return "552 5.3.4 Message size exceeds fixed limit";
	case SMTP_DATA_E_LINE_TOO_LONG:
		return "550 5.6.0 Message contains a line longer than 1000 "
		       "octets (RFC 5321 4.5.3.1.6)";
	case SMTP_DATA_E_NUL:
		return "550 5.6.0 Message contains a NUL octet";
	case SMTP_DATA_E_TOO_MANY_HOPS:
		return "554 5.4.6 Too many hops: 50 or more Received: header "
		       "fields (mail loop?)";
	}
	return "451 4.3.0 Local error in processing";
}
