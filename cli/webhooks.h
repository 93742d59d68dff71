/* shoalctl webhooks status: per node and webhook, the events waiting,
 * sent and dropped, the last success and the last error
 * (proto/cli_node.proto WebhooksRequest; node/ops/webhook_ops.c answers;
 * docs/webhooks.md). */
#ifndef SHOAL_CLI_WEBHOOKS_H
#define SHOAL_CLI_WEBHOOKS_H

struct cli;

/* Asks every node. Returns CLI_EXIT_OK when at least one answered (those
 * that did not are named on stderr and shown as such), CLI_EXIT_FAIL when
 * none did, CLI_EXIT_USAGE for arguments. */
int webhooks_cmd_run(struct cli *c, const char *verb, int argc, char **argv);

#endif
