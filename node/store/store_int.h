/* What the files of node/store/ share: the environment and transaction
 * structs, the named databases, and the primitives every section writes
 * through (LMDB errors mapped and logged, qid keys built, a failed write
 * spoiling its transaction). The primitives live in store.c; the sections
 * beside it (store_journal.c, store_supp.c, store_tomb.c,
 * store_counts.c, store_whev.c, store_local.c) add their hooks below. Nothing outside
 * node/store/ includes this: store.h is the interface. */
#ifndef SHOAL_NODE_STORE_INT_H
#define SHOAL_NODE_STORE_INT_H

#include <errno.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/qid.h"
#include "node/store/store.h"

#define STORE_KEY_MAX (8 + QID_MAX) /* be64 + qid + NUL */
#define STORE_SHARD_LEN 4	    /* be32 shard in front of meta */
#define STORE_META_JSEQ "journal_seq" /* highest seq ever given out */

/* The named databases; store.c names them in the environment. */
enum store_db {
	STORE_DB_MSG,
	STORE_DB_BODY,
	STORE_DB_DUE,
	STORE_DB_SHARD,
	STORE_DB_META,
	STORE_DB_JSEQ,
	STORE_DB_JQID,
	STORE_DB_SUPP,
	STORE_DB_TOMB,
	STORE_DB_COUNTS,
	STORE_DB_WHEV,
	STORE_DB_WHCNT,
	STORE_DB_LOCAL,
	STORE_DB_COUNT,
};

struct store {
	MDB_env *env;
	MDB_dbi dbi[STORE_DB_COUNT];
	char *dir;
	atomic_uint n_txns;	/* checked at close; readers may be on
				 * other threads (MDB_NOTLS) */
	bool has_writer;
	bool is_full;		/* a write hit MDB_MAP_FULL or ENOSPC */
	uint8_t *journaled;	/* per shard: 1 = changes are journaled */
	uint32_t n_journaled;
	uint64_t journal_seq;	/* last seq given out */
	void *map_base;		/* LMDB's map of data.mdb, from */
	size_t map_len;		/* /proc/self/maps; NULL/0 unknown */
	uint64_t tomb_keep_s;	/* tombstones outlive their qid's time by */
	bool are_counts_bad;	/* queue counts known wrong: rebuild at open */
	/* store_admit() (store_room.c): room known, when it was measured,
	 * the reserve kept for what frees space, and whether new mail is
	 * being refused */
	uint64_t room, room_at_ms, reserve;
	uint64_t capacity;	/* what the store can hold, when measured */
	uint64_t free_bytes;	/* LMDB's free list when last walked, */
	uint64_t free_next_ms;	/* when it may be walked again, */
	uint64_t admitted_since_walk; /* and what was admitted since */
	bool is_room_low[STORE_ADMIT_KINDS];
};

/* Growth under the reserve plus this much: the free list is counted too. */
#define STORE_ROOM_BURST (4u << 20)

struct store_txn {
	struct store *st;
	MDB_txn *txn;
	bool is_read_only;
	int err;	/* first failed write; then only abort is possible */
	bool wrote;	/* a put or delete changed something: commit syncs */
	uint64_t journal_seq;	/* last seq this txn gave out, 0 = none */
};

/* ---- primitives (store.c) ---- */

/* Map LMDB's rc (MDB_* < 0 or errno > 0) onto 0 / -errno /
 * SHOAL_E_STORAGE_FULL and log it: full when it starts, other failures
 * always, MDB_NOTFOUND (-ENOENT, an answer) never. op and db name the
 * call in the log line. */
int store_err(struct store *st, int rc, const char *op, const char *db);

/* Log a record that does not parse; returns -EIO. */
int store_corrupt(struct store *st, const char *db, const MDB_val *key);

/* A write failed and LMDB's txn is spoilt: later calls and the commit
 * return this error, so no half of the txn is ever committed. Returns
 * err. */
static inline int
store_fail(struct store_txn *t, int err)
{
	if (t->err == 0)
		t->err = err;
	return err;
}

/* 0 when t may be written, -EACCES when read-only, else its first
 * failure. */
static inline int
store_writable(const struct store_txn *t)
{
	return t->is_read_only ? -EACCES : t->err;
}

/* A stored qid is non-empty and ends at its only NUL. */
static inline bool
store_is_qid(const void *p, size_t len)
{
	return len >= 2 && len <= QID_MAX &&
	       memchr(p, '\0', len) == (const char *)p + len - 1;
}

/* Key of qid: be(prefix) in prefix_len bytes (0, 4 or 8), then qid and
 * its NUL. With no prefix the key points at qid itself (buf may be NULL).
 * Returns 0, or -EINVAL for an empty or over-long qid. */
int store_key(unsigned char buf[STORE_KEY_MAX], uint64_t prefix,
	      size_t prefix_len, const char *qid, MDB_val *key);

/* Put, delete (a missing key is no error) and borrow under key in db,
 * noting that t wrote; a failed write spoils t (store_fail). Return 0,
 * -ENOENT (get), SHOAL_E_STORAGE_FULL or -errno. */
int store_put(struct store_txn *t, enum store_db db, MDB_val *key,
	      MDB_val *val, unsigned flags);
int store_del(struct store_txn *t, enum store_db db, MDB_val *key);
int store_get(struct store_txn *t, enum store_db db, MDB_val *key,
	      MDB_val *val);

/* Open a cursor on db (the caller closes it with mdb_cursor_close()), and
 * move one: 0 with key->mv_data NULL past the last entry, or an error. */
int store_cursor_open(struct store_txn *t, enum store_db db,
		      MDB_cursor **cur);
int store_cursor_get(struct store_txn *t, MDB_cursor *cur, MDB_val *key,
		     MDB_val *val, MDB_cursor_op op);

/* Call fn for a record laid out as be32(shard) || payload under a qid key
 * (msg, supp); -EIO when it is not one. */
int store_msg_visit(struct store_txn *t, const MDB_val *key,
		    const MDB_val *val, store_msg_fn fn, void *arg);

/* ---- hooks of the sections ---- */

/* store_journal.c: note that the record under qkey (a qid or suppression
 * key) changed, when its shard is journaled; body: the entry must carry
 * the message body. Returns 0 or the failed write's error. */
int store_journal_mark(struct store_txn *t, MDB_val *qkey, uint32_t shard,
		       bool body);

/* store_room.c: free the reader slots of dead processes (an operator's
 * mdb_dump killed, say), which keep the pages freed since they began from
 * being reused for as long as this node runs: when room runs short and
 * when a commit finds the disk full. Logged when it freed any. */
void store_readers_clear(struct store *st);

/* store_counts.c: at open, check the counts and rebuild them if they
 * cannot be trusted (logged; never fails the open). */
void store_count_open(struct store *st);

/* store_counts.c: at the commit of a write transaction, note that it
 * kept the counts. */
int store_count_mark(struct store_txn *t);

/* store_counts.c: the msg record under key becomes (shard, meta), or goes
 * away when meta is NULL; call before writing it. */
int store_count_change(struct store_txn *t, MDB_val *key, uint32_t shard,
		       const void *meta, size_t meta_len);

#endif
