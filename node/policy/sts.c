/* MTA-STS policies for delivery (sts.h): the entries by domain, one
 * flight per domain (TXT record, then maybe the host and the HTTPS
 * fetch), the cache in memory and in the store, and the answers handed
 * to the waiting lookups from the loop.
 * Handles untrusted input: TXT records and policy bodies go through
 * node/tls/sts_policy.c; the HTTPS answer is bounded by http_client. */
#include "node/policy/sts.h"

#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/log.h"
#include "lib/smtp_addr.h"
#include "lib/xmalloc.h"
#include "node/delivery/dns.h"
#include "node/http/http_client.h"
#include "node/policy/policy_http.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/tls/sts_policy.h"

#define STS_BUCKETS 4096
#define STS_TXT_TYPE 16           /* TXT */
#define STS_REC_PREFIX "sts/"
#define STS_REC_VERSION "sts1"
#define STS_TTL_MIN DNS_TTL_MIN   /* look at the TXT record again after */
#define STS_TTL_MAX 3600

/* A policy shared by the lookups that were given it. */
struct sts_pol {
	int refs;
	char id[STS_ID_MAX + 1];
	uint64_t expires;         /* unix seconds: fetched + max_age */
	struct sts_policy p;
};

struct sts_entry;
struct sts_sweep;

/* One sts_get() until its callback runs or it is cancelled. */
struct sts_waiter {
	struct sts *s;
	struct sts_entry *e;      /* NULL once on the ready list */
	deliver_sts_fn fn;
	void *cbarg;
	struct sts_pol *pol;      /* the answer (a reference), or NULL */
	struct sts_waiter *prev, *next;
};

struct sts_entry {
	struct sts *s;
	char domain[DNS_NAME_MAX + 1];
	struct sts_pol *pol;      /* cached policy (a reference), or NULL */
	bool is_loaded;           /* the store was read */
	bool is_busy;             /* a flight is under way */
	uint64_t fresh_until;     /* unix s: no new lookup before */
	uint32_t txt_ttl;
	char txt_id[STS_ID_MAX + 1]; /* the record's id, while fetching */
	uint64_t dns_id;          /* TXT or host lookup in flight, or 0 */
	struct policy_http *call; /* fetch in flight, or NULL */
	bool is_fetching;         /* counted in sts.n_fetching */
	struct sts_entry *fnext;  /* waiting for a fetch slot */
	struct sts_waiter *waiters;
	struct sts_entry *hnext;  /* bucket chain */
	struct sts_entry *lprev, *lnext; /* recency: head = newest */
};

struct sts {
	struct sts_deps deps;
	struct sts_entry *buckets[STS_BUCKETS];
	struct sts_entry *lru_head, *lru_tail;
	size_t n_entries;
	struct sts_waiter *ready; /* answered, waiting for the event */
	size_t n_fetching;        /* fetches under way, <= STS_FETCH_MAX */
	struct sts_entry *fq_head, *fq_tail; /* waiting for a slot */
	struct event *ev_ready;
	struct sts_stats stats;
	uint64_t warn_next;       /* unix s: next fetch warning allowed */
	struct event *ev_sweep;   /* STS_SWEEP_S */
	struct sts_sweep *sweep;  /* the sweep item queued, or NULL */
	char sweep_from[STORE_LOCAL_NAME_MAX + 1];
};

static uint64_t
sts_now(void)
{
	return (uint64_t)time(NULL);
}

static uint32_t
sts_hash(const char *domain)
{
	uint32_t h = 2166136261u;

	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % STS_BUCKETS;
}

/* ---- policies ---- */

static struct sts_pol *
sts_pol_ref(struct sts_pol *pol)
{
	if (pol)
		pol->refs++;
	return pol;
}

static void
sts_pol_unref(struct sts_pol *pol)
{
	if (pol && --pol->refs == 0)
		free(pol);
}

/* The stored record of a policy: version, id, expiry, then the body as
 * fetched, one per line; parsed again at load. */
static struct sts_pol *
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
static size_t
sts_pol_text(const struct sts_policy *p, size_t head, char **out)
{
	char lines[STS_LINES_MAX][STS_LINE_MAX];
	size_t n = sts_policy_strings(p, lines, STS_LINES_MAX), o = head;

	*out = xmalloc(head + n * (STS_LINE_MAX + 1) + 1);
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(*out + o, "%s\n", lines[i]);
	return o - head;
}

static void
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

static void
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

#define STS_SWEEP_S 600
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

static void
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

/* ---- entries ---- */

static void
sts_lru_unlink(struct sts *s, struct sts_entry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		s->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		s->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void
sts_lru_front(struct sts *s, struct sts_entry *e)
{
	e->lnext = s->lru_head;
	if (s->lru_head)
		s->lru_head->lprev = e;
	s->lru_head = e;
	if (s->lru_tail == NULL)
		s->lru_tail = e;
}

static void
sts_entry_free(struct sts *s, struct sts_entry *e)
{
	struct sts_entry **pp = &s->buckets[sts_hash(e->domain)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	sts_lru_unlink(s, e);
	sts_pol_unref(e->pol);
	s->n_entries--;
	free(e);
}

/* Make room: the least recently used entries without a flight go. */
static void
sts_evict(struct sts *s)
{
	struct sts_entry *e = s->lru_tail;

	while (s->n_entries >= STS_ENTRIES_MAX && e != NULL) {
		struct sts_entry *prev = e->lprev;

		if (!e->is_busy)
			sts_entry_free(s, e);
		e = prev;
	}
}

static struct sts_entry *
sts_entry_get(struct sts *s, const char *domain)
{
	uint32_t h = sts_hash(domain);
	struct sts_entry *e;

	for (e = s->buckets[h]; e; e = e->hnext)
		if (strcmp(e->domain, domain) == 0) {
			sts_lru_unlink(s, e);
			sts_lru_front(s, e);
			return e;
		}
	sts_evict(s);
	e = xcalloc(1, sizeof(*e));
	e->s = s;
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	e->hnext = s->buckets[h];
	s->buckets[h] = e;
	sts_lru_front(s, e);
	s->n_entries++;
	return e;
}

/* ---- answers ---- */

static void
sts_on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct sts *s = arg;

	(void)fd;
	(void)what;
	while (s->ready != NULL) {
		struct sts_waiter *w = s->ready;
		struct sts_pol *pol = w->pol;

		s->ready = w->next;
		if (s->ready)
			s->ready->prev = NULL;
		/* the reference goes to the caller with the answer */
		w->fn(w->cbarg, pol ? &pol->p : NULL, pol ? pol->id : "");
		free(w);
	}
}

static void
sts_ready_push(struct sts *s, struct sts_waiter *w)
{
	w->e = NULL;
	w->prev = NULL;
	w->next = s->ready;
	if (s->ready)
		s->ready->prev = w;
	s->ready = w;
	event_active(s->ev_ready, EV_TIMEOUT, 0);
}

/* The policy in force for e now, as an answer: NULL for none. */
static struct sts_pol *
sts_answer(struct sts *s, struct sts_entry *e)
{
	struct sts_pol *pol = e->pol;

	if (pol == NULL || pol->p.mode == STS_MODE_NONE ||
	    pol->expires <= sts_now()) {
		s->stats.none++;
		return NULL;
	}
	return sts_pol_ref(pol);
}

/* The flight of e ended: every waiter gets the policy in force. */
static void sts_fetch_next(struct sts *s);

static void
sts_finish(struct sts *s, struct sts_entry *e, uint32_t fresh_s)
{
	if (e->is_fetching) {
		e->is_fetching = false;
		s->n_fetching--;
		sts_fetch_next(s);
	}
	e->is_busy = false;
	e->dns_id = 0;
	e->call = NULL;
	e->fresh_until = sts_now() + fresh_s;
	while (e->waiters != NULL) {
		struct sts_waiter *w = e->waiters;

		e->waiters = w->next;
		w->pol = sts_answer(s, e);
		sts_ready_push(s, w);
	}
}

static uint32_t
sts_clamp_ttl(uint32_t ttl)
{
	return ttl < STS_TTL_MIN ? STS_TTL_MIN :
	       ttl > STS_TTL_MAX ? STS_TTL_MAX : ttl;
}

/* ---- the fetch ---- */

static void
sts_fetch_failed(struct sts *s, struct sts_entry *e, const char *type,
		 const char *why)
{
	char q[LOG_QUOTE_BUF];
	uint64_t now = sts_now();

	s->stats.fetch_failed++;
	if (now >= s->warn_next) {
		s->warn_next = now + 10;
		log_warn("sts domain=%s event=fetch_failed result=%s cached=%s "
			 "error=%s",
			 e->domain, type,
			 e->pol && e->pol->expires > now ? e->pol->id : "-",
			 log_quote(q, sizeof(q), why, strlen(why)));
	}
	if (s->deps.report) {
		struct deliver_tls_session ts = {
			.domain = e->domain,
			.policy_type = "sts",
			.sts = e->pol && e->pol->expires > now ? &e->pol->p :
								  NULL,
			.mx = "",
			.ip = "",
			.source = "",
			.result = type,
		};

		s->deps.report(s->deps.report_arg, &ts);
	}
	sts_finish(s, e, STS_RETRY_S);
}

static bool
sts_is_text_plain(const char *ct)
{
	size_t n = strlen("text/plain");

	return strncasecmp(ct, "text/plain", n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void
sts_on_fetch(void *arg, const struct http_response *r)
{
	struct sts_entry *e = arg;
	struct sts *s = e->s;
	struct sts_pol *pol;
	char why[160];

	e->call = NULL;
	if (r->error[0] != '\0' || r->status != 200) {
		const char *type = r->is_tls_untrusted ? "sts-webpki-invalid" :
							 "sts-policy-fetch-error";

		if (r->error[0] != '\0')
			snprintf(why, sizeof(why), "%s", r->error);
		else
			snprintf(why, sizeof(why), "HTTP status %ld", r->status);
		sts_fetch_failed(s, e, type, why);
		return;
	}
	if (!sts_is_text_plain(r->content_type)) {
		snprintf(why, sizeof(why), "Content-Type %.80s, not text/plain",
			 r->content_type[0] ? r->content_type : "(none)");
		sts_fetch_failed(s, e, "sts-policy-invalid", why);
		return;
	}
	pol = xcalloc(1, sizeof(*pol));
	if (sts_policy_parse(r->body, r->body_len, &pol->p, why,
			     sizeof(why)) != 0) {
		free(pol);
		sts_fetch_failed(s, e, "sts-policy-invalid", why);
		return;
	}
	pol->refs = 1;
	snprintf(pol->id, sizeof(pol->id), "%s", e->txt_id);
	pol->expires = sts_now() + pol->p.max_age;
	log_info("sts domain=%s event=policy_fetched id=%s mode=%s mx=%zu "
		 "max_age=%u",
		 e->domain, pol->id, sts_mode_name(pol->p.mode), pol->p.n_mx,
		 pol->p.max_age);
	s->stats.fetched++;
	sts_pol_unref(e->pol);
	e->pol = pol;
	sts_store_put(s, e->domain, pol);
	if (s->deps.fetched != NULL) {
		char *text;
		size_t len = sts_pol_text(&pol->p, 0, &text);

		s->deps.fetched(s->deps.fetched_arg, e->domain, pol->id,
				pol->expires - pol->p.max_age, text, len);
		free(text);
	}
	sts_finish(s, e, sts_clamp_ttl(e->txt_ttl));
}

static void
sts_fetch_start(struct sts *s, struct sts_entry *e)
{
	const struct config *cfg = s->deps.cfg;
	char url[DNS_NAME_MAX + 96];
	unsigned port = cfg->delivery.mta_sts_port;
	struct http_request q = {
		.url = url,
		.timeout_ms = STS_FETCH_TIMEOUT_MS,
		.tls_verify = true,
		.ca_file = cfg->delivery.tls_ca_file,
		.keep = STS_POLICY_MAX,
		.read_max = STS_POLICY_MAX,
		.user_agent = "shoal-mta-sts/1",
	};

	if (port == 443)
		snprintf(url, sizeof(url),
			 "https://mta-sts.%s/.well-known/mta-sts.txt",
			 e->domain);
	else
		snprintf(url, sizeof(url),
			 "https://mta-sts.%s:%u/.well-known/mta-sts.txt",
			 e->domain, port);
	e->is_fetching = true;
	s->n_fetching++;
	if (s->deps.http == NULL ||
	    (e->call = policy_http_start(s->deps.dns, s->deps.http, &q,
					 sts_on_fetch, e)) == NULL)
		sts_fetch_failed(s, e, "sts-policy-fetch-error",
				 "could not start the request");
}

/* Start the fetches waiting for a slot, while there are slots. */
static void
sts_fetch_next(struct sts *s)
{
	while (s->fq_head != NULL && s->n_fetching < STS_FETCH_MAX) {
		struct sts_entry *e = s->fq_head;

		s->fq_head = e->fnext;
		if (s->fq_head == NULL)
			s->fq_tail = NULL;
		e->fnext = NULL;
		sts_fetch_start(s, e);
	}
}

/* At most STS_FETCH_MAX fetches at once (each costs a TLS handshake and
 * memory); the others wait their turn. */
static void
sts_fetch(struct sts *s, struct sts_entry *e)
{
	if (s->n_fetching < STS_FETCH_MAX) {
		sts_fetch_start(s, e);
		return;
	}
	if (s->fq_tail)
		s->fq_tail->fnext = e;
	else
		s->fq_head = e;
	s->fq_tail = e;
}

/* ---- the record ---- */

static void
sts_on_txt(const struct dns_rrset *r, void *arg)
{
	struct sts_entry *e = arg;
	struct sts *s = e->s;
	const char *txts[DNS_RR_MAX];
	size_t lens[DNS_RR_MAX];
	char id[STS_ID_MAX + 1];
	uint64_t now = sts_now();

	e->dns_id = 0;
	if (r->status == DNS_TEMPFAIL) {
		/* nothing known: a cached policy stays in force */
		sts_finish(s, e, STS_RETRY_S);
		return;
	}
	e->txt_ttl = r->ttl;
	for (size_t i = 0; i < r->n; i++) {
		txts[i] = (const char *)r->rr[i].data;
		lens[i] = r->rr[i].len;
	}
	/* records left out could be a second v=STSv1: then none holds */
	if (r->status != DNS_OK || r->n_dropped > 0 ||
	    sts_txt_pick(txts, lens, r->n, id) != 0) {
		/* no record: RFC 8461 5.1, a cached policy still holds */
		sts_finish(s, e, sts_clamp_ttl(r->ttl));
		return;
	}
	if (e->pol != NULL && strcmp(e->pol->id, id) == 0 &&
	    e->pol->expires > now) {
		s->stats.from_cache++;
		sts_finish(s, e, sts_clamp_ttl(r->ttl));
		return;
	}
	snprintf(e->txt_id, sizeof(e->txt_id), "%s", id);
	sts_fetch(s, e);
}

static void
sts_flight(struct sts *s, struct sts_entry *e)
{
	char name[DNS_NAME_MAX + 16];

	e->is_busy = true;
	if (!e->is_loaded)
		sts_store_load(s, e);
	if (snprintf(name, sizeof(name), "_mta-sts.%s", e->domain) >
	    DNS_NAME_MAX) {
		sts_finish(s, e, STS_TTL_MAX);
		return;
	}
	e->dns_id = dns_query(s->deps.dns, name, STS_TXT_TYPE, sts_on_txt, e);
}

/* ---- the interface ---- */

uint64_t
sts_get(struct sts *s, const char *domain, deliver_sts_fn fn, void *cbarg)
{
	struct sts_waiter *w = xcalloc(1, sizeof(*w));
	struct sts_entry *e = sts_entry_get(s, domain);

	w->s = s;
	w->fn = fn;
	w->cbarg = cbarg;
	if (!e->is_busy && e->is_loaded && sts_now() < e->fresh_until) {
		w->pol = sts_answer(s, e);
		sts_ready_push(s, w);
		return (uint64_t)(uintptr_t)w;
	}
	w->e = e;
	w->next = e->waiters;
	if (e->waiters)
		e->waiters->prev = w;
	e->waiters = w;
	if (!e->is_busy)
		sts_flight(s, e);
	return (uint64_t)(uintptr_t)w;
}

void
sts_cancel(struct sts *s, uint64_t id)
{
	struct sts_waiter *w = (struct sts_waiter *)(uintptr_t)id;
	struct sts_waiter **head;

	if (w == NULL)
		return;
	head = w->e ? &w->e->waiters : &s->ready;
	if (w->prev)
		w->prev->next = w->next;
	else
		*head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	sts_pol_unref(w->pol);
	free(w);
}

void
sts_release(struct sts *s, const struct sts_policy *p)
{
	(void)s;
	if (p != NULL)
		sts_pol_unref((struct sts_pol *)((char *)p -
						 offsetof(struct sts_pol, p)));
}

struct sts_stats
sts_stats(const struct sts *s)
{
	return s->stats;
}

int
sts_learn(struct sts *s, const char *domain, const char *id,
	  uint64_t fetched, const char *text, size_t len)
{
	char name[SMTP_NAME_TEXT_MAX + 1], err[80];
	size_t idlen = strnlen(id, STS_ID_MAX + 1);
	struct sts_pol *pol;
	struct sts_entry *e;

	if (smtp_name_norm(domain, name) != 0 || idlen == 0 ||
	    idlen > STS_ID_MAX || strspn(id, "abcdefghijklmnopqrstuvwxyz"
				       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "0123456789") != idlen)
		return -EINVAL;
	pol = xcalloc(1, sizeof(*pol));
	if (sts_policy_parse(text, len, &pol->p, err, sizeof(err)) != 0) {
		free(pol);
		return -EINVAL;
	}
	pol->refs = 1;
	memcpy(pol->id, id, idlen + 1);
	pol->expires = fetched + pol->p.max_age;
	e = sts_entry_get(s, name);
	if (!e->is_loaded)
		sts_store_load(s, e);
	/* a later fetch wins; one stamped past our clock (a minute's
	 * skew allowed) or already expired is refused */
	if (pol->expires <= sts_now() || fetched > sts_now() + 60 ||
	    (e->pol != NULL &&
	     e->pol->expires - e->pol->p.max_age >= fetched)) {
		free(pol);
		return 1;
	}
	log_info("sts domain=%s event=policy_learned id=%s mode=%s mx=%zu "
		 "max_age=%u",
		 name, pol->id, sts_mode_name(pol->p.mode), pol->p.n_mx,
		 pol->p.max_age);
	sts_pol_unref(e->pol);
	e->pol = pol;
	sts_store_put(s, name, pol);
	return 0;
}

struct sts *
sts_new(const struct sts_deps *deps)
{
	struct sts *s = xcalloc(1, sizeof(*s));

	s->deps = *deps;
	s->ev_ready = event_new(deps->base, -1, 0, sts_on_ready, s);
	s->ev_sweep = event_new(deps->base, -1, EV_PERSIST, sts_on_sweep, s);
	if (s->ev_ready == NULL || s->ev_sweep == NULL) {
		log_error("sts event=start_failed");
		if (s->ev_ready)
			event_free(s->ev_ready);
		if (s->ev_sweep)
			event_free(s->ev_sweep);
		free(s);
		return NULL;
	}
	event_add(s->ev_sweep, &(struct timeval){ STS_SWEEP_S, 0 });
	return s;
}

void
sts_stop(struct sts *s)
{
	if (s == NULL)
		return;
	s->fq_head = s->fq_tail = NULL; /* their waiters stay */
	for (struct sts_entry *e = s->lru_head; e; e = e->lnext) {
		if (e->dns_id != 0)
			dns_cancel(s->deps.dns, e->dns_id);
		policy_http_cancel(e->call);
		e->dns_id = 0;
		e->call = NULL;
		e->fnext = NULL;
	}
}

void
sts_free(struct sts *s)
{
	if (s == NULL)
		return;
	sts_stop(s);
	while (s->ready != NULL) {
		struct sts_waiter *w = s->ready;

		s->ready = w->next;
		sts_pol_unref(w->pol);
		free(w);
	}
	while (s->lru_head != NULL) {
		struct sts_entry *e = s->lru_head;

		while (e->waiters != NULL) {
			struct sts_waiter *w = e->waiters;

			e->waiters = w->next;
			free(w);
		}
		sts_entry_free(s, e);
	}
	event_free(s->ev_ready);
	event_free(s->ev_sweep);
	if (s->sweep != NULL) /* its commit runs after us */
		s->sweep->s = NULL;
	free(s);
}
