/* Checks on the loaded config that the key table cannot express, and how
 * every check in lib/config*.c reports its failure; internal to those
 * files (callers use lib/config.h). */
#ifndef SHOAL_CONFIG_CHECK_H
#define SHOAL_CONFIG_CHECK_H

#include <libconfig.h>
#include <stddef.h>

#include "lib/config.h"

#define CFG_PATH_MAX 256 /* a full key path, as errors name it */

/* Where a failure goes: config_load()'s err, and the file to name when
 * the setting does not say. */
struct cfg_ctx {
	const char *file;
	char *err;
	size_t errlen;
};

/* Write "file:line: path: what" for setting s (NULL: "file: path: what")
 * to cx->err. The file is the one s came from, which @include may make
 * another. Returns SHOAL_E_CONFIG. */
int config_check_fail(struct cfg_ctx *cx, const config_setting_t *s,
		      const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Check c, as loaded and with its defaults: log.level, unique node ids,
 * peers that name each other, then every address, endpoint and network.
 * root is the parsed file, for the lines of errors. Returns 0, or
 * SHOAL_E_CONFIG with the first failure written by config_check_fail(). */
int config_check_all(struct cfg_ctx *cx, const struct config *c,
		     const config_setting_t *root);

/* Check a shaping rules file (lib/config.h struct cfg_shaping): unique
 * provider and rule names, host patterns, the rules' matchers (at least
 * one; a code of 3 digits or a class digit, an enhanced code's syntax),
 * the provider a rule names, and the value each action needs. */
int config_check_shaping(struct cfg_ctx *cx, const struct cfg_shaping *sh,
			 const config_setting_t *root);

#endif
