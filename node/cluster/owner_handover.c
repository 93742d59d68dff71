/* Planned failover and failback (shoalctl node failover / failback,
 * proto/cli_node.proto FailoverRequest): the node that gives its shards
 * up freezes them (no delivery of them starts, those waiting are dropped,
 * still due), waits up to 30 s for the attempts already under way, then
 * up to 5 s for its peer to acknowledge the journal as it was then, and
 * makes the new epoch (owner_swap()), sent to the peer at once; what the
 * peer had not acknowledged arrives as a handback. A forced one is the
 * taker's: it swaps at once. Answered to the asker (an rpc_ticket) when
 * done. docs/replication.md "Planned failover". The request comes from
 * shoalctl through node/ops/admin.c, which checked its shape. */
#include "node/cluster/owner.h"
#include "node/cluster/owner_int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"
#include "node/cluster/repl.h"
#include "node/rpc/rpc.h"
#include "node/store/store.h"

#define OWNER_LAG_WAIT_MS 5000        /* then the handback carries the rest */

const char *
owner_in_flight_giveup(const struct cluster_hooks *h)
{
	if (h->results_unsaved(h->arg))
		return "deliveries still in flight after 30 s: their results "
		       "cannot be saved (storage full); nothing moved";
	return "deliveries still in flight after 30 s; nothing moved";
}

bool
owner_is_handing(const struct owner *o, uint32_t shard)
{
	return o->ho.active && shard < o->n_handing && o->handing[shard];
}

static void
owner_failover_answer(struct owner *o, const struct rpc_ticket *to,
		      Shoal__Status status, const char *message, int moved,
		      bool forced)
{
	Shoal__FailoverReply fr = SHOAL__FAILOVER_REPLY__INIT;
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;

	fr.epoch = o->map->epoch;
	fr.primary = (char *)(o->peer && !forced ? o->peer : o->me->id);
	fr.shards = moved > 0 ? (uint32_t)moved : 0;
	fr.forced = forced;
	r.node_id = (char *)o->me->id;
	r.status = status;
	r.message = (char *)(message ? message : "");
	if (status == SHOAL__STATUS__STATUS_OK) {
		r.body_case = SHOAL__ADMIN_REPLY__BODY_FAILOVER;
		r.failover = &fr;
	}
	rpc_reply_admin(o->rpc, to, &r);
}

/* Freeze the shards a handover gives away: those whose primary the swap
 * would change. Their deliveries waiting in delivery's queues are dropped
 * (still due; the new owner delivers them). */
static void
owner_handing_start(struct owner *o)
{
	Shoal__ShardMap *first = o->ho.back ? shardmap_derive(o->cfg) : NULL;
	size_t moved;
	Shoal__ShardMap *next = shardmap_swap(o->map, o->me->id, o->peer,
					      o->me->id, first, &moved);

	free(o->handing);
	o->n_handing = o->map->n_shards;
	o->handing = xcalloc(o->n_handing ? o->n_handing : 1, 1);
	for (size_t s = 0; s < o->n_handing && s < next->n_shards; s++)
		o->handing[s] = strcmp(o->map->shards[s]->primary,
				       next->shards[s]->primary) != 0;
	shardmap_free(next);
	shardmap_free(first);
	o->hooks.starts_revoked(o->hooks.arg);
}

static void
owner_handing_end(struct owner *o)
{
	free(o->handing);
	o->handing = NULL;
	o->n_handing = 0;
}

/* Hand the shards over once nothing of theirs is in flight and the peer
 * has acknowledged the journal as it was then (or OWNER_LAG_WAIT_MS
 * passed: the rest arrives as a handback). */
void
owner_handover_step(struct owner *o)
{
	struct owner_handover *ho = &o->ho;
	uint64_t now = owner_now(o), waited = now - ho->started_ms;
	uint64_t busy;
	int moved;

	if (!ho->active)
		return;
	busy = o->hooks.in_flight(o->hooks.arg, o->handing, o->n_handing);
	if (busy > 0 && waited >= OWNER_IN_FLIGHT_WAIT_MS) {
		ho->active = false;
		owner_handing_end(o);
		log_warn("node id=%s event=failover_abandoned in_flight=%llu",
			 o->me->id, (unsigned long long)busy);
		owner_failover_answer(o, &ho->asker,
				      SHOAL__STATUS__STATUS_INTERNAL,
				      owner_in_flight_giveup(&o->hooks), 0,
				      false);
		o->hooks.work_due(o->hooks.arg);
		return;
	}
	if (busy > 0)
		return;
	if (ho->drained_ms == 0) {
		ho->drained_ms = now;
		ho->lag_target = store_journal_seq(o->store);
		log_info("node id=%s event=handover_drained waited_ms=%llu "
			 "journal=%llu",
			 o->me->id, (unsigned long long)waited,
			 (unsigned long long)ho->lag_target);
	}
	if (o->repl != NULL && !repl_acked_upto(o->repl, ho->lag_target) &&
	    now - ho->drained_ms < OWNER_LAG_WAIT_MS)
		return;
	ho->active = false;
	owner_handing_end(o);
	moved = owner_swap(o, o->me->id, o->peer, ho->back,
			   ho->back ? "planned failback" : "planned failover");
	if (moved < 0)
		owner_failover_answer(o, &ho->asker,
				      SHOAL__STATUS__STATUS_INTERNAL,
				      shoal_strerror(moved), 0, false);
	else
		owner_failover_answer(o, &ho->asker, SHOAL__STATUS__STATUS_OK,
				      "", moved, false);
	o->hooks.work_due(o->hooks.arg);
}

void
owner_failover(struct owner *o, const struct rpc_ticket *t,
	       const Shoal__FailoverRequest *req)
{
	const char *me = o->me->id, *id = req->node_id;
	bool is_me = strcmp(id, me) == 0;
	bool is_peer = o->peer && strcmp(id, o->peer) == 0;
	Shoal__Status bad = SHOAL__STATUS__STATUS_BAD_REQUEST;
	int moved;

	log_info("node id=%s event=failover_request node=%.64s force=%d "
		 "back=%d",
		 me, id, (int)req->force, (int)req->back);
	if (!o->active) {
		owner_failover_answer(o, t, bad, "no peer to fail over to (or "
				      "replication.mode = none)", 0, false);
		return;
	}
	if (!is_me && !is_peer) {
		owner_failover_answer(o, t, bad, "not this node or its peer", 0,
				      false);
		return;
	}
	/* forced: the other node is down, take its shards (or, back, ours)
	 * now; "me" gives up nothing here */
	if (req->force) {
		if (req->back ? !is_me : !is_peer) {
			owner_failover_answer(o, t, bad,
					      "force goes to the node that "
					      "takes the shards", 0, false);
			return;
		}
		moved = owner_swap(o, o->peer, me, req->back,
				   req->back ? "forced failback" :
					       "forced failover");
		owner_failover_answer(
			o, t,
			moved < 0 ? SHOAL__STATUS__STATUS_INTERNAL :
				    SHOAL__STATUS__STATUS_OK,
			moved < 0 ? shoal_strerror(moved) : "", moved, true);
		return;
	}
	if (req->back ? !is_peer : !is_me) {
		owner_failover_answer(o, t, bad,
				      "send it to the node that gives the "
				      "shards up", 0, false);
		return;
	}
	if (o->ho.active) {
		owner_failover_answer(o, t, bad, "a failover is in progress", 0,
				      false);
		return;
	}
	o->ho = (struct owner_handover){ 0 };
	o->ho.active = true;
	o->ho.back = req->back;
	o->ho.asker = *t;
	o->ho.started_ms = owner_now(o);
	owner_handing_start(o);
	log_info("node id=%s event=handover_start to=%s back=%d in_flight=%llu "
		 "in_flight_moving=%llu",
		 me, o->peer, (int)req->back,
		 (unsigned long long)o->hooks.in_flight(o->hooks.arg, NULL, 0),
		 (unsigned long long)o->hooks.in_flight(
			 o->hooks.arg, o->handing, o->n_handing));
	owner_handover_step(o);
}
