/* MTA-STS policies for delivery (sts.h): the entries by domain, one
 * flight per domain (TXT record, then maybe the HTTPS fetch), the cache
 * in memory (its records in the store: sts_store.c), and the answers
 * handed to the waiting lookups from the loop.
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
#include "node/policy/sts_int.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "node/tls/sts_policy.h"

static uint32_t
sts_hash(const char *domain)
{
	uint32_t h = 2166136261u;

	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % STS_BUCKETS;
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

/* ---- policies other nodes fetched ---- */

/* One policy another node sent, while its id is checked against the
 * domain's TXT record. */
struct sts_learning {
	struct sts *s;
	char domain[SMTP_NAME_TEXT_MAX + 1];
	struct sts_pol *pol;
	uint64_t dns_id;
	struct sts_learning *prev, *next;
};

static const int sts_mode_rank[] = {
	[STS_MODE_NONE] = 0, [STS_MODE_TESTING] = 1, [STS_MODE_ENFORCE] = 2,
};

int
sts_adopt(struct sts *s, const char *domain, struct sts_pol *pol)
{
	struct sts_entry *e = sts_entry_get(s, domain);
	const struct sts_pol *have;
	uint64_t fetched = pol->expires - pol->p.max_age;

	if (!e->is_loaded)
		sts_store_load(s, e);
	have = e->pol && e->pol->expires > sts_now() ? e->pol : NULL;
	/* a later fetch wins, but never one that weakens the policy in
	 * force: a domain that relaxes its policy publishes a new id, and
	 * every node fetches that itself */
	if (have != NULL &&
	    (have->expires - have->p.max_age >= fetched ||
	     sts_mode_rank[pol->p.mode] < sts_mode_rank[have->p.mode])) {
		sts_pol_unref(pol);
		return 1;
	}
	log_info("sts domain=%s event=policy_learned id=%s mode=%s mx=%zu "
		 "max_age=%u",
		 domain, pol->id, sts_mode_name(pol->p.mode), pol->p.n_mx,
		 pol->p.max_age);
	sts_pol_unref(e->pol);
	e->pol = pol;
	sts_store_put(s, domain, pol);
	return 0;
}

static void
sts_learning_free(struct sts_learning *l)
{
	struct sts *s = l->s;

	if (l->prev)
		l->prev->next = l->next;
	else
		s->learning = l->next;
	if (l->next)
		l->next->prev = l->prev;
	s->n_learning--;
	sts_pol_unref(l->pol);
	free(l);
}

/* The domain's TXT record now: the policy is taken only under the id
 * the domain itself publishes (not on a node's or a forger's word). */
static void
sts_on_learn_txt(const struct dns_rrset *r, void *arg)
{
	struct sts_learning *l = arg;
	const char *txts[DNS_RR_MAX];
	size_t lens[DNS_RR_MAX];
	char id[STS_ID_MAX + 1];

	l->dns_id = 0;
	for (size_t i = 0; i < r->n; i++) {
		txts[i] = (const char *)r->rr[i].data;
		lens[i] = r->rr[i].len;
	}
	if (r->status == DNS_OK && r->n_dropped == 0 &&
	    sts_txt_pick(txts, lens, r->n, id) == 0 &&
	    strcmp(id, l->pol->id) == 0) {
		(void)sts_adopt(l->s, l->domain, sts_pol_ref(l->pol));
	} else {
		log_info("sts domain=%s event=policy_not_learned id=%s "
			 "reason=\"not the id of the domain's TXT record\"",
			 l->domain, l->pol->id);
	}
	sts_learning_free(l);
}

int
sts_learn(struct sts *s, const char *domain, const char *id,
	  uint64_t fetched, const char *text, size_t len)
{
	char err[80], name[DNS_NAME_MAX + 16];
	size_t idlen = strnlen(id, STS_ID_MAX + 1);
	struct sts_learning *l;
	struct sts_pol *pol;

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
	/* already expired, or stamped past our clock (a minute's skew
	 * allowed), or too many waiting for their check */
	if (pol->expires <= sts_now() || fetched > sts_now() + 60 ||
	    s->n_learning >= STS_LEARN_MAX || s->deps.dns == NULL) {
		free(pol);
		return 1;
	}
	l = xcalloc(1, sizeof(*l));
	l->s = s;
	l->pol = pol;
	memcpy(l->domain, name, strlen(name) + 1);
	l->next = s->learning;
	if (s->learning)
		s->learning->prev = l;
	s->learning = l;
	s->n_learning++;
	snprintf(name, sizeof(name), "_mta-sts.%s", l->domain);
	l->dns_id = dns_query(s->deps.dns, name, STS_TXT_TYPE,
			      sts_on_learn_txt, l);
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
	while (s->learning != NULL) {
		if (s->learning->dns_id != 0)
			dns_cancel(s->deps.dns, s->learning->dns_id);
		sts_learning_free(s->learning);
	}
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
		sts_sweep_orphan(s->sweep);
	free(s);
}
