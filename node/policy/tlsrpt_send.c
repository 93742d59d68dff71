/* TLS reporting (node/policy/tlsrpt.h): sending reports. The daily run,
 * shortly after 00:00 UTC (plus a random jitter, so that a cluster's
 * nodes and the world's senders do not all knock at once), goes through
 * yesterday's domains TR_SEND_PARALLEL at a time; a job per domain looks
 * up `_smtp._tls.DOMAIN` TXT, builds the report, gzips it, and sends it
 * to each rua: https: POSTed (RFC 8460 5.1/5.2) through the node's HTTP
 * client, mailto: queued here as a message of our own (5.3), like a DSN,
 * on a shard this node is primary of. A domain whose report reached a
 * rua is marked sent (a store record); one that failed for a reason that
 * may pass (DNS SERVFAIL, every POST failed) is tried again an hour
 * later, TR_TRIES_MAX times in all.
 *
 * Handles untrusted input: the TXT records (parsed and bounded by
 * node/tls/tlsrpt_json.c; a mailto: address is parsed again as an SMTP
 * mailbox before it becomes a recipient) and the endpoints' answers
 * (only the status is read; the body is bounded by the HTTP client). */
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/log.h"
#include "lib/smtp_addr.h"
#include "lib/xmalloc.h"
#include "node/delivery/dns.h"
#include "node/http/http_client.h"
#include "node/policy/policy_http.h"
#include "node/policy/tlsrpt_int.h"
#include "node/queue/dsn.h"
#include "node/queue/scheduler.h"
#include "node/store/commit.h"

#define TR_GZ_MAX (4u << 20)     /* bytes of a gzipped report */
#define TR_HTTP_READ_MAX 65536   /* bytes of an endpoint's answer read */
#define TR_START_DELAY_S 60      /* after a start, before a late run */

enum tr_outcome {
	TR_SENT,
	TR_FAILED,                /* may pass: tried again */
	TR_SKIPPED,               /* no rua: nothing to do */
};

struct tr_job;

/* One mailto: report in the commit. */
struct tr_mail {
	struct tr_job *job;
	struct dsn_slot slot;
	char to[ENVELOPE_ADDR_MAX + 1];
};

/* One https: report in flight: the arg of its call. */
struct tr_post {
	struct tr_job *job;
	size_t i;                  /* in rua */
};

struct tr_job {
	struct tlsrpt *r;
	struct tr_job *next;       /* r->jobs */
	char domain[TLSRPT_DOMAIN_MAX + 1];
	uint32_t day;
	bool is_daily;
	uint64_t run_gen;          /* the daily run it belongs to */
	uint64_t now;
	char report_id[TR_REPORT_ID_MAX];
	char from[ENVELOPE_ADDR_MAX + 1];
	char unique[64];
	struct buf gz;
	uint64_t dns_id;
	struct tlsrpt_rua rua;
	size_t pending, n_ok, n_failed;
	struct policy_http *calls[TLSRPT_RUA_MAX];
	struct tr_post posts[TLSRPT_RUA_MAX];
	enum tr_outcome outcome;   /* when nothing was sent */
	char error[200];
	tlsrpt_sent_fn fn;
	void *arg;
};

/* ---- one job ---- */

static void tr_run_next(struct tlsrpt *r);

static void
tr_job_unlink(struct tr_job *j)
{
	for (struct tr_job **p = &j->r->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			return;
		}
}

static void
tr_job_free(struct tr_job *j)
{
	buf_free(&j->gz);
	free(j);
}

static void
tr_job_end(struct tr_job *j)
{
	struct tlsrpt *r = j->r;
	enum tr_outcome o = j->n_ok ? TR_SENT : j->outcome;
	bool in_run = j->is_daily && r->run_day != 0 && j->run_gen == r->run_gen;
	struct tr_domain *dom = NULL;

	if (o == TR_SENT)
		log_info("tlsrpt domain=%s event=report_sent report_id=%s "
			 "rua_ok=%zu rua_failed=%zu",
			 j->domain, j->report_id, j->n_ok, j->n_failed);
	else if (o == TR_FAILED)
		log_warn("tlsrpt domain=%s event=report_failed report_id=%s "
			 "error=\"%s\"",
			 j->domain, j->report_id, j->error);
	else
		log_info("tlsrpt domain=%s event=report_skipped reason=\"%s\"",
			 j->domain, j->error);
	if (j->is_daily && r->yday.day == j->day)
		dom = tr_day_find(&r->yday, j->domain);
	if (j->is_daily && o == TR_SENT) {
		if (dom)
			dom->is_sent = true;
		tr_mark_sent(r, j->day, j->domain);
	} else if (dom && o == TR_SKIPPED) {
		dom->tries = TR_TRIES_MAX; /* not again today */
	}
	if (in_run) {
		r->run_active--;
		r->run_sent += o == TR_SENT;
		r->run_failed += o == TR_FAILED;
		r->run_skipped += o == TR_SKIPPED;
		r->run_retry |= o == TR_FAILED && dom &&
				dom->tries < TR_TRIES_MAX;
	}
	if (j->fn)
		j->fn(j->arg, o == TR_SENT ? 0 : o == TR_FAILED ? -EIO :
							      -ENOENT,
		      o == TR_SENT ? "" : j->error);
	tr_job_unlink(j);
	tr_job_free(j);
	if (in_run)
		tr_run_next(r);
}

static void
tr_job_fail(struct tr_job *j, enum tr_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
tr_job_fail(struct tr_job *j, enum tr_outcome o, const char *fmt, ...)
{
	va_list ap;

	j->outcome = o;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
}

/* Printable ASCII of a URI from DNS, quoted for the log. */
static const char *
tr_uri_log(const char *uri, char out[LOG_QUOTE_BUF])
{
	return log_quote(out, LOG_QUOTE_BUF, uri, strlen(uri));
}

static void
tr_on_post(void *arg, const struct http_response *resp)
{
	struct tr_post *post = arg;
	struct tr_job *j = post->job;
	size_t i = post->i;
	char q[LOG_QUOTE_BUF];

	j->calls[i] = NULL;
	if (resp->error[0] == '\0' && resp->status >= 200 &&
	    resp->status < 300) {
		j->n_ok++;
		log_info("tlsrpt domain=%s event=report_posted rua=%s "
			 "status=%ld",
			 j->domain, tr_uri_log(j->rua.uri[i], q),
			 resp->status);
	} else {
		j->n_failed++;
		tr_job_fail(j, TR_FAILED, "https: %s",
			    resp->error[0] ? resp->error : "not a 2xx");
		log_warn("tlsrpt domain=%s event=report_post_failed rua=%s "
			 "status=%ld error=\"%s\"",
			 j->domain, tr_uri_log(j->rua.uri[i], q), resp->status,
			 resp->error);
	}
	if (--j->pending == 0)
		tr_job_end(j);
}

static int
tr_apply_mail(struct store_txn *t, void *arg)
{
	struct tr_mail *m = arg;
	struct tr_job *j = m->job;
	const struct config *cfg = j->r->d.cfg;
	struct dsn_report rep = {
		.from = j->from,
		.to = m->to,
		.domain = j->domain,
		.submitter = cfg->delivery.helo_name ? cfg->delivery.helo_name :
						       "localhost",
		.report_id = j->report_id,
		.start = (uint64_t)j->day * TR_DAY_S,
		.end = (uint64_t)j->day * TR_DAY_S + TR_DAY_S - 1,
		.unique = j->unique,
		.gz = j->gz.data,
		.gz_len = j->gz.len,
		.now = j->now,
	};

	return scheduler_report_store(j->r->d.sched, t, &m->slot, &rep);
}

static void
tr_done_mail(int result, void *arg)
{
	struct tr_mail *m = arg;
	struct tr_job *j = m->job;

	scheduler_dsn_done(j->r->d.sched, &m->slot, result);
	if (result == 0 && m->slot.is_stored) {
		/* due now: the scheduler sends it at once */
		scheduler_kick_due(j->r->d.sched, m->slot.due, m->slot.qid);
		j->n_ok++;
	} else {
		j->n_failed++;
		tr_job_fail(j, TR_FAILED, "mailto: not queued: %s",
			    result == -EAGAIN ? "this node is primary of no "
						"shard" :
						strerror(result < 0 ? -result :
								      EIO));
	}
	free(m);
	if (--j->pending == 0)
		tr_job_end(j);
}

static void
tr_send_mail(struct tr_job *j, size_t i)
{
	struct tlsrpt *r = j->r;
	struct smtp_addr a;
	struct tr_mail *m;
	char q[LOG_QUOTE_BUF];

	if (smtp_mailbox_parse(j->rua.addr[i], strlen(j->rua.addr[i]), 0,
			       &a) != 0 ||
	    a.is_ip_literal) {
		j->n_failed++;
		tr_job_fail(j, TR_SKIPPED, "mailto: bad address");
		log_warn("tlsrpt domain=%s event=rua_refused rua=%s "
			 "reason=\"not a mailbox\"",
			 j->domain, tr_uri_log(j->rua.uri[i], q));
		return;
	}
	m = xcalloc(1, sizeof(*m));
	m->job = j;
	snprintf(m->to, sizeof(m->to), "%s", a.mailbox);
	scheduler_dsn_draw(r->d.sched, &m->slot);
	if (m->slot.qid[0] == '\0') {
		j->n_failed++;
		tr_job_fail(j, TR_FAILED,
			    "mailto: this node is primary of no shard");
		free(m);
		return;
	}
	j->pending++;
	commit_add(r->d.commit, tr_apply_mail, tr_done_mail, m);
}

static void
tr_send_post(struct tr_job *j, size_t i)
{
	static const char *const headers[] = {
		"Content-Type: application/tlsrpt+gzip",
		NULL,
	};
	struct http_request q = {
		.url = j->rua.uri[i],
		.body = j->gz.data,
		.body_len = j->gz.len,
		.headers = headers,
		.timeout_ms = TLSRPT_HTTP_TIMEOUT_MS,
		.tls_verify = true,
		.ca_file = j->r->d.cfg->delivery.tls_ca_file,
		.read_max = TR_HTTP_READ_MAX,
	};

	j->posts[i] = (struct tr_post){ j, i };
	j->calls[i] = policy_http_start(j->r->d.dns, j->r->d.http, &q,
					tr_on_post, &j->posts[i]);
	if (j->calls[i] == NULL) {
		j->n_failed++;
		tr_job_fail(j, TR_FAILED, "https: request refused");
		return;
	}
	j->pending++;
}

static void
tr_on_txt(const struct dns_rrset *rs, void *arg)
{
	struct tr_job *j = arg;
	const char *txts[DNS_RR_MAX];
	size_t lens[DNS_RR_MAX];
	int rc;

	j->dns_id = 0;
	if (rs->status == DNS_TEMPFAIL) {
		tr_job_fail(j, TR_FAILED, "DNS: %s", rs->error);
		tr_job_end(j);
		return;
	}
	for (size_t i = 0; i < rs->n && i < DNS_RR_MAX; i++) {
		txts[i] = (const char *)rs->rr[i].data;
		lens[i] = rs->rr[i].len;
	}
	rc = rs->status == DNS_OK ?
		     tlsrpt_txt_pick(txts, lens, rs->n < DNS_RR_MAX ?
							 rs->n :
							 DNS_RR_MAX,
				     &j->rua) :
		     -ENOENT;
	if (rc != 0) {
		tr_job_fail(j, TR_SKIPPED, "%s",
			    rc == -ENOENT ? "no TLSRPT record" :
			    rc == -ENOTSUP ? "no usable rua" :
					     "malformed TLSRPT record");
		tr_job_end(j);
		return;
	}
	for (size_t i = 0; i < j->rua.n; i++) {
		if (j->rua.scheme[i] == TLSRPT_HTTPS && j->r->d.http)
			tr_send_post(j, i);
		else if (j->rua.scheme[i] == TLSRPT_MAILTO && j->r->d.sched &&
			 j->r->d.commit)
			tr_send_mail(j, i);
	}
	if (j->pending == 0) {
		if (j->error[0] == '\0')
			tr_job_fail(j, TR_SKIPPED, "no rua this node can use");
		tr_job_end(j);
	}
}

/* Start the report of dom's day. Returns 0 (the job ends through
 * tr_job_end(), later) or an error (no job). */
static int
tr_job_start(struct tlsrpt *r, const struct tr_domain *dom, uint32_t day,
	     bool is_daily, tlsrpt_sent_fn fn, void *arg)
{
	const struct config *cfg = r->d.cfg;
	const char *helo = cfg->delivery.helo_name ? cfg->delivery.helo_name :
						     "localhost";
	char name[TLSRPT_DOMAIN_MAX + 16], extra[16] = "";
	struct tr_job *j;
	char *json;
	int rc;

	if (r->d.dns == NULL)
		return -ENOTSUP;
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	j->day = day;
	j->is_daily = is_daily;
	j->run_gen = r->run_gen;
	j->now = tr_now(r);
	j->fn = fn;
	j->arg = arg;
	snprintf(j->domain, sizeof(j->domain), "%s", dom->name);
	if (!is_daily) {
		/* sent by hand during the day: an id of its own */
		snprintf(extra, sizeof(extra), "T%02u%02u%02u",
			 (unsigned)(j->now % TR_DAY_S / 3600),
			 (unsigned)(j->now % 3600 / 60),
			 (unsigned)(j->now % 60));
	}
	tr_report_id(cfg, r->node_id, j->domain, day, extra, j->report_id);
	if (cfg->delivery.tls_report.from)
		snprintf(j->from, sizeof(j->from), "%s",
			 cfg->delivery.tls_report.from);
	else
		snprintf(j->from, sizeof(j->from), "postmaster@%s", helo);
	for (size_t i = 0; r->node_id[i] && i + 1 < sizeof(j->unique); i++) {
		char c = r->node_id[i];

		j->unique[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				       (c >= '0' && c <= '9') || c == '-' ?
				       c :
				       '_';
	}
	buf_init(&j->gz, TR_GZ_MAX);
	json = tr_report_json(cfg, r->node_id, j->domain, dom, day,
			      j->report_id);
	rc = json ? tlsrpt_gzip(json, strlen(json), &j->gz) : -ENOMEM;
	free(json);
	if (rc != 0) {
		log_warn("tlsrpt domain=%s event=report_failed error=\"%s\"",
			 j->domain, strerror(-rc));
		tr_job_free(j);
		return rc;
	}
	j->next = r->jobs;
	r->jobs = j;
	snprintf(name, sizeof(name), "_smtp._tls.%s", j->domain);
	j->dns_id = dns_query(r->d.dns, name, DNS_TYPE_TXT, tr_on_txt, j);
	return 0;
}

int
tlsrpt_send_today(struct tlsrpt *r, const char *domain, tlsrpt_sent_fn fn,
		  void *arg)
{
	char name[TLSRPT_DOMAIN_MAX + 1];
	const struct tr_domain *dom;
	uint32_t day;

	if (tlsrpt_domain_norm(domain, name) != 0)
		return -EINVAL;
	if (r == NULL || r->is_closing || r->d.dns == NULL ||
	    r->d.commit == NULL || (r->d.http == NULL && r->d.sched == NULL))
		return -ENOTSUP;
	day = (uint32_t)(tr_now(r) / TR_DAY_S);
	tr_roll(r, day);
	dom = tr_day_find(&r->today, name);
	if (!tr_has_counts(dom))
		return -ENOENT;
	return tr_job_start(r, dom, day, false, fn, arg);
}

void
tr_jobs_cancel(struct tlsrpt *r)
{
	while (r->jobs) {
		struct tr_job *j = r->jobs;

		r->jobs = j->next;
		if (j->dns_id)
			dns_cancel(r->d.dns, j->dns_id);
		for (size_t i = 0; i < TLSRPT_RUA_MAX; i++)
			policy_http_cancel(j->calls[i]);
		if (j->fn)
			j->fn(j->arg, -ECANCELED, "the node is stopping");
		tr_job_free(j);
	}
}

/* ---- the daily run ---- */

static uint64_t
tr_random(uint64_t below)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint64_t)clock();
	return below ? v % below : 0;
}

void
tr_run_arm(struct tlsrpt *r, bool soon)
{
	uint64_t now = tr_now(r), today = now / TR_DAY_S, at, delay;
	struct timeval tv;

	if (r->run_ev == NULL || r->is_closing || r->run_day != 0)
		return;
	at = (r->run_done_day == today ? today + 1 : today) * TR_DAY_S +
	     tr_random(TLSRPT_JITTER_S);
	if (at > now)
		delay = at - now;
	else
		delay = soon ? TR_START_DELAY_S + tr_random(TR_START_DELAY_S) :
			       1;
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = 0;
	evtimer_add(r->run_ev, &tv);
	log_debug(LOG_SUB_MAIN, "tlsrpt event=run_armed in_s=%llu",
		  (unsigned long long)delay);
}

void
tr_run_stop(struct tlsrpt *r)
{
	if (r->run_day != 0)
		log_info("tlsrpt event=daily_run_stopped day=%u", r->run_day);
	r->run_day = 0;
	r->run_next = NULL;
	r->run_active = 0;
	r->run_gen++;
}

static void
tr_run_next(struct tlsrpt *r)
{
	while (!r->is_closing && r->run_day != 0 &&
	       r->run_active < TR_SEND_PARALLEL && r->run_next != NULL) {
		struct tr_domain *dom = r->run_next;

		r->run_next = dom->next;
		if (dom->is_sent || dom->tries >= TR_TRIES_MAX ||
		    !tr_has_counts(dom))
			continue;
		dom->tries++;
		if (tr_job_start(r, dom, r->run_day, true, NULL, NULL) != 0) {
			r->run_failed++;
			continue;
		}
		r->run_active++;
	}
	if (r->is_closing || r->run_day == 0 || r->run_next != NULL ||
	    r->run_active != 0)
		return;
	log_info("tlsrpt event=daily_run_done day=%u sent=%llu failed=%llu "
		 "skipped=%llu retry=%s",
		 r->run_day, (unsigned long long)r->run_sent,
		 (unsigned long long)r->run_failed,
		 (unsigned long long)r->run_skipped,
		 r->run_retry ? "yes" : "no");
	r->run_day = 0;
	if (r->run_retry) {
		struct timeval tv = { TR_RETRY_S, 0 };

		evtimer_add(r->run_ev, &tv);
		return;
	}
	r->run_done_day = (uint32_t)(tr_now(r) / TR_DAY_S);
	tr_run_arm(r, false);
}

void
tr_run_timer(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt *r = arg;

	(void)fd;
	(void)what;
	tr_roll(r, (uint32_t)(tr_now(r) / TR_DAY_S));
	if (r->run_day != 0 || r->is_closing)
		return;
	tr_run_start(r);
}

void
tr_run_start(struct tlsrpt *r)
{
	tr_run_stop(r);
	if (r->yday.day == 0 || r->yday.first == NULL) {
		r->run_done_day = (uint32_t)(tr_now(r) / TR_DAY_S);
		tr_run_arm(r, false);
		return;
	}
	r->run_day = r->yday.day;
	r->run_next = r->yday.first;
	r->run_sent = r->run_failed = r->run_skipped = 0;
	r->run_retry = false;
	log_info("tlsrpt event=daily_run day=%u domains=%zu", r->run_day,
		 r->yday.n);
	tr_run_next(r);
}
