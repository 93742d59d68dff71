/* The suppression list's records in the store (node/suppress/ owns the
 * list and its rules; lib/suppress_key.h makes the keys):
 *   supp  key\0 -> be32(shard) || packed SuppressEntry
 * Entries ("~" keys) are journaled under their key as messages are under
 * their qid (store_journal.c), so they replicate and move with their
 * shard; pending adds ("+" keys, shard STORE_SHARD_NONE) stay local. The
 * entry is opaque here. Keys are validated by the callers; we bound
 * length. */
#include <lmdb.h>
#include <string.h>

#include "lib/be.h"
#include "node/store/store.h"
#include "node/store/store_int.h"

int
store_supp_put(struct store_txn *t, const char *key, uint32_t shard,
	       const void *entry, size_t len)
{
	MDB_val k, val = { STORE_SHARD_LEN + len, NULL };
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, key, &k)) != 0)
		return rc;
	if ((rc = store_put(t, STORE_DB_SUPP, &k, &val, MDB_RESERVE)) != 0)
		return rc;
	be32_put(val.mv_data, shard);
	if (len > 0)
		memcpy((char *)val.mv_data + STORE_SHARD_LEN, entry, len);
	rc = store_journal_mark(t, &k, shard, false);
	return rc ? store_fail(t, rc) : 0;
}

int
store_supp_get(struct store_txn *t, const char *key, const void **p,
	       size_t *len)
{
	MDB_val k, val;
	int rc;

	if ((rc = store_key(NULL, 0, 0, key, &k)) != 0 ||
	    (rc = store_get(t, STORE_DB_SUPP, &k, &val)) != 0)
		return rc;
	if (val.mv_size < STORE_SHARD_LEN)
		return store_corrupt(t->st, "supp", &k);
	*p = (const char *)val.mv_data + STORE_SHARD_LEN;
	*len = val.mv_size - STORE_SHARD_LEN;
	return 0;
}

int
store_supp_del(struct store_txn *t, const char *key)
{
	MDB_val k, val;
	uint32_t shard;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, key, &k)) != 0 ||
	    (rc = store_get(t, STORE_DB_SUPP, &k, &val)) != 0)
		return rc;
	if (val.mv_size < STORE_SHARD_LEN)
		return store_corrupt(t->st, "supp", &k);
	shard = be32_get(val.mv_data);
	if ((rc = store_del(t, STORE_DB_SUPP, &k)) != 0)
		return rc;
	rc = store_journal_mark(t, &k, shard, false);
	return rc ? store_fail(t, rc) : 0;
}

int
store_supp_foreach(struct store_txn *t, const char *prefix, const char *after,
		   store_msg_fn fn, void *arg)
{
	size_t plen = strlen(prefix), alen = strlen(after);
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_SUPP, &cur)) != 0)
		return rc;
	/* keys carry their NUL: `after` itself is skipped below */
	key.mv_data = (void *)(alen ? after : prefix);
	key.mv_size = alen ? alen + 1 : plen;
	rc = store_cursor_get(t, cur, &key, &val, MDB_SET_RANGE);
	while (rc == 0 && key.mv_data != NULL) {
		if (key.mv_size < plen ||
		    memcmp(key.mv_data, prefix, plen) != 0)
			break;
		if (!(alen && key.mv_size == alen + 1 &&
		      memcmp(key.mv_data, after, alen + 1) == 0) &&
		    (rc = store_msg_visit(t, &key, &val, fn, arg)) != 0)
			break;
		rc = store_cursor_get(t, cur, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc;
}

uint64_t
store_supp_count(struct store_txn *t)
{
	MDB_stat ms;

	if (t->err != 0 || mdb_stat(t->txn, t->st->dbi[STORE_DB_SUPP], &ms))
		return 0;
	return ms.ms_entries;
}
