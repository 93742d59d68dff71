/* shoalctl queue hold|release|delete|bounce QID... and queue flush
 * [--domain D] [--tenant T]: one request to every node at once. Each node
 * acts on the messages of its primary shards (node/queue/actions.c), so a
 * qid is done by the one node that owns it; a node that does not answer is
 * named, and a qid nobody did is an error (exit 1).
 *
 * queue hold|release|delete|bounce --tenant T: every node acts on every
 * message of T of its primary shards and lists what it did; shoalctl sums
 * up per node. A flush or a tenant's action walks a node's whole queue, so
 * the node is given QA_WALK_WAIT_MS to answer (--timeout overrides), once
 * it answered a status within --timeout.
 *
 * Handles untrusted input: replies are matched to the qids asked (or
 * checked for well-formed qids), and their strings escaped. */
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
#define QA_WALK_WAIT_MS 60000  /* a node's walk of its queue (flush, tenant) */

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

/* Ask every node about res[0..n); marks the nodes that did not answer, or
 * answered with an error, in down[] and says why on stderr. */
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
		if (replies[i] != NULL &&
		    replies[i]->status == SHOAL__STATUS__STATUS_OK &&
		    replies[i]->body_case == SHOAL__ADMIN_REPLY__BODY_ACTION)
			qa_take(res, n, peers[i].node->id, replies[i]->action);
		else if (!down[i]) /* why, once per node: storage full, ... */
			down[i] = !cli_reply_ok(&peers[i], replies[i],
					SHOAL__ADMIN_REPLY__BODY_ACTION);
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

/* ---- --tenant: every message of a tenant ------------------------------ */

/* A node's message for one result, escaped, into out. */
static const char *
qa_clean(char out[TEXT_CLEAN_BUF(QA_MSG_MAX)], const char *s)
{
	return text_clean(out, TEXT_CLEAN_BUF(QA_MSG_MAX), s,
			  strnlen(s, QA_MSG_MAX));
}

/* One node's answer to a tenant's action. */
struct qa_node {
	const Shoal__QueueActionReply *ar;  /* NULL: why says why */
	uint64_t done, failed;
	char why[TEXT_CLEAN_BUF(QA_MSG_MAX) + 64];
};

/* Check one node's reply and count it. The node lists a result per
 * message it acted on, and past its listing limit says how many more in
 * the reply's message ("not listed: D done, F failed"). */
static void
qa_tenant_take(struct qa_node *qn, const struct cli_peer *p,
	       const Shoal__AdminReply *r)
{
	char q[TEXT_CLEAN_BUF(QA_MSG_MAX)];
	unsigned long long more_done = 0, more_failed = 0;
	uint64_t done = 0, failed = 0;

	if (r == NULL) {
		snprintf(qn->why, sizeof(qn->why), "did not answer (%s)",
			 cli_peer_strerror(p->err));
		return;
	}
	if (r->status != SHOAL__STATUS__STATUS_OK) {
		snprintf(qn->why, sizeof(qn->why), "%s: %s",
			 cli_status_name(r->status),
			 text_clean(q, sizeof(q), r->message,
				    strnlen(r->message, QA_MSG_MAX)));
		return;
	}
	if (r->body_case != SHOAL__ADMIN_REPLY__BODY_ACTION) {
		snprintf(qn->why, sizeof(qn->why), "sent a malformed reply");
		return;
	}
	for (size_t i = 0; i < r->action->n_results; i++) {
		const char *qid = r->action->results[i]->qid;

		if (!qid_valid(qid, strnlen(qid, QID_MAX))) {
			snprintf(qn->why, sizeof(qn->why),
				 "sent a malformed reply");
			return;
		}
		if (r->action->results[i]->done)
			done++;
		else
			failed++;
	}
	if (sscanf(r->message, "not listed: %llu done, %llu failed", &more_done,
		   &more_failed) == 2) {
		done += more_done;
		failed += more_failed;
	}
	qn->done = done;
	qn->failed = failed;
	qn->ar = r->action;
}

static int
qa_tenant_print(const struct cli *c, const char *verb, const char *tenant,
		const struct qa_node *qn, const struct cli_peer *peers,
		size_t np)
{
	char t[TEXT_CLEAN_BUF(CLI_TENANT_MAX)], m[TEXT_CLEAN_BUF(QA_MSG_MAX)];
	uint64_t done = 0, failed = 0;
	struct json j;

	for (size_t i = 0; i < np; i++) {
		done += qn[i].done;
		failed += qn[i].failed;
	}
	text_clean(t, sizeof(t), tenant, strlen(tenant));
	if (!c->is_json) {
		for (size_t i = 0; i < np; i++) {
			const Shoal__QueueActionReply *ar = qn[i].ar;

			if (ar == NULL)
				continue;
			printf("%-8s  %s  %llu done, %llu failed\n",
			       peers[i].node->id, verb,
			       (unsigned long long)qn[i].done,
			       (unsigned long long)qn[i].failed);
			for (size_t k = 0; k < ar->n_results; k++) {
				const Shoal__QueueActionResult *r =
					ar->results[k];

				if (!r->done)
					printf("  %s  failed: %s\n", r->qid,
					       qa_clean(m, r->message));
			}
		}
		printf("-- tenant %s: %llu message%s done, %llu failed\n", t,
		       (unsigned long long)done, done == 1 ? "" : "s",
		       (unsigned long long)failed);
		return 0;
	}
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_str(&j, "action", verb);
	json_kv_str(&j, "tenant", tenant);
	json_kv_u64(&j, "done", done);
	json_kv_u64(&j, "failed", failed);
	json_key(&j, "nodes");
	json_array_begin(&j);
	for (size_t i = 0; i < np; i++) {
		if (qn[i].ar == NULL)
			continue;
		json_object_begin(&j);
		json_kv_str(&j, "id", peers[i].node->id);
		json_kv_u64(&j, "done", qn[i].done);
		json_kv_u64(&j, "failed", qn[i].failed);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_key(&j, "results");
	json_array_begin(&j);
	for (size_t i = 0; i < np; i++) {
		for (size_t k = 0; qn[i].ar && k < qn[i].ar->n_results; k++) {
			const Shoal__QueueActionResult *r =
				qn[i].ar->results[k];

			json_object_begin(&j);
			json_kv_str(&j, "qid", r->qid);
			json_kv_bool(&j, "done", r->done);
			json_kv_str(&j, "node", peers[i].node->id);
			json_kv_str(&j, "message", qa_clean(m, r->message));
			json_object_end(&j);
		}
	}
	json_array_end(&j);
	json_key(&j, "unreachable");
	json_array_begin(&j);
	for (size_t i = 0; i < np; i++)
		if (qn[i].ar == NULL)
			json_str(&j, peers[i].node->id);
	json_array_end(&j);
	json_object_end(&j);
	return json_end(&j);
}

/* The action on every message of tenant, on every node. */
static int
qa_tenant_run(struct cli *c, const char *verb, Shoal__QueueAction action,
	      const char *tenant)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueActionRequest qa = SHOAL__QUEUE_ACTION_REQUEST__INIT;
	Shoal__AdminRequest **reqs = NULL;
	Shoal__AdminReply **replies = NULL;
	struct cli_peer *peers = NULL;
	struct qa_node *qn = NULL;
	size_t np = 0, down = 0;
	uint64_t failed = 0;
	int rc = CLI_EXIT_FAIL;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open_slow(c, QA_WALK_WAIT_MS, &peers, &np) != 0)
		goto done;
	qa.action = action;
	qa.tenant = (char *)tenant;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_ACTION;
	req.action = &qa;
	reqs = xcalloc(np ? np : 1, sizeof(*reqs));
	replies = xcalloc(np ? np : 1, sizeof(*replies));
	qn = xcalloc(np ? np : 1, sizeof(*qn));
	for (size_t i = 0; i < np; i++)
		reqs[i] = &req;
	cli_peers_call_all(peers, np, reqs, replies);
	for (size_t i = 0; i < np; i++) {
		qa_tenant_take(&qn[i], &peers[i], replies[i]);
		down += qn[i].ar == NULL;
		failed += qn[i].failed;
	}
	if (qa_tenant_print(c, verb, tenant, qn, peers, np) != 0) {
		cli_error("cannot write output");
		goto done;
	}
	for (size_t i = 0; i < np; i++)
		if (qn[i].ar == NULL)
			cli_error("node %s %s", peers[i].node->id, qn[i].why);
	if (failed > 0)
		cli_error("%llu message%s could not be acted on",
			  (unsigned long long)failed, failed == 1 ? "" : "s");
	rc = down || failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
done:
	for (size_t i = 0; replies && i < np; i++)
		if (replies[i])
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(qn);
	free(replies);
	free(reqs);
	cli_peers_free(peers, np);
	cli_unload(c);
	return rc;
}

int
queue_action_run(struct cli *c, const char *verb, int argc, char **argv)
{
	struct qa_result *res;
	struct cli_peer *peers = NULL;
	Shoal__QueueAction action = SHOAL__QUEUE_ACTION__ACTION_HOLD;
	const char *tenant = queue_parse_tenant(c->opt_tenant);
	bool *down = NULL;
	size_t np = 0, missing = 0;
	int rc = CLI_EXIT_FAIL;

	if (tenant == NULL)
		return cli_usage_error("--tenant needs a tenant of 1 to %d "
				       "printable characters, no spaces or "
				       "quotes",
				       CLI_TENANT_MAX);
	if (tenant[0] != '\0' && argc > 0)
		return cli_usage_error("queue %s takes queue ids or --tenant, "
				       "not both",
				       verb);
	if (argc == 0 && tenant[0] == '\0')
		return cli_usage_error("queue %s needs at least one queue id "
				       "or --tenant",
				       verb);
	for (size_t i = 0; i < sizeof(qa_verbs) / sizeof(*qa_verbs); i++)
		if (strcmp(verb, qa_verbs[i].verb) == 0)
			action = qa_verbs[i].action;
	if (tenant[0] != '\0')
		return qa_tenant_run(c, verb, action, tenant);
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
	fr.tenant = (char *)queue_parse_tenant(c->opt_tenant);
	if (fr.tenant == NULL)
		return cli_usage_error("--tenant needs a tenant of 1 to %d "
				       "printable characters, no spaces or "
				       "quotes",
				       CLI_TENANT_MAX);
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open_slow(c, QA_WALK_WAIT_MS, &peers, &np) != 0)
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

		/* says why not: no answer, or the node's error */
		if (!cli_reply_ok(&peers[i], r,
				  SHOAL__ADMIN_REPLY__BODY_FLUSH))
			continue;
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
