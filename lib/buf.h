/* A growable byte buffer with a hard upper bound. Knows nothing of mail. */
#ifndef SHOAL_BUF_H
#define SHOAL_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;    /* never grows past this many bytes */
};

/* Start an empty buffer that refuses to hold more than max bytes. */
void buf_init(struct buf *b, size_t max);

/* Release the memory; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);

/* Forget the content but keep the memory. */
void buf_reset(struct buf *b);

/* Append n bytes. Returns 0, or -EMSGSIZE (nothing appended) when the result
 * would pass b->max. */
int buf_append(struct buf *b, const void *p, size_t n);

/* Insert n bytes at offset at (<= b->len), moving what follows. Returns
 * 0, or -EMSGSIZE (nothing inserted) when the result would pass b->max. */
int buf_insert(struct buf *b, size_t at, const void *p, size_t n);

/* Append a formatted string (bounded like buf_append). */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Hand the memory over: returns data (caller frees with free()), leaves the
 * buffer empty. May return NULL when nothing was ever appended. */
char *buf_steal(struct buf *b, size_t *len);

#endif
