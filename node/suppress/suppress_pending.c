/* Adds for addresses of shards another node owns (node/suppress/suppress.h):
 * kept durably as pending records in our store, sent each round to the
 * shard's current primary as a SuppressRequest over a DEALER to its
 * endpoint, and dropped once it answers OK (after the change is durable
 * there). A shard that became ours meanwhile gets the entry here.
 *
 * Handles untrusted input: replies are unpacked and matched by request
 * id; pending records are checked like any entry. */
#include "node/suppress/suppress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/suppress_key.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"
#include "node/cluster/owner.h"
#include "node/rpc/links.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/suppress/suppress_int.h"

static void supp_on_link_msg(struct zsock *zs, zmq_msg_t *frames,
			     size_t nframes, void *arg);

static struct zsock *
supp_link_for(struct suppress *sp, const char *id)
{
	if (sp->links == NULL)
		sp->links = links_new(sp->d.base, sp->d.zctx, 1u << 20,
				      supp_on_link_msg, sp);
	return links_get(sp->links, owner_map(sp->d.owner), id);
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
	e = suppress_entry_unpack(entry, len);
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
	Shoal__SuppressEntry *e; /* to store here, or NULL */
};

static int
supp_settle_apply(struct store_txn *t, void *arg)
{
	struct supp_settle *s = arg;
	int rc = 0;

	if (s->e)
		rc = suppress_entry_put(
			s->sp, t, SUPPRESS_KEY_TAG, s->e->address, s->e->reply,
			s->e->enhanced, s->e->source, s->e->qid, s->e->created);
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
		log_warn("key=%s event=suppress_pending_not_settled "
			 "error=\"%s\"",
			 s->key, shoal_strerror(result));
	if (s->e)
		shoal__suppress_entry__free_unpacked(s->e, NULL);
	/* a full round settled: the next one now, not at the next tick */
	if (--s->sp->n_settling == 0 && s->sp->is_round_full) {
		s->sp->is_round_full = false;
		event_active(s->sp->timer, 0, 0);
	}
	free(s);
}

static void
supp_settle(struct suppress *sp, const char *key, Shoal__SuppressEntry *e)
{
	struct supp_settle *s = xcalloc(1, sizeof(*s));

	s->sp = sp;
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->e = e;
	if (e != NULL && e->created == 0) /* now, not in the apply */
		e->created = (uint64_t)time(NULL);
	sp->n_settling++;
	commit_add(sp->d.commit, supp_settle_apply, supp_settle_done, s);
}

static void
supp_send_add(struct suppress *sp, const char *key, Shoal__SuppressEntry *e)
{
	Shoal__AdminRequest rq = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__SuppressRequest sr = SHOAL__SUPPRESS_REQUEST__INIT;
	uint32_t shard = suppress_shard(e->address, sp->d.cfg->cluster.shards);
	const char *owner = shardmap_primary(owner_map(sp->d.owner), shard);
	struct zsock *zs;
	unsigned char *p;
	size_t len;

	if (owner == NULL)
		goto keep;
	if (strcmp(owner, sp->d.node_id) == 0) {
		if (owner_is_frozen(sp->d.owner, shard))
			goto keep;	/* moving: for the new owner */
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

void
suppress_pending_tick(evutil_socket_t fd, short what, void *arg)
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
	if (store_txn_begin(sp->d.store, true, &t) != 0)
		return;
	store_supp_foreach(t, prefix, "", supp_pend_one, &pd);
	store_txn_abort(t);
	sp->is_round_full = pd.n == SUPPRESS_PENDING_BATCH;
	for (size_t i = 0; i < pd.n; i++)
		supp_send_add(sp, keys[i], entries[i]);
}

static void
supp_on_link_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes, void *arg)
{
	struct suppress *sp = arg;
	Shoal__AdminReply *r = links_admin_reply(frames, nframes);

	(void)zs;
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

void
suppress_pending_stop(struct suppress *sp)
{
	links_free(sp->links);
	sp->links = NULL;
}
