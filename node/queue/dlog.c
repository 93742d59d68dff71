/* Delivery log writer: JSON lines through lib/json. */
#include "node/queue/dlog.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "lib/json.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

/* The FILE's buffer, and the fill above which a line is not started
 * without writing out the lines before: stdio would otherwise cut a line
 * in two writes when the buffer fills, and someone tailing the file could
 * read half a line. A line is far shorter (addresses, one reply line). */
#define DLOG_BUF_SIZE (64u << 10)
#define DLOG_BUF_HIGH (32u << 10)

struct dlog {
	char *path;
	FILE *f;
	struct event *flush_ev; /* end of this pass: write the lines */
};

static void
dlog_on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dlog_flush(arg);
}

/* The log file, appended to with a big buffer; only the loop thread
 * writes it, so stdio need not lock it for each character. */
static FILE *
dlog_fopen(const char *path)
{
	FILE *f = fopen(path, "a");

	if (f != NULL) {
		setvbuf(f, NULL, _IOFBF, DLOG_BUF_SIZE);
		__fsetlocking(f, FSETLOCKING_BYCALLER);
	}
	return f;
}

struct dlog *
dlog_open(struct event_base *base, const char *data_dir)
{
	struct dlog *d = xcalloc(1, sizeof(*d));
	size_t n = strlen(data_dir) + sizeof("/delivery.log");

	d->path = xmalloc(n);
	snprintf(d->path, n, "%s/delivery.log", data_dir);
	d->f = dlog_fopen(d->path);
	d->flush_ev = event_new(base, -1, 0, dlog_on_flush, d);
	if (d->f == NULL || d->flush_ev == NULL) {
		log_error_errno("dlog path=%s event=open_failed", d->path);
		if (d->f)
			fclose(d->f);
		if (d->flush_ev)
			event_free(d->flush_ev);
		free(d->path);
		free(d);
		return NULL;
	}
	return d;
}

void
dlog_flush(struct dlog *d)
{
	if (d == NULL)
		return;
	if (fflush(d->f) != 0 || ferror(d->f)) {
		log_warn("dlog path=%s event=write_failed", d->path);
		clearerr(d->f);
	}
}

void
dlog_close(struct dlog *d)
{
	if (d == NULL)
		return;
	event_free(d->flush_ev);
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
	f = dlog_fopen(d->path);
	if (f == NULL) {
		log_error_errno("dlog path=%s event=reopen_failed", d->path);
		return;
	}
	dlog_flush(d); /* the last lines go to the old file */
	fclose(d->f);
	d->f = f;
}

/* "2026-12-07T10:00:00.123Z" of a unix time in ms. */
static void
dlog_time(char *out, size_t outlen, uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Start a line stamped now; *tv is now. */
static void
dlog_begin(struct dlog *d, struct json *js, struct timeval *tv)
{
	char when[64];

	gettimeofday(tv, NULL);
	dlog_time(when, sizeof(when),
		  (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000);
	if (__fpending(d->f) > DLOG_BUF_HIGH)
		dlog_flush(d);
	json_init(js, d->f);
	json_object_begin(js);
	json_kv_str(js, "time", when);
}

static void
dlog_end(struct dlog *d, struct json *js)
{
	json_object_end(js);
	if (json_end_line(js) != 0)
		log_warn("dlog path=%s event=write_failed", d->path);
	event_active(d->flush_ev, 0, 0);
}

void
dlog_shaping(struct dlog *d, const char *event, const struct adapt_action *x)
{
	struct json js;
	struct timeval tv;
	char when[64];

	if (d == NULL)
		return;
	dlog_begin(d, &js, &tv);
	json_kv_str(&js, "event", "shaping");
	json_kv_str(&js, "shaping", event);
	json_kv_str(&js, "key", x->key);
	json_kv_str(&js, "action", config_shaping_kind_name(x->kind));
	json_kv_str(&js, "source", x->source);
	if (x->kind == CFG_SHAPING_RATE)
		json_kv_double(&js, "rate", x->rate);
	if (x->kind == CFG_SHAPING_CONNECTIONS)
		json_kv_u64(&js, "connections", x->connections);
	json_kv_str(&js, "rule", x->rule);
	json_kv_str(&js, "origin", x->origin);
	dlog_time(when, sizeof(when), x->expires_ms);
	json_kv_str(&js, "expires", when);
	json_kv_str(&js, "trigger", x->trigger);
	dlog_end(d, &js);
}

void
dlog_attempt(struct dlog *d, const struct job_msg *m, const struct job *j,
	     const Shoal__Recipient *r, const struct job_result *res)
{
	struct json js;
	struct timeval tv;
	uint64_t arrival = m->sm->envelope->arrival_time;

	if (d == NULL)
		return;
	dlog_begin(d, &js, &tv);
	json_kv_str(&js, "qid", m->qid);
	json_kv_str(&js, "rcpt", r->address);
	json_kv_str(&js, "domain", j->domain);
	json_kv_str(&js, "mx", res->mx);
	json_kv_str(&js, "ip", res->ip);
	json_kv_str(&js, "pool", m->sm->envelope->pool);
	json_kv_str(&js, "source", res->source);
	json_kv_u64(&js, "attempt", (uint64_t)r->attempts + 1);
	json_kv_str(&js, "result", outcome_name(res->outcome));
	json_kv_u64(&js, "code", (uint64_t)(res->reply.code > 0 ? res->reply.code : 0));
	json_kv_str(&js, "enhanced", res->status);
	json_kv_str(&js, "text", res->reply.text);
	json_kv_str(&js, "category", classify_name(res->category));
	json_kv_u64(&js, "delay", (uint64_t)tv.tv_sec > arrival ?
					  (uint64_t)tv.tv_sec - arrival : 0);
	json_kv_str(&js, "tls", res->tls);
	json_kv_str(&js, "tls_policy", j->tls_policy);
	json_kv_u64(&js, "size", m->body_len);
	if (res->retry_at)
		json_kv_bool(&js, "held", true); /* not an attempt */
	dlog_end(d, &js);
}
