/* DEALER links from this node to other nodes' front sockets, by node id,
 * at the endpoint the shard map gives: made on first use and kept until
 * links_free(). Each user (pending suppression adds, shaping actions)
 * has its own set, with its own callback for the replies.
 *
 * Replies arrive through on_msg like any zsock message (untrusted: the
 * callback unpacks and checks them). */
#ifndef SHOAL_NODE_RPC_LINKS_H
#define SHOAL_NODE_RPC_LINKS_H

#include <stdint.h>

#include "lib/zsock.h"
#include "proto/cli_node.pb-c.h"
#include "proto/queue.pb-c.h"

struct event_base;
struct links;

/* Messages up to max_msg bytes either way. */
struct links *links_new(struct event_base *base, void *zctx, int64_t max_msg,
			zsock_msg_fn on_msg, void *arg);

/* Closes every link. links_free(NULL) does nothing. Not from inside
 * on_msg. */
void links_free(struct links *l);

/* The link to node id, made now if needed at its endpoint in map; NULL
 * when map does not know id or the socket cannot be made (logged). */
struct zsock *links_get(struct links *l, const Shoal__ShardMap *map,
			const char *id);

/* A node's answer on a link: one frame, an AdminReply (the caller frees
 * it with shoal__admin_reply__free_unpacked), or NULL when it is not. */
Shoal__AdminReply *links_admin_reply(const zmq_msg_t *frames, size_t nframes);

/* A zsock_msg_fn for requests whose answers matter only when refused
 * (shaping actions and policies sent round): arg is the static name of
 * the sender for the debug line, e.g. "shaping". */
void links_log_refusals(struct zsock *zs, zmq_msg_t *frames, size_t nframes,
			void *arg);

/* Send an admin request (packed, len bytes) to every node of map but
 * self; a node that cannot be reached now is skipped (the caller's next
 * round or its own lookups make up for it). */
void links_send_admin_all(struct links *l, const Shoal__ShardMap *map,
			  const char *self, const void *payload, size_t len);

#endif
