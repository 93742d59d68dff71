/* DSNs queued as messages of their own (node/queue/dsn.h): the qid drawn
 * before the commit, the record stored in it, the log line after it.
 * bounce.c writes the text; this file makes it a queued message. Reports
 * of our own (RFC 8460 TLS-RPT by mail) go the same way; their text is
 * written here. */
#include "node/queue/dsn.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/store/store.h"

#define DSN_QID_TRIES 100000

void
dsn_draw(struct qid_gen *g, uint32_t shards, dsn_mine_fn mine, void *arg,
	 struct dsn_slot *slot)
{
	memset(slot, 0, sizeof(*slot));
	for (int i = 0; i < DSN_QID_TRIES; i++) {
		char qid[QID_LEN + 1];
		uint32_t shard;

		qid_next(g, qid);
		shard = shard_of(qid, shards);
		if (mine(arg, shard)) {
			memcpy(slot->qid, qid, sizeof(qid));
			slot->shard = shard;
			return;
		}
	}
}

/* The stored record of a message of our own: one recipient, due now.
 * Caller frees the result. */
static void *
dsn_pack_meta(const struct config *cfg, const struct dsn_slot *slot,
	      const char *from, const char *to, bool smtputf8, int body,
	      uint64_t now, size_t body_len, size_t *len)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope denv = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient dr = SHOAL__RECIPIENT__INIT;
	Shoal__Recipient *drp = &dr;
	void *meta;

	dr.address = (char *)to;
	dr.notify = SHOAL__NOTIFY__NOTIFY_NEVER;
	dr.next_try = now;
	denv.mail_from = (char *)from;
	denv.n_rcpts = 1;
	denv.rcpts = &drp;
	denv.smtputf8 = smtputf8;
	denv.body = body;
	denv.arrival_time = now;
	denv.client_addr = "127.0.0.1";
	denv.helo = cfg->delivery.helo_name;
	denv.size = body_len;
	sm.qid = (char *)slot->qid;
	sm.shard = slot->shard;
	sm.envelope = &denv;
	sm.due = now;
	*len = shoal__stored_message__get_packed_size(&sm);
	meta = xmalloc(*len ? *len : 1);
	shoal__stored_message__pack(&sm, meta);
	return meta;
}

int
dsn_store(struct store_txn *t, const struct config *cfg, dsn_mine_fn mine,
	  void *arg, struct dsn_slot *slot, const struct dsn_about *a)
{
	struct bounce_info bi = {
		.reporting_mta = cfg->delivery.helo_name,
		.qid = a->orig_qid,
		.sender = a->env->mail_from,
		.envid = a->env->envid,
		.ret = a->env->ret,
		.arrival = a->env->arrival_time,
		.now = a->now,
		.rcpts = a->brs,
		.n_rcpts = a->n,
		.orig = a->orig ? a->orig : "",
		.orig_len = a->orig_len,
	};
	struct buf body;
	void *meta;
	size_t meta_len;
	int rc;

	dsn_slot_clear(slot);
	snprintf(slot->orig_qid, sizeof(slot->orig_qid), "%s", a->orig_qid);
	if (slot->qid[0] == '\0' || !mine(arg, slot->shard)) {
		/* no shard is ours (all failed over meanwhile): a DSN stored
		 * here would be neither delivered nor replicated; failing
		 * leaves the result unsaved, and the owner's copy is tried
		 * and bounced there */
		slot->is_refused = true;
		return -EAGAIN;
	}
	buf_init(&body, cfg->router.max_message_size + (1u << 20));
	if (bounce_build(&bi, &body) != 0) {
		/* RET=FULL of a huge message: fall back to headers only */
		buf_reset(&body);
		bi.ret = 2;
		bounce_build(&bi, &body);
	}
	/* from the null sender to the original one (RFC 3464 2) */
	meta = dsn_pack_meta(cfg, slot, "", a->env->mail_from,
			     a->env->smtputf8, a->env->body, a->now, body.len,
			     &meta_len);
	rc = store_msg_put(t, slot->qid, slot->shard, meta, meta_len,
			   body.data, body.len);
	if (rc == 0)
		rc = store_due_add(t, a->now, slot->qid);
	if (rc == 0) {
		slot->is_stored = true;
		slot->due = a->now;
		slot->n_rcpts = a->n;
		slot->action = a->brs[0].action;
		snprintf(slot->to, sizeof(slot->to), "%s", a->env->mail_from);
	}
	free(meta);
	buf_free(&body);
	return rc;
}

void
dsn_slot_clear(struct dsn_slot *slot)
{
	slot->is_stored = slot->is_refused = slot->is_report = false;
	slot->due = 0;
	slot->n_rcpts = 0;
	slot->to[0] = slot->orig_qid[0] = '\0';
}

void
dsn_log(const struct dsn_slot *slot, int result)
{
	if (slot->is_refused)
		log_warn("qid=%s event=dsn_not_queued reason=\"this node owns "
			 "no shard\"",
			 slot->orig_qid);
	if (!slot->is_stored || result != 0)
		return;
	if (slot->is_report) {
		log_info("qid=%s event=report_queued to=<%s>", slot->qid,
			 slot->to);
		return;
	}
	log_info("qid=%s event=dsn_queued orig_qid=%s to=<%s> rcpts=%zu "
		 "action=%s",
		 slot->qid, slot->orig_qid, slot->to, slot->n_rcpts,
		 slot->action == BOUNCE_FAILED ? "failed" :
		 slot->action == BOUNCE_DELAYED ? "delayed" : "relayed");
}

/* ---- reports of our own (RFC 8460 5.3) ---- */

/* RFC 5322 3.3 date-time, UTC. */
static void
dsn_date(uint64_t now, char out[64])
{
	time_t t = (time_t)now;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 64, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* base64 (RFC 2045 6.8) in lines of 76 characters, CRLF-ended. */
static int
dsn_base64(const void *p, size_t len, struct buf *out)
{
	const unsigned char *in = p;
	int rc = 0;

	for (size_t off = 0; rc == 0 && off < len; off += 57) {
		unsigned char line[80];
		size_t n = len - off < 57 ? len - off : 57;
		int w = EVP_EncodeBlock(line, in + off, (int)n);

		rc = buf_append(out, line, (size_t)w);
		rc = rc ? rc : buf_append(out, "\r\n", 2);
	}
	return rc;
}

int
dsn_report_build(const struct dsn_report *r, struct buf *out)
{
	char date[64], boundary[80];
	uint64_t rnd = 0;
	int rc = 0;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = r->now;
	snprintf(boundary, sizeof(boundary), "tlsrpt.%016llx",
		 (unsigned long long)rnd);
	dsn_date(r->now, date);
	rc |= buf_printf(out, "From: <%s>\r\n", r->from);
	rc |= buf_printf(out, "To: <%s>\r\n", r->to);
	rc |= buf_printf(out, "Subject: Report Domain: %s Submitter: %s "
			      "Report-ID: <%s>\r\n",
			 r->domain, r->submitter, r->report_id);
	rc |= buf_printf(out, "Date: %s\r\n", date);
	rc |= buf_printf(out, "Message-ID: <tlsrpt.%016llx@%s>\r\n",
			 (unsigned long long)rnd, r->submitter);
	rc |= buf_printf(out, "TLS-Report-Domain: %s\r\n", r->domain);
	rc |= buf_printf(out, "TLS-Report-Submitter: %s\r\n", r->submitter);
	rc |= buf_printf(out, "Auto-Submitted: auto-generated\r\n");
	rc |= buf_printf(out, "MIME-Version: 1.0\r\n");
	rc |= buf_printf(out, "Content-Type: multipart/report; "
			      "report-type=\"tlsrpt\";\r\n"
			      "\tboundary=\"%s\"\r\n",
			 boundary);
	rc |= buf_printf(out, "\r\nThis is a MIME-encapsulated message.\r\n");
	rc |= buf_printf(out, "\r\n--%s\r\n", boundary);
	rc |= buf_printf(out, "Content-Type: text/plain; charset=us-ascii\r\n"
			      "\r\nThis is an aggregate TLS report "
			      "(RFC 8460) from %s\r\nfor the policy domain "
			      "%s.\r\n",
			 r->submitter, r->domain);
	rc |= buf_printf(out, "\r\n--%s\r\n", boundary);
	rc |= buf_printf(out, "Content-Type: application/tlsrpt+gzip\r\n"
			      "Content-Transfer-Encoding: base64\r\n"
			      "Content-Disposition: attachment;\r\n"
			      "\tfilename=\"%s!%s!%llu!%llu!%s.json.gz\"\r\n\r\n",
			 r->submitter, r->domain,
			 (unsigned long long)r->start,
			 (unsigned long long)r->end, r->unique);
	rc |= dsn_base64(r->gz, r->gz_len, out);
	rc |= buf_printf(out, "\r\n--%s--\r\n", boundary);
	return rc ? -EMSGSIZE : 0;
}

int
dsn_store_report(struct store_txn *t, const struct config *cfg,
		 dsn_mine_fn mine, void *arg, struct dsn_slot *slot,
		 const struct dsn_report *r)
{
	struct buf body;
	void *meta;
	size_t meta_len;
	int rc;

	dsn_slot_clear(slot);
	slot->is_report = true;
	snprintf(slot->orig_qid, sizeof(slot->orig_qid), "tlsrpt");
	if (slot->qid[0] == '\0' || !mine(arg, slot->shard)) {
		slot->is_refused = true; /* as in dsn_store() */
		return -EAGAIN;
	}
	buf_init(&body, DSN_REPORT_MAX);
	if ((rc = dsn_report_build(r, &body)) != 0) {
		buf_free(&body);
		return rc;
	}
	meta = dsn_pack_meta(cfg, slot, r->from, r->to, false,
			     SHOAL__BODY_TYPE__BODY_7BIT, r->now, body.len,
			     &meta_len);
	rc = store_msg_put(t, slot->qid, slot->shard, meta, meta_len,
			   body.data, body.len);
	if (rc == 0)
		rc = store_due_add(t, r->now, slot->qid);
	if (rc == 0) {
		slot->is_stored = true;
		slot->due = r->now;
		slot->n_rcpts = 1;
		snprintf(slot->to, sizeof(slot->to), "%s", r->to);
	}
	free(meta);
	buf_free(&body);
	return rc;
}
