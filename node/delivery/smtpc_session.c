/* The SMTP client's session before messages (see smtpc_impl.h): the
 * greeting, EHLO with a fall back to HELO, STARTTLS (RFC 3207) and the TLS
 * handshake, then EHLO again; ready() once the connection can take a
 * message. Owns what the server offers (struct smtpc_info) and when TLS
 * must be up; leaves how an SSL is set up and its certificate checked to
 * smtpc_tls.c, the socket and the timeouts to smtpc.c and messages to
 * smtpc_msg.c.
 * Handles untrusted input: EHLO keywords, parsed by smtpc_proto.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "lib/log.h"
#include "node/delivery/smtpc_impl.h"

static bool smtpc_session_ready(struct smtpc *c);
static bool smtpc_session_start_tls(struct smtpc *c);

static void
smtpc_session_ehlo(struct smtpc *c)
{
	char line[300];

	snprintf(line, sizeof(line), "EHLO %s", c->helo);
	smtpc_write(c, line);
	smtpc_enter(c, ST_EHLO);
	c->info.esmtp = c->info.pipelining = c->info.starttls = false;
	c->info.size = c->info.eightbit = c->info.smtputf8 = false;
	c->info.dsn = false;
	c->info.max_size = 0;
}

bool
smtpc_session_on_reply(struct smtpc *c)
{
	struct smtpc_reply *r = &c->cur.reply;
	int cls = r->code / 100;

	switch (c->state) {
	case ST_GREETING:
		c->info.greeting = *r;
		if (cls != 2)
			return smtpc_fail(c, SMTPC_PH_GREETING, r);
		smtpc_session_ehlo(c);
		return true;
	case ST_EHLO:
		if (cls == 2) {
			c->info.esmtp = true;
			break;
		}
		if (r->code == 421)
			return smtpc_fail(c, SMTPC_PH_EHLO, r);
		{
			char line[300];

			snprintf(line, sizeof(line), "HELO %s", c->helo);
			smtpc_write(c, line);
			smtpc_enter(c, ST_HELO);
		}
		return true;
	case ST_HELO:
		if (cls != 2)
			return smtpc_fail(c, SMTPC_PH_EHLO, r);
		break;
	case ST_STARTTLS:
		if (cls != 2) {
			smtpc_tls_refused(c);
			return smtpc_fail(c, SMTPC_PH_TLS, r);
		}
		return smtpc_session_start_tls(c);
	default:
		return smtpc_fail_local(c, "reply in an unexpected state");
	}
	/* EHLO or HELO accepted */
	if (c->tls_wanted && !c->tls_tried && !c->info.tls_active &&
	    c->info.starttls) {
		c->tls_tried = true;
		smtpc_write(c, "STARTTLS");
		smtpc_enter(c, ST_STARTTLS);
		return true;
	}
	if (smtpc_tls_is_required(c) && !c->info.tls_active) {
		/* without a client context TLS cannot happen: never fall
		 * back to plain text for a destination that requires it */
		struct smtpc_reply l;

		smtpc_tls_not_offered(c, &l);
		return smtpc_fail(c, SMTPC_PH_TLS, &l);
	}
	return smtpc_session_ready(c);
}

static bool
smtpc_session_ready(struct smtpc *c)
{
	smtpc_enter(c, ST_READY);
	log_debug(LOG_SUB_SMTP,
		  "mx=%s ip=%s event=ready esmtp=%d pipelining=%d tls=%s",
		  c->info.mx_name, c->info.peer_ip, c->info.esmtp,
		  c->info.pipelining,
		  c->info.tls_active ? c->info.tls_version : "none");
	return smtpc_call_ready(c, true, SMTPC_PH_QUIT, &c->cur.reply);
}

/* 220 to STARTTLS: anything the server sent after it is plaintext that
 * must not be taken as coming over TLS (the client side of
 * CVE-2011-0411), so it is dropped before the handshake. */
static bool
smtpc_session_start_tls(struct smtpc *c)
{
	struct bufferevent *tls;
	SSL *ssl = SSL_new(c->ssl_ctx);
	struct in6_addr a6;
	struct in_addr a4;

	/* what this callback wrote so far goes out in plain text, and
	 * nothing after it may */
	smtpc_flush(c);
	if (ssl == NULL)
		return smtpc_fail_local(c, "cannot create TLS session");
	if (smtpc_tls_prepare(c, ssl) != 0) {
		SSL_free(ssl);
		return smtpc_fail_local(c, "cannot set the TLS session up");
	}
	if (c->info.mx_name[0] && inet_pton(AF_INET, c->info.mx_name, &a4) != 1 &&
	    inet_pton(AF_INET6, c->info.mx_name, &a6) != 1)
		SSL_set_tlsext_host_name(ssl, c->info.mx_name);
	evbuffer_drain(bufferevent_get_input(c->bev),
		       evbuffer_get_length(bufferevent_get_input(c->bev)));
	tls = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
					     BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		SSL_free(ssl);
		return smtpc_fail_local(c, "cannot start TLS");
	}
	c->bev = tls;
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	bufferevent_setcb(tls, smtpc_on_read, smtpc_on_write, smtpc_on_event, c);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	smtpc_enter(c, ST_HANDSHAKE);
	return false; /* nothing more to read on the old buffer */
}

void
smtpc_session_tls_up(struct smtpc *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	struct smtpc_reply r;

	c->info.tls_active = true;
	snprintf(c->info.tls_version, sizeof(c->info.tls_version), "%s",
		 SSL_get_version(ssl));
	snprintf(c->info.tls_cipher, sizeof(c->info.tls_cipher), "%s",
		 SSL_get_cipher_name(ssl));
	if (!smtpc_tls_check(c, ssl, &r)) {
		/* once per connection, before any command over TLS */
		c->quit_on_close = true;
		smtpc_fail(c, SMTPC_PH_TLS, &r);
		return;
	}
	/* RFC 3207 4.2: forget what the server said before; ask again */
	smtpc_session_ehlo(c);
}
