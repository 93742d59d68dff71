/* A delivery job: some recipients of one queued message that share a
 * domain, handed from the scheduler to delivery and back with one result
 * per recipient. The message snapshot and body are shared by the message's
 * jobs (refcounted) and live in RAM only while the message is in flight. */
#ifndef SHOAL_NODE_JOB_H
#define SHOAL_NODE_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "lib/qid.h"
#include "node/delivery/classify.h"
#include "node/delivery/outcome.h"
#include "node/delivery/smtpc.h"
#include "proto/queue.pb-c.h"

struct job_msg {
	int refs;
	char qid[QID_MAX];
	Shoal__StoredMessage *sm;  /* snapshot at pick time (owned) */
	char *body;                /* owned */
	size_t body_len;
	unsigned jobs_open;        /* jobs not yet applied */
};

struct job_result {
	enum outcome outcome;
	enum classify_cat category;
	struct smtpc_reply reply;
	char status[16];           /* DSN status, "2.0.0", "5.1.1", ... */
	char mx[256];              /* host tried last, "" if none */
	char ip[64];
	char source[64];           /* our source address (IP pools), or "" */
	char tls[96];              /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
	int relayed_no_dsn;        /* delivered to a server without DSN */
	uint64_t retry_at;         /* outcome_verdict's: held back by
				      adaptive shaping, not an attempt */
};

#define JOB_TENANT_MAX 65         /* a tenant's name, 64 + NUL */

struct dq_tenant;

struct job {
	struct job_msg *msg;
	char domain[256];          /* lower case */
	size_t n;                  /* recipients in this job */
	uint32_t *rcpt;            /* indexes into msg->sm->envelope->rcpts */
	struct job_result *res;    /* n results, filled by delivery */
	uint64_t started;          /* unix seconds */
	uint64_t started_us;       /* clock_mono_us(), for metrics */
	struct job *next;          /* delivery's queue link */
	struct dq_tenant *dq;      /* its tenant's queue (dqueue.c) */
	char tls_policy[16];       /* the TLS policy of its last attempt
				    * (dest_tls.h names), "" = none asked */
};

/* Drop a reference to a message (frees it with the last one). */
void job_msg_unref(struct job_msg *m);

/* Free a job and the message reference it holds, without results (at
 * shutdown: the message is simply due again at the next start). */
void job_free(struct job *j);

#endif
