/* Check suite for the suppression list: the "no such user" predicate and
 * the text sanitiser (node/suppress/suppress.c), address normalising and keys
 * (lib/suppress_key.c), the supp database of node/store/store.c with its
 * journal entries, the checks and application of replicated records, and
 * a bounce noted without the list.
 * Store tests get a fresh mkdtemp() directory, removed in teardown. */
#include "node/suppress/suppress.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/qid.h"
#include "lib/suppress_key.h"
#include "node/store/store.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (64ull << 20)
#define T_SHARDS 256

/* ---- the predicate ----------------------------------------------------- */

static const struct {
	int code;
	const char *enhanced, *text;
	bool want;
} t_replies[] = {
	{ 550, "5.1.1", "<a@b>: Recipient address rejected", true },
	{ 550, "5.1.1", "", true },
	{ 550, "", "User unknown in local recipient table", true },
	{ 550, "", "No such user here", true },
	{ 550, "5.0.0", "mailbox does not exist", true },
	{ 553, "5.1.0", "Unknown user", true },
	{ 550, "", "Requested action not taken: mailbox unavailable", false },
	{ 550, "5.7.1", "User unknown (but we say policy)", false },
	{ 550, "5.1.10", "null MX: no such user", false },
	{ 552, "5.2.2", "Mailbox full", false },
	{ 451, "4.1.1", "User unknown, try later", false },
	{ 450, "", "no such user", false },
	{ 250, "2.1.5", "Ok", false },
	{ 0, "", "no such user (local reason)", false },
	{ 554, "5.7.1", "Spam detected", false },
};

START_TEST(test_no_such_user_table)
{
	ck_assert_msg(suppress_is_no_such_user(t_replies[_i].code,
					       t_replies[_i].enhanced,
					       t_replies[_i].text) ==
			      t_replies[_i].want,
		      "%d %s %s", t_replies[_i].code, t_replies[_i].enhanced,
		      t_replies[_i].text);
}
END_TEST

START_TEST(test_sanitize_bounds_and_replaces_controls)
{
	char out[SUPPRESS_REPLY_MAX + 1], in[2000];

	suppress_sanitize("550 a\r\nb\x01\x7f\xc3\xa9", out);
	ck_assert_str_eq(out, "550 a??b????");
	memset(in, 'x', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	suppress_sanitize(in, out);
	ck_assert_uint_eq(strlen(out), SUPPRESS_REPLY_MAX);
	suppress_sanitize(NULL, out);
	ck_assert_str_eq(out, "");
}
END_TEST

/* ---- addresses and keys ------------------------------------------------ */

START_TEST(test_norm_lowercases_and_refuses_bad_addresses)
{
	char out[SUPPRESS_ADDR_MAX + 1], big[SUPPRESS_ADDR_MAX + 2];

	ck_assert_int_eq(suppress_addr_norm("Bob.X@Example.COM", 17, out), 0);
	ck_assert_str_eq(out, "bob.x@example.com");
	ck_assert_int_eq(suppress_addr_norm("", 0, out), -EINVAL);
	ck_assert_int_eq(suppress_addr_norm("nobody", 6, out), -EINVAL);
	ck_assert_int_eq(suppress_addr_norm("a b@c", 5, out), -EINVAL);
	ck_assert_int_eq(suppress_addr_norm("a\x01@c", 4, out), -EINVAL);
	/* a quoted local part that holds a dot-atom is that dot-atom */
	ck_assert_int_eq(suppress_addr_norm("\"Dead\"@X.test", 13, out), 0);
	ck_assert_str_eq(out, "dead@x.test");
	ck_assert_int_eq(suppress_addr_norm("\"a.b\\c\"@x", 9, out), 0);
	ck_assert_str_eq(out, "a.bc@x");
	/* ... and nothing else is unquoted (negative controls) */
	ck_assert_int_eq(suppress_addr_norm("\"a..b\"@x", 8, out), 0);
	ck_assert_str_eq(out, "\"a..b\"@x");
	ck_assert_int_eq(suppress_addr_norm("\"a@b\"@x", 7, out), 0);
	ck_assert_str_eq(out, "\"a@b\"@x");
	ck_assert_int_eq(suppress_addr_norm("\"\"@x", 4, out), 0);
	ck_assert_str_eq(out, "\"\"@x");
	ck_assert_int_eq(suppress_addr_norm("a\0@c", 4, out), -EINVAL);
	memset(big, 'a', sizeof(big));
	big[5] = '@';
	ck_assert_int_eq(suppress_addr_norm(big, SUPPRESS_ADDR_MAX, out), 0);
	ck_assert_int_eq(suppress_addr_norm(big, SUPPRESS_ADDR_MAX + 1, out),
			 -EINVAL);
}
END_TEST

START_TEST(test_key_names_its_shard_and_is_no_qid)
{
	char k1[SUPPRESS_KEY_MAX], k2[SUPPRESS_KEY_MAX], p[10];
	uint32_t shard = 0;

	suppress_key("ghost@dest.test", T_SHARDS, SUPPRESS_KEY_TAG, k1);
	ck_assert_uint_eq(strlen(k1), SUPPRESS_KEY_LEN);
	ck_assert_uint_lt(strlen(k1), QID_MAX);
	ck_assert(!qid_valid(k1, strlen(k1)));
	ck_assert(suppress_key_parse(k1, &shard));
	ck_assert_uint_eq(shard, shard_of("ghost@dest.test", T_SHARDS));
	ck_assert_uint_eq(shard, suppress_shard("ghost@dest.test", T_SHARDS));
	suppress_key_prefix(shard, p);
	ck_assert(strncmp(k1, p, 9) == 0);
	/* same address, same key; another address, another key */
	suppress_key("ghost@dest.test", T_SHARDS, SUPPRESS_KEY_TAG, k2);
	ck_assert_str_eq(k1, k2);
	suppress_key("ghost2@dest.test", T_SHARDS, SUPPRESS_KEY_TAG, k2);
	ck_assert_str_ne(k1 + 9, k2 + 9);
	/* a pending key is not an entry key */
	suppress_key("ghost@dest.test", T_SHARDS, SUPPRESS_PENDING_TAG, k2);
	ck_assert(!suppress_key_parse(k2, &shard));
	ck_assert(!suppress_key_parse("~0000000", &shard));
	ck_assert(!suppress_key_parse("~0000000G0123456789ABCDEFGHJKMN",
				      &shard));
	ck_assert(!suppress_key_parse("0DJ3N8Q2K4M7ZX1P9Q0A3", &shard));
}
END_TEST

/* ---- the store ---------------------------------------------------------- */

static char t_dir[64];
static struct store *t_st;

static void
t_setup(void)
{
	log_init("test_suppress", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "suppress");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
}

static void
t_teardown(void)
{
	store_close(t_st);
	t_st = NULL;
	check_rmtree(t_dir);
}

/* A packed entry for addr (caller frees). */
static void *
t_entry(const char *addr, size_t *len)
{
	Shoal__SuppressEntry e = SHOAL__SUPPRESS_ENTRY__INIT;
	void *p;

	e.address = (char *)addr;
	e.reply = "550 5.1.1 no such user";
	e.enhanced = "5.1.1";
	e.source = "bounce";
	e.created = 1700000000;
	*len = shoal__suppress_entry__get_packed_size(&e);
	p = malloc(*len);
	shoal__suppress_entry__pack(&e, p);
	return p;
}

static void
t_put(const char *addr, char tag)
{
	char key[SUPPRESS_KEY_MAX];
	struct store_txn *t;
	size_t len;
	void *p = t_entry(addr, &len);

	suppress_key(addr, T_SHARDS, tag, key);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_supp_put(t, key,
					tag == SUPPRESS_KEY_TAG ?
						suppress_shard(addr, T_SHARDS) :
						STORE_SHARD_NONE,
					p, len),
			 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(p);
}

struct t_walk {
	size_t n;
	char keys[8][SUPPRESS_KEY_MAX];
	uint32_t shards[8];
};

static int
t_see(const char *key, uint32_t shard, const void *entry, size_t len,
      void *arg)
{
	struct t_walk *w = arg;

	(void)entry;
	(void)len;
	if (w->n < 8) {
		snprintf(w->keys[w->n], SUPPRESS_KEY_MAX, "%s", key);
		w->shards[w->n] = shard;
	}
	w->n++;
	return 0;
}

static int
t_see_journal(uint64_t seq, const char *qid, bool body, uint64_t noted,
	      void *arg)
{
	struct t_walk *w = arg;

	(void)seq;
	(void)body;
	(void)noted;
	if (w->n < 8)
		snprintf(w->keys[w->n], SUPPRESS_KEY_MAX, "%s", qid);
	w->n++;
	return 0;
}

START_TEST(test_store_put_get_del_survive_reopen)
{
	char key[SUPPRESS_KEY_MAX];
	struct store_txn *t;
	const void *p;
	size_t len;
	Shoal__SuppressEntry *e;

	t_put("a@x.test", SUPPRESS_KEY_TAG);
	store_close(t_st);
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	suppress_key("a@x.test", T_SHARDS, SUPPRESS_KEY_TAG, key);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_supp_get(t, key, &p, &len), 0);
	e = shoal__suppress_entry__unpack(NULL, len, p);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->address, "a@x.test");
	ck_assert_str_eq(e->reply, "550 5.1.1 no such user");
	shoal__suppress_entry__free_unpacked(e, NULL);
	ck_assert_uint_eq(store_supp_count(t), 1);
	ck_assert_uint_eq(store_msg_count(t), 0);
	store_txn_abort(t);

	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_supp_del(t, key), 0);
	ck_assert_int_eq(store_supp_del(t, key), -ENOENT);
	ck_assert_int_eq(store_supp_get(t, key, &p, &len), -ENOENT);
	ck_assert_int_eq(store_supp_put(t, "", 0, "x", 1), -EINVAL);
	ck_assert_int_eq(store_txn_commit(t), 0);
}
END_TEST

START_TEST(test_store_journals_entries_of_journaled_shards_only)
{
	uint8_t on[T_SHARDS] = { 0 };
	uint32_t s = suppress_shard("j@x.test", T_SHARDS);
	char key[SUPPRESS_KEY_MAX];
	struct t_walk w = { 0 };
	struct store_txn *t;

	on[s] = 1;
	store_journal_shards(t_st, on, T_SHARDS);
	t_put("j@x.test", SUPPRESS_KEY_TAG);
	t_put("j@x.test", SUPPRESS_PENDING_TAG);	/* local: never */
	suppress_key("j@x.test", T_SHARDS, SUPPRESS_KEY_TAG, key);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(store_journal_foreach(t, 0, 100, t_see_journal, &w),
			 0);
	ck_assert_uint_eq(w.n, 1);
	ck_assert_str_eq(w.keys[0], key);
	/* a delete replaces the entry's journal entry */
	ck_assert_int_eq(store_supp_del(t, key), 0);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(store_journal_foreach(t, 0, 100, t_see_journal, &w),
			 0);
	ck_assert_uint_eq(w.n, 1);
	ck_assert_str_eq(w.keys[0], key);
	ck_assert_int_eq(store_txn_commit(t), 0);
}
END_TEST

START_TEST(test_store_walks_by_prefix_and_after)
{
	const char *addrs[] = { "a@x.test", "b@x.test", "c@x.test",
				"d@x.test", "e@x.test" };
	char prefix[2] = { SUPPRESS_KEY_TAG, '\0' };
	char pend[2] = { SUPPRESS_PENDING_TAG, '\0' };
	char sp[10];
	struct t_walk w = { 0 }, w2 = { 0 };
	struct store_txn *t;

	for (size_t i = 0; i < 5; i++)
		t_put(addrs[i], SUPPRESS_KEY_TAG);
	t_put("p@x.test", SUPPRESS_PENDING_TAG);
	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_supp_foreach(t, prefix, "", t_see, &w), 0);
	ck_assert_uint_eq(w.n, 5);
	for (size_t i = 1; i < 5; i++)
		ck_assert_int_lt(strcmp(w.keys[i - 1], w.keys[i]), 0);
	/* after a key: the rest, without it */
	ck_assert_int_eq(store_supp_foreach(t, prefix, w.keys[1], t_see, &w2),
			 0);
	ck_assert_uint_eq(w2.n, 3);
	ck_assert_str_eq(w2.keys[0], w.keys[2]);
	/* one shard's prefix: its entries only */
	memset(&w2, 0, sizeof(w2));
	suppress_key_prefix(w.shards[0], sp);
	ck_assert_int_eq(store_supp_foreach(t, sp, "", t_see, &w2), 0);
	ck_assert_uint_ge(w2.n, 1);
	for (size_t i = 0; i < w2.n && i < 8; i++)
		ck_assert_uint_eq(w2.shards[i], w.shards[0]);
	memset(&w2, 0, sizeof(w2));
	ck_assert_int_eq(store_supp_foreach(t, pend, "", t_see, &w2), 0);
	ck_assert_uint_eq(w2.n, 1);
	ck_assert_uint_eq(w2.shards[0], STORE_SHARD_NONE);
	store_txn_abort(t);
}
END_TEST

/* ---- replicated records ------------------------------------------------- */

START_TEST(test_record_checks_key_shard_and_shape)
{
	Shoal__ReplRecord rec = SHOAL__REPL_RECORD__INIT;
	char key[SUPPRESS_KEY_MAX];
	uint8_t b = 1;

	suppress_key("r@x.test", T_SHARDS, SUPPRESS_KEY_TAG, key);
	rec.qid = key;
	rec.suppression = true;
	rec.shard = suppress_shard("r@x.test", T_SHARDS);
	rec.deleted = true;
	ck_assert(suppress_record_ok(&rec, T_SHARDS));
	rec.shard++;
	ck_assert(!suppress_record_ok(&rec, T_SHARDS));
	rec.shard--;
	rec.deleted = false;	/* a put needs an entry */
	ck_assert(!suppress_record_ok(&rec, T_SHARDS));
	rec.meta.data = &b;
	rec.meta.len = 1;
	ck_assert(suppress_record_ok(&rec, T_SHARDS));
	rec.has_body = true;
	rec.body.data = &b;
	rec.body.len = 1;
	ck_assert(!suppress_record_ok(&rec, T_SHARDS));
	rec.has_body = false;
	ck_assert(!suppress_record_ok(&rec, 1));	/* shard out of range */
	rec.qid = "0DJ3N8Q2K4M7ZX1P9Q0A3";
	ck_assert(!suppress_record_ok(&rec, T_SHARDS));
}
END_TEST

START_TEST(test_record_apply_refuses_entry_not_matching_its_key)
{
	Shoal__ReplRecord rec = SHOAL__REPL_RECORD__INIT;
	char key[SUPPRESS_KEY_MAX];
	struct store_txn *t;
	const void *p;
	size_t len, elen;
	void *e = t_entry("other@x.test", &elen);

	suppress_key("r@x.test", T_SHARDS, SUPPRESS_KEY_TAG, key);
	rec.qid = key;
	rec.suppression = true;
	rec.shard = suppress_shard("r@x.test", T_SHARDS);
	rec.meta.data = e;
	rec.meta.len = elen;
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(suppress_record_apply(NULL, t, &rec),
			 SUPPRESS_RECORD_SKIPPED);
	ck_assert_int_eq(store_supp_get(t, key, &p, &len), -ENOENT);
	free(e);
	e = t_entry("r@x.test", &elen);
	rec.meta.data = e;
	rec.meta.len = elen;
	ck_assert_int_eq(suppress_record_apply(NULL, t, &rec), 0);
	ck_assert_int_eq(store_supp_get(t, key, &p, &len), 0);
	rec.deleted = true;
	ck_assert_int_eq(suppress_record_apply(NULL, t, &rec), 0);
	ck_assert_int_eq(store_supp_get(t, key, &p, &len), -ENOENT);
	ck_assert_int_eq(suppress_record_apply(NULL, t, &rec), 0);	/* twice */
	ck_assert_int_eq(store_txn_commit(t), 0);
	free(e);
}
END_TEST

/* A "no such user" bounce noted while the list is off (or by a node
 * without one) writes nothing and leaves an empty note: nothing to log
 * or send once committed. */
START_TEST(test_note_bounce_without_the_list_writes_nothing)
{
	struct config cfg;
	struct suppress_deps d = { .cfg = &cfg, .node_id = "n1",
				   .store = t_st };
	struct suppress_note note;
	struct suppress *sp;
	struct store_txn *t;
	char prefix[2] = { SUPPRESS_KEY_TAG, '\0' };
	struct t_walk w = { 0 };

	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster.shards = T_SHARDS;
	cfg.suppression.enabled = false;
	d.base = event_base_new();
	sp = suppress_new(&d);
	memset(&note, 0xff, sizeof(note));
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	ck_assert_int_eq(suppress_note_bounce(sp, t, "gone@x.test",
					      "550 5.1.1 no such user",
					      "5.1.1", "Q", 1700000000,
					      &note),
			 0);
	ck_assert(!note.is_noted);
	memset(&note, 0xff, sizeof(note));
	ck_assert_int_eq(suppress_note_bounce(NULL, t, "gone@x.test",
					      "550 5.1.1 no such user",
					      "5.1.1", "Q", 1700000000,
					      &note),
			 0);
	ck_assert(!note.is_noted);
	ck_assert_int_eq(store_supp_foreach(t, prefix, "", t_see, &w), 0);
	ck_assert_uint_eq(w.n, 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	suppress_noted(sp, &note);
	suppress_noted(NULL, &note);
	suppress_free(sp);
	event_base_free(d.base);
}
END_TEST

static Suite *
suppress_suite(void)
{
	Suite *s = suite_create("suppress");
	TCase *pure = tcase_create("pure");
	TCase *store = tcase_create("store");

	tcase_add_loop_test(pure, test_no_such_user_table, 0,
			    sizeof(t_replies) / sizeof(t_replies[0]));
	tcase_add_test(pure, test_sanitize_bounds_and_replaces_controls);
	tcase_add_test(pure, test_norm_lowercases_and_refuses_bad_addresses);
	tcase_add_test(pure, test_key_names_its_shard_and_is_no_qid);
	tcase_add_test(pure, test_record_checks_key_shard_and_shape);
	suite_add_tcase(s, pure);
	tcase_add_checked_fixture(store, t_setup, t_teardown);
	tcase_add_test(store, test_store_put_get_del_survive_reopen);
	tcase_add_test(store, test_store_journals_entries_of_journaled_shards_only);
	tcase_add_test(store, test_store_walks_by_prefix_and_after);
	tcase_add_test(store, test_record_apply_refuses_entry_not_matching_its_key);
	tcase_add_test(store, test_note_bounce_without_the_list_writes_nothing);
	suite_add_tcase(s, store);
	return s;
}

CHECK_MAIN(suppress_suite)
