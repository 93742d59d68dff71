/* shoalctl suppress list|add|remove|show: the cluster's suppression list
 * (docs/suppression.md). */
#ifndef SHOAL_CLI_SUPPRESS_H
#define SHOAL_CLI_SUPPRESS_H

struct cli;

/* suppress list [--domain D] [--limit N]: every node's entries (each
 * answers for its primary shards). CLI_EXIT_FAIL when no node answered.
 * suppress add ADDRESS [--reason TEXT], remove ADDRESS, show ADDRESS:
 * sent to every node, done by the owner of the address's shard;
 * CLI_EXIT_FAIL when none did it (remove, show: or it was not listed). */
int suppress_cmd_run(struct cli *c, const char *verb, int argc, char **argv);

#endif
