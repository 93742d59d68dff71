/* shoalctl shard list: the newest shard map any node has, with each
 * shard's message count from its primary. shard move: asks the shard's
 * primary to move it (node/cluster/move.c) and, when that node dies mid-move,
 * asks the shard's next primary, until it is done. Handles untrusted
 * input: maps come from nodes and are only shown, ids cut to 64
 * characters. */
#include "cli/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/text.h"
#include "lib/json.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"

#define SHARD_NUMBER_MAX 65535   /* cluster.shards is at most 65536 */
#define SHARD_MOVE_WAIT_MS 5000   /* then ask again: a dead source shows */
#define SHARD_MOVE_DEADLINE_S 900    /* retries after a failover included */

/* The newest map among the replies, or NULL. */
static const Shoal__ShardMap *
shard_newest(Shoal__AdminReply **replies, size_t n)
{
	const Shoal__ShardMap *best = NULL;

	for (size_t i = 0; i < n; i++) {
		const Shoal__AdminReply *r = replies[i];

		if (r == NULL || r->status != SHOAL__STATUS__STATUS_OK ||
		    r->body_case != SHOAL__ADMIN_REPLY__BODY_STATUS_REPLY ||
		    r->status_reply->map == NULL)
			continue;
		if (shardmap_newer(r->status_reply->map, best))
			best = r->status_reply->map;
	}
	return best;
}

/* Messages in shard s as its primary counts them; -1 when it did not
 * answer. */
static long long
shard_count(const struct cli_peer *peers, Shoal__AdminReply **replies,
	    size_t n, const char *primary, uint32_t s)
{
	for (size_t i = 0; i < n; i++) {
		const Shoal__AdminReply *r = replies[i];

		if (strcmp(peers[i].node->id, primary) != 0 || r == NULL ||
		    r->status != SHOAL__STATUS__STATUS_OK ||
		    r->body_case != SHOAL__ADMIN_REPLY__BODY_STATUS_REPLY)
			continue;
		if (s < r->status_reply->n_shard_messages)
			return (long long)r->status_reply->shard_messages[s];
	}
	return -1;
}

/* Ask every node for its status; replies[] set (NULL for those that did
 * not answer). Returns 0, or -1 when the peers cannot be opened. */
static int
shard_ask_all(struct cli *c, struct cli_peer **peers, size_t *n,
	      Shoal__AdminReply ***replies)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest sr = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminRequest **reqs;

	if (cli_peers_open(c, NULL, peers, n) != 0)
		return -1;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &sr;
	reqs = xcalloc(*n, sizeof(*reqs));
	*replies = xcalloc(*n, sizeof(**replies));
	for (size_t i = 0; i < *n; i++)
		reqs[i] = &req;
	cli_peers_call_all(*peers, *n, reqs, *replies);
	free(reqs);
	return 0;
}

static void
shard_free_all(struct cli_peer *peers, size_t n, Shoal__AdminReply **replies)
{
	for (size_t i = 0; replies && i < n; i++)
		if (replies[i])
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
	cli_peers_free(peers, n);
}

int
shard_list_run(struct cli *c, int argc, char **argv)
{
	Shoal__AdminReply **replies = NULL;
	struct cli_peer *peers = NULL;
	const Shoal__ShardMap *m;
	size_t n = 0;
	struct json j;
	int rc = CLI_EXIT_FAIL;

	(void)argv;
	if (argc != 0)
		return cli_usage_error("shard list takes no arguments");
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (shard_ask_all(c, &peers, &n, &replies) != 0)
		goto done;
	for (size_t i = 0; i < n; i++)
		if (replies[i] == NULL)
			cli_error("node %s did not answer (%s)",
				  peers[i].node->id,
				  cli_peer_strerror(peers[i].err));
	m = shard_newest(replies, n);
	if (m == NULL || m->n_shards != c->cfg->cluster.shards) {
		cli_error("no node answered with a shard map");
		goto done;
	}
	if (c->is_json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_u64(&j, "epoch", m->epoch);
		json_kv_str(&j, "author", m->author);
		json_key(&j, "shards");
		json_array_begin(&j);
	} else {
		printf("epoch %llu%s%s\n%5s  %-12s  %-12s  %8s\n",
		       (unsigned long long)m->epoch, m->author[0] ? " by " : "",
		       m->author, "SHARD", "PRIMARY", "REPLICA", "MESSAGES");
	}
	for (uint32_t s = 0; s < m->n_shards; s++) {
		const Shoal__ShardAssignment *a = m->shards[s];
		long long cnt = shard_count(peers, replies, n, a->primary, s);

		if (c->is_json) {
			json_object_begin(&j);
			json_kv_u64(&j, "shard", s);
			json_kv_str(&j, "primary", a->primary);
			json_kv_str(&j, "replica", a->replica);
			json_key(&j, "messages");
			if (cnt < 0)
				json_null(&j);
			else
				json_u64(&j, (uint64_t)cnt);
			json_object_end(&j);
		} else if (cnt < 0) {
			printf("%5u  %-12.64s  %-12.64s  %8s\n", s, a->primary,
			       a->replica[0] ? a->replica : "-", "?");
		} else {
			printf("%5u  %-12.64s  %-12.64s  %8lld\n", s,
			       a->primary, a->replica[0] ? a->replica : "-",
			       cnt);
		}
	}
	if (c->is_json) {
		json_array_end(&j);
		json_object_end(&j);
		if (json_end(&j) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	}
	rc = CLI_EXIT_OK;
done:
	shard_free_all(peers, n, replies);
	cli_unload(c);
	return rc;
}

Shoal__ShardMap *
shard_current_map(struct cli *c)
{
	struct cli_peer *peers = NULL;
	Shoal__AdminReply **replies = NULL;
	const Shoal__ShardMap *m;
	Shoal__ShardMap *out = NULL;
	size_t n = 0;

	if (shard_ask_all(c, &peers, &n, &replies) != 0)
		return NULL;
	m = shard_newest(replies, n);
	if (m && m->n_shards == c->cfg->cluster.shards)
		out = shardmap_dup(m);
	shard_free_all(peers, n, replies);
	return out;
}

/* One MoveRequest to node `id`, as part of the run ask_id; returns 0 with
 * *out, or the client error. */
static int
shard_ask_move(struct cli *c, const char *id, uint32_t shard, const char *to,
	       uint64_t ask_id, Shoal__AdminReply **out)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__MoveRequest mr = SHOAL__MOVE_REQUEST__INIT;
	struct cli_peer *p = NULL;
	size_t n = 0;
	int saved = c->timeout_ms, rc;

	mr.shard = shard;
	mr.to = (char *)to;
	mr.ask_id = ask_id;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_MOVE;
	req.move = &mr;
	c->timeout_ms = SHARD_MOVE_WAIT_MS;
	rc = cli_peers_open(c, id, &p, &n);
	c->timeout_ms = saved;
	if (rc != 0)
		return -EINVAL;
	rc = cli_peer_call(&p[0], &req, out);
	cli_peers_free(p, n);
	return rc;
}

int
shard_move_one(struct cli *c, uint32_t shard, const char *to,
	       struct shard_moved *res)
{
	int64_t deadline = (int64_t)cli_now() + SHARD_MOVE_DEADLINE_S;
	char q[TEXT_CLEAN_BUF(200)];
	uint64_t ask_id = 0;

	memset(res, 0, sizeof(*res));
	/* one id for all our asks: the source answers a move that failed
	 * between two of them instead of starting it again */
	while (ask_id == 0)
		if (getrandom(&ask_id, sizeof(ask_id), 0) != sizeof(ask_id))
			ask_id = ((uint64_t)getpid() << 32) ^ (uint64_t)cli_now();
	while ((int64_t)cli_now() < deadline) {
		Shoal__ShardMap *m = shard_current_map(c);
		Shoal__AdminReply *r = NULL;
		char from[65];
		int rc;

		if (m == NULL) {
			cli_error("no node answered with a shard map; trying "
				  "again");
			sleep(1);
			continue;
		}
		snprintf(from, sizeof(from), "%s", m->shards[shard]->primary);
		res->epoch = m->epoch;
		shardmap_free(m);
		snprintf(res->from, sizeof(res->from), "%s", from);
		if (strcmp(from, to) == 0) {
			res->already = true;
			return CLI_EXIT_OK;
		}
		rc = shard_ask_move(c, from, shard, to, ask_id, &r);
		if (rc == -ETIMEDOUT) {
			/* a long move, or a source that died: ask again, from
			 * the map's primary then (a live source takes the
			 * repeat as the same move) */
			continue;
		}
		if (rc != 0 || r == NULL) {
			cli_error("node %s did not answer (%s); the move goes "
				  "on with the shard's next primary",
				  from, cli_peer_strerror(rc));
			sleep(1);
			continue;
		}
		if (r->status == SHOAL__STATUS__STATUS_OK &&
		    r->body_case == SHOAL__ADMIN_REPLY__BODY_MOVE) {
			res->epoch = r->move->epoch;
			res->messages = r->move->messages;
			snprintf(res->replica, sizeof(res->replica), "%s",
				 r->move->replica);
			shoal__admin_reply__free_unpacked(r, NULL);
			return CLI_EXIT_OK;
		}
		text_clean(q, sizeof(q), r->message, strnlen(r->message, 200));
		if (strcmp(r->message, "not the shard's primary") != 0 &&
		    strstr(r->message, "no longer the shard") == NULL &&
		    strstr(r->message, "newer map") == NULL) {
			cli_error("node %s: %s", from, q);
			shoal__admin_reply__free_unpacked(r, NULL);
			return CLI_EXIT_FAIL;
		}
		shoal__admin_reply__free_unpacked(r, NULL);
		sleep(1);	/* the map moved under us: look again */
	}
	cli_error("shard %u was not moved within %d s", shard,
		  SHARD_MOVE_DEADLINE_S);
	return CLI_EXIT_FAIL;
}

static int
shard_print_moved(const struct cli *c, uint32_t shard, const char *to,
		  const struct shard_moved *res)
{
	struct json j;

	if (!c->is_json) {
		if (res->already)
			printf("shard %u is on %s already (epoch %llu)\n",
			       shard, to, (unsigned long long)res->epoch);
		else
			printf("shard %u: %s -> %s, %llu message%s moved, "
			       "epoch %llu\n",
			       shard, res->from, to,
			       (unsigned long long)res->messages,
			       res->messages == 1 ? "" : "s",
			       (unsigned long long)res->epoch);
		return 0;
	}
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_u64(&j, "shard", shard);
	json_kv_str(&j, "from", res->from);
	json_kv_str(&j, "to", to);
	json_kv_str(&j, "replica", res->replica);
	json_kv_u64(&j, "messages", res->messages);
	json_kv_u64(&j, "epoch", res->epoch);
	json_kv_bool(&j, "already", res->already);
	json_object_end(&j);
	return json_end(&j);
}

int
shard_move_run(struct cli *c, int argc, char **argv)
{
	struct shard_moved res;
	unsigned long v;
	char *end;
	int rc;

	if (argc != 1)
		return cli_usage_error("shard move takes one shard number");
	errno = 0;
	v = strtoul(argv[0], &end, 10);
	if (argv[0][0] < '0' || argv[0][0] > '9' || *end != '\0' ||
	    errno != 0 || v > SHARD_NUMBER_MAX)
		return cli_usage_error("shard move: \"%s\" is not a shard "
				       "number",
				       argv[0]);
	if (c->opt_to == NULL || c->opt_to[0] == '\0')
		return cli_usage_error("shard move needs --to NODE");
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	rc = CLI_EXIT_FAIL;
	if (v >= c->cfg->cluster.shards)
		cli_error("shard %lu is out of range: the cluster has shards "
			  "0 to %u",
			  v, c->cfg->cluster.shards - 1);
	else if (config_find_node(c->cfg, c->opt_to) == NULL)
		cli_error("no node \"%.64s\" in %s", c->opt_to,
			  c->cfg->path);
	else
		rc = shard_move_one(c, (uint32_t)v, c->opt_to, &res);
	if (rc == CLI_EXIT_OK &&
	    shard_print_moved(c, (uint32_t)v, c->opt_to, &res) != 0) {
		cli_error("cannot write output");
		rc = CLI_EXIT_FAIL;
	}
	cli_unload(c);
	return rc;
}
