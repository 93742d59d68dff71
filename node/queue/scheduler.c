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
 * different domains update it one after the other. */
#include "node/queue/scheduler.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/idmap.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"
#include "node/queue/bounce.h"
#include "node/store/commit.h"
#include "node/delivery/deliver.h"
#include "node/queue/dlog.h"
#include "node/queue/ingest.h"
#include "node/delivery/job.h"
#include "node/ops/metrics.h"
#include "node/node.h"
#include "node/cluster/owner.h"
#include "node/store/store.h"
#include "node/suppress/suppress.h"

#define SCHED_SCAN_MAX 1000              /* due entries looked at per pass */
#define SCHED_INFLIGHT_MAX 5000          /* messages in flight */
#define SCHED_INFLIGHT_BYTES (256u << 20) /* their bodies, in RAM */
#define SCHED_BOUNCE_QID_TRIES 100000

/* Results per second over the last minute, per outcome (status). */
#define SCHED_WINDOW 60

struct sched_window {
	uint64_t sec[SCHED_WINDOW];           /* which second a slot holds */
	uint32_t count[SCHED_WINDOW][3];      /* by enum outcome */
};

struct scheduler {
	struct node *n;
	struct sched_window recent;
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
};

struct sched_due {
	uint64_t due;
	char qid[QID_MAX];
};

struct sched_scan {
	struct sched_due *v;
	size_t n, cap, max;
};

static uint64_t
sched_now(void)
{
	return (uint64_t)time(NULL);
}

static bool
sched_is_mine(const struct scheduler *s, uint32_t shard)
{
	return owner_is_primary(s->n->owner, shard);
}

static int
sched_collect(uint64_t due, const char *qid, void *arg)
{
	struct sched_scan *sc = arg;

	if (sc->n == sc->cap) {
		sc->cap = sc->cap ? sc->cap * 2 : 64;
		sc->v = xrealloc(sc->v, sc->cap * sizeof(*sc->v));
	}
	sc->v[sc->n].due = due;
	/* the store checked that qid ends within QID_MAX */
	memcpy(sc->v[sc->n].qid, qid, strlen(qid) + 1);
	sc->n++;
	return 0;
}

static bool
sched_rcpt_pending(const Shoal__Recipient *r)
{
	return r->state == SHOAL__RCPT_STATE__RCPT_QUEUED ||
	       r->state == SHOAL__RCPT_STATE__RCPT_DEFERRED;
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
		j->sched = s;
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

	/* its enqueue's reply is not yet known to be OK (node/ingest.c) */
	if (ingest_holds(s->n->ingest, qid))
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
	if (sm->held || !owner_may_start(s->n->owner, sm->shard)) {
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
		j->sched = s;
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

	if (store_txn_begin(s->n->store, true, &t) != 0)
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
static void
sched_resume_lower(struct scheduler *s, uint64_t due, const char *qid)
{
	if (sched_key_cmp(due, qid, s->resume_due, s->resume_qid) < 0)
		sched_resume_at(s, due, qid);
}

static void
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
	if (!owner_may_deliver(s->n->owner)) {
		/* fenced: owner kicks us when that ends; look again anyway */
		struct timeval tv = { 1, 0 };

		evtimer_add(s->timer, &tv);
		return;
	}
	if (store_txn_begin(s->n->store, true, &t) != 0)
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
		if (idmap_count(s->inflight) >= SCHED_INFLIGHT_MAX ||
		    s->inflight_bytes >= SCHED_INFLIGHT_BYTES) {
			more = false;
			break;
		}
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
		deliver_submit(s->n->deliver, j);
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

/* ---- applying results ---------------------------------------------- */

static void
sched_format_reply(const struct job_result *r, char *out, size_t outlen)
{
	if (r->reply.code)
		snprintf(out, outlen, "%d %s%s%s", r->reply.code,
			 r->reply.enhanced, r->reply.enhanced[0] ? " " : "",
			 r->reply.text);
	else
		snprintf(out, outlen, "%s", r->reply.text);
}

int
scheduler_queue_dsn(struct scheduler *s, struct store_txn *t,
		    const char *orig_qid, const Shoal__Envelope *env,
		    const void *orig, size_t orig_len,
		    const struct bounce_rcpt *brs, size_t n, uint64_t now)
{
	const struct config *cfg = s->n->cfg;
	struct bounce_info bi = {
		.reporting_mta = cfg->delivery.helo_name,
		.qid = orig_qid,
		.sender = env->mail_from,
		.envid = env->envid,
		.ret = env->ret,
		.arrival = env->arrival_time,
		.now = now,
		.rcpts = brs,
		.n_rcpts = n,
		.orig = orig ? orig : "",
		.orig_len = orig_len,
	};
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope denv = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient dr = SHOAL__RECIPIENT__INIT;
	Shoal__Recipient *drp = &dr;
	char qid[QID_LEN + 1];
	struct buf body;
	uint32_t shard = 0;
	void *meta;
	size_t meta_len;
	int rc;

	buf_init(&body, cfg->router.max_message_size + (1u << 20));
	if (bounce_build(&bi, &body) != 0) {
		/* RET=FULL of a huge message: fall back to headers only */
		buf_reset(&body);
		bi.ret = 2;
		bounce_build(&bi, &body);
	}
	for (int i = 0; i < SCHED_BOUNCE_QID_TRIES; i++) {
		qid_next(&s->qids, qid);
		shard = shard_of(qid, cfg->cluster.shards);
		if (sched_is_mine(s, shard))
			break;
	}
	if (!sched_is_mine(s, shard)) {
		/* no shard is ours (all failed over meanwhile): a DSN stored
		 * here would be neither delivered nor replicated; failing
		 * leaves the result unsaved, and the owner's copy is tried
		 * and bounced there */
		log_warn("qid=%s event=dsn_not_queued reason=\"this node owns "
			 "no shard\"",
			 orig_qid);
		buf_free(&body);
		return -EAGAIN;
	}
	dr.address = env->mail_from;
	dr.notify = SHOAL__NOTIFY__NOTIFY_NEVER;
	dr.next_try = now;
	denv.mail_from = "";
	denv.n_rcpts = 1;
	denv.rcpts = &drp;
	denv.smtputf8 = env->smtputf8;
	denv.body = env->body;
	denv.arrival_time = now;
	denv.client_addr = "127.0.0.1";
	denv.helo = cfg->delivery.helo_name;
	denv.size = body.len;
	sm.qid = qid;
	sm.shard = shard;
	sm.envelope = &denv;
	sm.due = now;
	meta_len = shoal__stored_message__get_packed_size(&sm);
	meta = xmalloc(meta_len);
	shoal__stored_message__pack(&sm, meta);
	rc = store_msg_put(t, qid, shard, meta, meta_len, body.data, body.len);
	if (rc == 0)
		rc = store_due_add(t, now, qid);
	if (rc == 0)
		sched_resume_lower(s, now, qid);
	if (rc == 0)
		log_info("qid=%s event=dsn_queued orig_qid=%s to=<%s> rcpts=%zu "
			 "action=%s",
			 qid, orig_qid, env->mail_from, n,
			 brs[0].action == BOUNCE_FAILED ? "failed" :
			 brs[0].action == BOUNCE_DELAYED ? "delayed" : "relayed");
	free(meta);
	buf_free(&body);
	return rc;
}

static int
sched_apply(struct store_txn *t, void *arg)
{
	struct job *j = arg;
	struct scheduler *s = j->sched;
	const struct config *cfg = s->n->cfg;
	const void *p;
	size_t len;
	Shoal__StoredMessage *sm;
	Shoal__Envelope *env;
	struct bounce_rcpt *failed, *relayed;
	char (*texts)[600];
	size_t n_failed = 0, n_relayed = 0;
	uint64_t now = sched_now(), due = 0;
	bool pending = false;
	int rc;

	rc = store_msg_get_meta(t, j->msg->qid, &p, &len);
	if (rc == -ENOENT)
		return 0; /* deleted meanwhile (queue delete): nothing to do */
	if (rc != 0)
		return rc;
	sm = shoal__stored_message__unpack(NULL, len, p);
	if (sm == NULL || sm->envelope == NULL)
		return -EIO;
	env = sm->envelope;
	failed = xcalloc(j->n + 1, sizeof(*failed));
	relayed = xcalloc(j->n + 1, sizeof(*relayed));
	texts = xcalloc(j->n + 1, sizeof(*texts));
	for (size_t k = 0; k < j->n; k++) {
		const struct job_result *res = &j->res[k];
		Shoal__Recipient *r;
		enum outcome oc = res->outcome;

		if (j->rcpt[k] >= env->n_rcpts)
			continue;
		r = env->rcpts[j->rcpt[k]];
		if (!sched_rcpt_pending(r))
			continue; /* already final (applied twice) */
		r->attempts++;
		sched_format_reply(res, texts[k], sizeof(texts[k]));
		if (r->last_reply != protobuf_c_empty_string)
			free(r->last_reply);
		r->last_reply = xstrdup(texts[k]);
		if (r->category != protobuf_c_empty_string)
			free(r->category);
		r->category = xstrdup(classify_name(res->category));
		switch (oc) {
		case OUTCOME_DELIVERED:
			r->state = SHOAL__RCPT_STATE__RCPT_DELIVERED;
			if (res->relayed_no_dsn &&
			    bounce_wanted(env, r, BOUNCE_DELIVERED))
				relayed[n_relayed++] = (struct bounce_rcpt){
					r->address, r->orcpt, BOUNCE_DELIVERED,
					res->status, res->mx, res->reply.code,
					res->reply.text, "",
				};
			break;
		case OUTCOME_BOUNCED:
			r->state = SHOAL__RCPT_STATE__RCPT_BOUNCED;
			if (suppress_is_no_such_user(res->reply.code,
						     res->reply.enhanced,
						     res->reply.text) &&
			    (rc = suppress_note_bounce(s->n->supp, t,
						       r->address, texts[k],
						       res->status,
						       j->msg->qid)) != 0)
				goto fail;
			if (bounce_wanted(env, r, BOUNCE_FAILED))
				failed[n_failed++] = (struct bounce_rcpt){
					r->address, r->orcpt, BOUNCE_FAILED,
					res->status, res->mx, res->reply.code,
					res->reply.text,
					classify_name(res->category),
				};
			break;
		default:
			r->state = SHOAL__RCPT_STATE__RCPT_DEFERRED;
			r->next_try = outcome_next_try(
				now, r->attempts, cfg->delivery.retry_schedule,
				cfg->delivery.n_retry_schedule);
			break;
		}
	}
	rc = 0;
	if (n_failed)
		rc = scheduler_queue_dsn(s, t, j->msg->qid, env,
					 j->msg->body, j->msg->body_len,
					 failed, n_failed, now);
	if (rc == 0 && n_relayed)
		rc = scheduler_queue_dsn(s, t, j->msg->qid, env,
					 j->msg->body, j->msg->body_len,
					 relayed, n_relayed, now);
	for (size_t i = 0; rc == 0 && i < env->n_rcpts; i++) {
		if (!sched_rcpt_pending(env->rcpts[i]))
			continue;
		if (!pending || env->rcpts[i]->next_try < due)
			due = env->rcpts[i]->next_try;
		pending = true;
	}
	if (!sched_is_mine(s, sm->shard)) {
		/* the shard moved away while this attempt ran (failover):
		 * keep its result, leave the due index to the new owner's
		 * copy; the attempt itself may be repeated there */
		log_warn("qid=%s event=result_after_ownership_loss shard=%u",
			 sm->qid, sm->shard);
	}
	if (rc == 0 && !pending) {
		rc = store_due_del(t, sm->due, sm->qid);
		if (rc == 0)
			rc = store_msg_retire(t, sm->qid, sm->shard);
		if (rc == 0)
			log_info("qid=%s event=removed", sm->qid);
	} else if (rc == 0) {
		if (sm->held && sm->due != 0 && sched_is_mine(s, sm->shard)) {
			/* held while in flight: no due entry until released */
			rc = store_due_del(t, sm->due, sm->qid);
			sm->due = 0;
		} else if (due != sm->due && !sm->held &&
			   sched_is_mine(s, sm->shard)) {
			rc = store_due_del(t, sm->due, sm->qid);
			if (rc == 0)
				rc = store_due_add(t, due, sm->qid);
			if (rc == 0)
				sched_resume_lower(s, due, sm->qid);
			sm->due = due;
		}
		if (rc == 0) {
			size_t plen = shoal__stored_message__get_packed_size(sm);
			void *packed = xmalloc(plen ? plen : 1);

			shoal__stored_message__pack(sm, packed);
			rc = store_msg_set_meta(t, sm->qid, packed, plen);
			free(packed);
		}
	}
fail:
	shoal__stored_message__free_unpacked(sm, NULL);
	free(failed);
	free(relayed);
	free(texts);
	return rc;
}

/* One job of its message is over (applied or abandoned): the message
 * leaves the in-flight table with its last job. */
static void
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

static void
sched_applied(int result, void *arg)
{
	struct job *j = arg;
	struct scheduler *s = j->sched;

	if (result != 0)
		log_error("qid=%s event=result_not_saved error=\"%s\" "
			  "note=\"will be tried again\"",
			  j->msg->qid, shoal_strerror(result));
	s->applied++;
	sched_job_closed(s, j);
	if (result != 0)
		scheduler_kick(s); /* its due entry may lie behind the resume point */
	else
		sched_kick_soon(s);
}

static void
sched_count(struct scheduler *s, enum outcome oc)
{
	uint64_t now = sched_now();
	size_t i = now % SCHED_WINDOW;

	if ((unsigned)oc > OUTCOME_BOUNCED)
		return;
	if (s->recent.sec[i] != now) {
		s->recent.sec[i] = now;
		memset(s->recent.count[i], 0, sizeof(s->recent.count[i]));
	}
	s->recent.count[i][oc]++;
}

void
scheduler_last_minute(const struct scheduler *s, uint64_t *delivered,
		      uint64_t *deferred, uint64_t *bounced)
{
	uint64_t now = sched_now();

	*delivered = *deferred = *bounced = 0;
	for (size_t i = 0; i < SCHED_WINDOW; i++) {
		if (s->recent.sec[i] + SCHED_WINDOW <= now)
			continue;
		*delivered += s->recent.count[i][OUTCOME_DELIVERED];
		*deferred += s->recent.count[i][OUTCOME_DEFERRED];
		*bounced += s->recent.count[i][OUTCOME_BOUNCED];
	}
}

void
scheduler_job_done(struct scheduler *s, struct job *j)
{
	Shoal__Envelope *env = j->msg->sm->envelope;
	bool expired = outcome_is_expired(sched_now(), env->arrival_time,
					  s->n->cfg->delivery.max_queue_lifetime);

	for (size_t k = 0; k < j->n; k++) {
		/* past max_queue_lifetime, a deferral ends the recipient: it
		 * bounces with this attempt's error, and the log says so */
		if (expired && j->res[k].outcome == OUTCOME_DEFERRED) {
			j->res[k].outcome = OUTCOME_BOUNCED;
			log_info("qid=%s rcpt=<%s> event=expired",
				 j->msg->qid,
				 j->rcpt[k] < env->n_rcpts ?
					 env->rcpts[j->rcpt[k]]->address :
					 "");
		}
		if (j->rcpt[k] < env->n_rcpts) {
			dlog_attempt(s->n->dlog, j->msg, j,
				     env->rcpts[j->rcpt[k]], &j->res[k]);
			sched_count(s, j->res[k].outcome);
			metrics_delivery(s->n->metrics, j->domain,
					 j->res[k].outcome);
		}
	}
	metrics_attempt(s->n->metrics, j->started_us);
	commit_add(s->n->commit, sched_apply, sched_applied, j);
}

bool
scheduler_job_may_start(const struct job *j)
{
	return owner_may_start(j->sched->n->owner, j->msg->sm->shard);
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

/* From its own event, never from inside delivery's or owner's code. */
static void
sched_on_recheck(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	uint64_t before = s->abandoned;

	(void)fd;
	(void)what;
	deliver_recheck(s->n->deliver);
	if (s->abandoned != before)
		log_info("node id=%s event=attempts_dropped count=%llu "
			 "reason=\"fenced, frozen or no longer primary\"",
			 s->n->me->id,
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
scheduler_new(struct node *n)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));

	s->n = n;
	s->inflight = idmap_new();
	qid_gen_init(&s->qids);
	s->timer = evtimer_new(n->base, sched_run, s);
	s->recheck_ev = event_new(n->base, -1, 0, sched_on_recheck, s);
	scheduler_kick(s);
	return s;
}

void
scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	event_free(s->timer);
	event_free(s->recheck_ev);
	/* the table holds no references: delivery's jobs do, and it drops
	 * them when it is freed (before us) */
	idmap_free(s->inflight);
	free(s);
}
