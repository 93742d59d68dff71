/* Group commit on top of node/store/store.c. One transaction per batch;
 * when a batch fails as a whole (one message too large for the remaining
 * space, say), its items are retried one per transaction so that a single
 * bad item cannot sink the others. An item's apply therefore may run more
 * than once, and must be pure (commit.h says what that rules out);
 * commit_set_rehearse() reruns every batch so that tests see it.
 *
 * One sync point per batch, not two: a batch commits lazily (its pages are
 * fdatasynced, the meta page that publishes them is not) and its items
 * wait until the next batch's fdatasync carries that meta page to disk.
 * Under load the next batch is already queued; when none comes within one
 * pass of the event loop, an explicit fdatasync ends the wait. So an item's
 * done callback still runs only once its writes are durable. The hook (the
 * journal's shipping) reads each batch's transaction just before its
 * commit instead: the peer writes its copy while this side writes and
 * fdatasyncs its own, and the item's wait for the peer (repl_wait) mostly
 * finds the ack there already.
 *
 * Why not wait longer for bigger batches: at 50 sessions a batch holds
 * about 4 items; holding the next one back for 1 ms made them 14 items and
 * cut the nodes' CPU by a third, but every message then waited for two such
 * delays (primary, replica), the clients' sessions sat idle, and throughput
 * fell from 3,745 to 3,250 msg/s (bench/profile.sh -t cpu). Gathering for
 * one or three more loop passes instead changed nothing measurable. */
#include "node/store/commit.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/store/store.h"

/* Passes the loop may go round with items committed but not durable
 * before an explicit fdatasync (commits that write nothing sync nothing). */
#define COMMIT_WAIT_PASSES_MAX 2
/* commit_flush(): rounds of items queued by the previous round's done
 * callbacks (shutdown: results, then withdrawals) */
#define COMMIT_FLUSH_ROUNDS_MAX 8

struct commit_item {
	commit_apply_fn apply;
	commit_done_fn done;
	void *arg;
};

struct commit_list {
	struct commit_item *v;
	size_t n, cap;
};

struct commit {
	struct store *st;
	struct event *ev;          /* run the queued batch */
	struct event *sync_ev;     /* end the wait of committed items */
	struct commit_list queued; /* the next batch */
	struct commit_list later;  /* commit_add_later(): with a batch */
	struct event *later_ev;    /* ... or by themselves after a delay */
	struct commit_list waiting; /* committed, durable at the next sync */
	uint64_t commits;          /* lazy commits so far */
	uint64_t armed_at;         /* commits when sync_ev was armed */
	int wait_passes;
	uint64_t batches, batched_items, syncs;
	bool is_rehearsing;        /* commit_set_rehearse() */
	struct commit_hook hook;   /* .ship NULL: none */
};

static void
commit_list_add(struct commit_list *l, struct commit_item it)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = it;
}

static int
commit_run_items(struct commit *c, struct commit_item *items, size_t n,
		 bool *synced)
{
	struct store_txn *t;
	int rc;

	*synced = false;
	rc = store_txn_begin(c->st, false, &t);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = items[i].apply(t, items[i].arg);
		if (rc != 0) {
			store_txn_abort(t);
			return rc;
		}
	}
	if (c->hook.ship == NULL)
		return store_txn_commit_lazy(t, synced);
	c->hook.ship(c->hook.arg, t);
	rc = store_txn_commit_lazy(t, synced);
	if (rc == 0)
		c->hook.committed(c->hook.arg);
	else
		c->hook.failed(c->hook.arg);
	return rc;
}

/* commit_set_rehearse(): run the batch's applies as the real run will,
 * stopping at the first failure like it, and throw the transaction away. */
static void
commit_rehearse(struct commit *c, struct commit_item *items, size_t n)
{
	struct store_txn *t;

	if (store_txn_begin(c->st, false, &t) != 0)
		return; /* the real run meets the same failure */
	for (size_t i = 0; i < n; i++)
		if (items[i].apply(t, items[i].arg) != 0)
			break;
	store_txn_abort(t);
}

/* The waiting items are durable (result 0) or will not be (an error):
 * tell each item. */
static void
commit_finish_waiting(struct commit *c, int result)
{
	struct commit_list w = c->waiting;

	c->waiting = (struct commit_list){ 0 };
	c->wait_passes = 0;
	if (w.n == 0) {
		free(w.v);
		return;
	}
	if (result != 0)
		log_warn("commit items=%zu result=not_synced error=\"%s\"", w.n,
			 shoal_strerror(result));
	for (size_t i = 0; i < w.n; i++)
		w.v[i].done(result, w.v[i].arg);
	free(w.v);
}

static void
commit_sync_now(struct commit *c)
{
	if (c->waiting.n > 0) {
		c->syncs++;
		commit_finish_waiting(c, store_sync(c->st));
	}
}

static void
commit_arm_sync(struct commit *c)
{
	struct timeval now = { 0, 0 };

	/* armed already (or due in this pass): its callback sees the newer
	 * commit and waits one more pass */
	if (evtimer_pending(c->sync_ev, NULL))
		return;
	c->armed_at = c->commits;
	evtimer_add(c->sync_ev, &now);
}

/* An item (or batch) committed lazily: it waits for the next sync (the
 * journal it wrote left for the peer before the commit: the hook). */
static void
commit_committed(struct commit *c, struct commit_item *items, size_t n,
		 bool synced)
{
	/* this commit's fdatasync made every earlier one durable */
	if (synced)
		commit_finish_waiting(c, 0);
	for (size_t i = 0; i < n; i++)
		commit_list_add(&c->waiting, items[i]);
	c->commits++;
	commit_arm_sync(c);
}

/* Items that waited for a batch join this one, in front: they were
 * queued first, and an item queued since may act on what they write (a
 * queue flush after a delivery's result: the flush must come last). */
static void
commit_take_later(struct commit *c)
{
	struct commit_list l = c->later;

	if (l.n == 0)
		return;
	for (size_t i = 0; i < c->queued.n; i++)
		commit_list_add(&l, c->queued.v[i]);
	free(c->queued.v);
	c->queued = l;
	c->later = (struct commit_list){ 0 };
	evtimer_del(c->later_ev);
}

static void
commit_run(struct commit *c)
{
	struct commit_list b;
	bool synced;
	int rc;

	if (c->queued.n == 0)
		return;
	commit_take_later(c);
	b = c->queued;
	/* new items added by done callbacks go to a fresh batch */
	c->queued = (struct commit_list){ 0 };
	if (c->is_rehearsing)
		commit_rehearse(c, b.v, b.n);
	rc = commit_run_items(c, b.v, b.n, &synced);
	c->batches++;
	c->batched_items += b.n;
	log_debug(LOG_SUB_STORE, "commit items=%zu result=%s", b.n,
		  shoal_strerror(rc));
	if (rc == 0) {
		commit_committed(c, b.v, b.n, synced);
	} else if (b.n > 1) {
		/* find the culprits: one transaction per item */
		for (size_t i = 0; i < b.n; i++) {
			int r = commit_run_items(c, &b.v[i], 1, &synced);

			if (r == 0)
				commit_committed(c, &b.v[i], 1, synced);
			else
				b.v[i].done(r, b.v[i].arg);
		}
	} else {
		log_warn("commit items=%zu result=failed error=\"%s\"", b.n,
			 shoal_strerror(rc));
		b.v[0].done(rc, b.v[0].arg);
	}
	free(b.v);
}

static void
commit_on_sync(evutil_socket_t fd, short what, void *arg)
{
	struct commit *c = arg;

	(void)fd;
	(void)what;
	if (c->queued.n > 0) {
		/* the next batch is here: its fdatasync ends the wait. If it
		 * commits nothing (it failed: a full store), nothing else
		 * would end it, so sync now. */
		uint64_t commits = c->commits;

		commit_run(c);
		if (c->commits == commits)
			commit_sync_now(c);
		return;
	}
	if (c->commits != c->armed_at &&
	    ++c->wait_passes < COMMIT_WAIT_PASSES_MAX) {
		/* a batch committed in this pass: give the next one a pass */
		c->armed_at = c->commits;
		commit_arm_sync(c);
		return;
	}
	commit_sync_now(c);
}

static void
commit_on_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	commit_run(arg);
}

/* No batch came for the later items within their delay: run them. */
static void
commit_on_later(evutil_socket_t fd, short what, void *arg)
{
	struct commit *c = arg;

	(void)fd;
	(void)what;
	commit_take_later(c);
	commit_run(c);
}

struct commit *
commit_new(struct event_base *base, struct store *st)
{
	struct commit *c = xcalloc(1, sizeof(*c));

	c->st = st;
	c->ev = event_new(base, -1, 0, commit_on_event, c);
	c->sync_ev = evtimer_new(base, commit_on_sync, c);
	c->later_ev = evtimer_new(base, commit_on_later, c);
	SHOAL_ASSERT(c->ev != NULL && c->sync_ev != NULL &&
		     c->later_ev != NULL);
	return c;
}

void
commit_free(struct commit *c)
{
	if (c == NULL)
		return;
	commit_flush(c);
	event_free(c->ev);
	event_free(c->sync_ev);
	event_free(c->later_ev);
	free(c->queued.v);
	free(c->later.v);
	free(c->waiting.v);
	free(c);
}

void
commit_add(struct commit *c, commit_apply_fn apply, commit_done_fn done,
	   void *arg)
{
	commit_list_add(&c->queued, (struct commit_item){ apply, done, arg });
	if (c->queued.n == 1)
		event_active(c->ev, 0, 0);
}

void
commit_add_later(struct commit *c, commit_apply_fn apply, commit_done_fn done,
		 void *arg, unsigned delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	commit_list_add(&c->later, (struct commit_item){ apply, done, arg });
	if (!evtimer_pending(c->later_ev, NULL))
		evtimer_add(c->later_ev, &tv);
}

void
commit_set_rehearse(struct commit *c, bool on)
{
	c->is_rehearsing = on;
}

void
commit_set_hook(struct commit *c, const struct commit_hook *h)
{
	c->hook = h ? *h : (struct commit_hook){ 0 };
}

void
commit_stats(const struct commit *c, uint64_t *batches, uint64_t *items,
	     uint64_t *syncs)
{
	*batches = c->batches;
	*items = c->batched_items;
	*syncs = c->syncs;
}

void
commit_flush(struct commit *c)
{
	/* done callbacks may queue more (a refused enqueue its withdrawal):
	 * those run too, a few rounds at most */
	for (int i = 0; i < COMMIT_FLUSH_ROUNDS_MAX; i++) {
		commit_take_later(c);
		commit_run(c);
		evtimer_del(c->sync_ev);
		commit_sync_now(c);
		if (c->queued.n == 0 && c->later.n == 0)
			return;
	}
	log_warn("commit event=flush_incomplete items=%zu",
		 c->queued.n + c->later.n);
}
