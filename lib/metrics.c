/* Prometheus text exposition format writer (see metrics.h). The rules it
 * keeps: every family opens with HELP and TYPE; a label value escapes
 * backslash, double quote and newline; HELP text escapes backslash and
 * newline; histogram buckets come in ascending le order, cumulative, with
 * +Inf equal to _count. */
#include "lib/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"

void
metrics_escape(struct buf *b, const char *value)
{
	const char *run = value;

	for (const char *p = value; *p; p++) {
		const char *rep = NULL;

		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '"')
			rep = "\\\"";
		else if (*p == '\n')
			rep = "\\n";
		if (rep == NULL)
			continue;
		buf_append(b, run, (size_t)(p - run));
		buf_append(b, rep, 2);
		run = p + 1;
	}
	buf_append(b, run, strlen(run));
}

/* HELP text: like a label value, but a quote stays as it is. */
static void
metrics_escape_help(struct buf *b, const char *help)
{
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			buf_append(b, "\\\\", 2);
		else if (*p == '\n')
			buf_append(b, "\\n", 2);
		else
			buf_append(b, p, 1);
	}
}

void
metrics_family(struct buf *b, const char *name, const char *type,
	       const char *help)
{
	buf_printf(b, "# HELP %s ", name);
	metrics_escape_help(b, help);
	buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void
metrics_labels(struct buf *b, const struct metrics_label *labels,
	       size_t n_labels, const char *le)
{
	if (n_labels == 0 && le == NULL)
		return;
	buf_append(b, "{", 1);
	for (size_t i = 0; i < n_labels; i++) {
		buf_printf(b, "%s%s=\"", i ? "," : "", labels[i].name);
		metrics_escape(b, labels[i].value ? labels[i].value : "");
		buf_append(b, "\"", 1);
	}
	if (le)
		buf_printf(b, "%sle=\"%s\"", n_labels ? "," : "", le);
	buf_append(b, "}", 1);
}

void
metrics_sample(struct buf *b, const char *name,
	       const struct metrics_label *labels, size_t n_labels,
	       uint64_t value)
{
	buf_printf(b, "%s", name);
	metrics_labels(b, labels, n_labels, NULL);
	buf_printf(b, " %llu\n", (unsigned long long)value);
}

/* A float as the format spells it: fixed point to the microsecond (no
 * exponent, which simple scrapers and our tests' line checks refuse),
 * trailing zeros cut; the three specials have fixed names. */
static void
metrics_format_double(char *out, size_t outlen, double v)
{
	size_t n;

	if (isnan(v)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	snprintf(out, outlen, "%.6f", v);
	n = strlen(out);
	while (n > 0 && out[n - 1] == '0')
		out[--n] = '\0';
	if (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
	if (strcmp(out, "-0") == 0)
		snprintf(out, outlen, "0");
}

void
metrics_sample_double(struct buf *b, const char *name,
		      const struct metrics_label *labels, size_t n_labels,
		      double value)
{
	char num[352]; /* %.6f of DBL_MAX: 309 digits and 7 */

	metrics_format_double(num, sizeof(num), value);
	buf_printf(b, "%s", name);
	metrics_labels(b, labels, n_labels, NULL);
	buf_printf(b, " %s\n", num);
}

void
metrics_counter(struct buf *b, const char *name, const char *help,
		uint64_t value)
{
	metrics_family(b, name, "counter", help);
	metrics_sample(b, name, NULL, 0, value);
}

void
metrics_gauge(struct buf *b, const char *name, const char *help, uint64_t value)
{
	metrics_family(b, name, "gauge", help);
	metrics_sample(b, name, NULL, 0, value);
}

void
metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t n_bounds)
{
	SHOAL_ASSERT(n_bounds <= METRICS_HIST_MAX);
	for (size_t i = 1; i < n_bounds; i++)
		SHOAL_ASSERT(bounds[i - 1] < bounds[i]);
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n_bounds = n_bounds;
}

void
metrics_hist_observe(struct metrics_hist *h, double v)
{
	size_t i = 0;

	/* a bucket counts v <= its bound (le); NaN lands in +Inf */
	while (i < h->n_bounds && !(v <= h->bounds[i]))
		i++;
	h->counts[i]++;
	h->count++;
	if (!isnan(v))
		h->sum += v;
}

void
metrics_hist_write(struct buf *b, const char *name,
		   const struct metrics_label *labels, size_t n_labels,
		   const struct metrics_hist *h)
{
	char sub[160], le[352];
	uint64_t cum = 0;

	snprintf(sub, sizeof(sub), "%s_bucket", name);
	for (size_t i = 0; i <= h->n_bounds; i++) {
		cum += h->counts[i];
		metrics_format_double(le, sizeof(le),
				      i < h->n_bounds ? h->bounds[i] :
							INFINITY);
		buf_printf(b, "%s", sub);
		metrics_labels(b, labels, n_labels, le);
		buf_printf(b, " %llu\n", (unsigned long long)cum);
	}
	snprintf(sub, sizeof(sub), "%s_sum", name);
	metrics_sample_double(b, sub, labels, n_labels, h->sum);
	snprintf(sub, sizeof(sub), "%s_count", name);
	metrics_sample(b, sub, labels, n_labels, h->count);
}
