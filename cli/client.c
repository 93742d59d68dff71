/* Request/reply over ZeroMQ DEALER sockets with a deadline (zmq_poll).
 * Owns the framing and the request ids; knows nothing of what the requests
 * mean. Handles untrusted input: whatever the node endpoint sends back. */
#include "cli/client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "lib/clock.h"
#include "lib/curve.h"
#include "lib/log.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"

#define CLIENT_NODE_ID_MAX 255   /* longer node_id in a reply: malformed */

struct client {
	void *sock;
	int timeout_ms;
	uint64_t next_id;     /* request ids on this socket */
	uint64_t pending_id;  /* the request awaiting its reply, or 0 */
	int err;              /* sticky failure, 0 while usable */
};

static int64_t
client_now_ms(void)
{
	return (int64_t)clock_mono_ms();
}

int
client_new(void *zctx, const char *endpoint, int timeout_ms,
	   struct client **out)
{
	struct client *c;
	int linger = 0;
	int64_t max = WIRE_META_MAX;
	int rc;

	c = xcalloc(1, sizeof(*c));
	c->timeout_ms = timeout_ms;
	c->next_id = 1;
	c->sock = zmq_socket(zctx, ZMQ_DEALER);
	if (c->sock == NULL) {
		rc = -errno;
		goto fail;
	}
	rc = curve_client(c->sock);	/* logged */
	if (rc != 0)
		goto fail;
	if (zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof(linger)) != 0) {
		rc = -errno;
		log_error("zmq op=setsockopt option=ZMQ_LINGER error=\"%s\"",
			  zmq_strerror(-rc));
		goto fail;
	}
	if (zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0) {
		rc = -errno;
		log_error("zmq op=setsockopt option=ZMQ_MAXMSGSIZE "
			  "error=\"%s\"", zmq_strerror(-rc));
		goto fail;
	}
	if (zmq_connect(c->sock, endpoint) != 0) {
		rc = -errno;
		goto fail;
	}
	*out = c;
	return 0;
fail:
	client_free(c);
	return rc;
}

void
client_free(struct client *c)
{
	if (c == NULL)
		return;
	if (c->sock != NULL)
		zmq_close(c->sock);
	free(c);
}

static int
client_send(struct client *c, Shoal__AdminRequest *req)
{
	size_t len;
	void *p;
	int rc = 0;

	req->request_id = c->next_id++;
	len = shoal__admin_request__get_packed_size(req);
	p = xmalloc(len ? len : 1);
	shoal__admin_request__pack(req, p);
	/* a DEALER queues for a peer it is still connecting to; EAGAIN only
	 * when that queue is full */
	if (zmq_send(c->sock, WIRE_TAG_ADMIN, WIRE_TAG_LEN,
		     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(c->sock, p, len, ZMQ_DONTWAIT) < 0)
		rc = -errno;
	free(p);
	if (rc == 0)
		c->pending_id = req->request_id;
	return rc;
}

/* Whether r is a well-formed answer to the pending request. A reply with
 * id 0 is the node saying it could not read our request. */
static bool
client_reply_ok(const struct client *c, const Shoal__AdminReply *r)
{
	if (r->request_id != c->pending_id &&
	    !(r->request_id == 0 &&
	      r->status == SHOAL__STATUS__STATUS_BAD_REQUEST))
		return false;
	if ((unsigned)r->status > SHOAL__STATUS__STATUS_INTERNAL)
		return false;
	return strnlen(r->node_id, CLIENT_NODE_ID_MAX + 1) <=
	       CLIENT_NODE_ID_MAX;
}

/* Read what is waiting on c. Returns 1 with *out set, 0 when no reply for
 * the pending request is there yet, or an error. Replies to requests we
 * gave up on are dropped. */
static int
client_read(struct client *c, Shoal__AdminReply **out)
{
	for (;;) {
		Shoal__AdminReply *r;
		zmq_msg_t m;
		int more = 0;
		size_t more_len = sizeof(more);

		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
			int rc = errno == EAGAIN ? 0 : -errno;

			zmq_msg_close(&m);
			return rc;
		}
		zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
		if (more) {
			/* one frame expected: drop the rest of this one */
			zmq_msg_close(&m);
			while (more) {
				zmq_msg_init(&m);
				if (zmq_msg_recv(&m, c->sock, 0) < 0)
					more = 0;
				else
					zmq_getsockopt(c->sock, ZMQ_RCVMORE,
						       &more, &more_len);
				zmq_msg_close(&m);
			}
			return -EPROTO;
		}
		r = shoal__admin_reply__unpack(NULL, zmq_msg_size(&m),
					       zmq_msg_data(&m));
		zmq_msg_close(&m);
		if (r == NULL)
			return -EPROTO;
		if (r->request_id != c->pending_id && r->request_id != 0) {
			/* stale: an answer to an earlier request */
			shoal__admin_reply__free_unpacked(r, NULL);
			continue;
		}
		if (!client_reply_ok(c, r)) {
			shoal__admin_reply__free_unpacked(r, NULL);
			return -EPROTO;
		}
		*out = r;
		return 1;
	}
}

void
client_exchange(struct client *const *cs, Shoal__AdminRequest *const *reqs,
		size_t n, Shoal__AdminReply **replies, int *errs)
{
	zmq_pollitem_t *items = xcalloc(n ? n : 1, sizeof(*items));
	size_t *which = xcalloc(n ? n : 1, sizeof(*which));
	int64_t deadline = 0;
	size_t waiting = 0;

	for (size_t i = 0; i < n; i++) {
		struct client *c = cs[i];
		int64_t d;

		replies[i] = NULL;
		errs[i] = c->err;
		if (c->err == 0)
			errs[i] = c->err = client_send(c, reqs[i]);
		if (errs[i] != 0)
			continue;
		waiting++;
		d = client_now_ms() + c->timeout_ms;
		if (d > deadline)
			deadline = d;
	}
	while (waiting > 0) {
		size_t k = 0;
		int64_t left = deadline - client_now_ms();
		int rc;

		for (size_t i = 0; i < n; i++) {
			if (errs[i] != 0 || replies[i] != NULL)
				continue;
			items[k].socket = cs[i]->sock;
			items[k].events = ZMQ_POLLIN;
			items[k].revents = 0;
			which[k++] = i;
		}
		if (left <= 0)
			break;
		rc = zmq_poll(items, (int)k, (long)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			rc = -errno;
			for (size_t x = 0; x < k; x++)
				errs[which[x]] = cs[which[x]]->err = rc;
			waiting = 0;
			break;
		}
		for (size_t x = 0; x < k; x++) {
			size_t i = which[x];
			struct client *c = cs[i];

			if (!(items[x].revents & ZMQ_POLLIN))
				continue;
			rc = client_read(c, &replies[i]);
			if (rc == 0)
				continue;
			waiting--;
			if (rc < 0)
				errs[i] = c->err = rc;
			else
				c->pending_id = 0;
		}
	}
	/* whoever is still waiting ran out of time */
	for (size_t i = 0; i < n; i++)
		if (errs[i] == 0 && replies[i] == NULL)
			errs[i] = cs[i]->err = -ETIMEDOUT;
	free(items);
	free(which);
}

int
client_call(struct client *c, Shoal__AdminRequest *req,
	    Shoal__AdminReply **out)
{
	Shoal__AdminReply *r;
	int err;

	client_exchange(&c, &req, 1, &r, &err);
	if (err != 0)
		return err;
	*out = r;
	return 0;
}

const char *
client_strerror(int err)
{
	switch (err) {
	case -ETIMEDOUT:
		return "timeout";
	case -EPROTO:
		return "malformed reply";
	default:
		return zmq_strerror(-err);
	}
}
