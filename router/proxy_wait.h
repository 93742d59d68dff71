/* Connections on a listener with proxy_protocol = true before their PROXY
 * header has arrived: the header is read (router/proxy.c parses it) under
 * one deadline, and only then is the connection handed on, with the
 * client address the header names, to start its SMTP session. A missing,
 * malformed, over-long or late header closes the connection with a log
 * line. Handles untrusted input. */
#ifndef SHOAL_ROUTER_PROXY_WAIT_H
#define SHOAL_ROUTER_PROXY_WAIT_H

#include <sys/socket.h>

/* The longest wait for a header, in seconds (router.idle_timeout when that
 * is shorter). A balancer sends it together with its connect. */
#define PROXY_WAIT_MAX_S 10

struct event_base;
struct proxy_wait;

/* A header arrived: fd (non-blocking, nothing read past the header) now
 * belongs to the callee; client is the address from the header, or the
 * socket's peer when the header has none (LOCAL, UNKNOWN). ctx is what
 * proxy_wait_add() was given. client is valid during the call only. */
typedef void proxy_wait_done_fn(void *arg, void *ctx, int fd,
				const struct sockaddr *client, int client_len);

/* The waiting room of one router. done(arg, ...) is called for every
 * connection whose header parsed. Never NULL. */
struct proxy_wait *proxy_wait_new(struct event_base *base, unsigned timeout_ms,
				  proxy_wait_done_fn *done, void *arg);

/* Take an accepted socket and wait for its header. Takes ownership of fd
 * (closed on error). listen_addr (for log lines) and ctx must outlive the
 * wait. */
void proxy_wait_add(struct proxy_wait *w, int fd, const struct sockaddr *peer,
		    int peer_len, const char *listen_addr, void *ctx);

/* Connections waiting now. */
unsigned proxy_wait_count(const struct proxy_wait *w);

/* Close every waiting connection (the router is stopping: they have not
 * been greeted, their clients will retry). */
void proxy_wait_clear(struct proxy_wait *w);

/* Closes what still waits. proxy_wait_free(NULL) does nothing. */
void proxy_wait_free(struct proxy_wait *w);

#endif
