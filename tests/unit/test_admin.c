/* node/ops/admin.c against a real store in a fresh directory, answering
 * through a real front socket (tests/unit/rpc_helper.h): status counts,
 * list filters and paging, show, unknown qids, undecodable requests, and
 * requests handed on with their ticket and answered later. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/qid.h"
#include "lib/wire.h"
#include "node/ops/admin.h"
#include "node/store/store.h"
#include "proto/cli_node.pb-c.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/rpc_helper.h"

#define T_SHARDS 4
#define T_MAP_SIZE (64u * 1024 * 1024)

static char t_dir[64];
static struct store *t_store;
static Shoal__ShardMap t_map;
static Shoal__NodeInfo t_nodes[2];
static Shoal__NodeInfo *t_node_ptrs[2];
static Shoal__ShardAssignment t_shards[T_SHARDS];
static Shoal__ShardAssignment *t_shard_ptrs[T_SHARDS];
static struct admin_ctx t_ctx;
static struct rpc_peer t_peer;
static const char *t_tenant, *t_want_tenant; /* stored / listed tenant */

/* The admin link's handler, as node.c registers it. */
static void
t_on_admin(void *arg, zmq_msg_t *frames, size_t nframes)
{
	(void)arg;
	admin_handle(&t_ctx, frames, nframes);
}

/* Two nodes; n1 is primary of the even shards and replica of the odd. */
static void
t_setup(void)
{
	log_init("test_admin", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "admin");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_store), 0);
	shoal__shard_map__init(&t_map);
	for (int i = 0; i < 2; i++) {
		shoal__node_info__init(&t_nodes[i]);
		t_nodes[i].id = i == 0 ? "n1" : "n2";
		t_nodes[i].endpoint = i == 0 ? "tcp://127.0.0.1:1" :
					       "tcp://127.0.0.1:2";
		t_nodes[i].peer = i == 0 ? "n2" : "n1";
		t_node_ptrs[i] = &t_nodes[i];
	}
	for (int s = 0; s < T_SHARDS; s++) {
		shoal__shard_assignment__init(&t_shards[s]);
		t_shards[s].primary = s % 2 == 0 ? "n1" : "n2";
		t_shards[s].replica = s % 2 == 0 ? "n2" : "n1";
		t_shard_ptrs[s] = &t_shards[s];
	}
	t_map.epoch = 7;
	t_map.n_nodes = 2;
	t_map.nodes = t_node_ptrs;
	t_map.n_shards = T_SHARDS;
	t_map.shards = t_shard_ptrs;
	rpc_peer_open(&t_peer, "inproc://test-admin", WIRE_TAG_ADMIN,
		      t_on_admin, NULL);
	t_ctx.rpc = t_peer.rpc;
	t_ctx.store = t_store;
	t_ctx.node_id = "n1";
	t_ctx.map = &t_map;
	t_ctx.started_at = (uint64_t)time(NULL) - 5;
	t_tenant = t_want_tenant = "";
}

static void
t_teardown(void)
{
	rpc_peer_close(&t_peer);
	store_close(t_store);
	t_store = NULL;
	check_rmtree(t_dir);
}

static const char t_b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* A qid that sorts by n: "0DJ3N8Q2K4M7ZX1P9Q" + three base32 digits. */
static void
t_qid(char out[QID_LEN + 1], unsigned n)
{
	snprintf(out, QID_LEN + 1, "0DJ3N8Q2K4M7ZX1P9Q%c%c%c",
		 t_b32[(n >> 10) & 31], t_b32[(n >> 5) & 31], t_b32[n & 31]);
}

struct t_rcpt {
	const char *addr;
	Shoal__RcptState state;
};

/* Store one message: rcpts end with a NULL address. */
static void
t_put_raw(const char *qid, uint32_t shard, const char *sender,
	  const struct t_rcpt *rcpts, bool held, uint64_t arrival,
	  const char *body, size_t body_len)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient r[8], *rp[8];
	struct store_txn *t;
	size_t n = 0, len;
	void *meta;

	for (; rcpts[n].addr != NULL; n++) {
		ck_assert_uint_lt(n, 8);
		shoal__recipient__init(&r[n]);
		r[n].address = (char *)rcpts[n].addr;
		r[n].state = rcpts[n].state;
		if (rcpts[n].state != SHOAL__RCPT_STATE__RCPT_QUEUED) {
			r[n].attempts = 2;
			r[n].last_reply = "451 4.7.1 try later";
		}
		rp[n] = &r[n];
	}
	env.mail_from = (char *)sender;
	env.n_rcpts = n;
	env.rcpts = rp;
	env.arrival_time = arrival;
	env.size = body_len;
	env.helo = "client.example";
	env.client_addr = "192.0.2.1";
	env.tenant = (char *)t_tenant;
	sm.qid = (char *)qid;
	sm.shard = shard;
	sm.envelope = &env;
	sm.held = held;
	len = shoal__stored_message__get_packed_size(&sm);
	meta = malloc(len + 1);
	shoal__stored_message__pack(&sm, meta);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, qid, shard, meta, len, body,
				       body_len),
			 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(meta);
}

static void
t_put(unsigned n, const char *sender, const struct t_rcpt *rcpts, bool held,
      uint64_t arrival)
{
	static const char body[] = "Subject: hi\r\nFrom: a@b.example\r\n\r\n"
				   "hello\r\n";
	char qid[QID_LEN + 1];

	t_qid(qid, n);
	/* n1's primary shards (the even ones): replica copies are hidden */
	t_put_raw(qid, (n % 2) * 2, sender, rcpts, held, arrival, body,
		  sizeof(body) - 1);
}

/* Send the packed request on the admin link; unpack the reply. */
static Shoal__AdminReply *
t_call_raw(const void *p, size_t len)
{
	size_t out_len = 0;
	void *out = rpc_peer_call(&t_peer, WIRE_TAG_ADMIN, p, len, &out_len);
	Shoal__AdminReply *r;

	ck_assert_ptr_nonnull(out);
	r = shoal__admin_reply__unpack(NULL, out_len, out);
	free(out);
	ck_assert_ptr_nonnull(r);
	return r;
}

/* Pack req, send it to admin_handle and unpack the reply. */
static Shoal__AdminReply *
t_call(Shoal__AdminRequest *req)
{
	size_t len = shoal__admin_request__get_packed_size(req);
	void *p = malloc(len + 1);
	Shoal__AdminReply *r;

	shoal__admin_request__pack(req, p);
	r = t_call_raw(p, len);
	free(p);
	ck_assert_uint_eq(r->request_id, req->request_id);
	ck_assert_str_eq(r->node_id, "n1");
	return r;
}

static Shoal__AdminReply *
t_status(void)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest st = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminReply *r;

	req.request_id = 41;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &st;
	r = t_call(&req);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	ck_assert_int_eq(r->body_case, SHOAL__ADMIN_REPLY__BODY_STATUS_REPLY);
	return r;
}

static Shoal__AdminReply *
t_list(const char *domain, Shoal__StateFilter state, const char *after,
       uint32_t limit)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueListRequest lr = SHOAL__QUEUE_LIST_REQUEST__INIT;

	lr.domain = (char *)domain;
	lr.state = state;
	lr.after_qid = (char *)after;
	lr.limit = limit;
	lr.tenant = (char *)t_want_tenant;
	req.request_id = 42;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_LIST;
	req.list = &lr;
	return t_call(&req);
}

static Shoal__AdminReply *
t_show(const char *qid)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueShowRequest sr = SHOAL__QUEUE_SHOW_REQUEST__INIT;

	sr.qid = (char *)qid;
	req.request_id = 43;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_SHOW;
	req.show = &sr;
	return t_call(&req);
}

/* The qid numbers of a list reply, as a string "1,3,4" for easy asserts. */
static const char *
t_list_ids(const Shoal__AdminReply *r)
{
	static char buf[256];
	size_t off = 0;

	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	ck_assert_int_eq(r->body_case, SHOAL__ADMIN_REPLY__BODY_LIST);
	buf[0] = '\0';
	for (size_t i = 0; i < r->list->n_entries && off < sizeof(buf) - 8;
	     i++) {
		const char *q = r->list->entries[i]->qid;
		unsigned n = 0;

		for (int k = 18; k < 21; k++)
			n = n * 32 + (unsigned)(strchr(t_b32, q[k]) - t_b32);
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%u",
					i ? "," : "", n);
	}
	return buf;
}

static const struct t_rcpt t_q_gmail[] = {
	{ "u1@gmail.com", SHOAL__RCPT_STATE__RCPT_QUEUED },
	{ NULL, 0 },
};

/* A standard mix:
 *   1: queued x@Example.COM, deferred y@other.example, delivered z@gmail.com
 *   2: held, queued u@gmail.com
 *   3: deferred d@example.com, bounced b@example.com
 *   4: delivered only (kept for a DSN, say)
 *   5: queued u1@gmail.com */
static void
t_put_mix(void)
{
	static const struct t_rcpt m1[] = {
		{ "x@Example.COM", SHOAL__RCPT_STATE__RCPT_QUEUED },
		{ "y@other.example", SHOAL__RCPT_STATE__RCPT_DEFERRED },
		{ "z@gmail.com", SHOAL__RCPT_STATE__RCPT_DELIVERED },
		{ NULL, 0 },
	};
	static const struct t_rcpt m2[] = {
		{ "u@gmail.com", SHOAL__RCPT_STATE__RCPT_QUEUED },
		{ NULL, 0 },
	};
	static const struct t_rcpt m3[] = {
		{ "d@example.com", SHOAL__RCPT_STATE__RCPT_DEFERRED },
		{ "b@example.com", SHOAL__RCPT_STATE__RCPT_BOUNCED },
		{ NULL, 0 },
	};
	static const struct t_rcpt m4[] = {
		{ "done@example.net", SHOAL__RCPT_STATE__RCPT_DELIVERED },
		{ NULL, 0 },
	};

	/* stored out of order on purpose: listings go by qid */
	t_put(3, "s3@example.org", m3, false, 1700000300);
	t_put(1, "s1@example.org", m1, false, 1700000100);
	t_put(5, "", t_q_gmail, false, 1700000500);
	t_put(2, "s2@example.org", m2, true, 1700000050);
	t_put(4, "s4@example.org", m4, false, 1700000400);
}

START_TEST(test_status_of_empty_store)
{
	Shoal__AdminReply *r = t_status();
	const Shoal__StatusReply *s = r->status_reply;

	ck_assert_str_eq(s->node_id, "n1");
	ck_assert_uint_eq(s->epoch, 7);
	ck_assert_uint_eq(s->messages, 0);
	ck_assert_uint_eq(s->rcpts_queued, 0);
	ck_assert_uint_eq(s->rcpts_deferred, 0);
	ck_assert_uint_eq(s->msgs_held, 0);
	ck_assert_uint_eq(s->oldest_arrival, 0);
	ck_assert_uint_eq(s->n_primary_shards, 2);
	ck_assert_uint_eq(s->primary_shards[0], 0);
	ck_assert_uint_eq(s->primary_shards[1], 2);
	ck_assert_uint_eq(s->n_replica_shards, 2);
	ck_assert_uint_eq(s->replica_shards[0], 1);
	ck_assert_uint_eq(s->replica_shards[1], 3);
	ck_assert_uint_ge(s->uptime_s, 5);
	ck_assert_uint_lt(s->uptime_s, 60);
	ck_assert_ptr_nonnull(s->map);
	ck_assert_uint_eq(s->map->n_shards, T_SHARDS);
	ck_assert_uint_eq(s->n_tenants, 0); /* no scheduler, no results */
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_status_counts_undelivered_rcpts_and_held)
{
	Shoal__AdminReply *r;
	const Shoal__StatusReply *s;

	t_put_mix();
	r = t_status();
	s = r->status_reply;
	ck_assert_uint_eq(s->messages, 5);
	/* 1: x queued, y deferred; 3: d deferred; 5: u1 queued; 2 is held */
	ck_assert_uint_eq(s->rcpts_queued, 2);
	ck_assert_uint_eq(s->rcpts_deferred, 2);
	ck_assert_uint_eq(s->msgs_held, 1);
	ck_assert_uint_eq(s->oldest_arrival, 1700000050);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_status_counts_unreadable_record_as_message)
{
	struct store_txn *t;
	char qid[QID_LEN + 1];
	Shoal__AdminReply *r;

	t_put_mix();
	t_qid(qid, 9);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, qid, 0, "\xff\xff\xff", 3, "x", 1),
			 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 6);
	ck_assert_uint_eq(r->status_reply->rcpts_queued, 2);
	shoal__admin_reply__free_unpacked(r, NULL);
	/* and the listing skips it instead of failing */
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1,2,3,4,5");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_all_in_qid_order)
{
	Shoal__AdminReply *r;
	const Shoal__QueueEntry *e;

	t_put_mix();
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1,2,3,4,5");
	ck_assert(!r->list->more);
	e = r->list->entries[0];
	ck_assert_uint_eq(e->shard, 2);
	ck_assert_str_eq(e->sender, "s1@example.org");
	ck_assert_uint_eq(e->n_rcpts, 3);
	ck_assert_str_eq(e->rcpts[1]->address, "y@other.example");
	ck_assert_int_eq(e->rcpts[1]->state, SHOAL__RCPT_STATE__RCPT_DEFERRED);
	ck_assert_str_eq(e->rcpts[1]->last_reply, "451 4.7.1 try later");
	ck_assert_uint_eq(e->arrival_time, 1700000100);
	ck_assert_uint_gt(e->size, 0);
	ck_assert(!e->held);
	ck_assert(r->list->entries[1]->held);
	ck_assert_str_eq(r->list->entries[4]->sender, "");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_domain_is_case_insensitive_any_rcpt)
{
	Shoal__AdminReply *r;

	t_put_mix();
	r = t_list("example.com", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1,3");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("GMAIL.com", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1,2,5");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("nowhere.example", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_str_eq(t_list_ids(r), "");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_state_filters)
{
	Shoal__AdminReply *r;

	t_put_mix();
	r = t_list("", SHOAL__STATE_FILTER__FILTER_QUEUED, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1,5");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_DEFERRED, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1,3");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_HELD, "", 0);
	ck_assert_str_eq(t_list_ids(r), "2");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_domain_and_state_apply_to_one_rcpt)
{
	Shoal__AdminReply *r;

	t_put_mix();
	/* 1 is deferred for other.example, queued for example.com */
	r = t_list("example.com", SHOAL__STATE_FILTER__FILTER_DEFERRED, "", 0);
	ck_assert_str_eq(t_list_ids(r), "3");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("example.com", SHOAL__STATE_FILTER__FILTER_QUEUED, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("gmail.com", SHOAL__STATE_FILTER__FILTER_HELD, "", 0);
	ck_assert_str_eq(t_list_ids(r), "2");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_pages_with_after_qid)
{
	Shoal__AdminReply *r;
	char after[QID_LEN + 1];

	t_put_mix();
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 2);
	ck_assert_str_eq(t_list_ids(r), "1,2");
	ck_assert(r->list->more);
	snprintf(after, sizeof(after), "%s", r->list->entries[1]->qid);
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, after, 2);
	ck_assert_str_eq(t_list_ids(r), "3,4");
	ck_assert(r->list->more);
	snprintf(after, sizeof(after), "%s", r->list->entries[1]->qid);
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, after, 2);
	ck_assert_str_eq(t_list_ids(r), "5");
	ck_assert(!r->list->more);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_more_is_false_when_page_is_exactly_full)
{
	Shoal__AdminReply *r;

	t_put_mix();
	r = t_list("", SHOAL__STATE_FILTER__FILTER_QUEUED, "", 2);
	ck_assert_str_eq(t_list_ids(r), "1,5");
	ck_assert(!r->list->more);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_caps_limit_at_1000)
{
	static const char body[] = "Subject: x\r\n\r\nx\r\n";
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient rc = SHOAL__RECIPIENT__INIT;
	Shoal__Recipient *rp = &rc;
	Shoal__AdminReply *r;
	struct store_txn *t;
	char qid[QID_LEN + 1];
	unsigned char meta[256];
	size_t len;

	rc.address = "a@b.example";
	env.n_rcpts = 1;
	env.rcpts = &rp;
	env.arrival_time = 1700000000;
	sm.envelope = &env;
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	for (unsigned i = 0; i < 1001; i++) {
		t_qid(qid, i);
		sm.qid = qid;
		len = shoal__stored_message__get_packed_size(&sm);
		ck_assert_uint_le(len, sizeof(meta));
		shoal__stored_message__pack(&sm, meta);
		ck_assert_int_eq(store_msg_put(t, qid, 0, meta, len, body,
					       sizeof(body) - 1),
				 0);
	}
	ck_assert_int_eq(store_txn_commit(t), 0);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 5000);
	ck_assert_uint_eq(r->list->n_entries, 1000);
	ck_assert(r->list->more);
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_uint_eq(r->list->n_entries, 1000);
	ck_assert(r->list->more);
	t_qid(qid, 999);
	ck_assert_str_eq(r->list->entries[999]->qid, qid);
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, qid, 0);
	ck_assert_uint_eq(r->list->n_entries, 1);
	ck_assert(!r->list->more);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_list_rejects_bad_fields)
{
	char longdom[300];
	Shoal__AdminReply *r;

	memset(longdom, 'a', sizeof(longdom) - 1);
	longdom[sizeof(longdom) - 1] = '\0';
	r = t_list(longdom, SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, "domain too long");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "not-a-qid", 0);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, "bad after_qid");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", (Shoal__StateFilter)9, "", 0);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, "bad state filter");
	ck_assert_int_eq(r->body_case, SHOAL__ADMIN_REPLY__BODY__NOT_SET);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

/* A node holds its peer's messages as a replica: they are the peer's to
 * report, so shoalctl sees each message once, from its primary. */
START_TEST(test_replica_copies_are_not_reported)
{
	static const struct t_rcpt rc[] = {
		{ "a@example.net", SHOAL__RCPT_STATE__RCPT_QUEUED },
		{ NULL, 0 },
	};
	Shoal__AdminReply *r;
	char mine[QID_LEN + 1], copy[QID_LEN + 1];

	t_qid(mine, 1);
	t_qid(copy, 2);
	t_put_raw(mine, 0, "s@example.org", rc, false, 1, "X: y\r\n", 6);
	t_put_raw(copy, 1, "s@example.org", rc, false, 1, "X: y\r\n", 6);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 1);
	ck_assert_uint_eq(r->status_reply->rcpts_queued, 1);
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
	ck_assert_str_eq(t_list_ids(r), "1");
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_show(copy);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, WIRE_MSG_UNKNOWN_QID);
	shoal__admin_reply__free_unpacked(r, NULL);
	r = t_show(mine);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_show_returns_message_and_header_section)
{
	Shoal__AdminReply *r;
	const Shoal__StoredMessage *sm;
	char qid[QID_LEN + 1];

	t_put_mix();
	t_qid(qid, 3);
	r = t_show(qid);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	ck_assert_int_eq(r->body_case, SHOAL__ADMIN_REPLY__BODY_SHOW);
	sm = r->show->msg;
	ck_assert_str_eq(sm->qid, qid);
	ck_assert_uint_eq(sm->shard, 2);
	ck_assert_str_eq(sm->envelope->mail_from, "s3@example.org");
	ck_assert_str_eq(sm->envelope->helo, "client.example");
	ck_assert_uint_eq(sm->envelope->n_rcpts, 2);
	ck_assert_int_eq(sm->envelope->rcpts[1]->state,
			 SHOAL__RCPT_STATE__RCPT_BOUNCED);
	ck_assert_uint_eq(r->show->headers.len, 34);
	ck_assert(memcmp(r->show->headers.data,
			 "Subject: hi\r\nFrom: a@b.example\r\n\r\n", 34) == 0);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_show_cuts_headers_at_64k)
{
	static const struct t_rcpt rc[] = {
		{ "a@b.example", SHOAL__RCPT_STATE__RCPT_QUEUED },
		{ NULL, 0 },
	};
	size_t n = 100 * 1024;
	char *body = malloc(n);
	char qid[QID_LEN + 1];
	Shoal__AdminReply *r;

	/* one endless header line: no empty line anywhere */
	memset(body, 'h', n);
	t_qid(qid, 20);
	t_put_raw(qid, 0, "s@example.org", rc, false, 1, body, n);
	r = t_show(qid);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	ck_assert_uint_eq(r->show->headers.len, ADMIN_HEADERS_MAX);
	shoal__admin_reply__free_unpacked(r, NULL);
	/* a body shorter than the cap, without an empty line: all of it */
	t_qid(qid, 21);
	t_put_raw(qid, 0, "s@example.org", rc, false, 1, "X: y\r\n", 6);
	r = t_show(qid);
	ck_assert_uint_eq(r->show->headers.len, 6);
	shoal__admin_reply__free_unpacked(r, NULL);
	free(body);
}
END_TEST

START_TEST(test_show_unknown_qid)
{
	Shoal__AdminReply *r;
	char qid[QID_LEN + 1];

	t_put_mix();
	t_qid(qid, 77);
	r = t_show(qid);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, WIRE_MSG_UNKNOWN_QID);
	ck_assert_int_eq(r->body_case, SHOAL__ADMIN_REPLY__BODY__NOT_SET);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_show_rejects_bad_qid)
{
	static const char *const bad[] = {
		"", "0DJ3N8Q2K4M7ZX1P9Q00", "0DJ3N8Q2K4M7ZX1P9Q0011",
		"0DJ3N8Q2K4M7ZX1P9Q00U", "0dj3n8q2k4m7zx1p9q001",
		"../../../../etc/passwd",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		Shoal__AdminReply *r = t_show(bad[i]);

		ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
		ck_assert_str_eq(r->message, "bad qid");
		shoal__admin_reply__free_unpacked(r, NULL);
	}
}
END_TEST

/* Replies to requests that cannot be read carry request_id 0. */
static void
t_expect_undecodable(const void *p, size_t len)
{
	Shoal__AdminReply *r = t_call_raw(p, len);

	ck_assert_uint_eq(r->request_id, 0);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_ne(r->message, "");
	shoal__admin_reply__free_unpacked(r, NULL);
}

START_TEST(test_garbage_gets_bad_request_with_id_0)
{
	/* truncated varint, bad wire type, length past the end */
	t_expect_undecodable("\x08", 1);
	t_expect_undecodable("\x0f\x01", 2);
	t_expect_undecodable("\x52\x7f\x01", 3);
	t_expect_undecodable("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
			     11);
}
END_TEST

START_TEST(test_oversize_request_is_refused_unread)
{
	size_t n = ADMIN_REQUEST_MAX + 1;
	char *p = calloc(1, n);

	t_expect_undecodable(p, n);
	free(p);
}
END_TEST

START_TEST(test_random_bytes_never_crash)
{
	unsigned char buf[64];
	unsigned seed = 12345;

	t_put_mix();
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
		Shoal__AdminReply *r;

		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand_r(&seed);
		/* half the time, look like a list or show request */
		if (len > 2 && round % 2 == 0)
			buf[0] = round % 4 == 0 ? 0x5a : 0x62;
		r = t_call_raw(buf, len);
		shoal__admin_reply__free_unpacked(r, NULL);
	}
}
END_TEST

START_TEST(test_request_without_body_is_bad)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__AdminReply *r;

	req.request_id = 99;
	r = t_call(&req);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, "unknown request");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

/* A request that changes things goes to the defer hook with its ticket;
 * nothing is answered until the hook's module answers on the ticket. */
static struct rpc_ticket t_deferred;
static Shoal__AdminRequest__BodyCase t_deferred_case;

static void
t_defer(void *arg, const struct rpc_ticket *t, const Shoal__AdminRequest *rq)
{
	(void)arg;
	t_deferred = *t;
	t_deferred_case = rq->body_case;
}

START_TEST(test_deferred_request_is_answered_on_its_ticket)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueFlushRequest fl = SHOAL__QUEUE_FLUSH_REQUEST__INIT;
	Shoal__AdminReply rep = SHOAL__ADMIN_REPLY__INIT, *r;
	size_t len = 0;
	void *p, *out;

	t_ctx.defer = t_defer;
	req.request_id = 4242;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_FLUSH;
	req.flush = &fl;
	len = shoal__admin_request__get_packed_size(&req);
	p = malloc(len + 1);
	shoal__admin_request__pack(&req, p);
	rpc_peer_send(&t_peer, WIRE_TAG_ADMIN, p, len);
	free(p);
	ck_assert_ptr_null(rpc_peer_wait(&t_peer, 200, &len));
	ck_assert_int_eq(t_deferred_case, SHOAL__ADMIN_REQUEST__BODY_FLUSH);
	ck_assert_uint_eq(t_deferred.request_id, 4242);
	/* the module answers later, on the ticket it copied */
	rep.node_id = "n1";
	ck_assert_int_eq(rpc_reply_admin(t_peer.rpc, &t_deferred, &rep), 0);
	out = rpc_peer_wait(&t_peer, RPC_PEER_WAIT_MS, &len);
	ck_assert_ptr_nonnull(out);
	r = shoal__admin_reply__unpack(NULL, len, out);
	free(out);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->request_id, 4242);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

START_TEST(test_deferred_request_without_hook_is_refused)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueFlushRequest fl = SHOAL__QUEUE_FLUSH_REQUEST__INIT;
	Shoal__AdminReply *r;

	req.request_id = 5;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_FLUSH;
	req.flush = &fl;
	r = t_call(&req);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_BAD_REQUEST);
	ck_assert_str_eq(r->message, "not possible on this node");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

/* --tenant is an exact match, bounded, and never goes with queue ids. */
START_TEST(test_list_tenant_is_exact_and_checked)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__QueueActionRequest qa = SHOAL__QUEUE_ACTION_REQUEST__INIT;
	char qid[QID_LEN + 1], *qids[1] = { qid };
	const char *cases[][2] = { { "alpha", "1,2" }, { "Alpha", "" },
				   { "alph", "" }, { "x\ty", NULL } };
	Shoal__AdminReply *r;

	t_tenant = "alpha";
	t_put(1, "s@a.example", t_q_gmail, false, 1);
	t_put(2, "s@a.example", t_q_gmail, true, 2);
	t_tenant = "alpha2";
	t_put(3, "s@a.example", t_q_gmail, false, 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		t_want_tenant = cases[i][0];
		r = t_list("", SHOAL__STATE_FILTER__FILTER_ANY, "", 0);
		if (cases[i][1] == NULL)
			ck_assert_str_eq(r->message, "bad tenant");
		else
			ck_assert_str_eq(t_list_ids(r), cases[i][1]);
		if (i == 0)
			ck_assert_str_eq(r->list->entries[1]->tenant, "alpha");
		shoal__admin_reply__free_unpacked(r, NULL);
	}
	t_ctx.defer = t_defer;
	t_qid(qid, 1);
	qa.tenant = "alpha";
	qa.n_qids = 1;
	qa.qids = qids;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_ACTION;
	req.action = &qa;
	r = t_call(&req);
	ck_assert_str_eq(r->message, "tenant and queue ids together");
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

/* A message of another shape is dropped, not answered. */
START_TEST(test_wrong_frame_count_is_dropped)
{
	size_t len;

	/* the request and one frame too many */
	ck_assert_int_eq(zmq_send(t_peer.dealer, WIRE_TAG_ADMIN, WIRE_TAG_LEN,
				  ZMQ_SNDMORE),
			 WIRE_TAG_LEN);
	ck_assert_int_eq(zmq_send(t_peer.dealer, "", 0, ZMQ_SNDMORE), 0);
	ck_assert_int_eq(zmq_send(t_peer.dealer, "x", 1, 0), 1);
	ck_assert_ptr_null(rpc_peer_wait(&t_peer, 200, &len));
}
END_TEST

static Suite *
admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_status_of_empty_store);
	tcase_add_test(tc, test_status_counts_undelivered_rcpts_and_held);
	tcase_add_test(tc, test_status_counts_unreadable_record_as_message);
	tcase_add_test(tc, test_list_all_in_qid_order);
	tcase_add_test(tc, test_list_domain_is_case_insensitive_any_rcpt);
	tcase_add_test(tc, test_list_state_filters);
	tcase_add_test(tc, test_list_domain_and_state_apply_to_one_rcpt);
	tcase_add_test(tc, test_list_pages_with_after_qid);
	tcase_add_test(tc, test_list_more_is_false_when_page_is_exactly_full);
	tcase_add_test(tc, test_list_caps_limit_at_1000);
	tcase_add_test(tc, test_list_rejects_bad_fields);
	tcase_add_test(tc, test_list_tenant_is_exact_and_checked);
	tcase_add_test(tc, test_replica_copies_are_not_reported);
	tcase_add_test(tc, test_show_returns_message_and_header_section);
	tcase_add_test(tc, test_show_cuts_headers_at_64k);
	tcase_add_test(tc, test_show_unknown_qid);
	tcase_add_test(tc, test_show_rejects_bad_qid);
	tcase_add_test(tc, test_garbage_gets_bad_request_with_id_0);
	tcase_add_test(tc, test_oversize_request_is_refused_unread);
	tcase_add_test(tc, test_random_bytes_never_crash);
	tcase_add_test(tc, test_request_without_body_is_bad);
	tcase_add_test(tc, test_deferred_request_is_answered_on_its_ticket);
	tcase_add_test(tc, test_deferred_request_without_hook_is_refused);
	tcase_add_test(tc, test_wrong_frame_count_is_dropped);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(admin_suite)
