/* Webhooks: the configured list, events written in the store with the
 * outcome they report, backlog bounds, and status (webhook.h). The
 * senders are webhook_send.c; the store layout is store_whev.c.
 *
 * Writes happen inside group commit applies (node/store/commit.h): they
 * change the transaction and the caller's note, nothing else. */
#include "node/webhook/webhook.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/http/http_client.h"
#include "node/webhook/webhook_int.h"
#include "proto/queue.pb-c.h"

/* Keys a trim walks past (the peer's copies) looking for one of ours. */
#define WEBHOOK_TRIM_WALK 1024

#define WEBHOOK_DROP_LOG_MS 10000

/* A webhook's digits in store keys: 4 Crockford base32 digits of the
 * FNV-1a hash of its name (20 bits). */
static void
webhook_tag(const char *name, char out[STORE_WHEV_HOOK_LEN + 1])
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	uint64_t h = shard_hash(name, strlen(name));

	for (int i = 0; i < STORE_WHEV_HOOK_LEN; i++)
		out[i] = b32[(h >> (5 * i)) & 31];
	out[STORE_WHEV_HOOK_LEN] = '\0';
}

/* The URL as status shows it: credentials in it ("user:pass@") become
 * "***@". */
static char *
webhook_url_shown(const char *url)
{
	const char *host = strstr(url, "://");
	size_t end;
	const char *at;

	if (host == NULL)
		return xstrdup(url);
	host += 3;
	end = strcspn(host, "/?#");
	at = memchr(host, '@', end);
	if (at == NULL)
		return xstrdup(url);
	while (memchr(at + 1, '@', end - (size_t)(at + 1 - host)))
		at = memchr(at + 1, '@', end - (size_t)(at + 1 - host));
	{
		size_t n = strlen(url) + 4;
		char *out = xmalloc(n);

		snprintf(out, n, "%.*s***%s", (int)(host - url), url, at);
		return out;
	}
}

struct webhooks *
webhooks_new(const struct webhooks_deps *deps)
{
	const struct config *cfg = deps->cfg;
	struct webhooks *wh;

	if (cfg->delivery.n_webhooks == 0)
		return NULL;
	wh = xcalloc(1, sizeof(*wh));
	wh->d = *deps;
	if (qid_gen_init(&wh->ids) != 0) {
		log_error("webhook event=start_failed reason=\"no random "
			  "source for event ids\"");
		free(wh);
		return NULL;
	}
	for (size_t i = 0; i < cfg->delivery.n_webhooks && i < WEBHOOK_MAX;
	     i++) {
		struct webhook_hook *h = &wh->hooks[wh->n++];

		h->wh = wh;
		h->cfg = &cfg->delivery.webhooks[i];
		h->index = i;
		h->url_shown = webhook_url_shown(h->cfg->url);
		webhook_tag(h->cfg->name, h->tag);
		for (size_t k = 0; k < h->cfg->n_events; k++) {
			enum webhook_type t;

			if (webhook_type_parse(h->cfg->events[k], &t) == 0)
				h->mask |= 1u << t;
		}
		if (h->cfg->n_events == 0)
			h->mask = (1u << WEBHOOK_TYPES) - 1;
		for (size_t k = 0; k < i; k++)
			if (strcmp(wh->hooks[k].tag, h->tag) == 0) {
				log_error("webhook name=%s event=start_failed "
					  "reason=\"its store digits %s are "
					  "those of webhook %s: rename one\"",
					  h->cfg->name, h->tag,
					  wh->hooks[k].cfg->name);
				webhooks_free(wh);
				return NULL;
			}
	}
	wh->http = http_client_new(deps->base);
	if (wh->http == NULL) {
		webhooks_free(wh);
		return NULL;
	}
	for (size_t i = 0; i < wh->n; i++) {
		webhook_send_start(&wh->hooks[i]);
		log_info("webhook name=%s event=started tag=%s batch_size=%u "
			 "max_delay_ms=%u max_backlog=%u",
			 wh->hooks[i].cfg->name, wh->hooks[i].tag,
			 wh->hooks[i].cfg->batch_size,
			 wh->hooks[i].cfg->max_delay_ms,
			 wh->hooks[i].cfg->max_backlog);
	}
	return wh;
}

void
webhooks_free(struct webhooks *wh)
{
	if (wh == NULL)
		return;
	for (size_t i = 0; i < wh->n; i++) {
		webhook_send_stop(&wh->hooks[i]);
		free(wh->hooks[i].url_shown);
	}
	http_client_free(wh->http);
	free(wh);
}

bool
webhooks_wants(const struct webhooks *wh, enum webhook_type t)
{
	for (size_t i = 0; wh != NULL && i < wh->n; i++)
		if (wh->hooks[i].mask & (1u << t))
			return true;
	return false;
}

void
webhooks_draw_id(struct webhooks *wh, char out[QID_LEN + 1])
{
	if (wh == NULL) {
		out[0] = '\0';
		return;
	}
	qid_next(&wh->ids, out);
}

void
webhooks_note_clear(struct webhook_note *n)
{
	memset(n, 0, sizeof(*n));
}

/* The first (oldest) event of a webhook that this node sends (of a
 * shard it is primary for), within WEBHOOK_TRIM_WALK keys. */
struct webhook_oldest {
	struct webhook_hook *h;
	char key[STORE_WHEV_KEY_MAX];
	unsigned visited;
};

/* Whether this node sends shard's events (no owner: a test, all). */
static bool
webhook_is_ours(const struct webhook_hook *h, uint32_t shard)
{
	return h->wh->d.owner == NULL ||
	       owner_is_primary(h->wh->d.owner, shard);
}

static int
webhook_oldest_ours(const char *key, uint32_t shard, const void *ev,
		    size_t len, void *arg)
{
	struct webhook_oldest *o = arg;

	(void)ev;
	(void)len;
	if (!webhook_is_ours(o->h, shard))
		return ++o->visited >= WEBHOOK_TRIM_WALK ? 2 : 0;
	memcpy(o->key, key, STORE_WHEV_KEY_MAX);
	return 1;
}

struct webhook_ours {
	struct webhook_hook *h;
	uint64_t n;
};

static int
webhook_count_ours(uint32_t shard, uint64_t n, void *arg)
{
	struct webhook_ours *o = arg;

	if (webhook_is_ours(o->h, shard))
		o->n += n;
	return 0;
}

/* Over its max_backlog (or, full: the store has no room to spare), a
 * webhook loses its oldest events, a few per write, in t. Only events
 * this node sends: their deletion is journaled, and the peer's copies
 * are the peer's to trim (trimming them here counted each drop twice
 * and left the peer to send them anyway). */
static int
webhook_trim(struct webhook_hook *h, struct store_txn *t,
	     struct webhook_note *note, bool full)
{
	struct webhook_ours ours = { h, 0 };
	int rc = store_whev_count_foreach(t, h->tag, webhook_count_ours,
					  &ours);

	if (rc != 0)
		return rc;
	for (int k = 0; (full || ours.n > h->cfg->max_backlog) &&
			k < WEBHOOK_DROP_PER_WRITE && ours.n > 0;
	     k++, ours.n--) {
		struct webhook_oldest o = { .h = h };

		rc = store_whev_foreach(t, h->tag, NULL, webhook_oldest_ours,
					&o);
		if (rc != 1)
			return rc == 0 || rc == 2 ? 0 : rc;
		if ((rc = store_whev_del(t, o.key)) != 0)
			return rc;
		note->dropped[h->index]++;
	}
	return 0;
}

int
webhooks_write(struct webhooks *wh, struct store_txn *t,
	       const struct webhook_event *ev, uint32_t shard,
	       struct webhook_note *note)
{
	char *text = NULL;
	size_t len = 0;
	int rc = 0;

	if (wh == NULL || ev->id[0] == '\0')
		return 0;
	for (size_t i = 0; rc == 0 && i < wh->n; i++) {
		struct webhook_hook *h = &wh->hooks[i];
		char key[STORE_WHEV_KEY_MAX];

		if (!(h->mask & (1u << ev->type)))
			continue;
		if (text == NULL)
			text = webhook_event_encode(ev, STORE_WHEV_MAX, &len);
		if (text == NULL)
			break; /* cannot happen: fields are bounded */
		store_whev_key(h->tag, ev->id, shard, key);
		rc = store_whev_put(t, key, text, len);
		if (rc == -EDQUOT) {
			/* the store has no room to spare: the event is
			 * dropped, never the mail */
			note->dropped[h->index]++;
			rc = webhook_trim(h, t, note, true);
		} else if (rc == 0) {
			note->written++;
			rc = webhook_trim(h, t, note, false);
		}
	}
	free(text);
	return rc;
}

int
webhooks_write_suppressed(struct webhooks *wh, struct store_txn *t,
			  const void *meta, size_t meta_len,
			  const char (*ids)[QID_LEN + 1],
			  struct webhook_note *note)
{
	Shoal__StoredMessage *sm;
	const Shoal__Envelope *env;
	int rc = 0;

	if (wh == NULL || ids == NULL ||
	    !webhooks_wants(wh, WEBHOOK_SUPPRESSED))
		return 0;
	sm = shoal__stored_message__unpack(NULL, meta_len, meta);
	if (sm == NULL || sm->envelope == NULL) {
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		return 0; /* the caller stored it: not ours to refuse */
	}
	env = sm->envelope;
	for (size_t i = 0; rc == 0 && i < env->n_rcpts; i++) {
		const Shoal__Recipient *r = env->rcpts[i];
		const char *at = strrchr(r->address, '@');
		struct webhook_event ev = {
			.type = WEBHOOK_SUPPRESSED,
			.time = env->arrival_time,
			.node = wh->d.node_id,
			.qid = sm->qid,
			.sender = env->mail_from,
			.recipient = r->address,
			.destination = at ? at + 1 : "",
			.response = r->last_reply,
			.enhanced = "",
			.tenant = env->tenant,
			.pool = env->pool,
			.priority = env->priority == SHOAL__PRIORITY__PRIORITY_HIGH ?
					    "high" :
				    env->priority == SHOAL__PRIORITY__PRIORITY_BULK ?
					    "bulk" :
					    "normal",
		};

		if (!r->suppressed)
			continue;
		memcpy(ev.id, ids[i], sizeof(ev.id));
		rc = webhooks_write(wh, t, &ev, sm->shard, note);
	}
	shoal__stored_message__free_unpacked(sm, NULL);
	return rc;
}

void
webhooks_noted(struct webhooks *wh, const struct webhook_note *note,
	       int result)
{
	uint64_t now = clock_mono_ms();

	if (wh == NULL || result != 0)
		return;
	for (size_t i = 0; i < wh->n; i++) {
		struct webhook_hook *h = &wh->hooks[i];

		if (note->dropped[i] == 0)
			continue;
		h->dropped += note->dropped[i];
		h->drops_unlogged += note->dropped[i];
		if (now - h->drop_logged_ms >= WEBHOOK_DROP_LOG_MS ||
		    h->drop_logged_ms == 0) {
			log_warn("webhook name=%s event=backlog_full "
				 "dropped=%llu dropped_total=%llu "
				 "max_backlog=%u note=\"oldest events "
				 "dropped\"",
				 h->cfg->name,
				 (unsigned long long)h->drops_unlogged,
				 (unsigned long long)h->dropped,
				 h->cfg->max_backlog);
			h->drop_logged_ms = now;
			h->drops_unlogged = 0;
		}
	}
	if (note->written == 0)
		return;
	for (size_t i = 0; i < wh->n; i++)
		webhook_send_kick(&wh->hooks[i], note->written);
}

/* ---- events of their own (shaping) ---- */

struct webhook_emit {
	struct webhooks *wh;
	struct webhook_event ev;
	char *strs[8];
	struct webhook_note note;
	bool has_shard;
};

static char *
webhook_keep(struct webhook_emit *e, size_t i, const char *s)
{
	e->strs[i] = s ? xstrdup(s) : NULL;
	return e->strs[i];
}

static int
webhook_emit_apply(struct store_txn *t, void *arg)
{
	struct webhook_emit *e = arg;
	uint32_t shards = e->wh->d.cfg->cluster.shards;

	webhooks_note_clear(&e->note);
	e->has_shard = false;
	for (uint32_t s = 0; s < shards; s++)
		if (owner_is_primary(e->wh->d.owner, s)) {
			e->has_shard = true;
			return webhooks_write(e->wh, t, &e->ev, s, &e->note);
		}
	return 0;
}

static void
webhook_emit_done(int result, void *arg)
{
	struct webhook_emit *e = arg;

	if (result != 0)
		log_warn("webhook event=emit_failed type=%s error=\"%s\"",
			 webhook_type_name(e->ev.type), shoal_strerror(result));
	else if (!e->has_shard)
		log_debug(LOG_SUB_MAIN, "webhook event=emit_skipped type=%s "
			  "reason=\"primary for no shard\"",
			  webhook_type_name(e->ev.type));
	webhooks_noted(e->wh, &e->note, result);
	for (size_t i = 0; i < sizeof(e->strs) / sizeof(e->strs[0]); i++)
		free(e->strs[i]);
	free(e);
}

void
webhooks_emit(struct webhooks *wh, const struct webhook_event *ev)
{
	struct webhook_emit *e;

	if (wh == NULL || !webhooks_wants(wh, ev->type))
		return;
	e = xcalloc(1, sizeof(*e));
	e->wh = wh;
	e->ev = *ev;
	webhooks_draw_id(wh, e->ev.id);
	e->ev.node = webhook_keep(e, 0, ev->node);
	e->ev.destination = webhook_keep(e, 1, ev->destination);
	e->ev.response = webhook_keep(e, 2, ev->response);
	e->ev.action = webhook_keep(e, 3, ev->action);
	e->ev.provider = webhook_keep(e, 4, ev->provider);
	e->ev.rule = webhook_keep(e, 5, ev->rule);
	e->ev.qid = e->ev.sender = e->ev.recipient = e->ev.mx = NULL;
	e->ev.enhanced = e->ev.tenant = e->ev.pool = e->ev.priority = NULL;
	commit_add(wh->d.commit, webhook_emit_apply, webhook_emit_done, e);
}

/* ---- status ---- */

size_t
webhooks_count(const struct webhooks *wh)
{
	return wh ? wh->n : 0;
}

struct webhook_backlog {
	const struct owner *o;
	uint64_t n;
};

static int
webhook_backlog_add(uint32_t shard, uint64_t n, void *arg)
{
	struct webhook_backlog *b = arg;

	if (owner_is_primary(b->o, shard))
		b->n += n;
	return 0;
}

int
webhooks_stats(struct webhooks *wh, size_t i, struct webhook_stats *out)
{
	const struct webhook_hook *h = &wh->hooks[i];
	struct webhook_backlog b = { wh->d.owner, 0 };
	uint64_t now = clock_mono_ms();
	struct store_txn *t;
	int rc;

	memset(out, 0, sizeof(*out));
	out->name = h->cfg->name;
	out->url = h->url_shown;
	out->sent = h->sent;
	out->dropped = h->dropped;
	out->posts_ok = h->posts_ok;
	out->posts_failed = h->posts_failed;
	out->last_success = h->last_success;
	out->last_failure = h->last_failure;
	out->failures = h->failures;
	out->retry_in_ms = h->retry_at_ms > now ? h->retry_at_ms - now : 0;
	out->last_error = h->last_error;
	if ((rc = store_txn_begin(wh->d.store, true, &t)) != 0)
		return rc;
	out->held = store_whev_count(t, h->tag);
	rc = store_whev_count_foreach(t, h->tag, webhook_backlog_add, &b);
	store_txn_abort(t);
	if (rc == 0)
		out->backlog = b.n;
	return rc;
}
