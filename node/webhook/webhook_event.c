/* Webhook events as JSON (webhook_event.h). Handles untrusted input: the
 * reply text and MX name come from remote servers, addresses from
 * clients. Each field is cut to its bound and made valid UTF-8 before
 * jansson sees it; jansson escapes control characters, and
 * JSON_ENSURE_ASCII keeps the body plain ASCII on the wire. */
#include "node/webhook/webhook_event.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/xmalloc.h"

static const char *const webhook_type_names[WEBHOOK_TYPES] = {
	[WEBHOOK_DELIVERED] = "delivered",
	[WEBHOOK_DEFERRED] = "deferred",
	[WEBHOOK_BOUNCED] = "bounced",
	[WEBHOOK_EXPIRED] = "expired",
	[WEBHOOK_SUPPRESSED] = "suppressed",
	[WEBHOOK_SHAPING] = "shaping",
};

const char *
webhook_type_name(enum webhook_type t)
{
	return (unsigned)t < WEBHOOK_TYPES ? webhook_type_names[t] : "";
}

int
webhook_type_parse(const char *name, enum webhook_type *out)
{
	for (int i = 0; i < WEBHOOK_TYPES; i++)
		if (strcmp(webhook_type_names[i], name) == 0) {
			*out = (enum webhook_type)i;
			return 0;
		}
	return -EINVAL;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0
 * (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t
webhook_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* s cut to at most max bytes of valid UTF-8 (a bad byte becomes U+FFFD,
 * a cut ends in "..."), into a new string. */
static char *
webhook_clean(const char *s, size_t max)
{
	static const char repl[] = "\xef\xbf\xbd";
	size_t n = strlen(s), o = 0;
	char *out = xmalloc(max + 4);

	for (size_t i = 0; i < n;) {
		size_t l = webhook_utf8_len((const unsigned char *)s + i,
					    n - i);
		const char *src = l ? s + i : repl;
		size_t w = l ? l : 3;

		if (o + w > max) {
			while (o > max - 3 && o > 0) {
				/* back to a character boundary */
				o--;
				while (o > 0 && ((unsigned char)out[o] & 0xc0) ==
							0x80)
					o--;
			}
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, src, w);
		o += w;
		i += l ? l : 1;
	}
	out[o] = '\0';
	return out;
}

static void
webhook_set_str(json_t *o, const char *key, const char *v, size_t max)
{
	char *c;

	if (v == NULL)
		return;
	c = webhook_clean(v, max);
	json_object_set_new(o, key, json_string(c));
	free(c);
}

char *
webhook_event_encode(const struct webhook_event *ev, size_t max, size_t *len)
{
	json_t *o = json_object();
	char *text;

	SHOAL_ASSERT(o != NULL);
	webhook_set_str(o, "id", ev->id, QID_LEN);
	webhook_set_str(o, "type", webhook_type_name(ev->type), 16);
	json_object_set_new(o, "time", json_integer((json_int_t)ev->time));
	webhook_set_str(o, "node", ev->node, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "qid", ev->qid, QID_MAX);
	webhook_set_str(o, "sender", ev->sender, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "recipient", ev->recipient, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "destination", ev->destination, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "mx", ev->mx, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "response", ev->response, WEBHOOK_TEXT_MAX);
	if (ev->type != WEBHOOK_SHAPING) {
		json_object_set_new(o, "code", json_integer(ev->code));
		webhook_set_str(o, "enhanced", ev->enhanced ? ev->enhanced : "",
				16);
		json_object_set_new(o, "attempt", json_integer(ev->attempt));
	}
	webhook_set_str(o, "tenant", ev->tenant, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "pool", ev->pool, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "priority", ev->priority, 16);
	webhook_set_str(o, "action", ev->action, 32);
	webhook_set_str(o, "provider", ev->provider, WEBHOOK_FIELD_MAX);
	webhook_set_str(o, "rule", ev->rule, WEBHOOK_FIELD_MAX);
	if (ev->type == WEBHOOK_SHAPING)
		json_object_set_new(o, "duration",
				    json_integer((json_int_t)ev->duration));
	text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (text == NULL)
		return NULL;
	*len = strlen(text);
	if (*len > max) {
		free(text);
		return NULL;
	}
	return text;
}
