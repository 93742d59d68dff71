/* The SMTP client's messages (see smtpc_impl.h): one message on a ready
 * connection as a plan of commands (RSET when not the first, MAIL, one
 * RCPT per recipient, DATA), written all at once when the server offers
 * PIPELINING (RFC 2920) and one by one otherwise, with replies matched to
 * the plan in order; then the body through the one encoder that decides
 * what reaches the wire (RFC 5321 4.5.2 dot-stuffing), and one reply per
 * recipient in struct smtpc_result. Reports; decides nothing about
 * retries or bounces (node/delivery/outcome.c does). Leaves the socket,
 * timeouts and failing to smtpc.c.
 * Handles untrusted input: replies, matched to the plan strictly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/smtpc_impl.h"

#define SMTPC_DATA_BLOCK_S 180    /* each write of the body */
#define SMTPC_DATA_INIT_S 120     /* the reply to DATA */
#define SMTPC_REPAIR_LOG_EVERY 1000 /* repaired bodies per warning */

static void
smtpc_plan_add(struct smtpc *c, enum plan_cmd cmd)
{
	if (c->plan_len == c->plan_cap) {
		c->plan_cap = c->plan_cap ? 2 * c->plan_cap : 16;
		c->plan = xrealloc(c->plan, c->plan_cap * sizeof(*c->plan));
	}
	c->plan[c->plan_len++] = cmd;
}

/* The index of the recipient for plan entry i. */
static size_t
smtpc_rcpt_index(const struct smtpc *c, size_t i)
{
	size_t k = 0;

	for (size_t j = 0; j < i; j++)
		k += c->plan[j] == PLAN_RCPT;
	return k;
}

/* Write the command for plan entry i. */
static void
smtpc_write_cmd(struct smtpc *c, size_t i)
{
	char line[SMTPC_CMD_MAX];

	switch (c->plan[i]) {
	case PLAN_RSET:
		smtpc_write(c, "RSET");
		return;
	case PLAN_MAIL:
		smtpc_proto_format_mail(line, sizeof(line), &c->msg, &c->info);
		smtpc_write(c, line);
		return;
	case PLAN_RCPT:
		smtpc_proto_format_rcpt(line, sizeof(line), &c->msg,
					smtpc_rcpt_index(c, i), &c->info);
		smtpc_write(c, line);
		return;
	case PLAN_DATA:
		smtpc_write(c, "DATA");
		return;
	}
}

/* Write what may be written now: everything when pipelining, else the
 * next command once the previous reply is in. */
static void
smtpc_plan_flush(struct smtpc *c)
{
	size_t upto = c->info.pipelining ? c->plan_len : c->plan_pos + 1;

	if (upto > c->plan_len)
		upto = c->plan_len;
	while (c->plan_sent < upto)
		smtpc_write_cmd(c, c->plan_sent++);
}

/* Finish the message early from inside smtpc_send(): done() comes later. */
static void
smtpc_finish_soon(struct smtpc *c, int code, const char *enh,
		  const char *text)
{
	struct smtpc_reply r;

	smtpc_local(&r, code, enh, "%s", text);
	for (size_t k = 0; k < c->res.n_rcpts; k++)
		c->res.rcpt[k] = r;
	c->res.msg_reply = r;
	c->res.failed_phase = SMTPC_PH_MAIL;
	c->done_pending = true;
	event_active(c->later, EV_TIMEOUT, 0);
}

void
smtpc_msg_start(struct smtpc *c, const struct smtpc_msg *m,
		smtpc_done_fn done, void *arg)
{
	char why[160];
	const char *enh;
	int code;

	c->msg = *m;
	c->done = done;
	c->done_arg = arg;
	memset(&c->res, 0, sizeof(c->res));
	c->res.failed_phase = SMTPC_PH_QUIT;
	c->res.n_rcpts = m->n_rcpts;
	c->res.rcpt = xcalloc(m->n_rcpts ? m->n_rcpts : 1, sizeof(*c->res.rcpt));
	c->rcpt_ok = xrealloc(c->rcpt_ok, (m->n_rcpts ? m->n_rcpts : 1) *
						  sizeof(*c->rcpt_ok));
	memset(c->rcpt_ok, 0, (m->n_rcpts ? m->n_rcpts : 1) * sizeof(bool));
	c->n_accepted = 0;
	c->plan_len = c->plan_pos = c->plan_sent = 0;

	if (m->n_rcpts == 0) {
		smtpc_finish_soon(c, 0, "4.3.0", "no recipients");
		return;
	}
	code = smtpc_proto_check_msg(m, &c->info, &enh, why, sizeof(why));
	if (code != 0) {
		smtpc_finish_soon(c, code, enh, why);
		return;
	}
	if (c->first_msg_sent)
		smtpc_plan_add(c, PLAN_RSET);
	c->first_msg_sent = true;
	smtpc_plan_add(c, PLAN_MAIL);
	for (size_t k = 0; k < m->n_rcpts; k++)
		smtpc_plan_add(c, PLAN_RCPT);
	smtpc_plan_add(c, PLAN_DATA);
	smtpc_enter(c, ST_PLAN);
	if (smtpc_may_batch(c)) {
		c->batching = true;
		smtpc_plan_flush(c);
		smtpc_flush(c);
	} else {
		smtpc_plan_flush(c);
	}
}

/* Every recipient not refused at RCPT gets r; the message is over. */
static bool
smtpc_msg_end(struct smtpc *c, enum smtpc_phase phase,
	      const struct smtpc_reply *r)
{
	for (size_t k = 0; k < c->res.n_rcpts; k++)
		if (c->rcpt_ok[k] || c->res.rcpt[k].code == 0)
			c->res.rcpt[k] = *r;
	c->res.msg_reply = *r;
	c->res.failed_phase = phase;
	if (phase != SMTPC_PH_QUIT && c->plan_pos + 1 < c->plan_len) {
		/* replies are still due for pipelined commands: the
		 * connection is in an unknown state, do not reuse it */
		c->res.conn_lost = true;
		c->state = ST_DEAD;
		evtimer_del(c->timer);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	}
	return smtpc_call_done(c);
}

/* The message body after 354, through the one encoder that decides what
 * reaches the wire (smtpc_proto_body_feed()). A body it had to repair is
 * still sent, repaired: it was acknowledged, and its DSN would quote the
 * same octets. Logged once, then every SMTPC_REPAIR_LOG_EVERY. */
static void
smtpc_add_body(struct smtpc *c)
{
	struct evbuffer *out = smtpc_out(c);
	struct smtpc_body_enc enc;

	smtpc_proto_body_init(&enc);
	smtpc_proto_body_feed(&enc, out, c->msg.body, c->msg.body_len);
	smtpc_proto_body_end(&enc, out);
	if (smtpc_proto_body_repaired(&enc) &&
	    c->x->repairs++ % SMTPC_REPAIR_LOG_EVERY == 0)
		log_warn("qid=%s mx=%s event=body_repaired bare_cr=%zu "
			 "bare_lf=%zu folded=%zu count=%llu",
			 c->msg.qid && c->msg.qid[0] ? c->msg.qid : "-",
			 c->info.mx_name[0] ? c->info.mx_name : c->info.peer_ip,
			 enc.bare_cr, enc.bare_lf, enc.folded,
			 (unsigned long long)c->x->repairs);
}

bool
smtpc_msg_on_plan_reply(struct smtpc *c)
{
	struct smtpc_reply *r = &c->cur.reply;
	int cls = r->code / 100;
	enum plan_cmd cmd = c->plan[c->plan_pos];
	size_t k;

	switch (cmd) {
	case PLAN_RSET:
		if (cls != 2) {
			struct smtpc_reply l = *r;

			c->res.conn_lost = true;
			l.code = 0;
			snprintf(l.enhanced, sizeof(l.enhanced), "4.4.2");
			return smtpc_fail(c, SMTPC_PH_MAIL, &l);
		}
		break;
	case PLAN_MAIL:
		if (cls != 2) {
			if (c->info.pipelining) {
				/* RCPT and DATA replies still come; wait for
				 * them and answer every recipient with this */
				c->res.msg_reply = *r;
				c->res.failed_phase = SMTPC_PH_MAIL;
				for (k = 0; k < c->res.n_rcpts; k++)
					c->res.rcpt[k] = *r;
				break;
			}
			for (k = 0; k < c->res.n_rcpts; k++)
				c->res.rcpt[k] = *r;
			c->res.msg_reply = *r;
			c->res.failed_phase = SMTPC_PH_MAIL;
			return smtpc_call_done(c);
		}
		break;
	case PLAN_RCPT:
		k = smtpc_rcpt_index(c, c->plan_pos);
		if (c->res.failed_phase == SMTPC_PH_MAIL)
			break; /* MAIL failed: its reply stands */
		c->res.rcpt[k] = *r;
		if (cls == 2) {
			c->rcpt_ok[k] = true;
			c->n_accepted++;
		}
		if (!c->info.pipelining && k + 1 == c->res.n_rcpts &&
		    c->n_accepted == 0) {
			c->res.msg_reply = *r;
			c->res.failed_phase = SMTPC_PH_RCPT;
			return smtpc_call_done(c);
		}
		break;
	case PLAN_DATA:
		if (r->code == 354) {
			if (c->n_accepted == 0) {
				/* RFC 2920 3.1: DATA was pipelined behind
				 * refused recipients and accepted anyway:
				 * send an empty message's end to recover */
				smtpc_write(c, ".");
				c->plan_pos++;
				smtpc_enter(c, ST_DOT);
				c->res.failed_phase =
					c->res.failed_phase == SMTPC_PH_MAIL ?
						SMTPC_PH_MAIL :
						SMTPC_PH_RCPT;
				c->msg.body_len = 0;
				return true;
			}
			if (c->msg.may_commit &&
			    !c->msg.may_commit(c->msg.commit_arg)) {
				c->res.withdrawn = true;
				return smtpc_fail_local(c, "withdrawn before "
							   "the message");
			}
			struct timeval wtv = smtpc_tv(c, SMTPC_DATA_BLOCK_S);

			/* while the body goes out, each write must progress
			 * within the data-block timeout; the 10 minutes for
			 * the final reply start once it is all sent */
			smtpc_add_body(c);
			bufferevent_set_timeouts(c->bev, NULL, &wtv);
			c->plan_pos++;
			c->state = ST_DOT;
			evtimer_del(c->timer);
			return true;
		}
		if (c->res.failed_phase == SMTPC_PH_MAIL)
			return smtpc_call_done(c);
		if (c->n_accepted == 0) {
			/* the last refused RCPT decides for the message */
			for (k = c->res.n_rcpts; k-- > 0;)
				if (c->res.rcpt[k].code != 0) {
					c->res.msg_reply = c->res.rcpt[k];
					break;
				}
			c->res.failed_phase = SMTPC_PH_RCPT;
			return smtpc_call_done(c);
		}
		return smtpc_msg_end(c, SMTPC_PH_DATA, r);
	}
	c->plan_pos++;
	if (c->plan_pos < c->plan_len) {
		if (c->plan[c->plan_pos] == PLAN_DATA)
			smtpc_arm(c, SMTPC_DATA_INIT_S);
		else
			smtpc_arm(c, smtpc_states[ST_PLAN].timeout_s);
		smtpc_plan_flush(c);
	}
	return true;
}

bool
smtpc_msg_on_dot_reply(struct smtpc *c)
{
	struct smtpc_reply *r = &c->cur.reply;

	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (smtpc_unsent(c) > 0) {
		/* a reply before the whole body went out: stop writing it
		 * (it is borrowed only until done()) and never reuse the
		 * link; a 2xx for part of a message is no delivery */
		if (r->code / 100 == 2)
			return smtpc_fail_local(c, "reply before end of data");
		c->res.conn_lost = true;
		c->state = ST_DEAD;
		evtimer_del(c->timer);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return smtpc_msg_end(c, SMTPC_PH_DOT, r);
	}
	if (c->n_accepted == 0) /* the recovery dot of RFC 2920 3.1 */
		return smtpc_call_done(c);
	return smtpc_msg_end(c, r->code / 100 == 2 ? SMTPC_PH_QUIT :
						     SMTPC_PH_DOT,
			     r);
}
