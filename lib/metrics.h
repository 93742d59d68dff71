/* The Prometheus text exposition format (version 0.0.4), written into a
 * struct buf: family headers (HELP, TYPE), samples with escaped label
 * values, and fixed-bucket histograms. Knows nothing of mail or of HTTP
 * (lib/metrics_http.h serves what this writes). Label values may come from
 * outside (domains, node ids): they are escaped here, never trusted. */
#ifndef SHOAL_METRICS_H
#define SHOAL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define METRICS_HIST_MAX 24 /* finite bucket bounds per histogram */

struct metrics_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, from our code */
	const char *value; /* anything; escaped on output */
};

/* A histogram with fixed upper bounds; +Inf is implied. Plain integers:
 * its owner updates it from one thread. */
struct metrics_hist {
	const double *bounds; /* n_bounds, ascending, borrowed (static) */
	size_t n_bounds;
	uint64_t counts[METRICS_HIST_MAX + 1]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;
};

/* "# HELP name help\n# TYPE name type\n"; type is "counter", "gauge" or
 * "histogram"; help is escaped (backslash, newline). */
void metrics_family(struct buf *b, const char *name, const char *type,
		    const char *help);

/* One sample line: name{labels} value. n_labels may be 0 (no braces). */
void metrics_sample(struct buf *b, const char *name,
		    const struct metrics_label *labels, size_t n_labels,
		    uint64_t value);

/* The same with a floating-point value (NaN, +Inf and -Inf spelled as
 * Prometheus spells them). */
void metrics_sample_double(struct buf *b, const char *name,
			   const struct metrics_label *labels, size_t n_labels,
			   double value);

/* A whole family of one unlabelled sample. */
void metrics_counter(struct buf *b, const char *name, const char *help,
		     uint64_t value);
void metrics_gauge(struct buf *b, const char *name, const char *help,
		   uint64_t value);

/* Append value to b with backslash, double quote and newline escaped as
 * the format wants inside a label value. */
void metrics_escape(struct buf *b, const char *value);

/* Start an empty histogram over bounds (n_bounds <= METRICS_HIST_MAX,
 * ascending; SHOAL_ASSERT otherwise). bounds must outlive h. */
void metrics_hist_init(struct metrics_hist *h, const double *bounds,
		       size_t n_bounds);

/* Count one observation: O(buckets), no allocation. */
void metrics_hist_observe(struct metrics_hist *h, double v);

/* The samples of one histogram (the family header is the caller's, so
 * several label sets can share it): name_bucket{labels,le="..."} for
 * every bound and +Inf, cumulative and in order, then name_sum and
 * name_count. */
void metrics_hist_write(struct buf *b, const char *name,
			const struct metrics_label *labels, size_t n_labels,
			const struct metrics_hist *h);

#endif
