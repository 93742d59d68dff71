/* Check suite for the SMTP client's certificate checks
 * (node/delivery/smtpc_tls.c): VERIFY (MTA-STS, RFC 8461 4.2) and DANE
 * (RFC 7672) against the scripted server of smtpc_script_helper.h, with a
 * test CA, a second CA nobody trusts and leaf certificates made here at
 * test time. Each failure is checked for its phase, its reply, its RFC
 * 8460 result-type and for what went over the wire: nothing after the
 * handshake but QUIT, and nothing at all in plain text past EHLO. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "node/delivery/smtpc.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/smtpc_script_helper.h"
#include "tests/unit/tls_helper.h"

#define MX "mx1.dest.test"
#define HOUR 3600L

/* the test PKI: ca is in the client's CA file, rogue is not */
static struct {
	EVP_PKEY *ca_key, *rogue_key, *leaf_key;
	X509 *ca, *rogue;
	char ca_path[64];
} pki;

static void
cert_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	ck_assert_ptr_nonnull(ext);
	ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, valid from now + from_s to now + to_s,
 * signed by issuer (NULL: self-signed); a CA, or a leaf for the DNS
 * names of san ("DNS:a,DNS:b"). */
static X509 *
cert_new(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer,
	 EVP_PKEY *issuer_key, long from_s, long to_s, bool is_ca)
{
	static long serial = 1;
	X509 *x = X509_new();

	ck_assert_ptr_nonnull(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from_s);
	X509_gmtime_adj(X509_getm_notAfter(x), to_s);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	if (is_ca) {
		cert_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		cert_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
		cert_ext(x, x, NID_subject_key_identifier, "hash");
	} else {
		cert_ext(x, issuer ? issuer : x, NID_basic_constraints,
			 "critical,CA:FALSE");
		if (san)
			cert_ext(x, issuer ? issuer : x, NID_subject_alt_name,
				 san);
	}
	ck_assert_int_gt(
		X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
	return x;
}

/* The server's context: leaf (for the leaf key) and, when sent, its
 * issuer as the chain (RFC 7672 3.2.2: DANE-TA needs it on the wire). */
static SSL_CTX *
server_ctx(X509 *leaf, X509 *chain)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_use_certificate(ctx, leaf), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(ctx, pki.leaf_key), 1);
	if (chain)
		ck_assert_int_eq(SSL_CTX_add1_chain_cert(ctx, chain), 1);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	X509_free(leaf);
	return ctx;
}

/* The server presents a leaf for san issued by ca (or rogue). */
static void
serve_leaf(const char *san, bool by_rogue, long from_s, long to_s)
{
	X509 *iss = by_rogue ? pki.rogue : pki.ca;
	EVP_PKEY *ikey = by_rogue ? pki.rogue_key : pki.ca_key;

	srv.ctx = server_ctx(cert_new("leaf", san, pki.leaf_key, iss, ikey,
				      from_s, to_s, false),
			     iss);
}

/* SHA-256 of the leaf key's SubjectPublicKeyInfo (selector 1) or of a
 * whole certificate (selector 0), into md[32]. */
static void
spki_sha256(EVP_PKEY *key, unsigned char *md)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	unsigned int len = 0;

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(
		EVP_Digest(der, (size_t)n, md, &len, EVP_sha256(), NULL), 1);
	ck_assert_uint_eq(len, 32);
	OPENSSL_free(der);
}

static void
cert_sha256(X509 *x, unsigned char *md)
{
	unsigned int len = 0;

	ck_assert_int_eq(X509_digest(x, EVP_sha256(), md, &len), 1);
	ck_assert_uint_eq(len, 32);
}

static void
tls_setup(void)
{
	FILE *f;
	int fd;

	setup();
	pki.ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pki.rogue_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pki.leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert(pki.ca_key && pki.rogue_key && pki.leaf_key);
	pki.ca = cert_new("Test CA", NULL, pki.ca_key, NULL, NULL, -HOUR,
			  24 * HOUR, true);
	pki.rogue = cert_new("Rogue CA", NULL, pki.rogue_key, NULL, NULL, -HOUR,
			     24 * HOUR, true);
	/* the XXXXXX is mkstemp()'s template */
	snprintf(pki.ca_path, sizeof(pki.ca_path),
		 "/tmp/shoal-test-smtpc-ca-XXXXXX");
	fd = mkstemp(pki.ca_path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, pki.ca), 1);
	fclose(f);
	fx.client_ctx = smtpc_ssl_ctx_new(pki.ca_path);
	ck_assert_ptr_nonnull(fx.client_ctx);
}

static void
tls_teardown(void)
{
	teardown();
	unlink(pki.ca_path);
	X509_free(pki.ca);
	X509_free(pki.rogue);
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.rogue_key);
	EVP_PKEY_free(pki.leaf_key);
	memset(&pki, 0, sizeof(pki));
}

/* A session over TLS to MX in mode tls with the TLSA records t[n]. */
static void
tls_session(const struct step *script, enum smtpc_tls tls, const char *policy,
	    const struct smtpc_tlsa *t, size_t n)
{
	struct smtpc_opts o = {
		.mx_name = MX,
		.tls = tls,
		.ssl_ctx = fx.client_ctx,
		.policy = policy,
		.tlsa = t,
		.n_tlsa = n,
		.timeout_scale_pct = 100,
	};

	session_opts(script, o);
}

/* The server upgrades, then the client says EHLO over TLS (accepted) or
 * only QUIT (refused the certificate). */
static const struct step accepted[] = {
	GREET,
	SEND("250-" MX "\r\n250 STARTTLS\r\n"),
	EXPECT("STARTTLS"),
	SEND("220 2.0.0 go ahead\r\n"),
	TLS_ACCEPT,
	EXPECT("EHLO client.test"),
	SEND("250 " MX "\r\n"),
	QUIT_END,
};

static const struct step refused[] = {
	GREET,
	SEND("250-" MX "\r\n250 STARTTLS\r\n"),
	EXPECT("STARTTLS"),
	SEND("220 2.0.0 go ahead\r\n"),
	TLS_ACCEPT,
	QUIT_END,
};

static void
assert_ready_ok(bool verified, const char *failure)
{
	ck_assert_msg(fx.ready_ok, "ready(false): phase %d \"%s\"",
		      fx.ready_phase, fx.ready_reply.text);
	ck_assert(fx.info.tls_active);
	ck_assert(fx.info.tls_verified == verified);
	ck_assert_str_eq(fx.info.tls_failure, failure);
}

/* A refused certificate: ready(false) at TLS with text and result-type;
 * after the handshake the client said nothing but QUIT. */
static void
assert_refused(const char *failure, const char *text)
{
	const struct smtpc_info *in;

	ck_assert_msg(!fx.ready_ok, "ready(true) with %s", fx.info.tls_version);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
	assert_reply(&fx.ready_reply, 0, "4.7.5", text);
	in = smtpc_info(fx.c);
	ck_assert(in->tls_active && !in->tls_verified);
	ck_assert_str_eq(in->tls_failure, failure);
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nSTARTTLS\r\nQUIT\r\n");
}

/* ---- VERIFY (MTA-STS) --------------------------------------------------- */

/* the name, and a wildcard for its whole leftmost label (RFC 6125 6.4.3) */
static const char *const good_names[] = { "DNS:" MX,
					  "DNS:other.test,DNS:*.dest.test" };

START_TEST(test_verify_accepts_a_trusted_certificate_for_the_name)
	{
		static const struct step script[] = {
			GREET,
			SEND("250-" MX "\r\n250 STARTTLS\r\n"),
			EXPECT("STARTTLS"),
			SEND("220 2.0.0 go ahead\r\n"),
			TLS_ACCEPT,
			EXPECT("EHLO client.test"),
			SEND("250-" MX "\r\n250 PIPELINING\r\n"),
			LINES(3),
			SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
			DATA,
			SEND("250 2.0.0 queued\r\n"),
			QUIT_END,
		};
		struct smtpc_msg m = msg(1, "hello\r\n");

		serve_leaf(good_names[_i], false, -HOUR, HOUR);
		tls_session(script, SMTPC_TLS_VERIFY, "MTA-STS", NULL, 0);
		assert_ready_ok(true, "");
		send_msg(&m);
		assert_reply(&fx.done[0].rcpt[0], 250, "2.0.0", "queued");
		finish();
		ck_assert_str_eq(srv.sni, MX);
	}
END_TEST

/* another name; a partial wildcard; a wildcard for two labels */
static const char *const bad_names[] = { "DNS:mx2.dest.test",
					 "DNS:mx*.dest.test", "DNS:*.test" };

START_TEST(test_verify_refuses_a_certificate_for_another_name)
	{
		serve_leaf(bad_names[_i], false, -HOUR, HOUR);
		tls_session(refused, SMTPC_TLS_VERIFY, "MTA-STS", NULL, 0);
		assert_refused("certificate-host-mismatch",
			       "MTA-STS: certificate not valid for " MX
			       " (certificate-host-mismatch)");
	}
END_TEST

/* _i = 0: issued by a CA not in the CA file; 1: self-signed */
START_TEST(test_verify_refuses_an_untrusted_certificate)
	{
		if (_i == 0)
			serve_leaf("DNS:" MX, true, -HOUR, HOUR);
		else
			srv.ctx = check_tls_server_ctx(MX);
		tls_session(refused, SMTPC_TLS_VERIFY, NULL, NULL, 0);
		assert_refused("certificate-not-trusted",
			       "TLS: certificate not valid for " MX
			       " (certificate-not-trusted)");
	}
END_TEST

/* _i = 0: expired an hour ago; 1: valid from in an hour */
START_TEST(test_verify_refuses_an_expired_certificate)
	{
		if (_i == 0)
			serve_leaf("DNS:" MX, false, -2 * HOUR, -HOUR);
		else
			serve_leaf("DNS:" MX, false, HOUR, 2 * HOUR);
		tls_session(refused, SMTPC_TLS_VERIFY, "MTA-STS", NULL, 0);
		assert_refused("certificate-expired",
			       "MTA-STS: certificate not valid for " MX
			       " (certificate-expired)");
	}
END_TEST

START_TEST(test_verify_checks_verify_name_not_mx_name)
	{
		struct smtpc_opts o = {
			.mx_name = MX,
			.verify_name = "mail.other.test",
			.tls = SMTPC_TLS_VERIFY,
			.ssl_ctx = fx.client_ctx,
			.policy = "MTA-STS",
		};

		serve_leaf("DNS:mail.other.test", false, -HOUR, HOUR);
		session_opts(accepted, o);
		assert_ready_ok(true, "");
		finish();
	}
END_TEST

/* _i = 0: VERIFY, 1: DANE; the server offers no STARTTLS */
START_TEST(test_checked_modes_never_go_plain)
	{
		static const struct step script[] = {
			GREET,
			SEND("250-" MX "\r\n250 PIPELINING\r\n"),
			WAIT_EOF,
			END,
		};
		const struct smtpc_info *in;

		tls_session(script, _i == 0 ? SMTPC_TLS_VERIFY : SMTPC_TLS_DANE,
			    _i == 0 ? "MTA-STS" : "DANE", NULL, 0);
		ck_assert(!fx.ready_ok);
		ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
		assert_reply(&fx.ready_reply, 0, "4.7.10",
			     _i == 0 ? "MTA-STS: STARTTLS not offered by " MX :
				       "DANE: STARTTLS not offered by " MX);
		in = smtpc_info(fx.c);
		ck_assert(!in->tls_active);
		ck_assert_str_eq(in->tls_failure, "starttls-not-supported");
		finish();
		ck_assert_str_eq(wire(), "EHLO client.test\r\n");
	}
END_TEST

START_TEST(test_required_not_offered_reports_starttls_not_supported)
	{
		static const struct step script[] = {
			GREET,
			SEND("250-" MX "\r\n250 PIPELINING\r\n"),
			WAIT_EOF,
			END,
		};

		tls_session(script, SMTPC_TLS_REQUIRED, NULL, NULL, 0);
		ck_assert(!fx.ready_ok);
		assert_reply(&fx.ready_reply, 0, "4.7.10",
			     "TLS required but STARTTLS not offered");
		ck_assert_str_eq(smtpc_info(fx.c)->tls_failure,
				 "starttls-not-supported");
		finish();
	}
END_TEST

START_TEST(test_checked_mode_starttls_refused)
	{
		static const struct step script[] = {
			GREET,
			SEND("250-" MX "\r\n250 STARTTLS\r\n"),
			EXPECT("STARTTLS"),
			SEND("454 4.7.0 TLS not available\r\n"),
			WAIT_EOF,
			END,
		};

		tls_session(script, SMTPC_TLS_DANE, "DANE", NULL, 0);
		ck_assert(!fx.ready_ok);
		ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
		assert_reply(&fx.ready_reply, 454, "4.7.0",
			     "TLS not available");
		ck_assert_str_eq(smtpc_info(fx.c)->tls_failure,
				 "starttls-not-supported");
		finish();
	}
END_TEST

START_TEST(test_checked_mode_handshake_failure)
	{
		static const struct step script[] = {
			GREET,
			SEND("250-" MX "\r\n250 STARTTLS\r\n"),
			EXPECT("STARTTLS"),
			SEND("220 go ahead\r\n"),
			GARBAGE,
			END,
		};
		const char *want = "MTA-STS: TLS handshake with " MX " failed";

		tls_session(script, SMTPC_TLS_VERIFY, "MTA-STS", NULL, 0);
		ck_assert(!fx.ready_ok);
		ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
		ck_assert_msg(
			strncmp(fx.ready_reply.text, want, strlen(want)) == 0,
			"%s", fx.ready_reply.text);
		ck_assert_str_eq(smtpc_info(fx.c)->tls_failure,
				 "validation-failure");
		finish();
	}
END_TEST

START_TEST(test_opportunistic_still_accepts_any_certificate)
	{
		srv.ctx = check_tls_server_ctx("anything.test");
		tls_session(accepted, SMTPC_TLS_OPPORTUNISTIC, NULL, NULL, 0);
		assert_ready_ok(false, "");
		finish();
	}
END_TEST

/* ---- DANE (RFC 7672) ---------------------------------------------------- */

/* DANE-EE(3) SPKI(1) SHA2-256(1) of the leaf key. _i = 0: a trusted
 * certificate for MX; 1: self-signed, expired and for another name, which
 * DANE-EE does not look at (RFC 7672 3.1.1). */
START_TEST(test_dane_ee_matches_the_leaf_key)
	{
		unsigned char md[32];
		struct smtpc_tlsa t = { 3, 1, 1, md, sizeof(md) };

		spki_sha256(pki.leaf_key, md);
		if (_i == 0)
			serve_leaf("DNS:" MX, false, -HOUR, HOUR);
		else
			srv.ctx = server_ctx(cert_new("x", "DNS:elsewhere.test",
						      pki.leaf_key, NULL, NULL,
						      -2 * HOUR, -HOUR, false),
					     NULL);
		tls_session(accepted, SMTPC_TLS_DANE, "DANE", &t, 1);
		assert_ready_ok(true, "");
		finish();
	}
END_TEST

/* A trusted certificate for MX whose key is not the record's: the CA
 * store does not count in DANE mode. */
START_TEST(test_dane_ee_mismatch_is_refused)
	{
		unsigned char md[32];
		struct smtpc_tlsa t = { 3, 1, 1, md, sizeof(md) };

		spki_sha256(pki.ca_key, md); /* some other key */
		serve_leaf("DNS:" MX, false, -HOUR, HOUR);
		tls_session(refused, SMTPC_TLS_DANE, "DANE", &t, 1);
		assert_refused("validation-failure",
			       "DANE: certificate does not match any TLSA "
			       "record of " MX);
	}
END_TEST

/* DANE-TA(2) Cert(0) SHA2-256(1) of a CA the CA file does not hold: the
 * anchor comes from DNS, the name is still checked (RFC 7672 3.2.2).
 * _i = 0: leaf for MX; 1: a wildcard for it. */
START_TEST(test_dane_ta_anchors_a_chain_for_the_name)
	{
		unsigned char md[32];
		struct smtpc_tlsa t = { 2, 0, 1, md, sizeof(md) };

		cert_sha256(pki.rogue, md);
		serve_leaf(_i == 0 ? "DNS:" MX : "DNS:*.dest.test", true, -HOUR,
			   HOUR);
		tls_session(accepted, SMTPC_TLS_DANE, "DANE", &t, 1);
		assert_ready_ok(true, "");
		finish();
	}
END_TEST

START_TEST(test_dane_ta_refuses_another_name)
	{
		unsigned char md[32];
		struct smtpc_tlsa t = { 2, 0, 1, md, sizeof(md) };

		cert_sha256(pki.rogue, md);
		serve_leaf("DNS:mx2.dest.test", true, -HOUR, HOUR);
		tls_session(refused, SMTPC_TLS_DANE, "DANE", &t, 1);
		assert_refused("certificate-host-mismatch",
			       "DANE: certificate not valid for " MX
			       " (certificate-host-mismatch)");
	}
END_TEST

/* _i = 0: an expired leaf under a DANE-TA anchor; 1: a chain under
 * another anchor than the record's */
START_TEST(test_dane_ta_checks_dates_and_anchor)
	{
		unsigned char md[32];
		struct smtpc_tlsa t = { 2, 0, 1, md, sizeof(md) };

		cert_sha256(pki.rogue, md);
		if (_i == 0) {
			serve_leaf("DNS:" MX, true, -2 * HOUR, -HOUR);
			tls_session(refused, SMTPC_TLS_DANE, "DANE", &t, 1);
			assert_refused("certificate-expired",
				       "DANE: certificate not valid for " MX
				       " (certificate-expired)");
			return;
		}
		serve_leaf("DNS:" MX, false, -HOUR, HOUR);
		tls_session(refused, SMTPC_TLS_DANE, "DANE", &t, 1);
		assert_refused("validation-failure",
			       "DANE: certificate does not match any TLSA "
			       "record of " MX);
	}
END_TEST

/* No usable record (RFC 7672 2.2): PKIX-TA(0) / PKIX-EE(1) (3.1.3), an
 * unknown matching type, a digest of the wrong length, data over the
 * bound, no data. TLS is still required, any certificate will do. */
START_TEST(test_dane_without_usable_records_is_tls_unauthenticated)
	{
		static unsigned char big[SMTPC_TLSA_DATA_MAX + 1];
		unsigned char md[32];
		struct smtpc_tlsa t[] = {
			{ 1, 1, 1, md, sizeof(md) }, /* would match */
			{ 0, 0, 1, md, sizeof(md) },
			{ 3, 1, 9, md, sizeof(md) },
			{ 3, 1, 1, md, 31 },
			{ 3, 1, 0, big, sizeof(big) },
			{ 2, 0, 1, NULL, 32 },
			{ 4, 1, 1, md, sizeof(md) },
		};

		spki_sha256(pki.leaf_key, md);
		srv.ctx = check_tls_server_ctx("anything.test");
		tls_session(accepted, SMTPC_TLS_DANE, "DANE", t,
			    sizeof(t) / sizeof(*t));
		assert_ready_ok(false, "tlsa-invalid");
		finish();
	}
END_TEST

/* One usable record beside unusable ones: it alone decides. */
START_TEST(test_dane_unusable_records_do_not_weaken_a_usable_one)
	{
		unsigned char md[32], other[32];
		struct smtpc_tlsa t[] = {
			{ 1, 1, 1, md, sizeof(md) }, /* matches, but PKIX-EE */
			{ 3, 1, 9, md, sizeof(md) },
			{ 3, 1, 1, other, sizeof(other) },
		};

		spki_sha256(pki.leaf_key, md);
		spki_sha256(pki.ca_key, other);
		serve_leaf("DNS:" MX, false, -HOUR, HOUR);
		tls_session(refused, SMTPC_TLS_DANE, NULL, t,
			    sizeof(t) / sizeof(*t));
		assert_refused("validation-failure",
			       "DANE: certificate does not match any TLSA "
			       "record of " MX);
	}
END_TEST

/* Records past SMTPC_TLSA_MAX are not looked at, even the matching one. */
START_TEST(test_dane_records_past_the_bound_are_ignored)
	{
		unsigned char md[32], other[32];
		struct smtpc_tlsa t[SMTPC_TLSA_MAX + 1];

		spki_sha256(pki.leaf_key, md);
		spki_sha256(pki.ca_key, other);
		for (size_t i = 0; i < SMTPC_TLSA_MAX; i++)
			t[i] = (struct smtpc_tlsa){ 3, 1, 1, other,
						    sizeof(other) };
		t[SMTPC_TLSA_MAX] =
			(struct smtpc_tlsa){ 3, 1, 1, md, sizeof(md) };
		serve_leaf("DNS:" MX, false, -HOUR, HOUR);
		tls_session(refused, SMTPC_TLS_DANE, "DANE", t,
			    SMTPC_TLSA_MAX + 1);
		assert_refused("validation-failure",
			       "DANE: certificate does not match any TLSA "
			       "record of " MX);
	}
END_TEST

/* The records are copied at open: the caller's may go at once. */
START_TEST(test_dane_records_are_copied_at_open)
	{
		unsigned char *md = malloc(32);
		struct smtpc_tlsa *t = malloc(sizeof(*t));
		struct smtpc_opts o = {
			.mx_name = MX,
			.tls = SMTPC_TLS_DANE,
			.ssl_ctx = fx.client_ctx,
			.n_tlsa = 1,
		};

		ck_assert(md && t);
		spki_sha256(pki.leaf_key, md);
		*t = (struct smtpc_tlsa){ 3, 1, 1, md, 32 };
		o.tlsa = t;
		serve_leaf("DNS:" MX, false, -HOUR, HOUR);
		srv_start(accepted);
		client_open_opts(srv.port, o);
		memset(md, 0, 32);
		free(md);
		free(t);
		run_until(&fx.n_ready, 1);
		assert_ready_ok(true, "");
		finish();
	}
END_TEST

START_TEST(test_ssl_ctx_new_refuses_an_unreadable_ca_file)
	{
		SSL_CTX *ctx = smtpc_ssl_ctx_new("/nonexistent/shoal-ca.pem");

		ck_assert_ptr_null(ctx);
		ctx = smtpc_ssl_ctx_new(NULL);
		ck_assert_ptr_nonnull(ctx);
		SSL_CTX_free(ctx);
	}
END_TEST

static Suite *
smtpc_tls_suite(void)
{
	Suite *s = suite_create("smtpc_tls");
	TCase *tc = tcase_create("verify");

	tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(
		tc, test_verify_accepts_a_trusted_certificate_for_the_name, 0,
		2);
	tcase_add_loop_test(
		tc, test_verify_refuses_a_certificate_for_another_name, 0, 3);
	tcase_add_loop_test(tc, test_verify_refuses_an_untrusted_certificate, 0,
			    2);
	tcase_add_loop_test(tc, test_verify_refuses_an_expired_certificate, 0,
			    2);
	tcase_add_test(tc, test_verify_checks_verify_name_not_mx_name);
	tcase_add_loop_test(tc, test_checked_modes_never_go_plain, 0, 2);
	tcase_add_test(
		tc, test_required_not_offered_reports_starttls_not_supported);
	tcase_add_test(tc, test_checked_mode_starttls_refused);
	tcase_add_test(tc, test_checked_mode_handshake_failure);
	tcase_add_test(tc, test_opportunistic_still_accepts_any_certificate);
	tcase_add_test(tc, test_ssl_ctx_new_refuses_an_unreadable_ca_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("dane");
	tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_dane_ee_matches_the_leaf_key, 0, 2);
	tcase_add_test(tc, test_dane_ee_mismatch_is_refused);
	tcase_add_loop_test(tc, test_dane_ta_anchors_a_chain_for_the_name, 0,
			    2);
	tcase_add_test(tc, test_dane_ta_refuses_another_name);
	tcase_add_loop_test(tc, test_dane_ta_checks_dates_and_anchor, 0, 2);
	tcase_add_test(tc,
		       test_dane_without_usable_records_is_tls_unauthenticated);
	tcase_add_test(tc,
		       test_dane_unusable_records_do_not_weaken_a_usable_one);
	tcase_add_test(tc, test_dane_records_past_the_bound_are_ignored);
	tcase_add_test(tc, test_dane_records_are_copied_at_open);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(smtpc_tls_suite)
