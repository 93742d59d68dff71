/* The retry scheduler: due index → jobs → delivery → results → store.
 *
 * In flight: a message is in flight from the moment its jobs are handed
 * to delivery until their results are committed; a table keyed by qid hash
 * keeps a message from being picked twice. Its due entry stays in the
 * index meanwhile, so a crash leaves it due (at-least-once).
 *
 * Where a pass starts: thousands of messages may be in flight, all still
 * due, and a pass runs after every batch of results. Starting each pass at
 * the oldest entry would walk all of them every time (the walk was a fifth
 * of a node's CPU at 2,000 msg/s). So a pass resumes at the last entry the
 * previous one reached; new entries below that point (new mail, a DSN, a
 * retry) lower it as they are written. Anything else that can make an
 * older entry eligible again (ownership, hold/release, a result not saved)
 * asks for a full pass, and a full pass runs at least once a second
 * whenever the scheduler runs at all.
 *
 * Results of several jobs are applied through group commit; each apply
 * re-reads the message in the transaction, so jobs of one message for
 * different domains update it one after the other (scheduler_result.c).
 *
 * Ownership, ingest's holds and delivery are reached through the hooks
 * node.c installs (scheduler.h), so that tests/unit/test_scheduler.c
 * runs the scheduler on a store alone. */
#include "node/queue/scheduler.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/idmap.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "node/delivery/job.h"
#include "node/queue/dsn.h"
#include "node/queue/scheduler_int.h"
#include "node/queue/tenants.h"
#include "node/store/store.h"

#define SCHED_SCAN_MAX 1000              /* due entries looked at per pass */
#define SCHED_INFLIGHT_MAX 5000          /* messages in flight */
#define SCHED_INFLIGHT_BYTES (256u << 20) /* their bodies, in RAM */

struct sched_due {
	uint64_t due;
	uint32_t cls;              /* proto Priority, from the due index */
	char qid[QID_MAX];
};

/* How full the in-flight table may be when a message of a class is
 * picked, in percent of SCHED_INFLIGHT_MAX and SCHED_INFLIGHT_BYTES:
 * bulk leaves a quarter to the others, normal a tenth to high, so that
 * a throttled campaign waiting at its destination cannot keep a password
 * reset from being picked (delivery then serves it first, dqueue.h). */
static unsigned
sched_class_pct(uint32_t cls)
{
	switch (cls) {
	case SHOAL__PRIORITY__PRIORITY_HIGH:
		return 100;
	case SHOAL__PRIORITY__PRIORITY_BULK:
		return 75;
	default:
		return 90;
	}
}

/* Whether the in-flight table has room for one more message of cls. */
static bool
sched_has_room(const struct scheduler *s, uint32_t cls)
{
	unsigned pct = sched_class_pct(cls);

	return (uint64_t)idmap_count(s->inflight) * 100 <
		       (uint64_t)SCHED_INFLIGHT_MAX * pct &&
	       s->inflight_bytes * 100 < (uint64_t)SCHED_INFLIGHT_BYTES * pct;
}

struct sched_scan {
	struct sched_due *v;
	size_t n, cap, max;
};

/* dsn_mine_fn */
static bool
sched_dsn_mine(void *arg, uint32_t shard)
{
	return sched_is_mine(arg, shard);
}

static int
sched_collect(uint64_t due, const char *qid, uint32_t cls, void *arg)
{
	struct sched_scan *sc = arg;

	if (sc->n == sc->cap) {
		sc->cap = sc->cap ? sc->cap * 2 : 64;
		sc->v = xrealloc(sc->v, sc->cap * sizeof(*sc->v));
	}
	sc->v[sc->n].due = due;
	sc->v[sc->n].cls = cls;
	/* the store checked that qid ends within QID_MAX */
	memcpy(sc->v[sc->n].qid, qid, strlen(qid) + 1);
	sc->n++;
	return 0;
}

static void
sched_domain_of(const char *addr, char *out, size_t outlen)
{
	const char *at = strrchr(addr, '@');
	size_t i = 0;

	for (at = at ? at + 1 : ""; *at && i + 1 < outlen; at++)
		out[i++] = (char)tolower((unsigned char)*at);
	out[i] = '\0';
}

/* Split a message's due recipients into one job per domain. */
static size_t
sched_make_jobs(struct scheduler *s, struct job_msg *m, uint64_t now,
		struct job **out)
{
	Shoal__Envelope *env = m->sm->envelope;
	size_t njobs = 0;
	bool *taken = xcalloc(env->n_rcpts, sizeof(*taken));

	for (size_t i = 0; i < env->n_rcpts; i++) {
		char dom[256];
		struct job *j;

		if (taken[i] || !sched_rcpt_pending(env->rcpts[i]) ||
		    env->rcpts[i]->next_try > now)
			continue;
		sched_domain_of(env->rcpts[i]->address, dom, sizeof(dom));
		j = xcalloc(1, sizeof(*j));
		j->msg = m;
		m->refs++;
		m->jobs_open++;
		snprintf(j->domain, sizeof(j->domain), "%s", dom);
		j->rcpt = xcalloc(env->n_rcpts - i, sizeof(*j->rcpt));
		for (size_t k = i; k < env->n_rcpts; k++) {
			char d2[256];

			if (taken[k] || !sched_rcpt_pending(env->rcpts[k]) ||
			    env->rcpts[k]->next_try > now)
				continue;
			sched_domain_of(env->rcpts[k]->address, d2, sizeof(d2));
			if (strcmp(d2, dom) != 0)
				continue;
			taken[k] = true;
			j->rcpt[j->n++] = (uint32_t)k;
		}
		j->res = xcalloc(j->n, sizeof(*j->res));
		j->started = now;
		j->started_us = clock_mono_us();
		j->next = *out;
		*out = j;
		njobs++;
	}
	free(taken);
	return njobs;
}

/* Read one due message and make its jobs; 0 when nothing was picked. */
static size_t
sched_pick(struct scheduler *s, struct store_txn *t, const char *qid,
	   uint64_t now, struct job **jobs)
{
	const void *p;
	size_t len;
	Shoal__StoredMessage *sm;
	struct job_msg *m;
	size_t njobs;

	/* its enqueue's reply is not yet known to be OK (node/queue/ingest.c) */
	if (s->hooks.is_held && s->hooks.is_held(s->hooks.arg, qid))
		return 0;
	if (store_msg_get_meta(t, qid, &p, &len) != 0)
		return 0;
	sm = shoal__stored_message__unpack(NULL, len, p);
	if (sm == NULL || sm->envelope == NULL) {
		log_error("qid=%s event=corrupt_record", qid);
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		return 0;
	}
	if (sm->held || !s->hooks.may_start(s->hooks.arg, sm->shard)) {
		shoal__stored_message__free_unpacked(sm, NULL);
		return 0;
	}
	m = xcalloc(1, sizeof(*m));
	snprintf(m->qid, sizeof(m->qid), "%s", qid);
	m->sm = sm;
	m->refs = 1;
	if (store_msg_get_body(t, qid, &p, &len) != 0) {
		log_error("qid=%s event=corrupt_record reason=\"no body\"", qid);
		job_msg_unref(m);
		return 0;
	}
	m->body = xmalloc(len ? len : 1);
	memcpy(m->body, p, len);
	m->body_len = len;
	njobs = sched_make_jobs(s, m, now, jobs);
	if (njobs == 0) {
		/* nothing due: a stale due entry or a finished message; an
		 * empty job lets the result path tidy up */
		struct job *j = xcalloc(1, sizeof(*j));

		j->msg = m;
		m->refs++;
		m->jobs_open++;
		scheduler_job_done(s, j);
	}
	idmap_put(s->inflight, shard_hash(qid, strlen(qid)), m);
	s->inflight_bytes += m->body_len;
	job_msg_unref(m); /* taken at xcalloc; jobs hold their own */
	return njobs;
}

static void
sched_arm(struct scheduler *s, uint64_t now)
{
	struct store_txn *t;
	uint64_t first;
	struct timeval tv = { 0, 0 };

	if (store_txn_begin(s->store, true, &t) != 0)
		return;
	if (store_due_first(t, &first) == 0) {
		if (first > now)
			tv.tv_sec = (time_t)(first - now);
		else if (idmap_count(s->inflight) >= SCHED_INFLIGHT_MAX)
			tv.tv_sec = 0, tv.tv_usec = 0; /* results will kick */
		else
			tv.tv_sec = 1;  /* everything due is in flight */
		if (first > now || idmap_count(s->inflight) < SCHED_INFLIGHT_MAX)
			evtimer_add(s->timer, &tv);
	}
	store_txn_abort(t);
}

/* Key order of the due index: time, then qid. */
static int
sched_key_cmp(uint64_t due_a, const char *qid_a, uint64_t due_b,
	      const char *qid_b)
{
	if (due_a != due_b)
		return due_a < due_b ? -1 : 1;
	return strcmp(qid_a, qid_b);
}

static void
sched_resume_at(struct scheduler *s, uint64_t due, const char *qid)
{
	s->resume_due = due;
	memcpy(s->resume_qid, qid, strnlen(qid, QID_MAX - 1));
	s->resume_qid[strnlen(qid, QID_MAX - 1)] = '\0';
}

/* A due entry (due, qid) was written: the next pass must not start past
 * it. */
void
sched_resume_lower(struct scheduler *s, uint64_t due, const char *qid)
{
	if (sched_key_cmp(due, qid, s->resume_due, s->resume_qid) < 0)
		sched_resume_at(s, due, qid);
}

void
sched_kick_soon(struct scheduler *s)
{
	struct timeval tv = { 0, 0 };

	evtimer_del(s->timer);
	evtimer_add(s->timer, &tv);
}

static void
sched_run(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sched_scan sc = { 0 };
	struct store_txn *t;
	struct job *jobs = NULL;
	uint64_t now = sched_now();
	bool more = false;
	size_t picked = 0;
	bool full;

	(void)fd;
	(void)what;
	if (!s->hooks.may_deliver(s->hooks.arg) ||
	    !scheduler_results_savable(s)) {
		/* fenced (owner kicks us when that ends) or results waiting
		 * for room (their save kicks us): look again anyway */
		struct timeval tv = { 1, 0 };

		evtimer_add(s->timer, &tv);
		return;
	}
	if (store_txn_begin(s->store, true, &t) != 0)
		return;
	full = s->want_full || now != s->last_full;
	if (full) {
		s->want_full = false;
		s->last_full = now;
		sched_resume_at(s, 0, "");
	}
	sc.max = SCHED_SCAN_MAX + (full ? idmap_count(s->inflight) : 0);
	store_due_foreach(t, s->resume_due, s->resume_qid, now, sc.max,
			  sched_collect, &sc);
	more = sc.n == sc.max;
	for (size_t i = 0; i < sc.n; i++) {
		const char *qid = sc.v[i].qid;
		struct job_msg *m;

		/* the next pass starts here: everything before is in flight
		 * or not ours to deliver now */
		sched_resume_at(s, sc.v[i].due, qid);
		if (!sched_has_room(s, SHOAL__PRIORITY__PRIORITY_HIGH)) {
			more = false;
			break;
		}
		/* full for its class: the next full pass looks again */
		if (!sched_has_room(s, sc.v[i].cls))
			continue;
		m = idmap_get(s->inflight, shard_hash(qid, strlen(qid)));
		if (m && strcmp(m->qid, qid) == 0)
			continue;
		if (sched_pick(s, t, qid, now, &jobs) > 0) {
			s->picked++;
			picked++;
		}
	}
	store_txn_abort(t);
	free(sc.v);
	while (jobs) {
		struct job *j = jobs;

		jobs = j->next;
		j->next = NULL;
		s->hooks.submit(s->hooks.arg, j);
	}
	/* a full scan that picked nothing (a shard being moved away) waits
	 * for the timer instead of spinning */
	if (more && (picked > 0 || !full))
		sched_kick_soon(s);
	else
		sched_arm(s, now);
}

void
scheduler_kick(struct scheduler *s)
{
	s->want_full = true;
	sched_kick_soon(s);
}

void
scheduler_kick_due(struct scheduler *s, uint64_t due, const char *qid)
{
	sched_resume_lower(s, due, qid);
	sched_kick_soon(s);
}

/* One job of its message is over (applied or abandoned): the message
 * leaves the in-flight table with its last job. */
void
sched_job_closed(struct scheduler *s, struct job *j)
{
	struct job_msg *m = j->msg;

	if (--m->jobs_open == 0) {
		struct job_msg *cur = idmap_get(
			s->inflight, shard_hash(m->qid, strlen(m->qid)));

		if (cur == m) {
			idmap_del(s->inflight,
				  shard_hash(m->qid, strlen(m->qid)));
			s->inflight_bytes -= m->body_len;
		}
	}
	job_free(j);
}

void
scheduler_job_abandon(struct scheduler *s, struct job *j)
{
	log_debug(LOG_SUB_SMTP, "qid=%s event=attempt_dropped shard=%u",
		  j->msg->qid, j->msg->sm->shard);
	s->abandoned++;
	sched_job_closed(s, j);
	/* still due, behind the resume point: a full pass finds it */
	scheduler_kick(s);
}

/* ---- DSNs of other modules -------------------------------------------- */

void
scheduler_dsn_draw(struct scheduler *s, struct dsn_slot *slot)
{
	dsn_draw(&s->qids, s->cfg->cluster.shards, sched_dsn_mine, s, slot);
}

int
scheduler_dsn_store(const struct scheduler *s, struct store_txn *t,
		    struct dsn_slot *slot, const struct dsn_about *a)
{
	return dsn_store(t, s->cfg, sched_dsn_mine, (void *)s, slot, a);
}

int
scheduler_report_store(const struct scheduler *s, struct store_txn *t,
		       struct dsn_slot *slot, const struct dsn_report *r)
{
	return dsn_store_report(t, s->cfg, sched_dsn_mine, (void *)s, slot,
				r);
}

void
scheduler_dsn_done(struct scheduler *s, const struct dsn_slot *slot,
		   int result)
{
	dsn_log(slot, result);
	if (result == 0 && slot->is_stored)
		sched_resume_lower(s, slot->due, slot->qid);
}

/* From its own event, never from inside delivery's or owner's code. */
static void
sched_on_recheck(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	uint64_t before = s->abandoned;

	(void)fd;
	(void)what;
	s->hooks.recheck(s->hooks.arg);
	if (s->abandoned != before)
		log_info("node id=%s event=attempts_dropped count=%llu "
			 "reason=\"fenced, frozen, no longer primary or "
			 "storage full\"",
			 s->node_id,
			 (unsigned long long)(s->abandoned - before));
}

void
scheduler_recheck(struct scheduler *s)
{
	if (s != NULL)
		event_active(s->recheck_ev, 0, 0);
}

struct sched_busy {
	uint32_t shard;
	bool busy;
	const uint8_t *shards; /* scheduler_in_flight_of() */
	size_t n;
	uint64_t count;
};

static void
sched_busy_one(uint64_t id, void *value, void *arg)
{
	const struct job_msg *m = value;
	struct sched_busy *b = arg;

	(void)id;
	if (m->sm && m->sm->shard == b->shard)
		b->busy = true;
}

bool
scheduler_shard_busy(const struct scheduler *s, uint32_t shard)
{
	struct sched_busy b = { .shard = shard };

	idmap_foreach(s->inflight, sched_busy_one, &b);
	return b.busy;
}

uint64_t
scheduler_in_flight(const struct scheduler *s)
{
	return idmap_count(s->inflight);
}

static void
sched_count_of(uint64_t id, void *value, void *arg)
{
	const struct job_msg *m = value;
	struct sched_busy *b = arg;

	(void)id;
	if (m->sm && m->sm->shard < b->n && b->shards[m->sm->shard])
		b->count++;
}

uint64_t
scheduler_in_flight_of(const struct scheduler *s, const uint8_t *shards,
		       size_t n)
{
	struct sched_busy b = { .shards = shards, .n = n };

	if (shards == NULL)
		return 0;
	idmap_foreach(s->inflight, sched_count_of, &b);
	return b.count;
}

struct scheduler *
scheduler_new(const struct scheduler_deps *deps)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));

	SHOAL_ASSERT(deps->hooks.may_deliver && deps->hooks.may_start &&
		     deps->hooks.is_primary && deps->hooks.submit &&
		     deps->hooks.recheck);
	s->base = deps->base;
	s->cfg = deps->cfg;
	s->node_id = deps->node_id;
	s->store = deps->store;
	s->commit = deps->commit;
	s->supp = deps->supp;
	s->dlog = deps->dlog;
	s->wh = deps->wh;
	s->hooks = deps->hooks;
	s->inflight = idmap_new();
	qid_gen_init(&s->qids);
	s->timer = evtimer_new(s->base, sched_run, s);
	s->recheck_ev = event_new(s->base, -1, 0, sched_on_recheck, s);
	s->tenants = tenants_new();
	scheduler_kick(s);
	return s;
}

void
scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	sched_unsaved_free(s);
	event_free(s->timer);
	event_free(s->recheck_ev);
	/* the table holds no references: delivery's jobs do, and it drops
	 * them when it is freed (before us) */
	idmap_free(s->inflight);
	tenants_free(s->tenants);
	free(s);
}

const struct tenants *
scheduler_tenants(const struct scheduler *s)
{
	return s->tenants;
}
