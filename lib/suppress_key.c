/* Suppression list keys: see lib/suppress_key.h. */
#include "lib/suppress_key.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/qid.h"

#define SUPPRESS_HASH_CHARS 22 /* 110 bits of the digest */

/* RFC 5322 atext, and RFC 6531's UTF-8 octets. */
static bool
suppress_is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c >= 0x80 ||
	       (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* A quoted local part that holds a dot-atom is that dot-atom (RFC 5321
 * 4.1.2: "dead"@example.com is dead@example.com): written unquoted into
 * tmp, so that one entry matches however a client writes the address.
 * Returns the new length, or 0 when addr is left as it is. */
static size_t
suppress_unquote(const char *addr, size_t len, char *tmp)
{
	const char *at = NULL;
	size_t n = 0;

	for (size_t i = len; i > 0; i--)
		if (addr[i - 1] == '@') {
			at = addr + i - 1;
			break;
		}
	if (at == NULL || at - addr < 2 || addr[0] != '"' || at[-1] != '"')
		return 0;
	for (const char *p = addr + 1; p < at - 1; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\\' && p + 1 < at - 1)
			c = (unsigned char)*++p;
		if (c == '.' ? n == 0 || tmp[n - 1] == '.' :
			       !suppress_is_atext(c))
			return 0;
		tmp[n++] = (char)c;
	}
	if (n == 0 || tmp[n - 1] == '.')
		return 0;
	memcpy(tmp + n, at, (size_t)(addr + len - at));
	return n + (size_t)(addr + len - at);
}

int
suppress_addr_norm(const char *addr, size_t len,
		   char out[SUPPRESS_ADDR_MAX + 1])
{
	char tmp[SUPPRESS_ADDR_MAX + 1];
	bool has_at = false;
	size_t n;

	if (addr == NULL || len == 0 || len > SUPPRESS_ADDR_MAX)
		return -EINVAL;
	if ((n = suppress_unquote(addr, len, tmp)) > 0) {
		addr = tmp;
		len = n;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c <= ' ' || c == 0x7f)
			return -EINVAL;
		if (c == '@')
			has_at = true;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[len] = '\0';
	return has_at ? 0 : -EINVAL;
}

uint32_t
suppress_shard(const char *norm, uint32_t shards)
{
	return shard_of(norm, shards);
}

void
suppress_key(const char *norm, uint32_t shards, char tag,
	     char out[SUPPRESS_KEY_MAX])
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	uint64_t acc = 0;
	int bits = 0;
	size_t j = 0;

	EVP_Digest(norm, strlen(norm), md, &md_len, EVP_sha256(), NULL);
	snprintf(out, SUPPRESS_KEY_MAX, "%c%08X", tag,
		 (unsigned)suppress_shard(norm, shards));
	for (unsigned i = 0; i < md_len && j < SUPPRESS_HASH_CHARS; i++) {
		acc = (acc << 8) | md[i];
		bits += 8;
		while (bits >= 5 && j < SUPPRESS_HASH_CHARS) {
			bits -= 5;
			out[9 + j++] = b32[(acc >> bits) & 31];
		}
	}
	out[9 + j] = '\0';
}

bool
suppress_key_parse(const char *s, uint32_t *shard)
{
	uint32_t v = 0;

	if (s[0] != SUPPRESS_KEY_TAG ||
	    strnlen(s, SUPPRESS_KEY_MAX) != SUPPRESS_KEY_LEN)
		return false;
	for (int i = 1; i <= 8; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = v * 16 + (uint32_t)(c - '0');
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (uint32_t)(c - 'A' + 10);
		else
			return false;
	}
	for (int i = 9; i < SUPPRESS_KEY_LEN; i++)
		if (!strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", s[i]) ||
		    s[i] == '\0')
			return false;
	*shard = v;
	return true;
}

void
suppress_key_prefix(uint32_t shard, char out[10])
{
	snprintf(out, 10, "%c%08X", SUPPRESS_KEY_TAG, (unsigned)shard);
}

/* Two 64-bit hashes of the key's digest characters (uniform already:
 * they are SHA-256), one of each half, combined as h1 + i * h2 (Kirsch and Mitzenmacher). */
void
suppress_filter_pos(const char *key, uint32_t log2,
		    uint32_t pos[SUPPRESS_FILTER_K])
{
	uint64_t h1 = shard_hash(key + 9, SUPPRESS_HASH_CHARS / 2);
	uint64_t h2 = shard_hash(key + 9 + SUPPRESS_HASH_CHARS / 2,
				 SUPPRESS_HASH_CHARS / 2) | 1;
	uint64_t mask = (UINT64_C(1) << log2) - 1;

	for (uint32_t i = 0; i < SUPPRESS_FILTER_K; i++)
		pos[i] = (uint32_t)((h1 + i * h2) & mask);
}

bool
suppress_filter_has(const uint8_t *bits, uint32_t log2, const char *key)
{
	uint32_t pos[SUPPRESS_FILTER_K];

	suppress_filter_pos(key, log2, pos);
	for (uint32_t i = 0; i < SUPPRESS_FILTER_K; i++)
		if (!(bits[pos[i] >> 3] & (1u << (pos[i] & 7))))
			return false;
	return true;
}
