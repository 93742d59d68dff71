/* DKIM keys (see dkim_key.h): PEM in and out, generation, the DNS record,
 * and the one signing operation. Leaves canonicalization and the
 * DKIM-Signature header to lib/dkim.c. The key file is read whole (up to
 * DKIM_KEY_FILE_MAX) so that OpenSSL never reads an unbounded file, and
 * an encrypted key fails instead of prompting on a terminal. */
#include "lib/dkim_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/xmalloc.h"

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
};

/* PEM passphrase callback: there is none; never prompt. */
static int
dkim_key_no_pass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Read the whole file, up to DKIM_KEY_FILE_MAX. */
static int
dkim_key_read_file(const char *path, char **out, size_t *len, char *err,
		   size_t errlen)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)DKIM_KEY_FILE_MAX) {
		snprintf(err, errlen,
			 "%s: not a regular file of at most %u "
			 "bytes",
			 path, DKIM_KEY_FILE_MAX);
		goto fail;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", path,
				 n < 0 ? strerror(errno) : "short read");
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	data[got] = '\0';
	*out = data;
	*len = got;
	return 0;
fail:
	free(data);
	close(fd);
	return -1;
}

/* Check the key type and size; wrap it. Takes pkey. */
static int
dkim_key_wrap(EVP_PKEY *pkey, const char *path, struct dkim_key **out,
	      char *err, size_t errlen)
{
	struct dkim_key *k;
	enum dkim_alg alg;

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		int bits = EVP_PKEY_get_bits(pkey);

		if (bits < DKIM_RSA_BITS_MIN) {
			snprintf(err, errlen,
				 "%s: RSA key of %d bits; DKIM "
				 "keys need at least %d",
				 path, bits, DKIM_RSA_BITS_MIN);
			EVP_PKEY_free(pkey);
			return -1;
		}
		alg = DKIM_ALG_RSA_SHA256;
	} else if (EVP_PKEY_is_a(pkey, "ED25519")) {
		alg = DKIM_ALG_ED25519_SHA256;
	} else {
		snprintf(err, errlen,
			 "%s: a %s key; DKIM needs RSA or "
			 "Ed25519",
			 path, EVP_PKEY_get0_type_name(pkey));
		EVP_PKEY_free(pkey);
		return -1;
	}
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->alg = alg;
	*out = k;
	return 0;
}

int
dkim_key_load(const char *path, struct dkim_key **out, char *err, size_t errlen)
{
	EVP_PKEY *pkey;
	BIO *bio;
	char *data;
	size_t len;

	err[0] = '\0';
	if (dkim_key_read_file(path, &data, &len, err, errlen) != 0)
		return -1;
	bio = BIO_new_mem_buf(data, (int)len);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, dkim_key_no_pass,
					     NULL) :
		     NULL;
	BIO_free(bio);
	OPENSSL_cleanse(data, len);
	free(data);
	if (pkey == NULL) {
		snprintf(err, errlen,
			 "%s: not an unencrypted PEM private key "
			 "(PKCS#8 or RSA)",
			 path);
		return -1;
	}
	return dkim_key_wrap(pkey, path, out, err, errlen);
}

int
dkim_key_generate(enum dkim_alg alg, unsigned bits, struct dkim_key **out)
{
	EVP_PKEY *pkey;
	char err[256];

	if (alg == DKIM_ALG_RSA_SHA256) {
		if (bits < DKIM_RSA_BITS_MIN || bits > DKIM_RSA_BITS_MAX)
			return -EINVAL;
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	} else {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
	if (pkey == NULL)
		return -EIO;
	return dkim_key_wrap(pkey, "(new key)", out, err, sizeof(err)) == 0 ?
		       0 :
		       -EIO;
}

/* The content of a memory BIO as a new string. */
static char *
dkim_key_bio_string(BIO *bio)
{
	char *mem, *s;
	long n = BIO_get_mem_data(bio, &mem);

	if (n < 0)
		return NULL;
	s = xmalloc((size_t)n + 1);
	memcpy(s, mem, (size_t)n);
	s[n] = '\0';
	return s;
}

char *
dkim_key_private_pem(const struct dkim_key *k)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *s = NULL;

	if (bio == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) ==
	    1)
		s = dkim_key_bio_string(bio);
	BIO_free(bio);
	return s;
}

char *
dkim_key_dns_record(const struct dkim_key *k)
{
	unsigned char raw[32], *der = NULL;
	const unsigned char *pub;
	size_t publen = sizeof(raw);
	char *b64, *rec;
	int n;

	if (k->alg == DKIM_ALG_ED25519_SHA256) {
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &publen) != 1)
			return NULL;
		pub = raw;
	} else {
		n = i2d_PUBKEY(k->pkey, &der);
		if (n <= 0)
			return NULL;
		pub = der;
		publen = (size_t)n;
	}
	b64 = xmalloc(4 * ((publen + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, pub, (int)publen);
	OPENSSL_free(der);
	n = snprintf(NULL, 0, "v=DKIM1; k=%s; p=%s",
		     k->alg == DKIM_ALG_RSA_SHA256 ? "rsa" : "ed25519", b64);
	rec = xmalloc((size_t)n + 1);
	snprintf(rec, (size_t)n + 1, "v=DKIM1; k=%s; p=%s",
		 k->alg == DKIM_ALG_RSA_SHA256 ? "rsa" : "ed25519", b64);
	free(b64);
	return rec;
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

unsigned
dkim_key_bits(const struct dkim_key *k)
{
	return (unsigned)EVP_PKEY_get_bits(k->pkey);
}

const char *
dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

int
dkim_key_sign_digest(const struct dkim_key *k, const unsigned char *dg,
		     size_t dglen, unsigned char *sig, size_t *siglen)
{
	size_t need = (size_t)EVP_PKEY_get_size(k->pkey);
	int rc = -EIO;

	if (*siglen < need)
		return -ENOBUFS;
	if (k->alg == DKIM_ALG_ED25519_SHA256) {
		/* PureEdDSA over the digest: no md in DigestSign */
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		if (md &&
		    EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
		    EVP_DigestSign(md, sig, siglen, dg, dglen) == 1)
			rc = 0;
		EVP_MD_CTX_free(md);
	} else {
		/* RSASSA-PKCS1-v1_5 with the digest already made */
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k->pkey, NULL);

		if (pc && EVP_PKEY_sign_init(pc) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		    EVP_PKEY_sign(pc, sig, siglen, dg, dglen) == 1)
			rc = 0;
		EVP_PKEY_CTX_free(pc);
	}
	return rc;
}

void *
dkim_key_pkey(const struct dkim_key *k)
{
	return k->pkey;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}
