/* The router's listening sockets (router.listen): accepts connections and
 * starts a session for each, up to router.max_sessions at once (beyond
 * that: 421 and close). */
#ifndef SHOAL_ROUTER_LISTENER_H
#define SHOAL_ROUTER_LISTENER_H

struct session_env;
struct listener;

/* Bind every configured listener. Returns NULL (logged) when any address
 * cannot be parsed or bound. */
struct listener *listener_new(struct session_env *env);

/* Stop accepting and close the listening sockets (new connections are
 * refused); sessions in progress go on. */
void listener_stop(struct listener *l);

/* listener_free(NULL) does nothing. */
void listener_free(struct listener *l);

#endif
