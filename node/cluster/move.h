/* Shard moves (shoalctl shard move / node drain). The shard's primary
 * (the source) freezes the shard: no delivery starts, enqueues get
 * "moving" and the router tries again. It waits for the shard's attempts
 * in flight, then sends every message of the shard to the target over the
 * M1 link, one batch at a time (proto/node_node.proto MoveBatch). The
 * target stores a batch, journals it to its own peer, and acknowledges it
 * once both have it durably. The last batch carries the new map (the
 * target primary, its peer replica). The target takes it at once; the
 * source takes it on that ack, and both drop the shard's copies they no
 * longer need.
 *
 * No message is delivered by both: the source delivers nothing of the
 * shard from the freeze on, the target nothing before the map. Nothing is
 * lost when either dies mid-move:
 *   - the source has every message until the map says otherwise;
 *   - a restarted source resumes its move (kept in meta);
 *   - a target that comes back is sent everything again from batch 1;
 *   - a target that stays away makes the source unfreeze and try again
 *     every few seconds;
 *   - a move here that stops arriving is purged.
 * A move is one shard at a time per node in each direction. */
#ifndef SHOAL_NODE_MOVE_H
#define SHOAL_NODE_MOVE_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "lib/config.h"
#include "node/cluster/hooks.h"
#include "proto/cli_node.pb-c.h"

struct commit;
struct event_base;
struct move;
struct owner;
struct repl;
struct rpc;
struct rpc_ticket;
struct store;

/* Moves of node me: batches read from st and applied through commit,
 * journaled to our peer and waited for through r, ownership and freezes
 * through o, DEALERs to targets in zctx, acks and admin answers through
 * rpc, hooks copied. Resumes a move that was going on at the last stop
 * (kept in st's meta); its timer runs from the event loop. */
struct move *move_new(struct event_base *base, const struct config *cfg,
		      const struct cfg_node *me, void *zctx, struct store *st,
		      struct commit *commit, struct rpc *rpc, struct owner *o,
		      struct repl *r, const struct cluster_hooks *hooks);

/* move_free(NULL) does nothing. A move in progress stays in meta and is
 * resumed at the next start. */
void move_free(struct move *m);

/* A MoveRequest from shoalctl (checked by node/ops/admin.c): start, and
 * answer t (copied) when the shard is the target's, or with an error. */
void move_request(struct move *m, const struct rpc_ticket *t,
		  const Shoal__MoveRequest *req);

/* An M1 message on the front socket (frames[0] identity, [1] tag, [2] a
 * MoveBatch for us as target). Untrusted. */
void move_handle(struct move *m, zmq_msg_t *frames, size_t nframes);

#endif
