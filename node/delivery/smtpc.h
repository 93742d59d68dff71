/* The SMTP client for delivery: one connection to one MX address, able to
 * carry several messages in turn (connection reuse). RFC 5321 client side
 * with EHLO (HELO fallback), STARTTLS (RFC 3207, OpenSSL), PIPELINING (RFC
 * 2920), SIZE (RFC 1870), 8BITMIME, SMTPUTF8 (RFC 6531), DSN (RFC 3461),
 * and the timeouts of RFC 5321 4.5.3.2. The server's certificate is
 * checked, once per connection, against the CA store (MTA-STS, RFC 8461)
 * or its TLSA records (DANE, RFC 7672) when the caller asks.
 *
 * It reports what the server said; it decides nothing about retries or
 * bounces (node/delivery/outcome.c does). One state per expected reply;
 * per-state timeouts live in a table. Handles untrusted input: replies are bounded
 * (line length, line count) and parsed strictly. */
#ifndef SHOAL_NODE_SMTPC_H
#define SHOAL_NODE_SMTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct smtpc;
struct smtpc_ctx;
typedef struct ssl_ctx_st SSL_CTX;

#define SMTPC_REPLY_TEXT_MAX 512   /* kept of a reply (lines joined) */
#define SMTPC_REPLY_LINES_MAX 100  /* more lines: protocol error */
#define SMTPC_TLSA_MAX 16          /* TLSA records kept; the rest ignored */
#define SMTPC_TLSA_DATA_MAX 4096   /* longer data: the record is unusable */

enum smtpc_tls {
	SMTPC_TLS_OPPORTUNISTIC = 0, /* STARTTLS when offered, else plain */
	SMTPC_TLS_REQUIRED,          /* no STARTTLS or a failed handshake: fail */
	SMTPC_TLS_NONE,              /* never */
	SMTPC_TLS_VERIFY,            /* as REQUIRED, and the certificate must
					chain to the CA store and be valid
					for verify_name (MTA-STS, "verify") */
	SMTPC_TLS_DANE,              /* as REQUIRED, and the certificate must
					match a usable TLSA record (RFC 7672;
					none usable: TLS unauthenticated) */
};

/* One TLSA record (RFC 6698 2.1), as DNS gave it. */
struct smtpc_tlsa {
	uint8_t usage, selector, mtype;
	const unsigned char *data;   /* certificate association data */
	size_t len;
};

/* Where a connection-level failure happened. */
enum smtpc_phase {
	SMTPC_PH_CONNECT = 0,  /* TCP connect refused / unreachable / timeout */
	SMTPC_PH_GREETING,     /* no, or a non-2xx, banner */
	SMTPC_PH_EHLO,         /* EHLO and HELO refused */
	SMTPC_PH_TLS,          /* STARTTLS refused / handshake failed / required
				  but not offered / certificate check failed */
	SMTPC_PH_MAIL,
	SMTPC_PH_RCPT,
	SMTPC_PH_DATA,         /* the DATA command */
	SMTPC_PH_DOT,          /* the reply after the final "." */
	SMTPC_PH_QUIT,
};

/* One reply, or a local failure (code 0). */
struct smtpc_reply {
	int code;                     /* 250, 451, ...; 0 = no reply (see text) */
	char enhanced[16];            /* "5.1.1" or "" */
	char text[SMTPC_REPLY_TEXT_MAX]; /* reply text (lines joined by a space),
					     or the local reason: "connection refused",
					     "timeout after DATA", ... */
};

/* A message to send. Everything is borrowed until its done callback. */
struct smtpc_msg {
	const char *mail_from;        /* "" for the null sender */
	size_t n_rcpts;
	const char *const *rcpts;     /* mailboxes without <> */
	const unsigned *notify;       /* RFC 3461 bits per rcpt (queue.proto Notify), may be NULL */
	const char *const *orcpt;     /* "rfc822;..." or "" per rcpt, may be NULL */
	int ret;                      /* 0 none, 1 FULL, 2 HDRS */
	const char *envid;            /* "" for none (sent xtext-encoded) */
	bool smtputf8;                /* the envelope needs SMTPUTF8 */
	bool body_8bit;               /* send BODY=8BITMIME */
	const char *body;             /* the message, not dot-stuffed: CRLF line
					 ends expected, anything sent safely
					 (see smtpc_proto_body_feed()) */
	size_t body_len;
	const char *qid;              /* for logs only; may be NULL */
	/* asked at the 354, the last moment a message can be withdrawn (the
	 * connection is closed without the final dot: RFC 5321 4.1.1.4, no
	 * dot, no message); NULL = always go on. A withdrawn message ends
	 * with result.withdrawn and is not an attempt. */
	bool (*may_commit)(void *arg);
	void *commit_arg;
};

/* The result of one message: one reply per recipient (RCPT's, or for
 * recipients accepted at RCPT, the reply after the final dot), plus the
 * phase that ended the attempt early when it did. */
struct smtpc_result {
	enum smtpc_phase failed_phase; /* SMTPC_PH_QUIT when all phases ran */
	struct smtpc_reply msg_reply;  /* MAIL / DATA / final-dot reply */
	struct smtpc_reply *rcpt;      /* n_rcpts entries */
	size_t n_rcpts;
	bool conn_lost;                /* the connection is no longer usable */
	bool withdrawn;		       /* may_commit said no: not sent */
};

/* What the server offered, once the session is ready. */
struct smtpc_info {
	bool esmtp, pipelining, starttls, size, eightbit, smtputf8, dsn;
	uint64_t max_size;            /* SIZE value, 0 = none given */
	bool tls_active;
	bool tls_verified;            /* VERIFY / DANE: the certificate passed */
	char tls_version[32];         /* "TLSv1.3" or "" */
	char tls_cipher[64];
	/* RFC 8460 4.3 result-type of a failure of the server's TLS in the
	 * modes that require it (REQUIRED, VERIFY, DANE), or "":
	 * "starttls-not-supported" (not offered, or refused),
	 * "certificate-host-mismatch", "certificate-expired",
	 * "certificate-not-trusted", "validation-failure" (any other
	 * certificate error, no TLSA record matched, the handshake failed);
	 * and "tlsa-invalid" on a DANE connection that is ready but
	 * unauthenticated because no TLSA record was usable. Our own
	 * failures (no TLS context, out of memory, timeouts) leave it "". */
	char tls_failure[40];
	char peer_ip[64];
	char source_ip[64];           /* the bound source address, or "" */
	char local_ip[64];            /* our end once connected, or "" */
	bool source_failed;           /* failed for the source's sake: bind(),
					 EADDRNOTAVAIL, ENETUNREACH (IP pools) */
	char mx_name[256];
	struct smtpc_reply greeting;
};

/* The connection is ready for messages (ok) or failed before that. On
 * failure, reply says why and phase where; the connection is finished and
 * must be freed with smtpc_free(). */
typedef void (*smtpc_ready_fn)(struct smtpc *c, bool ok,
			       enum smtpc_phase phase,
			       const struct smtpc_reply *reply, void *arg);

/* A message finished (whatever the outcome); res lives during the call. */
typedef void (*smtpc_done_fn)(struct smtpc *c, const struct smtpc_result *res,
			      void *arg);

struct smtpc_opts {
	const char *helo_name;
	const char *mx_name;          /* for SNI, logs and the DANE TLSA base
					 domain (RFC 7672 2.2.2) */
	enum smtpc_tls tls;
	SSL_CTX *ssl_ctx;             /* from smtpc_ssl_ctx_new(); NULL = no
					 TLS at all */
	const char *verify_name;      /* VERIFY: the name the certificate must
					 be valid for; DANE: a name a DANE-TA
					 chain may be valid for besides
					 mx_name; NULL = mx_name */
	const struct smtpc_tlsa *tlsa; /* DANE: the host's DNSSEC-secure TLSA
					  records, copied at open (at most
					  SMTPC_TLSA_MAX) */
	size_t n_tlsa;
	bool evaluate;                /* OPPORTUNISTIC: check the certificate
					 as VERIFY would, for a report only
					 (tls_verified / tls_failure), never
					 failing on it (MTA-STS testing) */
	const char *policy;           /* leads failure texts: "MTA-STS",
					 "DANE", ...; NULL = "DANE" in DANE
					 mode, else "TLS" */
	const struct sockaddr *addr;  /* with port set */
	const struct sockaddr *source; /* bind address (IP pools) or NULL */
	uint32_t timeout_scale_pct;   /* 100 = RFC 5321 4.5.3.2 values (tests shrink them) */
};

/* The clients of one owner: the event loop they run on, the connections
 * closed with smtpc_close() that still wait for the reply to their QUIT
 * (nobody else points at them) and the count of bodies repaired for the
 * rate-limited warning. Returns NULL (logged) when out of memory. */
struct smtpc_ctx *smtpc_ctx_new(struct event_base *base);

/* Free every closed connection still saying QUIT, then x; for shutdown,
 * when the event loop will not run again. Every connection opened with x
 * must have been closed. smtpc_ctx_free(NULL) does nothing. */
void smtpc_ctx_free(struct smtpc_ctx *x);

/* Connect and run greeting, EHLO/HELO and STARTTLS. ready is called once,
 * never before smtpc_open() returns. x must outlive the connection.
 * Returns NULL only on a local error (no socket), logged. */
struct smtpc *smtpc_open(struct smtpc_ctx *x, const struct smtpc_opts *o,
			 smtpc_ready_fn ready, void *arg);

/* Send one message on a ready, idle connection. done is called once, never
 * before smtpc_send() returns. Returns 0, or -EBUSY if a message is in
 * progress, -ENOTCONN if the connection is not ready. The message
 * is sent with RSET first when it is not the connection's first one. */
int smtpc_send(struct smtpc *c, const struct smtpc_msg *m, smtpc_done_fn done,
	       void *arg);

/* What the server offered (valid after a successful ready); the TLS
 * fields (tls_failure above all) also in and after ready(false). */
const struct smtpc_info *smtpc_info(const struct smtpc *c);

/* Whether the connection can take another message. */
bool smtpc_is_usable(const struct smtpc *c);

/* Send QUIT (if usable, or if the server's certificate failed its check
 * over a working TLS session) and free the connection when done or after
 * a short timeout (smtpc_ctx_free() frees it at shutdown); no callbacks
 * are called afterwards. Safe to call from inside this connection's
 * callbacks: then the connection is freed on their way out.
 * smtpc_close(NULL) does nothing. */
void smtpc_close(struct smtpc *c);

/* Build the client SSL_CTX of every mode: TLS 1.2+ with OpenSSL's
 * defaults, DANE enabled, trusting the CA certificates of ca_file (PEM)
 * or, when NULL, OpenSSL's default paths (the system store). The
 * handshake never fails on the certificate (RFC 7435); smtpc checks it
 * afterwards in VERIFY and DANE mode. Returns NULL and logs when the
 * context cannot be built or ca_file not read; the caller frees the
 * result with SSL_CTX_free(). */
SSL_CTX *smtpc_ssl_ctx_new(const char *ca_file);

#endif
