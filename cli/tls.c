/* shoalctl tls report: see cli/tls.h. Each node reports its own sessions
 * (node/policy/tlsrpt.h); the merge here (jansson) is the cluster's view.
 *
 * Handles untrusted input: each node's report is parsed as JSON, bounded
 * in size, and every field the merge reads is checked for its type;
 * counts must be non-negative integers and their sums may not wrap. The
 * output is written by jansson, so any string in it is valid JSON. */
#include "cli/tls.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/text.h"
#include "lib/smtp_addr.h"
#include "lib/xmalloc.h"

#define TLS_SEND_WAIT_MS 60000 /* a node sends: DNS, then a POST of 30 s */
#define TLS_ERROR_MAX 200      /* of a node's error text shown */

int
tls_cmd_domain(const char *domain, char out[TLS_CMD_DOMAIN_MAX + 1])
{
	return smtp_name_norm(domain, out);
}

/* ---- the merge ---- */

/* A non-negative integer member, 0 when absent; -1 when wrong. */
static int
tls_count(const json_t *o, const char *key, json_int_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL) {
		*out = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

/* Add add to the integer member key of o (created at 0). */
static int
tls_add(json_t *o, const char *key, json_int_t add)
{
	json_int_t cur;

	if (tls_count(o, key, &cur) != 0 || cur > LLONG_MAX - add)
		return -1;
	return json_object_set_new(o, key, json_integer(cur + add));
}

/* The text a member compares by ("" when absent). Caller frees. */
static char *
tls_key_text(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	char *s;

	if (v == NULL)
		return xstrdup("");
	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	return s ? s : xstrdup("");
}

static bool
tls_same(const json_t *a, const json_t *b, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++) {
		char *x = tls_key_text(a, keys[i]);
		char *y = tls_key_text(b, keys[i]);
		bool eq = strcmp(x, y) == 0;

		free(x);
		free(y);
		if (!eq)
			return false;
	}
	return true;
}

static const char *const tls_policy_keys[] = {
	"policy-type", "policy-domain", "policy-string", "mx-host", NULL,
};
static const char *const tls_fail_keys[] = {
	"result-type", "sending-mta-ip", "receiving-mx-hostname",
	"receiving-ip", NULL,
};

/* Fold the failure-details fd (an array, checked) into the merged
 * policy's. */
static int
tls_merge_fails(json_t *into, const json_t *fd)
{
	json_t *mine = json_object_get(into, "failure-details");
	size_t i;
	json_t *f;

	if (!json_is_array(fd))
		return -1;
	if (mine == NULL) {
		mine = json_array();
		json_object_set_new(into, "failure-details", mine);
	}
	json_array_foreach(fd, i, f) {
		json_int_t n;
		size_t k;
		json_t *g, *hit = NULL;

		if (!json_is_object(f) || tls_count(f, "failed-session-count",
						    &n) != 0)
			return -1;
		json_array_foreach(mine, k, g)
			if (tls_same(f, g, tls_fail_keys)) {
				hit = g;
				break;
			}
		if (hit != NULL) {
			if (tls_add(hit, "failed-session-count", n) != 0)
				return -1;
			continue;
		}
		if (json_array_size(mine) >= TLS_CMD_FAILS_MAX)
			return -1;
		json_array_append_new(mine, json_deep_copy(f));
	}
	return 0;
}

static int
tls_merge_policy(json_t *policies, const json_t *p)
{
	const json_t *pol = json_object_get(p, "policy");
	const json_t *sum = json_object_get(p, "summary");
	const json_t *fd = json_object_get(p, "failure-details");
	json_int_t ok, failed;
	size_t i;
	json_t *q, *hit = NULL;

	if (!json_is_object(p) || !json_is_object(pol) ||
	    !json_is_object(sum) ||
	    tls_count(sum, "total-successful-session-count", &ok) != 0 ||
	    tls_count(sum, "total-failure-session-count", &failed) != 0)
		return -1;
	json_array_foreach(policies, i, q)
		if (tls_same(pol, json_object_get(q, "policy"),
			     tls_policy_keys)) {
			hit = q;
			break;
		}
	if (hit == NULL) {
		if (json_array_size(policies) >= TLS_CMD_POLICIES_MAX)
			return -1;
		hit = json_object();
		json_object_set_new(hit, "policy", json_deep_copy(pol));
		json_object_set_new(hit, "summary", json_object());
		json_array_append_new(policies, hit);
	}
	sum = json_object_get(hit, "summary");
	if (tls_add((json_t *)sum, "total-successful-session-count", ok) ||
	    tls_add((json_t *)sum, "total-failure-session-count", failed))
		return -1;
	return fd == NULL ? 0 : tls_merge_fails(hit, fd);
}

char *
tls_cmd_merge(const char *const *reports, const size_t *lens, size_t n,
	      const char *domain, const char *date, bool pretty, char *err,
	      size_t errlen)
{
	json_t *out = json_object(), *policies = json_array(), *range;
	char id[TLS_CMD_DOMAIN_MAX + 32], t0[32], t1[32];
	const char *org = NULL, *contact = NULL;
	char *text = NULL;
	json_t **docs = xcalloc(n ? n : 1, sizeof(*docs));

	for (size_t i = 0; i < n; i++) {
		json_error_t je;
		const json_t *ps;
		json_t *p;
		size_t k;

		if (lens[i] > TLS_CMD_JSON_MAX) {
			snprintf(err, errlen, "report %zu too large", i);
			goto done;
		}
		docs[i] = json_loadb(reports[i], lens[i], JSON_REJECT_DUPLICATES,
				     &je);
		ps = json_object_get(docs[i], "policies");
		if (!json_is_object(docs[i]) || !json_is_array(ps)) {
			snprintf(err, errlen, "report %zu is not an RFC 8460 "
					      "report",
				 i);
			goto done;
		}
		if (org == NULL)
			org = json_string_value(
				json_object_get(docs[i], "organization-name"));
		if (contact == NULL)
			contact = json_string_value(
				json_object_get(docs[i], "contact-info"));
		json_array_foreach(ps, k, p)
			if (tls_merge_policy(policies, p) != 0) {
				snprintf(err, errlen,
					 "report %zu: policy %zu is malformed "
					 "or past a bound",
					 i, k);
				goto done;
			}
	}
	snprintf(id, sizeof(id), "%s.%s@cluster", date, domain);
	snprintf(t0, sizeof(t0), "%sT00:00:00Z", date);
	snprintf(t1, sizeof(t1), "%sT23:59:59Z", date);
	json_object_set_new(out, "organization-name", json_string(org ? org :
									 ""));
	range = json_object();
	json_object_set_new(range, "start-datetime", json_string(t0));
	json_object_set_new(range, "end-datetime", json_string(t1));
	json_object_set_new(out, "date-range", range);
	json_object_set_new(out, "contact-info",
			    json_string(contact ? contact : ""));
	json_object_set_new(out, "report-id", json_string(id));
	json_object_set(out, "policies", policies);
	text = json_dumps(out, JSON_PRESERVE_ORDER |
				       (pretty ? JSON_INDENT(2) : JSON_COMPACT));
	if (text == NULL)
		snprintf(err, errlen, "out of memory");
done:
	for (size_t i = 0; i < n; i++)
		json_decref(docs[i]);
	free(docs);
	json_decref(policies);
	json_decref(out);
	return text;
}

/* ---- the command ---- */

static void
tls_today(char out[11])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

#define TLS_NOTHING "nothing counted today" /* node/ops/tls_ops.c's */

/* Nodes that had a report and could not send it. */
static size_t
tls_not_sent(size_t n, Shoal__AdminReply **replies)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const Shoal__TlsReportReply *tr =
			replies[i] ? replies[i]->tls_report : NULL;

		if (tr && !tr->sent && strcmp(tr->error, TLS_NOTHING) != 0)
			k++;
	}
	return k;
}

static int
tls_print_sent(struct cli *c, struct cli_peer *peers, size_t n,
	       Shoal__AdminReply **replies)
{
	char e[TEXT_CLEAN_BUF(TLS_ERROR_MAX)];
	json_t *out, *nodes, *missing;
	int rc;

	if (!c->is_json) {
		for (size_t i = 0; i < n; i++) {
			const Shoal__TlsReportReply *tr =
				replies[i] ? replies[i]->tls_report : NULL;

			if (tr == NULL)
				printf("%-8s (no answer)\n", peers[i].node->id);
			else
				printf("%-8s %s%s\n", peers[i].node->id,
				       tr->sent ? "sent" : "not sent: ",
				       tr->sent ? "" :
						  text_clean(e, sizeof(e),
							     tr->error,
							     strnlen(tr->error,
								     TLS_ERROR_MAX)));
		}
		return 0;
	}
	out = json_object();
	nodes = json_array();
	missing = json_array();
	for (size_t i = 0; i < n; i++) {
		const Shoal__TlsReportReply *tr =
			replies[i] ? replies[i]->tls_report : NULL;
		json_t *o;

		if (tr == NULL) {
			json_array_append_new(missing,
					      json_string(peers[i].node->id));
			continue;
		}
		o = json_object();
		json_object_set_new(o, "node", json_string(peers[i].node->id));
		json_object_set_new(o, "sent", json_boolean(tr->sent));
		json_object_set_new(
			o, "error",
			json_string(text_clean(e, sizeof(e), tr->error,
					       strnlen(tr->error,
						       TLS_ERROR_MAX))));
		json_array_append_new(nodes, o);
	}
	json_object_set_new(out, "nodes", nodes);
	json_object_set_new(out, "nodes_unanswered", missing);
	rc = json_dumpf(out, stdout, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(out);
	if (rc == 0 && (fputc('\n', stdout) == EOF || fflush(stdout) != 0))
		rc = -1;
	return rc;
}

static int
tls_print_report(struct cli *c, const char *domain, size_t n,
		 Shoal__AdminReply **replies)
{
	const char **texts = xcalloc(n ? n : 1, sizeof(*texts));
	size_t *lens = xcalloc(n ? n : 1, sizeof(*lens));
	size_t k = 0;
	char date[11], err[128];
	char *out;

	for (size_t i = 0; i < n; i++)
		if (replies[i] != NULL) {
			texts[k] = replies[i]->tls_report->json;
			lens[k++] = strlen(replies[i]->tls_report->json);
		}
	tls_today(date);
	out = tls_cmd_merge(texts, lens, k, domain, date, !c->is_json, err,
			    sizeof(err));
	free(texts);
	free(lens);
	if (out == NULL) {
		cli_error("tls report: %s", err);
		return -1;
	}
	printf("%s\n", out);
	free(out);
	return 0;
}

static int
tls_report(struct cli *c, const char *domain, bool send)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__TlsReportRequest tr = SHOAL__TLS_REPORT_REQUEST__INIT;
	Shoal__AdminReply **replies = NULL;
	struct cli_peer *peers = NULL;
	size_t n = 0, answered = 0;
	int rc = CLI_EXIT_FAIL, opened;

	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	opened = send ? cli_peers_open_slow(c, TLS_SEND_WAIT_MS, &peers, &n) :
			cli_peers_open(c, NULL, &peers, &n);
	if (opened != 0)
		goto done;
	tr.domain = (char *)domain;
	tr.send = send;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_TLS_REPORT;
	req.tls_report = &tr;
	replies = xcalloc(n ? n : 1, sizeof(*replies));
	answered = cli_ask_all(peers, n, &req, replies,
			       SHOAL__ADMIN_REPLY__BODY_TLS_REPORT);
	if (answered == 0) {
		cli_error("no node answered");
		goto done;
	}
	if ((send ? tls_print_sent(c, peers, n, replies) :
		    tls_print_report(c, domain, n, replies)) != 0)
		goto done;
	if (send && tls_not_sent(n, replies) > 0) {
		cli_error("tls report: %zu node(s) could not send their report",
			  tls_not_sent(n, replies));
		goto done;
	}
	if (answered < n) {
		cli_error("%zu of %zu nodes did not answer: the report is "
			  "incomplete",
			  n - answered, n);
		goto done;
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
tls_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	char domain[TLS_CMD_DOMAIN_MAX + 1];

	if (strcmp(verb, "report") != 0)
		return cli_usage_error("tls: unknown command %s", verb);
	if (argc != 1)
		return cli_usage_error("tls report takes one DOMAIN");
	if (tls_cmd_domain(argv[0], domain) != 0) {
		char shown[TEXT_CLEAN_BUF(64)];

		/* the argument as it came, but never its control bytes */
		return cli_usage_error("tls report: %s is not a domain name "
				       "(letters, digits, '-', at most 253)",
				       text_clean(shown, sizeof(shown), argv[0],
						  strnlen(argv[0], 64)));
	}
	return tls_report(c, domain, (c->opts_given & CLI_OPT_SEND) != 0);
}
