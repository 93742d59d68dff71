/* The router's side of the router-to-node link (proto/router_node.proto):
 * keeps the shard map (fetched from any node at start, refetched on a
 * wrong-epoch or not-owner reply), sends each message to its shard's
 * primary and reports the node's durable answer. Requests wait in a table
 * under their request id; a reply whose id is unknown (the session left or
 * timed out) is dropped. */
#ifndef SHOAL_ROUTER_ENQUEUE_H
#define SHOAL_ROUTER_ENQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "proto/queue.pb-c.h"

struct event_base;
struct enqueue;

/* The outcome: 0 (durable), SHOAL_E_STORAGE_FULL, SHOAL_E_NOT_DURABLE,
 * -ETIMEDOUT (no answer within router.node_timeout_ms), -EAGAIN (no map
 * yet, or the node is not connected), -EIO (anything else). */
typedef void (*enqueue_done_fn)(int result, void *arg);

/* Called once, when the first shard map has arrived. */
typedef void (*enqueue_ready_fn)(void *arg);

struct enqueue *enqueue_new(struct event_base *base, const struct config *cfg,
			    enqueue_ready_fn ready, void *arg);

/* Drops every waiting request without calling its callback.
 * enqueue_free(NULL) does nothing. */
void enqueue_free(struct enqueue *e);

/* The number of shards (from the config). */
uint32_t enqueue_shards(const struct enqueue *e);

/* Send a message to the primary of shard_of(qid). Takes ownership of body
 * (freed with free(), even on error). env is packed at once and not kept.
 * Returns the request id (never 0) for enqueue_cancel(). done is called
 * exactly once, never before enqueue_submit() returns, unless the request
 * is cancelled. */
uint64_t enqueue_submit(struct enqueue *e, const char *qid,
			const Shoal__Envelope *env, char *body,
			size_t body_len, enqueue_done_fn done, void *arg);

/* The answer to a suppression check (docs/suppression.md). */
#define ENQUEUE_CHECK_REPLY_MAX 400
struct enqueue_check_result {
	bool suppressed;
	char reply[ENQUEUE_CHECK_REPLY_MAX + 1]; /* the reply that listed it */
	char enhanced[16];
};

/* result: 0 (res says whether it is listed), -ETIMEDOUT, -EAGAIN (no
 * owner reachable) or -EIO; res is valid during the call only. */
typedef void (*enqueue_check_fn)(int result,
				 const struct enqueue_check_result *res,
				 void *arg);

/* Ask the primary of shard_of(addr) whether the normalised address addr
 * (lib/suppress_key.h) is suppressed, waiting at most timeout_ms. Returns
 * the request id for enqueue_cancel(); done is called exactly once, never
 * before enqueue_check() returns, unless the request is cancelled. */
uint64_t enqueue_check(struct enqueue *e, const char *addr,
		       uint32_t timeout_ms, enqueue_check_fn done, void *arg);

/* Forget a waiting request: its callback will not be called. */
void enqueue_cancel(struct enqueue *e, uint64_t request_id);

/* Call fn for every node the router knows, then for "none" (requests
 * that never reached one), with its finished requests counted by
 * enum router_enqueue_result (router/metrics.h). */
typedef void (*enqueue_node_fn)(const char *node_id, const uint64_t *results,
				void *arg);
void enqueue_foreach_node(const struct enqueue *e, enqueue_node_fn fn,
			  void *arg);

/* Number of requests waiting for a node. */
size_t enqueue_pending(const struct enqueue *e);

/* Suppression checks so far: sent to a node, answered by the node's
 * filter without asking (docs/suppression.md, "The routers' filter"),
 * and those of the first kind that got no answer in time, whose recipient
 * was accepted unchecked (fail open). */
void enqueue_check_counts(const struct enqueue *e, uint64_t *asked,
			  uint64_t *filtered, uint64_t *failed_open);

#endif
