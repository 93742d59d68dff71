/* One HTTP request as router/http.c (the server) and router/http_inject.c
 * (POST /api/v1/inject) share it; internal to them. */
#ifndef SHOAL_ROUTER_HTTP_INT_H
#define SHOAL_ROUTER_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "router/http.h"

struct MHD_Connection;
struct http_inject;
struct workq;

/* A connection: who it is from and how. */
struct http_conn {
	struct http_server *h;
	const struct cfg_listen *ls;
	char client[64];      /* printable address */
	bool is_relay_client; /* inside router.relay_networks */
	bool is_tls;
	bool has_limit_slot;  /* counted in limits_session_start() */
};

struct http_req {
	struct http_server *h;
	struct http_conn *conn;
	struct MHD_Connection *c;
	struct http_req *next, *prev; /* the server's requests */
	int route;                    /* HTTP_ROUTE_* (http.c) */
	const char *allow;            /* 405: the methods the path takes */
	struct buf body;              /* the request body, bounded */
	bool is_too_big;              /* the body passed its bound */
	bool is_started;              /* handed to its handler */
	bool is_suspended;            /* waiting: MHD_suspend_connection() */
	bool is_waiting_node;         /* counted in http_server_busy() */
	/* the answer, once there is one */
	unsigned code;                /* 0 = none yet */
	char *reply;                  /* JSON, malloc'd */
	unsigned retry_after;         /* seconds, 0 = no header */
	bool wants_auth;              /* 401: WWW-Authenticate */
	struct http_inject *inject;   /* POST /api/v1/inject's state */
};

/* The server's environment (the router's), and its worker threads. */
struct session_env *http_env(struct http_server *h);
struct workq *http_workq(struct http_server *h);
bool http_is_stopping(const struct http_server *h);

/* Answer r with code and a JSON body (taken); sends it now if r waits
 * suspended, else when the handler returns. */
void http_answer(struct http_req *r, unsigned code, char *json);

/* Answer r with {"error": message, "field": field} (field may be NULL). */
void http_answer_error(struct http_req *r, unsigned code, const char *field,
		       const char *message);

/* r has work under way that the router waits for at shutdown (reading
 * on a worker, waiting for nodes): now (true) or no longer (false). */
void http_set_waiting_node(struct http_req *r, bool on);

/* POST /api/v1/inject: start (the body is in r->body), and forget
 * (r is going away: cancel what it waits for). */
void http_inject_start(struct http_req *r);
void http_inject_free(struct http_req *r);

#endif
