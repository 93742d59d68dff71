/* Growable, bounded byte buffer. */
#include "lib/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
}

static void
buf_reserve(struct buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 256;

	if (need <= b->cap)
		return;
	while (cap < need)
		cap *= 2;
	/* +1 keeps room for a terminating NUL; max may be SIZE_MAX */
	if (b->max < SIZE_MAX && cap > b->max + 1)
		cap = b->max + 1;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return -EMSGSIZE;
	buf_reserve(b, b->len + n + 1);
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_insert(struct buf *b, size_t at, const void *p, size_t n)
{
	if (at > b->len || n > b->max || b->len > b->max - n)
		return -EMSGSIZE;
	buf_reserve(b, b->len + n + 1);
	memmove(b->data + at + n, b->data + at, b->len - at);
	if (n)
		memcpy(b->data + at, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	{
		char *big = xmalloc((size_t)n + 1);
		int rc;

		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		rc = buf_append(b, big, (size_t)n);
		free(big);
		return rc;
	}
}

char *
buf_steal(struct buf *b, size_t *len)
{
	char *p = b->data;

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
