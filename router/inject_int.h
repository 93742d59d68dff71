/* The insides of a parsed injection request, shared by router/inject.c
 * (parsing, checks, the plan) and router/inject_build.c (substitutions
 * and the messages). Internal to the two; everyone else uses
 * router/inject.h. */
#ifndef SHOAL_ROUTER_INJECT_INT_H
#define SHOAL_ROUTER_INJECT_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "router/inject.h"

/* Strings borrowed from the document live as long as the request; none
 * holds a NUL (jansson refuses \u0000 without JSON_ALLOW_NUL). */
struct inject_text {
	const char *s; /* NULL = not given */
	size_t len;
};

struct inject_rcpt {
	const char *email;
	const char *name; /* NULL = none */
	json_t *subst;	  /* key -> string, numbers rendered; NULL = none */
};

struct inject_header {
	const char *name; /* a valid field name, as given */
	struct inject_text value;
};

struct inject_attach {
	unsigned char *data; /* decoded, owned */
	size_t len;
	const char *content_type; /* type/subtype, checked */
	const char *file_name;	  /* NULL = none */
	const char *content_id;	  /* NULL = none; set = inline */
};

struct inject_req {
	json_t *doc; /* the parsed request: owns the borrowed strings */
	struct inject_limits lim;
	const char *sender; /* "" = null sender */
	const char *pool, *tenant;
	char priority[8]; /* "" = not given */
	bool is_smtputf8;

	struct inject_rcpt *rcpts;
	size_t n_rcpts;
	size_t *all_idx;  /* 0 .. n_rcpts - 1 */
	json_t *subst;	  /* global substitutions; NULL = none */
	bool is_per_rcpt; /* one message per recipient */

	bool is_raw;
	struct inject_text raw;
	/* structured content */
	const char *from_email, *from_name;   /* name: NULL = none */
	const char *reply_email, *reply_name; /* email: NULL = none */
	struct inject_text subject, text, html;
	struct inject_header *headers; /* "To" excluded */
	size_t n_headers;
	struct inject_text to; /* the "To" given in headers, or s NULL */
	const char *to_name;   /* its name as given ("To", "to", ...) */
	bool has_8bit_subst;   /* some substitution value is not ASCII */
	struct inject_attach *attach;
	size_t n_attach;
};

/* Fill e (field and message made printable ASCII) and return rc. */
int inject_fail(struct inject_error *e, int rc, const char *field,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* What is wrong with s[0..n) as (part of) a header field's text: CR or
 * LF (header injection), NUL, another control character; a static
 * reason, or NULL when nothing is. */
const char *inject_hdr_text_bad(const char *s, size_t n);

/* docs/http.md, "Substitutions": a key is 1 to INJECT_KEY_MAX of these */
static inline bool
inject_is_key_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

#endif
