/* Encoders for the messages the injection API builds (see
 * inject_mime.h): folding (RFC 5322 2.2.3), encoded-words (RFC 2047 4,
 * 5), phrases (RFC 5322 3.2.3-3.2.5), parameters (RFC 2045 5.1, RFC 2231
 * 3, 4), quoted-printable (RFC 2045 6.7), base64 (RFC 2045 6.8, RFC 4648
 * 4). Pure functions over caller-given text, which the request brought:
 * every read is bounded by the length given. */
#include "router/inject_mime.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"

#define MIME_WORD_OVERHEAD 12 /* "=?UTF-8?Q?" and "?=" */
#define MIME_WORD_MIN 24      /* room for one 4-octet character in Q */
#define MIME_PARAM_SEG 48     /* characters of one RFC 2231 segment */

static const char mime_hex[] = "0123456789ABCDEF";
static const char mime_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool
mime_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool
mime_is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9');
}

/* RFC 5322 3.2.3 atext */
static bool
mime_is_atext(unsigned char c)
{
	return mime_is_alnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* The octets of the UTF-8 character at p (1 for a malformed one). */
static size_t
mime_char_len(const unsigned char *p, size_t n)
{
	size_t k = p[0] < 0x80	? 1 :
		   p[0] >= 0xf0 ? 4 :
		   p[0] >= 0xe0 ? 3 :
		   p[0] >= 0xc0 ? 2 :
				  1;

	if (k > n)
		return 1;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 1;
	return k;
}

/* ---- header fields ------------------------------------------------- */

/* The end of the word starting at v[i]: the next white space outside a
 * quoted-string, or n. */
static size_t
mime_word_end(const char *v, size_t i, size_t n)
{
	bool is_quoted = false;

	for (; i < n; i++) {
		if (is_quoted && v[i] == '\\' && i + 1 < n)
			i++;
		else if (v[i] == '"')
			is_quoted = !is_quoted;
		else if (!is_quoted && mime_is_wsp(v[i]))
			break;
	}
	return i;
}

int
inject_mime_field(struct buf *out, const char *name, const char *v, size_t n)
{
	size_t start = out->len, col = strlen(name) + 1, i = 0;
	bool is_first = true;
	int rc;

	if ((rc = buf_printf(out, "%s:", name)) != 0)
		goto fail;
	/* each token is white space and a word; the first gets the space
	 * after the colon. Breaks go before a token, never before white
	 * space that ends the value (a line of white space only). */
	while (is_first || i < n) {
		size_t ws = i, w, end, len;
		bool is_tail;

		while (i < n && mime_is_wsp(v[i]))
			i++;
		w = i;
		end = mime_word_end(v, i, n);
		len = (is_first ? 1 : 0) + (end - ws);
		is_tail = w == n;
		if (!is_tail && col + len > INJECT_MIME_LINE_GOOD &&
		    (!is_first || col + len > INJECT_MIME_LINE_MAX)) {
			if ((rc = buf_append(out, "\r\n", 2)) != 0)
				goto fail;
			col = 0;
		}
		if (col + len > INJECT_MIME_LINE_MAX) {
			rc = -ERANGE;
			goto fail;
		}
		if ((is_first && (rc = buf_append(out, " ", 1)) != 0) ||
		    (rc = buf_append(out, v + ws, end - ws)) != 0)
			goto fail;
		col += len;
		i = end;
		is_first = false;
	}
	if ((rc = buf_append(out, "\r\n", 2)) != 0)
		goto fail;
	return 0;
fail:
	out->len = start;
	return rc;
}

/* ---- encoded-words ------------------------------------------------- */

/* RFC 2047 5 (3): the characters a Q word may carry as they are in any
 * context, a phrase included; space goes as "_". */
static bool
mime_q_is_literal(unsigned char c)
{
	return mime_is_alnum(c) || c == '!' || c == '*' || c == '+' ||
	       c == '-' || c == '/';
}

static size_t
mime_q_cost(unsigned char c)
{
	return c == ' ' || mime_q_is_literal(c) ? 1 : 3;
}

static int
mime_append_b64(struct buf *out, const unsigned char *p, size_t n)
{
	char q[4];
	int rc;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = mime_b64[v >> 18 & 63];
		q[1] = mime_b64[v >> 12 & 63];
		q[2] = i + 1 < n ? mime_b64[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? mime_b64[v & 63] : '=';
		if ((rc = buf_append(out, q, 4)) != 0)
			return rc;
	}
	return 0;
}

static int
mime_append_q(struct buf *out, const unsigned char *p, size_t n)
{
	char esc[3] = { '=' };
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		if (p[i] == ' ') {
			rc = buf_append(out, "_", 1);
		} else if (mime_q_is_literal(p[i])) {
			rc = buf_append(out, p + i, 1);
		} else {
			esc[1] = mime_hex[p[i] >> 4];
			esc[2] = mime_hex[p[i] & 15];
			rc = buf_append(out, esc, 3);
		}
	}
	return rc;
}

int
inject_mime_words(struct buf *out, const char *s, size_t n, size_t first_max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t q_len = 0, i = 0;
	size_t max = first_max < MIME_WORD_MIN ? MIME_WORD_MIN : first_max;
	bool is_q;
	int rc;

	for (size_t k = 0; k < n; k++)
		q_len += mime_q_cost(p[k]);
	is_q = q_len <= (n + 2) / 3 * 4;
	while (i < n) {
		size_t j = i, cost = 0;

		if (max > INJECT_MIME_WORD_MAX)
			max = INJECT_MIME_WORD_MAX;
		/* as many whole characters as fit in this word */
		while (j < n) {
			size_t k = mime_char_len(p + j, n - j), c = 0;

			if (is_q) {
				for (size_t x = 0; x < k; x++)
					c += mime_q_cost(p[j + x]);
				c += cost;
			} else {
				c = (j + k - i + 2) / 3 * 4;
			}
			if (j > i && MIME_WORD_OVERHEAD + c > max)
				break;
			cost = c;
			j += k;
		}
		if ((i > 0 && (rc = buf_append(out, " ", 1)) != 0) ||
		    (rc = buf_printf(out, "=?UTF-8?%c?", is_q ? 'Q' : 'B')) !=
			    0)
			return rc;
		rc = is_q ? mime_append_q(out, p + i, j - i) :
			    mime_append_b64(out, p + i, j - i);
		if (rc != 0 || (rc = buf_append(out, "?=", 2)) != 0)
			return rc;
		i = j;
		max = INJECT_MIME_WORD_MAX;
	}
	return 0;
}

/* ---- phrases ------------------------------------------------------- */

/* Atoms separated by single spaces, none longer than
 * INJECT_MIME_TOKEN_MAX, and no "=?" (which a reader would take for an
 * encoded-word). */
static bool
mime_is_atoms(const char *s, size_t n)
{
	size_t word = 0;

	if (n == 0 || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == ' ') {
			if (s[i - 1] == ' ')
				return false;
			word = 0;
			continue;
		}
		if (!mime_is_atext((unsigned char)s[i]) ||
		    ++word > INJECT_MIME_TOKEN_MAX ||
		    (s[i] == '=' && i + 1 < n && s[i + 1] == '?'))
			return false;
	}
	return true;
}

int
inject_mime_phrase(struct buf *out, const char *s, size_t n, size_t first_max)
{
	size_t quoted = 2;
	int rc;

	if (!inject_mime_is_ascii(s, n))
		return inject_mime_words(out, s, n, first_max);
	if (mime_is_atoms(s, n))
		return buf_append(out, s, n);
	for (size_t i = 0; i < n; i++)
		quoted += s[i] == '"' || s[i] == '\\' ? 2 : 1;
	if (quoted > INJECT_MIME_TOKEN_MAX)
		return inject_mime_words(out, s, n, first_max);
	if ((rc = buf_append(out, "\"", 1)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((s[i] == '"' || s[i] == '\\') &&
		    (rc = buf_append(out, "\\", 1)) != 0)
			return rc;
		if ((rc = buf_append(out, s + i, 1)) != 0)
			return rc;
	}
	return buf_append(out, "\"", 1);
}

/* ---- parameters ---------------------------------------------------- */

/* RFC 2231 7 attribute-char: CHAR except SPACE, CTLs, "*", "'", "%" and
 * the RFC 2045 tspecials. */
static bool
mime_is_attr_char(unsigned char c)
{
	return mime_is_alnum(c) || (c && strchr("!#$&+-.^_`{|}~", c));
}

int
inject_mime_param(struct buf *out, const char *attr, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, seg = 0;
	bool plain = n <= MIME_PARAM_SEG;
	int rc;

	for (size_t k = 0; k < n && plain; k++)
		plain = p[k] >= 0x20 && p[k] < 0x7f && p[k] != '"' &&
			p[k] != '\\';
	if (plain)
		return buf_printf(out, "; %s=\"%.*s\"", attr, (int)n, s);
	/* percent-encoded segments, each ending on a character boundary */
	while (i < n || seg == 0) {
		size_t j = i, len = 0;
		bool is_last;

		while (j < n) {
			size_t k = mime_char_len(p + j, n - j), c = 0;

			for (size_t x = 0; x < k; x++)
				c += mime_is_attr_char(p[j + x]) ? 1 : 3;
			if (j > i && len + c > MIME_PARAM_SEG)
				break;
			len += c;
			j += k;
		}
		is_last = j >= n;
		if (seg == 0 && is_last)
			rc = buf_printf(out, "; %s*=utf-8''", attr);
		else if (seg == 0)
			rc = buf_printf(out, "; %s*0*=utf-8''", attr);
		else
			rc = buf_printf(out, "; %s*%zu*=", attr, seg);
		for (size_t k = i; k < j && rc == 0; k++) {
			if (mime_is_attr_char(p[k]))
				rc = buf_append(out, p + k, 1);
			else
				rc = buf_printf(out, "%%%c%c",
						mime_hex[p[k] >> 4],
						mime_hex[p[k] & 15]);
		}
		if (rc != 0)
			return rc;
		i = j;
		seg++;
	}
	return 0;
}

/* ---- bodies -------------------------------------------------------- */

int
inject_mime_qp(struct buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, col = 0;
	char tok[3] = { '=' };
	int rc;

	while (i < n) {
		size_t len = 1;
		unsigned char c = p[i];
		/* white space before a line end would be lost (RFC 2045 6.7
		 * (3)): it is encoded */
		bool is_eol = i + 1 == n || (i + 2 < n && p[i + 1] == '\r' &&
					     p[i + 2] == '\n');

		if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			if ((rc = buf_append(out, "\r\n", 2)) != 0)
				return rc;
			i += 2;
			col = 0;
			continue;
		}
		if ((c >= 33 && c <= 126 && c != '=') ||
		    (mime_is_wsp((char)c) && !is_eol)) {
			tok[0] = (char)c;
		} else {
			tok[0] = '=';
			tok[1] = mime_hex[c >> 4];
			tok[2] = mime_hex[c & 15];
			len = 3;
		}
		/* a soft line break keeps the line, "=" included, at 76 */
		if (col + len > INJECT_MIME_QP_LINE - 1) {
			if ((rc = buf_append(out, "=\r\n", 3)) != 0)
				return rc;
			col = 0;
		}
		if ((rc = buf_append(out, tok, len)) != 0)
			return rc;
		col += len;
		i++;
	}
	return 0;
}

int
inject_mime_base64(struct buf *out, const unsigned char *p, size_t n)
{
	/* 57 octets make one line of 76 characters */
	const size_t per_line = INJECT_MIME_B64_LINE / 4 * 3;
	int rc;

	for (size_t i = 0; i < n; i += per_line) {
		size_t k = n - i < per_line ? n - i : per_line;

		if ((i > 0 && (rc = buf_append(out, "\r\n", 2)) != 0) ||
		    (rc = mime_append_b64(out, p + i, k)) != 0)
			return rc;
	}
	return 0;
}

static int
mime_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
inject_mime_unbase64(const char *s, size_t n, unsigned char **data, size_t *len,
		     const char **why)
{
	unsigned char *d = xmalloc(n / 4 * 3 + 3);
	uint32_t acc = 0;
	size_t got = 0, out = 0, pad = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			/* only in the last quantum's third or fourth place */
			if (got % 4 < 2 || ++pad > 2) {
				*why = "misplaced padding";
				goto fail;
			}
			got++;
			continue;
		}
		if (pad > 0) {
			*why = "data after padding";
			goto fail;
		}
		if ((v = mime_b64_value(c)) < 0) {
			*why = "not a base64 character";
			goto fail;
		}
		acc = acc << 6 | (uint32_t)v;
		if (++got % 4 == 0) {
			d[out++] = (unsigned char)(acc >> 16);
			d[out++] = (unsigned char)(acc >> 8);
			d[out++] = (unsigned char)acc;
			acc = 0;
		}
	}
	if (got % 4 != 0) {
		*why = "length is not a multiple of 4";
		goto fail;
	}
	if (pad > 0) {
		/* acc holds the 4 - pad characters of the last quantum */
		if ((pad == 2 && (acc & 0xf) != 0) ||
		    (pad == 1 && (acc & 0x3) != 0)) {
			*why = "nonzero bits after the data";
			goto fail;
		}
		if (pad == 2) {
			d[out++] = (unsigned char)(acc >> 4);
		} else {
			d[out++] = (unsigned char)(acc >> 10);
			d[out++] = (unsigned char)(acc >> 2);
		}
	}
	*data = d;
	*len = out;
	return 0;
fail:
	free(d);
	return -EINVAL;
}

bool
inject_mime_is_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

bool
inject_mime_is_7bit(const char *s, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0 || c >= 0x80)
			return false;
		if (c == '\r' && i + 1 < n && s[i + 1] == '\n') {
			line = 0;
			i++;
			continue;
		}
		if (++line > INJECT_MIME_LINE_MAX)
			return false;
	}
	return true;
}
