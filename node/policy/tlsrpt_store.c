/* TLS reporting's records (node/policy/tlsrpt.h lists them): a domain's
 * day of counts as text, written through group commit (the applies only
 * put what was encoded before the commit: pure), read back at start, and
 * deleted after sending or after TLSRPT_KEEP_DAYS.
 *
 * The record, version 1: lines ending in LF,
 *   tlsrpt 1
 *   d <sessions past TLSRPT_POLICIES_MAX>
 *   p <type> <success> <failure> <failed sessions past TLSRPT_FAILS_MAX>
 *   s <policy-string>                     (of the p before it)
 *   m <mx-host>
 *   f <count> <result-type> <sending-ip> <receiving-mx> <receiving-ip>
 * each text field %XX-escaped (bytes outside '!'..'~', and '%'), an empty
 * field written as a lone '%'. A newer version is not read (logged).
 *
 * Handles untrusted input: a record could be damaged; every field is
 * bounded and checked, and a bad record is skipped with a warning. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/policy/tlsrpt_int.h"
#include "node/store/commit.h"
#include "node/store/store.h"

#define TR_PREFIX "tlsrpt/"
#define TR_SENT_PREFIX "tlsrpt-sent/"
#define TR_VERSION "tlsrpt 1"
#define TR_LINE_MAX (4 * TR_BLOB_MAX) /* one line, escaped, read at most */
#define TR_CLEAN_BATCH 1000           /* names deleted per commit */

void
tr_name(const char *prefix, uint32_t day, const char *domain,
	char out[TR_NAME_MAX + 1])
{
	char date[9];

	tr_day_compact(day, date);
	snprintf(out, TR_NAME_MAX + 1, "%s%s/%s", prefix, date, domain);
}

/* The day of "<prefix>YYYYMMDD/..." , 0 when name is not one. */
static uint32_t
tr_name_day(const char *name, const char *prefix, const char **domain)
{
	size_t pl = strlen(prefix);
	struct tm tm;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (strncmp(name, prefix, pl) != 0 || strlen(name) < pl + 10 ||
	    name[pl + 8] != '/')
		return 0;
	for (size_t i = 0; i < 8; i++)
		if (name[pl + i] < '0' || name[pl + i] > '9')
			return 0;
	if (sscanf(name + pl, "%4d%2d%2d", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday) != 3)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if ((t = timegm(&tm)) <= 0)
		return 0;
	if (domain)
		*domain = name + pl + 9;
	return (uint32_t)(t / TR_DAY_S);
}

/* ---- the record ---- */

static int
tr_put_field(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc;

	if (s[0] == '\0')
		return buf_append(b, " %", 2);
	rc = buf_append(b, " ", 1);
	for (; rc == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c > ' ' && c < 0x7f && c != '%') {
			rc = buf_append(b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			rc = buf_append(b, e, 3);
		}
	}
	return rc;
}

void
tr_encode(const struct tr_domain *dom, struct buf *out)
{
	size_t start = out->len;

	buf_printf(out, "%s\nd %llu\n", TR_VERSION,
		   (unsigned long long)dom->pols_dropped);
	for (size_t i = 0; i < dom->n_pol; i++) {
		const struct tr_policy *p = &dom->pol[i];
		const char *s = p->strs;
		uint64_t fails_dropped = p->fails_dropped;
		int rc;

		rc = buf_printf(out, "p %s %llu %llu", tr_type_names[p->type],
				(unsigned long long)p->success,
				(unsigned long long)p->failure);
		/* written after the rows: those that do not fit count here */
		for (size_t k = 0; rc == 0 && k < p->n_strs; k++) {
			rc = buf_append(out, "\ns", 2);
			rc = rc ? rc : tr_put_field(out, s);
			s += strlen(s) + 1;
		}
		s = p->mxs;
		for (size_t k = 0; rc == 0 && k < p->n_mxs; k++) {
			rc = buf_append(out, "\nm", 2);
			rc = rc ? rc : tr_put_field(out, s);
			s += strlen(s) + 1;
		}
		for (size_t k = 0; rc == 0 && k < p->n_fail; k++) {
			const struct tlsrpt_failure *f = &p->fail[k];
			size_t mark = out->len;

			if (buf_printf(out, "\nf %llu",
				       (unsigned long long)f->count) != 0 ||
			    tr_put_field(out, f->result_type) != 0 ||
			    tr_put_field(out, f->sending_ip) != 0 ||
			    tr_put_field(out, f->receiving_mx) != 0 ||
			    tr_put_field(out, f->receiving_ip) != 0) {
				out->len = mark;
				fails_dropped += f->count;
			}
		}
		if (rc != 0 || buf_printf(out, "\nx %llu\n",
					  (unsigned long long)fails_dropped)) {
			/* not even the policy fits: the record stops here */
			out->len = start;
			buf_printf(out, "%s\nd %llu\n", TR_VERSION,
				   (unsigned long long)dom->pols_dropped);
			return;
		}
	}
}

static int
tr_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Unescape a field of len bytes into out (max bytes with the NUL). */
static int
tr_get_field(const char *s, size_t len, char *out, size_t max)
{
	size_t o = 0;

	if (len == 1 && s[0] == '%') {
		out[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= len || (hi = tr_hex(s[i + 1])) < 0 ||
			    (lo = tr_hex(s[i + 2])) < 0 || (hi | lo) == 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c <= ' ' || c >= 0x7f) {
			return -EINVAL;
		}
		if (o + 1 >= max)
			return -EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* Split line into at most max space-separated fields. */
static size_t
tr_split(char *line, char **f, size_t *fl, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (*p && n < max) {
		char *e = strchr(p, ' ');

		f[n] = p;
		fl[n] = e ? (size_t)(e - p) : strlen(p);
		n++;
		if (e == NULL)
			return n;
		p = e + 1;
	}
	return *p ? max + 1 : n;
}

static int
tr_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 19)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
tr_blob_put(char **blob, size_t *len, size_t *n, const char *s)
{
	size_t l = strlen(s);

	if (*len + l + 1 > TR_BLOB_MAX)
		return -EINVAL;
	*blob = xrealloc(*blob, *len + l + 1);
	memcpy(*blob + *len, s, l + 1);
	*len += l + 1;
	(*n)++;
	return 0;
}

static void
tr_domain_reset(struct tr_domain *dom)
{
	for (size_t i = 0; i < dom->n_pol; i++)
		tr_policy_clear(&dom->pol[i]);
	free(dom->pol);
	dom->pol = NULL;
	dom->n_pol = 0;
	dom->pols_dropped = 0;
}

static int
tr_decode_line(char *line, struct tr_domain *dom)
{
	char *f[6], tmp[TR_BLOB_MAX];
	size_t fl[6], n = tr_split(line, f, fl, 6);
	struct tr_policy *p = dom->n_pol ? &dom->pol[dom->n_pol - 1] : NULL;
	uint64_t v[3];

	if (n == 0 || n > 6 || fl[0] != 1)
		return -EINVAL;
	switch (f[0][0]) {
	case 'd':
		return n == 2 ? tr_u64(f[1], fl[1], &dom->pols_dropped) :
				-EINVAL;
	case 'p': {
		int type = -1;

		if (n != 4 || dom->n_pol >= TLSRPT_POLICIES_MAX)
			return -EINVAL;
		for (int i = 0; i < TR_TYPES; i++)
			if (fl[1] == strlen(tr_type_names[i]) &&
			    memcmp(f[1], tr_type_names[i], fl[1]) == 0)
				type = i;
		if (type < 0 || tr_u64(f[2], fl[2], &v[0]) != 0 ||
		    tr_u64(f[3], fl[3], &v[1]) != 0)
			return -EINVAL;
		dom->pol = xrealloc(dom->pol,
				    (dom->n_pol + 1) * sizeof(*dom->pol));
		p = &dom->pol[dom->n_pol++];
		memset(p, 0, sizeof(*p));
		p->type = type;
		p->success = v[0];
		p->failure = v[1];
		return 0;
	}
	case 'x':
		if (p == NULL || n != 2)
			return -EINVAL;
		return tr_u64(f[1], fl[1], &p->fails_dropped);
	case 's':
	case 'm':
		if (p == NULL || n != 2 ||
		    tr_get_field(f[1], fl[1], tmp, TR_STRING_MAX + 1) != 0)
			return -EINVAL;
		return f[0][0] == 's' ?
			       tr_blob_put(&p->strs, &p->strs_len, &p->n_strs,
					   tmp) :
			       tr_blob_put(&p->mxs, &p->mxs_len, &p->n_mxs,
					   tmp);
	case 'f': {
		struct tlsrpt_failure row;

		memset(&row, 0, sizeof(row));
		if (p == NULL || n != 6 || p->n_fail >= TLSRPT_FAILS_MAX ||
		    tr_u64(f[1], fl[1], &row.count) != 0 ||
		    tr_get_field(f[2], fl[2], row.result_type,
				 sizeof(row.result_type)) != 0 ||
		    tr_get_field(f[3], fl[3], row.sending_ip,
				 sizeof(row.sending_ip)) != 0 ||
		    tr_get_field(f[4], fl[4], row.receiving_mx,
				 sizeof(row.receiving_mx)) != 0 ||
		    tr_get_field(f[5], fl[5], row.receiving_ip,
				 sizeof(row.receiving_ip)) != 0)
			return -EINVAL;
		if (p->n_fail == p->cap_fail) {
			p->cap_fail = p->cap_fail ? p->cap_fail * 2 : 2;
			p->fail = xrealloc(p->fail,
					   p->cap_fail * sizeof(*p->fail));
		}
		p->fail[p->n_fail++] = row;
		return 0;
	}
	default:
		return -EINVAL;
	}
}

int
tr_decode(const char *p, size_t len, struct tr_domain *dom)
{
	size_t vl = strlen(TR_VERSION), off;
	char *line = xmalloc(TR_LINE_MAX + 1);
	int rc = 0;

	tr_domain_reset(dom);
	if (len < vl + 1 || memcmp(p, TR_VERSION, vl) != 0 || p[vl] != '\n') {
		free(line);
		return -EINVAL;
	}
	for (off = vl + 1; rc == 0 && off < len;) {
		const char *e = memchr(p + off, '\n', len - off);
		size_t l;

		if (e == NULL) {
			rc = -EINVAL; /* every line ends in LF */
			break;
		}
		l = (size_t)(e - (p + off));
		if (l > TR_LINE_MAX || memchr(p + off, '\0', l) != NULL) {
			rc = -EINVAL;
			break;
		}
		memcpy(line, p + off, l);
		line[l] = '\0';
		rc = tr_decode_line(line, dom);
		off += l + 1;
	}
	free(line);
	if (rc != 0)
		tr_domain_reset(dom);
	return rc;
}

/* ---- load ---- */

struct tr_load_ctx {
	struct tlsrpt *r;
	struct tr_day *dy;
	const char *prefix;
	size_t bad;
};

static int
tr_load_one(const char *name, const void *p, size_t len, void *arg)
{
	struct tr_load_ctx *x = arg;
	char norm[TLSRPT_DOMAIN_MAX + 1];
	const char *domain;
	struct tr_domain *dom;

	if (tr_name_day(name, x->prefix, &domain) != x->dy->day ||
	    tlsrpt_domain_norm(domain, norm) != 0 ||
	    strcmp(norm, domain) != 0) {
		x->bad++;
		return 0;
	}
	if (strcmp(x->prefix, TR_SENT_PREFIX) == 0) {
		if ((dom = tr_day_find(x->dy, domain)) != NULL)
			dom->is_sent = true;
		return 0;
	}
	if ((dom = tr_day_add(x->dy, domain)) == NULL)
		return 0;
	if (tr_decode(p, len, dom) != 0)
		x->bad++;
	return 0;
}

int
tr_load(struct tlsrpt *r)
{
	struct tr_day *days[2] = { &r->today, &r->yday };
	struct store_txn *t;
	size_t bad = 0;
	int rc;

	r->yday.day = r->today.day - 1;
	if ((rc = store_txn_begin(r->d.store, true, &t)) != 0) {
		log_error("tlsrpt event=load_failed error=\"%s\"",
			  strerror(-rc));
		return rc;
	}
	for (int i = 0; rc == 0 && i < 2; i++) {
		const char *prefixes[2] = { TR_PREFIX, TR_SENT_PREFIX };

		for (int k = 0; rc == 0 && k < 2; k++) {
			char prefix[32], date[9];
			struct tr_load_ctx x = { r, days[i], prefixes[k], 0 };

			tr_day_compact(days[i]->day, date);
			snprintf(prefix, sizeof(prefix), "%s%s/", prefixes[k],
				 date);
			x.prefix = prefixes[k];
			rc = store_local_foreach(t, prefix, tr_load_one, &x);
			bad += x.bad;
		}
	}
	store_txn_abort(t);
	if (rc != 0) {
		log_error("tlsrpt event=load_failed error=\"%s\"",
			  strerror(rc < 0 ? -rc : rc));
		return rc;
	}
	if (bad)
		log_warn("tlsrpt event=load records_skipped=%zu", bad);
	log_info("tlsrpt event=load domains_today=%zu domains_yesterday=%zu",
		 r->today.n, r->yday.n);
	return 0;
}

/* ---- flush ---- */

struct tr_put {
	char name[TR_NAME_MAX + 1];
	char *val;          /* NULL: delete */
	size_t len;
};

struct tr_item {
	struct tlsrpt *r;
	const char *what;   /* for the log */
	uint32_t day;
	size_t n;
	struct tr_put *puts;
	/* cleanup: names found by the apply (set afresh by each run) */
	bool is_cleanup;
	bool has_more;
};

static int
tr_apply_puts(struct store_txn *t, void *arg)
{
	struct tr_item *it = arg;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < it->n; i++)
		rc = it->puts[i].val ?
			     store_local_put(t, it->puts[i].name,
					     it->puts[i].val, it->puts[i].len) :
			     store_local_del(t, it->puts[i].name);
	return rc;
}

static void
tr_item_free(struct tr_item *it)
{
	for (size_t i = 0; i < it->n; i++)
		free(it->puts[i].val);
	free(it->puts);
	free(it);
}

static void
tr_done_flush(int result, void *arg)
{
	struct tr_item *it = arg;
	struct tlsrpt *r = it->r;

	r->flushes--;
	if (result != 0) {
		uint64_t folded;

		/* counted again: dirty, so the next flush tries them again */
		for (size_t i = 0; i < it->n && it->day == r->today.day; i++) {
			struct tr_domain *dom = tr_day_find(
				&r->today, strrchr(it->puts[i].name, '/') + 1);

			if (dom)
				tr_mark_dirty(r, dom);
		}
		if (tr_warn_ok(r, &folded))
			log_warn("tlsrpt event=flush_failed records=%zu "
				 "error=\"%s\" folded=%llu",
				 it->n, strerror(result < 0 ? -result : EIO),
				 (unsigned long long)folded);
	} else {
		log_debug(LOG_SUB_STORE, "tlsrpt event=flushed records=%zu",
			  it->n);
	}
	tr_item_free(it);
	if (r->dirty != NULL && r->flushes == 0 && !r->is_closing &&
	    result == 0)
		tr_flush(r, TR_FLUSH_BATCH);
}

void
tr_flush(struct tlsrpt *r, size_t max)
{
	struct tr_item *it;
	struct buf b;
	size_t cap = 0;

	if (r->dirty == NULL || r->d.commit == NULL)
		return;
	it = xcalloc(1, sizeof(*it));
	it->r = r;
	it->day = r->today.day;
	buf_init(&b, STORE_LOCAL_MAX);
	while (r->dirty != NULL && it->n < max) {
		struct tr_domain *dom = r->dirty;
		struct tr_put *pt;

		r->dirty = dom->dnext;
		dom->dnext = NULL;
		dom->is_dirty = false;
		if (it->n == cap) {
			cap = cap ? cap * 2 : 16;
			it->puts = xrealloc(it->puts, cap * sizeof(*it->puts));
		}
		pt = &it->puts[it->n++];
		tr_name(TR_PREFIX, r->today.day, dom->name, pt->name);
		buf_reset(&b);
		tr_encode(dom, &b);
		pt->val = buf_steal(&b, &pt->len);
	}
	buf_free(&b);
	r->flushes++;
	commit_add(r->d.commit, tr_apply_puts, tr_done_flush, it);
}

/* ---- markers and cleanup ---- */

static void
tr_done_sent(int result, void *arg)
{
	struct tr_item *it = arg;

	if (result != 0)
		log_warn("tlsrpt record=%s event=marker_failed error=\"%s\"",
			 it->puts[0].name,
			 strerror(result < 0 ? -result : EIO));
	tr_item_free(it);
}

void
tr_mark_sent(struct tlsrpt *r, uint32_t day, const char *domain)
{
	struct tr_item *it = xcalloc(1, sizeof(*it));
	char stamp[24];

	if (r->d.commit == NULL) {
		free(it);
		return;
	}
	it->r = r;
	it->n = 2;
	it->puts = xcalloc(2, sizeof(*it->puts));
	tr_name(TR_SENT_PREFIX, day, domain, it->puts[0].name);
	snprintf(stamp, sizeof(stamp), "%llu",
		 (unsigned long long)tr_now(r));
	it->puts[0].val = xstrdup(stamp);
	it->puts[0].len = strlen(stamp);
	tr_name(TR_PREFIX, day, domain, it->puts[1].name); /* deleted */
	commit_add(r->d.commit, tr_apply_puts, tr_done_sent, it);
}

struct tr_clean_ctx {
	uint32_t before;
	const char *prefix;
	struct tr_item *it;
};

static int
tr_clean_one(const char *name, const void *p, size_t len, void *arg)
{
	struct tr_clean_ctx *x = arg;
	uint32_t day = tr_name_day(name, x->prefix, NULL);
	struct tr_item *it = x->it;

	(void)p;
	(void)len;
	/* names sort by day: the first recent one ends the walk */
	if (day >= x->before)
		return 1;
	if (it->n == TR_CLEAN_BATCH) {
		it->has_more = true;
		return 1;
	}
	snprintf(it->puts[it->n++].name, TR_NAME_MAX + 1, "%s", name);
	return 0;
}

static int
tr_apply_clean(struct store_txn *t, void *arg)
{
	struct tr_item *it = arg;
	const char *prefixes[2] = { TR_PREFIX, TR_SENT_PREFIX };
	int rc;

	it->n = 0;
	it->has_more = false;
	for (int k = 0; k < 2; k++) {
		struct tr_clean_ctx x = { it->day, prefixes[k], it };

		rc = store_local_foreach(t, prefixes[k], tr_clean_one, &x);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < it->n; i++)
		if ((rc = store_local_del(t, it->puts[i].name)) != 0)
			return rc;
	return 0;
}

static void
tr_done_clean(int result, void *arg)
{
	struct tr_item *it = arg;
	struct tlsrpt *r = it->r;
	bool again = result == 0 && it->has_more && !r->is_closing;

	if (result != 0)
		log_warn("tlsrpt event=cleanup_failed error=\"%s\"",
			 strerror(result < 0 ? -result : EIO));
	else if (it->n)
		log_info("tlsrpt event=cleanup records_deleted=%zu", it->n);
	it->n = 0;
	tr_item_free(it);
	if (again)
		tr_cleanup(r);
}

void
tr_cleanup(struct tlsrpt *r)
{
	struct tr_item *it;

	if (r->d.commit == NULL)
		return;
	it = xcalloc(1, sizeof(*it));
	it->r = r;
	it->is_cleanup = true;
	it->day = r->today.day > TLSRPT_KEEP_DAYS ?
			  r->today.day - TLSRPT_KEEP_DAYS :
			  0;
	it->puts = xcalloc(TR_CLEAN_BATCH, sizeof(*it->puts));
	commit_add_later(r->d.commit, tr_apply_clean, tr_done_clean, it,
			 TLSRPT_FLUSH_MS);
}
