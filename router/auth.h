/* SMTP AUTH credentials (RFC 4954): router.users_file, one "user:hash"
 * per line, hashes made by crypt(3) (yescrypt "$y$" or SHA-512-crypt "$6$";
 * `shoalctl user add` writes them), the password checks, hashed on a few
 * worker threads (lib/workq.h) because crypt(3) is slow by design, and
 * the per-client-address failure counts that slow down password guessing.
 * Knows nothing of sessions. */
#ifndef SHOAL_ROUTER_AUTH_H
#define SHOAL_ROUTER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/config.h"

#define AUTH_USER_MAX 255
#define AUTH_PASS_MAX 1024
#define AUTH_FILE_MAX (16u << 20)   /* users file bytes */

struct auth;
struct event_base;

/* A password check's outcome. The strings are the auth's copies: valid
 * until the callback returns. */
struct auth_result {
	bool is_ok;
	uint32_t delay_ms;    /* a failure: answer it this late (auth_failed) */
	const char *client;
	const char *user;
};

/* On the loop thread, once per check started. ctx is as given; arg too,
 * or NULL when auth_check_forget() was called for it meanwhile. */
typedef void auth_done_fn(void *ctx, void *arg, const struct auth_result *r);

/* NULL with *err 0 when no users_file is configured; NULL with *err set
 * when it cannot be read (logged, with file and line). */
struct auth *auth_new(const struct config *cfg, int *err);

/* Start the threads that hash passwords, answering on base's loop.
 * Returns 0, or a negative errno (logged). */
int auth_start(struct auth *a, struct event_base *base);

/* Stops the threads (a check being hashed is waited for; no callback is
 * called any more), then frees. Call it before base is freed.
 * auth_free(NULL) does nothing. */
void auth_free(struct auth *a);

/* Read the file again (SIGHUP); keeps the old users when that fails.
 * Checks already started go on with the users they started with. */
int auth_reload(struct auth *a);

/* Check user/pass off the loop: the lookup and one crypt(3), even for an
 * unknown user (the same cost), on a worker thread. user beyond
 * AUTH_USER_MAX or pass beyond AUTH_PASS_MAX bytes fails without a hash.
 * A failure is counted for client (auth_failed) when it comes in, even
 * when arg was forgotten. The strings are copied. Returns 0: done is
 * called later, never from inside this call; or -EBUSY when too many
 * checks are waiting for a thread (logged, rate-limited): nothing is
 * called, and the client should get a temporary failure. */
int auth_check_start(struct auth *a, const char *client, const char *user,
		     const char *pass, auth_done_fn *done, void *ctx,
		     void *arg);

/* arg is going away: the checks started with it complete with arg NULL. */
void auth_check_forget(struct auth *a, const void *arg);

/* Whether a client (its printable address) may send a password on
 * listener ls, by SMTP AUTH or HTTP Basic: there are users, the listener
 * takes AUTH, and the connection is TLS, or the listener allows
 * plaintext (auth_plaintext) and the client is on loopback. The one
 * rule for both protocols. */
bool auth_offered(const struct auth *a, const struct cfg_listen *ls,
		  bool is_tls, const char *client);

/* Strict base64 (RFC 4648, padded) of in[0..len) into out, NUL added:
 * the decoded length, or -1 for anything that is not base64 of at most
 * max octets. SMTP AUTH's and HTTP Basic's one decoder. */
int auth_b64_decode(const char *in, size_t len, char *out, size_t max);

/* Failures from a client address: record one, and how long the reply to
 * it should wait (grows with recent failures, capped). Counts decay by
 * one a minute. The table is bounded: the oldest entry makes room. */
uint32_t auth_failed(struct auth *a, const char *client);

#endif
