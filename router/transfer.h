/* The message transfer of an SMTP server session: DATA and BDAT read into
 * the body, the Received: header, and the hand-off to router/enqueue.c.
 * Internal to the session: router/session_table.c's rows and dispatcher
 * and router/session.c's input loop call these; struct session is in
 * router/session_int.h. */
#ifndef SHOAL_ROUTER_TRANSFER_H
#define SHOAL_ROUTER_TRANSFER_H

#include <stdbool.h>

struct evbuffer;
struct session;
struct smtp_cmd;

/* DATA, in SESSION_ST_RCPT: start the body (new qid, our Received:
 * header) and answer 354; the session moves to SESSION_ST_DATA. */
void transfer_cmd_data(struct session *s, const struct smtp_cmd *cmd);

/* BDAT, in SESSION_ST_RCPT (the body starts as DATA's does) or
 * SESSION_ST_BDAT (it goes on): the session reads the chunk of cmd's size
 * in SESSION_ST_CHUNK. An unreadable size loses the framing: 501, 421 and
 * the session closes. */
void transfer_cmd_bdat(struct session *s, const struct smtp_cmd *cmd);

/* BDAT where it is out of sequence: its chunk is still read, in
 * SESSION_ST_SKIP, and dropped (RFC 3030 2); then the 503, and the session
 * is back in the state it was in. An unreadable size closes the session
 * as for transfer_cmd_bdat(). */
void transfer_skip_bdat(struct session *s, const struct smtp_cmd *cmd);

/* In SESSION_ST_DATA: feed what in holds to the DATA parser. Returns true
 * when the message ended: refused with its error reply, or handed to the
 * node (the session waits in SESSION_ST_WAIT and resumes with its reply);
 * false when more input is needed. */
bool transfer_read_data(struct session *s, struct evbuffer *in);

/* In SESSION_ST_CHUNK or SESSION_ST_SKIP: take up to the rest of the BDAT
 * chunk from in and, once it is whole, answer it: a chunk not LAST with
 * 250 (the session is between chunks, SESSION_ST_BDAT), the LAST one by
 * handing the message to the node, a skipped one with its 503. Returns
 * true when the chunk is complete, false when more input is needed. */
bool transfer_read_chunk(struct session *s, struct evbuffer *in);

#endif
