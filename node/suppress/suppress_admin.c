/* shoalctl's suppress requests on a node (node/suppress/suppress.h): list the
 * entries of our primary shards, show one, add or remove one through
 * group commit, answered once the peer has the change.
 *
 * Handles untrusted input: every field of a request is bounded and the
 * address normalised before use; a bad request gets BAD_REQUEST. */
#include "node/suppress/suppress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "node/cluster/owner.h"
#include "node/cluster/repl.h"
#include "node/rpc/rpc.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/suppress/suppress_int.h"

#define SUPP_LIST_DEFAULT 100
#define SUPP_DOMAIN_MAX 255

struct supp_req {
	struct suppress *sp;
	struct rpc_ticket ticket;
	Shoal__SuppressOp op;
	char norm[SUPPRESS_ADDR_MAX + 1];
	char reply[SUPPRESS_REPLY_MAX + 1];
	char enhanced[SUPP_ENH_MAX + 1];
	char source[16];
	char qid[QID_MAX];
	uint64_t created;
	bool found;
	int result;
	uint64_t seq; /* journal seq of the change */
	struct event *settle_ev; /* an add: routers' filters catch up */
	bool durable;
	struct supp_req *next_settling; /* sp->settling */
};

static void
supp_answer(struct suppress *sp, const struct rpc_ticket *t,
	    Shoal__Status status, const char *msg, Shoal__SuppressReply *body)
{
	Shoal__AdminReply r = SHOAL__ADMIN_REPLY__INIT;

	r.status = status;
	r.message = (char *)(msg ? msg : "");
	r.node_id = (char *)sp->d.node_id;
	if (body) {
		r.body_case = SHOAL__ADMIN_REPLY__BODY_SUPPRESS;
		r.suppress = body;
	}
	rpc_reply_admin(sp->d.rpc, t, &r);
}

static int
supp_req_apply(struct store_txn *t, void *arg)
{
	struct supp_req *q = arg;
	char key[SUPPRESS_KEY_MAX];
	int rc;

	if (q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD) {
		rc = suppress_entry_put(q->sp, t, SUPPRESS_KEY_TAG, q->norm,
					q->reply, q->enhanced, q->source,
					q->qid, q->created);
	} else {
		suppress_key(q->norm, q->sp->d.cfg->cluster.shards,
			     SUPPRESS_KEY_TAG, key);
		rc = store_supp_del(t, key);
		q->found = rc == 0;
		rc = rc == -ENOENT ? 0 : rc;
	}
	q->seq = store_txn_journal_seq(t);
	return rc;
}

static void supp_req_answer(bool durable, void *arg);

static void
supp_settling_del(struct supp_req *q)
{
	struct supp_req **pp = &q->sp->settling;

	while (*pp != NULL && *pp != q)
		pp = &(*pp)->next_settling;
	if (*pp == q)
		*pp = q->next_settling;
}

static void
supp_req_settled(evutil_socket_t fd, short what, void *arg)
{
	struct supp_req *q = arg;

	(void)fd;
	(void)what;
	supp_settling_del(q);
	supp_req_answer(q->durable, q);
}

void
suppress_admin_stop(struct suppress *sp)
{
	while (sp->settling != NULL) {
		struct supp_req *q = sp->settling;

		sp->settling = q->next_settling;
		event_free(q->settle_ev);
		free(q);
	}
}

static void
supp_req_answer(bool durable, void *arg)
{
	struct supp_req *q = arg;
	Shoal__SuppressReply body = SHOAL__SUPPRESS_REPLY__INIT;
	int result = q->result;

	/* a router may skip the check of an address for a moment after the
	 * add (its filter: SUPPRESS_FILTER_TRUST_MS); shoalctl's answer
	 * waits that out, so that mail sent after it meets the entry (a
	 * node's pending add has no sender waiting on it) */
	if (q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD && result == 0 &&
	    strcmp(q->source, "admin") == 0 && q->settle_ev == NULL) {
		struct timeval tv = { 0, 2 * SUPPRESS_FILTER_TRUST_MS * 1000 };

		q->durable = durable;
		q->settle_ev = evtimer_new(q->sp->d.base, supp_req_settled, q);
		if (q->settle_ev != NULL &&
		    evtimer_add(q->settle_ev, &tv) == 0) {
			q->next_settling = q->sp->settling;
			q->sp->settling = q;
			return;
		}
	}

	/* not on the peer (require_peer): the change stays here and travels
	 * later; the requester is told it is not durable yet */
	if (result == 0 && !durable)
		result = SHOAL_E_NOT_DURABLE;

	body.found = q->found || q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD;
	log_info("rcpt=<%s> event=suppress_%s source=%s result=%s", q->norm,
		 q->op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD ? "add" : "remove",
		 q->source,
		 result	  ? shoal_strerror(result) :
		 q->found ? "removed" :
			    "ok");
	supp_answer(q->sp, &q->ticket,
		    result == 0 ? SHOAL__STATUS__STATUS_OK :
		    result == SHOAL_E_STORAGE_FULL ?
				  SHOAL__STATUS__STATUS_STORAGE_FULL :
				  SHOAL__STATUS__STATUS_INTERNAL,
		    result ? shoal_strerror(result) : "", &body);
	if (q->settle_ev)
		event_free(q->settle_ev);
	free(q);
}

/* Committed here: answer once the peer has it too, as for a message. */
static void
supp_req_done(int result, void *arg)
{
	struct supp_req *q = arg;

	q->result = result;
	if (result == 0 && q->seq != 0)
		repl_wait(q->sp->d.repl, q->seq, supp_req_answer, q);
	else
		supp_req_answer(true, q);
}

struct supp_list {
	struct suppress *sp;
	const char *domain;
	size_t limit;
	Shoal__SuppressEntry **entries;
	size_t n;
	char last[SUPPRESS_KEY_MAX];
	bool more;
};

static int
supp_list_one(const char *key, uint32_t shard, const void *entry, size_t len,
	      void *arg)
{
	struct supp_list *l = arg;
	Shoal__SuppressEntry *e;
	const char *at;

	if (!owner_is_primary(l->sp->d.owner, shard))
		return 0;
	if (l->n == l->limit) {
		l->more = true;
		return 1;
	}
	e = suppress_entry_unpack(entry, len);
	if (e == NULL)
		return 0;
	at = strrchr(e->address, '@');
	if (suppress_entry_expired(l->sp, e) ||
	    (l->domain[0] && (at == NULL || strcasecmp(at + 1, l->domain)))) {
		shoal__suppress_entry__free_unpacked(e, NULL);
		return 0;
	}
	l->entries[l->n++] = e;
	snprintf(l->last, sizeof(l->last), "%s", key);
	return 0;
}

static void
supp_list(struct suppress *sp, const struct rpc_ticket *tk,
	  const Shoal__SuppressRequest *sr)
{
	Shoal__SuppressReply body = SHOAL__SUPPRESS_REPLY__INIT;
	struct supp_list l = { .sp = sp, .domain = sr->domain };
	char prefix[2] = { SUPPRESS_KEY_TAG, '\0' };
	struct store_txn *t;
	uint32_t shard;
	int rc;

	l.limit = sr->limit == 0		? SUPP_LIST_DEFAULT :
		  sr->limit > SUPPRESS_LIST_MAX ? SUPPRESS_LIST_MAX :
						  sr->limit;
	if (sr->after[0] && !suppress_key_parse(sr->after, &shard)) {
		supp_answer(sp, tk, SHOAL__STATUS__STATUS_BAD_REQUEST,
			    "bad after key", NULL);
		return;
	}
	if (store_txn_begin(sp->d.store, true, &t) != 0) {
		supp_answer(sp, tk, SHOAL__STATUS__STATUS_INTERNAL, "store",
			    NULL);
		return;
	}
	l.entries = xcalloc(l.limit, sizeof(*l.entries));
	rc = store_supp_foreach(t, prefix, sr->after, supp_list_one, &l);
	store_txn_abort(t);
	body.n_entries = l.n;
	body.entries = l.entries;
	body.more = l.more;
	body.last = l.last;
	supp_answer(sp, tk,
		    rc == 0 || rc == 1 ? SHOAL__STATUS__STATUS_OK :
					 SHOAL__STATUS__STATUS_INTERNAL,
		    rc == 0 || rc == 1 ? "" : "store", &body);
	for (size_t i = 0; i < l.n; i++)
		shoal__suppress_entry__free_unpacked(l.entries[i], NULL);
	free(l.entries);
}

static void
supp_show(struct suppress *sp, const struct rpc_ticket *tk, const char *norm)
{
	Shoal__SuppressReply body = SHOAL__SUPPRESS_REPLY__INIT;
	Shoal__SuppressEntry *e = NULL;
	char key[SUPPRESS_KEY_MAX];
	struct store_txn *t;
	const void *v;
	size_t len;

	suppress_key(norm, sp->d.cfg->cluster.shards, SUPPRESS_KEY_TAG, key);
	if (store_txn_begin(sp->d.store, true, &t) != 0) {
		supp_answer(sp, tk, SHOAL__STATUS__STATUS_INTERNAL, "store",
			    NULL);
		return;
	}
	if (store_supp_get(t, key, &v, &len) == 0 &&
	    (e = suppress_entry_unpack(v, len)) != NULL) {
		body.found = true;
		body.n_entries = 1;
		body.entries = &e;
	}
	supp_answer(sp, tk, SHOAL__STATUS__STATUS_OK, "", &body);
	if (e)
		shoal__suppress_entry__free_unpacked(e, NULL);
	store_txn_abort(t);
}

void
suppress_admin(struct suppress *sp, const struct rpc_ticket *tk,
	       const Shoal__AdminRequest *rq)
{
	const Shoal__SuppressRequest *sr = rq->suppress;
	uint32_t shards = sp->d.cfg->cluster.shards;
	char norm[SUPPRESS_ADDR_MAX + 1];
	struct supp_req *q;
	const char *why = NULL;

	if ((unsigned)sr->op > SHOAL__SUPPRESS_OP__SUPPRESS_SHOW)
		why = "unknown suppress operation";
	else if (strnlen(sr->domain, SUPP_DOMAIN_MAX + 1) > SUPP_DOMAIN_MAX ||
		 strnlen(sr->after, SUPPRESS_KEY_MAX + 1) > SUPPRESS_KEY_MAX)
		why = "domain or paging key too long";
	if (why == NULL && sr->op == SHOAL__SUPPRESS_OP__SUPPRESS_LIST) {
		supp_list(sp, tk, sr);
		return;
	}
	if (why == NULL &&
	    suppress_addr_norm(sr->address,
			       strnlen(sr->address, SUPPRESS_ADDR_MAX + 1),
			       norm) != 0)
		why = "bad address (needs local@domain, at most 320 octets)";
	else if (why == NULL &&
		 (strnlen(sr->reply, 4097) > 4096 ||
		  strnlen(sr->enhanced, SUPP_ENH_MAX + 1) > SUPP_ENH_MAX ||
		  strnlen(sr->qid, QID_MAX) >= QID_MAX ||
		  strnlen(sr->source, 16) > 15))
		why = "reason, code, qid or source too long";
	if (why != NULL) {
		log_warn("admin event=bad_request kind=suppress reason=\"%s\"",
			 why);
		supp_answer(sp, tk, SHOAL__STATUS__STATUS_BAD_REQUEST, why,
			    NULL);
		return;
	}
	if (!owner_is_primary(sp->d.owner, suppress_shard(norm, shards))) {
		supp_answer(sp, tk, SHOAL__STATUS__STATUS_NOT_OWNER,
			    "not the primary of the address's shard", NULL);
		return;
	}
	if (sr->op != SHOAL__SUPPRESS_OP__SUPPRESS_SHOW &&
	    owner_is_frozen(sp->d.owner, suppress_shard(norm, shards))) {
		/* a change now could miss the move's last batch */
		supp_answer(sp, tk, SHOAL__STATUS__STATUS_MOVING,
			    "the address's shard is moving, try again", NULL);
		return;
	}
	if (sr->op == SHOAL__SUPPRESS_OP__SUPPRESS_SHOW) {
		supp_show(sp, tk, norm);
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->sp = sp;
	q->ticket = *tk;
	q->op = sr->op;
	snprintf(q->norm, sizeof(q->norm), "%s", norm);
	suppress_sanitize(sr->reply[0] ?
				  sr->reply :
				  "550 5.1.1 suppressed by the postmaster",
			  q->reply);
	snprintf(q->enhanced, sizeof(q->enhanced), "%s",
		 sr->enhanced[0] ? sr->enhanced : "5.1.1");
	snprintf(q->source, sizeof(q->source), "%s",
		 strcmp(sr->source, "bounce") == 0 ? "bounce" : "admin");
	snprintf(q->qid, sizeof(q->qid), "%s", sr->qid);
	/* the time is taken now: the apply may run twice */
	q->created = sr->created ? sr->created : (uint64_t)time(NULL);
	commit_add(sp->d.commit, supp_req_apply, supp_req_done, q);
}
