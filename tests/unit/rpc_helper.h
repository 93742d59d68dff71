/* A node's front socket (node/rpc/rpc.h) on an inproc endpoint, and a
 * DEALER client on it, for the suites of modules that answer through
 * rpc_reply() and rpc_reply_admin() (test_admin.c, test_counts.c): a
 * request goes in tagged as its link would carry it, the handler the
 * suite registers runs from the event loop as in the node, and the reply
 * comes back as bytes. Every wait has a deadline. */
#ifndef SHOAL_RPC_HELPER_H
#define SHOAL_RPC_HELPER_H

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "lib/clock.h"
#include "lib/wire.h"
#include "node/rpc/rpc.h"
#include "tests/unit/check_helpers.h"

#define RPC_PEER_WAIT_MS 5000
#define RPC_PEER_MAX_MSG (64 * 1024 * 1024)

struct rpc_peer {
	struct event_base *base;
	void *zctx;
	struct rpc *rpc;
	void *dealer;
};

/* The front socket at endpoint (inproc://...), fn serving tag, and a
 * client connected to it. */
static inline void
rpc_peer_open(struct rpc_peer *p, const char *endpoint, const char *tag,
	      rpc_handler_fn fn, void *arg)
{
	int linger = 0;

	p->base = event_base_new();
	ck_assert_ptr_nonnull(p->base);
	p->zctx = zmq_ctx_new();
	ck_assert_int_eq(rpc_open(p->base, p->zctx, "test", endpoint,
				  RPC_PEER_MAX_MSG, &p->rpc),
			 0);
	rpc_on(p->rpc, tag, fn, arg);
	p->dealer = zmq_socket(p->zctx, ZMQ_DEALER);
	ck_assert_ptr_nonnull(p->dealer);
	zmq_setsockopt(p->dealer, ZMQ_ROUTING_ID, "client", 6);
	zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof(linger));
	ck_assert_int_eq(zmq_connect(p->dealer, endpoint), 0);
}

static inline void
rpc_peer_close(struct rpc_peer *p)
{
	zmq_close(p->dealer);
	rpc_close(p->rpc);
	zmq_ctx_term(p->zctx);
	event_base_free(p->base);
	memset(p, 0, sizeof(*p));
}

/* Send one message of the link tag, its payload len bytes. */
static inline void
rpc_peer_send(struct rpc_peer *p, const char *tag, const void *payload,
	      size_t len)
{
	ck_assert_int_eq(zmq_send(p->dealer, tag, WIRE_TAG_LEN, ZMQ_SNDMORE),
			 WIRE_TAG_LEN);
	ck_assert_int_eq(zmq_send(p->dealer, payload, len, 0), (int)len);
}

/* Run the loop until the client has a reply or timeout_ms pass. Returns
 * the reply (caller frees) and its size in *out_len, or NULL. */
static inline void *
rpc_peer_wait(struct rpc_peer *p, int timeout_ms, size_t *out_len)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

	do {
		zmq_pollitem_t pi = { p->dealer, 0, ZMQ_POLLIN, 0 };

		event_base_loop(p->base, EVLOOP_NONBLOCK);
		if (zmq_poll(&pi, 1, 1) == 1) {
			zmq_msg_t m;
			void *out;

			zmq_msg_init(&m);
			ck_assert_int_ge(zmq_msg_recv(&m, p->dealer, 0), 0);
			*out_len = zmq_msg_size(&m);
			out = malloc(*out_len ? *out_len : 1);
			memcpy(out, zmq_msg_data(&m), *out_len);
			zmq_msg_close(&m);
			return out;
		}
	} while (clock_mono_ms() < deadline);
	return NULL;
}

/* Send and wait for the reply (RPC_PEER_WAIT_MS at most). */
static inline void *
rpc_peer_call(struct rpc_peer *p, const char *tag, const void *payload,
	      size_t len, size_t *out_len)
{
	rpc_peer_send(p, tag, payload, len);
	return rpc_peer_wait(p, RPC_PEER_WAIT_MS, out_len);
}

#endif
