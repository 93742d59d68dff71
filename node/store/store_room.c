/* Room for new mail. The store keeps a reserve for what frees space:
 * saving delivery results, retiring messages and their journal records.
 * LMDB writes even a deletion to fresh pages, so a store that new mail
 * had filled to the last page could never free a page again: results
 * failed to save, nothing was retired, and the node stayed full.
 *
 * Room is what the store may still grow by (up to the map size, and up to
 * what the file system has free) plus the pages LMDB freed for reuse. The
 * free pages are counted by walking LMDB's free list; that is needed only
 * when growth alone is under the reserve, and done at most once per
 * STORE_ROOM_RECHECK_MS, and for a long list no more than 2% of the time
 * (reader slots of dead processes, which would pin the freed pages, are
 * cleared then too). In between, room known is reduced by what was
 * admitted (and the pages a transaction copies), so a burst cannot run
 * past the reserve between checks. */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "node/store/store_int.h"

/* The reserve: an eighth of what the store can hold, within these. */
#define STORE_RESERVE_MIN (256u << 10)
#define STORE_RESERVE_MAX (256ull << 20)
#define STORE_ROOM_RECHECK_MS 100
/* What a transaction writes besides the mail itself, at most about: the
 * copied branch and leaf pages of each table it touches, the journal, the
 * free list. Counted against the known room between measurements. */
#define STORE_ROOM_TXN_PAGES (64u << 10)
/* What a small record (a webhook event) costs besides itself, about. */
#define STORE_ROOM_PAGE 4096u
/* The free list is walked again no sooner than this many times the last
 * walk took (2% of the time at most). */
#define STORE_ROOM_WALK_SHARE 50

/* Bytes of the pages on LMDB's free list (FREE_DBI is dbi 0: each record
 * is a list of page numbers, its first size_t word their count: LMDB's
 * MDB_ID, as its mdb_stat tool reads it). */
static uint64_t
store_room_free_bytes(MDB_env *env, unsigned psize)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t pages = 0;

	/* LMDB opens a cursor on the free list in a read txn only (ours may
	 * run beside the writer: MDB_NOTLS) */
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, 0, &c) == 0) {
		while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
			if (v.mv_size >= sizeof(size_t))
				pages += *(const size_t *)v.mv_data;
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	return pages * psize;
}

/* Growth left (map and disk) and what the store can hold at most. */
static int
store_room_growth(struct store *st, uint64_t *growth, uint64_t *capacity)
{
	MDB_envinfo info;
	MDB_stat stat;
	struct statvfs sv;
	struct stat fst;
	mdb_filehandle_t fd;
	uint64_t used, map_left, disk_left;

	if (mdb_env_info(st->env, &info) != 0 ||
	    mdb_env_stat(st->env, &stat) != 0 ||
	    mdb_env_get_fd(st->env, &fd) != 0 || fstat(fd, &fst) != 0 ||
	    fstatvfs(fd, &sv) != 0)
		return -EIO;
	used = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
	map_left = info.me_mapsize > used ? info.me_mapsize - used : 0;
	disk_left = (uint64_t)sv.f_bavail * sv.f_frsize;
	if ((uint64_t)fst.st_size > used)
		disk_left += (uint64_t)fst.st_size - used;
	*growth = map_left < disk_left ? map_left : disk_left;
	*capacity = used + *growth;
	return 0;
}

int
store_usage(struct store *st, uint64_t *used, uint64_t *capacity,
	    uint64_t *room)
{
	uint64_t growth;
	int rc = store_room_growth(st, &growth, capacity);

	if (rc != 0)
		return rc;
	*used = *capacity - growth;
	/* the last measure (with the free list once growth runs short), or
	 * growth when none is recent */
	*room = st->room_at_ms != 0 && st->room != UINT64_MAX &&
				clock_mono_ms() - st->room_at_ms <
					STORE_ROOM_RECHECK_MS * 100 &&
				st->room > growth ?
			st->room :
			growth;
	if (*room > *capacity)
		*room = *capacity;
	return 0;
}

static uint64_t
store_room_reserve(uint64_t capacity)
{
	uint64_t r = capacity / 8;

	if (r < STORE_RESERVE_MIN)
		r = STORE_RESERVE_MIN;
	if (r > STORE_RESERVE_MAX)
		r = STORE_RESERVE_MAX;
	return r;
}

void
store_readers_clear(struct store *st)
{
	int dead;

	if (mdb_reader_check(st->env, &dead) == 0 && dead > 0)
		log_warn("store dir=%s event=stale_readers_cleared count=%d",
			 st->dir, dead);
}

/* The room now: growth, and the free list when growth is not enough. */
static void
store_room_measure(struct store_txn *t, uint64_t now_ms)
{
	struct store *st = t->st;
	uint64_t growth, capacity;
	MDB_stat stat;

	st->room_at_ms = now_ms ? now_ms : 1; /* 0: never measured */
	if (store_room_growth(st, &growth, &capacity) != 0) {
		/* cannot tell: let the writes themselves say */
		st->room = UINT64_MAX;
		st->reserve = 0;
		return;
	}
	st->reserve = store_room_reserve(capacity);
	st->capacity = capacity;
	st->room = growth;
	if (growth >= st->reserve + STORE_ROOM_BURST)
		return;
	/* short of growth: the free pages count, unless a dead reader
	 * pins them */
	store_readers_clear(st);
	if (now_ms >= st->free_next_ms && mdb_env_stat(st->env, &stat) == 0) {
		uint64_t t0 = clock_mono_us(), took_ms;

		st->free_bytes = store_room_free_bytes(st->env, stat.ms_psize);
		st->admitted_since_walk = 0;
		took_ms = (clock_mono_us() - t0) / 1000;
		/* a long free list costs a walk of it: at most 2% of the
		 * loop's time, whatever its length */
		st->free_next_ms = now_ms + took_ms * STORE_ROOM_WALK_SHARE;
		if (took_ms > 0)
			log_debug(LOG_SUB_STORE, "store event=free_list_walked "
				  "ms=%llu free=%llu",
				  (unsigned long long)took_ms,
				  (unsigned long long)st->free_bytes);
	}
	/* a free list counted a while ago: what was admitted since may
	 * have come from it */
	st->room += st->free_bytes > st->admitted_since_walk ?
			    st->free_bytes - st->admitted_since_walk :
			    0;
}

/* Room that what can be dropped must leave: half of what the store can
 * hold, and at least twice the reserve. Mail's own state (messages in
 * flight, the journal until the peer has it, tombstones) takes room
 * too; events that filled the store to the reserve's edge left mail
 * refused (with a dead endpoint and a small map). */
static uint64_t
store_room_extras_floor(const struct store *st)
{
	uint64_t half = st->capacity / 2;

	return half > 2 * st->reserve ? half : 2 * st->reserve;
}

bool
store_room_for_extras(struct store_txn *t, size_t bytes)
{
	struct store *st = t->st;
	uint64_t now_ms = clock_mono_ms();
	uint64_t need = (uint64_t)bytes + STORE_ROOM_PAGE;
	uint64_t floor;

	if (t->is_read_only)
		return false;
	floor = store_room_extras_floor(st);
	if (st->room_at_ms == 0 ||
	    now_ms - st->room_at_ms >= STORE_ROOM_RECHECK_MS ||
	    st->room < floor + need)
		store_room_measure(t, now_ms);
	floor = store_room_extras_floor(st);
	if (st->room < floor + need)
		return false;
	st->room -= need;
	st->admitted_since_walk += need;
	return true;
}

static const char *const store_admit_names[STORE_ADMIT_KINDS] = {
	"mail", "replica",
};

/* The part of the reserve that must stay free for kind: all of it for
 * mail from routers; half for the peer's copies, so that a node refusing
 * new mail keeps the pair's copies coming a while longer, and neither
 * ever takes what results and deletions need. */
static uint64_t
store_admit_floor(const struct store *st, enum store_admit kind)
{
	return kind == STORE_ADMIT_MAIL ? st->reserve : st->reserve / 2;
}

int
store_admit(struct store_txn *t, size_t bytes, enum store_admit kind)
{
	struct store *st = t->st;
	uint64_t now_ms = clock_mono_ms();
	bool was_low;
	uint64_t need;

	if (t->is_read_only || (unsigned)kind >= STORE_ADMIT_KINDS)
		return -EINVAL;
	was_low = st->is_room_low[kind];
	need = (uint64_t)bytes + STORE_ROOM_TXN_PAGES;
	/* measured again when old, or to confirm a first refusal; a store
	 * already refusing looks again only when the interval is over */
	if (st->room_at_ms == 0 ||
	    now_ms - st->room_at_ms >= STORE_ROOM_RECHECK_MS ||
	    (!was_low && st->room < store_admit_floor(st, kind) + need))
		store_room_measure(t, now_ms);
	st->is_room_low[kind] = st->room < store_admit_floor(st, kind) + need;
	if (st->is_room_low[kind] && !was_low)
		log_warn("store dir=%s event=reserve_reached for=%s room=%llu "
			 "reserve=%llu note=\"refused until deliveries free "
			 "space\"",
			 st->dir, store_admit_names[kind],
			 (unsigned long long)st->room,
			 (unsigned long long)store_admit_floor(st, kind));
	else if (!st->is_room_low[kind] && was_low)
		log_info("store dir=%s event=room_again for=%s room=%llu "
			 "reserve=%llu",
			 st->dir, store_admit_names[kind],
			 (unsigned long long)st->room,
			 (unsigned long long)store_admit_floor(st, kind));
	if (st->is_room_low[kind])
		return SHOAL_E_STORAGE_FULL;
	st->room -= need;
	st->admitted_since_walk += need;
	return 0;
}
