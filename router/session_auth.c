/* SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms:
 * the command, the 334 dialog, and the verdict. Offered only under TLS,
 * or in plaintext to a loopback client on a listener that allows it
 * (auth_plaintext). The password is checked off the loop (router/auth.c
 * hashes it on a worker thread): the session waits in SESSION_ST_WAIT for
 * the verdict. A failure is answered after a delay that grows with the
 * client address's recent failures (router/auth.c); a response that is
 * not even well-formed is answered at once, without a hash, and counted
 * as a failure too. Untrusted input: every response line is bounded and
 * strictly base64. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "router/auth.h"
#include "router/session_auth.h"

#define AUTH_LINE_MAX 12288          /* RFC 4954 4: a response line */

static const char *const sa_mech_names[] = { "", "PLAIN", "LOGIN", "LOGIN" };

bool
session_auth_offered(const struct session *s)
{
	return auth_offered(s->env->auth, s->ls, s->is_tls, s->client);
}

/* A failure's 535, after its delay. */
static void
sa_on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	guard_enter(&s->guard);
	if (s->state == SESSION_ST_WAIT) {	/* else closing: say nothing */
		session_set_state(s, SESSION_ST_HELO);
		s->env->stats.rejected[ROUTER_REJECT_AUTH_FAILED]++;
		session_reply_error(s, "535 5.7.8 Error: authentication "
				       "failed");
		session_process(s);
	}
	session_leave(s);
}

/* A failed attempt: logged now, answered after delay_ms (auth_failed()).
 * No input is read meanwhile: the state holds the session. */
static void
sa_fail(struct session *s, const char *user, uint32_t delay_ms)
{
	struct timeval tv = { delay_ms / 1000,
			      (suseconds_t)(delay_ms % 1000) * 1000 };
	char q[LOG_QUOTE_BUF];

	log_quote(q, sizeof(q), user, strlen(user));
	s->env->stats.auth_failed++;
	log_warn("client=%s event=auth result=failed mech=%s user=%s "
		 "delay_ms=%u",
		 s->client, sa_mech_names[s->auth_step], q, delay_ms);
	s->auth_step = SESSION_AUTH_NONE;
	session_set_state(s, SESSION_ST_WAIT);
	if (s->auth_timer == NULL)
		s->auth_timer = evtimer_new(s->env->base, sa_on_delay, s);
	evtimer_add(s->auth_timer, &tv);
}

/* A response that names no credentials to check (not base64, fields
 * missing): answered at once, without a hash, but counted as a failure
 * of the client address like any other. */
static void
sa_malformed(struct session *s, const char *user, const char *reply)
{
	char q[LOG_QUOTE_BUF];

	(void)auth_failed(s->env->auth, s->client);
	s->env->stats.auth_failed++;
	log_quote(q, sizeof(q), user, strlen(user));
	log_warn("client=%s event=auth result=failed mech=%s user=%s "
		 "reason=malformed",
		 s->client, sa_mech_names[s->auth_step], q);
	s->auth_step = SESSION_AUTH_NONE;
	session_set_state(s, SESSION_ST_HELO);
	session_reply_error(s, reply);
}

/* The password check's verdict (router/auth.c, on the loop thread). */
static void
sa_on_checked(void *ctx, void *arg, const struct auth_result *r)
{
	struct session_env *env = ctx;
	struct session *s = arg;
	char q[LOG_QUOTE_BUF];

	if (s == NULL) {
		/* the client left before the verdict: still one to log */
		if (!r->is_ok) {
			env->stats.auth_failed++;
			log_quote(q, sizeof(q), r->user, strlen(r->user));
			log_warn("client=%s event=auth result=failed user=%s "
				 "note=\"client gone\"",
				 r->client, q);
		}
		return;
	}
	guard_enter(&s->guard);
	if (s->state != SESSION_ST_WAIT) {
		/* closing meanwhile (timeout, shutdown): nothing to say */
		s->auth_step = SESSION_AUTH_NONE;
	} else if (r->is_ok) {
		log_quote(q, sizeof(q), r->user, strlen(r->user));
		s->is_authed = true;
		env->stats.auth_ok++;
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", r->user);
		log_info("client=%s event=auth result=ok mech=%s user=%s",
			 s->client, sa_mech_names[s->auth_step], q);
		s->auth_step = SESSION_AUTH_NONE;
		session_set_state(s, SESSION_ST_HELO);
		session_reply(s, "235 2.7.0 Authentication successful");
		session_process(s);
	} else {
		sa_fail(s, r->user, r->delay_ms);
	}
	session_leave(s);
}

/* Hand user/pass to the password check; the session waits for its
 * verdict (sa_on_checked), reading nothing meanwhile. */
static void
sa_check(struct session *s, const char *user, const char *pass)
{
	if (auth_check_start(s->env->auth, s->client, user, pass,
			     sa_on_checked, s->env, s) != 0) {
		/* every hashing thread busy, a queue full: come back later */
		s->auth_step = SESSION_AUTH_NONE;
		session_set_state(s, SESSION_ST_HELO);
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	session_set_state(s, SESSION_ST_WAIT);
}

/* A PLAIN response: [authzid] NUL authcid NUL passwd. */
static void
sa_plain(struct session *s, const char *b64, size_t len)
{
	char buf[AUTH_USER_MAX * 2 + AUTH_PASS_MAX + 3];
	int n = auth_b64_decode(b64, len, buf, sizeof(buf) - 1);
	const char *authz, *user, *pass;
	size_t zl, ul;

	if (n < 0) {
		sa_malformed(s, "", "501 5.5.2 Error: cannot decode response");
		return;
	}
	authz = buf;
	zl = strnlen(authz, (size_t)n);
	user = authz + zl + 1;
	ul = (size_t)n > zl ? strnlen(user, (size_t)n - zl - 1) : 0;
	pass = user + ul + 1;
	if ((size_t)n <= zl + 1 || (size_t)n <= zl + ul + 1 ||
	    strnlen(pass, (size_t)n - zl - ul - 2) != (size_t)n - zl - ul - 2) {
		sa_malformed(s, ul ? user : "", "501 5.5.2 Error: malformed "
						"PLAIN response");
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	if (zl > 0 && (zl != ul || memcmp(authz, user, zl) != 0)) {
		/* asking to act as someone else: refused, nothing to hash */
		sa_fail(s, user, auth_failed(s->env->auth, s->client));
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	sa_check(s, user, pass);
	explicit_bzero(buf, sizeof(buf));
}

/* One line of the 334 dialog. */
static void
sa_response(struct session *s, const char *line, size_t len)
{
	char user[AUTH_USER_MAX + 1];
	char *pass;

	if (len == 1 && line[0] == '*') {
		s->auth_step = SESSION_AUTH_NONE;
		session_set_state(s, SESSION_ST_HELO);
		session_reply_error(s, "501 5.0.0 Error: authentication "
				       "cancelled");
		return;
	}
	switch (s->auth_step) {
	case SESSION_AUTH_PLAIN:
		sa_plain(s, line, len);
		break;
	case SESSION_AUTH_LOGIN_USER:
		if (auth_b64_decode(line, len, user, sizeof(user) - 1) < 0) {
			sa_malformed(s, "", "501 5.5.2 Error: cannot decode "
					    "response");
			return;
		}
		snprintf(s->auth_login_user, sizeof(s->auth_login_user), "%s",
			 user);
		s->auth_step = SESSION_AUTH_LOGIN_PASS;
		session_reply(s, "334 UGFzc3dvcmQ6");
		break;
	default:
		pass = xmalloc(AUTH_PASS_MAX + 1);
		if (auth_b64_decode(line, len, pass, AUTH_PASS_MAX) < 0)
			sa_malformed(s, s->auth_login_user,
				     "501 5.5.2 Error: cannot decode response");
		else
			sa_check(s, s->auth_login_user, pass);
		explicit_bzero(pass, AUTH_PASS_MAX + 1);
		free(pass);
		break;
	}
}

bool
session_auth_read(struct session *s, struct evbuffer *in)
{
	struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
	size_t avail = evbuffer_get_length(in);
	char *line;
	size_t len;

	if (lf.pos < 0 && avail <= AUTH_LINE_MAX)
		return false;
	if (lf.pos < 0 || (size_t)lf.pos >= AUTH_LINE_MAX) {
		/* RFC 4954 4: refuse the line once; the rest of it, however
		 * long, is skipped by the command reader (skipping_line), as
		 * for an over-long command, so nothing on it is run */
		s->auth_step = SESSION_AUTH_NONE;
		session_set_state(s, SESSION_ST_HELO);
		s->skipping_line = lf.pos < 0;
		evbuffer_drain(in, lf.pos < 0 ? avail : (size_t)lf.pos + 1);
		s->env->stats.rejected[ROUTER_REJECT_BAD_SYNTAX]++;
		session_reply_error(s, "500 5.5.6 Error: authentication "
				       "exchange line is too long");
		return true;
	}
	len = (size_t)lf.pos + 1;
	line = xmalloc(len + 1);
	evbuffer_remove(in, line, len);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	line[len] = '\0';
	sa_response(s, line, len);
	memset(line, 0, len);
	free(line);
	return true;
}

void
session_auth_end(struct session *s)
{
	if (s->env->auth != NULL)
		auth_check_forget(s->env->auth, s);
}

void
session_cmd_auth(struct session *s, const struct smtp_cmd *cmd)
{
	char mech[16];
	const char *init = NULL;
	size_t n = strcspn(cmd->arg, " "), init_len = 0;

	if (s->env->auth == NULL || s->ls->auth == CFG_AUTH_NONE) {
		session_reply_error(s, "502 5.5.1 Error: command not "
				       "implemented");
		return;
	}
	if (!session_auth_offered(s)) {
		s->env->stats.rejected[ROUTER_REJECT_TLS_REQUIRED]++;
		session_reply_error(s, "538 5.7.11 Encryption required for "
				       "requested authentication mechanism");
		return;
	}
	if (s->is_authed) {
		session_reply_error(s, "503 5.5.1 Error: already "
				       "authenticated");
		return;
	}
	if (n == 0 || n >= sizeof(mech)) {
		session_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, cmd->arg, n);
	mech[n] = '\0';
	if (cmd->arg[n] == ' ') {
		init = cmd->arg + n + 1;
		init_len = cmd->arg_len - n - 1;
		if (init_len == 1 && init[0] == '=')
			init_len = 0;	/* RFC 4954 4: an empty response */
	}
	if (strcasecmp(mech, "PLAIN") == 0) {
		s->auth_step = SESSION_AUTH_PLAIN;
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->auth_step = SESSION_AUTH_LOGIN_USER;
	} else {
		session_reply_error(s, "504 5.5.4 Error: unrecognized "
				       "authentication type");
		return;
	}
	session_cmd_ok(s); /* the 334 dialog */
	if (init != NULL) {
		sa_response(s, init, init_len);
		return;
	}
	session_reply(s, s->auth_step == SESSION_AUTH_PLAIN ? "334 " :
							      "334 VXNlcm5hbWU6");
}
