/* shoalctl node ...: drains and failovers. Parsed, not yet available.
 * (Not node/node.h: that is the node process.) */
#ifndef SHOAL_CLI_NODE_H
#define SHOAL_CLI_NODE_H

struct cli;

/* node drain NODE_ID / node failover NODE_ID; verb says which. */
int node_cmd_run(struct cli *c, const char *verb, int argc, char **argv);

#endif
