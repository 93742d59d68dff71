/* DKIM signing (RFC 6376) of a message held in memory: the header and body
 * canonicalizations (3.4), the body hash, the choice of header fields to
 * sign (5.4, bottom-up, with From oversigned), and the DKIM-Signature
 * header field, folded to lines of at most 78 characters. The From domain
 * of a message (RFC 5322 3.6.2), for choosing keys. Independent of
 * sockets and config; keys are lib/dkim_key.h. Handles untrusted input:
 * the message may be anything; the work is linear in its size and the
 * number of header fields is bounded (DKIM_FIELDS_MAX). */
#ifndef SHOAL_DKIM_H
#define SHOAL_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/dkim_key.h"

#define DKIM_FIELDS_MAX 1000 /* header fields of a message we sign */
#define DKIM_NAMES_MAX 64    /* names in a configured header list */
#define DKIM_NAME_MAX 128    /* one header field name */
#define DKIM_DOMAIN_MAX 253  /* RFC 1035 2.3.4, without the root dot */
#define DKIM_FROM_MAX 4096   /* From field we parse for its domain */
#define DKIM_LINE_MAX 78     /* RFC 5322 2.1.1: our own lines */

enum dkim_canon {
	DKIM_CANON_SIMPLE = 0,
	DKIM_CANON_RELAXED = 1,
};

/* Where canonical output goes: a hash, or a buffer in tests. */
typedef void (*dkim_sink_fn)(void *arg, const void *p, size_t n);

/* A message parsed for signing: its header fields and where the body
 * starts. Borrows the message bytes, which must stay unchanged while it
 * lives. */
struct dkim_msg;

/* Parse msg[0..len): header fields up to the first empty line (a message
 * without one is all header). Returns 0 and sets *out (free with
 * dkim_msg_free()), or -E2BIG when it has over DKIM_FIELDS_MAX fields. */
int dkim_msg_parse(const char *msg, size_t len, struct dkim_msg **out);

void dkim_msg_free(struct dkim_msg *m);

/* The domain of the one From address, lower-cased, in out (NUL-terminated,
 * outlen >= DKIM_DOMAIN_MAX + 1). Returns 0, -ENOENT without a From field,
 * -EMLINK with several From fields or several addresses in one, -EINVAL
 * when the address cannot be read. */
int dkim_msg_from_domain(const struct dkim_msg *m, char *out, size_t outlen);

/* What to sign with. headers NULL means dkim_default_headers; of a list,
 * the first DKIM_NAMES_MAX names count and names longer than
 * DKIM_NAME_MAX are skipped. */
struct dkim_sign_req {
	const char *domain;   /* d= */
	const char *selector; /* s= */
	enum dkim_canon header_canon, body_canon;
	const char *const *headers; /* names to sign, NULL-terminated */
	uint64_t now;		    /* t=, seconds since the epoch */
	uint32_t expire_s;	    /* x= t + expire_s; 0 = no x= */
};

/* The default list of header names to sign, NULL-terminated. */
extern const char *const dkim_default_headers[];

/* Sign m with key: appends one "DKIM-Signature: ...\r\n" header field to
 * out. Every name of the list is signed as often as it occurs, From once
 * more (so no From can be added). The body hash of each canonicalization
 * is computed once per message and reused by further signatures. Returns
 * 0, -EMSGSIZE when out is full (nothing appended), -EIO when OpenSSL
 * fails. */
int dkim_sign(struct dkim_msg *m, const struct dkim_key *key,
	      const struct dkim_sign_req *req, struct buf *out);

/* Canonicalize a body (RFC 6376 3.4.3, 3.4.4) into fn. The output of an
 * empty body is "" (relaxed) or "\r\n" (simple). */
void dkim_canon_body(enum dkim_canon c, const char *body, size_t len,
		     dkim_sink_fn fn, void *arg);

/* Canonicalize one header field (RFC 6376 3.4.1, 3.4.2), field[0..len)
 * being the field with its line ends, into fn, ending with CRLF. */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len,
		       dkim_sink_fn fn, void *arg);

/* Is s a header field name (RFC 5322 2.2: printable ASCII but ':', at
 * most DKIM_NAME_MAX)? */
bool dkim_is_header_name(const char *s);

/* Is s usable as d= or s= (RFC 6376 3.5: letters, digits, '-', '_' and
 * dots between labels; at most DKIM_DOMAIN_MAX)? */
bool dkim_is_dns_name(const char *s);

#endif
