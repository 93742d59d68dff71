/* node/policy/sts: the policy cache in the store. A policy learned from
 * another node (sts_learn) is kept in the store and read back by the
 * next start; a later fetch wins over an earlier one, in either order;
 * a weaker mode never replaces a stronger one; hostile or stale
 * policies are refused; the sweep removes expired and
 * unreadable records and leaves the rest. Each test gets a fresh
 * mkdtemp() store. (Lookups and fetches run in tests/e2e/test_mta_sts.py
 * against real DNS and HTTPS servers.) */
#include "node/policy/sts.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/config.h"
#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/policy/sts_int.h"
#include "node/store/commit.h"
#include "node/store/store.h"
#include "tests/unit/check_helpers.h"

#define T_MAP_SIZE (64ull << 20)
#define T_POLICY "version: STSv1\nmode: enforce\nmx: mx1.dest.test\nmax_age: 86400\n"

static char t_dir[256];
static struct store *t_st;
static struct commit *t_c;
static struct event_base *t_base;
static struct config t_cfg;

static void
t_setup(void)
{
	log_init("test_sts", LOG_LVL_ERROR);
	check_mkdtemp(t_dir, sizeof(t_dir), "sts");
	ck_assert_int_eq(store_open(t_dir, T_MAP_SIZE, &t_st), 0);
	t_base = event_base_new();
	t_c = commit_new(t_base, t_st);
	commit_set_rehearse(t_c, true); /* applies must be pure */
	memset(&t_cfg, 0, sizeof(t_cfg));
	t_cfg.delivery.mta_sts_port = 443;
}

static void
t_teardown(void)
{
	commit_free(t_c);
	store_close(t_st);
	event_base_free(t_base);
	check_rmtree(t_dir);
}

static struct sts *
t_new(void)
{
	struct sts_deps d = {
		.base = t_base, .cfg = &t_cfg, .store = t_st, .commit = t_c,
	};
	struct sts *s = sts_new(&d);

	ck_assert_ptr_nonnull(s);
	return s;
}

static uint64_t
t_now(void)
{
	return (uint64_t)time(NULL);
}

static int
t_learn(struct sts *s, const char *domain, const char *id, uint64_t fetched,
	const char *text)
{
	return sts_learn(s, domain, id, fetched, text, strlen(text));
}

/* What sts_learn() does once the domain's TXT record confirmed the id. */
static int
t_adopt(struct sts *s, const char *domain, const char *id, uint64_t fetched,
	const char *text)
{
	struct sts_pol *pol = xcalloc(1, sizeof(*pol));

	ck_assert_int_eq(sts_policy_parse(text, strlen(text), &pol->p, NULL,
					  0),
			 0);
	pol->refs = 1;
	snprintf(pol->id, sizeof(pol->id), "%s", id);
	pol->expires = fetched + pol->p.max_age;
	return sts_adopt(s, domain, pol);
}

#define T_NONE "version: STSv1\nmode: none\nmax_age: 31557600\n"

static int
t_count_one(const char *name, const void *p, size_t len, void *arg)
{
	(void)name;
	(void)p;
	(void)len;
	(*(size_t *)arg)++;
	return 0;
}

static size_t
t_count_records(void)
{
	struct store_txn *t;
	size_t n = 0;

	ck_assert_int_eq(store_txn_begin(t_st, true, &t), 0);
	ck_assert_int_eq(store_local_foreach(t, "sts/", t_count_one, &n), 0);
	store_txn_abort(t);
	return n;
}

/* Learned, stored, and known at the next start: an earlier fetch of the
 * same domain does not replace it, a later one does. */
START_TEST(test_sts_learned_policy_survives_a_restart)
{
	struct sts *s = t_new();
	uint64_t now = t_now();

	ck_assert_int_eq(t_adopt(s, "dest.test", "A1", now - 100, T_POLICY),
			 0);
	ck_assert_int_eq(t_adopt(s, "dest.test", "A0", now - 200, T_POLICY),
			 1);
	sts_free(s);
	commit_flush(t_c);
	ck_assert_uint_eq(t_count_records(), 1);

	s = t_new();
	/* the stored one (fetched at now - 100) is newer than this */
	ck_assert_int_eq(t_adopt(s, "dest.test", "B0", now - 150, T_POLICY),
			 1);
	/* a later one in a weaker mode never replaces it */
	ck_assert_int_eq(t_adopt(s, "dest.test", "B2", now - 5, T_NONE), 1);
	/* and older than this */
	ck_assert_int_eq(t_adopt(s, "dest.test", "B1", now - 10, T_POLICY), 0);
	sts_free(s);
	commit_flush(t_c);
	ck_assert_uint_eq(t_count_records(), 1);
}
END_TEST

/* What another node (or an attacker on the admin link) may not hand
 * over: bad names, bad ids, bad policies, expired or future ones. */
START_TEST(test_sts_learn_refuses_hostile_input)
{
	struct sts *s = t_new();
	uint64_t now = t_now();
	char big[70000];

	ck_assert_int_eq(t_learn(s, "dest..test", "A1", now, T_POLICY),
			 -EINVAL);
	ck_assert_int_eq(t_learn(s, "dest.test\n", "A1", now, T_POLICY),
			 -EINVAL);
	ck_assert_int_eq(t_learn(s, "dest.test", "", now, T_POLICY), -EINVAL);
	ck_assert_int_eq(t_learn(s, "dest.test", "a-b", now, T_POLICY),
			 -EINVAL);
	ck_assert_int_eq(t_learn(s, "dest.test",
				 "123456789012345678901234567890123", now,
				 T_POLICY),
			 -EINVAL);
	ck_assert_int_eq(t_learn(s, "dest.test", "A1", now,
				 "version: STSv1\nmode: enforce\n"),
			 -EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(t_learn(s, "dest.test", "A1", now, big), -EINVAL);
	/* expired by its max_age, or stamped past our clock */
	ck_assert_int_eq(t_learn(s, "dest.test", "A1", now - 90000, T_POLICY),
			 1);
	ck_assert_int_eq(t_learn(s, "dest.test", "A1", now + 3600, T_POLICY),
			 1);
	/* well formed, but nothing is taken without the domain's own TXT
	 * record (no resolver here: refused) */
	ck_assert_int_eq(t_learn(s, "dest.test", "A1", now, T_POLICY), 1);
	sts_free(s);
	commit_flush(t_c);
	ck_assert_uint_eq(t_count_records(), 0);
}
END_TEST

/* The sweep removes what expired and what cannot be read, keeps the
 * rest. */
START_TEST(test_sts_sweep_removes_expired_records)
{
	struct sts *s = t_new();
	struct store_txn *t;
	uint64_t now = t_now();
	char rec[256];
	int n;

	ck_assert_int_eq(t_adopt(s, "live.test", "L1", now, T_POLICY), 0);
	commit_flush(t_c);
	ck_assert_int_eq(store_txn_begin(t_st, false, &t), 0);
	n = snprintf(rec, sizeof(rec), "sts1\nX1\n%llu\n%s",
		     (unsigned long long)(now - 5), T_POLICY);
	ck_assert_int_eq(store_local_put(t, "sts/old.test", rec, (size_t)n),
			 0);
	ck_assert_int_eq(store_local_put(t, "sts/junk.test", "garbage", 7), 0);
	ck_assert_int_eq(store_txn_commit(t), 0);
	ck_assert_uint_eq(t_count_records(), 3);
	sts_sweep_now(s);
	commit_flush(t_c);
	ck_assert_uint_eq(t_count_records(), 1);
	sts_free(s);
}
END_TEST

static Suite *
sts_suite(void)
{
	Suite *s = suite_create("sts");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_test(tc, test_sts_learned_policy_survives_a_restart);
	tcase_add_test(tc, test_sts_learn_refuses_hostile_input);
	tcase_add_test(tc, test_sts_sweep_removes_expired_records);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(sts_suite)
