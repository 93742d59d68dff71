/* What the TXT records of RFC 8461 (`_mta-sts`) and RFC 8460
 * (`_smtp._tls`) share: a record is "v=VERSION" followed by ';', a blank
 * or its end, and a name must have exactly one such record, else it has
 * none. Pure functions. Handles untrusted input: DNS TXT data, any
 * bytes, lengths given. */
#ifndef SHOAL_TXT_RECORD_H
#define SHOAL_TXT_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/* The blanks of these records (RFC 5234 WSP). */
static inline bool
txt_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Step from the end of the version or of a field at *i to the start of
 * the next field: *WSP ";" *WSP (RFC 8461 3.1, RFC 8460 3). Returns 1
 * when a field starts at *i, 0 at the record's end (a last ";" and blanks
 * allowed), -1 when no ";" comes. */
int txt_record_next(const char *txt, size_t len, size_t *i);

/* The index of the one record among txts[0..n) (each of lens[i] bytes)
 * that starts with version ("v=STSv1"), or -1 when none or several do. */
long txt_record_pick(const char *const *txts, const size_t *lens, size_t n,
		     const char *version);

#endif
