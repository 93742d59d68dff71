/* Envelope checks for data received from another process. */
#include "lib/envelope.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static int
envelope_str_ok(const char *s, size_t max)
{
	return s != NULL && strnlen(s, max + 1) <= max;
}

/* No CR, LF or other control character (0x00-0x1f, 0x7f): node/queue/bounce.c
 * copies addresses, ORCPT and ENVID into DSN header fields, where one
 * would start a new field. A NUL sent on the wire ends the C string that
 * protobuf-c hands us, so it never gets past this point. */
static bool
envelope_str_is_clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int
envelope_validate(const Shoal__Envelope *env, const char **why)
{
	if (env == NULL) {
		*why = "no envelope";
		return -EPROTO;
	}
	if (!envelope_str_ok(env->mail_from, ENVELOPE_ADDR_MAX)) {
		*why = "sender too long";
		return -EPROTO;
	}
	if (!envelope_str_is_clean(env->mail_from)) {
		*why = "control character in sender";
		return -EPROTO;
	}
	if (env->n_rcpts == 0 || env->n_rcpts > ENVELOPE_RCPTS_MAX) {
		*why = "recipient count out of range";
		return -EPROTO;
	}
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const Shoal__Recipient *r = env->rcpts[i];

		if (r->address[0] == '\0' ||
		    !envelope_str_ok(r->address, ENVELOPE_ADDR_MAX) ||
		    !envelope_str_ok(r->orcpt, ENVELOPE_TEXT_MAX) ||
		    !envelope_str_ok(r->last_reply, ENVELOPE_TEXT_MAX) ||
		    !envelope_str_ok(r->category, 32) ||
		    r->notify > 15) {
			*why = "bad recipient";
			return -EPROTO;
		}
		if (!envelope_str_is_clean(r->address) ||
		    !envelope_str_is_clean(r->orcpt)) {
			*why = "control character in recipient or orcpt";
			return -EPROTO;
		}
		if ((unsigned)r->state > SHOAL__RCPT_STATE__RCPT_BOUNCED) {
			*why = "bad recipient state";
			return -EPROTO;
		}
	}
	if ((unsigned)env->ret > SHOAL__RET__RET_HDRS ||
	    (unsigned)env->body > SHOAL__BODY_TYPE__BODY_BINARYMIME) {
		*why = "bad enum value";
		return -EPROTO;
	}
	if (!envelope_str_ok(env->envid, 100) ||
	    !envelope_str_ok(env->client_addr, ENVELOPE_TEXT_MAX) ||
	    !envelope_str_ok(env->helo, ENVELOPE_TEXT_MAX) ||
	    !envelope_str_ok(env->auth_user, ENVELOPE_TEXT_MAX) ||
	    !envelope_str_ok(env->pool, 64) ||
	    (env->tenant[0] && !envelope_tenant_ok(env->tenant))) {
		*why = "field too long";
		return -EPROTO;
	}
	if (!envelope_str_is_clean(env->envid)) {
		*why = "control character in envid";
		return -EPROTO;
	}
	if (!envelope_str_is_clean(env->pool) ||
	    !envelope_str_is_clean(env->tenant)) {
		*why = "control character in pool or tenant";
		return -EPROTO;
	}
	/* a priority this version does not know is served as normal
	 * (envelope_class()): a newer router's mail still goes */
	return 0;
}

const char *
envelope_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

uint32_t
envelope_class(const Shoal__Envelope *env)
{
	if (env == NULL)
		return SHOAL__PRIORITY__PRIORITY_NORMAL;
	switch (env->priority) {
	case SHOAL__PRIORITY__PRIORITY_HIGH:
	case SHOAL__PRIORITY__PRIORITY_BULK:
		return (uint32_t)env->priority;
	default:
		return SHOAL__PRIORITY__PRIORITY_NORMAL;
	}
}

bool
envelope_tenant_ok(const char *t)
{
	size_t n = t ? strnlen(t, ENVELOPE_TENANT_MAX + 1) : 0;

	if (n == 0 || n > ENVELOPE_TENANT_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
			return false;
	}
	return true;
}
