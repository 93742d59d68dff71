/* The queue's counts: messages, recipients queued and deferred and held
 * messages per shard, kept by node/store/store_counts.c in the transaction
 * that changes a message, and what node/ops/admin.c answers from them. What must hold:
 * status and the metrics' depth cost the same at any queue size; the
 * counters equal a full walk after any mix of puts, meta updates, deletes,
 * shard changes and aborted transactions, across a reopen, and for a queue
 * written before the counters existed (rebuilt once at open). */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/be.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "node/ops/admin.h"
#include "node/store/store.h"
#include "proto/cli_node.pb-c.h"
#include "proto/queue.pb-c.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/rpc_helper.h"

#define T_SHARDS 4
#define T_MAP_SIZE (256u * 1024 * 1024)

static char t_dir[64];
static struct store *t_store;
static Shoal__ShardMap t_map;
static Shoal__NodeInfo t_nodes[2];
static Shoal__NodeInfo *t_node_ptrs[2];
static Shoal__ShardAssignment t_shards[T_SHARDS];
static Shoal__ShardAssignment *t_shard_ptrs[T_SHARDS];
static struct rpc_peer t_peer;

/* The admin link, as node.c serves it. */
static void
t_on_admin(void *arg, zmq_msg_t *frames, size_t nframes)
{
	struct admin_ctx ctx = { .rpc = t_peer.rpc,
				 .store = t_store,
				 .node_id = "n1",
				 .map = &t_map };

	(void)arg;
	admin_handle(&ctx, frames, nframes);
}

/* Two nodes; n1 is primary of the even shards and replica of the odd. */
static void
t_setup(void)
{
	log_init("test_counts", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "counts");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_store), 0);
	shoal__shard_map__init(&t_map);
	for (int i = 0; i < 2; i++) {
		shoal__node_info__init(&t_nodes[i]);
		t_nodes[i].id = i == 0 ? "n1" : "n2";
		t_nodes[i].endpoint =
			i == 0 ? "tcp://127.0.0.1:1" : "tcp://127.0.0.1:2";
		t_nodes[i].peer = i == 0 ? "n2" : "n1";
		t_node_ptrs[i] = &t_nodes[i];
	}
	for (int s = 0; s < T_SHARDS; s++) {
		shoal__shard_assignment__init(&t_shards[s]);
		t_shards[s].primary = s % 2 == 0 ? "n1" : "n2";
		t_shards[s].replica = s % 2 == 0 ? "n2" : "n1";
		t_shard_ptrs[s] = &t_shards[s];
	}
	t_map.epoch = 3;
	t_map.n_nodes = 2;
	t_map.nodes = t_node_ptrs;
	t_map.n_shards = T_SHARDS;
	t_map.shards = t_shard_ptrs;
	rpc_peer_open(&t_peer, "inproc://test-counts", WIRE_TAG_ADMIN,
		      t_on_admin, NULL);
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

/* A valid qid that sorts by n. */
static void
t_qid(char out[QID_LEN + 1], unsigned n)
{
	snprintf(out, QID_LEN + 1, "0DJ3N8Q2K4M7ZX%c%c%c%c%c%c%c",
		 t_b32[(n >> 30) & 31], t_b32[(n >> 25) & 31],
		 t_b32[(n >> 20) & 31], t_b32[(n >> 15) & 31],
		 t_b32[(n >> 10) & 31], t_b32[(n >> 5) & 31], t_b32[n & 31]);
}

/* A packed StoredMessage with n_rcpts recipients whose states come from
 * states[] (cycled). Caller frees. */
static void *
t_meta(const char *qid, uint32_t shard, bool held, uint64_t arrival,
       const Shoal__RcptState *states, size_t n_rcpts, size_t *len)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient r[8], *rp[8];
	void *p;

	ck_assert_uint_le(n_rcpts, 8);
	for (size_t i = 0; i < n_rcpts; i++) {
		shoal__recipient__init(&r[i]);
		r[i].address = "someone@example.net";
		r[i].state = states[i];
		rp[i] = &r[i];
	}
	env.mail_from = "sender@example.org";
	env.n_rcpts = n_rcpts;
	env.rcpts = rp;
	env.arrival_time = arrival;
	env.size = 100;
	env.helo = "client.example";
	env.client_addr = "192.0.2.1";
	sm.qid = (char *)qid;
	sm.shard = shard;
	sm.envelope = &env;
	sm.held = held;
	*len = shoal__stored_message__get_packed_size(&sm);
	p = malloc(*len + 1);
	shoal__stored_message__pack(&sm, p);
	return p;
}

static Shoal__AdminReply *
t_status(void)
{
	Shoal__AdminRequest req = SHOAL__ADMIN_REQUEST__INIT;
	Shoal__StatusRequest st = SHOAL__STATUS_REQUEST__INIT;
	Shoal__AdminReply *r;
	size_t len = 0, out_len = 0;
	void *p, *out;

	req.request_id = 7;
	req.body_case = SHOAL__ADMIN_REQUEST__BODY_STATUS;
	req.status = &st;
	len = shoal__admin_request__get_packed_size(&req);
	p = malloc(len + 1);
	shoal__admin_request__pack(&req, p);
	out = rpc_peer_call(&t_peer, WIRE_TAG_ADMIN, p, len, &out_len);
	free(p);
	ck_assert_ptr_nonnull(out);
	r = shoal__admin_reply__unpack(NULL, out_len, out);
	free(out);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->status, SHOAL__STATUS__STATUS_OK);
	return r;
}

static double
t_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- cost ------------------------------------------------------------ */

#define T_BIG 100000

/* Status and the metrics' depth at 100,000 messages cost what they cost on
 * an empty queue: no walk. CPU time, not wall time, so a busy machine
 * does not make it flaky; a walk that unpacks every record takes tens of
 * milliseconds here, the counters well under one. */
START_TEST(test_status_and_depth_cost_no_walk)
{
	static const Shoal__RcptState st[] = {
		SHOAL__RCPT_STATE__RCPT_DEFERRED,
		SHOAL__RCPT_STATE__RCPT_QUEUED,
	};
	struct store_txn *t;
	struct admin_depth d;
	Shoal__AdminReply *r;
	char qid[QID_LEN + 1];
	double t0, status_ms, depth_ms;

	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	for (unsigned i = 0; i < T_BIG; i++) {
		size_t len;
		void *meta;

		t_qid(qid, i);
		meta = t_meta(qid, i % T_SHARDS, false, 1700000000 + i,
			      st, 2, &len);
		ck_assert_int_eq(store_msg_put(t, qid, i % T_SHARDS,
					       meta, len, "x", 1),
				 0);
		free(meta);
	}
	ck_assert_int_eq(store_txn_commit(t), 0);

	/* warm up once: the first read maps the pages either way */
	r = t_status();
	shoal__admin_reply__free_unpacked(r, NULL);
	t0 = t_cpu_ms();
	for (int i = 0; i < 5; i++) {
		r = t_status();
		ck_assert_uint_eq(r->status_reply->messages, T_BIG / 2);
		ck_assert_uint_eq(r->status_reply->rcpts_deferred,
				  T_BIG / 2);
		ck_assert_uint_eq(r->status_reply->rcpts_queued,
				  T_BIG / 2);
		ck_assert_uint_eq(r->status_reply->oldest_arrival,
				  1700000000);
		shoal__admin_reply__free_unpacked(r, NULL);
	}
	status_ms = (t_cpu_ms() - t0) / 5;
	t0 = t_cpu_ms();
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(
			admin_queue_depth(t_store, &t_map, "n1", &d),
			0);
		ck_assert_uint_eq(d.messages, T_BIG / 2);
		ck_assert_uint_eq(d.deferred, T_BIG / 2);
	}
	depth_ms = (t_cpu_ms() - t0) / 5;
	ck_assert_msg(
		status_ms < 5 && depth_ms < 5,
		"status %.1f ms, depth %.1f ms of CPU at %d messages",
		status_ms, depth_ms, T_BIG);
}
END_TEST

/* ---- the rule, and the counts against a walk ------------------------- */

static void
t_put(const char *qid, uint32_t shard, bool held,
      const Shoal__RcptState *states, size_t n)
{
	struct store_txn *t;
	size_t len;
	void *meta = t_meta(qid, shard, held, 1700000000, states, n, &len);

	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, qid, shard, meta, len, "b", 1), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(meta);
}

struct t_all {
	struct store_counts c[T_SHARDS + 4];
	unsigned entries;
};

static int
t_collect(uint32_t shard, const struct store_counts *c, void *arg)
{
	struct t_all *a = arg;

	ck_assert_uint_lt(shard, T_SHARDS + 4);
	a->c[shard] = *c;
	a->entries++;
	return 0;
}

static void
t_counts(struct t_all *a)
{
	struct store_txn *t;

	memset(a, 0, sizeof(*a));
	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	ck_assert_int_eq(store_count_foreach(t, t_collect, a), 0);
	ck_assert_int_eq(store_count_check(t), 0);
	store_txn_abort(t);
}

START_TEST(test_record_rule)
{
	static const Shoal__RcptState mix[] = {
		SHOAL__RCPT_STATE__RCPT_QUEUED,
		SHOAL__RCPT_STATE__RCPT_DEFERRED,
		SHOAL__RCPT_STATE__RCPT_DELIVERED,
		SHOAL__RCPT_STATE__RCPT_BOUNCED,
		SHOAL__RCPT_STATE__RCPT_DEFERRED,
	};
	struct store_counts c;
	size_t len;
	void *meta;

	meta = t_meta("0A", 0, false, 1, mix, 5, &len);
	store_count_record(meta, len, &c);
	ck_assert_uint_eq(c.messages, 1);
	ck_assert_uint_eq(c.queued, 1);
	ck_assert_uint_eq(c.deferred, 2);
	ck_assert_uint_eq(c.held, 0);
	free(meta);
	/* held: its recipients wait for release, counted as neither */
	meta = t_meta("0A", 0, true, 1, mix, 5, &len);
	store_count_record(meta, len, &c);
	ck_assert_uint_eq(c.messages, 1);
	ck_assert_uint_eq(c.queued + c.deferred, 0);
	ck_assert_uint_eq(c.held, 1);
	free(meta);
	/* unreadable, or no envelope: still a message, nothing else */
	store_count_record("\xff\xff\xff", 3, &c);
	ck_assert_uint_eq(c.messages, 1);
	ck_assert_uint_eq(c.queued + c.deferred + c.held, 0);
	store_count_record("", 0, &c);
	ck_assert_uint_eq(c.messages, 1);
	ck_assert_uint_eq(c.queued + c.deferred + c.held, 0);
}
END_TEST

/* What the test itself expects, from the states it chose. */
struct t_msg {
	bool live;
	uint32_t shard;
	bool held;
	size_t n;
	Shoal__RcptState st[4];
};

#define T_RAND_QIDS 64
#define T_RAND_ROUNDS 400

static void
t_model(const struct t_msg *m, struct store_counts want[T_SHARDS])
{
	memset(want, 0, sizeof(struct store_counts) * T_SHARDS);
	for (int i = 0; i < T_RAND_QIDS; i++) {
		if (!m[i].live)
			continue;
		want[m[i].shard].messages++;
		if (m[i].held) {
			want[m[i].shard].held++;
			continue;
		}
		for (size_t k = 0; k < m[i].n; k++) {
			if (m[i].st[k] == SHOAL__RCPT_STATE__RCPT_QUEUED)
				want[m[i].shard].queued++;
			else if (m[i].st[k] == SHOAL__RCPT_STATE__RCPT_DEFERRED)
				want[m[i].shard].deferred++;
		}
	}
}

/* Random puts (new and over an existing qid, also into another shard),
 * meta updates, deletes, several per transaction, some transactions
 * aborted: after every one the counts equal the test's own model and a
 * walk of the store (store_count_check), and again after a reopen. */
START_TEST(test_counts_match_a_walk_after_random_changes)
{
	struct t_msg m[T_RAND_QIDS], next[T_RAND_QIDS];
	struct store_counts want[T_SHARDS];
	struct t_all got;
	unsigned seed = 15u + (unsigned)_i;

	memset(m, 0, sizeof(m));
	for (int round = 0; round < T_RAND_ROUNDS; round++) {
		struct store_txn *t;
		int ops = 1 + rand_r(&seed) % 6;
		bool is_abort = rand_r(&seed) % 5 == 0;

		memcpy(next, m, sizeof(m));
		ck_assert_int_eq(store_txn_begin(t_store, false, &t),
				 0);
		for (int k = 0; k < ops; k++) {
			int i = rand_r(&seed) % T_RAND_QIDS;
			int op = rand_r(&seed) % 3;
			char qid[QID_LEN + 1];
			struct t_msg *x = &next[i];
			size_t len;
			void *meta;

			t_qid(qid, (unsigned)i);
			if (op == 2 && x->live) {
				ck_assert_int_eq(
					store_msg_del(t, qid, x->shard),
					0);
				x->live = false;
				continue;
			}
			if (op == 2) {
				ck_assert_int_eq(
					store_msg_del(t, qid, 0),
					-ENOENT);
				continue;
			}
			x->held = rand_r(&seed) % 4 == 0;
			x->n = (size_t)(rand_r(&seed) % 5);
			for (size_t r = 0; r < x->n; r++)
				x->st[r] =
					(Shoal__RcptState)(rand_r(&seed) %
							   4);
			if (op == 1 && x->live) {
				meta = t_meta(qid, x->shard, x->held, 1,
					      x->st, x->n, &len);
				ck_assert_int_eq(
					store_msg_set_meta(t, qid, meta,
							   len),
					0);
			} else {
				x->shard = (uint32_t)(rand_r(&seed) %
						      T_SHARDS);
				meta = t_meta(qid, x->shard, x->held, 1,
					      x->st, x->n, &len);
				ck_assert_int_eq(
					store_msg_put(t, qid, x->shard,
						      meta, len, "b",
						      1),
					0);
				x->live = true;
			}
			free(meta);
		}
		if (is_abort) {
			store_txn_abort(t);
		} else {
			ck_assert_int_eq(store_txn_commit(t), 0);
			memcpy(m, next, sizeof(m));
		}
		t_model(m, want);
		t_counts(&got);
		for (int s = 0; s < T_SHARDS; s++) {
			ck_assert_msg(
				got.c[s].messages == want[s].messages &&
					got.c[s].queued ==
						want[s].queued &&
					got.c[s].deferred ==
						want[s].deferred &&
					got.c[s].held == want[s].held,
				"round %d shard %d: got "
				"%llu/%llu/%llu/%llu "
				"want %llu/%llu/%llu/%llu",
				round, s,
				(unsigned long long)got.c[s].messages,
				(unsigned long long)got.c[s].queued,
				(unsigned long long)got.c[s].deferred,
				(unsigned long long)got.c[s].held,
				(unsigned long long)want[s].messages,
				(unsigned long long)want[s].queued,
				(unsigned long long)want[s].deferred,
				(unsigned long long)want[s].held);
		}
	}
	store_close(t_store);
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_store), 0);
	t_counts(&got);
	for (int s = 0; s < T_SHARDS; s++)
		ck_assert_uint_eq(got.c[s].messages, want[s].messages);
}
END_TEST

/* ---- at open -------------------------------------------------------- */

/* Change the closed store's environment as another program would. */
typedef void (*t_raw_fn)(MDB_txn *txn, MDB_env *env);

static void
t_raw(t_raw_fn fn)
{
	MDB_env *env;
	MDB_txn *txn;

	store_close(t_store);
	t_store = NULL;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 32), 0);
	ck_assert_int_eq(mdb_env_open(env, t_dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	fn(txn, env);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static MDB_dbi
t_dbi(MDB_txn *txn, const char *name)
{
	MDB_dbi dbi;

	ck_assert_int_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
	return dbi;
}

/* The log of the next open, in a file. */
static char t_log[128];

static void
t_log_to_file(void)
{
	snprintf(t_log, sizeof(t_log), "%s.log", t_dir);
	log_init("test_counts", LOG_LVL_INFO);
	ck_assert_int_eq(log_open_file(t_log), 0);
}

/* How many lines of the log hold s. */
static int
t_log_count(const char *s)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(t_log, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

static void
t_reopen(void)
{
	if (t_store != NULL)
		store_close(t_store);
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_store), 0);
}

static const Shoal__RcptState t_q[] = { SHOAL__RCPT_STATE__RCPT_QUEUED };
static const Shoal__RcptState t_d[] = { SHOAL__RCPT_STATE__RCPT_DEFERRED };

/* Counts the node kept are read as they are: a reopen does not walk. The
 * control: the first open of an empty directory does log a rebuild. */
START_TEST(test_reopen_trusts_kept_counts)
{
	struct t_all got;

	store_close(t_store);
	check_rmtree(t_dir);
	ck_assert_int_eq(mkdir(t_dir, 0700), 0);
	t_log_to_file();
	t_store = NULL;
	t_reopen();
	ck_assert_int_eq(
		t_log_count("event=counts_rebuild reason=missing"), 1);
	t_put("0A", 0, false, t_q, 1);
	t_put("0B", 2, false, t_d, 1);
	t_reopen();
	t_reopen();
	ck_assert_int_eq(t_log_count("event=counts_rebuild "), 1);
	t_counts(&got);
	ck_assert_uint_eq(got.c[0].queued, 1);
	ck_assert_uint_eq(got.c[2].deferred, 1);
	log_close();
	unlink(t_log);
}
END_TEST

static void
t_drop_counts(MDB_txn *txn, MDB_env *env)
{
	MDB_val key = { strlen("queue_counts"), "queue_counts" };

	(void)env;
	ck_assert_int_eq(mdb_drop(txn, t_dbi(txn, "counts"), 1), 0);
	ck_assert_int_eq(mdb_del(txn, t_dbi(txn, "meta"), &key, NULL), 0);
}

/* A queue written by a binary from before the counts: they are counted
 * once at open, logged with the time it took, and kept from then on. */
START_TEST(test_queue_from_before_counts_is_counted_at_open)
{
	static const Shoal__RcptState two[] = {
		SHOAL__RCPT_STATE__RCPT_DEFERRED,
		SHOAL__RCPT_STATE__RCPT_QUEUED,
	};
	Shoal__AdminReply *r;
	struct t_all got;

	t_put("0A", 0, false, two, 2);
	t_put("0B", 2, true, two, 2);
	t_put("0C", 1, false, t_d, 1);
	t_raw(t_drop_counts);
	t_log_to_file();
	t_reopen();
	ck_assert_int_eq(
		t_log_count("event=counts_rebuild reason=missing "
			    "messages=3"),
		1);
	ck_assert_int_eq(
		t_log_count("event=counts_rebuilt messages=3 ms="), 1);
	t_counts(&got);
	ck_assert_uint_eq(got.entries, 3);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 2);
	ck_assert_uint_eq(r->status_reply->rcpts_queued, 1);
	ck_assert_uint_eq(r->status_reply->rcpts_deferred, 1);
	ck_assert_uint_eq(r->status_reply->msgs_held, 1);
	shoal__admin_reply__free_unpacked(r, NULL);
	t_reopen();
	ck_assert_int_eq(t_log_count("event=counts_rebuild "), 1);
	log_close();
	unlink(t_log);
}
END_TEST

static void
t_delete_0a(MDB_txn *txn, MDB_env *env)
{
	MDB_val key = { 3, "0A" }, ikey = { 7, "\0\0\0\0"
					       "0A" };

	(void)env;
	ck_assert_int_eq(mdb_del(txn, t_dbi(txn, "msg"), &key, NULL), 0);
	ck_assert_int_eq(mdb_del(txn, t_dbi(txn, "body"), &key, NULL), 0);
	ck_assert_int_eq(mdb_del(txn, t_dbi(txn, "shard"), &ikey, NULL), 0);
}

static void
t_held_0b(MDB_txn *txn, MDB_env *env)
{
	MDB_val key = { 3, "0B" }, val;
	size_t len;
	unsigned char *meta = t_meta("0B", 0, true, 1, t_d, 1, &len);
	unsigned char *rec = malloc(4 + len);

	(void)env;
	memset(rec, 0, 4);
	memcpy(rec + 4, meta, len);
	val.mv_size = 4 + len;
	val.mv_data = rec;
	ck_assert_int_eq(mdb_put(txn, t_dbi(txn, "msg"), &key, &val, 0), 0);
	free(rec);
	free(meta);
}

/* Another binary (an older Shoal after a rollback) changed the queue
 * without the counts: the open notices by the transaction id and counts
 * again, whether the number of messages changed or only a state. */
START_TEST(test_write_without_counts_is_counted_again)
{
	Shoal__AdminReply *r;

	t_put("0A", 0, false, t_q, 1);
	t_put("0B", 0, false, t_d, 1);
	t_raw(t_delete_0a);
	t_log_to_file();
	t_reopen();
	ck_assert_int_eq(t_log_count("event=counts_rebuild "
				     "reason=written_without_counts"),
			 1);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 1);
	ck_assert_uint_eq(r->status_reply->rcpts_queued, 0);
	ck_assert_uint_eq(r->status_reply->rcpts_deferred, 1);
	shoal__admin_reply__free_unpacked(r, NULL);
	t_raw(t_held_0b); /* same number of messages, other state */
	t_reopen();
	ck_assert_int_eq(t_log_count("event=counts_rebuild "
				     "reason=written_without_counts"),
			 2);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 1);
	ck_assert_uint_eq(r->status_reply->rcpts_deferred, 0);
	ck_assert_uint_eq(r->status_reply->msgs_held, 1);
	shoal__admin_reply__free_unpacked(r, NULL);
	log_close();
	unlink(t_log);
}
END_TEST

/* Shard 0's count says 2 queued where the one message has 1, and the
 * marker is forged so the open trusts it. */
static void
t_forge_count(MDB_txn *txn, MDB_env *env)
{
	MDB_val key = { 4, "\0\0\0\0" }, val;
	MDB_val mkey = { strlen("queue_counts"), "queue_counts" };
	unsigned char v[32] = { 0 }, mark[12] = { 0 };
	size_t id = mdb_txn_id(txn);

	(void)env;
	v[7] = 1;
	v[15] = 2;
	val.mv_size = sizeof(v);
	val.mv_data = v;
	ck_assert_int_eq(mdb_put(txn, t_dbi(txn, "counts"), &key, &val, 0), 0);
	mark[3] = 1;
	be64_put(mark + 4, id);
	val.mv_size = sizeof(mark);
	val.mv_data = mark;
	ck_assert_int_eq(mdb_put(txn, t_dbi(txn, "meta"), &mkey, &val, 0), 0);
}

/* The checker's positive control: it sees a count that is wrong. */
START_TEST(test_check_finds_a_wrong_count)
{
	struct store_txn *t;

	t_put("0A", 0, false, t_q, 1);
	t_raw(t_forge_count);
	t_reopen();
	ck_assert_int_eq(store_txn_begin(t_store, true, &t), 0);
	ck_assert_int_eq(store_count_check(t), -EIO);
	store_txn_abort(t);
}
END_TEST

/* Shard 0 says 1 message and nothing queued where its message has one
 * queued recipient; the marker is forged so the open trusts it. */
static void
t_forge_low_count(MDB_txn *txn, MDB_env *env)
{
	MDB_val key = { 4, "\0\0\0\0" }, val;
	MDB_val mkey = { strlen("queue_counts"), "queue_counts" };
	unsigned char v[32] = { 0 }, mark[12] = { 0 };
	size_t id = mdb_txn_id(txn);

	(void)env;
	v[7] = 1;
	val.mv_size = sizeof(v);
	val.mv_data = v;
	ck_assert_int_eq(mdb_put(txn, t_dbi(txn, "counts"), &key, &val, 0), 0);
	mark[3] = 1;
	be64_put(mark + 4, id);
	val.mv_size = sizeof(mark);
	val.mv_data = mark;
	ck_assert_int_eq(mdb_put(txn, t_dbi(txn, "meta"), &mkey, &val, 0), 0);
}

/* A count that would go below zero is a count known to be wrong: it is
 * logged once, stays at zero, and the next open counts again. */
START_TEST(test_count_below_zero_is_counted_again_at_open)
{
	struct store_txn *t;
	struct t_all got;

	t_put("0A", 0, false, t_q, 1);
	t_put("0B", 2, false, t_q, 1);
	t_raw(t_forge_low_count);
	t_log_to_file();
	t_reopen();
	ck_assert_int_eq(t_log_count("event=counts_rebuild "), 0);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_del(t, "0A", 0), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	ck_assert_int_eq(t_log_count("event=counts_wrong shard=0 "), 1);
	t_put("0C", 2, false, t_q, 1); /* later commits keep the mark */
	t_reopen();
	ck_assert_int_eq(t_log_count("event=counts_rebuild reason=known_wrong"), 1);
	t_counts(&got);
	ck_assert_uint_eq(got.entries, 1);
	ck_assert_uint_eq(got.c[2].messages, 2);
	ck_assert_uint_eq(got.c[2].queued, 2);
	log_close();
	unlink(t_log);
}
END_TEST

/* oldest_arrival: the first message (by qid) of each primary shard; one
 * whose record does not say gives its qid's time. Replica shards do not
 * count. */
START_TEST(test_oldest_is_the_first_qid_of_each_shard)
{
	char q0[QID_LEN + 1], q1[QID_LEN + 1], q2[QID_LEN + 1];
	struct store_txn *t;
	Shoal__AdminReply *r;
	size_t len;
	void *meta;

	t_qid(q0, 1);
	t_qid(q1, 2);
	t_qid(q2, 3);
	ck_assert_int_eq(store_txn_begin(t_store, false, &t), 0);
	ck_assert_int_eq(store_msg_put(t, q0, 0, "\xff", 1, "b", 1), 0);
	meta = t_meta(q1, 1, false, 100, t_q, 1, &len); /* n2's */
	ck_assert_int_eq(store_msg_put(t, q1, 1, meta, len, "b", 1), 0);
	free(meta);
	meta = t_meta(q2, 2, false, 4000000000u, t_q, 1, &len);
	ck_assert_int_eq(store_msg_put(t, q2, 2, meta, len, "b", 1), 0);
	free(meta);
	ck_assert_int_eq(store_txn_commit(t), 0);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 2);
	ck_assert_uint_eq(r->status_reply->oldest_arrival,
			  qid_time_us(q0) / 1000000);
	shoal__admin_reply__free_unpacked(r, NULL);
}
END_TEST

/* Status counts a shard for the node that is its primary in the map it
 * is given: after a takeover the same stored counts are the new
 * primary's, with no change to the store. */
START_TEST(test_status_follows_the_map)
{
	Shoal__AdminReply *r;

	t_put("0A", 0, false, t_q, 1);
	t_put("0B", 1, false, t_d, 1);
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 1);
	ck_assert_uint_eq(r->status_reply->rcpts_deferred, 0);
	ck_assert_uint_eq(r->status_reply->n_shard_messages, T_SHARDS);
	ck_assert_uint_eq(r->status_reply->shard_messages[0], 1);
	ck_assert_uint_eq(r->status_reply->shard_messages[1], 0);
	shoal__admin_reply__free_unpacked(r, NULL);
	t_shards[1].primary = "n1"; /* n1 took shard 1 over */
	r = t_status();
	ck_assert_uint_eq(r->status_reply->messages, 2);
	ck_assert_uint_eq(r->status_reply->rcpts_deferred, 1);
	ck_assert_uint_eq(r->status_reply->shard_messages[1], 1);
	shoal__admin_reply__free_unpacked(r, NULL);
	t_shards[1].primary = "n2";
}
END_TEST

static Suite *
counts_suite(void)
{
	Suite *s = suite_create("counts");
	TCase *tc = tcase_create("cost");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_status_and_depth_cost_no_walk);
	suite_add_tcase(s, tc);
	tc = tcase_create("kept");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_record_rule);
	tcase_add_loop_test(tc, test_counts_match_a_walk_after_random_changes,
			    0, 4);
	tcase_add_test(tc, test_status_follows_the_map);
	tcase_add_test(tc, test_oldest_is_the_first_qid_of_each_shard);
	suite_add_tcase(s, tc);
	tc = tcase_create("open");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_test(tc, test_reopen_trusts_kept_counts);
	tcase_add_test(tc, test_queue_from_before_counts_is_counted_at_open);
	tcase_add_test(tc, test_write_without_counts_is_counted_again);
	tcase_add_test(tc, test_check_finds_a_wrong_count);
	tcase_add_test(tc, test_count_below_zero_is_counted_again_at_open);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(counts_suite)
