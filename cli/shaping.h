/* shoalctl shaping list|suspend|resume: the actions adaptive shaping took
 * against destinations, and suspensions by hand (proto/cli_node.proto
 * ShapingRequest; node/ops/adapt_ops.c answers). Also the pure parts, for
 * tests/unit/test_cli_shaping.c. */
#ifndef SHOAL_CLI_SHAPING_H
#define SHOAL_CLI_SHAPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cli_node.pb-c.h"

struct cli;

/* The node's bounds (node/delivery/adapt.h), checked here before a
 * request goes out and on every action that comes back. */
#define SHAPING_CMD_KEY_MAX 255         /* ADAPT_KEY_MAX - 1 */
#define SHAPING_CMD_NAME_MAX 64         /* rule, origin: ADAPT_NAME_MAX - 1 */
#define SHAPING_CMD_SOURCE_MAX 63       /* ADAPT_SOURCE_MAX - 1 */
#define SHAPING_CMD_TRIGGER_MAX 255     /* ADAPT_TRIGGER_MAX - 1 */
#define SHAPING_CMD_DURATION_MAX 604800 /* seconds: 7 days */
#define SHAPING_CMD_DEFAULT_S 3600      /* the node's, without --for */

/* shaping list: every node's table merged, live actions only.
 * shaping suspend DEST [--for DURATION]: to the first node that takes it
 * (it spreads it). shaping resume DEST: to every node.
 * Returns CLI_EXIT_OK, CLI_EXIT_FAIL when no node answered (or none took
 * a suspension), CLI_EXIT_USAGE for bad arguments. */
int shaping_cmd_run(struct cli *c, const char *verb, int argc, char **argv);

/* Whether key is a destination an operator may name, as the node checks
 * it: 1 to SHAPING_CMD_KEY_MAX of [A-Za-z0-9._-]. */
bool shaping_cmd_key_ok(const char *key);

/* "90", "90s", "15m", "2h", "1d": digits and at most one unit. Returns 0
 * and sets *out_s, or -EINVAL when s is not one or is outside 1 second to
 * SHAPING_CMD_DURATION_MAX. */
int shaping_cmd_parse_duration(const char *s, uint32_t *out_s);

/* Whether an action from a node is well formed: a known kind and strings
 * within the node's bounds (key, origin and rule not empty). */
bool shaping_cmd_action_ok(const Shoal__ShapingAction *a);

/* Merge the copies v[0..n) of several nodes' tables in place: of the
 * copies of one action (key, kind, source) keep the one with the larger
 * stamp_ms (equal stamps: the larger origin), then drop those cleared or
 * expired at now_ms. Returns how many stay, at the front of v, sorted by
 * key, kind and source. The pointers are borrowed, never freed. */
size_t shaping_cmd_merge(const Shoal__ShapingAction **v, size_t n,
			 uint64_t now_ms);

/* A span of seconds, its two largest units: "45s", "9m 59s", "1h",
 * "2h 5m", "1d 2h", into out. Returns out. */
#define SHAPING_CMD_SPAN_BUF 32
char *shaping_cmd_span(char out[SHAPING_CMD_SPAN_BUF], uint64_t s);

#endif
