/* libFuzzer harness: the message content checker as BDAT (RFC 3030) feeds
 * it, SMTP_DATA_CHUNKED, in chunks whose sizes come from the input itself
 * (so that a chunk ends between CR and LF, inside a header name, on every
 * kind of boundary), with and without bare-LF normalization and with a
 * size limit from the input. It checks what fuzz_smtp_data.c checks (the
 * output bound, every octet consumed, a taken message well-formed:
 * fuzz/fuzz_message.h), and two things only the pair can show: the
 * chunking never changes the verdict, the message, the 8-bit flag or the
 * count, and DATA given the same content (dot-stuffed, ended by ".")
 * answers exactly as BDAT does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_message.h"
#include "lib/buf.h"
#include "lib/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_BDAT_MAX 65536

struct fuzz_result {
	struct smtp_data d;
	struct buf out;
};

/* Feed in[0..len) as BDAT chunks of 1..64 octets (sizes taken in turn
 * from steps[0..nsteps); one chunk when nsteps is 0), then end it. */
static void
fuzz_bdat(const char *in, size_t len, unsigned flags, uint64_t max,
	  const uint8_t *steps, size_t nsteps, struct fuzz_result *r)
{
	size_t at = 0, k = 0;

	buf_init(&r->out, FUZZ_BDAT_MAX);
	smtp_data_init(&r->d, &r->out, max, flags | SMTP_DATA_CHUNKED);
	while (at < len) {
		size_t n = nsteps ? (size_t)steps[k++ % nsteps] % 64 + 1 :
				    len - at;
		size_t used = 0;

		if (n > len - at)
			n = len - at;
		if (smtp_data_feed(&r->d, in + at, n, &used) !=
			    SMTP_DATA_MORE ||
		    used != n)
			abort();
		at += n;
	}
	if (smtp_data_finish(&r->d) != r->d.error)
		abort();
	fuzz_check_message(&r->d, &r->out, max);
}

static void
fuzz_same(const struct fuzz_result *a, const struct fuzz_result *b)
{
	if (a->d.error != b->d.error || a->d.has_8bit != b->d.has_8bit ||
	    a->d.total != b->d.total || a->out.len != b->out.len ||
	    (a->out.len && memcmp(a->out.data, b->out.data, a->out.len)))
		abort();
}

/* DATA with the same content: in[0..len) ending in CRLF, every line start
 * stuffed (after any LF: DATA drops one leading dot there), then ".". */
static void
fuzz_data(const char *in, size_t len, unsigned flags, uint64_t max,
	  struct fuzz_result *r)
{
	char *wire = malloc(2 * len + 3);
	size_t o = 0, used = 0;

	if (wire == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			wire[o++] = '.';
		wire[o++] = in[i];
	}
	memcpy(wire + o, ".\r\n", 3);
	o += 3;
	buf_init(&r->out, FUZZ_BDAT_MAX);
	smtp_data_init(&r->d, &r->out, max, flags);
	/* the only "." line is the last: DATA ends exactly there */
	if (smtp_data_feed(&r->d, wire, o, &used) != SMTP_DATA_DONE ||
	    used != o)
		abort();
	fuzz_check_message(&r->d, &r->out, max);
	free(wire);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_result whole, chunked, by_data;
	const uint8_t *steps;
	size_t nsteps;
	unsigned flags;
	uint64_t max;
	char *body;
	size_t len;

	/* flags, a size limit, the number of chunk sizes, the chunk sizes,
	 * then the content */
	if (size < 3)
		return 0;
	flags = data[0] & 1 ? SMTP_DATA_NORMALIZE_LF : 0;
	max = data[0] & 2 ? (uint64_t)data[1] * 64 : FUZZ_BDAT_MAX;
	nsteps = data[2] % 16;
	if (size < 3 + nsteps)
		return 0;
	steps = data + 3;
	data += 3 + nsteps;
	size -= 3 + nsteps;

	fuzz_bdat((const char *)data, size, flags, max, NULL, 0, &whole);
	fuzz_bdat((const char *)data, size, flags, max, steps, nsteps,
		  &chunked);
	fuzz_same(&whole, &chunked);

	/* DATA's content always ends in CRLF: give BDAT the same */
	body = malloc(size + 2);
	if (body == NULL)
		abort();
	memcpy(body, data, size);
	len = size;
	if (len > 0 &&
	    !(len >= 2 && body[len - 2] == '\r' && body[len - 1] == '\n')) {
		memcpy(body + len, "\r\n", 2);
		len += 2;
	}
	buf_free(&chunked.out);
	fuzz_bdat(body, len, flags, max, steps, nsteps, &chunked);
	fuzz_data(body, len, flags, max, &by_data);
	fuzz_same(&chunked, &by_data);

	free(body);
	buf_free(&whole.out);
	buf_free(&chunked.out);
	buf_free(&by_data.out);
	return 0;
}
