/* MTA-STS (RFC 8461) as text: the _mta-sts TXT record (3.1), the policy
 * body fetched over HTTPS (3.2), the MX host pattern match (4.1) and the
 * policy as RFC 8460's "policy-string" lines for TLS reports (4.4).
 * Pure functions: no I/O, no allocation, no logging; the DNS lookup, the
 * HTTPS fetch and the cache belong to node/tls/sts.c. Handles untrusted
 * input (DNS answers, HTTPS bodies, MX names): every length is bounded,
 * any byte may appear, out-parameters are written only on success. */
#ifndef SHOAL_STS_POLICY_H
#define SHOAL_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STS_ID_MAX 32		 /* RFC 8461 3.1: 1*32(ALPHA / DIGIT) */
#define STS_NAME_MAX 253	 /* RFC 1035 2.3.4, as text without the dot */
#define STS_MX_MAX 32		 /* ours: mx lines kept; more is an error */
#define STS_POLICY_MAX 65536	 /* ours: bytes of a policy body */
#define STS_MAX_AGE_MAX 31557600 /* RFC 8461 3.2: one year, in seconds */
/* One policy-string line: "mx: " and a pattern, or the longest other. */
#define STS_LINE_MAX (4 + STS_NAME_MAX + 1)
/* Lines of a policy-string: version, mode, each mx, max_age. */
#define STS_LINES_MAX (3 + STS_MX_MAX)

enum sts_mode {
	STS_MODE_NONE = 0,
	STS_MODE_TESTING,
	STS_MODE_ENFORCE,
};

/* A parsed policy. mx[] holds lower-case patterns, "mx.example.com" or
 * "*.example.com", without a trailing dot; n_mx may be 0 only in mode
 * none. Callers embed it (about 8 KB). */
struct sts_policy {
	enum sts_mode mode;
	uint32_t max_age; /* seconds, 0..STS_MAX_AGE_MAX */
	size_t n_mx;
	char mx[STS_MX_MAX][STS_NAME_MAX + 1];
};

/* Parse one _mta-sts TXT record (its strings joined, len bytes, not
 * NUL-terminated, may hold NULs) by RFC 8461 3.1:
 *   v=STSv1; id=20160831085700Z;
 * "v=STSv1" first (case-sensitive), then fields separated by ';' with
 * optional spaces or tabs around it, an optional final ';' and trailing
 * blanks. "id" (1..32 letters and digits) is required and must appear
 * once; other well-formed fields (name=value, RFC 8461's sts-extension)
 * are ignored. Returns 0 and writes the id, NUL-terminated, into id;
 * -EINVAL when the record is malformed (id untouched). */
int sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1]);

/* Choose the record among the n TXT records of one _mta-sts answer (each
 * txts[i] of lens[i] bytes) by RFC 8461 3.1: records that do not begin
 * with "v=STSv1" followed by ';', a blank or their end are discarded; if
 * not exactly one remains there is no policy. Returns 0 and writes id as
 * sts_txt_parse() does; -ENOENT when no record or several are candidates;
 * -EINVAL when the only candidate is malformed. Both errors mean "the
 * domain has no MTA-STS policy" (the two only tell logs apart). */
int sts_txt_pick(const char *const *txts, const size_t *lens, size_t n,
		 char id[STS_ID_MAX + 1]);

/* Parse a policy body (len bytes, not NUL-terminated, may hold NULs) by
 * RFC 8461 3.2: "key: value" lines ended by LF or CRLF (the last one may
 * lack it), blanks after the ':' and at line end allowed, keys
 * case-sensitive. Required: "version: STSv1", "mode: enforce|testing|none"
 * and "max_age: N" (1 to 10 digits, N <= STS_MAX_AGE_MAX), each exactly
 * once (a repeated one is an error: which to believe is ambiguous); and
 * one or more "mx: [*.]host" unless mode is none. mx patterns are
 * RFC 5321 Domains (ASCII labels of letters, digits and inner hyphens,
 * 1..63 bytes; IDNs as A-labels) of at most STS_NAME_MAX bytes with the
 * "*." counted, stored lower-cased; more than STS_MX_MAX of them is an
 * error rather than a policy cut short. Fields in any order; other keys
 * (RFC 8461 sts-policy-extension: a well-formed name, a value without
 * control characters) are ignored; empty lines are skipped.
 * Returns 0 and fills *p; -EMSGSIZE when len > STS_POLICY_MAX; -EINVAL
 * when malformed. On error *p is untouched and, when errlen > 0, err holds
 * a short, NUL-terminated reason in plain ASCII without peer bytes
 * ("missing max_age", "line 3: bad mx"); err is untouched on success. */
int sts_policy_parse(const char *text, size_t len, struct sts_policy *p,
		     char *err, size_t errlen);

/* Whether MX host name host (NUL-terminated) matches one of p's patterns
 * by RFC 8461 4.1: ASCII case-insensitive, one trailing dot of host
 * ignored; "*.example.com" matches a name with exactly one more label on
 * the left ("mx.example.com"), neither "example.com" nor
 * "a.b.example.com". Empty or over-long names and names with empty labels
 * match nothing. */
bool sts_mx_match(const struct sts_policy *p, const char *host);

/* The name of a mode: "enforce", "testing", "none" (or "" when out of
 * range). The string is static. */
const char *sts_mode_name(enum sts_mode mode);

/* RFC 8460 4.4 policy-string: the lines of p, "version: STSv1", "mode:
 * <mode>", one "mx: <pattern>" per pattern, "max_age: <n>", written
 * NUL-terminated into lines[0..], at most max of them (STS_LINES_MAX is
 * always enough). Returns the number of lines written. */
size_t sts_policy_strings(const struct sts_policy *p,
			  char lines[][STS_LINE_MAX], size_t max);

#endif
