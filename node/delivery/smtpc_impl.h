/* The SMTP client's insides, shared by its four files and by nothing
 * else (the interface is smtpc.h):
 *
 *   smtpc.c          the connection: life cycle, per-state timeouts,
 *                    reading and writing, calling back, failing
 *   smtpc_session.c  what comes before messages: greeting, EHLO/HELO,
 *                    STARTTLS and the TLS handshake (RFC 5321, RFC 3207)
 *   smtpc_msg.c      one message: the command plan (RSET, MAIL, RCPT...,
 *                    DATA; pipelined per RFC 2920), the body, the replies
 *   smtpc_tls.c      the TLS policy: the SSL_CTX, each SSL's set-up and
 *                    the certificate check after the handshake (VERIFY,
 *                    DANE: RFC 8461, RFC 7672), TLS failure reasons
 *
 * One state per expected reply (enum smtpc_state); smtpc.c hands each
 * complete reply to the file that owns the state. */
#ifndef SHOAL_NODE_SMTPC_IMPL_H
#define SHOAL_NODE_SMTPC_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <openssl/ssl.h>

#include "lib/guard.h"
#include "node/delivery/smtpc.h"
#include "node/delivery/smtpc_proto.h"

struct bufferevent;
struct event;
struct evbuffer;

enum smtpc_state {
	ST_CONNECT = 0,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_READY,       /* idle, waiting for smtpc_send() */
	ST_PLAN,        /* replies to RSET/MAIL/RCPT/DATA expected */
	ST_DOT,         /* body sent, reply to the final dot expected */
	ST_QUIT,
	ST_DEAD,
	ST_COUNT
};

/* What each state waits for: its name in logs, its timeout and the phase
 * a failure in it is reported at. The table is in smtpc.c. */
struct smtpc_state_info {
	const char *name;
	int timeout_s;
	enum smtpc_phase phase;
};

extern const struct smtpc_state_info smtpc_states[ST_COUNT];

/* One command of a message plan and what its reply means. */
enum plan_cmd { PLAN_RSET, PLAN_MAIL, PLAN_RCPT, PLAN_DATA };

struct smtpc_ctx {
	struct event_base *base;
	struct smtpc *quitting;   /* closed, waiting for the reply to QUIT */
	uint64_t repairs;         /* bodies the encoder had to repair */
};

struct smtpc {
	struct smtpc_ctx *x;
	struct smtpc *qnext, **qprev; /* on x->quitting while saying QUIT */
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timer;     /* the current state's timeout */
	struct event *later;     /* runs deferred callbacks */
	enum smtpc_state state;
	bool tls_wanted;         /* any mode but NONE, with a ctx */
	bool tls_tried;          /* STARTTLS sent once */
	bool quit_on_close;      /* failed check: smtpc_close() says QUIT */
	struct guard guard;      /* closing: smtpc_close() called, no more
				    callbacks; sections: caller callbacks */
	/* Output of one read callback (or one smtpc_send) gathers in pend
	 * and is written straight to the socket at its end (smtpc_flush):
	 * no write event to add and remove, no extra pass of the loop. Only
	 * on a plain socket; NULL when it could not be allocated. */
	struct evbuffer *pend;
	bool batching;
	bool first_msg_sent;
	enum smtpc_tls tls;
	SSL_CTX *ssl_ctx;
	char policy[32];         /* smtpc_opts.policy, leads failure texts */
	bool evaluate;           /* smtpc_opts.evaluate */
	char verify_name[256];   /* VERIFY: the name checked */
	struct smtpc_tlsa *tlsa; /* DANE: copies, data in the same block */
	size_t n_tlsa;           /* <= SMTPC_TLSA_MAX */
	size_t dane_usable;      /* records OpenSSL took */
	uint32_t scale_pct;
	char helo[256];
	struct smtpc_info info;

	smtpc_ready_fn ready;
	void *ready_arg;
	bool ready_pending;      /* a deferred ready(false) is waiting */
	enum smtpc_phase fail_phase;
	struct smtpc_reply fail_reply;

	struct smtpc_reply_reader cur; /* the reply being read */

	/* the message being sent */
	struct smtpc_msg msg;
	smtpc_done_fn done;
	void *done_arg;
	bool done_pending;       /* a deferred done() is waiting */
	struct smtpc_result res;
	enum plan_cmd *plan;     /* commands whose replies are expected */
	size_t plan_len, plan_pos, plan_sent;
	size_t plan_cap;
	size_t n_accepted;       /* recipients accepted at RCPT */
	bool *rcpt_ok;
};

/* ---- smtpc.c: the connection ------------------------------------------- */

/* seconds scaled by the connection's timeout_scale_pct */
struct timeval smtpc_tv(const struct smtpc *c, int seconds);
/* (re)arm the state timer; seconds <= 0 disarms it */
void smtpc_arm(struct smtpc *c, int seconds);
/* enter state st with its timeout from smtpc_states */
void smtpc_enter(struct smtpc *c, enum smtpc_state st);
/* a local reply (code 0 for a local failure) with text fmt % arg */
void smtpc_local(struct smtpc_reply *r, int code, const char *enhanced,
		 const char *fmt, const char *arg)
	__attribute__((format(printf, 4, 0)));

/* Call the caller back. Both return false when the caller closed the
 * connection inside the callback: then return at once without touching
 * c (it may be freed). */
bool smtpc_call_ready(struct smtpc *c, bool ok, enum smtpc_phase phase,
		      const struct smtpc_reply *r);
bool smtpc_call_done(struct smtpc *c);

/* The connection is finished: ready(false) before ready, done() with r
 * for every open recipient during a message. Returns as smtpc_call_*. */
bool smtpc_fail(struct smtpc *c, enum smtpc_phase phase,
		const struct smtpc_reply *r);
/* smtpc_fail() with a local reason, at the phase of the current state */
bool smtpc_fail_local(struct smtpc *c, const char *what);

/* Where output goes now (the batch, or the bufferevent). */
struct evbuffer *smtpc_out(struct smtpc *c);
/* bytes handed over and not yet written to the socket */
size_t smtpc_unsent(struct smtpc *c);
/* whether output may gather in the batch now (plain socket, no batch) */
bool smtpc_may_batch(const struct smtpc *c);
/* end the batch: write it to the socket now if nothing is queued first */
void smtpc_flush(struct smtpc *c);
/* one command line; CRLF added */
void smtpc_write(struct smtpc *c, const char *line);

/* the bufferevent callbacks, for the TLS filter that replaces it */
void smtpc_on_read(struct bufferevent *bev, void *arg);
void smtpc_on_write(struct bufferevent *bev, void *arg);
void smtpc_on_event(struct bufferevent *bev, short what, void *arg);

/* ---- smtpc_session.c: before messages ----------------------------------- */

/* A complete reply in ST_GREETING, ST_EHLO, ST_HELO or ST_STARTTLS.
 * Returns false when the reading loop must stop (c closed, failed, or
 * switched to TLS). */
bool smtpc_session_on_reply(struct smtpc *c);

/* The TLS handshake finished: EHLO again (RFC 3207 4.2). */
void smtpc_session_tls_up(struct smtpc *c);

/* ---- smtpc_tls.c: the TLS policy --------------------------------------- */

/* Copy o's policy name, verify name and TLSA records (bounded) into c;
 * c->info.mx_name and c->tls must be set. */
void smtpc_tls_init(struct smtpc *c, const struct smtpc_opts *o);
/* whether TLS is required (REQUIRED, VERIFY, DANE): never plain text */
bool smtpc_tls_is_required(const struct smtpc *c);
/* Set ssl up for c's mode before the handshake. Returns 0, or -EIO when
 * OpenSSL refused (no name to check, DANE not enabled in the ctx). */
int smtpc_tls_prepare(struct smtpc *c, SSL *ssl);
/* After the handshake: true when c's mode accepts the certificate (sets
 * info.tls_verified, or tls_failure "tlsa-invalid"); false with the
 * local reply in r and info.tls_failure set. */
bool smtpc_tls_check(struct smtpc *c, SSL *ssl, struct smtpc_reply *r);
/* TLS required and STARTTLS not offered (or no ctx): the reply in r */
void smtpc_tls_not_offered(struct smtpc *c, struct smtpc_reply *r);
/* STARTTLS refused by the server: the result-type when TLS is required */
void smtpc_tls_refused(struct smtpc *c);
/* The handshake failed with OpenSSL's err: the reply in r */
void smtpc_tls_handshake_failed(struct smtpc *c, const char *err,
				struct smtpc_reply *r);

/* ---- smtpc_msg.c: one message ------------------------------------------ */

/* Start sending m on a ready, idle connection (smtpc_send() checked). */
void smtpc_msg_start(struct smtpc *c, const struct smtpc_msg *m,
		     smtpc_done_fn done, void *arg);

/* A complete reply in ST_PLAN / ST_DOT. Returns as smtpc_call_done(). */
bool smtpc_msg_on_plan_reply(struct smtpc *c);
bool smtpc_msg_on_dot_reply(struct smtpc *c);

#endif
