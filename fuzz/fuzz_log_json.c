/* libFuzzer harness: any bytes as the logfmt text of an event (what a
 * caller's format string plus hostile values could make), through
 * log_format_json() into a roomy and a tight buffer. Each result must be
 * one line holding one valid JSON object (RFC 8259) of string values and
 * the pid number, whatever came in; a violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "lib/log.h"

#define FUZZ_BODY_MAX 4096 /* lib/log.c LOG_LINE_MAX */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok, const char *what, const char *out)
{
	if (!ok) {
		fprintf(stderr, "bad JSON line (%s): %s\n", what, out);
		abort();
	}
}

/* One JSON string at p; returns the byte after it or NULL. */
static const char *
fuzz_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;
		uint32_t cp;
		size_t n;

		if (c < 0x20)
			return NULL; /* raw control byte, or the end */
		if (c >= 0x80) {
			n = json_utf8_seq((const unsigned char *)p, strlen(p),
					  &cp);
			if (n == 0)
				return NULL;
			p += n;
			continue;
		}
		if (c != '\\') {
			p++;
			continue;
		}
		p++;
		if (strchr("\"\\/bfnrt", *p) && *p) {
			p++;
		} else if (*p == 'u') {
			for (int i = 1; i <= 4; i++)
				if (!strchr("0123456789abcdefABCDEF", p[i]) ||
				    !p[i])
					return NULL;
			p += 5;
		} else {
			return NULL;
		}
	}
	return p + 1;
}

/* The whole line: {"k":"v",...,"pid":N,...}\n and nothing else. */
static int
fuzz_valid_line(const char *p)
{
	if (*p++ != '{')
		return 0;
	for (int first = 1; *p != '}'; first = 0) {
		if (!first && *p++ != ',')
			return 0;
		if ((p = fuzz_string(p)) == NULL || *p++ != ':')
			return 0;
		if (*p == '"') {
			if ((p = fuzz_string(p)) == NULL)
				return 0;
		} else {
			const char *d = p;

			while (*p >= '0' && *p <= '9')
				p++;
			if (p == d)
				return 0;
		}
	}
	return strcmp(p, "}\n") == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[32768], tight[300];
	static const size_t outlens[] = { sizeof(out), sizeof(tight) };
	char *bufs[] = { out, tight };

	if (size > FUZZ_BODY_MAX)
		size = FUZZ_BODY_MAX;
	log_init("fuzz", LOG_LVL_ERROR);
	for (size_t i = 0; i < 2; i++) {
		size_t n = log_format_json(bufs[i], outlens[i],
					   "2026-11-30T00:00:00.000Z",
					   LOG_LVL_INFO, (const char *)data,
					   size);

		fuzz_check(n < outlens[i] && n == strlen(bufs[i]), "length",
			   bufs[i]);
		fuzz_check(memchr(bufs[i], '\n', n) == bufs[i] + n - 1,
			   "one line", bufs[i]);
		fuzz_check(fuzz_valid_line(bufs[i]), "syntax", bufs[i]);
	}
	return 0;
}
