/* POST /api/v1/inject (docs/http.md): a JSON request becomes messages
 * queued exactly as SMTP queues them. The steps, each of which may end
 * the request with its answer:
 *
 *   1. who, from the headers, before the body is read: a client inside
 *      router.relay_networks, or HTTP Basic checked against
 *      router.users_file (router/auth.c, off the loop), under the
 *      listener's auth setting and the TLS rule SMTP AUTH has
 *      (auth_offered());
 *   2. the body in: the per-client and per-user message rate
 *      (router/limits.c), counted once per request as SMTP counts once
 *      per MAIL; then, on a worker thread (lib/workq.h: a large request
 *      takes its time there, not on the loop), the JSON parsed and every
 *      field checked (router/inject.c), every message built behind our
 *      Received header, run through SMTP's content checker
 *      (lib/smtp_data.h), and finished (class headers, DKIM:
 *      message_finish()); bounded per request (INJECT_TOTAL_FACTOR times
 *      router.max_message_size) and in all (http_held_max()); then, back
 *      on the loop, the pool named must exist;
 *   3. the suppression list, every recipient at once, read as RCPT reads
 *      it (message_check_verdict()); a message keeps the recipients it
 *      lets through. A request that fails anywhere up to here queues
 *      nothing;
 *   4. every message handed to its node (message_enqueue(), the end of
 *      the path DATA takes), and the answer given once every node has
 *      answered: 200 with what was queued (durable as a 250 is), or 503
 *      with Retry-After when nothing could be.
 *
 * Handles untrusted input: the body is bounded by router/http.c, the
 * request by router/inject.c, and every wait by a timeout of its own. */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/smtp_cmd.h"
#include "lib/smtp_data.h"
#include "lib/suppress_key.h"
#include "lib/wire.h"
#include "lib/workq.h"
#include "lib/xmalloc.h"
#include "router/auth.h"
#include "router/http_int.h"
#include "router/inject.h"
#include "router/limits.h"
#include "router/message.h"
#include "router/session.h"

#define HI_RETRY_NODE_S 5   /* Retry-After when no node took the mail */
#define HI_RETRY_RATE_S 60  /* ... when over a per-minute rate */
#define HI_RETRY_BUSY_S 1   /* ... when the workers or memory are full */
#define HI_REFUSAL_MAX (ENQUEUE_CHECK_REPLY_MAX + 400)
/* "Basic " and the base64 of user:password at most */
#define HI_AUTH_B64_MAX (((AUTH_USER_MAX + 1 + AUTH_PASS_MAX) + 2) / 3 * 4)

struct hi_rcpt {
	struct http_inject *hi;
	uint64_t check_id;        /* suppression check waiting, 0 if none */
	enum message_check_verdict verdict;
	char *bounce_reply;       /* MESSAGE_CHECK_BOUNCE */
	char *refusal;            /* MESSAGE_CHECK_REFUSE */
};

struct hi_msg {
	struct http_inject *hi;
	char qid[QID_LEN + 1];
	struct buf body;          /* finished: signed, class headers out */
	struct pool_choice cls;
	bool has_8bit;
	size_t *rcpts;            /* indexes of the recipients it carries */
	size_t n_rcpts;
	size_t size;              /* octets handed to the node */
	uint64_t request_id;      /* waiting for its node, 0 if none */
	int result;               /* the node's answer */
};

struct http_inject {
	struct http_req *r;
	struct session_env *env;
	char auth_user[AUTH_USER_MAX + 1];
	bool is_auth_waiting;     /* a password check is running */
	struct event *auth_delay; /* a failure's delayed 401 */
	struct hi_job *job;       /* on a worker now, or NULL */
	struct inject_req *req;
	struct hi_rcpt *rcpts;
	size_t n_rcpts, checks_left;
	struct hi_msg *msgs;
	size_t n_msgs, submits_left;
	uint64_t held;            /* octets counted in http_held() */
	uint64_t start_us;
};

/* ---- answers -------------------------------------------------------- */

static void
hi_count(struct http_inject *hi, enum router_reject why)
{
	hi->env->stats.rejected[why]++;
}

static void
hi_refuse(struct http_inject *hi, unsigned code, enum router_reject why,
	  const char *field, const char *message)
{
	char q[LOG_QUOTE_BUF];

	hi_count(hi, why);
	log_info("client=%s event=http_refused code=%u field=%s reason=%s",
		 hi->r->conn->client, code, field ? field : "-",
		 log_quote(q, sizeof(q), message, strlen(message)));
	http_answer_error(hi->r, code, field, message);
}

/* What this request holds of http_held() goes back. */
static void
hi_release(struct http_inject *hi, uint64_t n)
{
	if (n > hi->held)
		n = hi->held;
	hi->held -= n;
	atomic_fetch_sub(http_held(hi->r->h), n);
}

/* The message's recipients into failed/errors, with why. */
static void
hi_failed(struct http_inject *hi, const struct hi_msg *msg, const char *why,
	  json_t *failed, json_t *errors)
{
	for (size_t k = 0; k < msg->n_rcpts; k++) {
		json_array_append_new(
			failed,
			json_string(inject_rcpt(hi->req, msg->rcpts[k])));
		json_array_append_new(errors, json_string(why));
	}
}

/* Every node has answered: say what was queued. */
static void
hi_finish(struct http_inject *hi)
{
	json_t *ids = json_array(), *failed = json_array();
	json_t *errors = json_array(), *o;
	size_t ok = 0, bad = 0;
	bool is_temporary = false;

	for (size_t i = 0; i < hi->n_rcpts; i++) {
		if (hi->rcpts[i].verdict != MESSAGE_CHECK_REFUSE)
			continue;
		json_array_append_new(failed,
				      json_string(inject_rcpt(hi->req, i)));
		json_array_append_new(errors,
				      json_string(hi->rcpts[i].refusal));
		bad++;
	}
	for (size_t m = 0; m < hi->n_msgs; m++) {
		struct hi_msg *msg = &hi->msgs[m];

		if (msg->n_rcpts == 0)
			continue;
		if (msg->result == 0) {
			json_array_append_new(ids, json_string(msg->qid));
			ok += msg->n_rcpts;
			hi->env->stats.http_queued++;
			log_info("qid=%s event=accepted client=%s from=<%s> "
				 "nrcpt=%zu size=%zu protocol=http",
				 msg->qid, hi->r->conn->client,
				 inject_sender(hi->req), msg->n_rcpts,
				 msg->size);
			continue;
		}
		hi->env->stats.http_failed++;
		is_temporary = true;
		log_warn("qid=%s event=not_queued client=%s protocol=http "
			 "error=\"%s\"",
			 msg->qid, hi->r->conn->client,
			 shoal_strerror(msg->result));
		hi_failed(hi, msg,
			  msg->result == SHOAL_E_STORAGE_FULL ?
				  "452 4.3.1 Insufficient system storage, "
				  "try again later" :
				  "451 4.3.0 Message not stored, try again "
				  "later",
			  failed, errors);
		bad += msg->n_rcpts;
	}
	o = json_pack("{s:I,s:I,s:o,s:o,s:o}", "success_count", (json_int_t)ok,
		      "fail_count", (json_int_t)bad, "ids", ids,
		      "failed_recipients", failed, "errors", errors);
	http_set_busy(hi->r, false);
	if (ok == 0 && is_temporary)
		hi->r->retry_after = HI_RETRY_NODE_S;
	http_answer(hi->r, ok == 0 && is_temporary ? 503 : 200,
		    json_dumps(o, JSON_COMPACT));
	json_decref(o);
}

/* ---- 4. to the nodes ------------------------------------------------ */

static void
hi_on_durable(int result, void *arg)
{
	struct hi_msg *msg = arg;
	struct http_inject *hi = msg->hi;

	msg->request_id = 0;
	msg->result = result;
	router_stats_enqueued(hi->env, result, hi->start_us, msg->size);
	if (--hi->submits_left == 0)
		hi_finish(hi);
}

static void
hi_submit(struct http_inject *hi)
{
	size_t most = 1;
	struct message_rcpt *rs;

	for (size_t m = 0; m < hi->n_msgs; m++) {
		if (hi->msgs[m].n_rcpts > most)
			most = hi->msgs[m].n_rcpts;
		if (hi->msgs[m].n_rcpts)
			hi->submits_left++;
	}
	if (hi->submits_left == 0) {
		hi_finish(hi); /* every recipient refused */
		return;
	}
	rs = xcalloc(most, sizeof(*rs));
	hi->start_us = clock_mono_us();
	http_set_busy(hi->r, true);
	for (size_t m = 0; m < hi->n_msgs; m++) {
		struct hi_msg *msg = &hi->msgs[m];
		struct message_from from = {
			.mail_from = inject_sender(hi->req),
			.rcpts = rs,
			.n_rcpts = msg->n_rcpts,
			.ret = SMTP_RET_DEFAULT,
			.envid = "",
			.smtputf8 = inject_smtputf8(hi->req),
			.body = SMTP_BODY_7BIT,
			.client = hi->r->conn->client,
			.helo = "",
			.auth_user = hi->auth_user,
			.is_trusted = true,
		};
		size_t len = msg->body.len;

		if (msg->n_rcpts == 0)
			continue;
		for (size_t k = 0; k < msg->n_rcpts; k++)
			rs[k] = (struct message_rcpt){
				.addr = inject_rcpt(hi->req, msg->rcpts[k]),
				.suppressed_reply =
					hi->rcpts[msg->rcpts[k]].bounce_reply,
			};
		msg->request_id = message_enqueue(
			hi->env, msg->qid, &from, &msg->cls, &msg->body,
			msg->has_8bit, &msg->size, hi_on_durable, msg);
		hi_release(hi, len); /* the node link has it now */
	}
	free(rs);
}

/* ---- 3. the suppression list ---------------------------------------- */

/* Every answer is in: each message keeps the recipients not refused. */
static void
hi_checked_all(struct http_inject *hi)
{
	http_set_busy(hi->r, false);
	for (size_t m = 0; m < hi->n_msgs; m++) {
		struct hi_msg *msg = &hi->msgs[m];
		size_t n = 0;

		for (size_t k = 0; k < msg->n_rcpts; k++)
			if (hi->rcpts[msg->rcpts[k]].verdict !=
			    MESSAGE_CHECK_REFUSE)
				msg->rcpts[n++] = msg->rcpts[k];
		msg->n_rcpts = n;
	}
	hi_submit(hi);
}

static void
hi_on_checked(int result, const struct enqueue_check_result *res, void *arg)
{
	struct hi_rcpt *hr = arg;
	struct http_inject *hi = hr->hi;
	size_t i = (size_t)(hr - hi->rcpts);
	char refusal[HI_REFUSAL_MAX];

	hr->check_id = 0;
	hr->verdict = message_check_verdict(
		hi->env->cfg, result, res, hi->r->conn->client,
		inject_rcpt(hi->req, i), &hr->bounce_reply, refusal,
		sizeof(refusal));
	if (hr->verdict == MESSAGE_CHECK_REFUSE) {
		hi_count(hi, ROUTER_REJECT_SUPPRESSED);
		hr->refusal = xstrdup(refusal);
	}
	if (--hi->checks_left == 0)
		hi_checked_all(hi);
}

static void
hi_check(struct http_inject *hi)
{
	const struct config *cfg = hi->env->cfg;
	char norm[SUPPRESS_ADDR_MAX + 1];

	hi->n_rcpts = inject_n_rcpts(hi->req);
	hi->rcpts = xcalloc(hi->n_rcpts ? hi->n_rcpts : 1, sizeof(*hi->rcpts));
	for (size_t i = 0; i < hi->n_rcpts; i++)
		hi->rcpts[i].hi = hi;
	http_set_busy(hi->r, true);
	/* one more than the checks: none may finish the count before the
	 * last has started */
	hi->checks_left = 1;
	for (size_t i = 0; cfg->suppression.enabled && i < hi->n_rcpts; i++) {
		const char *a = inject_rcpt(hi->req, i);

		if (suppress_addr_norm(a, strlen(a), norm) != 0)
			continue;
		hi->checks_left++;
		hi->rcpts[i].check_id = enqueue_check(
			hi->env->enq, norm, cfg->suppression.check_timeout_ms,
			hi_on_checked, &hi->rcpts[i]);
	}
	if (--hi->checks_left == 0)
		hi_checked_all(hi);
}

/* ---- 2. the request, off the loop ----------------------------------- */

/* A worker's job: what it reads, and what it makes. Only the loop thread
 * touches hi (NULL once the request went away). */
struct hi_job {
	struct http_inject *hi;
	const struct config *cfg;
	struct signer *signer;
	struct workq *wq;
	_Atomic uint64_t *held;     /* the server's, see http_held() */
	uint64_t held_max;
	char *body;
	size_t body_len;
	uint64_t body_held;         /* of body, counted in held */
	char client[64];
	char auth_user[AUTH_USER_MAX + 1];
	bool is_tls;
	/* made on the worker */
	unsigned status;            /* 0, 400 or 503 */
	enum router_reject why;
	struct inject_error e;
	struct inject_req *req;
	struct hi_msg *msgs;
	size_t n_msgs;
	uint64_t total;             /* octets built, counted in held */
};

static void
hi_msgs_free(struct hi_msg *msgs, size_t n)
{
	for (size_t m = 0; m < n; m++) {
		buf_free(&msgs[m].body);
		free(msgs[m].rcpts);
	}
	free(msgs);
}

static void
hi_job_free(struct hi_job *j)
{
	atomic_fetch_sub(j->held, j->total + j->body_held);
	free(j->body);
	inject_free(j->req);
	hi_msgs_free(j->msgs, j->n_msgs);
	free(j);
}

static void
hi_job_fail(struct hi_job *j, unsigned status, enum router_reject why,
	    const char *field, const char *message)
{
	j->status = status;
	j->why = why;
	snprintf(j->e.field, sizeof(j->e.field), "%s", field);
	snprintf(j->e.message, sizeof(j->e.message), "%s", message);
}

/* Count n more octets built: within the request's bound and the
 * server's. 0, or -1 with the job's error set. */
static int
hi_job_hold(struct hi_job *j, size_t n)
{
	uint64_t cap = (uint64_t)j->cfg->router.max_message_size *
		       INJECT_TOTAL_FACTOR;
	uint64_t was = atomic_fetch_add(j->held, n);

	j->total += n;
	if (j->total > cap) {
		char why[128];

		snprintf(why, sizeof(why),
			 "the messages together are larger than %llu bytes; "
			 "split the request",
			 (unsigned long long)cap);
		hi_job_fail(j, 400, ROUTER_REJECT_TOO_BIG, "recipients", why);
		return -1;
	}
	if (was + n > j->held_max) {
		hi_job_fail(j, 503, ROUTER_REJECT_N, "",
			    "too much mail being read, try again");
		return -1;
	}
	return 0;
}

/* Message m of the plan built behind our Received header, checked as
 * DATA is, and finished. 0, or -1 with the job's error set. */
static int
hi_job_build(struct hi_job *j, struct qid_gen *qids, size_t m, time_t now)
{
	const struct config *cfg = j->cfg;
	struct hi_msg *msg = &j->msgs[m];
	const size_t *idx;
	size_t n = inject_message_rcpts(j->req, m, &idx), used = 0;
	struct message_from from = {
		.mail_from = inject_sender(j->req),
		.client = j->client,
		.helo = "",
		.auth_user = j->auth_user,
		.is_trusted = true,
		.pool = inject_pool(j->req),
		.priority = inject_priority(j->req),
		.tenant = inject_tenant(j->req),
	};
	size_t header_len;
	struct smtp_data d;
	struct buf text;
	int rc;

	msg->rcpts = xcalloc(n ? n : 1, sizeof(*msg->rcpts));
	memcpy(msg->rcpts, idx, n * sizeof(*idx));
	msg->n_rcpts = n;
	qid_next(qids, msg->qid);
	buf_init(&text, cfg->router.max_message_size + WIRE_BODY_SLACK);
	rc = inject_build(j->req, m, msg->qid, cfg->router.hostname, now,
			  &text, &j->e);
	if (rc != 0) {
		buf_free(&text);
		j->status = 400;
		j->why = rc == -E2BIG ? ROUTER_REJECT_TOO_BIG :
					ROUTER_REJECT_BAD_SYNTAX;
		if (j->e.field[0] == '\0')
			snprintf(j->e.field, sizeof(j->e.field), "content");
		return -1;
	}
	buf_init(&msg->body, cfg->router.max_message_size + WIRE_BODY_SLACK);
	header_len = message_received(&msg->body, cfg, "", j->client,
				      j->is_tls ? "HTTPS" : "HTTP", msg->qid,
				      n == 1 ? inject_rcpt(j->req, idx[0]) :
					       NULL);
	/* the same octets get the same answer as by DATA or BDAT; JSON
	 * text ends its lines with LF, which becomes CRLF */
	smtp_data_init(&d, &msg->body, cfg->router.max_message_size,
		       SMTP_DATA_CHUNKED | SMTP_DATA_NORMALIZE_LF);
	smtp_data_feed(&d, text.data, text.len, &used);
	buf_free(&text);
	if (smtp_data_finish(&d) != SMTP_DATA_OK) {
		hi_job_fail(j, 400,
			    d.error == SMTP_DATA_E_TOO_BIG ?
				    ROUTER_REJECT_TOO_BIG :
				    ROUTER_REJECT_BAD_SYNTAX,
			    "content", smtp_data_strerror(d.error));
		return -1;
	}
	msg->has_8bit = d.has_8bit;
	message_finish(cfg, j->signer, msg->qid, &from, &msg->body,
		       header_len, &msg->cls);
	return hi_job_hold(j, msg->body.len);
}

/* On a worker: parse, check, build, sign. Touches only the job. */
static void
hi_job_work(void *arg)
{
	struct hi_job *j = arg;
	struct inject_limits lim = {
		.max_message_size = j->cfg->router.max_message_size,
		.max_recipients = j->cfg->router.max_recipients,
	};
	struct qid_gen qids;
	time_t now = time(NULL);

	j->status = 400;
	j->why = ROUTER_REJECT_BAD_SYNTAX;
	if (inject_parse(j->body, j->body_len, &lim, &j->req, &j->e) != 0)
		return;
	if (qid_gen_init(&qids) != 0) {
		hi_job_fail(j, 503, ROUTER_REJECT_N, "", "no queue ids");
		return;
	}
	j->n_msgs = inject_n_messages(j->req);
	j->msgs = xcalloc(j->n_msgs ? j->n_msgs : 1, sizeof(*j->msgs));
	for (size_t m = 0; m < j->n_msgs; m++) {
		if (workq_is_stopping(j->wq)) {
			hi_job_fail(j, 503, ROUTER_REJECT_N, "",
				    "shutting down");
			return;
		}
		if (hi_job_build(j, &qids, m, now) != 0)
			return;
	}
	j->status = 0;
}

/* Back on the loop: the pool, then the suppression list. */
static void
hi_job_done(void *arg, int status)
{
	struct hi_job *j = arg;
	struct http_inject *hi = j->hi;
	const char *pool;

	if (hi == NULL) { /* the request went away */
		hi_job_free(j);
		return;
	}
	hi->job = NULL;
	http_set_busy(hi->r, false);
	if (status != 0 || j->status == 503) {
		hi->r->retry_after = status == 0 && !http_is_stopping(hi->r->h) ?
					     HI_RETRY_BUSY_S :
					     HI_RETRY_NODE_S;
		http_answer_error(hi->r, 503, NULL,
				  status != 0 ? "shutting down" :
						j->e.message);
		hi_job_free(j);
		return;
	}
	if (j->status != 0) {
		hi_refuse(hi, 400, j->why, j->e.field[0] ? j->e.field : NULL,
			  j->e.message[0] ? j->e.message : "bad request");
		hi_job_free(j);
		return;
	}
	/* the request takes what the job made, and what it holds */
	hi->req = j->req;
	hi->msgs = j->msgs;
	hi->n_msgs = j->n_msgs;
	hi->held = j->total;
	j->req = NULL;
	j->msgs = NULL;
	j->n_msgs = 0;
	j->total = 0;
	hi_job_free(j);
	for (size_t m = 0; m < hi->n_msgs; m++)
		hi->msgs[m].hi = hi;
	pool = inject_pool(hi->req);
	if (pool && config_find_pool(hi->env->cfg, pool) == NULL) {
		hi_refuse(hi, 400, ROUTER_REJECT_BAD_SYNTAX, "pool",
			  "no such pool");
		return;
	}
	hi_check(hi);
}

void
http_inject_start(struct http_req *r)
{
	struct http_inject *hi = r->inject;
	struct http_conn *hc = r->conn;
	struct hi_job *j;
	size_t len;

	/* the rate first: a client over it costs no worker */
	if (!limits_message(hi->env->limits,
			    hc->is_relay_client ? "" : hc->client,
			    hi->auth_user)) {
		log_info("client=%s event=rate_limited user=%s protocol=http",
			 hc->client, hi->auth_user[0] ? hi->auth_user : "-");
		r->retry_after = HI_RETRY_RATE_S;
		hi_refuse(hi, 429, ROUTER_REJECT_RATE_LIMITED, NULL,
			  "too many messages, slow down");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->hi = hi;
	j->cfg = hi->env->cfg;
	j->signer = hi->env->signer;
	j->wq = http_workq(r->h);
	j->held = http_held(r->h);
	j->held_max = http_held_max(r->h);
	j->body = buf_steal(&r->body, &len);
	j->body_len = len;
	j->body_held = r->body_held; /* the job holds it now */
	r->body_held = 0;
	snprintf(j->client, sizeof(j->client), "%s", hc->client);
	snprintf(j->auth_user, sizeof(j->auth_user), "%s", hi->auth_user);
	j->is_tls = hc->is_tls;
	if (workq_submit(j->wq, j, hi_job_work, hi_job_done) != 0) {
		hi_job_free(j);
		r->retry_after = HI_RETRY_BUSY_S;
		http_answer_error(r, 503, NULL,
				  "too many requests being read, try again");
		return;
	}
	hi->job = j;
	http_set_busy(r, true); /* SIGTERM waits for it too */
}

/* ---- 1. who, before the body ---------------------------------------- */

static void
hi_on_auth_delay(evutil_socket_t fd, short what, void *arg)
{
	struct http_inject *hi = arg;

	(void)fd;
	(void)what;
	hi->r->wants_auth = true;
	http_answer_error(hi->r, 401, "Authorization",
			  "authentication failed");
}

/* Credentials refused: 401 after the delay a failure earns
 * (auth_failed(): password guessing slows down). */
static void
hi_auth_refuse(struct http_inject *hi, uint32_t delay_ms, const char *user)
{
	struct timeval tv = { delay_ms / 1000,
			      (suseconds_t)(delay_ms % 1000) * 1000 };

	hi->env->stats.auth_failed++;
	hi_count(hi, ROUTER_REJECT_AUTH_FAILED);
	log_info("client=%s event=auth_failed user=%s protocol=http",
		 hi->r->conn->client, user);
	hi->auth_delay = evtimer_new(hi->env->base, hi_on_auth_delay, hi);
	evtimer_add(hi->auth_delay, &tv);
}

static void
hi_on_auth(void *ctx, void *arg, const struct auth_result *res)
{
	struct http_inject *hi = arg;

	(void)ctx;
	if (hi == NULL)
		return; /* the request went away */
	hi->is_auth_waiting = false;
	if (!res->is_ok) {
		hi_auth_refuse(hi, res->delay_ms, res->user);
		return;
	}
	hi->env->stats.auth_ok++;
	snprintf(hi->auth_user, sizeof(hi->auth_user), "%s", res->user);
	http_go_on(hi->r);
}

/* The Authorization header: "Basic" (any case, RFC 7617) and the strict
 * base64 of user:password, neither with a NUL. 0 with user and pass
 * filled, -1 for anything else. */
static int
hi_basic(const char *h, char *user, char *pass)
{
	char dec[AUTH_USER_MAX + 1 + AUTH_PASS_MAX + 1];
	size_t len;
	int n;
	char *colon;

	if (strncasecmp(h, "Basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
		return -1;
	h += 5;
	h += strspn(h, " \t");
	len = strcspn(h, " \t");
	if (len == 0 || len > HI_AUTH_B64_MAX || h[len + strspn(h + len, " \t")])
		return -1;
	n = auth_b64_decode(h, len, dec, sizeof(dec) - 1);
	if (n < 0 || strlen(dec) != (size_t)n ||
	    (colon = strchr(dec, ':')) == NULL ||
	    (size_t)(colon - dec) > AUTH_USER_MAX)
		return -1;
	memcpy(user, dec, (size_t)(colon - dec));
	user[colon - dec] = '\0';
	snprintf(pass, AUTH_PASS_MAX + 1, "%s", colon + 1);
	explicit_bzero(dec, sizeof(dec));
	return 0;
}

/* Credentials given: check them (a client may also sign in from inside
 * relay_networks, to be counted and classified as its user). */
static void
hi_authenticate(struct http_inject *hi, const char *header)
{
	struct http_conn *hc = hi->r->conn;
	char user[AUTH_USER_MAX + 1], pass[AUTH_PASS_MAX + 1];
	int rc;

	if (!auth_offered(hi->env->auth, hc->ls, hc->is_tls, hc->client)) {
		hi_refuse(hi, 403, ROUTER_REJECT_TLS_REQUIRED, "Authorization",
			  hi->env->auth == NULL ||
					  hc->ls->auth == CFG_AUTH_NONE ?
				  "authentication is not offered here" :
				  "authentication needs TLS");
		return;
	}
	if (hi_basic(header, user, pass) != 0) {
		http_wait(hi->r);
		hi_auth_refuse(hi, auth_failed(hi->env->auth, hc->client),
			       "-");
		return;
	}
	rc = auth_check_start(hi->env->auth, hc->client, user, pass,
			      hi_on_auth, hi, hi);
	explicit_bzero(pass, sizeof(pass));
	if (rc != 0) {
		hi->r->retry_after = HI_RETRY_BUSY_S;
		http_answer_error(hi->r, 503, NULL,
				  "too many password checks, try again");
		return;
	}
	hi->is_auth_waiting = true;
	http_wait(hi->r);
}

void
http_inject_admit(struct http_req *r)
{
	struct http_inject *hi = xcalloc(1, sizeof(*hi));
	struct http_conn *hc = r->conn;
	const char *header;

	hi->r = r;
	hi->env = http_env(r->h);
	r->inject = hi;
	if (http_is_stopping(r->h) || !hi->env->is_ready) {
		r->retry_after = HI_RETRY_NODE_S;
		http_answer_error(r, 503, NULL,
				  http_is_stopping(r->h) ? "shutting down" :
							   "no shard map yet");
		return;
	}
	header = MHD_lookup_connection_value(r->c, MHD_HEADER_KIND,
					     MHD_HTTP_HEADER_AUTHORIZATION);
	if (header) {
		hi_authenticate(hi, header);
	} else if (hc->ls->auth == CFG_AUTH_REQUIRED ||
		   !hc->is_relay_client) {
		/* like RCPT from outside without AUTH: no mail is taken */
		hi_count(hi, hc->is_relay_client ?
				     ROUTER_REJECT_AUTH_REQUIRED :
				     ROUTER_REJECT_RELAY_DENIED);
		r->wants_auth = true;
		http_answer_error(r, 401, "Authorization",
				  "authentication required");
	}
}

void
http_inject_free(struct http_req *r)
{
	struct http_inject *hi = r->inject;

	if (hi == NULL)
		return;
	r->inject = NULL;
	if (hi->job)
		hi->job->hi = NULL; /* the worker's result is dropped */
	if (hi->is_auth_waiting)
		auth_check_forget(hi->env->auth, hi);
	if (hi->auth_delay)
		event_free(hi->auth_delay);
	for (size_t i = 0; i < hi->n_rcpts; i++) {
		if (hi->rcpts[i].check_id)
			enqueue_cancel(hi->env->enq, hi->rcpts[i].check_id);
		free(hi->rcpts[i].bounce_reply);
		free(hi->rcpts[i].refusal);
	}
	for (size_t m = 0; m < hi->n_msgs; m++)
		if (hi->msgs[m].request_id)
			enqueue_cancel(hi->env->enq, hi->msgs[m].request_id);
	hi_release(hi, hi->held);
	hi_msgs_free(hi->msgs, hi->n_msgs);
	free(hi->rcpts);
	inject_free(hi->req);
	free(hi);
}
