/* RFC 5321 paths and mailboxes: the Reverse-path / Forward-path grammar of
 * 4.1.2, address literals of 4.1.3 and the size limits of 4.5.3.1, with
 * the RFC 6531 3.3 extensions (UTF8-non-ascii in atext, qtextSMTP and
 * domain labels) when SMTPUTF8 is in force. Handles untrusted input: every
 * scan is bounded by the caller's length and nothing is copied before its
 * length has been checked. It never allocates and keeps no state.
 *
 * Left to others: whether a domain resolves or is ours (router: it names
 * its own domain to smtp_addr_is_postmaster()), IDNA conversion of
 * U-labels to A-labels (delivery), and ESMTP parameters after the path
 * (lib/smtp_cmd.c). */
#include "lib/smtp_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#define ADDR_LABEL_MAX 63   /* RFC 1035 2.3.4, octets */
#define ADDR_V6_TAG "IPv6:" /* RFC 5321 4.1.3 Standardized-tag */
#define ADDR_V6_TAG_LEN 5

/* What may follow a mailbox: the ">" of a path, the end of the input (a
 * bare mailbox), or a space or the end (a path without brackets). */
enum addr_end {
	ADDR_END_BRACKET,
	ADDR_END_INPUT,
	ADDR_END_SPACE,
};

/* Every character class below is ASCII only: <ctype.h> would consult the
 * locale and is undefined for negative chars. */
static bool
addr_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
addr_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
addr_is_hex(unsigned char c)
{
	return addr_is_digit(c) || (c >= 'A' && c <= 'F') ||
	       (c >= 'a' && c <= 'f');
}

/* Case-insensitive match of n octets against an ASCII literal, ignoring
 * the locale (RFC 5234 2.3: ABNF strings fold case, but only ASCII). */
static bool
addr_ieq(const char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s[i],
			      b = (unsigned char)lit[i];

		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
	}
	return true;
}

/* RFC 5322 3.2.3 atext, the characters of a Dot-string atom. */
static bool
addr_is_atext(unsigned char c)
{
	return addr_is_alpha(c) || addr_is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the well-formed UTF-8 sequence for one non-ASCII code point at
 * p[0..n), or 0. The second-octet ranges are those of RFC 3629 4, which
 * exclude overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF)
 * and anything above U+10FFFF (F4 90.., F5..FF). */
static size_t
addr_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need;

	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		need = 2;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		need = 3;
		if (p[0] == 0xE0)
			lo = 0xA0;
		else if (p[0] == 0xED)
			hi = 0x9F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		need = 4;
		if (p[0] == 0xF0)
			lo = 0x90;
		else if (p[0] == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return need;
}

bool
smtp_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		n = addr_utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* An octet >= 0x80 at s[i]: legal only under SMTPUTF8 and only as part of
 * well-formed UTF-8. Sets *n to the sequence length. */
static int
addr_take_utf8(const char *s, size_t len, size_t i, unsigned flags, size_t *n)
{
	size_t k;

	if (!(flags & SMTP_ADDR_ALLOW_UTF8))
		return SMTP_ADDR_E_NEEDS_SMTPUTF8;
	k = addr_utf8_seq((const unsigned char *)s + i, len - i);
	if (k == 0)
		return SMTP_ADDR_E_BAD_UTF8;
	*n = k;
	return SMTP_ADDR_OK;
}

/* Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2). Sets *n to its
 * length as written, quotes and backslashes included. */
static int
addr_local_scan(const char *s, size_t len, unsigned flags, size_t *n,
		bool *has_8bit)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i, k;
	int rc;

	if (len > 0 && p[0] == '"') {
		/* qtextSMTP is %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP
		 * is "\" %d32-126 */
		for (i = 1; i < len && p[i] != '"'; i += k) {
			k = 1;
			if (p[i] == '\\') {
				if (i + 1 >= len || p[i + 1] < 32 ||
				    p[i + 1] > 126)
					return SMTP_ADDR_E_SYNTAX;
				k = 2;
			} else if (p[i] >= 0x80) {
				rc = addr_take_utf8(s, len, i, flags, &k);
				if (rc != SMTP_ADDR_OK)
					return rc;
				*has_8bit = true;
			} else if (p[i] < 32 || p[i] > 126) {
				return SMTP_ADDR_E_SYNTAX;
			}
		}
		if (i >= len)
			return SMTP_ADDR_E_SYNTAX; /* no closing quote */
		*n = i + 1;
		return SMTP_ADDR_OK;
	}

	/* Atom *("." Atom): each dot must sit between two atoms, which
	 * rules out leading, trailing and doubled dots */
	i = 0;
	for (;;) {
		size_t start = i;

		while (i < len) {
			if (addr_is_atext(p[i])) {
				i++;
			} else if (p[i] >= 0x80) {
				rc = addr_take_utf8(s, len, i, flags, &k);
				if (rc != SMTP_ADDR_OK)
					return rc;
				*has_8bit = true;
				i += k;
			} else {
				break;
			}
		}
		if (i == start)
			return SMTP_ADDR_E_SYNTAX;
		if (i < len && p[i] == '.') {
			i++;
			continue;
		}
		break;
	}
	*n = i;
	return SMTP_ADDR_OK;
}

/* An address literal "[...]" at s[0] (RFC 5321 4.1.3). Only the IPv4 and
 * IPv6 forms are taken: a General-address-literal names a protocol we
 * cannot deliver over. inet_pton() is stricter than the ABNF in one way
 * (no leading zeros in IPv4 Snum), which only costs us ambiguous input. */
static int
addr_literal_scan(const char *s, size_t len, size_t *n)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *body;
	size_t i, blen;
	int af;

	for (i = 1; i < len && s[i] != ']'; i++)
		;
	if (i >= len)
		return SMTP_ADDR_E_BAD_DOMAIN;
	body = s + 1;
	blen = i - 1;
	if (blen > ADDR_V6_TAG_LEN &&
	    addr_ieq(body, ADDR_V6_TAG, ADDR_V6_TAG_LEN)) {
		af = AF_INET6;
		body += ADDR_V6_TAG_LEN;
		blen -= ADDR_V6_TAG_LEN;
	} else if (blen > 0 && addr_is_digit((unsigned char)body[0])) {
		af = AF_INET;
	} else {
		return SMTP_ADDR_E_BAD_DOMAIN;
	}
	if (blen == 0 || blen >= sizeof(buf))
		return SMTP_ADDR_E_BAD_DOMAIN;
	/* checked before inet_pton() sees a C string: an embedded NUL
	 * would otherwise hide whatever follows it */
	for (size_t j = 0; j < blen; j++) {
		unsigned char c = (unsigned char)body[j];

		if (!(addr_is_digit(c) || c == '.' ||
		      (af == AF_INET6 && (addr_is_hex(c) || c == ':'))))
			return SMTP_ADDR_E_BAD_DOMAIN;
	}
	memcpy(buf, body, blen);
	buf[blen] = '\0';
	if (inet_pton(af, buf, bin) != 1)
		return SMTP_ADDR_E_BAD_DOMAIN;
	*n = i + 1;
	return SMTP_ADDR_OK;
}

/* Is c a legal end for the domain or mailbox just scanned? */
static bool
addr_at_end(const char *s, size_t len, size_t i, enum addr_end end)
{
	switch (end) {
	case ADDR_END_BRACKET:
		return i < len && s[i] == '>';
	case ADDR_END_INPUT:
		return i == len;
	case ADDR_END_SPACE:
		return i == len || s[i] == ' ';
	}
	return false;
}

/* Domain = sub-domain *("." sub-domain), or an address literal when
 * literal_ok. Each label is Let-dig [Ldh-str] (RFC 5321 4.1.2), at most 63
 * octets; a label carrying UTF-8 (RFC 6531 U-label) is bounded only by the
 * 255 of the whole domain, since its A-label length needs IDNA to know.
 * "stops" lists the characters that may end the domain (the caller checks
 * which one it got); at the end of the input end_ok decides. */
static int
addr_domain_scan(const char *s, size_t len, unsigned flags, bool literal_ok,
		 const char *stops, bool end_ok, size_t *n, bool *is_lit,
		 bool *has_8bit)
{
	const unsigned char *p = (const unsigned char *)s;
	bool lit = false, any8 = false;
	size_t i = 0, k;
	int rc;

	if (len > 0 && p[0] == '[') {
		if (!literal_ok)
			return SMTP_ADDR_E_BAD_DOMAIN;
		rc = addr_literal_scan(s, len, &i);
		if (rc != SMTP_ADDR_OK)
			return rc;
		lit = true;
	} else {
		for (;;) {
			size_t start = i;
			bool lab8 = false;

			while (i < len) {
				if (addr_is_alpha(p[i]) ||
				    addr_is_digit(p[i]) || p[i] == '-') {
					i++;
				} else if (p[i] >= 0x80) {
					rc = addr_take_utf8(s, len, i, flags,
							    &k);
					if (rc != SMTP_ADDR_OK)
						return rc;
					lab8 = true;
					i += k;
				} else {
					break;
				}
			}
			/* covers "a..b", ".a" and the trailing dot of "a." */
			if (i == start || p[start] == '-' || p[i - 1] == '-')
				return SMTP_ADDR_E_BAD_DOMAIN;
			if (!lab8 && i - start > ADDR_LABEL_MAX)
				return SMTP_ADDR_E_BAD_DOMAIN;
			any8 |= lab8;
			if (i < len && p[i] == '.') {
				i++;
				continue;
			}
			break;
		}
	}
	if (i == len) {
		if (!end_ok)
			return SMTP_ADDR_E_SYNTAX; /* path cut short */
	} else if (p[i] == '\0' || strchr(stops, p[i]) == NULL) {
		return SMTP_ADDR_E_BAD_DOMAIN;
	}
	if (i > SMTP_DOMAIN_MAX)
		return SMTP_ADDR_E_DOMAIN_TOO_LONG;
	*n = i;
	*is_lit = lit;
	*has_8bit |= any8;
	return SMTP_ADDR_OK;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), or a lone
 * "Postmaster" under SMTP_ADDR_ALLOW_NODOMAIN (RFC 5321 4.1.1.3, matched
 * without regard to case as 4.5.1 asks). Fills local, domain, mailbox and
 * the flags of *a; sets *n to the length scanned. */
static int
addr_mailbox_scan(const char *s, size_t len, unsigned flags, enum addr_end end,
		  struct smtp_addr *a, size_t *n)
{
	const char *stops = end == ADDR_END_BRACKET ? ">" :
			    end == ADDR_END_SPACE   ? " " :
						      "";
	bool end_ok = end != ADDR_END_BRACKET;
	bool has_8bit = false, is_lit = false;
	size_t lnum, dnum = 0, mlen;
	int rc;

	rc = addr_local_scan(s, len, flags, &lnum, &has_8bit);
	if (rc != SMTP_ADDR_OK)
		return rc;
	if (lnum > SMTP_LOCAL_MAX)
		return SMTP_ADDR_E_LOCAL_TOO_LONG;
	if (lnum >= len || s[lnum] != '@') {
		if (lnum < len && !addr_at_end(s, len, lnum, end))
			return SMTP_ADDR_E_SYNTAX;
		if (lnum >= len && end == ADDR_END_BRACKET)
			return SMTP_ADDR_E_SYNTAX; /* no ">" */
		if (!(flags & SMTP_ADDR_ALLOW_NODOMAIN) || lnum != 10 ||
		    !addr_ieq(s, "postmaster", 10))
			return SMTP_ADDR_E_NO_DOMAIN;
	} else {
		rc = addr_domain_scan(s + lnum + 1, len - lnum - 1, flags, true,
				      stops, end_ok, &dnum, &is_lit, &has_8bit);
		if (rc != SMTP_ADDR_OK)
			return rc;
	}

	mlen = dnum > 0 ? lnum + 1 + dnum : lnum;
	memcpy(a->local, s, lnum);
	a->local[lnum] = '\0';
	if (dnum > 0) /* s + lnum + 1 may lie past the input otherwise */
		memcpy(a->domain, s + lnum + 1, dnum);
	a->domain[dnum] = '\0';
	/* as written: the domain's case is kept for the logs and for the
	 * next hop; comparisons fold case themselves */
	memcpy(a->mailbox, s, mlen);
	a->mailbox[mlen] = '\0';
	a->is_ip_literal = is_lit;
	a->is_utf8 = has_8bit;
	*n = mlen;
	return SMTP_ADDR_OK;
}

/* A-d-l = At-domain *( "," At-domain ) ":" (RFC 5321 4.1.2). Servers
 * must still accept a source route and should ignore it (RFC 5321 3.3 and
 * C), so it is checked for syntax and dropped. s starts at its first "@". */
static int
addr_route_scan(const char *s, size_t len, unsigned flags, size_t *n)
{
	bool lit, has_8bit = false;
	size_t i = 0, k;
	int rc;

	for (;;) {
		if (i >= len || s[i] != '@')
			return SMTP_ADDR_E_SYNTAX;
		i++;
		/* At-domain is "@" Domain: no address literal there */
		rc = addr_domain_scan(s + i, len - i, flags, false, ",:>",
				      false, &k, &lit, &has_8bit);
		if (rc != SMTP_ADDR_OK)
			return rc;
		i += k;
		if (s[i] == '>')
			return SMTP_ADDR_E_SYNTAX; /* "<@x>": no mailbox */
		if (s[i++] == ':')
			break;
	}
	*n = i;
	return SMTP_ADDR_OK;
}

int
smtp_path_parse(const char *s, size_t len, unsigned flags,
		struct smtp_addr *out, size_t *consumed)
{
	struct smtp_addr a;
	bool has_route = false;
	size_t i = 0, k, wire_len;
	int rc;

	memset(&a, 0, sizeof(a));
	if (len == 0)
		return SMTP_ADDR_E_SYNTAX;
	if (s[0] != '<') {
		if (!(flags & SMTP_ADDR_ALLOW_NOBRACKET))
			return SMTP_ADDR_E_SYNTAX;
		rc = addr_mailbox_scan(s, len, flags, ADDR_END_SPACE, &a, &k);
		if (rc != SMTP_ADDR_OK)
			return rc;
		/* measured as if the client had sent the brackets */
		if (k + 2 > SMTP_PATH_MAX)
			return SMTP_ADDR_E_PATH_TOO_LONG;
		*out = a;
		*consumed = k;
		return SMTP_ADDR_OK;
	}

	i = 1;
	if (i < len && s[i] == '>') {
		if (!(flags & SMTP_ADDR_ALLOW_NULL))
			return SMTP_ADDR_E_SYNTAX;
		a.is_null = true;
		*out = a;
		*consumed = 2;
		return SMTP_ADDR_OK;
	}
	if (i < len && s[i] == '@') {
		rc = addr_route_scan(s + i, len - i, flags, &k);
		if (rc != SMTP_ADDR_OK)
			return rc;
		i += k;
		has_route = true;
	}
	rc = addr_mailbox_scan(s + i, len - i, flags, ADDR_END_BRACKET, &a, &k);
	if (rc != SMTP_ADDR_OK)
		return rc;
	i += k;
	/* addr_mailbox_scan() only stops at a ">" in bracket mode */
	wire_len = i + 1;
	/* RFC 5321 4.5.3.1.3 counts the whole path, the dropped route too */
	if (wire_len > SMTP_PATH_MAX)
		return SMTP_ADDR_E_PATH_TOO_LONG;
	a.had_source_route = has_route;
	*out = a;
	*consumed = wire_len;
	return SMTP_ADDR_OK;
}

int
smtp_mailbox_parse(const char *s, size_t len, unsigned flags,
		   struct smtp_addr *out)
{
	struct smtp_addr a;
	size_t k;
	int rc;

	memset(&a, 0, sizeof(a));
	if (len == 0)
		return SMTP_ADDR_E_SYNTAX;
	rc = addr_mailbox_scan(s, len, flags, ADDR_END_INPUT, &a, &k);
	if (rc != SMTP_ADDR_OK)
		return rc;
	/* a mailbox that could not be sent in a path is no use to us */
	if (k + 2 > SMTP_PATH_MAX)
		return SMTP_ADDR_E_PATH_TOO_LONG;
	*out = a;
	return SMTP_ADDR_OK;
}

bool
smtp_addr_is_postmaster(const struct smtp_addr *a, const char *our_domain)
{
	size_t n = strlen(our_domain);

	/* RFC 5321 4.5.1: "postmaster" is matched without regard to case;
	 * a quoted local part is taken as written and never matches */
	if (a->is_null || strlen(a->local) != 10 ||
	    !addr_ieq(a->local, "postmaster", 10))
		return false;
	if (a->domain[0] == '\0')
		return true;
	return strlen(a->domain) == n && addr_ieq(a->domain, our_domain, n);
}

/* Replies. Syntax and length errors are all 501 (RFC 5321 4.5.3.1 gives
 * "501 Path too long" for the length limits, 4.2.2 501 for bad arguments)
 * with X.1.7 for the sender and X.1.3 for a recipient (RFC 3463 3.2).
 * A non-ASCII address without SMTPUTF8 is 553 with X.6.7 (RFC 6531 3.5).
 * Index: -err. */
static const char *const addr_reply_sender[] = {
	"250 2.1.0 Ok",
	"501 5.1.7 Bad sender address syntax",
	"501 5.1.7 Sender address local part longer than 64 octets",
	"501 5.1.7 Sender address domain longer than 255 octets",
	"501 5.1.7 Sender path longer than 256 octets",
	"553 5.6.7 Non-ASCII sender address requires SMTPUTF8",
	"501 5.1.7 Sender address is not valid UTF-8",
	"501 5.1.7 Bad sender address domain syntax",
	"501 5.1.7 Sender address needs a domain",
};

static const char *const addr_reply_rcpt[] = {
	"250 2.1.5 Ok",
	"501 5.1.3 Bad recipient address syntax",
	"501 5.1.3 Recipient address local part longer than 64 octets",
	"501 5.1.3 Recipient address domain longer than 255 octets",
	"501 5.1.3 Recipient path longer than 256 octets",
	"553 5.6.7 Non-ASCII recipient address requires SMTPUTF8",
	"501 5.1.3 Recipient address is not valid UTF-8",
	"501 5.1.3 Bad recipient address domain syntax",
	"501 5.1.3 Recipient address needs a domain",
};

const char *
smtp_addr_strerror(int err, bool is_rcpt)
{
	const char *const *t = is_rcpt ? addr_reply_rcpt : addr_reply_sender;
	size_t n = sizeof(addr_reply_sender) / sizeof(*addr_reply_sender);

	/* an unknown code still gets a syntax reply, never NULL */
	if (err > 0 || err <= -(int)n)
		return t[-SMTP_ADDR_E_SYNTAX];
	return t[-err];
}

int
smtp_name_norm(const char *in, char out[SMTP_NAME_TEXT_MAX + 1])
{
	char tmp[SMTP_NAME_TEXT_MAX + 1];
	size_t n = in == NULL ? 0 : strnlen(in, SMTP_NAME_TEXT_MAX + 2);
	size_t label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > SMTP_NAME_TEXT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '-' || c == '_') {
			if (++label > 63)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
		tmp[i] = c;
	}
	if (label == 0)
		return -EINVAL;
	tmp[n] = '\0';
	memcpy(out, tmp, n + 1);
	return 0;
}
