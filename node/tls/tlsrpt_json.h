/* SMTP TLS Reporting (RFC 8460) as text: the _smtp._tls TXT record (3),
 * the aggregate report as JSON (4.3, 4.4) and its gzip form (5.2).
 * No I/O and no logging; counting sessions, choosing the day and sending
 * belong to node/tls/tlsrpt.c. Handles untrusted input: TXT records come
 * from DNS, and every string of a report may hold any bytes (MX names,
 * policy lines), which come out as valid JSON. */
#ifndef SHOAL_TLSRPT_JSON_H
#define SHOAL_TLSRPT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define TLSRPT_RUA_MAX 8    /* ours: report URIs kept */
#define TLSRPT_URI_MAX 512  /* ours: bytes of one URI */
#define TLSRPT_ADDR_MAX 320 /* RFC 5321 4.5.3.1.1 + 4.5.3.1.2, and @ */

enum tlsrpt_scheme {
	TLSRPT_MAILTO = 0,
	TLSRPT_HTTPS,
};

/* Where reports go: the usable URIs of a record's rua, in order. */
struct tlsrpt_rua {
	size_t n;	  /* URIs kept, 1..TLSRPT_RUA_MAX */
	size_t n_skipped; /* URIs left out: other scheme, malformed, too
			   * long, or past the TLSRPT_RUA_MAX-th */
	enum tlsrpt_scheme scheme[TLSRPT_RUA_MAX];
	/* the URI as published, NUL-terminated, without a "!size" suffix */
	char uri[TLSRPT_RUA_MAX][TLSRPT_URI_MAX + 1];
	/* mailto: the address (before any '?', %XX decoded); https: "" */
	char addr[TLSRPT_RUA_MAX][TLSRPT_ADDR_MAX + 1];
};

/* Parse one _smtp._tls TXT record (its strings joined, len bytes, not
 * NUL-terminated, may hold NULs) by RFC 8460 3:
 *   v=TLSRPTv1; rua=mailto:reports@example.com,https://r.example/v1
 * "v=TLSRPTv1" first (case-sensitive), fields separated by ';' with
 * optional blanks around it, an optional final ';'. "rua" is required;
 * its URIs are separated by ',' (blanks allowed around it); the URIs of
 * a second rua field are added after the first's. Other well-formed
 * fields (name=value) are ignored. A URI is kept when its scheme is
 * mailto: or https: (any case), it is at most TLSRPT_URI_MAX bytes of
 * RFC 3986 characters, and it is one of the first TLSRPT_RUA_MAX such;
 * a mailto: address must decode to one address with an '@' and no
 * control characters, blanks or commas; an https: URI needs a host
 * ("https://h..."). A trailing "!<digits>[kmgt]" on a URI (DMARC's
 * size limit, which RFC 8460 does not define) is dropped. Others count in
 * n_skipped. Returns 0 and fills *out; -EINVAL when the record is
 * malformed or has no rua; -ENOTSUP when it is well-formed but no URI
 * could be kept. *out is untouched on error. */
int tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out);

/* Choose the record among the n TXT records of one _smtp._tls answer
 * (each txts[i] of lens[i] bytes) by RFC 8460 3: records that do not
 * begin with "v=TLSRPTv1" followed by ';', a blank or their end are
 * discarded; if not exactly one remains the domain does not take
 * reports. Returns 0 and fills *out as tlsrpt_txt_parse() does;
 * -ENOENT when no record or several are candidates; otherwise
 * tlsrpt_txt_parse()'s error for the only candidate. */
int tlsrpt_txt_pick(const char *const *txts, const size_t *lens, size_t n,
		    struct tlsrpt_rua *out);

/* RFC 8460 4.4 failure-details entry. Fields are NUL-terminated (a field
 * filled to its end without a NUL is read up to its size); "" leaves the
 * optional ones out of the JSON. */
struct tlsrpt_failure {
	char result_type[40];	/* "certificate-expired", ... (required) */
	char sending_ip[64];	/* sending-mta-ip */
	char receiving_mx[256]; /* receiving-mx-hostname */
	char receiving_ip[64];	/* receiving-ip */
	uint64_t count;		/* failed-session-count */
};

/* One entry of "policies": a policy and its counts. Borrowed pointers:
 * they must stay valid during tlsrpt_report_json() only. */
struct tlsrpt_policy {
	char type[24]; /* "sts", "tlsa" or "no-policy-found" */
	/* policy-string lines (sts_policy_strings(), TLSA records); left
	 * out of the JSON when n_strings is 0 */
	size_t n_strings;
	const char *const *strings;
	char domain[256]; /* policy-domain */
	/* mx-host patterns; left out when n_mx_host is 0 */
	size_t n_mx_host;
	const char *const *mx_host;
	uint64_t success; /* total-successful-session-count */
	uint64_t failure; /* total-failure-session-count */
	/* failure-details; left out when n_fail is 0 */
	size_t n_fail;
	const struct tlsrpt_failure *fail;
};

/* A report: one reporting period for one policy domain. NULL strings are
 * written as "". */
struct tlsrpt_report {
	const char *org;       /* organization-name */
	const char *contact;   /* contact-info */
	const char *report_id; /* report-id */
	uint64_t start, end;   /* date-range, Unix seconds (UTC); later than
				* 9999-12-31T23:59:59Z is written as that */
	size_t n;	       /* policies; 0 gives "policies": [] */
	const struct tlsrpt_policy *pol;
};

/* The report as RFC 8460 4.3 JSON, one line ending in "\n", field names
 * exactly as the RFC spells them and dates as RFC 3339 UTC
 * ("2026-12-07T00:00:00Z"); counts above 2^53 - 1 are written as that
 * (RFC 7493 2.2, so that any JSON reader takes them exactly, jansson
 * included). Strings may hold any bytes: quotes and
 * control characters are escaped, a byte that is not part of well-formed
 * UTF-8 comes out as \u00XX (lib/json.h), so the result is always valid
 * JSON. r must not be NULL. Returns a NUL-terminated string the caller
 * frees with free(), or NULL when out of memory. */
char *tlsrpt_report_json(const struct tlsrpt_report *r);

/* Append the gzip form (RFC 1952; RFC 8460 5.2, application/tlsrpt+gzip)
 * of the len bytes at in to out. Returns 0; -EMSGSIZE when out would
 * pass out->max; -ENOMEM or -EIO when zlib failed. On error out holds
 * what it held before. */
int tlsrpt_gzip(const void *in, size_t len, struct buf *out);

#endif
