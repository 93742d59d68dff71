/* The routers' filter of this node's suppression entries
 * (node/suppress/suppress_filter.c says how it works). */
#ifndef SHOAL_NODE_SUPPRESS_FILTER_H
#define SHOAL_NODE_SUPPRESS_FILTER_H

#include <stdbool.h>
#include <zmq.h>

#include "proto/router_node.pb-c.h"

struct event_base;
struct store;
struct supp_filter;

/* A new filter; it walks store's entries from the loop and is offered
 * once that walk ends. */
struct supp_filter *supp_filter_new(struct event_base *base,
				    struct store *store);

/* supp_filter_free(NULL) does nothing. */
void supp_filter_free(struct supp_filter *f);

/* An entry key ("~...") is being written: set its bits. Other keys (a
 * pending add's "+...") and f NULL: nothing. */
void supp_filter_note(struct supp_filter *f, const char *key);

/* The filter's id and gen in a reply to a router, once offered. */
void supp_filter_stamp(const struct supp_filter *f, Shoal__NodeReply *r);

/* Answer a router's SuppFilterRequest in out: the positions after
 * q->since_gen when q names this filter and the ring still holds them
 * (out->positions: the caller frees), else the whole filter as a shared
 * copy in *frame (out->bits_in_frame: the caller sends or closes it; the
 * copy may be older than the filter, out->gen says). false: not offered
 * yet, frame untouched. */
bool supp_filter_answer(struct supp_filter *f,
			const Shoal__SuppFilterRequest *q,
			Shoal__SuppFilter *out, zmq_msg_t *frame);

#endif
