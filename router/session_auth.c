/* SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms:
 * the command, the 334 dialog, and the verdict. Offered only under TLS,
 * or in plaintext to a loopback client on a listener that allows it
 * (auth_plaintext). A failure is answered after a delay that grows with
 * the client address's recent failures (router/auth.c). Untrusted input:
 * every response line is bounded and strictly base64. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
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

static bool
sa_is_loopback(const struct session *s)
{
	return strncmp(s->client, "127.", 4) == 0 ||
	       strcmp(s->client, "::1") == 0;
}

bool
session_auth_offered(const struct session *s)
{
	if (s->env->auth == NULL || s->ls->auth == CFG_AUTH_NONE)
		return false;
	return s->is_tls || (s->ls->auth_plaintext && sa_is_loopback(s));
}

/* Strict base64 into out (NUL-terminated). Returns the decoded length, or
 * -1 for anything that is not base64 of at most max octets. */
static int
sa_decode(const char *in, size_t len, char *out, size_t max)
{
	unsigned char *tmp;
	size_t pad = 0;
	int n;

	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	if (len % 4 != 0 || len / 4 * 3 > max)
		return -1;
	if (in[len - 1] == '=')
		pad++;
	if (len >= 2 && in[len - 2] == '=')
		pad++;
	tmp = malloc(len / 4 * 3 + 1);
	if (tmp == NULL)
		return -1;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(tmp);
		return -1;
	}
	n -= (int)pad;
	memcpy(out, tmp, (size_t)n);
	out[n] = '\0';
	free(tmp);
	return n;
}

/* The verdict, after the delay for a failure. */
static void
sa_on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	s->in_callback++;
	session_set_state(s, SESSION_ST_HELO);
	s->env->stats.rejected[ROUTER_REJECT_AUTH_FAILED]++;
	session_reply_error(s, "535 5.7.8 Error: authentication failed");
	session_process(s);
	session_leave(s);
}

static void
sa_finish(struct session *s, const char *user, const char *pass)
{
	const char *mech = sa_mech_names[s->auth_step];
	uint32_t delay;
	struct timeval tv;
	char q[LOG_QUOTE_BUF];

	s->auth_step = SESSION_AUTH_NONE;
	log_quote(q, sizeof(q), user, strlen(user));
	if (auth_check(s->env->auth, user, pass)) {
		s->is_authed = true;
		s->env->stats.auth_ok++;
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", user);
		log_info("client=%s event=auth result=ok mech=%s user=%s",
			 s->client, mech, q);
		session_set_state(s, SESSION_ST_HELO);
		session_reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	delay = auth_failed(s->env->auth, s->client);
	s->env->stats.auth_failed++;
	log_warn("client=%s event=auth result=failed mech=%s user=%s "
		 "delay_ms=%u",
		 s->client, mech, q, delay);
	/* no input is read meanwhile: the state holds the session */
	session_set_state(s, SESSION_ST_WAIT);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	if (s->auth_timer == NULL)
		s->auth_timer = evtimer_new(s->env->base, sa_on_delay, s);
	evtimer_add(s->auth_timer, &tv);
}

/* A PLAIN response: [authzid] NUL authcid NUL passwd. */
static void
sa_plain(struct session *s, const char *b64, size_t len)
{
	char buf[AUTH_USER_MAX * 2 + AUTH_PASS_MAX + 3];
	int n = sa_decode(b64, len, buf, sizeof(buf) - 1);
	const char *authz, *user, *pass;
	size_t zl, ul;

	if (n < 0) {
		s->auth_step = SESSION_AUTH_NONE;
		session_set_state(s, SESSION_ST_HELO);
		session_reply_error(s, "501 5.5.2 Error: cannot decode "
				       "response");
		return;
	}
	authz = buf;
	zl = strnlen(authz, (size_t)n);
	user = authz + zl + 1;
	ul = (size_t)n > zl ? strnlen(user, (size_t)n - zl - 1) : 0;
	pass = user + ul + 1;
	if ((size_t)n <= zl + 1 || (size_t)n <= zl + ul + 1 ||
	    strnlen(pass, (size_t)n - zl - ul - 2) != (size_t)n - zl - ul - 2 ||
	    (zl > 0 && (zl != ul || memcmp(authz, user, zl) != 0))) {
		/* malformed, or asking to act as someone else */
		sa_finish(s, ul ? user : "", "\x01 not a password");
		return;
	}
	sa_finish(s, user, pass);
}

/* One line of the 334 dialog. */
static void
sa_response(struct session *s, const char *line, size_t len)
{
	char user[AUTH_USER_MAX + 1];

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
		if (sa_decode(line, len, user, sizeof(user) - 1) < 0) {
			s->auth_step = SESSION_AUTH_NONE;
			session_set_state(s, SESSION_ST_HELO);
			session_reply_error(s, "501 5.5.2 Error: cannot decode "
					       "response");
			return;
		}
		snprintf(s->auth_login_user, sizeof(s->auth_login_user), "%s",
			 user);
		s->auth_step = SESSION_AUTH_LOGIN_PASS;
		session_reply(s, "334 UGFzc3dvcmQ6");
		break;
	default: {
		char *pass = malloc(AUTH_PASS_MAX + 1);

		if (pass == NULL ||
		    sa_decode(line, len, pass, AUTH_PASS_MAX) < 0) {
			free(pass);
			s->auth_step = SESSION_AUTH_NONE;
			session_set_state(s, SESSION_ST_HELO);
			session_reply_error(s, "501 5.5.2 Error: cannot decode "
					       "response");
			return;
		}
		sa_finish(s, s->auth_login_user, pass);
		memset(pass, 0, AUTH_PASS_MAX + 1);
		free(pass);
		break;
	}
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
	session_set_state(s, SESSION_ST_AUTH);
	if (init != NULL) {
		sa_response(s, init, init_len);
		return;
	}
	session_reply(s, s->auth_step == SESSION_AUTH_PLAIN ? "334 " :
							      "334 VXNlcm5hbWU6");
}
