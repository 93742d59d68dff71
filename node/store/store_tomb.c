/* Tombstones: what keeps a finished message from being taken again.
 *   tomb  qid\0 -> empty
 *
 * A tombstone is the qid of a message this node finished: delivered or
 * bounced for good, deleted by the postmaster, or such a final deletion
 * arriving in its peer's stream (ReplRecord.finished, which the primary
 * sets from its own tombstone). It is written in the transaction that
 * removes the message, so a router's resend or an old primary's handback
 * of the qid finds it and is a no-op instead of a second delivery
 * (node/queue/ingest.c, node/cluster/repl_apply.c). A withdrawal (an
 * enqueue refused under require_peer: its client was answered 4xx and the
 * router may send the qid again) and a copy dropped after a move are no
 * final outcome: they leave no tombstone on either node (store_msg_del),
 * or a resend of the qid would be answered OK and never stored.
 *
 * Cost: the key alone (22 bytes and LMDB's 8-byte node header, about 50
 * bytes a qid with the B-tree's pages), kept until the qid's own time
 * (when the router accepted it) is tomb_keep_s old: by default
 * delivery.max_queue_lifetime plus a day, longer than a message can stay
 * queued and so longer than any copy of it can come back. At a million
 * messages a day and the 5-day default that is about 300 MB of the map.
 * Qids sort by time, so the expired ones are the first keys: each
 * retirement drops at most STORE_TOMB_TRIM_STEP of them, a bounded walk
 * from the first key that keeps pace with the writes.
 *
 * Qids reach here validated by the callers; trim drops any key that is
 * not a qid. */
#include <errno.h>
#include <lmdb.h>
#include <time.h>

#include "lib/qid.h"
#include "node/store/store.h"
#include "node/store/store_int.h"

#define STORE_TOMB_TRIM_STEP 4

void
store_tomb_keep(struct store *st, uint64_t seconds)
{
	st->tomb_keep_s = seconds;
}

int
store_tomb_has(struct store_txn *t, const char *qid)
{
	MDB_val key, val;
	int rc = store_key(NULL, 0, 0, qid, &key);

	return rc ? rc : store_get(t, STORE_DB_TOMB, &key, &val);
}

int
store_tomb_trim(struct store_txn *t, uint64_t now, size_t max)
{
	MDB_cursor *cur;
	MDB_val key, val;
	uint64_t keep = t->st->tomb_keep_s;
	int n = 0, rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_cursor_open(t, STORE_DB_TOMB, &cur)) != 0)
		return rc;
	while ((size_t)n < max &&
	       (rc = store_cursor_get(t, cur, &key, &val, MDB_FIRST)) == 0 &&
	       key.mv_data != NULL) {
		/* not a qid (never written so): drop it as expired */
		if (store_is_qid(key.mv_data, key.mv_size) &&
		    qid_valid(key.mv_data, key.mv_size - 1) &&
		    qid_time_us(key.mv_data) / 1000000 + keep >= now)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0) {
			rc = store_fail(t, store_err(t->st, rc, "del", "tomb"));
			break;
		}
		t->wrote = true;
		n++;
	}
	mdb_cursor_close(cur);
	return rc ? rc : n;
}

int
store_msg_retire(struct store_txn *t, const char *qid, uint32_t shard)
{
	MDB_val key, none = { 0, NULL };
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, qid, &key)) != 0)
		return rc;
	rc = store_msg_del(t, qid, shard);
	if (rc != 0 && rc != -ENOENT)
		return rc;
	if ((rc = store_put(t, STORE_DB_TOMB, &key, &none, 0)) != 0)
		return rc;
	rc = store_tomb_trim(t, (uint64_t)time(NULL), STORE_TOMB_TRIM_STEP);
	return rc < 0 ? rc : 0;
}

uint64_t
store_tomb_count(struct store_txn *t)
{
	MDB_stat ms;

	if (t->err != 0 || mdb_stat(t->txn, t->st->dbi[STORE_DB_TOMB], &ms))
		return 0;
	return ms.ms_entries;
}
