/* ZeroMQ sockets on a libevent loop: read passes driven by ZMQ_FD (each
 * receives until EAGAIN), non-blocking multipart sends. */
#include "lib/zsock.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/curve.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

struct zsock {
	void *sock;
	struct event *ev;
	zsock_msg_fn on_msg;
	zsock_pass_fn on_pass;
	void *arg;
};

/* Receive one whole multipart message into frames[]. Returns the number of
 * frames, 0 when nothing is waiting, -1 when the message had too many
 * frames (all of it is consumed and dropped). libzmq delivers multipart
 * messages atomically, so once the first frame is in, the rest is too. */
static int
zsock_recv_one(struct zsock *zs, zmq_msg_t *frames)
{
	int n = 0;
	bool too_many = false;
	bool more = true;

	while (more) {
		zmq_msg_t scratch;
		zmq_msg_t *m = n < ZSOCK_MAX_FRAMES ? &frames[n] : &scratch;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, zs->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(m);
			break;
		}
		more = zmq_msg_more(m);
		if (m == &scratch) {
			too_many = true;
			zmq_msg_close(m);
		} else {
			n++;
		}
	}
	if (too_many) {
		for (int i = 0; i < n; i++)
			zmq_msg_close(&frames[i]);
		log_warn("zmq dropped=message reason=\"more than %d frames\"",
			 ZSOCK_MAX_FRAMES);
		return -1;
	}
	return n;
}

static void
zsock_read_pass(evutil_socket_t fd, short what, void *arg)
{
	struct zsock *zs = arg;
	zmq_msg_t frames[ZSOCK_MAX_FRAMES];
	int delivered = 0;
	bool more;

	(void)fd;
	(void)what;
	/* Receive until libzmq says EAGAIN rather than asking ZMQ_EVENTS
	 * before each message: a receive that finds a message costs no
	 * syscall, a ZMQ_EVENTS query always costs libzmq a getpid and a
	 * poll. The EAGAIN receive processes libzmq's pending commands
	 * unthrottled, just as ZMQ_EVENTS would, so ZMQ_FD signals anew
	 * when more input arrives. A send from on_msg or on_pass schedules
	 * a pass itself (zsock_send). */
	more = true;
	while (delivered < ZSOCK_BATCH) {
		int n = zsock_recv_one(zs, frames);

		if (n == 0) {
			more = false;
			break;
		}
		if (n > 0) {
			zs->on_msg(zs, frames, (size_t)n, zs->arg);
			for (int i = 0; i < n; i++)
				zmq_msg_close(&frames[i]);
			delivered++;
		}
	}
	if (delivered && zs->on_pass)
		zs->on_pass(zs, zs->arg);
	/* still more waiting: come back after others had their turn */
	if (more)
		event_active(zs->ev, EV_READ, 0);
}

/* One option. Returns 0, or -errno (logged with the option's name). */
static int
zsock_set(void *sock, int opt, const char *name, const void *val, size_t len)
{
	int err;

	if (zmq_setsockopt(sock, opt, val, len) == 0)
		return 0;
	err = errno ? errno : EINVAL;
	log_error("zmq op=setsockopt option=%s error=\"%s\"", name,
		  zmq_strerror(err));
	return -err;
}

struct zsock *
zsock_new(struct event_base *base, void *zctx, int type, int64_t max_msg_size,
	  zsock_msg_fn on_msg, zsock_pass_fn on_pass, void *arg)
{
	struct zsock *zs = xcalloc(1, sizeof(*zs));
	int linger = 0;
	int fd;
	size_t fdlen = sizeof(fd);

	zs->on_msg = on_msg;
	zs->on_pass = on_pass;
	zs->arg = arg;
	zs->sock = zmq_socket(zctx, type);
	if (zs->sock == NULL) {
		log_error("zmq op=socket error=\"%s\"", zmq_strerror(errno));
		goto fail;
	}
	/* a socket without its size bound would take any message a peer
	 * sends: not used, like one that would be unencrypted */
	if (zsock_set(zs->sock, ZMQ_LINGER, "ZMQ_LINGER", &linger,
		      sizeof(linger)) != 0 ||
	    zsock_set(zs->sock, ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE",
		      &max_msg_size, sizeof(max_msg_size)) != 0)
		goto fail;
	if (zmq_getsockopt(zs->sock, ZMQ_FD, &fd, &fdlen) != 0) {
		log_error("zmq op=getsockopt error=\"%s\"", zmq_strerror(errno));
		goto fail;
	}
	zs->ev = event_new(base, fd, EV_READ | EV_PERSIST, zsock_read_pass, zs);
	if (zs->ev == NULL || event_add(zs->ev, NULL) != 0)
		goto fail;
	return zs;
fail:
	zsock_free(zs);
	return NULL;
}

void
zsock_free(struct zsock *zs)
{
	if (zs == NULL)
		return;
	if (zs->ev)
		event_free(zs->ev);
	if (zs->sock)
		zmq_close(zs->sock);
	free(zs);
}

int
zsock_bind(struct zsock *zs, const char *endpoint)
{
	int rc;

	if (strncmp(endpoint, "inproc:", 7) != 0 &&
	    (rc = curve_server(zs->sock)) != 0) {
		log_error("zmq op=bind endpoint=%s error=\"no CURVE: not "
			  "bound\"", endpoint);
		return rc;
	}
	if (zmq_bind(zs->sock, endpoint) != 0) {
		int err = errno;

		log_error("zmq op=bind endpoint=%s error=\"%s\"", endpoint,
			  zmq_strerror(err));
		return -err;
	}
	return 0;
}

int
zsock_connect(struct zsock *zs, const char *endpoint)
{
	int rc;

	if (strncmp(endpoint, "inproc:", 7) != 0 &&
	    (rc = curve_client(zs->sock)) != 0) {
		log_error("zmq op=connect endpoint=%s error=\"no CURVE: not "
			  "connected\"", endpoint);
		return rc;
	}
	if (zmq_connect(zs->sock, endpoint) != 0) {
		int err = errno;

		log_error("zmq op=connect endpoint=%s error=\"%s\"", endpoint,
			  zmq_strerror(err));
		return -err;
	}
	return 0;
}

void *
zsock_raw(struct zsock *zs)
{
	return zs->sock;
}

int
zsock_send(struct zsock *zs, const void *const *bufs, const size_t *lens,
	   size_t n, zmq_msg_t *take_last)
{
	size_t copied = take_last ? n - 1 : n;
	int rc = 0;

	for (size_t i = 0; i < copied; i++) {
		int flags = ZMQ_DONTWAIT;

		if (i + 1 < n)
			flags |= ZMQ_SNDMORE;
		if (zmq_send(zs->sock, bufs[i], lens[i], flags) < 0) {
			/* libzmq sends multipart atomically: a failure on the
			 * first frame leaves nothing half-sent; later frames
			 * cannot fail with EAGAIN once the first went out */
			rc = -errno;
			break;
		}
	}
	if (take_last) {
		if (rc == 0 && zmq_msg_send(take_last, zs->sock, ZMQ_DONTWAIT) < 0)
			rc = -errno;
		zmq_msg_close(take_last);
	}
	/* a send may have eaten the edge for pending input: look again */
	event_active(zs->ev, EV_READ, 0);
	return rc;
}
