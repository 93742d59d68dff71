/* TLS contexts for the router's listeners. Built from OpenSSL's defaults
 * with the floor raised to TLS 1.2; no renegotiation, no compression. */
#include "router/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

struct tls_server {
	const struct config *cfg;
	SSL_CTX *ctx;
};

/* The first error OpenSSL queued, for a log line; clears the queue. */
static const char *
tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return e ? buf : "unknown error";
}

static SSL_CTX *
tls_ctx_load(const struct config *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char why[256];

	if (ctx == NULL) {
		log_error("tls event=context_failed error=\"%s\"",
			  tls_error(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_NO_COMPRESSION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->router.tls_cert) != 1) {
		log_error("tls file=%s event=certificate_failed error=\"%s\"",
			  cfg->router.tls_cert, tls_error(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->router.tls_key,
					SSL_FILETYPE_PEM) != 1) {
		log_error("tls file=%s event=key_failed error=\"%s\"",
			  cfg->router.tls_key, tls_error(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_error("tls file=%s event=key_mismatch error=\"the key does "
			  "not match the certificate %s\"",
			  cfg->router.tls_key, cfg->router.tls_cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_server *
tls_server_new(const struct config *cfg, int *err)
{
	struct tls_server *t;

	*err = 0;
	if (cfg->router.tls_cert == NULL)
		return NULL;
	if (cfg->router.tls_key == NULL) {
		log_error("tls event=config error=\"router.tls_cert is set "
			  "but router.tls_key is not\"");
		*err = SHOAL_E_CONFIG;
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->cfg = cfg;
	t->ctx = tls_ctx_load(cfg);
	if (t->ctx == NULL) {
		free(t);
		*err = SHOAL_E_CONFIG;
		return NULL;
	}
	log_info("tls event=loaded certificate=%s", cfg->router.tls_cert);
	return t;
}

void
tls_server_free(struct tls_server *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int
tls_server_reload(struct tls_server *t)
{
	SSL_CTX *ctx = tls_ctx_load(t->cfg);

	if (ctx == NULL) {
		log_warn("tls event=reload_failed note=\"keeping the certificate "
			 "in use\"");
		return SHOAL_E_CONFIG;
	}
	SSL_CTX_free(t->ctx);	/* SSLs still using it hold their own ref */
	t->ctx = ctx;
	log_info("tls event=reloaded certificate=%s", t->cfg->router.tls_cert);
	return 0;
}

SSL *
tls_server_ssl(struct tls_server *t)
{
	return SSL_new(t->ctx);
}

bool
tls_listener_starttls(const struct cfg_listen *ls, bool have_cert)
{
	if (!have_cert)
		return false;
	return ls->tls == CFG_TLS_STARTTLS || ls->tls == CFG_TLS_DEFAULT;
}

bool
tls_listener_implicit(const struct cfg_listen *ls)
{
	return ls->tls == CFG_TLS_IMPLICIT;
}
