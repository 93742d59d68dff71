/* The group commit's hook (node/store/commit.h): each transaction about
 * to commit ships the journal it holds, so that the peer writes its copy
 * while we write and fdatasync ours; and what to do when that commit then
 * fails (a full disk at pwrite, an I/O error): the peer may have applied
 * changes we do not have.
 *
 * Putting a failed commit right, three steps:
 * - at once, the peer gets the state here of every key that commit
 *   shipped, read from what is committed and sent as it is, under seqs
 *   given out for it alone: nothing is written, so this works on a full
 *   disk too. A message we never stored arrives as a withdrawal, one
 *   whose deletion or change failed arrives whole, with its body;
 * - the same keys are journaled again in a commit of their own (tried
 *   every REPL_REPAIR_RETRY_MS while it fails), for a peer that lost or
 *   refused that batch: go-back-N resends only what the journal holds;
 * - until that commit is done, the journal leaves after its commits
 *   again, as a repl_pump() from what is committed (ship_late): a disk
 *   that stays full fails every commit, and shipping each first would
 *   hand the peer mail we then refuse, again and again.
 * Logs event=shipped_uncommitted (warn) at the failure, event=repaired
 * once the journaled repair is committed, event=repair_failed at most
 * every REPL_REPAIR_LOG_MS. */
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/cluster/repl_int.h"
#include "node/store/commit.h"
#include "node/store/store.h"

/* Keys of failed commits waiting to be journaled again: four windows'
 * worth (a failed commit ships at most one, and ship_late keeps the
 * next ones from shipping at all) */
#define REPL_REPAIR_MAX (4 * REPL_WINDOW * REPL_BATCH_RECORDS)
#define REPL_REPAIR_RETRY_MS 250     /* after a repair that failed */
#define REPL_REPAIR_LOG_MS 10000     /* one repair_failed line per */

/* ---- keys ------------------------------------------------------------- */

static int
repl_key_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Add key (a journal key: shorter than QID_MAX) unless ks holds max keys
 * even once duplicates are dropped. Returns false when it did not fit. */
static bool
repl_keys_add(struct repl_keys *ks, const char *key, size_t max)
{
	size_t len = strlen(key);

	if (len >= QID_MAX)
		return true; /* no such journal key: nothing to put right */
	if (ks->n >= max) {
		size_t k = 0;

		qsort(ks->v, ks->n, sizeof(*ks->v), repl_key_cmp);
		for (size_t i = 0; i < ks->n; i++)
			if (k == 0 || strcmp(ks->v[k - 1], ks->v[i]) != 0)
				memmove(ks->v[k++], ks->v[i], QID_MAX);
		ks->n = k;
		if (ks->n >= max)
			return false;
	}
	if (ks->n == ks->cap) {
		ks->cap = ks->cap ? ks->cap * 2 : 64;
		ks->v = xrealloc(ks->v, ks->cap * sizeof(*ks->v));
	}
	memcpy(ks->v[ks->n++], key, len + 1);
	return true;
}

/* Add the keys of from to r->repair, counting those past the bound. */
static void
repl_repair_add(struct repl *r, const struct repl_keys *from)
{
	for (size_t i = 0; i < from->n; i++)
		if (!repl_keys_add(&r->repair, from->v[i], REPL_REPAIR_MAX)) {
			r->repair_dropped += from->n - i;
			return;
		}
}

void
repl_hook_shipped(struct repl *r, const char *key)
{
	repl_keys_add(&r->prov, key, SIZE_MAX);
}

/* ---- the state here, sent as it is --------------------------------------- */

/* Send the peer what is committed for each key of ks, in batches after
 * r->sent under seqs of their own, past the window if need be (a failed
 * commit's own batches may have filled it). What finds no room, or a
 * batch the link drops or the peer refuses (go-back-N finds no journal
 * entry for these seqs), waits for the journaled repair. */
static void
repl_send_state(struct repl *r, const struct repl_keys *ks)
{
	uint32_t shards = r->cfg->cluster.shards;
	struct store_txn *t;
	size_t i = 0;

	if (store_txn_begin(r->store, true, &t) != 0)
		return; /* the journaled repair still comes */
	repl_batch_arrays(r);
	while (i < ks->n && r->n_fl < REPL_FLIGHTS) {
		size_t n = 0, bytes = 0;
		uint64_t first;

		for (; i < ks->n && n < REPL_BATCH_RECORDS &&
		       (n == 0 || bytes < REPL_BATCH_BYTES);
		     i++, n++) {
			const char *key = ks->v[i];

			bytes += repl_record_fill(t, key,
						  repl_key_shard(key, shards),
						  true, &r->batch_recs[n]);
			r->batch_ptrs[n] = &r->batch_recs[n];
		}
		first = store_journal_take(r->store, n);
		for (size_t k = 0; k < n; k++)
			r->batch_recs[k].seq = first + k;
		repl_ship(r, n, bytes, first + n - 1);
	}
	store_txn_abort(t);
	if (i < ks->n)
		log_warn("repl node=%s peer=%s event=state_incomplete sent=%zu "
			 "keys=%zu reason=\"no room in flight: the rest waits "
			 "for the journaled repair\"",
			 r->me->id, r->peer->id, i, ks->n);
}

/* ---- the journaled repair ------------------------------------------------ */

struct repl_repair {
	struct repl *r;
	struct repl_keys keys;
};

static int
repl_repair_apply(struct store_txn *t, void *arg)
{
	struct repl_repair *rp = arg;
	uint32_t shards = rp->r->cfg->cluster.shards;

	for (size_t i = 0; i < rp->keys.n; i++) {
		const char *key = rp->keys.v[i];
		int rc = store_journal_touch(t, key, repl_key_shard(key, shards));

		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Nothing left to put right: ship from each transaction again. */
static void
repl_ship_early_again(struct repl *r)
{
	if (!r->ship_late || r->repair_busy || r->repair.n > 0)
		return;
	r->ship_late = false;
	log_info("repl node=%s peer=%s event=ship_before_commit",
		 r->me->id, r->peer->id);
}

static void
repl_repair_done(int result, void *arg)
{
	struct repl_repair *rp = arg;
	struct repl *r = rp->r;
	uint64_t now = clock_mono_ms();

	r->repair_busy = false;
	if (result == 0) {
		log_info("repl node=%s peer=%s event=repaired keys=%zu "
			 "failed_tries=%llu",
			 r->me->id, r->peer->id, rp->keys.n,
			 (unsigned long long)r->repair_failures);
		r->repair_failures = 0;
		r->repair_logged_ms = 0;
	} else {
		r->repair_failures++;
		if (now - r->repair_logged_ms >= REPL_REPAIR_LOG_MS) {
			log_warn("repl node=%s peer=%s event=repair_failed "
				 "keys=%zu tries=%llu error=\"%s\"",
				 r->me->id, r->peer->id, rp->keys.n,
				 (unsigned long long)r->repair_failures,
				 shoal_strerror(result));
			r->repair_logged_ms = now;
		}
		repl_repair_add(r, &rp->keys);
		r->repair_retry_ms = now + REPL_REPAIR_RETRY_MS;
	}
	free(rp->keys.v);
	free(rp);
	repl_repair_start(r);
	repl_ship_early_again(r);
}

void
repl_repair_start(struct repl *r)
{
	struct repl_repair *rp;

	if (r->repair_dropped > 0) {
		log_warn("repl node=%s peer=%s event=repair_dropped keys=%llu",
			 r->me->id, r->peer->id,
			 (unsigned long long)r->repair_dropped);
		r->repair_dropped = 0;
	}
	if (r->repair_busy || r->repair.n == 0 ||
	    clock_mono_ms() < r->repair_retry_ms)
		return;
	rp = xmalloc(sizeof(*rp));
	rp->r = r;
	rp->keys = r->repair;
	r->repair = (struct repl_keys){ 0 };
	r->repair_busy = true;
	commit_add_later(r->commit, repl_repair_apply, repl_repair_done, rp,
			 REPL_TRIM_DELAY_MS);
}

/* ---- the hook ------------------------------------------------------------- */

static void
repl_hook_ship(void *arg, struct store_txn *t)
{
	struct repl *r = arg;

	r->prov.n = 0;
	if (!r->ship_late)
		repl_pump_from(r, t);
}

static void
repl_hook_committed(void *arg)
{
	struct repl *r = arg;

	r->prov.n = 0;
	if (r->ship_late)
		repl_pump(r);
}

static void
repl_hook_failed(void *arg)
{
	struct repl *r = arg;

	if (r->prov.n == 0)
		return;
	log_warn("repl node=%s peer=%s event=shipped_uncommitted keys=%zu "
		 "sent=%llu",
		 r->me->id, r->peer->id, r->prov.n,
		 (unsigned long long)r->sent);
	r->ship_late = true;
	repl_send_state(r, &r->prov);
	repl_repair_add(r, &r->prov);
	r->prov.n = 0;
	repl_repair_start(r);
}

struct commit_hook
repl_commit_hook(struct repl *r)
{
	return (struct commit_hook){ repl_hook_ship, repl_hook_committed,
				     repl_hook_failed, r };
}
