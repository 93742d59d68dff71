/* DKIM signing keys (RFC 6376 3.3, RFC 8463): loading a private key from
 * a PEM file, making a new one, writing it, and the public key as the DNS
 * TXT record value ("v=DKIM1; k=rsa; p=..."). The algorithm follows the key
 * type: RSA (2048 bits and up) signs rsa-sha256, Ed25519 signs
 * ed25519-sha256. Uses OpenSSL 3 EVP. The key file is trusted config, but
 * its size and content are still checked. */
#ifndef SHOAL_DKIM_KEY_H
#define SHOAL_DKIM_KEY_H

#include <stddef.h>

#define DKIM_RSA_BITS_MIN 2048 /* RFC 8301 3.2 asks for 1024; we ask more */
#define DKIM_RSA_BITS_MAX 8192 /* DNS TXT records of bigger keys get silly */
#define DKIM_KEY_FILE_MAX (64u * 1024) /* a PEM key is a few KB */

enum dkim_alg {
	DKIM_ALG_RSA_SHA256 = 0,     /* "rsa-sha256" */
	DKIM_ALG_ED25519_SHA256 = 1, /* "ed25519-sha256" (RFC 8463) */
};

struct dkim_key;

/* Read a private key (PEM: PKCS#8, or traditional RSA) from path. Returns
 * 0 and sets *out (free with dkim_key_free()), or -1 with a message naming
 * the file in err (always NUL-terminated): unreadable, not a key,
 * encrypted, RSA outside DKIM_RSA_BITS_MIN..DKIM_RSA_BITS_MAX, or another
 * key type. */
int dkim_key_load(const char *path, struct dkim_key **out, char *err,
		  size_t errlen);

/* Make a new key: RSA of bits (DKIM_RSA_BITS_MIN..DKIM_RSA_BITS_MAX) or
 * Ed25519 (bits ignored). Returns 0 and sets *out, -EINVAL for bad bits,
 * -EIO when OpenSSL fails. */
int dkim_key_generate(enum dkim_alg alg, unsigned bits, struct dkim_key **out);

/* The private key as PKCS#8 PEM text. Returns a NUL-terminated string the
 * caller frees (clear it first: it is secret), or NULL on failure. */
char *dkim_key_private_pem(const struct dkim_key *k);

/* The TXT record value to publish at SELECTOR._domainkey.DOMAIN:
 * "v=DKIM1; k=rsa; p=BASE64" (p = DER SubjectPublicKeyInfo) or
 * "v=DKIM1; k=ed25519; p=BASE64" (p = the raw 32-byte key, RFC 8463 4).
 * Caller frees; NULL on failure. */
char *dkim_key_dns_record(const struct dkim_key *k);

enum dkim_alg dkim_key_alg(const struct dkim_key *k);

/* RSA modulus bits, or 256 for Ed25519. */
unsigned dkim_key_bits(const struct dkim_key *k);

/* "rsa-sha256" or "ed25519-sha256"; static. */
const char *dkim_alg_name(enum dkim_alg alg);

/* Sign the SHA-256 digest of the canonical header stream (RFC 6376 3.7;
 * RFC 8463 3: Ed25519 signs the digest itself). Writes the signature to
 * sig (room for siglen bytes, which becomes the length used). Returns 0,
 * -ENOBUFS if sig is too small, -EIO when OpenSSL fails. */
int dkim_key_sign_digest(const struct dkim_key *k, const unsigned char *dg,
			 size_t dglen, unsigned char *sig, size_t *siglen);

/* The OpenSSL key (EVP_PKEY *), borrowed for as long as k lives; for
 * tests that verify with the public half. */
void *dkim_key_pkey(const struct dkim_key *k);

/* dkim_key_free(NULL) does nothing. */
void dkim_key_free(struct dkim_key *k);

#endif
