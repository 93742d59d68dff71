/* A small streaming JSON writer (RFC 8259), for shoalctl --json and the delivery log: objects,
 * arrays, strings, unsigned integers, numbers and booleans, written straight to a
 * FILE as they come, so a long queue listing never sits in memory.
 *
 * Strings may be any bytes. They come out as valid UTF-8 JSON: '"' and
 * '\' escaped, control characters as \u00XX (\n, \r, \t, \b, \f in their
 * short forms), DEL as \u007f, U+2028 and U+2029 as \u2028 / \u2029 (for
 * JavaScript readers), well-formed UTF-8 as is, and each byte that is not
 * part of well-formed UTF-8 as \u00XX with XX its value (so 0xff reads as
 * U+00FF: shown, never dropped, never invalid output).
 *
 * The writer tracks commas itself; calls must still nest properly (a key
 * before each value inside an object, none inside an array): misuse is a
 * bug in the caller and trips SHOAL_ASSERT. Knows nothing of mail: it can
 * move to lib/ as it is. */
#ifndef SHOAL_JSON_H
#define SHOAL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 16

struct json {
	FILE *f;
	int depth;                        /* open objects and arrays */
	bool is_object[JSON_DEPTH_MAX];   /* per level: object or array */
	bool has_items[JSON_DEPTH_MAX];   /* per level: a comma is due */
	bool has_key;                     /* a key waits for its value */
};

/* Start a document on f. */
void json_init(struct json *j, FILE *f);

void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);

/* The key of the next value in the current object. */
void json_key(struct json *j, const char *key);

/* Values. json_str(NULL) writes "" (protobuf-c never hands out NULL
 * strings, but be safe). */
void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const void *s, size_t len);
void json_u64(struct json *j, uint64_t v);
/* A number as printf's %.15g (0.1 reads "0.1"); NaN and the
 * infinities, which JSON cannot say, as null. */
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* Key and value in one call. */
void json_kv_str(struct json *j, const char *key, const char *s);
void json_kv_u64(struct json *j, const char *key, uint64_t v);
void json_kv_double(struct json *j, const char *key, double v);
void json_kv_bool(struct json *j, const char *key, bool v);

/* End the document with a newline and flush. Every level must be closed.
 * Returns 0, or -EIO when writing to the FILE failed. */
int json_end(struct json *j);

/* The same without the flush: the line stays in the FILE's buffer until
 * the caller flushes (several lines, one write). */
int json_end_line(struct json *j);

/* Write len bytes of s as one quoted, escaped JSON string. */
void json_write_string(FILE *f, const void *s, size_t len);

/* The length (2..4) of the well-formed multi-byte UTF-8 sequence at p, of
 * at most n bytes, setting *cp to its code point; or 0 when the bytes at p
 * are not one (RFC 3629 section 4: no overlong forms, no surrogates,
 * nothing past U+10FFFF). p[0] must be >= 0x80. */
size_t json_utf8_seq(const unsigned char *p, size_t n, uint32_t *cp);

#endif
