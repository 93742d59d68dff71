/* Shard ownership: which map the node acts on, failover and fencing.
 *
 * Failover rule (the replica's side): take the peer's shards when the peer
 * has been silent for failover_after_ms, at least one router was heard in
 * that time, and every router heard in that time says it no longer hears
 * the peer either. A link cut between the two nodes alone therefore never
 * makes two primaries: the routers still reach both.
 *
 * Fencing rule (everyone's side): a node starts deliveries only while it
 * has heard its peer or a router within failover_after_ms / 2, and, after a
 * start, only once it has heard its peer's map or failover_after_ms has
 * passed. A node cut off from everything stops delivering before its peer
 * may take over; a restarted node learns a newer epoch before it delivers.
 * Nodes without a peer, or with replication.mode = "none", are never
 * fenced and never fail over.
 *
 * "Heard within" is a lease on our own monotonic clock, and it must hold
 * across a pause of the process (SIGSTOP, a frozen VM, swap): the peer and
 * the routers echo the send time of the newest message they have from us,
 * and contact counts from that echo, never from when their message is
 * read. A message that waited in a socket buffer through a pause so
 * extends no lease. A lease that lapsed, or a loop that did not run for a
 * lease (a pause seen from inside, for senders that do not echo), is
 * treated like a restart: the node must hear its peer's map again, in a
 * message that echoes a time after the lapse, or wait failover_after_ms.
 * owner_may_start() asks all of this, with the shard's ownership and
 * freezes, before every delivery starts, including each further message
 * on an open connection (node/delivery/deliver.c).
 *
 * Leaves to others: planned failover and failback (owner_handover.c),
 * what happens on a map change or a fence beyond the store (the hooks
 * node.c installs), the peer link (repl.c), shard moves (move.c), and the
 * map at start (join.c). Maps offered by the peer or routers are
 * untrusted: re-checked before adoption. */
#include "node/cluster/owner.h"
#include "node/cluster/owner_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"
#include "node/cluster/repl.h"
#include "node/store/store.h"

/* A map that cannot be stored (a full disk) comes again with each of the
 * peer's messages: its failure is logged once per epoch, then at most this
 * often. */
#define OWNER_MAP_FAIL_LOG_MS 10000

bool
owner_is_primary(const struct owner *o, uint32_t shard)
{
	const char *p = shardmap_primary(o->map, shard);

	return p != NULL && strcmp(p, o->me->id) == 0;
}

uint32_t
owner_primary_shards(const struct owner *o, uint8_t *mask)
{
	uint32_t *v, count;

	if (mask == NULL)
		return shardmap_shards_of(o->map, o->me->id, SHARDMAP_PRIMARY,
					  NULL);
	v = xcalloc(o->map->n_shards ? o->map->n_shards : 1, sizeof(*v));
	count = shardmap_shards_of(o->map, o->me->id, SHARDMAP_PRIMARY, v);
	memset(mask, 0, o->map->n_shards);
	for (uint32_t i = 0; i < count; i++)
		mask[v[i]] = 1;
	free(v);
	return count;
}

/* Journaled: the shards we are primary for, and one being moved here (it
 * must reach our peer before we take it). */
static void
owner_set_journal(struct owner *o)
{
	uint8_t *on = xcalloc(o->map->n_shards ? o->map->n_shards : 1, 1);

	owner_primary_shards(o, on);
	if (o->incoming >= 0 && (uint64_t)o->incoming < o->map->n_shards)
		on[o->incoming] = 1;
	store_journal_shards(o->store, on, (uint32_t)o->map->n_shards);
	free(on);
}

/* ---- changing the map ------------------------------------------------ */

struct owner_due {
	struct store_txn *t;
	bool add;
	uint64_t n;
	char (*qids)[QID_MAX];        /* purge: collected first */
	size_t n_qids, cap;
};

/* Collect a shard's qids (deleting under a walk's cursor is not safe). */
static int
owner_collect(const char *qid, uint32_t shard, const void *meta,
	      size_t meta_len, void *arg)
{
	struct owner_due *d = arg;

	(void)shard;
	(void)meta;
	(void)meta_len;
	if (d->n_qids == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 256;
		d->qids = xrealloc(d->qids, d->cap * sizeof(*d->qids));
	}
	snprintf(d->qids[d->n_qids++], QID_MAX, "%s", qid);
	return 0;
}

/* Drop every message, webhook event and suppression entry of a shard
 * this node neither owns nor replicates (moved away, or a move here that
 * did not finish). Not journaled: the
 * shard is not ours. Returns 0 or a store error; *n counts. */
static int
owner_purge_in(struct owner *o, struct store_txn *t, uint32_t shard,
	       uint64_t *n)
{
	struct owner_due d = { .t = t };
	int rc = store_shard_foreach(t, shard, owner_collect, &d);

	for (size_t i = 0; rc == 0 && i < d.n_qids; i++) {
		const void *p;
		size_t len;
		Shoal__StoredMessage *sm;

		if (store_msg_get_meta(t, d.qids[i], &p, &len) != 0)
			continue;
		sm = shoal__stored_message__unpack(NULL, len, p);
		if (sm && sm->due)
			rc = store_due_del(t, sm->due, d.qids[i]);
		if (sm)
			shoal__stored_message__free_unpacked(sm, NULL);
		if (rc == 0)
			rc = store_msg_del(t, d.qids[i], shard);
	}
	*n += d.n_qids;
	free(d.qids);
	if (rc == 0)
		rc = store_whev_purge(t, shard, n);
	return rc ? rc : o->hooks.supp_purge(o->hooks.arg, t, shard, n);
}

static bool
owner_keeps(const Shoal__ShardMap *m, const char *me, uint32_t s)
{
	return strcmp(m->shards[s]->primary, me) == 0 ||
	       strcmp(m->shards[s]->replica, me) == 0;
}

/* Add or drop the due entry a message's record names. */
static int
owner_due_one(const char *qid, uint32_t shard, const void *meta,
	      size_t meta_len, void *arg)
{
	struct owner_due *d = arg;
	Shoal__StoredMessage *sm =
		shoal__stored_message__unpack(NULL, meta_len, meta);
	int rc = 0;

	(void)shard;
	if (sm == NULL) {
		log_error("qid=%s event=corrupt_record op=ownership", qid);
		return 0;
	}
	if (!sm->held && sm->due != 0) {
		rc = d->add ? store_due_put(d->t, sm->due, qid,
					    envelope_class(sm->envelope)) :
			      store_due_del(d->t, sm->due, qid);
		d->n++;
	}
	shoal__stored_message__free_unpacked(sm, NULL);
	return rc;
}

/* Store m and move due entries: one transaction, so a crash leaves the old
 * map with the old index or the new map with the new one. */
static int
owner_store_map(struct owner *o, const Shoal__ShardMap *m, uint64_t *gained,
		uint64_t *lost)
{
	struct owner_due d = { 0 };
	struct store_txn *t;
	size_t len;
	void *packed;
	int rc;

	*gained = *lost = 0;
	rc = store_txn_begin(o->store, false, &t);
	if (rc != 0)
		return rc;
	d.t = t;
	for (uint32_t s = 0; rc == 0 && s < m->n_shards; s++) {
		if (!owner_keeps(m, o->me->id, s) &&
		    o->incoming != (int64_t)s) {
			rc = owner_purge_in(o, t, s, lost);
			continue;
		}
		bool was = owner_is_primary(o, s);
		bool will = strcmp(m->shards[s]->primary, o->me->id) == 0;

		if (was == will)
			continue;
		d.add = will;
		d.n = 0;
		rc = store_shard_foreach(t, s, owner_due_one, &d);
		if (will)
			*gained += d.n;
		else
			*lost += d.n;
	}
	if (rc == 0) {
		packed = shardmap_pack(m, &len);
		rc = store_meta_put(t, OWNER_META_MAP, packed, len);
		free(packed);
	}
	if (rc != 0) {
		store_txn_abort(t);
		return rc;
	}
	return store_txn_commit(t);
}

static int
owner_adopt(struct owner *o, Shoal__ShardMap *m, const char *why)
{
	Shoal__ShardMap *old = o->map;
	uint64_t gained, lost;
	int rc = owner_store_map(o, m, &gained, &lost);

	if (rc != 0) {
		uint64_t now = owner_now(o);

		o->map_fails++;
		if (m->epoch != o->map_fail_epoch ||
		    now - o->map_fail_logged_ms >= OWNER_MAP_FAIL_LOG_MS) {
			log_error("node id=%s event=map_not_stored epoch=%llu "
				  "failures=%llu error=\"%s\"",
				  o->me->id, (unsigned long long)m->epoch,
				  (unsigned long long)o->map_fails,
				  shoal_strerror(rc));
			o->map_fail_epoch = m->epoch;
			o->map_fail_logged_ms = now;
			o->map_fails = 0;
		}
		shardmap_free(m);
		return rc;
	}
	o->map = m;
	o->is_map_behind = false;
	owner_set_journal(o);
	log_info("node id=%s event=shard_map epoch=%llu old_epoch=%llu "
		 "author=%s why=\"%s\" due_gained=%llu due_dropped=%llu",
		 o->me->id, (unsigned long long)m->epoch,
		 (unsigned long long)old->epoch,
		 m->author[0] ? m->author : "config", why,
		 (unsigned long long)gained, (unsigned long long)lost);
	/* our own work, not a pause: what follows is fresh */
	if (o->loop_ms != 0)
		o->loop_ms = owner_now(o);
	o->hooks.map_changed(o->hooks.arg, o->map);
	shardmap_free(old); /* after the hook: nobody holds it any more */
	return 0;
}

void
owner_set_incoming(struct owner *o, int64_t shard)
{
	o->incoming = shard;
	owner_set_journal(o);
}

int
owner_purge(struct owner *o, uint32_t shard)
{
	struct store_txn *t;
	uint64_t count = 0;
	int rc;

	if (shard >= o->map->n_shards || owner_keeps(o->map, o->me->id, shard) ||
	    o->incoming == (int64_t)shard)
		return 0;
	rc = store_txn_begin(o->store, false, &t);
	if (rc != 0)
		return rc;
	rc = owner_purge_in(o, t, shard, &count);
	if (rc != 0) {
		store_txn_abort(t);
		return rc;
	}
	rc = store_txn_commit(t);
	if (rc == 0 && count)
		log_info("node id=%s event=purged shard=%u messages=%llu",
			 o->me->id, shard, (unsigned long long)count);
	return rc;
}

void
owner_set_frozen(struct owner *o, int64_t shard)
{
	o->frozen = shard;
	if (shard >= 0) /* its jobs waiting: dropped */
		o->hooks.starts_revoked(o->hooks.arg);
}

bool
owner_is_frozen(const struct owner *o, uint32_t shard)
{
	return o != NULL && o->frozen == (int64_t)shard;
}

bool
owner_may_start(struct owner *o, uint32_t shard)
{
	return owner_may_deliver(o) && owner_is_primary(o, shard) &&
	       o->frozen != (int64_t)shard && !owner_is_handing(o, shard);
}

bool
owner_offer(struct owner *o, const Shoal__ShardMap *m)
{
	Shoal__ShardMap *copy;
	size_t len;
	void *packed;

	if (m == NULL || !shardmap_newer(m, o->map))
		return false;
	/* nested maps skipped shardmap_unpack()'s checks: run them */
	packed = shardmap_pack(m, &len);
	copy = shardmap_unpack(packed, len, o->cfg->cluster.shards);
	free(packed);
	if (copy == NULL) {
		log_warn("node id=%s event=bad_map reason=\"malformed map offered\"",
			 o->me->id);
		return false;
	}
	if (shardmap_node(copy, o->me->id) == NULL) {
		log_warn("node id=%s event=bad_map reason=\"map without this "
			 "node\" epoch=%llu",
			 o->me->id, (unsigned long long)copy->epoch);
		shardmap_free(copy);
		return false;
	}
	if (owner_adopt(o, copy, "newer map") == 0)
		return true;
	o->is_map_behind = true; /* owner_may_deliver() fences */
	return false;
}

int
owner_swap(struct owner *o, const char *from, const char *to, bool back,
	   const char *why)
{
	Shoal__ShardMap *first = back ? shardmap_derive(o->cfg) : NULL;
	size_t moved;
	Shoal__ShardMap *m = shardmap_swap(o->map, from, to, o->me->id, first,
					   &moved);
	int rc;

	shardmap_free(first);
	if (moved == 0) {
		shardmap_free(m);
		return 0;
	}
	log_warn("node id=%s event=shards_moved from=%s to=%s shards=%zu "
		 "why=\"%s\"",
		 o->me->id, from, to, moved, why);
	rc = owner_adopt(o, m, why);
	if (o->repl != NULL)
		repl_heartbeat_now(o->repl);	/* the peer learns it first */
	return rc ? rc : (int)moved;
}

int
owner_take_over(struct owner *o, const char *why)
{
	int moved;

	if (o->peer == NULL)
		return -EINVAL;
	moved = owner_swap(o, o->peer, o->me->id, false, why);
	if (moved > 0)
		log_warn("node id=%s event=takeover peer=%s shards=%d "
			 "why=\"%s\"",
			 o->me->id, o->peer, moved, why);
	return moved;
}

/* ---- what the node hears --------------------------------------------- */

static uint64_t
owner_lease_ms(const struct owner *o)
{
	return o->cfg->replication.failover_after_ms / 2;
}

/* From now on the peer's map must be heard again: in a message echoing a
 * time at or after `since`, or (not strict) any map; or failover_after_ms
 * must pass. */
static void
owner_relearn(struct owner *o, uint64_t since, bool strict, const char *why,
	      uint64_t gap_ms)
{
	if (since <= o->relearn_ms)
		return;
	if (o->peer_map_heard || !o->relearn_strict)
		log_warn(
			"node id=%s event=lease_lost gap_ms=%llu reason=\"%s\" "
			"note=\"fenced until the peer's map is heard again or "
			"failover_after_ms passes\"",
			o->me->id, (unsigned long long)gap_ms, why);
	o->relearn_ms = since;
	o->relearn_strict = strict;
	o->peer_map_heard = false;
}

/* The loop did not run for longer than the lease (the process was
 * paused, or a callback ran that long): a message read now may have
 * waited through it, and one that does not echo cannot tell. */
static void
owner_check_stall(struct owner *o, uint64_t now)
{
	if (!o->active || o->loop_ms == 0 ||
	    now - o->loop_ms <= owner_lease_ms(o))
		return;
	owner_relearn(o, now, true, "event loop stalled", now - o->loop_ms);
}

/* Contact at t (our clock) with the peer or a router: the lease. A gap
 * longer than the lease since the last contact means it lapsed. */
static void
owner_note_contact(struct owner *o, uint64_t t)
{
	uint64_t lease = owner_lease_ms(o);

	if (t <= o->contact_ms)
		return;
	if (o->contact_ms != 0 && t - o->contact_ms > lease)
		owner_relearn(o, o->contact_ms + lease, true, "lease lapsed",
			      t - o->contact_ms);
	o->contact_ms = t;
}

/* When a sender last provably heard us, on our clock: the send time of
 * ours it echoes. 0: it echoes nothing of this process (not yet, or a
 * previous one). A sender that does not echo (sends no clock of its own)
 * counts from now, as before echoes existed. */
static uint64_t
owner_echo(const struct owner *o, uint64_t echo_ms, bool echoes, uint64_t now)
{
	if (!echoes)
		return now;
	if (echo_ms < o->started_ms)
		return 0;
	return echo_ms < now ? echo_ms : now;
}

void
owner_heard_router(struct owner *o, const char *router_id, bool sees_peer,
		   uint64_t echo_ms)
{
	uint64_t now = owner_now(o), t;
	struct owner_router *r = NULL, *oldest = NULL;

	owner_check_stall(o, now);
	/* routers that echo send a nonzero echo once we answered them */
	t = owner_echo(o, echo_ms, echo_ms != 0, now);
	if (t != 0)
		owner_note_contact(o, t);
	for (size_t i = 0; i < o->n_routers; i++) {
		if (strcmp(o->routers[i].id, router_id) == 0) {
			r = &o->routers[i];
			break;
		}
		if (oldest == NULL || o->routers[i].heard_ms < oldest->heard_ms)
			oldest = &o->routers[i];
	}
	if (r == NULL && o->n_routers < OWNER_ROUTERS_MAX)
		r = &o->routers[o->n_routers++];
	else if (r == NULL &&
		 now - oldest->heard_ms > o->cfg->replication.failover_after_ms)
		r = oldest;	/* a quiet one makes room */
	if (r == NULL)
		return;
	snprintf(r->id, sizeof(r->id), "%s", router_id);
	r->heard_ms = now;
	r->sees_peer = sees_peer;
}

void
owner_heard_peer(struct owner *o, uint64_t sent_ms, uint64_t echo_ms)
{
	uint64_t now = owner_now(o), t;

	owner_check_stall(o, now);
	o->peer_heard_ms = now;
	t = owner_echo(o, echo_ms, sent_ms != 0, now);
	if (t != 0)
		owner_note_contact(o, t);
}

void
owner_heard_peer_map(struct owner *o, uint64_t sent_ms, uint64_t echo_ms)
{
	owner_check_stall(o, owner_now(o));
	if (sent_ms != 0 ? echo_ms >= o->relearn_ms : !o->relearn_strict)
		o->peer_map_heard = true;
}

uint64_t
owner_peer_heard_ms(const struct owner *o)
{
	return o->peer_heard_ms;
}

const Shoal__ShardMap *
owner_map(const struct owner *o)
{
	return o->map;
}

/* Routers heard within ms: how many, and how many still see the peer. */
static void
owner_router_votes(const struct owner *o, uint64_t now, uint64_t ms,
		   size_t *heard, size_t *see_peer)
{
	*heard = *see_peer = 0;
	for (size_t i = 0; i < o->n_routers; i++) {
		if (now - o->routers[i].heard_ms > ms)
			continue;
		(*heard)++;
		if (o->routers[i].sees_peer)
			(*see_peer)++;
	}
}

void
owner_routers(const struct owner *o,
	      void (*fn)(const char *id, uint64_t ms_ago, void *arg), void *arg)
{
	uint64_t now = owner_now(o);

	for (size_t i = 0; i < o->n_routers; i++)
		if (now - o->routers[i].heard_ms <=
		    o->cfg->replication.failover_after_ms)
			fn(o->routers[i].id, now - o->routers[i].heard_ms, arg);
}

bool
owner_may_deliver(struct owner *o)
{
	const struct config *cfg = o->cfg;
	uint64_t now = owner_now(o), lease = owner_lease_ms(o);
	bool has_lease, ok;

	if (!o->active)
		return !o->is_map_behind;
	owner_check_stall(o, now);
	has_lease = o->contact_ms != 0 && now - o->contact_ms <= lease;
	if (!has_lease && o->contact_ms != 0)
		owner_relearn(o, o->contact_ms + lease, true, "lease lapsed",
			      now - o->contact_ms);
	ok = has_lease && !o->is_map_behind &&
	     (o->peer_map_heard ||
	      now - o->relearn_ms >= cfg->replication.failover_after_ms);
	if (ok == o->fenced) {
		o->fenced = !ok;
		if (ok)
			log_info("node id=%s event=unfenced", o->me->id);
		else
			log_warn("node id=%s event=fenced reason=\"%s\"",
				 o->me->id,
				 !has_lease ? "neither peer nor router heard" :
				 o->is_map_behind ?
					      "a newer shard map not stored" :
					      "waiting for the peer's map");
		/* fenced: deliveries waiting to start are dropped, still
		 * due */
		o->hooks.fence_changed(o->hooks.arg, ok);
	}
	return ok;
}

void
owner_tick(struct owner *o)
{
	const struct config *cfg = o->cfg;
	uint64_t now = owner_now(o), after = cfg->replication.failover_after_ms;
	uint64_t last = o->peer_heard_ms ? o->peer_heard_ms : o->started_ms;
	size_t heard, see_peer;

	owner_handover_step(o);
	owner_may_deliver(o);	/* logs fencing transitions */
	o->loop_ms = owner_now(o);
	if (!o->active || now - last < after)
		return;
	owner_router_votes(o, now, after, &heard, &see_peer);
	if (heard == 0 || see_peer > 0)
		return;
	owner_take_over(o, "peer silent and no router hears it");
}

static void
owner_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	owner_tick(arg);
}

struct owner *
owner_new(struct event_base *base, const struct config *cfg,
	  const struct cfg_node *me, struct store *st, struct rpc *rpc,
	  Shoal__ShardMap *map, const struct cluster_hooks *hooks)
{
	struct owner *o = xcalloc(1, sizeof(*o));
	uint32_t hb = cfg->replication.heartbeat_ms;
	struct timeval tv = { (time_t)(hb / 1000),
			      (suseconds_t)(hb % 1000) * 1000 };

	o->cfg = cfg;
	o->me = me;
	o->store = st;
	o->rpc = rpc;
	o->hooks = *hooks;
	o->map = map;
	o->peer = me->peer;
	o->active = o->peer != NULL &&
		    cfg->replication.mode != CFG_REPL_NONE;
	o->started_ms = owner_now(o);
	o->relearn_ms = o->started_ms;
	o->fenced = o->active;
	o->incoming = o->frozen = -1;
	owner_set_journal(o);
	/* what a move here left behind when it did not finish */
	for (uint32_t s = 0; s < o->map->n_shards; s++)
		owner_purge(o, s);
	if (o->active) {
		o->timer = event_new(base, -1, EV_PERSIST, owner_on_timer, o);
		event_add(o->timer, &tv);
	}
	return o;
}

void
owner_set_repl(struct owner *o, struct repl *r)
{
	o->repl = r;
}

void
owner_free(struct owner *o)
{
	if (o == NULL)
		return;
	if (o->timer)
		event_free(o->timer);
	shardmap_free(o->map);
	free(o->handing);
	free(o);
}

void
owner_set_clock(struct owner *o, uint64_t (*now_ms)(void *), void *arg)
{
	o->clock_ms = now_ms;
	o->clock_arg = arg;
	/* what owner_new() read on the old clock, read again on this one */
	o->started_ms = owner_now(o);
	o->relearn_ms = o->started_ms;
	if (o->loop_ms != 0)
		o->loop_ms = o->started_ms;
}
