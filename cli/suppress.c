/* shoalctl suppress ...: see cli/suppress.h. add, remove and show go to
 * every node at once and the primary of the address's shard answers (the
 * others say NOT_OWNER), so shoalctl needs no map. list pages through
 * each node in turn.
 *
 * Handles untrusted input: arguments are bounded before they are sent,
 * replies are checked, and every string in them (addresses and replies
 * come from remote servers) is escaped before it is shown. */
#include "cli/suppress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/queue.h"
#include "cli/text.h"
#include "lib/json.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"

#define SUPP_PAGE 1000
#define SUPP_REASON_MAX 400
#define SUPP_LIMIT_DEFAULT 1000

static void
supp_entry_text(const char *node, const Shoal__SuppressEntry *e)
{
	char addr[TEXT_CLEAN_BUF(SUPPRESS_ADDR_MAX)];
	char reply[TEXT_CLEAN_BUF(SUPP_REASON_MAX)];
	char when[24];

	printf("%-8s %-40s %-6s %s %s\n", node,
	       text_clean(addr, sizeof(addr), e->address,
			  strnlen(e->address, SUPPRESS_ADDR_MAX)),
	       e->source[0] ? e->source : "-", text_time(when, e->created),
	       text_clean(reply, sizeof(reply), e->reply,
			  strnlen(e->reply, SUPP_REASON_MAX)));
}

static void
supp_entry_json(struct json *j, const char *node, const Shoal__SuppressEntry *e)
{
	json_object_begin(j);
	json_kv_str(j, "address", e->address);
	json_kv_str(j, "reply", e->reply);
	json_kv_str(j, "enhanced", e->enhanced);
	json_kv_str(j, "source", e->source);
	json_kv_u64(j, "created", e->created);
	json_kv_str(j, "qid", e->qid);
	json_kv_str(j, "node", node);
	json_object_end(j);
}

static bool
supp_reply_ok(const Shoal__AdminReply *r)
{
	return r->status == SHOAL__STATUS__STATUS_OK &&
	       r->body_case == SHOAL__ADMIN_REPLY__BODY_SUPPRESS;
}

static int
supp_list(struct cli *c, unsigned long limit)
{
	struct cli_peer *peers = NULL;
	const char *domain = "";
	struct json j;
	size_t n = 0, shown = 0, answered = 0;
	int rc = CLI_EXIT_FAIL;

	if (c->opt_domain) {
		domain = queue_parse_domain(c->opt_domain);
		if (domain == NULL)
			return cli_usage_error("--domain needs a domain name");
	}
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	if (c->is_json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_key(&j, "entries");
		json_array_begin(&j);
	} else {
		printf("%-8s %-40s %-6s %-20s %s\n", "NODE", "ADDRESS",
		       "SOURCE", "SINCE", "REPLY");
	}
	for (size_t i = 0; i < n && shown < limit; i++) {
		Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
		Shoal__SuppressRequest sr = SHOAL__SUPPRESS_REQUEST__INIT;
		char after[SUPPRESS_KEY_MAX] = "";
		bool more = true, ok = false;

		req.body_case = SHOAL__ADMIN_REQUEST__BODY_SUPPRESS;
		req.suppress = &sr;
		sr.op = SHOAL__SUPPRESS_OP__SUPPRESS_LIST;
		sr.domain = (char *)domain;
		while (more && shown < limit) {
			Shoal__AdminReply *r = NULL;
			uint32_t shard;

			sr.after = after;
			sr.limit = SUPP_PAGE;
			if (cli_peer_call(&peers[i], &req, &r) != 0) {
				cli_error("node %s did not answer (%s)",
					  peers[i].node->id,
					  cli_peer_strerror(peers[i].err));
				break;
			}
			if (!supp_reply_ok(r) ||
			    (r->suppress->more &&
			     (!suppress_key_parse(r->suppress->last, &shard) ||
			      strcmp(r->suppress->last, after) <= 0))) {
				cli_error("node %s: %s", peers[i].node->id,
					  r->status ?
						  cli_status_name(r->status) :
						  "malformed reply");
				shoal__admin_reply__free_unpacked(r, NULL);
				break;
			}
			ok = true;
			for (size_t k = 0;
			     k < r->suppress->n_entries && shown < limit;
			     k++, shown++) {
				if (c->is_json)
					supp_entry_json(
						&j, peers[i].node->id,
						r->suppress->entries[k]);
				else
					supp_entry_text(
						peers[i].node->id,
						r->suppress->entries[k]);
			}
			more = r->suppress->more;
			snprintf(after, sizeof(after), "%s", r->suppress->last);
			shoal__admin_reply__free_unpacked(r, NULL);
		}
		answered += ok;
	}
	if (c->is_json) {
		json_array_end(&j);
		json_kv_u64(&j, "count", shown);
		json_object_end(&j);
		if (json_end(&j) != 0)
			answered = 0;
	}
	rc = answered > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
done:
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

/* add, remove, show: to every node; the owner answers OK. */
static int
supp_one(struct cli *c, Shoal__SuppressOp op, const char *addr,
	 const char *reason)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__SuppressRequest sr = SHOAL__SUPPRESS_REQUEST__INIT;
	Shoal__AdminRequest **reqs = NULL;
	Shoal__AdminReply **replies = NULL;
	Shoal__AdminReply *done_by = NULL;
	struct cli_peer *peers = NULL;
	const char *node = NULL;
	size_t n = 0;
	int rc = CLI_EXIT_FAIL;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	sr.op = op;
	sr.address = (char *)addr;
	sr.reply = (char *)(reason ? reason : "");
	sr.source = "admin";
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_SUPPRESS;
	req.suppress = &sr;
	reqs = xcalloc(n ? n : 1, sizeof(*reqs));
	replies = xcalloc(n ? n : 1, sizeof(*replies));
	for (size_t i = 0; i < n; i++)
		reqs[i] = &req;
	cli_peers_call_all(peers, n, reqs, replies);
	for (size_t i = 0; i < n; i++) {
		Shoal__AdminReply *r = replies[i];

		if (r == NULL) {
			cli_error("node %s did not answer (%s)",
				  peers[i].node->id,
				  cli_peer_strerror(peers[i].err));
		} else if (supp_reply_ok(r) && done_by == NULL) {
			done_by = r;
			node = peers[i].node->id;
		} else if (r->status != SHOAL__STATUS__STATUS_NOT_OWNER &&
			   !supp_reply_ok(r)) {
			/* a bad request, a shard moving, a store failure */
			char q[TEXT_CLEAN_BUF(200)];

			cli_error("node %s: %s: %s", peers[i].node->id,
				  cli_status_name(r->status),
				  text_clean(q, sizeof(q), r->message,
					     strnlen(r->message, 200)));
			if (r->status == SHOAL__STATUS__STATUS_BAD_REQUEST)
				goto done;
		}
	}
	if (done_by == NULL) {
		cli_error("no node owning the address's shard answered");
		goto done;
	}
	if (c->is_json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_str(&j, "address", addr);
		json_kv_str(&j, "node", node);
		json_kv_bool(&j, "found", done_by->suppress->found);
		json_key(&j, "entries");
		json_array_begin(&j);
		for (size_t k = 0; k < done_by->suppress->n_entries; k++)
			supp_entry_json(&j, node,
					done_by->suppress->entries[k]);
		json_array_end(&j);
		json_object_end(&j);
		if (json_end(&j) != 0)
			goto done;
	} else if (!done_by->suppress->found) {
		cli_error("not suppressed: %s", addr);
	} else if (op == SHOAL__SUPPRESS_OP__SUPPRESS_SHOW) {
		for (size_t k = 0; k < done_by->suppress->n_entries; k++)
			supp_entry_text(node, done_by->suppress->entries[k]);
	} else {
		printf("%s %s on %s\n", addr,
		       op == SHOAL__SUPPRESS_OP__SUPPRESS_ADD ? "suppressed" :
								"removed",
		       node);
	}
	rc = done_by->suppress->found ? CLI_EXIT_OK : CLI_EXIT_FAIL;
done:
	for (size_t i = 0; replies && i < n; i++)
		if (replies[i])
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
	free(reqs);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

int
suppress_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	char norm[SUPPRESS_ADDR_MAX + 1];
	unsigned long limit = SUPP_LIMIT_DEFAULT;
	char *end;

	if (c->opt_limit) {
		errno = 0;
		limit = strtoul(c->opt_limit, &end, 10);
		if (c->opt_limit[0] < '0' || c->opt_limit[0] > '9' ||
		    *end != '\0' || errno != 0 || limit == 0 ||
		    limit > 100000000)
			return cli_usage_error("--limit needs a number, 1 to "
					       "100000000");
	}
	if (strcmp(verb, "list") == 0) {
		if (argc != 0)
			return cli_usage_error("suppress list takes no "
					       "arguments");
		return supp_list(c, limit);
	}
	if (argc != 1)
		return cli_usage_error("suppress %s takes one address", verb);
	if (suppress_addr_norm(argv[0], strnlen(argv[0], SUPPRESS_ADDR_MAX + 1),
			       norm) != 0) {
		cli_error("invalid address (local@domain, at most %d octets, "
			  "no spaces or controls)",
			  SUPPRESS_ADDR_MAX);
		return CLI_EXIT_FAIL;
	}
	if (c->opt_reason && strlen(c->opt_reason) > SUPP_REASON_MAX)
		return cli_usage_error("--reason is at most %d characters",
				       SUPP_REASON_MAX);
	if (strcmp(verb, "add") == 0)
		return supp_one(c, SHOAL__SUPPRESS_OP__SUPPRESS_ADD, norm,
				c->opt_reason);
	if (strcmp(verb, "remove") == 0)
		return supp_one(c, SHOAL__SUPPRESS_OP__SUPPRESS_REMOVE, norm,
				NULL);
	return supp_one(c, SHOAL__SUPPRESS_OP__SUPPRESS_SHOW, norm, NULL);
}
