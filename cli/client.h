/* shoalctl's side of the admin link (proto/cli_node.proto): one ZeroMQ
 * DEALER socket per node, a request out, a reply back within a deadline.
 * Several nodes can be asked at once so that one dead node costs one
 * timeout, not one per node.
 *
 * Wire: request = frame "A1" (lib/wire.h WIRE_TAG_ADMIN) + packed
 * AdminRequest; reply = one frame, a packed AdminReply with the same
 * request_id (or request_id 0 and BAD_REQUEST when the node could not
 * read the request).
 *
 * Handles untrusted input: replies are size-bounded (ZMQ_MAXMSGSIZE),
 * unpacked and checked for shape here; the callers check the bodies. */
#ifndef SHOAL_CLI_CLIENT_H
#define SHOAL_CLI_CLIENT_H

#include <stddef.h>

#include "proto/cli_node.pb-c.h"

#define CLIENT_TIMEOUT_MS 3000  /* default wait for a node's reply */

struct client;

/* Create a DEALER socket in zctx (linger 0, ZMQ_MAXMSGSIZE WIRE_META_MAX)
 * connected to endpoint; the connection itself is made in the background.
 * Returns 0 and sets *out (free with client_free()), or -errno when the
 * endpoint is not usable (bad syntax, unknown transport). */
int client_new(void *zctx, const char *endpoint, int timeout_ms,
	       struct client **out);

/* client_free(NULL) does nothing. */
void client_free(struct client *c);

/* Send reqs[i] on cs[i] for each i < n (request_id is set here), then wait
 * up to the clients' timeout for every reply. For each i, either
 * replies[i] is set (caller frees with shoal__admin_reply__free_unpacked())
 * and errs[i] is 0, or replies[i] is NULL and errs[i] is -ETIMEDOUT (no
 * reply in time), -EPROTO (a reply we could not read) or -errno (ZeroMQ).
 * A client that failed once keeps failing with the same error: a late
 * reply must never be taken for the answer to a later request. */
void client_exchange(struct client *const *cs, Shoal__AdminRequest *const *reqs,
		     size_t n, Shoal__AdminReply **replies, int *errs);

/* One request to one node: returns 0 and sets *out, or an error as above. */
int client_call(struct client *c, Shoal__AdminRequest *req,
		Shoal__AdminReply **out);

/* Why a call failed, for "node n2 did not answer (timeout)". Static. */
const char *client_strerror(int err);

#endif
