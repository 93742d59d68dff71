/* shoalctl queue ...: listing and inspecting queued messages on the
 * nodes (queue.c) and acting on them (queue_action.c: flush, hold,
 * release, delete, bounce). */
#ifndef SHOAL_CLI_QUEUE_H
#define SHOAL_CLI_QUEUE_H

struct cli;

/* queue list: argv holds no arguments (the filters are options in c).
 * Returns CLI_EXIT_OK, CLI_EXIT_FAIL when no node answered, or
 * CLI_EXIT_USAGE. */
int queue_list_run(struct cli *c, int argc, char **argv);

/* queue show QID. Returns CLI_EXIT_OK, or CLI_EXIT_FAIL for an invalid or
 * unknown qid; CLI_EXIT_USAGE for the wrong number of arguments. */
int queue_show_run(struct cli *c, int argc, char **argv);

/* queue flush [--domain D] [--tenant T]: every deferred recipient (of D,
 * of T's messages) due now, on every node. CLI_EXIT_FAIL when no node
 * answered. */
int queue_flush_run(struct cli *c, int argc, char **argv);

/* queue hold|release|delete|bounce QID...: verb names which. Asks every
 * node; CLI_EXIT_FAIL when a qid was done by none (unknown, or on a node
 * that did not answer). With --tenant T and no QIDs: every message of T,
 * each node acting on its own; CLI_EXIT_FAIL when a node did not answer
 * or a message failed. */
int queue_action_run(struct cli *c, const char *verb, int argc, char **argv);

/* --domain: "example.com" or "@example.com" as the domain; "" without
 * one; NULL when it is empty or too long. */
const char *queue_parse_domain(const char *d);

/* --tenant: the tenant (envelope_tenant_ok()); "" without one; NULL
 * when it is not one. */
const char *queue_parse_tenant(const char *t);

#endif
