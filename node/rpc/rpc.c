/* The node's front socket, its CURVE admission and the dispatch of each
 * message by link tag; tickets and replies (node/rpc/rpc.h).
 * Handles untrusted input: a message without a known tag is logged and
 * dropped, and a ZAP request is judged by the client's key alone. */
#include "node/rpc/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/curve.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/wire.h"
#include "lib/xmalloc.h"
#include "lib/zsock.h"

#define RPC_LINKS_MAX 8 /* link tags served (lib/wire.h has four) */

struct rpc_link {
	char tag[WIRE_TAG_LEN];
	rpc_handler_fn fn;
	void *arg;
};

struct rpc {
	const char *node_id;	/* borrowed from the config */
	struct zsock *front;	/* ROUTER at the node's endpoint */
	struct zsock *zap;	/* CURVE admission, or NULL */
	struct rpc_link links[RPC_LINKS_MAX];
	size_t n_links;
};

static void
rpc_on_msg(struct zsock *zs, zmq_msg_t *frames, size_t nframes, void *arg)
{
	struct rpc *r = arg;

	(void)zs;
	if (nframes < 3 || zmq_msg_size(&frames[1]) != WIRE_TAG_LEN) {
		log_warn("zmq event=bad_message reason=\"no link tag\" frames=%zu",
			 nframes);
		return;
	}
	for (size_t i = 0; i < r->n_links; i++)
		if (memcmp(zmq_msg_data(&frames[1]), r->links[i].tag,
			   WIRE_TAG_LEN) == 0) {
			r->links[i].fn(r->links[i].arg, frames, nframes);
			return;
		}
	log_warn("zmq event=bad_message reason=\"unknown link tag\"");
}

/* A ZAP request (RFC 27): version, id, domain, address, identity,
 * mechanism, then for CURVE the client's public key. */
static void
rpc_on_zap(struct zsock *zs, zmq_msg_t *frames, size_t nframes, void *arg)
{
	struct rpc *r = arg;
	bool ok = nframes == 7 && zmq_msg_size(&frames[5]) == 5 &&
		  memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) == 0 &&
		  curve_client_allowed(zmq_msg_data(&frames[6]),
				       zmq_msg_size(&frames[6]));
	const void *bufs[6] = { "1.0", NULL, ok ? "200" : "400",
				ok ? "OK" : "not a cluster key", "", "" };
	size_t lens[6] = { 3, 0, 3, ok ? 2 : 17, 0, 0 };

	if (nframes < 2)
		return;
	bufs[1] = zmq_msg_data(&frames[1]);
	lens[1] = zmq_msg_size(&frames[1]);
	if (!ok)
		log_warn("node id=%s event=refused_client reason=\"no cluster "
			 "key\"",
			 r->node_id);
	zsock_send(zs, bufs, lens, 6, NULL);
}

/* Loopback, IPC or in-process: nothing to encrypt. */
static bool
rpc_is_local(const char *ep)
{
	return strncmp(ep, "tcp://127.", 10) == 0 ||
	       strncmp(ep, "tcp://[::1]", 11) == 0 ||
	       strncmp(ep, "tcp://localhost:", 16) == 0 ||
	       strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0;
}

/* Whether the host of a tcp:// endpoint is a name rather than an IP
 * literal or "*": ZeroMQ binds only to addresses and interfaces, never to
 * a DNS name (zmq_bind fails with ENODEV). */
static bool
rpc_is_host_name(const char *ep)
{
	const char *h = ep + 6, *port = strrchr(ep, ':');
	char host[256];
	unsigned char bin[4];
	size_t len = (size_t)(port - h);

	if (h[0] == '[' || h[0] == '*' || len == 0 || len >= sizeof(host))
		return false;
	memcpy(host, h, len);
	host[len] = '\0';
	return inet_pton(AF_INET, host, bin) != 1;
}

/* Where to bind: the endpoint; without CURVE keys only its port on
 * loopback (unencrypted links stay on this host), with a warning. An
 * endpoint named by host name (Kubernetes: pod-0.service) binds the port
 * on every interface, with CURVE, or on loopback without it
 * ("localhost"). */
static const char *
rpc_bind_endpoint(const char *ep, char *buf, size_t len)
{
	const char *port = strrchr(ep, ':');

	if (strncmp(ep, "tcp://", 6) != 0 || port == NULL)
		return ep;
	if (strncmp(ep, "tcp://localhost:", 16) == 0) {
		snprintf(buf, len, "tcp://127.0.0.1%s", port);
		return buf;
	}
	if (curve_on() && rpc_is_host_name(ep)) {
		snprintf(buf, len, "tcp://*%s", port);
		log_info("node endpoint=%s event=bind bound=%s note=\"a host "
			 "name: listening on every interface\"", ep, buf);
		return buf;
	}
	if (curve_on() || rpc_is_local(ep))
		return ep;
	snprintf(buf, len, "tcp://127.0.0.1%s", port);
	log_warn("node endpoint=%s event=unencrypted bound=%s note=\"without "
		 "cluster.curve_keys the node listens on loopback only: set it "
		 "(shoalctl keygen) to serve other hosts\"",
		 ep, buf);
	return buf;
}

int
rpc_open(struct event_base *base, void *zctx, const char *node_id,
	 const char *endpoint, int64_t max_msg, struct rpc **out)
{
	struct rpc *r = xcalloc(1, sizeof(*r));
	char local[300];
	int rc;

	r->node_id = node_id;
	r->front = zsock_new(base, zctx, ZMQ_ROUTER, max_msg, rpc_on_msg, NULL,
			     r);
	if (r->front == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (curve_on()) {
		/* ZAP: only clients holding the cluster's keys get in */
		r->zap = zsock_new(base, zctx, ZMQ_REP, 4096, rpc_on_zap, NULL,
				   r);
		if (r->zap == NULL ||
		    zsock_bind(r->zap, "inproc://zeromq.zap.01") != 0) {
			rc = -EIO;
			goto fail;
		}
	}
	rc = zsock_bind(r->front,
			rpc_bind_endpoint(endpoint, local, sizeof(local)));
	if (rc != 0)
		goto fail;
	*out = r;
	return 0;
fail:
	rpc_close(r);
	return rc;
}

void
rpc_close(struct rpc *r)
{
	if (r == NULL)
		return;
	zsock_free(r->front);
	zsock_free(r->zap);
	free(r);
}

void
rpc_on(struct rpc *r, const char *tag, rpc_handler_fn fn, void *arg)
{
	SHOAL_ASSERT(strlen(tag) == WIRE_TAG_LEN && r->n_links < RPC_LINKS_MAX);
	memcpy(r->links[r->n_links].tag, tag, WIRE_TAG_LEN);
	r->links[r->n_links].fn = fn;
	r->links[r->n_links].arg = arg;
	r->n_links++;
}

int
rpc_ticket_set(struct rpc_ticket *t, const zmq_msg_t *id_frame,
	       uint64_t request_id)
{
	size_t len = zmq_msg_size((zmq_msg_t *)id_frame);

	if (len == 0 || len > RPC_ID_MAX)
		return -EPROTO;
	memcpy(t->id, zmq_msg_data((zmq_msg_t *)id_frame), len);
	t->id_len = len;
	t->request_id = request_id;
	return 0;
}

int
rpc_reply(struct rpc *r, const struct rpc_ticket *t, const void *payload,
	  size_t len)
{
	return rpc_reply_tail(r, t, payload, len, NULL);
}

int
rpc_reply_tail(struct rpc *r, const struct rpc_ticket *t, const void *payload,
	       size_t len, zmq_msg_t *tail)
{
	const void *bufs[3] = { t->id, payload, NULL };
	size_t lens[3] = { t->id_len, len, 0 };
	int rc = zsock_send(r->front, bufs, lens, tail ? 3 : 2, tail);

	if (rc != 0)
		log_debug(LOG_SUB_ZMQ, "zmq event=reply_dropped error=\"%s\"",
			  shoal_strerror(rc));
	return rc;
}

int
rpc_reply_admin(struct rpc *r, const struct rpc_ticket *t,
		Shoal__AdminReply *rep)
{
	size_t n;
	void *p;
	int rc;

	rep->request_id = t->request_id;
	if (shoal__admin_reply__get_packed_size(rep) > WIRE_META_MAX) {
		log_warn("admin request_id=%llu event=reply_too_large",
			 (unsigned long long)t->request_id);
		rep->body_case = SHOAL__ADMIN_REPLY__BODY__NOT_SET;
		rep->status = SHOAL__STATUS__STATUS_INTERNAL;
		rep->message = (char *)"reply too large";
	}
	n = shoal__admin_reply__get_packed_size(rep);
	p = xmalloc(n ? n : 1);
	shoal__admin_reply__pack(rep, p);
	rc = rpc_reply(r, t, p, n);
	free(p);
	return rc;
}
