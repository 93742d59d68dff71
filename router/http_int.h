/* One HTTP request as router/http.c (the server) and router/http_inject.c
 * (POST /api/v1/inject) share it; internal to them.
 *
 * A request has two waits the server knows of. Before its body is read
 * (the headers are in: the route, the framing and who is asking are
 * judged there, so no body is read for a request that will be refused)
 * it may wait for a password check: http_wait(), then http_go_on() or an
 * answer. After its body, its handler may wait for workers and nodes:
 * the connection is suspended until http_answer(). */
#ifndef SHOAL_ROUTER_HTTP_INT_H
#define SHOAL_ROUTER_HTTP_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "router/http.h"

struct MHD_Connection;
struct http_inject;
struct http_req;
struct workq;

/* A connection: who it is from and how. */
struct http_conn {
	struct http_server *h;
	struct http_conn *next, *prev; /* the server's connections */
	const struct cfg_listen *ls;
	int fd;
	char client[64];      /* printable address */
	bool is_relay_client; /* inside router.relay_networks */
	bool is_tls;
	bool has_limit_slot;  /* counted in limits_session_start() */
	uint64_t since_ms;    /* connected, or its last request ended */
	struct http_req *req; /* the request being read or answered */
};

struct http_req {
	struct http_server *h;
	struct http_conn *conn;
	struct MHD_Connection *c;
	struct http_req *next, *prev; /* the server's requests */
	int route;                    /* HTTP_ROUTE_* (http.c) */
	const char *allow;            /* 405: the methods the path takes */
	struct buf body;              /* the request body, bounded */
	uint64_t body_held;           /* of it, counted in http_held() */
	bool is_too_big;              /* the body passed its bound */
	bool is_over_held;            /* ... or http_held_max() */
	bool is_headers_done;         /* judged; the body may come */
	bool is_waiting;              /* http_wait(): before the body */
	bool is_started;              /* handed to its handler */
	bool is_suspended;            /* MHD_suspend_connection() */
	bool is_busy;                 /* counted in http_server_busy() */
	/* the answer, once there is one */
	unsigned code;                /* 0 = none yet */
	char *reply;                  /* JSON, malloc'd */
	unsigned retry_after;         /* seconds, 0 = no header */
	bool wants_auth;              /* 401: WWW-Authenticate */
	struct http_inject *inject;   /* POST /api/v1/inject's state */
};

/* The server's environment (the router's) and its worker threads. */
struct session_env *http_env(struct http_server *h);
struct workq *http_workq(struct http_server *h);
bool http_is_stopping(const struct http_server *h);

/* Octets of messages the HTTP API holds (built on workers, not yet handed
 * to a node), and the most it may: a worker adds what it builds and gives
 * up past the bound; the loop subtracts what leaves. */
_Atomic uint64_t *http_held(struct http_server *h);
uint64_t http_held_max(const struct http_server *h);

/* Answer r with code and a JSON body (taken); sent now if r waits, else
 * when the handler returns. */
void http_answer(struct http_req *r, unsigned code, char *json);

/* Answer r with {"error": message, "field": field} (field may be NULL). */
void http_answer_error(struct http_req *r, unsigned code, const char *field,
		       const char *message);

/* Before the body: r waits (a password check) until http_go_on() (read
 * the body) or an answer. */
void http_wait(struct http_req *r);
void http_go_on(struct http_req *r);

/* r has work under way that the router waits for at shutdown (on a
 * worker, with nodes): now (true) or no longer (false). */
void http_set_busy(struct http_req *r, bool on);

/* POST /api/v1/inject: judge the request by its headers (who; may answer
 * or wait), start it once its body is in, and forget it (r is going
 * away: cancel what it waits for). */
void http_inject_admit(struct http_req *r);
void http_inject_start(struct http_req *r);
void http_inject_free(struct http_req *r);

#endif
