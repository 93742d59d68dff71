/* The node's durable queue on LMDB: one environment, five named databases,
 * the key layout, and the mapping of LMDB errors onto Shoal's. Group commit
 * belongs to node/commit.c; meta is an opaque packed protobuf here, but
 * for the queue counts, which read its held flag and recipients' states
 * (store_count_record). Qids come from peers through callers that
 * validated them; we bound length.
 *
 * Layout. Every qid in a key keeps its NUL, so walkers hand out the key
 * itself as a C string living as long as the transaction:
 *   msg   qid\0                -> be32(shard) || meta
 *   body  qid\0                -> body
 *   due   be64(due) || qid\0   -> empty
 *   shard be32(shard) || qid\0 -> empty
 *   meta  name                 -> value
 *   jseq  be64(seq)            -> flags(1) || qid\0
 *   jqid  qid\0                -> be64(seq) || flags(1)
 *   supp  key\0                -> be32(shard) || packed SuppressEntry
 *   tomb  qid\0                -> empty
 *   counts be32(shard)         -> be64 messages, queued, deferred, held
 * jseq/jqid are the replication journal: one entry per message changed in
 * a shard this node is primary for and not yet acknowledged by its peer,
 * the newest change only (jqid finds and replaces the older entry), so the
 * journal of a peer that is down for a day is bounded by the queue.
 * supp holds the suppression list (lib/suppress_key.h gives the keys):
 * entries ("~" keys) are journaled under their key as messages are under
 * their qid, so they replicate and move with their shard; pending adds
 * ("+" keys, shard STORE_SHARD_NONE) stay local.
 * tomb holds the qids this node finished (delivered, bounced, deleted by
 * the postmaster, here or on its peer): see the tombstone section. An environment written before it existed gains it
 * empty at the next open.
 * counts holds the queue counts per shard (see "queue counts" below).
 * The shard in front of meta lets replace and delete find the shard index
 * entry without unpacking meta, and the walkers report it.
 *
 * Durability: MDB_NOMETASYNC, no MDB_NOSYNC. Every commit writes its pages
 * and fdatasyncs them before it writes the meta page that makes them the
 * database; only that meta page write is left unsynced (LMDB keeps the
 * previous snapshot intact meanwhile, so a crash can lose the last commit
 * but never corrupt). store_txn_commit then syncs it too; the group commit
 * uses store_txn_commit_lazy and lets the next commit's fdatasync carry
 * it, which saves one synchronous write per batch. No MDB_WRITEMAP, so a
 * full disk is ENOSPC from commit, never SIGBUS. */
#include "node/store/store.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "lib/be.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "proto/queue.pb-c.h"

#define STORE_NAME_MAX 128		/* meta names are our constants */
#define STORE_KEY_MAX (8 + QID_MAX)	/* be64 + qid + NUL */
#define STORE_SHARD_LEN 4		/* be32 shard in front of meta */
/* MDB_NOTLS gives every read txn its own slot and deliveries may hold one
 * while sending a body: more than LMDB's default of 126. */
#define STORE_READERS_MAX 1024

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
	STORE_DB_COUNT,
};

static const char *const store_db_names[STORE_DB_COUNT] = {
	"msg", "body", "due", "shard", "meta", "jseq", "jqid", "supp", "tomb", "counts",
};

#define STORE_META_JSEQ "journal_seq"	/* highest seq ever given out */

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
};

struct store_txn {
	struct store *st;
	MDB_txn *txn;
	bool is_read_only;
	int err;	/* first failed write; then only abort is possible */
	bool wrote;	/* a put or delete changed something: commit syncs */
	uint64_t journal_seq;	/* last seq this txn gave out, 0 = none */
};

/* LMDB's result (0, MDB_* < 0, errno > 0) as ours. */
static int
store_code(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT)
		return SHOAL_E_STORAGE_FULL;
	return rc < 0 ? -EIO : -rc;
}

/* Map and log. Full is logged when it starts, not once per message;
 * MDB_NOTFOUND is an answer, not a failure. */
static int
store_err(struct store *st, int rc, const char *op, const char *db)
{
	int err = store_code(rc);

	if (err == SHOAL_E_STORAGE_FULL && !st->is_full)
		log_warn("store dir=%s event=full op=%s db=%s error=\"%s\"",
			 st->dir, op, db, mdb_strerror(rc));
	else if (err != SHOAL_E_STORAGE_FULL && err != -ENOENT)
		log_error("store dir=%s op=%s db=%s error=\"%s\"", st->dir, op,
			  db, mdb_strerror(rc));
	if (err == SHOAL_E_STORAGE_FULL)
		st->is_full = true;
	return err;
}

/* A write failed and LMDB's txn is spoilt: later calls and the commit
 * return this error, so no half of the txn is ever committed. */
static int
store_fail(struct store_txn *t, int err)
{
	if (t->err == 0)
		t->err = err;
	return err;
}

static int
store_corrupt(struct store *st, const char *db, const MDB_val *key)
{
	log_error("store dir=%s event=corrupt db=%s key_len=%zu", st->dir, db,
		  key->mv_size);
	return -EIO;
}

/* Key of qid: be(prefix) in prefix_len bytes (0, 4 or 8), then qid and its
 * NUL. With no prefix the key points at qid itself. */
static int
store_key(unsigned char buf[STORE_KEY_MAX], uint64_t prefix,
	  size_t prefix_len, const char *qid, MDB_val *key)
{
	size_t n = qid == NULL ? 0 : strnlen(qid, QID_MAX);

	if (n == 0 || n == QID_MAX)
		return -EINVAL;
	if (prefix_len == 0) {
		key->mv_data = (void *)qid;
	} else {
		if (prefix_len == 8)
			be64_put(buf, prefix);
		else
			be32_put(buf, (uint32_t)prefix);
		memcpy(buf + prefix_len, qid, n + 1);
		key->mv_data = buf;
	}
	key->mv_size = prefix_len + n + 1;
	return 0;
}

/* A stored qid is non-empty and ends at its only NUL. */
static bool
store_is_qid(const void *p, size_t len)
{
	return len >= 2 && len <= QID_MAX &&
	       memchr(p, '\0', len) == (const char *)p + len - 1;
}

static int
store_writable(const struct store_txn *t)
{
	return t->is_read_only ? -EACCES : t->err;
}

static int
store_put(struct store_txn *t, enum store_db db, MDB_val *key, MDB_val *val,
	  unsigned flags)
{
	int rc = mdb_put(t->txn, t->st->dbi[db], key, val, flags);

	if (rc == 0) {
		t->wrote = true;
		return 0;
	}
	return store_fail(t, store_err(t->st, rc, "put", store_db_names[db]));
}

/* Delete; a missing key is not an error. */
static int
store_del(struct store_txn *t, enum store_db db, MDB_val *key)
{
	int rc = mdb_del(t->txn, t->st->dbi[db], key, NULL);

	if (rc == 0)
		t->wrote = true;
	if (rc == 0 || rc == MDB_NOTFOUND)
		return 0;
	return store_fail(t, store_err(t->st, rc, "del", store_db_names[db]));
}

/* Borrow the value under key. */
static int
store_get(struct store_txn *t, enum store_db db, MDB_val *key, MDB_val *val)
{
	int rc;

	if (t->err != 0)
		return t->err;
	rc = mdb_get(t->txn, t->st->dbi[db], key, val);
	return rc ? store_err(t->st, rc, "get", store_db_names[db]) : 0;
}

/* Borrow the value under key into *p, *len. */
static int
store_borrow(struct store_txn *t, enum store_db db, MDB_val *key,
	     const void **p, size_t *len)
{
	MDB_val val;
	int rc = store_get(t, db, key, &val);

	if (rc != 0)
		return rc;
	*p = val.mv_data;
	*len = val.mv_size;
	return 0;
}

/* queue counts, defined at the end */
static void store_count_open(struct store *st);
static int store_count_mark(struct store_txn *t);
static int store_count_change(struct store_txn *t, MDB_val *key, uint32_t shard,
			      const void *meta, size_t meta_len);

int
store_open(const char *dir, uint64_t map_size, struct store **out)
{
	struct store *st = xcalloc(1, sizeof(*st));
	MDB_txn *txn = NULL;
	const char *op = "env_create";
	int dead = 0;
	int rc;

	st->dir = xstrdup(dir);
	st->tomb_keep_s = STORE_TOMB_KEEP_DEFAULT;
	rc = mdb_env_create(&st->env);
	if (rc != 0) {
		st->env = NULL;
		goto fail;
	}
	op = "env_set";
	rc = mdb_env_set_mapsize(st->env, (size_t)map_size);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(st->env, STORE_DB_COUNT);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(st->env, STORE_READERS_MAX);
	if (rc != 0)
		goto fail;
	/* MDB_NOTLS: the one loop thread may hold several read txns at once,
	 * e.g. a delivery's body and an admin listing */
	op = "env_open";
	rc = mdb_env_open(st->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0600);
	if (rc != 0)
		goto fail;
	/* slots left by a killed process would pin old pages for ever */
	op = "reader_check";
	rc = mdb_reader_check(st->env, &dead);
	if (rc != 0)
		goto fail;
	if (dead > 0)
		log_info("store dir=%s event=stale_readers_cleared count=%d",
			 dir, dead);
	op = "open_dbs";
	rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	for (int i = 0; rc == 0 && i < STORE_DB_COUNT; i++)
		rc = mdb_dbi_open(txn, store_db_names[i], MDB_CREATE,
				  &st->dbi[i]);
	if (rc != 0)
		goto fail;
	if (rc == 0) {
		MDB_val key = { strlen(STORE_META_JSEQ), STORE_META_JSEQ }, val;

		rc = mdb_get(txn, st->dbi[STORE_DB_META], &key, &val);
		if (rc == 0 && val.mv_size == 8)
			st->journal_seq = be64_get(val.mv_data);
		if (rc == MDB_NOTFOUND || rc == 0)
			rc = 0;
	}
	if (rc != 0)
		goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;	/* freed whatever the result */
	if (rc != 0)
		goto fail;
	log_info("store dir=%s event=open map_size=%llu", dir,
		 (unsigned long long)map_size);
	store_count_open(st);
	*out = st;
	return 0;
fail:
	log_error("store dir=%s event=open_failed op=%s error=\"%s\"", dir, op,
		  mdb_strerror(rc));
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (st->env != NULL)
		mdb_env_close(st->env);	/* needed even after a failed open */
	free(st->dir);
	free(st);
	return store_code(rc);
}

/* Where LMDB mapped data.mdb: mdb_env_info() gives the address only for
 * MDB_FIXEDMAP, so read it from /proc/self/maps. */
static void
store_find_map(struct store *st)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], line[PATH_MAX + 160];
	FILE *f;

	if (realpath(st->dir, dir) == NULL)
		return;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	f = fopen("/proc/self/maps", "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char *name = strchr(line, '/');

		if (name == NULL)
			continue;
		name[strcspn(name, "\n")] = '\0';
		if (strcmp(name, path) == 0 &&
		    sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi > lo) {
			st->map_base = (void *)lo;
			st->map_len = hi - lo;
			break;
		}
	}
	fclose(f);
}

void
store_release_pages(struct store *st)
{
	MDB_envinfo info;
	MDB_stat stat;
	long page = sysconf(_SC_PAGESIZE);
	size_t len;

	if (st->map_base == NULL)
		store_find_map(st);
	if (st->map_base == NULL || page <= 0 ||
	    mdb_env_info(st->env, &info) != 0 ||
	    mdb_env_stat(st->env, &stat) != 0)
		return;
	len = ((size_t)info.me_last_pgno + 1) * stat.ms_psize;
	if (len > st->map_len)
		len = st->map_len;
	len -= len % (size_t)page;
	if (len > 0 && madvise(st->map_base, len, MADV_DONTNEED) != 0)
		log_debug(LOG_SUB_STORE, "store event=release_pages_failed "
			  "error=\"%s\"", strerror(errno));
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	SHOAL_ASSERT(atomic_load(&st->n_txns) == 0);
	mdb_env_close(st->env);
	free(st->journaled);
	free(st->dir);
	free(st);
}

int
store_txn_begin(struct store *st, bool read_only, struct store_txn **out)
{
	struct store_txn *t;
	MDB_txn *txn;
	int rc;

	/* a second writer on this thread would wait on LMDB's lock for ever */
	SHOAL_ASSERT(read_only || !st->has_writer);
	rc = mdb_txn_begin(st->env, NULL, read_only ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return store_err(st, rc, "txn_begin", "-");
	t = xcalloc(1, sizeof(*t));
	t->st = st;
	t->txn = txn;
	t->is_read_only = read_only;
	atomic_fetch_add(&st->n_txns, 1);
	if (!read_only)
		st->has_writer = true;
	*out = t;
	return 0;
}

static void
store_txn_free(struct store_txn *t)
{
	atomic_fetch_sub(&t->st->n_txns, 1);
	if (!t->is_read_only)
		t->st->has_writer = false;
	free(t);
}

/* Less than 1 MiB plus 1% of the file system free. */
static bool
store_disk_nearly_full(const struct store *st)
{
	struct statvfs sv;
	uint64_t avail, total;

	if (statvfs(st->dir, &sv) != 0)
		return false;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return avail < (1u << 20) + total / 100;
}

static int
store_txn_finish(struct store_txn *t, bool durable, bool *synced)
{
	struct store *st = t->st;
	bool is_write = !t->is_read_only;
	bool wrote = t->wrote;
	int rc = t->err;

	if (rc == 0 && is_write && wrote)
		rc = store_count_mark(t);
	if (rc != 0) {
		store_txn_abort(t);
		return rc;
	}
	rc = mdb_txn_commit(t->txn);
	store_txn_free(t);
	/* LMDB reports a short write as EIO: on a disk that is (nearly)
	 * full that is the disk being full */
	if (rc == EIO && store_disk_nearly_full(st))
		rc = ENOSPC;
	if (rc != 0)
		return store_err(st, rc, "txn_commit", "-");
	if (is_write && durable && (rc = mdb_env_sync(st->env, 1)) != 0)
		return store_err(st, rc, "env_sync", "-");
	/* LMDB fdatasyncs a commit that changed pages (and skips one that
	 * changed none): that also syncs every earlier meta page write */
	if (synced != NULL)
		*synced = is_write && wrote;
	if (is_write && st->is_full) {
		log_info("store dir=%s event=not_full", st->dir);
		st->is_full = false;
	}
	return 0;
}

int
store_txn_commit(struct store_txn *t)
{
	return store_txn_finish(t, true, NULL);
}

int
store_txn_commit_lazy(struct store_txn *t, bool *synced)
{
	*synced = false;
	return store_txn_finish(t, false, synced);
}

int
store_sync(struct store *st)
{
	int rc = mdb_env_sync(st->env, 1);

	return rc ? store_err(st, rc, "env_sync", "-") : 0;
}

void
store_txn_abort(struct store_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	store_txn_free(t);
}

/* ---- replication journal ---------------------------------------------- */

#define STORE_J_BODY 0x01	/* the record must carry the body */
#define STORE_J_HDR 9		/* flags(1) || be64(time) in front of a jseq qid */

/* Note that the message under qkey changed, when its shard is journaled:
 * a new seq replaces the message's older entry, keeping its body flag. */
static int
store_journal_mark(struct store_txn *t, MDB_val *qkey, uint32_t shard,
		   bool body)
{
	struct store *st = t->st;
	unsigned char sk[8], qv[9], jv[8];
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
	be64_put(jv, seq);
	key.mv_size = strlen(STORE_META_JSEQ);
	key.mv_data = STORE_META_JSEQ;
	val.mv_size = sizeof(jv);
	val.mv_data = jv;
	return store_put(t, STORE_DB_META, &key, &val, 0);
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


/* The shard stored in front of qid's meta. */
static int
store_msg_shard(struct store_txn *t, MDB_val *key, uint32_t *shard)
{
	MDB_val val;
	int rc = store_get(t, STORE_DB_MSG, key, &val);

	if (rc != 0)
		return rc;
	if (val.mv_size < STORE_SHARD_LEN)
		return store_corrupt(t->st, "msg", key);
	*shard = be32_get(val.mv_data);
	return 0;
}

/* Write be32(shard) || meta in place (MDB_RESERVE: no staging copy). */
static int
store_msg_write(struct store_txn *t, MDB_val *key, uint32_t shard,
		const void *meta, size_t meta_len)
{
	MDB_val val = { STORE_SHARD_LEN + meta_len, NULL };
	int rc = store_put(t, STORE_DB_MSG, key, &val, MDB_RESERVE);

	if (rc != 0)
		return rc;
	be32_put(val.mv_data, shard);
	if (meta_len > 0)
		memcpy((char *)val.mv_data + STORE_SHARD_LEN, meta, meta_len);
	return 0;
}

int
store_msg_put(struct store_txn *t, const char *qid, uint32_t shard,
	      const void *meta, size_t meta_len, const void *body,
	      size_t body_len)
{
	unsigned char buf[STORE_KEY_MAX];
	MDB_val key, ikey, val = { body_len, (void *)body }, none = { 0, NULL };
	uint32_t old;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, qid, &key)) != 0)
		return rc;
	rc = store_msg_shard(t, &key, &old);
	if (rc == 0 && old != shard) {
		store_key(buf, old, 4, qid, &ikey);
		rc = store_del(t, STORE_DB_SHARD, &ikey);
	} else if (rc == -ENOENT) {
		rc = 0;
	}
	if (rc == 0)
		rc = store_count_change(t, &key, shard, meta, meta_len);
	/* LMDB copies the body straight into its overflow pages */
	if (rc == 0)
		rc = store_msg_write(t, &key, shard, meta, meta_len);
	if (rc == 0)
		rc = store_put(t, STORE_DB_BODY, &key, &val, 0);
	if (rc == 0) {
		store_key(buf, shard, 4, qid, &ikey);
		rc = store_put(t, STORE_DB_SHARD, &ikey, &none, 0);
	}
	if (rc == 0)
		rc = store_journal_mark(t, &key, shard, true);
	/* a read error too: half a message must not be committed */
	return rc ? store_fail(t, rc) : 0;
}

int
store_msg_set_meta(struct store_txn *t, const char *qid, const void *meta,
		   size_t meta_len)
{
	MDB_val key;
	uint32_t shard;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, qid, &key)) != 0 ||
	    (rc = store_msg_shard(t, &key, &shard)) != 0 ||
	    (rc = store_count_change(t, &key, shard, meta, meta_len)) != 0 ||
	    (rc = store_msg_write(t, &key, shard, meta, meta_len)) != 0)
		return rc;
	return store_journal_mark(t, &key, shard, false);
}

int
store_msg_get_meta(struct store_txn *t, const char *qid, const void **p,
		   size_t *len)
{
	MDB_val key, val;
	int rc;

	if ((rc = store_key(NULL, 0, 0, qid, &key)) != 0 ||
	    (rc = store_get(t, STORE_DB_MSG, &key, &val)) != 0)
		return rc;
	if (val.mv_size < STORE_SHARD_LEN)
		return store_corrupt(t->st, "msg", &key);
	*p = (const char *)val.mv_data + STORE_SHARD_LEN;
	*len = val.mv_size - STORE_SHARD_LEN;
	return 0;
}

int
store_msg_get_body(struct store_txn *t, const char *qid, const void **p,
		   size_t *len)
{
	MDB_val key;
	int rc = store_key(NULL, 0, 0, qid, &key);

	return rc ? rc : store_borrow(t, STORE_DB_BODY, &key, p, len);
}

int
store_msg_del(struct store_txn *t, const char *qid, uint32_t shard)
{
	unsigned char buf[STORE_KEY_MAX];
	MDB_val key, ikey;
	uint32_t stored;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(NULL, 0, 0, qid, &key)) != 0 ||
	    (rc = store_msg_shard(t, &key, &stored)) != 0)
		return rc;
	/* the record names the index entry that exists */
	if (stored != shard)
		log_warn("qid=%s event=store_del shard=%u stored_shard=%u", qid,
			 shard, stored);
	store_key(buf, stored, 4, qid, &ikey);
	if ((rc = store_count_change(t, &key, stored, NULL, 0)) != 0 ||
	    (rc = store_del(t, STORE_DB_MSG, &key)) != 0 ||
	    (rc = store_del(t, STORE_DB_BODY, &key)) != 0 ||
	    (rc = store_del(t, STORE_DB_SHARD, &ikey)) != 0)
		return rc;
	return store_journal_mark(t, &key, stored, false);
}

/* Call fn for the msg record under a qid key. */
static int
store_msg_visit(struct store_txn *t, const MDB_val *key, const MDB_val *val,
		store_msg_fn fn, void *arg)
{
	if (!store_is_qid(key->mv_data, key->mv_size) ||
	    val->mv_size < STORE_SHARD_LEN)
		return store_corrupt(t->st, "msg", key);
	return fn(key->mv_data, be32_get(val->mv_data),
		  (const char *)val->mv_data + STORE_SHARD_LEN,
		  val->mv_size - STORE_SHARD_LEN, arg);
}

static int
store_cursor_open(struct store_txn *t, enum store_db db, MDB_cursor **cur)
{
	int rc;

	if (t->err != 0)
		return t->err;
	rc = mdb_cursor_open(t->txn, t->st->dbi[db], cur);
	return rc ? store_err(t->st, rc, "cursor_open", store_db_names[db]) : 0;
}

/* Move a cursor. Returns 0, with key->mv_data NULL past the last entry,
 * or an error. */
static int
store_cursor_get(struct store_txn *t, MDB_cursor *cur, MDB_val *key,
		 MDB_val *val, MDB_cursor_op op)
{
	int rc = mdb_cursor_get(cur, key, val, op);

	if (rc == MDB_NOTFOUND)
		key->mv_data = NULL;
	else if (rc != 0)
		return store_err(t->st, rc, "cursor_get", "-");
	return 0;
}

int
store_msg_foreach(struct store_txn *t, store_msg_fn fn, void *arg)
{
	return store_msg_foreach_after(t, "", fn, arg);
}

int
store_msg_foreach_after(struct store_txn *t, const char *after,
			store_msg_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val key, val;
	MDB_cursor_op op = MDB_FIRST;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_MSG, &cur)) != 0)
		return rc;
	if (after[0]) {
		/* keys are qids with their NUL: position at the first key
		 * >= after, and step over `after` itself */
		key.mv_data = (void *)after;
		key.mv_size = strlen(after) + 1;
		op = MDB_SET_RANGE;
	}
	while ((rc = store_cursor_get(t, cur, &key, &val, op)) == 0 &&
	       key.mv_data != NULL) {
		op = MDB_NEXT;
		if (after[0] && key.mv_size == strlen(after) + 1 &&
		    memcmp(key.mv_data, after, key.mv_size) == 0)
			continue;
		if ((rc = store_msg_visit(t, &key, &val, fn, arg)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int
store_shard_foreach(struct store_txn *t, uint32_t shard, store_msg_fn fn,
		    void *arg)
{
	return store_shard_foreach_after(t, shard, "", fn, arg);
}

int
store_shard_foreach_after(struct store_txn *t, uint32_t shard,
			  const char *after, store_msg_fn fn, void *arg)
{
	unsigned char buf[STORE_KEY_MAX];
	MDB_cursor *cur;
	MDB_val ikey = { STORE_SHARD_LEN, buf }, key, val;
	MDB_cursor_op op = MDB_SET_RANGE;	/* be32(shard) sorts first */
	size_t skip = 0;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_SHARD, &cur)) != 0)
		return rc;
	be32_put(buf, shard);
	if (after[0] && store_key(buf, shard, STORE_SHARD_LEN, after,
				  &ikey) == 0)
		skip = ikey.mv_size;	/* position on `after`, step over it */
	while ((rc = store_cursor_get(t, cur, &ikey, &val, op)) == 0 &&
	       ikey.mv_data != NULL && ikey.mv_size > STORE_SHARD_LEN &&
	       be32_get(ikey.mv_data) == shard) {
		op = MDB_NEXT;
		if (skip && ikey.mv_size == skip &&
		    memcmp(ikey.mv_data, buf, skip) == 0)
			continue;
		key.mv_data = (char *)ikey.mv_data + STORE_SHARD_LEN;
		key.mv_size = ikey.mv_size - STORE_SHARD_LEN;
		rc = store_get(t, STORE_DB_MSG, &key, &val);
		if (rc == -ENOENT)	/* the index names a missing message */
			rc = store_corrupt(t->st, "shard", &ikey);
		if (rc != 0 ||
		    (rc = store_msg_visit(t, &key, &val, fn, arg)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

uint64_t
store_msg_count(struct store_txn *t)
{
	MDB_stat ms;
	int rc;

	if (t->err != 0)
		return 0;
	rc = mdb_stat(t->txn, t->st->dbi[STORE_DB_MSG], &ms);
	if (rc != 0) {
		store_err(t->st, rc, "stat", "msg");
		return 0;
	}
	return ms.ms_entries;
}

int
store_due_add(struct store_txn *t, uint64_t due, const char *qid)
{
	unsigned char buf[STORE_KEY_MAX];
	MDB_val key, none = { 0, NULL };
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(buf, due, 8, qid, &key)) != 0)
		return rc;
	return store_put(t, STORE_DB_DUE, &key, &none, 0);
}

int
store_due_del(struct store_txn *t, uint64_t due, const char *qid)
{
	unsigned char buf[STORE_KEY_MAX];
	MDB_val key;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(buf, due, 8, qid, &key)) != 0)
		return rc;
	return store_del(t, STORE_DB_DUE, &key);
}

int
store_due_foreach(struct store_txn *t, uint64_t from_due,
		  const char *from_qid, uint64_t now, size_t max,
		  store_due_fn fn, void *arg)
{
	unsigned char buf[STORE_KEY_MAX];
	MDB_cursor *cur;
	MDB_val key, val;
	MDB_cursor_op op = MDB_FIRST;
	uint64_t due;
	int rc;

	if (from_due != 0 || from_qid != NULL) {
		/* a bare time sorts before every qid at that time */
		be64_put(buf, from_due);
		key.mv_data = buf;
		key.mv_size = 8;
		if (from_qid != NULL && from_qid[0] != '\0' &&
		    store_key(buf, from_due, 8, from_qid, &key) != 0)
			return -EINVAL;
		op = MDB_SET_RANGE;
	}
	if ((rc = store_cursor_open(t, STORE_DB_DUE, &cur)) != 0)
		return rc;
	for (size_t n = 0; n < max; n++, op = MDB_NEXT) {
		rc = store_cursor_get(t, cur, &key, &val, op);
		if (rc != 0 || key.mv_data == NULL)
			break;
		if (key.mv_size <= 8 ||
		    !store_is_qid((char *)key.mv_data + 8, key.mv_size - 8)) {
			rc = store_corrupt(t->st, "due", &key);
			break;
		}
		due = be64_get(key.mv_data);
		if (due > now ||
		    (rc = fn(due, (const char *)key.mv_data + 8, arg)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int
store_due_first(struct store_txn *t, uint64_t *due)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_DUE, &cur)) != 0)
		return rc;
	rc = store_cursor_get(t, cur, &key, &val, MDB_FIRST);
	if (rc == 0 && key.mv_data == NULL)
		rc = -ENOENT;
	else if (rc == 0 && key.mv_size <= 8)
		rc = store_corrupt(t->st, "due", &key);
	else if (rc == 0)
		*due = be64_get(key.mv_data);
	mdb_cursor_close(cur);
	return rc;
}

static int
store_name_key(const char *name, MDB_val *key)
{
	size_t n = name == NULL ? 0 : strnlen(name, STORE_NAME_MAX + 1);

	if (n == 0 || n > STORE_NAME_MAX)
		return -EINVAL;
	key->mv_data = (void *)name;
	key->mv_size = n;
	return 0;
}

int
store_meta_get(struct store_txn *t, const char *name, const void **p,
	       size_t *len)
{
	MDB_val key;
	int rc = store_name_key(name, &key);

	return rc ? rc : store_borrow(t, STORE_DB_META, &key, p, len);
}

int
store_meta_put(struct store_txn *t, const char *name, const void *p,
	       size_t len)
{
	MDB_val key, val = { len, (void *)p };
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_name_key(name, &key)) != 0)
		return rc;
	return store_put(t, STORE_DB_META, &key, &val, 0);
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
	return rc;
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

/* ---- suppression list -------------------------------------------------- */

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

/* ---- tombstones ---------------------------------------------------------
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
 * from the first key that keeps pace with the writes. */

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

/* ---- queue counts -------------------------------------------------------
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
static int
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
static int
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

static void
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
