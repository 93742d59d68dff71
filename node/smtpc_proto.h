/* The SMTP client's wire format, internal to node/smtpc.c: reading reply
 * lines (RFC 5321 4.2, enhanced codes RFC 3463), EHLO keywords (RFC 5321
 * 4.1.1.1), whether a message can be put on the wire at all, writing MAIL
 * and RCPT with their SIZE, BODY, SMTPUTF8 and DSN parameters (RFC 1870,
 * 6152, 6531, 3461), and the dot-stuffed body (RFC 5321 4.5.2). Pure
 * functions: no connection, timers or callbacks; smtpc.c keeps the state
 * machine. Handles untrusted input: reply lines come from the server. */
#ifndef SHOAL_NODE_SMTPC_PROTO_H
#define SHOAL_NODE_SMTPC_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "node/smtpc.h"

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

/* Add the body (CRLF line ends) to out dot-stuffed, then the final
 * ".CRLF" (after a CRLF when the body lacks its last one). The body is
 * added by reference, not copied: it must stay as it is until out has
 * been written or freed. */
void smtpc_proto_add_body(struct evbuffer *out, const char *body, size_t len);

#endif
