/* Stream connections: router/conn.h. A plain connection owns two events on
 * its socket (read, write) and two buffers; a TLS one is a libevent
 * OpenSSL bufferevent with our callbacks in front.
 *
 * Every handler calls at most one of the owner's callbacks, as its last
 * step: the owner may free the connection from inside it. */
#include "router/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/xmalloc.h"

/* Bytes asked of the kernel per read (libevent's bufferevent reads at most
 * 16 KiB at a time as well). */
#define CONN_READ_CHUNK 16384

struct conn {
	struct event_base *base;
	int fd;
	struct bufferevent *bev;  /* TLS; NULL while plain */
	struct event *rev, *wev;  /* plain: the socket readable, writable */
	struct evbuffer *in, *out; /* plain: ours (TLS: the bufferevent's) */
	conn_data_fn readcb, writecb;
	conn_event_fn eventcb;
	void *arg;
	struct timeval rtv, wtv;
	bool has_rtv, has_wtv;
	size_t read_max;
	bool is_reading;	/* the owner wants input */
	bool is_read_full;	/* ... but the input is at read_max */
	bool is_read_done;	/* end of input or an error: no more reads */
	bool was_read_short;	/* the last read took all the socket had */
	int err;
};

/* ---- plain ------------------------------------------------------------ */

static void
conn_watch_read(struct conn *c)
{
	if (c->is_reading && !c->is_read_full && !c->is_read_done)
		event_add(c->rev, c->has_rtv ? &c->rtv : NULL);
	else
		event_del(c->rev);
}

/* The owner took input: reading goes on below read_max. */
static void
conn_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info,
	      void *arg)
{
	struct conn *c = arg;

	(void)buf;
	if (info->n_deleted > 0 && c->is_read_full &&
	    evbuffer_get_length(c->in) < c->read_max) {
		c->is_read_full = false;
		conn_watch_read(c);
	}
}

/* One readv() into the input. Returns what read() returns. */
static ssize_t
conn_read_plain(struct conn *c)
{
	struct evbuffer_iovec v[2];
	size_t want = CONN_READ_CHUNK, have = evbuffer_get_length(c->in);
	struct iovec iov[2];
	ssize_t got;
	int n;

	if (c->read_max > 0 && c->read_max - have < want)
		want = c->read_max - have;
	n = evbuffer_reserve_space(c->in, (ev_ssize_t)want, v, 2);
	if (n <= 0) {
		errno = ENOMEM;
		return -1;
	}
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	/* reserve may offer more than asked: ask the kernel for no more */
	if (iov[0].iov_len >= want) {
		iov[0].iov_len = want;
		n = 1;
	} else if (n == 2 && iov[0].iov_len + iov[1].iov_len > want) {
		iov[1].iov_len = want - iov[0].iov_len;
	}
	got = readv(c->fd, iov, n);
	if (got <= 0) {
		evbuffer_commit_space(c->in, v, 0);
		return got;
	}
	c->was_read_short = (size_t)got < want;
	if ((size_t)got <= iov[0].iov_len) {
		v[0].iov_len = (size_t)got;
		n = 1;
	} else {
		v[0].iov_len = iov[0].iov_len;
		v[1].iov_len = (size_t)got - iov[0].iov_len;
		n = 2;
	}
	evbuffer_commit_space(c->in, v, n);
	return got;
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t got;

	(void)fd;
	if (what & EV_TIMEOUT) {
		c->is_reading = false;
		conn_watch_read(c);
		c->eventcb(c, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c->arg);
		return;
	}
	got = conn_read_plain(c);
	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			errno == EINTR))
		return;
	if (got <= 0) {
		c->err = got < 0 ? errno : 0;
		c->is_read_done = true;
		conn_watch_read(c);
		c->eventcb(c, BEV_EVENT_READING |
				      (got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR),
			   c->arg);
		return;
	}
	if (c->read_max > 0 && evbuffer_get_length(c->in) >= c->read_max) {
		c->is_read_full = true;
		conn_watch_read(c);
	}
	c->readcb(c, c->arg);
}

/* Write what the output holds: 0, or -1 with errno on a socket error. */
static int
conn_write_plain(struct conn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
	}
	return 0;
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		event_del(c->wev);
		c->eventcb(c, BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT, c->arg);
		return;
	}
	if (conn_write_plain(c) != 0) {
		c->err = errno;
		event_del(c->wev);
		c->eventcb(c, BEV_EVENT_WRITING | BEV_EVENT_ERROR, c->arg);
		return;
	}
	if (evbuffer_get_length(c->out) > 0)
		return;
	event_del(c->wev);
	if (c->writecb)
		c->writecb(c, c->arg);
}

struct conn *
conn_new(struct event_base *base, int fd)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->fd = fd;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
	if (c->in == NULL || c->out == NULL || c->rev == NULL ||
	    c->wev == NULL ||
	    evbuffer_add_cb(c->in, conn_on_input, c) == NULL) {
		conn_free(c);
		return NULL;
	}
	return c;
}

/* ---- TLS -------------------------------------------------------------- */

static void
conn_on_bev_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	c->readcb(c, c->arg);
}

static void
conn_on_bev_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->writecb)
		c->writecb(c, c->arg);
}

static void
conn_on_bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))
		c->err = EVUTIL_SOCKET_ERROR();
	c->eventcb(c, what, c->arg);
}

/* Settings made so far, onto the bufferevent. */
static void
conn_setup_bev(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_on_bev_read, conn_on_bev_write,
			  conn_on_bev_event, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, c->read_max);
	bufferevent_set_timeouts(c->bev, c->has_rtv ? &c->rtv : NULL,
				 c->has_wtv ? &c->wtv : NULL);
	/* a peer that just closes is an end of input, not an error */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_enable(c->bev, c->is_reading ? EV_READ | EV_WRITE :
						    EV_WRITE);
}

static struct bufferevent *
conn_tls_bev(struct event_base *base, int fd, SSL *ssl, bool accepting)
{
	return bufferevent_openssl_socket_new(
		base, fd, ssl,
		accepting ? BUFFEREVENT_SSL_ACCEPTING :
			    BUFFEREVENT_SSL_CONNECTING,
		BEV_OPT_CLOSE_ON_FREE);
}

struct conn *
conn_new_tls(struct event_base *base, int fd, SSL *ssl, bool accepting)
{
	struct conn *c;
	struct bufferevent *bev = conn_tls_bev(base, fd, ssl, accepting);

	if (bev == NULL) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->fd = fd;
	c->bev = bev;
	return c;
}

int
conn_start_tls(struct conn *c, SSL *ssl, bool accepting)
{
	struct bufferevent *bev;

	if (c->bev != NULL || evbuffer_get_length(c->out) > 0 ||
	    evbuffer_get_length(c->in) > 0 ||
	    (bev = conn_tls_bev(c->base, c->fd, ssl, accepting)) == NULL) {
		SSL_free(ssl);
		return -1;
	}
	event_free(c->rev);
	event_free(c->wev);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	c->rev = c->wev = NULL;
	c->in = c->out = NULL;
	c->bev = bev;
	if (c->eventcb != NULL)
		conn_setup_bev(c);
	return 0;
}

/* ---- either ----------------------------------------------------------- */

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->bev != NULL) {
		bufferevent_free(c->bev); /* closes the socket */
	} else {
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		if (c->in)
			evbuffer_free(c->in);
		if (c->out)
			evbuffer_free(c->out);
		evutil_closesocket(c->fd);
	}
	free(c);
}

void
conn_setcb(struct conn *c, conn_data_fn readcb, conn_data_fn writecb,
	   conn_event_fn eventcb, void *arg)
{
	SHOAL_ASSERT(readcb != NULL && eventcb != NULL);
	c->readcb = readcb;
	c->writecb = writecb;
	c->eventcb = eventcb;
	c->arg = arg;
	if (c->bev != NULL)
		conn_setup_bev(c);
}

void
conn_set_timeouts(struct conn *c, const struct timeval *read,
		  const struct timeval *write)
{
	c->has_rtv = read != NULL;
	c->has_wtv = write != NULL;
	if (read)
		c->rtv = *read;
	if (write)
		c->wtv = *write;
	if (c->bev != NULL) {
		bufferevent_set_timeouts(c->bev, read, write);
		return;
	}
	if (event_pending(c->rev, EV_READ, NULL))
		conn_watch_read(c);
	if (event_pending(c->wev, EV_WRITE, NULL))
		event_add(c->wev, c->has_wtv ? &c->wtv : NULL);
}

void
conn_set_read_max(struct conn *c, size_t max)
{
	c->read_max = max;
	if (c->bev != NULL) {
		bufferevent_setwatermark(c->bev, EV_READ, 0, max);
		return;
	}
	c->is_read_full = max > 0 && evbuffer_get_length(c->in) >= max;
	conn_watch_read(c);
}

void
conn_enable_read(struct conn *c, bool on)
{
	c->is_reading = on;
	if (c->bev == NULL)
		conn_watch_read(c);
	else if (on)
		bufferevent_enable(c->bev, EV_READ);
	else
		bufferevent_disable(c->bev, EV_READ);
}

struct evbuffer *
conn_input(struct conn *c)
{
	return c->bev ? bufferevent_get_input(c->bev) : c->in;
}

struct evbuffer *
conn_output(struct conn *c)
{
	return c->bev ? bufferevent_get_output(c->bev) : c->out;
}

bool
conn_flush(struct conn *c)
{
	if (c->bev != NULL) /* writes by itself while EV_WRITE is on */
		return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
	if (evbuffer_get_length(c->out) == 0)
		return true;
	/* waiting for the socket already: its write timeout runs on from
	 * the last write that went through, whatever the peer sends */
	if (event_pending(c->wev, EV_WRITE, NULL))
		return false;
	/* a socket error shows again in the write handler, which reports it */
	if (conn_write_plain(c) != 0 || evbuffer_get_length(c->out) > 0) {
		event_add(c->wev, c->has_wtv ? &c->wtv : NULL);
		return false;
	}
	return true;
}

size_t
conn_peek(struct conn *c, char *buf, size_t n)
{
	struct evbuffer *in = conn_input(c);
	ssize_t got;

	if (evbuffer_get_length(in) > 0) {
		got = evbuffer_copyout(in, buf, n);
		return got > 0 ? (size_t)got : 0;
	}
	if (c->bev != NULL || c->was_read_short || c->is_read_done)
		return 0;
	got = recv(c->fd, buf, n, MSG_PEEK | MSG_DONTWAIT);
	return got > 0 ? (size_t)got : 0;
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

bool
conn_is_tls(const struct conn *c)
{
	return c->bev != NULL;
}

SSL *
conn_ssl(const struct conn *c)
{
	return c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;
}

unsigned long
conn_tls_error(struct conn *c)
{
	return c->bev ? bufferevent_get_openssl_error(c->bev) : 0;
}

int
conn_error(const struct conn *c)
{
	return c->err;
}
