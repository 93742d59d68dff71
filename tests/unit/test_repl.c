/* Check suite for node/cluster/repl*.c, built without the rest of the
 * node: node n1's store (a fresh LMDB dir with a 1 MiB map), group
 * commit, owner and peer link, wired as node.c does, with hooks that
 * count what they ask of the node above; driven one loop pass at a time.
 * The test is n1's peer n2: it hands batches to repl_handle() as the
 * front socket would, and reads what n1 sends back on a ZeroMQ ROUTER
 * bound at n2's endpoint.
 *
 * Applying the peer's stream: in order, a duplicate batch, a gap (a
 * resend asked), a failed apply (a record with a 2 MiB body cannot fit
 * the map: "storage full", as on a full disk) retried until it succeeds;
 * handbacks; withdrawn against finished deletions. And the lease the peer
 * link gives the owner (node/cluster/owner.c). */
#include "node/cluster/repl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/shardmap.h"
#include "lib/wire.h"
#include "node/cluster/owner.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "proto/node_node.pb-c.h"
#include "proto/queue.pb-c.h"
#include "tests/unit/check_helpers.h"

#define T_SHARDS 4
#define T_STREAM 0x5eedull
#define T_BIG (2u << 20) /* does not fit the 1 MiB map */
#define T_QIDS 3

static char t_dir[64];
static struct config *t_cfg;
static struct event_base *t_base;
static struct store *t_store;
static struct commit *t_commit;
static struct owner *t_owner;
static struct repl *t_repl;
static void *t_zctx;
static void *t_peer; /* ROUTER at n2's endpoint */
static char t_qids[T_QIDS][QID_LEN + 1];
static char t_own[T_QIDS][QID_LEN + 1]; /* of n1's own (even) shards */

/* What the node told its peer so far. */
static uint64_t t_acked;	/* highest ack of our stream */
static bool t_resend;		/* a resend request since last reset */
static char t_apply_error[128]; /* the last apply_error it reported */
static uint64_t t_node_sent;	/* its clock in its last message */
static uint64_t t_node_stream;	/* the id of its own stream */
static uint64_t t_node_head;	/* the newest seq of it that it sent */
static uint64_t t_node_base;	/* its journal head when it started */
static uint64_t t_node_prev;	/* prev_seq of the last batch it sent */
static size_t t_node_records;	/* records in the last batch it sent */
static char t_node_qid[QID_MAX]; /* that batch's first record: its key, */
static bool t_node_deleted;	 /* whether it says deleted, */
static bool t_node_body;	 /* and whether it carries the body */
static uint64_t t_node_hb_head;	 /* the highest head_seq a heartbeat
				    of it carried */

/* What the cluster asked of the node above it. */
static int t_due; /* work_due: a handback adopted messages */

static void
t_hook_map_changed(void *arg, const Shoal__ShardMap *map)
{
	(void)arg;
	(void)map;
}

static void
t_hook_fence_changed(void *arg, bool may_deliver)
{
	(void)arg;
	(void)may_deliver;
}

static void
t_hook_starts_revoked(void *arg)
{
	(void)arg;
}

static void
t_hook_work_due(void *arg)
{
	(void)arg;
	t_due++;
}

static uint64_t
t_hook_in_flight(void *arg, const uint8_t *shards, size_t n)
{
	(void)arg;
	(void)shards;
	(void)n;
	return 0;
}

static bool t_unsaved; /* what results_unsaved says */

static bool
t_hook_results_unsaved(void *arg)
{
	(void)arg;
	return t_unsaved;
}

static int
t_hook_supp_apply(void *arg, struct store_txn *t, const Shoal__ReplRecord *rec)
{
	(void)arg;
	(void)t;
	(void)rec;
	return 0;
}

static int
t_hook_supp_purge(void *arg, struct store_txn *t, uint32_t shard, uint64_t *n)
{
	(void)arg;
	(void)t;
	(void)shard;
	(void)n;
	return 0;
}

static int
t_hook_supp_touch(void *arg, struct store_txn *t, uint64_t *n)
{
	(void)arg;
	(void)t;
	(void)n;
	return 0;
}

static const struct cluster_hooks t_hooks = {
	.map_changed = t_hook_map_changed,
	.fence_changed = t_hook_fence_changed,
	.starts_revoked = t_hook_starts_revoked,
	.work_due = t_hook_work_due,
	.in_flight = t_hook_in_flight,
	.results_unsaved = t_hook_results_unsaved,
	.supp_apply = t_hook_supp_apply,
	.supp_purge = t_hook_supp_purge,
	.supp_touch = t_hook_supp_touch,
};

/* The node's hook: each commit ships the journal it holds first. */
static void
t_set_hook(void)
{
	struct commit_hook h = repl_commit_hook(t_repl);

	commit_set_hook(t_commit, &h);
}

/* A TCP port that was free on 127.0.0.1 a moment ago. */
static int
t_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
t_setup(void)
{
	char conf[128], text[2048], err[256], ep[64], n1[96];
	const struct cfg_node *me;
	int p1, p2;
	FILE *f;

	log_init("test_repl", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "repl");
	t_zctx = zmq_ctx_new();
	p1 = t_free_port();
	/* the peer's end first: its port is the one it got */
	t_peer = zmq_socket(t_zctx, ZMQ_ROUTER);
	ck_assert_int_eq(zmq_bind(t_peer, "tcp://127.0.0.1:*"), 0);
	{
		size_t len = sizeof(ep);

		zmq_getsockopt(t_peer, ZMQ_LAST_ENDPOINT, ep, &len);
		p2 = atoi(strrchr(ep, ':') + 1);
	}
	snprintf(
		text, sizeof(text),
		"cluster: { name = \"t\"; shards = %d; };\n"
		"nodes = (\n"
		"  { id = \"n1\"; endpoint = \"tcp://127.0.0.1:%d\";"
		" peer = \"n2\"; data_dir = \"%s/n1\"; map_size = 1048576; },\n"
		"  { id = \"n2\"; endpoint = \"tcp://127.0.0.1:%d\";"
		" peer = \"n1\"; data_dir = \"%s/n2\"; }\n"
		");\n"
		"router: { hostname = \"t.example\";"
		" listen = ( { address = \"127.0.0.1:1\"; } ); };\n"
		"delivery: { dns_servers = [ \"127.0.0.1:9\" ]; };\n"
		"replication: { heartbeat_ms = 50; failover_after_ms = 1000;"
		" peer_timeout_ms = 2000; };\n",
		T_SHARDS, p1, t_dir, p2, t_dir);
	snprintf(conf, sizeof(conf), "%s/shoal.conf", t_dir);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_msg(config_load(conf, &t_cfg, err, sizeof(err)) == 0, "%s",
		      err);
	t_base = event_base_new();
	/* n1's cluster modules, as node.c's node_cluster_new() makes them */
	me = config_find_node(t_cfg, "n1");
	snprintf(n1, sizeof(n1), "%s/n1", t_dir);
	ck_assert_int_eq(mkdir(n1, 0700), 0);
	ck_assert_int_eq(store_open(n1, me->map_size, &t_store), 0);
	t_commit = commit_new(t_base, t_store);
	t_owner = owner_new(t_base, t_cfg, me, t_store, NULL,
			    shardmap_derive(t_cfg), &t_hooks);
	t_repl = repl_new(t_base, t_cfg, me, t_zctx, t_store, t_commit,
			  t_owner, &t_hooks);
	ck_assert_ptr_nonnull(t_repl);
	owner_set_repl(t_owner, t_repl);
	t_set_hook();
	/* qids of n2's shards (odd ones): replica copies on n1 */
	{
		struct qid_gen g;

		qid_gen_init(&g);
		for (int i = 0; i < T_QIDS;) {
			qid_next(&g, t_qids[i]);
			if (shard_of(t_qids[i], T_SHARDS) % 2 == 1)
				i++;
		}
		for (int i = 0; i < T_QIDS;) {
			qid_next(&g, t_own[i]);
			if (shard_of(t_own[i], T_SHARDS) % 2 == 0)
				i++;
		}
	}
	t_acked = 0;
	t_resend = false;
	t_apply_error[0] = '\0';
	t_node_sent = 0;
	t_node_stream = 0;
	t_node_head = 0;
	t_node_base = store_journal_seq(t_store);
	t_node_prev = 0;
	t_node_records = 0;
	t_node_hb_head = 0;
	t_due = 0;
}

static void
t_teardown(void)
{
	/* node_free()'s order: commit, answer the waits, commit again */
	commit_flush(t_commit);
	commit_set_hook(t_commit, NULL);
	repl_free(t_repl);
	commit_flush(t_commit);
	commit_free(t_commit);
	owner_free(t_owner);
	store_close(t_store);
	event_base_free(t_base);
	zmq_close(t_peer);
	zmq_ctx_term(t_zctx);
	config_free(t_cfg);
	check_rmtree(t_dir);
}

/* Read everything the node sent its peer. */
static void
t_read_peer(void)
{
	for (;;) {
		zmq_msg_t f[3];
		int more = 1, n = 0;
		size_t len = sizeof(more);

		while (more && n < 3) {
			zmq_msg_init(&f[n]);
			if (zmq_msg_recv(&f[n], t_peer, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&f[n]);
				return;
			}
			n++;
			zmq_getsockopt(t_peer, ZMQ_RCVMORE, &more, &len);
		}
		if (n == 3) {
			Shoal__PeerMessage *pm = shoal__peer_message__unpack(
				NULL, zmq_msg_size(&f[2]), zmq_msg_data(&f[2]));

			ck_assert_ptr_nonnull(pm);
			if (pm->acked_stream == T_STREAM &&
			    pm->acked_seq > t_acked)
				t_acked = pm->acked_seq;
			if (pm->resend)
				t_resend = true;
			snprintf(t_apply_error, sizeof(t_apply_error), "%s",
				 pm->apply_error ? pm->apply_error : "");
			t_node_sent = pm->sent_ms;
			t_node_stream = pm->stream;
			if (pm->body_case ==
				    SHOAL__PEER_MESSAGE__BODY_HEARTBEAT &&
			    pm->head_seq > t_node_hb_head)
				t_node_hb_head = pm->head_seq;
			if (pm->body_case == SHOAL__PEER_MESSAGE__BODY_BATCH &&
			    pm->batch->last_seq > t_node_head) {
				t_node_head = pm->batch->last_seq;
				t_node_prev = pm->batch->prev_seq;
				t_node_records = pm->batch->n_records;
				t_node_qid[0] = '\0';
				if (pm->batch->n_records > 0) {
					const Shoal__ReplRecord *rec =
						pm->batch->records[0];

					snprintf(t_node_qid, sizeof(t_node_qid),
						 "%s", rec->qid);
					t_node_deleted = rec->deleted;
					t_node_body = rec->has_body;
				}
			}
			shoal__peer_message__free_unpacked(pm, NULL);
		}
		for (int i = 0; i < n; i++)
			zmq_msg_close(&f[i]);
	}
}

/* Run the node's loop for about ms milliseconds, reading its messages. */
static void
t_run(uint64_t ms)
{
	uint64_t until = clock_mono_ms() + ms;

	do {
		event_base_loop(t_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		t_read_peer();
		usleep(1000);
	} while (clock_mono_ms() < until);
}

/* One pass of the node's loop. */
static void
t_pass(void)
{
	event_base_loop(t_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Wait (running the loop) for the node's first message: it is connected. */
static void
t_wait_link(void)
{
	uint64_t until = clock_mono_ms() + 5000;

	while (clock_mono_ms() < until) {
		zmq_pollitem_t pi = { t_peer, 0, ZMQ_POLLIN, 0 };

		event_base_loop(t_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (zmq_poll(&pi, 1, 10) > 0)
			return;
	}
	ck_abort_msg("the node never reached its peer");
}

/* A record of qid at seq: a message with a body of body_len bytes of
 * 'x' (the caller frees meta.data and body.data), or deleted, finished or
 * not, when body_len is 0. */
static void
t_record(Shoal__ReplRecord *rec, uint64_t seq, const char *qid, size_t body_len,
	 bool finished)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;

	shoal__repl_record__init(rec);
	rec->seq = seq;
	rec->qid = (char *)qid;
	rec->shard = shard_of(qid, T_SHARDS);
	if (body_len == 0) {
		rec->deleted = true;
		rec->finished = finished;
		return;
	}
	env.mail_from = "a@example.com";
	sm.envelope = &env;
	sm.qid = (char *)qid;
	sm.shard = rec->shard;
	sm.due = (uint64_t)time(NULL);
	rec->meta.len = shoal__stored_message__get_packed_size(&sm);
	rec->meta.data = malloc(rec->meta.len);
	shoal__stored_message__pack(&sm, rec->meta.data);
	rec->has_body = true;
	rec->body.len = body_len;
	rec->body.data = malloc(body_len);
	memset(rec->body.data, 'x', body_len);
}

/* Hand the node a batch of our stream, (prev, prev + n], made of recs
 * (freed here). */
static void
t_send(uint64_t prev, Shoal__ReplRecord *recs, int n)
{
	Shoal__PeerMessage pm = SHOAL__PEER_MESSAGE__INIT;
	Shoal__ReplBatch b = SHOAL__REPL_BATCH__INIT;
	Shoal__ReplRecord *ptrs[8];
	zmq_msg_t f[3];
	size_t len;

	ck_assert_int_le(n, 8);
	for (int i = 0; i < n; i++)
		ptrs[i] = &recs[i];
	b.prev_seq = prev;
	b.last_seq = prev + (uint64_t)n;
	b.n_records = (size_t)n;
	b.records = ptrs;
	pm.from = "n2";
	pm.stream = T_STREAM;
	pm.head_seq = b.last_seq;
	pm.body_case = SHOAL__PEER_MESSAGE__BODY_BATCH;
	pm.batch = &b;
	len = shoal__peer_message__get_packed_size(&pm);
	zmq_msg_init_size(&f[0], 2);
	memcpy(zmq_msg_data(&f[0]), "id", 2);
	zmq_msg_init_size(&f[1], WIRE_TAG_LEN);
	memcpy(zmq_msg_data(&f[1]), WIRE_TAG_NODE, WIRE_TAG_LEN);
	zmq_msg_init_size(&f[2], len);
	shoal__peer_message__pack(&pm, zmq_msg_data(&f[2]));
	repl_handle(t_repl, f, 3);
	for (int i = 0; i < 3; i++)
		zmq_msg_close(&f[i]);
	for (int i = 0; i < n; i++) {
		free(recs[i].meta.data);
		free(recs[i].body.data);
	}
}

/* Hand the node a batch of our stream: (prev, prev + n] for qids
 * t_qids[first..first + n), each with a body of body_len bytes. */
static void
t_batch(uint64_t prev, int first, int n, size_t body_len)
{
	Shoal__ReplRecord recs[T_QIDS];

	for (int i = 0; i < n; i++)
		t_record(&recs[i], prev + (uint64_t)i + 1, t_qids[first + i],
			 body_len, false);
	t_send(prev, recs, n);
}

/* Hand the node a heartbeat from its peer: the peer's clock (0: a peer
 * that does not echo), the node's clock it echoes, and n1's own map when
 * with_map (so that it counts as the peer's map). */
static void
t_heartbeat(uint64_t sent_ms, uint64_t echo_ms, bool with_map)
{
	Shoal__PeerMessage pm = SHOAL__PEER_MESSAGE__INIT;
	Shoal__PeerHeartbeat hb = SHOAL__PEER_HEARTBEAT__INIT;
	zmq_msg_t f[3];
	size_t len;

	pm.from = "n2";
	pm.stream = T_STREAM;
	pm.sent_ms = sent_ms;
	pm.echo_ms = echo_ms;
	if (with_map)
		pm.map = (Shoal__ShardMap *)owner_map(t_owner);
	pm.body_case = SHOAL__PEER_MESSAGE__BODY_HEARTBEAT;
	pm.heartbeat = &hb;
	len = shoal__peer_message__get_packed_size(&pm);
	zmq_msg_init_size(&f[0], 2);
	memcpy(zmq_msg_data(&f[0]), "id", 2);
	zmq_msg_init_size(&f[1], WIRE_TAG_LEN);
	memcpy(zmq_msg_data(&f[1]), WIRE_TAG_NODE, WIRE_TAG_LEN);
	zmq_msg_init_size(&f[2], len);
	shoal__peer_message__pack(&pm, zmq_msg_data(&f[2]));
	repl_handle(t_repl, f, 3);
	for (int i = 0; i < 3; i++)
		zmq_msg_close(&f[i]);
}

/* Feed heartbeats every 20 ms for ms milliseconds; echo: the node's
 * newest clock (fresh) or the given one (stale, when nonzero). */
static void
t_heartbeats(uint64_t ms, uint64_t stale_echo, bool with_map)
{
	uint64_t until = clock_mono_ms() + ms;

	while (clock_mono_ms() < until) {
		t_heartbeat(clock_mono_ms(),
			    stale_echo ? stale_echo : t_node_sent, with_map);
		t_run(20);
	}
}

/* Hand the node its peer's acknowledgement of its own stream up to seq. */
static void
t_ack(uint64_t seq)
{
	Shoal__PeerMessage pm = SHOAL__PEER_MESSAGE__INIT;
	Shoal__PeerHeartbeat hb = SHOAL__PEER_HEARTBEAT__INIT;
	zmq_msg_t f[3];
	size_t len;

	pm.from = "n2";
	pm.stream = T_STREAM;
	pm.acked_stream = t_node_stream;
	pm.acked_seq = seq;
	pm.body_case = SHOAL__PEER_MESSAGE__BODY_HEARTBEAT;
	pm.heartbeat = &hb;
	len = shoal__peer_message__get_packed_size(&pm);
	zmq_msg_init_size(&f[0], 2);
	memcpy(zmq_msg_data(&f[0]), "id", 2);
	zmq_msg_init_size(&f[1], WIRE_TAG_LEN);
	memcpy(zmq_msg_data(&f[1]), WIRE_TAG_NODE, WIRE_TAG_LEN);
	zmq_msg_init_size(&f[2], len);
	shoal__peer_message__pack(&pm, zmq_msg_data(&f[2]));
	repl_handle(t_repl, f, 3);
	for (int i = 0; i < 3; i++)
		zmq_msg_close(&f[i]);
}

/* Entries left in n1's journal. */
static uint64_t
t_journal_left(void)
{
	struct store_txn *t;
	uint64_t n;

	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	n = store_journal_count(t);
	store_txn_abort(t);
	return n;
}

/* Whether n1 holds a copy of qid. */
static bool
t_has(const char *qid)
{
	struct store_txn *t;
	const void *p;
	size_t len;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	rc = store_msg_get_meta(t, qid, &p, &len);
	store_txn_abort(t);
	return rc == 0;
}

/* Whether n1 keeps a tombstone of qid. */
static bool
t_tomb(const char *qid)
{
	struct store_txn *t;
	int rc;

	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	rc = store_tomb_has(t, qid);
	store_txn_abort(t);
	ck_assert(rc == 0 || rc == -ENOENT);
	return rc == 0;
}

/* Hand the node a batch and run its loop until it acknowledges it. */
static void
t_apply(uint64_t prev, Shoal__ReplRecord *recs, int n)
{
	uint64_t until = clock_mono_ms() + 5000;

	t_send(prev, recs, n);
	while (t_acked < prev + (uint64_t)n && clock_mono_ms() < until)
		t_run(10);
	ck_assert_msg(t_acked == prev + (uint64_t)n, "acked %llu of %llu",
		      (unsigned long long)t_acked,
		      (unsigned long long)(prev + (uint64_t)n));
}

/* Store a message of n1's own in one transaction, due now. */
static void
t_store_own(const char *qid)
{
	Shoal__ReplRecord rec;
	struct store_txn *t;

	t_record(&rec, 0, qid, 100, false);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, qid, rec.shard, rec.meta.data,
				       rec.meta.len, rec.body.data,
				       rec.body.len),
			 0);
	ck_assert_int_eq(store_due_add(t, (uint64_t)time(NULL), qid), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(rec.meta.data);
	free(rec.body.data);
}

/* Whether n1's due index holds qid (due by now). */
static bool t_due_has_cb_found;

static int
t_due_one(uint64_t due, const char *qid, uint32_t cls, void *arg)
{
	(void)cls;
	(void)due;
	if (strcmp(qid, arg) == 0)
		t_due_has_cb_found = true;
	return 0;
}

static bool
t_is_due(const char *qid)
{
	struct store_txn *t;

	t_due_has_cb_found = false;
	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	ck_assert_int_eq(store_due_foreach(t, 0, NULL,
					   (uint64_t)time(NULL) + 1, 1000,
					   t_due_one, (void *)qid),
			 0);
	store_txn_abort(t);
	return t_due_has_cb_found;
}

/* The size of n1's body of qid, 0 when it has none. */
static size_t
t_body_len(const char *qid)
{
	struct store_txn *t;
	const void *p;
	size_t len = 0;

	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	if (store_msg_get_body(t, qid, &p, &len) != 0)
		len = 0;
	store_txn_abort(t);
	return len;
}

/* Acknowledgements that come while the journal is being trimmed for an
 * earlier one are trimmed too once that trim is done, not only when a
 * later ack comes (an idle pair showed lag_ops > 0 for ever with
 * head_seq == acked_seq). */
START_TEST(test_an_ack_during_a_trim_is_trimmed_after_it)
	{
		uint64_t until;

		for (int i = 0; i < T_QIDS; i++)
			t_store_own(t_own[i]);
		repl_kick(t_repl);
		t_wait_link();
		until = clock_mono_ms() + 5000;
		while (t_node_head < t_node_base + T_QIDS &&
		       clock_mono_ms() < until)
			t_run(10);
		ck_assert_uint_eq(t_node_head, t_node_base + T_QIDS);
		ck_assert_uint_eq(t_journal_left(), T_QIDS);
		/* two acks in one pass: the second finds the first's trim
		 * queued in the group commit */
		t_ack(t_node_base + 1);
		t_ack(t_node_base + T_QIDS);
		until = clock_mono_ms() + 2000;
		while (t_journal_left() > 0 && clock_mono_ms() < until)
			t_run(10);
		ck_assert_msg(t_journal_left() == 0,
			      "%llu journal entries left after the peer "
			      "acknowledged them all",
			      (unsigned long long)t_journal_left());
	}
END_TEST

/* Batches that follow one another are applied in order, each
 * acknowledged; replica copies are not due (a replica delivers
 * nothing). */
START_TEST(test_batches_are_applied_in_order)
	{
		Shoal__ReplRecord r[2];

		t_wait_link();
		t_record(&r[0], 1, t_qids[0], 100, false);
		t_record(&r[1], 2, t_qids[1], 100, false);
		t_apply(0, r, 2);
		t_record(&r[0], 3, t_qids[2], 100, false);
		t_apply(2, r, 1);
		for (int i = 0; i < T_QIDS; i++) {
			ck_assert(t_has(t_qids[i]));
			ck_assert_msg(!t_is_due(t_qids[i]),
				      "a replica copy is due");
		}
		ck_assert(!t_resend);
		ck_assert_int_eq(t_due, 0);
	}
END_TEST

/* A batch applied already (the primary went back after a lost ack) is
 * acknowledged again and changes nothing: it must not bring back a
 * message a later batch deleted. One that overlaps what is applied
 * applies only its new records. */
START_TEST(test_a_duplicate_batch_changes_nothing)
	{
		Shoal__ReplRecord r[3];

		t_wait_link();
		t_record(&r[0], 1, t_qids[0], 100, false);
		t_apply(0, r, 1);
		t_record(&r[0], 2, t_qids[0], 0, true); /* delivered there */
		t_apply(1, r, 1);
		ck_assert(!t_has(t_qids[0]) && t_tomb(t_qids[0]));
		t_record(&r[0], 1, t_qids[0], 100, false);
		t_send(0, r, 1);
		t_run(200);
		ck_assert_msg(!t_has(t_qids[0]),
			      "a duplicate batch undid a later deletion");
		ck_assert_uint_eq(t_acked, 2);
		ck_assert(!t_resend);
		/* (0, 3]: seqs 1 and 2 again, 3 new */
		t_record(&r[0], 1, t_qids[0], 100, false);
		t_record(&r[1], 2, t_qids[0], 0, true);
		t_record(&r[2], 3, t_qids[1], 100, false);
		t_apply(0, r, 3);
		ck_assert(!t_has(t_qids[0]));
		ck_assert(t_has(t_qids[1]));
	}
END_TEST

/* A batch that does not follow what n1 applied (one was lost on the way)
 * is not applied: n1 asks for a resend from its ack, and the batches
 * from there fill the gap. */
START_TEST(test_a_gap_asks_for_a_resend)
	{
		uint64_t until;

		t_wait_link();
		t_batch(0, 0, 1, 100);
		t_run(100);
		ck_assert_uint_eq(t_acked, 1);
		t_resend = false;
		t_batch(2, 2, 1, 100); /* seq 2 missing */
		t_run(100);
		ck_assert_msg(t_resend, "no resend asked after a gap");
		ck_assert(!t_has(t_qids[2]));
		ck_assert_uint_eq(t_acked, 1);
		t_batch(1, 1, 2, 100); /* the resend: seqs 2 and 3 */
		until = clock_mono_ms() + 5000;
		while (t_acked < 3 && clock_mono_ms() < until)
			t_run(10);
		ck_assert_uint_eq(t_acked, 3);
		ck_assert(t_has(t_qids[1]) && t_has(t_qids[2]));
	}
END_TEST

/* A handback (records of a shard n1 now owns, from its primary before a
 * failover): a message n1 lacks is adopted and due, and the scheduler is
 * told; n1's own copy wins over the old primary's; a message n1 finished
 * since the takeover is not adopted again (it would be delivered twice). */
START_TEST(test_handback_adopts_what_we_lack_only)
	{
		Shoal__ReplRecord r[3];
		struct store_txn *t;

		t_wait_link();
		t_store_own(t_own[0]); /* body of 100 bytes */
		t_store_own(t_own[2]);
		ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
		ck_assert_int_eq(store_msg_retire(t, t_own[2],
						  shard_of(t_own[2], T_SHARDS)),
				 0);
		ck_assert_int_eq(store_txn_commit(t), 0);
		t_record(&r[0], 1, t_own[0], 200, false);
		t_record(&r[1], 2, t_own[1], 100, false);
		t_record(&r[2], 3, t_own[2], 100, false);
		t_apply(0, r, 3);
		ck_assert_msg(t_body_len(t_own[0]) == 100,
			      "the old primary's copy replaced ours");
		ck_assert(t_has(t_own[1]) && t_is_due(t_own[1]));
		ck_assert_int_eq(t_due, 1);
		ck_assert_msg(!t_has(t_own[2]),
			      "a message finished here adopted again");
	}
END_TEST

/* How many lines of the log file at path hold needle. */
static int
t_log_count(const char *path, const char *needle)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(path, "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* The group commit may run an apply more than once (node/store/commit.h;
 * rehearsal runs every batch once more and aborts it): applying the
 * peer's stream writes only through its transaction, so what it logs is
 * logged once, when committed, and the state is as without rehearsal. */
START_TEST(test_apply_logs_once_under_rehearsal)
	{
		Shoal__ReplRecord r[4];
		char log[96];

		snprintf(log, sizeof(log), "%s/apply.log", t_dir);
		log_init("test_repl", LOG_LVL_INFO);
		ck_assert_int_eq(log_open_file(log), 0);
		commit_set_rehearse(t_commit, true);
		t_wait_link();
		t_store_own(t_own[0]);
		t_store_own(t_own[1]);
		t_record(&r[0], 1, t_own[0], 0, false); /* withdrawn there */
		t_record(&r[1], 2, t_own[1], 0, true);	/* delivered there */
		t_record(&r[2], 3, t_own[2], 100, false); /* new to us */
		t_record(&r[3], 4, t_qids[0], 100, false); /* a replica copy */
		/* an update of a copy never received */
		r[3].has_body = false;
		free(r[3].body.data);
		r[3].body.data = NULL;
		r[3].body.len = 0;
		t_apply(0, r, 4);
		log_close();
		ck_assert_int_eq(t_log_count(log, "action=kept"), 1);
		ck_assert_int_eq(t_log_count(log, "action=deleted"), 1);
		ck_assert_int_eq(t_log_count(log, "action=adopted"), 1);
		ck_assert_int_eq(t_log_count(log, "event=replica_gap"), 1);
		ck_assert(t_has(t_own[0]) && !t_has(t_own[1]));
		ck_assert(t_has(t_own[2]) && t_is_due(t_own[2]));
		ck_assert(!t_has(t_qids[0]));
		ck_assert_int_eq(t_due, 1);
	}
END_TEST

/* Three batches read in one pass share a group commit; the middle one
 * does not fit. The third must not be applied over the hole the second
 * left, nor acknowledged: the primary would trim what n1 never stored. */
START_TEST(test_batch_after_a_failed_one_is_not_applied)
	{
		t_wait_link();
		t_batch(0, 0, 1, 100);
		t_batch(1, 1, 1, T_BIG);
		t_batch(2, 2, 1, 100);
		t_run(300);
		ck_assert(t_has(t_qids[0]));
		ck_assert(!t_has(t_qids[1]));
		ck_assert_msg(!t_has(t_qids[2]),
			      "seq 3 applied although seq 2 was not");
		ck_assert_msg(t_acked == 1, "acked %llu, applied only seq 1",
			      (unsigned long long)t_acked);
	}
END_TEST

/* A batch fails while the one before it still waits for its sync. Once
 * there is room again, the stream must resume from what n1 applied (the
 * primary goes back to n1's ack, as repl.c does on a resend), and n1
 * must say why it is behind meanwhile. */
START_TEST(test_failed_apply_is_retried_until_it_succeeds)
	{
		uint64_t until;

		t_wait_link();
		t_batch(0, 0, 1, 100);
		t_pass(); /* seq 1 committed, waiting for its sync */
		t_batch(1, 1, 1, T_BIG);
		t_run(200);
		ck_assert_msg(strstr(t_apply_error, "storage full") != NULL,
			      "n1 did not tell its peer why: \"%s\"",
			      t_apply_error);
		/* room again: a primary resends from the ack when asked to, and
	 * every second without progress */
		until = clock_mono_ms() + 10000;
		while (t_acked < 3 && clock_mono_ms() < until) {
			uint64_t next = clock_mono_ms() + 1000;

			t_resend = false;
			if (t_acked < 2)
				t_batch(t_acked, (int)t_acked, 2 - (int)t_acked,
					100);
			t_batch(2, 2, 1, 100);
			while (!t_resend && t_acked < 3 &&
			       clock_mono_ms() < next)
				t_run(10);
		}
		ck_assert_msg(t_acked == 3, "stream stuck at %llu",
			      (unsigned long long)t_acked);
		ck_assert(t_has(t_qids[1]) && t_has(t_qids[2]));
		t_run(200);
		ck_assert_str_eq(t_apply_error, "");
	}
END_TEST

/* Messages that keep arriving but echo an old time of ours (they waited
 * in a socket buffer through a pause) must not keep the lease: once it
 * lapses (failover_after_ms / 2 = 500 ms here) the node is fenced, and
 * stays so after fresh contact until the peer's map comes in a message
 * that echoes a time after the lapse. */
START_TEST(test_stale_messages_do_not_extend_the_lease)
	{
		uint64_t stale;

		t_wait_link();
		t_run(100);
		ck_assert(t_node_sent != 0);
		t_heartbeats(300, 0, true);
		ck_assert_msg(owner_may_deliver(t_owner),
			      "fresh contact and the peer's map: may deliver");
		stale = t_node_sent;
		t_heartbeats(800, stale, true);
		ck_assert_msg(!owner_may_deliver(t_owner),
			      "a lease kept alive by stale echoes");
		/* fresh contact, but the map comes only in a stale message */
		t_heartbeats(200, 0, false);
		t_heartbeat(clock_mono_ms(), stale, true);
		t_run(20);
		ck_assert_msg(!owner_may_deliver(t_owner),
			      "unfenced by a map that predates the lapse");
		t_heartbeats(200, 0, true);
		ck_assert(owner_may_deliver(t_owner));
	}
END_TEST

/* A peer without the echo fields (an older version) keeps today's rule:
 * its messages count when they arrive. */
START_TEST(test_a_peer_without_echo_counts_from_arrival)
	{
		uint64_t until;

		t_wait_link();
		ck_assert(!owner_may_deliver(t_owner));
		until = clock_mono_ms() + 1000;
		while (clock_mono_ms() < until) {
			t_heartbeat(0, 0, true);
			t_run(20);
			ck_assert(owner_may_deliver(t_owner));
		}
	}
END_TEST

/* A replica copy: the primary's deletion leaves a tombstone only when it
 * finished the message. A withdrawal (its client was answered 4xx) must
 * leave none, or a router's resend of the qid after a takeover would be
 * answered OK from it and never stored: acknowledged mail lost. */
START_TEST(test_replica_keeps_a_tombstone_only_of_a_finished_message)
	{
		Shoal__ReplRecord r[2];

		t_wait_link();
		t_record(&r[0], 1, t_qids[0], 100, false);
		t_record(&r[1], 2, t_qids[1], 100, false);
		t_apply(0, r, 2);
		ck_assert(t_has(t_qids[0]) && t_has(t_qids[1]));
		t_record(&r[0], 3, t_qids[0], 0, false); /* withdrawn */
		t_record(&r[1], 4, t_qids[1], 0, true);	 /* delivered */
		t_apply(2, r, 2);
		ck_assert(!t_has(t_qids[0]) && !t_has(t_qids[1]));
		ck_assert_msg(!t_tomb(t_qids[0]),
			      "a withdrawn message left a tombstone");
		ck_assert_msg(t_tomb(t_qids[1]),
			      "a delivered message left no tombstone");
		/* a withdrawal of a copy never received: nothing either */
		t_record(&r[0], 5, t_qids[2], 0, false);
		t_apply(4, r, 1);
		ck_assert(!t_tomb(t_qids[2]));
		/* the withdrawn qid may come again, and stays this time */
		t_record(&r[0], 6, t_qids[0], 100, false);
		t_apply(5, r, 1);
		ck_assert(t_has(t_qids[0]));
	}
END_TEST

/* A handback (records of a shard n1 now owns, from its old primary). A
 * final deletion removes n1's copy and leaves a tombstone, as before. A
 * withdrawal there must not remove n1's copy, which n1 may have answered
 * OK to the router's resend since the takeover, nor leave a tombstone. */
START_TEST(test_handback_of_a_withdrawal_keeps_our_copy)
	{
		Shoal__ReplRecord r[3];

		t_wait_link();
		t_store_own(t_own[0]);
		t_store_own(t_own[1]);
		t_record(&r[0], 1, t_own[0], 0, false); /* withdrawn there */
		t_record(&r[1], 2, t_own[1], 0, true);	/* delivered there */
		t_record(&r[2], 3, t_own[2], 0, false); /* not held here */
		t_apply(0, r, 3);
		ck_assert_msg(t_has(t_own[0]),
			      "a handback withdrawal removed our copy");
		ck_assert(!t_tomb(t_own[0]));
		ck_assert(!t_has(t_own[1]) && t_tomb(t_own[1]));
		ck_assert_msg(!t_tomb(t_own[2]),
			      "a handback withdrawal left a tombstone");
	}
END_TEST

/* The primary's side: the record of a removed message says whether the
 * removal was final (retired: a tombstone here) or a withdrawal. */
START_TEST(test_record_says_whether_a_deletion_is_final)
	{
		Shoal__ReplRecord rec;
		struct store_txn *t;

		t_store_own(t_own[0]);
		t_store_own(t_own[1]);
		ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
		ck_assert_int_eq(store_msg_del(t, t_own[0],
					       shard_of(t_own[0], T_SHARDS)),
				 0);
		ck_assert_int_eq(store_msg_retire(t, t_own[1],
						  shard_of(t_own[1], T_SHARDS)),
				 0);
		repl_record_fill(t, t_own[0], shard_of(t_own[0], T_SHARDS),
				 true, &rec);
		ck_assert(rec.deleted && !rec.finished);
		repl_record_fill(t, t_own[1], shard_of(t_own[1], T_SHARDS),
				 true, &rec);
		ck_assert_msg(rec.deleted && rec.finished,
			      "a final deletion not marked so");
		store_txn_abort(t);
	}
END_TEST

/* Run the loop until the node has sent a batch up to at least seq. */
static void
t_wait_head(uint64_t seq)
{
	uint64_t until = clock_mono_ms() + 5000;

	while (t_node_head < seq && clock_mono_ms() < until)
		t_run(10);
	ck_assert_msg(t_node_head >= seq, "sent up to %llu, not %llu",
		      (unsigned long long)t_node_head,
		      (unsigned long long)seq);
}

/* The node's repl stopped and started again on the same store, as a
 * restart of the node makes it. */
static void
t_restart_repl(void)
{
	const struct cfg_node *me = config_find_node(t_cfg, "n1");

	commit_flush(t_commit);
	commit_set_hook(t_commit, NULL);
	repl_free(t_repl);
	commit_flush(t_commit);
	t_repl = repl_new(t_base, t_cfg, me, t_zctx, t_store, t_commit,
			  t_owner, &t_hooks);
	ck_assert_ptr_nonnull(t_repl);
	owner_set_repl(t_owner, t_repl);
	t_set_hook();
}

/* A start skips 2^32 seqs (a commit lost in a crash may have shipped
 * some): the next change gets a seq past them, and an empty batch brings
 * the peer's ack up to the head so that the pair is caught up. The first
 * start of a store shipped nothing before and skips nothing. */
START_TEST(test_a_start_skips_seqs_and_an_empty_batch_acks_them)
	{
		uint64_t base;

		ck_assert_uint_eq(t_node_base, 0);
		t_store_own(t_own[0]);
		repl_kick(t_repl);
		t_wait_link();
		t_wait_head(1);
		t_ack(1);
		ck_assert(repl_caught_up(t_repl));
		t_restart_repl();
		base = store_journal_seq(t_store);
		ck_assert_uint_eq(base, 1 + (UINT64_C(1) << 32));
		ck_assert(!repl_caught_up(t_repl));
		t_wait_head(base);
		ck_assert_uint_eq(t_node_records, 0);
		t_ack(base);
		ck_assert(repl_caught_up(t_repl));
		/* the next change comes after the skipped seqs */
		t_store_own(t_own[1]);
		repl_kick(t_repl);
		t_wait_head(base + 1);
		ck_assert_uint_eq(t_node_prev, base);
		ck_assert_uint_eq(t_node_records, 1);
	}
END_TEST

/* The peer acknowledges a seq this node never gave out: its store is
 * older than what was shipped from it (a copy put back). Every message
 * of its own is journaled again under seqs past that ack, so the peer
 * applies them instead of taking them for the ones it has. */
START_TEST(test_an_ack_past_our_head_sends_everything_again)
	{
		uint64_t claim;

		for (int i = 0; i < T_QIDS; i++)
			t_store_own(t_own[i]);
		repl_kick(t_repl);
		t_wait_link();
		t_wait_head(t_node_base + T_QIDS);
		claim = t_node_head + 1000;
		t_ack(claim);
		t_wait_head(claim + 1);
		ck_assert_uint_eq(t_node_prev, claim);
		ck_assert_uint_eq(t_node_records, T_QIDS);
		ck_assert_uint_eq(t_node_head, claim + T_QIDS);
		ck_assert_uint_eq(t_journal_left(), T_QIDS);
		/* positive control: an ack of what it sent is an ack */
		t_ack(t_node_head);
		ck_assert(repl_caught_up(t_repl));
	}
END_TEST

/* A transaction that ships its journal and then fails to commit (a full
 * disk, an I/O error), through the hook as the group commit calls it. */
/* A write transaction that deletes del and stores put (either NULL). */
static struct store_txn *
t_change(const char *del, const char *put)
{
	Shoal__ReplRecord rec;
	struct store_txn *t;

	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	if (del != NULL)
		ck_assert_int_eq(store_msg_del(t, del,
					       shard_of(del, T_SHARDS)), 0);
	if (put != NULL) {
		t_record(&rec, 0, put, 100, false);
		ck_assert_int_eq(store_msg_put(t, put, rec.shard,
					       rec.meta.data, rec.meta.len,
					       rec.body.data, rec.body.len),
				 0);
		free(rec.meta.data);
		free(rec.body.data);
	}
	return t;
}

static void
t_ship_and_fail(const char *del, const char *put)
{
	struct commit_hook h = repl_commit_hook(t_repl);
	struct store_txn *t = t_change(del, put);

	h.ship(h.arg, t);
	store_txn_abort(t);
	h.failed(h.arg);
}

/* Read what the node sent, without running its loop (nothing it would
 * do next happens meanwhile), until *v (a t_node_ figure) reaches seq:
 * each pass waits for the peer socket to have something. */
static void
t_read_upto(const uint64_t *v, uint64_t seq)
{
	uint64_t until = clock_mono_ms() + 5000;

	while (*v < seq && clock_mono_ms() < until) {
		zmq_pollitem_t pi = { t_peer, 0, ZMQ_POLLIN, 0 };

		zmq_poll(&pi, 1, (long)(until - clock_mono_ms()));
		t_read_peer();
	}
	ck_assert_uint_ge(*v, seq);
}

/* ... until a batch up to seq came. */
static void
t_read_head(uint64_t seq)
{
	t_read_upto(&t_node_head, seq);
}

/* The last batch came after the one before it (prev_seq) and holds key,
 * deleted or whole with its body. */
static void
t_assert_batch(uint64_t prev, const char *key, bool deleted)
{
	ck_assert_uint_eq(t_node_prev, prev);
	ck_assert_str_eq(t_node_qid, key);
	ck_assert_msg(t_node_deleted == deleted && t_node_body == !deleted,
		      "%s: deleted %d body %d, not %s", key, t_node_deleted,
		      t_node_body, deleted ? "deleted" : "whole");
}

/* The journal leaves before the commit that holds it (the hook): when
 * that commit then fails, the peer has applied changes n1 does not have.
 * It gets n1's state at once (sent as it is, no commit needed) and again
 * from the journal: a message n1 never stored comes as a withdrawal, one
 * whose deletion failed comes back whole, with its body. */
START_TEST(test_a_commit_that_fails_after_shipping_is_put_right)
	{
		uint64_t head;

		t_store_own(t_own[0]);
		repl_kick(t_repl);
		t_wait_link();
		t_wait_head(t_node_base + 1);
		t_ack(t_node_head);
		/* a new message, shipped, its commit failed: the withdrawal
		 * follows the batch at once, and from the journal later */
		head = t_node_head;
		t_ship_and_fail(NULL, t_own[1]);
		t_read_head(head + 2);
		t_assert_batch(head + 1, t_own[1], true);
		head = t_node_head;
		t_wait_head(head + 1);
		t_assert_batch(head, t_own[1], true);
		ck_assert(!t_has(t_own[1]));
		t_ack(t_node_head);
		t_run(300); /* the repair's sync: shipping first again */
		/* a deletion of a stored message, shipped, its commit failed:
		 * the message follows whole */
		head = t_node_head;
		t_ship_and_fail(t_own[0], NULL);
		t_read_head(head + 2);
		t_assert_batch(head + 1, t_own[0], false);
		head = t_node_head;
		t_wait_head(head + 1);
		t_assert_batch(head, t_own[0], false);
		ck_assert(t_has(t_own[0]));
	}
END_TEST

/* After a commit failed, until its repair is committed, a transaction
 * ships nothing before its commit (a full disk would fail each, and the
 * peer would get mail we refuse): its journal leaves once committed. */
START_TEST(test_after_a_failed_commit_the_journal_leaves_after_commits)
	{
		struct commit_hook h = repl_commit_hook(t_repl);
		struct store_txn *t;
		uint64_t head;
		bool synced;

		t_wait_link();
		t_ship_and_fail(NULL, t_own[1]);
		t_read_head(t_node_base + 2);
		head = t_node_head;
		t = t_change(NULL, t_own[2]);
		h.ship(h.arg, t);
		/* a heartbeat after the ship, carrying the new head: anything
		 * the ship sent on the link came before it */
		repl_heartbeat_now(t_repl);
		t_read_upto(&t_node_hb_head, store_journal_seq(t_store));
		ck_assert_msg(t_node_head == head,
			      "shipped before its commit while a repair waits");
		ck_assert_int_eq(store_txn_commit_lazy(t, &synced), 0);
		h.committed(h.arg);
		/* the positive control: once committed, it leaves */
		t_read_head(head + 1);
		ck_assert_str_eq(t_node_qid, t_own[2]);
	}
END_TEST

/* The failed commit's own batch fills the window (the peer acks
 * nothing): the state after it still goes, past the window. */
START_TEST(test_the_state_after_a_failed_commit_goes_past_a_full_window)
	{
		struct store_txn *t;
		uint64_t head;

		t_store_own(t_own[0]);
		repl_kick(t_repl);
		t_wait_link();
		t_wait_head(t_node_base + 1);
		/* REPL_WINDOW - 1 batches in flight, one change each */
		for (int i = 1; i < REPL_WINDOW - 1; i++) {
			ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
			ck_assert_int_eq(store_journal_touch(t, t_own[0],
				shard_of(t_own[0], T_SHARDS)), 0);
			ck_assert_int_eq(store_txn_commit(t), 0);
			repl_kick(t_repl);
			t_wait_head(t_node_head + 1);
		}
		head = t_node_head;
		t_ship_and_fail(NULL, t_own[1]);
		t_read_head(head + 2);
		t_assert_batch(head + 1, t_own[1], true);
	}
END_TEST

/* Positive control of the repair: a commit that succeeds after shipping
 * sends its change once, and nothing is journaled again. */
START_TEST(test_a_commit_that_succeeds_after_shipping_is_sent_once)
	{
		struct commit_hook h = repl_commit_hook(t_repl);
		struct store_txn *t;
		uint64_t head;
		bool synced;

		t_wait_link();
		head = t_node_head;
		t = t_change(NULL, t_own[2]);
		h.ship(h.arg, t);
		ck_assert_int_eq(store_txn_commit_lazy(t, &synced), 0);
		h.committed(h.arg);
		t_read_head(head + 1);
		ck_assert_str_eq(t_node_qid, t_own[2]);
		head = t_node_head;
		t_ack(head);
		t_run(400); /* the repair would come after REPL_TRIM_DELAY_MS */
		ck_assert_uint_eq(t_node_head, head);
		ck_assert_uint_eq(store_journal_seq(t_store), head);
	}
END_TEST

static Suite *
repl_suite(void)
{
	Suite *s = suite_create("repl");
	TCase *tc = tcase_create("apply");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_batches_are_applied_in_order);
	tcase_add_test(tc, test_a_duplicate_batch_changes_nothing);
	tcase_add_test(tc, test_a_gap_asks_for_a_resend);
	tcase_add_test(tc, test_batch_after_a_failed_one_is_not_applied);
	tcase_add_test(tc, test_failed_apply_is_retried_until_it_succeeds);
	tcase_add_test(
		tc, test_replica_keeps_a_tombstone_only_of_a_finished_message);
	tcase_add_test(tc, test_handback_adopts_what_we_lack_only);
	tcase_add_test(tc, test_apply_logs_once_under_rehearsal);
	tcase_add_test(tc, test_handback_of_a_withdrawal_keeps_our_copy);
	tcase_add_test(tc, test_record_says_whether_a_deletion_is_final);
	tcase_add_test(tc, test_an_ack_during_a_trim_is_trimmed_after_it);
	tcase_add_test(tc, test_a_start_skips_seqs_and_an_empty_batch_acks_them);
	tcase_add_test(tc, test_an_ack_past_our_head_sends_everything_again);
	tcase_add_test(tc, test_a_commit_that_fails_after_shipping_is_put_right);
	tcase_add_test(tc, test_a_commit_that_succeeds_after_shipping_is_sent_once);
	tcase_add_test(tc, test_after_a_failed_commit_the_journal_leaves_after_commits);
	tcase_add_test(tc, test_the_state_after_a_failed_commit_goes_past_a_full_window);
	suite_add_tcase(s, tc);
	tc = tcase_create("lease");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_stale_messages_do_not_extend_the_lease);
	tcase_add_test(tc, test_a_peer_without_echo_counts_from_arrival);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(repl_suite)
