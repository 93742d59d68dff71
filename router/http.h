/* The router's HTTP API (docs/http.md) on router.http_listen: POST
 * /api/v1/inject (router/http_inject.c) and GET /api/v1/health. HTTP is
 * libmicrohttpd's, run on the router's event loop: the listener accepts
 * (router/listener.c: router.max_sessions, the PROXY header) and hands
 * each connection over here, with the client address it counts as. TLS
 * ("implicit") is libmicrohttpd's own, with router.tls_cert and
 * router.tls_key. Handles untrusted input: bounded headers, bodies,
 * connections and time. */
#ifndef SHOAL_ROUTER_HTTP_H
#define SHOAL_ROUTER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "lib/config.h"

struct session_env;
struct http_server;

/* The server of env's router: NULL with *err 0 when no http_listen is
 * configured, NULL with *err set (logged) when it cannot start. */
struct http_server *http_server_new(struct session_env *env, int *err);

/* A connection accepted on listener ls (an http_listen entry): fd is
 * taken. client is the address it counts as (the PROXY header's). */
void http_server_add(struct http_server *h, const struct cfg_listen *ls,
		     int fd, const struct sockaddr *client, int client_len);

/* Connections open now. http_server_conns(NULL) is 0. */
unsigned http_server_conns(const struct http_server *h);

/* Requests whose messages wait for their nodes (the router waits for
 * them at shutdown). http_server_busy(NULL) is 0. */
unsigned http_server_busy(const struct http_server *h);

/* SIGTERM: health answers 503 from now on, every answer closes its
 * connection, and requests that do not wait for a node are refused. */
void http_server_stop(struct http_server *h);

/* Answers what still waits (503), closes every connection. NULL ok. */
void http_server_free(struct http_server *h);

#endif
