/* The node's front socket: the ZeroMQ ROUTER at the node's endpoint where
 * routers, shoalctl, the peer and shard moves reach it, the CURVE
 * admission (ZAP) in front of it, the dispatch of each message by its
 * link tag (lib/wire.h), and the one way a request is answered: a ticket
 * taken when it arrives (who asked, and the request id) and rpc_reply()
 * when the answer is ready, now or later.
 *
 * Knows nothing of what the links carry beyond their tags; the handlers
 * node.c registers decode and validate their own messages (untrusted). */
#ifndef SHOAL_NODE_RPC_RPC_H
#define SHOAL_NODE_RPC_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "proto/cli_node.pb-c.h"

struct event_base;
struct rpc;

/* ZeroMQ routing ids are at most 255 bytes (ZMTP 3.x). */
#define RPC_ID_MAX 255

/* Who to answer: the routing id of the asking peer and its request id.
 * Plain data: copy it, keep it in a parked request, free nothing. */
struct rpc_ticket {
	unsigned char id[RPC_ID_MAX];
	size_t id_len;
	uint64_t request_id;
};

/* A message on one link: frames[0] is the sender's routing id, frames[1]
 * the link tag, the rest the link's own frames. A handler may take
 * (zmq_msg_move) frames it keeps; the rest are closed after it returns. */
typedef void (*rpc_handler_fn)(void *arg, zmq_msg_t *frames, size_t nframes);

/* Make the front socket in zctx and bind it at endpoint (with CURVE keys:
 * every interface a host name asks for, ZAP admitting only clients with
 * the cluster's keys; without: loopback only, with a warning). Messages
 * up to max_msg bytes. Returns 0 and sets *out, or an error (logged). */
int rpc_open(struct event_base *base, void *zctx, const char *node_id,
	     const char *endpoint, int64_t max_msg, struct rpc **out);

/* rpc_close(NULL) does nothing. Replies after it are not possible. */
void rpc_close(struct rpc *r);

/* Send messages tagged tag (WIRE_TAG_*) to fn. One handler per tag; a
 * message with an unknown tag is logged and dropped. */
void rpc_on(struct rpc *r, const char *tag, rpc_handler_fn fn, void *arg);

/* Fill t from a request's routing id frame and request id. Returns 0, or
 * -EPROTO when the id is empty or longer than RPC_ID_MAX (t untouched). */
int rpc_ticket_set(struct rpc_ticket *t, const zmq_msg_t *id_frame,
		   uint64_t request_id);

/* Send payload (copied) to the peer of t. Returns 0 or -errno (the peer
 * is gone: logged at debug; ZeroMQ drops replies to unknown ids). */
int rpc_reply(struct rpc *r, const struct rpc_ticket *t, const void *payload,
	      size_t len);

/* The same, with a second frame sent as it is when tail is given (zero
 * copy; closed by the call whatever the result): a large buffer many
 * replies share. */
int rpc_reply_tail(struct rpc *r, const struct rpc_ticket *t,
		   const void *payload, size_t len, zmq_msg_t *tail);

/* Answer an admin request (proto/cli_node.proto) with rep, its request_id
 * set from t: packed as it is, or, when it would exceed what a client
 * takes (WIRE_META_MAX), as STATUS_INTERNAL "reply too large". */
int rpc_reply_admin(struct rpc *r, const struct rpc_ticket *t,
		    Shoal__AdminReply *rep);

#endif
