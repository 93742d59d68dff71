/* What the router does to every message it queues (see message.h). */
#include "router/message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/smtp_cmd.h"
#include "lib/xmalloc.h"
#include "proto/queue.pb-c.h"
#include "router/pool.h"
#include "router/session.h"
#include "router/signer.h"

size_t
message_received(struct buf *body, const struct config *cfg, const char *helo,
		 const char *client, const char *proto, const char *qid,
		 const char *rcpt)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_printf(body,
		   "Received: from %s ([%s])\r\n\tby %s (Shoal) "
		   "with %s id %s",
		   helo[0] ? helo : "unknown", client, cfg->router.hostname,
		   proto, qid);
	if (rcpt)
		buf_printf(body, "\r\n\tfor <%s>", rcpt);
	buf_printf(body, "; %s\r\n", date);
	return body->len;
}

/* Take the pool, priority and tenant headers out of the message (before
 * anything signs it) and classify it. Only a client we relay for (relay
 * network or AUTH) may classify, by header or by the fields beside the
 * message: anyone else could otherwise pick the addresses whose
 * reputation they want to borrow, or jump the queue. */
static void
message_classify(const struct config *cfg, const char *qid,
		 const struct message_from *m, struct buf *body,
		 size_t header_len, struct pool_choice *c)
{
	const char *names[3] = { cfg->router.pool_header,
				 cfg->router.priority_header,
				 cfg->router.tenant_header };
	const char *given[3] = { m->pool, m->priority, m->tenant };
	char value[3][POOL_HEADER_MAX];
	const char *use[3] = { NULL, NULL, NULL };
	bool seen = false;

	for (int i = 0; i < 3; i++) {
		value[i][0] = '\0';
		if (names[i][0] &&
		    pool_strip_header(body, header_len, names[i], value[i],
				      sizeof(value[i])) > 0) {
			use[i] = value[i];
			seen = true;
		}
		if (given[i])
			use[i] = given[i];
	}
	pool_classify(cfg, use[0], use[1], use[2], m->is_trusted, m->auth_user,
		      m->mail_from, c);
	if (seen && !m->is_trusted)
		log_debug(LOG_SUB_SMTP,
			  "qid=%s client=%s event=class_headers_ignored "
			  "trusted=0",
			  qid, m->client);
}

static Shoal__Priority
message_priority(enum cfg_priority p)
{
	switch (p) {
	case CFG_PRIORITY_HIGH:
		return SHOAL__PRIORITY__PRIORITY_HIGH;
	case CFG_PRIORITY_BULK:
		return SHOAL__PRIORITY__PRIORITY_BULK;
	default:
		return SHOAL__PRIORITY__PRIORITY_NORMAL;
	}
}

#define MESSAGE_SIGS_MAX (32u * 1024) /* our DKIM-Signature fields */

/* DKIM-sign the client's message (after our Received header) and put the
 * signatures in front of everything. A message that cannot be signed goes
 * on unsigned (signer_sign() logs why). Only mail of a client we relay for
 * is signed: anyone may write to our postmaster, and a copy of such mail
 * signed with the operator's keys (returned in a bounce, say) would let
 * them pass off their text as the operator's own. */
static void
message_sign(struct signer *sg, const char *qid, const struct message_from *m,
	     struct buf *body, size_t header_len)
{
	struct buf sigs;

	if (sg == NULL || !m->is_trusted)
		return;
	buf_init(&sigs, MESSAGE_SIGS_MAX);
	if (signer_sign(sg, qid, body->data + header_len,
			body->len - header_len, &sigs) > 0 &&
	    buf_insert(body, 0, sigs.data, sigs.len) != 0)
		log_warn("qid=%s dkim=not_signed reason=\"no room for the "
			 "signature\"",
			 qid);
	buf_free(&sigs);
}

void
message_finish(const struct config *cfg, struct signer *sg, const char *qid,
	       const struct message_from *m, struct buf *body,
	       size_t header_len, struct pool_choice *cls)
{
	/* the one place the received message is changed before it is
	 * queued: the class headers go first, then DKIM signs what is
	 * left, which is what gets delivered */
	message_classify(cfg, qid, m, body, header_len, cls);
	message_sign(sg, qid, m, body, header_len);
}

uint64_t
message_enqueue(struct session_env *env, const char *qid,
		const struct message_from *m, const struct pool_choice *cls,
		struct buf *body, bool has_8bit, size_t *size,
		enqueue_done_fn done, void *arg)
{
	Shoal__Envelope e = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient *rs = xcalloc(m->n_rcpts, sizeof(*rs));
	Shoal__Recipient **rp = xcalloc(m->n_rcpts, sizeof(*rp));
	uint64_t id;
	size_t len;
	char *data;

	for (size_t i = 0; i < m->n_rcpts; i++) {
		shoal__recipient__init(&rs[i]);
		rs[i].address = (char *)m->rcpts[i].addr;
		rs[i].notify = m->rcpts[i].notify;
		rs[i].orcpt = (char *)(m->rcpts[i].orcpt ? m->rcpts[i].orcpt :
							   "");
		if (m->rcpts[i].suppressed_reply) {
			rs[i].suppressed = true;
			rs[i].suppressed_reply =
				(char *)m->rcpts[i].suppressed_reply;
		}
		rp[i] = &rs[i];
	}
	e.mail_from = (char *)m->mail_from;
	e.n_rcpts = m->n_rcpts;
	e.rcpts = rp;
	e.ret = (Shoal__Ret)m->ret;
	e.envid = (char *)m->envid;
	e.smtputf8 = m->smtputf8;
	e.body = (Shoal__BodyType)m->body;
	/* 8-bit data sent without BODY=8BITMIME is accepted (as Postfix
	 * does) but recorded as 8-bit so delivery treats it right */
	if (has_8bit && e.body == SHOAL__BODY_TYPE__BODY_7BIT)
		e.body = SHOAL__BODY_TYPE__BODY_8BITMIME;
	e.arrival_time = (uint64_t)time(NULL);
	e.client_addr = (char *)m->client;
	e.helo = (char *)m->helo;
	e.auth_user = (char *)m->auth_user;
	e.pool = (char *)(cls->pool ? cls->pool : "");
	e.priority = message_priority(cls->priority);
	e.tenant = (char *)cls->tenant;
	data = buf_steal(body, &len);
	*size = len;
	id = enqueue_submit(env->enq, qid, &e, data, len, done, arg);
	free(rs);
	free(rp);
	return id;
}

uint64_t
message_submit(struct session_env *env, const char *qid,
	       const struct message_from *m, struct buf *body,
	       size_t header_len, bool has_8bit, size_t *size,
	       enqueue_done_fn done, void *arg)
{
	struct pool_choice cls;

	message_finish(env->cfg, env->signer, qid, m, body, header_len, &cls);
	return message_enqueue(env, qid, m, &cls, body, has_8bit, size, done,
			       arg);
}

enum message_check_verdict
message_check_verdict(const struct config *cfg, int result,
		      const struct enqueue_check_result *res,
		      const char *client, const char *addr,
		      char **bounce_reply, char *refusal, size_t len)
{
	char q[LOG_QUOTE_BUF];

	if (result != 0) {
		/* warned about in router/enqueue.c, rate-limited */
		log_debug(LOG_SUB_SMTP,
			  "client=%s rcpt=<%s> "
			  "event=suppress_check_failed action=accept",
			  client, addr);
		return MESSAGE_CHECK_ACCEPT;
	}
	if (!res->suppressed)
		return MESSAGE_CHECK_ACCEPT;
	if (cfg->suppression.mode == CFG_SUPP_REFUSE) {
		log_info("client=%s rcpt=<%s> event=suppressed action=refuse "
			 "reply=%s",
			 client, addr,
			 log_quote(q, sizeof(q), res->reply,
				   strlen(res->reply)));
		/* the stored reply is printable ASCII and bounded */
		snprintf(refusal, len, "550 5.1.1 <%s>: suppressed: %.300s",
			 addr, res->reply);
		return MESSAGE_CHECK_REFUSE;
	}
	log_info("client=%s rcpt=<%s> event=suppressed action=bounce", client,
		 addr);
	*bounce_reply = xstrdup(res->reply[0] ? res->reply :
						"550 5.1.1 suppressed");
	return MESSAGE_CHECK_BOUNCE;
}
