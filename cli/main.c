/* shoalctl [-c FILE] [--json] [--timeout MS] COMMAND [ARGS]: reads the
 * flags, finds the command in a table and runs it. Options may come
 * before or after the command words. Commands load the config themselves,
 * so usage errors (exit 2) never depend on the config file. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/dkim.h"
#include "cli/node.h"
#include "cli/keygen.h"
#include "cli/queue.h"
#include "cli/user.h"
#include "cli/shaping.h"
#include "cli/webhooks.h"
#include "cli/shard.h"
#include "cli/status.h"
#include "cli/suppress.h"
#include "cli/tls.h"
#include "lib/log.h"

typedef int (*main_run_fn)(struct cli *c, int argc, char **argv);
typedef int (*main_run_verb_fn)(struct cli *c, const char *verb, int argc,
				char **argv);

struct main_cmd {
	const char *group;        /* first word */
	const char *verb;         /* second word, NULL for one-word commands */
	unsigned opts;            /* CLI_OPT_* the command takes */
	main_run_fn run;          /* or: */
	main_run_verb_fn run_verb;
};

static const struct main_cmd main_cmds[] = {
	{ "status", NULL, 0, status_run, NULL },
	{ "keygen", NULL, 0, keygen_run, NULL },
	{ "dkim", "keygen",
	  CLI_OPT_TYPE | CLI_OPT_BITS | CLI_OPT_OUT | CLI_OPT_FORCE,
	  dkim_keygen_run, NULL },
	{ "queue", "list",
	  CLI_OPT_NODE | CLI_OPT_DOMAIN | CLI_OPT_STATE | CLI_OPT_TENANT,
	  queue_list_run, NULL },
	{ "queue", "show", 0, queue_show_run, NULL },
	{ "queue", "flush", CLI_OPT_DOMAIN | CLI_OPT_TENANT, queue_flush_run,
	  NULL },
	{ "queue", "hold", CLI_OPT_TENANT, NULL, queue_action_run },
	{ "queue", "release", CLI_OPT_TENANT, NULL, queue_action_run },
	{ "queue", "delete", CLI_OPT_TENANT, NULL, queue_action_run },
	{ "queue", "bounce", CLI_OPT_TENANT, NULL, queue_action_run },
	{ "shard", "list", 0, shard_list_run, NULL },
	{ "shard", "move", CLI_OPT_TO, shard_move_run, NULL },
	{ "node", "drain", 0, NULL, node_cmd_run },
	{ "node", "failover", 0, NULL, node_cmd_run },
	{ "node", "failback", 0, NULL, node_cmd_run },
	{ "user", "add", 0, NULL, user_cmd_run },
	{ "user", "remove", 0, NULL, user_cmd_run },
	{ "suppress", "list", CLI_OPT_DOMAIN | CLI_OPT_LIMIT, NULL,
	  suppress_cmd_run },
	{ "suppress", "add", CLI_OPT_REASON, NULL, suppress_cmd_run },
	{ "suppress", "remove", 0, NULL, suppress_cmd_run },
	{ "suppress", "show", 0, NULL, suppress_cmd_run },
	{ "shaping", "list", 0, NULL, shaping_cmd_run },
	{ "shaping", "suspend", CLI_OPT_FOR, NULL, shaping_cmd_run },
	{ "shaping", "resume", 0, NULL, shaping_cmd_run },
	{ "webhooks", "status", 0, NULL, webhooks_cmd_run },
	{ "tls", "report", CLI_OPT_SEND, NULL, tls_cmd_run },
};

#define MAIN_N_CMDS (sizeof(main_cmds) / sizeof(*main_cmds))

static void
main_usage(FILE *f)
{
	fprintf(f,
		"usage: shoalctl [-c FILE] [--json] [--timeout MS] COMMAND "
		"[ARGS]\n"
		"\n"
		"  -c, --config FILE   cluster config (default %s)\n"
		"      --json          print one JSON document on stdout\n"
		"      --timeout MS    wait this long for a node (default %d)\n"
		"  -h, --help          this help\n"
		"\n"
		"commands:\n"
		"  status                      nodes, epoch, queue depth, "
		"shards, pairs;\n"
		"                              results per tenant\n"
		"  queue list [--node ID] [--domain D] "
		"[--state queued|deferred|held]\n"
		"             [--tenant T]\n"
		"  queue show QID\n"
		"  queue flush [--domain D] [--tenant T]\n"
		"                              retry now (T's messages "
		"only)\n"
		"  queue hold|release|delete|bounce QID...\n"
		"  queue hold|release|delete|bounce --tenant T\n"
		"                              every message of tenant T, "
		"on every node\n"
		"  shard list                  each shard's primary, replica, "
		"messages\n"
		"  shard move SHARD --to NODE  its messages to NODE, then "
		"the shard\n"
		"  node drain NODE_ID          every shard of NODE_ID "
		"elsewhere\n"
		"  node failover NODE_ID       NODE_ID's shards to its peer "
		"(planned)\n"
		"  node failback NODE_ID       NODE_ID's first shards back "
		"from its peer\n"
		"  user add|remove NAME        router.users_file (password "
		"on stdin)\n"
		"  suppress list [--domain D] [--limit N]\n"
		"  suppress add ADDRESS [--reason TEXT]\n"
		"  suppress remove|show ADDRESS\n"
		"                              the dead-address list "
		"(docs/suppression.md)\n"
		"  shaping list                live shaping actions against "
		"destinations\n"
		"  shaping suspend DEST [--for DURATION]\n"
		"                              no new deliveries to DEST "
		"(a provider, MX host\n"
		"                              or domain) for DURATION: 90s, "
		"15m, 2h, 1d\n"
		"                              (default 1h, at most 7d)\n"
		"  shaping resume DEST         clear every action on DEST\n"
		"  webhooks status             per node and webhook: backlog, "
		"sent, dropped,\n"
		"                              last success, last error "
		"(docs/webhooks.md)\n"
		"  tls report DOMAIN [--send]  today's TLS report (RFC 8460) "
		"of DOMAIN,\n"
		"                              merged over the nodes; --send: "
		"each node\n"
		"                              sends its own now (docs/tls.md)\n"
		"  keygen FILE                 a cluster key pair for "
		"cluster.curve_keys\n"
		"  dkim keygen DOMAIN SELECTOR [--type rsa|ed25519] "
		"[--bits N]\n"
		"              [--out FILE] [--force]  a DKIM key, its DNS "
		"record and config\n"
		"\n"
		"exit status: 0 ok, 1 failure (message on stderr), 2 usage "
		"error\n",
		CLI_CONFIG_DEFAULT, CLIENT_TIMEOUT_MS);
}

static const char *const main_opt_names[] = {
	"--node", "--domain", "--state", "--to",
	"--type", "--bits", "--out", "--force",
	"--limit", "--reason", "--for", "--tenant", "--send",
};

#define MAIN_N_OPTS (sizeof(main_opt_names) / sizeof(*main_opt_names))

/* Parse every option on the line. Returns -1 to go on, or an exit
 * status. */
static int
main_parse_opts(struct cli *c, int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_TIMEOUT, OPT_NODE, OPT_DOMAIN, OPT_STATE,
	       OPT_TO, OPT_TYPE, OPT_BITS, OPT_OUT, OPT_FORCE, OPT_LIMIT,
	       OPT_REASON, OPT_FOR, OPT_TENANT, OPT_SEND };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ "node", required_argument, NULL, OPT_NODE },
		{ "domain", required_argument, NULL, OPT_DOMAIN },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "to", required_argument, NULL, OPT_TO },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "bits", required_argument, NULL, OPT_BITS },
		{ "out", required_argument, NULL, OPT_OUT },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "reason", required_argument, NULL, OPT_REASON },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "tenant", required_argument, NULL, OPT_TENANT },
		{ "send", no_argument, NULL, OPT_SEND },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	char *end;
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c->config_path = optarg;
			break;
		case OPT_JSON:
			c->is_json = true;
			break;
		case OPT_TIMEOUT:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' ||
			    *end != '\0' || errno != 0 || v == 0 ||
			    v > CLI_TIMEOUT_MAX_MS)
				return cli_usage_error(
					"--timeout needs milliseconds, 1 to %d",
					CLI_TIMEOUT_MAX_MS);
			c->timeout_ms = (int)v;
			c->has_timeout = true;
			break;
		case 'h':
			main_usage(stdout);
			return CLI_EXIT_OK;
		case OPT_NODE:
			c->opt_node = optarg;
			c->opts_given |= CLI_OPT_NODE;
			break;
		case OPT_DOMAIN:
			c->opt_domain = optarg;
			c->opts_given |= CLI_OPT_DOMAIN;
			break;
		case OPT_STATE:
			c->opt_state = optarg;
			c->opts_given |= CLI_OPT_STATE;
			break;
		case OPT_TO:
			c->opt_to = optarg;
			c->opts_given |= CLI_OPT_TO;
			break;
		case OPT_TYPE:
			c->opt_type = optarg;
			c->opts_given |= CLI_OPT_TYPE;
			break;
		case OPT_BITS:
			c->opt_bits = optarg;
			c->opts_given |= CLI_OPT_BITS;
			break;
		case OPT_OUT:
			c->opt_out = optarg;
			c->opts_given |= CLI_OPT_OUT;
			break;
		case OPT_FORCE:
			c->opts_given |= CLI_OPT_FORCE;
			break;
		case OPT_LIMIT:
			c->opt_limit = optarg;
			c->opts_given |= CLI_OPT_LIMIT;
			break;
		case OPT_REASON:
			c->opt_reason = optarg;
			c->opts_given |= CLI_OPT_REASON;
			break;
		case OPT_FOR:
			c->opt_for = optarg;
			c->opts_given |= CLI_OPT_FOR;
			break;
		case OPT_TENANT:
			c->opt_tenant = optarg;
			c->opts_given |= CLI_OPT_TENANT;
			break;
		case OPT_SEND:
			c->opts_given |= CLI_OPT_SEND;
			break;
		case ':':
			return cli_usage_error("%s needs a value",
					       argv[optind - 1]);
		default:
			if (optopt != 0)
				return cli_usage_error("unknown option -%c",
						       optopt);
			return cli_usage_error("unknown option %s",
					       argv[optind - 1]);
		}
	}
	return -1;
}

/* The command named by words[0] (and words[1]), or NULL. */
static const struct main_cmd *
main_find(int nwords, char **words, bool *is_group)
{
	*is_group = false;
	for (size_t i = 0; i < MAIN_N_CMDS; i++) {
		const struct main_cmd *m = &main_cmds[i];

		if (strcmp(m->group, words[0]) != 0)
			continue;
		if (m->verb == NULL)
			return m;
		*is_group = true;
		if (nwords > 1 && strcmp(m->verb, words[1]) == 0)
			return m;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct cli c;
	const struct main_cmd *m;
	bool is_group;
	unsigned extra;
	int rc, nwords;
	char **words;

	memset(&c, 0, sizeof(c));
	c.config_path = CLI_CONFIG_DEFAULT;
	c.timeout_ms = CLIENT_TIMEOUT_MS;
	log_init("shoalctl", LOG_LVL_WARN);
	rc = main_parse_opts(&c, argc, argv);
	if (rc >= 0)
		return rc;
	words = argv + optind;
	nwords = argc - optind;
	if (nwords == 0) {
		main_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	m = main_find(nwords, words, &is_group);
	if (m == NULL && is_group && nwords == 1)
		return cli_usage_error("%s needs a command", words[0]);
	if (m == NULL) {
		main_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	extra = c.opts_given & ~m->opts;
	for (size_t i = 0; extra != 0 && i < MAIN_N_OPTS; i++)
		if (extra & (1u << i))
			return cli_usage_error("%s does not apply to %s%s%s",
					       main_opt_names[i], m->group,
					       m->verb ? " " : "",
					       m->verb ? m->verb : "");
	if (m->verb == NULL)
		return m->run(&c, nwords - 1, words + 1);
	if (m->run != NULL)
		return m->run(&c, nwords - 2, words + 2);
	return m->run_verb(&c, m->verb, nwords - 2, words + 2);
}
