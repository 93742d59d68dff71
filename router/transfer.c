/* The message transfer of an SMTP server session (see transfer.h): DATA
 * (RFC 5321 4.1.1.4, 4.5.2) and BDAT (RFC 3030) read into the body
 * buffer behind our Received: header (RFC 5321 4.4), and the finished
 * message handed to its node through router/enqueue.c. Leaves the states
 * and the command table to router/session_table.c, the session's life to
 * router/session.c, and every content rule (line ends, NUL, line length,
 * size, hops, the 8-bit flag) and DATA's dot framing to lib/smtp_data.c,
 * which DATA and BDAT both feed: the same octets get the same answer by
 * either command. Untrusted input: a refused message is still read to its
 * end (CRLF.CRLF, or the LAST chunk) and dropped, then answered once. */
#include "router/transfer.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/smtp_cmd.h"
#include "lib/smtp_data.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "router/enqueue.h"
#include "router/message.h"
#include "router/session_int.h"

/* ---- the Received header ------------------------------------------- */

static void
transfer_add_received(struct session *s)
{
	const char *proto;

	/* RFC 3848 / RFC 6531 protocol names */
	if (s->mail.smtputf8)
		proto = s->is_tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->is_esmtp && s->is_authed)
		proto = s->is_tls ? "ESMTPSA" : "ESMTPA";
	else if (s->is_esmtp)
		proto = s->is_tls ? "ESMTPS" : "ESMTP";
	else
		proto = "SMTP";
	s->header_len = message_received(&s->body, s->env->cfg, s->helo,
					 s->client, proto, s->qid,
					 s->n_rcpts == 1 ? s->rcpts[0].addr :
							   NULL);
}

/* A message begins: a qid, our Received header, and the content checker
 * (flags: SMTP_DATA_CHUNKED for BDAT). */
static void
transfer_begin_body(struct session *s, unsigned flags)
{
	const struct config *cfg = s->env->cfg;

	qid_next(&s->env->qids, s->qid);
	buf_init(&s->body, cfg->router.max_message_size + WIRE_BODY_SLACK);
	transfer_add_received(s);
	if (cfg->router.bare_lf == CFG_BARE_LF_NORMALIZE)
		flags |= SMTP_DATA_NORMALIZE_LF;
	smtp_data_init(&s->data, &s->body, cfg->router.max_message_size, flags);
}

/* ---- hand-off to the node ------------------------------------------ */

static void
transfer_on_durable(int result, void *arg)
{
	struct session *s = arg;

	guard_enter(&s->guard);
	s->request_id = 0;
	router_stats_enqueued(s->env, result, s->data_end_us, s->msg_size);
	if (s->state != SESSION_ST_WAIT) {
		/* the session is closing: nothing more is said to the client,
		 * least of all a 250 after its 421 */
		log_info("qid=%s event=answer_after_close client=%s result=%s",
			 s->qid, s->client, shoal_strerror(result));
		session_leave(s);
		return;
	}
	if (result == 0) {
		s->env->accepted++;
		log_info("qid=%s event=accepted client=%s from=<%s> nrcpt=%zu "
			 "size=%zu",
			 s->qid, s->client, s->mail.from.mailbox, s->n_rcpts,
			 s->msg_size);
		session_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
	} else {
		s->env->rejected++;
		log_warn("qid=%s event=not_queued client=%s error=\"%s\"",
			 s->qid, s->client, shoal_strerror(result));
		if (result == SHOAL_E_STORAGE_FULL)
			session_reply(s, "452 4.3.1 Insufficient system "
					 "storage, try again later");
		else
			session_reply(s, "451 4.3.0 Message not stored, try "
					 "again later");
	}
	session_reset_txn(s);
	session_set_state(s, SESSION_ST_AFTER_MESSAGE);
	session_process(s);
	session_leave(s);
}

/* The message is complete and good: hand it to its node. has_8bit: the
 * content checker saw an octet >= 0x80. */
static void
transfer_submit(struct session *s, bool has_8bit)
{
	struct message_rcpt *rs = xcalloc(s->n_rcpts, sizeof(*rs));
	struct message_from m = {
		.mail_from = s->mail.from.mailbox,
		.rcpts = rs,
		.n_rcpts = s->n_rcpts,
		.ret = s->mail.ret,
		.envid = s->mail.envid,
		.smtputf8 = s->mail.smtputf8,
		.body = s->mail.body,
		.client = s->client,
		.helo = s->helo,
		.auth_user = s->auth_user,
		.is_trusted = s->is_relay_client || s->is_authed,
	};

	s->data_end_us = clock_mono_us();
	for (size_t i = 0; i < s->n_rcpts; i++)
		rs[i] = (struct message_rcpt){
			.addr = s->rcpts[i].addr,
			.notify = s->rcpts[i].notify,
			.orcpt = s->rcpts[i].orcpt,
			.suppressed_reply = s->rcpts[i].suppressed_reply,
		};
	session_set_state(s, SESSION_ST_WAIT);
	s->request_id = message_submit(s->env, s->qid, &m, &s->body,
				       s->header_len, has_8bit, &s->msg_size,
				       transfer_on_durable, s);
	free(rs);
}

/* ---- DATA ----------------------------------------------------------- */

void
transfer_cmd_data(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	transfer_begin_body(s, 0);
	session_cmd_ok(s);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* The whole message is in, by DATA or BDAT: the checker's verdict is the
 * answer, the one place for both commands. */
static void
transfer_message_done(struct session *s)
{
	if (s->data.error != SMTP_DATA_OK) {
		char q[64];

		s->env->stats.rejected[s->data.error == SMTP_DATA_E_TOO_BIG ?
					       ROUTER_REJECT_TOO_BIG :
					       ROUTER_REJECT_BAD_SYNTAX]++;
		log_info("qid=%s client=%s event=data_refused reason=%s",
			 s->qid, s->client,
			 log_quote(q, sizeof(q),
				   smtp_data_strerror(s->data.error), 9));
		session_reply_error(s, smtp_data_strerror(s->data.error));
		session_reset_txn(s);
		if (s->state != SESSION_ST_CLOSING)
			session_set_state(s, SESSION_ST_AFTER_MESSAGE);
		return;
	}
	transfer_submit(s, s->data.has_8bit);
}

bool
transfer_read_data(struct session *s, struct evbuffer *in)
{
	struct evbuffer_iovec vec[8];
	int n = evbuffer_peek(in, -1, NULL, vec, 8);

	for (int i = 0; i < n && i < 8; i++) {
		size_t used = 0;
		int st = smtp_data_feed(&s->data, vec[i].iov_base,
					vec[i].iov_len, &used);

		evbuffer_drain(in, used);
		if (st == SMTP_DATA_DONE) {
			transfer_message_done(s);
			return true;
		}
	}
	return false;
}

/* ---- BDAT ----------------------------------------------------------- */

/* RFC 3030. Every chunk's octets go through the same checker as DATA's.
 * A message the checker refuses is answered after its LAST chunk, once,
 * as DATA answers after its end: the chunks before it get 250 ("Chunk
 * discarded" once refused) and are read and dropped. So a client that
 * pipelines its chunks (RFC 3030 2) gets one error for one bad message,
 * not a 503 for every chunk already on the wire (each of which would
 * count towards router.max_errors), and the session never leaves the
 * transaction between chunks, where framing could slip. */

/* Read "BDAT size [LAST]" into s: how many octets follow. Returns 0, or
 * -1 when the size is unreadable: the session cannot stay in step with
 * the client then, so it ends here (501, 421, closing). */
static int
transfer_bdat_size(struct session *s, const struct smtp_cmd *cmd)
{
	uint64_t size;
	bool last;

	if (smtp_bdat_parse(cmd->arg, cmd->arg_len, &size, &last) != 0) {
		session_reply(
			s, "%s",
			smtp_cmd_strerror(SMTP_CMD_E_SYNTAX, SMTP_VERB_BDAT));
		session_reply(s, "421 4.5.0 %s Error: lost BDAT framing",
			      s->env->cfg->router.hostname);
		session_close_after_reply(s);
		return -1;
	}
	s->bdat_remaining = size;
	s->bdat_last = last;
	return 0;
}

void
transfer_cmd_bdat(struct session *s, const struct smtp_cmd *cmd)
{
	if (transfer_bdat_size(s, cmd) != 0)
		return;
	if (s->state == SESSION_ST_RCPT)
		transfer_begin_body(s, SMTP_DATA_CHUNKED);
	session_cmd_ok(s);
}

void
transfer_skip_bdat(struct session *s, const struct smtp_cmd *cmd)
{
	if (transfer_bdat_size(s, cmd) != 0)
		return;
	s->resume_state = s->state;
	session_set_state(s, SESSION_ST_SKIP);
}

/* A whole BDAT chunk has been read. */
static void
transfer_chunk_done(struct session *s)
{
	if (s->state == SESSION_ST_SKIP) {
		session_set_state(s, s->resume_state);
		session_reply_error(
			s, session_sequence_error(s->state, SMTP_VERB_BDAT));
		return;
	}
	if (!s->bdat_last) {
		session_set_state(s, SESSION_ST_AFTER_CHUNK);
		if (s->data.error != SMTP_DATA_OK)
			session_reply(s, "250 2.0.0 Chunk discarded");
		else
			session_reply(s, "250 2.0.0 %llu octets received",
				      (unsigned long long)s->data.total);
		return;
	}
	smtp_data_finish(&s->data);
	transfer_message_done(s);
}

/* Take up to the rest of the current BDAT chunk. Returns true when the
 * chunk is complete. */
static bool
transfer_take_chunk(struct session *s, struct evbuffer *in)
{
	while (s->bdat_remaining > 0) {
		struct evbuffer_iovec vec;
		size_t take, used = 0;

		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 ||
		    vec.iov_len == 0)
			return false;
		take = vec.iov_len < s->bdat_remaining ?
			       vec.iov_len :
			       (size_t)s->bdat_remaining;
		if (s->state != SESSION_ST_SKIP) {
			/* a chunked message takes every octet */
			smtp_data_feed(&s->data, vec.iov_base, take, &used);
			SHOAL_ASSERT(used == take);
		}
		evbuffer_drain(in, take);
		s->bdat_remaining -= take;
	}
	return true;
}

bool
transfer_read_chunk(struct session *s, struct evbuffer *in)
{
	if (!transfer_take_chunk(s, in))
		return false;
	transfer_chunk_done(s);
	return true;
}
