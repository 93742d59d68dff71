/* ZeroMQ sockets driven from a libevent loop.
 *
 * libzmq exposes one file descriptor per socket (ZMQ_FD) that signals
 * edge-triggered "something changed", not "a message is waiting"; the truth
 * is ZMQ_EVENTS. So each read pass drains messages while ZMQ_EVENTS says
 * POLLIN (at most ZSOCK_BATCH per pass, then it yields to the loop and comes
 * back), and every send re-arms a pass, because a send can consume the edge
 * that announced a pending message.
 *
 * Knows nothing of mail or of our protobufs. */
#ifndef SHOAL_ZSOCK_H
#define SHOAL_ZSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

struct event_base;
struct zsock;

#define ZSOCK_MAX_FRAMES 8   /* more frames than this: message dropped */
#define ZSOCK_BATCH 512      /* messages per read pass before yielding */

/* Called once per received multipart message. frames[] belong to zsock and
 * are closed after the callback returns; take one with zmq_msg_move(). */
typedef void (*zsock_msg_fn)(struct zsock *zs, zmq_msg_t *frames,
			     size_t nframes, void *arg);

/* Called after a read pass that delivered at least one message, so a caller
 * can act on everything that arrived together (group commit). May be NULL. */
typedef void (*zsock_pass_fn)(struct zsock *zs, void *arg);

/* Create a socket of the given type (ZMQ_ROUTER, ZMQ_DEALER) with linger 0
 * and the given maximum message size (ZMQ_MAXMSGSIZE, bytes). Returns NULL
 * and logs on failure, including when libzmq refuses either option. */
struct zsock *zsock_new(struct event_base *base, void *zctx, int type,
			int64_t max_msg_size, zsock_msg_fn on_msg,
			zsock_pass_fn on_pass, void *arg);

/* zsock_free(NULL) does nothing. Never call it from inside its own
 * callbacks. */
void zsock_free(struct zsock *zs);

/* Bind or connect. Returns 0 or -errno (logged with the endpoint).
 * Cluster links get CURVE here when it is on (lib/curve.h): bind as its
 * server, connect as its client; an inproc endpoint never. When CURVE is
 * on and libzmq refuses one of its options, the socket is neither bound
 * nor connected. */
int zsock_bind(struct zsock *zs, const char *endpoint);
int zsock_connect(struct zsock *zs, const char *endpoint);

/* The underlying libzmq socket, for setsockopt. */
void *zsock_raw(struct zsock *zs);

/* Send n frames without blocking. Each frame is copied except the last
 * when take_last is given: that zmq_msg_t is sent as is (zero copy) and is
 * closed by zsock whatever the result. Returns 0 or -errno (-EAGAIN when
 * the peer is not connected or its queue is full; -EHOSTUNREACH for a
 * ROUTER whose peer identity is gone). */
int zsock_send(struct zsock *zs, const void *const *bufs, const size_t *lens,
	       size_t n, zmq_msg_t *take_last);

#endif
