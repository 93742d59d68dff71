/* Webhook events in the store (node/webhook/ makes, sends and deletes
 * them; docs/webhooks.md): one record per event and webhook, written in
 * the transaction of the outcome it reports and journaled under its key
 * as a message is under its qid (store_journal.c), so it replicates with
 * the queue and a new primary finds what the old one had not sent.
 *
 * Layout (the other databases: store.c):
 *   whev  "^" || hook(4) || id(21) || shard(4 hex) \0 -> event (JSON text)
 *   whcnt hook(4)                   -> be64(events of the hook)
 *   whcnt hook(4) || be32(shard)    -> be64(events of the hook in shard)
 * hook is 4 Crockford base32 digits of the webhook's name (webhook.c),
 * id the event's id (a qid: unique cluster-wide, sorts by time), shard the
 * shard whose primary sends it. A key is 30 characters: it travels in the
 * journal as a qid does (QID_MAX), is never a qid or a suppression key
 * ('^' is neither alphabet), and sorts by webhook, then time, so a
 * webhook's oldest event is its first key and its backlog one range.
 * whcnt is kept by every put and delete, the peer's copies included, so
 * counting a backlog costs O(shards holding events), never a walk.
 *
 * Keys come from node/webhook/ or from the peer's stream (checked by
 * store_whev_key_parse() before use); we bound lengths. */
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "lib/be.h"
#include "lib/xmalloc.h"
#include "node/store/store.h"
#include "node/store/store_int.h"

/* Crockford base32 as qids use it (lib/qid.c): digits and upper case
 * letters but I, L, O, U. */
static bool
store_whev_is_b32(char c)
{
	return (c >= '0' && c <= '9') ||
	       (c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' &&
		c != 'U');
}

static int
store_whev_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void
store_whev_key(const char *hook, const char *id, uint32_t shard,
	       char out[STORE_WHEV_KEY_MAX])
{
	static const char hex[] = "0123456789abcdef";

	out[0] = STORE_WHEV_TAG;
	memcpy(out + 1, hook, STORE_WHEV_HOOK_LEN);
	memcpy(out + 1 + STORE_WHEV_HOOK_LEN, id, QID_LEN);
	for (int i = 0; i < 4; i++)
		out[1 + STORE_WHEV_HOOK_LEN + QID_LEN + i] =
			hex[(shard >> (12 - 4 * i)) & 0xf];
	out[STORE_WHEV_KEY_LEN] = '\0';
}

bool
store_whev_key_parse(const char *key, uint32_t *shard)
{
	uint32_t s = 0;
	size_t n = strnlen(key, STORE_WHEV_KEY_MAX);

	if (n != STORE_WHEV_KEY_LEN || key[0] != STORE_WHEV_TAG)
		return false;
	for (size_t i = 1; i < 1 + STORE_WHEV_HOOK_LEN + QID_LEN; i++)
		if (!store_whev_is_b32(key[i]))
			return false;
	for (size_t i = STORE_WHEV_KEY_LEN - 4; i < STORE_WHEV_KEY_LEN; i++) {
		int v = store_whev_hex(key[i]);

		if (v < 0)
			return false;
		s = (s << 4) | (uint32_t)v;
	}
	if (shard != NULL)
		*shard = s;
	return true;
}

/* Add delta to one whcnt record (k bytes of hook, with the shard or
 * not); a count reaching 0 is deleted. */
static int
store_whev_count_add(struct store_txn *t, const char *hook, uint32_t shard,
		     bool per_shard, int delta)
{
	unsigned char kb[STORE_WHEV_HOOK_LEN + 4], vb[8];
	MDB_val key = { STORE_WHEV_HOOK_LEN + (per_shard ? 4 : 0), kb }, val;
	uint64_t n = 0;
	int rc;

	memcpy(kb, hook, STORE_WHEV_HOOK_LEN);
	if (per_shard)
		be32_put(kb + STORE_WHEV_HOOK_LEN, shard);
	rc = store_get(t, STORE_DB_WHCNT, &key, &val);
	if (rc == 0 && val.mv_size == 8)
		n = be64_get(val.mv_data);
	else if (rc != 0 && rc != -ENOENT)
		return rc;
	if (delta < 0 && n < (uint64_t)-delta)
		n = 0; /* never below zero, whatever was stored */
	else
		n += (uint64_t)(int64_t)delta;
	if (n == 0)
		return store_del(t, STORE_DB_WHCNT, &key);
	be64_put(vb, n);
	val.mv_size = sizeof(vb);
	val.mv_data = vb;
	return store_put(t, STORE_DB_WHCNT, &key, &val, 0);
}

static int
store_whev_count_both(struct store_txn *t, const char *key, uint32_t shard,
		      int delta)
{
	int rc = store_whev_count_add(t, key + 1, shard, false, delta);

	return rc ? rc : store_whev_count_add(t, key + 1, shard, true, delta);
}

int
store_whev_put(struct store_txn *t, const char *key, const void *ev,
	       size_t len)
{
	MDB_val k = { STORE_WHEV_KEY_LEN + 1, (void *)key }, val;
	uint32_t shard;
	bool is_new;
	int rc;

	if ((rc = store_writable(t)) != 0)
		return rc;
	if (!store_whev_key_parse(key, &shard) || len == 0 ||
	    len > STORE_WHEV_MAX)
		return -EINVAL;
	rc = store_get(t, STORE_DB_WHEV, &k, &val);
	if (rc != 0 && rc != -ENOENT)
		return rc;
	is_new = rc == -ENOENT;
	/* events wait; mail, results and retirements may not: a new one
	 * takes no room they need */
	if (is_new && !store_room_for_extras(t, STORE_WHEV_KEY_MAX + len))
		return -EDQUOT;
	val.mv_size = len;
	val.mv_data = (void *)ev;
	if ((rc = store_put(t, STORE_DB_WHEV, &k, &val, 0)) != 0)
		return rc;
	if (is_new && (rc = store_whev_count_both(t, key, shard, 1)) != 0)
		return rc;
	rc = store_journal_mark(t, &k, shard, false);
	return rc ? store_fail(t, rc) : 0;
}

int
store_whev_get(struct store_txn *t, const char *key, const void **p,
	       size_t *len)
{
	MDB_val k = { STORE_WHEV_KEY_LEN + 1, (void *)key }, val;
	int rc;

	if (!store_whev_key_parse(key, NULL))
		return -EINVAL;
	if ((rc = store_get(t, STORE_DB_WHEV, &k, &val)) != 0)
		return rc;
	*p = val.mv_data;
	*len = val.mv_size;
	return 0;
}

int
store_whev_del(struct store_txn *t, const char *key)
{
	MDB_val k = { STORE_WHEV_KEY_LEN + 1, (void *)key }, val;
	uint32_t shard;
	int rc;

	if ((rc = store_writable(t)) != 0)
		return rc;
	if (!store_whev_key_parse(key, &shard))
		return -EINVAL;
	if ((rc = store_get(t, STORE_DB_WHEV, &k, &val)) != 0)
		return rc;
	if ((rc = store_del(t, STORE_DB_WHEV, &k)) != 0 ||
	    (rc = store_whev_count_both(t, key, shard, -1)) != 0)
		return rc;
	rc = store_journal_mark(t, &k, shard, false);
	return rc ? store_fail(t, rc) : 0;
}

int
store_whev_foreach(struct store_txn *t, const char *hook, const char *after,
		   store_whev_fn fn, void *arg)
{
	char prefix[1 + STORE_WHEV_HOOK_LEN];
	size_t plen = hook ? sizeof(prefix) : 1;
	size_t alen = after ? strnlen(after, STORE_WHEV_KEY_MAX) : 0;
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	prefix[0] = STORE_WHEV_TAG;
	if (hook)
		memcpy(prefix + 1, hook, STORE_WHEV_HOOK_LEN);
	if ((rc = store_cursor_open(t, STORE_DB_WHEV, &cur)) != 0)
		return rc;
	key.mv_data = alen ? (void *)after : prefix;
	key.mv_size = alen ? alen + 1 : plen;
	rc = store_cursor_get(t, cur, &key, &val, MDB_SET_RANGE);
	while (rc == 0 && key.mv_data != NULL) {
		uint32_t shard;
		const char *k = key.mv_data;

		if (key.mv_size < plen || memcmp(k, prefix, plen) != 0)
			break;
		if (alen && key.mv_size == alen + 1 &&
		    memcmp(k, after, alen + 1) == 0) {
			/* `after` itself was seen */
		} else if (key.mv_size != STORE_WHEV_KEY_MAX ||
			   k[STORE_WHEV_KEY_LEN] != '\0' ||
			   !store_whev_key_parse(k, &shard)) {
			rc = store_corrupt(t->st, "whev", &key);
			break;
		} else if ((rc = fn(k, shard, val.mv_data, val.mv_size,
				    arg)) != 0) {
			break;
		}
		rc = store_cursor_get(t, cur, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc;
}

uint64_t
store_whev_count(struct store_txn *t, const char *hook)
{
	MDB_val key = { STORE_WHEV_HOOK_LEN, (void *)hook }, val;

	if (store_get(t, STORE_DB_WHCNT, &key, &val) != 0 || val.mv_size != 8)
		return 0;
	return be64_get(val.mv_data);
}

int
store_whev_count_foreach(struct store_txn *t, const char *hook,
			 store_whev_count_fn fn, void *arg)
{
	unsigned char kb[STORE_WHEV_HOOK_LEN + 4];
	MDB_cursor *cur;
	MDB_val key = { sizeof(kb), kb }, val;
	int rc;

	memcpy(kb, hook, STORE_WHEV_HOOK_LEN);
	be32_put(kb + STORE_WHEV_HOOK_LEN, 0);
	if ((rc = store_cursor_open(t, STORE_DB_WHCNT, &cur)) != 0)
		return rc;
	rc = store_cursor_get(t, cur, &key, &val, MDB_SET_RANGE);
	while (rc == 0 && key.mv_data != NULL &&
	       key.mv_size == STORE_WHEV_HOOK_LEN + 4 &&
	       memcmp(key.mv_data, hook, STORE_WHEV_HOOK_LEN) == 0) {
		if (val.mv_size == 8 &&
		    (rc = fn(be32_get((const unsigned char *)key.mv_data +
				      STORE_WHEV_HOOK_LEN),
			     be64_get(val.mv_data), arg)) != 0)
			break;
		rc = store_cursor_get(t, cur, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc;
}

struct store_whev_touch {
	struct store_txn *t;
	uint64_t *n;
};

static int
store_whev_touch_one(const char *key, uint32_t shard, const void *ev,
		     size_t len, void *arg)
{
	struct store_whev_touch *wt = arg;
	MDB_val k = { STORE_WHEV_KEY_LEN + 1, (void *)key };
	struct store *st = wt->t->st;

	(void)ev;
	(void)len;
	if (shard >= st->n_journaled || !st->journaled[shard])
		return 0;
	(*wt->n)++;
	return store_journal_mark(wt->t, &k, shard, false);
}

int
store_whev_touch(struct store_txn *t, uint64_t *n)
{
	struct store_whev_touch wt = { t, n };
	int rc;

	if ((rc = store_writable(t)) != 0)
		return rc;
	rc = store_whev_foreach(t, NULL, NULL, store_whev_touch_one, &wt);
	return rc ? store_fail(t, rc) : 0;
}

struct store_whev_purge {
	uint32_t shard;
	char (*keys)[STORE_WHEV_KEY_MAX];
	size_t n, cap;
};

static int
store_whev_purge_one(const char *key, uint32_t shard, const void *ev,
		     size_t len, void *arg)
{
	struct store_whev_purge *p = arg;

	(void)ev;
	(void)len;
	if (shard != p->shard)
		return 0;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->keys = xrealloc(p->keys, p->cap * sizeof(*p->keys));
	}
	memcpy(p->keys[p->n++], key, STORE_WHEV_KEY_MAX);
	return 0;
}

int
store_whev_purge(struct store_txn *t, uint32_t shard, uint64_t *n)
{
	struct store_whev_purge p = { .shard = shard };
	int rc;

	if ((rc = store_writable(t)) != 0)
		return rc;
	rc = store_whev_foreach(t, NULL, NULL, store_whev_purge_one, &p);
	for (size_t i = 0; rc == 0 && i < p.n; i++)
		rc = store_whev_del(t, p.keys[i]);
	*n += p.n;
	free(p.keys);
	return rc;
}
