/* Injection requests (inject.h, docs/http.md "Request format"): the JSON
 * document parsed with jansson, every field checked, and the plan (one
 * message for all recipients, or one each). Leaves substitutions and the
 * messages to inject_build.c. Handles untrusted input: everything here
 * comes from the request body; the one rule for an address is
 * lib/smtp_addr.h's, the one for a tenant lib/envelope.h's. */
#include "router/inject.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/envelope.h"
#include "lib/err.h"
#include "lib/smtp_addr.h"
#include "lib/xmalloc.h"
#include "router/inject_int.h"
#include "router/inject_mime.h"

#define INJ_SHOW_MAX 48 /* bytes of a request's text shown in an error */
#define INJ_BASE_MAX 64 /* a path that gets a key appended: "recipients[N]" */

/* Fields the builder writes itself, and where the request sets them. */
static const struct {
	const char *name;
	const char *hint;
} inj_owned[] = {
	{ "From", "; use content.from" },
	{ "Reply-To", "; use content.reply_to" },
	{ "Subject", "; use content.subject" },
	{ "Date", "" },
	{ "Message-ID", "" },
	{ "MIME-Version", "" },
	{ "Content-Type", "" },
	{ "Content-Transfer-Encoding", "" },
};

static void
inj_printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

int
inject_fail(struct inject_error *e, int rc, const char *field, const char *fmt,
	    ...)
{
	va_list ap;

	snprintf(e->field, sizeof(e->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	inj_printable(e->field);
	inj_printable(e->message);
	return rc;
}

/* s[0..n) cut to INJ_SHOW_MAX bytes, for a path or a message (made
 * printable by inject_fail()). */
static void
inj_show(char *dst, size_t len, const char *s, size_t n)
{
	if (n > INJ_SHOW_MAX)
		snprintf(dst, len, "%.*s...", INJ_SHOW_MAX, s);
	else
		snprintf(dst, len, "%.*s", (int)n, s);
}

const char *
inject_hdr_text_bad(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n')
			return "CR or LF in a header field";
		if (c == '\0')
			return "NUL in a header field";
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "control character in a header field";
	}
	return NULL;
}

static int
inj_hdr_text(const struct inject_text *t, const char *path,
	     struct inject_error *e)
{
	const char *why = t->s ? inject_hdr_text_bad(t->s, t->len) : NULL;

	return why ? inject_fail(e, -EINVAL, path, "%s", why) : 0;
}

/* Every key of obj is in known (NULL-terminated). */
static int
inj_keys(json_t *obj, const char *const *known, const char *prefix,
	 struct inject_error *e)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
	{
		char show[INJ_SHOW_MAX + 4], path[INJECT_FIELD_MAX];
		size_t i;

		for (i = 0; known[i] && strcmp(known[i], k) != 0; i++)
			;
		if (known[i])
			continue;
		inj_show(show, sizeof(show), k, strlen(k));
		snprintf(path, sizeof(path), "%s%s%s", prefix,
			 *prefix ? "." : "", show);
		return inject_fail(e, -EINVAL, path, "unknown key");
	}
	return 0;
}

/* obj[key] as text: t->s NULL when it is absent or null and optional. */
static int
inj_text(json_t *obj, const char *key, const char *path, bool is_required,
	 struct inject_text *t, struct inject_error *e)
{
	json_t *v = json_object_get(obj, key);

	t->s = NULL;
	t->len = 0;
	if (!v || json_is_null(v))
		return is_required ? inject_fail(e, -EINVAL, path, "required") :
				     0;
	if (!json_is_string(v))
		return inject_fail(e, -EINVAL, path, "expected a string");
	t->s = json_string_value(v);
	t->len = json_string_length(v);
	return 0;
}

static const char *
inj_addr_why(int err)
{
	switch (err) {
	case SMTP_ADDR_E_LOCAL_TOO_LONG:
		return "local part longer than 64 octets";
	case SMTP_ADDR_E_DOMAIN_TOO_LONG:
		return "domain longer than 255 octets";
	case SMTP_ADDR_E_PATH_TOO_LONG:
		return "address too long";
	case SMTP_ADDR_E_BAD_UTF8:
		return "malformed UTF-8 in the address";
	case SMTP_ADDR_E_BAD_DOMAIN:
		return "not a valid domain";
	case SMTP_ADDR_E_NO_DOMAIN:
		return "address without a domain";
	default:
		return "not a valid email address";
	}
}

/* A mailbox as SMTP takes it (RFC 5321 4.1.2, RFC 6531), with a domain. */
static int
inj_addr(struct inject_req *r, const struct inject_text *t, const char *path,
	 struct inject_error *e)
{
	struct smtp_addr a;
	int rc = smtp_mailbox_parse(t->s, t->len, SMTP_ADDR_ALLOW_UTF8, &a);

	if (rc != SMTP_ADDR_OK)
		return inject_fail(e, -EINVAL, path, "%s", inj_addr_why(rc));
	r->is_smtputf8 |= a.is_utf8;
	return 0;
}

/* {"email": ..., "name": ...} at path: from, reply_to. */
static int
inj_mailbox(struct inject_req *r, json_t *v, const char *path,
	    const char **email, const char **name, struct inject_error *e)
{
	static const char *const known[] = { "email", "name", NULL };
	char p[INJECT_FIELD_MAX];
	struct inject_text t;
	int rc;

	if (!json_is_object(v))
		return inject_fail(e, -EINVAL, path, "expected an object");
	if ((rc = inj_keys(v, known, path, e)) != 0)
		return rc;
	snprintf(p, sizeof(p), "%s.email", path);
	if ((rc = inj_text(v, "email", p, true, &t, e)) != 0 ||
	    (rc = inj_addr(r, &t, p, e)) != 0)
		return rc;
	*email = t.s;
	snprintf(p, sizeof(p), "%s.name", path);
	if ((rc = inj_text(v, "name", p, false, &t, e)) != 0 ||
	    (rc = inj_hdr_text(&t, p, e)) != 0)
		return rc;
	*name = t.len > 0 ? t.s : NULL;
	return 0;
}

static bool
inj_key_ok(const char *k, size_t n)
{
	if (n == 0 || n > INJECT_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!inject_is_key_char((unsigned char)k[i]))
			return false;
	return true;
}

/* A number as its shortest JSON text that reads back the same. */
static json_t *
inj_number(json_t *v)
{
	char s[40];

	if (json_is_integer(v)) {
		snprintf(s, sizeof(s), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
	} else {
		double d = json_real_value(v);

		for (int prec = 1; prec <= 17; prec++) {
			snprintf(s, sizeof(s), "%.*g", prec, d);
			if (strtod(s, NULL) == d)
				break;
		}
	}
	return json_string_nocheck(s);
}

/* A substitutions object at path into *out: key -> string (NULL when
 * absent, null or empty). */
static int
inj_subst(struct inject_req *r, json_t *v, const char *path, json_t **out,
	  struct inject_error *e)
{
	char p[INJECT_FIELD_MAX], show[INJ_SHOW_MAX + 4];
	const char *k;
	json_t *x, *m;

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return inject_fail(e, -EINVAL, path, "expected an object");
	if (json_object_size(v) > INJECT_SUBST_MAX)
		return inject_fail(e, -EINVAL, path, "more than %d keys",
				   INJECT_SUBST_MAX);
	m = json_object();
	json_object_foreach(v, k, x)
	{
		size_t n = strlen(k);

		inj_show(show, sizeof(show), k, n);
		snprintf(p, sizeof(p), "%s.%s", path, show);
		if (!inj_key_ok(k, n)) {
			json_decref(m);
			return inject_fail(e, -EINVAL, p,
					   "a key is 1 to %d of A-Z a-z 0-9 "
					   "_ . -",
					   INJECT_KEY_MAX);
		}
		if (json_is_string(x)) {
			json_object_set_nocheck(m, k, x);
			r->has_8bit_subst |= !inject_mime_is_ascii(
				json_string_value(x), json_string_length(x));
		} else if (json_is_number(x)) {
			json_object_set_new_nocheck(m, k, inj_number(x));
		} else {
			json_decref(m);
			return inject_fail(e, -EINVAL, p,
					   "expected a string or a number");
		}
	}
	if (json_object_size(m) == 0)
		json_decref(m);
	else
		*out = m;
	return 0;
}

static int
inj_rcpts(struct inject_req *r, json_t *v, struct inject_error *e)
{
	static const char *const known[] = { "email", "name", "substitutions",
					     NULL };
	char path[INJ_BASE_MAX], p[INJECT_FIELD_MAX];
	size_t n;
	int rc;

	if (!json_is_array(v))
		return inject_fail(e, -EINVAL, "recipients",
				   "expected an array");
	n = json_array_size(v);
	if (n == 0)
		return inject_fail(e, -EINVAL, "recipients",
				   "at least one recipient is required");
	if (n > r->lim.max_recipients)
		return inject_fail(e, -EINVAL, "recipients",
				   "more than %zu recipients",
				   r->lim.max_recipients);
	r->rcpts = xcalloc(n, sizeof(*r->rcpts));
	r->n_rcpts = n;
	for (size_t i = 0; i < n; i++) {
		struct inject_rcpt *rp = &r->rcpts[i];
		json_t *o = json_array_get(v, i);
		struct inject_text t;

		snprintf(path, sizeof(path), "recipients[%zu]", i);
		if (!json_is_object(o))
			return inject_fail(e, -EINVAL, path,
					   "expected an object");
		if ((rc = inj_keys(o, known, path, e)) != 0)
			return rc;
		snprintf(p, sizeof(p), "%s.email", path);
		if ((rc = inj_text(o, "email", p, true, &t, e)) != 0 ||
		    (rc = inj_addr(r, &t, p, e)) != 0)
			return rc;
		rp->email = t.s;
		snprintf(p, sizeof(p), "%s.name", path);
		if ((rc = inj_text(o, "name", p, false, &t, e)) != 0 ||
		    (rc = inj_hdr_text(&t, p, e)) != 0)
			return rc;
		rp->name = t.len > 0 ? t.s : NULL;
		snprintf(p, sizeof(p), "%s.substitutions", path);
		if ((rc = inj_subst(r, json_object_get(o, "substitutions"), p,
				    &rp->subst, e)) != 0)
			return rc;
	}
	return 0;
}

/* RFC 2045 5.1 token */
static bool
inj_is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c))
			return false;
	}
	return true;
}

/* type "/" subtype, and nothing a base64 part may not be (RFC 2046
 * 5.1, 5.2.1: multipart and message entities are never base64). */
static const char *
inj_ctype_bad(const char *s, size_t n)
{
	const char *slash = memchr(s, '/', n);

	if (n > INJECT_CTYPE_MAX || !slash || !inj_is_token(s, slash - s) ||
	    !inj_is_token(slash + 1, n - (slash - s) - 1))
		return "expected type/subtype";
	if (strncasecmp(s, "multipart/", 10) == 0 ||
	    strncasecmp(s, "message/", 8) == 0)
		return "multipart and message types cannot be attached";
	return NULL;
}

/* RFC 2392 id, as an HTML part names it in cid:ID: dot-atom text and
 * "@", no angle brackets (the builder adds them). */
static bool
inj_cid_ok(const char *s, size_t n)
{
	if (n == 0 || n > INJECT_CID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("()<>,;:\\\"[]", c))
			return false;
	}
	return true;
}

static int
inj_attach_one(struct inject_attach *a, json_t *o, const char *path,
	       struct inject_error *e)
{
	static const char *const known[] = { "data",	     "base64",
					     "content_type", "file_name",
					     "content_id",   NULL };
	char p[INJECT_FIELD_MAX];
	struct inject_text t;
	const char *why;
	json_t *b64;
	int rc;

	if (!json_is_object(o))
		return inject_fail(e, -EINVAL, path, "expected an object");
	if ((rc = inj_keys(o, known, path, e)) != 0)
		return rc;
	snprintf(p, sizeof(p), "%s.base64", path);
	b64 = json_object_get(o, "base64");
	if (b64 && !json_is_null(b64) && !json_is_boolean(b64))
		return inject_fail(e, -EINVAL, p, "expected true or false");
	snprintf(p, sizeof(p), "%s.data", path);
	if ((rc = inj_text(o, "data", p, true, &t, e)) != 0)
		return rc;
	if (b64 && json_is_true(b64)) {
		if (inject_mime_unbase64(t.s, t.len, &a->data, &a->len, &why) !=
		    0)
			return inject_fail(e, -EINVAL, p, "bad base64: %s",
					   why);
	} else {
		a->data = xmalloc(t.len + 1);
		memcpy(a->data, t.s, t.len);
		a->len = t.len;
	}
	snprintf(p, sizeof(p), "%s.content_type", path);
	if ((rc = inj_text(o, "content_type", p, false, &t, e)) != 0)
		return rc;
	if (t.s && (why = inj_ctype_bad(t.s, t.len)) != NULL)
		return inject_fail(e, -EINVAL, p, "%s", why);
	a->content_type = t.s ? t.s : "application/octet-stream";
	snprintf(p, sizeof(p), "%s.file_name", path);
	if ((rc = inj_text(o, "file_name", p, false, &t, e)) != 0 ||
	    (rc = inj_hdr_text(&t, p, e)) != 0)
		return rc;
	if (t.s && (t.len == 0 || t.len > INJECT_FILENAME_MAX))
		return inject_fail(e, -EINVAL, p, "1 to %d bytes",
				   INJECT_FILENAME_MAX);
	a->file_name = t.s;
	snprintf(p, sizeof(p), "%s.content_id", path);
	if ((rc = inj_text(o, "content_id", p, false, &t, e)) != 0)
		return rc;
	if (t.s && !inj_cid_ok(t.s, t.len))
		return inject_fail(e, -EINVAL, p,
				   "expected 1 to %d printable characters "
				   "without spaces, quotes or brackets",
				   INJECT_CID_MAX);
	a->content_id = t.s;
	return 0;
}

static int
inj_attachments(struct inject_req *r, json_t *v, struct inject_error *e)
{
	char path[INJ_BASE_MAX];
	size_t n;
	int rc;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return inject_fail(e, -EINVAL, "content.attachments",
				   "expected an array");
	n = json_array_size(v);
	if (n > INJECT_ATTACH_MAX)
		return inject_fail(e, -EINVAL, "content.attachments",
				   "more than %d attachments",
				   INJECT_ATTACH_MAX);
	r->attach = xcalloc(n ? n : 1, sizeof(*r->attach));
	r->n_attach = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "content.attachments[%zu]", i);
		if ((rc = inj_attach_one(&r->attach[i], json_array_get(v, i),
					 path, e)) != 0)
			return rc;
	}
	return 0;
}

/* RFC 5322 3.6.8 field-name, within INJECT_HNAME_MAX. */
static bool
inj_hname_ok(const char *s, size_t n)
{
	if (n == 0 || n > INJECT_HNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 ||
		    s[i] == ':')
			return false;
	return true;
}

static int
inj_headers(struct inject_req *r, json_t *v, struct inject_error *e)
{
	char path[INJECT_FIELD_MAX], show[INJ_SHOW_MAX + 4];
	const char *name;
	json_t *x;
	int rc;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return inject_fail(e, -EINVAL, "content.headers",
				   "expected an object");
	if (json_object_size(v) > INJECT_HEADERS_MAX)
		return inject_fail(e, -EINVAL, "content.headers",
				   "more than %d header fields",
				   INJECT_HEADERS_MAX);
	r->headers = xcalloc(json_object_size(v) + 1, sizeof(*r->headers));
	json_object_foreach(v, name, x)
	{
		size_t n = strlen(name);
		struct inject_text t;

		inj_show(show, sizeof(show), name, n);
		snprintf(path, sizeof(path), "content.headers.%s", show);
		if (!inj_hname_ok(name, n))
			return inject_fail(e, -EINVAL, path,
					   "not a header field name (1 to %d "
					   "printable characters but ':')",
					   INJECT_HNAME_MAX);
		for (size_t i = 0; i < sizeof(inj_owned) / sizeof(*inj_owned);
		     i++)
			if (strcasecmp(name, inj_owned[i].name) == 0)
				return inject_fail(e, -EINVAL, path,
						   "set by the builder%s",
						   inj_owned[i].hint);
		if ((rc = inj_text(v, name, path, true, &t, e)) != 0 ||
		    (rc = inj_hdr_text(&t, path, e)) != 0)
			return rc;
		if (strcasecmp(name, "To") != 0) {
			r->headers[r->n_headers].name = name;
			r->headers[r->n_headers++].value = t;
			continue;
		}
		if (r->to.s)
			return inject_fail(e, -EINVAL, path, "given twice");
		r->to = t;
		r->to_name = name;
	}
	return 0;
}

static int
inj_structured(struct inject_req *r, json_t *c, struct inject_error *e)
{
	static const char *const known[] = { "from",	    "reply_to",
					     "subject",	    "text_body",
					     "html_body",   "headers",
					     "attachments", NULL };
	json_t *v;
	int rc;

	if ((rc = inj_keys(c, known, "content", e)) != 0)
		return rc;
	if (!(v = json_object_get(c, "from")) || json_is_null(v))
		return inject_fail(e, -EINVAL, "content.from", "required");
	if ((rc = inj_mailbox(r, v, "content.from", &r->from_email,
			      &r->from_name, e)) != 0)
		return rc;
	if ((v = json_object_get(c, "reply_to")) && !json_is_null(v) &&
	    (rc = inj_mailbox(r, v, "content.reply_to", &r->reply_email,
			      &r->reply_name, e)) != 0)
		return rc;
	if ((rc = inj_text(c, "subject", "content.subject", true, &r->subject,
			   e)) != 0 ||
	    (rc = inj_hdr_text(&r->subject, "content.subject", e)) != 0 ||
	    (rc = inj_text(c, "text_body", "content.text_body", false, &r->text,
			   e)) != 0 ||
	    (rc = inj_text(c, "html_body", "content.html_body", false, &r->html,
			   e)) != 0)
		return rc;
	if (!r->text.s && !r->html.s)
		return inject_fail(e, -EINVAL, "content.text_body",
				   "text_body or html_body is required");
	if ((rc = inj_headers(r, json_object_get(c, "headers"), e)) != 0)
		return rc;
	return inj_attachments(r, json_object_get(c, "attachments"), e);
}

static int
inj_content(struct inject_req *r, json_t *c, struct inject_error *e)
{
	if (!c)
		return inject_fail(e, -EINVAL, "content", "required");
	if (json_is_object(c))
		return inj_structured(r, c, e);
	if (!json_is_string(c))
		return inject_fail(e, -EINVAL, "content",
				   "expected a string or an object");
	r->is_raw = true;
	r->raw.s = json_string_value(c);
	r->raw.len = json_string_length(c);
	if (r->raw.len == 0)
		return inject_fail(e, -EINVAL, "content", "empty");
	return 0;
}

/* pool, priority, tenant */
static int
inj_routing(struct inject_req *r, struct inject_error *e)
{
	static const char *const prio[] = { "high", "normal", "bulk" };
	struct inject_text t;
	int rc;

	if ((rc = inj_text(r->doc, "pool", "pool", false, &t, e)) != 0)
		return rc;
	if (t.s) {
		bool is_ok = t.len > 0 && t.len <= INJECT_POOL_MAX;

		for (size_t i = 0; i < t.len && is_ok; i++)
			is_ok = inject_is_key_char((unsigned char)t.s[i]);
		if (!is_ok)
			return inject_fail(e, -EINVAL, "pool",
					   "a pool name is 1 to %d of A-Z a-z "
					   "0-9 _ . -",
					   INJECT_POOL_MAX);
		r->pool = t.s;
	}
	if ((rc = inj_text(r->doc, "priority", "priority", false, &t, e)) != 0)
		return rc;
	for (size_t i = 0; t.s && i < 3 && !r->priority[0]; i++)
		if (strcasecmp(t.s, prio[i]) == 0)
			snprintf(r->priority, sizeof(r->priority), "%s",
				 prio[i]);
	if (t.s && !r->priority[0])
		return inject_fail(e, -EINVAL, "priority",
				   "expected high, normal or bulk");
	if ((rc = inj_text(r->doc, "tenant", "tenant", false, &t, e)) != 0)
		return rc;
	if (t.s && !envelope_tenant_ok(t.s))
		return inject_fail(e, -EINVAL, "tenant",
				   "a tenant is 1 to %d printable ASCII "
				   "characters without spaces, quotes or "
				   "backslashes",
				   ENVELOPE_TENANT_MAX);
	r->tenant = t.s;
	return 0;
}

/* One message for all recipients, unless a recipient has substitutions
 * of its own or structured content names no "To" (each recipient then
 * gets its own). */
static void
inj_plan(struct inject_req *r)
{
	r->all_idx = xmalloc(r->n_rcpts * sizeof(*r->all_idx));
	r->is_per_rcpt = !r->is_raw && !r->to.s;
	/* a given To goes as it is: UTF-8 in it, written or substituted
	 * (any value that is, to be safe), needs SMTPUTF8 */
	if (r->to.s &&
	    (!inject_mime_is_ascii(r->to.s, r->to.len) ||
	     (r->has_8bit_subst && memmem(r->to.s, r->to.len, "{{", 2))))
		r->is_smtputf8 = true;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		r->all_idx[i] = i;
		r->is_per_rcpt |= r->rcpts[i].subst != NULL;
	}
}

static int
inj_request(struct inject_req *r, struct inject_error *e)
{
	static const char *const known[] = {
		"envelope_sender", "recipients", "substitutions",
		"content",	   "pool",	 "priority",
		"tenant",	   NULL
	};
	struct inject_text t;
	json_t *v;
	int rc;

	if ((rc = inj_keys(r->doc, known, "", e)) != 0 ||
	    (rc = inj_text(r->doc, "envelope_sender", "envelope_sender", true,
			   &t, e)) != 0 ||
	    (t.len > 0 && (rc = inj_addr(r, &t, "envelope_sender", e)) != 0))
		return rc;
	r->sender = t.s;
	if (!(v = json_object_get(r->doc, "recipients")))
		return inject_fail(e, -EINVAL, "recipients", "required");
	if ((rc = inj_rcpts(r, v, e)) != 0 ||
	    (rc = inj_subst(r, json_object_get(r->doc, "substitutions"),
			    "substitutions", &r->subst, e)) != 0 ||
	    (rc = inj_content(r, json_object_get(r->doc, "content"), e)) != 0 ||
	    (rc = inj_routing(r, e)) != 0)
		return rc;
	inj_plan(r);
	return 0;
}

int
inject_parse(const char *json, size_t len, const struct inject_limits *lim,
	     struct inject_req **out, struct inject_error *e)
{
	struct inject_req *r;
	json_error_t je;
	json_t *doc;
	int rc;

	/* no JSON_ALLOW_NUL: a string never holds NUL; trailing data and
	 * malformed UTF-8 are refused by jansson itself */
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return inject_fail(e, -EINVAL, "",
				   "invalid JSON at line %d, column %d: %s",
				   je.line, je.column, je.text);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return inject_fail(e, -EINVAL, "", "expected a JSON object");
	}
	r = xcalloc(1, sizeof(*r));
	r->doc = doc;
	r->lim = *lim;
	if ((rc = inj_request(r, e)) != 0) {
		inject_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void
inject_free(struct inject_req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_rcpts; i++)
		json_decref(r->rcpts[i].subst);
	for (size_t i = 0; i < r->n_attach; i++)
		free(r->attach[i].data);
	free(r->rcpts);
	free(r->attach);
	free(r->headers);
	free(r->all_idx);
	json_decref(r->subst);
	json_decref(r->doc);
	free(r);
}

const char *
inject_sender(const struct inject_req *r)
{
	return r->sender;
}

const char *
inject_pool(const struct inject_req *r)
{
	return r->pool;
}

const char *
inject_priority(const struct inject_req *r)
{
	return r->priority[0] ? r->priority : NULL;
}

const char *
inject_tenant(const struct inject_req *r)
{
	return r->tenant;
}

bool
inject_smtputf8(const struct inject_req *r)
{
	return r->is_smtputf8;
}

size_t
inject_n_rcpts(const struct inject_req *r)
{
	return r->n_rcpts;
}

const char *
inject_rcpt(const struct inject_req *r, size_t i)
{
	SHOAL_ASSERT(i < r->n_rcpts);
	return r->rcpts[i].email;
}

size_t
inject_n_messages(const struct inject_req *r)
{
	return r->is_per_rcpt ? r->n_rcpts : 1;
}

size_t
inject_message_rcpts(const struct inject_req *r, size_t m, const size_t **idx)
{
	SHOAL_ASSERT(m < inject_n_messages(r));
	if (!r->is_per_rcpt) {
		*idx = r->all_idx;
		return r->n_rcpts;
	}
	*idx = &r->all_idx[m];
	return 1;
}
