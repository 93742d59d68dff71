/* libFuzzer harness: arbitrary messages through lib/dkim.c: the header
 * index, the From domain, both body canonicalizations (whose output must
 * keep the RFC 6376 3.4.4 rules: no WSP run, no WSP before CRLF, no empty
 * line at the end) and a whole signature with a fixed key (Ed25519, or
 * RSA 2048 for one input in eight: RSA signing is slow). The first byte
 * picks canonicalizations and key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/dkim.h"
#include "lib/dkim_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The keys live for the whole process (made once: RSA keygen is slow). */
static struct dkim_key *fuzz_rsa, *fuzz_ed;

static void
fuzz_collect(void *arg, const void *p, size_t n)
{
	if (buf_append(arg, p, n) != 0)
		abort();
}

static void
fuzz_check_relaxed_body(const struct buf *b)
{
	for (size_t i = 0; i + 1 < b->len; i++) {
		char c = b->data[i], d = b->data[i + 1];

		if ((c == ' ' || c == '\t') && (d == ' ' || d == '\t'))
			abort();    /* a WSP run left */
		if (c == '\t')
			abort();    /* WSP becomes SP */
		if (c == ' ' && d == '\r' && i + 2 < b->len &&
		    b->data[i + 2] == '\n')
			abort();    /* WSP before a line end */
	}
	if (b->len >= 4 && memcmp(b->data + b->len - 4, "\r\n\r\n", 4) == 0)
		abort();            /* an empty line at the end */
	if (b->len > 0 && (b->len < 2 ||
			   memcmp(b->data + b->len - 2, "\r\n", 2) != 0))
		abort();            /* a last line without CRLF */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_sign_req req = { "example.com", "fuzz", DKIM_CANON_RELAXED,
				     DKIM_CANON_RELAXED, NULL, 1700000000, 0 };
	char domain[DKIM_DOMAIN_MAX + 1];
	struct dkim_msg *m;
	struct buf out, body;
	const char *msg;
	unsigned sel;

	if (fuzz_ed == NULL &&
	    (dkim_key_generate(DKIM_ALG_ED25519_SHA256, 0, &fuzz_ed) != 0 ||
	     dkim_key_generate(DKIM_ALG_RSA_SHA256, 2048, &fuzz_rsa) != 0))
		abort();
	if (size < 1)
		return 0;
	sel = data[0];
	msg = (const char *)data + 1;
	size--;
	req.header_canon = sel & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	req.body_canon = sel & 2 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	req.expire_s = sel & 4 ? 3600 : 0;

	buf_init(&body, 4 * size + 16);
	dkim_canon_body(DKIM_CANON_RELAXED, msg, size, fuzz_collect, &body);
	fuzz_check_relaxed_body(&body);
	buf_reset(&body);
	dkim_canon_body(DKIM_CANON_SIMPLE, msg, size, fuzz_collect, &body);
	if (body.len < 2 || body.len > size + 2)
		abort();
	buf_free(&body);

	if (dkim_msg_parse(msg, size, &m) != 0)
		return 0;
	if (dkim_msg_from_domain(m, domain, sizeof(domain)) == 0 &&
	    (domain[0] == '\0' || strlen(domain) > DKIM_DOMAIN_MAX))
		abort();
	buf_init(&out, 1 << 20);
	if (dkim_sign(m, (sel & 0x38) == 0 ? fuzz_rsa : fuzz_ed, &req,
		      &out) != 0)
		abort();
	if (out.len < 20 || memcmp(out.data, "DKIM-Signature: ", 16) != 0 ||
	    memcmp(out.data + out.len - 2, "\r\n", 2) != 0)
		abort();
	buf_free(&out);
	dkim_msg_free(m);
	return 0;
}
