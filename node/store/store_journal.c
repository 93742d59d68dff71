/* The replication journal: which messages (and suppression entries) in
 * the shards this node is primary for changed and are not yet
 * acknowledged by its peer, in the order of their changes. node/cluster/
 * ships it (repl.c) and trims it on acks; the writers of node/store/ note
 * each change in the transaction that makes it (store_journal_mark()).
 *
 * Layout (the other databases: store.c):
 *   jseq  be64(seq)  -> flags(1) || be64(noted, unix seconds) || qid\0
 *   jqid  qid\0      -> be64(seq) || flags(1)
 *   meta  "journal_seq" -> be64(highest seq ever given out)
 * One entry per changed record, the newest change only (jqid finds and
 * replaces the older entry, keeping its body flag), so the journal of a
 * peer that is down for a day is bounded by the queue. Seqs only grow,
 * across restarts too (journal_seq, read back by store_open()).
 *
 * No untrusted input: qids and keys were validated by the callers. */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/be.h"
#include "lib/xmalloc.h"
#include "node/store/store.h"
#include "node/store/store_int.h"

#define STORE_J_BODY 0x01	/* the record must carry the body */
#define STORE_J_HDR 9		/* flags(1) || be64(time) in front of a jseq qid */

/* The highest seq given out, kept for the next store_open(). */
static int
store_journal_put_seq(struct store_txn *t, uint64_t seq)
{
	unsigned char jv[8];
	MDB_val key = { strlen(STORE_META_JSEQ), STORE_META_JSEQ };
	MDB_val val = { sizeof(jv), jv };

	be64_put(jv, seq);
	return store_put(t, STORE_DB_META, &key, &val, 0);
}

/* Note that the message under qkey changed, when its shard is journaled:
 * a new seq replaces the message's older entry, keeping its body flag. */
int
store_journal_mark(struct store_txn *t, MDB_val *qkey, uint32_t shard,
		   bool body)
{
	struct store *st = t->st;
	unsigned char sk[8], qv[9];
	MDB_val key = { 8, sk }, val;
	uint8_t flags = body ? STORE_J_BODY : 0;
	uint64_t seq;
	int rc;

	if (shard >= st->n_journaled || !st->journaled[shard])
		return 0;
	rc = mdb_get(t->txn, st->dbi[STORE_DB_JQID], qkey, &val);
	if (rc == 0 && val.mv_size == sizeof(qv)) {
		flags |= ((const unsigned char *)val.mv_data)[8];
		memcpy(sk, val.mv_data, 8);
		if ((rc = store_del(t, STORE_DB_JSEQ, &key)) != 0)
			return rc;
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		return store_fail(t, store_err(st, rc, "get", "jqid"));
	}
	seq = ++st->journal_seq;
	t->journal_seq = seq;
	be64_put(sk, seq);
	val.mv_size = STORE_J_HDR + qkey->mv_size;
	val.mv_data = NULL;
	if ((rc = store_put(t, STORE_DB_JSEQ, &key, &val, MDB_RESERVE)) != 0)
		return rc;
	((unsigned char *)val.mv_data)[0] = flags;
	be64_put((unsigned char *)val.mv_data + 1, (uint64_t)time(NULL));
	memcpy((unsigned char *)val.mv_data + STORE_J_HDR, qkey->mv_data,
	       qkey->mv_size);
	be64_put(qv, seq);
	qv[8] = flags;
	val.mv_size = sizeof(qv);
	val.mv_data = qv;
	if ((rc = store_put(t, STORE_DB_JQID, qkey, &val, 0)) != 0)
		return rc;
	return store_journal_put_seq(t, seq);
}

uint64_t
store_journal_head(struct store_txn *t)
{
	MDB_val key = { strlen(STORE_META_JSEQ), STORE_META_JSEQ }, val;

	if (mdb_get(t->txn, t->st->dbi[STORE_DB_META], &key, &val) != 0 ||
	    val.mv_size != 8)
		return 0;
	return be64_get(val.mv_data);
}

int
store_journal_skip(struct store_txn *t, uint64_t n)
{
	int rc = store_writable(t);

	if (rc != 0)
		return rc;
	t->st->journal_seq += n;
	return store_journal_put_seq(t, t->st->journal_seq);
}

void
store_journal_shards(struct store *st, const uint8_t *on, uint32_t n)
{
	free(st->journaled);
	st->journaled = xmalloc(n ? n : 1);
	memcpy(st->journaled, on, n);
	st->n_journaled = n;
}

uint64_t
store_txn_journal_seq(const struct store_txn *t)
{
	return t->journal_seq;
}

int
store_journal_touch(struct store_txn *t, const char *qid, uint32_t shard)
{
	MDB_val key;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, qid, &key)) != 0)
		return rc;
	rc = store_journal_mark(t, &key, shard, true);
	return rc ? store_fail(t, rc) : 0;
}

int
store_journal_foreach(struct store_txn *t, uint64_t after, size_t max,
		      store_journal_fn fn, void *arg)
{
	unsigned char sk[8];
	MDB_cursor *cur;
	MDB_val key = { 8, sk }, val;
	MDB_cursor_op op = MDB_SET_RANGE;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_JSEQ, &cur)) != 0)
		return rc;
	be64_put(sk, after + 1);
	for (size_t n = 0; n < max; n++, op = MDB_NEXT) {
		const unsigned char *v;

		rc = store_cursor_get(t, cur, &key, &val, op);
		if (rc != 0 || key.mv_data == NULL)
			break;
		v = val.mv_data;
		if (key.mv_size != 8 || val.mv_size <= STORE_J_HDR ||
		    !store_is_qid(v + STORE_J_HDR, val.mv_size - STORE_J_HDR)) {
			rc = store_corrupt(t->st, "jseq", &key);
			break;
		}
		rc = fn(be64_get(key.mv_data), (const char *)v + STORE_J_HDR,
			(v[0] & STORE_J_BODY) != 0, be64_get(v + 1), arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int
store_journal_trim(struct store_txn *t, uint64_t upto, size_t max)
{
	MDB_cursor *cur;
	MDB_val key, val, qkey;
	size_t n = 0;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_cursor_open(t, STORE_DB_JSEQ, &cur)) != 0)
		return rc;
	while (n < max &&
	       (rc = store_cursor_get(t, cur, &key, &val, MDB_FIRST)) == 0 &&
	       key.mv_data != NULL && key.mv_size == 8 &&
	       be64_get(key.mv_data) <= upto) {
		MDB_val qval;

		if (val.mv_size > STORE_J_HDR) {
			qkey.mv_data = (char *)val.mv_data + STORE_J_HDR;
			qkey.mv_size = val.mv_size - STORE_J_HDR;
			/* the qid's entry names this seq unless replaced */
			if (mdb_get(t->txn, t->st->dbi[STORE_DB_JQID], &qkey,
				    &qval) == 0 &&
			    qval.mv_size == 9 &&
			    memcmp(qval.mv_data, key.mv_data, 8) == 0 &&
			    (rc = store_del(t, STORE_DB_JQID, &qkey)) != 0)
				break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc == 0)
			t->wrote = true;
		if (rc != 0) {
			rc = store_fail(t, store_err(t->st, rc, "del", "jseq"));
			break;
		}
		n++;
	}
	mdb_cursor_close(cur);
	return rc != 0 ? rc : (int)n;
}

uint64_t
store_journal_count(struct store_txn *t)
{
	MDB_stat ms;

	if (t->err != 0 || mdb_stat(t->txn, t->st->dbi[STORE_DB_JSEQ], &ms))
		return 0;
	return ms.ms_entries;
}

int
store_journal_last(struct store_txn *t, uint64_t *seq)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_JSEQ, &cur)) != 0)
		return rc;
	rc = store_cursor_get(t, cur, &key, &val, MDB_LAST);
	if (rc == 0 && key.mv_data == NULL)
		rc = -ENOENT;
	else if (rc == 0 && key.mv_size != 8)
		rc = store_corrupt(t->st, "jseq", &key);
	else if (rc == 0)
		*seq = be64_get(key.mv_data);
	mdb_cursor_close(cur);
	return rc;
}

uint64_t
store_journal_seq(const struct store *st)
{
	return st->journal_seq;
}

uint64_t
store_journal_take(struct store *st, uint64_t n)
{
	uint64_t first = st->journal_seq + 1;

	st->journal_seq += n;
	return first;
}

int
store_journal_seq_of(struct store_txn *t, const char *qid, uint64_t *seq,
		     bool *body)
{
	MDB_val key, val;
	int rc;

	if ((rc = store_key(NULL, 0, 0, qid, &key)) != 0 ||
	    (rc = store_get(t, STORE_DB_JQID, &key, &val)) != 0)
		return rc;
	if (val.mv_size != 9)
		return store_corrupt(t->st, "jqid", &key);
	*seq = be64_get(val.mv_data);
	*body = (((const unsigned char *)val.mv_data)[8] & STORE_J_BODY) != 0;
	return 0;
}
