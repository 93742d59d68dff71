/* Check suite for delivery webhooks (node/webhook/, node/store/
 * store_whev.c): event encoding (fields, hostile text made safe, bounds),
 * POST bodies and their bound, the HMAC-SHA256 signature (RFC 4231
 * vectors), backoff, 2xx, the escaping of a receiver's error text, and
 * in a real store: keys, type filters, the backlog bound dropping the
 * oldest (and nothing below the bound), journaling and the replication
 * record. Each store test gets a fresh mkdtemp() directory. */
#include "node/webhook/webhook.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/log.h"
#include "node/cluster/repl.h"
#include "node/store/store.h"
#include "node/webhook/webhook_batch.h"
#include "node/webhook/webhook_event.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (64ull << 20)
#define T_ON 1  /* a journaled shard */
#define T_OFF 2 /* not journaled */

static char t_dir[64];
static struct store *t_st;
static struct event_base *t_base;

/* ---- events ---------------------------------------------------------- */

static json_t *
t_encode(const struct webhook_event *ev)
{
	size_t len = 0;
	char *text = webhook_event_encode(ev, STORE_WHEV_MAX, &len);
	json_t *o;

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	for (size_t i = 0; i < len; i++) /* JSON_ENSURE_ASCII, no controls */
		ck_assert(text[i] >= 0x20 && text[i] < 0x7f);
	o = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(o);
	free(text);
	return o;
}

static const char *
t_str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	ck_assert_msg(json_is_string(v), "field %s", k);
	return json_string_value(v);
}

static struct webhook_event
t_delivered(void)
{
	struct webhook_event ev = {
		.type = WEBHOOK_DELIVERED,
		.id = "1K20AG5VB52X62WSB0000",
		.time = 1796613410,
		.node = "n1",
		.qid = "1K20AG5T0VWVHCV010000",
		.sender = "shop@example.com",
		.recipient = "u@example.net",
		.destination = "example.net",
		.mx = "mx1.example.net",
		.response = "Ok: queued as 12",
		.code = 250,
		.enhanced = "2.0.0",
		.attempt = 2,
		.tenant = "acme",
		.pool = "warm",
		.priority = "high",
	};

	return ev;
}

START_TEST(test_event_has_every_field)
{
	struct webhook_event ev = t_delivered();
	json_t *o = t_encode(&ev);

	ck_assert_str_eq(t_str(o, "id"), "1K20AG5VB52X62WSB0000");
	ck_assert_str_eq(t_str(o, "type"), "delivered");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "time")),
			 1796613410);
	ck_assert_str_eq(t_str(o, "node"), "n1");
	ck_assert_str_eq(t_str(o, "qid"), "1K20AG5T0VWVHCV010000");
	ck_assert_str_eq(t_str(o, "sender"), "shop@example.com");
	ck_assert_str_eq(t_str(o, "recipient"), "u@example.net");
	ck_assert_str_eq(t_str(o, "destination"), "example.net");
	ck_assert_str_eq(t_str(o, "mx"), "mx1.example.net");
	ck_assert_str_eq(t_str(o, "response"), "Ok: queued as 12");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "code")), 250);
	ck_assert_str_eq(t_str(o, "enhanced"), "2.0.0");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "attempt")), 2);
	ck_assert_str_eq(t_str(o, "tenant"), "acme");
	ck_assert_str_eq(t_str(o, "pool"), "warm");
	ck_assert_str_eq(t_str(o, "priority"), "high");
	/* shaping's fields only on shaping events */
	ck_assert_ptr_null(json_object_get(o, "duration"));
	ck_assert_ptr_null(json_object_get(o, "action"));
	json_decref(o);
}
END_TEST

START_TEST(test_event_shaping_has_action_and_duration)
{
	struct webhook_event ev = {
		.type = WEBHOOK_SHAPING,
		.id = "1K20AG5VB52X62WSB0001",
		.time = 5,
		.node = "n2",
		.destination = "bigmail",
		.provider = "bigmail",
		.action = "suspend",
		.duration = 300,
		.response = "421 4.7.28 rate limited",
		.rule = "bigmail-rate-limited",
	};
	json_t *o = t_encode(&ev);

	ck_assert_str_eq(t_str(o, "type"), "shaping");
	ck_assert_str_eq(t_str(o, "action"), "suspend");
	ck_assert_str_eq(t_str(o, "provider"), "bigmail");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "duration")),
			 300);
	ck_assert_ptr_null(json_object_get(o, "code"));
	ck_assert_ptr_null(json_object_get(o, "qid"));
	json_decref(o);
}
END_TEST

/* A remote server's reply: bytes that are not UTF-8, controls, quotes. */
START_TEST(test_event_hostile_text_is_valid_json)
{
	struct webhook_event ev = t_delivered();
	json_t *o;

	ev.response = "bad \xff\xfe bytes\r\n\x1b[31m \"quoted\" \xc3\xa9 "
		      "\xed\xa0\x80 end";
	o = t_encode(&ev);
	/* é kept, the bad bytes and the surrogate each U+FFFD, controls
	 * kept as characters (escaped in the text by jansson) */
	ck_assert_str_eq(t_str(o, "response"),
			 "bad \xef\xbf\xbd\xef\xbf\xbd bytes\r\n\x1b[31m "
			 "\"quoted\" \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd"
			 "\xef\xbf\xbd end");
	json_decref(o);
}
END_TEST

START_TEST(test_event_long_text_is_cut)
{
	struct webhook_event ev = t_delivered();
	char *big = malloc(5001);
	const char *r;
	json_t *o;

	memset(big, 'a', 5000);
	big[5000] = '\0';
	big[998] = '\xc3'; /* a two-byte character across the bound */
	big[999] = '\xa9';
	ev.response = big;
	o = t_encode(&ev);
	r = t_str(o, "response");
	ck_assert_uint_le(strlen(r), WEBHOOK_TEXT_MAX);
	ck_assert_str_eq(r + strlen(r) - 3, "...");
	/* positive control: a text at the bound is kept whole */
	json_decref(o);
	big[998] = big[999] = 'a';
	big[WEBHOOK_TEXT_MAX] = '\0';
	o = t_encode(&ev);
	ck_assert_uint_eq(strlen(t_str(o, "response")), WEBHOOK_TEXT_MAX);
	json_decref(o);
	free(big);
}
END_TEST

START_TEST(test_event_type_names)
{
	enum webhook_type t;

	for (int i = 0; i < WEBHOOK_TYPES; i++) {
		ck_assert_int_eq(webhook_type_parse(webhook_type_name(i), &t),
				 0);
		ck_assert_int_eq(t, i);
	}
	ck_assert_int_eq(webhook_type_parse("delivered ", &t), -EINVAL);
	ck_assert_str_eq(webhook_type_name(WEBHOOK_TYPES), "");
}
END_TEST

/* ---- batches, signature, backoff ------------------------------------- */

START_TEST(test_body_holds_events_in_order)
{
	struct buf b;
	json_t *o, *a;

	webhook_body_begin(&b);
	ck_assert(webhook_body_add(&b, 0, "{\"id\":\"1\"}", 10));
	ck_assert(webhook_body_add(&b, 1, "{\"id\":\"2\"}", 10));
	ck_assert(webhook_body_add(&b, 2, "{\"id\":\"3\"}", 10));
	webhook_body_end(&b);
	o = json_loadb(b.data, b.len, 0, NULL);
	ck_assert_ptr_nonnull(o);
	a = json_object_get(o, "events");
	ck_assert_uint_eq(json_array_size(a), 3);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(a, 2), "id")),
			 "3");
	json_decref(o);
	buf_free(&b);
}
END_TEST

START_TEST(test_body_stops_at_its_bound)
{
	static char ev[STORE_WHEV_MAX];
	struct buf b;
	size_t n = 0;

	memset(ev, ' ', sizeof(ev));
	ev[0] = '{';
	ev[sizeof(ev) - 1] = '}';
	webhook_body_begin(&b);
	while (n < 10000 && webhook_body_add(&b, n, ev, sizeof(ev)))
		n++;
	ck_assert_uint_lt(n, 10000);
	ck_assert_uint_ge(n, WEBHOOK_BODY_MAX / sizeof(ev) - 1);
	webhook_body_end(&b);
	ck_assert_uint_le(b.len, WEBHOOK_BODY_MAX + 2);
	buf_free(&b);
	/* the first event always fits */
	webhook_body_begin(&b);
	ck_assert(webhook_body_add(&b, 0, ev, sizeof(ev)));
	buf_free(&b);
}
END_TEST

/* RFC 4231 4.3 (test case 2) and 4.2 (test case 1, key 0x0b x 20) */
START_TEST(test_sign_rfc4231)
{
	char sig[WEBHOOK_SIG_MAX], other[WEBHOOK_SIG_MAX];
	const char *data = "what do ya want for nothing?";
	char key1[21];

	webhook_sign("Jefe", data, strlen(data), sig);
	ck_assert_str_eq(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f0"
			      "89d2739839dec58b964ec3843");
	memset(key1, 0x0b, 20);
	key1[20] = '\0';
	webhook_sign(key1, "Hi There", 8, sig);
	ck_assert_str_eq(sig, "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc20"
			      "0c9833da726e9376c2e32cff7");
	/* negative controls: one byte of the body or the key changes it */
	webhook_sign("Jefe", data, strlen(data) - 1, other);
	ck_assert_str_ne(other, "sha256=5bdcc146bf60754e6a042426089575c75a003f0"
				"89d2739839dec58b964ec3843");
	webhook_sign("Jeff", data, strlen(data), other);
	ck_assert_str_ne(other, "sha256=5bdcc146bf60754e6a042426089575c75a003f0"
				"89d2739839dec58b964ec3843");
}
END_TEST

START_TEST(test_backoff_doubles_to_a_minute)
{
	ck_assert_uint_eq(webhook_backoff_ms(1, 0), 1000);
	ck_assert_uint_eq(webhook_backoff_ms(2, 0), 2000);
	ck_assert_uint_eq(webhook_backoff_ms(3, 0), 4000);
	ck_assert_uint_eq(webhook_backoff_ms(6, 0), 32000);
	ck_assert_uint_eq(webhook_backoff_ms(7, 0), 60000);
	ck_assert_uint_eq(webhook_backoff_ms(1000, 0), 60000);
	ck_assert_uint_eq(webhook_backoff_ms(UINT32_MAX, 999), 60000);
	ck_assert_uint_eq(webhook_backoff_ms(1, 500), 1500);
	ck_assert_uint_eq(webhook_backoff_ms(1, 1999), 1999); /* jitter < 1 s */
}
END_TEST

START_TEST(test_status_2xx_only)
{
	ck_assert(webhook_status_ok(200));
	ck_assert(webhook_status_ok(204));
	ck_assert(webhook_status_ok(299));
	ck_assert(!webhook_status_ok(0));
	ck_assert(!webhook_status_ok(199));
	ck_assert(!webhook_status_ok(301)); /* redirects are not followed */
	ck_assert(!webhook_status_ok(429));
	ck_assert(!webhook_status_ok(503));
}
END_TEST

START_TEST(test_escape_error_text)
{
	char out[14];
	char big[WEBHOOK_SIG_MAX];

	webhook_escape("a\x1b[\"\\\xff", 7, big, sizeof(big));
	ck_assert_str_eq(big, "a\\x1b[\\x22\\x5c\\xff");
	webhook_escape("0123456789\x01" "abcdef", 17, out, sizeof(out));
	ck_assert_str_eq(out, "0123456789"); /* cut at a whole escape */
	webhook_escape("ok\0hidden", 9, out, sizeof(out));
	ck_assert_str_eq(out, "ok");
}
END_TEST

/* ---- in the store ---------------------------------------------------- */

static struct config t_cfg;
static struct cfg_webhook t_hooks[2];
static char *t_bounced[] = { "bounced" };

static void
t_setup(void)
{
	static const uint8_t on[8] = { [T_ON] = 1 };

	log_init("test_webhook", LOG_LVL_WARN);
	check_mkdtemp(t_dir, sizeof(t_dir), "webhook");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	store_journal_shards(t_st, on, 8);
	t_base = event_base_new();
	memset(&t_cfg, 0, sizeof(t_cfg));
	memset(t_hooks, 0, sizeof(t_hooks));
	t_cfg.cluster.shards = 8;
	t_hooks[0] = (struct cfg_webhook){
		.name = "all", .url = "http://127.0.0.1:1/", .batch_size = 10,
		.max_delay_ms = 1000, .max_backlog = 3, .timeout_ms = 1000,
	};
	t_hooks[1] = (struct cfg_webhook){
		.name = "bounces", .url = "http://127.0.0.1:1/",
		.events = t_bounced, .n_events = 1, .batch_size = 10,
		.max_delay_ms = 1000, .max_backlog = 100, .timeout_ms = 1000,
	};
	t_cfg.delivery.webhooks = t_hooks;
	t_cfg.delivery.n_webhooks = 2;
}

static void
t_teardown(void)
{
	store_close(t_st);
	t_st = NULL;
	event_base_free(t_base);
	check_rmtree(t_dir);
}

static struct webhooks *
t_webhooks(void)
{
	struct webhooks_deps d = {
		.base = t_base, .cfg = &t_cfg, .node_id = "n1",
		.store = t_st,
	};
	struct webhooks *wh = webhooks_new(&d);

	ck_assert_ptr_nonnull(wh);
	return wh;
}

/* Write one event of type t in its own transaction; returns what the
 * write noted. */
static struct webhook_note
t_write(struct webhooks *wh, enum webhook_type type, uint32_t shard,
	char id[QID_LEN + 1])
{
	struct webhook_event ev = t_delivered();
	struct webhook_note note;
	struct store_txn *t;

	ev.type = type;
	webhooks_draw_id(wh, ev.id);
	if (id)
		memcpy(id, ev.id, QID_LEN + 1);
	webhooks_note_clear(&note);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(webhooks_write(wh, t, &ev, shard, &note), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	return note;
}

struct t_keys {
	size_t n;
	char key[8][STORE_WHEV_KEY_MAX];
};

static int
t_collect(const char *key, uint32_t shard, const void *ev, size_t len,
	  void *arg)
{
	struct t_keys *k = arg;

	(void)shard;
	(void)ev;
	(void)len;
	if (k->n < 8)
		memcpy(k->key[k->n], key, STORE_WHEV_KEY_MAX);
	k->n++;
	return 0;
}

static void
t_keys_of(const char *hook, struct t_keys *k)
{
	struct store_txn *t;

	memset(k, 0, sizeof(*k));
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_whev_foreach(t, hook, NULL, t_collect, k), 0);
	store_txn_abort(t);
}

static const char *
t_tag_of(const struct t_keys *k, size_t i, char out[5])
{
	memcpy(out, k->key[i] + 1, 4);
	out[4] = '\0';
	return out;
}

START_TEST(test_store_key_parse)
{
	char key[STORE_WHEV_KEY_MAX];
	uint32_t shard = 0;

	store_whev_key("AB12", "1K20AG5VB52X62WSB0000", 0xbeef, key);
	ck_assert_uint_eq(strlen(key), STORE_WHEV_KEY_LEN);
	ck_assert(store_whev_key_parse(key, &shard));
	ck_assert_uint_eq(shard, 0xbeef);
	key[STORE_WHEV_KEY_LEN - 1] = 'G'; /* not lower-case hex */
	ck_assert(!store_whev_key_parse(key, NULL));
	ck_assert(!store_whev_key_parse("^AB12", NULL));
	ck_assert(!store_whev_key_parse("~0000000a0123456789ABCDEFGHJKMNP",
					NULL));
	ck_assert(!store_whev_key_parse("1K20AG5VB52X62WSB0000", NULL));
}
END_TEST

START_TEST(test_store_type_filter)
{
	struct webhooks *wh = t_webhooks();
	struct webhook_note n;
	struct t_keys all, k;
	char tag[5];

	n = t_write(wh, WEBHOOK_DELIVERED, T_ON, NULL);
	ck_assert_uint_eq(n.written, 1); /* "all" only */
	n = t_write(wh, WEBHOOK_BOUNCED, T_ON, NULL);
	ck_assert_uint_eq(n.written, 2); /* both */
	t_keys_of(NULL, &all);
	ck_assert_uint_eq(all.n, 3);
	/* two webhooks, two tags: the bounce went to both, in one each */
	t_keys_of(t_tag_of(&all, 0, tag), &k);
	ck_assert(k.n == 1 || k.n == 2);
	ck_assert(webhooks_wants(wh, WEBHOOK_SUPPRESSED));
	webhooks_free(wh);
}
END_TEST

/* max_backlog 3 for "all": five writes keep the three newest. */
START_TEST(test_store_backlog_drops_oldest)
{
	struct webhooks *wh = t_webhooks();
	char ids[5][QID_LEN + 1];
	uint32_t dropped = 0;
	struct t_keys k;
	struct store_txn *t;
	char tag[5];

	for (int i = 0; i < 5; i++) {
		struct webhook_note n =
			t_write(wh, WEBHOOK_DELIVERED, T_ON, ids[i]);

		dropped += n.dropped[0];
		ck_assert_uint_eq(n.dropped[1], 0);
		/* negative control: nothing dropped up to the bound */
		ck_assert_uint_eq(n.dropped[0], i < 3 ? 0 : 1);
	}
	ck_assert_uint_eq(dropped, 2);
	t_keys_of(NULL, &k);
	ck_assert_uint_eq(k.n, 3);
	for (int i = 0; i < 3; i++)
		ck_assert(memcmp(k.key[i] + 5, ids[i + 2], QID_LEN) == 0);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_uint_eq(store_whev_count(t, t_tag_of(&k, 0, tag)), 3);
	store_txn_abort(t);
	webhooks_free(wh);
}
END_TEST

/* A store too small for the backlog: events stop (dropped, counted)
 * while half of it is still free, and new mail is still admitted. */
START_TEST(test_store_events_leave_room_for_mail)
{
	struct webhooks *wh;
	uint32_t written = 0, dropped = 0;
	struct store_txn *t;
	uint64_t used, capacity, room;

	store_close(t_st);
	check_rmtree(t_dir);
	check_mkdtemp(t_dir, sizeof(t_dir), "webhook");
	ck_assert_int_eq(store_open(t_dir, 2 << 20, &t_st), 0);
	t_hooks[0].max_backlog = 1000000; /* the store is the bound */
	wh = t_webhooks();
	for (int i = 0; i < 20000 && dropped == 0; i++) {
		struct webhook_note n =
			t_write(wh, WEBHOOK_DELIVERED, T_ON, NULL);

		written += n.written;
		dropped += n.dropped[0];
	}
	/* the positive control: some fitted, then they were dropped */
	ck_assert_uint_gt(written, 100);
	ck_assert_uint_gt(dropped, 0);
	ck_assert_int_eq(store_usage(t_st, &used, &capacity, &room), 0);
	ck_assert_uint_ge(room + (256u << 10), capacity / 2);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_admit(t, 64 << 10, STORE_ADMIT_MAIL), 0);
	store_txn_abort(t);
	webhooks_free(wh);
}
END_TEST

/* An event of a journaled shard travels to the peer, its deletion too;
 * one of another shard stays local. */
START_TEST(test_store_journaled_and_replicated)
{
	struct webhooks *wh = t_webhooks();
	Shoal__ReplRecord rec;
	struct t_keys k;
	struct store_txn *t;
	uint64_t seq;
	bool body;

	t_write(wh, WEBHOOK_DELIVERED, T_ON, NULL);
	t_write(wh, WEBHOOK_DELIVERED, T_OFF, NULL);
	t_keys_of(NULL, &k);
	ck_assert_uint_eq(k.n, 2);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	for (size_t i = 0; i < 2; i++) {
		uint32_t shard;

		ck_assert(store_whev_key_parse(k.key[i], &shard));
		ck_assert_int_eq(store_journal_seq_of(t, k.key[i], &seq, &body),
				 shard == T_ON ? 0 : -ENOENT);
		if (shard != T_ON)
			continue;
		repl_record_fill(t, k.key[i], shard, true, &rec);
		ck_assert(rec.webhook && !rec.deleted && !rec.has_body);
		ck_assert(repl_record_ok(&rec, 8));
		ck_assert_int_eq(rec.meta.data[0], '{');
		/* sent: deleted, and the deletion is what travels now */
		ck_assert_int_eq(store_whev_del(t, k.key[i]), 0);
		repl_record_fill(t, k.key[i], shard, true, &rec);
		ck_assert(rec.webhook && rec.deleted);
		ck_assert(repl_record_ok(&rec, 8));
		/* a record whose key names another shard is refused */
		rec.shard = T_OFF;
		ck_assert(!repl_record_ok(&rec, 8));
	}
	ck_assert_int_eq(store_txn_commit(t), 0);
	webhooks_free(wh);
}
END_TEST

static Suite *
webhook_suite(void)
{
	Suite *s = suite_create("webhook");
	TCase *tc;

	tc = tcase_create("pure");
	tcase_add_test(tc, test_event_has_every_field);
	tcase_add_test(tc, test_event_shaping_has_action_and_duration);
	tcase_add_test(tc, test_event_hostile_text_is_valid_json);
	tcase_add_test(tc, test_event_long_text_is_cut);
	tcase_add_test(tc, test_event_type_names);
	tcase_add_test(tc, test_body_holds_events_in_order);
	tcase_add_test(tc, test_body_stops_at_its_bound);
	tcase_add_test(tc, test_sign_rfc4231);
	tcase_add_test(tc, test_backoff_doubles_to_a_minute);
	tcase_add_test(tc, test_status_2xx_only);
	tcase_add_test(tc, test_escape_error_text);
	tcase_add_test(tc, test_store_key_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_store_type_filter);
	tcase_add_test(tc, test_store_backlog_drops_oldest);
	tcase_add_test(tc, test_store_events_leave_room_for_mail);
	tcase_add_test(tc, test_store_journaled_and_replicated);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(webhook_suite)
