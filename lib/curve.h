/* ZeroMQ CURVE on every cluster link (routers, nodes, peers, shoalctl):
 * one cluster keypair in the file cluster.curve_keys names (two lines,
 * public then secret key, Z85; `shoalctl keygen FILE` writes it). Nodes
 * are CURVE servers with the secret key and admit only clients that
 * present the cluster's public key (ZAP, node/node.c); every client uses
 * the keypair and the same key as the server's. A process without the
 * file cannot complete the handshake. Without the key nothing is
 * encrypted, and nodes bind their port on loopback only, with a warning
 * (node/node.c). */
#ifndef SHOAL_CURVE_H
#define SHOAL_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#define CURVE_KEY_Z85 40
#define CURVE_ZAP_DOMAIN "shoal"   /* ZMQ_ZAP_DOMAIN of the nodes' sockets */

struct curve_keys {
	char pub[CURVE_KEY_Z85 + 1];
	char sec[CURVE_KEY_Z85 + 1];
};

/* Load the process's keys from path (NULL: CURVE stays off) and make
 * sure this libzmq can use them: it must have CURVE (zmq_has), the public
 * key must be the secret key's, and a socket must take every option
 * curve_server() and curve_client() set, with these keys (tried on a
 * scratch socket). Returns 0, or -1 with a message naming the file and
 * the cause in err: the caller must not start (cluster links would run
 * unencrypted). */
int curve_init(const char *path, char *err, size_t errlen);

/* Whether CURVE is on in this process. */
bool curve_on(void);

/* Before bind (server) / connect (client) of a cluster socket; nothing
 * when CURVE is off. Returns 0, or -errno with the option that failed
 * logged: the socket must then not be bound or connected (it would talk
 * unencrypted). */
int curve_server(void *sock) __attribute__((warn_unused_result));
int curve_client(void *sock) __attribute__((warn_unused_result));

/* Whether a ZAP request's CURVE client key (32 bytes) is the cluster's. */
bool curve_client_allowed(const void *key, size_t len);

/* A new keypair. Returns 0 or -1. */
int curve_generate(struct curve_keys *k);

#endif
