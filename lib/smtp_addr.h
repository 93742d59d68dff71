/* RFC 5321 paths and mailboxes (4.1.2, 4.1.3, 4.5.3.1) with RFC 6531
 * (SMTPUTF8) UTF-8 local parts and domains. Handles untrusted input. */
#ifndef SHOAL_SMTP_ADDR_H
#define SHOAL_SMTP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_LOCAL_MAX 64    /* RFC 5321 4.5.3.1.1, octets */
#define SMTP_DOMAIN_MAX 255  /* RFC 5321 4.5.3.1.2, octets */
#define SMTP_PATH_MAX 256    /* RFC 5321 4.5.3.1.3, incl. <> */
#define SMTP_MAILBOX_MAX (SMTP_LOCAL_MAX + 1 + SMTP_DOMAIN_MAX)

/* Parse results; each has a fixed reply in smtp_addr_strerror(). */
enum smtp_addr_err {
	SMTP_ADDR_OK = 0,
	SMTP_ADDR_E_SYNTAX = -1,        /* not a path at all */
	SMTP_ADDR_E_LOCAL_TOO_LONG = -2,
	SMTP_ADDR_E_DOMAIN_TOO_LONG = -3,
	SMTP_ADDR_E_PATH_TOO_LONG = -4,
	SMTP_ADDR_E_NEEDS_SMTPUTF8 = -5, /* 8-bit octets without SMTPUTF8 */
	SMTP_ADDR_E_BAD_UTF8 = -6,       /* malformed UTF-8 */
	SMTP_ADDR_E_BAD_DOMAIN = -7,     /* bad label, empty label, bad literal */
	SMTP_ADDR_E_NO_DOMAIN = -8,      /* "user" without @domain */
};

struct smtp_addr {
	bool is_null;            /* the null path <> */
	bool is_ip_literal;      /* domain is [1.2.3.4] or [IPv6:...] */
	bool is_utf8;            /* contains octets >= 0x80 */
	bool had_source_route;   /* "@a,@b:" was present (and dropped) */
	char local[SMTP_LOCAL_MAX + 1];   /* as written, quotes included */
	char domain[SMTP_DOMAIN_MAX + 1]; /* as written, case kept */
	char mailbox[SMTP_MAILBOX_MAX + 1]; /* local@domain, "" for <> */
};

/* Flags for smtp_path_parse(). */
#define SMTP_ADDR_ALLOW_NULL  0x1  /* accept <> (MAIL FROM) */
#define SMTP_ADDR_ALLOW_UTF8  0x2  /* SMTPUTF8 was given on MAIL */
#define SMTP_ADDR_ALLOW_NOBRACKET 0x4 /* tolerate a missing <> pair */
#define SMTP_ADDR_ALLOW_NODOMAIN 0x8  /* "postmaster" alone (RCPT TO) */

/* Parse a path at the start of s[0..len): "<" [ A-d-l ":" ] Mailbox ">" or
 * "<>". On success returns 0, fills *out and sets *consumed to the number
 * of bytes used (the caller parses ESMTP parameters after it). On failure
 * returns an smtp_addr_err; *out and *consumed are not written. */
int smtp_path_parse(const char *s, size_t len, unsigned flags,
		    struct smtp_addr *out, size_t *consumed);

/* Parse a bare mailbox (no <>), e.g. from a config file or an ORCPT.
 * Same return values as smtp_path_parse(). */
int smtp_mailbox_parse(const char *s, size_t len, unsigned flags,
		       struct smtp_addr *out);

/* Whether a (a parsed recipient) is the postmaster of the server whose own
 * domain is our_domain (RFC 5321 4.5.1): the local part "Postmaster" in
 * any case, unquoted, with no domain (SMTP_ADDR_ALLOW_NODOMAIN) or with
 * our_domain, compared without regard to ASCII case. The postmaster of any
 * other domain is an ordinary remote address. */
bool smtp_addr_is_postmaster(const struct smtp_addr *a, const char *our_domain);

/* Check that s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
bool smtp_utf8_valid(const char *s, size_t len);

/* A reply line without CRLF, e.g. "501 5.1.3 Bad address syntax", for a
 * recipient (is_rcpt) or a sender. Static string. */
const char *smtp_addr_strerror(int err, bool is_rcpt);

#define SMTP_NAME_TEXT_MAX 253 /* RFC 1035 2.3.4, a name as text */

/* A DNS name as text: letters, digits, '-' and '_', labels of 1..63, at
 * most SMTP_NAME_TEXT_MAX in all, one trailing dot dropped; written
 * lower-cased into out. Returns 0, or -EINVAL (out untouched). For the
 * names an operator or a peer hands us (a report's domain). */
int smtp_name_norm(const char *in, char out[SMTP_NAME_TEXT_MAX + 1]);

#endif
