/* A webhook's sender (webhook.h): one round at a time on the loop.
 *
 * A round reads a batch of the webhook's events from the store (those of
 * the shards this node is primary for, and only while the node may
 * deliver: a fenced node sends nothing), POSTs it through
 * node/http/http_client.c, and on a 2xx deletes the batch's events through group
 * commit (journaled: the replica drops its copies). The next round
 * starts when that deletion is done: at once when the batch was full,
 * else when batch_size events wait or the oldest has waited
 * max_delay_ms. A
 * failed POST (no answer, not 2xx, a timeout) is retried after a backoff
 * (1 s doubling to 60 s); meanwhile events accumulate in the store up to
 * max_backlog. An idle sender looks again every max_delay_ms (at most
 * WEBHOOK_IDLE_MS) for events that became its own (a failover).
 *
 * A walk visits at most WEBHOOK_WALK_MAX events (the peer's copies are
 * passed over) and goes on from where it stopped at the next round, so a
 * round's cost is bounded whatever the backlog. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/webhook/webhook_batch.h"
#include "node/http/http_client.h"
#include "node/webhook/webhook_int.h"

#define WEBHOOK_WALK_MAX 4096   /* events visited per round */
#define WEBHOOK_IDLE_MS 1000    /* an idle sender looks again */
#define WEBHOOK_IDLE_MIN_MS 50  /* ... but never sooner (max_delay_ms 0) */
#define WEBHOOK_FAIL_LOG_EVERY 10 /* failed POSTs in a row: log 1 of n */

static void webhook_round(struct webhook_hook *h);

static void
webhook_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct webhook_hook *h = arg;

	(void)fd;
	(void)what;
	h->timer_at_ms = 0;
	webhook_round(h);
}

/* Run a round in ms (0: from the loop, soon), unless one is due sooner. */
static void
webhook_arm(struct webhook_hook *h, uint64_t ms)
{
	uint64_t at = clock_mono_ms() + ms;
	struct timeval tv = { (time_t)(ms / 1000),
			      (suseconds_t)(ms % 1000) * 1000 };

	if (h->timer == NULL)
		return;
	if (h->timer_at_ms != 0 && h->timer_at_ms <= at &&
	    evtimer_pending(h->timer, NULL))
		return;
	h->timer_at_ms = at;
	evtimer_add(h->timer, &tv);
}

static uint64_t
webhook_idle_ms(const struct webhook_hook *h)
{
	uint64_t ms = h->cfg->max_delay_ms;

	if (ms > WEBHOOK_IDLE_MS)
		ms = WEBHOOK_IDLE_MS;
	return ms < WEBHOOK_IDLE_MIN_MS ? WEBHOOK_IDLE_MIN_MS : ms;
}

/* How long the oldest event of a batch (its first key: keys sort by id,
 * and an id is a qid, which tells its time) has waited, in ms. */
static uint64_t
webhook_waited_ms(const char *key)
{
	uint64_t born = qid_time_us(key + 1 + STORE_WHEV_HOOK_LEN) / 1000;
	uint64_t now = clock_wall_ms();

	return now > born ? now - born : 0;
}

/* ---- reading a batch ---- */

struct webhook_walk {
	struct webhook_hook *h;
	struct buf body;
	size_t visited;
	bool is_full;           /* batch_size or the body bound reached */
	char last[STORE_WHEV_KEY_MAX];
};

static int
webhook_collect(const char *key, uint32_t shard, const void *ev, size_t len,
		void *arg)
{
	struct webhook_walk *w = arg;
	struct webhook_hook *h = w->h;

	if (h->n_keys >= h->cfg->batch_size) {
		w->is_full = true;
		return 1;
	}
	if (w->visited++ >= WEBHOOK_WALK_MAX)
		return 2;
	if (owner_is_primary(h->wh->d.owner, shard)) {
		if (!webhook_body_add(&w->body, h->n_keys, ev, len)) {
			w->is_full = true;
			return 1; /* this one starts the next batch */
		}
		memcpy(h->keys[h->n_keys++], key, STORE_WHEV_KEY_MAX);
	} /* else the peer's: its primary sends it */
	memcpy(w->last, key, STORE_WHEV_KEY_MAX);
	return 0;
}

/* Read the next batch into h->keys and w->body. Returns 0 (the walk
 * reached the end of the webhook's events), 1 (the batch is full), 2
 * (the walk stopped at WEBHOOK_WALK_MAX) or a store error. */
static int
webhook_read(struct webhook_hook *h, struct webhook_walk *w)
{
	struct store_txn *t;
	int rc;

	if (h->keys == NULL)
		h->keys = xcalloc(h->cfg->batch_size, sizeof(*h->keys));
	h->n_keys = 0;
	w->h = h;
	w->last[0] = '\0';
	webhook_body_begin(&w->body);
	if ((rc = store_txn_begin(h->wh->d.store, true, &t)) != 0)
		return rc;
	rc = store_whev_foreach(t, h->tag, h->cursor, webhook_collect, w);
	store_txn_abort(t);
	if (rc == 0)
		h->cursor[0] = '\0'; /* the end: next time from the oldest */
	else if (rc > 0 && w->last[0] != '\0')
		memcpy(h->cursor, w->last, STORE_WHEV_KEY_MAX);
	webhook_body_end(&w->body);
	return rc;
}

/* ---- after the POST ---- */

struct webhook_del {
	struct webhook_hook *h;
	size_t n;
};

static int
webhook_del_apply(struct store_txn *t, void *arg)
{
	struct webhook_del *d = arg;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < d->n; i++) {
		rc = store_whev_del(t, d->h->keys[i]);
		if (rc == -ENOENT) /* dropped meanwhile (backlog) */
			rc = 0;
	}
	return rc;
}

static void
webhook_del_done(int result, void *arg)
{
	struct webhook_del *d = arg;
	struct webhook_hook *h = d->h;

	h->is_busy = false;
	h->n_keys = 0;
	if (result != 0) {
		/* sent, but still stored: they go again (at-least-once) */
		log_warn("webhook name=%s event=delete_failed events=%zu "
			 "error=\"%s\" note=\"they will be sent again\"",
			 h->cfg->name, d->n, shoal_strerror(result));
		webhook_arm(h, WEBHOOK_BACKOFF_MIN_MS);
	} else {
		h->sent += d->n;
		webhook_arm(h, h->was_full ? 0 : webhook_idle_ms(h));
	}
	free(d);
}

static void
webhook_failed(struct webhook_hook *h, long status, const char *error,
	       const char *body, size_t body_len)
{
	char text[WEBHOOK_ERROR_MAX];
	uint32_t jitter = 0;
	uint64_t wait;

	if (error[0] != '\0' && status != 0)
		snprintf(text, sizeof(text), "HTTP %ld, then: %s", status,
			 error);
	else if (error[0] != '\0')
		snprintf(text, sizeof(text), "%s", error);
	else
		snprintf(text, sizeof(text), "HTTP %ld: %.*s", status,
			 (int)(body_len < 120 ? body_len : 120), body);
	webhook_escape(text, strlen(text), h->last_error,
		       sizeof(h->last_error));
	h->posts_failed++;
	h->last_failure = (uint64_t)time(NULL);
	(void)getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK);
	wait = webhook_backoff_ms(++h->failures, jitter % 1000);
	h->retry_at_ms = clock_mono_ms() + wait;
	if (h->failures == 1 || h->failures % WEBHOOK_FAIL_LOG_EVERY == 0)
		log_warn("webhook name=%s event=post_failed events=%zu "
			 "failures=%u retry_in_ms=%llu error=\"%s\"",
			 h->cfg->name, h->n_keys, h->failures,
			 (unsigned long long)wait, h->last_error);
	h->n_keys = 0;
	h->cursor[0] = '\0'; /* again from the oldest */
	h->is_busy = false;
	webhook_arm(h, wait);
}

static void
webhook_on_post(void *arg, const struct http_response *r)
{
	struct webhook_hook *h = arg;
	struct webhook_del *d;
	/* a 2xx took the batch even when its body was cut: the body is
	 * nothing to us */
	const char *error = r->is_cut && webhook_status_ok(r->status) ? "" :
								     r->error;

	h->call = NULL;
	if (error[0] != '\0' || !webhook_status_ok(r->status)) {
		webhook_failed(h, r->status, error, r->body, r->body_len);
		return;
	}
	if (h->failures > 0)
		log_info("webhook name=%s event=post_recovered failures=%u",
			 h->cfg->name, h->failures);
	h->posts_ok++;
	h->failures = 0;
	h->retry_at_ms = 0;
	h->last_success = (uint64_t)time(NULL);
	d = xmalloc(sizeof(*d));
	d->h = h;
	d->n = h->n_keys;
	/* still busy: the next round reads the store after the deletion */
	commit_add(h->wh->d.commit, webhook_del_apply, webhook_del_done, d);
}

/* ---- a round ---- */

static void
webhook_post(struct webhook_hook *h, struct webhook_walk *w)
{
	char sig[WEBHOOK_SIG_MAX], sig_h[WEBHOOK_SIG_MAX + 32];
	char name_h[128];
	const char *headers[5];
	size_t n = 0;
	struct http_request p = {
		.url = h->cfg->url,
		.body = w->body.data,
		.body_len = w->body.len,
		.headers = headers,
		.timeout_ms = h->cfg->timeout_ms,
		.tls_verify = h->cfg->tls_verify,
		.ca_file = h->cfg->ca_file,
		.keep = WEBHOOK_RESP_KEEP,
		.user_agent = "shoal-webhook/1",
	};

	headers[n++] = "Content-Type: application/json";
	snprintf(name_h, sizeof(name_h), "X-Shoal-Webhook: %s", h->cfg->name);
	headers[n++] = name_h;
	if (h->cfg->secret != NULL) {
		webhook_sign(h->cfg->secret, w->body.data, w->body.len, sig);
		snprintf(sig_h, sizeof(sig_h), "X-Shoal-Signature: %s", sig);
		headers[n++] = sig_h;
	}
	headers[n] = NULL;
	h->call = http_client_start(h->wh->http, &p, webhook_on_post, h);
	if (h->call == NULL) {
		webhook_failed(h, 0, "could not start the request", "", 0);
		return;
	}
	h->is_busy = true;
	log_debug(LOG_SUB_MAIN, "webhook name=%s event=post events=%zu "
		  "bytes=%zu", h->cfg->name, h->n_keys, w->body.len);
}

static void
webhook_round(struct webhook_hook *h)
{
	struct webhook_walk w;
	uint64_t now = clock_mono_ms();
	int rc;

	if (h->is_busy)
		return;
	if (h->retry_at_ms > now) {
		webhook_arm(h, h->retry_at_ms - now);
		return;
	}
	h->pending_hint = 0;
	if (!owner_may_deliver(h->wh->d.owner)) {
		webhook_arm(h, WEBHOOK_IDLE_MS); /* fenced: nothing is ours */
		return;
	}
	memset(&w, 0, sizeof(w));
	rc = webhook_read(h, &w);
	if (rc < 0) {
		log_warn("webhook name=%s event=read_failed error=\"%s\"",
			 h->cfg->name, shoal_strerror(rc));
		buf_free(&w.body);
		webhook_arm(h, WEBHOOK_BACKOFF_MIN_MS);
		return;
	}
	if (h->n_keys == 0) {
		buf_free(&w.body);
		/* stopped early, nothing of ours yet: walk on at once */
		webhook_arm(h, rc == 2 ? 0 : webhook_idle_ms(h));
		return;
	}
	h->was_full = w.is_full || rc == 2;
	if (!h->was_full) {
		/* a batch not full waits for max_delay_ms from its oldest
		 * event, for more to join it */
		uint64_t waited = webhook_waited_ms(h->keys[0]);

		if (waited < h->cfg->max_delay_ms) {
			uint64_t left = h->cfg->max_delay_ms - waited;

			buf_free(&w.body);
			h->n_keys = 0;
			webhook_arm(h, left < WEBHOOK_IDLE_MIN_MS ?
					       WEBHOOK_IDLE_MIN_MS :
					       left);
			return;
		}
	}
	webhook_post(h, &w);
	buf_free(&w.body);
}

/* ---- start, stop, kick ---- */

void
webhook_send_start(struct webhook_hook *h)
{
	h->timer = evtimer_new(h->wh->d.base, webhook_on_timer, h);
	SHOAL_ASSERT(h->timer != NULL);
	webhook_arm(h, 0); /* what the store holds from before */
}

void
webhook_send_stop(struct webhook_hook *h)
{
	if (h->call != NULL)
		http_client_cancel(h->wh->http, h->call);
	h->call = NULL;
	if (h->timer != NULL)
		event_free(h->timer);
	h->timer = NULL;
	free(h->keys);
	h->keys = NULL;
}

void
webhook_send_kick(struct webhook_hook *h, uint64_t written)
{
	h->pending_hint += written;
	if (h->is_busy)
		return;
	webhook_arm(h, h->pending_hint >= h->cfg->batch_size ?
			       0 :
			       h->cfg->max_delay_ms);
}
