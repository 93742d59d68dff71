/* The retry scheduler: takes due messages from the due-time index (cost
 * O(due), never O(queue)), splits their pending recipients into jobs by
 * domain, hands the jobs to delivery, and applies the results: delivered,
 * deferred to the next retry slot, bounced (with a DSN to the sender), or
 * expired. A message is deleted once every recipient is done.
 *
 * Timers, not polling: it sleeps until the earliest due time or until it
 * is kicked (new mail, a finished job). An attempt in flight when the node
 * dies is simply due again at restart (at-least-once).
 *
 * What it needs of the node comes at scheduler_new(): the store and the
 * group commit, and hooks for ownership (it asks, node/cluster/owner.h
 * decides), for ingest's holds and for delivery (it submits jobs; their
 * results come back through scheduler_job_done()). */
#ifndef SHOAL_NODE_SCHEDULER_H
#define SHOAL_NODE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"
#include "node/queue/dsn.h"

struct event_base;
struct store;
struct store_txn;
struct commit;
struct suppress;
struct dlog;
struct webhooks;
struct job;
struct scheduler;

/* How the scheduler asks and tells the rest of the node; node.c installs
 * them. Hooks run from the scheduler's own events and from the calls
 * below, never from inside another module's callback chain. */
struct scheduler_hooks {
	/* ownership (node/cluster/owner.h): owner_may_deliver(),
	 * owner_may_start(), owner_is_primary() */
	bool (*may_deliver)(void *arg);
	bool (*may_start)(void *arg, uint32_t shard);
	bool (*is_primary)(void *arg, uint32_t shard);
	/* whether an enqueue of qid is still unanswered (ingest_holds()):
	 * not picked until it is; may be NULL */
	bool (*is_held)(void *arg, const char *qid);
	/* hand a job to delivery (deliver_submit()): its results come back
	 * through scheduler_job_done(), or it through
	 * scheduler_job_abandon() */
	void (*submit)(void *arg, struct job *j);
	/* delivery hands back its waiting jobs that may no longer start
	 * (deliver_recheck()) */
	void (*recheck)(void *arg);
	/* a job's results as they will be saved (metrics); may be NULL */
	void (*results)(void *arg, const struct job *j);
	void *arg;
};

struct scheduler_deps {
	struct event_base *base;
	const struct config *cfg;      /* borrowed: outlives the scheduler */
	const char *node_id;           /* borrowed, for log lines */
	struct store *store;
	struct commit *commit;
	struct suppress *supp;         /* "no such user" bounces; may be NULL */
	struct dlog *dlog;             /* may be NULL */
	struct webhooks *wh;           /* events with the results
					  (node/webhook/webhook.h); may be
					  NULL */
	struct scheduler_hooks hooks;  /* submit, recheck and the three
					  ownership hooks must be set */
};

/* deps is copied. The first pass runs from the loop. */
struct scheduler *scheduler_new(const struct scheduler_deps *deps);

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

/* Delivery finished a job (every res[] filled). Takes the job. A deferral
 * past delivery.max_queue_lifetime is made a bounce here
 * (outcome_final()); the results are saved through group commit. */
void scheduler_job_done(struct scheduler *s, struct job *j);

/* Delivery did not start the job and will not (it may not start now):
 * forget it without a result, its message stays due. Takes the job. */
void scheduler_job_abandon(struct scheduler *s, struct job *j);

/* Ownership, fencing or a freeze changed: jobs waiting in delivery that
 * may no longer start are abandoned now. scheduler_recheck(NULL) does
 * nothing. */
void scheduler_recheck(struct scheduler *s);

/* DSNs of other modules (ingest, queue actions), node/queue/dsn.h, with
 * the scheduler's qid generator and view of ownership: draw the qid
 * before the commit; store in its apply function (only t and slot
 * change); then, in its done callback with the item's result, the log
 * line, and the next pass looks at the DSN. */
void scheduler_dsn_draw(struct scheduler *s, struct dsn_slot *slot);
int scheduler_dsn_store(const struct scheduler *s, struct store_txn *t,
			struct dsn_slot *slot, const struct dsn_about *a);
void scheduler_dsn_done(struct scheduler *s, const struct dsn_slot *slot,
			int result);
/* The same for a report of our own (dsn_store_report(), TLS-RPT): draw
 * with scheduler_dsn_draw(), end with scheduler_dsn_done(). */
int scheduler_report_store(const struct scheduler *s, struct store_txn *t,
			   struct dsn_slot *slot, const struct dsn_report *r);

/* Recipient results of the last 60 seconds. */
void scheduler_last_minute(const struct scheduler *s, uint64_t *delivered,
			   uint64_t *deferred, uint64_t *bounced);

/* Whether a message of shard is in flight (O(in flight)). */
bool scheduler_shard_busy(const struct scheduler *s, uint32_t shard);

/* Messages in flight now. */
uint64_t scheduler_in_flight(const struct scheduler *s);

/* False from a result save (one storing no DSN) that failed for want of
 * room (a full disk) until no such result is kept any more
 * (scheduler_result.c says why). Meanwhile no delivery starts: each
 * would add a result that cannot be saved, which a crash loses and the
 * peer then delivers again. The scheduler picks nothing, and delivery
 * asks before each job (node.c, beside owner_may_start()). */
bool scheduler_results_savable(const struct scheduler *s);

/* Messages in flight whose shard s has shards[s] set (s < n). */
uint64_t scheduler_in_flight_of(const struct scheduler *s,
				const uint8_t *shards, size_t n);

/* Results per tenant since start (node/queue/tenants.h). */
struct tenants;
const struct tenants *scheduler_tenants(const struct scheduler *s);

#endif
