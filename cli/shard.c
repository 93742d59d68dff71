/* shoalctl shard list: the newest shard map any node has, with each
 * shard's message count from its primary. shard move: arguments checked;
 * the move itself comes later. Handles untrusted input: maps come from
 * nodes and are only shown, with ids cut to 64 characters. */
#include "cli/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"

#define SHARD_NUMBER_MAX 65535   /* cluster.shards is at most 65536 */

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

int
shard_list_run(struct cli *c, int argc, char **argv)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest sr = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminRequest **reqs = NULL;
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
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &sr;
	reqs = xcalloc(n, sizeof(*reqs));
	replies = xcalloc(n, sizeof(*replies));
	for (size_t i = 0; i < n; i++)
		reqs[i] = &req;
	cli_peers_call_all(peers, n, reqs, replies);
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
shard_move_run(struct cli *c, int argc, char **argv)
{
	unsigned long v;
	char *end;

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
	return cli_not_available("shard move");
}
