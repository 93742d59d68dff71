/* SMTP command lines: the verb table and argument rules of RFC 5321 4.1.1
 * and 4.1.2, the MAIL/RCPT argument with its ESMTP parameters (RFC 5321
 * 4.1.2 esmtp-param; SIZE RFC 1870 4, BODY RFC 6152 2 and RFC 3030 3,
 * SMTPUTF8 RFC 6531 3.4, RET/ENVID/NOTIFY/ORCPT RFC 3461 4, AUTH RFC 4954
 * 5), BDAT (RFC 3030 2) and xtext (RFC 3461 4). Handles untrusted input;
 * never allocates; out-parameters of the argument parsers are written only
 * on success.
 *
 * Paths are lib/smtp_addr.c's. Which verbs are allowed in which state,
 * and what a parameter means for the transaction (SIZE against our limit,
 * BINARYMIME refused), are router/session.c's. */
#include "lib/smtp_cmd.h"

#include <limits.h>
#include <string.h>

/* What a verb takes after it (RFC 5321 4.1.1; RFC 3207 4 for STARTTLS,
 * RFC 4954 4 for AUTH, RFC 3030 2 for BDAT). */
enum cmd_arg {
	CMD_ARG_NONE,
	CMD_ARG_OPTIONAL,
	CMD_ARG_REQUIRED,
};

struct cmd_verb {
	const char *name;
	enum cmd_arg arg;
	bool allows_8bit;  /* RFC 6531 3.3: only paths carry UTF-8 */
	const char *usage; /* the 501 reply for a malformed argument */
};

static const struct cmd_verb cmd_verbs[SMTP_VERB_COUNT] = {
	[SMTP_VERB_UNKNOWN] = { "UNKNOWN", CMD_ARG_OPTIONAL, false,
				"501 5.5.4 Syntax error" },
	[SMTP_VERB_HELO] = { "HELO", CMD_ARG_REQUIRED, false,
			     "501 5.5.4 Syntax: HELO hostname" },
	[SMTP_VERB_EHLO] = { "EHLO", CMD_ARG_REQUIRED, false,
			     "501 5.5.4 Syntax: EHLO hostname" },
	[SMTP_VERB_MAIL] = { "MAIL", CMD_ARG_REQUIRED, true,
			     "501 5.5.4 Syntax: MAIL FROM:<address>" },
	[SMTP_VERB_RCPT] = { "RCPT", CMD_ARG_REQUIRED, true,
			     "501 5.5.4 Syntax: RCPT TO:<address>" },
	[SMTP_VERB_DATA] = { "DATA", CMD_ARG_NONE, false,
			     "501 5.5.4 Syntax: DATA" },
	[SMTP_VERB_BDAT] = { "BDAT", CMD_ARG_REQUIRED, false,
			     "501 5.5.4 Syntax: BDAT chunk-size [LAST]" },
	[SMTP_VERB_RSET] = { "RSET", CMD_ARG_NONE, false,
			     "501 5.5.4 Syntax: RSET" },
	[SMTP_VERB_NOOP] = { "NOOP", CMD_ARG_OPTIONAL, false,
			     "501 5.5.4 Syntax: NOOP [string]" },
	[SMTP_VERB_QUIT] = { "QUIT", CMD_ARG_NONE, false,
			     "501 5.5.4 Syntax: QUIT" },
	[SMTP_VERB_VRFY] = { "VRFY", CMD_ARG_REQUIRED, false,
			     "501 5.5.4 Syntax: VRFY string" },
	[SMTP_VERB_EXPN] = { "EXPN", CMD_ARG_REQUIRED, false,
			     "501 5.5.4 Syntax: EXPN string" },
	[SMTP_VERB_HELP] = { "HELP", CMD_ARG_OPTIONAL, false,
			     "501 5.5.4 Syntax: HELP [string]" },
	[SMTP_VERB_STARTTLS] = { "STARTTLS", CMD_ARG_NONE, false,
				 "501 5.5.4 Syntax: STARTTLS" },
	[SMTP_VERB_AUTH] = { "AUTH", CMD_ARG_REQUIRED, false,
			     "501 5.5.4 Syntax: AUTH mechanism "
			     "[initial-response]" },
};

/* The ESMTP parameters we know, one bit each for duplicate detection. */
enum cmd_param {
	CMD_P_SIZE = 1u << 0,
	CMD_P_BODY = 1u << 1,
	CMD_P_SMTPUTF8 = 1u << 2,
	CMD_P_RET = 1u << 3,
	CMD_P_ENVID = 1u << 4,
	CMD_P_AUTH = 1u << 5,
	CMD_P_NOTIFY = 1u << 6,
	CMD_P_ORCPT = 1u << 7,
};

#define CMD_MAIL_PARAMS                                                        \
	(CMD_P_SIZE | CMD_P_BODY | CMD_P_SMTPUTF8 | CMD_P_RET | CMD_P_ENVID |  \
	 CMD_P_AUTH)
#define CMD_RCPT_PARAMS (CMD_P_NOTIFY | CMD_P_ORCPT)

static const struct {
	const char *keyword;
	enum cmd_param id;
} cmd_params[] = {
	{ "SIZE", CMD_P_SIZE },		{ "BODY", CMD_P_BODY },
	{ "SMTPUTF8", CMD_P_SMTPUTF8 }, { "RET", CMD_P_RET },
	{ "ENVID", CMD_P_ENVID },	{ "AUTH", CMD_P_AUTH },
	{ "NOTIFY", CMD_P_NOTIFY },	{ "ORCPT", CMD_P_ORCPT },
};

#define CMD_SIZE_DIGITS 20 /* RFC 1870 4: size-value ::= 1*20DIGIT */

/* Where parameters land: exactly one of mail and rcpt is set. */
struct cmd_params_out {
	struct smtp_mail *mail;
	struct smtp_rcpt *rcpt;
	bool utf8_ok;
	unsigned seen;
};

/* ASCII-only classes and case folding: <ctype.h> and strcasecmp() follow
 * the locale, the protocol does not (RFC 5234 2.3). */
static bool
cmd_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
cmd_is_alnum(unsigned char c)
{
	return cmd_is_digit(c) || (c >= 'A' && c <= 'Z') ||
	       (c >= 'a' && c <= 'z');
}

static bool
cmd_ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n && lit[i] != '\0'; i++) {
		unsigned char a = (unsigned char)s[i],
			      b = (unsigned char)lit[i];

		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
	}
	return i == n && lit[i] == '\0';
}

static bool
cmd_has_8bit(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

int
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out)
{
	size_t vlen = 0, a, e;
	enum smtp_verb verb = SMTP_VERB_UNKNOWN;
	int rc = SMTP_CMD_OK;

	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (cmd_ieq(line, vlen, cmd_verbs[v].name)) {
			verb = (enum smtp_verb)v;
			break;
		}
	}
	for (a = vlen; a < len && line[a] == ' '; a++)
		;
	for (e = len; e > a && line[e - 1] == ' '; e--)
		;

	if (memchr(line, '\0', len) != NULL)
		rc = SMTP_CMD_E_NUL;
	else if (cmd_has_8bit(line, vlen))
		rc = SMTP_CMD_E_8BIT;
	else if (verb == SMTP_VERB_UNKNOWN)
		rc = SMTP_CMD_E_UNKNOWN;
	else if (!cmd_verbs[verb].allows_8bit && cmd_has_8bit(line + a, e - a))
		rc = SMTP_CMD_E_8BIT;
	else if (cmd_verbs[verb].arg == CMD_ARG_REQUIRED && e == a)
		rc = SMTP_CMD_E_ARG_EXPECTED;
	else if (cmd_verbs[verb].arg == CMD_ARG_NONE && e > a)
		rc = SMTP_CMD_E_NO_ARG_ALLOWED;

	/* filled on failure too: the reply depends on the verb, and a
	 * broken BDAT still has a chunk the caller must account for */
	out->verb = verb;
	out->arg = line + a;
	out->arg_len = e - a;
	return rc;
}

/* RFC 3461 4 hexchar digits: upper case only. */
static bool
cmd_is_xhex(char c)
{
	return cmd_is_digit((unsigned char)c) || (c >= 'A' && c <= 'F');
}

/* Decoded length of xtext s[0..len) (RFC 3461 4: xchar is "!".."~"
 * except "+" and "="; hexchar is "+" and two hex digits), or -1 if it is
 * not xtext. */
static long
cmd_xtext_len(const char *s, size_t len)
{
	long n = 0;

	for (size_t i = 0; i < len; i++, n++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			if (len - i < 3 || !cmd_is_xhex(s[i + 1]) ||
			    !cmd_is_xhex(s[i + 2]))
				return -1;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
	}
	return n;
}

static unsigned
cmd_hex(char c)
{
	return cmd_is_digit((unsigned char)c) ? (unsigned)(c - '0') :
						(unsigned)(c - 'A' + 10);
}

int
smtp_xtext_decode(const char *s, size_t len, char *out, size_t outlen)
{
	long n = cmd_xtext_len(s, len);
	size_t o = 0;

	if (n < 0 || outlen == 0 || (size_t)n > outlen - 1 || n > INT_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = (char)(cmd_hex(s[i + 1]) << 4 |
					  cmd_hex(s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return (int)o;
}

int
smtp_xtext_encode(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = c >= 33 && c <= 126 && c != '+' && c != '=';

		if (o + (plain ? 1 : 3) >= outlen)
			return -1;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= outlen || o > INT_MAX)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* RFC 3461 4.2 and 4.4: ORCPT (rfc822) and ENVID must decode to printable
 * US-ASCII. Besides the RFC, a decoded CR or LF would let the client
 * write header lines into our DSNs. */
static bool
cmd_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 32 || c > 126) && c != '\t')
			return false;
	}
	return true;
}

/* RFC 1870 4: size-value ::= 1*20DIGIT. Twenty digits can pass 2^64 - 1;
 * such a value is still good syntax, only larger than any limit, so it
 * reads as UINT64_MAX and the session answers 552 5.3.4, not 501. */
static int
cmd_param_size(const char *v, size_t n, struct smtp_mail *m)
{
	uint64_t size = 0;

	if (n == 0 || n > CMD_SIZE_DIGITS)
		return SMTP_CMD_E_PARAM_SYNTAX;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(v[i] - '0');

		if (!cmd_is_digit((unsigned char)v[i]))
			return SMTP_CMD_E_PARAM_SYNTAX;
		if (size > (UINT64_MAX - d) / 10)
			size = UINT64_MAX;
		else
			size = size * 10 + d;
	}
	m->has_size = true;
	m->size = size;
	return SMTP_CMD_OK;
}

static int
cmd_param_envid(const char *v, size_t n, struct smtp_mail *m)
{
	long dlen = cmd_xtext_len(v, n);

	if (dlen <= 0)
		return SMTP_CMD_E_PARAM_SYNTAX;
	if (dlen > SMTP_ENVID_MAX)
		return SMTP_CMD_E_ENVID_TOO_LONG;
	smtp_xtext_decode(v, n, m->envid, sizeof(m->envid));
	if (!cmd_printable(m->envid, (size_t)dlen))
		return SMTP_CMD_E_PARAM_SYNTAX;
	return SMTP_CMD_OK;
}

/* RFC 4954 5: AUTH=<> or AUTH=xtext. Kept encoded: we do not offer AUTH,
 * so the value is only carried, never trusted. */
static int
cmd_param_auth(const char *v, size_t n, struct smtp_mail *m)
{
	if (n > SMTP_MAILBOX_MAX)
		return SMTP_CMD_E_PARAM_SYNTAX;
	if (!(n == 2 && v[0] == '<' && v[1] == '>') && cmd_xtext_len(v, n) <= 0)
		return SMTP_CMD_E_PARAM_SYNTAX;
	memcpy(m->auth, v, n);
	m->auth[n] = '\0';
	return SMTP_CMD_OK;
}

/* RFC 3461 4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY. A
 * repeated element is harmless and the ABNF allows it. */
static int
cmd_param_notify(const char *v, size_t n, struct smtp_rcpt *r)
{
	unsigned bits = 0, count = 0;
	size_t i = 0;

	while (i <= n) {
		size_t start = i;

		while (i < n && v[i] != ',')
			i++;
		if (cmd_ieq(v + start, i - start, "NEVER"))
			bits |= SMTP_NOTIFY_NEVER;
		else if (cmd_ieq(v + start, i - start, "SUCCESS"))
			bits |= SMTP_NOTIFY_SUCCESS;
		else if (cmd_ieq(v + start, i - start, "FAILURE"))
			bits |= SMTP_NOTIFY_FAILURE;
		else if (cmd_ieq(v + start, i - start, "DELAY"))
			bits |= SMTP_NOTIFY_DELAY;
		else
			return SMTP_CMD_E_PARAM_SYNTAX; /* includes "" */
		count++;
		i++; /* past the ",", or past the end to leave the loop */
	}
	if ((bits & SMTP_NOTIFY_NEVER) && count > 1)
		return SMTP_CMD_E_PARAM_SYNTAX;
	r->notify = bits;
	return SMTP_CMD_OK;
}

/* RFC 3461 4.2: ORCPT=addr-type ";" xtext, addr-type an RFC 5322 atom.
 * For addr-type utf-8, RFC 6533 3 lets an SMTPUTF8 transaction send the
 * address as utf-8-addr-unitext, i.e. with raw UTF-8; its 7-bit forms
 * (\x{...}) are already xtext. Kept as given for the DSN. */
static int
cmd_param_orcpt(const char *v, size_t n, bool utf8_ok, struct smtp_rcpt *r)
{
	char decoded[SMTP_ORCPT_MAX + 1];
	const char *x;
	size_t t = 0, xn;
	bool is_utf8_type, is_rfc822;
	int dlen;

	if (n > SMTP_ORCPT_MAX)
		return SMTP_CMD_E_ORCPT_TOO_LONG;
	while (t < n && (cmd_is_alnum((unsigned char)v[t]) ||
			 (v[t] != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", v[t]))))
		t++;
	if (t == 0 || t >= n || v[t] != ';')
		return SMTP_CMD_E_PARAM_SYNTAX;
	x = v + t + 1;
	xn = n - t - 1;
	if (xn == 0)
		return SMTP_CMD_E_PARAM_SYNTAX;
	is_utf8_type = cmd_ieq(v, t, "utf-8");
	is_rfc822 = cmd_ieq(v, t, "rfc822");

	if (is_utf8_type && utf8_ok && cmd_has_8bit(x, xn)) {
		/* xtext rules for the ASCII octets, RFC 3629 for the rest */
		if (!smtp_utf8_valid(x, xn))
			return SMTP_CMD_E_PARAM_SYNTAX;
		for (size_t i = 0; i < xn; i++) {
			unsigned char c = (unsigned char)x[i];

			if (c < 0x80 &&
			    (c < 33 || c > 126 || c == '=' || c == '+'))
				return SMTP_CMD_E_PARAM_SYNTAX;
		}
	} else {
		dlen = smtp_xtext_decode(x, xn, decoded, sizeof(decoded));
		if (dlen < 0)
			return SMTP_CMD_E_PARAM_SYNTAX;
		if (is_rfc822 && !cmd_printable(decoded, (size_t)dlen))
			return SMTP_CMD_E_PARAM_SYNTAX;
	}
	memcpy(r->orcpt, v, n);
	r->orcpt[n] = '\0';
	return SMTP_CMD_OK;
}

/* One esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2). */
static int
cmd_param(const char *p, size_t n, unsigned allowed, struct cmd_params_out *o)
{
	const char *eq = memchr(p, '=', n);
	size_t klen = eq ? (size_t)(eq - p) : n;
	const char *v = eq ? eq + 1 : NULL;
	size_t vlen = eq ? n - klen - 1 : 0;
	enum cmd_param id = 0;

	if (klen == 0 || !cmd_is_alnum((unsigned char)p[0]))
		return SMTP_CMD_E_PARAM_SYNTAX;
	for (size_t i = 1; i < klen; i++)
		if (!cmd_is_alnum((unsigned char)p[i]) && p[i] != '-')
			return SMTP_CMD_E_PARAM_SYNTAX;
	for (size_t i = 0; i < sizeof(cmd_params) / sizeof(*cmd_params); i++)
		if (cmd_ieq(p, klen, cmd_params[i].keyword))
			id = cmd_params[i].id;
	if (!(id & allowed))
		return SMTP_CMD_E_PARAM_UNKNOWN;
	if (o->seen & id)
		return SMTP_CMD_E_PARAM_DUP;
	o->seen |= id;
	/* SMTPUTF8 is the one keyword without a value; an empty value is
	 * never allowed (esmtp-value is 1*) */
	if ((id == CMD_P_SMTPUTF8) != (v == NULL) || (v != NULL && vlen == 0))
		return SMTP_CMD_E_PARAM_SYNTAX;

	switch (id) {
	case CMD_P_SIZE:
		return cmd_param_size(v, vlen, o->mail);
	case CMD_P_BODY:
		if (cmd_ieq(v, vlen, "7BIT"))
			o->mail->body = SMTP_BODY_7BIT;
		else if (cmd_ieq(v, vlen, "8BITMIME"))
			o->mail->body = SMTP_BODY_8BITMIME;
		else if (cmd_ieq(v, vlen, "BINARYMIME"))
			o->mail->body = SMTP_BODY_BINARYMIME;
		else
			return SMTP_CMD_E_PARAM_SYNTAX;
		return SMTP_CMD_OK;
	case CMD_P_SMTPUTF8:
		o->mail->smtputf8 = true;
		return SMTP_CMD_OK;
	case CMD_P_RET:
		if (cmd_ieq(v, vlen, "FULL"))
			o->mail->ret = SMTP_RET_FULL;
		else if (cmd_ieq(v, vlen, "HDRS"))
			o->mail->ret = SMTP_RET_HDRS;
		else
			return SMTP_CMD_E_PARAM_SYNTAX;
		return SMTP_CMD_OK;
	case CMD_P_ENVID:
		return cmd_param_envid(v, vlen, o->mail);
	case CMD_P_AUTH:
		return cmd_param_auth(v, vlen, o->mail);
	case CMD_P_NOTIFY:
		return cmd_param_notify(v, vlen, o->rcpt);
	case CMD_P_ORCPT:
		return cmd_param_orcpt(v, vlen, o->utf8_ok, o->rcpt);
	}
	return SMTP_CMD_E_PARAM_UNKNOWN;
}

/* [SP Mail-parameters] after a path: esmtp-param *(SP esmtp-param). Runs
 * of spaces and trailing spaces are tolerated; the first bad parameter,
 * left to right, decides the reply. */
static int
cmd_params_parse(const char *s, size_t len, unsigned allowed,
		 struct cmd_params_out *o)
{
	size_t i = 0;
	int rc;

	while (i < len) {
		size_t start;

		if (s[i] != ' ')
			return SMTP_CMD_E_SYNTAX; /* e.g. "<a@b>SIZE=1" */
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && s[i] != ' ')
			i++;
		rc = cmd_param(s + start, i - start, allowed, o);
		if (rc != SMTP_CMD_OK)
			return rc;
	}
	return SMTP_CMD_OK;
}

/* Does any space-separated word of s[0..len) name the SMTPUTF8 keyword?
 * Never misses a real parameter, but a quoted local part may hold the
 * word too; smtp_mail_parse() settles it once the parameters are parsed. */
static bool
cmd_mentions_smtputf8(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start = i;

		while (i < len && s[i] != ' ' && s[i] != '=')
			i++;
		if (cmd_ieq(s + start, i - start, "SMTPUTF8"))
			return true;
		while (i < len && s[i] != ' ')
			i++;
		while (i < len && s[i] == ' ')
			i++;
	}
	return false;
}

/* "FROM:" / "TO:", at most one space, then the "<" of a path. RFC 5321
 * 3.3 permits no space after the colon, but enough clients send one that
 * refusing it would only lose mail. Returns the offset of "<" or -1. */
static long
cmd_path_start(const char *arg, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	if (len < n || !cmd_ieq(arg, n, prefix))
		return -1;
	if (n < len && arg[n] == ' ')
		n++;
	if (n >= len || arg[n] != '<')
		return -1;
	return (long)n;
}

int
smtp_mail_parse(const char *arg, size_t len, struct smtp_mail *out)
{
	struct smtp_mail m;
	struct cmd_params_out o = { .mail = &m };
	long at = cmd_path_start(arg, len, "FROM:");
	unsigned flags = SMTP_ADDR_ALLOW_NULL;
	size_t i, k;
	int rc;

	if (at < 0)
		return SMTP_CMD_E_SYNTAX;
	i = (size_t)at;
	memset(&m, 0, sizeof(m));
	/* the path comes before the parameter that allows UTF-8 in it */
	if (cmd_mentions_smtputf8(arg + i, len - i))
		flags |= SMTP_ADDR_ALLOW_UTF8;
	rc = smtp_path_parse(arg + i, len - i, flags, &m.from, &k);
	if (rc != SMTP_ADDR_OK)
		return SMTP_CMD_E_ADDR_BASE + rc;
	i += k;
	rc = cmd_params_parse(arg + i, len - i, CMD_MAIL_PARAMS, &o);
	if (rc != SMTP_CMD_OK)
		return rc;
	if ((flags & SMTP_ADDR_ALLOW_UTF8) && !m.smtputf8) {
		/* the word was quoted text, not a parameter: judge the path
		 * (its dropped source route included) as sent */
		i = (size_t)at;
		rc = smtp_path_parse(arg + i, len - i, SMTP_ADDR_ALLOW_NULL,
				     &m.from, &k);
		if (rc != SMTP_ADDR_OK)
			return SMTP_CMD_E_ADDR_BASE + rc;
	}
	*out = m;
	return SMTP_CMD_OK;
}

int
smtp_rcpt_parse(const char *arg, size_t len, bool utf8_ok,
		struct smtp_rcpt *out)
{
	struct smtp_rcpt r;
	struct cmd_params_out o = { .rcpt = &r, .utf8_ok = utf8_ok };
	long at = cmd_path_start(arg, len, "TO:");
	unsigned flags = SMTP_ADDR_ALLOW_NODOMAIN;
	size_t i, k;
	int rc;

	if (at < 0)
		return SMTP_CMD_E_SYNTAX;
	i = (size_t)at;
	memset(&r, 0, sizeof(r));
	if (utf8_ok)
		flags |= SMTP_ADDR_ALLOW_UTF8;
	rc = smtp_path_parse(arg + i, len - i, flags, &r.to, &k);
	if (rc != SMTP_ADDR_OK)
		return SMTP_CMD_E_ADDR_BASE + rc;
	i += k;
	rc = cmd_params_parse(arg + i, len - i, CMD_RCPT_PARAMS, &o);
	if (rc != SMTP_CMD_OK)
		return rc;
	*out = r;
	return SMTP_CMD_OK;
}

int
smtp_bdat_parse(const char *arg, size_t len, uint64_t *size, bool *last)
{
	uint64_t v = 0;
	bool is_last = false;
	size_t i = 0, e;

	for (; i < len && cmd_is_digit((unsigned char)arg[i]); i++) {
		unsigned d = (unsigned)(arg[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return SMTP_CMD_E_SYNTAX;
		v = v * 10 + d;
	}
	if (i == 0)
		return SMTP_CMD_E_SYNTAX;
	for (e = len; e > i && arg[e - 1] == ' '; e--)
		;
	if (i < e) {
		if (arg[i] != ' ')
			return SMTP_CMD_E_SYNTAX; /* "12x", "12\tLAST" */
		while (i < e && arg[i] == ' ')
			i++;
		if (!cmd_ieq(arg + i, e - i, "LAST"))
			return SMTP_CMD_E_SYNTAX;
		is_last = true;
	}
	*size = v;
	*last = is_last;
	return SMTP_CMD_OK;
}

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((int)verb <= SMTP_VERB_UNKNOWN || verb >= SMTP_VERB_COUNT)
		return "UNKNOWN";
	return cmd_verbs[verb].name;
}

/* Reply codes: RFC 5321 4.2.2 and 4.2.4 (500 unrecognised, 501 bad
 * argument, 555 unknown MAIL/RCPT parameter), enhanced codes RFC 3463 3.6
 * (5.5.2 syntax error, 5.5.4 invalid arguments). Static text only: the
 * peer's words never go back into a reply. */
const char *
smtp_cmd_strerror(int err, enum smtp_verb verb)
{
	bool is_mail = verb == SMTP_VERB_MAIL, is_rcpt = verb == SMTP_VERB_RCPT;

	if (err <= SMTP_CMD_E_ADDR_BASE && err > SMTP_CMD_E_ADDR_BASE - 100)
		return smtp_addr_strerror(err - SMTP_CMD_E_ADDR_BASE, is_rcpt);
	switch (err) {
	case SMTP_CMD_OK:
		return "250 2.0.0 Ok";
	case SMTP_CMD_E_UNKNOWN:
		return "500 5.5.2 Error: command not recognized";
	case SMTP_CMD_E_SYNTAX:
	case SMTP_CMD_E_ARG_EXPECTED:
	case SMTP_CMD_E_NO_ARG_ALLOWED:
		/* the usage line says what was expected */
		if ((int)verb > SMTP_VERB_UNKNOWN && verb < SMTP_VERB_COUNT)
			return cmd_verbs[verb].usage;
		return cmd_verbs[SMTP_VERB_UNKNOWN].usage;
	case SMTP_CMD_E_PARAM_UNKNOWN:
		return is_mail ? "555 5.5.4 Unsupported MAIL parameter" :
		       is_rcpt ? "555 5.5.4 Unsupported RCPT parameter" :
				 "555 5.5.4 Unsupported parameter";
	case SMTP_CMD_E_PARAM_SYNTAX:
		return is_mail ? "501 5.5.4 Bad MAIL parameter value" :
		       is_rcpt ? "501 5.5.4 Bad RCPT parameter value" :
				 "501 5.5.4 Bad parameter value";
	case SMTP_CMD_E_PARAM_DUP:
		return is_mail ? "501 5.5.4 Duplicate MAIL parameter" :
		       is_rcpt ? "501 5.5.4 Duplicate RCPT parameter" :
				 "501 5.5.4 Duplicate parameter";
	case SMTP_CMD_E_NUL:
		return "500 5.5.2 Error: NUL character in command";
	case SMTP_CMD_E_8BIT:
		return "500 5.5.2 Error: non-ASCII character in command";
	case SMTP_CMD_E_ENVID_TOO_LONG:
		return "501 5.5.4 ENVID longer than 100 characters";
	case SMTP_CMD_E_ORCPT_TOO_LONG:
		return "501 5.5.4 ORCPT longer than 500 characters";
	}
	return cmd_verbs[SMTP_VERB_UNKNOWN].usage;
}
