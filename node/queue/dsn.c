/* DSNs queued as messages of their own (node/queue/dsn.h): the qid drawn
 * before the commit, the record stored in it, the log line after it.
 * bounce.c writes the text; this file makes it a queued message. */
#include "node/queue/dsn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/store/store.h"

#define DSN_QID_TRIES 100000

void
dsn_draw(struct qid_gen *g, uint32_t shards, dsn_mine_fn mine, void *arg,
	 struct dsn_slot *slot)
{
	memset(slot, 0, sizeof(*slot));
	for (int i = 0; i < DSN_QID_TRIES; i++) {
		char qid[QID_LEN + 1];
		uint32_t shard;

		qid_next(g, qid);
		shard = shard_of(qid, shards);
		if (mine(arg, shard)) {
			memcpy(slot->qid, qid, sizeof(qid));
			slot->shard = shard;
			return;
		}
	}
}

/* The DSN's stored record: one recipient (the original sender), from the
 * null sender, due now. Caller frees the result. */
static void *
dsn_pack_meta(const struct config *cfg, const struct dsn_slot *slot,
	      const struct dsn_about *a, size_t body_len, size_t *len)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope denv = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient dr = SHOAL__RECIPIENT__INIT;
	Shoal__Recipient *drp = &dr;
	void *meta;

	dr.address = a->env->mail_from;
	dr.notify = SHOAL__NOTIFY__NOTIFY_NEVER;
	dr.next_try = a->now;
	denv.mail_from = "";
	denv.n_rcpts = 1;
	denv.rcpts = &drp;
	denv.smtputf8 = a->env->smtputf8;
	denv.body = a->env->body;
	denv.arrival_time = a->now;
	denv.client_addr = "127.0.0.1";
	denv.helo = cfg->delivery.helo_name;
	denv.size = body_len;
	sm.qid = (char *)slot->qid;
	sm.shard = slot->shard;
	sm.envelope = &denv;
	sm.due = a->now;
	*len = shoal__stored_message__get_packed_size(&sm);
	meta = xmalloc(*len ? *len : 1);
	shoal__stored_message__pack(&sm, meta);
	return meta;
}

int
dsn_store(struct store_txn *t, const struct config *cfg, dsn_mine_fn mine,
	  void *arg, struct dsn_slot *slot, const struct dsn_about *a)
{
	struct bounce_info bi = {
		.reporting_mta = cfg->delivery.helo_name,
		.qid = a->orig_qid,
		.sender = a->env->mail_from,
		.envid = a->env->envid,
		.ret = a->env->ret,
		.arrival = a->env->arrival_time,
		.now = a->now,
		.rcpts = a->brs,
		.n_rcpts = a->n,
		.orig = a->orig ? a->orig : "",
		.orig_len = a->orig_len,
	};
	struct buf body;
	void *meta;
	size_t meta_len;
	int rc;

	dsn_slot_clear(slot);
	snprintf(slot->orig_qid, sizeof(slot->orig_qid), "%s", a->orig_qid);
	if (slot->qid[0] == '\0' || !mine(arg, slot->shard)) {
		/* no shard is ours (all failed over meanwhile): a DSN stored
		 * here would be neither delivered nor replicated; failing
		 * leaves the result unsaved, and the owner's copy is tried
		 * and bounced there */
		slot->is_refused = true;
		return -EAGAIN;
	}
	buf_init(&body, cfg->router.max_message_size + (1u << 20));
	if (bounce_build(&bi, &body) != 0) {
		/* RET=FULL of a huge message: fall back to headers only */
		buf_reset(&body);
		bi.ret = 2;
		bounce_build(&bi, &body);
	}
	meta = dsn_pack_meta(cfg, slot, a, body.len, &meta_len);
	rc = store_msg_put(t, slot->qid, slot->shard, meta, meta_len,
			   body.data, body.len);
	if (rc == 0)
		rc = store_due_add(t, a->now, slot->qid);
	if (rc == 0) {
		slot->is_stored = true;
		slot->due = a->now;
		slot->n_rcpts = a->n;
		slot->action = a->brs[0].action;
		snprintf(slot->to, sizeof(slot->to), "%s", a->env->mail_from);
	}
	free(meta);
	buf_free(&body);
	return rc;
}

void
dsn_slot_clear(struct dsn_slot *slot)
{
	slot->is_stored = slot->is_refused = false;
	slot->due = 0;
	slot->n_rcpts = 0;
	slot->to[0] = slot->orig_qid[0] = '\0';
}

void
dsn_log(const struct dsn_slot *slot, int result)
{
	if (slot->is_refused)
		log_warn("qid=%s event=dsn_not_queued reason=\"this node owns "
			 "no shard\"",
			 slot->orig_qid);
	if (!slot->is_stored || result != 0)
		return;
	log_info("qid=%s event=dsn_queued orig_qid=%s to=<%s> rcpts=%zu "
		 "action=%s",
		 slot->qid, slot->orig_qid, slot->to, slot->n_rcpts,
		 slot->action == BOUNCE_FAILED ? "failed" :
		 slot->action == BOUNCE_DELAYED ? "delayed" : "relayed");
}
