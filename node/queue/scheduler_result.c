/* The scheduler's results path (node/queue/scheduler.h): a job comes
 * back from delivery, a deferral past the queue lifetime becomes a bounce
 * (outcome_final(): node/delivery/outcome.c decides), each attempt is
 * written to the delivery log and counted, and the results are saved
 * through group commit: every recipient's new state and next try, the
 * DSNs they ask for, "no such user" bounces on the suppression list, and
 * the message retired when nothing is pending or its due entry moved to
 * its earliest next try.
 *
 * The apply function may run twice (node/store/commit.h): it changes the
 * transaction and its own record of what it did (struct sched_res) and
 * nothing else; the DSN qids and the time are drawn before the commit,
 * and the log lines, suppression notes and resume point follow in the
 * done callback.
 *
 * A save that fails (a full disk, say) is tried again, the same results
 * with the same DSN qids, after a backoff; meanwhile the message stays in
 * flight so that nothing delivers it again. Giving up and letting the
 * scheduler find it due would send it once more on every attempt, and a
 * full store could never free the space that saved results would free. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/job.h"
#include "node/delivery/outcome.h"
#include "node/queue/bounce.h"
#include "node/queue/dlog.h"
#include "node/queue/dsn.h"
#include "node/queue/scheduler.h"
#include "node/queue/scheduler_int.h"
#include "node/queue/tenants.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/suppress/suppress.h"
#include "node/webhook/webhook.h"

enum { SCHED_DSN_FAILED = 0, SCHED_DSN_RELAYED, SCHED_DSNS };

/* A job's results join the next batch that commits for other items (an
 * enqueue, a replica's apply) when one comes within this delay, else they
 * commit alone: one sync for both instead of one each. At one client
 * sending one message at a time that cut each node's commits from about
 * 2.0 to 1.25 per message and raised the rate 8-13 % (bench/results/
 * ab-20261207T082034Z.txt; at 50 sessions batches come anyway and commits
 * fell 15-20 %, ab-20261207T082117Z.txt). The price:
 * a message delivered in the last 5 ms before a node dies may be sent
 * again (at-least-once; docs/replication.md, "Why duplicates stay rare"). */
#define SCHED_RESULT_JOIN_MS 5

/* Saving failed results again: the first wait, the longest, and how
 * often a result that still cannot be saved is logged again. */
#define SCHED_RESAVE_MS_MIN 100
#define SCHED_RESAVE_MS_MAX 5000
#define SCHED_RESAVE_LOG_EVERY 20

/* One job's results on their way to the store: what the apply needs
 * besides the job, drawn before the commit, and what the apply did, for
 * the done callback (the last four fields, written afresh by each run). */
struct sched_res {
	struct scheduler *s;
	struct job *j;
	uint64_t now;                  /* when the results came back */
	struct dsn_slot dsn[SCHED_DSNS];
	struct suppress_note *notes;   /* j->n of them, or NULL */
	bool is_removed;               /* every recipient done: retired */
	bool is_not_ours;              /* its shard moved away meanwhile */
	bool has_due;                  /* a due entry at `due` was written */
	uint64_t due;
	uint32_t failed_saves;         /* saves that failed so far */
	bool is_kept_full;             /* the last for want of room */
	struct sched_res *next;        /* in s->unsaved */
	/* webhook events (node/webhook/webhook.h): per result its type or
	 * SCHED_WH_NONE and its id, drawn before the commit; what the
	 * writes did, for the done callback */
	uint8_t *wh_types;             /* j->n of them, or NULL */
	char (*wh_ids)[QID_LEN + 1];
	struct webhook_note wh_note;
};

#define SCHED_WH_NONE 0xff

/* The recipients a job's DSNs report (pointing into the transaction's
 * record and the job), and the reply line of each result. */
struct sched_dsns {
	struct bounce_rcpt *v[SCHED_DSNS];
	size_t n[SCHED_DSNS];
	char (*texts)[600];
};

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

static void
sched_set_str(char **field, const char *value)
{
	if (*field != protobuf_c_empty_string)
		free(*field);
	*field = xstrdup(value);
}

/* One recipient's result into its record: the attempt, its reply and
 * category, and its new state (delivered, bounced, or deferred to its
 * next try by the retry schedule); the notice it asks for goes to d. */
static void
sched_record_one(const struct sched_res *sr, size_t k,
		 const Shoal__Envelope *env, Shoal__Recipient *r,
		 struct sched_dsns *d)
{
	const struct config *cfg = sr->s->cfg;
	const struct job_result *res = &sr->j->res[k];
	enum bounce_action a = BOUNCE_FAILED;
	size_t kind = SCHED_DSN_FAILED;

	/* held back by adaptive shaping: no attempt was made */
	if (res->retry_at == 0)
		r->attempts++;
	sched_format_reply(res, d->texts[k], sizeof(d->texts[k]));
	sched_set_str(&r->last_reply, d->texts[k]);
	sched_set_str(&r->category, classify_name(res->category));
	sched_set_str(&r->last_tls_policy, sr->j->tls_policy);
	sched_set_str(&r->last_tls, res->tls);
	switch (res->outcome) {
	case OUTCOME_DELIVERED:
		r->state = SHOAL__RCPT_STATE__RCPT_DELIVERED;
		if (!res->relayed_no_dsn)
			return;
		a = BOUNCE_DELIVERED;
		kind = SCHED_DSN_RELAYED;
		break;
	case OUTCOME_BOUNCED:
		r->state = SHOAL__RCPT_STATE__RCPT_BOUNCED;
		break;
	default:
		r->state = SHOAL__RCPT_STATE__RCPT_DEFERRED;
		/* the jitter is drawn afresh if the apply runs again: either
		 * draw is as good, and nothing outside the txn changes */
		if (res->retry_at) {
			/* held: due when the hold ends, but never past the
			 * queue lifetime, where it bounces as any deferral */
			uint64_t end = env->arrival_time +
				       cfg->delivery.max_queue_lifetime;

			r->next_try = res->retry_at < end ? res->retry_at :
							    end;
			if (r->next_try <= sr->now)
				r->next_try = sr->now + 1;
			return;
		}
		r->next_try = outcome_next_try(sr->now, r->attempts,
					       cfg->delivery.retry_schedule,
					       cfg->delivery.n_retry_schedule);
		return;
	}
	if (bounce_wanted(env, r, a))
		d->v[kind][d->n[kind]++] = (struct bounce_rcpt){
			r->address, r->orcpt, a, res->status, res->mx,
			res->reply.code, res->reply.text,
			a == BOUNCE_FAILED ? classify_name(res->category) : "",
			sr->j->tls_policy, res->tls,
		};
}

/* A "no such user" bounce goes on the suppression list, in this
 * transaction (node/suppress/suppress.h); sr->notes[k] says what for the
 * done callback. */
static int
sched_note_no_such_user(struct sched_res *sr, struct store_txn *t, size_t k,
			const Shoal__Recipient *r, const char *text)
{
	const struct job_result *res = &sr->j->res[k];

	if (sr->notes == NULL || res->outcome != OUTCOME_BOUNCED ||
	    !suppress_is_no_such_user(res->reply.code, res->reply.enhanced,
				      res->reply.text))
		return 0;
	return suppress_note_bounce(sr->s->supp, t, r->address, text,
				    res->status, sr->j->msg->qid, sr->now,
				    &sr->notes[k]);
}

static const char *
sched_priority_name(Shoal__Priority p)
{
	switch (p) {
	case SHOAL__PRIORITY__PRIORITY_HIGH:
		return "high";
	case SHOAL__PRIORITY__PRIORITY_BULK:
		return "bulk";
	default:
		return "normal";
	}
}

/* The webhook event of result k, recorded in r, in this transaction
 * (only t and sr->wh_note change). */
static int
sched_webhook(struct sched_res *sr, struct store_txn *t, size_t k,
	      const Shoal__StoredMessage *sm, const Shoal__Recipient *r)
{
	const struct job *j = sr->j;
	const struct job_result *res = &j->res[k];
	const Shoal__Envelope *env = sm->envelope;
	struct webhook_event ev = {
		.time = sr->now,
		.node = sr->s->node_id,
		.qid = j->msg->qid,
		.sender = env->mail_from,
		.recipient = r->address,
		.destination = j->domain,
		.mx = res->mx,
		.response = res->reply.text,
		.code = res->reply.code > 0 ? (uint32_t)res->reply.code : 0,
		.enhanced = res->reply.enhanced[0] ? res->reply.enhanced :
						     res->status,
		.attempt = r->attempts,
		.tenant = env->tenant,
		.pool = env->pool,
		.priority = sched_priority_name(env->priority),
	};

	if (sr->wh_types == NULL || sr->wh_types[k] == SCHED_WH_NONE)
		return 0;
	ev.type = (enum webhook_type)sr->wh_types[k];
	memcpy(ev.id, sr->wh_ids[k], sizeof(ev.id));
	return webhooks_write(sr->s->wh, t, &ev, sm->shard, &sr->wh_note);
}

/* Every result of the job into the message's record. */
static int
sched_record(struct sched_res *sr, struct store_txn *t,
	     Shoal__StoredMessage *sm, struct sched_dsns *d)
{
	const struct job *j = sr->j;
	Shoal__Envelope *env = sm->envelope;
	int rc = 0;

	for (size_t k = 0; rc == 0 && k < j->n; k++) {
		Shoal__Recipient *r;

		if (j->rcpt[k] >= env->n_rcpts)
			continue;
		r = env->rcpts[j->rcpt[k]];
		if (!sched_rcpt_pending(r))
			continue; /* already final (applied twice) */
		sched_record_one(sr, k, env, r, d);
		rc = sched_note_no_such_user(sr, t, k, r, d->texts[k]);
		if (rc == 0)
			rc = sched_webhook(sr, t, k, sm, r);
	}
	return rc;
}

/* The DSNs the results ask for: failures, then relayed successes. */
static int
sched_queue_dsns(struct sched_res *sr, struct store_txn *t,
		 const Shoal__Envelope *env, const struct sched_dsns *d)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < SCHED_DSNS; i++) {
		struct dsn_about a = {
			.orig_qid = sr->j->msg->qid,
			.env = env,
			.orig = sr->j->msg->body,
			.orig_len = sr->j->msg->body_len,
			.brs = d->v[i],
			.n = d->n[i],
			.now = sr->now,
		};

		if (d->n[i] > 0)
			rc = scheduler_dsn_store(sr->s, t, &sr->dsn[i], &a);
	}
	return rc;
}

/* The earliest next try among the pending recipients; false when none is
 * pending. */
static bool
sched_next_due(const Shoal__Envelope *env, uint64_t *due)
{
	bool pending = false;

	for (size_t i = 0; i < env->n_rcpts; i++) {
		if (!sched_rcpt_pending(env->rcpts[i]))
			continue;
		if (!pending || env->rcpts[i]->next_try < *due)
			*due = env->rcpts[i]->next_try;
		pending = true;
	}
	return pending;
}

static int
sched_put_meta(struct store_txn *t, const Shoal__StoredMessage *sm)
{
	size_t len = shoal__stored_message__get_packed_size(sm);
	void *packed = xmalloc(len ? len : 1);
	int rc;

	shoal__stored_message__pack(sm, packed);
	rc = store_msg_set_meta(t, sm->qid, packed, len);
	free(packed);
	return rc;
}

/* The message after its results: retired when no recipient is pending,
 * else stored back with its due entry at its earliest next try. A shard
 * no longer ours keeps its result, and its due index is left to the new
 * owner's copy; a message held while in flight loses its due entry until
 * released. */
static int
sched_save(struct sched_res *sr, struct store_txn *t, Shoal__StoredMessage *sm)
{
	bool is_mine = !sr->is_not_ours;
	uint64_t due = 0;
	int rc = 0;

	if (!sched_next_due(sm->envelope, &due)) {
		rc = store_due_del(t, sm->due, sm->qid);
		if (rc == 0)
			rc = store_msg_retire(t, sm->qid, sm->shard);
		sr->is_removed = rc == 0;
		return rc;
	}
	if (sm->held && sm->due != 0 && is_mine) {
		rc = store_due_del(t, sm->due, sm->qid);
		sm->due = 0;
	} else if (due != sm->due && !sm->held && is_mine) {
		rc = store_due_del(t, sm->due, sm->qid);
		if (rc == 0)
			rc = store_due_put(t, due, sm->qid,
					   envelope_class(sm->envelope));
		sr->has_due = rc == 0;
		sr->due = due;
		sm->due = due;
	}
	return rc ? rc : sched_put_meta(t, sm);
}

/* Forget what an earlier run of sched_apply() did. */
static void
sched_res_clear(struct sched_res *sr)
{
	sr->is_removed = sr->is_not_ours = sr->has_due = false;
	sr->due = 0;
	for (size_t i = 0; i < SCHED_DSNS; i++)
		dsn_slot_clear(&sr->dsn[i]);
	if (sr->notes)
		memset(sr->notes, 0, sr->j->n * sizeof(*sr->notes));
	webhooks_note_clear(&sr->wh_note);
}

/* Group commit apply: the job's results into the message as the
 * transaction has it (another job of it may have changed it since). */
static int
sched_apply(struct store_txn *t, void *arg)
{
	struct sched_res *sr = arg;
	const struct job *j = sr->j;
	struct sched_dsns d = { 0 };
	Shoal__StoredMessage *sm;
	const void *p;
	size_t len;
	int rc;

	sched_res_clear(sr);
	rc = store_msg_get_meta(t, j->msg->qid, &p, &len);
	if (rc == -ENOENT)
		return 0; /* deleted meanwhile (queue delete): nothing to do */
	if (rc != 0)
		return rc;
	sm = shoal__stored_message__unpack(NULL, len, p);
	if (sm == NULL || sm->envelope == NULL) {
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		return -EIO;
	}
	sr->is_not_ours = !sched_is_mine(sr->s, sm->shard);
	for (size_t i = 0; i < SCHED_DSNS; i++)
		d.v[i] = xcalloc(j->n + 1, sizeof(*d.v[i]));
	d.texts = xcalloc(j->n + 1, sizeof(*d.texts));
	rc = sched_record(sr, t, sm, &d);
	if (rc == 0)
		rc = sched_queue_dsns(sr, t, sm->envelope, &d);
	if (rc == 0)
		rc = sched_save(sr, t, sm);
	shoal__stored_message__free_unpacked(sm, NULL);
	for (size_t i = 0; i < SCHED_DSNS; i++)
		free(d.v[i]);
	free(d.texts);
	return rc;
}

/* Before the commit: the qids of the DSNs the results may ask for (the
 * apply draws nothing), and room for suppression notes. */
/* The webhook event each result makes, if a webhook wants it, and its
 * id: none for a recipient held back by shaping (no attempt). expired[k]:
 * the result became a bounce at the queue lifetime. */
static void
sched_res_webhooks(struct sched_res *sr, const uint8_t *expired)
{
	const struct job *j = sr->j;

	if (sr->s->wh == NULL || expired == NULL)
		return;
	sr->wh_types = xmalloc(j->n ? j->n : 1);
	sr->wh_ids = xcalloc(j->n ? j->n : 1, sizeof(*sr->wh_ids));
	for (size_t k = 0; k < j->n; k++) {
		const struct job_result *res = &j->res[k];
		enum webhook_type t;

		sr->wh_types[k] = SCHED_WH_NONE;
		if (res->retry_at != 0)
			continue;
		if (res->outcome == OUTCOME_DELIVERED)
			t = WEBHOOK_DELIVERED;
		else if (res->outcome == OUTCOME_BOUNCED)
			t = expired[k] ? WEBHOOK_EXPIRED : WEBHOOK_BOUNCED;
		else
			t = WEBHOOK_DEFERRED;
		if (!webhooks_wants(sr->s->wh, t))
			continue;
		sr->wh_types[k] = (uint8_t)t;
		webhooks_draw_id(sr->s->wh, sr->wh_ids[k]);
	}
}

static void
sched_res_free(struct sched_res *sr)
{
	free(sr->notes);
	free(sr->wh_types);
	free(sr->wh_ids);
	free(sr);
}

static struct sched_res *
sched_res_new(struct scheduler *s, struct job *j, uint64_t now,
	      const uint8_t *expired)
{
	struct sched_res *sr = xcalloc(1, sizeof(*sr));
	bool is_bounced = false, is_relayed = false;

	sr->s = s;
	sr->j = j;
	sr->now = now;
	for (size_t k = 0; k < j->n; k++) {
		if (j->res[k].outcome == OUTCOME_BOUNCED)
			is_bounced = true;
		else if (j->res[k].outcome == OUTCOME_DELIVERED &&
			 j->res[k].relayed_no_dsn)
			is_relayed = true;
	}
	if (is_bounced) {
		scheduler_dsn_draw(s, &sr->dsn[SCHED_DSN_FAILED]);
		sr->notes = xcalloc(j->n, sizeof(*sr->notes));
	}
	if (is_relayed)
		scheduler_dsn_draw(s, &sr->dsn[SCHED_DSN_RELAYED]);
	sched_res_webhooks(sr, expired);
	return sr;
}

static void sched_applied(int result, void *arg);

/* The apply found that the results cannot be saved on this node at all:
 * a DSN they need has no shard of ours left (dsn.c), so the message is
 * the new owner's to try. Anything else (a full disk) passes. */
static bool
sched_res_refused(const struct sched_res *sr)
{
	for (size_t i = 0; i < SCHED_DSNS; i++)
		if (sr->dsn[i].is_refused)
			return true;
	return false;
}

static void
sched_resave(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sched_res *sr = s->unsaved;

	(void)fd;
	(void)what;
	s->unsaved = NULL;
	s->n_unsaved = 0;
	while (sr != NULL) {
		struct sched_res *next = sr->next;

		sr->next = NULL;
		commit_add(s->commit, sched_apply, sched_applied, sr);
		sr = next;
	}
}

/* How often, at most, a new pause for a full store is logged. */
#define SCHED_FULL_LOG_SECS 10

/* Delivery pauses (scheduler_results_savable() false) at a result save
 * that fails for want of room (sched_res_pauses()), and the jobs waiting
 * in delivery are handed back. It resumes when no result is kept for
 * want of room any more: all saved, their messages gone, or their next
 * failure another error. Not at the first save that succeeds: at the
 * edge of full (pages pinned by a reader) single saves get through while
 * the rest fail, and each resume let a burst of deliveries out whose
 * results failed too (103 of 175 sent twice after a kill in one run).
 * A pause is logged at most every SCHED_FULL_LOG_SECS. */
static void
sched_pause(struct scheduler *s)
{
	uint64_t now = sched_now();

	if (s->is_paused)
		return;
	s->is_paused = true;
	s->full_pauses++;
	if (s->full_logged == 0 || now - s->full_logged >= SCHED_FULL_LOG_SECS) {
		log_warn("node id=%s event=deliveries_paused reason=\"results "
			 "cannot be saved: storage full\" in_flight=%llu "
			 "pauses=%llu",
			 s->node_id,
			 (unsigned long long)scheduler_in_flight(s),
			 (unsigned long long)s->full_pauses);
		s->full_logged = now;
		s->full_pauses = 0;
	}
	scheduler_recheck(s);
}

static void
sched_resume(struct scheduler *s)
{
	if (!s->is_paused)
		return;
	s->is_paused = false;
	log_info("node id=%s event=deliveries_resumed", s->node_id);
	scheduler_kick(s);
}

/* Whether sr's failed save pauses deliveries: it failed for want of room
 * and wrote no DSN. A DSN is a new message, the original's whole text
 * with RET=FULL, far bigger than a result: one that does not fit in what
 * is left says little about the rest, and the deliveries that go on
 * retire messages and free the room it needs. */
static bool
sched_res_pauses(const struct sched_res *sr, int result)
{
	if (result != SHOAL_E_STORAGE_FULL)
		return false;
	for (size_t i = 0; i < SCHED_DSNS; i++)
		if (sr->dsn[i].qid[0] != '\0')
			return false;
	return true;
}

/* Count sr among the results kept for want of room (full) or not. */
static void
sched_kept_full(struct scheduler *s, struct sched_res *sr, bool full)
{
	if (sr->is_kept_full == full)
		return;
	sr->is_kept_full = full;
	if (full) {
		s->n_kept_full++;
	} else {
		SHOAL_ASSERT(s->n_kept_full > 0);
		s->n_kept_full--;
	}
}

bool
scheduler_results_savable(const struct scheduler *s)
{
	return s == NULL || !s->is_paused;
}

/* The save failed: keep the results (and the message in flight) and save
 * them again after a backoff that doubles while saves keep failing. */
static void
sched_unsaved(struct scheduler *s, struct sched_res *sr, int result)
{
	struct timeval tv;

	sched_kept_full(s, sr, sched_res_pauses(sr, result));
	if (sr->is_kept_full)
		sched_pause(s);
	if (sr->failed_saves++ % SCHED_RESAVE_LOG_EVERY == 0)
		log_error("qid=%s event=result_not_saved error=\"%s\" "
			  "failures=%u note=\"saved again soon; not "
			  "delivered again meanwhile\"",
			  sr->j->msg->qid, shoal_strerror(result),
			  sr->failed_saves);
	sr->next = s->unsaved;
	s->unsaved = sr;
	s->n_unsaved++;
	if (s->resave_ev == NULL) {
		s->resave_ev = evtimer_new(s->base, sched_resave, s);
		SHOAL_ASSERT(s->resave_ev != NULL);
	}
	if (evtimer_pending(s->resave_ev, NULL))
		return;
	s->resave_ms = s->resave_ms == 0 ? SCHED_RESAVE_MS_MIN :
		       s->resave_ms >= SCHED_RESAVE_MS_MAX / 2 ?
						   SCHED_RESAVE_MS_MAX :
						   s->resave_ms * 2;
	tv.tv_sec = s->resave_ms / 1000;
	tv.tv_usec = (s->resave_ms % 1000) * 1000;
	evtimer_add(s->resave_ev, &tv);
}

void
sched_unsaved_free(struct scheduler *s)
{
	struct sched_res *sr = s->unsaved;

	while (sr != NULL) {
		struct sched_res *next = sr->next;

		log_error("qid=%s event=result_not_saved note=\"given up at "
			  "shutdown: may be delivered again after a restart\"",
			  sr->j->msg->qid);
		job_free(sr->j);
		sched_res_free(sr);
		sr = next;
	}
	s->unsaved = NULL;
	s->n_unsaved = 0;
	if (s->resave_ev != NULL)
		event_free(s->resave_ev);
	s->resave_ev = NULL;
}

/* Group commit done: what the apply did is logged and made known. */
static void
sched_applied(int result, void *arg)
{
	struct sched_res *sr = arg;
	struct scheduler *s = sr->s;
	struct job *j = sr->j;

	if (result != 0 && !sched_res_refused(sr)) {
		sched_unsaved(s, sr, result);
		return;
	}
	sched_kept_full(s, sr, false);
	if (s->n_kept_full == 0)
		sched_resume(s);
	if (sr->failed_saves > 0 && result == 0)
		log_warn("qid=%s event=result_saved failures=%u", j->msg->qid,
			 sr->failed_saves);
	if (result == 0 && s->n_unsaved == 0)
		s->resave_ms = 0; /* saves work again */
	for (size_t k = 0; result == 0 && sr->notes && k < j->n; k++)
		suppress_noted(s->supp, &sr->notes[k]);
	webhooks_noted(s->wh, &sr->wh_note, result);
	for (size_t i = 0; i < SCHED_DSNS; i++)
		scheduler_dsn_done(s, &sr->dsn[i], result);
	if (sr->is_not_ours)
		/* the shard moved away while this attempt ran (failover):
		 * the attempt itself may be repeated at the new owner */
		log_warn("qid=%s event=result_after_ownership_loss shard=%u",
			 j->msg->qid, j->msg->sm->shard);
	if (result == 0 && sr->has_due)
		sched_resume_lower(s, sr->due, j->msg->qid);
	if (result == 0 && sr->is_removed)
		log_info("qid=%s event=removed", j->msg->qid);
	if (result != 0)
		log_error("qid=%s event=result_not_saved error=\"%s\" "
			  "note=\"not ours to save: the shard's owner tries "
			  "it\"",
			  j->msg->qid, shoal_strerror(result));
	s->applied++;
	sched_res_free(sr);
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
	const Shoal__Envelope *env = j->msg->sm->envelope;
	uint64_t now = sched_now();
	uint8_t *expired = s->wh ? xcalloc(j->n ? j->n : 1, 1) : NULL;

	for (size_t k = 0; k < j->n; k++) {
		const Shoal__Recipient *r = j->rcpt[k] < env->n_rcpts ?
						    env->rcpts[j->rcpt[k]] :
						    NULL;
		enum outcome oc = j->res[k].outcome;

		/* past max_queue_lifetime, a deferral ends the recipient: it
		 * bounces with this attempt's error (outcome.c decides), and
		 * the log says so */
		j->res[k].outcome = outcome_final(
			oc, now, env->arrival_time,
			s->cfg->delivery.max_queue_lifetime);
		if (j->res[k].outcome != oc) {
			log_info("qid=%s rcpt=<%s> event=expired", j->msg->qid,
				 r ? r->address : "");
			if (expired)
				expired[k] = 1;
		}
		if (r != NULL) {
			dlog_attempt(s->dlog, j->msg, j, r, &j->res[k]);
			sched_count(s, j->res[k].outcome);
			tenants_count(s->tenants, env->tenant,
				      j->res[k].outcome);
		}
	}
	if (s->hooks.results)
		s->hooks.results(s->hooks.arg, j);
	commit_add_later(s->commit, sched_apply, sched_applied,
			 sched_res_new(s, j, now, expired), SCHED_RESULT_JOIN_MS);
	free(expired);
}
