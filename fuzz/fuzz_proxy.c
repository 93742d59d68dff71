/* libFuzzer harness: the octets a peer sends first on a proxy_protocol
 * listener, through the PROXY header parser (router/proxy.c). Besides
 * memory safety it checks what router/proxy_wait.c relies on: a verdict
 * is final once PROXY_HDR_MAX octets are there, a header's length never
 * exceeds what was given, every proper prefix of a header asks for more,
 * and the verdict does not depend on how the octets were split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the waiting room would conclude reading data in steps of step
 * octets (a peer's writes): the first verdict that is not NEED_MORE. */
static int
proxy_fuzz_stepwise(const uint8_t *data, size_t size, size_t step,
		    struct proxy_hdr *h)
{
	size_t have = 0;
	int rc = PROXY_NEED_MORE;

	while (rc == PROXY_NEED_MORE && have < size) {
		have += step;
		if (have > size)
			have = size;
		rc = proxy_parse(data, have, h);
	}
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr h, h2;
	int rc, rc2;

	if (size > PROXY_HDR_MAX + 64)
		size = PROXY_HDR_MAX + 64;
	rc = proxy_parse(data, size, &h);
	if (rc == PROXY_NEED_MORE && size >= PROXY_HDR_MAX)
		abort();
	if (rc == PROXY_DONE) {
		if (h.len == 0 || h.len > size || h.len > PROXY_HDR_MAX)
			abort();
		if (h.version == 1 && h.len > PROXY_V1_MAX)
			abort();
		/* the header alone gives the same verdict */
		if (proxy_parse(data, h.len, &h2) != PROXY_DONE ||
		    h2.len != h.len || h2.has_addr != h.has_addr)
			abort();
		if (proxy_parse(data, h.len - 1, &h2) != PROXY_NEED_MORE)
			abort();
	}
	/* split as a peer may write it: the same verdict */
	for (size_t step = 1; step <= 7 && size > 0; step += 3) {
		rc2 = proxy_fuzz_stepwise(data, size, step, &h2);
		if (rc2 != rc || (rc == PROXY_DONE && h2.len != h.len))
			abort();
	}
	(void)proxy_strerror(rc);
	return 0;
}
