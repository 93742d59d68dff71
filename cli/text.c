/* Terminal-safe rendering of untrusted text (UTF-8 decoding is json.c's).
 * Handles untrusted input: any byte string. */
#include "cli/text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/json.h"

/* Marks and embeddings that change the order text is shown in (Unicode
 * UAX #9): U+200E, U+200F, U+202A..U+202E, U+2066..U+2069. */
static bool
text_is_bidi(uint32_t cp)
{
	return cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* Render the unit that starts at s[*i] (one character, or one byte that
 * must be escaped) into unit[4]: returns its length and advances *i. A
 * well-formed UTF-8 sequence is returned in place through *direct. */
static size_t
text_next(const char *s, size_t len, size_t *i, char unit[4],
	  const char **direct)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	unsigned char b = p[*i];
	uint32_t cp = 0;
	size_t n = 0;

	*direct = NULL;
	if (b >= 0x80)
		n = json_utf8_seq(p + *i, len - *i, &cp);
	/* C1 controls: some terminals obey them; bidirectional controls
	 * reorder what a row shows: both escaped, byte by byte */
	if (n > 0 && cp > 0x9f && !text_is_bidi(cp)) {
		*direct = s + *i;
		*i += n;
		return n;
	}
	(*i)++;
	if (b == '\\') {
		unit[0] = unit[1] = '\\';
		return 2;
	}
	if (b < 0x20 || b >= 0x7f) {
		unit[0] = '\\';
		unit[1] = 'x';
		unit[2] = hex[b >> 4];
		unit[3] = hex[b & 15];
		return 4;
	}
	unit[0] = (char)b;
	return 1;
}

char *
text_clean(char *out, size_t outlen, const char *s, size_t len)
{
	size_t i = 0, o = 0;

	if (outlen < 4) {
		if (outlen > 0)
			out[0] = '\0';
		return out;
	}
	while (i < len) {
		size_t before = i;
		const char *direct;
		char unit[4];
		size_t n = text_next(s, len, &i, unit, &direct);

		/* keep room for "..." and the NUL */
		if (o + n + 4 > outlen) {
			i = before;
			break;
		}
		memcpy(out + o, direct ? direct : unit, n);
		o += n;
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

void
text_print(FILE *f, const void *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *direct;
		char unit[4];
		size_t n = text_next(s, len, &i, unit, &direct);

		fwrite(direct ? direct : unit, 1, n, f);
	}
}

void
text_print_lines(FILE *f, const void *s, size_t len)
{
	const char *p = s;
	size_t i = 0;

	while (i < len) {
		const char *direct;
		char unit[4];
		size_t n;

		if (p[i] == '\n' || p[i] == '\t') {
			fputc(p[i++], f);
			continue;
		}
		if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n') {
			i++;
			continue;
		}
		n = text_next(p, len, &i, unit, &direct);
		fwrite(direct ? direct : unit, 1, n, f);
	}
	if (len > 0 && p[len - 1] != '\n')
		fputc('\n', f);
}

char *
text_time(char out[24], uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 24, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		snprintf(out, 24, "-");
	return out;
}

char *
text_age(char out[24], uint64_t start, uint64_t now)
{
	uint64_t s = now > start ? now - start : 0;

	if (start == 0)
		snprintf(out, 24, "-");
	else if (s < 60)
		snprintf(out, 24, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(out, 24, "%llum", (unsigned long long)(s / 60));
	else if (s < 86400)
		snprintf(out, 24, "%lluh%llum", (unsigned long long)(s / 3600),
			 (unsigned long long)(s % 3600 / 60));
	else
		snprintf(out, 24, "%llud%lluh",
			 (unsigned long long)(s / 86400),
			 (unsigned long long)(s % 86400 / 3600));
	return out;
}
