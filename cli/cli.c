/* Shared plumbing of shoalctl's commands: config loading, peers, error
 * output and enum names. No command logic here. */
#include "cli/cli.h"
#include "lib/curve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "cli/client.h"
#include "cli/text.h"
#include "lib/xmalloc.h"

int
cli_load(struct cli *c)
{
	char err[1024];

	if (config_load(c->config_path, &c->cfg, err, sizeof(err)) != 0) {
		cli_error("%s", err);
		return -1;
	}
	if (curve_init(c->cfg->cluster.curve_keys, err, sizeof(err)) != 0) {
		cli_error("%s", err);
		config_free(c->cfg);
		c->cfg = NULL;
		return -1;
	}
	c->zctx = zmq_ctx_new();
	if (c->zctx == NULL) {
		cli_error("cannot start ZeroMQ: %s", zmq_strerror(errno));
		config_free(c->cfg);
		c->cfg = NULL;
		return -1;
	}
	return 0;
}

void
cli_unload(struct cli *c)
{
	if (c->zctx != NULL)
		zmq_ctx_term(c->zctx);
	c->zctx = NULL;
	config_free(c->cfg);
	c->cfg = NULL;
}

static void
cli_verror(const char *fmt, va_list ap)
{
	fputs("shoalctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
cli_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verror(fmt, ap);
	va_end(ap);
}

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verror(fmt, ap);
	va_end(ap);
	fputs("Try 'shoalctl --help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

int
cli_not_available(const char *command)
{
	cli_error("%s is not available in this version", command);
	return CLI_EXIT_FAIL;
}

int
cli_peers_open(struct cli *c, const char *only, struct cli_peer **out,
	       size_t *n)
{
	const struct config *cfg = c->cfg;
	struct cli_peer *p;
	size_t k = 0;

	if (only != NULL && config_find_node(cfg, only) == NULL) {
		cli_error("no node \"%s\" in %s", only, c->config_path);
		return -1;
	}
	p = xcalloc(cfg->n_nodes ? cfg->n_nodes : 1, sizeof(*p));
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const struct cfg_node *nd = &cfg->nodes[i];

		if (only != NULL && strcmp(nd->id, only) != 0)
			continue;
		p[k].node = nd;
		p[k].err = client_new(c->zctx, nd->endpoint, c->timeout_ms,
				      &p[k].cl);
		k++;
		if (p[k - 1].err != 0) {
			/* our own socket, not the network: never go on
			 * without its CURVE or size bound */
			cli_error("node %s: cannot set up the link to %s: %s",
				  nd->id, nd->endpoint,
				  cli_peer_strerror(p[k - 1].err));
			cli_peers_free(p, k);
			return -1;
		}
	}
	*out = p;
	*n = k;
	return 0;
}

void
cli_peers_free(struct cli_peer *p, size_t n)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		client_free(p[i].cl);
	free(p);
}

int
cli_peers_open_slow(struct cli *c, int wait_ms, struct cli_peer **out,
		    size_t *n)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest sr = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminRequest **reqs;
	Shoal__AdminReply **replies;
	struct cli_peer *probe = NULL, *p = NULL;
	size_t np = 0, k = 0;
	int saved = c->timeout_ms, rc;

	if (cli_peers_open(c, NULL, &probe, &np) != 0)
		return -1;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &sr;
	reqs = xcalloc(np ? np : 1, sizeof(*reqs));
	replies = xcalloc(np ? np : 1, sizeof(*replies));
	for (size_t i = 0; i < np; i++)
		reqs[i] = &req;
	cli_peers_call_all(probe, np, reqs, replies);
	if (!c->has_timeout)
		c->timeout_ms = wait_ms;
	rc = cli_peers_open(c, NULL, &p, &k);
	c->timeout_ms = saved;
	/* both in config order, one per node */
	for (size_t i = 0; rc == 0 && i < np && i < k; i++)
		if (replies[i] == NULL)
			p[i].err = probe[i].err;
	for (size_t i = 0; i < np; i++)
		if (replies[i] != NULL)
			shoal__admin_reply__free_unpacked(replies[i], NULL);
	free(replies);
	free(reqs);
	cli_peers_free(probe, np);
	if (rc != 0)
		return -1;
	*out = p;
	*n = k;
	return 0;
}

int
cli_peer_call(struct cli_peer *p, Shoal__AdminRequest *req,
	      Shoal__AdminReply **out)
{
	if (p->err != 0)
		return p->err;
	p->err = client_call(p->cl, req, out);
	return p->err;
}

void
cli_peers_call_all(struct cli_peer *p, size_t n,
		   Shoal__AdminRequest *const *reqs,
		   Shoal__AdminReply **replies)
{
	struct client **cs = xcalloc(n ? n : 1, sizeof(*cs));
	Shoal__AdminRequest **rq = xcalloc(n ? n : 1, sizeof(*rq));
	Shoal__AdminReply **rs = xcalloc(n ? n : 1, sizeof(*rs));
	int *errs = xcalloc(n ? n : 1, sizeof(*errs));
	size_t *idx = xcalloc(n ? n : 1, sizeof(*idx));
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		replies[i] = NULL;
		if (p[i].err != 0)
			continue;
		cs[k] = p[i].cl;
		rq[k] = reqs[i];
		idx[k++] = i;
	}
	client_exchange(cs, rq, k, rs, errs);
	for (size_t x = 0; x < k; x++) {
		replies[idx[x]] = rs[x];
		p[idx[x]].err = errs[x];
	}
	free(cs);
	free(rq);
	free(rs);
	free(errs);
	free(idx);
}

const char *
cli_peer_strerror(int err)
{
	return client_strerror(err);
}

const char *
cli_rcpt_state_name(int state)
{
	switch (state) {
	case SHOAL__RCPT_STATE__RCPT_QUEUED: return "queued";
	case SHOAL__RCPT_STATE__RCPT_DEFERRED: return "deferred";
	case SHOAL__RCPT_STATE__RCPT_DELIVERED: return "delivered";
	case SHOAL__RCPT_STATE__RCPT_BOUNCED: return "bounced";
	}
	return "unknown";
}

const char *
cli_body_name(int body)
{
	switch (body) {
	case SHOAL__BODY_TYPE__BODY_7BIT: return "7bit";
	case SHOAL__BODY_TYPE__BODY_8BITMIME: return "8bitmime";
	case SHOAL__BODY_TYPE__BODY_BINARYMIME: return "binarymime";
	}
	return "unknown";
}

const char *
cli_priority_name(int priority)
{
	switch (priority) {
	case SHOAL__PRIORITY__PRIORITY_NORMAL: return "normal";
	case SHOAL__PRIORITY__PRIORITY_HIGH: return "high";
	case SHOAL__PRIORITY__PRIORITY_BULK: return "bulk";
	}
	return "unknown";
}

const char *
cli_ret_name(int ret)
{
	switch (ret) {
	case SHOAL__RET__RET_DEFAULT: return "";
	case SHOAL__RET__RET_FULL: return "full";
	case SHOAL__RET__RET_HDRS: return "hdrs";
	}
	return "unknown";
}

bool
cli_reply_ok(const struct cli_peer *p, const Shoal__AdminReply *r,
	     int body_case)
{
	char q[TEXT_CLEAN_BUF(CLI_MESSAGE_MAX)];

	if (r == NULL) {
		cli_error("node %s did not answer (%s)", p->node->id,
			  cli_peer_strerror(p->err));
		return false;
	}
	if (r->status != SHOAL__STATUS__STATUS_OK) {
		cli_error("node %s: %s: %s", p->node->id,
			  cli_status_name(r->status),
			  text_clean(q, sizeof(q), r->message,
				     strnlen(r->message, CLI_MESSAGE_MAX)));
		return false;
	}
	if ((int)r->body_case != body_case) {
		cli_error("node %s: malformed reply", p->node->id);
		return false;
	}
	return true;
}

size_t
cli_ask_all(struct cli_peer *peers, size_t n, Shoal__AdminRequest *req,
	    Shoal__AdminReply **replies, int body_case)
{
	Shoal__AdminRequest **reqs = xcalloc(n ? n : 1, sizeof(*reqs));
	size_t answered = 0;

	for (size_t i = 0; i < n; i++)
		reqs[i] = req;
	cli_peers_call_all(peers, n, reqs, replies);
	for (size_t i = 0; i < n; i++) {
		if (cli_reply_ok(&peers[i], replies[i], body_case)) {
			answered++;
			continue;
		}
		if (replies[i] != NULL)
			shoal__admin_reply__free_unpacked(replies[i], NULL);
		replies[i] = NULL;
	}
	free(reqs);
	return answered;
}

const char *
cli_status_name(int status)
{
	switch (status) {
	case SHOAL__STATUS__STATUS_OK: return "ok";
	case SHOAL__STATUS__STATUS_WRONG_EPOCH: return "wrong epoch";
	case SHOAL__STATUS__STATUS_NOT_OWNER: return "not owner";
	case SHOAL__STATUS__STATUS_STORAGE_FULL: return "storage full";
	case SHOAL__STATUS__STATUS_NOT_DURABLE: return "not durable";
	case SHOAL__STATUS__STATUS_BAD_REQUEST: return "bad request";
	case SHOAL__STATUS__STATUS_INTERNAL: return "internal error";
	}
	return "unknown";
}

const char *
cli_shaping_kind_name(int kind)
{
	switch (kind) {
	case SHOAL__SHAPING_KIND__SHAPING_SUSPEND: return "suspend";
	case SHOAL__SHAPING_KIND__SHAPING_RATE: return "rate";
	case SHOAL__SHAPING_KIND__SHAPING_CONNECTIONS: return "connections";
	case SHOAL__SHAPING_KIND__SHAPING_SUSPEND_SOURCE:
		return "suspend_source";
	}
	return "unknown";
}

uint64_t
cli_now(void)
{
	return (uint64_t)time(NULL);
}
