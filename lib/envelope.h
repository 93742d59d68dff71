/* Checks on envelopes that cross a process boundary (proto/queue.proto
 * Envelope). A node runs every envelope it receives through
 * envelope_validate() before storing it; nothing else trusts the peer. */
#ifndef SHOAL_ENVELOPE_H
#define SHOAL_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/queue.pb-c.h"

#define ENVELOPE_RCPTS_MAX 100000  /* far above any max_recipients */
#define ENVELOPE_ADDR_MAX 320      /* RFC 5321 4.5.3.1: 64 + 1 + 255 */
#define ENVELOPE_TEXT_MAX 1024     /* helo, client, orcpt, replies */

/* Checks counts, string bounds and enum ranges, and that the sender, each
 * recipient address and ORCPT, and the ENVID hold no control character
 * (CR, LF, 0x00-0x1f, 0x7f). Returns 0, or -EPROTO with a static reason in
 * *why. */
int envelope_validate(const Shoal__Envelope *env, const char **why);

/* The domain of a mailbox (after the last '@'), or "" when it has none.
 * Points into addr. */
const char *envelope_domain(const char *addr);

#define ENVELOPE_TENANT_MAX 64     /* a tenant's name, bytes */

/* Whether t may name a tenant (Envelope.tenant, docs/shaping.md): 1 to
 * ENVELOPE_TENANT_MAX bytes of printable ASCII without spaces, quotes or
 * backslashes. The one rule for the router's header and user, the node's
 * checks and shoalctl's --tenant. */
bool envelope_tenant_ok(const char *t);

/* The message's priority class as the due index keeps it (proto
 * Priority; 0, normal, for NULL or a value this version does not know). */
uint32_t envelope_class(const Shoal__Envelope *env);

#endif
