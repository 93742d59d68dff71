/* One SMTP server session (RFC 5321, with PIPELINING RFC 2920, SIZE RFC
 * 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, ENHANCEDSTATUSCODES RFC 2034,
 * CHUNKING RFC 3030, DSN RFC 3461). Handles untrusted input. */
#ifndef SHOAL_ROUTER_SESSION_H
#define SHOAL_ROUTER_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/cidr.h"
#include "lib/config.h"
#include "lib/qid.h"
#include "router/metrics.h"

struct event_base;
struct enqueue;
struct session;
struct tls_server;
struct auth;
struct limits;
struct signer;

/* What every session of a router shares; owned by the router's main. */
struct session_env {
	struct event_base *base;
	const struct config *cfg;
	struct enqueue *enq;
	struct tls_server *tls;       /* NULL without router.tls_cert */
	struct auth *auth;            /* NULL without router.users_file */
	struct limits *limits;        /* per-client limits */
	struct signer *signer;        /* DKIM keys; NULL without router.dkim */
	struct qid_gen qids;
	struct cidr *relay_nets;
	size_t n_relay_nets;
	uint32_t sessions;        /* open now */
	uint64_t accepted, rejected;
	struct router_stats stats;    /* router/metrics.h */
	void (*on_close)(void *arg);  /* a session ended */
	void *on_close_arg;
	struct session *all;          /* every open session (shutdown) */
	bool is_ready;                /* the first shard map has come */
	bool is_stopping;             /* SIGTERM: 421 at command boundaries */
	struct http_server *http;     /* the HTTP API, NULL without one */
	bool is_past_deadline;        /* router.shutdown_timeout passed */
};

/* Start a session on an accepted socket (non-blocking); sends the greeting.
 * The session frees itself when it ends. */
void session_start(struct session_env *env, const struct cfg_listen *ls,
		   int fd, const struct sockaddr *peer, int peer_len);

/* Graceful shutdown, in two steps. First (is_past_deadline false): from
 * now on a session between transactions (before MAIL, or right after the
 * reply to its message) gets "421 4.3.2 <hostname> shutting down" and is
 * closed; one inside a transaction finishes it first. Then, at the
 * deadline: every session gets the 421 now, except one whose message its
 * node is making durable, which gets its 250 or 4xx first. Sets the flags
 * in env itself. */
void session_shutdown_all(struct session_env *env, bool is_past_deadline);

#endif
