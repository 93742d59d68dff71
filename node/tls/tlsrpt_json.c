/* TLS-RPT records, report JSON and gzip (tlsrpt_json.h): RFC 8460 3 (the
 * _smtp._tls TXT record and its rua URIs), 4.3 and 4.4 (the aggregate
 * report), 5.2 (gzip). Counting and sending are node/tls/tlsrpt.c's.
 * Handles untrusted input: TXT records are checked byte by byte against
 * the RFC's ABNF; report strings go through lib/json.h's writer, which
 * turns any bytes into valid JSON. */
#include "node/tls/tlsrpt_json.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "lib/json.h"
#include "node/tls/txt_record.h"

#define TLSRPT_EXT_NAME_MAX 32		/* RFC 8460 3: 1 + *31 characters */
#define TLSRPT_TIME_MAX 253402300799ull /* 9999-12-31T23:59:59Z */
#define TLSRPT_DATE_MAX 32 /* "9999-12-31T23:59:59Z" and NUL, rounded */
#define TLSRPT_GZ_CHUNK 16384
#define TLSRPT_COUNT_MAX 9007199254740991ull /* 2^53 - 1: RFC 7493 2.2 */

static bool
tlsrpt_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static bool
tlsrpt_is_name_char(unsigned char c)
{
	return tlsrpt_is_alnum(c) || c == '_' || c == '-' || c == '.';
}

/* RFC 3986 characters (unreserved, reserved, '%') other than the two
 * that separate rua URIs and fields, ',' and ';'. */
static bool
tlsrpt_is_uri_char(unsigned char c)
{
	return tlsrpt_is_alnum(c) ||
	       (c != 0 && strchr("-._~:/?#[]@!$&'()*+=%", c) != NULL);
}

static bool
tlsrpt_prefix_case(const char *s, size_t n, const char *prefix)
{
	size_t plen = strlen(prefix);

	if (n < plen)
		return false;
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c != (unsigned char)prefix[i])
			return false;
	}
	return true;
}

static int
tlsrpt_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The address of a mailto: URI (RFC 6068: what comes before '?', %XX
 * decoded) into addr. Returns false unless it is one plausible address. */
static bool
tlsrpt_mailto_addr(const char *s, size_t n, char addr[TLSRPT_ADDR_MAX + 1])
{
	size_t o = 0;
	bool has_at = false;

	for (size_t i = 0; i < n && s[i] != '?'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return false;
			hi = tlsrpt_hex((unsigned char)s[i + 1]);
			lo = tlsrpt_hex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		/* a decoded ',' would be a second address (RFC 6068 2) */
		if (c <= ' ' || c == 0x7f || c == ',')
			return false;
		if (c == '@')
			has_at = true;
		if (o == TLSRPT_ADDR_MAX)
			return false;
		addr[o++] = (char)c;
	}
	addr[o] = '\0';
	return has_at && addr[0] != '@' && addr[o - 1] != '@';
}

/* Drop a trailing "!<digits>[kmgt]" (DMARC's size limit) from a URI. */
static size_t
tlsrpt_strip_size(const char *s, size_t n)
{
	size_t i = n;

	if (i > 0 && s[i - 1] != '\0' && strchr("kmgtKMGT", s[i - 1]) != NULL)
		i--;
	if (i == 0 || s[i - 1] < '0' || s[i - 1] > '9')
		return n;
	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	return i > 0 && s[i - 1] == '!' ? i - 1 : n;
}

/* One URI of a rua list: kept in r when usable, else counted. */
static void
tlsrpt_add_uri(struct tlsrpt_rua *r, const char *s, size_t n)
{
	char addr[TLSRPT_ADDR_MAX + 1] = "";
	enum tlsrpt_scheme scheme;

	n = tlsrpt_strip_size(s, n);
	if (tlsrpt_prefix_case(s, n, "mailto:")) {
		scheme = TLSRPT_MAILTO;
		if (!tlsrpt_mailto_addr(s + 7, n - 7, addr))
			goto skip;
	} else if (tlsrpt_prefix_case(s, n, "https://")) {
		scheme = TLSRPT_HTTPS;
		if (n == 8 || strchr("/?#", s[8]) != NULL)
			goto skip; /* no host */
	} else {
		goto skip;
	}
	if (n > TLSRPT_URI_MAX || r->n == TLSRPT_RUA_MAX)
		goto skip;
	r->scheme[r->n] = scheme;
	memcpy(r->uri[r->n], s, n);
	r->uri[r->n][n] = '\0';
	memcpy(r->addr[r->n], addr, strlen(addr) + 1);
	r->n++;
	return;
skip:
	r->n_skipped++;
}

/* The value of a rua field at txt[*i..]: uri *(*WSP "," *WSP uri).
 * Advances *i past it. Returns false when malformed. */
static bool
tlsrpt_rua_list(const char *txt, size_t len, size_t *i, struct tlsrpt_rua *r)
{
	for (;;) {
		size_t start = *i, j;

		while (*i < len && tlsrpt_is_uri_char((unsigned char)txt[*i]))
			(*i)++;
		if (*i == start)
			return false; /* an empty URI */
		if (*i < len && txt[*i] != ',' && txt[*i] != ';' &&
		    !txt_is_wsp((unsigned char)txt[*i]))
			return false; /* a byte no URI holds */
		tlsrpt_add_uri(r, txt + start, *i - start);
		j = *i;
		while (j < len && txt_is_wsp((unsigned char)txt[j]))
			j++;
		if (j == len || txt[j] != ',')
			return true; /* the field ends; blanks are the caller's */
		j++;
		while (j < len && txt_is_wsp((unsigned char)txt[j]))
			j++;
		*i = j;
	}
}

/* The field at txt[*i..]. Returns false when malformed. */
static bool
tlsrpt_txt_field(const char *txt, size_t len, size_t *i, struct tlsrpt_rua *r,
		 bool *has_rua)
{
	size_t name = *i, name_len, val;

	while (*i < len && tlsrpt_is_name_char((unsigned char)txt[*i]))
		(*i)++;
	name_len = *i - name;
	if (*i >= len || txt[*i] != '=' || name_len == 0 ||
	    name_len > TLSRPT_EXT_NAME_MAX ||
	    !tlsrpt_is_alnum((unsigned char)txt[name]))
		return false;
	val = ++(*i);
	if (name_len == 3 && memcmp(txt + name, "rua", 3) == 0) {
		*has_rua = true;
		return tlsrpt_rua_list(txt, len, i, r);
	}
	/* RFC 8460 3 tlsrpt-ext-value: 1*(%x21-3A / %x3C / %x3E-7E) */
	while (*i < len && (unsigned char)txt[*i] >= 0x21 &&
	       (unsigned char)txt[*i] <= 0x7e && txt[*i] != ';' &&
	       txt[*i] != '=')
		(*i)++;
	return *i > val && (*i == len || txt[*i] == ';' ||
			    txt_is_wsp((unsigned char)txt[*i]));
}

int
tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out)
{
	static const char version[] = "v=TLSRPTv1";
	const size_t vlen = sizeof(version) - 1;
	struct tlsrpt_rua r;
	bool has_rua = false;
	size_t i;

	if (txt == NULL || len < vlen || memcmp(txt, version, vlen) != 0)
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	i = vlen;
	for (;;) {
		int more = txt_record_next(txt, len, &i);

		if (more < 0)
			return -EINVAL;
		if (more == 0)
			break;
		if (!tlsrpt_txt_field(txt, len, &i, &r, &has_rua))
			return -EINVAL;
	}
	if (!has_rua)
		return -EINVAL;
	if (r.n == 0)
		return -ENOTSUP;
	*out = r;
	return 0;
}

int
tlsrpt_txt_pick(const char *const *txts, const size_t *lens, size_t n,
		struct tlsrpt_rua *out)
{
	long which = txt_record_pick(txts, lens, n, "v=TLSRPTv1");

	if (which < 0)
		return -ENOENT;
	return tlsrpt_txt_parse(txts[which], lens[which], out);
}

/* RFC 3339 date-time in UTC: "2026-12-07T00:00:00Z". */
static void
tlsrpt_date(uint64_t t, char out[TLSRPT_DATE_MAX])
{
	time_t tt = (time_t)(t > TLSRPT_TIME_MAX ? TLSRPT_TIME_MAX : t);
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, TLSRPT_DATE_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, TLSRPT_DATE_MAX, "1970-01-01T00:00:00Z");
}

/* A count, at most TLSRPT_COUNT_MAX: what every JSON reader (jansson,
 * JavaScript's numbers) takes exactly. */
static void
tlsrpt_kv_count(struct json *j, const char *key, uint64_t v)
{
	json_kv_u64(j, key, v > TLSRPT_COUNT_MAX ? TLSRPT_COUNT_MAX : v);
}

/* A fixed-size field, read up to its NUL or its size. */
static void
tlsrpt_kv_field(struct json *j, const char *key, const char *s, size_t size)
{
	json_key(j, key);
	json_strn(j, s, strnlen(s, size));
}

static void
tlsrpt_kv_opt(struct json *j, const char *key, const char *s, size_t size)
{
	if (strnlen(s, size) > 0)
		tlsrpt_kv_field(j, key, s, size);
}

static void
tlsrpt_str_array(struct json *j, const char *key, const char *const *s,
		 size_t n)
{
	json_key(j, key);
	json_array_begin(j);
	for (size_t i = 0; i < n; i++)
		json_str(j, s != NULL ? s[i] : NULL);
	json_array_end(j);
}

static void
tlsrpt_failure_json(struct json *j, const struct tlsrpt_failure *f)
{
	json_object_begin(j);
	tlsrpt_kv_field(j, "result-type", f->result_type,
			sizeof(f->result_type));
	tlsrpt_kv_opt(j, "sending-mta-ip", f->sending_ip,
		      sizeof(f->sending_ip));
	tlsrpt_kv_opt(j, "receiving-mx-hostname", f->receiving_mx,
		      sizeof(f->receiving_mx));
	tlsrpt_kv_opt(j, "receiving-ip", f->receiving_ip,
		      sizeof(f->receiving_ip));
	tlsrpt_kv_count(j, "failed-session-count", f->count);
	json_object_end(j);
}

static void
tlsrpt_policy_json(struct json *j, const struct tlsrpt_policy *p)
{
	json_object_begin(j);
	json_key(j, "policy");
	json_object_begin(j);
	tlsrpt_kv_field(j, "policy-type", p->type, sizeof(p->type));
	if (p->n_strings > 0)
		tlsrpt_str_array(j, "policy-string", p->strings, p->n_strings);
	tlsrpt_kv_field(j, "policy-domain", p->domain, sizeof(p->domain));
	if (p->n_mx_host > 0)
		tlsrpt_str_array(j, "mx-host", p->mx_host, p->n_mx_host);
	json_object_end(j);
	json_key(j, "summary");
	json_object_begin(j);
	tlsrpt_kv_count(j, "total-successful-session-count", p->success);
	tlsrpt_kv_count(j, "total-failure-session-count", p->failure);
	json_object_end(j);
	if (p->n_fail > 0 && p->fail != NULL) {
		json_key(j, "failure-details");
		json_array_begin(j);
		for (size_t i = 0; i < p->n_fail; i++)
			tlsrpt_failure_json(j, &p->fail[i]);
		json_array_end(j);
	}
	json_object_end(j);
}

char *
tlsrpt_report_json(const struct tlsrpt_report *r)
{
	char start[TLSRPT_DATE_MAX], end[TLSRPT_DATE_MAX];
	char *text = NULL;
	size_t size = 0;
	struct json j;
	FILE *f;
	int rc;

	f = open_memstream(&text, &size);
	if (f == NULL)
		return NULL;
	tlsrpt_date(r->start, start);
	tlsrpt_date(r->end, end);
	json_init(&j, f);
	json_object_begin(&j);
	json_kv_str(&j, "organization-name", r->org);
	json_key(&j, "date-range");
	json_object_begin(&j);
	json_kv_str(&j, "start-datetime", start);
	json_kv_str(&j, "end-datetime", end);
	json_object_end(&j);
	json_kv_str(&j, "contact-info", r->contact);
	json_kv_str(&j, "report-id", r->report_id);
	json_key(&j, "policies");
	json_array_begin(&j);
	for (size_t i = 0; r->pol != NULL && i < r->n; i++)
		tlsrpt_policy_json(&j, &r->pol[i]);
	json_array_end(&j);
	json_object_end(&j);
	rc = json_end(&j);
	if (fclose(f) != 0 || rc < 0) {
		free(text);
		return NULL;
	}
	return text;
}

int
tlsrpt_gzip(const void *in, size_t len, struct buf *out)
{
	unsigned char chunk[TLSRPT_GZ_CHUNK];
	const unsigned char *p = in;
	struct buf tmp;
	z_stream z;
	int zrc, rc = 0;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip header and trailer, not zlib's */
	zrc = deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
			   Z_DEFAULT_STRATEGY);
	if (zrc != Z_OK)
		return zrc == Z_MEM_ERROR ? -ENOMEM : -EIO;
	buf_init(&tmp, out->max - out->len);
	do {
		if (z.avail_in == 0 && len > 0) {
			uInt take = len > UINT_MAX ? UINT_MAX : (uInt)len;

			z.next_in = (Bytef *)(uintptr_t)p;
			z.avail_in = take;
			p += take;
			len -= take;
		}
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		zrc = deflate(&z, len == 0 ? Z_FINISH : Z_NO_FLUSH);
		if (zrc == Z_STREAM_ERROR) {
			rc = -EIO;
			break;
		}
		if (buf_append(&tmp, chunk, sizeof(chunk) - z.avail_out) < 0) {
			rc = -EMSGSIZE;
			break;
		}
	} while (zrc != Z_STREAM_END);
	deflateEnd(&z);
	if (rc == 0)
		rc = buf_append(out, tmp.data, tmp.len);
	buf_free(&tmp);
	return rc;
}
