/* What the router does to every message it queues, whichever way the
 * message came in (SMTP DATA or BDAT, router/transfer.c; the HTTP API,
 * router/http_inject.c): our Received: header in front, the class headers
 * (pool, priority, tenant) taken out and the message classified, the DKIM
 * signature added, the envelope built, and the hand-off to the node that
 * owns its shard. One home for these rules, so that a message gets the
 * same treatment by every path. Also the reading of a suppression check's
 * answer, which SMTP's RCPT and the HTTP API share. */
#ifndef SHOAL_ROUTER_MESSAGE_H
#define SHOAL_ROUTER_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "router/enqueue.h"
#include "router/pool.h"

struct session_env;
struct signer;

/* One recipient of a message being queued. */
struct message_rcpt {
	const char *addr;
	unsigned notify;              /* SMTP_NOTIFY_* (DSN), 0 = default */
	const char *orcpt;            /* NULL = none */
	const char *suppressed_reply; /* listed and to be bounced, or NULL */
};

/* Who sent a message and how: the envelope and the client. */
struct message_from {
	const char *mail_from;        /* "" = the null sender */
	const struct message_rcpt *rcpts;
	size_t n_rcpts;
	int ret;                      /* enum smtp_ret (lib/smtp_cmd.h) */
	const char *envid;            /* "" = none */
	bool smtputf8;
	int body;                     /* enum smtp_body (lib/smtp_cmd.h) */
	const char *client;           /* printable address */
	const char *helo;             /* HELO name, or "" */
	const char *auth_user;        /* "" = not authenticated */
	bool is_trusted;              /* relay network or authenticated */
	/* Classification given beside the message (the HTTP API's fields),
	 * each NULL when not given: it wins over the message's header.
	 * Taken only from a trusted client. */
	const char *pool, *priority, *tenant;
};

/* Start body with our Received: header (RFC 5321 4.4) for a message from
 * client (helo: its HELO name) by protocol proto ("ESMTPSA", "HTTP"...),
 * naming the recipient when there is exactly one (rcpt, else NULL).
 * Returns the header's length. */
size_t message_received(struct buf *body, const struct config *cfg,
			const char *helo, const char *client,
			const char *proto, const char *qid, const char *rcpt);

/* The message in body (our Received header is its first header_len
 * octets) is complete and its content checked: take out the class
 * headers, classify (into cls) and DKIM-sign it. Safe on a worker thread
 * (cfg is read only; the signer locks its keys). */
void message_finish(const struct config *cfg, struct signer *sg,
		    const char *qid, const struct message_from *m,
		    struct buf *body, size_t header_len,
		    struct pool_choice *cls);

/* Hand a finished message to the primary of qid's shard. body is taken
 * (left empty). has_8bit: the content checker saw an octet >= 0x80.
 * *size gets the octets handed on. Returns enqueue_submit()'s request
 * id; done is called as enqueue_submit() says. */
uint64_t message_enqueue(struct session_env *env, const char *qid,
			 const struct message_from *m,
			 const struct pool_choice *cls, struct buf *body,
			 bool has_8bit, size_t *size, enqueue_done_fn done,
			 void *arg);

/* message_finish() then message_enqueue(), on the loop (SMTP). */
uint64_t message_submit(struct session_env *env, const char *qid,
			const struct message_from *m, struct buf *body,
			size_t header_len, bool has_8bit, size_t *size,
			enqueue_done_fn done, void *arg);

/* What a suppression check's answer (router/enqueue.h) means for the
 * recipient. Anything but a clear answer accepts: suppression must never
 * lose or delay mail. */
enum message_check_verdict {
	MESSAGE_CHECK_ACCEPT = 0,     /* not listed, or no clear answer */
	MESSAGE_CHECK_REFUSE,         /* listed, suppression.mode refuse */
	MESSAGE_CHECK_BOUNCE,         /* listed, mode bounce: queue it, the
				       * node bounces it (*bounce_reply) */
};

/* result and res as enqueue_check_fn gets them. For MESSAGE_CHECK_BOUNCE
 * *bounce_reply gets the reply to bounce with (malloc'd); for REFUSE the
 * refusal "550 5.1.1 <addr>: suppressed: ..." goes to refusal (at most
 * len - 1 octets). Logs the decision. */
enum message_check_verdict
message_check_verdict(const struct config *cfg, int result,
		      const struct enqueue_check_result *res,
		      const char *client, const char *addr,
		      char **bounce_reply, char *refusal, size_t len);

#endif
