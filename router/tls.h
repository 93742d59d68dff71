/* The router's TLS server context (OpenSSL): TLS 1.2 and 1.3 only, with
 * OpenSSL's default ciphers, the certificate and key of router.tls_cert and
 * router.tls_key. A reload (SIGHUP) builds a new context and swaps it in:
 * sessions already in TLS keep the one they started with (each SSL holds a
 * reference to its context). */
#ifndef SHOAL_ROUTER_TLS_H
#define SHOAL_ROUTER_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "lib/config.h"

struct tls_server;

/* NULL with *err 0 when no certificate is configured; NULL with *err set
 * (logged, naming the file) when it cannot be loaded. */
struct tls_server *tls_server_new(const struct config *cfg, int *err);

/* tls_server_free(NULL) does nothing. */
void tls_server_free(struct tls_server *t);

/* Load the files again; keeps the old context when that fails. Returns 0
 * or an error (logged). */
int tls_server_reload(struct tls_server *t);

/* A new SSL for one connection (caller owns it), or NULL. */
SSL *tls_server_ssl(struct tls_server *t);

/* Whether a listener offers STARTTLS / starts with TLS. */
bool tls_listener_starttls(const struct cfg_listen *ls, bool have_cert);
bool tls_listener_implicit(const struct cfg_listen *ls);

#endif
