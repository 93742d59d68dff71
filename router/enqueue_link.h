/* The router's link to its nodes (router/enqueue_link.c), as
 * router/enqueue.c uses it: the sockets, packing, and opening and closing
 * it all. Internal to the two. */
#ifndef SHOAL_ROUTER_ENQUEUE_LINK_H
#define SHOAL_ROUTER_ENQUEUE_LINK_H

#include <stddef.h>

#include "proto/router_node.pb-c.h"

struct enqueue;
struct enq_conn;

/* Connect to every configured node, ask them for the map, start the
 * heartbeats. Returns 0, or -1 when a socket could not be made (the
 * caller frees e with enqueue_free(), which undoes what was done). */
int enq_link_open(struct enqueue *e);

/* Stop the timers, close every node's socket, drop the map. */
void enq_link_close(struct enqueue *e);

/* The connection to node id, or NULL when we have none. */
struct enq_conn *enq_conn_find(struct enqueue *e, const char *id);

/* The connection for a node of the current map, made on first use; NULL
 * when the map does not name it or the socket cannot be made. */
struct enq_conn *enq_conn_for(struct enqueue *e, const char *id);

/* Pack a request into a new buffer (caller frees). */
unsigned char *enq_pack(const Shoal__RouterRequest *req, size_t *len);

/* A request without a body frame, to one node. Returns zsock_send's. */
int enq_send_small(struct enq_conn *c, const Shoal__RouterRequest *req);

#endif
