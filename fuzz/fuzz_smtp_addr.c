/* libFuzzer harness: addresses (paths, mailboxes, UTF-8 checks) with each
 * combination of parser flags. */
#include <stdint.h>
#include <string.h>

#include "lib/smtp_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_addr a;
	size_t used;
	unsigned flags;

	if (size < 1)
		return 0;
	flags = data[0] & 0xf;
	data++;
	size--;
	smtp_path_parse((const char *)data, size, flags, &a, &used);
	smtp_mailbox_parse((const char *)data, size, flags, &a);
	smtp_utf8_valid((const char *)data, size);
	return 0;
}
