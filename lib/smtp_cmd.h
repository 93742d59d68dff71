/* RFC 5321 command lines and their ESMTP parameters: SIZE (RFC 1870),
 * BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT
 * (RFC 3461), BDAT (RFC 3030), AUTH= on MAIL (RFC 4954).
 * Handles untrusted input; never allocates. */
#ifndef SHOAL_SMTP_CMD_H
#define SHOAL_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/smtp_addr.h"

/* 512 octets (RFC 5321 4.5.3.1.4) plus what our advertised extensions add
 * to MAIL and RCPT (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT, AUTH):
 * about 2,048 in all, CRLF included. */
#define SMTP_CMD_MAX 2048
#define SMTP_ENVID_MAX 100     /* RFC 3461 4.4, decoded */
#define SMTP_ORCPT_MAX 500     /* RFC 3461 4.2, encoded */

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_COUNT,
};

/* Parse results; smtp_cmd_strerror() gives each its reply line. */
enum smtp_cmd_err {
	SMTP_CMD_OK = 0,
	SMTP_CMD_E_UNKNOWN = -1,        /* 500 5.5.2 unknown command */
	SMTP_CMD_E_SYNTAX = -2,         /* 501 5.5.4 generic syntax error */
	SMTP_CMD_E_PARAM_UNKNOWN = -3,  /* 555 5.5.4 unsupported parameter */
	SMTP_CMD_E_PARAM_SYNTAX = -4,   /* 501 5.5.4 bad parameter value */
	SMTP_CMD_E_PARAM_DUP = -5,      /* 501 5.5.4 parameter repeated */
	SMTP_CMD_E_NUL = -6,            /* 500 5.5.2 NUL in command */
	SMTP_CMD_E_8BIT = -7,           /* 500 5.5.2 8-bit in command */
	SMTP_CMD_E_ARG_EXPECTED = -8,   /* 501 5.5.4 argument required */
	SMTP_CMD_E_NO_ARG_ALLOWED = -9, /* 501 5.5.4 no argument allowed */
	SMTP_CMD_E_ENVID_TOO_LONG = -10,
	SMTP_CMD_E_ORCPT_TOO_LONG = -11,
	SMTP_CMD_E_ADDR_BASE = -100,    /* -100 + smtp_addr_err: address error */
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg;   /* after the verb and its separating space(s) */
	size_t arg_len;    /* trailing spaces removed */
};

/* Split a command line (CRLF already removed) into verb and argument. The
 * verb is case-insensitive. Returns 0, SMTP_CMD_E_UNKNOWN, SMTP_CMD_E_NUL,
 * SMTP_CMD_E_8BIT (8-bit octets outside MAIL/RCPT arguments), or
 * SMTP_CMD_E_ARG_EXPECTED / SMTP_CMD_E_NO_ARG_ALLOWED (e.g. "DATA x",
 * "MAIL"). out->arg points into line. Unlike the other parsers, out is
 * filled even on failure (verb SMTP_VERB_UNKNOWN when not recognised), so
 * the caller can pick the reply and keep BDAT framing. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);

enum smtp_body {
	SMTP_BODY_7BIT = 0,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME,
};

enum smtp_ret {
	SMTP_RET_DEFAULT = 0,
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

struct smtp_mail {
	struct smtp_addr from;
	bool has_size;
	uint64_t size;             /* SIZE= value; UINT64_MAX past 2^64 - 1 */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1];   /* xtext-decoded, "" if absent */
	char auth[SMTP_MAILBOX_MAX + 1];  /* AUTH= as given (xtext), "" */
};

struct smtp_rcpt {
	struct smtp_addr to;
	unsigned notify;           /* SMTP_NOTIFY_* bits, 0 = not given */
	char orcpt[SMTP_ORCPT_MAX + 1];   /* "rfc822;xtext" as given, "" */
};

/* Parse the argument of MAIL: "FROM:<path> [params]". "FROM:" is
 * case-insensitive; a space after the colon is tolerated. Unknown
 * parameters are SMTP_CMD_E_PARAM_UNKNOWN. 8-bit octets are allowed in the
 * path only when SMTPUTF8 appears among the parameters. Returns 0 or an
 * smtp_cmd_err (address errors as SMTP_CMD_E_ADDR_BASE + smtp_addr_err). */
int smtp_mail_parse(const char *arg, size_t len, struct smtp_mail *out);

/* Parse the argument of RCPT: "TO:<path> [params]". utf8_ok says whether
 * the transaction's MAIL had SMTPUTF8. <Postmaster> without a domain is
 * accepted (RFC 5321 4.1.1.3). Returns as smtp_mail_parse(). */
int smtp_rcpt_parse(const char *arg, size_t len, bool utf8_ok,
		    struct smtp_rcpt *out);

/* Parse the argument of BDAT: "chunk-size [LAST]" (RFC 3030 2). chunk-size
 * is 1*DIGIT and must fit in 64 bits. Returns 0 or SMTP_CMD_E_SYNTAX. */
int smtp_bdat_parse(const char *arg, size_t len, uint64_t *size, bool *last);

/* Check that s is valid xtext (RFC 3461 4) and decode it into out (at most
 * outlen - 1 bytes, NUL-terminated). Returns the decoded length, or -1 for
 * bad xtext or output too small. */
int smtp_xtext_decode(const char *s, size_t len, char *out, size_t outlen);

/* Encode s as xtext (RFC 3461 4: '+', '=' and bytes outside 33..126 become
 * "+HH") into out, NUL-terminated. Returns the encoded length, or -1 when
 * out is too small. */
int smtp_xtext_encode(const char *s, char *out, size_t outlen);

/* The reply line (without CRLF) for a parse error, e.g.
 * "501 5.5.4 Syntax: MAIL FROM:<address>". verb gives context. Static. */
const char *smtp_cmd_strerror(int err, enum smtp_verb verb);

/* The verb's name in upper case ("MAIL"), "UNKNOWN" otherwise. */
const char *smtp_verb_name(enum smtp_verb verb);

#endif
