/* shoalctl queue ...: listing and inspecting queued messages on the
 * nodes. The queue actions (flush, hold, release, delete, bounce) are
 * parsed but not yet available. */
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

/* queue flush [--domain D]: not yet available. */
int queue_flush_run(struct cli *c, int argc, char **argv);

/* queue hold|release|delete|bounce QID...: verb names which; not yet
 * available. */
int queue_action_run(struct cli *c, const char *verb, int argc, char **argv);

#endif
