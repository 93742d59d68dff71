/* TLS reporting (node/policy/tlsrpt.h): the counts of today and yesterday
 * in memory, a hash of domains per day; the RFC 8460 report of a domain's
 * day built from them (JSON by node/tls/tlsrpt_json.c); the module's life.
 * Records are tlsrpt_store.c's, sending is tlsrpt_send.c's.
 *
 * Handles untrusted input: a session's MX name, addresses and result
 * (from delivery, after DNS) are bounded and checked before they are
 * kept; a domain that is not an ASCII host name is not counted. */
#include "node/policy/tlsrpt.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/smtp_addr.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/policy/tlsrpt_int.h"
#include "node/store/commit.h"
#include "node/tls/sts_policy.h"

#define TR_TAB_MIN 256

const char *const tr_type_names[TR_TYPES] = {
	"sts",
	"tlsa",
	"no-policy-found",
};

/* RFC 8460 4.3 result types, after "success"; "other" last */
const char *const tr_result_names[TR_RESULTS] = {
	"success",
	"starttls-not-supported",
	"certificate-host-mismatch",
	"certificate-expired",
	"certificate-not-trusted",
	"validation-failure",
	"tlsa-invalid",
	"dnssec-invalid",
	"dane-required",
	"sts-policy-fetch-error",
	"sts-policy-invalid",
	"sts-webpki-invalid",
	"other",
};

uint64_t
tr_now(const struct tlsrpt *r)
{
	return r->fake_now ? r->fake_now : (uint64_t)time(NULL);
}

bool
tr_warn_ok(struct tlsrpt *r, uint64_t *folded)
{
	uint64_t now = clock_mono_ms();

	if (r->warn_ms != 0 && now - r->warn_ms < TR_WARN_EVERY_MS) {
		r->warn_folded++;
		return false;
	}
	r->warn_ms = now;
	*folded = r->warn_folded;
	r->warn_folded = 0;
	return true;
}

int
tlsrpt_domain_norm(const char *in, char out[TLSRPT_DOMAIN_MAX + 1])
{
	return smtp_name_norm(in, out);
}

/* ---- dates ---- */

void
tr_day_date(uint32_t day, char out[11])
{
	time_t t = (time_t)day * TR_DAY_S;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

void
tr_day_compact(uint32_t day, char out[9])
{
	time_t t = (time_t)day * TR_DAY_S;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 9, "%Y%m%d", &tm);
}

/* ---- the days' hash tables ---- */

static uint64_t
tr_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct tr_domain *
tr_day_find(const struct tr_day *dy, const char *name)
{
	if (dy->n_tab == 0)
		return NULL;
	for (struct tr_domain *d = dy->tab[tr_hash(name) % dy->n_tab]; d;
	     d = d->hnext)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

static void
tr_day_grow(struct tr_day *dy)
{
	size_t n = dy->n_tab ? dy->n_tab * 2 : TR_TAB_MIN;
	struct tr_domain **tab = xcalloc(n, sizeof(*tab));

	/* O(domains) once per doubling: amortized O(1) per domain added */
	for (struct tr_domain *d = dy->first; d; d = d->next) {
		size_t b = tr_hash(d->name) % n;

		d->hnext = tab[b];
		tab[b] = d;
	}
	free(dy->tab);
	dy->tab = tab;
	dy->n_tab = n;
}

struct tr_domain *
tr_day_add(struct tr_day *dy, const char *name)
{
	struct tr_domain *d = tr_day_find(dy, name);
	size_t len = strlen(name), b;

	if (d != NULL)
		return d;
	if (dy->n >= TLSRPT_DOMAINS_MAX)
		return NULL;
	if (dy->n >= dy->n_tab)
		tr_day_grow(dy);
	d = xcalloc(1, sizeof(*d) + len + 1);
	memcpy(d->name, name, len + 1);
	b = tr_hash(name) % dy->n_tab;
	d->hnext = dy->tab[b];
	dy->tab[b] = d;
	if (dy->last)
		dy->last->next = d;
	else
		dy->first = d;
	dy->last = d;
	dy->n++;
	return d;
}

void
tr_policy_clear(struct tr_policy *p)
{
	free(p->strs);
	free(p->mxs);
	free(p->fail);
	memset(p, 0, sizeof(*p));
}

static void
tr_domain_free(struct tr_domain *d)
{
	for (size_t i = 0; i < d->n_pol; i++)
		tr_policy_clear(&d->pol[i]);
	free(d->pol);
	free(d);
}

void
tr_day_clear(struct tr_day *dy)
{
	struct tr_domain *d = dy->first;

	while (d) {
		struct tr_domain *next = d->next;

		tr_domain_free(d);
		d = next;
	}
	free(dy->tab);
	memset(dy, 0, sizeof(*dy));
}

void
tr_mark_dirty(struct tlsrpt *r, struct tr_domain *dom)
{
	if (dom->is_dirty)
		return;
	dom->is_dirty = true;
	dom->dnext = r->dirty;
	r->dirty = dom;
}

void
tr_roll(struct tlsrpt *r, uint32_t day)
{
	if (r->today.day == day)
		return;
	if (r->today.day > day) {
		/* the clock went back: keep counting into the later day */
		return;
	}
	tr_flush(r, SIZE_MAX); /* the dirty list is empty afterwards */
	tr_run_stop(r);
	tr_day_clear(&r->yday);
	if (r->today.day + 1 == day) {
		r->yday = r->today;
		memset(&r->today, 0, sizeof(r->today));
	} else {
		tr_day_clear(&r->today);
	}
	r->today.day = day;
	log_info("tlsrpt event=day day=%u domains_yesterday=%zu", day,
		 r->yday.n);
	if (!r->is_closing)
		tr_run_arm(r, false);
}

/* ---- counting ---- */

static int
tr_result_index(const char *result)
{
	if (result == NULL || result[0] == '\0')
		return 0;
	for (int i = 1; i < TR_RESULTS - 1; i++)
		if (strcmp(result, tr_result_names[i]) == 0)
			return i;
	return TR_RESULTS - 1;
}

/* Append s (cut to max bytes, NUL-terminated) to a blob of at most
 * TR_BLOB_MAX; false when it does not fit. */
static bool
tr_blob_add(char *blob, size_t *len, size_t *n, const char *s, size_t max)
{
	size_t l = strnlen(s, max);

	if (*len + l + 1 > TR_BLOB_MAX)
		return false;
	memcpy(blob + *len, s, l);
	blob[*len + l] = '\0';
	*len += l + 1;
	(*n)++;
	return true;
}

/* Printable ASCII copy of s (any other byte as '?'), at most max - 1. */
static void
tr_field(char *out, size_t max, const char *s)
{
	size_t i = 0;

	for (; s != NULL && s[i] != '\0' && i + 1 < max; i++)
		out[i] = (s[i] > ' ' && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

struct tr_key {
	int type;
	char strs[TR_BLOB_MAX], mxs[TR_BLOB_MAX];
	size_t strs_len, mxs_len, n_strs, n_mxs;
};

static void
tr_key_of(const struct deliver_tls_session *s, int type, struct tr_key *k)
{
	char field[TR_FIELD_MAX];

	k->type = type;
	k->strs_len = k->mxs_len = k->n_strs = k->n_mxs = 0;
	if (type == 0 && s->sts != NULL) {
		char lines[STS_LINES_MAX][STS_LINE_MAX];
		size_t n = sts_policy_strings(s->sts, lines, STS_LINES_MAX);

		for (size_t i = 0; i < n; i++)
			if (!tr_blob_add(k->strs, &k->strs_len, &k->n_strs,
					 lines[i], STS_LINE_MAX))
				break;
		for (size_t i = 0; i < s->sts->n_mx && i < STS_MX_MAX; i++)
			if (!tr_blob_add(k->mxs, &k->mxs_len, &k->n_mxs,
					 s->sts->mx[i], STS_NAME_MAX))
				break;
	} else if (type == 1) {
		for (size_t i = 0; i < s->n_tlsa && i < TR_TLSA_MAX; i++) {
			char line[TR_STRING_MAX + 1];

			tr_field(line, sizeof(line), s->tlsa[i]);
			if (!tr_blob_add(k->strs, &k->strs_len, &k->n_strs,
					 line, TR_STRING_MAX))
				break;
		}
		tr_field(field, sizeof(field), s->mx);
		if (field[0] != '\0')
			tr_blob_add(k->mxs, &k->mxs_len, &k->n_mxs, field,
				    TR_FIELD_MAX);
	}
}

static struct tr_policy *
tr_policy_for(struct tr_domain *dom, const struct tr_key *k)
{
	struct tr_policy *p;

	for (size_t i = 0; i < dom->n_pol; i++) {
		p = &dom->pol[i];
		if (p->type == k->type && p->strs_len == k->strs_len &&
		    p->mxs_len == k->mxs_len &&
		    (k->strs_len == 0 ||
		     memcmp(p->strs, k->strs, k->strs_len) == 0) &&
		    (k->mxs_len == 0 ||
		     memcmp(p->mxs, k->mxs, k->mxs_len) == 0))
			return p;
	}
	if (dom->n_pol >= TLSRPT_POLICIES_MAX)
		return NULL;
	dom->pol = xrealloc(dom->pol, (dom->n_pol + 1) * sizeof(*dom->pol));
	p = &dom->pol[dom->n_pol++];
	memset(p, 0, sizeof(*p));
	p->type = k->type;
	if (k->strs_len) {
		p->strs = xmalloc(k->strs_len);
		memcpy(p->strs, k->strs, k->strs_len);
	}
	if (k->mxs_len) {
		p->mxs = xmalloc(k->mxs_len);
		memcpy(p->mxs, k->mxs, k->mxs_len);
	}
	p->strs_len = k->strs_len;
	p->mxs_len = k->mxs_len;
	p->n_strs = k->n_strs;
	p->n_mxs = k->n_mxs;
	return p;
}

/* The failure row of f's key in p, added when missing; NULL past
 * TLSRPT_FAILS_MAX. */
static struct tlsrpt_failure *
tr_fail_for(struct tr_policy *p, const struct tlsrpt_failure *f)
{
	struct tlsrpt_failure *row;

	for (size_t i = 0; i < p->n_fail; i++) {
		row = &p->fail[i];
		if (strcmp(row->result_type, f->result_type) == 0 &&
		    strcmp(row->sending_ip, f->sending_ip) == 0 &&
		    strcmp(row->receiving_mx, f->receiving_mx) == 0 &&
		    strcmp(row->receiving_ip, f->receiving_ip) == 0)
			return row;
	}
	if (p->n_fail >= TLSRPT_FAILS_MAX)
		return NULL;
	if (p->n_fail == p->cap_fail) {
		p->cap_fail = p->cap_fail ? p->cap_fail * 2 : 2;
		p->fail = xrealloc(p->fail, p->cap_fail * sizeof(*p->fail));
	}
	row = &p->fail[p->n_fail++];
	*row = *f;
	row->count = 0;
	return row;
}

static void
tr_dropped(struct tlsrpt *r, const char *what, const char *domain)
{
	uint64_t folded;

	if (tr_warn_ok(r, &folded))
		log_warn("tlsrpt domain=%s event=count_dropped reason=\"%s\" "
			 "folded=%llu",
			 domain, what, (unsigned long long)folded);
}

void
tlsrpt_count(struct tlsrpt *r, const struct deliver_tls_session *s)
{
	char domain[TLSRPT_DOMAIN_MAX + 1];
	struct tlsrpt_failure f;
	struct tr_domain *dom;
	struct tr_policy *p;
	struct tr_key *k;
	int type = -1, res;

	if (r == NULL || s == NULL || s->policy_type == NULL)
		return;
	for (int i = 0; i < TR_TYPES; i++)
		if (strcmp(s->policy_type, tr_type_names[i]) == 0)
			type = i;
	res = tr_result_index(s->result);
	if (type < 0) {
		tr_dropped(r, "unknown policy type", "-");
		return;
	}
	r->sessions[type][res]++;
	if (tlsrpt_domain_norm(s->domain, domain) != 0) {
		tr_dropped(r, "domain is not a host name", "-");
		return;
	}
	tr_roll(r, (uint32_t)(tr_now(r) / TR_DAY_S));
	if ((dom = tr_day_add(&r->today, domain)) == NULL) {
		r->today.dropped++;
		tr_dropped(r, "too many domains today", domain);
		return;
	}
	k = xmalloc(sizeof(*k));
	tr_key_of(s, type, k);
	p = tr_policy_for(dom, k);
	free(k);
	tr_mark_dirty(r, dom);
	if (p == NULL) {
		dom->pols_dropped++;
		tr_dropped(r, "too many policies", domain);
		return;
	}
	if (res == 0) {
		p->success++;
		return;
	}
	p->failure++;
	memset(&f, 0, sizeof(f));
	tr_field(f.result_type, sizeof(f.result_type),
		 res == TR_RESULTS - 1 ? "validation-failure" :
					 tr_result_names[res]);
	tr_field(f.sending_ip, sizeof(f.sending_ip), s->source);
	tr_field(f.receiving_mx, sizeof(f.receiving_mx), s->mx);
	tr_field(f.receiving_ip, sizeof(f.receiving_ip), s->ip);
	struct tlsrpt_failure *row = tr_fail_for(p, &f);

	if (row == NULL) {
		p->fails_dropped++;
		tr_dropped(r, "too many failure-details", domain);
		return;
	}
	row->count++;
}

void
tlsrpt_sessions(const struct tlsrpt *r, tlsrpt_sessions_fn fn, void *arg)
{
	for (int t = 0; t < TR_TYPES; t++)
		for (int i = 0; i < TR_RESULTS; i++)
			fn(arg, tr_type_names[t], tr_result_names[i],
			   r ? r->sessions[t][i] : 0);
}

/* ---- reports ---- */

bool
tr_has_counts(const struct tr_domain *dom)
{
	for (size_t i = 0; dom != NULL && i < dom->n_pol; i++)
		if (dom->pol[i].success || dom->pol[i].failure)
			return true;
	return false;
}

void
tr_report_id(const struct config *cfg, const char *node_id,
	     const char *domain, uint32_t day, const char *extra,
	     char out[TR_REPORT_ID_MAX])
{
	char date[11];
	const char *helo = cfg->delivery.helo_name ? cfg->delivery.helo_name :
						     "localhost";

	tr_day_date(day, date);
	snprintf(out, TR_REPORT_ID_MAX, "%s%s.%s.%s@%s", date, extra, domain,
		 node_id, helo);
}

/* Pointers to the n strings of a blob, in v (at least n). */
static void
tr_blob_split(const char *blob, size_t n, const char **v)
{
	for (size_t i = 0; i < n; i++) {
		v[i] = blob;
		blob += strlen(blob) + 1;
	}
}

char *
tr_report_json(const struct config *cfg, const char *node_id,
	       const char *domain, const struct tr_domain *dom, uint32_t day,
	       const char *report_id)
{
	struct tlsrpt_report rep = {
		.org = cfg->delivery.tls_report.organization,
		.contact = cfg->delivery.tls_report.contact,
		.report_id = report_id,
		.start = (uint64_t)day * TR_DAY_S,
		.end = (uint64_t)day * TR_DAY_S + TR_DAY_S - 1,
	};
	size_t n = dom ? dom->n_pol : 0, k = 0;
	struct tlsrpt_policy *pol = xcalloc(n ? n : 1, sizeof(*pol));
	char *out;

	(void)node_id;
	for (size_t i = 0; i < n; i++) {
		const struct tr_policy *p = &dom->pol[i];
		struct tlsrpt_policy *q = &pol[k];
		const char **v;

		if (p->success == 0 && p->failure == 0)
			continue;
		v = xcalloc(p->n_strs + p->n_mxs + 1, sizeof(*v));
		tr_blob_split(p->strs, p->n_strs, v);
		tr_blob_split(p->mxs, p->n_mxs, v + p->n_strs);
		snprintf(q->type, sizeof(q->type), "%s", tr_type_names[p->type]);
		snprintf(q->domain, sizeof(q->domain), "%s", domain);
		q->n_strings = p->n_strs;
		q->strings = v;
		q->n_mx_host = p->n_mxs;
		q->mx_host = v + p->n_strs;
		q->success = p->success;
		q->failure = p->failure;
		q->n_fail = p->n_fail;
		q->fail = p->fail;
		k++;
	}
	rep.n = k;
	rep.pol = pol;
	out = tlsrpt_report_json(&rep);
	for (size_t i = 0; i < k; i++)
		free((void *)pol[i].strings); /* with mx_host: one array */
	free(pol);
	return out;
}

char *
tlsrpt_report_today(struct tlsrpt *r, const char *domain)
{
	char name[TLSRPT_DOMAIN_MAX + 1], id[TR_REPORT_ID_MAX];
	uint32_t day;

	if (r == NULL)
		return NULL;
	day = (uint32_t)(tr_now(r) / TR_DAY_S);
	tr_roll(r, day);
	if (tlsrpt_domain_norm(domain, name) != 0)
		snprintf(name, sizeof(name), "invalid");
	tr_report_id(r->d.cfg, r->node_id, name, day, "", id);
	return tr_report_json(r->d.cfg, r->node_id, name,
			      tr_day_find(&r->today, name), day, id);
}

char *
tlsrpt_report_empty(const struct config *cfg, const char *node_id,
		    const char *domain)
{
	char name[TLSRPT_DOMAIN_MAX + 1], id[TR_REPORT_ID_MAX];
	uint32_t day = (uint32_t)(time(NULL) / TR_DAY_S);

	if (tlsrpt_domain_norm(domain, name) != 0)
		snprintf(name, sizeof(name), "invalid");
	tr_report_id(cfg, node_id, name, day, "", id);
	return tr_report_json(cfg, node_id, name, NULL, day, id);
}

/* ---- life ---- */

static void
tr_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt *r = arg;

	(void)fd;
	(void)what;
	tr_roll(r, (uint32_t)(tr_now(r) / TR_DAY_S));
	if (r->flushes == 0)
		tr_flush(r, TR_FLUSH_BATCH);
}

struct tlsrpt *
tlsrpt_new(const struct tlsrpt_deps *deps)
{
	struct tlsrpt *r = xcalloc(1, sizeof(*r));
	struct timeval tv = { TLSRPT_FLUSH_MS / 1000,
			      (TLSRPT_FLUSH_MS % 1000) * 1000 };

	r->d = *deps;
	snprintf(r->node_id, sizeof(r->node_id), "%s",
		 deps->node_id ? deps->node_id : "node");
	r->d.node_id = r->node_id;
	r->today.day = (uint32_t)(tr_now(r) / TR_DAY_S);
	if (tr_load(r) != 0) {
		tr_day_clear(&r->today);
		tr_day_clear(&r->yday);
		free(r);
		return NULL;
	}
	r->flush_ev = event_new(r->d.base, -1, EV_PERSIST, tr_on_flush, r);
	r->run_ev = evtimer_new(r->d.base, tr_run_timer, r);
	if (r->flush_ev == NULL || r->run_ev == NULL) {
		log_error("tlsrpt event=start_failed reason=\"no timer\"");
		tlsrpt_free(r);
		return NULL;
	}
	event_add(r->flush_ev, &tv);
	tr_cleanup(r);
	tr_run_arm(r, true);
	return r;
}

void
tlsrpt_free(struct tlsrpt *r)
{
	if (r == NULL)
		return;
	r->is_closing = true;
	if (r->flush_ev)
		event_free(r->flush_ev);
	if (r->run_ev)
		event_free(r->run_ev);
	r->flush_ev = r->run_ev = NULL;
	tr_run_stop(r);
	tr_flush(r, SIZE_MAX);
	/* the flushes' and the jobs' commit items finish while r is here */
	if (r->d.commit)
		commit_flush(r->d.commit);
	tr_jobs_cancel(r);
	tr_day_clear(&r->today);
	tr_day_clear(&r->yday);
	free(r);
}

void
tlsrpt_set_time(struct tlsrpt *r, uint64_t now)
{
	r->fake_now = now;
}
