/* Reading the config file for libconfig: the whole file into memory,
 * bounded by CFG_FILE_MAX and refused if it holds a NUL byte, then integer
 * literals too wide for 32 bits marked with an L, then parsed (an
 * @include is read by libconfig itself and named in its errors). Leaves
 * keys and values to lib/config.c. Handles untrusted input: the file may
 * be anything. */
#include "lib/config_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/xmalloc.h"

/* Whole file, read before parsing: 100000 routes fit, /dev/urandom does not.
 * libconfig's scanner rescans a token on every refill from a FILE, which is
 * quadratic in the token's length; from one string it is linear. */
#define CFG_FILE_MAX (16 * 1024 * 1024)

/* Read the whole file into a NUL-terminated buffer (caller frees *out).
 * Returns 0, -errno, or SHOAL_E_CONFIG for a file over CFG_FILE_MAX or one
 * holding a NUL byte (libconfig would end the text there, unseen); err
 * says which. */
static int
cfg_read_file(const char *path, char **out, char *err, size_t errlen)
{
	size_t len = 0, cap = 65536;
	const char *nul;
	char *buf;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			cap = cap * 2 > CFG_FILE_MAX + 2 ? CFG_FILE_MAX + 2 :
							   cap * 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CFG_FILE_MAX) {
			rc = SHOAL_E_CONFIG;
			snprintf(err, errlen, "%s: larger than %d bytes", path,
				 CFG_FILE_MAX);
			goto fail;
		}
	}
	buf[len] = '\0';
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		int line = 1;

		for (const char *p = buf; p < nul; p++)
			line += *p == '\n';
		rc = SHOAL_E_CONFIG;
		snprintf(err, errlen, "%s:%d: NUL byte in the file", path,
			 line);
		goto fail;
	}
	close(fd);
	*out = buf;
	return 0;
fail:
	free(buf);
	close(fd);
	return rc;
}

static bool
cfg_is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '*' || c == '-';
}

/* Whether the integer literal s[0..n) (hex after "0x" when is_hex) needs
 * 64 bits: below INT32_MIN or above INT32_MAX, or above 0xFFFFFFFF in hex. */
static bool
cfg_int_is_wide(const char *s, size_t n, bool is_hex, bool is_neg)
{
	unsigned long long v = 0, lim;

	lim = is_hex ? 0xFFFFFFFFull : is_neg ? 2147483648ull : 2147483647ull;
	for (size_t i = 0; i < n; i++) {
		unsigned d = isdigit((unsigned char)s[i]) ?
				     (unsigned)(s[i] - '0') :
				     (unsigned)(tolower((unsigned char)s[i]) -
						'a' + 10);

		v = v * (is_hex ? 16 : 10) + d;
		if (v > lim)
			return true;
	}
	return false;
}

/* libconfig 1.5 reads an integer without the L suffix as 32 bits and keeps
 * the low bits of a larger one, so "map_size = 5368709120" would quietly
 * become 1 GiB. Copy text with an L after every such literal outside
 * strings and comments, as libconfig 1.6 and later do by themselves; range
 * checks then see the real value. Lines are unchanged. Caller frees. */
static char *
cfg_widen_ints(const char *in, size_t len)
{
	char *out = xmalloc(len + len / 8 + 2); /* an L needs 10+ digits */
	size_t i = 0, o = 0;

	while (i < len) {
		size_t j = i;

		if (in[i] == '"') {
			for (j = i + 1; j < len && in[j] != '"'; j++)
				if (in[j] == '\\' && j + 1 < len)
					j++;
			j = j < len ? j + 1 : len;
		} else if (in[i] == '#' || (in[i] == '/' && in[i + 1] == '/')) {
			while (j < len && in[j] != '\n')
				j++;
		} else if (in[i] == '/' && in[i + 1] == '*') {
			const char *end = strstr(in + i + 2, "*/");

			j = end ? (size_t)(end - in) + 2 : len;
		} else if (isdigit((unsigned char)in[i]) &&
			   !(i > 0 &&
			     (cfg_is_name_char(in[i - 1]) ||
			      in[i - 1] == '.') &&
			     !(in[i - 1] == '-' &&
			       !(i > 1 && cfg_is_name_char(in[i - 2]))))) {
			bool is_hex = in[i] == '0' &&
				      (in[i + 1] == 'x' || in[i + 1] == 'X');
			bool is_neg = i > 0 && in[i - 1] == '-';
			size_t d = is_hex ? i + 2 : i;

			for (j = d; j < len &&
				    (is_hex ? isxdigit((unsigned char)in[j]) :
					      isdigit((unsigned char)in[j]));
			     j++)
				;
			memcpy(out + o, in + i, j - i);
			o += j - i;
			if (in[j] != 'L' && in[j] != '.' &&
			    (is_hex || (in[j] != 'e' && in[j] != 'E')) &&
			    cfg_int_is_wide(in + d, j - d, is_hex, is_neg))
				out[o++] = 'L';
			i = j;
			continue;
		} else {
			j = i + 1;
		}
		memcpy(out + o, in + i, j - i);
		o += j - i;
		i = j;
	}
	out[o] = '\0';
	return out;
}

/* The shaping rules built into the binary (deploy/shaping.rules), used
 * when delivery.shaping_rules is not set. The Makefile rebuilds this
 * file when the rules change. */
__asm__(".section .rodata\n"
	".global config_builtin_shaping_rules\n"
	"config_builtin_shaping_rules:\n"
	".incbin \"deploy/shaping.rules\"\n"
	".byte 0\n"
	".previous\n");

int
config_file_parse(const char *path, config_t *lc, char *err, size_t errlen)
{
	char *text = NULL;
	int rc;

	if ((rc = cfg_read_file(path, &text, err, errlen)) != 0)
		return rc;
	rc = config_text_parse(path, text, lc, err, errlen);
	free(text);
	return rc;
}

int
config_text_parse(const char *name, const char *in, config_t *lc, char *err,
		  size_t errlen)
{
	const char *path = name;
	char *text;

	text = cfg_widen_ints(in, strlen(in));
	config_init(lc);
	if (config_read_string(lc, text) != CONFIG_TRUE) {
		const char *file = config_error_file(lc); /* an @include */

		snprintf(err, errlen, "%s:%d: %s", file ? file : path,
			 config_error_line(lc), config_error_text(lc));
		config_destroy(lc);
		free(text);
		return SHOAL_E_CONFIG;
	}
	free(text);
	return 0;
}
