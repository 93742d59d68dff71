/* shoalctl webhooks status: see cli/webhooks.h. Each node reports its
 * own webhooks (the same list, its own counters and backlog: a node
 * sends the events of the shards it is primary for).
 *
 * Handles untrusted input: replies are checked, and every string in them
 * (names, URLs, a receiver's error text) is escaped before it is shown. */
#include "cli/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/text.h"
#include "lib/json.h"
#include "lib/xmalloc.h"

#define WEBHOOKS_TEXT_MAX 200 /* of any string shown (the node's bound) */

static const char *
webhooks_clean(char out[TEXT_CLEAN_BUF(WEBHOOKS_TEXT_MAX)], const char *s)
{
	return text_clean(out, TEXT_CLEAN_BUF(WEBHOOKS_TEXT_MAX), s,
			  strnlen(s, WEBHOOKS_TEXT_MAX));
}

static void
webhooks_json_row(struct json *j, const char *node,
		  const Shoal__WebhookStatus *w)
{
	char a[TEXT_CLEAN_BUF(WEBHOOKS_TEXT_MAX)];

	json_object_begin(j);
	json_kv_str(j, "node", node);
	json_kv_str(j, "name", webhooks_clean(a, w->name));
	json_kv_str(j, "url", webhooks_clean(a, w->url));
	json_kv_u64(j, "backlog", w->backlog);
	json_kv_u64(j, "held", w->held);
	json_kv_u64(j, "sent", w->sent);
	json_kv_u64(j, "dropped", w->dropped);
	json_kv_u64(j, "posts_ok", w->posts_ok);
	json_kv_u64(j, "posts_failed", w->posts_failed);
	json_kv_u64(j, "last_success", w->last_success);
	json_kv_u64(j, "last_failure", w->last_failure);
	json_kv_u64(j, "failures", w->failures);
	json_kv_u64(j, "retry_in_ms", w->retry_in_ms);
	json_kv_str(j, "last_error", webhooks_clean(a, w->last_error));
	json_object_end(j);
}

static int
webhooks_print_json(struct cli_peer *peers, size_t n,
		    Shoal__AdminReply **replies)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j);
	json_key(&j, "webhooks");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++) {
		const Shoal__WebhooksReply *wr =
			replies[i] ? replies[i]->webhooks : NULL;

		for (size_t k = 0; wr && k < wr->n_webhooks; k++)
			webhooks_json_row(&j, peers[i].node->id,
					  wr->webhooks[k]);
	}
	json_array_end(&j);
	json_key(&j, "nodes_unanswered");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++)
		if (replies[i] == NULL)
			json_str(&j, peers[i].node->id);
	json_array_end(&j);
	json_object_end(&j);
	return json_end(&j);
}

static void
webhooks_print_table(struct cli_peer *peers, size_t n,
		     Shoal__AdminReply **replies)
{
	char name[TEXT_CLEAN_BUF(WEBHOOKS_TEXT_MAX)];
	char err[TEXT_CLEAN_BUF(WEBHOOKS_TEXT_MAX)];
	char when[24];
	size_t rows = 0;

	printf("%-8s %-16s %9s %9s %8s %-20s %s\n", "NODE", "WEBHOOK",
	       "BACKLOG", "SENT", "DROPPED", "LAST SUCCESS", "LAST ERROR");
	for (size_t i = 0; i < n; i++) {
		if (replies[i] == NULL) {
			printf("%-8s (no answer)\n", peers[i].node->id);
			continue;
		}
		for (size_t k = 0; k < replies[i]->webhooks->n_webhooks; k++) {
			const Shoal__WebhookStatus *w =
				replies[i]->webhooks->webhooks[k];

			printf("%-8s %-16s %9llu %9llu %8llu %-20s %s\n",
			       peers[i].node->id, webhooks_clean(name, w->name),
			       (unsigned long long)w->backlog,
			       (unsigned long long)w->sent,
			       (unsigned long long)w->dropped,
			       text_time(when, w->last_success),
			       w->last_error[0] ?
				       webhooks_clean(err, w->last_error) :
				       "-");
			rows++;
		}
	}
	if (rows == 0)
		printf("(no webhooks configured: delivery.webhooks)\n");
}

static int
webhooks_status(struct cli *c)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__WebhooksRequest wr = SHOAL__WEBHOOKS_REQUEST__INIT;
	Shoal__AdminReply **replies = NULL;
	struct cli_peer *peers = NULL;
	size_t n = 0, answered = 0;
	int rc = CLI_EXIT_FAIL;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_WEBHOOKS;
	req.webhooks = &wr;
	replies = xcalloc(n ? n : 1, sizeof(*replies));
	answered = cli_ask_all(peers, n, &req, replies,
			       SHOAL__ADMIN_REPLY__BODY_WEBHOOKS);
	if (answered == 0) {
		cli_error("no node answered");
		goto done;
	}
	if (c->is_json) {
		if (webhooks_print_json(peers, n, replies) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else {
		webhooks_print_table(peers, n, replies);
	}
	rc = CLI_EXIT_OK;
done:
	for (size_t i = 0; replies != NULL && i < n; i++)
		if (replies[i] != NULL)
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

int
webhooks_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	(void)argv;
	if (strcmp(verb, "status") != 0)
		return cli_usage_error("webhooks: unknown command %s", verb);
	if (argc != 0)
		return cli_usage_error("webhooks status takes no arguments");
	return webhooks_status(c);
}
