/* The routers' filter of this node's suppression entries
 * (docs/suppression.md, "The routers' filter"): a Bloom filter
 * (lib/suppress_key.h) holding every entry key this node stores, its own
 * and its peer's. A router that holds the filter at the gen the node's
 * latest reply names, and finds a bit of the address clear, accepts the
 * RCPT without asking (router/enqueue.c); otherwise it asks as before.
 *
 * Every write of an entry sets its bits here (suppress_entry_put and
 * suppress_record_apply), inside the transaction, before the commit: a bit
 * set for a write that is then undone only costs a router a question, and
 * setting it again changes nothing, so an apply that runs twice
 * (node/store/commit.h) sets nothing twice. Bits are never cleared: a
 * removed or expired entry leaves its bits until the next start, and its
 * address is asked about, as every address was before.
 *
 * Every bit that turns on is appended to a ring (the gen counts them), so
 * that a router that holds gen G gets the bits after G instead of the
 * whole filter. At start the filter walks the store in slices of
 * SUPP_FILTER_SLICE keys, one per pass of the loop; until the walk ends
 * it is not offered (id 0 in the replies) and routers ask for every
 * address. */
#include "node/suppress/suppress_filter.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "node/store/store.h"

/* The size: SUPP_FILTER_BITS_PER_KEY bits for each entry the store holds
 * at start, at least 2^SUPP_FILTER_LOG2_LOW bits (8 KiB), at most
 * 2^SUPP_FILTER_LOG2 (1 MiB: with 4 bits a key, 1 false positive in 40 at
 * a million entries, 1 in 10^5 at 100,000). Every router holds a copy of
 * every node's, so an empty list costs 8 KiB a node, not 1 MiB. When a
 * fill of SUPP_FILTER_FILL_PCT % is passed (16 bits a key: 1 address in
 * 400 not listed is asked about), the filter grows 4x: a new one, with a
 * new id, walked from the store like the first. */
#define SUPP_FILTER_LOG2_LOW 16
#define SUPP_FILTER_LOG2 23
#define SUPP_FILTER_BITS_PER_KEY 32
#define SUPP_FILTER_FILL_PCT 22
#define SUPP_FILTER_RING 65536 /* positions a router may catch up on */
#define SUPP_FILTER_SLICE 8192 /* keys walked per pass at start */
/* A whole filter goes out as a copy that every reply carrying it shares
 * (a frame of its own, zero copy). A new copy is made when the filter
 * changed, at most every SUPP_SNAP_MIN_MS, and only while fewer than
 * SUPP_SNAPS_LIVE copies are alive (held by libzmq in frames not yet
 * sent); otherwise the last copy goes again, older, and the router asks
 * for the bits after it. A requester that asks and never reads so costs
 * a few MiB, not one a request. */
#define SUPP_SNAP_MIN_MS 100
#define SUPP_SNAPS_LIVE 4

struct supp_snap {
	atomic_int refs;	/* the filter's (while current) + a frame's */
	uint64_t gen;
	uint64_t made_ms;
	uint8_t bits[];
};

/* Copies alive in this process; libzmq's I/O thread counts them out. */
static atomic_int supp_snaps_live;

struct supp_filter {
	uint8_t *bits;
	uint32_t log2;
	uint64_t id;		/* random, nonzero */
	uint64_t gen;		/* positions set since made */
	uint32_t *ring;		/* ring[g % SUPP_FILTER_RING]: position g */
	bool is_ready;		/* the walk of the store ended */
	struct store *store;
	struct event *walk_ev;
	struct event *grow_ev;	/* past the fill: a bigger one, next pass */
	char cursor[SUPPRESS_KEY_MAX]; /* the walk's last key */
	uint64_t walked;
	uint64_t walk_started_ms;
	struct supp_snap *snap;	/* the last shared copy, or NULL */
};

void
supp_filter_note(struct supp_filter *f, const char *key)
{
	static const struct timeval now = { 0, 0 };
	uint32_t pos[SUPPRESS_FILTER_K];

	if (f == NULL || key[0] != SUPPRESS_KEY_TAG)
		return;
	suppress_filter_pos(key, f->log2, pos);
	for (uint32_t i = 0; i < SUPPRESS_FILTER_K; i++)
		if (suppress_filter_set(f->bits, pos[i]))
			f->ring[f->gen++ % SUPP_FILTER_RING] = pos[i];
	/* gen counts the bits set (none is cleared); the growth waits for
	 * the next pass: we may be inside a write transaction here */
	if (f->log2 < SUPP_FILTER_LOG2 &&
	    f->gen * 100 > ((uint64_t)SUPP_FILTER_FILL_PCT << f->log2) &&
	    !evtimer_pending(f->grow_ev, NULL))
		evtimer_add(f->grow_ev, &now);
}

struct supp_walk {
	struct supp_filter *f;
	size_t n;
};

static int
supp_filter_walk_one(const char *key, uint32_t shard, const void *meta,
		     size_t len, void *arg)
{
	struct supp_walk *w = arg;

	(void)shard;
	(void)meta;
	(void)len;
	if (w->n == SUPP_FILTER_SLICE)
		return 1;
	supp_filter_note(w->f, key);
	snprintf(w->f->cursor, sizeof(w->f->cursor), "%s", key);
	w->n++;
	return 0;
}

/* One slice of the walk; the next pass does the next. */
static void
supp_filter_walk(evutil_socket_t fd, short what, void *arg)
{
	struct supp_filter *f = arg;
	struct supp_walk w = { f, 0 };
	struct store_txn *t;
	char prefix[2] = { SUPPRESS_KEY_TAG, '\0' };
	int rc;

	(void)fd;
	(void)what;
	rc = store_txn_begin(f->store, true, &t);
	if (rc == 0) {
		rc = store_supp_foreach(t, prefix, f->cursor,
					supp_filter_walk_one, &w);
		store_txn_abort(t);
	}
	f->walked += w.n;
	if (rc == 1 || (rc != 0 && rc != -ENOENT)) {
		/* more to walk, or the store failed for now: again soon */
		struct timeval tv = { 0, rc == 1 ? 0 : 100000 };

		event_add(f->walk_ev, &tv);
		return;
	}
	f->is_ready = true;
	log_info("suppress event=filter_ready entries=%llu bits_set=%llu "
		 "log2_bits=%u ms=%llu",
		 (unsigned long long)f->walked, (unsigned long long)f->gen,
		 f->log2,
		 (unsigned long long)(clock_mono_ms() - f->walk_started_ms));
}

/* A reference to a copy is dropped (libzmq's I/O thread may call it). */
static void
supp_snap_unref(void *data, void *hint)
{
	struct supp_snap *sn = hint;

	(void)data;
	if (atomic_fetch_sub(&sn->refs, 1) == 1) {
		free(sn);
		atomic_fetch_sub(&supp_snaps_live, 1);
	}
}

/* The copy to send now. */
static struct supp_snap *
supp_snap_get(struct supp_filter *f)
{
	size_t len = (size_t)1 << (f->log2 - 3);
	uint64_t now = clock_mono_ms();
	struct supp_snap *sn = f->snap;

	/* a copy more than the ring behind could never be caught up from:
	 * then a new one whatever holds the old */
	if (sn == NULL || f->gen - sn->gen > SUPP_FILTER_RING ||
	    (sn->gen != f->gen && now - sn->made_ms >= SUPP_SNAP_MIN_MS &&
	     atomic_load(&supp_snaps_live) < SUPP_SNAPS_LIVE)) {
		sn = xmalloc(sizeof(*sn) + len);
		atomic_init(&sn->refs, 1);
		atomic_fetch_add(&supp_snaps_live, 1);
		sn->gen = f->gen;
		sn->made_ms = now;
		memcpy(sn->bits, f->bits, len);
		if (f->snap != NULL)
			supp_snap_unref(NULL, f->snap);
		f->snap = sn;
	}
	return sn;
}

/* A new, empty filter of 2^log2 bits with a new id, not offered until
 * its walk of the store (which starts in the next pass) ends. */
static void
supp_filter_start(struct supp_filter *f, uint32_t log2)
{
	uint64_t id = f->id;
	struct timeval now = { 0, 0 };

	free(f->bits);
	f->log2 = log2;
	f->bits = xcalloc((size_t)1 << (log2 - 3), 1);
	f->gen = 0;
	f->is_ready = false;
	f->cursor[0] = '\0';
	f->walked = 0;
	f->walk_started_ms = clock_mono_ms();
	if (f->snap != NULL) { /* the old size: frames keep their own refs */
		supp_snap_unref(NULL, f->snap);
		f->snap = NULL;
	}
	while (f->id == 0 || f->id == id)
		if (getrandom(&f->id, sizeof(f->id), 0) != sizeof(f->id))
			f->id = ((uint64_t)time(NULL) << 20) ^ clock_mono_us();
	evtimer_add(f->walk_ev, &now);
}

static void
supp_filter_grow(evutil_socket_t fd, short what, void *arg)
{
	struct supp_filter *f = arg;
	uint32_t log2 = f->log2 + 2 < SUPP_FILTER_LOG2 ? f->log2 + 2 :
							   SUPP_FILTER_LOG2;

	(void)fd;
	(void)what;
	log_info("suppress event=filter_grow log2_bits=%u bits_set=%llu "
		 "new_log2_bits=%u",
		 f->log2, (unsigned long long)f->gen, log2);
	supp_filter_start(f, log2);
}

/* The size for the entries the store holds now (counted, not walked). */
static uint32_t
supp_filter_log2_for(struct store *store)
{
	struct store_txn *t;
	uint64_t want, entries = 0;
	uint32_t log2 = SUPP_FILTER_LOG2_LOW;

	if (store_txn_begin(store, true, &t) == 0) {
		entries = store_supp_count(t);
		store_txn_abort(t);
	}
	want = entries * SUPP_FILTER_BITS_PER_KEY;
	while (log2 < SUPP_FILTER_LOG2 && ((uint64_t)1 << log2) < want)
		log2++;
	return log2;
}

struct supp_filter *
supp_filter_new(struct event_base *base, struct store *store)
{
	struct supp_filter *f = xcalloc(1, sizeof(*f));

	f->ring = xcalloc(SUPP_FILTER_RING, sizeof(*f->ring));
	f->store = store;
	f->walk_ev = evtimer_new(base, supp_filter_walk, f);
	f->grow_ev = evtimer_new(base, supp_filter_grow, f);
	SHOAL_ASSERT(f->walk_ev != NULL && f->grow_ev != NULL);
	supp_filter_start(f, supp_filter_log2_for(store));
	return f;
}

void
supp_filter_free(struct supp_filter *f)
{
	if (f == NULL)
		return;
	event_free(f->walk_ev);
	event_free(f->grow_ev);
	if (f->snap != NULL)
		supp_snap_unref(NULL, f->snap);
	free(f->bits);
	free(f->ring);
	free(f);
}

void
supp_filter_stamp(const struct supp_filter *f, Shoal__NodeReply *r)
{
	if (f == NULL || !f->is_ready)
		return;
	r->supp_filter_id = f->id;
	r->supp_gen = f->gen;
}

bool
supp_filter_answer(struct supp_filter *f, const Shoal__SuppFilterRequest *q,
		   Shoal__SuppFilter *out, zmq_msg_t *frame)
{
	struct supp_snap *sn;

	if (f == NULL || !f->is_ready)
		return false;
	out->filter_id = f->id;
	out->log2_bits = f->log2;
	if (q->filter_id == f->id && q->since_gen <= f->gen &&
	    f->gen - q->since_gen <= SUPP_FILTER_RING) {
		uint64_t n = f->gen - q->since_gen;

		out->gen = f->gen;
		out->since_gen = q->since_gen;
		out->n_positions = (size_t)n;
		out->positions = xmalloc((n ? n : 1) * sizeof(uint32_t));
		for (uint64_t i = 0; i < n; i++)
			out->positions[i] =
				f->ring[(q->since_gen + i) % SUPP_FILTER_RING];
		return true;
	}
	sn = supp_snap_get(f);
	atomic_fetch_add(&sn->refs, 1);
	if (zmq_msg_init_data(frame, sn->bits, (size_t)1 << (f->log2 - 3),
			      supp_snap_unref, sn) != 0) {
		supp_snap_unref(NULL, sn);
		return false;
	}
	out->gen = sn->gen;
	out->bits_in_frame = true;
	return true;
}
