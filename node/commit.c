/* Group commit on top of node/store.c. One transaction per batch; when a
 * batch fails as a whole (one message too large for the remaining space,
 * say), its items are retried one per transaction so that a single bad
 * item cannot sink the others. */
#include "node/commit.h"

#include <event2/event.h>
#include <stdlib.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/store.h"

struct commit_item {
	commit_apply_fn apply;
	commit_done_fn done;
	void *arg;
};

struct commit {
	struct store *st;
	struct event *ev;
	struct commit_item *items;
	size_t n, cap;
	uint64_t batches, batched_items;
	void (*hook)(void *);
	void *hook_arg;
};

static int
commit_run_items(struct commit *c, struct commit_item *items, size_t n)
{
	struct store_txn *t;
	int rc;

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
	return store_txn_commit(t);
}

static void
commit_run(struct commit *c)
{
	struct commit_item *items = c->items;
	size_t n = c->n;
	int rc;

	if (n == 0)
		return;
	/* new items added by done callbacks go to a fresh batch */
	c->items = NULL;
	c->n = c->cap = 0;
	rc = commit_run_items(c, items, n);
	c->batches++;
	c->batched_items += n;
	if (c->hook)
		c->hook(c->hook_arg);
	log_debug(LOG_SUB_STORE, "commit items=%zu result=%s", n,
		  shoal_strerror(rc));
	if (rc != 0 && n > 1) {
		/* find the culprits: one transaction per item */
		for (size_t i = 0; i < n; i++)
			items[i].done(commit_run_items(c, &items[i], 1),
				      items[i].arg);
	} else {
		if (rc != 0)
			log_warn("commit items=%zu result=failed error=\"%s\"",
				 n, shoal_strerror(rc));
		for (size_t i = 0; i < n; i++)
			items[i].done(rc, items[i].arg);
	}
	free(items);
}

static void
commit_on_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	commit_run(arg);
}

struct commit *
commit_new(struct event_base *base, struct store *st)
{
	struct commit *c = xcalloc(1, sizeof(*c));

	c->st = st;
	c->ev = event_new(base, -1, 0, commit_on_event, c);
	SHOAL_ASSERT(c->ev != NULL);
	return c;
}

void
commit_free(struct commit *c)
{
	if (c == NULL)
		return;
	commit_run(c);
	event_free(c->ev);
	free(c->items);
	free(c);
}

void
commit_add(struct commit *c, commit_apply_fn apply, commit_done_fn done,
	   void *arg)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->items = xrealloc(c->items, c->cap * sizeof(*c->items));
	}
	c->items[c->n++] = (struct commit_item){ apply, done, arg };
	if (c->n == 1)
		event_active(c->ev, 0, 0);
}

void
commit_set_hook(struct commit *c, void (*fn)(void *), void *arg)
{
	c->hook = fn;
	c->hook_arg = arg;
}

void
commit_flush(struct commit *c)
{
	commit_run(c);
}
