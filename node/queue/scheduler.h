/* The retry scheduler: takes due messages from the due-time index (cost
 * O(due), never O(queue)), splits their pending recipients into jobs by
 * domain, hands the jobs to delivery, and applies the results: delivered,
 * deferred to the next retry slot, bounced (with a DSN to the sender), or
 * expired. A message is deleted once every recipient is done.
 *
 * Timers, not polling: it sleeps until the earliest due time or until it
 * is kicked (new mail, a finished job). An attempt in flight when the node
 * dies is simply due again at restart (at-least-once). */
#ifndef SHOAL_NODE_SCHEDULER_H
#define SHOAL_NODE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/queue.pb-c.h"

struct node;
struct job;
struct scheduler;

struct scheduler *scheduler_new(struct node *n);

/* scheduler_free(NULL) does nothing. Jobs in flight are abandoned (they
 * are due again at the next start). */
void scheduler_free(struct scheduler *s);

/* Look for due work soon (after the current callbacks), across the whole
 * due index: for changes that can make any entry eligible (ownership,
 * hold and release, a shard move). */
void scheduler_kick(struct scheduler *s);

/* Look for due work soon, after a due entry (due, qid) was written (new
 * mail): cheaper than scheduler_kick, the pass need not start at the
 * oldest entry. */
void scheduler_kick_due(struct scheduler *s, uint64_t due, const char *qid);

/* Delivery finished a job (every res[] filled). Takes the job. */
void scheduler_job_done(struct scheduler *s, struct job *j);

/* Whether delivery may start the job now (node/owner.h
 * owner_may_start()). */
bool scheduler_job_may_start(const struct job *j);

/* Delivery did not start the job and will not (it may not start now):
 * forget it without a result, its message stays due. Takes the job. */
void scheduler_job_abandon(struct scheduler *s, struct job *j);

/* Ownership, fencing or a freeze changed: jobs waiting in delivery that
 * may no longer start are abandoned now. */
void scheduler_recheck(struct scheduler *s);

struct store_txn;
struct bounce_rcpt;

/* Store a DSN about orig_qid (envelope env, message orig) to its sender,
 * reporting brs[0..n), as a new message on one of our shards, due now.
 * Returns 0 or a store error. */
int scheduler_queue_dsn(struct scheduler *s, struct store_txn *t,
			const char *orig_qid, const Shoal__Envelope *env,
			const void *orig, size_t orig_len,
			const struct bounce_rcpt *brs, size_t n, uint64_t now);

/* Recipient results of the last 60 seconds. */
void scheduler_last_minute(const struct scheduler *s, uint64_t *delivered,
			   uint64_t *deferred, uint64_t *bounced);

/* Whether a message of shard is in flight (O(in flight)). */
bool scheduler_shard_busy(const struct scheduler *s, uint32_t shard);

/* Messages in flight now. */
uint64_t scheduler_in_flight(const struct scheduler *s);

/* Messages in flight whose shard s has shards[s] set (s < n). */
uint64_t scheduler_in_flight_of(const struct scheduler *s,
				const uint8_t *shards, size_t n);

#endif
