/* IP pool choice at the router (docs/pools.md): the pool header is taken
 * out of every message, and each message gets the name of the
 * delivery.pools entry its node delivers it from. Leaves the delivery
 * through the pool's addresses to node/delivery/deliver.c. Handles untrusted
 * input: the header section is the client's, read within the body's
 * bound, and a header value only counts from a trusted client. */
#ifndef SHOAL_ROUTER_POOL_H
#define SHOAL_ROUTER_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/config.h"

#define POOL_VALUE_MAX 65 /* a pool name (64, config bound) + NUL */
/* A header value as read: longer than any name it may hold, so that a
 * value too long is refused whole instead of cut to a valid one. */
#define POOL_HEADER_MAX 257

/* Remove every field called name (any case, with its continuation lines)
 * from the header section of body, which starts at offset from and ends
 * at the first empty line (or the end). The first field's value,
 * unfolded and trimmed, goes to value (cut to vlen - 1; "" when there is
 * none). Returns how many fields were removed. */
size_t pool_strip_header(struct buf *body, size_t from, const char *name,
			 char *value, size_t vlen);

/* How a message is classified (docs/shaping.md, docs/pools.md). */
struct pool_choice {
	const char *pool;             /* NULL = none; lives as long as cfg */
	enum cfg_priority priority;   /* never unset: normal by default */
	char tenant[POOL_VALUE_MAX];  /* "" = none */
};

/* Classify a message. The header values (NULL: the message had none)
 * count only when the client may choose (is_trusted): a pool header that
 * names a pool, a priority header saying high, normal or bulk (any case),
 * a tenant header envelope_tenant_ok() takes. Else, for a trusted client
 * only (anyone may name any sender), per field, the first rule for
 * auth_user (a rule with both keys needs both to match), then the first
 * for the sender's domain, that sets it; else delivery.default_pool,
 * normal, and the authenticated user as the tenant. */
void pool_classify(const struct config *cfg, const char *pool_hdr,
		   const char *priority_hdr, const char *tenant_hdr,
		   bool is_trusted, const char *auth_user,
		   const char *mail_from, struct pool_choice *out);

/* The pool for a message, or NULL for none: the header's value when the
 * client may choose (is_trusted: relay network or authenticated) and it
 * names a pool; else the first rule for auth_user (a rule with both keys
 * needs both to match), then the first rule for the sender's domain
 * (any case), then delivery.default_pool. auth_user and mail_from may be
 * "". The result lives as long as cfg. */
const char *pool_choose(const struct config *cfg, const char *header_value,
			bool is_trusted, const char *auth_user,
			const char *mail_from);

#endif
