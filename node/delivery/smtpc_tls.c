/* The SMTP client's TLS policy (see smtpc_impl.h): the one client
 * SSL_CTX, the per-connection set-up of each SSL before its handshake
 * and the check of the server's certificate after it, once per
 * connection:
 *
 *   VERIFY  the chain ends at a CA of the store and the certificate is
 *           valid for verify_name (RFC 8461 4.2: MTA-STS; wildcards only
 *           as the whole leftmost label, RFC 6125 6.4.3)
 *   DANE    the chain matches a usable TLSA record (RFC 7672 2.2, 3.1):
 *           DANE-EE(3) matches the leaf with no name or date check,
 *           DANE-TA(2) anchors a chain that must be valid for mx_name;
 *           PKIX-TA(0) and PKIX-EE(1) are unusable in SMTP (3.1.3); with
 *           no usable record TLS is still required but unauthenticated
 *
 * The handshake itself never fails on the certificate (SSL_VERIFY_NONE):
 * OpenSSL records the verification result, and a failure gets a clear
 * reason and its RFC 8460 result-type. Leaves the STARTTLS exchange to
 * smtpc_session.c. Handles untrusted input: TLSA records (bounded by
 * SMTPC_TLSA_MAX and SMTPC_TLSA_DATA_MAX, parsed by OpenSSL) and the
 * server's certificate chain (verified by OpenSSL). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/smtpc_impl.h"

/* RFC 6698 2.1.1 certificate usages */
enum {
	SMTPC_TLSA_PKIX_TA = 0,
	SMTPC_TLSA_PKIX_EE = 1,
	SMTPC_TLSA_DANE_TA = 2,
	SMTPC_TLSA_DANE_EE = 3,
};

void
smtpc_tls_init(struct smtpc *c, const struct smtpc_opts *o)
{
	size_t n = o->n_tlsa, bytes = 0;
	const char *o_policy = o->policy;
	unsigned char *data;

	if (o->policy == NULL)
		o_policy = o->tls == SMTPC_TLS_DANE ? "DANE" : "TLS";
	snprintf(c->policy, sizeof(c->policy), "%s", o_policy);
	snprintf(c->verify_name, sizeof(c->verify_name), "%s",
		 o->verify_name ? o->verify_name : c->info.mx_name);
	c->evaluate = o->evaluate && o->tls == SMTPC_TLS_OPPORTUNISTIC;
	if (o->tls != SMTPC_TLS_DANE || n == 0 || o->tlsa == NULL)
		return;
	if (n > SMTPC_TLSA_MAX) {
		log_debug(LOG_SUB_SMTP, "mx=%s event=tlsa_ignored count=%zu",
			  c->info.mx_name, n - SMTPC_TLSA_MAX);
		n = SMTPC_TLSA_MAX;
	}
	for (size_t i = 0; i < n; i++)
		if (o->tlsa[i].data && o->tlsa[i].len <= SMTPC_TLSA_DATA_MAX)
			bytes += o->tlsa[i].len;
	/* the records and their data in one block */
	c->tlsa = xmalloc(n * sizeof(*c->tlsa) + bytes);
	data = (unsigned char *)(c->tlsa + n);
	for (size_t i = 0; i < n; i++) {
		const struct smtpc_tlsa *t = &o->tlsa[i];

		c->tlsa[i] = *t;
		if (t->data == NULL || t->len > SMTPC_TLSA_DATA_MAX) {
			/* unusable: never handed to OpenSSL */
			c->tlsa[i].data = NULL;
			continue;
		}
		memcpy(data, t->data, t->len);
		c->tlsa[i].data = data;
		data += t->len;
	}
	c->n_tlsa = n;
}

bool
smtpc_tls_is_required(const struct smtpc *c)
{
	return c->tls == SMTPC_TLS_REQUIRED || c->tls == SMTPC_TLS_VERIFY ||
	       c->tls == SMTPC_TLS_DANE;
}

/* Whether the certificate is checked (VERIFY or DANE). */
static bool
smtpc_tls_is_checked(const struct smtpc *c)
{
	return c->tls == SMTPC_TLS_VERIFY || c->tls == SMTPC_TLS_DANE;
}

static void
smtpc_tls_set_failure(struct smtpc *c, const char *type)
{
	snprintf(c->info.tls_failure, sizeof(c->info.tls_failure), "%s", type);
}

void
smtpc_tls_not_offered(struct smtpc *c, struct smtpc_reply *r)
{
	char text[SMTPC_REPLY_TEXT_MAX];

	if (c->ssl_ctx == NULL) {
		/* ours, not the server's: no result-type to report */
		snprintf(text, sizeof(text),
			 "%s%sTLS required but no TLS context",
			 smtpc_tls_is_checked(c) ? c->policy : "",
			 smtpc_tls_is_checked(c) ? ": " : "");
	} else {
		smtpc_tls_set_failure(c, "starttls-not-supported");
		if (smtpc_tls_is_checked(c))
			snprintf(text, sizeof(text),
				 "%s: STARTTLS not offered by %s", c->policy,
				 c->info.mx_name);
		else
			snprintf(text, sizeof(text),
				 "TLS required but STARTTLS not offered");
	}
	smtpc_local(r, 0, "4.7.10", "%s", text);
}

void
smtpc_tls_refused(struct smtpc *c)
{
	if (smtpc_tls_is_required(c) || c->evaluate)
		smtpc_tls_set_failure(c, "starttls-not-supported");
}

void
smtpc_tls_handshake_failed(struct smtpc *c, const char *err,
			   struct smtpc_reply *r)
{
	char text[SMTPC_REPLY_TEXT_MAX];

	if (smtpc_tls_is_required(c) || c->evaluate)
		smtpc_tls_set_failure(c, "validation-failure");
	if (smtpc_tls_is_checked(c))
		snprintf(text, sizeof(text),
			 "%s: TLS handshake with %s failed: %s", c->policy,
			 c->info.mx_name, err);
	else
		snprintf(text, sizeof(text), "TLS: %s", err);
	smtpc_local(r, 0, "4.7.5", "%s", text);
}

/* DANE: the base domain and every usable record (RFC 7672 3.1.3).
 * Returns 0 or -EIO (OpenSSL failed, logged at debug). */
static int
smtpc_tls_prepare_dane(struct smtpc *c, SSL *ssl)
{
	c->dane_usable = 0;
	if (c->info.mx_name[0] == '\0' ||
	    SSL_dane_enable(ssl, c->info.mx_name) <= 0)
		return -EIO;
	/* RFC 7672 3.1.1: no name checks for DANE-EE(3) (and OpenSSL
	 * checks no dates for a leaf it matched) */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* RFC 7672 2.2.2: DANE-TA(2) chains may name the MX host (the base
	 * domain, set above) or the name the caller gave */
	if (c->verify_name[0] && strcmp(c->verify_name, c->info.mx_name) &&
	    SSL_add1_host(ssl, c->verify_name) != 1)
		return -EIO;
	for (size_t i = 0; i < c->n_tlsa; i++) {
		const struct smtpc_tlsa *t = &c->tlsa[i];
		int rc = 0;

		if (t->data != NULL && (t->usage == SMTPC_TLSA_DANE_TA ||
					t->usage == SMTPC_TLSA_DANE_EE))
			rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector,
					       t->mtype, t->data, t->len);
		if (rc > 0) {
			c->dane_usable++;
			continue;
		}
		log_debug(LOG_SUB_SMTP,
			  "mx=%s event=tlsa_unusable record=\"%u %u %u\" "
			  "len=%zu rc=%d",
			  c->info.mx_name, t->usage, t->selector, t->mtype,
			  t->len, rc);
	}
	return 0;
}

int
smtpc_tls_prepare(struct smtpc *c, SSL *ssl)
{
	int rc = 0;

	/* every mode: the handshake never fails on the certificate */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	switch (c->evaluate ? SMTPC_TLS_VERIFY : c->tls) {
	case SMTPC_TLS_VERIFY:
		/* an empty name would switch the name check off */
		if (c->verify_name[0] == '\0' ||
		    SSL_set1_host(ssl, c->verify_name) != 1)
			rc = -EIO;
		else
			SSL_set_hostflags(ssl,
					  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		break;
	case SMTPC_TLS_DANE:
		rc = smtpc_tls_prepare_dane(c, ssl);
		break;
	default:
		break;
	}
	/* unusable records leave errors queued in this thread, which the
	 * handshake's SSL_get_error() may take for its own */
	ERR_clear_error();
	return rc;
}

/* RFC 8460 4.3 result-type of an X509 verification error. */
static const char *
smtpc_tls_result_type(long err)
{
	switch (err) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "certificate-expired";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_CERT_UNTRUSTED:
		return "certificate-not-trusted";
	default:
		return "validation-failure"; /* DANE_NO_MATCH too */
	}
}

bool
smtpc_tls_check(struct smtpc *c, SSL *ssl, struct smtpc_reply *r)
{
	long err = SSL_get_verify_result(ssl);
	const char *type, *name;
	char text[SMTPC_REPLY_TEXT_MAX];

	if (c->evaluate) {
		/* MTA-STS testing: what VERIFY would say, reported only */
		if (SSL_get0_peer_certificate(ssl) == NULL && err == X509_V_OK)
			err = X509_V_ERR_UNSPECIFIED;
		if (err == X509_V_OK)
			c->info.tls_verified = true;
		else
			smtpc_tls_set_failure(c, smtpc_tls_result_type(err));
		return true;
	}
	if (!smtpc_tls_is_checked(c))
		return true;
	if (c->tls == SMTPC_TLS_DANE && c->dane_usable == 0) {
		/* RFC 7672 2.2: TLS, but nothing to authenticate with */
		smtpc_tls_set_failure(c, "tlsa-invalid");
		return true;
	}
	/* X509_V_OK is also what a server without a certificate leaves */
	if (SSL_get0_peer_certificate(ssl) == NULL && err == X509_V_OK)
		err = X509_V_ERR_UNSPECIFIED;
	if (err == X509_V_OK &&
	    (c->tls == SMTPC_TLS_VERIFY ||
	     SSL_get0_dane_authority(ssl, NULL, NULL) >= 0)) {
		c->info.tls_verified = true;
		return true;
	}
	if (err == X509_V_OK) /* DANE without a matching record */
		err = X509_V_ERR_DANE_NO_MATCH;
	type = smtpc_tls_result_type(err);
	smtpc_tls_set_failure(c, type);
	name = c->tls == SMTPC_TLS_VERIFY ? c->verify_name : c->info.mx_name;
	if (err == X509_V_ERR_DANE_NO_MATCH)
		snprintf(text, sizeof(text),
			 "%s: certificate does not match any TLSA record of %s",
			 c->policy, name);
	else
		snprintf(text, sizeof(text),
			 "%s: certificate not valid for %s (%s)", c->policy,
			 name, type);
	smtpc_local(r, 0, "4.7.5", "%s", text);
	log_debug(LOG_SUB_SMTP,
		  "mx=%s ip=%s event=tls_check_failed policy=%s result=%s "
		  "error=\"%s\"",
		  c->info.mx_name, c->info.peer_ip, c->policy, type,
		  X509_verify_cert_error_string(err));
	return false;
}

SSL_CTX *
smtpc_ssl_ctx_new(const char *ca_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		log_error("smtpc: cannot create a TLS client context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		log_error("smtpc: cannot enable DANE in the TLS context");
		goto fail;
	}
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			log_error("smtpc: cannot read CA certificates from %s",
				  ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		/* no system store: VERIFY fails, everything else works */
		log_warn("smtpc: cannot load the default CA certificates");
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
