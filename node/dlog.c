/* Delivery log writer: JSON lines through lib/json. */
#include "node/dlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "lib/json.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

struct dlog {
	char *path;
	FILE *f;
};

struct dlog *
dlog_open(const char *data_dir)
{
	struct dlog *d = xcalloc(1, sizeof(*d));
	size_t n = strlen(data_dir) + sizeof("/delivery.log");

	d->path = xmalloc(n);
	snprintf(d->path, n, "%s/delivery.log", data_dir);
	d->f = fopen(d->path, "a");
	if (d->f == NULL) {
		log_error_errno("dlog path=%s event=open_failed", d->path);
		free(d->path);
		free(d);
		return NULL;
	}
	return d;
}

void
dlog_close(struct dlog *d)
{
	if (d == NULL)
		return;
	fclose(d->f);
	free(d->path);
	free(d);
}

void
dlog_reopen(struct dlog *d)
{
	FILE *f;

	if (d == NULL)
		return;
	f = fopen(d->path, "a");
	if (f == NULL) {
		log_error_errno("dlog path=%s event=reopen_failed", d->path);
		return;
	}
	fclose(d->f);
	d->f = f;
}

static const char *
dlog_result_name(enum outcome o)
{
	switch (o) {
	case OUTCOME_DELIVERED:
		return "delivered";
	case OUTCOME_BOUNCED:
		return "bounced";
	default:
		return "deferred";
	}
}

void
dlog_attempt(struct dlog *d, const struct job_msg *m, const struct job *j,
	     const Shoal__Recipient *r, const struct job_result *res)
{
	struct json js;
	struct timeval tv;
	struct tm tm;
	char when[64];
	uint64_t arrival = m->sm->envelope->arrival_time;

	if (d == NULL)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
	json_init(&js, d->f);
	json_object_begin(&js);
	json_kv_str(&js, "time", when);
	json_kv_str(&js, "qid", m->qid);
	json_kv_str(&js, "rcpt", r->address);
	json_kv_str(&js, "domain", j->domain);
	json_kv_str(&js, "mx", res->mx);
	json_kv_str(&js, "ip", res->ip);
	json_kv_str(&js, "pool", m->sm->envelope->pool);
	json_kv_str(&js, "source", res->source);
	json_kv_u64(&js, "attempt", (uint64_t)r->attempts + 1);
	json_kv_str(&js, "result", dlog_result_name(res->outcome));
	json_kv_u64(&js, "code", (uint64_t)(res->reply.code > 0 ? res->reply.code : 0));
	json_kv_str(&js, "enhanced", res->status);
	json_kv_str(&js, "text", res->reply.text);
	json_kv_str(&js, "category", classify_name(res->category));
	json_kv_u64(&js, "delay", (uint64_t)tv.tv_sec > arrival ?
					  (uint64_t)tv.tv_sec - arrival : 0);
	json_kv_str(&js, "tls", res->tls);
	json_kv_u64(&js, "size", m->body_len);
	json_object_end(&js);
	if (json_end(&js) != 0)
		log_warn("dlog path=%s event=write_failed", d->path);
}
