/* RFC 3464 delivery status notifications. Remote reply text is untrusted:
 * it is cut and stripped of control characters before it goes into a
 * header field, so a hostile server cannot inject headers into the DSN. */
#include "node/queue/bounce.h"

#include "node/delivery/classify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define BOUNCE_TEXT_MAX 400   /* of a diagnostic text */

static void
bounce_date(uint64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, outlen, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Printable ASCII only, bounded: safe inside a header field. */
static void
bounce_clean(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; in[i] && o + 1 < outlen && i < BOUNCE_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)in[i];

		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
	}
	out[o] = '\0';
}

size_t
bounce_header_len(const char *msg, size_t len)
{
	/* RFC 5322 2.1: the header section may be empty, so the message
	 * starts with the empty line itself */
	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	for (size_t i = 0; i + 3 < len; i++)
		if (msg[i] == '\r' && msg[i + 1] == '\n' && msg[i + 2] == '\r' &&
		    msg[i + 3] == '\n')
			return i + 4;
	return len;
}

static const char *
bounce_action_name(enum bounce_action a)
{
	switch (a) {
	case BOUNCE_DELAYED:
		return "delayed";
	case BOUNCE_DELIVERED:
		return "relayed";
	default:
		return "failed";
	}
}

static int
bounce_human_part(const struct bounce_info *bi, bool any_failed,
		  bool any_delayed, struct buf *out)
{
	int rc = 0;

	rc |= buf_printf(out, "This is the mail system at host %s.\r\n\r\n",
			 bi->reporting_mta);
	if (any_failed)
		rc |= buf_printf(out,
				 "I'm sorry to have to inform you that your "
				 "message could not\r\nbe delivered to one or "
				 "more recipients. It's attached below.\r\n");
	else if (any_delayed)
		rc |= buf_printf(out,
				 "Your message could not yet be delivered to "
				 "one or more\r\nrecipients. It will be tried "
				 "again; you need not resend it.\r\n");
	else
		rc |= buf_printf(out, "Your message was successfully relayed "
				      "to the recipients below.\r\n");
	rc |= buf_printf(out, "\r\n");
	for (size_t i = 0; i < bi->n_rcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		char text[BOUNCE_TEXT_MAX + 1];

		bounce_clean(r->text, text, sizeof(text));
		if (r->code)
			rc |= buf_printf(out, "<%s>: host %s said: %d %s\r\n",
					 r->address,
					 r->remote_mta[0] ? r->remote_mta :
							    "(unknown)",
					 r->code, text);
		else
			rc |= buf_printf(out, "<%s>: %s\r\n", r->address, text);
		if (r->category && r->category[0])
			rc |= buf_printf(out, "    (reason: %s)\r\n",
					 classify_describe(r->category));
	}
	return rc;
}

static int
bounce_status_part(const struct bounce_info *bi, struct buf *out)
{
	char date[64];
	int rc = 0;

	bounce_date(bi->arrival, date, sizeof(date));
	rc |= buf_printf(out, "Reporting-MTA: dns; %s\r\n", bi->reporting_mta);
	rc |= buf_printf(out, "X-Shoal-Queue-ID: %s\r\n", bi->qid);
	if (bi->envid[0])
		rc |= buf_printf(out, "Original-Envelope-Id: %s\r\n",
				 bi->envid);
	rc |= buf_printf(out, "Arrival-Date: %s\r\n", date);
	bounce_date(bi->now, date, sizeof(date));
	for (size_t i = 0; i < bi->n_rcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		char text[BOUNCE_TEXT_MAX + 1];

		bounce_clean(r->text, text, sizeof(text));
		rc |= buf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n",
				 r->address);
		if (r->orcpt[0])
			rc |= buf_printf(out, "Original-Recipient: %s\r\n",
					 r->orcpt);
		rc |= buf_printf(out, "Action: %s\r\n",
				 bounce_action_name(r->action));
		rc |= buf_printf(out, "Status: %s\r\n", r->status);
		if (r->remote_mta[0])
			rc |= buf_printf(out, "Remote-MTA: dns; %s\r\n",
					 r->remote_mta);
		if (r->code)
			rc |= buf_printf(out, "Diagnostic-Code: smtp; %d %s\r\n",
					 r->code, text);
		else
			rc |= buf_printf(out, "Diagnostic-Code: x-shoal; %s\r\n",
					 text);
		rc |= buf_printf(out, "Last-Attempt-Date: %s\r\n", date);
		/* RFC 3464 7: an X- extension field for the failure's kind */
		if (r->category && r->category[0])
			rc |= buf_printf(out, "X-Shoal-Category: %s\r\n",
					 r->category);
		/* the TLS of the last attempt: which policy applied, and
		 * what the session used (ours, plain tokens) */
		if (r->tls_policy && r->tls_policy[0])
			rc |= buf_printf(out, "X-Shoal-TLS: %s; %s\r\n",
					 r->tls_policy,
					 r->tls && r->tls[0] ? r->tls :
							       "no TLS");
	}
	return rc;
}

int
bounce_build(const struct bounce_info *bi, struct buf *out)
{
	bool any_failed = false, any_delayed = false;
	char date[64], boundary[64];
	uint64_t rnd = 0;
	size_t hlen;
	bool full = bi->ret == 1;
	const char *subject;
	int rc = 0;

	for (size_t i = 0; i < bi->n_rcpts; i++) {
		any_failed |= bi->rcpts[i].action == BOUNCE_FAILED;
		any_delayed |= bi->rcpts[i].action == BOUNCE_DELAYED;
	}
	subject = any_failed ? "Undelivered Mail Returned to Sender" :
		  any_delayed ? "Delayed Mail (still being retried)" :
				"Successful Mail Delivery Report";
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = bi->now;
	snprintf(boundary, sizeof(boundary), "%s.%016llx/%s", bi->qid,
		 (unsigned long long)rnd, bi->reporting_mta);
	bounce_date(bi->now, date, sizeof(date));

	rc |= buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
			 bi->reporting_mta);
	rc |= buf_printf(out, "To: <%s>\r\n", bi->sender);
	rc |= buf_printf(out, "Subject: %s\r\n", subject);
	rc |= buf_printf(out, "Date: %s\r\n", date);
	rc |= buf_printf(out, "Message-ID: <%s.%016llx@%s>\r\n", bi->qid,
			 (unsigned long long)rnd, bi->reporting_mta);
	rc |= buf_printf(out, "Auto-Submitted: auto-replied\r\n");
	rc |= buf_printf(out, "MIME-Version: 1.0\r\n");
	rc |= buf_printf(out, "Content-Type: multipart/report; "
			      "report-type=delivery-status;\r\n"
			      "\tboundary=\"%s\"\r\n",
			 boundary);
	rc |= buf_printf(out, "\r\nThis is a MIME-encapsulated message.\r\n");

	rc |= buf_printf(out, "\r\n--%s\r\n", boundary);
	rc |= buf_printf(out, "Content-Description: Notification\r\n"
			      "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	rc |= bounce_human_part(bi, any_failed, any_delayed, out);

	rc |= buf_printf(out, "\r\n--%s\r\n", boundary);
	rc |= buf_printf(out, "Content-Description: Delivery report\r\n"
			      "Content-Type: message/delivery-status\r\n\r\n");
	rc |= bounce_status_part(bi, out);

	rc |= buf_printf(out, "\r\n--%s\r\n", boundary);
	hlen = bounce_header_len(bi->orig, bi->orig_len);
	if (full) {
		rc |= buf_printf(out, "Content-Description: Undelivered "
				      "Message\r\nContent-Type: "
				      "message/rfc822\r\n\r\n");
		rc |= buf_append(out, bi->orig, bi->orig_len);
		if (bi->orig_len < 2 || bi->orig[bi->orig_len - 1] != '\n')
			rc |= buf_printf(out, "\r\n");
	} else {
		rc |= buf_printf(out, "Content-Description: Undelivered "
				      "Message Headers\r\nContent-Type: "
				      "text/rfc822-headers\r\n\r\n");
		rc |= buf_append(out, bi->orig, hlen);
	}
	rc |= buf_printf(out, "\r\n--%s--\r\n", boundary);
	return rc ? -EMSGSIZE : 0;
}

bool
bounce_wanted(const Shoal__Envelope *env, const Shoal__Recipient *r,
	      enum bounce_action a)
{
	if (env->mail_from[0] == '\0')
		return false; /* never bounce a bounce (RFC 5321 6.1) */
	if (r->notify & SHOAL__NOTIFY__NOTIFY_NEVER)
		return false;
	switch (a) {
	case BOUNCE_FAILED:
		return r->notify == 0 ||
		       (r->notify & SHOAL__NOTIFY__NOTIFY_FAILURE);
	case BOUNCE_DELIVERED:
		return (r->notify & SHOAL__NOTIFY__NOTIFY_SUCCESS) != 0;
	default:
		return (r->notify & SHOAL__NOTIFY__NOTIFY_DELAY) != 0;
	}
}
