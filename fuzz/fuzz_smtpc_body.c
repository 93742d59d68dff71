/* libFuzzer harness: the SMTP client's body encoder (node/delivery/smtpc_proto.h)
 * fed any octets in pieces whose size comes from the input itself, so a CR
 * falls on every kind of boundary. What it writes must read, to a strict
 * receiver, as RFC 5321 asks: CR only before LF, LF only after CR, no line
 * over 1000 octets with its CRLF (a stuffing dot not counted), one "." line
 * and it last; and the pieces must not change a single octet of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "node/delivery/smtpc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encode body[0..len) in pieces of step octets; caller frees. */
static char *
fuzz_encode(const char *body, size_t len, size_t step, size_t *n)
{
	struct evbuffer *out = evbuffer_new();
	struct smtpc_body_enc e;
	char *w;

	if (out == NULL)
		abort();
	smtpc_proto_body_init(&e);
	for (size_t at = 0; at < len; at += step)
		smtpc_proto_body_feed(&e, out, body + at,
				      len - at < step ? len - at : step);
	smtpc_proto_body_end(&e, out);
	*n = evbuffer_get_length(out);
	w = malloc(*n ? *n : 1);
	if (w == NULL || evbuffer_remove(out, w, *n) != (int)*n)
		abort();
	evbuffer_free(out);
	return w;
}

static void
fuzz_check(const char *w, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		if (w[i] == '\r' && (i + 1 == n || w[i + 1] != '\n'))
			abort();
		if (w[i] == '\n' && (i == 0 || w[i - 1] != '\r'))
			abort();
	}
	if (n < 3 || memcmp(w + n - 3, ".\r\n", 3) != 0)
		abort();
	while (line < n) {
		const char *e = memchr(w + line, '\n', n - line);
		size_t len = (size_t)(e - (w + line)) + 1;

		if (len == 3 && w[line] == '.' && line + 3 != n)
			abort(); /* a "." line before the end */
		if (len - (w[line] == '.' && len > 3) > 1000)
			abort();
		line += len;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step, n_whole, n_split;
	char *whole, *split;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	whole = fuzz_encode((const char *)data, size, size ? size : 1,
			    &n_whole);
	split = fuzz_encode((const char *)data, size, step, &n_split);
	fuzz_check(whole, n_whole);
	if (n_split != n_whole || memcmp(whole, split, n_whole) != 0)
		abort();
	free(whole);
	free(split);
	return 0;
}
