/* shoalctl queue hold|release|delete|bounce QID... and queue flush
 * [--domain D]: one request to every node at once. Each node acts on the
 * messages of its primary shards (node/queue/actions.c), so a qid is done by
 * the one node that owns it; a node that does not answer is named, and a
 * qid nobody did is an error (exit 1). Handles untrusted input: replies
 * are matched to the qids asked, and their strings escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/queue.h"
#include "cli/text.h"
#include "lib/json.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"

#define QA_BATCH 2000          /* qids per request (a node takes this many) */
#define QA_MSG_MAX 200

/* What became of one qid. */
struct qa_result {
	const char *qid;
	const char *node;          /* who did it, or NULL */
	char message[TEXT_CLEAN_BUF(QA_MSG_MAX)];
};

/* A reply's results for the qids asked: each must be one of them. */
static void
qa_take(struct qa_result *res, size_t n, const char *node,
	const Shoal__QueueActionReply *ar)
{
	for (size_t i = 0; i < ar->n_results; i++) {
		const Shoal__QueueActionResult *r = ar->results[i];

		for (size_t k = 0; k < n; k++) {
			if (strcmp(res[k].qid, r->qid) != 0 || res[k].node)
				continue;
			if (r->done) {
				res[k].node = node;
				text_clean(res[k].message,
					   sizeof(res[k].message), r->message,
					   strnlen(r->message, QA_MSG_MAX));
			}
			break;
		}
	}
}

/* Ask every node about res[0..n); marks unanswered nodes in down[]. */
static void
qa_ask(struct cli_peer *peers, size_t np, Shoal__QueueAction action,
       struct qa_result *res, size_t n, bool *down)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueActionRequest qa = SHOAL__QUEUE_ACTION_REQUEST__INIT;
	Shoal__AdminRequest **reqs = xcalloc(np, sizeof(*reqs));
	Shoal__AdminReply **replies = xcalloc(np, sizeof(*replies));
	char **qids = xcalloc(n, sizeof(*qids));

	for (size_t k = 0; k < n; k++)
		qids[k] = (char *)res[k].qid;
	qa.action = action;
	qa.n_qids = n;
	qa.qids = qids;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_ACTION;
	req.action = &qa;
	for (size_t i = 0; i < np; i++)
		reqs[i] = &req;
	cli_peers_call_all(peers, np, reqs, replies);
	for (size_t i = 0; i < np; i++) {
		if (replies[i] == NULL ||
		    replies[i]->status != SHOAL__STATUS__STATUS_OK ||
		    replies[i]->body_case != SHOAL__ADMIN_REPLY__BODY_ACTION)
			down[i] = true;
		else
			qa_take(res, n, peers[i].node->id, replies[i]->action);
		if (replies[i])
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	}
	free(qids);
	free(replies);
	free(reqs);
}

static int
qa_print(const struct cli *c, const char *verb, const struct qa_result *res,
	 size_t n, const struct cli_peer *peers, const bool *down, size_t np)
{
	struct json j;

	if (!c->is_json) {
		for (size_t k = 0; k < n; k++)
			printf("%s  %-8s  %s%s%s\n", res[k].qid,
			       res[k].node ? res[k].node : "-",
			       res[k].node ? verb : "not found",
			       res[k].message[0] ? ": " : "", res[k].message);
		return 0;
	}
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_str(&j, "action", verb);
	json_key(&j, "results");
	json_array_begin(&j);
	for (size_t k = 0; k < n; k++) {
		json_object_begin(&j);
		json_kv_str(&j, "qid", res[k].qid);
		json_kv_bool(&j, "done", res[k].node != NULL);
		json_kv_str(&j, "node", res[k].node ? res[k].node : "");
		json_kv_str(&j, "message", res[k].message);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_key(&j, "unreachable");
	json_array_begin(&j);
	for (size_t i = 0; i < np; i++)
		if (down[i])
			json_str(&j, peers[i].node->id);
	json_array_end(&j);
	json_object_end(&j);
	return json_end(&j);
}

static const struct {
	const char *verb;
	Shoal__QueueAction action;
} qa_verbs[] = {
	{ "hold", SHOAL__QUEUE_ACTION__ACTION_HOLD },
	{ "release", SHOAL__QUEUE_ACTION__ACTION_RELEASE },
	{ "delete", SHOAL__QUEUE_ACTION__ACTION_DELETE },
	{ "bounce", SHOAL__QUEUE_ACTION__ACTION_BOUNCE },
};

int
queue_action_run(struct cli *c, const char *verb, int argc, char **argv)
{
	struct qa_result *res;
	struct cli_peer *peers = NULL;
	Shoal__QueueAction action = SHOAL__QUEUE_ACTION__ACTION_HOLD;
	bool *down = NULL;
	size_t np = 0, missing = 0;
	int rc = CLI_EXIT_FAIL;

	if (argc == 0)
		return cli_usage_error("queue %s needs at least one queue id",
				       verb);
	for (size_t i = 0; i < sizeof(qa_verbs) / sizeof(*qa_verbs); i++)
		if (strcmp(verb, qa_verbs[i].verb) == 0)
			action = qa_verbs[i].action;
	for (int i = 0; i < argc; i++) {
		if (!qid_valid(argv[i], strlen(argv[i]))) {
			cli_error("invalid queue id");
			return CLI_EXIT_FAIL;
		}
	}
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	res = xcalloc((size_t)argc, sizeof(*res));
	for (int i = 0; i < argc; i++)
		res[i].qid = argv[i];
	if (cli_peers_open(c, NULL, &peers, &np) != 0)
		goto done;
	down = xcalloc(np ? np : 1, sizeof(*down));
	for (size_t at = 0; at < (size_t)argc; at += QA_BATCH) {
		size_t k = (size_t)argc - at < QA_BATCH ? (size_t)argc - at :
							   QA_BATCH;

		qa_ask(peers, np, action, res + at, k, down);
	}
	if (qa_print(c, verb, res, (size_t)argc, peers, down, np) != 0) {
		cli_error("cannot write output");
		goto done;
	}
	for (size_t i = 0; i < np; i++)
		if (down[i])
			cli_error("node %s did not answer (%s)",
				  peers[i].node->id,
				  cli_peer_strerror(peers[i].err));
	for (int i = 0; i < argc; i++)
		missing += res[i].node == NULL;
	if (missing > 0)
		cli_error("%zu queue id%s not found on any node that answered",
			  missing, missing == 1 ? "" : "s");
	rc = missing ? CLI_EXIT_FAIL : CLI_EXIT_OK;
done:
	free(down);
	free(res);
	cli_peers_free(peers, np);
	cli_unload(c);
	return rc;
}

int
queue_flush_run(struct cli *c, int argc, char **argv)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueFlushRequest fr = SHOAL__QUEUE_FLUSH_REQUEST__INIT;
	Shoal__AdminRequest **reqs = NULL;
	Shoal__AdminReply **replies = NULL;
	struct cli_peer *peers = NULL;
	size_t np = 0, answered = 0;
	uint64_t total = 0;
	struct json j;
	int rc = CLI_EXIT_FAIL;

	(void)argv;
	if (argc != 0)
		return cli_usage_error("queue flush takes no arguments");
	fr.domain = (char *)queue_parse_domain(c->opt_domain);
	if (fr.domain == NULL)
		return cli_usage_error("--domain needs a domain of 1 to %d "
				       "characters",
				       CLI_DOMAIN_MAX);
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &np) != 0)
		goto done;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_FLUSH;
	req.flush = &fr;
	reqs = xcalloc(np, sizeof(*reqs));
	replies = xcalloc(np, sizeof(*replies));
	for (size_t i = 0; i < np; i++)
		reqs[i] = &req;
	cli_peers_call_all(peers, np, reqs, replies);
	if (c->is_json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_key(&j, "nodes");
		json_array_begin(&j);
	}
	for (size_t i = 0; i < np; i++) {
		const Shoal__AdminReply *r = replies[i];
		bool ok = r && r->status == SHOAL__STATUS__STATUS_OK &&
			  r->body_case == SHOAL__ADMIN_REPLY__BODY_FLUSH;

		if (!ok) {
			cli_error("node %s did not answer (%s)",
				  peers[i].node->id,
				  r ? cli_status_name(r->status) :
				      cli_peer_strerror(peers[i].err));
			continue;
		}
		answered++;
		total += r->flush->messages;
		if (c->is_json) {
			json_object_begin(&j);
			json_kv_str(&j, "id", peers[i].node->id);
			json_kv_u64(&j, "messages", r->flush->messages);
			json_object_end(&j);
		} else {
			printf("%-8s  %llu message%s due now\n",
			       peers[i].node->id,
			       (unsigned long long)r->flush->messages,
			       r->flush->messages == 1 ? "" : "s");
		}
	}
	if (c->is_json) {
		json_array_end(&j);
		json_kv_u64(&j, "messages", total);
		json_object_end(&j);
		if (json_end(&j) != 0)
			cli_error("cannot write output");
	}
	rc = answered ? CLI_EXIT_OK : CLI_EXIT_FAIL;
done:
	for (size_t i = 0; replies && i < np; i++)
		if (replies[i])
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
	free(reqs);
	cli_peers_free(peers, np);
	cli_unload(c);
	return rc;
}
