/* shoalctl queue list / show: pages through every node's queue
 * (QueueListRequest with after_qid) and finds one message by qid. Output
 * is streamed as pages arrive, so a large queue never sits in memory.
 *
 * Handles untrusted input: node replies are checked (body kind, qid syntax
 * and order) before use, and every string in them (addresses, replies,
 * headers come from SMTP clients) is escaped before it is shown. */
#include "cli/queue.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/envelope.h"
#include "lib/json.h"
#include "lib/wire.h"
#include "cli/text.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/xmalloc.h"

#define QUEUE_PAGE 1000        /* entries asked for per request */
#define QUEUE_WHY_MAX 512

/* A listing in progress, across nodes. */
struct queue_listing {
	struct cli *c;
	struct json j;
	int node_w;                /* width of the NODE column */
	bool has_header;           /* table header printed */
	uint64_t messages, rcpts;
};

/* Turn --state into a filter. Returns 0 or -1 for an unknown state. */
static int
queue_parse_state(const char *s, Shoal__StateFilter *out)
{
	if (s == NULL)
		*out = SHOAL__STATE_FILTER__FILTER_ANY;
	else if (strcmp(s, "queued") == 0)
		*out = SHOAL__STATE_FILTER__FILTER_QUEUED;
	else if (strcmp(s, "deferred") == 0)
		*out = SHOAL__STATE_FILTER__FILTER_DEFERRED;
	else if (strcmp(s, "held") == 0)
		*out = SHOAL__STATE_FILTER__FILTER_HELD;
	else
		return -1;
	return 0;
}

/* --domain: "example.com" or "@example.com". Returns the domain, or NULL
 * when it is empty or too long. */
const char *
queue_parse_domain(const char *d)
{
	if (d == NULL)
		return "";
	if (d[0] == '@')
		d++;
	if (d[0] == '\0' || strlen(d) > CLI_DOMAIN_MAX)
		return NULL;
	return d;
}

/* --tenant: a name envelope_tenant_ok() takes (the router's and the
 * node's rule). Returns it, "" without one, or NULL. */
const char *
queue_parse_tenant(const char *t)
{
	if (t == NULL)
		return "";
	return envelope_tenant_ok(t) ? t : NULL;
}

static void
queue_print_rcpt_line(const Shoal__Recipient *r)
{
	char when[24];

	fputs("    <", stdout);
	text_print(stdout, r->address, strlen(r->address));
	printf("> (%s", cli_rcpt_state_name(r->state));
	if (r->attempts > 0)
		printf(", %u attempt%s", (unsigned)r->attempts,
		       r->attempts == 1 ? "" : "s");
	if (r->state == SHOAL__RCPT_STATE__RCPT_DEFERRED && r->next_try != 0)
		printf(", next %s", text_time(when, r->next_try));
	if (r->last_reply[0] != '\0') {
		fputs(": ", stdout);
		text_print(stdout, r->last_reply, strlen(r->last_reply));
	}
	fputs(")\n", stdout);
}

static void
queue_print_entry(struct queue_listing *l, const char *node,
		  const Shoal__QueueEntry *e)
{
	char when[24], id[TEXT_CLEAN_BUF(64)];

	if (!l->has_header) {
		printf("%-21s  %-*s  %5s  %10s  %-20s  %s\n", "QID",
		       l->node_w, "NODE", "SHARD", "SIZE", "ARRIVAL",
		       "SENDER");
		l->has_header = true;
	}
	printf("%-21s  %-*s  %5u  %10llu  %-20s  <", e->qid, l->node_w,
	       text_clean(id, sizeof(id), node, strlen(node)),
	       (unsigned)e->shard, (unsigned long long)e->size,
	       text_time(when, e->arrival_time));
	text_print(stdout, e->sender, strlen(e->sender));
	fputc('>', stdout);
	if (e->tenant[0] != '\0') {
		fputs("  tenant=", stdout);
		text_print(stdout, e->tenant, strnlen(e->tenant, 200));
	}
	fputs(e->held ? "  (held)\n" : "\n", stdout);
	for (size_t i = 0; i < e->n_rcpts; i++)
		queue_print_rcpt_line(e->rcpts[i]);
}

static void
queue_json_rcpt(struct json *j, const Shoal__Recipient *r, bool is_full)
{
	json_object_begin(j);
	json_kv_str(j, "address", r->address);
	if (is_full) {
		json_key(j, "notify");
		json_array_begin(j);
		if (r->notify & SHOAL__NOTIFY__NOTIFY_NEVER) {
			json_str(j, "never");
		} else {
			if (r->notify & SHOAL__NOTIFY__NOTIFY_SUCCESS)
				json_str(j, "success");
			if (r->notify & SHOAL__NOTIFY__NOTIFY_FAILURE)
				json_str(j, "failure");
			if (r->notify & SHOAL__NOTIFY__NOTIFY_DELAY)
				json_str(j, "delay");
		}
		json_array_end(j);
		json_kv_str(j, "orcpt", r->orcpt);
	}
	json_kv_str(j, "state", cli_rcpt_state_name(r->state));
	json_kv_u64(j, "attempts", r->attempts);
	json_kv_u64(j, "next_try", r->next_try);
	json_kv_str(j, "last_reply", r->last_reply);
	json_kv_str(j, "category", r->category);
	json_kv_str(j, "last_tls_policy", r->last_tls_policy);
	json_kv_str(j, "last_tls", r->last_tls);
	json_object_end(j);
}

static void
queue_json_entry(struct json *j, const char *node, const Shoal__QueueEntry *e)
{
	json_object_begin(j);
	json_kv_str(j, "qid", e->qid);
	json_kv_str(j, "node", node);
	json_kv_u64(j, "shard", e->shard);
	json_kv_str(j, "sender", e->sender);
	json_kv_u64(j, "size", e->size);
	json_kv_u64(j, "arrival", e->arrival_time);
	json_kv_bool(j, "held", e->held);
	json_kv_str(j, "tenant", e->tenant);
	json_key(j, "recipients");
	json_array_begin(j);
	for (size_t i = 0; i < e->n_rcpts; i++)
		queue_json_rcpt(j, e->rcpts[i], false);
	json_array_end(j);
	json_object_end(j);
}

/* Check a list reply before any of it is shown: the right kind, and qids
 * that are well-formed and strictly after `after` (so paging ends).
 * Returns 0, or -EPROTO. */
static int
queue_list_check(const Shoal__AdminReply *r, const char *after)
{
	const char *prev = after;

	if (r->body_case != SHOAL__ADMIN_REPLY__BODY_LIST)
		return -EPROTO;
	if (r->list->n_entries > QUEUE_PAGE)
		return -EPROTO;
	for (size_t i = 0; i < r->list->n_entries; i++) {
		const char *q = r->list->entries[i]->qid;

		if (!qid_valid(q, strnlen(q, QID_MAX)) ||
		    strcmp(q, prev) <= 0)
			return -EPROTO;
		prev = q;
	}
	return 0;
}

/* Say why a node's part is missing or cut short; why is "" for a
 * transport error, which err names. */
static void
queue_node_failed(const char *node, int err, const char *why)
{
	char id[TEXT_CLEAN_BUF(64)];

	text_clean(id, sizeof(id), node, strlen(node));
	if (why[0] == '\0' && err == -EPROTO)
		cli_error("node %s sent a malformed reply", id);
	else if (why[0] == '\0')
		cli_error("node %s did not answer (%s)", id,
			  cli_peer_strerror(err));
	else
		cli_error("node %s: %s", id, why);
}

/* Describe a reply whose status is not OK. */
static void
queue_refusal(char *why, size_t len, const Shoal__AdminReply *r)
{
	char q[TEXT_CLEAN_BUF(200)];

	snprintf(why, len, "%s: %s", cli_status_name(r->status),
		 text_clean(q, sizeof(q), r->message,
			    strnlen(r->message, 200)));
}

/* Page through one node. Returns 0 when its whole listing was shown,
 * else -1 (reported on stderr); *has_answered says whether any page
 * came back. */
static int
queue_list_node(struct queue_listing *l, struct cli_peer *p,
		Shoal__QueueListRequest *lr, bool *has_answered)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	char after[QID_MAX] = "";
	char why[QUEUE_WHY_MAX] = "";
	int err = 0;

	req.body_case = SHOAL__ADMIN_REQUEST__BODY_LIST;
	req.list = lr;
	*has_answered = false;
	for (;;) {
		Shoal__AdminReply *r = NULL;
		const Shoal__QueueListReply *lrep;
		bool is_last;

		lr->after_qid = after;
		lr->limit = QUEUE_PAGE;
		err = cli_peer_call(p, &req, &r);
		if (err != 0)
			break;
		if (r->status != SHOAL__STATUS__STATUS_OK) {
			queue_refusal(why, sizeof(why), r);
			shoal__admin_reply__free_unpacked(r, NULL);
			break;
		}
		if (queue_list_check(r, after) != 0) {
			snprintf(why, sizeof(why), "malformed reply");
			shoal__admin_reply__free_unpacked(r, NULL);
			break;
		}
		*has_answered = true;
		lrep = r->list;
		for (size_t i = 0; i < lrep->n_entries; i++) {
			const Shoal__QueueEntry *e = lrep->entries[i];

			if (l->c->is_json)
				queue_json_entry(&l->j, p->node->id, e);
			else
				queue_print_entry(l, p->node->id, e);
			l->messages++;
			l->rcpts += e->n_rcpts;
		}
		/* more without entries would never end: take it as the end */
		is_last = !lrep->more || lrep->n_entries == 0;
		if (!is_last)
			snprintf(after, sizeof(after), "%s",
				 lrep->entries[lrep->n_entries - 1]->qid);
		shoal__admin_reply__free_unpacked(r, NULL);
		if (is_last)
			return 0;
	}
	queue_node_failed(p->node->id, err, why);
	return -1;
}

int
queue_list_run(struct cli *c, int argc, char **argv)
{
	Shoal__QueueListRequest lr = SHOAL__QUEUE_LIST_REQUEST__INIT;
	struct queue_listing l;
	struct cli_peer *peers = NULL;
	bool *failed = NULL;
	size_t n = 0, answered = 0;
	const char *domain, *tenant;
	int rc = CLI_EXIT_FAIL;

	(void)argv;
	if (argc != 0)
		return cli_usage_error("queue list takes no arguments");
	if (queue_parse_state(c->opt_state, &lr.state) != 0)
		return cli_usage_error("--state must be queued, deferred or "
				       "held");
	domain = queue_parse_domain(c->opt_domain);
	if (domain == NULL)
		return cli_usage_error("--domain needs a domain of 1 to %d "
				       "characters",
				       CLI_DOMAIN_MAX);
	lr.domain = (char *)domain;
	tenant = queue_parse_tenant(c->opt_tenant);
	if (tenant == NULL)
		return cli_usage_error("--tenant needs a tenant of 1 to %d "
				       "printable characters, no spaces or "
				       "quotes",
				       ENVELOPE_TENANT_MAX);
	lr.tenant = (char *)tenant;
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, c->opt_node, &peers, &n) != 0)
		goto done;
	memset(&l, 0, sizeof(l));
	l.c = c;
	l.node_w = 4;
	for (size_t i = 0; i < n; i++) {
		int w = (int)strlen(peers[i].node->id);

		if (w > l.node_w && w <= 64)
			l.node_w = w;
	}
	if (c->is_json) {
		json_init(&l.j, stdout);
		json_object_begin(&l.j);
		json_key(&l.j, "messages");
		json_array_begin(&l.j);
	}
	failed = xcalloc(n ? n : 1, sizeof(*failed));
	for (size_t i = 0; i < n; i++) {
		bool has_answered;

		failed[i] = queue_list_node(&l, &peers[i], &lr,
					    &has_answered) != 0;
		if (has_answered)
			answered++;
	}
	if (c->is_json) {
		json_array_end(&l.j);
		/* every node whose listing is missing or cut short */
		json_key(&l.j, "unreachable");
		json_array_begin(&l.j);
		for (size_t i = 0; i < n; i++)
			if (failed[i])
				json_str(&l.j, peers[i].node->id);
		json_array_end(&l.j);
		json_object_end(&l.j);
		if (json_end(&l.j) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else if (answered == 0) {
		/* nothing to sum up: the errors above say it all */
	} else if (l.messages == 0) {
		fputs(domain[0] || tenant[0] || c->opt_state ?
			      "no matching messages\n" :
			      "queue is empty\n",
		      stdout);
	} else {
		printf("-- %llu message%s, %llu recipient%s\n",
		       (unsigned long long)l.messages,
		       l.messages == 1 ? "" : "s",
		       (unsigned long long)l.rcpts, l.rcpts == 1 ? "" : "s");
	}
	if (answered == 0) {
		cli_error("no node answered");
		goto done;
	}
	rc = CLI_EXIT_OK;
done:
	free(failed);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}

/* ---- queue show ------------------------------------------------------ */

#define QUEUE_LABEL_W 13   /* values line up after "  last reply:" */

/* One "label: value" line of queue show; indent is 0 or 2. */
static void
queue_field(int indent, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
queue_field(int indent, const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("%*s%-*s ", indent, "", QUEUE_LABEL_W - indent, label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* The same for untrusted text, escaped; nothing after the label when it
 * is empty. */
static void
queue_field_text(int indent, const char *label, const char *s)
{
	if (s[0] == '\0') {
		printf("%*s%s\n", indent, "", label);
		return;
	}
	printf("%*s%-*s ", indent, "", QUEUE_LABEL_W - indent, label);
	text_print(stdout, s, strlen(s));
	fputc('\n', stdout);
}

/* An address in <>, escaped. */
static void
queue_field_addr(int indent, const char *label, const char *addr)
{
	printf("%*s%-*s <", indent, "", QUEUE_LABEL_W - indent, label);
	text_print(stdout, addr, strlen(addr));
	fputs(">\n", stdout);
}

static void
queue_notify_text(char *out, size_t len, uint32_t notify)
{
	if (notify == 0) {
		snprintf(out, len, "(default)");
		return;
	}
	if (notify & SHOAL__NOTIFY__NOTIFY_NEVER) {
		snprintf(out, len, "never");
		return;
	}
	snprintf(out, len, "%s%s%s",
		 notify & SHOAL__NOTIFY__NOTIFY_SUCCESS ? "success," : "",
		 notify & SHOAL__NOTIFY__NOTIFY_FAILURE ? "failure," : "",
		 notify & SHOAL__NOTIFY__NOTIFY_DELAY ? "delay," : "");
	if (out[0] != '\0')
		out[strlen(out) - 1] = '\0';
}

static void
queue_show_text(const char *node, const Shoal__QueueShowReply *sh)
{
	const Shoal__StoredMessage *sm = sh->msg;
	const Shoal__Envelope *env = sm->envelope;
	char when[24], age[24], notify[64];
	const char *ret = cli_ret_name(env->ret);

	queue_field_text(0, "qid:", sm->qid);
	queue_field_text(0, "node:", node);
	queue_field(0, "shard:", "%u", (unsigned)sm->shard);
	queue_field(0, "held:", "%s", sm->held ? "yes" : "no");
	queue_field_addr(0, "sender:", env->mail_from);
	queue_field_text(0, "envid:", env->envid);
	queue_field(0, "ret:", "%s", ret[0] ? ret : "(default)");
	queue_field(0, "smtputf8:", "%s", env->smtputf8 ? "yes" : "no");
	queue_field(0, "body:", "%s", cli_body_name(env->body));
	queue_field(0, "size:", "%llu", (unsigned long long)env->size);
	queue_field(0, "arrival:", "%s (%s ago)",
		    text_time(when, env->arrival_time),
		    text_age(age, env->arrival_time, cli_now()));
	queue_field_text(0, "client:", env->client_addr);
	queue_field_text(0, "helo:", env->helo);
	if (env->auth_user[0] != '\0')
		queue_field_text(0, "auth:", env->auth_user);
	if (env->pool[0] != '\0')
		queue_field_text(0, "pool:", env->pool);
	queue_field(0, "priority:", "%s", cli_priority_name(env->priority));
	if (env->tenant[0] != '\0')
		queue_field_text(0, "tenant:", env->tenant);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const Shoal__Recipient *r = env->rcpts[i];

		fputc('\n', stdout);
		queue_field_addr(0, "recipient:", r->address);
		queue_notify_text(notify, sizeof(notify), r->notify);
		queue_field(2, "notify:", "%s", notify);
		queue_field_text(2, "orcpt:", r->orcpt);
		queue_field(2, "state:", "%s", cli_rcpt_state_name(r->state));
		queue_field(2, "attempts:", "%u", (unsigned)r->attempts);
		queue_field(2, "next try:", "%s", text_time(when, r->next_try));
		queue_field_text(2, "last reply:", r->last_reply);
		if (r->category[0] != '\0')
			queue_field_text(2, "category:", r->category);
		if (r->last_tls_policy[0] != '\0')
			queue_field(2, "last tls:", "%s, %s",
				    r->last_tls_policy,
				    r->last_tls[0] ? r->last_tls : "no TLS");
	}
	printf("\nheaders:\n");
	text_print_lines(stdout, sh->headers.data, sh->headers.len);
}

static int
queue_show_json(const char *node, const Shoal__QueueShowReply *sh)
{
	const Shoal__StoredMessage *sm = sh->msg;
	const Shoal__Envelope *env = sm->envelope;
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_str(&j, "qid", sm->qid);
	json_kv_str(&j, "node", node);
	json_kv_u64(&j, "shard", sm->shard);
	json_kv_str(&j, "sender", env->mail_from);
	json_kv_str(&j, "envid", env->envid);
	json_kv_str(&j, "ret", cli_ret_name(env->ret));
	json_kv_bool(&j, "smtputf8", env->smtputf8);
	json_kv_str(&j, "body", cli_body_name(env->body));
	json_kv_u64(&j, "size", env->size);
	json_kv_u64(&j, "arrival", env->arrival_time);
	json_kv_str(&j, "client_addr", env->client_addr);
	json_kv_str(&j, "helo", env->helo);
	json_kv_str(&j, "auth_user", env->auth_user);
	json_kv_str(&j, "pool", env->pool);
	json_kv_str(&j, "priority", cli_priority_name(env->priority));
	json_kv_str(&j, "tenant", env->tenant);
	json_kv_bool(&j, "held", sm->held);
	json_key(&j, "recipients");
	json_array_begin(&j);
	for (size_t i = 0; i < env->n_rcpts; i++)
		queue_json_rcpt(&j, env->rcpts[i], true);
	json_array_end(&j);
	json_key(&j, "headers");
	json_strn(&j, sh->headers.data, sh->headers.len);
	json_object_end(&j);
	return json_end(&j);
}

/* Ask the node the config's first map names as the shard's primary first:
 * unless shards moved, it has the message. Fills order[] with indexes
 * into the config's nodes. */
static void
queue_show_order(const struct config *cfg, const char *qid, size_t *order)
{
	Shoal__ShardMap *m = shardmap_derive(cfg);
	const char *first = NULL;
	size_t k = 0;

	if (m != NULL)
		first = shardmap_primary(m, shard_of(qid, cfg->cluster.shards));
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (first != NULL && strcmp(cfg->nodes[i].id, first) == 0)
			order[k++] = i;
	for (size_t i = 0; i < cfg->n_nodes; i++)
		if (first == NULL || strcmp(cfg->nodes[i].id, first) != 0)
			order[k++] = i;
	shardmap_free(m);
}

static bool
queue_show_ok(const Shoal__AdminReply *r, const char *qid)
{
	return r->body_case == SHOAL__ADMIN_REPLY__BODY_SHOW &&
	       r->show->msg != NULL && r->show->msg->envelope != NULL &&
	       strcmp(r->show->msg->qid, qid) == 0;
}

int
queue_show_run(struct cli *c, int argc, char **argv)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueShowRequest sr = SHOAL__QUEUE_SHOW_REQUEST__INIT;
	Shoal__AdminReply *found = NULL;
	struct cli_peer *peers = NULL;
	const char *qid, *node = NULL;
	char (*why)[QUEUE_WHY_MAX] = NULL;
	size_t *order = NULL;
	size_t n = 0;
	int rc = CLI_EXIT_FAIL;

	if (argc != 1)
		return cli_usage_error("queue show takes one queue id");
	qid = argv[0];
	if (!qid_valid(qid, strlen(qid))) {
		cli_error("invalid queue id");
		return CLI_EXIT_FAIL;
	}
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	if (cli_peers_open(c, NULL, &peers, &n) != 0)
		goto done;
	/* peers are in config order, one per node */
	order = xcalloc(n ? n : 1, sizeof(*order));
	why = xcalloc(n ? n : 1, sizeof(*why));
	queue_show_order(c->cfg, qid, order);
	sr.qid = (char *)qid;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_SHOW;
	req.show = &sr;
	for (size_t k = 0; k < n && found == NULL; k++) {
		struct cli_peer *p = &peers[order[k]];
		Shoal__AdminReply *r = NULL;

		if (cli_peer_call(p, &req, &r) != 0)
			continue;
		if (r->status == SHOAL__STATUS__STATUS_OK &&
		    queue_show_ok(r, qid)) {
			found = r;
			node = p->node->id;
			break;
		}
		if (r->status == SHOAL__STATUS__STATUS_OK)
			snprintf(why[order[k]], QUEUE_WHY_MAX,
				 "malformed reply");
		else if (r->status != SHOAL__STATUS__STATUS_BAD_REQUEST ||
			 strcmp(r->message, WIRE_MSG_UNKNOWN_QID) != 0)
			queue_refusal(why[order[k]], QUEUE_WHY_MAX, r);
		shoal__admin_reply__free_unpacked(r, NULL);
	}
	if (found == NULL) {
		for (size_t i = 0; i < n; i++)
			if (peers[i].err != 0 || why[i][0] != '\0')
				queue_node_failed(peers[i].node->id,
						  peers[i].err, why[i]);
		cli_error("no such message: %s", qid);
		goto done;
	}
	if (c->is_json) {
		if (queue_show_json(node, found->show) != 0) {
			cli_error("cannot write output");
			goto done;
		}
	} else {
		queue_show_text(node, found->show);
	}
	rc = CLI_EXIT_OK;
done:
	if (found != NULL)
		shoal__admin_reply__free_unpacked(found, NULL);
	free(why);
	free(order);
	cli_peers_free(peers, n);
	cli_unload(c);
	return rc;
}
