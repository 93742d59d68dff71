/* The node's queue in LMDB: messages (meta + body), the due-time index and
 * node metadata (node id, shard map). Every write happens inside a
 * transaction; a commit is one fsync, so callers batch (group commit).
 *
 * Databases in the environment:
 *   msg   qid -> be32(shard) || packed shoal.StoredMessage
 *   body  qid -> message body as it will be delivered
 *   due   be64(unix seconds) || qid -> empty   (finding due work is O(due))
 *   shard be32(shard) || qid -> empty          (shard moves, listings)
 *   meta  name -> value                        (node id, shard map, ...)
 *   counts be32(shard) -> queue counts         (status, /metrics: below)
 * and the journal, suppression list, tombstones and webhook events
 * (sections below). The whole on-disk layout: node/store/store.c; each
 * section has its own file there.
 *
 * Memory: values handed out by a transaction are LMDB's and live only until
 * that transaction ends (in a write transaction: until its next write).
 * Keys store each qid with its NUL, so qids handed out are C strings.
 * Nothing is cached in RAM: the queue can be larger than memory. */
#ifndef SHOAL_NODE_STORE_H
#define SHOAL_NODE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/qid.h"

struct store;
struct store_txn;

/* Open (creating if needed) the environment in dir, which must exist, with
 * the given map size in bytes. Returns 0 and sets *out, or -errno (logged).
 * Opened with MDB_NOTLS (several read transactions may overlap on one
 * thread); one write transaction at a time. Returns SHOAL_E_STORAGE_FULL
 * when the map cannot even hold the databases. */
int store_open(const char *dir, uint64_t map_size, struct store **out);

/* Close the environment. store_close(NULL) does nothing. No transaction may
 * be open. */
void store_close(struct store *st);

/* Drop this process's mappings of the queue file's pages: madvise
 * MADV_DONTNEED over the used part of LMDB's map, which is read-only and
 * shared (no MDB_WRITEMAP). The pages stay in the kernel's page cache and
 * the next read maps them again with the same bytes, so open read
 * transactions are unaffected. Without it every message ever read stays in
 * the node's RSS (2.2 GiB with a million queued, bench/scale.sh). */
void store_release_pages(struct store *st);

/* Begin a transaction. Returns 0 and sets *out, or -errno. */
int store_txn_begin(struct store *st, bool read_only, struct store_txn **out);

/* Commit and fsync. The transaction is gone afterwards whatever the result.
 * Returns 0, SHOAL_E_STORAGE_FULL (MDB_MAP_FULL or ENOSPC: nothing of the
 * transaction was kept), or -errno. */
int store_txn_commit(struct store_txn *t);

/* Commit like store_txn_commit, but leave the final meta page write
 * unsynced: the commit is durable only after a later commit reports
 * *synced or store_sync() returns 0 (a crash before that loses it as a
 * whole, never part of it). *synced: this commit fdatasynced, which made
 * every earlier commit durable (false when it changed nothing, as LMDB
 * then writes nothing). For group commit, which holds the batch's
 * callbacks until then. */
int store_txn_commit_lazy(struct store_txn *t, bool *synced);

/* Make every commit so far durable (fdatasync). Returns 0 or -errno. */
int store_sync(struct store *st);

/* Throw a transaction away. store_txn_abort(NULL) does nothing. */
void store_txn_abort(struct store_txn *t);

/* Put a new message, or replace an existing one with the same qid
 * (idempotent for replication). Adds the shard index entry. Does not touch
 * the due index. Returns 0, SHOAL_E_STORAGE_FULL, -EINVAL (empty or
 * over-long qid), -EACCES (read-only txn), or -errno. After
 * SHOAL_E_STORAGE_FULL the transaction must be aborted. */
int store_msg_put(struct store_txn *t, const char *qid, uint32_t shard,
		  const void *meta, size_t meta_len, const void *body,
		  size_t body_len);

/* Replace only the meta record of an existing message. Returns 0, -ENOENT,
 * SHOAL_E_STORAGE_FULL or -errno. */
int store_msg_set_meta(struct store_txn *t, const char *qid, const void *meta,
		       size_t meta_len);

/* Borrow the meta or body of a message; *p stays valid until the
 * transaction ends. Returns 0, -ENOENT, or -errno. */
int store_msg_get_meta(struct store_txn *t, const char *qid, const void **p,
		       size_t *len);
int store_msg_get_body(struct store_txn *t, const char *qid, const void **p,
		       size_t *len);

/* Remove a message (meta, body and its shard index entry; the caller removes
 * its due entries). Returns 0, -ENOENT or -errno. */
int store_msg_del(struct store_txn *t, const char *qid, uint32_t shard);

/* Called for each message; return 0 to go on, anything else stops the walk
 * and is returned by the walker. qid and meta live until the txn ends. */
typedef int (*store_msg_fn)(const char *qid, uint32_t shard, const void *meta,
			    size_t meta_len, void *arg);

/* Walk every message in qid order. Returns 0, the callback's stop value, or
 * -errno. */
int store_msg_foreach(struct store_txn *t, store_msg_fn fn, void *arg);

/* Walk the messages whose qid sorts after `after` ("" for all), in qid
 * order: a page of a listing costs O(page), not O(queue). Same returns. */
int store_msg_foreach_after(struct store_txn *t, const char *after,
			    store_msg_fn fn, void *arg);

/* Walk the messages of one shard in qid order. Same returns. */
int store_shard_foreach(struct store_txn *t, uint32_t shard, store_msg_fn fn,
			void *arg);

/* The same from the first qid after `after` ("" for all): a batch of a
 * shard move costs O(batch). */
int store_shard_foreach_after(struct store_txn *t, uint32_t shard,
			      const char *after, store_msg_fn fn, void *arg);

/* Number of messages held. */
uint64_t store_msg_count(struct store_txn *t);

/* The oldest message held (qids sort by time: the first key), replica
 * copies included: 0 with its qid, -ENOENT when there is none, or an
 * error. */
int store_msg_oldest(struct store_txn *t, char qid[QID_LEN + 1]);

/* Add or remove a due-index entry: qid is due at time `due` (unix seconds).
 * Adding an existing entry and removing a missing one are not errors.
 * store_due_put() keeps the message's priority class with the entry (the
 * proto Priority value, so the scheduler sees it without reading the
 * message); store_due_add() is class 0, normal (DSNs, tests). */
int store_due_put(struct store_txn *t, uint64_t due, const char *qid,
		  uint32_t cls);
int store_due_add(struct store_txn *t, uint64_t due, const char *qid);
int store_due_del(struct store_txn *t, uint64_t due, const char *qid);

/* Called for each due entry in time order with its class (0 for an entry
 * written without one); same stop rule as store_msg_fn. */
typedef int (*store_due_fn)(uint64_t due, const char *qid, uint32_t cls,
			    void *arg);

/* Walk due entries with time <= now, at most max of them, oldest first,
 * starting at the entry (from_due, from_qid) or the first one after it
 * (from_due 0 and from_qid NULL: from the oldest). Cost is O(entries
 * visited). Returns 0, the callback's stop value, or -errno. The callback
 * must not modify the due index through t. */
int store_due_foreach(struct store_txn *t, uint64_t from_due,
		      const char *from_qid, uint64_t now, size_t max,
		      store_due_fn fn, void *arg);

/* The earliest due time in the index. Returns 0 and sets *due, or -ENOENT
 * when the index is empty. */
int store_due_first(struct store_txn *t, uint64_t *due);

/* Node metadata by name (e.g. "node_id", "shard_map"). get borrows until
 * the txn ends; returns 0, -ENOENT or -errno. put returns 0,
 * SHOAL_E_STORAGE_FULL or -errno. */
int store_meta_get(struct store_txn *t, const char *name, const void **p,
		   size_t *len);
int store_meta_put(struct store_txn *t, const char *name, const void *p,
		   size_t len);

/* ---- replication journal (node/store/store_journal.c) ----
 * Changes to messages in journaled shards (those this node is primary
 * for) are noted in the same transaction: put, set_meta and del each give
 * the message a new sequence number, replacing its older entry. */

/* Which shards are journaled from now on: on[s] != 0. Copied. */
void store_journal_shards(struct store *st, const uint8_t *on, uint32_t n);

/* The highest seq this transaction gave out, 0 when none. */
uint64_t store_txn_journal_seq(const struct store_txn *t);

/* The highest seq given out since the store was opened (committed or not). */
uint64_t store_journal_seq(const struct store *st);

/* The seq of qid's entry in the journal: 0 and *seq, or -ENOENT when it
 * has none (its newest change is acknowledged, or not journaled). *body:
 * whether the entry carries the body, that is whether the message itself
 * (not only a later change to it) may be unacknowledged. */
int store_journal_seq_of(struct store_txn *t, const char *qid, uint64_t *seq,
			 bool *body);

/* Give out n seqs (n >= 1) with no journal entry, for records sent to
 * the peer as they are (node/cluster/repl_hook.c); returns the first.
 * Never given out again: the next change that is journaled stores the
 * highest seq, and a start skips past any a crash lost (repl.c). */
uint64_t store_journal_take(struct store *st, uint64_t n);

/* Give out no seq up to the current one + n: the next change gets a seq
 * above that. Stored in t like any change of the seq (repl.c: a restart
 * never gives a seq out twice, not even one a lost commit had shipped). */
int store_journal_skip(struct store_txn *t, uint64_t n);

/* Journal a message as changed, body included (a full resync). */
int store_journal_touch(struct store_txn *t, const char *qid, uint32_t shard);

/* Called for each entry in seq order: the message's qid, whether its body
 * must travel, and when it was noted (unix seconds). Same stop rule as
 * store_msg_fn. */
typedef int (*store_journal_fn)(uint64_t seq, const char *qid, bool body,
				uint64_t noted, void *arg);

/* Walk at most max entries with seq > after. Returns 0, the callback's
 * stop value, or -errno. */
int store_journal_foreach(struct store_txn *t, uint64_t after, size_t max,
			  store_journal_fn fn, void *arg);

/* Drop at most max entries with seq <= upto (the peer has them). Returns
 * how many were dropped (max: more may be left), or -errno. */
int store_journal_trim(struct store_txn *t, uint64_t upto, size_t max);

/* The highest seq given out by the transactions committed before t
 * (store_journal_seq() counts those still open or failed too). */
uint64_t store_journal_head(struct store_txn *t);

/* Entries held, and the newest seq (-ENOENT when empty). */
uint64_t store_journal_count(struct store_txn *t);
int store_journal_last(struct store_txn *t, uint64_t *seq);

/* ---- suppression list (node/store/store_supp.c for node/suppress/;
 * keys: lib/suppress_key.h) ----
 * supp  key -> be32(shard) || entry. A put or del of a key whose shard is
 * journaled is journaled under the key, as a message under its qid. */

#define STORE_SHARD_NONE UINT32_MAX /* a local record: never journaled */

/* Put (or replace) an entry. Returns 0, -EINVAL (bad key),
 * SHOAL_E_STORAGE_FULL or -errno. */
int store_supp_put(struct store_txn *t, const char *key, uint32_t shard,
		   const void *entry, size_t len);

/* Borrow an entry until the txn ends. Returns 0, -ENOENT or -errno. */
int store_supp_get(struct store_txn *t, const char *key, const void **p,
		   size_t *len);

/* Remove an entry. Returns 0, -ENOENT or -errno. */
int store_supp_del(struct store_txn *t, const char *key);

/* Walk the entries whose key starts with prefix, in key order, from the
 * first key after `after` ("" for all); fn gets the key as qid, the shard
 * and the entry as meta. Same stop rule and returns as store_msg_foreach.
 * fn must not change the list through t. */
int store_supp_foreach(struct store_txn *t, const char *prefix,
		       const char *after, store_msg_fn fn, void *arg);

/* Entries and pending adds held. */
uint64_t store_supp_count(struct store_txn *t);

/* ---- room for new mail (node/store/store_room.c) ---- */

/* Who adds new messages: mail from routers, or the peer's copies. */
enum store_admit {
	STORE_ADMIT_MAIL,
	STORE_ADMIT_REPLICA,
	STORE_ADMIT_KINDS,
};

/* May t add a new message of `bytes` and still leave the store's reserve
 * for what frees space (results, retirements)? Mail must leave all of the
 * reserve, the peer's copies half. 0, SHOAL_E_STORAGE_FULL (logged when a
 * kind reaches the reserve and when it has room again), or -EINVAL.
 * Results, DSNs and deletions never ask. Safe in a group-commit apply
 * that runs twice (commit.h): outside t it changes only the room
 * estimate, which a rerun lowers once more (erring toward a refusal until
 * the next measurement, at most 100 ms later), and logs transitions only. */
int store_admit(struct store_txn *t, size_t bytes, enum store_admit kind);

/* May t add bytes of what can be dropped (webhook events) and still
 * leave half of what the store can hold (and at least twice the
 * reserve)? Such records never take the room new mail, results and
 * retirements need. Measures as store_admit() does. */
bool store_room_for_extras(struct store_txn *t, size_t bytes);

/* What the queue file uses now, the most it could hold (used plus what
 * the map and the file system still allow), and the room left for new
 * mail (what it may grow by plus the pages LMDB freed for reuse, as
 * store_admit() last measured it), in bytes: 0, or -EIO. The file never
 * shrinks: room, not used, says how full the store is. */
int store_usage(struct store *st, uint64_t *used, uint64_t *capacity,
		uint64_t *room);

/* ---- tombstones (node/store/store_tomb.c says what they cost) ----
 *   tomb  qid\0 -> empty
 * The qids of messages this node finished, so that a resend or a handback
 * of one is recognised after the message is gone. */

/* How long a tombstone outlives the time in its qid (when the router
 * accepted the message): delivery.max_queue_lifetime's default plus a
 * day, until store_tomb_keep() says otherwise. */
#define STORE_TOMB_KEEP_DEFAULT (432000u + 86400u)

void store_tomb_keep(struct store *st, uint64_t seconds);

/* Remove a message for good: as store_msg_del (journaled; the caller
 * removes its due entry), and note its qid as finished, also when the
 * message was not held here (a final deletion from the peer's stream).
 * Drops a few expired tombstones on the way. Returns 0, -EINVAL (bad
 * qid), SHOAL_E_STORAGE_FULL or -errno. Only for a final outcome; not for
 * a message that lives on elsewhere (moved away) or whose client was told
 * 4xx (withdrawn: the qid may come again), here or on the peer: those use
 * store_msg_del. The tombstone is what tells the peer the difference
 * (repl_record_fill()). */
int store_msg_retire(struct store_txn *t, const char *qid, uint32_t shard);

/* Whether qid was finished here: 0 yes, -ENOENT no, or -errno. */
int store_tomb_has(struct store_txn *t, const char *qid);

/* Drop at most max tombstones whose qid's time is more than the keep
 * time before now (unix seconds), oldest first. Returns how many, or
 * -errno. */
int store_tomb_trim(struct store_txn *t, uint64_t now, size_t max);

/* Tombstones held. */
uint64_t store_tomb_count(struct store_txn *t);
/* ---- webhook events (node/store/store_whev.c; node/webhook/ owns them) ----
 *   whev  "^" || hook(4) || id(21) || shard(4 hex) \0 -> event (JSON text)
 *   whcnt hook(4) [|| be32(shard)] -> be64 events held
 * One record per event and webhook, journaled under its key in the shard
 * it names (as a message under its qid), so it replicates with the queue.
 * Counts include the peer's copies held here. */

#define STORE_WHEV_TAG '^'
#define STORE_WHEV_HOOK_LEN 4                           /* base32 digits */
#define STORE_WHEV_KEY_LEN (1 + STORE_WHEV_HOOK_LEN + QID_LEN + 4) /* 30 */
#define STORE_WHEV_KEY_MAX (STORE_WHEV_KEY_LEN + 1)
#define STORE_WHEV_MAX 16384 /* bytes of one event: fields bounded by
				node/webhook/webhook_event.c */

/* The key of event id (QID_LEN characters) for the webhook whose digits
 * are hook (STORE_WHEV_HOOK_LEN characters), sent by shard's primary. */
void store_whev_key(const char *hook, const char *id, uint32_t shard,
		    char out[STORE_WHEV_KEY_MAX]);

/* Whether key (a NUL-terminated string, maybe from a peer) is an event
 * key, and if so its shard (shard may be NULL). */
bool store_whev_key_parse(const char *key, uint32_t *shard);

/* Put (or replace) an event; journaled. Returns 0, -EINVAL (bad key,
 * empty or over STORE_WHEV_MAX), -EDQUOT (not written, t unharmed: the
 * store has too little room to spare for events,
 * store_room_for_extras()), SHOAL_E_STORAGE_FULL or -errno. */
int store_whev_put(struct store_txn *t, const char *key, const void *ev,
		   size_t len);

/* Borrow an event until the txn ends. Returns 0, -ENOENT, -EINVAL or
 * -errno. */
int store_whev_get(struct store_txn *t, const char *key, const void **p,
		   size_t *len);

/* Remove an event; journaled. Returns 0, -ENOENT, -EINVAL or -errno. */
int store_whev_del(struct store_txn *t, const char *key);

/* Called for each event in key order: its key (a C string living until
 * the txn ends), shard and JSON text. Same stop rule as store_msg_fn. */
typedef int (*store_whev_fn)(const char *key, uint32_t shard, const void *ev,
			     size_t len, void *arg);

/* Walk the events of the webhook hook (NULL: of all), from the first key
 * after `after` (NULL or "" for all). fn must not change whev through t.
 * Returns 0, the callback's stop value, or -errno (-EIO: a bad key). */
int store_whev_foreach(struct store_txn *t, const char *hook,
		       const char *after, store_whev_fn fn, void *arg);

/* Events of the webhook hook held here, O(1). */
uint64_t store_whev_count(struct store_txn *t, const char *hook);

/* Called for each shard holding events of a webhook, in shard order. */
typedef int (*store_whev_count_fn)(uint32_t shard, uint64_t n, void *arg);

/* Walk a webhook's counts per shard: O(shards holding its events). */
int store_whev_count_foreach(struct store_txn *t, const char *hook,
			     store_whev_count_fn fn, void *arg);

/* Journal every event of the journaled shards again (a full resync),
 * adding their number to *n. Returns 0 or a store error. */
int store_whev_touch(struct store_txn *t, uint64_t *n);

/* Delete every event of shard (moved away: its new pair sends them),
 * adding their number to *n. A walk of every event held: for shard moves
 * and purges, not for the loop's steady work. Returns 0 or a store
 * error. */
int store_whev_purge(struct store_txn *t, uint32_t shard, uint64_t *n);
/* ---- queue counts (node/store/store_counts.c) ----
 * Per shard: messages, recipients queued and deferred of messages not
 * held, and held messages, as node/ops/admin.c reports them. Kept in the
 * transaction that changes a message (store_msg_put, store_msg_set_meta,
 * store_msg_del), so reading them costs O(shards) at any queue size.
 * store_open() rebuilds them once, by a walk it logs, when they are
 * missing (a queue written before they existed) or were not kept by the
 * last writer (an older binary wrote since). */

struct store_counts {
	uint64_t messages; /* all of the shard's messages */
	uint64_t queued;   /* recipients RCPT_QUEUED, not held */
	uint64_t deferred; /* recipients RCPT_DEFERRED, not held */
	uint64_t held;	   /* messages held */
};

/* The counts one message record adds: meta is a packed
 * shoal.StoredMessage. A record that does not unpack counts as a message
 * and nothing else (it is still there). The one rule both the commit path
 * and the rebuild use. */
void store_count_record(const void *meta, size_t meta_len,
			struct store_counts *out);

/* Called for each shard that holds messages, in shard order; same stop
 * rule as store_msg_fn. */
typedef int (*store_count_fn)(uint32_t shard, const struct store_counts *c,
			      void *arg);

/* Walk the counts as of t: O(shards holding messages). Returns 0, the
 * callback's stop value, or -errno. */
int store_count_foreach(struct store_txn *t, store_count_fn fn, void *arg);

/* Debugging and tests: compare every shard's counts with a walk of the
 * whole queue, O(queue). Returns 0 when they agree, -EIO when not (each
 * differing shard logged), or the store's error. */
int store_count_check(struct store_txn *t);

/* ---- node-local records (node/store/store_local.c) ----
 *   local  name \0 -> bytes
 * Records of this node alone, never journaled nor replicated: cached
 * MTA-STS policies, TLS-RPT counts. Names are text of 1..STORE_LOCAL_NAME_MAX
 * bytes; values at most STORE_LOCAL_MAX bytes. */

#define STORE_LOCAL_NAME_MAX 512
#define STORE_LOCAL_MAX (256u << 10)

int store_local_put(struct store_txn *t, const char *name, const void *p,
		    size_t len);
/* 0 with *p borrowed until the txn ends, or -ENOENT */
int store_local_get(struct store_txn *t, const char *name, const void **p,
		    size_t *len);
/* a missing name is no error */
int store_local_del(struct store_txn *t, const char *name);

/* Call fn for every record whose name starts with prefix, in name order,
 * until it returns non-zero (returned). */
typedef int (*store_local_fn)(const char *name, const void *p, size_t len,
			      void *arg);
int store_local_foreach(struct store_txn *t, const char *prefix,
			store_local_fn fn, void *arg);
/* The same, from the first name at or after from (which starts with
 * prefix), to resume a walk. */
int store_local_foreach_from(struct store_txn *t, const char *prefix,
			     const char *from, store_local_fn fn, void *arg);

#endif
