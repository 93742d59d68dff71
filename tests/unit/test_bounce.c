/* Check suite for node/queue/bounce.c: the RFC 3464 delivery status notification
 * as a whole message. Each DSN built here is taken apart again: the top
 * header (From MAILER-DAEMON, To the original sender, Auto-Submitted, a
 * multipart/report of report-type delivery-status, RFC 6522), its three
 * parts (text/plain notice, message/delivery-status, then the returned
 * message as text/rfc822-headers for RET=HDRS and by default, or
 * message/rfc822 for RET=FULL), the per-message and per-recipient fields
 * (RFC 3464 2.2, 2.3), and the bounds: every line CRLF-terminated and at
 * most 998 octets (RFC 5322 2.1.1), remote text cut and cleaned so that it
 * cannot add header lines, and -EMSGSIZE when the output buffer is short.
 * Then node/queue/dsn.c, which queues a DSN as a message of its own: its
 * qid drawn on a shard of ours, its record stored due now from <>, and
 * nothing stored (the caller's item fails) once the shard is not ours. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "node/queue/bounce.h"
#include "node/queue/dsn.h"
#include "node/store/store.h"
#include "tests/unit/check_helpers.h"

#define MTA "mta.shoal.example"
#define QID "0DJ3N8Q2K4M7ZX1P9Q0A3"
#define SENDER "alice@a.example"
#define ARRIVAL 1699990000ull
#define ARRIVAL_DATE "Tue, 14 Nov 2023 19:26:40 +0000"
#define NOW 1700000000ull
#define NOW_DATE "Tue, 14 Nov 2023 22:13:20 +0000"

static const char orig_msg[] =
	"Received: from client.a.example by " MTA "\r\n"
	"From: Alice <alice@a.example>\r\n"
	"To: bob@b.example\r\n"
	"Subject: lunch\r\n"
	"Message-ID: <lunch-1@a.example>\r\n"
	"\r\n"
	"BODY-LINE-1 see you at noon\r\n"
	"BODY-LINE-2 bring the report\r\n";

static const char orig_headers[] =
	"Received: from client.a.example by " MTA "\r\n"
	"From: Alice <alice@a.example>\r\n"
	"To: bob@b.example\r\n"
	"Subject: lunch\r\n"
	"Message-ID: <lunch-1@a.example>\r\n"
	"\r\n";

static struct bounce_rcpt
rcpt_failed(void)
{
	struct bounce_rcpt r = {
		.address = "bob@b.example",
		.orcpt = "rfc822;bob@b.example",
		.action = BOUNCE_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx1.b.example",
		.code = 550,
		.text = "5.1.1 <bob@b.example>: Recipient address rejected",
	};

	return r;
}

static struct bounce_rcpt
rcpt_delayed(void)
{
	struct bounce_rcpt r = {
		.address = "carol@c.example",
		.orcpt = "",
		.action = BOUNCE_DELAYED,
		.status = "4.4.1",
		.remote_mta = "",
		.code = 0,
		.text = "connection timed out",
	};

	return r;
}

static struct bounce_rcpt
rcpt_relayed(void)
{
	struct bounce_rcpt r = {
		.address = "dave@d.example",
		.orcpt = "",
		.action = BOUNCE_DELIVERED,
		.status = "2.0.0",
		.remote_mta = "mx.d.example",
		.code = 250,
		.text = "2.0.0 Ok: queued as 4F2A",
	};

	return r;
}

static struct bounce_info
info(const struct bounce_rcpt *rcpts, size_t n, int ret)
{
	struct bounce_info bi = {
		.reporting_mta = MTA,
		.qid = QID,
		.sender = SENDER,
		.envid = "",
		.ret = ret,
		.arrival = ARRIVAL,
		.now = NOW,
		.rcpts = rcpts,
		.n_rcpts = n,
		.orig = orig_msg,
		.orig_len = sizeof(orig_msg) - 1,
	};

	return bi;
}

/* ---- taking a DSN apart -------------------------------------------- */

#define DSN_PARTS_MAX 8

struct part {
	char *headers; /* unfolded, each line ending in CRLF */
	const char *body;
	size_t body_len;
};

struct dsn {
	char *text;
	size_t len;
	char *headers; /* top header section, unfolded */
	char boundary[128];
	struct part parts[DSN_PARTS_MAX];
	size_t n_parts;
};

static const char *
memfind(const char *hay, size_t n, const char *needle)
{
	return memmem(hay, n, needle, strlen(needle));
}

/* The header section s[0..n) with folded lines joined by one space. */
static char *
unfold(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && i + 2 < n && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			out[o++] = ' ';
			i += 2;
			continue;
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/* The value of the first "Name: value" line of a header section (or of a
 * group of delivery-status fields), or NULL. Caller frees. */
static char *
field(const char *section, const char *name)
{
	size_t nl = strlen(name);
	const char *p = section;

	while (p && *p) {
		if (strncmp(p, name, nl) == 0 && p[nl] == ':' &&
		    p[nl + 1] == ' ') {
			const char *v = p + nl + 2;
			const char *e = strstr(v, "\r\n");
			size_t vl = e ? (size_t)(e - v) : strlen(v);
			char *out = malloc(vl + 1);

			ck_assert_ptr_nonnull(out);
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
		p = strstr(p, "\r\n");
		if (p)
			p += 2;
	}
	return NULL;
}

static void
assert_field(const char *section, const char *name, const char *want)
{
	char *v = field(section, name);

	ck_assert_msg(v != NULL, "no %s field in:\n%s", name, section);
	ck_assert_str_eq(v, want);
	free(v);
}

static void
assert_no_field(const char *section, const char *name)
{
	char *v = field(section, name);

	ck_assert_msg(v == NULL, "unexpected %s: %s", name, v ? v : "");
}

/* Every line ends in CRLF (no bare CR or LF), none is over 998 octets. */
static void
assert_lines_ok(const char *s, size_t n)
{
	size_t line = 0;

	ck_assert_uint_ge(n, 2);
	ck_assert_msg(s[n - 2] == '\r' && s[n - 1] == '\n',
		      "does not end with CRLF");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			ck_assert_msg(i + 1 < n && s[i + 1] == '\n',
				      "bare CR at %zu", i);
			ck_assert_msg(line <= 998, "line of %zu octets at %zu",
				      line, i);
			line = 0;
			i++;
			continue;
		}
		ck_assert_msg(s[i] != '\n', "bare LF at %zu", i);
		line++;
	}
}

/* Build the DSN of bi into a roomy buffer and split it up. */
static void
dsn_parse(struct dsn *d, const struct bounce_info *bi)
{
	struct buf b;
	const char *hend, *ct, *bp, *be, *body, *end, *p;
	char delim[140], close_delim[140];

	memset(d, 0, sizeof(*d));
	buf_init(&b, 64u << 20);
	ck_assert_int_eq(bounce_build(bi, &b), 0);
	d->text = buf_steal(&b, &d->len);
	ck_assert_ptr_nonnull(d->text);
	assert_lines_ok(d->text, d->len);

	hend = memfind(d->text, d->len, "\r\n\r\n");
	ck_assert_ptr_nonnull(hend);
	d->headers = unfold(d->text, (size_t)(hend - d->text) + 2);

	/* boundary="..." of the top Content-Type */
	ct = strstr(d->headers, "\r\nContent-Type: ");
	ck_assert_ptr_nonnull(ct);
	bp = strstr(ct, "boundary=\"");
	ck_assert_ptr_nonnull(bp);
	bp += strlen("boundary=\"");
	be = strchr(bp, '"');
	ck_assert_ptr_nonnull(be);
	ck_assert_uint_lt((size_t)(be - bp), sizeof(d->boundary));
	memcpy(d->boundary, bp, (size_t)(be - bp));
	d->boundary[be - bp] = '\0';

	/* parts: "\r\n--B\r\n" opens one, "\r\n--B--\r\n" closes them all */
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", d->boundary);
	snprintf(close_delim, sizeof(close_delim), "\r\n--%s--\r\n",
		 d->boundary);
	body = hend + 2; /* keep the CRLF that may start a delimiter */
	end = d->text + d->len;
	p = memfind(body, (size_t)(end - body), delim);
	ck_assert_ptr_nonnull(p);
	while (p) {
		const char *start = p + strlen(delim), *next, *close, *phend;
		struct part *pt;

		next = memfind(start, (size_t)(end - start), delim);
		close = memfind(start, (size_t)(end - start), close_delim);
		ck_assert_ptr_nonnull(close);
		if (next == NULL || next > close)
			next = NULL;
		ck_assert_uint_lt(d->n_parts, DSN_PARTS_MAX);
		pt = &d->parts[d->n_parts++];
		phend = memfind(start, (size_t)((next ? next : close) - start),
				"\r\n\r\n");
		ck_assert_ptr_nonnull(phend);
		pt->headers = unfold(start, (size_t)(phend - start) + 2);
		pt->body = phend + 4;
		pt->body_len = (size_t)((next ? next : close) - pt->body);
		if (next == NULL) {
			/* the close delimiter ends the message: no epilogue */
			ck_assert_ptr_eq(close + strlen(close_delim), end);
		}
		p = next;
	}
}

static void
dsn_free(struct dsn *d)
{
	free(d->text);
	free(d->headers);
	for (size_t i = 0; i < d->n_parts; i++)
		free(d->parts[i].headers);
}

/* The delivery-status body split at its blank lines: group 0 holds the
 * per-message fields, groups 1.. one recipient each. */
#define GROUPS_MAX 16

static size_t
status_groups(const struct part *pt, char *groups[GROUPS_MAX])
{
	size_t n = 0;
	const char *p = pt->body, *end = pt->body + pt->body_len;

	while (p < end) {
		const char *e = memfind(p, (size_t)(end - p), "\r\n\r\n");
		size_t len = e ? (size_t)(e - p) + 2 : (size_t)(end - p);

		ck_assert_uint_lt(n, GROUPS_MAX);
		groups[n] = malloc(len + 1);
		ck_assert_ptr_nonnull(groups[n]);
		memcpy(groups[n], p, len);
		groups[n][len] = '\0';
		n++;
		p = e ? e + 4 : end;
	}
	return n;
}

static void
groups_free(char *groups[], size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(groups[i]);
}

static size_t
count(const char *hay, size_t n, const char *needle)
{
	size_t c = 0, nl = strlen(needle);
	const char *p = hay, *end = hay + n;

	while ((p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
		c++;
		p += nl;
	}
	return c;
}

/* ---- structure ----------------------------------------------------- */

START_TEST(test_bounce_top_header)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *ct, *mid;

	dsn_parse(&d, &bi);
	assert_field(d.headers, "From",
		     "Mail Delivery System <MAILER-DAEMON@" MTA ">");
	assert_field(d.headers, "To", "<" SENDER ">");
	assert_field(d.headers, "Subject",
		     "Undelivered Mail Returned to Sender");
	assert_field(d.headers, "Date", NOW_DATE);
	/* RFC 3834 */
	assert_field(d.headers, "Auto-Submitted", "auto-replied");
	assert_field(d.headers, "MIME-Version", "1.0");
	/* the DSN goes out from <>: nothing names the original sender as
	 * its sender, and replies are not invited */
	assert_no_field(d.headers, "Return-Path");
	assert_no_field(d.headers, "Sender");
	assert_no_field(d.headers, "Reply-To");

	ct = field(d.headers, "Content-Type");
	ck_assert_ptr_nonnull(ct);
	ck_assert_msg(strncmp(ct, "multipart/report;", 17) == 0, "%s", ct);
	ck_assert_ptr_nonnull(strstr(ct, "report-type=delivery-status"));
	free(ct);

	mid = field(d.headers, "Message-ID");
	ck_assert_ptr_nonnull(mid);
	ck_assert_int_eq(mid[0], '<');
	ck_assert_int_eq(mid[strlen(mid) - 1], '>');
	ck_assert_ptr_nonnull(strstr(mid, QID));
	ck_assert_ptr_nonnull(strstr(mid, "@" MTA ">"));
	free(mid);
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_three_parts_in_order)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *ct;

	dsn_parse(&d, &bi);
	ck_assert_uint_eq(d.n_parts, 3);
	ct = field(d.parts[0].headers, "Content-Type");
	ck_assert_str_eq(ct, "text/plain; charset=us-ascii");
	free(ct);
	assert_field(d.parts[1].headers, "Content-Type",
		     "message/delivery-status");
	assert_field(d.parts[2].headers, "Content-Type", "text/rfc822-headers");
	dsn_free(&d);
}
END_TEST

/* RFC 2046 5.1.1: 1 to 70 characters from bchars, not ending in a space,
 * and the delimiter must not occur inside the parts. */
START_TEST(test_bounce_boundary_is_valid_and_unique)
{
	static const char bchars[] =
		"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"'()+_,-./:=? ";
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 1);
	struct dsn d, d2;
	char dash[140];
	size_t bl;

	dsn_parse(&d, &bi);
	bl = strlen(d.boundary);
	ck_assert_uint_ge(bl, 1);
	ck_assert_uint_le(bl, 70);
	ck_assert_uint_eq(strspn(d.boundary, bchars), bl);
	ck_assert_int_ne(d.boundary[bl - 1], ' ');
	/* three delimiters and the close delimiter, nothing else */
	snprintf(dash, sizeof(dash), "--%s", d.boundary);
	ck_assert_uint_eq(count(d.text, d.len, dash), 4);
	ck_assert_ptr_null(memfind(orig_msg, sizeof(orig_msg) - 1, d.boundary));

	/* a second DSN for the same message gets another boundary */
	dsn_parse(&d2, &bi);
	ck_assert_str_ne(d.boundary, d2.boundary);
	dsn_free(&d2);
	dsn_free(&d);
}
END_TEST

/* A long queue id and host name still give a boundary of at most 70. */
START_TEST(test_bounce_boundary_bounded_with_long_names)
{
	char mta[256];
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;

	memset(mta, 'm', sizeof(mta) - 1);
	mta[sizeof(mta) - 1] = '\0';
	for (size_t i = 60; i < sizeof(mta) - 1; i += 60)
		mta[i] = '.';
	bi.reporting_mta = mta;
	bi.qid = "0DJ3N8Q2K4M7ZX1P9Q0A30DJ3N8Q"; /* 28: longer than any qid */
	dsn_parse(&d, &bi);
	ck_assert_uint_le(strlen(d.boundary), 70);
	ck_assert_uint_eq(d.n_parts, 3);
	dsn_free(&d);
}
END_TEST

/* ---- message/delivery-status --------------------------------------- */

START_TEST(test_bounce_per_message_fields)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	size_t n;

	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	ck_assert_uint_eq(n, 2);
	assert_field(g[0], "Reporting-MTA", "dns; " MTA);
	assert_field(g[0], "X-Shoal-Queue-ID", QID);
	assert_field(g[0], "Arrival-Date", ARRIVAL_DATE);
	assert_no_field(g[0], "Original-Envelope-Id"); /* no ENVID given */
	assert_no_field(g[0], "Final-Recipient");
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_failed_recipient_fields)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	size_t n;

	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	ck_assert_uint_eq(n, 2);
	assert_field(g[1], "Final-Recipient", "rfc822; bob@b.example");
	assert_field(g[1], "Original-Recipient", "rfc822;bob@b.example");
	assert_field(g[1], "Action", "failed");
	assert_field(g[1], "Status", "5.1.1");
	assert_field(g[1], "Remote-MTA", "dns; mx1.b.example");
	assert_field(
		g[1], "Diagnostic-Code",
		"smtp; 550 5.1.1 <bob@b.example>: Recipient address rejected");
	assert_field(g[1], "Last-Attempt-Date", NOW_DATE);
	/* RFC 3464 2.3: the required three come first among them */
	ck_assert_ptr_eq(strstr(g[1], "Final-Recipient: "), g[1]);
	ck_assert(strstr(g[1], "Final-Recipient: ") < strstr(g[1], "Action: "));
	ck_assert(strstr(g[1], "Action: ") < strstr(g[1], "Status: "));
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

/* The TLS of the last attempt (docs/tls.md): which policy applied and
 * what the session used, in an X- field of the recipient's group; none
 * when no policy was asked. */
START_TEST(test_bounce_tls_policy_field)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi;
	struct dsn d;
	char *g[GROUPS_MAX];
	size_t n;

	r.tls_policy = "mta-sts";
	r.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
	bi = info(&r, 1, 0);
	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	ck_assert_uint_eq(n, 2);
	assert_field(g[1], "X-Shoal-TLS",
		     "mta-sts; TLSv1.3 TLS_AES_256_GCM_SHA384");
	groups_free(g, n);
	dsn_free(&d);

	r.tls_policy = "dane";
	r.tls = "";
	bi = info(&r, 1, 0);
	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	assert_field(g[1], "X-Shoal-TLS", "dane; no TLS");
	groups_free(g, n);
	dsn_free(&d);

	r.tls_policy = NULL;
	bi = info(&r, 1, 0);
	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	ck_assert_ptr_null(strstr(g[1], "X-Shoal-TLS"));
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

/* One group per recipient, in the order given, each with its own action,
 * status and diagnostic; optional fields only when there is a value. */
START_TEST(test_bounce_recipients_in_order)
{
	struct bounce_rcpt rs[3] = { rcpt_failed(), rcpt_delayed(),
				     rcpt_relayed() };
	struct bounce_info bi = info(rs, 3, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	size_t n;

	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	ck_assert_uint_eq(n, 4);

	assert_field(g[1], "Final-Recipient", "rfc822; bob@b.example");
	assert_field(g[1], "Action", "failed");

	assert_field(g[2], "Final-Recipient", "rfc822; carol@c.example");
	assert_no_field(g[2], "Original-Recipient");
	assert_field(g[2], "Action", "delayed");
	assert_field(g[2], "Status", "4.4.1");
	assert_no_field(g[2], "Remote-MTA");
	/* a local reason is not an SMTP reply */
	assert_field(g[2], "Diagnostic-Code", "x-shoal; connection timed out");
	assert_field(g[2], "Last-Attempt-Date", NOW_DATE);

	assert_field(g[3], "Final-Recipient", "rfc822; dave@d.example");
	assert_field(g[3], "Action", "relayed");
	assert_field(g[3], "Status", "2.0.0");
	assert_field(g[3], "Remote-MTA", "dns; mx.d.example");
	assert_field(g[3], "Diagnostic-Code",
		     "smtp; 250 2.0.0 Ok: queued as 4F2A");
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

/* RFC 3464 2.2.1 and 2.3.1: ENVID and ORCPT come back as given. */
START_TEST(test_bounce_envid_and_orcpt_pass_through)
{
	struct bounce_rcpt rs[2] = { rcpt_failed(), rcpt_failed() };
	struct bounce_info bi = info(rs, 2, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	size_t n;

	bi.envid = "QQ314159-batch7";
	rs[0].orcpt = "rfc822;Bob+list@B.Example";
	rs[1].address = "eve@b.example";
	rs[1].orcpt = "rfc822;eve+2Bfilter@b.example"; /* xtext kept encoded */
	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	ck_assert_uint_eq(n, 3);
	assert_field(g[0], "Original-Envelope-Id", "QQ314159-batch7");
	assert_field(g[1], "Original-Recipient", "rfc822;Bob+list@B.Example");
	assert_field(g[1], "Final-Recipient", "rfc822; bob@b.example");
	assert_field(g[2], "Original-Recipient",
		     "rfc822;eve+2Bfilter@b.example");
	assert_field(g[2], "Final-Recipient", "rfc822; eve@b.example");
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_dates_are_rfc5322)
{
	struct bounce_rcpt r = rcpt_delayed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	size_t n;

	bi.arrival = 0;
	bi.now = 951782400; /* 2000-02-29, a leap day */
	dsn_parse(&d, &bi);
	assert_field(d.headers, "Date", "Tue, 29 Feb 2000 00:00:00 +0000");
	n = status_groups(&d.parts[1], g);
	assert_field(g[0], "Arrival-Date", "Thu, 01 Jan 1970 00:00:00 +0000");
	assert_field(g[1], "Last-Attempt-Date",
		     "Tue, 29 Feb 2000 00:00:00 +0000");
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

/* ---- subject and human-readable part ------------------------------- */

struct mix_case {
	bool failed, delayed, relayed;
	const char *subject;
	const char *says; /* in the notice */
};

static const struct mix_case mix_cases[] = {
	{ true, false, false, "Undelivered Mail Returned to Sender",
	  "could not\r\nbe delivered" },
	{ true, true, true, "Undelivered Mail Returned to Sender",
	  "could not\r\nbe delivered" },
	{ false, true, false, "Delayed Mail (still being retried)",
	  "you need not resend it" },
	{ false, true, true, "Delayed Mail (still being retried)",
	  "you need not resend it" },
	{ false, false, true, "Successful Mail Delivery Report",
	  "successfully relayed" },
};

START_TEST(test_bounce_subject_follows_worst_action)
{
	const struct mix_case *mc = &mix_cases[_i];
	struct bounce_rcpt rs[3];
	size_t n = 0;
	struct bounce_info bi;
	struct dsn d;

	if (mc->failed)
		rs[n++] = rcpt_failed();
	if (mc->delayed)
		rs[n++] = rcpt_delayed();
	if (mc->relayed)
		rs[n++] = rcpt_relayed();
	bi = info(rs, n, 0);
	dsn_parse(&d, &bi);
	assert_field(d.headers, "Subject", mc->subject);
	ck_assert_ptr_nonnull(memfind(d.parts[0].body, d.parts[0].body_len,
				      mc->says));
	ck_assert_ptr_nonnull(memfind(d.parts[0].body, d.parts[0].body_len,
				      "This is the mail system at host " MTA
				      "."));
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_notice_names_each_recipient)
{
	struct bounce_rcpt rs[3] = { rcpt_failed(), rcpt_delayed(),
				     rcpt_relayed() };
	struct bounce_info bi = info(rs, 3, 0);
	struct dsn d;
	const struct part *p;

	rs[2].remote_mta = ""; /* a reply from a host whose name we lost */
	dsn_parse(&d, &bi);
	p = &d.parts[0];
	ck_assert_ptr_nonnull(memfind(p->body, p->body_len,
		"\r\n<bob@b.example>: host mx1.b.example said: 550 5.1.1 "
		"<bob@b.example>: Recipient address rejected\r\n"));
	ck_assert_ptr_nonnull(memfind(p->body, p->body_len,
		"\r\n<carol@c.example>: connection timed out\r\n"));
	ck_assert_ptr_nonnull(memfind(p->body, p->body_len,
		"\r\n<dave@d.example>: host (unknown) said: 250 2.0.0 Ok: "
		"queued as 4F2A\r\n"));
	dsn_free(&d);
}
END_TEST

/* ---- untrusted reply text ------------------------------------------ */

/* A hostile server's reply must not add header lines or MIME parts to the
 * DSN: CR, LF and other controls become spaces. */
START_TEST(test_bounce_reply_text_cannot_inject)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	char *diag;
	size_t n;

	r.text = "5.1.1 nope\r\nX-Injected: yes\r\n\r\n--evil\r\n"
		 "Content-Type: text/html\nbare\rcr\ttab\x7f" "del\x01" "ctl";
	dsn_parse(&d, &bi);
	ck_assert_uint_eq(d.n_parts, 3);
	ck_assert_ptr_null(memfind(d.text, d.len, "\r\nX-Injected"));
	ck_assert_ptr_null(memfind(d.text, d.len, "\r\n--evil"));
	ck_assert_ptr_null(
		memfind(d.text, d.len, "\r\nContent-Type: text/html"));
	n = status_groups(&d.parts[1], g);
	ck_assert_uint_eq(n, 2); /* no extra field group */
	diag = field(g[1], "Diagnostic-Code");
	ck_assert_str_eq(diag, "smtp; 550 5.1.1 nope  X-Injected: yes    "
			       "--evil  Content-Type: text/html bare cr tab "
			       "del ctl");
	free(diag);
	groups_free(g, n);
	dsn_free(&d);
}
END_TEST

/* The DSN is us-ascii: 8-bit octets of a reply become spaces too. */
START_TEST(test_bounce_reply_text_8bit_cleaned)
{
	struct bounce_rcpt r = rcpt_delayed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;

	r.text = "caf\xc3\xa9 ferm\xc3\xa9";
	dsn_parse(&d, &bi);
	for (size_t i = 0; i < d.len; i++)
		if ((unsigned char)d.text[i] >= 0x80 &&
		    (d.text + i < d.parts[2].body ||
		     d.text + i >= d.parts[2].body + d.parts[2].body_len))
			ck_abort_msg("8-bit octet at %zu outside the returned "
				     "message", i);
	ck_assert_ptr_nonnull(
		memfind(d.text, d.len, "x-shoal; caf   ferm  \r\n"));
	dsn_free(&d);
}
END_TEST

/* Reply text is cut at 400 octets, in both places it appears. */
START_TEST(test_bounce_reply_text_cut_at_400)
{
	char *longtext = malloc(5001);
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	char *g[GROUPS_MAX];
	char *diag;
	size_t n;

	ck_assert_ptr_nonnull(longtext);
	memset(longtext, '~', 5000); /* found nowhere else in a DSN */
	longtext[5000] = '\0';
	r.text = longtext;
	dsn_parse(&d, &bi);
	n = status_groups(&d.parts[1], g);
	diag = field(g[1], "Diagnostic-Code");
	ck_assert_uint_eq(strlen(diag), strlen("smtp; 550 ") + 400);
	ck_assert_uint_eq(strspn(diag + strlen("smtp; 550 "), "~"), 400);
	free(diag);
	ck_assert_uint_eq(count(d.text, d.len, "~"), 800);
	groups_free(g, n);
	dsn_free(&d);
	free(longtext);
}
END_TEST

/* With every input at its bound (a 320-octet address, a 255-octet host
 * name, a 500-octet ORCPT, a 100-octet ENVID, a long reply), every line
 * still fits RFC 5322's 998 octets (checked in dsn_parse). */
START_TEST(test_bounce_lines_within_998_at_bounds)
{
	char addr[321], host[256], orcpt[501], envid[101], text[2000];
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 1);
	struct dsn d;

	memset(addr, 'a', 320);
	addr[64] = '@';
	addr[320] = '\0';
	memset(host, 'h', 255);
	for (size_t i = 63; i < 255; i += 64)
		host[i] = '.';
	host[255] = '\0';
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'o', 493);
	orcpt[500] = '\0';
	memset(envid, 'e', 100);
	envid[100] = '\0';
	memset(text, 't', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	r.address = addr;
	r.remote_mta = host;
	r.orcpt = orcpt;
	r.text = text;
	bi.envid = envid;
	bi.sender = addr;
	dsn_parse(&d, &bi);
	ck_assert_uint_eq(d.n_parts, 3);
	dsn_free(&d);
}
END_TEST

/* ---- the returned message (RET) ------------------------------------ */

START_TEST(test_bounce_ret_default_returns_headers_only)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct dsn d;
	const struct part *p;

	dsn_parse(&d, &bi);
	p = &d.parts[2];
	assert_field(p->headers, "Content-Type", "text/rfc822-headers");
	ck_assert_uint_eq(p->body_len, sizeof(orig_headers) - 1);
	ck_assert_mem_eq(p->body, orig_headers, p->body_len);
	ck_assert_ptr_null(memfind(d.text, d.len, "BODY-LINE"));
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_ret_hdrs_returns_headers_only)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 2);
	struct dsn d;
	const struct part *p;

	dsn_parse(&d, &bi);
	p = &d.parts[2];
	assert_field(p->headers, "Content-Type", "text/rfc822-headers");
	ck_assert_uint_eq(p->body_len, sizeof(orig_headers) - 1);
	ck_assert_mem_eq(p->body, orig_headers, p->body_len);
	ck_assert_ptr_null(memfind(d.text, d.len, "BODY-LINE"));
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_ret_full_returns_whole_message)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 1);
	struct dsn d;
	const struct part *p;

	dsn_parse(&d, &bi);
	p = &d.parts[2];
	assert_field(p->headers, "Content-Type", "message/rfc822");
	ck_assert_uint_eq(p->body_len, sizeof(orig_msg) - 1);
	ck_assert_mem_eq(p->body, orig_msg, p->body_len);
	dsn_free(&d);
}
END_TEST

/* A message whose last line lacks CRLF gets one, so that the close
 * delimiter starts a line of its own. */
START_TEST(test_bounce_ret_full_adds_final_crlf)
{
	static const char msg[] = "Subject: x\r\n\r\nno newline at end";
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 1);
	struct dsn d;
	const struct part *p;

	bi.orig = msg;
	bi.orig_len = sizeof(msg) - 1;
	dsn_parse(&d, &bi);
	p = &d.parts[2];
	ck_assert_uint_eq(p->body_len, sizeof(msg) - 1 + 2);
	ck_assert_mem_eq(p->body, msg, sizeof(msg) - 1);
	ck_assert_mem_eq(p->body + sizeof(msg) - 1, "\r\n", 2);
	dsn_free(&d);
}
END_TEST

/* A message of headers only (no empty line) is returned whole by HDRS. */
START_TEST(test_bounce_ret_hdrs_without_body)
{
	static const char msg[] = "Subject: x\r\nFrom: a@a.example\r\n";
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 2);
	struct dsn d;
	const struct part *p;

	bi.orig = msg;
	bi.orig_len = sizeof(msg) - 1;
	dsn_parse(&d, &bi);
	p = &d.parts[2];
	ck_assert_uint_eq(p->body_len, sizeof(msg) - 1);
	ck_assert_mem_eq(p->body, msg, p->body_len);
	dsn_free(&d);
}
END_TEST

/* A message with no header fields: RET=HDRS returns only the empty line,
 * not the body. */
START_TEST(test_bounce_ret_hdrs_empty_header_section)
{
	static const char msg[] = "\r\nBODY-LINE-1 no headers at all\r\n";
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 2);
	struct dsn d;
	const struct part *p;

	bi.orig = msg;
	bi.orig_len = sizeof(msg) - 1;
	dsn_parse(&d, &bi);
	p = &d.parts[2];
	ck_assert_uint_eq(p->body_len, 2);
	ck_assert_mem_eq(p->body, "\r\n", 2);
	ck_assert_ptr_null(memfind(d.text, d.len, "BODY-LINE"));
	dsn_free(&d);
}
END_TEST

START_TEST(test_bounce_empty_original)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 1);
	struct dsn d;

	bi.orig = "";
	bi.orig_len = 0;
	dsn_parse(&d, &bi);
	ck_assert_uint_eq(d.n_parts, 3);
	ck_assert_uint_eq(d.parts[2].body_len, 2); /* just the added CRLF */
	dsn_free(&d);
	bi.ret = 2;
	dsn_parse(&d, &bi);
	ck_assert_uint_eq(d.n_parts, 3);
	ck_assert_uint_eq(d.parts[2].body_len, 0);
	dsn_free(&d);
}
END_TEST

/* ---- length bounds ------------------------------------------------- */

static size_t
built_len(const struct bounce_info *bi, size_t max, int *rc)
{
	struct buf b;
	size_t n;

	buf_init(&b, max);
	*rc = bounce_build(bi, &b);
	n = b.len;
	buf_free(&b);
	return n;
}

/* The output length is fixed for given inputs (the random part of the
 * boundary has a fixed width), so the bound can be hit exactly. */
START_TEST(test_bounce_fits_exactly_or_emsgsize)
{
	struct bounce_rcpt rs[3] = { rcpt_failed(), rcpt_delayed(),
				     rcpt_relayed() };
	struct bounce_info bi = info(rs, 3, 1);
	size_t len, len2;
	int rc;

	len = built_len(&bi, 1u << 20, &rc);
	ck_assert_int_eq(rc, 0);
	len2 = built_len(&bi, len, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(len2, len);
	built_len(&bi, len - 1, &rc);
	ck_assert_int_eq(rc, -EMSGSIZE);
	built_len(&bi, 100, &rc);
	ck_assert_int_eq(rc, -EMSGSIZE);
	built_len(&bi, 0, &rc);
	ck_assert_int_eq(rc, -EMSGSIZE);
}
END_TEST

/* RET=FULL of a message larger than the bound fails with -EMSGSIZE; the
 * headers-only DSN of the same message fits (the fallback the scheduler
 * takes), and its length does not depend on the body's. */
START_TEST(test_bounce_big_body_full_vs_hdrs)
{
	enum { BODY = 2 << 20, MAX = 1 << 20 };
	char *big = malloc(sizeof(orig_headers) - 1 + BODY + 2);
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 1);
	size_t hlen = sizeof(orig_headers) - 1, small_len, big_len;
	int rc;

	ck_assert_ptr_nonnull(big);
	memcpy(big, orig_headers, hlen);
	memset(big + hlen, 'b', BODY);
	memcpy(big + hlen + BODY, "\r\n", 2);
	bi.orig = big;
	bi.orig_len = hlen + BODY + 2;

	built_len(&bi, MAX, &rc);
	ck_assert_int_eq(rc, -EMSGSIZE);
	big_len = built_len(&bi, (size_t)BODY * 2, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_gt(big_len, (size_t)BODY);

	bi.ret = 2;
	big_len = built_len(&bi, MAX, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_lt(big_len, 8192);
	bi.orig = orig_msg;
	bi.orig_len = sizeof(orig_msg) - 1;
	small_len = built_len(&bi, MAX, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(small_len, big_len);
	free(big);
}
END_TEST

/* bounce_build appends: what the buffer held stays in front. */
START_TEST(test_bounce_build_appends)
{
	struct bounce_rcpt r = rcpt_failed();
	struct bounce_info bi = info(&r, 1, 0);
	struct buf b;

	buf_init(&b, 1u << 20);
	ck_assert_int_eq(buf_append(&b, "X-Prefix: 1\r\n", 13), 0);
	ck_assert_int_eq(bounce_build(&bi, &b), 0);
	ck_assert_mem_eq(b.data, "X-Prefix: 1\r\nFrom: ", 19);
	buf_free(&b);
}
END_TEST

/* ---- bounce_header_len --------------------------------------------- */

struct hl_case {
	const char *name;
	const char *msg;
	size_t want; /* SIZE_MAX: the whole length */
};

static const struct hl_case hl_cases[] = {
	{ "headers and body", "A: 1\r\nB: 2\r\n\r\nbody\r\n", 14 },
	{ "empty body", "A: 1\r\n\r\n", 8 },
	{ "first empty line wins", "A: 1\r\n\r\nx\r\n\r\ny", 8 },
	{ "no empty line", "A: 1\r\nB: 2\r\n", SIZE_MAX },
	{ "no line end", "A: 1", SIZE_MAX },
	{ "empty message", "", SIZE_MAX },
	{ "LF only is not an empty line", "A: 1\n\nbody", SIZE_MAX },
	{ "CRLF CR is not an empty line", "A: 1\r\n\rbody", SIZE_MAX },
	{ "three octets", "A\r\n\r", SIZE_MAX },
	/* RFC 5322 2.1: an empty header section, then the empty line */
	{ "empty header section", "\r\nbody", 2 },
	{ "empty header section, body has one", "\r\nbody\r\n\r\nmore", 2 },
	{ "empty header section, no body", "\r\n", 2 },
	{ "starts with CRLF CR", "\r\n\r", 2 },
};

START_TEST(test_bounce_header_len_table)
{
	const struct hl_case *c = &hl_cases[_i];
	size_t len = strlen(c->msg);
	size_t want = c->want == SIZE_MAX ? len : c->want;

	ck_assert_msg(bounce_header_len(c->msg, len) == want,
		      "%s: got %zu want %zu", c->name,
		      bounce_header_len(c->msg, len), want);
}
END_TEST

/* len bounds the search: an empty line past len is not seen. */
START_TEST(test_bounce_header_len_respects_len)
{
	static const char msg[] = "A: 1\r\nB: 2\r\n\r\nbody";

	ck_assert_uint_eq(bounce_header_len(msg, 12), 12);
	ck_assert_uint_eq(bounce_header_len(msg, 13), 13);
	ck_assert_uint_eq(bounce_header_len(msg, 14), 14);
	ck_assert_uint_eq(bounce_header_len(msg, 0), 0);
	ck_assert_uint_eq(bounce_header_len(NULL, 0), 0);
}
END_TEST

/* ---- queued as a message (node/queue/dsn.c) ---------------------------- */

#define T_SHARDS 8

/* shards of ours: the one named by arg, or none (arg NULL) */
static bool
t_mine(void *arg, uint32_t shard)
{
	return arg != NULL && shard == *(const uint32_t *)arg;
}

START_TEST(test_dsn_draw_finds_a_shard_of_ours)
{
	struct qid_gen g;
	struct dsn_slot slot;
	uint32_t mine = 5;

	qid_gen_init(&g);
	for (int i = 0; i < 20; i++) {
		dsn_draw(&g, T_SHARDS, t_mine, &mine, &slot);
		ck_assert(qid_valid(slot.qid, strlen(slot.qid)));
		ck_assert_uint_eq(slot.shard, mine);
		ck_assert_uint_eq(shard_of(slot.qid, T_SHARDS), mine);
	}
	dsn_draw(&g, T_SHARDS, t_mine, NULL, &slot);
	ck_assert_str_eq(slot.qid, "");
}
END_TEST

START_TEST(test_dsn_store_queues_it_due_now_from_null_sender)
{
	char dir[64];
	struct store *st;
	struct store_txn *t;
	struct config cfg;
	struct qid_gen g;
	struct dsn_slot slot;
	struct bounce_rcpt r = rcpt_failed();
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__StoredMessage *sm;
	struct dsn_about a = {
		.orig_qid = QID,
		.env = &env,
		.orig = orig_msg,
		.orig_len = sizeof(orig_msg) - 1,
		.brs = &r,
		.n = 1,
		.now = NOW,
	};
	uint32_t mine = 3;
	const void *p;
	size_t len;
	uint64_t due = 0;

	log_init("test_bounce", LOG_LVL_ERROR);
	check_mkdtemp(dir, sizeof(dir), "dsn");
	ck_assert_int_eq(store_open(dir, 64u << 20, &st), 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster.shards = T_SHARDS;
	cfg.router.max_message_size = 1u << 20;
	cfg.delivery.helo_name = MTA;
	env.mail_from = SENDER;
	env.arrival_time = ARRIVAL;
	qid_gen_init(&g);
	dsn_draw(&g, T_SHARDS, t_mine, &mine, &slot);
	ck_assert_int_eq(store_txn_begin(st, false, &t), 0);
	ck_assert_int_eq(dsn_store(t, &cfg, t_mine, &mine, &slot, &a), 0);
	ck_assert(slot.is_stored);
	ck_assert_uint_eq(slot.due, NOW);
	ck_assert_int_eq(store_txn_commit(t), 0);
	ck_assert_int_eq(store_txn_begin(st, true, &t), 0);
	ck_assert_int_eq(store_msg_get_meta(t, slot.qid, &p, &len), 0);
	sm = shoal__stored_message__unpack(NULL, len, p);
	ck_assert_ptr_nonnull(sm);
	ck_assert_str_eq(sm->envelope->mail_from, "");
	ck_assert_uint_eq(sm->envelope->n_rcpts, 1);
	ck_assert_str_eq(sm->envelope->rcpts[0]->address, SENDER);
	ck_assert_int_eq(sm->envelope->rcpts[0]->notify,
			 SHOAL__NOTIFY__NOTIFY_NEVER);
	ck_assert_uint_eq(sm->shard, mine);
	ck_assert_uint_eq(sm->due, NOW);
	shoal__stored_message__free_unpacked(sm, NULL);
	ck_assert_int_eq(store_due_first(t, &due), 0);
	ck_assert_uint_eq(due, NOW);
	store_txn_abort(t);

	/* the shard is no longer ours: nothing stored, the item fails */
	dsn_draw(&g, T_SHARDS, t_mine, &mine, &slot);
	ck_assert_int_eq(store_txn_begin(st, false, &t), 0);
	ck_assert_int_eq(dsn_store(t, &cfg, t_mine, NULL, &slot, &a),
			 -EAGAIN);
	ck_assert(slot.is_refused && !slot.is_stored);
	ck_assert_int_eq(store_msg_get_meta(t, slot.qid, &p, &len), -ENOENT);
	store_txn_abort(t);
	/* and a run of it again starts afresh */
	dsn_slot_clear(&slot);
	ck_assert(!slot.is_refused && !slot.is_stored);
	ck_assert(qid_valid(slot.qid, strlen(slot.qid)));
	store_close(st);
	check_rmtree(dir);
}
END_TEST

static Suite *
bounce_suite(void)
{
	Suite *s = suite_create("bounce");
	TCase *tc;

	tc = tcase_create("structure");
	tcase_add_test(tc, test_bounce_top_header);
	tcase_add_test(tc, test_bounce_three_parts_in_order);
	tcase_add_test(tc, test_bounce_boundary_is_valid_and_unique);
	tcase_add_test(tc, test_bounce_boundary_bounded_with_long_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("delivery_status");
	tcase_add_test(tc, test_bounce_per_message_fields);
	tcase_add_test(tc, test_bounce_failed_recipient_fields);
	tcase_add_test(tc, test_bounce_tls_policy_field);
	tcase_add_test(tc, test_bounce_recipients_in_order);
	tcase_add_test(tc, test_bounce_envid_and_orcpt_pass_through);
	tcase_add_test(tc, test_bounce_dates_are_rfc5322);
	suite_add_tcase(s, tc);

	tc = tcase_create("notice");
	tcase_add_loop_test(tc, test_bounce_subject_follows_worst_action, 0,
			    sizeof(mix_cases) / sizeof(mix_cases[0]));
	tcase_add_test(tc, test_bounce_notice_names_each_recipient);
	suite_add_tcase(s, tc);

	tc = tcase_create("untrusted_text");
	tcase_add_test(tc, test_bounce_reply_text_cannot_inject);
	tcase_add_test(tc, test_bounce_reply_text_8bit_cleaned);
	tcase_add_test(tc, test_bounce_reply_text_cut_at_400);
	tcase_add_test(tc, test_bounce_lines_within_998_at_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("ret");
	tcase_add_test(tc, test_bounce_ret_default_returns_headers_only);
	tcase_add_test(tc, test_bounce_ret_hdrs_returns_headers_only);
	tcase_add_test(tc, test_bounce_ret_full_returns_whole_message);
	tcase_add_test(tc, test_bounce_ret_full_adds_final_crlf);
	tcase_add_test(tc, test_bounce_ret_hdrs_without_body);
	tcase_add_test(tc, test_bounce_ret_hdrs_empty_header_section);
	tcase_add_test(tc, test_bounce_empty_original);
	suite_add_tcase(s, tc);

	tc = tcase_create("bounds");
	tcase_add_test(tc, test_bounce_fits_exactly_or_emsgsize);
	tcase_add_test(tc, test_bounce_big_body_full_vs_hdrs);
	tcase_add_test(tc, test_bounce_build_appends);
	tcase_add_loop_test(tc, test_bounce_header_len_table, 0,
			    sizeof(hl_cases) / sizeof(hl_cases[0]));
	tcase_add_test(tc, test_bounce_header_len_respects_len);
	suite_add_tcase(s, tc);

	tc = tcase_create("queued");
	tcase_add_test(tc, test_dsn_draw_finds_a_shard_of_ours);
	tcase_add_test(tc, test_dsn_store_queues_it_due_now_from_null_sender);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(bounce_suite)
