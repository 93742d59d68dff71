/* The version record among a name's TXT records (txt_record.h). */
#include "node/tls/txt_record.h"

#include <string.h>

long
txt_record_pick(const char *const *txts, const size_t *lens, size_t n,
		const char *version)
{
	size_t vlen = strlen(version), found = 0, which = 0;

	for (size_t i = 0; txts != NULL && lens != NULL && i < n; i++) {
		const char *t = txts[i];

		if (t == NULL || lens[i] < vlen || memcmp(t, version, vlen) != 0)
			continue;
		if (lens[i] > vlen && t[vlen] != ';' &&
		    !txt_is_wsp((unsigned char)t[vlen]))
			continue; /* "v=STSv10;": another version */
		found++;
		which = i;
	}
	return found == 1 ? (long)which : -1;
}

int
txt_record_next(const char *txt, size_t len, size_t *i)
{
	size_t k = *i;

	while (k < len && txt_is_wsp((unsigned char)txt[k]))
		k++;
	if (k < len && txt[k] != ';')
		return -1;
	if (k < len)
		k++;
	while (k < len && txt_is_wsp((unsigned char)txt[k]))
		k++;
	*i = k;
	return k < len ? 1 : 0;
}
