/* Logging: one line per event, "key=value" with the subject first, on
 * stderr or appended to a file (log.file, reopened on SIGHUP for
 * logrotate). The level test comes before formatting, so disabled lines
 * cost nothing. Anything from the network goes through log_quote() first.
 *
 * Formats (log.format): "logfmt" writes
 *   2026-11-30T00:00:00.000Z shoal-node[42] info: qid=X event=stored
 * and "json" writes one object per line,
 *   {"ts":"...","level":"info","prog":"shoal-node","pid":42,
 *    "msg":"qid=X event=stored","qid":"X","event":"stored"}
 * Callers always write logfmt; the JSON writer parses it back: each
 * key=value becomes a field whose value is always a JSON string (types are
 * never guessed: a qid of digits stays a string). Quoted values are
 * unescaped first (\" \\ \xNN, as log_quote() writes them), so a field
 * holds the original bytes, which come out as JSON per lib/json.h (valid
 * UTF-8 as is, other bytes as \u00XX). Bare words (the subject) stay only
 * in msg. A key named like a fixed field (ts, level, prog, pid, msg) gets a
 * leading '_'; a key seen twice on one line gets "_2", "_3"... A line too
 * long for LOG_JSON_MAX drops its last fields and says "truncated":"true". */
#ifndef SHOAL_LOG_H
#define SHOAL_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Debug subsystems, chosen one by one. */
enum log_sub {
	LOG_SUB_MAIN = 1 << 0,
	LOG_SUB_SMTP = 1 << 1,
	LOG_SUB_ZMQ = 1 << 2,
	LOG_SUB_STORE = 1 << 3,
	LOG_SUB_DNS = 1 << 4,
	LOG_SUB_REPL = 1 << 5,
	LOG_SUB_ALL = 0xff,
};

/* Set the program name shown on each line and the level. */
void log_init(const char *prog, enum log_level level);

/* JSON lines instead of logfmt (see above). */
void log_set_json(bool on);

/* Append every line to path (created 0640 if missing, O_APPEND, one
 * write(2) per line) instead of stderr. Returns 0, or -errno with the
 * current destination kept. */
int log_open_file(const char *path);

/* Open the log.file path again (after logrotate renamed it): new lines go
 * to a new file by that name. Does nothing and returns 0 without a file.
 * When the open fails the old descriptor stays in use, the failure is
 * logged there and -errno returned. */
int log_reopen(void);

/* Back to stderr, closing the file. */
void log_close(void);

/* Format one event as a JSON line (with '\n') into out: ts and level as
 * given, body the logfmt text after "level: ". Returns the length, at most
 * outlen - 1 (out is NUL-terminated); outlen must be at least 256. */
size_t log_format_json(char *out, size_t outlen, const char *ts,
		       enum log_level level, const char *body, size_t len);

/* Parse "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/* Enable debug output for a comma-separated list of subsystems ("smtp,zmq",
 * "all"). Returns 0 or -EINVAL naming nothing. */
int log_set_debug(const char *list);

bool log_enabled(enum log_level level, enum log_sub sub);

void log_write(enum log_level level, bool with_errno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copy untrusted text into out as a quoted, escaped string: at most max_in
 * input bytes are shown (with "..." when cut), control and non-ASCII bytes as
 * \xNN. out must hold 4 * max_in + 8 bytes. Returns out. */
char *log_quote(char *out, size_t outlen, const char *in, size_t inlen);

#define LOG_QUOTE_MAX 200
#define LOG_QUOTE_BUF (4 * LOG_QUOTE_MAX + 8)

#define log_at(lvl, sub, errno_, ...)                                        \
	do {                                                                 \
		if (log_enabled((lvl), (sub)))                               \
			log_write((lvl), (errno_), __VA_ARGS__);             \
	} while (0)

#define log_error(...) log_at(LOG_LVL_ERROR, LOG_SUB_ALL, false, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, LOG_SUB_ALL, false, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, LOG_SUB_ALL, false, __VA_ARGS__)
#define log_debug(sub, ...) log_at(LOG_LVL_DEBUG, (sub), false, __VA_ARGS__)
#define log_error_errno(...) log_at(LOG_LVL_ERROR, LOG_SUB_ALL, true, __VA_ARGS__)
#define log_warn_errno(...) log_at(LOG_LVL_WARN, LOG_SUB_ALL, true, __VA_ARGS__)

#endif
