/* The delivery log: one JSON line per delivery attempt per recipient, in
 * data_dir/delivery.log (time, qid, recipient, MX host, IP, IP pool and
 * source address, attempt,
 * result, SMTP code, enhanced code, text, category, delay, TLS). Appended
 * with O_APPEND; not fsync'd (the queue is the record, this is the
 * account). The lines of one pass of the event loop go out in one write
 * at its end (a line no longer than the pass, a write per pass instead of
 * per recipient). Reopened on dlog_reopen() (SIGHUP, log rotation). */
#ifndef SHOAL_NODE_DLOG_H
#define SHOAL_NODE_DLOG_H

#include "node/delivery/adapt.h"
#include "node/delivery/job.h"

struct dlog;
struct event_base;

/* Open data_dir/delivery.log for appending; lines are flushed from base's
 * loop. Returns NULL (logged) on failure; a NULL dlog is accepted by every
 * function and logs nothing. */
struct dlog *dlog_open(struct event_base *base, const char *data_dir);

/* Write buffered lines now. dlog_flush(NULL) does nothing. */
void dlog_flush(struct dlog *d);

/* Flushes first. dlog_close(NULL) does nothing. */
void dlog_close(struct dlog *d);

/* Close and open again (after the file was moved away). */
void dlog_reopen(struct dlog *d);

/* One line for one recipient's attempt; r is the recipient as it was
 * before this attempt (attempts not yet counted). */
void dlog_attempt(struct dlog *d, const struct job_msg *m, const struct job *j,
		  const Shoal__Recipient *r, const struct job_result *res);

/* One line for an adaptive shaping action (node/delivery/adapt.h): event
 * "action" (a rule fired here), "learned" (from another node), "manual",
 * "resumed" or "expired". */
void dlog_shaping(struct dlog *d, const char *event,
		  const struct adapt_action *x);

#endif
