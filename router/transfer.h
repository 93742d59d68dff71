/* The message transfer of an SMTP server session: DATA and BDAT read into
 * the body, the Received: header, and the hand-off to router/enqueue.c.
 * Internal to router/session.c, which calls these from its command table
 * and its input loop; struct session is in router/session_int.h. */
#ifndef SHOAL_ROUTER_TRANSFER_H
#define SHOAL_ROUTER_TRANSFER_H

#include <stdbool.h>

struct evbuffer;
struct session;
struct smtp_cmd;

/* DATA, in SESSION_ST_RCPT: start the body (new qid, our Received:
 * header) and answer 354; the session moves to SESSION_ST_DATA. */
void transfer_cmd_data(struct session *s, const struct smtp_cmd *cmd);

/* BDAT: start a chunk of cmd's size. In SESSION_ST_RCPT it starts the body
 * as DATA does; in SESSION_ST_BDAT it continues it; in any other state the
 * chunk is read and thrown away (RFC 3030 3), and the caller may also set
 * s->bdat_discard to that end. An unreadable size loses the framing: 421
 * and the session closes. */
void transfer_cmd_bdat(struct session *s, const struct smtp_cmd *cmd);

/* In SESSION_ST_DATA: feed what in holds to the DATA parser. Returns true
 * when the message ended: refused with its error reply, or handed to the
 * node (the session waits in SESSION_ST_WAIT and resumes with its reply);
 * false when more input is needed. */
bool transfer_read_data(struct session *s, struct evbuffer *in);

/* While s->in_chunk: take up to the rest of the BDAT chunk from in and,
 * once it is whole, answer it, or on LAST hand the message to the node.
 * Returns true when the chunk is complete, false when more input is
 * needed. */
bool transfer_read_chunk(struct session *s, struct evbuffer *in);

#endif
