/* The SMTP commands up to the message (RFC 5321 4.1.1): HELO and EHLO
 * (with the ESMTP keywords we offer), MAIL with its parameters (SIZE RFC
 * 1870, BODY RFC 6152, SMTPUTF8 RFC 6531, RET and ENVID RFC 3461), RCPT
 * with the relay rule, our postmaster and the suppression check, RSET,
 * NOOP, QUIT, VRFY, EXPN, HELP and STARTTLS (RFC 3207). Each handler is a
 * row of router/session_table.c, which has checked the state already:
 * here they parse, act and reply, and on success call session_cmd_ok().
 * The message (DATA, BDAT) is router/transfer.c's, AUTH
 * router/session_auth.c's. Handles untrusted input: the arguments are
 * the client's. */
#include "router/session_cmd.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/smtp_cmd.h"
#include "lib/suppress_key.h"
#include "lib/xmalloc.h"
#include "router/enqueue.h"
#include "router/limits.h"
#include "router/message.h"
#include "router/session_auth.h"
#include "router/session_int.h"
#include "router/tls.h"

static bool
session_offers_starttls(const struct session *s)
{
	return !s->is_tls && tls_listener_starttls(s->ls, s->env->tls != NULL);
}

static void
session_helo(struct session *s, const struct smtp_cmd *cmd, bool esmtp)
{
	const struct config *cfg = s->env->cfg;
	size_t n = strcspn(cmd->arg, " ");

	if (n > cmd->arg_len)
		n = cmd->arg_len;
	if (n > SESSION_HELO_MAX) {
		session_reply_error(s, "501 5.5.4 Syntax: HELO/EHLO hostname "
				       "(hostname too long)");
		return;
	}
	/* the name goes into our Received: header: keep it to the
	 * characters of a domain or address literal */
	for (size_t i = 0; i < n; i++) {
		char c = cmd->arg[i];

		s->helo[i] =
			(isalnum((unsigned char)c) || strchr(".-_:[]", c)) ?
				c :
				'_';
	}
	s->helo[n] = '\0';
	s->is_esmtp = esmtp;
	session_reset_txn(s);
	session_cmd_ok(s);
	if (!esmtp) {
		session_reply(s, "250 %s", cfg->router.hostname);
		return;
	}
	session_reply(s, "250-%s", cfg->router.hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu",
		      (unsigned long long)cfg->router.max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-SMTPUTF8");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-CHUNKING");
	if (session_offers_starttls(s))
		session_reply(s, "250-STARTTLS");
	if (session_auth_offered(s))
		session_reply(s, "250-AUTH PLAIN LOGIN");
	session_reply(s, "250 DSN");
}

void
session_cmd_helo(struct session *s, const struct smtp_cmd *cmd)
{
	session_helo(s, cmd, false);
}

void
session_cmd_ehlo(struct session *s, const struct smtp_cmd *cmd)
{
	session_helo(s, cmd, true);
}

void
session_cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;
	int rc = smtp_mail_parse(cmd->arg, cmd->arg_len, &s->mail);

	if (rc != 0) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(rc, SMTP_VERB_MAIL));
		return;
	}
	if (!s->is_esmtp &&
	    (s->mail.has_size || s->mail.smtputf8 ||
	     s->mail.body != SMTP_BODY_7BIT ||
	     s->mail.ret != SMTP_RET_DEFAULT || s->mail.envid[0])) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "555 5.5.4 MAIL parameters need EHLO");
		return;
	}
	if (s->mail.body == SMTP_BODY_BINARYMIME) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "555 5.5.4 BODY=BINARYMIME is not "
				       "supported");
		return;
	}
	if (s->mail.has_size && s->mail.size > cfg->router.max_message_size) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_TOO_BIG]++;
		session_reply_error(s, "552 5.3.4 Message size exceeds fixed "
				       "limit");
		return;
	}
	if (s->ls->auth == CFG_AUTH_REQUIRED && !s->is_authed) {
		memset(&s->mail, 0, sizeof(s->mail));
		s->env->stats.rejected[ROUTER_REJECT_AUTH_REQUIRED]++;
		session_reply_error(s, "530 5.7.0 Authentication required");
		return;
	}
	if (!limits_message(s->env->limits, s->is_relay_client ? "" : s->client,
			    s->auth_user)) {
		memset(&s->mail, 0, sizeof(s->mail));
		log_info("client=%s event=rate_limited user=%s", s->client,
			 s->auth_user[0] ? s->auth_user : "-");
		s->env->stats.rejected[ROUTER_REJECT_RATE_LIMITED]++;
		session_reply(s, "451 4.7.1 Error: too many messages, slow "
				 "down");
		return;
	}
	session_cmd_ok(s);
	session_reply(s, "250 2.1.0 Ok");
}

/* The checked recipient joins the transaction. */
static void
session_add_rcpt(struct session *s)
{
	if (s->n_rcpts == s->cap_rcpts) {
		s->cap_rcpts = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
		s->rcpts = xrealloc(s->rcpts, s->cap_rcpts * sizeof(*s->rcpts));
	}
	s->rcpts[s->n_rcpts++] = s->checking;
	memset(&s->checking, 0, sizeof(s->checking));
	session_cmd_ok(s);
	s->env->stats.rcpts++;
	session_reply(s, "250 2.1.5 Ok");
}

/* The suppression list's answer (docs/suppression.md), read by
 * message_check_verdict() as the HTTP API reads it. */
static void
session_on_checked(int result, const struct enqueue_check_result *res,
		   void *arg)
{
	struct session *s = arg;
	struct session_rcpt *sr = &s->checking;
	char refusal[ENQUEUE_CHECK_REPLY_MAX + 400];

	guard_enter(&s->guard);
	s->check_id = 0;
	if (s->state != SESSION_ST_WAIT) {
		/* closing meanwhile: the recipient gets no answer */
		free(sr->addr);
		free(sr->orcpt);
		memset(sr, 0, sizeof(*sr));
		session_leave(s);
		return;
	}
	session_set_state(s, s->resume_state);
	switch (message_check_verdict(s->env->cfg, result, res, s->client,
				      sr->addr, &sr->suppressed_reply, refusal,
				      sizeof(refusal))) {
	case MESSAGE_CHECK_REFUSE:
		s->env->stats.rejected[ROUTER_REJECT_SUPPRESSED]++;
		session_reply(s, "%s", refusal);
		free(sr->addr);
		free(sr->orcpt);
		memset(sr, 0, sizeof(*sr));
		break;
	case MESSAGE_CHECK_ACCEPT:
	case MESSAGE_CHECK_BOUNCE:
		session_add_rcpt(s);
		break;
	}
	session_process(s);
	session_leave(s);
}

void
session_cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	const struct config *cfg = s->env->cfg;
	char norm[SUPPRESS_ADDR_MAX + 1];
	struct smtp_rcpt r;
	struct session_rcpt *sr;
	bool is_postmaster;
	int rc;

	rc = smtp_rcpt_parse(cmd->arg, cmd->arg_len, s->mail.smtputf8, &r);
	/* RFC 5321 4.5.1: our postmaster takes mail from anyone */
	is_postmaster =
		rc == 0 && smtp_addr_is_postmaster(&r.to, cfg->router.hostname);
	/* every other recipient is remote to us: an outsider gets the same
	 * answer for any of them, whatever shape the address has */
	if (!is_postmaster && !s->is_relay_client && !s->is_authed) {
		char q[LOG_QUOTE_BUF];

		log_info("client=%s event=relay_denied rcpt=%s", s->client,
			 log_quote(q, sizeof(q), cmd->arg, cmd->arg_len));
		s->env->stats.rejected[ROUTER_REJECT_RELAY_DENIED]++;
		session_reply_error(s, "554 5.7.1 Relay access denied");
		return;
	}
	if (rc != 0) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, smtp_cmd_strerror(rc, SMTP_VERB_RCPT));
		return;
	}
	if (!is_postmaster &&
	    (r.to.mailbox[0] == '\0' || r.to.domain[0] == '\0')) {
		s->env->stats.rejected[ROUTER_REJECT_BAD_RECIPIENT]++;
		session_reply_error(s, "550 5.1.1 No local mailboxes here: "
				       "recipient needs a domain");
		return;
	}
	if (s->n_rcpts >= cfg->router.max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452, the client sends the rest later */
		s->env->stats.rejected[ROUTER_REJECT_TOO_MANY_RECIPIENTS]++;
		session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	sr = &s->checking;
	if (is_postmaster) {
		/* the operator's postmaster, through the normal path */
		log_info("client=%s event=postmaster rcpt=<%s> to=<%s>",
			 s->client, r.to.mailbox, cfg->router.postmaster);
		sr->addr = xstrdup(cfg->router.postmaster);
	} else {
		sr->addr = xstrdup(r.to.mailbox);
	}
	sr->notify = r.notify;
	sr->orcpt = r.orcpt[0] ? xstrdup(r.orcpt) : NULL;
	sr->suppressed_reply = NULL;
	if (cfg->suppression.enabled &&
	    suppress_addr_norm(sr->addr, strlen(sr->addr), norm) == 0) {
		/* park until the owner of the address's shard answers */
		s->resume_state = s->state;
		session_set_state(s, SESSION_ST_WAIT);
		s->check_id = enqueue_check(s->env->enq, norm,
					    cfg->suppression.check_timeout_ms,
					    session_on_checked, s);
		return;
	}
	session_add_rcpt(s);
}

void
session_cmd_rset(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reset_txn(s);
	session_cmd_ok(s);
	session_reply(s, "250 2.0.0 Ok");
}

void
session_cmd_noop(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_cmd_ok(s);
	session_reply(s, "250 2.0.0 Ok");
}

void
session_cmd_quit(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "221 2.0.0 Bye");
	session_cmd_ok(s);
	session_close_after_reply(s);
}

void
session_cmd_vrfy(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: we cannot verify, but will try delivery */
	session_cmd_ok(s);
	session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept "
			 "message and attempt delivery");
}

void
session_cmd_expn(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply_error(s, "502 5.5.1 Error: EXPN is disabled");
}

void
session_cmd_help(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_cmd_ok(s);
	session_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT");
	session_reply(s, "214-2.0.0 RSET NOOP QUIT VRFY HELP");
	session_reply(s, "214 2.0.0 See RFC 5321");
}

/* STARTTLS where it is not offered (no certificate, or a listener with
 * tls = "none"): 502, the reply RFC 5321 4.2.4 gives for a command the
 * server does not offer (the wording is Postfix's). Deliberate, complete
 * behaviour: EHLO does not advertise STARTTLS there either. */
static void
session_cmd_not_offered(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply_error(s, "502 5.5.1 Error: command not implemented");
}

/* RFC 3207. Whatever the client sent after the command line is thrown
 * away before the handshake (CVE-2011-0411: commands pipelined in
 * plaintext must not run inside TLS), and the session starts over: the
 * client must say EHLO again. */
void
session_cmd_starttls(struct session *s, const struct smtp_cmd *cmd)
{
	if (!session_offers_starttls(s) && !s->is_tls) {
		session_cmd_not_offered(s, cmd);
		return;
	}
	if (s->is_tls) {
		session_reply_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (cmd->arg_len != 0) {
		session_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (session_start_tls(s) != 0)
		return;
	/* RFC 3207 4.2: forget everything the client said before */
	s->is_esmtp = false;
	s->is_authed = false;
	s->auth_user[0] = '\0';
	snprintf(s->helo, sizeof(s->helo), "unknown");
	session_reset_txn(s);
	session_cmd_ok(s);
	log_debug(LOG_SUB_SMTP, "client=%s event=starttls", s->client);
}
