/* DKIM signing (see dkim.h): RFC 6376 3.4 canonicalization, 3.5 the
 * DKIM-Signature tags, 3.7 the hashes, 5.4 the header fields to sign; RFC
 * 8463 for Ed25519 (through lib/dkim_key.c). Leaves key files and the
 * signing operation to lib/dkim_key.c and the choice of keys to the
 * caller. Handles untrusted input: one pass over the header for the
 * field index (bounded by DKIM_FIELDS_MAX), one pass over the body per
 * canonicalization, no copy of the message. */
#include "lib/dkim.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "lib/xmalloc.h"

#define DKIM_SIG_MAX 1024	  /* signature bytes: RSA 8192 bits */
#define DKIM_HDR_MAX (64u * 1024) /* our DKIM-Signature field */
#define DKIM_STAGE 4096		  /* canonical bytes per hash call */
#define DKIM_COMMENT_DEPTH 16	  /* nested comments in From */

const char *const dkim_default_headers[] = {
	"from",
	"to",
	"cc",
	"subject",
	"date",
	"message-id",
	"reply-to",
	"in-reply-to",
	"references",
	"mime-version",
	"content-type",
	"content-transfer-encoding",
	"list-unsubscribe",
	"list-unsubscribe-post",
	"list-id",
	"feedback-id",
	NULL,
};

struct dkim_field {
	size_t off, len; /* the field, continuation lines and line ends */
	size_t name_len; /* up to the colon, trailing WSP removed; 0 =
				no colon, never matches a name */
};

struct dkim_msg {
	const char *data;
	size_t len;
	size_t body_off;
	struct dkim_field *f;
	size_t n, cap;
	bool has_bh[2];		 /* per enum dkim_canon */
	unsigned char bh[2][32]; /* SHA-256 body hashes */
};

/* Small writes gathered before they reach the sink (a hash). */
struct dkim_stage {
	dkim_sink_fn fn;
	void *arg;
	size_t n;
	char buf[DKIM_STAGE];
};

static bool
dkim_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static void
dkim_stage_flush(struct dkim_stage *st)
{
	if (st->n > 0)
		st->fn(st->arg, st->buf, st->n);
	st->n = 0;
}

static struct dkim_stage *
dkim_stage_new(dkim_sink_fn fn, void *arg)
{
	struct dkim_stage *st = xmalloc(sizeof(*st));

	st->fn = fn;
	st->arg = arg;
	st->n = 0;
	return st;
}

/* Flush what is gathered and free the stage. */
static void
dkim_stage_free(struct dkim_stage *st)
{
	dkim_stage_flush(st);
	free(st);
}

static void
dkim_stage_put(struct dkim_stage *st, const char *p, size_t n)
{
	if (st->n + n > sizeof(st->buf)) {
		dkim_stage_flush(st);
		if (n >= sizeof(st->buf)) {
			st->fn(st->arg, p, n);
			return;
		}
	}
	memcpy(st->buf + st->n, p, n);
	st->n += n;
}

/* The CRLF at or after from in b[0..len), or len. A bare LF is a byte of
 * its line (BDAT may carry one). */
static size_t
dkim_find_crlf(const char *b, size_t from, size_t len)
{
	while (from < len) {
		const char *lf = memchr(b + from, '\n', len - from);
		size_t at;

		if (lf == NULL)
			return len;
		at = (size_t)(lf - b);
		if (at > from && b[at - 1] == '\r')
			return at - 1;
		from = at + 1;
	}
	return len;
}

/* ---- body (RFC 6376 3.4.3, 3.4.4) ---------------------------------- */

static void
dkim_body_simple(const char *b, size_t len, struct dkim_stage *st)
{
	/* drop every CRLF at the end, then end with exactly one */
	while (len >= 2 && b[len - 2] == '\r' && b[len - 1] == '\n')
		len -= 2;
	dkim_stage_put(st, b, len);
	dkim_stage_put(st, "\r\n", 2);
}

/* Is the line already relaxed: no HTAB and no two SP in a row (its end
 * has no WSP, the caller removed it)? */
static bool
dkim_is_relaxed_line(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\t' ||
		    (p[i] == ' ' && i + 1 < n && p[i + 1] == ' '))
			return false;
	return true;
}

static void
dkim_body_relaxed(const char *b, size_t len, struct dkim_stage *st)
{
	size_t pos = 0, crlfs = 0; /* line ends held back */
	bool any = false;

	while (pos < len) {
		size_t eol = dkim_find_crlf(b, pos, len);
		size_t end = eol, i = pos;

		while (end > pos && dkim_is_wsp(b[end - 1]))
			end--;
		if (end > pos) {
			for (; crlfs > 0; crlfs--)
				dkim_stage_put(st, "\r\n", 2);
			if (dkim_is_relaxed_line(b + pos, end - pos)) {
				dkim_stage_put(st, b + pos, end - pos);
				i = end; /* nothing to reduce: one copy */
			}
			while (i < end) {
				size_t j = i;

				while (j < end && !dkim_is_wsp(b[j]))
					j++;
				dkim_stage_put(st, b + i, j - i);
				if (j < end) {
					dkim_stage_put(st, " ", 1);
					while (dkim_is_wsp(b[j]))
						j++;
				}
				i = j;
			}
			any = true;
			crlfs = 1;
		} else if (eol < len) {
			crlfs++;
		}
		pos = eol < len ? eol + 2 : len;
	}
	/* empty lines at the end go; a last line gets its CRLF */
	if (any)
		dkim_stage_put(st, "\r\n", 2);
}

void
dkim_canon_body(enum dkim_canon c, const char *body, size_t len,
		dkim_sink_fn fn, void *arg)
{
	struct dkim_stage *st = dkim_stage_new(fn, arg);

	if (c == DKIM_CANON_SIMPLE)
		dkim_body_simple(body, len, st);
	else
		dkim_body_relaxed(body, len, st);
	dkim_stage_free(st);
}

/* ---- header fields (RFC 6376 3.4.1, 3.4.2) ------------------------- */

static void
dkim_header_relaxed(const char *f, size_t len, struct dkim_stage *st)
{
	const char *colon = memchr(f, ':', len);
	size_t name_end = colon ? (size_t)(colon - f) : len;
	size_t i = colon ? name_end + 1 : len;
	bool started = false, space = false;

	while (name_end > 0 &&
	       (dkim_is_wsp(f[name_end - 1]) || f[name_end - 1] == '\r' ||
		f[name_end - 1] == '\n'))
		name_end--;
	for (size_t k = 0; k < name_end; k++) {
		char c = (char)tolower((unsigned char)f[k]);

		dkim_stage_put(st, &c, 1);
	}
	if (colon == NULL) {
		dkim_stage_put(st, "\r\n", 2);
		return;
	}
	dkim_stage_put(st, ":", 1);
	for (; i < len; i++) {
		/* unfold: every CRLF goes, the WSP after it stays */
		if (f[i] == '\r' && i + 1 < len && f[i + 1] == '\n') {
			i++;
			continue;
		}
		if (dkim_is_wsp(f[i])) {
			space = started;
			continue;
		}
		if (space)
			dkim_stage_put(st, " ", 1);
		space = false;
		started = true;
		dkim_stage_put(st, f + i, 1);
	}
	dkim_stage_put(st, "\r\n", 2);
}

void
dkim_canon_header(enum dkim_canon c, const char *field, size_t len,
		  dkim_sink_fn fn, void *arg)
{
	struct dkim_stage *st = dkim_stage_new(fn, arg);

	if (c == DKIM_CANON_RELAXED) {
		dkim_header_relaxed(field, len, st);
	} else {
		dkim_stage_put(st, field, len);
		if (len < 2 || field[len - 2] != '\r' || field[len - 1] != '\n')
			dkim_stage_put(st, "\r\n", 2);
	}
	dkim_stage_free(st);
}

/* ---- the message --------------------------------------------------- */

int
dkim_msg_parse(const char *msg, size_t len, struct dkim_msg **out)
{
	struct dkim_msg *m = xcalloc(1, sizeof(*m));
	size_t pos = 0;

	m->data = msg;
	m->len = len;
	m->body_off = len;
	while (pos < len) {
		const char *lf = memchr(msg + pos, '\n', len - pos);
		size_t end = lf ? (size_t)(lf - msg) + 1 : len;
		struct dkim_field *f;
		const char *colon;

		if (msg[pos] == '\n' ||
		    (msg[pos] == '\r' && end - pos == 2 && lf != NULL)) {
			m->body_off = end; /* the empty line ends the header */
			break;
		}
		if (dkim_is_wsp(msg[pos]) && m->n > 0) {
			f = &m->f[m->n - 1];
			f->len = end - f->off;
			pos = end;
			continue;
		}
		if (m->n == DKIM_FIELDS_MAX) {
			dkim_msg_free(m);
			return -E2BIG;
		}
		if (m->n == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 32;
			m->f = xrealloc(m->f, m->cap * sizeof(*m->f));
		}
		f = &m->f[m->n++];
		f->off = pos;
		f->len = end - pos;
		colon = memchr(msg + pos, ':', end - pos);
		f->name_len = colon ? (size_t)(colon - (msg + pos)) : 0;
		while (f->name_len > 0 &&
		       dkim_is_wsp(msg[pos + f->name_len - 1]))
			f->name_len--;
		pos = end;
	}
	*out = m;
	return 0;
}

void
dkim_msg_free(struct dkim_msg *m)
{
	if (m == NULL)
		return;
	free(m->f);
	free(m);
}

static bool
dkim_field_is(const struct dkim_msg *m, const struct dkim_field *f,
	      const char *name)
{
	size_t n = strlen(name);

	return f->name_len == n && strncasecmp(m->data + f->off, name, n) == 0;
}

/* The domain after the '@' at v[at], up to end; lower-cased into out. */
static int
dkim_from_copy_domain(const char *v, size_t at, size_t end, char *out,
		      size_t outlen)
{
	size_t i = at + 1, n = 0;

	while (i < end && (dkim_is_wsp(v[i]) || v[i] == '\r' || v[i] == '\n'))
		i++;
	for (; i < end; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
		    c == '(' || c == '>')
			break;
		/* letters, digits, '-', '.', and UTF-8 (RFC 6532) */
		if (!(isalnum(c) || c == '-' || c == '.' || c >= 0x80))
			return -EINVAL;
		if (n + 1 >= outlen || n >= DKIM_DOMAIN_MAX)
			return -EINVAL;
		out[n++] = (char)tolower(c);
	}
	if (n == 0 || out[0] == '.')
		return -EINVAL;
	if (out[n - 1] == '.') /* a root dot is not part of the name */
		n--;
	out[n] = '\0';
	return n > 0 ? 0 : -EINVAL;
}

/* RFC 5322 3.4: mailbox = name-addr / addr-spec; comments and quoted
 * strings may hold any of <>@,:; so they are skipped. One mailbox only. */
static int
dkim_from_value(const char *v, size_t n, char *out, size_t outlen)
{
	size_t lt = n, gt = n, at_angle = n, at_top = n;
	bool quoted = false;
	int depth = 0;

	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		bool in_angle = lt < n && gt == n;

		if (quoted || depth > 0) {
			if (c == '\\')
				i++;
			else if (quoted && c == '"')
				quoted = false;
			else if (!quoted && c == '(' &&
				 ++depth > DKIM_COMMENT_DEPTH)
				return -EINVAL;
			else if (!quoted && c == ')')
				depth--;
			continue;
		}
		switch (c) {
		case '"':
			quoted = true;
			break;
		case '(':
			depth = 1;
			break;
		case '<':
			if (lt < n)
				return -EMLINK;
			lt = i;
			break;
		case '>':
			if (!in_angle)
				return -EINVAL;
			gt = i;
			break;
		case '@':
			if (in_angle)
				at_angle = i;
			else if (lt == n)
				at_top = i;
			break;
		case ',':
			return -EMLINK; /* several mailboxes */
		case ':':
		case ';':
			return -EINVAL; /* a group, or a source route */
		default:
			break;
		}
	}
	if (quoted || depth > 0)
		return -EINVAL;
	if (lt < n) {
		if (gt == n || at_angle == n)
			return -EINVAL;
		return dkim_from_copy_domain(v, at_angle, gt, out, outlen);
	}
	if (at_top == n)
		return -EINVAL;
	return dkim_from_copy_domain(v, at_top, n, out, outlen);
}

int
dkim_msg_from_domain(const struct dkim_msg *m, char *out, size_t outlen)
{
	const struct dkim_field *from = NULL;
	const char *v;
	size_t n;

	for (size_t i = 0; i < m->n; i++) {
		if (!dkim_field_is(m, &m->f[i], "from"))
			continue;
		if (from != NULL)
			return -EMLINK;
		from = &m->f[i];
	}
	if (from == NULL)
		return -ENOENT;
	v = m->data + from->off;
	n = from->len;
	v = memchr(v, ':', n);
	n -= (size_t)(v - (m->data + from->off)) + 1;
	v++;
	if (n > DKIM_FROM_MAX)
		return -EINVAL;
	return dkim_from_value(v, n, out, outlen);
}

/* ---- names --------------------------------------------------------- */

bool
dkim_is_header_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DKIM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == ':')
			return false;
	return true;
}

bool
dkim_is_dns_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DKIM_DOMAIN_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isalnum(c) || c == '-' || c == '_' || c == '.'))
			return false;
		if (c == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

/* ---- the DKIM-Signature field -------------------------------------- */

/* Our field being written, folded at DKIM_LINE_MAX. */
struct dkim_hdr {
	struct buf b;
	size_t col; /* octets on the current line */
};

/* Append text, first starting a continuation line when it would pass the
 * line limit; sep goes before text when it stays on the line. */
static void
dkim_hdr_put(struct dkim_hdr *h, const char *sep, const char *text)
{
	size_t n = strlen(text), s = strlen(sep);

	if (h->col + s + n > DKIM_LINE_MAX) {
		buf_append(&h->b, "\r\n\t", 3);
		h->col = 1;
	} else {
		buf_append(&h->b, sep, s);
		h->col += s;
	}
	buf_append(&h->b, text, n);
	h->col += n;
}

/* Base64 b[0..n) into out (room for 4 * ((n + 2) / 3) + 1). */
static void
dkim_b64(const unsigned char *b, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, b, (int)n);
}

static void
dkim_md_sink(void *arg, const void *p, size_t n)
{
	EVP_DigestUpdate(arg, p, n);
}

static int
dkim_body_hash(struct dkim_msg *m, enum dkim_canon c)
{
	EVP_MD_CTX *md;
	int rc = -EIO;

	if (m->has_bh[c])
		return 0;
	md = EVP_MD_CTX_new();
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		dkim_canon_body(c, m->data + m->body_off, m->len - m->body_off,
				dkim_md_sink, md);
		if (EVP_DigestFinal_ex(md, m->bh[c], NULL) == 1) {
			m->has_bh[c] = true;
			rc = 0;
		}
	}
	EVP_MD_CTX_free(md);
	return rc;
}

/* Is name already earlier in the list (case-insensitive)? */
static bool
dkim_name_seen(const char *const *names, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (strcasecmp(names[k], names[i]) == 0)
			return true;
	return false;
}

/* The h= tag, folded after colons, and the fields it names hashed in
 * order: for each name, its fields from the bottom up (RFC 6376 5.4.2),
 * From listed once more than it occurs. */
static void
dkim_sign_fields(const struct dkim_msg *m, const struct dkim_sign_req *req,
		 struct dkim_hdr *h, EVP_MD_CTX *md)
{
	const char *const *names =
		req->headers ? req->headers : dkim_default_headers;
	bool first = true;

	for (size_t i = 0; names[i] && i < DKIM_NAMES_MAX; i++) {
		size_t count = 0, times;

		if (strlen(names[i]) > DKIM_NAME_MAX ||
		    dkim_name_seen(names, i))
			continue;
		for (size_t k = 0; k < m->n; k++)
			if (dkim_field_is(m, &m->f[k], names[i]))
				count++;
		times = count + (strcasecmp(names[i], "from") == 0);
		for (size_t t = 0; t < times; t++) {
			char piece[DKIM_NAME_MAX + 4];
			size_t p = 0;

			/* "h=" first, then ":name" (FWS may come before the
			 * colon, RFC 6376 3.5) */
			if (first)
				piece[p++] = 'h', piece[p++] = '=';
			else
				piece[p++] = ':';
			for (const char *c = names[i]; *c; c++)
				piece[p++] = (char)tolower((unsigned char)*c);
			piece[p] = '\0';
			dkim_hdr_put(h, first ? " " : "", piece);
			first = false;
		}
		for (size_t k = m->n; k-- > 0;)
			if (dkim_field_is(m, &m->f[k], names[i]))
				dkim_canon_header(req->header_canon,
						  m->data + m->f[k].off,
						  m->f[k].len, dkim_md_sink,
						  md);
	}
	/* a list without From would be refused by verifiers: sign it anyway */
	if (first)
		dkim_hdr_put(h, " ", "h=from");
	dkim_hdr_put(h, "", ";");
}

/* Append sig as b=, folded across lines. */
static void
dkim_hdr_put_b(struct dkim_hdr *h, const char *b64)
{
	size_t n = strlen(b64);

	while (n > 0) {
		size_t room =
			DKIM_LINE_MAX > h->col ? DKIM_LINE_MAX - h->col : 0;
		size_t take = n < room ? n : room;

		if (take == 0) {
			buf_append(&h->b, "\r\n\t", 3);
			h->col = 1;
			continue;
		}
		buf_append(&h->b, b64, take);
		h->col += take;
		b64 += take;
		n -= take;
	}
}

static void
dkim_collect(void *arg, const void *p, size_t n)
{
	buf_append(arg, p, n);
}

int
dkim_sign(struct dkim_msg *m, const struct dkim_key *key,
	  const struct dkim_sign_req *req, struct buf *out)
{
	static const char *const canon[] = { "simple", "relaxed" };
	unsigned char dg[32], sig[DKIM_SIG_MAX];
	char text[DKIM_NAME_MAX + DKIM_DOMAIN_MAX + 64];
	char b64[4 * ((DKIM_SIG_MAX + 2) / 3) + 1];
	struct dkim_hdr h;
	struct buf canon_self;
	EVP_MD_CTX *md = NULL;
	size_t siglen = sizeof(sig);
	int rc = -EIO;

	buf_init(&h.b, DKIM_HDR_MAX);
	buf_init(&canon_self, DKIM_HDR_MAX);
	if (dkim_body_hash(m, req->body_canon) != 0)
		goto fail;
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto fail;
	buf_append(&h.b, "DKIM-Signature: v=1;", 20);
	h.col = 20;
	snprintf(text, sizeof(text), "a=%s;", dkim_alg_name(dkim_key_alg(key)));
	dkim_hdr_put(&h, " ", text);
	snprintf(text, sizeof(text), "c=%s/%s;", canon[req->header_canon],
		 canon[req->body_canon]);
	dkim_hdr_put(&h, " ", text);
	snprintf(text, sizeof(text), "d=%s;", req->domain);
	dkim_hdr_put(&h, " ", text);
	snprintf(text, sizeof(text), "s=%s;", req->selector);
	dkim_hdr_put(&h, " ", text);
	snprintf(text, sizeof(text), "t=%llu;", (unsigned long long)req->now);
	dkim_hdr_put(&h, " ", text);
	if (req->expire_s > 0) {
		snprintf(text, sizeof(text), "x=%llu;",
			 (unsigned long long)(req->now + req->expire_s));
		dkim_hdr_put(&h, " ", text);
	}
	dkim_sign_fields(m, req, &h, md);
	memcpy(text, "bh=", 3);
	dkim_b64(m->bh[req->body_canon], 32, text + 3);
	strcat(text, ";");
	dkim_hdr_put(&h, " ", text);
	dkim_hdr_put(&h, " ", "b=");
	/* RFC 6376 3.7: the field itself, b= empty, without its CRLF */
	dkim_canon_header(req->header_canon, h.b.data, h.b.len, dkim_collect,
			  &canon_self);
	EVP_DigestUpdate(md, canon_self.data, canon_self.len - 2);
	if (EVP_DigestFinal_ex(md, dg, NULL) != 1)
		goto fail;
	if ((rc = dkim_key_sign_digest(key, dg, sizeof(dg), sig, &siglen)) != 0)
		goto fail;
	dkim_b64(sig, siglen, b64);
	dkim_hdr_put_b(&h, b64);
	buf_append(&h.b, "\r\n", 2);
	rc = buf_append(out, h.b.data, h.b.len);
fail:
	EVP_MD_CTX_free(md);
	buf_free(&canon_self);
	buf_free(&h.b);
	return rc;
}
