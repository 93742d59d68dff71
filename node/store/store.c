/* The node's durable queue on LMDB: the environment and its transactions,
 * the messages (meta, body, the shard and due indexes), node metadata,
 * and the primitives every section of node/store/ writes through (LMDB's
 * errors mapped onto Shoal's, qid keys; node/store/store_int.h). The other
 * sections live beside it: the replication journal (store_journal.c), the
 * suppression list (store_supp.c), tombstones (store_tomb.c), the queue
 * counts (store_counts.c) and webhook events (store_whev.c). Group commit
 * belongs to node/store/commit.c. meta is an opaque packed protobuf
 * here; only the queue counts read it (store_count_record). Qids come
 * from peers through callers that validated them; we bound length.
 *
 * Layout, the whole on-disk format. Every qid in a key keeps its NUL, so
 * walkers hand out the key itself as a C string living as long as the
 * transaction:
 *   msg   qid\0                -> be32(shard) || meta
 *   body  qid\0                -> body
 *   due   be64(due) || qid\0   -> class(1), or empty for class 0
 *   shard be32(shard) || qid\0 -> empty
 *   meta  name                 -> value
 *   jseq  be64(seq)            -> flags(1) || be64(noted) || qid\0
 *   jqid  qid\0                -> be64(seq) || flags(1)
 *   supp  key\0                -> be32(shard) || packed SuppressEntry
 *   tomb  qid\0                -> empty
 *   counts be32(shard)         -> be64 messages, queued, deferred, held
 *   whev  "^" hook id shard\0  -> event (JSON text)
 *   whcnt hook [|| be32(shard)] -> be64 events
 * jseq/jqid are the replication journal (store_journal.c), supp the
 * suppression list (store_supp.c), tomb the qids this node finished
 * (store_tomb.c), counts the queue counts per shard (store_counts.c),
 * whev/whcnt the webhook events not yet sent and their counts
 * (store_whev.c). A database added since (tomb, counts, whev, whcnt) is
 * created empty at the next open of an older environment. The shard in
 * front of meta lets replace and delete find the shard index entry
 * without unpacking meta, and the walkers report it. Integers are
 * big-endian (lib/be.h), so keys sort as their numbers.
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
#include <unistd.h>

#include "lib/be.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"
#include "node/store/store_int.h"

#define STORE_NAME_MAX 128		/* meta names are our constants */
/* MDB_NOTLS gives every read txn its own slot and deliveries may hold one
 * while sending a body: more than LMDB's default of 126. */
#define STORE_READERS_MAX 1024

static const char *const store_db_names[STORE_DB_COUNT] = {
	"msg", "body", "due", "shard", "meta", "jseq", "jqid", "supp", "tomb", "counts",
	"whev", "whcnt", "local",
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
 * MDB_NOTFOUND is an answer, not a failure. Full, whether the disk or the
 * map, also clears the slots of dead readers (a killed mdb_dump, say):
 * the pages they pin are the room the next write looks for. */
int
store_err(struct store *st, int rc, const char *op, const char *db)
{
	int err = store_code(rc);

	if (err == SHOAL_E_STORAGE_FULL && !st->is_full)
		log_warn("store dir=%s event=full op=%s db=%s error=\"%s\"",
			 st->dir, op, db, mdb_strerror(rc));
	else if (err != SHOAL_E_STORAGE_FULL && err != -ENOENT)
		log_error("store dir=%s op=%s db=%s error=\"%s\"", st->dir, op,
			  db, mdb_strerror(rc));
	if (err == SHOAL_E_STORAGE_FULL) {
		st->is_full = true;
		store_readers_clear(st);
	}
	return err;
}

int
store_corrupt(struct store *st, const char *db, const MDB_val *key)
{
	log_error("store dir=%s event=corrupt db=%s key_len=%zu", st->dir, db,
		  key->mv_size);
	return -EIO;
}

/* Key of qid: be(prefix) in prefix_len bytes (0, 4 or 8), then qid and its
 * NUL. With no prefix the key points at qid itself. */
int
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

int
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
int
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
int
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
int
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

int
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
int
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
store_due_put(struct store_txn *t, uint64_t due, const char *qid,
	      uint32_t cls)
{
	unsigned char buf[STORE_KEY_MAX], c = (unsigned char)cls;
	MDB_val key, val = { cls ? 1 : 0, cls ? &c : NULL };
	int rc;

	if (cls > UINT8_MAX)
		return -EINVAL;
	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_key(buf, due, 8, qid, &key)) != 0)
		return rc;
	return store_put(t, STORE_DB_DUE, &key, &val, 0);
}

int
store_due_add(struct store_txn *t, uint64_t due, const char *qid)
{
	return store_due_put(t, due, qid, 0);
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
		    (rc = fn(due, (const char *)key.mv_data + 8,
			     val.mv_size ? *(const unsigned char *)val.mv_data :
					   0,
			     arg)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int
store_msg_oldest(struct store_txn *t, char qid[QID_LEN + 1])
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if ((rc = store_cursor_open(t, STORE_DB_MSG, &cur)) != 0)
		return rc;
	rc = store_cursor_get(t, cur, &key, &val, MDB_FIRST);
	if (rc == 0 && key.mv_data == NULL)
		rc = -ENOENT;
	else if (rc == 0 && (key.mv_size != QID_LEN + 1 ||
			     !qid_valid(key.mv_data, QID_LEN)))
		rc = store_corrupt(t->st, "msg", &key);
	else if (rc == 0)
		memcpy(qid, key.mv_data, QID_LEN + 1);
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

