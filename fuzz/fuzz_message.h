/* What the message content checker (lib/smtp_data.c) promises about what
 * it accepted, checked by the DATA and the BDAT harness alike: the output
 * stays within its bound and counts what it holds; a message the checker
 * took is well-formed (every line ends in CRLF, no bare CR or LF, no NUL,
 * at most 998 octets before each CRLF, fewer than SMTP_DATA_HOPS_MAX hops)
 * and its 8-bit flag is exactly "some octet >= 0x80". Any breach aborts,
 * which libFuzzer reports as a crash. */
#ifndef SHOAL_FUZZ_MESSAGE_H
#define SHOAL_FUZZ_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "lib/buf.h"
#include "lib/smtp_data.h"

static inline void
fuzz_check_message(const struct smtp_data *d, const struct buf *out, size_t max)
{
	size_t line = 0;
	bool is_8bit = false;

	if (out->len > max)
		abort();
	if (d->error != SMTP_DATA_OK)
		return;
	if (d->total != out->len || d->hops >= SMTP_DATA_HOPS_MAX)
		abort();
	for (size_t i = 0; i < out->len; i++) {
		unsigned char c = (unsigned char)out->data[i];

		is_8bit |= c >= 0x80;
		if (c == '\0')
			abort();
		if (c == '\r') {
			if (i + 1 >= out->len || out->data[i + 1] != '\n')
				abort();
			if (line > SMTP_TEXT_MAX - 2)
				abort();
			line = 0;
			i++;
			continue;
		}
		if (c == '\n')
			abort();
		line++;
	}
	/* a finished message ends with its last CRLF */
	if (line != 0 || is_8bit != d->has_8bit)
		abort();
}

#endif
