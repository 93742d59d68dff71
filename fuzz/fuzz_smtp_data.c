/* libFuzzer harness: the DATA stream parser fed in pieces whose sizes
 * come from the input itself (so that CR, LF and "." fall on every kind of
 * boundary), with and without bare-LF normalization. The output must stay
 * within its bound, the parser must consume what it says, and every
 * message it takes must be well-formed (fuzz/fuzz_message.h, the same
 * checks as fuzz_smtp_bdat.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_message.h"
#include "lib/buf.h"
#include "lib/smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DATA_MAX 65536

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data d;
	struct buf out;
	size_t at = 0;
	unsigned flags, step;

	if (size < 2)
		return 0;
	flags = data[0] & 1 ? SMTP_DATA_NORMALIZE_LF : 0;
	step = (unsigned)data[1] % 64 + 1;
	data += 2;
	size -= 2;
	buf_init(&out, FUZZ_DATA_MAX);
	smtp_data_init(&d, &out, FUZZ_DATA_MAX, flags);
	while (at < size) {
		size_t n = size - at < step ? size - at : step, used = 0;
		int st = smtp_data_feed(&d, (const char *)data + at, n, &used);

		if (used > n)
			abort();
		at += used;
		if (st == SMTP_DATA_DONE) {
			fuzz_check_message(&d, &out, FUZZ_DATA_MAX);
			/* the next message starts where this one ended */
			buf_reset(&out);
			smtp_data_init(&d, &out, FUZZ_DATA_MAX, flags);
		} else if (used != n) {
			abort();
		}
	}
	if (out.len > FUZZ_DATA_MAX)
		abort();
	buf_free(&out);
	return 0;
}
