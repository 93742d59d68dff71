/* The queue counts per shard, kept in the transaction that changes a
 * message, so status and /metrics cost O(shards) at any queue size.
 *   counts be32(shard) -> be64 messages, queued, deferred, held
 *   meta   "queue_counts" -> be32(version) || be64(LMDB txn id)
 *
 * counts holds, per shard, what status and /metrics report (struct
 * store_counts), so neither walks the queue. Every change to a msg record
 * goes through store_count_change() in the same transaction: the old
 * record's counts leave its shard, the new one's join the new shard, both
 * derived by store_count_record(). A shard's entry is removed when it
 * drops to zero.
 *
 * Whether the counts can be trusted at open: every write transaction also
 * writes meta "queue_counts" = be32(version) || be64(its LMDB txn id).
 * A marker that is missing (a queue from before the counts), of another
 * version, or older than the environment's last transaction (a binary
 * that does not keep them wrote since), or counts whose messages do not
 * add up to the msg database's entries, make store_open() rebuild them
 * with one walk. Version 0 marks counts known to be wrong (a failed
 * rebuild, a count that would go below zero): the next open rebuilds. */
#include <errno.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/be.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "node/store/store.h"
#include "node/store/store_int.h"
#include "proto/queue.pb-c.h"

#define STORE_META_COUNTS "queue_counts"
#define STORE_COUNTS_VERSION 1
#define STORE_COUNTS_MARK 12 /* be32 version || be64 txn id */
#define STORE_COUNT_LEN 32   /* be64 messages, queued, deferred, held */

void
store_count_record(const void *meta, size_t meta_len, struct store_counts *out)
{
	Shoal__StoredMessage *sm;
	const Shoal__Envelope *env;

	memset(out, 0, sizeof(*out));
	out->messages = 1;
	sm = shoal__stored_message__unpack(NULL, meta_len, meta);
	if (sm == NULL)
		return;
	env = sm->envelope;
	if (env != NULL && sm->held) {
		/* waits for release, not for a retry: its recipients are
		 * neither queued nor deferred work */
		out->held = 1;
	} else if (env != NULL) {
		for (size_t i = 0; i < env->n_rcpts; i++) {
			if (env->rcpts[i]->state ==
			    SHOAL__RCPT_STATE__RCPT_QUEUED)
				out->queued++;
			else if (env->rcpts[i]->state ==
				 SHOAL__RCPT_STATE__RCPT_DEFERRED)
				out->deferred++;
		}
	}
	shoal__stored_message__free_unpacked(sm, NULL);
}

static void
store_counts_get(const void *p, struct store_counts *c)
{
	const unsigned char *b = p;

	c->messages = be64_get(b);
	c->queued = be64_get(b + 8);
	c->deferred = be64_get(b + 16);
	c->held = be64_get(b + 24);
}

static bool
store_counts_equal(const struct store_counts *a, const struct store_counts *b)
{
	return a->messages == b->messages && a->queued == b->queued &&
	       a->deferred == b->deferred && a->held == b->held;
}

/* *v - d, or 0 and a note that the counts are wrong. */
static uint64_t
store_count_sub(struct store *st, uint64_t v, uint64_t d, uint32_t shard)
{
	if (v >= d)
		return v - d;
	if (!st->are_counts_bad)
		log_error("store dir=%s event=counts_wrong shard=%u "
			  "action=rebuild_at_next_open",
			  st->dir, shard);
	st->are_counts_bad = true;
	return 0;
}

/* Add c to shard's counts (or take it away: is_sub). */
static int
store_count_add(struct store_txn *t, uint32_t shard,
		const struct store_counts *c, bool is_sub)
{
	struct store *st = t->st;
	unsigned char kb[STORE_SHARD_LEN], vb[STORE_COUNT_LEN];
	MDB_val key = { sizeof(kb), kb }, val;
	struct store_counts cur = { 0 };
	int rc;

	be32_put(kb, shard);
	rc = mdb_get(t->txn, st->dbi[STORE_DB_COUNTS], &key, &val);
	if (rc == 0 && val.mv_size == STORE_COUNT_LEN)
		store_counts_get(val.mv_data, &cur);
	else if (rc == 0)
		store_corrupt(st, "counts", &key); /* counted from 0 */
	else if (rc != MDB_NOTFOUND)
		return store_fail(t, store_err(st, rc, "get", "counts"));
	if (is_sub) {
		cur.messages =
			store_count_sub(st, cur.messages, c->messages, shard);
		cur.queued = store_count_sub(st, cur.queued, c->queued, shard);
		cur.deferred =
			store_count_sub(st, cur.deferred, c->deferred, shard);
		cur.held = store_count_sub(st, cur.held, c->held, shard);
	} else {
		cur.messages += c->messages;
		cur.queued += c->queued;
		cur.deferred += c->deferred;
		cur.held += c->held;
	}
	if (cur.messages == 0 && cur.queued == 0 && cur.deferred == 0 &&
	    cur.held == 0)
		return store_del(t, STORE_DB_COUNTS, &key);
	be64_put(vb, cur.messages);
	be64_put(vb + 8, cur.queued);
	be64_put(vb + 16, cur.deferred);
	be64_put(vb + 24, cur.held);
	val.mv_size = sizeof(vb);
	val.mv_data = vb;
	return store_put(t, STORE_DB_COUNTS, &key, &val, 0);
}

/* The msg record under key becomes (shard, meta), or goes away when meta
 * is NULL. Reads the record as it is: call before writing it. */
int
store_count_change(struct store_txn *t, MDB_val *key, uint32_t shard,
		   const void *meta, size_t meta_len)
{
	struct store_counts before, after;
	uint32_t old_shard = 0;
	bool had = false;
	MDB_val val;
	int rc;

	rc = mdb_get(t->txn, t->st->dbi[STORE_DB_MSG], key, &val);
	if (rc == 0 && val.mv_size >= STORE_SHARD_LEN) {
		had = true;
		old_shard = be32_get(val.mv_data);
		store_count_record((const char *)val.mv_data + STORE_SHARD_LEN,
				   val.mv_size - STORE_SHARD_LEN, &before);
	} else if (rc == 0) {
		return store_fail(t, store_corrupt(t->st, "msg", key));
	} else if (rc != MDB_NOTFOUND) {
		return store_fail(t, store_err(t->st, rc, "get", "msg"));
	}
	if (meta != NULL)
		store_count_record(meta, meta_len, &after);
	/* a retry that changes attempts but no state: nothing to write */
	if (had && meta != NULL && old_shard == shard &&
	    store_counts_equal(&before, &after))
		return 0;
	rc = 0;
	if (had)
		rc = store_count_add(t, old_shard, &before, true);
	if (rc == 0 && meta != NULL)
		rc = store_count_add(t, shard, &after, false);
	return rc;
}

/* Note in t that it kept the counts (see above). */
int
store_count_mark(struct store_txn *t)
{
	unsigned char v[STORE_COUNTS_MARK];
	MDB_val key = { strlen(STORE_META_COUNTS), STORE_META_COUNTS };
	MDB_val val = { sizeof(v), v };

	be32_put(v, t->st->are_counts_bad ? 0 : STORE_COUNTS_VERSION);
	be64_put(v + 4, mdb_txn_id(t->txn));
	return store_put(t, STORE_DB_META, &key, &val, 0);
}

int
store_count_foreach(struct store_txn *t, store_count_fn fn, void *arg)
{
	struct store_counts c;
	MDB_cursor *cur;
	MDB_val key, val;
	MDB_cursor_op op = MDB_FIRST;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_COUNTS, &cur)) != 0)
		return rc;
	while ((rc = store_cursor_get(t, cur, &key, &val, op)) == 0 &&
	       key.mv_data != NULL) {
		op = MDB_NEXT;
		if (key.mv_size != STORE_SHARD_LEN ||
		    val.mv_size != STORE_COUNT_LEN) {
			rc = store_corrupt(t->st, "counts", &key);
			break;
		}
		store_counts_get(val.mv_data, &c);
		rc = fn(be32_get(key.mv_data),
			&c, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

static int
store_count_sum_one(uint32_t shard, const struct store_counts *c, void *arg)
{
	(void)shard;
	*(uint64_t *)arg += c->messages;
	return 0;
}

/* Why the counts cannot be trusted, NULL when they can. */
static const char *
store_count_doubt(struct store_txn *t)
{
	MDB_val key = { strlen(STORE_META_COUNTS), STORE_META_COUNTS }, val;
	uint64_t sum = 0;

	if (store_get(t, STORE_DB_META, &key, &val) != 0 ||
	    val.mv_size != STORE_COUNTS_MARK)
		return "missing";
	if (be32_get(val.mv_data) == 0)
		return "known_wrong";
	if (be32_get(val.mv_data) != STORE_COUNTS_VERSION)
		return "other_version";
	/* our last commit wrote its own id: a later one is another writer's */
	if (be64_get((const char *)val.mv_data + 4) !=
	    mdb_txn_id(t->txn))
		return "written_without_counts";
	if (store_count_foreach(t, store_count_sum_one, &sum) != 0 ||
	    sum != store_msg_count(t))
		return "mismatch";
	return NULL;
}

/* Count every message again, in one write transaction: O(queue). */
static int
store_count_rebuild(struct store *st)
{
	struct store_txn *t;
	struct store_counts c;
	MDB_cursor *cur;
	MDB_val key, val;
	MDB_cursor_op op = MDB_FIRST;
	int rc;

	if ((rc = store_txn_begin(st, false, &t)) != 0)
		return rc;
	rc = mdb_drop(t->txn, st->dbi[STORE_DB_COUNTS], 0);
	if (rc != 0) {
		rc = store_fail(t, store_err(st, rc, "drop", "counts"));
		goto done;
	}
	t->wrote = true;
	st->are_counts_bad = false;
	if ((rc = store_cursor_open(t, STORE_DB_MSG, &cur)) != 0)
		goto done;
	while ((rc = store_cursor_get(t, cur, &key, &val, op)) == 0 &&
	       key.mv_data != NULL) {
		op = MDB_NEXT;
		if (val.mv_size < STORE_SHARD_LEN) {
			rc = store_corrupt(st, "msg", &key);
			break;
		}
		store_count_record((const char *)val.mv_data + STORE_SHARD_LEN,
				   val.mv_size - STORE_SHARD_LEN, &c);
		rc = store_count_add(t, be32_get(val.mv_data), &c, false);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
done:
	if (rc != 0) {
		store_txn_abort(t);
		return rc;
	}
	return store_txn_commit(t);
}

void
store_count_open(struct store *st)
{
	struct store_txn *t;
	const char *why = "unreadable";
	uint64_t t0, ms, n = 0;
	int rc;

	if (store_txn_begin(st, true, &t) == 0) {
		why = store_count_doubt(t);
		n = store_msg_count(t);
		store_txn_abort(t);
	}
	if (why == NULL)
		return;
	log_info("store dir=%s event=counts_rebuild reason=%s messages=%llu",
		 st->dir, why, (unsigned long long)n);
	t0 = clock_mono_ms();
	rc = store_count_rebuild(st);
	ms = clock_mono_ms() - t0;
	/* the walk mapped every message: not ours to keep */
	store_release_pages(st);
	if (rc != 0) {
		/* the node runs on, with counts it knows to be wrong; the
		 * next open tries again */
		st->are_counts_bad = true;
		log_error("store dir=%s event=counts_rebuild_failed ms=%llu "
			  "error=\"%s\"",
			  st->dir, (unsigned long long)ms, shoal_strerror(rc));
		return;
	}
	log_info("store dir=%s event=counts_rebuilt messages=%llu ms=%llu",
		 st->dir, (unsigned long long)n, (unsigned long long)ms);
}

/* store_count_check's walk: the shard index in order, one run per shard. */
struct store_count_walk {
	struct store_txn *t;
	uint32_t shard;
	bool has_shard;
	struct store_counts want;
	uint64_t shards, messages;
	int bad;
};

/* Compare the run of w->shard with its entry in count. */
static void
store_count_compare(struct store_count_walk *w)
{
	unsigned char kb[STORE_SHARD_LEN];
	MDB_val key = { sizeof(kb), kb }, val;
	struct store_counts got = { 0 };

	if (!w->has_shard)
		return;
	w->shards++;
	be32_put(kb, w->shard);
	if (mdb_get(w->t->txn, w->t->st->dbi[STORE_DB_COUNTS], &key, &val) ==
		    0 &&
	    val.mv_size == STORE_COUNT_LEN)
		store_counts_get(val.mv_data, &got);
	if (store_counts_equal(&got, &w->want))
		return;
	log_error(
		"store dir=%s event=counts_differ shard=%u messages=%llu/%llu "
		"queued=%llu/%llu deferred=%llu/%llu held=%llu/%llu",
		w->t->st->dir, w->shard, (unsigned long long)got.messages,
		(unsigned long long)w->want.messages,
		(unsigned long long)got.queued,
		(unsigned long long)w->want.queued,
		(unsigned long long)got.deferred,
		(unsigned long long)w->want.deferred,
		(unsigned long long)got.held, (unsigned long long)w->want.held);
	w->bad = -EIO;
}

static int
store_count_walk_one(const char *qid, uint32_t shard, const void *meta,
		     size_t meta_len, void *arg)
{
	struct store_count_walk *w = arg;
	struct store_counts c;

	(void)qid;
	if (!w->has_shard || shard != w->shard) {
		store_count_compare(w);
		memset(&w->want, 0, sizeof(w->want));
		w->shard = shard;
		w->has_shard = true;
	}
	store_count_record(meta, meta_len, &c);
	w->want.messages += c.messages;
	w->want.queued += c.queued;
	w->want.deferred += c.deferred;
	w->want.held += c.held;
	w->messages++;
	return 0;
}

int
store_count_check(struct store_txn *t)
{
	struct store_count_walk w = { .t = t };
	MDB_stat ms;
	int rc;

	/* qid order mixes the shards: walk each shard's index instead */
	for (uint64_t s = 0; s <= UINT32_MAX; s++) {
		unsigned char kb[STORE_SHARD_LEN];
		MDB_cursor *cur;
		MDB_val key = { sizeof(kb), kb }, val;

		/* the next shard that has an index entry */
		if ((rc = store_cursor_open(t, STORE_DB_SHARD, &cur)) != 0)
			return rc;
		be32_put(kb, (uint32_t)s);
		rc = store_cursor_get(t, cur, &key, &val, MDB_SET_RANGE);
		mdb_cursor_close(cur);
		if (rc != 0)
			return rc;
		if (key.mv_data == NULL || key.mv_size <= STORE_SHARD_LEN)
			break;
		s = be32_get(key.mv_data);
		rc = store_shard_foreach(t, (uint32_t)s, store_count_walk_one,
					 &w);
		if (rc != 0)
			return rc;
	}
	store_count_compare(&w);
	/* every count entry belongs to a shard that has messages, and every
	 * message is in the shard index */
	if ((rc = mdb_stat(t->txn, t->st->dbi[STORE_DB_COUNTS], &ms)) != 0)
		return store_err(t->st, rc, "stat", "counts");
	if (ms.ms_entries != w.shards || w.messages != store_msg_count(t)) {
		log_error("store dir=%s event=counts_differ count_entries=%zu "
			  "shards=%llu indexed=%llu messages=%llu",
			  t->st->dir, ms.ms_entries,
			  (unsigned long long)w.shards,
			  (unsigned long long)w.messages,
			  (unsigned long long)store_msg_count(t));
		w.bad = -EIO;
	}
	return w.bad;
}
