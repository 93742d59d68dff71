/* Line-oriented logging to stderr or a file. One write(2) per line so lines
 * from several processes sharing a file never interleave mid-line (the file
 * is opened O_APPEND). The JSON format is logfmt parsed back into fields;
 * its string escaping is lib/json.c's. */
#include "lib/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/json.h"

#define LOG_LINE_MAX 4096
/* A JSON line: msg always fits (6 x LOG_LINE_MAX at worst); past it fields
 * are dropped. */
#define LOG_JSON_MAX 32768
#define LOG_JSON_FIELDS 64 /* fields of one line checked for repeats */
#define LOG_PATH_MAX 1024  /* log.file, as lib/config.c bounds it */

static struct {
	char prog[32];
	enum log_level level;
	unsigned debug_subs;
	bool is_json;
	int fd; /* STDERR_FILENO or the log.file */
	char path[LOG_PATH_MAX + 1];
} log_state = { "shoal", LOG_LVL_INFO, 0, false, STDERR_FILENO, "" };

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

void
log_set_json(bool on)
{
	log_state.is_json = on;
}

static int
log_open_path(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -errno;
	if (log_state.fd != STDERR_FILENO)
		close(log_state.fd);
	log_state.fd = fd;
	return 0;
}

int
log_open_file(const char *path)
{
	int rc;

	if (strlen(path) > LOG_PATH_MAX)
		return -ENAMETOOLONG;
	rc = log_open_path(path);
	if (rc == 0)
		snprintf(log_state.path, sizeof(log_state.path), "%s", path);
	return rc;
}

int
log_reopen(void)
{
	int rc;

	if (log_state.path[0] == '\0')
		return 0;
	rc = log_open_path(log_state.path);
	if (rc != 0) {
		errno = -rc;
		log_error_errno("log event=reopen_failed file=%s",
				log_state.path);
	}
	return rc;
}

void
log_close(void)
{
	if (log_state.fd != STDERR_FILENO)
		close(log_state.fd);
	log_state.fd = STDERR_FILENO;
	log_state.path[0] = '\0';
}

int
log_parse_level(const char *s, enum log_level *out)
{
	for (size_t i = 0;
	     i < sizeof(log_level_names) / sizeof(*log_level_names); i++) {
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

/* ---- JSON --------------------------------------------------------- */

/* Undo log_quote(): the bytes between the quotes, \" \\ and \xNN decoded
 * (any other backslash stays as it is). *p points at the opening quote and
 * is moved past the closing one (or to end when it is missing). Returns the
 * decoded length; out holds at least end - *p bytes. */
static size_t
log_unquote(const char **p, const char *end, char *out)
{
	const char *s = *p + 1;
	size_t n = 0;

	while (s < end && *s != '"') {
		if (*s == '\\' && s + 1 < end &&
		    (s[1] == '"' || s[1] == '\\')) {
			out[n++] = s[1];
			s += 2;
		} else if (*s == '\\' && s + 3 < end && s[1] == 'x' &&
			   isxdigit((unsigned char)s[2]) &&
			   isxdigit((unsigned char)s[3])) {
			char hex[3] = { s[2], s[3], '\0' };

			out[n++] = (char)strtoul(hex, NULL, 16);
			s += 4;
		} else {
			out[n++] = *s++;
		}
	}
	*p = s < end ? s + 1 : end;
	return n;
}

static bool
log_key_is(const char *k, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* Write "key": to f, renamed when it would clash with a fixed field or an
 * earlier key of this line (seen holds them, *n_seen counts them). */
static void
log_json_key(FILE *f, const char *k, size_t n, const char **seen,
	     size_t *seen_len, size_t *n_seen)
{
	static const char *const fixed[] = { "ts", "level", "prog", "pid",
					     "msg" };
	char name[LOG_LINE_MAX + 16];
	size_t len = 0, repeats = 1;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++)
		if (log_key_is(k, n, fixed[i]))
			name[len++] = '_';
	memcpy(name + len, k, n);
	len += n;
	for (size_t i = 0; i < *n_seen; i++)
		if (seen_len[i] == n && memcmp(seen[i], k, n) == 0)
			repeats++;
	if (repeats > 1)
		len += (size_t)snprintf(name + len, sizeof(name) - len, "_%zu",
					repeats);
	if (*n_seen < LOG_JSON_FIELDS) {
		seen[*n_seen] = k;
		seen_len[(*n_seen)++] = n;
	}
	fputc(',', f);
	json_write_string(f, name, len);
	fputc(':', f);
}

/* Whether what f holds so far fits in cap bytes; if so *good becomes its
 * length (the end of the last whole field). */
static bool
log_json_fits(FILE *f, size_t cap, size_t *good)
{
	long pos;

	fflush(f);
	pos = ftell(f);
	if (pos < 0 || (size_t)pos > cap)
		return false;
	*good = (size_t)pos;
	return true;
}

size_t
log_format_json(char *out, size_t outlen, const char *ts, enum log_level level,
		const char *body, size_t len)
{
	/* room kept for ,"truncated":"true"}\n and the NUL */
	static const char tail[] = ",\"truncated\":\"true\"}\n";
	const char *p = body, *end = body + len;
	const char *seen[LOG_JSON_FIELDS];
	size_t seen_len[LOG_JSON_FIELDS], n_seen = 0;
	char value[LOG_LINE_MAX];
	size_t cap = outlen - sizeof(tail), good = 0;
	bool is_cut;
	FILE *f;

	if (len > LOG_LINE_MAX)
		len = LOG_LINE_MAX, end = body + len;
	f = fmemopen(out, outlen, "w");
	if (f != NULL) /* ours alone: no lock around each character */
		__fsetlocking(f, FSETLOCKING_BYCALLER);
	if (f == NULL) {
		snprintf(out, outlen,
			 "{\"ts\":\"%s\",\"level\":\"error\","
			 "\"msg\":\"log: fmemopen failed\"}\n",
			 ts);
		return strlen(out);
	}
	fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":", ts,
		log_level_names[level]);
	json_write_string(f, log_state.prog, strlen(log_state.prog));
	fprintf(f, ",\"pid\":%d,\"msg\":", (int)getpid());
	json_write_string(f, body, len);
	is_cut = !log_json_fits(f, cap, &good);
	while (!is_cut && p < end) {
		const char *k, *v;
		size_t kn, vn;

		while (p < end && *p == ' ')
			p++;
		k = p;
		while (p < end && *p != ' ' && *p != '=')
			p++;
		kn = (size_t)(p - k);
		if (p == end || *p != '=' || kn == 0) {
			/* a bare word: it is in msg */
			while (p < end && *p != ' ')
				p++;
			continue;
		}
		p++;
		if (p < end && *p == '"') {
			vn = log_unquote(&p, end, value);
			v = value;
		} else {
			v = p;
			while (p < end && *p != ' ')
				p++;
			vn = (size_t)(p - v);
		}
		log_json_key(f, k, kn, seen, seen_len, &n_seen);
		json_write_string(f, v, vn);
		is_cut = !log_json_fits(f, cap, &good);
	}
	fclose(f);
	if (good == 0) {
		snprintf(out, outlen,
			 "{\"ts\":\"%s\",\"level\":\"error\","
			 "\"msg\":\"log: line too long\"}\n",
			 ts);
		return strlen(out);
	}
	if (is_cut) {
		memcpy(out + good, tail, sizeof(tail));
		return good + sizeof(tail) - 1;
	}
	memcpy(out + good, "}\n", 3);
	return good + 2;
}

void
log_write(enum log_level level, bool with_errno, const char *fmt, ...)
{
	int saved = errno;
	char line[LOG_LINE_MAX];
	char json[LOG_JSON_MAX];
	char ts[64];
	struct timeval tv;
	struct tm tm;
	size_t n, body;
	int w;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
	w = snprintf(line, sizeof(line), "%s %s[%d] %s: ", ts, log_state.prog,
		     (int)getpid(), log_level_names[level]);
	n = body = w > 0 ? (size_t)w : 0;
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
	if (log_state.is_json) {
		n = log_format_json(json, sizeof(json), ts, level, line + body,
				    n - body);
		if (write(log_state.fd, json, n) < 0) {
			/* nowhere left to report it */
		}
	} else {
		line[n++] = '\n';
		if (write(log_state.fd, line, n) < 0) {
			/* nowhere left to report it */
		}
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
