/* Check suite for lib/idmap.c: the id -> pointer map that parks waiting
 * requests under their request ids. Every entry put must come back by get
 * until it is deleted, whatever the ids look like (sequential, sparse, high
 * bits only), across growth and with chains of colliding ids. Values are
 * pointers the map never touches, so the tests use plain addresses. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/idmap.h"
#include "tests/unit/check_helpers.h"

/* A distinct, never-dereferenced value per id. */
static void *
val(uint64_t id)
{
	return (void *)(uintptr_t)(id * 16 + 8);
}

START_TEST(test_idmap_new_is_empty)
{
	struct idmap *m = idmap_new();

	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(idmap_count(m), 0);
	ck_assert_ptr_null(idmap_get(m, 1));
	ck_assert_ptr_null(idmap_get(m, UINT64_MAX));
	ck_assert_ptr_null(idmap_del(m, 1));
	ck_assert_uint_eq(idmap_count(m), 0);
	idmap_free(m);
}
END_TEST

START_TEST(test_idmap_free_null_does_nothing)
{
	idmap_free(NULL);
}
END_TEST

START_TEST(test_idmap_put_get_del)
{
	struct idmap *m = idmap_new();
	int a, b;

	idmap_put(m, 7, &a);
	idmap_put(m, 8, &b);
	ck_assert_uint_eq(idmap_count(m), 2);
	ck_assert_ptr_eq(idmap_get(m, 7), &a);
	ck_assert_ptr_eq(idmap_get(m, 8), &b);
	ck_assert_ptr_null(idmap_get(m, 9));

	ck_assert_ptr_eq(idmap_del(m, 7), &a);
	ck_assert_uint_eq(idmap_count(m), 1);
	ck_assert_ptr_null(idmap_get(m, 7));
	ck_assert_ptr_eq(idmap_get(m, 8), &b);
	/* deleting again finds nothing and changes nothing */
	ck_assert_ptr_null(idmap_del(m, 7));
	ck_assert_uint_eq(idmap_count(m), 1);

	ck_assert_ptr_eq(idmap_del(m, 8), &b);
	ck_assert_uint_eq(idmap_count(m), 0);
	idmap_free(m);
}
END_TEST

START_TEST(test_idmap_put_replaces_without_counting)
{
	struct idmap *m = idmap_new();
	int a, b;

	idmap_put(m, 42, &a);
	idmap_put(m, 42, &b);
	ck_assert_uint_eq(idmap_count(m), 1);
	ck_assert_ptr_eq(idmap_get(m, 42), &b);
	ck_assert_ptr_eq(idmap_del(m, 42), &b);
	ck_assert_ptr_null(idmap_get(m, 42)); /* no stale first entry */
	ck_assert_uint_eq(idmap_count(m), 0);
	idmap_free(m);
}
END_TEST

START_TEST(test_idmap_del_absent_leaves_others)
{
	struct idmap *m = idmap_new();

	for (uint64_t id = 1; id <= 10; id++)
		idmap_put(m, id, val(id));
	ck_assert_ptr_null(idmap_del(m, 11));
	ck_assert_ptr_null(idmap_del(m, UINT64_MAX));
	ck_assert_uint_eq(idmap_count(m), 10);
	for (uint64_t id = 1; id <= 10; id++)
		ck_assert_ptr_eq(idmap_get(m, id), val(id));
	idmap_free(m);
}
END_TEST

START_TEST(test_idmap_extreme_ids)
{
	static const uint64_t ids[] = {
		1, 2, UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63,
		((uint64_t)1 << 63) + 1, (uint64_t)1 << 32, 0xffffffffull,
		0x100000000ull + 1, 0xdeadbeefcafef00dull,
	};
	const size_t n = sizeof(ids) / sizeof(ids[0]);
	struct idmap *m = idmap_new();

	for (size_t i = 0; i < n; i++)
		idmap_put(m, ids[i], val(i + 1));
	ck_assert_uint_eq(idmap_count(m), n);
	for (size_t i = 0; i < n; i++)
		ck_assert_ptr_eq(idmap_get(m, ids[i]), val(i + 1));
	/* neighbours of stored ids are not stored */
	ck_assert_ptr_null(idmap_get(m, 3));
	ck_assert_ptr_null(idmap_get(m, UINT64_MAX - 2));
	ck_assert_ptr_null(idmap_get(m, ((uint64_t)1 << 63) + 2));
	for (size_t i = 0; i < n; i++)
		ck_assert_ptr_eq(idmap_del(m, ids[i]), val(i + 1));
	ck_assert_uint_eq(idmap_count(m), 0);
	idmap_free(m);
}
END_TEST

/* A NULL value is stored like any other; get cannot tell it from absent
 * (the header says "the value or NULL"), but the count can. */
START_TEST(test_idmap_null_value_is_counted)
{
	struct idmap *m = idmap_new();

	idmap_put(m, 5, NULL);
	ck_assert_uint_eq(idmap_count(m), 1);
	ck_assert_ptr_null(idmap_get(m, 5));
	ck_assert_ptr_null(idmap_del(m, 5));
	ck_assert_uint_eq(idmap_count(m), 0);
	idmap_free(m);
}
END_TEST

/* Sequential ids across many doublings of the table. */
START_TEST(test_idmap_grows_with_sequential_ids)
{
	enum { N = 200000 };
	struct idmap *m = idmap_new();

	for (uint64_t id = 1; id <= N; id++) {
		idmap_put(m, id, val(id));
		ck_assert_uint_eq(idmap_count(m), id);
	}
	for (uint64_t id = 1; id <= N; id++)
		ck_assert_ptr_eq(idmap_get(m, id), val(id));
	ck_assert_ptr_null(idmap_get(m, N + 1));

	/* delete every other one; the rest stay */
	for (uint64_t id = 2; id <= N; id += 2)
		ck_assert_ptr_eq(idmap_del(m, id), val(id));
	ck_assert_uint_eq(idmap_count(m), N / 2);
	for (uint64_t id = 1; id <= N; id++) {
		if (id % 2)
			ck_assert_ptr_eq(idmap_get(m, id), val(id));
		else
			ck_assert_ptr_null(idmap_get(m, id));
	}
	idmap_free(m);
}
END_TEST

/* Ids that differ only in their high bits (a counter shifted left, or a
 * node number in the top bits) must not pile into one bucket's worth of
 * misses: every one is found. */
START_TEST(test_idmap_ids_differing_in_high_bits)
{
	enum { N = 5000 };
	struct idmap *m = idmap_new();

	for (uint64_t i = 1; i <= N; i++)
		idmap_put(m, i << 40, val(i));
	ck_assert_uint_eq(idmap_count(m), N);
	for (uint64_t i = 1; i <= N; i++)
		ck_assert_ptr_eq(idmap_get(m, i << 40), val(i));
	for (uint64_t i = 1; i <= N; i++)
		ck_assert_ptr_null(idmap_get(m, (i << 40) | 1));
	idmap_free(m);
}
END_TEST

/* With 64 ids in the initial 64 buckets some chains hold several entries
 * (pigeonhole short of a perfect spread). Deleting from the head, middle
 * and tail of chains, in several orders, must unlink only the one asked. */
static void
check_delete_order(const uint64_t *order, size_t n)
{
	struct idmap *m = idmap_new();
	bool *gone = calloc(n + 1, sizeof(*gone));

	ck_assert_ptr_nonnull(gone);
	for (uint64_t id = 1; id <= n; id++)
		idmap_put(m, id, val(id));
	for (size_t k = 0; k < n; k++) {
		ck_assert_ptr_eq(idmap_del(m, order[k]), val(order[k]));
		gone[order[k]] = true;
		ck_assert_uint_eq(idmap_count(m), n - k - 1);
		for (uint64_t id = 1; id <= n; id++)
			ck_assert_ptr_eq(idmap_get(m, id),
					 gone[id] ? NULL : val(id));
	}
	free(gone);
	idmap_free(m);
}

START_TEST(test_idmap_delete_from_chains_in_any_order)
{
	enum { N = 64 };
	uint64_t order[N];

	for (size_t i = 0; i < N; i++) /* forward */
		order[i] = i + 1;
	check_delete_order(order, N);
	for (size_t i = 0; i < N; i++) /* backward */
		order[i] = N - i;
	check_delete_order(order, N);
	for (size_t i = 0; i < N; i++) /* stride 7 (coprime to 64) */
		order[i] = (i * 7) % N + 1;
	check_delete_order(order, N);
	for (size_t i = 0; i < N; i++) /* middle outwards */
		order[i] = i % 2 ? N / 2 - i / 2 : N / 2 + 1 + i / 2;
	check_delete_order(order, N);
}
END_TEST

/* Right at the growth threshold: 64 entries fill the first table, the
 * 65th doubles it; every entry survives the rehash. */
START_TEST(test_idmap_growth_threshold_keeps_entries)
{
	struct idmap *m = idmap_new();

	for (uint64_t id = 1000; id < 1064; id++)
		idmap_put(m, id, val(id));
	ck_assert_uint_eq(idmap_count(m), 64);
	idmap_put(m, 1064, val(1064));
	ck_assert_uint_eq(idmap_count(m), 65);
	for (uint64_t id = 1000; id <= 1064; id++)
		ck_assert_ptr_eq(idmap_get(m, id), val(id));
	/* replacing after growth still finds the moved entry */
	idmap_put(m, 1000, val(1));
	ck_assert_uint_eq(idmap_count(m), 65);
	ck_assert_ptr_eq(idmap_get(m, 1000), val(1));
	idmap_free(m);
}
END_TEST

/* Random put / replace / delete against a plain array as the reference. */
START_TEST(test_idmap_churn_matches_reference)
{
	enum { IDS = 3000, STEPS = 200000 };
	void **ref = calloc(IDS, sizeof(*ref));
	bool *has = calloc(IDS, sizeof(*has));
	struct idmap *m = idmap_new();
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	size_t count = 0;

	ck_assert_ptr_nonnull(ref);
	ck_assert_ptr_nonnull(has);
	for (size_t step = 0; step < STEPS; step++) {
		uint64_t r, slot, id;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		r = rng;
		slot = (r >> 8) % IDS;
		/* ids spread over the whole 64-bit range, none 0 */
		id = (slot + 1) * 0x9e3779b97f4a7c15ull | 1;
		switch (r % 3) {
		case 0:
		case 1:
			if (!has[slot])
				count++;
			has[slot] = true;
			ref[slot] = val(step + 1);
			idmap_put(m, id, ref[slot]);
			break;
		default:
			ck_assert_ptr_eq(idmap_del(m, id),
					 has[slot] ? ref[slot] : NULL);
			if (has[slot])
				count--;
			has[slot] = false;
			break;
		}
		ck_assert_uint_eq(idmap_count(m), count);
	}
	for (uint64_t slot = 0; slot < IDS; slot++) {
		uint64_t id = (slot + 1) * 0x9e3779b97f4a7c15ull | 1;

		ck_assert_ptr_eq(idmap_get(m, id),
				 has[slot] ? ref[slot] : NULL);
	}
	free(ref);
	free(has);
	idmap_free(m);
}
END_TEST

/* ---- foreach ------------------------------------------------------- */

struct visit {
	size_t calls;
	uint64_t id_sum;
	uint64_t id_xor;
	bool bad_value;
	unsigned char *seen; /* by id, for ids 1..n */
	size_t n;
};

static void
visit_fn(uint64_t id, void *value, void *arg)
{
	struct visit *v = arg;

	v->calls++;
	v->id_sum += id;
	v->id_xor ^= id;
	if (value != val(id))
		v->bad_value = true;
	if (v->seen && id >= 1 && id <= v->n)
		v->seen[id]++;
}

START_TEST(test_idmap_foreach_empty)
{
	struct idmap *m = idmap_new();
	struct visit v = { 0 };

	idmap_foreach(m, visit_fn, &v);
	ck_assert_uint_eq(v.calls, 0);
	idmap_free(m);
}
END_TEST

START_TEST(test_idmap_foreach_visits_each_once)
{
	enum { N = 1000 };
	struct idmap *m = idmap_new();
	struct visit v = { 0 };

	v.n = N;
	v.seen = calloc(N + 1, 1);
	ck_assert_ptr_nonnull(v.seen);
	for (uint64_t id = 1; id <= N; id++)
		idmap_put(m, id, val(id));
	for (uint64_t id = 1; id <= N; id += 3)
		idmap_del(m, id);
	idmap_foreach(m, visit_fn, &v);
	ck_assert_uint_eq(v.calls, idmap_count(m));
	ck_assert(!v.bad_value);
	for (uint64_t id = 1; id <= N; id++)
		ck_assert_uint_eq(v.seen[id], (id - 1) % 3 ? 1 : 0);
	free(v.seen);
	idmap_free(m);
}
END_TEST

START_TEST(test_idmap_foreach_passes_arg_and_large_ids)
{
	struct idmap *m = idmap_new();
	struct visit v = { 0 };

	idmap_put(m, UINT64_MAX, val(UINT64_MAX));
	idmap_put(m, (uint64_t)1 << 63, val((uint64_t)1 << 63));
	idmap_put(m, 3, val(3));
	idmap_foreach(m, visit_fn, &v);
	ck_assert_uint_eq(v.calls, 3);
	ck_assert(!v.bad_value);
	ck_assert_uint_eq(v.id_xor, UINT64_MAX ^ ((uint64_t)1 << 63) ^ 3);
	idmap_free(m);
}
END_TEST

static Suite *
idmap_suite(void)
{
	Suite *s = suite_create("idmap");
	TCase *tc;

	tc = tcase_create("basic");
	tcase_add_test(tc, test_idmap_new_is_empty);
	tcase_add_test(tc, test_idmap_free_null_does_nothing);
	tcase_add_test(tc, test_idmap_put_get_del);
	tcase_add_test(tc, test_idmap_put_replaces_without_counting);
	tcase_add_test(tc, test_idmap_del_absent_leaves_others);
	tcase_add_test(tc, test_idmap_extreme_ids);
	tcase_add_test(tc, test_idmap_null_value_is_counted);
	suite_add_tcase(s, tc);

	tc = tcase_create("growth");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_idmap_grows_with_sequential_ids);
	tcase_add_test(tc, test_idmap_ids_differing_in_high_bits);
	tcase_add_test(tc, test_idmap_delete_from_chains_in_any_order);
	tcase_add_test(tc, test_idmap_growth_threshold_keeps_entries);
	tcase_add_test(tc, test_idmap_churn_matches_reference);
	suite_add_tcase(s, tc);

	tc = tcase_create("foreach");
	tcase_add_test(tc, test_idmap_foreach_empty);
	tcase_add_test(tc, test_idmap_foreach_visits_each_once);
	tcase_add_test(tc, test_idmap_foreach_passes_arg_and_large_ids);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(idmap_suite)
