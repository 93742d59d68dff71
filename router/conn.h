/* A stream connection for protocol code that reads lines and writes
 * replies: an input and an output buffer, callbacks when input came, when
 * the output has drained and on end, error or timeout, like a libevent
 * bufferevent (the same BEV_EVENT_* flags) but cheaper on a plain socket:
 *
 * - a read is one readv() into the input buffer: no FIONREAD ioctl before
 *   each read, as libevent's socket bufferevent does;
 * - conn_flush() writes the output at once and watches the socket for
 *   writing only while some of it waits (no epoll_ctl per reply);
 * - conn_peek() looks at input not read yet without asking the kernel
 *   when the last read left none.
 *
 * TLS goes through libevent's OpenSSL bufferevent on the same socket, from
 * the start (conn_new_tls) or after a STARTTLS exchange (conn_start_tls).
 * Knows nothing of SMTP; owns the socket and closes it in conn_free(). */
#ifndef SHOAL_ROUTER_CONN_H
#define SHOAL_ROUTER_CONN_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

struct conn;
struct evbuffer;

/* Input came (read), or the output drained after it had to wait (write). */
typedef void (*conn_data_fn)(struct conn *c, void *arg);
/* BEV_EVENT_READING or _WRITING with _EOF, _ERROR or _TIMEOUT, or
 * BEV_EVENT_CONNECTED (a TLS handshake finished). */
typedef void (*conn_event_fn)(struct conn *c, short what, void *arg);

/* A plain connection on fd (non-blocking, connected or accepted). NULL
 * when out of event resources (fd is then closed). */
struct conn *conn_new(struct event_base *base, int fd);

/* A TLS connection on fd with ssl (taken): accepting (server side) or
 * connecting. NULL on failure (fd closed, ssl freed). */
struct conn *conn_new_tls(struct event_base *base, int fd, SSL *ssl,
			  bool accepting);

/* Go on in TLS with ssl (taken): the plaintext output must have left
 * (conn_flush() said so) and the input be empty. The callbacks, timeouts
 * and read limit carry over; the handshake's end is BEV_EVENT_CONNECTED.
 * Returns -1 when it cannot (ssl freed, the connection unchanged). */
int conn_start_tls(struct conn *c, SSL *ssl, bool accepting);

/* Closes the socket. conn_free(NULL) does nothing. Never inside one of
 * c's own callbacks (lib/guard.h). */
void conn_free(struct conn *c);

void conn_setcb(struct conn *c, conn_data_fn readcb, conn_data_fn writecb,
		conn_event_fn eventcb, void *arg);

/* Idle time allowed while reading is enabled (read) and while output
 * waits for the socket (write); NULL for none. */
void conn_set_timeouts(struct conn *c, const struct timeval *read,
		       const struct timeval *write);

/* Stop reading while the input holds max bytes or more (0: no limit). */
void conn_set_read_max(struct conn *c, size_t max);

/* Read from the socket (EV_READ), or not. Writing needs no enabling:
 * conn_flush() does it. */
void conn_enable_read(struct conn *c, bool on);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);

/* Write what the output holds now, as far as the socket takes it; the
 * rest goes out when the socket is ready and the write callback follows.
 * Returns true when nothing is left to write. A write error is reported
 * through the event callback, later, never from inside this call. */
bool conn_flush(struct conn *c);

/* Copy up to n bytes of input that waits to be taken, without taking
 * it: from the input buffer, or else from the socket (MSG_PEEK). TLS
 * cannot look into the socket (0); nor is the kernel asked when the last
 * read came back short: the socket had nothing more then. */
size_t conn_peek(struct conn *c, char *buf, size_t n);

int conn_fd(const struct conn *c);
bool conn_is_tls(const struct conn *c);
SSL *conn_ssl(const struct conn *c);
/* The OpenSSL error behind the last failure, 0 when none. */
unsigned long conn_tls_error(struct conn *c);
/* errno of the last socket error (read or write), 0 when none. */
int conn_error(const struct conn *c);

#endif
