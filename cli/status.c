/* shoalctl status: asks every node of the config at once for a
 * StatusReply and shows one row per node: queue depth, shards it is
 * primary and replica for, and its side of the pair (state, lag); below
 * the table, the degraded pairs, the routers heard and the delivery
 * results per tenant summed over the nodes. Handles untrusted input:
 * replies are checked before use and their strings escaped before they
 * are shown. */
#include "cli/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/json.h"
#include "cli/text.h"
#include "lib/xmalloc.h"

#define STATUS_WHY_MAX 512

/* One node's answer, or why there is none. */
struct status_row {
	const char *id;
	const Shoal__StatusReply *st;   /* NULL when why is set */
	bool is_reachable;
	char why[STATUS_WHY_MAX];
};

/* Check a reply and fill the row. */
static void
status_check(struct status_row *row, const struct cli_peer *p,
	     const Shoal__AdminReply *r)
{
	char q[TEXT_CLEAN_BUF(200)];

	row->id = p->node->id;
	if (r == NULL) {
		snprintf(row->why, sizeof(row->why), "%s",
			 cli_peer_strerror(p->err));
		return;
	}
	row->is_reachable = true;
	if (r->status != SHOAL__STATUS__STATUS_OK) {
		snprintf(row->why, sizeof(row->why), "%s: %s",
			 cli_status_name(r->status),
			 text_clean(q, sizeof(q), r->message,
				    strnlen(r->message, 200)));
		return;
	}
	if (r->body_case != SHOAL__ADMIN_REPLY__BODY_STATUS_REPLY) {
		snprintf(row->why, sizeof(row->why), "malformed reply");
		return;
	}
	if (strcmp(r->status_reply->node_id, p->node->id) != 0) {
		/* two config entries pointing at one process, say */
		snprintf(row->why, sizeof(row->why), "answered as node %s",
			 text_clean(q, sizeof(q), r->status_reply->node_id,
				    strnlen(r->status_reply->node_id, 200)));
		return;
	}
	row->st = r->status_reply;
}

static void
status_json_shards(struct json *j, const char *key, const uint32_t *v,
		   size_t n)
{
	json_key(j, key);
	json_array_begin(j);
	for (size_t i = 0; i < n; i++)
		json_u64(j, v[i]);
	json_array_end(j);
}

static void
status_json_repl(struct json *j, const Shoal__Replication *r)
{
	json_key(j, "replication");
	json_object_begin(j);
	json_kv_str(j, "mode", r->mode);
	json_kv_str(j, "peer", r->peer);
	json_kv_str(j, "state", r->state);
	json_kv_u64(j, "lag_ops", r->lag_ops);
	json_kv_u64(j, "lag_s", r->lag_s);
	json_kv_u64(j, "head_seq", r->head_seq);
	json_kv_u64(j, "acked_seq", r->acked_seq);
	json_kv_u64(j, "peer_seen_ms", r->peer_seen_ms);
	json_kv_bool(j, "may_deliver", r->may_deliver);
	json_kv_u64(j, "replica_messages", r->replica_messages);
	json_kv_str(j, "behind", r->behind);
	json_kv_u64(j, "behind_s", r->behind_s);
	json_kv_u64(j, "apply_failures", r->apply_failures);
	json_kv_str(j, "apply_error", r->apply_error);
	json_object_end(j);
}

/* A node whose pair is not healthy (a lone node is "off", not degraded). */
static bool
status_is_degraded(const Shoal__StatusReply *st)
{
	return st != NULL && st->replication != NULL &&
	       strcmp(st->replication->state, "healthy") != 0 &&
	       strcmp(st->replication->state, "off") != 0;
}

static void
status_json_tenants(struct json *j, const Shoal__StatusReply *st)
{
	json_key(j, "tenants");
	json_array_begin(j);
	for (size_t k = 0; k < st->n_tenants; k++) {
		const Shoal__TenantCount *tc = st->tenants[k];

		json_object_begin(j);
		json_kv_str(j, "tenant", tc->tenant);
		json_kv_u64(j, "delivered", tc->delivered);
		json_kv_u64(j, "deferred", tc->deferred);
		json_kv_u64(j, "bounced", tc->bounced);
		json_object_end(j);
	}
	json_array_end(j);
}

static int
status_print_json(const struct cli *c, const struct status_row *rows,
		  size_t n, uint64_t epoch)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_u64(&j, "epoch", epoch);
	json_kv_u64(&j, "shards", c->cfg->cluster.shards);
	json_key(&j, "degraded");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++)
		if (status_is_degraded(rows[i].st))
			json_str(&j, rows[i].id);
	json_array_end(&j);
	json_key(&j, "nodes");
	json_array_begin(&j);
	for (size_t i = 0; i < n; i++) {
		const Shoal__StatusReply *st = rows[i].st;

		json_object_begin(&j);
		json_kv_str(&j, "id", rows[i].id);
		json_kv_bool(&j, "reachable", rows[i].is_reachable);
		if (st == NULL) {
			json_kv_str(&j, "error", rows[i].why);
			json_object_end(&j);
			continue;
		}
		json_kv_u64(&j, "epoch", st->epoch);
		json_kv_u64(&j, "messages", st->messages);
		json_kv_u64(&j, "rcpts_queued", st->rcpts_queued);
		json_kv_u64(&j, "rcpts_deferred", st->rcpts_deferred);
		json_kv_u64(&j, "held", st->msgs_held);
		json_kv_u64(&j, "oldest_arrival", st->oldest_arrival);
		status_json_shards(&j, "primary_shards", st->primary_shards,
				   st->n_primary_shards);
		status_json_shards(&j, "replica_shards", st->replica_shards,
				   st->n_replica_shards);
		json_kv_u64(&j, "uptime_s", st->uptime_s);
		json_kv_u64(&j, "delivered_1m", st->delivered_1m);
		json_kv_u64(&j, "deferred_1m", st->deferred_1m);
		json_kv_u64(&j, "bounced_1m", st->bounced_1m);
		json_key(&j, "routers");
		json_array_begin(&j);
		for (size_t k = 0; k < st->n_routers; k++) {
			json_object_begin(&j);
			json_kv_str(&j, "id", st->routers[k]->id);
			json_kv_u64(&j, "seen_ms", st->routers[k]->seen_ms);
			json_object_end(&j);
		}
		json_array_end(&j);
		status_json_tenants(&j, st);
		if (st->replication)
			status_json_repl(&j, st->replication);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_end(&j);
	return json_end(&j);
}

#define STATUS_ROUTERS_MAX 256

struct status_router {
	const char *id;
	uint64_t ms;
};

/* Degraded pairs and the routers the nodes hear, below the table: each
 * router once, with its freshest sighting over all nodes. */
static void
status_print_footer(const struct status_row *rows, size_t n)
{
	struct status_router seen[STATUS_ROUTERS_MAX];
	char id[TEXT_CLEAN_BUF(96)];
	size_t n_seen = 0, n_bad = 0, k;

	printf("degraded:");
	for (size_t i = 0; i < n; i++)
		if (status_is_degraded(rows[i].st))
			printf("%s %s", n_bad++ ? "," : "",
			       text_clean(id, sizeof(id), rows[i].id,
					  strlen(rows[i].id)));
	for (size_t i = 0; i < n; i++) {
		for (size_t r = 0; rows[i].st && r < rows[i].st->n_routers;
		     r++) {
			const Shoal__RouterSeen *rs = rows[i].st->routers[r];

			for (k = 0; k < n_seen; k++)
				if (strcmp(seen[k].id, rs->id) == 0)
					break;
			if (k == n_seen && n_seen < STATUS_ROUTERS_MAX)
				seen[n_seen++] = (struct status_router){
					rs->id, rs->seen_ms
				};
			else if (k < n_seen && rs->seen_ms < seen[k].ms)
				seen[k].ms = rs->seen_ms;
		}
	}
	printf("%s\n", n_bad ? "" : " none");
	for (size_t i = 0; i < n; i++) {
		const Shoal__Replication *r =
			rows[i].st ? rows[i].st->replication : NULL;
		char why[TEXT_CLEAN_BUF(160)];

		if (r == NULL || r->behind == NULL || r->behind[0] == '\0')
			continue;
		printf("  %s behind for %llus: %s\n",
		       text_clean(id, sizeof(id), rows[i].id,
				  strlen(rows[i].id)),
		       (unsigned long long)r->behind_s,
		       text_clean(why, sizeof(why), r->behind,
				  strnlen(r->behind, 160)));
	}
	printf("routers:");
	for (k = 0; k < n_seen; k++)
		printf("%s %s (%.1fs ago)", k ? "," : "",
		       text_clean(id, sizeof(id), seen[k].id,
				  strnlen(seen[k].id, 96)),
		       (double)seen[k].ms / 1000.0);
	printf("%s\n", n_seen ? "" : " none");
}

/* A tenant's counts, summed over the nodes. */
struct status_tenant {
	const char *name;           /* borrowed from a reply */
	uint64_t delivered, deferred, bounced;
};

static int
status_tenant_cmp(const void *a, const void *b)
{
	return strcmp(((const struct status_tenant *)a)->name,
		      ((const struct status_tenant *)b)->name);
}

/* Results per tenant, summed over the nodes that report them, by name
 * ("" is mail without a tenant); nothing when none does. */
static void
status_print_tenants(const struct status_row *rows, size_t n)
{
	char name[TEXT_CLEAN_BUF(CLI_TENANT_MAX)];
	struct status_tenant *v;
	size_t total = 0, k = 0;
	int w = 6;

	for (size_t i = 0; i < n; i++)
		if (rows[i].st != NULL)
			total += rows[i].st->n_tenants;
	if (total == 0)
		return;
	v = xcalloc(total, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		for (size_t t = 0; rows[i].st && t < rows[i].st->n_tenants;
		     t++) {
			const Shoal__TenantCount *tc = rows[i].st->tenants[t];

			v[k++] = (struct status_tenant){ tc->tenant,
							 tc->delivered,
							 tc->deferred,
							 tc->bounced };
		}
	qsort(v, total, sizeof(*v), status_tenant_cmp);
	/* fold each name's rows into its first */
	k = 0;
	for (size_t i = 0; i < total; i++) {
		if (k > 0 && strcmp(v[k - 1].name, v[i].name) == 0) {
			v[k - 1].delivered += v[i].delivered;
			v[k - 1].deferred += v[i].deferred;
			v[k - 1].bounced += v[i].bounced;
			continue;
		}
		v[k++] = v[i];
	}
	for (size_t i = 0; i < k; i++) {
		size_t len = strnlen(v[i].name, CLI_TENANT_MAX);

		text_clean(name, sizeof(name), v[i].name, len);
		if ((int)strlen(name) > w)
			w = (int)strlen(name);
	}
	printf("tenants (results since each node started):\n");
	printf("  %-*s  %10s  %10s  %10s\n", w, "TENANT", "DELIVERED",
	       "DEFERRED", "BOUNCED");
	for (size_t i = 0; i < k; i++) {
		if (v[i].name[0] == '\0')
			snprintf(name, sizeof(name), "(none)");
		else
			text_clean(name, sizeof(name), v[i].name,
				   strnlen(v[i].name, CLI_TENANT_MAX));
		printf("  %-*s  %10llu  %10llu  %10llu\n", w, name,
		       (unsigned long long)v[i].delivered,
		       (unsigned long long)v[i].deferred,
		       (unsigned long long)v[i].bounced);
	}
	free(v);
}

static void
status_print_table(const struct cli *c, const struct status_row *rows,
		   size_t n, uint64_t epoch)
{
	char id[TEXT_CLEAN_BUF(64)], age[24], name[TEXT_CLEAN_BUF(64)];
	char pair[TEXT_CLEAN_BUF(32)], lag[48];
	uint64_t now = cli_now();
	int w = 4;

	for (size_t i = 0; i < n; i++) {
		int len = (int)strlen(text_clean(id, sizeof(id), rows[i].id,
						 strlen(rows[i].id)));

		if (len > w)
			w = len;
	}
	printf("cluster %s: %u shards, epoch %llu\n",
	       text_clean(name, sizeof(name), c->cfg->cluster.name,
			  strlen(c->cfg->cluster.name)),
	       (unsigned)c->cfg->cluster.shards, (unsigned long long)epoch);
	printf("%-*s  %-9s  %5s  %8s  %8s  %8s  %6s  %7s  %7s  %7s  %-11s  "
	       "%9s  %8s  %8s\n",
	       w, "NODE", "REACHABLE", "EPOCH", "MESSAGES", "QUEUED",
	       "DEFERRED", "HELD", "OLDEST", "PRIMARY", "REPLICA", "PAIR",
	       "LAG", "SENT/1m", "DEFER/1m");
	for (size_t i = 0; i < n; i++) {
		const Shoal__StatusReply *st = rows[i].st;

		text_clean(id, sizeof(id), rows[i].id, strlen(rows[i].id));
		if (st == NULL) {
			printf("%-*s  %-9s  (%s)\n", w, id,
			       rows[i].is_reachable ? "yes" : "no",
			       rows[i].why);
			continue;
		}
		if (st->replication)
			snprintf(lag, sizeof(lag), "%llu/%llus",
				 (unsigned long long)st->replication->lag_ops,
				 (unsigned long long)st->replication->lag_s);
		else
			snprintf(lag, sizeof(lag), "-");
		printf("%-*s  %-9s  %5llu  %8llu  %8llu  %8llu  %6llu  %7s  "
		       "%7zu  %7zu  %-11s  %9s  %8llu  %8llu\n",
		       w, id, "yes", (unsigned long long)st->epoch,
		       (unsigned long long)st->messages,
		       (unsigned long long)st->rcpts_queued,
		       (unsigned long long)st->rcpts_deferred,
		       (unsigned long long)st->msgs_held,
		       text_age(age, st->oldest_arrival, now),
		       st->n_primary_shards, st->n_replica_shards,
		       st->replication ?
			       text_clean(pair, sizeof(pair),
					  st->replication->state,
					  strnlen(st->replication->state, 32)) :
			       "-",
		       lag, (unsigned long long)st->delivered_1m,
		       (unsigned long long)st->deferred_1m);
	}
	status_print_footer(rows, n);
	status_print_tenants(rows, n);
}

int
status_run(struct cli *c, int argc, char **argv)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest sr = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminRequest **reqs = NULL;
	Shoal__AdminReply **replies = NULL;
	struct status_row *rows = NULL;
	struct cli_peer *peers = NULL;
	size_t n = 0, answered = 0;
	uint64_t epoch = 0;
	int rc = CLI_EXIT_FAIL;

	(void)argv;
	if (argc != 0)
		return cli_usage_error("status takes no arguments");
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &sr;
	reqs = xcalloc(n ? n : 1, sizeof(*reqs));
	replies = xcalloc(n ? n : 1, sizeof(*replies));
	rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++)
		reqs[i] = &req;
	cli_peers_call_all(peers, n, reqs, replies);
	for (size_t i = 0; i < n; i++) {
		status_check(&rows[i], &peers[i], replies[i]);
		if (rows[i].st == NULL)
			continue;
		answered++;
		if (rows[i].st->epoch > epoch)
			epoch = rows[i].st->epoch;
	}
	if (c->is_json) {
		if (status_print_json(c, rows, n, epoch) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else {
		status_print_table(c, rows, n, epoch);
	}
	if (answered == 0) {
		cli_error("no node answered");
		goto done;
	}
	rc = CLI_EXIT_OK;
done:
	for (size_t i = 0; replies != NULL && i < n; i++)
		if (replies[i] != NULL)
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
	free(reqs);
	free(rows);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}
