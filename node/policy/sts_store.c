/* MTA-STS policies as shared objects and as records in the store
 * (sts_int.h): a record is written through the group commit, read back
 * when a domain is first looked up, and swept once expired.
 * Handles untrusted input: records are checked when read (a damaged one
 * is no policy, and is swept). */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/policy/sts_int.h"
#include "node/store/commit.h"

/* ---- policies ---- */

struct sts_pol *
sts_pol_ref(struct sts_pol *pol)
{
	if (pol)
		pol->refs++;
	return pol;
}

void
sts_pol_unref(struct sts_pol *pol)
{
	if (pol && --pol->refs == 0)
		free(pol);
}

/* The stored record of a policy: version, id, expiry, then the body as
 * fetched, one per line; parsed again at load. */
struct sts_pol *
sts_pol_parse_record(const char *rec, size_t len, uint64_t now)
{
	char id[STS_ID_MAX + 1], err[80];
	unsigned long long expires;
	struct sts_pol *pol;
	const char *body;
	int n = 0;

	if (len < 8 || memcmp(rec, STS_REC_VERSION "\n", 5) != 0 ||
	    memchr(rec, '\0', len) != NULL)
		return NULL;
	body = memchr(rec + 5, '\n', len - 5);
	if (body == NULL || (body = memchr(body + 1, '\n',
					  len - (size_t)(body + 1 - rec))) ==
				    NULL)
		return NULL;
	body++;
	{
		char head[STS_ID_MAX + 48];
		size_t hl = (size_t)(body - rec);

		if (hl >= sizeof(head))
			return NULL;
		memcpy(head, rec, hl);
		head[hl] = '\0';
		if (sscanf(head, STS_REC_VERSION "\n%32[A-Za-z0-9]\n%llu\n%n",
			   id, &expires, &n) != 2 || (size_t)n != hl)
			return NULL;
	}
	if (expires <= now)
		return NULL;
	pol = xcalloc(1, sizeof(*pol));
	if (sts_policy_parse(body, len - (size_t)(body - rec), &pol->p, err,
			     sizeof(err)) != 0) {
		free(pol);
		return NULL;
	}
	pol->refs = 1;
	snprintf(pol->id, sizeof(pol->id), "%s", id);
	pol->expires = expires;
	return pol;
}

/* ---- the store ---- */

struct sts_write {
	char name[STORE_LOCAL_NAME_MAX + 1];
	char *rec;                /* NULL: delete */
	size_t len;
};

/* A policy is kept only while the store has room to spare (more than
 * half of it free, store_room_for_extras()): a domain's policy never
 * costs a message its place. Without room the policy lives in memory
 * only. */
static int
sts_write_apply(struct store_txn *t, void *arg)
{
	struct sts_write *w = arg;

	if (w->rec == NULL)
		return store_local_del(t, w->name);
	if (!store_room_for_extras(t, w->len + STORE_LOCAL_NAME_MAX))
		return 0;
	return store_local_put(t, w->name, w->rec, w->len);
}

static void
sts_write_done(int result, void *arg)
{
	struct sts_write *w = arg;

	if (result != 0)
		log_warn("sts record=%s event=store_failed rc=%d", w->name,
			 result);
	free(w->rec);
	free(w);
}

/* The record of pol (NULL: delete the domain's): its id and expiry,
 * then the policy as its RFC 8460 policy-string lines, which
 * sts_policy_parse() reads back (a few hundred bytes, whatever the
 * server sent around them). */
/* p as its policy-string lines, one per line, into out (malloc'd);
 * returns the length. sts_policy_parse() reads it back. */
size_t
sts_pol_text(const struct sts_policy *p, size_t head, char **out)
{
	char lines[STS_LINES_MAX][STS_LINE_MAX];
	size_t n = sts_policy_strings(p, lines, STS_LINES_MAX), o = head;

	*out = xmalloc(head + n * (STS_LINE_MAX + 1) + 1);
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(*out + o, "%s\n", lines[i]);
	return o - head;
}

void
sts_store_put(struct sts *s, const char *domain, const struct sts_pol *pol)
{
	char head[STS_ID_MAX + 48];
	struct sts_write *w;
	size_t n;

	if (s->deps.commit == NULL)
		return;
	w = xcalloc(1, sizeof(*w));
	snprintf(w->name, sizeof(w->name), STS_REC_PREFIX "%s", domain);
	if (pol != NULL) {
		n = (size_t)snprintf(head, sizeof(head),
				     STS_REC_VERSION "\n%s\n%llu\n", pol->id,
				     (unsigned long long)pol->expires);
		w->len = n + sts_pol_text(&pol->p, n, &w->rec);
		memcpy(w->rec, head, n);
	}
	commit_add(s->deps.commit, sts_write_apply, sts_write_done, w);
}

void
sts_store_load(struct sts *s, struct sts_entry *e)
{
	char name[STORE_LOCAL_NAME_MAX + 1];
	struct store_txn *t;
	const void *p;
	size_t len;

	e->is_loaded = true;
	if (s->deps.store == NULL ||
	    store_txn_begin(s->deps.store, true, &t) != 0)
		return;
	snprintf(name, sizeof(name), STS_REC_PREFIX "%s", e->domain);
	if (store_local_get(t, name, &p, &len) == 0) {
		e->pol = sts_pol_parse_record(p, len, sts_now());
		if (e->pol == NULL) /* expired or unreadable: forget it */
			sts_store_put(s, e->domain, NULL);
	}
	store_txn_abort(t);
}

/* ---- the sweep: expired records leave the store ----
 * Once per STS_SWEEP_S a commit item walks at most STS_SWEEP_VISIT
 * records from where the last one stopped and deletes those past their
 * max_age (or unreadable), at most STS_SWEEP_DEL of them. */

#define STS_SWEEP_VISIT 2048
#define STS_SWEEP_DEL 256

struct sts_sweep {
	struct sts *s;
	char from[STORE_LOCAL_NAME_MAX + 1]; /* resume here ("" = start) */
	char next[STORE_LOCAL_NAME_MAX + 1]; /* where this run stopped */
	size_t visited, n_del;
	uint64_t now;
	char del[STS_SWEEP_DEL][STORE_LOCAL_NAME_MAX + 1];
};

static int
sts_sweep_one(const char *name, const void *p, size_t len, void *arg)
{
	struct sts_sweep *sw = arg;
	struct sts_pol *pol;

	if (sw->visited++ >= STS_SWEEP_VISIT || sw->n_del >= STS_SWEEP_DEL) {
		snprintf(sw->next, sizeof(sw->next), "%s", name);
		return 1;
	}
	pol = sts_pol_parse_record(p, len, sw->now);
	if (pol == NULL)
		snprintf(sw->del[sw->n_del++], sizeof(sw->del[0]), "%s", name);
	free(pol);
	return 0;
}

static int
sts_sweep_apply(struct store_txn *t, void *arg)
{
	struct sts_sweep *sw = arg;
	int rc;

	sw->visited = sw->n_del = 0;
	sw->next[0] = '\0';
	rc = store_local_foreach_from(t, STS_REC_PREFIX,
				      sw->from[0] ? sw->from : STS_REC_PREFIX,
				      sts_sweep_one, sw);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sw->n_del; i++)
		if ((rc = store_local_del(t, sw->del[i])) != 0)
			return rc;
	return 0;
}

static void
sts_sweep_done(int result, void *arg)
{
	struct sts_sweep *sw = arg;
	struct sts *s = sw->s;

	if (result == 0 && sw->n_del > 0)
		log_info("sts event=swept expired=%zu", sw->n_del);
	if (s != NULL) { /* NULL: sts_free() came first */
		snprintf(s->sweep_from, sizeof(s->sweep_from), "%s",
			 result == 0 ? sw->next : "");
		s->sweep = NULL;
	}
	free(sw);
}

void
sts_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct sts *s = arg;
	struct sts_sweep *sw;

	(void)fd;
	(void)what;
	if (s->sweep != NULL || s->deps.commit == NULL)
		return;
	sw = xcalloc(1, sizeof(*sw));
	sw->s = s;
	sw->now = sts_now();
	snprintf(sw->from, sizeof(sw->from), "%s", s->sweep_from);
	s->sweep = sw;
	commit_add(s->deps.commit, sts_sweep_apply, sts_sweep_done, sw);
}

void
sts_sweep_now(struct sts *s)
{
	sts_on_sweep(-1, 0, s);
}


void
sts_sweep_orphan(struct sts_sweep *sw)
{
	sw->s = NULL;
}
