/* Per-client limits on the router: concurrent sessions per client address
 * (router.max_sessions_per_ip) and messages per minute per client address
 * and per authenticated user (router.max_msgs_per_minute_per_ip,
 * ..._per_user; 0 = no limit). Clients in relay_networks are not limited
 * by address (the session decides). Counts are per router process: a
 * cluster of N routers behind a balancer allows up to N times as much. */
#ifndef SHOAL_ROUTER_LIMITS_H
#define SHOAL_ROUTER_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"

struct limits;

struct limits *limits_new(const struct config *cfg);

/* limits_free(NULL) does nothing. */
void limits_free(struct limits *l);

/* A session from client starts (false: over max_sessions_per_ip, refuse
 * it) / ends. Every true start must be ended once. */
bool limits_session_start(struct limits *l, const char *client);
void limits_session_end(struct limits *l, const char *client);

/* A connection (an SMTP session, an HTTP connection) from client
 * starts: the one rule for both. Clients in relay_networks (the senders
 * behind the balancer) are not limited per address, like Postfix's
 * mynetworks. Returns false when over max_sessions_per_ip (refuse it);
 * *slot says whether limits_session_end() is owed at its end. */
bool limits_connection_start(struct limits *l, const char *client,
			     bool is_relay_client, bool *slot);

/* A message from client ("" for one not limited by address) and user (""
 * when not authenticated) starts at MAIL: false when either is over its
 * rate; counted only when true. */
bool limits_message(struct limits *l, const char *client, const char *user);

#endif
