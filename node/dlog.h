/* The delivery log: one JSON line per delivery attempt per recipient, in
 * data_dir/delivery.log (time, qid, recipient, MX host, IP, IP pool and
 * source address, attempt,
 * result, SMTP code, enhanced code, text, category, delay, TLS). Appended
 * with O_APPEND; not fsync'd (the queue is the record, this is the
 * account). Reopened on dlog_reopen() (SIGHUP, log rotation). */
#ifndef SHOAL_NODE_DLOG_H
#define SHOAL_NODE_DLOG_H

#include "node/job.h"

struct dlog;

/* Open data_dir/delivery.log for appending. Returns NULL (logged) on
 * failure; a NULL dlog is accepted by every function and logs nothing. */
struct dlog *dlog_open(const char *data_dir);

/* dlog_close(NULL) does nothing. */
void dlog_close(struct dlog *d);

/* Close and open again (after the file was moved away). */
void dlog_reopen(struct dlog *d);

/* One line for one recipient's attempt; r is the recipient as it was
 * before this attempt (attempts not yet counted). */
void dlog_attempt(struct dlog *d, const struct job_msg *m, const struct job *j,
		  const Shoal__Recipient *r, const struct job_result *res);

#endif
