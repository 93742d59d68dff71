/* What scheduler.c (picking due messages, the in-flight table, timers)
 * and scheduler_result.c (saving a job's results) share. Nothing else
 * includes this. */
#ifndef SHOAL_NODE_QUEUE_SCHEDULER_INT_H
#define SHOAL_NODE_QUEUE_SCHEDULER_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/qid.h"
#include "node/queue/scheduler.h"
#include "proto/queue.pb-c.h"

struct event;
struct idmap;
struct sched_res;

/* Results per second over the last minute, per outcome (status). */
#define SCHED_WINDOW 60

struct sched_window {
	uint64_t sec[SCHED_WINDOW];           /* which second a slot holds */
	uint32_t count[SCHED_WINDOW][3];      /* by enum outcome */
};

struct scheduler {
	struct event_base *base;
	const struct config *cfg;
	const char *node_id;
	struct store *store;
	struct commit *commit;
	struct suppress *supp;
	struct dlog *dlog;
	struct webhooks *wh;      /* may be NULL */
	struct scheduler_hooks hooks;
	struct sched_window recent;
	struct tenants *tenants;  /* results per tenant (tenants.h) */
	struct event *timer;
	struct idmap *inflight;   /* shard_hash(qid) -> struct job_msg */
	uint64_t inflight_bytes;
	struct qid_gen qids;      /* for DSNs */
	uint64_t picked, applied;
	uint64_t abandoned;	  /* jobs delivery did not start */
	struct event *recheck_ev; /* scheduler_recheck() */
	/* the next pass starts at (resume_due, resume_qid) unless want_full
	 * or a new second has begun since the last full pass */
	uint64_t resume_due;
	char resume_qid[QID_MAX];
	bool want_full;
	uint64_t last_full;
	/* results whose save failed (a full disk): saved again after
	 * resave_ms, their messages kept in flight meanwhile so that they
	 * are not delivered again */
	struct sched_res *unsaved;
	size_t n_unsaved;
	uint32_t resave_ms;
	struct event *resave_ev;
	/* scheduler_results_savable() while not paused; results kept
	 * (unsaved, or being saved again) whose last save failed for want
	 * of room; when a pause was last logged, and pauses since */
	bool is_paused;
	size_t n_kept_full;
	uint64_t full_logged;
	uint64_t full_pauses;
};

static inline uint64_t
sched_now(void)
{
	return (uint64_t)time(NULL);
}

static inline bool
sched_is_mine(const struct scheduler *s, uint32_t shard)
{
	return s->hooks.is_primary(s->hooks.arg, shard);
}

static inline bool
sched_rcpt_pending(const Shoal__Recipient *r)
{
	return r->state == SHOAL__RCPT_STATE__RCPT_QUEUED ||
	       r->state == SHOAL__RCPT_STATE__RCPT_DEFERRED;
}

/* Results waiting to be saved again: given up at shutdown (the messages
 * may then be delivered again after a restart, and the log says so). */
void sched_unsaved_free(struct scheduler *s);

/* A due entry (due, qid) was written: the next pass must not start past
 * it. */
void sched_resume_lower(struct scheduler *s, uint64_t due, const char *qid);

/* Run a pass soon, from where the last one stopped. */
void sched_kick_soon(struct scheduler *s);

/* One job of its message is over (applied or abandoned): the message
 * leaves the in-flight table with its last job. Frees the job. */
void sched_job_closed(struct scheduler *s, struct job *j);

#endif
