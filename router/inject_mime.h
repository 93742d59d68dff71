/* Encoders for building messages (router/inject_build.c): header fields
 * folded to RFC 5322 2.1.1 and 2.2.3, RFC 2047 encoded-words (UTF-8, B
 * or Q), display names as RFC 5322 3.2.5 phrases, RFC 2231 parameters,
 * RFC 2045 6.7 quoted-printable and 6.8 base64. Knows nothing of
 * requests; every function appends to a bounded lib/buf.h buffer and
 * fails with -EMSGSIZE when that is full (what was appended stays; the
 * caller rolls back). Input text is UTF-8 as jansson checked it; a
 * malformed sequence is taken byte by byte, never read past its end. */
#ifndef SHOAL_ROUTER_INJECT_MIME_H
#define SHOAL_ROUTER_INJECT_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define INJECT_MIME_LINE_MAX 998 /* RFC 5322 2.1.1, without CRLF */
#define INJECT_MIME_LINE_GOOD 78 /* RFC 5322 2.1.1 "SHOULD" */
#define INJECT_MIME_WORD_MAX 75	 /* RFC 2047 2, one encoded-word */
#define INJECT_MIME_QP_LINE 76	 /* RFC 2045 6.7 (5), "=" included */
#define INJECT_MIME_B64_LINE 76	 /* RFC 2045 6.8 */
/* Longest quoted-string or atom a phrase may keep before it is sent as
 * encoded-words instead (those fold; a quoted-string is not folded
 * here). */
#define INJECT_MIME_TOKEN_MAX 900

/* Append the field "name: value" and its CRLF, folded (CRLF inserted
 * before white space outside quoted-strings) so that lines stay within
 * INJECT_MIME_LINE_GOOD where a break allows, and within
 * INJECT_MIME_LINE_MAX always. value[0..n) must hold no CR or LF.
 * Returns 0, -ERANGE when some word cannot fit within
 * INJECT_MIME_LINE_MAX, or -EMSGSIZE; on error out is as it was. */
int inject_mime_field(struct buf *out, const char *name, const char *value,
		      size_t n);

/* Append s[0..n) as RFC 2047 encoded-words ("=?UTF-8?Q?...?=" or B,
 * whichever is shorter), separated by single spaces, each at most
 * INJECT_MIME_WORD_MAX and the first at most first_max (at least 24) long,
 * none splitting a character. Valid in unstructured text and in a phrase.
 * Nothing for n == 0. Returns 0 or -EMSGSIZE. */
int inject_mime_words(struct buf *out, const char *s, size_t n,
		      size_t first_max);

/* Append display name s[0..n) (n > 0) as a phrase: atoms when it is
 * atoms separated by single spaces, else a quoted-string (" and \
 * escaped), else (non-ASCII, "=?", or longer than INJECT_MIME_TOKEN_MAX)
 * encoded-words, the first at most first_max long. Returns 0 or
 * -EMSGSIZE. */
int inject_mime_phrase(struct buf *out, const char *s, size_t n,
		       size_t first_max);

/* Append the parameter "; attr=value" of a Content-Type or
 * Content-Disposition: a quoted-string when the value is short printable
 * ASCII without " or \, else RFC 2231 "attr*=utf-8''%XX.." in segments
 * (attr*0*=, attr*1*=, ...) of at most 48 characters. Returns 0 or
 * -EMSGSIZE. */
int inject_mime_param(struct buf *out, const char *attr, const char *s,
		      size_t n);

/* Append s[0..n), whose line ends are CRLF and only CRLF, as
 * quoted-printable: hard line breaks kept, soft ones ("=" CRLF) keeping
 * every line within INJECT_MIME_QP_LINE. No CRLF is added at the end.
 * Returns 0 or -EMSGSIZE. */
int inject_mime_qp(struct buf *out, const char *s, size_t n);

/* Append p[0..n) as base64 in lines of INJECT_MIME_B64_LINE joined by
 * CRLF, with no CRLF after the last. Returns 0 or -EMSGSIZE. */
int inject_mime_base64(struct buf *out, const unsigned char *p, size_t n);

/* Decode base64 s[0..n) (RFC 4648 4; white space between characters
 * ignored; padding required; the unused bits of the last quantum zero).
 * Returns 0 and sets *data (caller frees with free(); never NULL) and
 * *len, or -EINVAL with a static reason in *why. */
int inject_mime_unbase64(const char *s, size_t n, unsigned char **data,
			 size_t *len, const char **why);

/* Whether every octet of s[0..n) is below 0x80. */
bool inject_mime_is_ascii(const char *s, size_t n);

/* Whether s[0..n) (CRLF line ends) may go as 7bit (RFC 2045 2.7): ASCII,
 * no NUL, no line longer than INJECT_MIME_LINE_MAX. */
bool inject_mime_is_7bit(const char *s, size_t n);

#endif
