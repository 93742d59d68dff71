/* SMTP AUTH credentials (RFC 4954): router.users_file, one "user:hash"
 * per line, hashes made by crypt(3) (yescrypt "$y$" or SHA-512-crypt "$6$";
 * `shoalctl user add` writes them), and the per-client-address failure
 * counts that slow down password guessing. Knows nothing of sessions. */
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

/* NULL with *err 0 when no users_file is configured; NULL with *err set
 * when it cannot be read (logged, with file and line). */
struct auth *auth_new(const struct config *cfg, int *err);

/* auth_free(NULL) does nothing. */
void auth_free(struct auth *a);

/* Read the file again (SIGHUP); keeps the old users when that fails. */
int auth_reload(struct auth *a);

/* Whether user/pass (user up to AUTH_USER_MAX, pass to AUTH_PASS_MAX
 * bytes) is a valid pair. Costs one crypt(3) even for an unknown user. */
bool auth_check(const struct auth *a, const char *user, const char *pass);

/* Failures from a client address: record one, and how long the reply to
 * it should wait (grows with recent failures, capped). Counts decay by
 * one a minute. The table is bounded: the oldest entry makes room. */
uint32_t auth_failed(struct auth *a, const char *client);

#endif
