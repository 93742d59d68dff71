/* SMTP AUTH for router/session.c (router/session_auth.c). */
#ifndef SHOAL_ROUTER_SESSION_AUTH_H
#define SHOAL_ROUTER_SESSION_AUTH_H

#include <stdbool.h>

#include "router/session_int.h"

struct evbuffer;

/* Whether EHLO offers AUTH now (TLS, or plaintext allowed on loopback). */
bool session_auth_offered(const struct session *s);

/* The AUTH command. */
void session_cmd_auth(struct session *s, const struct smtp_cmd *cmd);

/* The session is being freed: a password check still under way for it
 * completes without it. */
void session_auth_end(struct session *s);

/* In SESSION_ST_AUTH: take one response line. Returns false when a whole
 * line is not there yet. */
bool session_auth_read(struct session *s, struct evbuffer *in);

#endif
