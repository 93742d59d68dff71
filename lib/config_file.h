/* Reading the config file into libconfig's tree; internal to
 * lib/config*.c (callers use lib/config.h). */
#ifndef SHOAL_CONFIG_FILE_H
#define SHOAL_CONFIG_FILE_H

#include <libconfig.h>
#include <stddef.h>

/* Read path whole (at most CFG_FILE_MAX, 16 MiB; no NUL byte), mark
 * integer literals wider than 32 bits for libconfig 1.5, and parse the
 * text into lc, which this initialises. Returns 0 (the caller
 * config_destroy()s lc), or -errno / SHOAL_E_CONFIG with "file[:line]:
 * what" written to err and nothing left to destroy. */
int config_file_parse(const char *path, config_t *lc, char *err,
		      size_t errlen);

/* config_file_parse() for text already in memory (NUL-terminated; name
 * stands for the file in errors). */
int config_text_parse(const char *name, const char *text, config_t *lc,
		      char *err, size_t errlen);

/* deploy/shaping.rules as it was at build time, NUL-terminated. */
extern const char config_builtin_shaping_rules[];

#endif
