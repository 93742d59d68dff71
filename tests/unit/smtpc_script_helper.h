/* The scripted SMTP server and the client fixture of the SMTP client's
 * suites (test_smtpc.c, test_smtpc_tls.c). The server is a thread that
 * accepts one connection on 127.0.0.1 (a port the kernel picked) and
 * plays a script of steps (send these reply lines, expect this command,
 * read n lines, read a DATA body, stay quiet, do a TLS handshake with
 * srv.ctx, close). Everything the client sends is recorded (after TLS, in
 * clear), so tests compare the exact bytes on the wire.
 *
 * The client runs in the test's own event loop (fx); the server thread
 * never calls Check (it records its first error, the test asserts on it
 * after joining). Waits are for events, each under a deadline. */
#ifndef SHOAL_SMTPC_SCRIPT_HELPER_H
#define SHOAL_SMTPC_SCRIPT_HELPER_H

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "lib/log.h"
#include "node/delivery/smtpc.h"

#define RUN_MS 8000      /* deadline for one run_until() */
#define STEP_MS 5000     /* deadline for one server step */
#define MAX_RCPTS 4
#define MAX_DONE 4
#define SRV_BUF 65536    /* server's line buffer */
#define BIG_BODY (8u << 20) /* more than loopback socket buffers hold */

/* ---- the scripted server ------------------------------------------------ */

enum op {
	OP_END = 0,
	OP_SEND,     /* write text as is */
	OP_EXPECT,   /* read one line, must equal text (without CRLF) */
	OP_LINES,    /* read n lines, whatever they are */
	OP_DATA,     /* read lines up to and including "." */
	OP_QUIET,    /* nothing may arrive for n ms */
	OP_TLS,      /* server side of a TLS handshake */
	OP_GARBAGE,  /* read some (TLS) bytes, answer with non-TLS, close */
	OP_CLOSE,    /* close the connection */
	OP_EOF,      /* read until the client closes */
};

struct step {
	enum op op;
	const char *text;
	int n;
};

#define SEND(s) { OP_SEND, (s), 0 }
#define EXPECT(s) { OP_EXPECT, (s), 0 }
#define LINES(k) { OP_LINES, NULL, (k) }
#define DATA { OP_DATA, NULL, 0 }
#define QUIET(ms) { OP_QUIET, NULL, (ms) }
#define TLS_ACCEPT { OP_TLS, NULL, 0 }
#define GARBAGE { OP_GARBAGE, NULL, 0 }
#define CLOSE { OP_CLOSE, NULL, 0 }
#define WAIT_EOF { OP_EOF, NULL, 0 }
#define END { OP_END, NULL, 0 }

/* the usual opening and closing */
#define GREET SEND("220 mx.test ESMTP ready\r\n"), EXPECT("EHLO client.test")
#define QUIT_END EXPECT("QUIT"), SEND("221 2.0.0 bye\r\n"), WAIT_EOF, END

static struct {
	int lfd, fd, port;
	SSL_CTX *ctx;            /* server TLS context, for OP_TLS */
	SSL *ssl;
	const struct step *script;
	pthread_t thread;
	bool running;
	int finished;            /* set by the thread, read atomically */
	int steps;               /* steps done, read atomically */
	char rbuf[SRV_BUF];      /* received, not yet taken as lines */
	size_t rlen;
	char line[SRV_BUF];
	char *got;               /* everything the client sent, in clear */
	size_t got_len, got_cap;
	char sni[256];
	char err[512];
	int rcvbuf;              /* SO_RCVBUF, 0 = default */
} srv;

static inline uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void __attribute__((format(printf, 1, 2)))
srv_fail(const char *fmt, ...)
{
	va_list ap;

	if (srv.err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(srv.err, sizeof(srv.err), fmt, ap);
	va_end(ap);
}

static inline void
srv_record(const char *p, size_t n)
{
	if (srv.got_len + n + 1 > srv.got_cap) {
		srv.got_cap = (srv.got_len + n + 1) * 2;
		srv.got = realloc(srv.got, srv.got_cap);
		if (srv.got == NULL)
			abort();
	}
	memcpy(srv.got + srv.got_len, p, n);
	srv.got_len += n;
	srv.got[srv.got_len] = '\0';
}

/* Wait for the socket; false on timeout. */
static inline bool
srv_wait(short events, uint64_t deadline)
{
	struct pollfd p = { .fd = srv.fd, .events = events };
	uint64_t now = now_ms();

	if (now >= deadline)
		return false;
	return poll(&p, 1, (int)(deadline - now)) > 0 || errno == EINTR;
}

/* Read what is there. Returns the byte count, 0 at EOF (a reset counts),
 * -1 on error, -2 on timeout. Received bytes are recorded when record. */
static inline ssize_t
srv_recv(char *buf, size_t len, uint64_t deadline, bool record)
{
	for (;;) {
		short ev = POLLIN;
		ssize_t n;

		if (srv.ssl) {
			int r = SSL_read(srv.ssl, buf, (int)len);

			if (r > 0) {
				n = r;
			} else {
				switch (SSL_get_error(srv.ssl, r)) {
				case SSL_ERROR_WANT_READ:
					n = -3;
					break;
				case SSL_ERROR_WANT_WRITE:
					n = -3;
					ev = POLLOUT;
					break;
				case SSL_ERROR_ZERO_RETURN:
					return 0;
				case SSL_ERROR_SYSCALL: /* EOF or reset */
					if (errno == 0 || errno == ECONNRESET)
						return 0;
					return -1;
				default:
					return -1;
				}
			}
		} else {
			n = recv(srv.fd, buf, len, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				n = -3;
			else if (n < 0 && errno == ECONNRESET)
				return 0;
		}
		if (n > 0 && record)
			srv_record(buf, (size_t)n);
		if (n != -3)
			return n;
		if (!srv_wait(ev, deadline))
			return -2;
	}
}

static inline bool
srv_send(const char *p, size_t len)
{
	uint64_t deadline = now_ms() + STEP_MS;

	while (len > 0) {
		short ev = POLLOUT;
		ssize_t n;

		if (srv.ssl) {
			int r = SSL_write(srv.ssl, p, (int)len);

			n = r;
			if (r <= 0) {
				int e = SSL_get_error(srv.ssl, r);

				if (e != SSL_ERROR_WANT_READ &&
				    e != SSL_ERROR_WANT_WRITE)
					return false;
				if (e == SSL_ERROR_WANT_READ)
					ev = POLLIN;
				n = -3;
			}
		} else {
			n = send(srv.fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return false;
			if (n < 0)
				n = -3;
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (!srv_wait(ev, deadline)) {
			return false;
		}
	}
	return true;
}

/* The next line without its CRLF, or NULL (error recorded). */
static inline const char *
srv_getline(uint64_t deadline)
{
	for (;;) {
		char *nl = memchr(srv.rbuf, '\n', srv.rlen);
		ssize_t n;

		if (nl) {
			size_t len = (size_t)(nl - srv.rbuf) + 1;

			memcpy(srv.line, srv.rbuf, len);
			memmove(srv.rbuf, srv.rbuf + len, srv.rlen - len);
			srv.rlen -= len;
			if (len < 2 || srv.line[len - 2] != '\r') {
				srv_fail("client sent a bare LF");
				return NULL;
			}
			srv.line[len - 2] = '\0';
			return srv.line;
		}
		if (srv.rlen == sizeof(srv.rbuf)) {
			srv_fail("client line over %d bytes", SRV_BUF);
			return NULL;
		}
		n = srv_recv(srv.rbuf + srv.rlen, sizeof(srv.rbuf) - srv.rlen,
			     deadline, true);
		if (n <= 0) {
			srv_fail("%s while waiting for a line",
				 n == 0 ? "EOF" : n == -2 ? "timeout" : "err");
			return NULL;
		}
		srv.rlen += (size_t)n;
	}
}

static inline bool
srv_tls(uint64_t deadline)
{
	const char *sni;

	if (srv.rlen > 0) {
		srv_fail("client sent data behind STARTTLS");
		return false;
	}
	srv.ssl = SSL_new(srv.ctx);
	SSL_set_fd(srv.ssl, srv.fd);
	for (;;) {
		int r = SSL_accept(srv.ssl);
		int e;

		if (r == 1)
			break;
		e = SSL_get_error(srv.ssl, r);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    !srv_wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
			      deadline)) {
			srv_fail("TLS handshake failed (%d)", e);
			return false;
		}
	}
	sni = SSL_get_servername(srv.ssl, TLSEXT_NAMETYPE_host_name);
	snprintf(srv.sni, sizeof(srv.sni), "%s", sni ? sni : "");
	return true;
}

/* Run one step; false ends the script. */
static inline bool
srv_step(const struct step *s)
{
	uint64_t deadline = now_ms() + STEP_MS;
	const char *l;
	char buf[4096];
	ssize_t n;

	switch (s->op) {
	case OP_END:
		return false;
	case OP_SEND:
		if (!srv_send(s->text, strlen(s->text))) {
			srv_fail("cannot send \"%.40s\"", s->text);
			return false;
		}
		return true;
	case OP_EXPECT:
		if ((l = srv_getline(deadline)) == NULL)
			return false;
		if (strcmp(l, s->text) != 0) {
			srv_fail("expected \"%s\", got \"%.200s\"", s->text, l);
			return false;
		}
		return true;
	case OP_LINES:
		for (int i = 0; i < s->n; i++)
			if (srv_getline(deadline) == NULL)
				return false;
		return true;
	case OP_DATA:
		do {
			if ((l = srv_getline(deadline)) == NULL)
				return false;
		} while (strcmp(l, ".") != 0);
		return true;
	case OP_QUIET:
		if (srv.rlen == 0) {
			n = srv_recv(buf, sizeof(buf),
				     now_ms() + (uint64_t)s->n, true);
			if (n == -2)
				return true;
		}
		srv_fail("client did not wait for the reply");
		return false;
	case OP_TLS:
		return srv_tls(deadline);
	case OP_GARBAGE:
		n = srv_recv(buf, sizeof(buf), deadline, false);
		if (n <= 0) {
			srv_fail("no TLS ClientHello");
			return false;
		}
		srv_send("HTTP/1.0 400 not TLS at all\r\n\r\n", 32);
		return false;
	case OP_CLOSE:
		return false;
	case OP_EOF:
		while ((n = srv_recv(buf, sizeof(buf), deadline, true)) > 0)
			;
		if (n < 0)
			srv_fail("client did not close (%zd)", n);
		return false;
	}
	return false;
}

static inline void *
srv_main(void *arg)
{
	struct pollfd p = { .fd = srv.lfd, .events = POLLIN };

	(void)arg;
	if (poll(&p, 1, STEP_MS) != 1) {
		srv_fail("no connection");
		goto out;
	}
	srv.fd = accept4(srv.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (srv.fd < 0) {
		srv_fail("accept: %s", strerror(errno));
		goto out;
	}
	for (const struct step *s = srv.script; srv_step(s); s++)
		__atomic_add_fetch(&srv.steps, 1, __ATOMIC_RELEASE);
	if (srv.ssl)
		SSL_free(srv.ssl);
	srv.ssl = NULL;
	close(srv.fd);
	srv.fd = -1;
out:
	__atomic_store_n(&srv.finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A listening socket on 127.0.0.1 at a port the kernel picked. */
static inline int
listen_any(int backlog, int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	if (srv.rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &srv.rcvbuf,
			   sizeof(srv.rcvbuf));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	ck_assert_int_eq(listen(fd, backlog), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static inline void
srv_start(const struct step *script)
{
	srv.script = script;
	srv.lfd = listen_any(8, &srv.port);
	ck_assert_int_eq(pthread_create(&srv.thread, NULL, srv_main, NULL), 0);
	srv.running = true;
}

/* ---- the client side ---------------------------------------------------- */

enum action { ACT_NONE, ACT_CLOSE, ACT_SEND_NEXT, ACT_FREE_BODY };

struct got_done {
	struct smtpc_result res;       /* res.rcpt is NULL: see rcpt */
	struct smtpc_reply rcpt[MAX_RCPTS];
	bool usable;                   /* smtpc_is_usable() in the callback */
};

static struct {
	struct event_base *base;
	struct smtpc_ctx *x;           /* the clients' owner */
	struct smtpc *c;
	SSL_CTX *client_ctx;
	bool in_api;                   /* inside smtpc_open() / smtpc_send() */
	int early;                     /* callbacks run inside them */
	/* ready */
	int n_ready;
	bool ready_ok;
	enum smtpc_phase ready_phase;
	struct smtpc_reply ready_reply;
	struct smtpc_info info;        /* copied in ready(true) */
	enum action ready_action;
	/* done */
	int n_done;
	struct got_done done[MAX_DONE];
	enum action done_action;
	struct smtpc_msg next;         /* ACT_SEND_NEXT sends this */
	int next_rc;
	char *heap_body;               /* ACT_FREE_BODY frees this */
	/* connect timeout */
	int fillers[3];
} fx;

static const char *const RCPTS[MAX_RCPTS] = { "b@y.test", "c@y.test",
					      "d@y.test", "e@y.test" };

static inline void
on_ready(struct smtpc *c, bool ok, enum smtpc_phase phase,
	 const struct smtpc_reply *r, void *arg)
{
	(void)arg;
	if (fx.in_api)
		fx.early++;
	fx.n_ready++;
	fx.ready_ok = ok;
	fx.ready_phase = phase;
	fx.ready_reply = *r;
	if (ok)
		fx.info = *smtpc_info(c);
	if (fx.ready_action == ACT_CLOSE) {
		smtpc_close(c);
		fx.c = NULL;
	}
}

static inline void
on_done(struct smtpc *c, const struct smtpc_result *res, void *arg)
{
	struct got_done *d;
	enum action act = fx.done_action;

	(void)arg;
	if (fx.in_api)
		fx.early++;
	ck_assert_int_lt(fx.n_done, MAX_DONE);
	ck_assert_uint_le(res->n_rcpts, MAX_RCPTS);
	d = &fx.done[fx.n_done++];
	d->res = *res;
	d->res.rcpt = NULL;
	memcpy(d->rcpt, res->rcpt, res->n_rcpts * sizeof(*res->rcpt));
	d->usable = smtpc_is_usable(c);
	fx.done_action = ACT_NONE;
	switch (act) {
	case ACT_NONE:
		break;
	case ACT_CLOSE:
		smtpc_close(c);
		fx.c = NULL;
		break;
	case ACT_SEND_NEXT:
		fx.next_rc = smtpc_send(c, &fx.next, on_done, NULL);
		break;
	case ACT_FREE_BODY:
		/* the body is borrowed only until done: poison, then free */
		memset(fx.heap_body, 'Z', BIG_BODY);
		free(fx.heap_body);
		fx.heap_body = NULL;
		break;
	}
}

static inline void
run_until(const int *counter, int want)
{
	uint64_t deadline = now_ms() + RUN_MS;

	while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < want) {
		struct timeval tv = { 0, 5000 };

		ck_assert_msg(now_ms() < deadline,
			      "deadline passed (ready %d, done %d, server %s)",
			      fx.n_ready, fx.n_done,
			      srv.err[0] ? srv.err : "no error");
		event_base_loopexit(fx.base, &tv);
		event_base_dispatch(fx.base);
	}
}

/* Open a client to 127.0.0.1:port with o; helo_name and mx_name default
 * to client.test and mx.test. */
static inline void
client_open_opts(int port, struct smtpc_opts o)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (o.helo_name == NULL)
		o.helo_name = "client.test";
	if (o.mx_name == NULL)
		o.mx_name = "mx.test";
	o.addr = (const struct sockaddr *)&a;
	fx.in_api = true;
	fx.c = smtpc_open(fx.x, &o, on_ready, NULL);
	fx.in_api = false;
	ck_assert_ptr_nonnull(fx.c);
}

static inline void
client_open_at(int port, enum smtpc_tls tls, SSL_CTX *ctx, uint32_t scale,
	       const struct sockaddr *source)
{
	struct smtpc_opts o = {
		.tls = tls,
		.ssl_ctx = ctx,
		.source = source,
		.timeout_scale_pct = scale,
	};

	client_open_opts(port, o);
}

/* Start the server on script, connect with o, and wait for ready(). */
static inline void
session_opts(const struct step *script, struct smtpc_opts o)
{
	srv_start(script);
	client_open_opts(srv.port, o);
	run_until(&fx.n_ready, 1);
	ck_assert_int_eq(fx.n_ready, 1);
}

static inline void
session(const struct step *script, enum smtpc_tls tls, SSL_CTX *ctx,
	uint32_t scale)
{
	struct smtpc_opts o = {
		.tls = tls,
		.ssl_ctx = ctx,
		.timeout_scale_pct = scale,
	};

	session_opts(script, o);
}

static inline void
session_ok(const struct step *script)
{
	session(script, SMTPC_TLS_NONE, NULL, 100);
	ck_assert_msg(fx.ready_ok, "ready(false): phase %d code %d \"%s\"",
		      fx.ready_phase, fx.ready_reply.code,
		      fx.ready_reply.text);
}

static inline void
send_msg(const struct smtpc_msg *m)
{
	int want = fx.n_done + 1;

	fx.in_api = true;
	ck_assert_int_eq(smtpc_send(fx.c, m, on_done, NULL), 0);
	fx.in_api = false;
	run_until(&fx.n_done, want);
}

/* Close the client, let the server finish its script, check it had no
 * complaint. */
static inline void
finish(void)
{
	smtpc_close(fx.c);
	fx.c = NULL;
	if (srv.running) {
		run_until(&srv.finished, 1);
		pthread_join(srv.thread, NULL);
		srv.running = false;
		ck_assert_msg(srv.err[0] == '\0', "server: %s", srv.err);
	}
	ck_assert_int_eq(fx.early, 0);
}

static inline const char *
wire(void)
{
	return srv.got ? srv.got : "";
}

static inline struct smtpc_msg
msg(size_t n_rcpts, const char *body)
{
	struct smtpc_msg m = {
		.mail_from = "a@x.test",
		.n_rcpts = n_rcpts,
		.rcpts = RCPTS,
		.envid = "",
		.body = body,
		.body_len = strlen(body),
	};

	return m;
}

static inline void
assert_reply(const struct smtpc_reply *r, int code, const char *enhanced,
	     const char *text)
{
	ck_assert_int_eq(r->code, code);
	ck_assert_str_eq(r->enhanced, enhanced);
	if (text)
		ck_assert_str_eq(r->text, text);
}

static inline void
setup(void)
{
	memset(&srv, 0, sizeof(srv));
	memset(&fx, 0, sizeof(fx));
	srv.lfd = srv.fd = -1;
	for (size_t i = 0; i < 3; i++)
		fx.fillers[i] = -1;
	signal(SIGPIPE, SIG_IGN);
	/* TEST_SMTPC_DEBUG=1 shows the SMTP client's debug lines */
	log_init("test_smtpc", getenv("TEST_SMTPC_DEBUG") ? LOG_LVL_DEBUG :
							  LOG_LVL_ERROR);
	if (getenv("TEST_SMTPC_DEBUG"))
		log_set_debug("smtp");
	fx.base = event_base_new();
	ck_assert_ptr_nonnull(fx.base);
	fx.x = smtpc_ctx_new(fx.base);
	ck_assert_ptr_nonnull(fx.x);
}

static inline void
teardown(void)
{
	smtpc_close(fx.c);
	if (srv.running)
		pthread_join(srv.thread, NULL);
	if (srv.lfd >= 0)
		close(srv.lfd);
	for (size_t i = 0; i < 3; i++)
		if (fx.fillers[i] >= 0)
			close(fx.fillers[i]);
	free(srv.got);
	free(fx.heap_body);
	smtpc_ctx_free(fx.x); /* frees a connection still saying QUIT */
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(fx.client_ctx);
	event_base_free(fx.base);
}

#endif
