/* MTA-STS records and policies as text (sts_policy.h): RFC 8461 3.1 (the
 * TXT record), 3.2 (the policy body), 4.1 (MX host patterns), and RFC
 * 8460 4.4's policy-string. Fetching, caching and applying a policy are
 * node/tls/sts.c's. Handles untrusted input: every byte is checked
 * against the RFC's ABNF before it is kept, and nothing from the peer is
 * copied into error texts. */
#include "node/tls/sts_policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "node/tls/txt_record.h"

#define STS_EXT_NAME_MAX 32   /* RFC 8461 3.1, 3.2: 1 + *31 characters */
#define STS_LABEL_MAX 63      /* RFC 1035 2.3.4 */
#define STS_MAX_AGE_DIGITS 10 /* RFC 8461 3.2: 1*10(DIGIT) */

static bool
sts_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static unsigned char
sts_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive equality of n bytes; other bytes must be equal. */
static bool
sts_case_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (sts_lower((unsigned char)a[i]) !=
		    sts_lower((unsigned char)b[i]))
			return false;
	return true;
}

/* RFC 8461 sts-ext-name / sts-policy-ext-name:
 * (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static bool
sts_is_name_char(unsigned char c)
{
	return sts_is_alnum(c) || c == '_' || c == '-' || c == '.';
}

static bool
sts_ext_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > STS_EXT_NAME_MAX ||
	    !sts_is_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!sts_is_name_char((unsigned char)s[i]))
			return false;
	return true;
}

/* RFC 8461 3.1 sts-ext-value characters: %x21-3A / %x3C / %x3E-7E. */
static bool
sts_is_txt_value_char(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';' && c != '=';
}

/* The field at txt[*i..] of a TXT record: name=value, checked; id goes to
 * idbuf (once). Advances *i past the value. Returns false when malformed. */
static bool
sts_txt_field(const char *txt, size_t len, size_t *i, char *idbuf, bool *has_id)
{
	size_t name = *i, name_len, val, val_len;

	while (*i < len && sts_is_name_char((unsigned char)txt[*i]))
		(*i)++;
	name_len = *i - name;
	if (*i >= len || txt[*i] != '=' ||
	    !sts_ext_name_ok(txt + name, name_len))
		return false;
	val = ++(*i);
	while (*i < len && sts_is_txt_value_char((unsigned char)txt[*i]))
		(*i)++;
	val_len = *i - val;
	if (val_len == 0)
		return false;
	/* the value ends at a blank, a ';' or the end: anything else ('=',
	 * a control character, a NUL, a high byte) is not in the grammar */
	if (*i < len && !txt_is_wsp((unsigned char)txt[*i]) && txt[*i] != ';')
		return false;
	if (name_len != 2 || memcmp(txt + name, "id", 2) != 0)
		return true; /* an extension: ignored */
	if (*has_id || val_len > STS_ID_MAX)
		return false;
	for (size_t k = 0; k < val_len; k++)
		if (!sts_is_alnum((unsigned char)txt[val + k]))
			return false;
	memcpy(idbuf, txt + val, val_len);
	idbuf[val_len] = '\0';
	*has_id = true;
	return true;
}

int
sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1])
{
	static const char version[] = "v=STSv1";
	const size_t vlen = sizeof(version) - 1;
	char idbuf[STS_ID_MAX + 1];
	bool has_id = false;
	size_t i;

	if (txt == NULL || len < vlen || memcmp(txt, version, vlen) != 0)
		return -EINVAL;
	i = vlen;
	for (;;) {
		int more = txt_record_next(txt, len, &i);

		if (more < 0)
			return -EINVAL;
		if (more == 0)
			break;
		if (!sts_txt_field(txt, len, &i, idbuf, &has_id))
			return -EINVAL;
	}
	if (!has_id)
		return -EINVAL;
	memcpy(id, idbuf, strlen(idbuf) + 1);
	return 0;
}

int
sts_txt_pick(const char *const *txts, const size_t *lens, size_t n,
	     char id[STS_ID_MAX + 1])
{
	long which = txt_record_pick(txts, lens, n, "v=STSv1");

	if (which < 0)
		return -ENOENT;
	return sts_txt_parse(txts[which], lens[which], id);
}

static void sts_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sts_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* An RFC 5321 Domain: labels of letters, digits and inner hyphens (1..63
 * bytes each), separated by single dots, no trailing dot. */
static bool
sts_domain_ok(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!sts_is_alnum(c) && (c != '-' || label == 0))
			return false;
		if (++label > STS_LABEL_MAX)
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

/* RFC 8461 3.2 sts-policy-mx-value: ["*."] Domain, at most STS_NAME_MAX
 * bytes in all. */
static bool
sts_mx_pattern_ok(const char *s, size_t n)
{
	if (n > STS_NAME_MAX)
		return false;
	if (n >= 2 && s[0] == '*' && s[1] == '.')
		return sts_domain_ok(s + 2, n - 2);
	return sts_domain_ok(s, n);
}

/* The value of an unknown field: RFC 8461 sts-policy-ext-value is
 * printable ASCII, spaces and UTF-8; control characters make the line
 * malformed. */
static bool
sts_ext_value_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool
sts_value_is(const char *v, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(v, want, n) == 0;
}

/* Parsing state of one policy body. */
struct sts_parse {
	struct sts_policy pol;
	bool has_version, has_mode, has_max_age;
	unsigned line;
	char *err;
	size_t errlen;
};

/* One "key: value" line (key and value without the blanks around the
 * value). Returns 0 or -EINVAL with the reason in st->err. */
static int
sts_policy_field(struct sts_parse *st, const char *key, size_t klen,
		 const char *v, size_t vlen)
{
	struct sts_policy *pol = &st->pol;

	if (sts_value_is(key, klen, "version")) {
		if (st->has_version)
			goto dup;
		if (!sts_value_is(v, vlen, "STSv1"))
			goto bad;
		st->has_version = true;
	} else if (sts_value_is(key, klen, "mode")) {
		if (st->has_mode)
			goto dup;
		if (sts_value_is(v, vlen, "enforce"))
			pol->mode = STS_MODE_ENFORCE;
		else if (sts_value_is(v, vlen, "testing"))
			pol->mode = STS_MODE_TESTING;
		else if (sts_value_is(v, vlen, "none"))
			pol->mode = STS_MODE_NONE;
		else
			goto bad;
		st->has_mode = true;
	} else if (sts_value_is(key, klen, "max_age")) {
		uint64_t age = 0;

		if (st->has_max_age)
			goto dup;
		if (vlen == 0 || vlen > STS_MAX_AGE_DIGITS)
			goto bad;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				goto bad;
			age = age * 10 + (uint64_t)(v[i] - '0');
		}
		if (age > STS_MAX_AGE_MAX) {
			sts_err(st->err, st->errlen, "line %u: max_age over %u",
				st->line, (unsigned)STS_MAX_AGE_MAX);
			return -EINVAL;
		}
		pol->max_age = (uint32_t)age;
		st->has_max_age = true;
	} else if (sts_value_is(key, klen, "mx")) {
		char *out;

		if (!sts_mx_pattern_ok(v, vlen))
			goto bad;
		if (pol->n_mx == STS_MX_MAX) {
			sts_err(st->err, st->errlen, "more than %u mx",
				(unsigned)STS_MX_MAX);
			return -EINVAL;
		}
		out = pol->mx[pol->n_mx++];
		for (size_t i = 0; i < vlen; i++)
			out[i] = (char)sts_lower((unsigned char)v[i]);
		out[vlen] = '\0';
	} else if (!sts_ext_value_ok(v, vlen)) {
		sts_err(st->err, st->errlen, "line %u: bad value", st->line);
		return -EINVAL;
	}
	return 0;
dup:
	sts_err(st->err, st->errlen, "line %u: duplicate %.*s", st->line,
		(int)klen, key);
	return -EINVAL;
bad:
	sts_err(st->err, st->errlen, "line %u: bad %.*s", st->line, (int)klen,
		key);
	return -EINVAL;
}

/* One line without its terminator. Empty and blank lines are skipped. */
static int
sts_policy_line(struct sts_parse *st, const char *s, size_t n)
{
	size_t k = 0, v;

	while (n > 0 && txt_is_wsp((unsigned char)s[n - 1]))
		n--; /* RFC 8461 3.2: sts-policy-field *WSP */
	if (n == 0)
		return 0;
	while (k < n && sts_is_name_char((unsigned char)s[k]))
		k++;
	if (k == n || s[k] != ':' || !sts_ext_name_ok(s, k)) {
		sts_err(st->err, st->errlen, "line %u: bad key", st->line);
		return -EINVAL;
	}
	v = k + 1;
	while (v < n && txt_is_wsp((unsigned char)s[v]))
		v++; /* field-delim = ":" *WSP */
	/* only the known keys' names, never peer bytes, reach err */
	return sts_policy_field(st, s, k, s + v, n - v);
}

int
sts_policy_parse(const char *text, size_t len, struct sts_policy *p, char *err,
		 size_t errlen)
{
	struct sts_parse st;
	size_t pos = 0;

	memset(&st, 0, sizeof(st));
	st.err = err;
	st.errlen = errlen;
	if (len > STS_POLICY_MAX) {
		sts_err(err, errlen, "policy over %u bytes",
			(unsigned)STS_POLICY_MAX);
		return -EMSGSIZE;
	}
	if (text == NULL)
		len = 0;
	while (pos < len) {
		const char *eol = memchr(text + pos, '\n', len - pos);
		size_t end = eol != NULL ? (size_t)(eol - text) : len;
		size_t n = end - pos;

		st.line++;
		/* LF or CRLF: a CR anywhere else is a control character */
		if (eol != NULL && n > 0 && text[end - 1] == '\r')
			n--;
		if (sts_policy_line(&st, text + pos, n) < 0)
			return -EINVAL;
		pos = eol != NULL ? end + 1 : len;
	}
	if (!st.has_version)
		sts_err(err, errlen, "missing version");
	else if (!st.has_mode)
		sts_err(err, errlen, "missing mode");
	else if (!st.has_max_age)
		sts_err(err, errlen, "missing max_age");
	else if (st.pol.mode != STS_MODE_NONE && st.pol.n_mx == 0)
		sts_err(err, errlen, "missing mx");
	else {
		*p = st.pol;
		return 0;
	}
	return -EINVAL;
}

bool
sts_mx_match(const struct sts_policy *p, const char *host)
{
	size_t n, n_mx;

	if (p == NULL || host == NULL)
		return false;
	n = strnlen(host, STS_NAME_MAX + 2);
	if (n > 0 && host[n - 1] == '.')
		n--; /* the root: "mx.example.com." is "mx.example.com" */
	if (n == 0 || n > STS_NAME_MAX || host[0] == '.' ||
	    host[n - 1] == '.' || memmem(host, n, "..", 2) != NULL)
		return false;
	n_mx = p->n_mx < STS_MX_MAX ? p->n_mx : STS_MX_MAX;
	for (size_t i = 0; i < n_mx; i++) {
		const char *pat = p->mx[i];
		size_t plen = strnlen(pat, STS_NAME_MAX + 1);

		if (plen >= 2 && pat[0] == '*' && pat[1] == '.') {
			/* RFC 8461 4.1: the wildcard is one whole label */
			const char *suffix = pat + 1; /* ".example.com" */
			size_t slen = plen - 1, left;

			if (n <= slen)
				continue;
			left = n - slen;
			if (memchr(host, '.', left) == NULL &&
			    sts_case_eq(host + left, suffix, slen))
				return true;
		} else if (plen == n && sts_case_eq(host, pat, n)) {
			return true;
		}
	}
	return false;
}

const char *
sts_mode_name(enum sts_mode mode)
{
	switch (mode) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	case STS_MODE_NONE:
		return "none";
	}
	return "";
}

size_t
sts_policy_strings(const struct sts_policy *p, char lines[][STS_LINE_MAX],
		   size_t max)
{
	size_t n = 0, n_mx;

	if (p == NULL || lines == NULL)
		return 0;
	/* RFC 8460 4.4's example order: version, mode, mx..., max_age */
	if (n < max)
		snprintf(lines[n++], STS_LINE_MAX, "version: STSv1");
	if (n < max)
		snprintf(lines[n++], STS_LINE_MAX, "mode: %s",
			 sts_mode_name(p->mode));
	n_mx = p->n_mx < STS_MX_MAX ? p->n_mx : STS_MX_MAX;
	for (size_t i = 0; i < n_mx && n < max; i++)
		snprintf(lines[n++], STS_LINE_MAX, "mx: %.*s",
			 (int)strnlen(p->mx[i], STS_NAME_MAX), p->mx[i]);
	if (n < max)
		snprintf(lines[n++], STS_LINE_MAX, "max_age: %u",
			 (unsigned)p->max_age);
	return n;
}
