/* The messages of an injection request (inject.h): substitutions
 * (docs/http.md "Substitutions"), then raw content with CRLF line ends,
 * or structured content as an RFC 5322 header section and a MIME body
 * (RFC 2045, 2046; multipart/related per RFC 2387). The encodings are
 * inject_mime.c's; the checks of the request's shape inject.c's. The
 * request's text is untrusted: a substitution is checked where it lands
 * (no CR or LF in a header field), every buffer is bounded by
 * max_message_size, and no MIME boundary can occur in the content. */
#include "router/inject.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/qid.h"
#include "router/inject_int.h"
#include "router/inject_mime.h"

#define BLD_BOUNDARY_MARK "=_shoal_"
#define BLD_BOUNDARY_LEN 24 /* the mark and 16 hex digits */

enum bld_level { BLD_MIXED, BLD_ALT, BLD_RELATED, BLD_LEVELS };

struct bld {
	const struct inject_req *r;
	const struct inject_rcpt *rcpt; /* per-recipient message: its own */
	size_t rcpt_i;
	struct inject_error *e;
	size_t limit;	/* max_message_size */
	struct buf sub; /* scratch: a field after substitution */
	struct buf val; /* scratch: a field's value, encoded */
};

/* Where substituted text goes: header text as it is; body text with
 * bare LF made CRLF and a bare CR refused (-EILSEQ). */
struct bld_sink {
	struct buf *b;
	bool is_text;
	bool has_cr; /* a CR waits for its LF */
};

struct bld_mime {
	const struct buf *text, *html; /* after substitution; NULL = none */
	bool is_text_7bit, is_html_7bit;
	bool has_mixed, has_alt, has_related;
	char bnd[BLD_LEVELS][BLD_BOUNDARY_LEN + 1];
};

static int
bld_too_big(struct bld *b)
{
	return inject_fail(b->e, -E2BIG, "content",
			   "message larger than %zu bytes", b->limit);
}

/* ---- substitutions ------------------------------------------------- */

static int
bld_put(struct bld_sink *k, const char *p, size_t n)
{
	int rc;

	if (!k->is_text)
		return buf_append(k->b, p, n);
	for (size_t i = 0; i < n;) {
		size_t j = i;

		if (k->has_cr) {
			if (p[i] != '\n')
				return -EILSEQ;
			k->has_cr = false;
			if ((rc = buf_append(k->b, "\r\n", 2)) != 0)
				return rc;
			i++;
			continue;
		}
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		if (j > i && (rc = buf_append(k->b, p + i, j - i)) != 0)
			return rc;
		if (j == n)
			break;
		if (p[j] == '\r')
			k->has_cr = true;
		else if ((rc = buf_append(k->b, "\r\n", 2)) != 0)
			return rc;
		i = j + 1;
	}
	return 0;
}

static int
bld_put_fail(struct bld *b, const char *field, int rc)
{
	if (rc == -EILSEQ)
		return inject_fail(b->e, -EINVAL, field, "bare CR");
	return bld_too_big(b);
}

static bool
bld_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Whether t[i..n), which starts with "{{", is a marker "{{ key }}": sets
 * *key, *klen and *end (just after "}}"). */
static bool
bld_marker(const char *t, size_t n, size_t i, const char **key, size_t *klen,
	   size_t *end)
{
	size_t j = i + 2, k;

	while (j < n && bld_is_wsp(t[j]))
		j++;
	k = j;
	while (j < n && j - k <= INJECT_KEY_MAX &&
	       inject_is_key_char((unsigned char)t[j]))
		j++;
	if (j == k || j - k > INJECT_KEY_MAX)
		return false;
	*key = t + k;
	*klen = j - k;
	while (j < n && bld_is_wsp(t[j]))
		j++;
	if (j + 1 >= n || t[j] != '}' || t[j + 1] != '}')
		return false;
	*end = j + 2;
	return true;
}

/* The value of key: the recipient's own first, then the request's; the
 * path it came from goes to src. NULL when neither has it. */
static json_t *
bld_lookup(const struct bld *b, const char *key, size_t klen, char *src,
	   size_t srclen)
{
	json_t *v;

	if (b->rcpt && b->rcpt->subst &&
	    (v = json_object_getn(b->rcpt->subst, key, klen))) {
		snprintf(src, srclen, "recipients[%zu].substitutions.%.*s",
			 b->rcpt_i, (int)klen, key);
		return v;
	}
	if (b->r->subst && (v = json_object_getn(b->r->subst, key, klen))) {
		snprintf(src, srclen, "substitutions.%.*s", (int)klen, key);
		return v;
	}
	return NULL;
}

/* Append template t (the request's field at path field) to k with every
 * marker replaced by its value. Values are put in once, never scanned
 * for markers themselves. */
static int
bld_subst(struct bld *b, const char *field, const struct inject_text *t,
	  struct bld_sink *k)
{
	const char *s = t->s, *key, *why;
	size_t i = 0, n = t->len, klen, end;
	char src[INJECT_FIELD_MAX];
	int rc;

	while (i < n) {
		const char *m = memmem(s + i, n - i, "{{", 2);
		size_t at = m ? (size_t)(m - s) : n;
		json_t *v;

		if ((rc = bld_put(k, s + i, at - i)) != 0)
			return bld_put_fail(b, field, rc);
		if (!m)
			break;
		if (!bld_marker(s, n, at, &key, &klen, &end)) {
			if ((rc = bld_put(k, "{", 1)) != 0)
				return bld_put_fail(b, field, rc);
			i = at + 1;
			continue;
		}
		if (!(v = bld_lookup(b, key, klen, src, sizeof(src)))) {
			if (b->rcpt)
				return inject_fail(
					b->e, -EINVAL, field,
					"unknown substitution key "
					"\"%.*s\" for recipients[%zu]",
					(int)klen, key, b->rcpt_i);
			return inject_fail(b->e, -EINVAL, field,
					   "unknown substitution key \"%.*s\"",
					   (int)klen, key);
		}
		if (!k->is_text &&
		    (why = inject_hdr_text_bad(json_string_value(v),
					       json_string_length(v))))
			return inject_fail(b->e, -EINVAL, src, "%s (%s)", why,
					   field);
		if ((rc = bld_put(k, json_string_value(v),
				  json_string_length(v))) != 0)
			return bld_put_fail(b, field, rc);
		i = end;
	}
	if (k->has_cr)
		return bld_put_fail(b, field, -EILSEQ);
	return 0;
}

/* Template t of a header field into b->sub, checked. */
static int
bld_subst_hdr(struct bld *b, const char *field, const struct inject_text *t)
{
	struct bld_sink k = { .b = &b->sub };
	const char *why;
	int rc;

	buf_reset(&b->sub);
	if ((rc = bld_subst(b, field, t, &k)) != 0)
		return rc;
	/* inject.c checked the template, the lookup each value: this only
	 * states what the field may hold */
	if ((why = inject_hdr_text_bad(b->sub.data, b->sub.len)))
		return inject_fail(b->e, -EINVAL, field, "%s", why);
	return 0;
}

/* ---- header section ------------------------------------------------ */

/* Append field name: value; -ERANGE (a word that no fold can fit)
 * becomes an error naming field. */
static int
bld_field(struct bld *b, struct buf *out, const char *name, const char *v,
	  size_t n, const char *field)
{
	int rc = inject_mime_field(out, name, v, n);

	if (rc == -ERANGE)
		return inject_fail(b->e, -EINVAL, field,
				   "a word too long for a header line (%d)",
				   INJECT_MIME_LINE_MAX);
	return rc ? bld_too_big(b) : 0;
}

/* Unstructured text in b->sub as field name: as it is when it is ASCII
 * and folds (is_strict: else an error), else as encoded-words. */
static int
bld_unstructured(struct bld *b, struct buf *out, const char *name,
		 const char *field, bool is_strict)
{
	size_t first = INJECT_MIME_LINE_GOOD - strlen(name) - 2;
	int rc;

	if (inject_mime_is_ascii(b->sub.data, b->sub.len)) {
		rc = bld_field(b, out, name, b->sub.data, b->sub.len, field);
		if (rc != -EINVAL || is_strict)
			return rc;
	}
	buf_reset(&b->val);
	if (inject_mime_words(&b->val, b->sub.data, b->sub.len, first) != 0)
		return bld_too_big(b);
	return bld_field(b, out, name, b->val.data, b->val.len, field);
}

/* name: display-name <email>, or email alone. A name that is a template
 * (from, reply_to) goes through substitution; a recipient's does not. */
static int
bld_mailbox(struct bld *b, struct buf *out, const char *name, const char *field,
	    const char *dname, bool is_template, const char *email)
{
	struct inject_text t = { dname, dname ? strlen(dname) : 0 };
	int rc;

	buf_reset(&b->sub);
	if (dname && is_template && (rc = bld_subst_hdr(b, field, &t)) != 0)
		return rc;
	if (dname && !is_template && buf_append(&b->sub, dname, t.len) != 0)
		return bld_too_big(b);
	buf_reset(&b->val);
	if (b->sub.len > 0 &&
	    (inject_mime_phrase(&b->val, b->sub.data, b->sub.len,
				INJECT_MIME_LINE_GOOD - strlen(name) - 2) !=
		     0 ||
	     buf_printf(&b->val, " <%s>", email) != 0))
		return bld_too_big(b);
	if (b->sub.len == 0 && buf_printf(&b->val, "%s", email) != 0)
		return bld_too_big(b);
	return bld_field(b, out, name, b->val.data, b->val.len, field);
}

static int
bld_date(struct buf *out, time_t now)
{
	static const char *const day[] = { "Sun", "Mon", "Tue", "Wed",
					   "Thu", "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr",
					   "May", "Jun", "Jul", "Aug",
					   "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	SHOAL_ASSERT(gmtime_r(&now, &tm) != NULL);
	/* RFC 5322 3.3, fixed width: the size of a message does not
	 * depend on the day it is built */
	return buf_printf(out,
			  "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
			  day[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon],
			  tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
bld_headers(struct bld *b, const char *qid, const char *host, time_t now,
	    struct buf *out)
{
	const struct inject_req *r = b->r;
	char path[INJECT_FIELD_MAX];
	int rc;

	if (bld_date(out, now) != 0)
		return bld_too_big(b);
	if ((rc = bld_mailbox(b, out, "From", "content.from.name", r->from_name,
			      true, r->from_email)) != 0)
		return rc;
	if (r->to.s) {
		snprintf(path, sizeof(path), "content.headers.%s", r->to_name);
		if ((rc = bld_subst_hdr(b, path, &r->to)) != 0 ||
		    (rc = bld_field(b, out, "To", b->sub.data, b->sub.len,
				    path)) != 0)
			return rc;
	} else {
		/* no "To" given: the message is this recipient's alone */
		snprintf(path, sizeof(path), "recipients[%zu].name", b->rcpt_i);
		if ((rc = bld_mailbox(b, out, "To", path, b->rcpt->name, false,
				      b->rcpt->email)) != 0)
			return rc;
	}
	if (r->reply_email &&
	    (rc = bld_mailbox(b, out, "Reply-To", "content.reply_to.name",
			      r->reply_name, true, r->reply_email)) != 0)
		return rc;
	if ((rc = bld_subst_hdr(b, "content.subject", &r->subject)) != 0 ||
	    (rc = bld_unstructured(b, out, "Subject", "content.subject",
				   false)) != 0)
		return rc;
	if (buf_printf(out, "Message-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n", qid,
		       host) != 0)
		return bld_too_big(b);
	for (size_t i = 0; i < r->n_headers; i++) {
		const struct inject_header *h = &r->headers[i];

		snprintf(path, sizeof(path), "content.headers.%s", h->name);
		if ((rc = bld_subst_hdr(b, path, &h->value)) != 0 ||
		    (rc = bld_unstructured(b, out, h->name, path, true)) != 0)
			return rc;
	}
	return 0;
}

/* ---- MIME body ----------------------------------------------------- */

/* The boundary of each multipart level: "=_shoal_" and a hash of the
 * qid and the level (a salt makes the levels differ). Boundaries never
 * occur in the content: "=_" never does in quoted-printable or base64
 * text, and a body holding BLD_BOUNDARY_MARK is not sent as 7bit. All
 * have one length, so none is the start of another. */
static void
bld_boundaries(struct bld_mime *mm, const char *qid)
{
	for (unsigned level = 0; level < BLD_LEVELS; level++) {
		bool is_taken = true;

		for (unsigned salt = 0; is_taken; salt++) {
			char seed[128];
			int n = snprintf(seed, sizeof(seed), "%.80s/%u/%u", qid,
					 level, salt);

			snprintf(mm->bnd[level], BLD_BOUNDARY_LEN + 1,
				 BLD_BOUNDARY_MARK "%016llx",
				 (unsigned long long)shard_hash(seed,
								(size_t)n));
			is_taken = false;
			for (unsigned i = 0; i < level; i++)
				is_taken |=
					strcmp(mm->bnd[i], mm->bnd[level]) == 0;
		}
	}
}

/* Whether a body (CRLF line ends) may go as 7bit: RFC 2045 2.7, and no
 * BLD_BOUNDARY_MARK in it. */
static bool
bld_is_7bit(const struct buf *body)
{
	return inject_mime_is_7bit(body->data, body->len) &&
	       !memmem(body->data, body->len, BLD_BOUNDARY_MARK,
		       strlen(BLD_BOUNDARY_MARK));
}

static int
bld_open(struct buf *out, const char *subtype, const char *param,
	 const char *bnd)
{
	return buf_printf(out,
			  "Content-Type: multipart/%s;%s\r\n"
			  " boundary=\"%s\"\r\n\r\n--%s\r\n",
			  subtype, param, bnd, bnd);
}

/* Each entity ends without a CRLF: the one before the next delimiter
 * belongs to the delimiter (RFC 2046 5.1.1). */
static int
bld_next(struct buf *out, const char *bnd)
{
	return buf_printf(out, "\r\n--%s\r\n", bnd);
}

static int
bld_close(struct buf *out, const char *bnd)
{
	return buf_printf(out, "\r\n--%s--", bnd);
}

static int
bld_text_part(struct buf *out, const char *subtype, const struct buf *body,
	      bool is_7bit)
{
	int rc = buf_printf(out,
			    "Content-Type: text/%s; charset=utf-8\r\n"
			    "Content-Transfer-Encoding: %s\r\n\r\n",
			    subtype, is_7bit ? "7bit" : "quoted-printable");

	if (rc != 0)
		return rc;
	if (is_7bit)
		return buf_append(out, body->data, body->len);
	return inject_mime_qp(out, body->data, body->len);
}

static int
bld_attach_part(struct bld *b, struct buf *out, const struct inject_attach *a)
{
	const char *disp = a->content_id ? "inline" : "attachment";
	size_t fn_len = a->file_name ? strlen(a->file_name) : 0;
	int rc;

	buf_reset(&b->val);
	if ((rc = buf_printf(&b->val, "%s", a->content_type)) != 0 ||
	    (a->file_name &&
	     (rc = inject_mime_param(&b->val, "name", a->file_name, fn_len)) !=
		     0) ||
	    (rc = inject_mime_field(out, "Content-Type", b->val.data,
				    b->val.len)) != 0 ||
	    (rc = buf_printf(out, "Content-Transfer-Encoding: base64\r\n")) !=
		    0)
		return rc;
	buf_reset(&b->val);
	if ((rc = buf_printf(&b->val, "%s", disp)) != 0 ||
	    (a->file_name &&
	     (rc = inject_mime_param(&b->val, "filename", a->file_name,
				     fn_len)) != 0) ||
	    (rc = inject_mime_field(out, "Content-Disposition", b->val.data,
				    b->val.len)) != 0)
		return rc;
	if (a->content_id &&
	    (rc = buf_printf(out, "Content-ID: <%s>\r\n", a->content_id)) != 0)
		return rc;
	if ((rc = buf_append(out, "\r\n", 2)) != 0)
		return rc;
	return inject_mime_base64(out, a->data, a->len);
}

/* The HTML, with the parts it shows inline when there are some. */
static int
bld_related(struct bld *b, struct buf *out, const struct bld_mime *mm)
{
	const char *bnd = mm->bnd[BLD_RELATED];
	int rc;

	if (!mm->has_related)
		return bld_text_part(out, "html", mm->html, mm->is_html_7bit);
	if ((rc = bld_open(out, "related", " type=\"text/html\";", bnd)) ||
	    (rc = bld_text_part(out, "html", mm->html, mm->is_html_7bit)))
		return rc;
	for (size_t i = 0; i < b->r->n_attach; i++) {
		if (!b->r->attach[i].content_id)
			continue;
		if ((rc = bld_next(out, bnd)) != 0 ||
		    (rc = bld_attach_part(b, out, &b->r->attach[i])) != 0)
			return rc;
	}
	return bld_close(out, bnd);
}

/* The text and the HTML as alternatives, or the one given. */
static int
bld_alternative(struct bld *b, struct buf *out, const struct bld_mime *mm)
{
	const char *bnd = mm->bnd[BLD_ALT];
	int rc;

	if (!mm->has_alt && mm->text)
		return bld_text_part(out, "plain", mm->text, mm->is_text_7bit);
	if (!mm->has_alt)
		return bld_related(b, out, mm);
	if ((rc = bld_open(out, "alternative", "", bnd)) != 0 ||
	    (rc = bld_text_part(out, "plain", mm->text, mm->is_text_7bit)) ||
	    (rc = bld_next(out, bnd)) != 0 ||
	    (rc = bld_related(b, out, mm)) != 0)
		return rc;
	return bld_close(out, bnd);
}

/* The body and the attachments not shown inline in the HTML. */
static int
bld_mixed(struct bld *b, struct buf *out, const struct bld_mime *mm)
{
	const char *bnd = mm->bnd[BLD_MIXED];
	int rc;

	if (!mm->has_mixed)
		return bld_alternative(b, out, mm);
	if ((rc = bld_open(out, "mixed", "", bnd)) != 0 ||
	    (rc = bld_alternative(b, out, mm)) != 0)
		return rc;
	for (size_t i = 0; i < b->r->n_attach; i++) {
		if (mm->has_related && b->r->attach[i].content_id)
			continue;
		if ((rc = bld_next(out, bnd)) != 0 ||
		    (rc = bld_attach_part(b, out, &b->r->attach[i])) != 0)
			return rc;
	}
	return bld_close(out, bnd);
}

/* A message (out holds it from start) ends with CRLF. */
static int
bld_end_crlf(struct buf *out, size_t start)
{
	if (out->len - start >= 2 &&
	    memcmp(out->data + out->len - 2, "\r\n", 2) == 0)
		return 0;
	return buf_append(out, "\r\n", 2);
}

static int
bld_structured(struct bld *b, const char *qid, const char *host, time_t now,
	       struct buf *out)
{
	const struct inject_req *r = b->r;
	size_t start = out->len;
	struct bld_sink k = { .is_text = true };
	struct buf text, html;
	struct bld_mime mm = { 0 };
	size_t n_inline = 0;
	int rc;

	buf_init(&text, b->limit);
	buf_init(&html, b->limit);
	if ((rc = bld_headers(b, qid, host, now, out)) != 0)
		goto done;
	if (r->text.s) {
		k.b = &text;
		if ((rc = bld_subst(b, "content.text_body", &r->text, &k)) != 0)
			goto done;
		mm.text = &text;
		mm.is_text_7bit = bld_is_7bit(&text);
	}
	if (r->html.s) {
		k.b = &html;
		if ((rc = bld_subst(b, "content.html_body", &r->html, &k)) != 0)
			goto done;
		mm.html = &html;
		mm.is_html_7bit = bld_is_7bit(&html);
	}
	for (size_t i = 0; i < r->n_attach; i++)
		n_inline += r->attach[i].content_id != NULL;
	mm.has_alt = mm.text && mm.html;
	mm.has_related = mm.html && n_inline > 0;
	mm.has_mixed = r->n_attach > (mm.has_related ? n_inline : 0);
	bld_boundaries(&mm, qid);
	if (bld_mixed(b, out, &mm) != 0 || bld_end_crlf(out, start) != 0)
		rc = bld_too_big(b);
done:
	buf_free(&text);
	buf_free(&html);
	return rc;
}

/* Raw content: substituted, with CRLF line ends, ending in CRLF. */
static int
bld_raw(struct bld *b, struct buf *out)
{
	struct bld_sink k = { .b = out, .is_text = true };
	size_t start = out->len;
	int rc;

	if ((rc = bld_subst(b, "content", &b->r->raw, &k)) != 0)
		return rc;
	return bld_end_crlf(out, start) != 0 ? bld_too_big(b) : 0;
}

/* RFC 5322 3.2.3 dot-atom-text: a Message-ID's halves. */
static bool
bld_is_dot_atom(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' ? s[i + 1] == '.' :
			       c <= 0x20 || c >= 0x7f ||
				       strchr("()<>[]:;@\\,\"", c))
			return false;
	}
	return true;
}

int
inject_build(const struct inject_req *r, size_t m, const char *qid,
	     const char *host, time_t now, struct buf *out,
	     struct inject_error *e)
{
	struct bld b = { .r = r, .e = e, .limit = r->lim.max_message_size };
	size_t start = out->len, max = out->max;
	int rc;

	SHOAL_ASSERT(m < inject_n_messages(r));
	SHOAL_ASSERT(bld_is_dot_atom(qid) && bld_is_dot_atom(host));
	if (r->is_per_rcpt) {
		b.rcpt = &r->rcpts[m];
		b.rcpt_i = m;
	}
	buf_init(&b.sub, b.limit);
	buf_init(&b.val, b.limit);
	/* the message may take max_message_size of out, no more */
	if (start <= max && max - start > b.limit)
		out->max = start + b.limit;
	rc = r->is_raw ? bld_raw(&b, out) :
			 bld_structured(&b, qid, host, now, out);
	out->max = max;
	if (rc != 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	}
	buf_free(&b.sub);
	buf_free(&b.val);
	return rc;
}

int
inject_check_all(const struct inject_req *r, const char *host, time_t now,
		 struct inject_error *e)
{
	size_t lim = r->lim.max_message_size, total = 0, cap;
	char qid[QID_LEN + 1];
	struct buf scratch;
	int rc = 0;

	cap = lim > SIZE_MAX / INJECT_TOTAL_FACTOR ? SIZE_MAX :
						     lim * INJECT_TOTAL_FACTOR;
	memset(qid, '0', QID_LEN);
	qid[QID_LEN] = '\0';
	buf_init(&scratch, lim);
	for (size_t m = 0; m < inject_n_messages(r) && rc == 0; m++) {
		buf_reset(&scratch);
		rc = inject_build(r, m, qid, host, now, &scratch, e);
		total += scratch.len;
		if (rc == 0 && total > cap)
			rc = inject_fail(e, -E2BIG, "recipients",
					 "the messages together are larger "
					 "than %zu bytes",
					 cap);
	}
	buf_free(&scratch);
	return rc;
}
