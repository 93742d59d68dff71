/* Webhook POST bodies, signatures and backoff (webhook_batch.h). The
 * signature is HMAC-SHA256 of the exact body bytes (OpenSSL), so a
 * receiver verifies before it parses. */
#include "node/webhook/webhook_batch.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

#define WEBHOOK_BODY_HEAD "{\"events\":["
#define WEBHOOK_BODY_TAIL "]}"

void
webhook_body_begin(struct buf *b)
{
	buf_init(b, WEBHOOK_BODY_MAX + sizeof(WEBHOOK_BODY_TAIL));
	SHOAL_ASSERT(buf_append(b, WEBHOOK_BODY_HEAD,
				sizeof(WEBHOOK_BODY_HEAD) - 1) == 0);
}

bool
webhook_body_add(struct buf *b, size_t n_before, const void *ev, size_t len)
{
	size_t need = len + (n_before > 0);

	if (n_before > 0 && b->len + need > WEBHOOK_BODY_MAX)
		return false;
	if (n_before > 0 && buf_append(b, ",", 1) != 0)
		return false;
	return buf_append(b, ev, len) == 0;
}

void
webhook_body_end(struct buf *b)
{
	/* room for the tail was kept past WEBHOOK_BODY_MAX */
	SHOAL_ASSERT(buf_append(b, WEBHOOK_BODY_TAIL,
				sizeof(WEBHOOK_BODY_TAIL) - 1) == 0);
}

void
webhook_sign(const char *secret, const void *body, size_t len,
	     char out[WEBHOOK_SIG_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	SHOAL_ASSERT(HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len,
			  md, &md_len) != NULL &&
		     md_len == 32);
	memcpy(out, "sha256=", 7);
	for (unsigned int i = 0; i < md_len; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
	out[7 + 2 * md_len] = '\0';
}

uint64_t
webhook_backoff_ms(uint32_t failures, uint32_t jitter_ms)
{
	uint64_t ms = WEBHOOK_BACKOFF_MIN_MS;

	for (uint32_t i = 1; i < failures && ms < WEBHOOK_BACKOFF_MAX_MS; i++)
		ms *= 2;
	ms += jitter_ms % 1000;
	return ms < WEBHOOK_BACKOFF_MAX_MS ? ms : WEBHOOK_BACKOFF_MAX_MS;
}

bool
webhook_status_ok(long status)
{
	return status >= 200 && status <= 299;
}

void
webhook_escape(const char *text, size_t len, char *out, size_t out_len)
{
	size_t o = 0;

	if (out_len == 0)
		return;
	for (size_t i = 0; i < len && text[i] != '\0'; i++) {
		unsigned char c = (unsigned char)text[i];
		bool plain = c >= 0x20 && c < 0x7f && c != '\\' && c != '"';

		if (o + (plain ? 1 : 4) >= out_len)
			break;
		if (plain)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, out_len - o, "\\x%02x",
					      c);
	}
	out[o] = '\0';
}
