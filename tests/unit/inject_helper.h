/* Helpers for the injection suite (tests/unit/test_inject.c): requests
 * written with ' for " and run through inject_parse() and
 * inject_check_all(); a small MIME reader for what inject_build() makes
 * (header fields unfolded, multipart parts split at their boundaries,
 * base64, quoted-printable and encoded-words decoded, each checked for
 * its line limits); and the wire check every built message must pass
 * (CRLF only, no NUL, lines within 998, lib/smtp_data.c's checker). */
#ifndef SHOAL_TESTS_INJECT_HELPER_H
#define SHOAL_TESTS_INJECT_HELPER_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/smtp_data.h"
#include "router/inject.h"
#include "tests/unit/check_helpers.h"

#define HOST "mta.example"
#define QID "0DJ3N8Q2K4M7ZX1P9Q0A3"
#define NOW ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define BIGBUF (1u << 24)

static const struct inject_limits lim_std = { 100000, 10 };

/* tpl with every ' made " (a request without its quotes escaped) */
static inline char *
q(const char *tpl)
{
	char *s = strdup(tpl);

	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

/* Parse and check a request; on 0 *out holds it (when out is given). */
static inline int
run(const char *tpl, const struct inject_limits *lim, struct inject_req **out,
    struct inject_error *e)
{
	char *json = q(tpl);
	struct inject_req *r = NULL;
	int rc = inject_parse(json, strlen(json), lim, &r, e);

	free(json);
	if (rc == 0)
		rc = inject_check_all(r, HOST, NOW, e);
	if (rc == 0 && out)
		*out = r;
	else
		inject_free(r);
	return rc;
}

static inline struct inject_req *
run_ok(const char *tpl)
{
	struct inject_req *r = NULL;
	struct inject_error e;
	int rc = run(tpl, &lim_std, &r, &e);

	ck_assert_msg(rc == 0, "rc=%d field=%s: %s", rc, e.field, e.message);
	return r;
}

/* Message m of r, built into b (caller frees with buf_free()). */
static inline void
build(const struct inject_req *r, size_t m, struct buf *b)
{
	struct inject_error e;
	int rc;

	buf_init(b, BIGBUF);
	rc = inject_build(r, m, QID, HOST, NOW, b, &e);
	ck_assert_msg(rc == 0, "build: %s: %s", e.field, e.message);
}

/* ---- a small MIME reader ------------------------------------------- */

struct ent {
	const char *hdr; /* header section, its last CRLF included */
	size_t hdr_len;
	const char *body;
	size_t body_len;
};

static inline struct ent
ent_of(const char *p, size_t n)
{
	const char *sep = memmem(p, n, "\r\n\r\n", 4);
	struct ent e;

	ck_assert_ptr_nonnull(sep);
	e.hdr = p;
	e.hdr_len = (size_t)(sep - p) + 2;
	e.body = sep + 4;
	e.body_len = n - (size_t)(sep + 4 - p);
	return e;
}

/* Field name's value, unfolded (CRLF removed), leading space dropped; a
 * static buffer, "" when absent. */
static inline const char *
hdr(const struct ent *e, const char *name)
{
	static char v[4096];
	size_t nl = strlen(name), vl = 0;

	v[0] = '\0';
	for (size_t i = 0; i < e->hdr_len;) {
		const char *eol = memmem(e->hdr + i, e->hdr_len - i, "\r\n", 2);
		size_t end = (size_t)(eol - e->hdr);

		if (strncasecmp(e->hdr + i, name, nl) == 0 &&
		    e->hdr[i + nl] == ':') {
			size_t s = i + nl + 1 + (e->hdr[i + nl + 1] == ' ');

			for (;;) {
				memcpy(v + vl, e->hdr + s, end - s);
				vl += end - s;
				if (end + 2 >= e->hdr_len ||
				    e->hdr[end + 2] != ' ')
					break;
				s = end + 2;
				end = (size_t)((const char *)memmem(
						       e->hdr + s,
						       e->hdr_len - s, "\r\n",
						       2) -
					       e->hdr);
			}
			v[vl] = '\0';
			return v;
		}
		i = end + 2;
	}
	return v;
}

/* The parts of a multipart body with boundary bnd (at most max). */
static inline size_t
parts(const struct ent *e, const char *bnd, struct ent *out, size_t max)
{
	char delim[160], first[160];
	const char *p, *end = e->body + e->body_len;
	size_t n = 0, dl;

	snprintf(first, sizeof(first), "--%s\r\n", bnd);
	snprintf(delim, sizeof(delim), "\r\n--%s", bnd);
	dl = strlen(delim);
	ck_assert_int_eq(memcmp(e->body, first, strlen(first)), 0);
	p = e->body + strlen(first);
	for (;;) {
		const char *d = memmem(p, (size_t)(end - p), delim, dl);

		ck_assert_ptr_nonnull(d);
		ck_assert_uint_lt(n, max);
		out[n++] = ent_of(p, (size_t)(d - p));
		if (memcmp(d + dl, "--", 2) == 0)
			return n;
		ck_assert_int_eq(memcmp(d + dl, "\r\n", 2), 0);
		p = d + dl + 2;
	}
}

/* The boundary parameter of a Content-Type value (static). */
static inline const char *
boundary(const char *ctype)
{
	static char b[128];
	const char *p = strstr(ctype, "boundary=\"");

	ck_assert_ptr_nonnull(p);
	p += 10;
	snprintf(b, sizeof(b), "%.*s", (int)(strchr(p, '"') - p), p);
	return b;
}

static inline int
b64v(char c)
{
	const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789+/";
	const char *p = c ? strchr(a, c) : NULL;

	return p ? (int)(p - a) : -1;
}

/* Decode base64 into out, skipping CRLF; lines of at most 76. */
static inline size_t
unb64(const char *s, size_t n, char *out)
{
	size_t o = 0, bits = 0, line = 0;
	unsigned acc = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b64v(s[i]);

		if (s[i] == '\r' || s[i] == '\n') {
			line = 0;
			continue;
		}
		ck_assert_uint_le(++line, 76);
		if (v < 0)
			continue; /* padding */
		acc = acc << 6 | (unsigned)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits);
		}
	}
	return o;
}

static inline int
hexv(char c)
{
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : c - '0';
}

/* Decode quoted-printable into out; every line at most 76, no bare
 * white space at a line end. */
static inline size_t
unqp(const char *s, size_t n, char *out)
{
	size_t o = 0, line = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			ck_assert(s[i - 1] != ' ' && s[i - 1] != '\t');
			out[o++] = '\r';
			out[o++] = '\n';
			i++;
			line = 0;
		} else if (s[i] == '=' && s[i + 1] == '\r') {
			ck_assert_uint_le(line + 1, 76);
			i += 2;
			line = 0;
		} else if (s[i] == '=') {
			out[o++] = (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2]));
			i += 2;
			line += 3;
		} else {
			ck_assert(s[i] >= 32 && s[i] < 127);
			out[o++] = s[i];
			line++;
		}
		ck_assert_uint_le(line, 76);
	}
	return o;
}

/* Decode a header value made of encoded-words (each at most 75) and
 * plain words; white space between two encoded-words is dropped
 * (RFC 2047 6.2). Static result. */
static inline const char *
unword(const char *v)
{
	static char out[4096];
	size_t o = 0;
	bool was_word = false;

	while (*v) {
		const char *sp = v;
		size_t len;

		while (*v == ' ')
			v++;
		len = strcspn(v, " ");
		if (len > 10 && strncmp(v, "=?UTF-8?", 8) == 0) {
			char enc = v[8];
			const char *t = v + 10;
			size_t tl = len - 12, k;

			ck_assert_uint_le(len, 75);
			ck_assert_int_eq(memcmp(v + len - 2, "?=", 2), 0);
			if (!was_word) {
				memcpy(out + o, sp, (size_t)(v - sp));
				o += (size_t)(v - sp);
			}
			if (enc == 'B') {
				o += unb64(t, tl, out + o);
			} else {
				for (k = 0; k < tl; k++) {
					if (t[k] == '_') {
						out[o++] = ' ';
					} else if (t[k] == '=') {
						out[o++] = (char)(hexv(t[k + 1]) << 4 |
								  hexv(t[k + 2]));
						k += 2;
					} else {
						out[o++] = t[k];
					}
				}
			}
			was_word = true;
		} else {
			memcpy(out + o, sp, (size_t)(v - sp));
			o += (size_t)(v - sp);
			memcpy(out + o, v, len);
			o += len;
			was_word = false;
		}
		v += len;
	}
	out[o] = '\0';
	return out;
}

/* What every built message must be: CRLF only, no NUL, lines within
 * 998, and lib/smtp_data.c takes it as it is. */
static inline void
assert_wire_ok(const struct buf *b)
{
	struct smtp_data d;
	struct buf out;
	size_t used, line = 0;

	for (size_t i = 0; i < b->len; i++) {
		ck_assert(b->data[i] != '\0');
		if (b->data[i] == '\r') {
			ck_assert(i + 1 < b->len && b->data[i + 1] == '\n');
			i++;
			line = 0;
			continue;
		}
		ck_assert(b->data[i] != '\n');
		ck_assert_uint_le(++line, 998);
	}
	ck_assert_uint_eq(line, 0);
	buf_init(&out, b->len + 16);
	smtp_data_init(&d, &out, b->len + 16, SMTP_DATA_CHUNKED);
	smtp_data_feed(&d, b->data, b->len, &used);
	ck_assert_int_eq(smtp_data_finish(&d), SMTP_DATA_OK);
	ck_assert_uint_eq(out.len, b->len);
	ck_assert_int_eq(memcmp(out.data, b->data, b->len), 0);
	buf_free(&out);
}

#endif
