/* Line-oriented logging to stderr. One write(2) per line so lines from
 * several processes sharing a file never interleave mid-line. */
#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static struct {
	char prog[32];
	enum log_level level;
	unsigned debug_subs;
} log_state = { "shoal", LOG_LVL_INFO, 0 };

static const char *const log_level_names[] = { "error", "warn", "info",
					       "debug" };

void
log_init(const char *prog, enum log_level level)
{
	snprintf(log_state.prog, sizeof(log_state.prog), "%s", prog);
	log_state.level = level;
	if (level == LOG_LVL_DEBUG && log_state.debug_subs == 0)
		log_state.debug_subs = LOG_SUB_ALL;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(*log_level_names);
	     i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int
log_set_debug(const char *list)
{
	static const struct {
		const char *name;
		unsigned bit;
	} subs[] = {
		{ "main", LOG_SUB_MAIN }, { "smtp", LOG_SUB_SMTP },
		{ "zmq", LOG_SUB_ZMQ },	  { "store", LOG_SUB_STORE },
		{ "dns", LOG_SUB_DNS },	  { "repl", LOG_SUB_REPL },
		{ "all", LOG_SUB_ALL },
	};
	unsigned bits = 0;
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ",");
		size_t i;

		for (i = 0; i < sizeof(subs) / sizeof(*subs); i++)
			if (strlen(subs[i].name) == n &&
			    strncmp(subs[i].name, p, n) == 0)
				break;
		if (i == sizeof(subs) / sizeof(*subs))
			return -EINVAL;
		bits |= subs[i].bit;
		p += n;
		if (*p == ',')
			p++;
	}
	log_state.debug_subs = bits;
	if (bits)
		log_state.level = LOG_LVL_DEBUG;
	return 0;
}

bool
log_enabled(enum log_level level, enum log_sub sub)
{
	if (level > log_state.level)
		return false;
	if (level == LOG_LVL_DEBUG)
		return (log_state.debug_subs & (unsigned)sub) != 0;
	return true;
}

void
log_write(enum log_level level, bool with_errno, const char *fmt, ...)
{
	int saved = errno;
	char line[LOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int w;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	w = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
		     log_state.prog, (int)getpid(), log_level_names[level]);
	n = w > 0 ? (size_t)w : 0;
	va_start(ap, fmt);
	w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (w > 0)
		n += (size_t)w;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (with_errno) {
		w = snprintf(line + n, sizeof(line) - n, " error=\"%s\"",
			     strerror(saved));
		if (w > 0)
			n += (size_t)w;
		if (n > sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

char *
log_quote(char *out, size_t outlen, const char *in, size_t inlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t show = inlen > LOG_QUOTE_MAX ? LOG_QUOTE_MAX : inlen;

	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (size_t i = 0; i < show && o + 8 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	if (show < inlen && o + 5 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
