/* How a message is classified: strip the pool, priority and tenant
 * headers, apply the rules. */
#include "router/pool.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/envelope.h"

/* The end of the line starting at p (after its CRLF or LF), or end. */
static size_t
pool_line_end(const char *d, size_t p, size_t end)
{
	const char *nl = memchr(d + p, '\n', end - p);

	return nl ? (size_t)(nl - d) + 1 : end;
}

/* Whether the line at d[p..e) is field `name` followed by ':' (RFC 5322
 * 3.6.8; obsolete WSP before the colon allowed). Sets *colon. */
static bool
pool_is_field(const char *d, size_t p, size_t e, const char *name,
	      size_t *colon)
{
	size_t n = strlen(name), q;

	if (n == 0 || e - p <= n || strncasecmp(d + p, name, n) != 0)
		return false;
	for (q = p + n; q < e && (d[q] == ' ' || d[q] == '\t'); q++)
		;
	if (q >= e || d[q] != ':')
		return false;
	*colon = q;
	return true;
}

/* Append d[p..e) without CR/LF to value, one space for a fold. */
static void
pool_add_value(const char *d, size_t p, size_t e, char *value, size_t vlen,
	       size_t *vl)
{
	for (size_t i = p; i < e && *vl + 1 < vlen; i++) {
		char c = d[i];

		if (c == '\t')
			c = ' ';
		if (c == '\r' || c == '\n' || (c == ' ' && *vl == 0))
			continue;
		value[(*vl)++] = c;
	}
	value[*vl] = '\0';
}

static void
pool_trim(char *v)
{
	size_t n = strlen(v), s = 0;

	while (n > 0 && v[n - 1] == ' ')
		v[--n] = '\0';
	while (v[s] == ' ')
		s++;
	memmove(v, v + s, n - s + 1);
}

size_t
pool_strip_header(struct buf *body, size_t from, const char *name, char *value,
		  size_t vlen)
{
	char *d = body->data;
	size_t p = from, removed = 0, vl = 0;

	if (vlen)
		value[0] = '\0';
	while (d && p < body->len) {
		size_t e = pool_line_end(d, p, body->len), colon, end;

		if (d[p] == '\r' || d[p] == '\n')
			break; /* the empty line: the body starts */
		if (!pool_is_field(d, p, e, name, &colon)) {
			p = e;
			continue;
		}
		/* the field runs on over lines starting with WSP */
		end = e;
		while (end < body->len && (d[end] == ' ' || d[end] == '\t'))
			end = pool_line_end(d, end, body->len);
		if (removed == 0 && vlen)
			pool_add_value(d, colon + 1, end, value, vlen, &vl);
		memmove(d + p, d + end, body->len - end);
		body->len -= end - p;
		removed++;
	}
	if (vlen)
		pool_trim(value);
	return removed;
}

static bool
pool_same_domain(const char *mail_from, const char *domain)
{
	const char *at = strrchr(mail_from, '@');

	return at && strcasecmp(at + 1, domain) == 0;
}

/* Whether r applies to the message: its user (when it names one) is the
 * authenticated user, its sender domain (when it names one) the sender's.
 * by_user: the pass over rules that name a user, else over the others. */
static bool
pool_rule_applies(const struct cfg_pool_rule *r, bool by_user,
		  const char *auth_user, const char *mail_from)
{
	if (by_user)
		return r->user && auth_user[0] &&
		       strcmp(r->user, auth_user) == 0 &&
		       (!r->sender_domain ||
			pool_same_domain(mail_from, r->sender_domain));
	return !r->user && r->sender_domain &&
	       pool_same_domain(mail_from, r->sender_domain);
}

static enum cfg_priority
pool_priority_named(const char *v)
{
	if (strcasecmp(v, "high") == 0)
		return CFG_PRIORITY_HIGH;
	if (strcasecmp(v, "normal") == 0)
		return CFG_PRIORITY_NORMAL;
	if (strcasecmp(v, "bulk") == 0)
		return CFG_PRIORITY_BULK;
	return CFG_PRIORITY_UNSET;
}

void
pool_classify(const struct config *cfg, const char *pool_hdr,
	      const char *priority_hdr, const char *tenant_hdr,
	      bool is_trusted, const char *auth_user, const char *mail_from,
	      struct pool_choice *out)
{
	const struct cfg_pool *p;
	bool has_tenant = false;

	memset(out, 0, sizeof(*out));
	if (is_trusted && pool_hdr && (p = config_find_pool(cfg, pool_hdr)))
		out->pool = p->name;
	if (is_trusted && priority_hdr)
		out->priority = pool_priority_named(priority_hdr);
	if (is_trusted && tenant_hdr && envelope_tenant_ok(tenant_hdr)) {
		snprintf(out->tenant, sizeof(out->tenant), "%s", tenant_hdr);
		has_tenant = true;
	}
	/* a stranger may name any sender: rules are for clients we relay
	 * for (a user rule needs AUTH anyway) */
	for (int by_user = 1; is_trusted && by_user >= 0; by_user--) {
		for (size_t i = 0; i < cfg->router.n_pool_rules; i++) {
			const struct cfg_pool_rule *r =
				&cfg->router.pool_rules[i];

			if (!pool_rule_applies(r, by_user, auth_user,
					       mail_from))
				continue;
			if (!out->pool && r->pool)
				out->pool = r->pool;
			if (out->priority == CFG_PRIORITY_UNSET)
				out->priority = r->priority;
			if (!has_tenant && r->tenant) {
				snprintf(out->tenant, sizeof(out->tenant), "%s",
					 r->tenant);
				has_tenant = true;
			}
		}
	}
	if (!out->pool && config_find_pool(cfg, cfg->delivery.default_pool))
		out->pool = cfg->delivery.default_pool;
	if (out->priority == CFG_PRIORITY_UNSET)
		out->priority = CFG_PRIORITY_NORMAL;
	/* a user name that is no tenant name leaves the mail without one */
	if (!has_tenant && envelope_tenant_ok(auth_user))
		snprintf(out->tenant, sizeof(out->tenant), "%s", auth_user);
}

const char *
pool_choose(const struct config *cfg, const char *header_value, bool is_trusted,
	    const char *auth_user, const char *mail_from)
{
	struct pool_choice c;

	pool_classify(cfg, header_value, NULL, NULL, is_trusted, auth_user,
		      mail_from, &c);
	return c.pool;
}
