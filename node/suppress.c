/* The suppression list on a node: see node/suppress.h and
 * docs/suppression.md. Entries live in the store (node/store.h supp) and
 * travel through the replication journal and shard moves as records with
 * `suppression` set; this file owns their checks, the admin requests, the
 * RCPT check and the pending adds sent to other nodes.
 *
 * Handles untrusted input: every address, reason and key is bounded and
 * validated before use; an entry from a peer must hash to its key. */
#include "node/suppress.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/suppress_key.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/admin.h"
#include "node/commit.h"
#include "node/node.h"
#include "node/owner.h"
#include "node/repl.h"
#include "node/store.h"

#define SUPP_ID_MAX 255          /* ZeroMQ routing ids */
#define SUPP_TICK_MS 1000        /* pending adds are (re)sent this often */
#define SUPP_ENH_MAX 15
#define SUPP_LIST_DEFAULT 100
#define SUPP_DOMAIN_MAX 255

/* A DEALER to another node, for pending adds. */
struct supp_link {
	char *id;
	struct zsock *zs;
};

struct suppress {
	struct node *n;
	struct event *timer;
	struct supp_link *links;
	size_t n_links;
	uint64_t next_id;
	/* the pending adds sent this round: request id -> key */
	struct {
		uint64_t id;
		char key[SUPPRESS_KEY_MAX];
	} sent[SUPPRESS_PENDING_BATCH];
	size_t n_sent;
	uint64_t added, refused_checks;
};

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
		"user unknown", "unknown user", "no such user",
		"does not exist", "no such mailbox", "mailbox not found",
		"unknown recipient", "recipient unknown", "invalid recipient",
		"no mailbox here", "user not found", "address rejected: user",
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
static Shoal__SuppressEntry *
supp_unpack(const void *p, size_t len)
{
	Shoal__SuppressEntry *e = shoal__suppress_entry__unpack(NULL, len, p);

	if (e == NULL)
		return NULL;
	if (strnlen(e->address, SUPPRESS_ADDR_MAX + 1) > SUPPRESS_ADDR_MAX ||
	    strnlen(e->reply, SUPPRESS_REPLY_MAX + 1) > SUPPRESS_REPLY_MAX ||
	    strnlen(e->enhanced, SUPP_ENH_MAX + 1) > SUPP_ENH_MAX ||
	    strnlen(e->source, 16) > 15 || strnlen(e->qid, QID_MAX) >= QID_MAX) {
		shoal__suppress_entry__free_unpacked(e, NULL);
		return NULL;
	}
	return e;
}

static bool
supp_expired(const struct suppress *sp, const Shoal__SuppressEntry *e)
{
	uint32_t ttl = sp->n->cfg->suppression.expire;

	return ttl != 0 && e->created + ttl < (uint64_t)time(NULL);
}

/* Write the entry for a normalised address with tag '~' (ours) or '+'
 * (pending for another owner). */
static int
supp_put(struct suppress *sp, struct store_txn *t, char tag, const char *norm,
	 const char *reply, const char *enhanced, const char *source,
	 const char *qid, uint64_t created)
{
	Shoal__SuppressEntry e = SHOAL__SUPPRESS_ENTRY__INIT;
	char key[SUPPRESS_KEY_MAX], text[SUPPRESS_REPLY_MAX + 1];
	char enh[SUPP_ENH_MAX + 1];
	uint32_t shards = sp->n->cfg->cluster.shards;
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
	e.created = created ? created : (uint64_t)time(NULL);
	e.qid = (char *)(qid ? qid : "");
	p = supp_pack(&e, &len);
	rc = store_supp_put(t, key, tag == SUPPRESS_KEY_TAG ?
			    suppress_shard(norm, shards) : STORE_SHARD_NONE,
			    p, len);
	free(p);
	return rc;
}

int
suppress_note_bounce(struct suppress *sp, struct store_txn *t,
		     const char *addr, const char *reply, const char *enhanced,
		     const char *qid)
{
	char norm[SUPPRESS_ADDR_MAX + 1];
	uint32_t shard;
	bool mine;
	int rc;

	if (sp == NULL || !sp->n->cfg->suppression.enabled ||
	    suppress_addr_norm(addr, strlen(addr), norm) != 0)
		return 0;
	shard = suppress_shard(norm, sp->n->cfg->cluster.shards);
	mine = owner_is_primary(sp->n, shard);
	rc = supp_put(sp, t, mine ? SUPPRESS_KEY_TAG : SUPPRESS_PENDING_TAG,
		      norm, reply, enhanced, "bounce", qid, 0);
	if (rc == 0)
		log_info("qid=%s rcpt=<%s> event=suppress_%s shard=%u", qid,
			 norm, mine ? "added" : "pending", shard);
	if (rc == 0 && !mine)
		event_active(sp->timer, 0, 0);
	return rc;
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
suppress_record_apply(struct store_txn *t, const Shoal__ReplRecord *rec)
{
	Shoal__SuppressEntry *e;
	char key[SUPPRESS_KEY_MAX];
	int rc;

	if (rec->deleted) {
		rc = store_supp_del(t, rec->qid);
		return rc == -ENOENT ? 0 : rc;
	}
	/* the entry must be the one its key names */
	e = supp_unpack(rec->meta.data, rec->meta.len);
	if (e != NULL) {
		char norm[SUPPRESS_ADDR_MAX + 1];
		uint32_t shard;

		if (suppress_addr_norm(e->address, strlen(e->address),
				       norm) != 0 ||
		    !suppress_key_parse(rec->qid, &shard)) {
			key[0] = '\0';
		} else {
			/* shards: the one in the key, derived like ours */
			suppress_key(norm, 1, SUPPRESS_KEY_TAG, key);
			memcpy(key + 1, rec->qid + 1, 8);
		}
		shoal__suppress_entry__free_unpacked(e, NULL);
		if (strcmp(key, rec->qid) == 0)
			return store_supp_put(t, rec->qid, rec->shard,
					      rec->meta.data, rec->meta.len);
	}
	log_warn("key=%.40s event=suppress_record_skipped reason=\"bad entry\"",
		 rec->qid);
	return 0;
}

struct supp_keys {
	char (*keys)[SUPPRESS_KEY_MAX];
	size_t n, cap;
	struct node *node;           /* touch: only primary shards */
};

static int
supp_collect(const char *key, uint32_t shard, const void *entry, size_t len,
	     void *arg)
{
	struct supp_keys *k = arg;

	(void)entry;
	(void)len;
	if (k->node && !owner_is_primary(k->node, shard))
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
suppress_touch_primary(struct node *n, struct store_txn *t, uint64_t *n_out)
{
	struct supp_keys k = { .node = n };
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

void
suppress_check(struct suppress *sp, const void *id, size_t id_len,
	       uint64_t request_id, const Shoal__SuppressCheck *c)
{
	struct node *n = sp->n;
	Shoal__NodeReply r = SHOAL__NODE_REPLY__INIT;
	Shoal__SuppressEntry *e = NULL;
	char norm[SUPPRESS_ADDR_MAX + 1], key[SUPPRESS_KEY_MAX];
	struct store_txn *t = NULL;
	unsigned char small[1024], *p = small;
	const void *v;
	size_t len, vlen;
	uint32_t shard;

	r.request_id = request_id;
	r.node_id = n->me->id;
	r.epoch = n->map->epoch;
	r.author = n->map->author;
	r.status = SHOAL__STATUS__STATUS_OK;
	if (suppress_addr_norm(c->address, strnlen(c->address,
						   SUPPRESS_ADDR_MAX + 1),
			       norm) != 0) {
		r.status = SHOAL__STATUS__STATUS_BAD_REQUEST;
		r.message = "bad address";
		goto reply;
	}
	shard = suppress_shard(norm, n->cfg->cluster.shards);
	if (!owner_is_primary(n, shard)) {
		r.status = SHOAL__STATUS__STATUS_NOT_OWNER;
		r.map = n->map;
		goto reply;
	}
	suppress_key(norm, n->cfg->cluster.shards, SUPPRESS_KEY_TAG, key);
	if (store_txn_begin(n->store, true, &t) != 0) {
		r.status = SHOAL__STATUS__STATUS_INTERNAL;
		goto reply;
	}
	if (store_supp_get(t, key, &v, &vlen) == 0 &&
	    (e = supp_unpack(v, vlen)) != NULL && !supp_expired(sp, e)) {
		r.suppressed = true;
		r.suppressed_reply = e->reply;
		r.suppressed_enhanced = e->enhanced;
		sp->refused_checks++;
	}
reply:
	len = shoal__node_reply__get_packed_size(&r);
	if (len > sizeof(small))
		p = xmalloc(len);
	shoal__node_reply__pack(&r, p);
	node_reply(n, id, id_len, p, len);
	if (p != small)
		free(p);
	if (e)
		shoal__suppress_entry__free_unpacked(e, NULL);
	store_txn_abort(t);
}

/* ---- shoalctl's requests ------------------------------------------------ */

struct supp_req {
	struct suppress *sp;
	unsigned char reply_to[SUPP_ID_MAX];
	size_t reply_to_len;
	uint64_t request_id;
	Shoal__SuppressOp op;
	char norm[SUPPRESS_ADDR_MAX + 1];
	char reply[SUPPRESS_REPLY_MAX + 1];
	char enhanced[SUPP_ENH_MAX + 1];
	char source[16];
	char qid[QID_MAX];
	uint64_t created;
	bool found;
	int result;
	uint64_t seq;                /* journal seq of the change */
};

static void
supp_answer(struct suppress *sp, const void *to, size_t to_len,
	    uint64_t request_id, Shoal__Status status, const char *msg,
	    Shoal__SuppressReply *body)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;
	void *out = NULL;
	size_t out_len = 0;

	r.request_id = request_id;
	r.status = status;
	r.message = (char *)(msg ? msg : "");
	r.node_id = sp->n->me->id;
	if (body) {
		r.body_case = SHOAL__ADMIN_REPLY__BODY_SUPPRESS;
		r.suppress = body;
	}
	admin_reply_pack(&r, &out, &out_len);
	node_reply(sp->n, to, to_len, out, out_len);
	free(out);
}

static int
supp_req_apply(struct store_txn *t, void *arg)
{
	struct supp_req *q = arg;
	char key[SUPPRESS_KEY_MAX];
	int rc;

	if (q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD) {
		rc = supp_put(q->sp, t, SUPPRESS_KEY_TAG, q->norm, q->reply,
			      q->enhanced, q->source, q->qid, q->created);
	} else {
		suppress_key(q->norm, q->sp->n->cfg->cluster.shards,
			     SUPPRESS_KEY_TAG, key);
		rc = store_supp_del(t, key);
		q->found = rc == 0;
		rc = rc == -ENOENT ? 0 : rc;
	}
	q->seq = store_txn_journal_seq(t);
	return rc;
}

static void
supp_req_answer(bool durable, void *arg)
{
	struct supp_req *q = arg;
	Shoal__SuppressReply body = SHOAL__SUPPRESS_REPLY__INIT;
	int result = q->result;

	/* not on the peer (require_peer): the change stays here and travels
	 * later; the requester is told it is not durable yet */
	if (result == 0 && !durable)
		result = SHOAL_E_NOT_DURABLE;

	body.found = q->found || q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD;
	log_info("rcpt=<%s> event=suppress_%s source=%s result=%s", q->norm,
		 q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD ? "add" : "remove",
		 q->source, result ? shoal_strerror(result) :
				     q->found ? "removed" : "ok");
	supp_answer(q->sp, q->reply_to, q->reply_to_len, q->request_id,
		    result == 0 ? SHOAL__STATUS__STATUS_OK :
		    result == SHOAL_E_STORAGE_FULL ?
				  SHOAL__STATUS__STATUS_STORAGE_FULL :
				  SHOAL__STATUS__STATUS_INTERNAL,
		    result ? shoal_strerror(result) : "", &body);
	free(q);
}

/* Committed here: answer once the peer has it too, as for a message. */
static void
supp_req_done(int result, void *arg)
{
	struct supp_req *q = arg;

	q->result = result;
	if (result == 0 && q->seq != 0)
		repl_wait(q->sp->n->repl, q->seq, supp_req_answer, q);
	else
		supp_req_answer(true, q);
}

struct supp_list {
	struct suppress *sp;
	const char *domain;
	size_t limit;
	Shoal__SuppressEntry **entries;
	size_t n;
	char last[SUPPRESS_KEY_MAX];
	bool more;
};

static int
supp_list_one(const char *key, uint32_t shard, const void *entry, size_t len,
	      void *arg)
{
	struct supp_list *l = arg;
	Shoal__SuppressEntry *e;
	const char *at;

	if (!owner_is_primary(l->sp->n, shard))
		return 0;
	if (l->n == l->limit) {
		l->more = true;
		return 1;
	}
	e = supp_unpack(entry, len);
	if (e == NULL)
		return 0;
	at = strrchr(e->address, '@');
	if (supp_expired(l->sp, e) ||
	    (l->domain[0] && (at == NULL || strcasecmp(at + 1, l->domain)))) {
		shoal__suppress_entry__free_unpacked(e, NULL);
		return 0;
	}
	l->entries[l->n++] = e;
	snprintf(l->last, sizeof(l->last), "%s", key);
	return 0;
}

static void
supp_list(struct suppress *sp, const void *to, size_t to_len,
	  uint64_t request_id, const Shoal__SuppressRequest *sr)
{
	Shoal__SuppressReply body = SHOAL__SUPPRESS_REPLY__INIT;
	struct supp_list l = { .sp = sp, .domain = sr->domain };
	char prefix[2] = { SUPPRESS_KEY_TAG, '\0' };
	struct store_txn *t;
	uint32_t shard;
	int rc;

	l.limit = sr->limit == 0 ? SUPP_LIST_DEFAULT :
		  sr->limit > SUPPRESS_LIST_MAX ? SUPPRESS_LIST_MAX :
						  sr->limit;
	if (sr->after[0] && !suppress_key_parse(sr->after, &shard)) {
		supp_answer(sp, to, to_len, request_id,
			    SHOAL__STATUS__STATUS_BAD_REQUEST, "bad after key",
			    NULL);
		return;
	}
	if (store_txn_begin(sp->n->store, true, &t) != 0) {
		supp_answer(sp, to, to_len, request_id,
			    SHOAL__STATUS__STATUS_INTERNAL, "store", NULL);
		return;
	}
	l.entries = xcalloc(l.limit, sizeof(*l.entries));
	rc = store_supp_foreach(t, prefix, sr->after, supp_list_one, &l);
	store_txn_abort(t);
	body.n_entries = l.n;
	body.entries = l.entries;
	body.more = l.more;
	body.last = l.last;
	supp_answer(sp, to, to_len, request_id,
		    rc == 0 || rc == 1 ? SHOAL__STATUS__STATUS_OK :
					 SHOAL__STATUS__STATUS_INTERNAL,
		    rc == 0 || rc == 1 ? "" : "store", &body);
	for (size_t i = 0; i < l.n; i++)
		shoal__suppress_entry__free_unpacked(l.entries[i], NULL);
	free(l.entries);
}

static void
supp_show(struct suppress *sp, const void *to, size_t to_len,
	  uint64_t request_id, const char *norm)
{
	Shoal__SuppressReply body = SHOAL__SUPPRESS_REPLY__INIT;
	Shoal__SuppressEntry *e = NULL;
	char key[SUPPRESS_KEY_MAX];
	struct store_txn *t;
	const void *v;
	size_t len;

	suppress_key(norm, sp->n->cfg->cluster.shards, SUPPRESS_KEY_TAG, key);
	if (store_txn_begin(sp->n->store, true, &t) != 0) {
		supp_answer(sp, to, to_len, request_id,
			    SHOAL__STATUS__STATUS_INTERNAL, "store", NULL);
		return;
	}
	if (store_supp_get(t, key, &v, &len) == 0 &&
	    (e = supp_unpack(v, len)) != NULL) {
		body.found = true;
		body.n_entries = 1;
		body.entries = &e;
	}
	supp_answer(sp, to, to_len, request_id, SHOAL__STATUS__STATUS_OK, "",
		    &body);
	if (e)
		shoal__suppress_entry__free_unpacked(e, NULL);
	store_txn_abort(t);
}

void
suppress_admin(struct suppress *sp, const void *reply_to, size_t reply_to_len,
	       const Shoal__AdminRequest *rq)
{
	const Shoal__SuppressRequest *sr = rq->suppress;
	char norm[SUPPRESS_ADDR_MAX + 1];
	struct supp_req *q;
	const char *why = NULL;

	if (reply_to_len > SUPP_ID_MAX)
		return;
	if ((unsigned)sr->op > SHOAL__SUPPRESS_OP__SUPPRESS_SHOW)
		why = "unknown suppress operation";
	else if (strnlen(sr->domain, SUPP_DOMAIN_MAX + 1) > SUPP_DOMAIN_MAX ||
		 strnlen(sr->after, SUPPRESS_KEY_MAX + 1) > SUPPRESS_KEY_MAX)
		why = "domain or paging key too long";
	if (why == NULL && sr->op == SHOAL__SUPPRESS_OP__SUPPRESS_LIST) {
		supp_list(sp, reply_to, reply_to_len, rq->request_id, sr);
		return;
	}
	if (why == NULL &&
	    suppress_addr_norm(sr->address,
			       strnlen(sr->address, SUPPRESS_ADDR_MAX + 1),
			       norm) != 0)
		why = "bad address (needs local@domain, at most 320 octets)";
	else if (why == NULL &&
		 (strnlen(sr->reply, 4097) > 4096 ||
		  strnlen(sr->enhanced, SUPP_ENH_MAX + 1) > SUPP_ENH_MAX ||
		  strnlen(sr->qid, QID_MAX) >= QID_MAX ||
		  strnlen(sr->source, 16) > 15))
		why = "reason, code, qid or source too long";
	if (why != NULL) {
		log_warn("admin event=bad_request kind=suppress reason=\"%s\"",
			 why);
		supp_answer(sp, reply_to, reply_to_len, rq->request_id,
			    SHOAL__STATUS__STATUS_BAD_REQUEST, why, NULL);
		return;
	}
	if (!owner_is_primary(sp->n, suppress_shard(norm,
						    sp->n->cfg->cluster.shards))) {
		supp_answer(sp, reply_to, reply_to_len, rq->request_id,
			    SHOAL__STATUS__STATUS_NOT_OWNER,
			    "not the primary of the address's shard", NULL);
		return;
	}
	if (sr->op == SHOAL__SUPPRESS_OP__SUPPRESS_SHOW) {
		supp_show(sp, reply_to, reply_to_len, rq->request_id, norm);
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->sp = sp;
	memcpy(q->reply_to, reply_to, reply_to_len);
	q->reply_to_len = reply_to_len;
	q->request_id = rq->request_id;
	q->op = sr->op;
	snprintf(q->norm, sizeof(q->norm), "%s", norm);
	suppress_sanitize(sr->reply[0] ? sr->reply :
			  "550 5.1.1 suppressed by the postmaster", q->reply);
	snprintf(q->enhanced, sizeof(q->enhanced), "%s",
		 sr->enhanced[0] ? sr->enhanced : "5.1.1");
	snprintf(q->source, sizeof(q->source), "%s",
		 strcmp(sr->source, "bounce") == 0 ? "bounce" : "admin");
	snprintf(q->qid, sizeof(q->qid), "%s", sr->qid);
	q->created = sr->created;
	commit_add(sp->n->commit, supp_req_apply, supp_req_done, q);
}

/* ---- pending adds ------------------------------------------------------- */

static void supp_on_link_msg(struct zsock *zs, zmq_msg_t *frames,
			     size_t nframes, void *arg);

static struct zsock *
supp_link_for(struct suppress *sp, const char *id)
{
	const Shoal__NodeInfo *ni;
	struct supp_link *l;

	for (size_t i = 0; i < sp->n_links; i++)
		if (strcmp(sp->links[i].id, id) == 0)
			return sp->links[i].zs;
	ni = shardmap_node(sp->n->map, id);
	if (ni == NULL)
		return NULL;
	sp->links = xrealloc(sp->links, (sp->n_links + 1) * sizeof(*l));
	l = &sp->links[sp->n_links];
	l->zs = zsock_new(sp->n->base, sp->n->zctx, ZMQ_DEALER, 1u << 20,
			  supp_on_link_msg, NULL, sp);
	if (l->zs == NULL)
		return NULL;
	if (zsock_connect(l->zs, ni->endpoint) != 0) {
		zsock_free(l->zs);
		return NULL;
	}
	l->id = xstrdup(id);
	sp->n_links++;
	return l->zs;
}

struct supp_pend {
	struct suppress *sp;
	struct store_txn *t;
	char (*keys)[SUPPRESS_KEY_MAX];
	Shoal__SuppressEntry **entries;
	size_t n;
};

static int
supp_pend_one(const char *key, uint32_t shard, const void *entry, size_t len,
	      void *arg)
{
	struct supp_pend *pd = arg;
	Shoal__SuppressEntry *e;

	(void)shard;
	if (pd->n == SUPPRESS_PENDING_BATCH)
		return 1;
	e = supp_unpack(entry, len);
	if (e == NULL)
		return 0;
	snprintf(pd->keys[pd->n], SUPPRESS_KEY_MAX, "%s", key);
	pd->entries[pd->n++] = e;
	return 0;
}

/* A pending add whose shard became ours (a failover): made an entry here,
 * or acknowledged by its owner: dropped. */
struct supp_settle {
	struct suppress *sp;
	char key[SUPPRESS_KEY_MAX];
	Shoal__SuppressEntry *e;     /* to store here, or NULL */
};

static int
supp_settle_apply(struct store_txn *t, void *arg)
{
	struct supp_settle *s = arg;
	int rc = 0;

	if (s->e)
		rc = supp_put(s->sp, t, SUPPRESS_KEY_TAG, s->e->address,
			      s->e->reply, s->e->enhanced, s->e->source,
			      s->e->qid, s->e->created);
	if (rc == 0) {
		rc = store_supp_del(t, s->key);
		rc = rc == -ENOENT ? 0 : rc;
	}
	return rc;
}

static void
supp_settle_done(int result, void *arg)
{
	struct supp_settle *s = arg;

	if (result != 0)
		log_warn("key=%s event=suppress_pending_not_settled error=\"%s\"",
			 s->key, shoal_strerror(result));
	if (s->e)
		shoal__suppress_entry__free_unpacked(s->e, NULL);
	free(s);
}

static void
supp_settle(struct suppress *sp, const char *key, Shoal__SuppressEntry *e)
{
	struct supp_settle *s = xcalloc(1, sizeof(*s));

	s->sp = sp;
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->e = e;
	commit_add(sp->n->commit, supp_settle_apply, supp_settle_done, s);
}

static void
supp_send_add(struct suppress *sp, const char *key, Shoal__SuppressEntry *e)
{
	Shoal__AdminRequest rq = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__SuppressRequest sr = SHOAL__SUPPRESS_REQUEST__INIT;
	uint32_t shard = suppress_shard(e->address, sp->n->cfg->cluster.shards);
	const char *owner = shardmap_primary(sp->n->map, shard);
	struct zsock *zs;
	unsigned char *p;
	size_t len;

	if (owner == NULL)
		goto keep;
	if (strcmp(owner, sp->n->me->id) == 0) {
		supp_settle(sp, key, e);
		return;
	}
	zs = supp_link_for(sp, owner);
	if (zs == NULL || sp->n_sent == SUPPRESS_PENDING_BATCH)
		goto keep;
	sr.op = SHOAL__SUPPRESS_OP__SUPPRESS_ADD;
	sr.address = e->address;
	sr.reply = e->reply;
	sr.enhanced = e->enhanced;
	sr.source = "bounce";
	sr.qid = e->qid;
	sr.created = e->created;
	rq.request_id = ++sp->next_id;
	rq.body_case = SHOAL__ADMIN_REQUEST__BODY_SUPPRESS;
	rq.suppress = &sr;
	len = shoal__admin_request__get_packed_size(&rq);
	p = xmalloc(len ? len : 1);
	shoal__admin_request__pack(&rq, p);
	{
		const void *bufs[2] = { WIRE_TAG_ADMIN, p };
		size_t lens[2] = { WIRE_TAG_LEN, len };

		if (zsock_send(zs, bufs, lens, 2, NULL) == 0) {
			sp->sent[sp->n_sent].id = rq.request_id;
			snprintf(sp->sent[sp->n_sent].key, SUPPRESS_KEY_MAX,
				 "%s", key);
			sp->n_sent++;
		}
	}
	free(p);
keep:
	shoal__suppress_entry__free_unpacked(e, NULL);
}

static void
supp_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct suppress *sp = arg;
	char keys[SUPPRESS_PENDING_BATCH][SUPPRESS_KEY_MAX];
	Shoal__SuppressEntry *entries[SUPPRESS_PENDING_BATCH];
	struct supp_pend pd = { .sp = sp, .keys = keys, .entries = entries };
	char prefix[2] = { SUPPRESS_PENDING_TAG, '\0' };
	struct store_txn *t;

	(void)fd;
	(void)what;
	/* what was sent last round and not acknowledged goes again */
	sp->n_sent = 0;
	if (store_txn_begin(sp->n->store, true, &t) != 0)
		return;
	store_supp_foreach(t, prefix, "", supp_pend_one, &pd);
	store_txn_abort(t);
	for (size_t i = 0; i < pd.n; i++)
		supp_send_add(sp, keys[i], entries[i]);
}

static void
supp_on_link_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes,
		 void *arg)
{
	struct suppress *sp = arg;
	Shoal__AdminReply *r;

	(void)zs;
	if (nframes != 1)
		return;
	r = shoal__admin_reply__unpack(NULL, zmq_msg_size(&frames[0]),
				       zmq_msg_data(&frames[0]));
	if (r == NULL)
		return;
	for (size_t i = 0; i < sp->n_sent; i++) {
		if (sp->sent[i].id != r->request_id)
			continue;
		if (r->status == SHOAL__STATUS__STATUS_OK) {
			log_info("key=%s event=suppress_add_acked node=%.64s",
				 sp->sent[i].key, r->node_id);
			supp_settle(sp, sp->sent[i].key, NULL);
		}
		sp->sent[i].id = 0;
		break;
	}
	shoal__admin_reply__free_unpacked(r, NULL);
}

struct suppress *
suppress_new(struct node *n)
{
	struct suppress *sp = xcalloc(1, sizeof(*sp));
	struct timeval tv = { SUPP_TICK_MS / 1000, (SUPP_TICK_MS % 1000) * 1000 };

	sp->n = n;
	sp->timer = event_new(n->base, -1, EV_PERSIST, supp_on_tick, sp);
	event_add(sp->timer, &tv);
	return sp;
}

void
suppress_free(struct suppress *sp)
{
	if (sp == NULL)
		return;
	for (size_t i = 0; i < sp->n_links; i++) {
		zsock_free(sp->links[i].zs);
		free(sp->links[i].id);
	}
	free(sp->links);
	if (sp->timer)
		event_free(sp->timer);
	free(sp);
}
