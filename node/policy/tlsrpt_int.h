/* TLS reporting's insides, shared by tlsrpt.c (counting, days, reports),
 * tlsrpt_store.c (records) and tlsrpt_send.c (the daily run, sending).
 * Nothing outside node/policy/ and the unit tests includes this. */
#ifndef SHOAL_NODE_POLICY_TLSRPT_INT_H
#define SHOAL_NODE_POLICY_TLSRPT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/util.h>

#include "lib/buf.h"
#include "node/policy/tlsrpt.h"
#include "node/tls/tlsrpt_json.h"

struct event;

#define TR_TYPES 3                /* sts, tlsa, no-policy-found */
#define TR_RESULTS 13             /* success, 11 result-types, other */
#define TR_TLSA_MAX 16            /* TLSA records kept as policy-strings */
#define TR_STRING_MAX 600         /* bytes of one policy-string kept */
#define TR_BLOB_MAX 12288         /* bytes of a policy's strings (or mx) */
#define TR_FIELD_MAX 256          /* bytes of a failure field kept (mx) */
#define TR_SEND_PARALLEL 4        /* reports of the daily run at once */
#define TR_TRIES_MAX 3            /* daily run attempts per domain */
#define TR_RETRY_S 3600           /* a failed domain is tried again after */
#define TR_FLUSH_BATCH 1000       /* records per flush commit */
#define TR_WARN_EVERY_MS 60000    /* rate of a repeatable warning */
#define TR_REPORT_ID_MAX 512
#define TR_NAME_MAX (16 + 8 + 1 + TLSRPT_DOMAIN_MAX) /* a record's name */
#define TR_DAY_S 86400u

/* One policy of a domain's day. strs and mxs hold n_strs / n_mxs
 * NUL-terminated strings back to back (policy-string, mx-host); a policy
 * is known by its type and both blobs. */
struct tr_policy {
	int type;                  /* index in tr_type_names */
	char *strs, *mxs;          /* malloc'd (NULL when empty) */
	size_t strs_len, mxs_len, n_strs, n_mxs;
	uint64_t success, failure;
	uint64_t fails_dropped;    /* failed sessions past TLSRPT_FAILS_MAX
				    * rows (in failure, not in a row) */
	size_t n_fail, cap_fail;
	struct tlsrpt_failure *fail;
};

struct tr_domain {
	struct tr_domain *hnext;   /* hash chain */
	struct tr_domain *next;    /* the day's domains, in order counted */
	struct tr_domain *dnext;   /* the dirty list (today only) */
	bool is_dirty;
	bool is_sent;              /* the daily run sent its report */
	uint8_t tries;             /* daily run attempts */
	size_t n_pol;              /* <= TLSRPT_POLICIES_MAX */
	struct tr_policy *pol;     /* malloc'd, n_pol of them */
	uint64_t pols_dropped;     /* sessions past TLSRPT_POLICIES_MAX */
	char name[];               /* <= TLSRPT_DOMAIN_MAX */
};

struct tr_day {
	uint32_t day;              /* days since 1970-01-01 UTC; 0: none */
	struct tr_domain **tab;
	size_t n_tab, n;
	struct tr_domain *first, *last;
	uint64_t dropped;          /* sessions of domains past the bound */
};

struct tr_job;

struct tlsrpt {
	struct tlsrpt_deps d;
	char node_id[64];
	uint64_t fake_now;         /* tests; 0: time() */
	struct tr_day today, yday; /* yday.day == today.day - 1 or 0 */
	struct tr_domain *dirty;   /* today's, not yet in a flush */
	struct event *flush_ev, *run_ev;
	size_t flushes;            /* flush items in the commit */
	bool is_closing;
	uint64_t sessions[TR_TYPES][TR_RESULTS];
	uint64_t warn_ms, warn_folded;
	/* the daily run over yday: the next domain to look at */
	uint32_t run_day;          /* 0: no run */
	uint32_t run_done_day;     /* the day whose run went through */
	uint64_t run_gen;          /* a new run (or a stop) changes it */
	struct tr_domain *run_next;
	size_t run_active;
	uint64_t run_sent, run_failed, run_skipped;
	bool run_retry;            /* some domain failed and may be tried
				    * again */
	struct tr_job *jobs;       /* every send in flight */
};

extern const char *const tr_type_names[TR_TYPES];
extern const char *const tr_result_names[TR_RESULTS];

/* ---- tlsrpt.c ---- */
uint64_t tr_now(const struct tlsrpt *r);
/* Day changes: flush today, make it yday, drop the older day (and the
 * daily run over it). */
void tr_roll(struct tlsrpt *r, uint32_t day);
struct tr_domain *tr_day_find(const struct tr_day *dy, const char *name);
/* Find or add (NULL past TLSRPT_DOMAINS_MAX). */
struct tr_domain *tr_day_add(struct tr_day *dy, const char *name);
void tr_day_clear(struct tr_day *dy);
void tr_policy_clear(struct tr_policy *p);
void tr_mark_dirty(struct tlsrpt *r, struct tr_domain *dom);
/* "2026-12-07" / "20261207" of a day */
void tr_day_date(uint32_t day, char out[11]);
void tr_day_compact(uint32_t day, char out[9]);
/* A report of dom (NULL: none counted) for day, malloc'd JSON, NULL when
 * out of memory. */
char *tr_report_json(const struct config *cfg, const char *node_id,
		     const char *domain, const struct tr_domain *dom,
		     uint32_t day, const char *report_id);
void tr_report_id(const struct config *cfg, const char *node_id,
		  const char *domain, uint32_t day, const char *extra,
		  char out[TR_REPORT_ID_MAX]);
bool tr_has_counts(const struct tr_domain *dom);
bool tr_warn_ok(struct tlsrpt *r, uint64_t *folded);

/* ---- tlsrpt_store.c ---- */
/* The record of dom: "tlsrpt 1" lines (tlsrpt_store.c says which), at most
 * STORE_LOCAL_MAX bytes (failure rows past that are left out). Appends to
 * out (bound >= STORE_LOCAL_MAX). */
void tr_encode(const struct tr_domain *dom, struct buf *out);
/* Parse a record into dom's policies (dom cleared first, name kept).
 * Returns 0 or -EINVAL (dom cleared). */
int tr_decode(const char *p, size_t len, struct tr_domain *dom);
void tr_name(const char *prefix, uint32_t day, const char *domain,
	     char out[TR_NAME_MAX + 1]);
/* Load today's and yesterday's records and markers. */
int tr_load(struct tlsrpt *r);
/* Queue a commit of the dirty domains, at most max of them. */
void tr_flush(struct tlsrpt *r, size_t max);
/* Queue the deletion of records older than TLSRPT_KEEP_DAYS. */
void tr_cleanup(struct tlsrpt *r);
/* Queue: the day's report of domain went out (marker in, counts out). */
void tr_mark_sent(struct tlsrpt *r, uint32_t day, const char *domain);

/* ---- tlsrpt_send.c ---- */
/* Arm the daily run for the current day: at 00:00 UTC + jitter, or soon
 * when that is past (after a restart). */
void tr_run_arm(struct tlsrpt *r, bool soon);
void tr_run_stop(struct tlsrpt *r);
void tr_run_timer(evutil_socket_t fd, short what, void *arg);
/* Go through yday now (tests; the timer's work). */
void tr_run_start(struct tlsrpt *r);
/* Cancel every job (callbacks get -ECANCELED). */
void tr_jobs_cancel(struct tlsrpt *r);

#endif
