/* Check suite for lib/smtp_addr.c: RFC 5321 4.1.2 paths as data tables
 * (null path, source routes, Dot-string and Quoted-string local parts,
 * LDH domains, address literals), the 4.5.3.1 size limits at and just past
 * each bound, RFC 6531 UTF-8 with and without SMTPUTF8, RFC 3629 UTF-8
 * validity, and the reply lines. Multi-octet strings are written as hex
 * escapes split from the next literal, so "\xbc" "cher" stays two tokens. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_addr.h"
#include "tests/unit/check_helpers.h"

#define F_NULL SMTP_ADDR_ALLOW_NULL
#define F_UTF8 SMTP_ADDR_ALLOW_UTF8
#define F_NOBR SMTP_ADDR_ALLOW_NOBRACKET
#define F_NODOM SMTP_ADDR_ALLOW_NODOMAIN

#define U_UE "\xc3\xbc"		  /* U+00FC, 2 octets */
#define U_EURO "\xe2\x82\xac"	  /* U+20AC, 3 octets */
#define U_GRIN "\xf0\x9f\x98\x80" /* U+1F600, 4 octets */

/* What a parsed path must look like besides its strings. */
#define A_NULL 0x1
#define A_LIT 0x2
#define A_UTF8 0x4
#define A_ROUTE 0x8

struct path_ok {
	const char *name;
	const char *in;
	unsigned flags;
	size_t consumed;
	const char *local, *domain, *mailbox;
	unsigned props; /* A_* */
};

static const struct path_ok path_ok_cases[] = {
	/* plain mailboxes */
	{ "simple mailbox", "<user@example.com>", 0, 18, "user", "example.com",
	  "user@example.com", 0 },
	{ "case of local and domain kept", "<User.Name@Example.COM>", 0, 23,
	  "User.Name", "Example.COM", "User.Name@Example.COM", 0 },
	{ "every atext character", "<!#$%&'*+-/=?^_`{|}~@example.com>", 0, 33,
	  "!#$%&'*+-/=?^_`{|}~", "example.com",
	  "!#$%&'*+-/=?^_`{|}~@example.com", 0 },
	{ "dotted local part", "<a.b.c@example.com>", 0, 19, "a.b.c",
	  "example.com", "a.b.c@example.com", 0 },
	{ "hyphen inside a label", "<x@a-b.example>", 0, 15, "x", "a-b.example",
	  "x@a-b.example", 0 },
	{ "single-label domain", "<x@localhost>", 0, 13, "x", "localhost",
	  "x@localhost", 0 },
	{ "label starting with a digit", "<x@3com.example>", 0, 16, "x",
	  "3com.example", "x@3com.example", 0 },
	{ "parameters after the path are left", "<a@b.example> SIZE=1", 0, 13,
	  "a", "b.example", "a@b.example", 0 },
	/* quoted local parts */
	{ "quoted local part holding @", "<\"a@b\"@example.com>", 0, 19,
	  "\"a@b\"", "example.com", "\"a@b\"@example.com", 0 },
	{ "quoted local part holding a space", "<\"a b\"@example.com>", 0, 19,
	  "\"a b\"", "example.com", "\"a b\"@example.com", 0 },
	{ "quoted local part with escaped quote", "<\"a\\\"b\"@example.com>", 0,
	  20, "\"a\\\"b\"", "example.com", "\"a\\\"b\"@example.com", 0 },
	{ "quoted local part with escaped backslash",
	  "<\"a\\\\b\"@example.com>", 0, 20, "\"a\\\\b\"", "example.com",
	  "\"a\\\\b\"@example.com", 0 },
	{ "quoted local part holding > and dots", "<\"..>\"@example.com>", 0,
	  19, "\"..>\"", "example.com", "\"..>\"@example.com", 0 },
	{ "empty quoted local part", "<\"\"@example.com>", 0, 16, "\"\"",
	  "example.com", "\"\"@example.com", 0 },
	/* address literals */
	{ "IPv4 literal", "<x@[192.0.2.1]>", 0, 15, "x", "[192.0.2.1]",
	  "x@[192.0.2.1]", A_LIT },
	{ "IPv6 literal", "<x@[IPv6:2001:db8::1]>", 0, 22, "x",
	  "[IPv6:2001:db8::1]", "x@[IPv6:2001:db8::1]", A_LIT },
	{ "IPv6 tag is case-insensitive", "<x@[ipv6:2001:DB8::1]>", 0, 22, "x",
	  "[ipv6:2001:DB8::1]", "x@[ipv6:2001:DB8::1]", A_LIT },
	{ "IPv6 literal with embedded IPv4", "<x@[IPv6:::ffff:192.0.2.1]>", 0,
	  27, "x", "[IPv6:::ffff:192.0.2.1]", "x@[IPv6:::ffff:192.0.2.1]",
	  A_LIT },
	{ "full IPv6 literal", "<x@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, 31, "x",
	  "[IPv6:2001:db8:0:0:0:0:0:1]", "x@[IPv6:2001:db8:0:0:0:0:0:1]",
	  A_LIT },
	/* null path and source routes */
	{ "null path with ALLOW_NULL", "<>", F_NULL, 2, "", "", "", A_NULL },
	{ "null path followed by parameters", "<> SIZE=1", F_NULL, 2, "", "",
	  "", A_NULL },
	{ "two-hop source route is dropped",
	  "<@a.example,@b.example:user@c.example>", 0, 38, "user", "c.example",
	  "user@c.example", A_ROUTE },
	{ "one-hop source route is dropped", "<@a.example:user@c.example>", 0,
	  27, "user", "c.example", "user@c.example", A_ROUTE },
	/* Postmaster without a domain (RFC 5321 4.1.1.3) */
	{ "Postmaster alone with ALLOW_NODOMAIN", "<Postmaster>", F_NODOM, 12,
	  "Postmaster", "", "Postmaster", 0 },
	{ "postmaster matched without case", "<pOSTMASTER>", F_NODOM, 12,
	  "pOSTMASTER", "", "pOSTMASTER", 0 },
	{ "Postmaster with a domain is a plain mailbox",
	  "<Postmaster@example.com>", F_NODOM, 24, "Postmaster", "example.com",
	  "Postmaster@example.com", 0 },
	/* SMTPUTF8 (RFC 6531 3.3) */
	{ "UTF-8 local part with SMTPUTF8", "<" U_UE "@example.com>", F_UTF8,
	  16, U_UE, "example.com", U_UE "@example.com", A_UTF8 },
	{ "UTF-8 domain label with SMTPUTF8", "<x@b" U_UE "cher.example>",
	  F_UTF8, 19, "x", "b" U_UE "cher.example", "x@b" U_UE "cher.example",
	  A_UTF8 },
	{ "three-octet UTF-8 everywhere", "<" U_EURO "@" U_EURO ".example>",
	  F_UTF8, 17, U_EURO, U_EURO ".example", U_EURO "@" U_EURO ".example",
	  A_UTF8 },
	{ "four-octet UTF-8 local part", "<" U_GRIN "@example.com>", F_UTF8, 18,
	  U_GRIN, "example.com", U_GRIN "@example.com", A_UTF8 },
	{ "UTF-8 inside a quoted local part", "<\"" U_UE " x\"@example.com>",
	  F_UTF8, 20, "\"" U_UE " x\"", "example.com",
	  "\"" U_UE " x\"@example.com", A_UTF8 },
	{ "ASCII path under SMTPUTF8 is not flagged", "<a@example.com>", F_UTF8,
	  15, "a", "example.com", "a@example.com", 0 },
	/* missing brackets */
	{ "no brackets with ALLOW_NOBRACKET", "user@example.com", F_NOBR, 16,
	  "user", "example.com", "user@example.com", 0 },
	{ "no brackets stops at the space", "user@example.com SIZE=1", F_NOBR,
	  16, "user", "example.com", "user@example.com", 0 },
	{ "brackets still fine with ALLOW_NOBRACKET", "<user@example.com>",
	  F_NOBR, 18, "user", "example.com", "user@example.com", 0 },
};

struct path_bad {
	const char *name;
	const char *in;
	unsigned flags;
	int rc;
};

static const struct path_bad path_bad_cases[] = {
	/* not a path */
	{ "empty input", "", F_NULL, SMTP_ADDR_E_SYNTAX },
	{ "null path refused without ALLOW_NULL", "<>", 0, SMTP_ADDR_E_SYNTAX },
	{ "missing brackets refused by default", "user@example.com", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "missing closing bracket", "<user@example.com", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "lone opening bracket", "<", F_NULL, SMTP_ADDR_E_SYNTAX },
	{ "space after <", "< user@example.com>", 0, SMTP_ADDR_E_SYNTAX },
	{ "space before @", "<user @example.com>", 0, SMTP_ADDR_E_SYNTAX },
	{ "leading dot in local part", "<.user@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "trailing dot in local part", "<user.@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "double dot in local part", "<us..er@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "empty local part", "<@example.com>", 0, SMTP_ADDR_E_SYNTAX },
	{ "comment in local part", "<a(b)@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "quote inside a dot-string", "<a\"b@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "unterminated quoted string", "<\"abc@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "text after a quoted string", "<\"a\"b@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "control octet in a quoted string", "<\"a\x01\"@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "tab in a quoted string", "<\"a\tb\"@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "quoted pair of a control octet", "<\"a\\\x01\"@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "route without a colon", "<@a.example,user@c.example>", 0,
	  SMTP_ADDR_E_SYNTAX },
	{ "route without a mailbox", "<@a.example:>", 0, SMTP_ADDR_E_SYNTAX },
	{ "route cut short", "<@a.example", 0, SMTP_ADDR_E_SYNTAX },
	{ "domain cut short", "<user@example.com", 0, SMTP_ADDR_E_SYNTAX },
	/* bad domains */
	{ "trailing dot in domain", "<user@example.com.>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "leading dot in domain", "<user@.example.com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "double dot in domain", "<user@example..com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "empty domain", "<user@>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "label starting with a hyphen", "<user@-example.com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "label ending with a hyphen", "<user@example-.com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "underscore in a label", "<user@exa_mple.com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "second @", "<a@b@example.com>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "space in domain", "<a@exa mple.com>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv4 octet over 255", "<x@[192.0.2.256]>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv4 with three parts", "<x@[192.0.2]>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv4 with a letter", "<x@[192.0.2.a]>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv6 with a bad digit", "<x@[IPv6:2001:db8::g]>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv6 with :::", "<x@[IPv6:2001:db8:::1]>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv6 without its tag", "<x@[2001:db8::1]>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv6 tag around an IPv4 address", "<x@[IPv6:192.0.2.1]>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "IPv6 tag alone", "<x@[IPv6:]>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "general address literal", "<x@[x400:c=us]>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "empty literal", "<x@[]>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "unterminated literal", "<x@[192.0.2.1>", 0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "text after a literal", "<x@[192.0.2.1].example>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "literal longer than any address",
	  "<x@[IPv6:"
	  "1111:2222:3333:4444:5555:6666:7777:8888:9999:0000]>",
	  0, SMTP_ADDR_E_BAD_DOMAIN },
	{ "literal in a source route", "<@[192.0.2.1]:user@example.com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	{ "empty label in a source route", "<@a..example:user@example.com>", 0,
	  SMTP_ADDR_E_BAD_DOMAIN },
	/* no domain */
	{ "local part alone", "<user>", 0, SMTP_ADDR_E_NO_DOMAIN },
	{ "Postmaster alone without ALLOW_NODOMAIN", "<Postmaster>", 0,
	  SMTP_ADDR_E_NO_DOMAIN },
	{ "other names never lack a domain", "<postmaster2>", F_NODOM,
	  SMTP_ADDR_E_NO_DOMAIN },
	{ "quoted Postmaster needs a domain", "<\"Postmaster\">", F_NODOM,
	  SMTP_ADDR_E_NO_DOMAIN },
	{ "no brackets and no domain", "user", F_NOBR, SMTP_ADDR_E_NO_DOMAIN },
	/* 8-bit without SMTPUTF8 */
	{ "UTF-8 local part without SMTPUTF8", "<" U_UE "@example.com>", 0,
	  SMTP_ADDR_E_NEEDS_SMTPUTF8 },
	{ "UTF-8 domain without SMTPUTF8", "<x@b" U_UE "cher.example>", 0,
	  SMTP_ADDR_E_NEEDS_SMTPUTF8 },
	{ "UTF-8 quoted local part without SMTPUTF8",
	  "<\"" U_UE "\"@example.com>", 0, SMTP_ADDR_E_NEEDS_SMTPUTF8 },
	{ "UTF-8 route domain without SMTPUTF8",
	  "<@b" U_UE "cher.example:x@example.com>", 0,
	  SMTP_ADDR_E_NEEDS_SMTPUTF8 },
	{ "bad UTF-8 without SMTPUTF8 asks for SMTPUTF8",
	  "<\xc0\xaf@x.example>", 0, SMTP_ADDR_E_NEEDS_SMTPUTF8 },
	/* malformed UTF-8 under SMTPUTF8 (RFC 3629 4) */
	{ "two-octet overlong", "<\xc0\xaf@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "three-octet overlong", "<\xe0\x80\xaf@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "four-octet overlong", "<\xf0\x80\x80\xaf@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "UTF-16 surrogate", "<\xed\xa0\x80@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "above U+10FFFF", "<\xf4\x90\x80\x80@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "lone continuation octet", "<a\x80@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "truncated sequence before @", "<a\xc3@example.com>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "octet 0xFF", "<\xff@example.com>", F_UTF8, SMTP_ADDR_E_BAD_UTF8 },
	{ "truncated sequence in a label", "<x@b\xc3.example>", F_UTF8,
	  SMTP_ADDR_E_BAD_UTF8 },
	{ "surrogate in a quoted string", "<\"\xed\xbf\xbf\"@example.com>",
	  F_UTF8, SMTP_ADDR_E_BAD_UTF8 },
};

START_TEST(test_path_accepts_rfc5321_table)
	{
		const struct path_ok *c = &path_ok_cases[_i];
		struct smtp_addr a;
		size_t consumed = 12345;
		int rc;

		memset(&a, 0x5a, sizeof(a));
		rc = smtp_path_parse(c->in, strlen(c->in), c->flags, &a,
				     &consumed);
		ck_assert_msg(rc == SMTP_ADDR_OK, "%s: '%s' gave %d", c->name,
			      c->in, rc);
		ck_assert_msg(consumed == c->consumed,
			      "%s: consumed %zu, want %zu", c->name, consumed,
			      c->consumed);
		ck_assert_msg(strcmp(a.local, c->local) == 0, "%s: local '%s'",
			      c->name, a.local);
		ck_assert_msg(strcmp(a.domain, c->domain) == 0,
			      "%s: domain '%s'", c->name, a.domain);
		ck_assert_msg(strcmp(a.mailbox, c->mailbox) == 0,
			      "%s: mailbox '%s'", c->name, a.mailbox);
		ck_assert_msg(a.is_null == !!(c->props & A_NULL), "%s: is_null",
			      c->name);
		ck_assert_msg(a.is_ip_literal == !!(c->props & A_LIT),
			      "%s: is_ip_literal", c->name);
		ck_assert_msg(a.is_utf8 == !!(c->props & A_UTF8), "%s: is_utf8",
			      c->name);
		ck_assert_msg(a.had_source_route == !!(c->props & A_ROUTE),
			      "%s: had_source_route", c->name);
	}
END_TEST

START_TEST(test_path_rejects_rfc5321_table)
	{
		const struct path_bad *c = &path_bad_cases[_i];
		struct smtp_addr a;
		size_t consumed = 12345;
		int rc;

		rc = smtp_path_parse(c->in, strlen(c->in), c->flags, &a,
				     &consumed);
		ck_assert_msg(rc == c->rc, "%s: '%s' gave %d, want %d", c->name,
			      c->in, rc, c->rc);
		ck_assert_msg(consumed == 12345, "%s: consumed written",
			      c->name);
	}
END_TEST

START_TEST(test_path_failure_leaves_outputs_untouched)
	{
		struct smtp_addr a, before;
		size_t consumed = 7;

		memset(&a, 0xa5, sizeof(a));
		before = a;
		ck_assert_int_eq(
			smtp_path_parse("<a@b..c>", 8, 0, &a, &consumed),
			SMTP_ADDR_E_BAD_DOMAIN);
		ck_assert(memcmp(&a, &before, sizeof(a)) == 0);
		ck_assert_uint_eq(consumed, 7);
	}
END_TEST

START_TEST(test_path_reads_only_len_octets)
	{
		struct smtp_addr a;
		size_t consumed;

		/* the ">" beyond len must not be seen */
		ck_assert_int_eq(
			smtp_path_parse("<a@b.example>", 12, 0, &a, &consumed),
			SMTP_ADDR_E_SYNTAX);
		ck_assert_int_eq(
			smtp_path_parse("<a@b.example>", 13, 0, &a, &consumed),
			SMTP_ADDR_OK);
	}
END_TEST

START_TEST(test_path_rejects_nul_octets)
	{
		static const char nul_local[] = "<a\0b@example.com>";
		static const char nul_quoted[] = "<\"a\0b\"@example.com>";
		static const char nul_domain[] = "<a@exa\0mple.com>";
		static const char nul_literal[] = "<a@[192.0.2.1\0]>";
		struct smtp_addr a;
		size_t consumed;

		ck_assert_int_eq(smtp_path_parse(nul_local,
						 sizeof(nul_local) - 1, 0, &a,
						 &consumed),
				 SMTP_ADDR_E_SYNTAX);
		ck_assert_int_eq(smtp_path_parse(nul_quoted,
						 sizeof(nul_quoted) - 1, 0, &a,
						 &consumed),
				 SMTP_ADDR_E_SYNTAX);
		ck_assert_int_eq(smtp_path_parse(nul_domain,
						 sizeof(nul_domain) - 1, 0, &a,
						 &consumed),
				 SMTP_ADDR_E_BAD_DOMAIN);
		ck_assert_int_eq(smtp_path_parse(nul_literal,
						 sizeof(nul_literal) - 1, 0, &a,
						 &consumed),
				 SMTP_ADDR_E_BAD_DOMAIN);
	}
END_TEST

/* ---- limits (RFC 5321 4.5.3.1) -------------------------------------- */

/* "<" + local + "@" + domain + ">" built in buf. */
static size_t
make_path(char *buf, size_t local_len, const char *domain)
{
	size_t n = 0;

	buf[n++] = '<';
	memset(buf + n, 'l', local_len);
	n += local_len;
	buf[n++] = '@';
	memcpy(buf + n, domain, strlen(domain));
	n += strlen(domain);
	buf[n++] = '>';
	buf[n] = '\0';
	return n;
}

/* A domain of exactly len octets: labels of up to 63 "d" joined by dots. */
static void
make_domain(char *buf, size_t len)
{
	size_t n = 0;

	while (n < len) {
		size_t lab = len - n > 63 ? 63 : len - n;

		if (len - n - lab == 1)
			lab--; /* never leave a lone trailing dot */
		memset(buf + n, 'd', lab);
		n += lab;
		if (n < len)
			buf[n++] = '.';
	}
	buf[n] = '\0';
}

struct limit_case {
	const char *name;
	size_t local_len, domain_len;
	int rc;
};

static const struct limit_case limit_cases[] = {
	{ "local part of 64 octets", 64, 11, SMTP_ADDR_OK },
	{ "local part of 65 octets", 65, 11, SMTP_ADDR_E_LOCAL_TOO_LONG },
	{ "local part of 200 octets", 200, 11, SMTP_ADDR_E_LOCAL_TOO_LONG },
	{ "path of exactly 256 octets", 64, 189, SMTP_ADDR_OK },
	{ "path of 257 octets", 64, 190, SMTP_ADDR_E_PATH_TOO_LONG },
	{ "domain of 252 octets (largest in a path)", 1, 252, SMTP_ADDR_OK },
	{ "domain of 253 octets", 1, 253, SMTP_ADDR_E_PATH_TOO_LONG },
	{ "domain of 255 octets overflows the path", 1, 255,
	  SMTP_ADDR_E_PATH_TOO_LONG },
	{ "domain of 256 octets", 1, 256, SMTP_ADDR_E_DOMAIN_TOO_LONG },
	{ "domain of 400 octets", 1, 400, SMTP_ADDR_E_DOMAIN_TOO_LONG },
	{ "local 65 beats domain 256", 65, 256, SMTP_ADDR_E_LOCAL_TOO_LONG },
};

START_TEST(test_path_enforces_length_limits)
	{
		const struct limit_case *c = &limit_cases[_i];
		char domain[512], buf[1024];
		struct smtp_addr a;
		size_t n, consumed = 0;
		int rc;

		make_domain(domain, c->domain_len);
		ck_assert_uint_eq(strlen(domain), c->domain_len);
		n = make_path(buf, c->local_len, domain);
		rc = smtp_path_parse(buf, n, 0, &a, &consumed);
		ck_assert_msg(rc == c->rc, "%s: got %d, want %d", c->name, rc,
			      c->rc);
		if (rc == SMTP_ADDR_OK) {
			ck_assert_uint_eq(consumed, n);
			ck_assert_uint_eq(strlen(a.local), c->local_len);
			ck_assert_uint_eq(strlen(a.domain), c->domain_len);
			ck_assert_uint_eq(strlen(a.mailbox),
					  c->local_len + 1 + c->domain_len);
		}
	}
END_TEST

START_TEST(test_path_counts_quotes_in_local_limit)
	{
		char buf[128];
		struct smtp_addr a;
		size_t consumed;

		/* 62 octets between the quotes: 64 as written */
		snprintf(buf, sizeof(buf), "<\"%062d\"@example.com>", 0);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_OK);
		ck_assert_uint_eq(strlen(a.local), 64);
		snprintf(buf, sizeof(buf), "<\"%063d\"@example.com>", 0);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_E_LOCAL_TOO_LONG);
	}
END_TEST

START_TEST(test_path_label_of_63_ok_64_refused)
	{
		char label[80], buf[128];
		struct smtp_addr a;
		size_t consumed;

		memset(label, 'a', 63);
		label[63] = '\0';
		snprintf(buf, sizeof(buf), "<x@%s.example>", label);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_OK);
		memset(label, 'a', 64);
		label[64] = '\0';
		snprintf(buf, sizeof(buf), "<x@%s.example>", label);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_E_BAD_DOMAIN);
		/* the last label too */
		snprintf(buf, sizeof(buf), "<x@example.%s>", label);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_E_BAD_DOMAIN);
	}
END_TEST

START_TEST(test_path_utf8_label_bounded_by_domain_only)
	{
		char buf[256];
		struct smtp_addr a;
		size_t n = 0, consumed;

		/* 35 x U+00FC = 70 octets: its A-label length is IDNA's business */
		buf[n++] = '<';
		buf[n++] = 'x';
		buf[n++] = '@';
		for (int i = 0; i < 35; i++) {
			memcpy(buf + n, U_UE, 2);
			n += 2;
		}
		memcpy(buf + n, ".example>", 9);
		n += 9;
		ck_assert_int_eq(smtp_path_parse(buf, n, F_UTF8, &a, &consumed),
				 SMTP_ADDR_OK);
		ck_assert(a.is_utf8);
	}
END_TEST

START_TEST(test_path_source_route_counts_toward_256)
	{
		char route[200], domain[200], buf[512];
		struct smtp_addr a;
		size_t consumed;

		/* mailbox alone fits; the route pushes the path past 256 */
		make_domain(route, 150);
		make_domain(domain, 120);
		snprintf(buf, sizeof(buf), "<@%s:user@%s>", route, domain);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_E_PATH_TOO_LONG);
		snprintf(buf, sizeof(buf), "<user@%s>", domain);
		ck_assert_int_eq(
			smtp_path_parse(buf, strlen(buf), 0, &a, &consumed),
			SMTP_ADDR_OK);
	}
END_TEST

START_TEST(test_path_nobracket_limit_counts_brackets)
	{
		char domain[300], buf[400];
		struct smtp_addr a;
		size_t consumed;

		make_domain(domain, 189);
		/* 64 + 1 + 189 = 254, plus the brackets it lacks = 256 */
		snprintf(buf, sizeof(buf), "%064d@%s", 0, domain);
		ck_assert_int_eq(smtp_path_parse(buf, strlen(buf), F_NOBR, &a,
						 &consumed),
				 SMTP_ADDR_OK);
		ck_assert_uint_eq(consumed, 254);
		make_domain(domain, 190);
		snprintf(buf, sizeof(buf), "%064d@%s", 0, domain);
		ck_assert_int_eq(smtp_path_parse(buf, strlen(buf), F_NOBR, &a,
						 &consumed),
				 SMTP_ADDR_E_PATH_TOO_LONG);
	}
END_TEST

/* ---- bare mailboxes ------------------------------------------------- */

struct mailbox_case {
	const char *name;
	const char *in;
	unsigned flags;
	int rc;
	const char *mailbox;
};

static const struct mailbox_case mailbox_cases[] = {
	{ "bare mailbox", "user@example.com", 0, SMTP_ADDR_OK,
	  "user@example.com" },
	{ "bare quoted mailbox", "\"a b\"@example.com", 0, SMTP_ADDR_OK,
	  "\"a b\"@example.com" },
	{ "bare mailbox with literal", "x@[192.0.2.1]", 0, SMTP_ADDR_OK,
	  "x@[192.0.2.1]" },
	{ "bare UTF-8 mailbox", U_UE "@example.com", F_UTF8, SMTP_ADDR_OK,
	  U_UE "@example.com" },
	{ "bare Postmaster with ALLOW_NODOMAIN", "postmaster", F_NODOM,
	  SMTP_ADDR_OK, "postmaster" },
	{ "empty mailbox", "", F_NULL, SMTP_ADDR_E_SYNTAX, NULL },
	{ "brackets are not a bare mailbox", "<user@example.com>", 0,
	  SMTP_ADDR_E_SYNTAX, NULL },
	{ "trailing text after the domain", "user@example.com x", 0,
	  SMTP_ADDR_E_BAD_DOMAIN, NULL },
	{ "trailing dot", "user@example.com.", 0, SMTP_ADDR_E_BAD_DOMAIN,
	  NULL },
	{ "no domain", "user", 0, SMTP_ADDR_E_NO_DOMAIN, NULL },
	{ "8-bit without SMTPUTF8", U_UE "@example.com", 0,
	  SMTP_ADDR_E_NEEDS_SMTPUTF8, NULL },
	{ "space in local part", "a b@example.com", 0, SMTP_ADDR_E_SYNTAX,
	  NULL },
};

START_TEST(test_mailbox_follows_table)
	{
		const struct mailbox_case *c = &mailbox_cases[_i];
		struct smtp_addr a;
		int rc;

		rc = smtp_mailbox_parse(c->in, strlen(c->in), c->flags, &a);
		ck_assert_msg(rc == c->rc, "%s: got %d, want %d", c->name, rc,
			      c->rc);
		if (rc == SMTP_ADDR_OK)
			ck_assert_str_eq(a.mailbox, c->mailbox);
	}
END_TEST

START_TEST(test_mailbox_refuses_what_no_path_could_carry)
	{
		char domain[300], buf[400];
		struct smtp_addr a;

		make_domain(domain, 189);
		snprintf(buf, sizeof(buf), "%064d@%s", 0, domain);
		ck_assert_int_eq(smtp_mailbox_parse(buf, strlen(buf), 0, &a),
				 SMTP_ADDR_OK);
		make_domain(domain, 190);
		snprintf(buf, sizeof(buf), "%064d@%s", 0, domain);
		ck_assert_int_eq(smtp_mailbox_parse(buf, strlen(buf), 0, &a),
				 SMTP_ADDR_E_PATH_TOO_LONG);
	}
END_TEST

/* ---- UTF-8 validity (RFC 3629 4) ------------------------------------ */

struct utf8_case {
	const char *name;
	const char *in;
	bool valid;
};

static const struct utf8_case utf8_cases[] = {
	{ "empty", "", true },
	{ "ASCII", "abc", true },
	{ "two octets", U_UE, true },
	{ "three octets", U_EURO, true },
	{ "four octets", U_GRIN, true },
	{ "U+0080, the first two-octet code point", "\xc2\x80", true },
	{ "U+0800, the first three-octet code point", "\xe0\xa0\x80", true },
	{ "U+D7FF, just below the surrogates", "\xed\x9f\xbf", true },
	{ "U+E000, just above the surrogates", "\xee\x80\x80", true },
	{ "U+FFFF", "\xef\xbf\xbf", true },
	{ "U+10000, the first four-octet code point", "\xf0\x90\x80\x80",
	  true },
	{ "U+10FFFF, the last code point", "\xf4\x8f\xbf\xbf", true },
	{ "overlong NUL", "\xc0\x80", false },
	{ "overlong C1", "\xc1\xbf", false },
	{ "overlong three-octet", "\xe0\x9f\xbf", false },
	{ "overlong four-octet", "\xf0\x8f\xbf\xbf", false },
	{ "first surrogate", "\xed\xa0\x80", false },
	{ "last surrogate", "\xed\xbf\xbf", false },
	{ "U+110000", "\xf4\x90\x80\x80", false },
	{ "lead octet F5", "\xf5\x80\x80\x80", false },
	{ "octet FE", "\xfe", false },
	{ "octet FF", "\xff", false },
	{ "lone continuation", "\x80", false },
	{ "two-octet cut short", "\xc3", false },
	{ "three-octet cut short", "\xe2\x82", false },
	{ "four-octet cut short", "\xf0\x9f\x98", false },
	{ "ASCII where a continuation belongs", "\xc3(", false },
	{ "valid then invalid", "a" U_UE "\x80", false },
};

START_TEST(test_utf8_valid_follows_rfc3629)
	{
		const struct utf8_case *c = &utf8_cases[_i];

		ck_assert_msg(smtp_utf8_valid(c->in, strlen(c->in)) == c->valid,
			      "%s", c->name);
	}
END_TEST

START_TEST(test_utf8_valid_stops_at_len)
	{
		/* the tail past len would be invalid */
		ck_assert(smtp_utf8_valid(U_UE "\xff", 2));
		/* and a sequence cut by len is invalid */
		ck_assert(!smtp_utf8_valid(U_EURO, 2));
	}
END_TEST

/* ---- replies -------------------------------------------------------- */

static const int addr_errors[] = {
	SMTP_ADDR_E_SYNTAX,	     SMTP_ADDR_E_LOCAL_TOO_LONG,
	SMTP_ADDR_E_DOMAIN_TOO_LONG, SMTP_ADDR_E_PATH_TOO_LONG,
	SMTP_ADDR_E_NEEDS_SMTPUTF8,  SMTP_ADDR_E_BAD_UTF8,
	SMTP_ADDR_E_BAD_DOMAIN,	     SMTP_ADDR_E_NO_DOMAIN,
};
#define N_ADDR_ERRORS (int)(sizeof(addr_errors) / sizeof(*addr_errors))

START_TEST(test_strerror_sender_uses_5_1_7)
	{
		const char *s = smtp_addr_strerror(addr_errors[_i], false);

		ck_assert_ptr_nonnull(s);
		if (addr_errors[_i] == SMTP_ADDR_E_NEEDS_SMTPUTF8)
			ck_assert_str_eq(s,
					 "553 5.6.7 Non-ASCII sender address "
					 "requires SMTPUTF8");
		else
			ck_assert_msg(strncmp(s, "501 5.1.7 ", 10) == 0, "%s",
				      s);
		ck_assert_ptr_null(strpbrk(s, "\r\n"));
	}
END_TEST

START_TEST(test_strerror_recipient_uses_5_1_3)
	{
		const char *s = smtp_addr_strerror(addr_errors[_i], true);

		ck_assert_ptr_nonnull(s);
		if (addr_errors[_i] == SMTP_ADDR_E_NEEDS_SMTPUTF8)
			ck_assert_str_eq(
				s, "553 5.6.7 Non-ASCII recipient address "
				   "requires SMTPUTF8");
		else
			ck_assert_msg(strncmp(s, "501 5.1.3 ", 10) == 0, "%s",
				      s);
		ck_assert_ptr_null(strpbrk(s, "\r\n"));
	}
END_TEST

START_TEST(test_strerror_lines_are_distinct)
	{
		for (int i = 0; i < N_ADDR_ERRORS; i++) {
			for (int j = 0; j < N_ADDR_ERRORS; j++) {
				if (i != j)
					ck_assert_str_ne(
						smtp_addr_strerror(
							addr_errors[i], true),
						smtp_addr_strerror(
							addr_errors[j], true));
			}
			ck_assert_str_ne(
				smtp_addr_strerror(addr_errors[i], true),
				smtp_addr_strerror(addr_errors[i], false));
		}
	}
END_TEST

START_TEST(test_strerror_known_texts)
	{
		ck_assert_str_eq(smtp_addr_strerror(SMTP_ADDR_E_SYNTAX, true),
				 "501 5.1.3 Bad recipient address syntax");
		ck_assert_str_eq(smtp_addr_strerror(SMTP_ADDR_E_SYNTAX, false),
				 "501 5.1.7 Bad sender address syntax");
		ck_assert_str_eq(
			smtp_addr_strerror(SMTP_ADDR_E_LOCAL_TOO_LONG, true),
			"501 5.1.3 Recipient address local part longer than "
			"64 octets");
		ck_assert_str_eq(
			smtp_addr_strerror(SMTP_ADDR_E_PATH_TOO_LONG, false),
			"501 5.1.7 Sender path longer than 256 octets");
	}
END_TEST

START_TEST(test_strerror_unknown_code_gives_syntax_line)
	{
		const char *syn = smtp_addr_strerror(SMTP_ADDR_E_SYNTAX, true);

		ck_assert_str_eq(smtp_addr_strerror(-9, true), syn);
		ck_assert_str_eq(smtp_addr_strerror(-1000, true), syn);
		ck_assert_str_eq(smtp_addr_strerror(INT_MIN, true), syn);
		ck_assert_str_eq(smtp_addr_strerror(5, true), syn);
	}
END_TEST

/* RFC 5321 4.5.1: "Postmaster" (any case) without a domain, or at the
 * domain the server names itself by, is the server's own postmaster. */
static const struct {
	const char *path;
	bool is_postmaster;
} postmaster_cases[] = {
	{ "<Postmaster>", true },
	{ "<postmaster>", true },
	{ "<pOSTMASTER>", true },
	{ "<postmaster@mta.example.com>", true },
	{ "<Postmaster@MTA.Example.COM>", true },
	{ "<@relay.example:postmaster@mta.example.com>", true },
	{ "<postmaster@example.com>", false }, /* someone else's */
	{ "<postmaster@mta.example.com.evil>", false },
	{ "<postmaster@sub.mta.example.com>", false },
	{ "<postmaster@mta.example.co>", false },
	{ "<postmaster@[192.0.2.1]>", false },
	{ "<postmaster2@mta.example.com>", false },
	{ "<xpostmaster@mta.example.com>", false },
	{ "<\"postmaster\"@mta.example.com>", false }, /* quoted: as written */
	{ "<abuse@mta.example.com>", false },
	{ "<>", false },
};

START_TEST(test_postmaster_is_ours_only)
	{
		struct smtp_addr a;
		size_t n;
		const char *in = postmaster_cases[_i].path;

		ck_assert_int_eq(smtp_path_parse(in, strlen(in),
						 F_NULL | F_NODOM, &a, &n),
				 SMTP_ADDR_OK);
		ck_assert_msg(smtp_addr_is_postmaster(&a, "mta.example.com") ==
				      postmaster_cases[_i].is_postmaster,
			      "%s", in);
	}
END_TEST

static Suite *
smtp_addr_suite(void)
{
	Suite *s = suite_create("smtp_addr");
	TCase *tc;

	tc = tcase_create("path");
	tcase_add_loop_test(tc, test_path_accepts_rfc5321_table, 0,
			    sizeof(path_ok_cases) / sizeof(*path_ok_cases));
	tcase_add_loop_test(tc, test_path_rejects_rfc5321_table, 0,
			    sizeof(path_bad_cases) / sizeof(*path_bad_cases));
	tcase_add_test(tc, test_path_failure_leaves_outputs_untouched);
	tcase_add_test(tc, test_path_reads_only_len_octets);
	tcase_add_test(tc, test_path_rejects_nul_octets);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_loop_test(tc, test_path_enforces_length_limits, 0,
			    sizeof(limit_cases) / sizeof(*limit_cases));
	tcase_add_test(tc, test_path_counts_quotes_in_local_limit);
	tcase_add_test(tc, test_path_label_of_63_ok_64_refused);
	tcase_add_test(tc, test_path_utf8_label_bounded_by_domain_only);
	tcase_add_test(tc, test_path_source_route_counts_toward_256);
	tcase_add_test(tc, test_path_nobracket_limit_counts_brackets);
	suite_add_tcase(s, tc);

	tc = tcase_create("mailbox");
	tcase_add_loop_test(tc, test_mailbox_follows_table, 0,
			    sizeof(mailbox_cases) / sizeof(*mailbox_cases));
	tcase_add_test(tc, test_mailbox_refuses_what_no_path_could_carry);
	suite_add_tcase(s, tc);

	tc = tcase_create("postmaster");
	tcase_add_loop_test(tc, test_postmaster_is_ours_only, 0,
			    sizeof(postmaster_cases) /
				    sizeof(*postmaster_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("utf8");
	tcase_add_loop_test(tc, test_utf8_valid_follows_rfc3629, 0,
			    sizeof(utf8_cases) / sizeof(*utf8_cases));
	tcase_add_test(tc, test_utf8_valid_stops_at_len);
	suite_add_tcase(s, tc);

	tc = tcase_create("strerror");
	tcase_add_loop_test(tc, test_strerror_sender_uses_5_1_7, 0,
			    N_ADDR_ERRORS);
	tcase_add_loop_test(tc, test_strerror_recipient_uses_5_1_3, 0,
			    N_ADDR_ERRORS);
	tcase_add_test(tc, test_strerror_lines_are_distinct);
	tcase_add_test(tc, test_strerror_known_texts);
	tcase_add_test(tc, test_strerror_unknown_code_gives_syntax_line);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(smtp_addr_suite)
