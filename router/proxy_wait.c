/* The waiting room for PROXY protocol headers. Each connection peeks at
 * what the socket holds, lets router/proxy.c judge it, and takes from the
 * socket only octets that belong to the header: whatever the client sent
 * after it (pipelined SMTP, a TLS ClientHello) stays in the kernel's
 * buffer for the session to read, so nothing is lost and implicit TLS
 * starts on the right octet. At most PROXY_HDR_MAX octets are ever held
 * per connection, and one absolute deadline covers the whole header (a
 * client trickling an octet at a time gets no more time). Untrusted
 * input: every refusal is one log line naming the peer and the reason. */
#include "router/proxy_wait.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/cidr.h"
#include "lib/clock.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "router/proxy.h"

#define PROXY_WAIT_EMPTY "closed without a header"

struct proxy_conn {
	struct proxy_wait *w;
	struct proxy_conn *prev, *next;
	struct event *ev; /* readable, or the deadline */
	int fd;
	void *ctx;
	const char *listen_addr;
	struct sockaddr_storage peer;
	int peer_len;
	char peer_str[64];
	uint64_t deadline_ms; /* monotonic */
	size_t have;	      /* octets of buf taken off the socket */
	uint8_t buf[PROXY_HDR_MAX];
};

struct proxy_wait {
	struct event_base *base;
	unsigned timeout_ms;
	proxy_wait_done_fn *done;
	void *arg;
	struct proxy_conn *head;
	unsigned n;
};

struct proxy_wait *
proxy_wait_new(struct event_base *base, unsigned timeout_ms,
	       proxy_wait_done_fn *done, void *arg)
{
	struct proxy_wait *w = xcalloc(1, sizeof(*w));

	w->base = base;
	w->timeout_ms = timeout_ms;
	w->done = done;
	w->arg = arg;
	return w;
}

unsigned
proxy_wait_count(const struct proxy_wait *w)
{
	return w->n;
}

/* Unlink and free c; close its socket unless it was handed on. */
static void
proxy_conn_free(struct proxy_conn *c, bool close_fd)
{
	struct proxy_wait *w = c->w;

	if (c->prev)
		c->prev->next = c->next;
	else
		w->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n--;
	event_free(c->ev);
	if (close_fd)
		evutil_closesocket(c->fd);
	free(c);
}

/* Wait for more, until what is left of the deadline. */
static void
proxy_conn_rearm(struct proxy_conn *c)
{
	uint64_t now = clock_mono_ms();
	uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
	struct timeval tv = { (time_t)(left / 1000),
			      (suseconds_t)(left % 1000) * 1000 };

	event_add(c->ev, &tv);
}

/* Close c with one log line: a warning, except for a peer that left
 * without sending anything (a plain TCP health check, a port scan). */
static void
proxy_conn_refuse(struct proxy_conn *c, const char *reason)
{
	char q[LOG_QUOTE_BUF];

	log_quote(q, sizeof(q), (const char *)c->buf,
		  c->have < 64 ? c->have : 64);
	if (c->have == 0 && strcmp(reason, PROXY_WAIT_EMPTY) == 0)
		log_info("client=%s listener=%s event=proxy_refused "
			 "reason=\"%s\"",
			 c->peer_str, c->listen_addr, reason);
	else
		log_warn("client=%s listener=%s event=proxy_refused "
			 "reason=\"%s\" octets=%zu head=%s",
			 c->peer_str, c->listen_addr, reason, c->have, q);
	proxy_conn_free(c, true);
}

/* Take k octets that recv(MSG_PEEK) showed at buf + have off the socket.
 * Returns false (and the connection is gone) if they are not all there. */
static bool
proxy_conn_take(struct proxy_conn *c, size_t k)
{
	ssize_t got;

	do
		got = recv(c->fd, c->buf + c->have, k, 0);
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)k) {
		/* only we read this socket: the peeked octets cannot vanish */
		log_warn_errno("client=%s event=proxy_refused reason=\"read "
			       "%zd of %zu peeked octets\"",
			       c->peer_str, got, k);
		proxy_conn_free(c, true);
		return false;
	}
	c->have += k;
	return true;
}

static void
proxy_conn_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_conn *c = arg;
	struct proxy_wait *w = c->w;
	struct proxy_hdr h;
	const struct sockaddr *client;
	int client_len, rc;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		proxy_conn_refuse(c, c->have ? "header incomplete at deadline" :
					       "no header before deadline");
		return;
	}
	do
		n = recv(fd, c->buf + c->have, sizeof(c->buf) - c->have,
			 MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		proxy_conn_rearm(c);
		return;
	}
	if (n < 0) {
		proxy_conn_refuse(c, strerror(errno));
		return;
	}
	if (n == 0) {
		proxy_conn_refuse(c, c->have ?
					     "closed before the header ended" :
					     PROXY_WAIT_EMPTY);
		return;
	}
	rc = proxy_parse(c->buf, c->have + (size_t)n, &h);
	if (rc == PROXY_NEED_MORE) {
		/* every octet so far is header: take them all */
		if (proxy_conn_take(c, (size_t)n))
			proxy_conn_rearm(c);
		return;
	}
	if (rc != PROXY_DONE) {
		c->have += (size_t)n; /* for the log line only */
		proxy_conn_refuse(c, proxy_strerror(rc));
		return;
	}
	/* NEED_MORE at c->have octets: the header is longer than that */
	SHOAL_ASSERT(h.len > c->have && h.len <= c->have + (size_t)n);
	if (!proxy_conn_take(c, h.len - c->have))
		return;
	if (h.has_addr) {
		client = (const struct sockaddr *)&h.src;
		client_len = (int)h.addr_len;
	} else {
		client = (const struct sockaddr *)&c->peer;
		client_len = c->peer_len;
	}
	if (log_enabled(LOG_LVL_DEBUG, LOG_SUB_SMTP)) {
		char addr[64];

		cidr_addr_str(client, addr, sizeof(addr));
		log_debug(LOG_SUB_SMTP,
			  "client=%s proxy=%s event=proxy_header "
			  "version=%d local=%d",
			  addr, c->peer_str, h.version, !h.has_addr);
	}
	w->done(w->arg, c->ctx, c->fd, client, client_len);
	proxy_conn_free(c, false);
}

void
proxy_wait_add(struct proxy_wait *w, int fd, const struct sockaddr *peer,
	       int peer_len, const char *listen_addr, void *ctx)
{
	struct proxy_conn *c = xcalloc(1, sizeof(*c));

	c->w = w;
	c->fd = fd;
	c->ctx = ctx;
	c->listen_addr = listen_addr;
	if (peer_len < 0 || (size_t)peer_len > sizeof(c->peer))
		peer_len = sizeof(c->peer);
	memcpy(&c->peer, peer, (size_t)peer_len);
	c->peer_len = peer_len;
	cidr_addr_str(peer, c->peer_str, sizeof(c->peer_str));
	c->deadline_ms = clock_mono_ms() + w->timeout_ms;
	c->ev = event_new(w->base, fd, EV_READ, proxy_conn_on_event, c);
	SHOAL_ASSERT(c->ev != NULL);
	c->next = w->head;
	if (w->head)
		w->head->prev = c;
	w->head = c;
	w->n++;
	proxy_conn_rearm(c);
}

void
proxy_wait_clear(struct proxy_wait *w)
{
	if (w->n > 0)
		log_info("proxy event=closed_waiting connections=%u", w->n);
	while (w->head)
		proxy_conn_free(w->head, true);
}

void
proxy_wait_free(struct proxy_wait *w)
{
	if (w == NULL)
		return;
	while (w->head)
		proxy_conn_free(w->head, true);
	free(w);
}
