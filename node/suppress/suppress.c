/* The suppression list on a node: see node/suppress/suppress.h and
 * docs/suppression.md. Entries live in the store (node/store/store.h supp) and
 * travel through the replication journal and shard moves as records with
 * `suppression` set. This file owns the predicate, the entries, their
 * checks on replication and the routers' RCPT check; shoalctl's requests
 * are in suppress_admin.c, adds for other nodes in suppress_pending.c.
 *
 * Handles untrusted input: every address, reason and key is bounded and
 * validated before use; an entry from a peer must hash to its key. */
#include "node/suppress/suppress.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/rpc/rpc.h"
#include "node/store/store.h"
#include "node/suppress/suppress_filter.h"
#include "node/suppress/suppress_int.h"

#define SUPP_TICK_MS 1000 /* pending adds are (re)sent this often */

/* ---- the predicate ---------------------------------------------------- */

static bool
supp_has_phrase(const char *text, const char *phrase)
{
	size_t n = strlen(phrase);

	for (const char *p = text; *p; p++)
		if (strncasecmp(p, phrase, n) == 0)
			return true;
	return false;
}

bool
suppress_is_no_such_user(int code, const char *enhanced, const char *text)
{
	static const char *const phrases[] = {
		"user unknown",
		"unknown user",
		"no such user",
		"does not exist",
		"no such mailbox",
		"mailbox not found",
		"unknown recipient",
		"recipient unknown",
		"invalid recipient",
		"no mailbox here",
		"user not found",
		"address rejected: user",
		NULL,
	};

	if (code < 500 || code > 599)
		return false;
	if (enhanced && strcmp(enhanced, "5.1.1") == 0)
		return true;
	if (enhanced && enhanced[0] && strcmp(enhanced, "5.0.0") != 0 &&
	    strcmp(enhanced, "5.1.0") != 0)
		return false;
	for (int i = 0; text && phrases[i]; i++)
		if (supp_has_phrase(text, phrases[i]))
			return true;
	return false;
}

void
suppress_sanitize(const char *text, char out[SUPPRESS_REPLY_MAX + 1])
{
	size_t i = 0;

	for (; text && text[i] && i < SUPPRESS_REPLY_MAX; i++) {
		unsigned char c = (unsigned char)text[i];

		out[i] = c >= ' ' && c < 0x7f ? (char)c : '?';
	}
	out[i] = '\0';
}

/* ---- entries ---------------------------------------------------------- */

/* Pack an entry into a new buffer (caller frees). */
static void *
supp_pack(const Shoal__SuppressEntry *e, size_t *len)
{
	void *p;

	*len = shoal__suppress_entry__get_packed_size(e);
	p = xmalloc(*len ? *len : 1);
	shoal__suppress_entry__pack(e, p);
	return p;
}

/* An entry read from the store or a peer: unpacked and its fields in
 * bounds, or NULL. */
Shoal__SuppressEntry *
suppress_entry_unpack(const void *p, size_t len)
{
	Shoal__SuppressEntry *e = shoal__suppress_entry__unpack(NULL, len, p);

	if (e == NULL)
		return NULL;
	if (strnlen(e->address, SUPPRESS_ADDR_MAX + 1) > SUPPRESS_ADDR_MAX ||
	    strnlen(e->reply, SUPPRESS_REPLY_MAX + 1) > SUPPRESS_REPLY_MAX ||
	    strnlen(e->enhanced, SUPP_ENH_MAX + 1) > SUPP_ENH_MAX ||
	    strnlen(e->source, 16) > 15 ||
	    strnlen(e->qid, QID_MAX) >= QID_MAX) {
		shoal__suppress_entry__free_unpacked(e, NULL);
		return NULL;
	}
	return e;
}

bool
suppress_entry_expired(const struct suppress *sp, const Shoal__SuppressEntry *e)
{
	uint32_t ttl = sp->d.cfg->suppression.expire;

	return ttl != 0 && e->created + ttl < (uint64_t)time(NULL);
}

/* Write the entry for a normalised address with tag '~' (ours) or '+'
 * (pending for another owner). */
int
suppress_entry_put(const struct suppress *sp, struct store_txn *t, char tag,
		   const char *norm, const char *reply, const char *enhanced,
		   const char *source, const char *qid, uint64_t created)
{
	Shoal__SuppressEntry e = SHOAL__SUPPRESS_ENTRY__INIT;
	char key[SUPPRESS_KEY_MAX], text[SUPPRESS_REPLY_MAX + 1];
	char enh[SUPP_ENH_MAX + 1];
	uint32_t shards = sp->d.cfg->cluster.shards;
	size_t len;
	void *p;
	int rc;

	suppress_key(norm, shards, tag, key);
	suppress_sanitize(reply, text);
	snprintf(enh, sizeof(enh), "%s", enhanced ? enhanced : "");
	e.address = (char *)norm;
	e.reply = text;
	e.enhanced = enh;
	e.source = (char *)source;
	e.created = created;
	e.qid = (char *)(qid ? qid : "");
	p = supp_pack(&e, &len);
	rc = store_supp_put(t, key,
			    tag == SUPPRESS_KEY_TAG ?
				    suppress_shard(norm, shards) :
				    STORE_SHARD_NONE,
			    p, len);
	free(p);
	if (rc == 0)
		supp_filter_note(sp->filter, key); /* only "~" keys count */
	return rc;
}

int
suppress_note_bounce(const struct suppress *sp, struct store_txn *t,
		     const char *addr, const char *reply, const char *enhanced,
		     const char *qid, uint64_t now, struct suppress_note *note)
{
	char norm[SUPPRESS_ADDR_MAX + 1];
	uint32_t shard;
	bool mine;
	int rc;

	memset(note, 0, sizeof(*note));
	if (sp == NULL || !sp->d.cfg->suppression.enabled ||
	    suppress_addr_norm(addr, strlen(addr), norm) != 0)
		return 0;
	shard = suppress_shard(norm, sp->d.cfg->cluster.shards);
	/* a frozen shard is being moved: an entry written now might miss the
	 * last batch, so it waits as a pending add for the new owner */
	mine = owner_is_primary(sp->d.owner, shard) &&
	       !owner_is_frozen(sp->d.owner, shard);
	rc = suppress_entry_put(sp, t,
				mine ? SUPPRESS_KEY_TAG : SUPPRESS_PENDING_TAG,
				norm, reply, enhanced, "bounce", qid, now);
	if (rc != 0)
		return rc;
	note->is_noted = true;
	note->is_mine = mine;
	note->shard = shard;
	memcpy(note->addr, norm, sizeof(norm));
	snprintf(note->qid, sizeof(note->qid), "%s", qid);
	return 0;
}

void
suppress_noted(struct suppress *sp, const struct suppress_note *note)
{
	if (sp == NULL || !note->is_noted)
		return;
	log_info("qid=%s rcpt=<%s> event=suppress_%s shard=%u", note->qid,
		 note->addr, note->is_mine ? "added" : "pending", note->shard);
	if (!note->is_mine)
		event_active(sp->timer, 0, 0);
}

/* ---- replication and moves --------------------------------------------- */

bool
suppress_record_ok(const Shoal__ReplRecord *rec, uint32_t shards)
{
	uint32_t shard;

	return suppress_key_parse(rec->qid, &shard) && shard == rec->shard &&
	       shard < shards && !rec->has_body &&
	       (rec->deleted || rec->meta.len > 0);
}

int
suppress_record_apply(struct suppress *sp, struct store_txn *t,
		      const Shoal__ReplRecord *rec)
{
	Shoal__SuppressEntry *e;
	char key[SUPPRESS_KEY_MAX];
	int rc;

	if (rec->deleted) {
		rc = store_supp_del(t, rec->qid);
		return rc == -ENOENT ? 0 : rc;
	}
	/* the entry must be the one its key names */
	e = suppress_entry_unpack(rec->meta.data, rec->meta.len);
	if (e != NULL) {
		char norm[SUPPRESS_ADDR_MAX + 1];
		uint32_t shard;

		if (suppress_addr_norm(e->address, strlen(e->address), norm) !=
			    0 ||
		    !suppress_key_parse(rec->qid, &shard)) {
			key[0] = '\0';
		} else {
			/* shards: the one in the key, derived like ours */
			suppress_key(norm, 1, SUPPRESS_KEY_TAG, key);
			memcpy(key + 1, rec->qid + 1, 8);
		}
		shoal__suppress_entry__free_unpacked(e, NULL);
		if (strcmp(key, rec->qid) == 0) {
			rc = store_supp_put(t, rec->qid, rec->shard,
					    rec->meta.data, rec->meta.len);
			if (rc == 0 && sp != NULL)
				supp_filter_note(sp->filter, rec->qid);
			return rc;
		}
	}
	return SUPPRESS_RECORD_SKIPPED; /* logged after the commit */
}

struct supp_keys {
	char (*keys)[SUPPRESS_KEY_MAX];
	size_t n, cap;
	const struct owner *owner; /* touch: only primary shards */
};

static int
supp_collect(const char *key, uint32_t shard, const void *entry, size_t len,
	     void *arg)
{
	struct supp_keys *k = arg;

	(void)entry;
	(void)len;
	if (k->owner && !owner_is_primary(k->owner, shard))
		return 0;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 64;
		k->keys = xrealloc(k->keys, k->cap * sizeof(*k->keys));
	}
	snprintf(k->keys[k->n++], SUPPRESS_KEY_MAX, "%s", key);
	return 0;
}

int
suppress_purge_shard(struct store_txn *t, uint32_t shard, uint64_t *n)
{
	struct supp_keys k = { 0 };
	char prefix[10];
	int rc;

	suppress_key_prefix(shard, prefix);
	rc = store_supp_foreach(t, prefix, "", supp_collect, &k);
	for (size_t i = 0; rc == 0 && i < k.n; i++)
		rc = store_supp_del(t, k.keys[i]);
	*n += k.n;
	free(k.keys);
	return rc;
}

int
suppress_touch(const struct suppress *sp, struct store_txn *t,
	       uint64_t *n_out)
{
	struct supp_keys k = { .owner = sp->d.owner };
	char prefix[2] = { SUPPRESS_KEY_TAG, '\0' };
	uint32_t shard;
	int rc = store_supp_foreach(t, prefix, "", supp_collect, &k);

	for (size_t i = 0; rc == 0 && i < k.n; i++)
		if (suppress_key_parse(k.keys[i], &shard))
			rc = store_journal_touch(t, k.keys[i], shard);
	*n_out += k.n;
	free(k.keys);
	return rc;
}

/* ---- the routers' RCPT check ------------------------------------------- */

static void
supp_reply_init(const struct suppress *sp, const struct rpc_ticket *tk,
		const Shoal__ShardMap *map, Shoal__NodeReply *r)
{
	r->request_id = tk->request_id;
	r->node_id = (char *)sp->d.node_id;
	r->epoch = map->epoch;
	r->author = map->author;
	r->status = SHOAL__STATUS__STATUS_OK;
	r->sent_ms = clock_mono_ms(); /* echoed: the node's lease */
	r->incarnation = sp->d.incarnation; /* a restart seen at once */
}

/* Stamp, pack and send a reply to a router, with tail as its second
 * frame when given (sent or closed). */
static void
supp_reply(struct suppress *sp, const struct rpc_ticket *tk,
	   Shoal__NodeReply *r, zmq_msg_t *tail)
{
	unsigned char small[1024], *p = small;
	size_t len;

	suppress_stamp(sp, r);
	len = shoal__node_reply__get_packed_size(r);
	if (len > sizeof(small))
		p = xmalloc(len);
	shoal__node_reply__pack(r, p);
	if (tail != NULL)
		rpc_reply_tail(sp->d.rpc, tk, p, len, tail);
	else
		rpc_reply(sp->d.rpc, tk, p, len);
	if (p != small)
		free(p);
}

void
suppress_check(struct suppress *sp, const struct rpc_ticket *tk,
	       const Shoal__SuppressCheck *c)
{
	const Shoal__ShardMap *map = owner_map(sp->d.owner);
	uint32_t shards = sp->d.cfg->cluster.shards;
	Shoal__NodeReply r = SHOAL__NODE_REPLY__INIT;
	Shoal__SuppressEntry *e = NULL;
	char norm[SUPPRESS_ADDR_MAX + 1], key[SUPPRESS_KEY_MAX];
	struct store_txn *t = NULL;
	const void *v;
	size_t vlen;
	uint32_t shard;

	supp_reply_init(sp, tk, map, &r);
	if (suppress_addr_norm(c->address,
			       strnlen(c->address, SUPPRESS_ADDR_MAX + 1),
			       norm) != 0) {
		r.status = SHOAL__STATUS__STATUS_BAD_REQUEST;
		r.message = "bad address";
		goto reply;
	}
	shard = suppress_shard(norm, shards);
	if (!owner_is_primary(sp->d.owner, shard)) {
		r.status = SHOAL__STATUS__STATUS_NOT_OWNER;
		r.map = (Shoal__ShardMap *)map;
		goto reply;
	}
	suppress_key(norm, shards, SUPPRESS_KEY_TAG, key);
	if (store_txn_begin(sp->d.store, true, &t) != 0) {
		r.status = SHOAL__STATUS__STATUS_INTERNAL;
		goto reply;
	}
	if (store_supp_get(t, key, &v, &vlen) == 0 &&
	    (e = suppress_entry_unpack(v, vlen)) != NULL &&
	    !suppress_entry_expired(sp, e)) {
		r.suppressed = true;
		r.suppressed_reply = e->reply;
		r.suppressed_enhanced = e->enhanced;
		sp->refused_checks++;
	}
reply:
	supp_reply(sp, tk, &r, NULL);
	if (e)
		shoal__suppress_entry__free_unpacked(e, NULL);
	store_txn_abort(t);
}

void
suppress_stamp(const struct suppress *sp, Shoal__NodeReply *r)
{
	if (sp != NULL)
		supp_filter_stamp(sp->filter, r);
}

void
suppress_filter_request(struct suppress *sp, const struct rpc_ticket *tk,
			const Shoal__SuppFilterRequest *q)
{
	const Shoal__ShardMap *map = owner_map(sp->d.owner);
	Shoal__NodeReply r = SHOAL__NODE_REPLY__INIT;
	Shoal__SuppFilter sf = SHOAL__SUPP_FILTER__INIT;

	zmq_msg_t frame;

	supp_reply_init(sp, tk, map, &r);
	if (!supp_filter_answer(sp->filter, q, &sf, &frame)) {
		r.message = "filter not ready"; /* the router asks again */
		supp_reply(sp, tk, &r, NULL);
		return;
	}
	r.supp_filter = &sf;
	supp_reply(sp, tk, &r, sf.bits_in_frame ? &frame : NULL);
	free(sf.positions);
}

struct suppress *
suppress_new(const struct suppress_deps *deps)
{
	struct suppress *sp = xcalloc(1, sizeof(*sp));
	struct timeval tv = { SUPP_TICK_MS / 1000,
			      (SUPP_TICK_MS % 1000) * 1000 };

	sp->d = *deps;
	sp->filter = supp_filter_new(sp->d.base, sp->d.store);
	sp->timer = event_new(sp->d.base, -1, EV_PERSIST,
			      suppress_pending_tick, sp);
	event_add(sp->timer, &tv);
	return sp;
}

void
suppress_free(struct suppress *sp)
{
	if (sp == NULL)
		return;
	suppress_pending_stop(sp);
	suppress_admin_stop(sp);
	if (sp->timer)
		event_free(sp->timer);
	supp_filter_free(sp->filter);
	free(sp);
}
