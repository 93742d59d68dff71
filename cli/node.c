/* shoalctl node failover / failback: planned moves of a node's shards to
 * its peer and back (docs/replication.md). The node giving the shards up
 * is asked first: it stops starting deliveries, lets those in flight
 * finish and hands over in a new epoch. When it does not answer it is
 * taken as down and its peer takes the shards at once (forced). node
 * drain moves every shard the node is primary for to other nodes, one
 * shard move at a time. Handles untrusted input: replies are checked. */
#include "cli/node.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/shard.h"
#include "cli/text.h"
#include "lib/json.h"
#include "lib/shardmap.h"

/* The giver may wait up to 30 s for deliveries in flight. */
#define NODE_HANDOVER_TIMEOUT_MS 40000

/* Ask node `id` one failover request with the given timeout. Returns 0 and
 * sets *out, or the client error (node down, timeout). */
static int
node_call(struct cli *c, const char *id, int timeout_ms,
	  Shoal__AdminRequest *req, Shoal__AdminReply **out)
{
	struct cli_peer *p = NULL;
	size_t n = 0;
	int saved = c->timeout_ms, rc;

	c->timeout_ms = timeout_ms;
	rc = cli_peers_open(c, id, &p, &n);
	c->timeout_ms = saved;
	if (rc != 0)
		return -1;
	rc = cli_peer_call(&p[0], req, out);
	cli_peers_free(p, n);
	return rc;
}

/* Whether node `id` answers a status request within --timeout. */
static bool
node_alive(struct cli *c, const char *id)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest sr = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminReply *r = NULL;
	bool ok;

	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &sr;
	ok = node_call(c, id, c->timeout_ms, &req, &r) == 0 && r != NULL &&
	     r->status == SHOAL__STATUS__STATUS_OK;
	if (r)
		shoal__admin_reply__free_unpacked(r, NULL);
	return ok;
}

static int
node_print(const struct cli *c, const char *verb, const char *id,
	   const char *asked, const Shoal__FailoverReply *fr)
{
	char prim[TEXT_CLEAN_BUF(64)];
	struct json j;

	text_clean(prim, sizeof(prim), fr->primary,
		   strnlen(fr->primary, 64));
	if (!c->is_json) {
		printf("node %s %s: %u shard%s now on %s, epoch %llu%s\n", verb,
		       id, fr->shards, fr->shards == 1 ? "" : "s", prim,
		       (unsigned long long)fr->epoch,
		       fr->forced ? " (forced: the other node did not "
				    "answer)" :
				    "");
		return CLI_EXIT_OK;
	}
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_str(&j, "command", verb);
	json_kv_str(&j, "node", id);
	json_kv_str(&j, "asked", asked);
	json_kv_str(&j, "primary", fr->primary);
	json_kv_u64(&j, "shards", fr->shards);
	json_kv_u64(&j, "epoch", fr->epoch);
	json_kv_bool(&j, "forced", fr->forced);
	json_object_end(&j);
	if (json_end(&j) != 0) {
		cli_error("cannot write output");
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* failover: the node gives its shards to its peer; failback: the peer
 * gives the node back the shards of the cluster's first map. */
static int
node_move(struct cli *c, const char *verb, const char *id, bool back)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__FailoverRequest fr = SHOAL__FAILOVER_REQUEST__INIT;
	Shoal__AdminReply *r = NULL;
	const struct cfg_node *nd = config_find_node(c->cfg, id);
	const char *giver, *taker;
	char q[TEXT_CLEAN_BUF(200)];
	int rc;

	if (nd == NULL) {
		cli_error("no node \"%s\" in %s",
			  text_clean(q, sizeof(q), id, strnlen(id, 64)),
			  c->cfg->path);
		return CLI_EXIT_FAIL;
	}
	if (nd->peer == NULL) {
		cli_error("node %s has no peer to fail over to", nd->id);
		return CLI_EXIT_FAIL;
	}
	giver = back ? nd->peer : nd->id;
	taker = back ? nd->id : nd->peer;
	fr.node_id = nd->id;
	fr.back = back;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_FAILOVER;
	req.failover = &fr;
	if (node_alive(c, giver)) {
		rc = node_call(c, giver, NODE_HANDOVER_TIMEOUT_MS, &req, &r);
	} else {
		fprintf(stderr, "shoalctl: %s does not answer: %s takes the "
				"shards now\n",
			giver, taker);
		fr.force = true;
		giver = taker;
		rc = node_call(c, taker, c->timeout_ms, &req, &r);
	}
	if (rc != 0 || r == NULL) {
		cli_error("node %s did not answer (%s)", giver,
			  cli_peer_strerror(rc));
		return CLI_EXIT_FAIL;
	}
	if (r->status != SHOAL__STATUS__STATUS_OK ||
	    r->body_case != SHOAL__ADMIN_REPLY__BODY_FAILOVER) {
		cli_error("node %s: %s: %s", giver, cli_status_name(r->status),
			  text_clean(q, sizeof(q), r->message,
				     strnlen(r->message, 200)));
		shoal__admin_reply__free_unpacked(r, NULL);
		return CLI_EXIT_FAIL;
	}
	rc = node_print(c, verb, nd->id, giver, r->failover);
	shoal__admin_reply__free_unpacked(r, NULL);
	return rc;
}

/* Where a drained node's next shard goes: among the nodes other than it
 * and its peer (or its peer when there is no other), the one that is
 * primary for the fewest shards now. */
static const char *
node_drain_target(const struct cli *c, const Shoal__ShardMap *m,
		  const struct cfg_node *nd)
{
	const char *best = NULL;
	size_t best_n = 0;

	for (int pass = 0; pass < 2 && best == NULL; pass++) {
		for (size_t i = 0; i < c->cfg->n_nodes; i++) {
			const struct cfg_node *x = &c->cfg->nodes[i];
			size_t k = 0;

			if (x == nd || (pass == 0 && nd->peer &&
					strcmp(x->id, nd->peer) == 0))
				continue;
			for (size_t s = 0; s < m->n_shards; s++)
				k += strcmp(m->shards[s]->primary, x->id) == 0;
			if (best == NULL || k < best_n) {
				best = x->id;
				best_n = k;
			}
		}
	}
	return best;
}

/* node drain: every shard the node is primary for goes elsewhere, one
 * after the other, with a line per shard; done when none is left. */
static int
node_drain(struct cli *c, const char *id)
{
	const struct cfg_node *nd = config_find_node(c->cfg, id);
	struct json j;
	size_t done = 0, total = 0;
	uint64_t messages = 0;
	char q[TEXT_CLEAN_BUF(64)];

	if (nd == NULL) {
		cli_error("no node \"%s\" in %s",
			  text_clean(q, sizeof(q), id, strnlen(id, 64)),
			  c->cfg->path);
		return CLI_EXIT_FAIL;
	}
	if (c->is_json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_str(&j, "node", nd->id);
		json_key(&j, "moved");
		json_array_begin(&j);
	}
	for (;;) {
		Shoal__ShardMap *m = shard_current_map(c);
		struct shard_moved res;
		const char *to;
		uint32_t shard = 0;
		size_t left = 0;

		if (m == NULL) {
			cli_error("no node answered with a shard map");
			return CLI_EXIT_FAIL;
		}
		for (uint32_t s = 0; s < m->n_shards; s++)
			if (strcmp(m->shards[s]->primary, nd->id) == 0 &&
			    left++ == 0)
				shard = s;
		if (total == 0)
			total = left;
		if (left == 0) {
			shardmap_free(m);
			break;
		}
		to = node_drain_target(c, m, nd);
		if (to == NULL) {
			shardmap_free(m);
			cli_error("no other node to drain %s to", nd->id);
			return CLI_EXIT_FAIL;
		}
		if (shard_move_one(c, shard, to, &res) != CLI_EXIT_OK) {
			shardmap_free(m);
			return CLI_EXIT_FAIL;
		}
		done++;
		messages += res.messages;
		if (c->is_json) {
			json_object_begin(&j);
			json_kv_u64(&j, "shard", shard);
			json_kv_str(&j, "to", to);
			json_kv_u64(&j, "messages", res.messages);
			json_kv_u64(&j, "epoch", res.epoch);
			json_object_end(&j);
		} else {
			printf("shard %u -> %s: %llu message%s (%zu/%zu)\n",
			       shard, to, (unsigned long long)res.messages,
			       res.messages == 1 ? "" : "s", done, total);
			fflush(stdout);
		}
		shardmap_free(m);
	}
	if (c->is_json) {
		json_array_end(&j);
		json_kv_u64(&j, "shards", done);
		json_kv_u64(&j, "messages", messages);
		json_object_end(&j);
		if (json_end(&j) != 0) {
			cli_error("cannot write output");
			return CLI_EXIT_FAIL;
		}
	} else {
		printf("node %s drained: %zu shard%s, %llu message%s moved\n",
		       nd->id, done, done == 1 ? "" : "s",
		       (unsigned long long)messages, messages == 1 ? "" : "s");
	}
	return CLI_EXIT_OK;
}

int
node_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	int rc;

	if (argc != 1 || argv[0][0] == '\0')
		return cli_usage_error("node %s takes one node id", verb);
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (strcmp(verb, "drain") == 0)
		rc = node_drain(c, argv[0]);
	else
		rc = node_move(c, verb, argv[0],
			       strcmp(verb, "failback") == 0);
	cli_unload(c);
	return rc;
}
