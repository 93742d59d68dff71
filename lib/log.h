/* Logging: one line per event on stderr, "key=value" with the subject first.
 * The level test comes before formatting, so disabled lines cost nothing.
 * Anything from the network goes through log_quote() first. */
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
