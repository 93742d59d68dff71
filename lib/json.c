/* The JSON writer behind shoalctl --json. Handles untrusted input: the
 * strings are addresses, replies and headers from the network, and any
 * byte sequence must come out as valid JSON (see json.h for the rules). */
#include "lib/json.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "lib/err.h"

size_t
json_utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
		min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 0; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

void
json_write_string(FILE *f, const void *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = s;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		unsigned char b = p[i];
		uint32_t cp;
		size_t n;

		switch (b) {
		case '"': fputs("\\\"", f); i++; continue;
		case '\\': fputs("\\\\", f); i++; continue;
		case '\b': fputs("\\b", f); i++; continue;
		case '\f': fputs("\\f", f); i++; continue;
		case '\n': fputs("\\n", f); i++; continue;
		case '\r': fputs("\\r", f); i++; continue;
		case '\t': fputs("\\t", f); i++; continue;
		}
		if (b >= 0x20 && b < 0x7f) {
			/* a run of plain ASCII in one write, not a putc each
			 * (the delivery log writes a line per attempt) */
			size_t run = i + 1;

			while (run < len && p[run] >= 0x20 && p[run] < 0x7f &&
			       p[run] != '"' && p[run] != '\\')
				run++;
			fwrite(p + i, 1, run - i, f);
			i = run;
			continue;
		}
		n = b >= 0x80 ? json_utf8_seq(p + i, len - i, &cp) : 0;
		if (n > 0 && cp != 0x2028 && cp != 0x2029) {
			fwrite(p + i, 1, n, f);
			i += n;
		} else if (n > 0) {
			fprintf(f, "\\u%04x", (unsigned)cp);
			i += n;
		} else {
			/* a control character, DEL, or a byte that is not
			 * UTF-8: its value as a code point */
			fprintf(f, "\\u00%c%c", hex[b >> 4], hex[b & 15]);
			i++;
		}
	}
	fputc('"', f);
}

/* Write the comma a new value needs, and check it may come here. */
static void
json_value_prefix(struct json *j)
{
	if (j->depth == 0)
		return;
	if (j->is_object[j->depth - 1]) {
		SHOAL_ASSERT(j->has_key);
		j->has_key = false;
		return;
	}
	if (j->has_items[j->depth - 1])
		fputc(',', j->f);
	j->has_items[j->depth - 1] = true;
}

static void
json_open(struct json *j, bool is_object)
{
	json_value_prefix(j);
	SHOAL_ASSERT(j->depth < JSON_DEPTH_MAX);
	j->is_object[j->depth] = is_object;
	j->has_items[j->depth] = false;
	j->depth++;
	fputc(is_object ? '{' : '[', j->f);
}

static void
json_close(struct json *j, bool is_object)
{
	SHOAL_ASSERT(j->depth > 0 && j->is_object[j->depth - 1] == is_object);
	SHOAL_ASSERT(!j->has_key);
	j->depth--;
	fputc(is_object ? '}' : ']', j->f);
}

void
json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

void
json_object_begin(struct json *j)
{
	json_open(j, true);
}

void
json_object_end(struct json *j)
{
	json_close(j, true);
}

void
json_array_begin(struct json *j)
{
	json_open(j, false);
}

void
json_array_end(struct json *j)
{
	json_close(j, false);
}

void
json_key(struct json *j, const char *key)
{
	SHOAL_ASSERT(j->depth > 0 && j->is_object[j->depth - 1]);
	SHOAL_ASSERT(!j->has_key);
	if (j->has_items[j->depth - 1])
		fputc(',', j->f);
	j->has_items[j->depth - 1] = true;
	json_write_string(j->f, key, strlen(key));
	fputc(':', j->f);
	j->has_key = true;
}

void
json_strn(struct json *j, const void *s, size_t len)
{
	json_value_prefix(j);
	json_write_string(j->f, s, len);
}

void
json_str(struct json *j, const char *s)
{
	if (s == NULL)
		s = "";
	json_strn(j, s, strlen(s));
}

void
json_u64(struct json *j, uint64_t v)
{
	json_value_prefix(j);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void
json_double(struct json *j, double v)
{
	json_value_prefix(j);
	/* JSON has no NaN or infinity: null, as JavaScript writes them */
	if (isfinite(v))
		fprintf(j->f, "%.15g", v);
	else
		fputs("null", j->f);
}

void
json_bool(struct json *j, bool v)
{
	json_value_prefix(j);
	fputs(v ? "true" : "false", j->f);
}

void
json_null(struct json *j)
{
	json_value_prefix(j);
	fputs("null", j->f);
}

void
json_kv_str(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_str(j, s);
}

void
json_kv_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void
json_kv_double(struct json *j, const char *key, double v)
{
	json_key(j, key);
	json_double(j, v);
}

void
json_kv_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}

int
json_end_line(struct json *j)
{
	SHOAL_ASSERT(j->depth == 0 && !j->has_key);
	fputc('\n', j->f);
	return ferror(j->f) ? -EIO : 0;
}

int
json_end(struct json *j)
{
	if (json_end_line(j) != 0 || fflush(j->f) != 0 || ferror(j->f))
		return -EIO;
	return 0;
}
