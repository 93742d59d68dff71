/* Allocation helpers that abort on failure, so call sites stay clean.
 * Out of memory is a "we are wrong / the host is wrong" failure: systemd
 * restarts us and LMDB still holds every acknowledged message. */
#ifndef SHOAL_XMALLOC_H
#define SHOAL_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
