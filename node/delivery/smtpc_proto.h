/* The SMTP client's wire format, internal to smtpc*.c: reading reply
 * lines (RFC 5321 4.2, enhanced codes RFC 3463), EHLO keywords (RFC 5321
 * 4.1.1.1), whether a message can be put on the wire at all, writing MAIL
 * and RCPT with their SIZE, BODY, SMTPUTF8 and DSN parameters (RFC 1870,
 * 6152, 6531, 3461), and the body as it goes on the wire (RFC 5321
 * 2.3.8, 4.5.2, 4.5.3.1.6). Pure functions: no connection, timers or
 * callbacks; smtpc.c keeps the state machine. Handles untrusted input:
 * reply lines come from the server, and the body is whatever the queue
 * holds. */
#ifndef SHOAL_NODE_SMTPC_PROTO_H
#define SHOAL_NODE_SMTPC_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "node/delivery/smtpc.h"

struct evbuffer;

#define SMTPC_CMD_MAX 2048 /* MAIL/RCPT with parameters */

/* A reply being read line by line. Zeroed, it expects a reply's first
 * line. */
struct smtpc_reply_reader {
	struct smtpc_reply reply; /* complete once a line returns 0 */
	unsigned lines;		  /* lines read; 0 = the next starts a reply */
	size_t textlen;		  /* of reply.text */
};

/* Add one reply line (n bytes, without CRLF) to rd. Returns 1 when more
 * lines of the reply follow, 0 when rd->reply is complete (the next line
 * starts a new reply), -1 for a malformed reply: not "DDD", "DDD text" or
 * "DDD-text", a code outside 2xx-5xx or one that changes between lines,
 * or more than SMTPC_REPLY_LINES_MAX lines. The text keeps printable
 * ASCII only, lines joined by a space, cut at SMTPC_REPLY_TEXT_MAX. */
int smtpc_proto_reply_line(struct smtpc_reply_reader *rd, const char *line,
			   size_t n);

/* One line of an EHLO reply after the first, past its "250-": an
 * extension keyword and its parameters (RFC 5321 4.1.1.1). Sets the
 * matching flag of info (and max_size for SIZE); others are ignored. */
void smtpc_proto_ehlo_keyword(struct smtpc_info *info, const char *kw,
			      size_t n);

/* Whether m can be put on the wire to a server that offered info:
 * addresses without space, control characters or <>, at most
 * SMTP_MAILBOX_MAX bytes (so MAIL and RCPT fit in SMTPC_CMD_MAX), SMTPUTF8
 * offered when the envelope needs it, the body within the offered SIZE.
 * Returns 0 if so, else the code of the local refusal (553, 554 or 552),
 * with *enhanced set to a static string and why to the reason (cut at
 * size). m must have at least one recipient. */
int smtpc_proto_check_msg(const struct smtpc_msg *m,
			  const struct smtpc_info *info, const char **enhanced,
			  char *why, size_t size);

/* Format "MAIL FROM:<m->mail_from>" with the parameters the server offered
 * in info, without CRLF, into line (NUL-terminated, cut at size). A size of
 * SMTPC_CMD_MAX holds it whole when the sender is at most SMTP_MAILBOX_MAX
 * bytes. */
void smtpc_proto_format_mail(char *line, size_t size, const struct smtpc_msg *m,
			     const struct smtpc_info *info);

/* Format "RCPT TO:<m->rcpts[k]>" with the DSN parameters (NOTIFY, ORCPT)
 * when info offers DSN, as smtpc_proto_format_mail() does. */
void smtpc_proto_format_rcpt(char *line, size_t size, const struct smtpc_msg *m,
			     size_t k, const struct smtpc_info *info);

/* The body on the wire (RFC 5321 2.3.8, 4.5.2, 4.5.3.1.6). This encoder
 * is the one place that decides what of a queued body reaches the server;
 * every path that sends a body goes through it. Whatever the queue holds
 * (a message stored by an older build, a replica's copy, a DSN quoting
 * hostile text, a damaged record), no bare CR or bare LF leaves: each one
 * becomes CRLF, as Postfix's client does with its record-based queue, and
 * the line it starts is dot-stuffed like any other, so a "." line hidden
 * behind a bare CR stays message text. A line over SMTPC_LINE_OCTETS is
 * folded by inserting CRLF SP (Postfix's smtp_line_length_limit). NUL and
 * 8-bit octets pass unchanged.
 *
 * Streaming: the body may come in pieces; the state (a CR at the end of a
 * piece, the line's length so far) is carried across them, and any split
 * gives the same bytes as the whole body in one piece. */
/* RFC 5321 4.5.3.1.6: 1000 octets with CRLF, a stuffing dot not counted */
#define SMTPC_LINE_OCTETS 998

struct smtpc_body_enc {
	bool mid_line;	 /* octets of the current line written */
	bool pending_cr; /* the last piece ended in CR: CRLF or a bare CR */
	size_t col;	 /* the line's octets, a stuffing dot not counted */
	size_t bare_cr;	 /* repairs: bare CRs sent as CRLF */
	size_t bare_lf;	 /* repairs: bare LFs sent as CRLF */
	size_t folded;	 /* lines folded for length */
};

/* Start a body. */
void smtpc_proto_body_init(struct smtpc_body_enc *e);

/* Add len octets of the body to out, encoded. Long runs of the input go
 * to out by reference, not copied: p must stay as it is until out has
 * been written or freed. */
void smtpc_proto_body_feed(struct smtpc_body_enc *e, struct evbuffer *out,
			   const char *p, size_t len);

/* End the body: the last line's CRLF when it lacks one (a CR left pending
 * included), then the final ".CRLF". */
void smtpc_proto_body_end(struct smtpc_body_enc *e, struct evbuffer *out);

/* Whether the encoder changed anything but dot-stuffing. */
bool smtpc_proto_body_repaired(const struct smtpc_body_enc *e);

#endif
