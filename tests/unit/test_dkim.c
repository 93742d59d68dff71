/* Check suite for lib/dkim.c and lib/dkim_key.c: the canonicalization
 * vectors of RFC 6376 3.4 (the 3.4.5 example, empty bodies, trailing
 * empty lines, WSP, folded fields), the From domain, the fields chosen to
 * sign, keys that load or are refused, and signatures checked by an
 * independent verifier below that uses OpenSSL EVP with the public key
 * taken from the DNS record we print. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "lib/buf.h"
#include "lib/dkim.h"
#include "lib/dkim_key.h"
#include "tests/unit/check_helpers.h"

static void
collect(void *arg, const void *p, size_t n)
{
	ck_assert_int_eq(buf_append(arg, p, n), 0);
}

static void
assert_body(enum dkim_canon c, const char *in, const char *want)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	dkim_canon_body(c, in, strlen(in), collect, &b);
	ck_assert_uint_eq(b.len, strlen(want));
	ck_assert_mem_eq(b.data, want, b.len);
	buf_free(&b);
}

/* ---- canonicalization vectors -------------------------------------- */

/* RFC 6376 3.4 as data: what, body or header, canonicalization, in, out */
static const struct {
	const char *what;
	bool is_body;
	enum dkim_canon c;
	const char *in, *want;
} canon_cases[] = {
	/* RFC 6376 3.4.5 */
	{ "3.4.5 A", false, DKIM_CANON_RELAXED, "A: X\r\n", "a:X\r\n" },
	{ "3.4.5 B", false, DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  \r\n",
	  "b:Y Z\r\n" },
	{ "3.4.5 B simple", false, DKIM_CANON_SIMPLE, "B : Y\t\r\n\tZ  \r\n",
	  "B : Y\t\r\n\tZ  \r\n" },
	{ "3.4.5 body", true, DKIM_CANON_RELAXED,
	  " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
	{ "3.4.5 body simple", true, DKIM_CANON_SIMPLE,
	  " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n" },
	/* 3.4.3: simple of nothing is one CRLF; 3.4.4: relaxed is nothing */
	{ "empty simple", true, DKIM_CANON_SIMPLE, "", "\r\n" },
	{ "empty relaxed", true, DKIM_CANON_RELAXED, "", "" },
	{ "empty lines simple", true, DKIM_CANON_SIMPLE, "\r\n\r\n", "\r\n" },
	{ "empty lines relaxed", true, DKIM_CANON_RELAXED, "\r\n\r\n", "" },
	{ "WSP lines relaxed", true, DKIM_CANON_RELAXED, " \t\r\n\t\r\n", "" },
	/* trailing empty lines go; inside ones stay */
	{ "trailing simple", true, DKIM_CANON_SIMPLE, "a\r\n\r\n\r\n\r\n",
	  "a\r\n" },
	{ "trailing relaxed", true, DKIM_CANON_RELAXED, "a\r\n\r\n\r\n\r\n",
	  "a\r\n" },
	/* a line of WSP is empty only once relaxed removes the WSP */
	{ "WSP line simple", true, DKIM_CANON_SIMPLE, "a\r\n \r\n\t\r\n",
	  "a\r\n \r\n\t\r\n" },
	{ "WSP line relaxed", true, DKIM_CANON_RELAXED, "a\r\n \r\n\t\r\n",
	  "a\r\n" },
	{ "inner empty lines", true, DKIM_CANON_RELAXED,
	  "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n" },
	/* a last line without CRLF gets one */
	{ "no last CRLF simple", true, DKIM_CANON_SIMPLE, "a\r\nb",
	  "a\r\nb\r\n" },
	{ "no last CRLF relaxed", true, DKIM_CANON_RELAXED, "a\r\nb  ",
	  "a\r\nb\r\n" },
	/* WSP runs become one SP, WSP at line ends goes */
	{ "WSP run", true, DKIM_CANON_RELAXED, "a  \t b\t\r\n", "a b\r\n" },
	{ "leading SP", true, DKIM_CANON_RELAXED, "  a\r\n", " a\r\n" },
	{ "leading HTAB", true, DKIM_CANON_RELAXED, "\ta \t\r\n", " a\r\n" },
	/* only SP and HTAB are WSP; a bare CR or LF is a byte of its line */
	{ "bare CR LF", true, DKIM_CANON_RELAXED, "a\rb \nc\r\n",
	  "a\rb \nc\r\n" },
	/* 8-bit octets are hashed as they are */
	{ "8-bit relaxed", true, DKIM_CANON_RELAXED, "caf\xc3\xa9  \xff\r\n",
	  "caf\xc3\xa9 \xff\r\n" },
	{ "8-bit simple", true, DKIM_CANON_SIMPLE, "caf\xc3\xa9  \xff\r\n",
	  "caf\xc3\xa9  \xff\r\n" },
	/* relaxed header fields: unfolded, WSP reduced, name lower case */
	{ "folded", false, DKIM_CANON_RELAXED, "Subject: a\r\n  b\r\n\tc\r\n",
	  "subject:a b c\r\n" },
	{ "folded first", false, DKIM_CANON_RELAXED,
	  "SUBJECT:\r\n hello   world \r\n", "subject:hello world\r\n" },
	{ "empty value", false, DKIM_CANON_RELAXED, "X-Empty:   \r\n",
	  "x-empty:\r\n" },
	{ "WSP before colon", false, DKIM_CANON_RELAXED, "To\t :  a@b\r\n",
	  "to:a@b\r\n" },
	{ "folded simple", false, DKIM_CANON_SIMPLE, "Subject: a\r\n  b\r\n",
	  "Subject: a\r\n  b\r\n" },
};

START_TEST(test_dkim_canonicalization_table)
{
	struct buf b;
	const char *want = canon_cases[_i].want;

	buf_init(&b, 1 << 20);
	(canon_cases[_i].is_body ? dkim_canon_body : dkim_canon_header)(
		canon_cases[_i].c, canon_cases[_i].in,
		strlen(canon_cases[_i].in), collect, &b);
	ck_assert_msg(b.len == strlen(want) &&
			      (b.len == 0 || memcmp(b.data, want, b.len) == 0),
		      "case \"%s\": %zu octets, not the expected %zu",
		      canon_cases[_i].what, b.len, strlen(want));
	buf_free(&b);
}
END_TEST

START_TEST(test_dkim_long_body_crosses_stage)
{
	/* longer than the 4096-octet gathering buffer, with WSP runs */
	struct buf in, want;

	buf_init(&in, 1 << 20);
	buf_init(&want, 1 << 20);
	for (int i = 0; i < 3000; i++) {
		buf_printf(&in, "word%d   \t word  \r\n", i);
		buf_printf(&want, "word%d word\r\n", i);
	}
	buf_append(&in, "\r\n\r\n", 4);
	assert_body(DKIM_CANON_RELAXED, in.data, want.data);
	buf_free(&in);
	buf_free(&want);
}
END_TEST

/* ---- From ------------------------------------------------------------ */

static const struct {
	const char *header;
	int rc;
	const char *domain;
} from_cases[] = {
	{ "From: a@Example.COM\r\n", 0, "example.com" },
	{ "From: \"Doe, John\" <j@d.example>\r\n", 0, "d.example" },
	{ "From: j@d.example (Joe <x@y.example>, Jr)\r\n", 0, "d.example" },
	{ "From: Joe\r\n <j@folded.example>\r\n", 0, "folded.example" },
	{ "fROM:<j@d.example.>\r\n", 0, "d.example" },
	{ "From: \"a@b.example\" <c@d.example>\r\n", 0, "d.example" },
	{ "From: a@b.example, c@d.example\r\n", -EMLINK, NULL },
	{ "From: a@b.example\r\nFrom: c@d.example\r\n", -EMLINK, NULL },
	{ "To: a@b.example\r\n", -ENOENT, NULL },
	{ "From: list: a@b.example;\r\n", -EINVAL, NULL },
	{ "From: <a@[192.0.2.1]>\r\n", -EINVAL, NULL },
	{ "From: nobody\r\n", -EINVAL, NULL },
	{ "From: <a@b.example\r\n", -EINVAL, NULL },
	{ "From: \"unclosed <a@b.example>\r\n", -EINVAL, NULL },
};

START_TEST(test_dkim_from_domain)
{
	char msg[256], dom[DKIM_DOMAIN_MAX + 1];
	struct dkim_msg *m;

	snprintf(msg, sizeof(msg), "%sSubject: x\r\n\r\nbody\r\n",
		 from_cases[_i].header);
	ck_assert_int_eq(dkim_msg_parse(msg, strlen(msg), &m), 0);
	ck_assert_int_eq(dkim_msg_from_domain(m, dom, sizeof(dom)),
			 from_cases[_i].rc);
	if (from_cases[_i].rc == 0)
		ck_assert_str_eq(dom, from_cases[_i].domain);
	dkim_msg_free(m);
}
END_TEST

START_TEST(test_dkim_too_many_fields_is_e2big)
{
	struct buf b;
	struct dkim_msg *m;

	buf_init(&b, 1 << 20);
	for (int i = 0; i <= DKIM_FIELDS_MAX; i++)
		buf_printf(&b, "X-%d: y\r\n", i);
	buf_append(&b, "\r\nbody\r\n", 8);
	ck_assert_int_eq(dkim_msg_parse(b.data, b.len, &m), -E2BIG);
	buf_free(&b);
}
END_TEST

/* ---- an independent verifier --------------------------------------- */

/* The value of tag in the unfolded field, whitespace removed; into out. */
static void
tag_value(const char *field, const char *tag, char *out, size_t outlen)
{
	const char *p = field;
	size_t tl = strlen(tag), n = 0;

	for (;;) {
		p = strstr(p, tag);
		ck_assert_ptr_nonnull(p);
		if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == ';') &&
		    p[tl] == '=')
			break;
		p += tl;
	}
	for (p += tl + 1; *p && *p != ';'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			ck_assert_uint_lt(n + 1, outlen);
			out[n++] = *p;
		}
	out[n] = '\0';
}

static size_t
unb64(const char *in, unsigned char *out)
{
	size_t n = strlen(in);
	int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);

	ck_assert_int_ge(len, 0);
	while (n > 0 && in[n - 1] == '=') {
		n--;
		len--;
	}
	return (size_t)len;
}

/* The public key from the TXT record, as a verifier would have it. */
static EVP_PKEY *
public_key(const struct dkim_key *k)
{
	char *rec = dkim_key_dns_record(k);
	unsigned char raw[2048];
	const unsigned char *p = raw;
	const char *b64 = strstr(rec, "p=");
	EVP_PKEY *pub;
	size_t n;

	ck_assert_ptr_nonnull(b64);
	n = unb64(b64 + 2, raw);
	if (strstr(rec, "k=ed25519"))
		pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
						  n);
	else
		pub = d2i_PUBKEY(NULL, &p, (long)n);
	ck_assert_ptr_nonnull(pub);
	free(rec);
	return pub;
}

/* Field i of msg's header (0-based), by a parser of its own. */
static int
field_at(const char *msg, int idx, const char **start, size_t *len)
{
	const char *p = msg;
	int i = -1;

	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *e = strstr(p, "\r\n");

		ck_assert_ptr_nonnull(e);
		if (*p != ' ' && *p != '\t')
			i++;
		if (i == idx) {
			*start = p;
			while (e[2] == ' ' || e[2] == '\t')
				e = strstr(e + 2, "\r\n");
			*len = (size_t)(e + 2 - p);
			return 0;
		}
		p = e + 2;
	}
	return -1;
}

/* RFC 6376 6.1.3 for one signature sig (the field with its CRLF) over
 * msg: body hash, then the header hash checked with the public key.
 * Returns 1 when it verifies. */
static int
verify(const struct dkim_key *k, const char *sig, const char *msg)
{
	char h[4096], bh[128], b[2048], c[64];
	unsigned char sigraw[1024], bhraw[64], dg[32], mine[32];
	enum dkim_canon hc, bc;
	bool used[64] = { false };
	struct buf data, body;
	EVP_PKEY *pub = public_key(k);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const char *bpos;
	size_t siglen;
	int ok;

	tag_value(sig, "h", h, sizeof(h));
	tag_value(sig, "bh", bh, sizeof(bh));
	tag_value(sig, "b", b, sizeof(b));
	tag_value(sig, "c", c, sizeof(c));
	hc = strncmp(c, "relaxed", 7) == 0 ? DKIM_CANON_RELAXED :
					     DKIM_CANON_SIMPLE;
	bc = strstr(c, "/relaxed") ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	buf_init(&data, 1 << 20);
	buf_init(&body, 1 << 24);
	/* body hash */
	dkim_canon_body(bc, strstr(msg, "\r\n\r\n") + 4,
			strlen(strstr(msg, "\r\n\r\n") + 4), collect, &body);
	SHA256((unsigned char *)body.data, body.len, mine);
	ck_assert_uint_eq(unb64(bh, bhraw), 32);
	if (memcmp(mine, bhraw, 32) != 0) {
		ok = 0;
		goto out;
	}
	/* header fields named by h=, the last unused one first */
	for (char *save, *name = strtok_r(h, ":", &save); name;
	     name = strtok_r(NULL, ":", &save)) {
		const char *f;
		size_t flen;
		int last = -1;

		for (int i = 0; field_at(msg, i, &f, &flen) == 0; i++)
			if (!used[i] &&
			    strncasecmp(f, name, strlen(name)) == 0 &&
			    f[strlen(name)] == ':')
				last = i;
		if (last < 0)
			continue;
		used[last] = true;
		field_at(msg, last, &f, &flen);
		dkim_canon_header(hc, f, flen, collect, &data);
	}
	/* the signature field with b= empty, no CRLF */
	bpos = strstr(sig, "; b=");
	if (bpos == NULL)
		bpos = strstr(sig, "\tb=");
	else
		bpos += 1;
	ck_assert_ptr_nonnull(bpos);
	{
		size_t upto = (size_t)(bpos - sig) + 3, before = data.len;

		dkim_canon_header(hc, sig, upto, collect, &data);
		data.len -= 2;
		ck_assert_uint_gt(data.len, before);
	}
	siglen = unb64(b, sigraw);
	if (EVP_PKEY_is_a(pub, "ED25519")) {
		SHA256((unsigned char *)data.data, data.len, dg);
		ck_assert_int_eq(
			EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub), 1);
		ok = EVP_DigestVerify(md, sigraw, siglen, dg, 32) == 1;
	} else {
		ck_assert_int_eq(
			EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub),
			1);
		ok = EVP_DigestVerify(md, sigraw, siglen,
				      (unsigned char *)data.data,
				      data.len) == 1;
	}
out:
	buf_free(&data);
	buf_free(&body);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	return ok;
}

/* ---- signing --------------------------------------------------------- */

static const char test_msg[] =
	"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	"From: Alice <alice@example.com>\r\n"
	"To: bob@example.org\r\n"
	"To: carol@example.org\r\n"
	"Subject: a folded\r\n"
	"   subject line  \r\n"
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	"Message-ID: <1@example.com>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"List-Unsubscribe: <https://example.com/u>\r\n"
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	"\r\n"
	"Hello  there,\t\r\n"
	"caf\xc3\xa9\r\n"
	"\r\n"
	"\r\n";

static struct dkim_key *
new_key(enum dkim_alg alg)
{
	struct dkim_key *k = NULL;

	ck_assert_int_eq(dkim_key_generate(alg, 2048, &k), 0);
	return k;
}

static char *
sign(struct dkim_key *k, enum dkim_canon hc, enum dkim_canon bc,
     const char *msg, uint32_t expire)
{
	struct dkim_sign_req req = { "example.com", "s1",	hc,    bc,
				     NULL,	    1700000000, expire };
	struct dkim_msg *m;
	struct buf out;

	buf_init(&out, 1 << 16);
	ck_assert_int_eq(dkim_msg_parse(msg, strlen(msg), &m), 0);
	ck_assert_int_eq(dkim_sign(m, k, &req, &out), 0);
	dkim_msg_free(m);
	return out.data;
}

START_TEST(test_dkim_signature_verifies)
{
	enum dkim_alg alg =
		_i / 4 ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256;
	enum dkim_canon hc = (_i / 2) % 2, bc = _i % 2;
	struct dkim_key *k = new_key(alg);
	char *sig = sign(k, hc, bc, test_msg, 0);
	char *bad = strdup(test_msg);

	ck_assert_int_eq(verify(k, sig, test_msg), 1);
	/* one changed octet in the body, then in a signed field */
	*strstr(bad, "there") = 'T';
	ck_assert_int_eq(verify(k, sig, bad), 0);
	strcpy(bad, test_msg);
	*strstr(bad, "bob") = 'B';
	ck_assert_int_eq(verify(k, sig, bad), 0);
	/* an unsigned field may change */
	strcpy(bad, test_msg);
	*strstr(bad, "from x") = 'F';
	ck_assert_int_eq(verify(k, sig, bad), 1);
	free(bad);
	free(sig);
	dkim_key_free(k);
}
END_TEST

START_TEST(test_dkim_header_tags)
{
	struct dkim_key *k = new_key(DKIM_ALG_ED25519_SHA256);
	char *sig = sign(k, DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE,
			 test_msg, 3600);
	char h[1024], v[256];

	ck_assert_int_eq(strncmp(sig, "DKIM-Signature: v=1;", 20), 0);
	tag_value(sig, "h", h, sizeof(h));
	/* both To fields, From once more than it occurs, no Received */
	ck_assert_str_eq(h,
			 "from:from:to:to:subject:date:message-id:"
			 "mime-version:content-type:"
			 "content-transfer-encoding:list-unsubscribe:"
			 "list-unsubscribe-post");
	tag_value(sig, "a", v, sizeof(v));
	ck_assert_str_eq(v, "ed25519-sha256");
	tag_value(sig, "c", v, sizeof(v));
	ck_assert_str_eq(v, "relaxed/simple");
	tag_value(sig, "t", v, sizeof(v));
	ck_assert_str_eq(v, "1700000000");
	tag_value(sig, "x", v, sizeof(v));
	ck_assert_str_eq(v, "1700003600");
	tag_value(sig, "d", v, sizeof(v));
	ck_assert_str_eq(v, "example.com");
	tag_value(sig, "s", v, sizeof(v));
	ck_assert_str_eq(v, "s1");
	/* lines of at most 78, continued with a tab, one CRLF at the end */
	for (const char *p = sig, *e; (e = strstr(p, "\r\n"));
	     p = e + 2) {
		ck_assert_uint_le((size_t)(e - p), DKIM_LINE_MAX);
		if (p != sig)
			ck_assert_int_eq(*p, '\t');
	}
	ck_assert_str_eq(sig + strlen(sig) - 2, "\r\n");
	free(sig);
	dkim_key_free(k);
}
END_TEST

START_TEST(test_dkim_empty_body_hashes)
{
	/* SHA-256 of "" and of "\r\n" (RFC 6376 3.4.3, 3.4.4) */
	static const char msg[] = "From: a@example.com\r\n\r\n";
	struct dkim_key *k = new_key(DKIM_ALG_ED25519_SHA256);
	char *rs =
		sign(k, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, msg, 0);
	char *ss =
		sign(k, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE, msg, 0);
	char bh[128];

	tag_value(rs, "bh", bh, sizeof(bh));
	ck_assert_str_eq(
		bh, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	tag_value(ss, "bh", bh, sizeof(bh));
	ck_assert_str_eq(
		bh, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	ck_assert_int_eq(verify(k, rs, msg), 1);
	ck_assert_int_eq(verify(k, ss, msg), 1);
	free(rs);
	free(ss);
	dkim_key_free(k);
}
END_TEST

START_TEST(test_dkim_configured_headers)
{
	static const char *const names[] = { "Subject", "FROM",
					     "subject", "X-None",
					     NULL };
	struct dkim_key *k = new_key(DKIM_ALG_ED25519_SHA256);
	struct dkim_sign_req req = { "example.com",
				     "s1",
				     DKIM_CANON_RELAXED,
				     DKIM_CANON_RELAXED,
				     names,
				     1,
				     0 };
	struct dkim_msg *m;
	struct buf out;
	char h[256];

	buf_init(&out, 1 << 16);
	ck_assert_int_eq(dkim_msg_parse(test_msg, strlen(test_msg), &m),
			 0);
	ck_assert_int_eq(dkim_sign(m, k, &req, &out), 0);
	tag_value(out.data, "h", h, sizeof(h));
	/* a name given twice counts once; a missing one is left out */
	ck_assert_str_eq(h, "subject:from:from");
	ck_assert_int_eq(verify(k, out.data, test_msg), 1);
	dkim_msg_free(m);
	buf_free(&out);
	dkim_key_free(k);
}
END_TEST

/* ---- keys ------------------------------------------------------------ */

static char key_dir[256];

static void
key_setup(void)
{
	check_mkdtemp(key_dir, sizeof(key_dir), "dkim");
}

static void
key_teardown(void)
{
	check_rmtree(key_dir);
}

static void
write_pkey(const char *path, EVP_PKEY *pk, bool traditional)
{
	BIO *bio = BIO_new_file(path, "w");

	ck_assert_ptr_nonnull(bio);
	if (traditional)
		ck_assert_int_eq(PEM_write_bio_PrivateKey_traditional(
					 bio, pk, NULL, NULL, 0, NULL, NULL),
				 1);
	else
		ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL,
							  0, NULL, NULL),
				 1);
	BIO_free(bio);
}

START_TEST(test_dkim_key_loads_pkcs8_and_traditional)
{
	struct dkim_key *k, *back;
	EVP_PKEY *pk;
	char path[300], err[512];
	char *pem, *rec1, *rec2;
	FILE *f;

	/* what dkim_key_private_pem() writes loads back, same public key */
	k = new_key(DKIM_ALG_RSA_SHA256);
	pem = dkim_key_private_pem(k);
	ck_assert_ptr_nonnull(strstr(pem, "BEGIN PRIVATE KEY"));
	snprintf(path, sizeof(path), "%s/k8.pem", key_dir);
	f = fopen(path, "w");
	fputs(pem, f);
	fclose(f);
	ck_assert_int_eq(dkim_key_load(path, &back, err, sizeof(err)),
			 0);
	rec1 = dkim_key_dns_record(k);
	rec2 = dkim_key_dns_record(back);
	ck_assert_str_eq(rec1, rec2);
	ck_assert_int_eq(strncmp(rec1, "v=DKIM1; k=rsa; p=", 18), 0);
	ck_assert_uint_eq(dkim_key_bits(back), 2048);
	free(rec1);
	free(rec2);
	free(pem);
	dkim_key_free(back);
	/* "BEGIN RSA PRIVATE KEY" */
	snprintf(path, sizeof(path), "%s/trad.pem", key_dir);
	write_pkey(path, dkim_key_pkey(k), true);
	ck_assert_int_eq(dkim_key_load(path, &back, err, sizeof(err)),
			 0);
	ck_assert_int_eq(dkim_key_alg(back), DKIM_ALG_RSA_SHA256);
	dkim_key_free(back);
	dkim_key_free(k);
	/* Ed25519 */
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	snprintf(path, sizeof(path), "%s/ed.pem", key_dir);
	write_pkey(path, pk, false);
	EVP_PKEY_free(pk);
	ck_assert_int_eq(dkim_key_load(path, &back, err, sizeof(err)),
			 0);
	ck_assert_int_eq(dkim_key_alg(back), DKIM_ALG_ED25519_SHA256);
	rec1 = dkim_key_dns_record(back);
	ck_assert_int_eq(strncmp(rec1, "v=DKIM1; k=ed25519; p=", 22),
			 0);
	ck_assert_uint_eq(strlen(rec1), 22 + 44);
	free(rec1);
	dkim_key_free(back);
}
END_TEST

START_TEST(test_dkim_key_refusals_name_the_file)
{
	struct dkim_key *k = NULL;
	EVP_PKEY *pk;
	char path[300], err[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/small.pem", key_dir);
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	write_pkey(path, pk, false);
	EVP_PKEY_free(pk);
	ck_assert_int_eq(dkim_key_load(path, &k, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "1024 bits"));

	snprintf(path, sizeof(path), "%s/ec.pem", key_dir);
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	write_pkey(path, pk, false);
	EVP_PKEY_free(pk);
	ck_assert_int_eq(dkim_key_load(path, &k, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "RSA or Ed25519"));

	snprintf(path, sizeof(path), "%s/junk.pem", key_dir);
	f = fopen(path, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64\n", f);
	fclose(f);
	ck_assert_int_eq(dkim_key_load(path, &k, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, path));

	snprintf(path, sizeof(path), "%s/missing.pem", key_dir);
	ck_assert_int_eq(dkim_key_load(path, &k, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	ck_assert_ptr_null(k);

	ck_assert_int_eq(
		dkim_key_generate(DKIM_ALG_RSA_SHA256, 1024, &k),
		-EINVAL);
}
END_TEST

START_TEST(test_dkim_names)
{
	ck_assert(dkim_is_dns_name("example.com"));
	ck_assert(dkim_is_dns_name("s_2026-a"));
	ck_assert(!dkim_is_dns_name(""));
	ck_assert(!dkim_is_dns_name("a..b"));
	ck_assert(!dkim_is_dns_name("a;b"));
	ck_assert(!dkim_is_dns_name(".a"));
	ck_assert(dkim_is_header_name("List-Unsubscribe-Post"));
	ck_assert(!dkim_is_header_name("Bad:Name"));
	ck_assert(!dkim_is_header_name("Bad Name"));
}
END_TEST

static Suite *
dkim_suite(void)
{
	Suite *s = suite_create("dkim");
	TCase *tc = tcase_create("canon");

	tcase_add_loop_test(tc, test_dkim_canonicalization_table, 0,
			    sizeof(canon_cases) / sizeof(*canon_cases));
	tcase_add_test(tc, test_dkim_long_body_crosses_stage);
	tcase_add_loop_test(tc, test_dkim_from_domain, 0,
			    sizeof(from_cases) / sizeof(*from_cases));
	tcase_add_test(tc, test_dkim_too_many_fields_is_e2big);
	tcase_add_test(tc, test_dkim_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("sign");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_dkim_signature_verifies, 0, 8);
	tcase_add_test(tc, test_dkim_header_tags);
	tcase_add_test(tc, test_dkim_empty_body_hashes);
	tcase_add_test(tc, test_dkim_configured_headers);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, key_setup, key_teardown);
	tcase_add_test(tc, test_dkim_key_loads_pkcs8_and_traditional);
	tcase_add_test(tc, test_dkim_key_refusals_name_the_file);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(dkim_suite)
