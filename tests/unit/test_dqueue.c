/* Check suite for node/delivery/dqueue.c: the order a destination serves
 * its waiting jobs in (high, normal, bulk; tenants in turn within a
 * class; each tenant's jobs in arrival order), a tenant passed over when
 * it may not send, a job put back in front, and taking every job out. */
#include <stdlib.h>
#include <string.h>

#include "node/delivery/dqueue.h"
#include "node/delivery/job.h"
#include "tests/unit/check_helpers.h"

/* A job whose message has only what dqueue reads: class and tenant. */
struct t_job {
	struct job j;
	struct job_msg m;
	Shoal__StoredMessage sm;
	Shoal__Envelope env;
	char tenant[16];
	int id;
};

static struct t_job *
t_job(int id, Shoal__Priority prio, const char *tenant)
{
	struct t_job *t = calloc(1, sizeof(*t));

	ck_assert_ptr_nonnull(t);
	shoal__stored_message__init(&t->sm);
	shoal__envelope__init(&t->env);
	snprintf(t->tenant, sizeof(t->tenant), "%s", tenant);
	t->env.priority = prio;
	t->env.tenant = t->tenant;
	t->sm.envelope = &t->env;
	t->m.sm = &t->sm;
	t->j.msg = &t->m;
	t->id = id;
	return t;
}

static int
t_id(const struct job *j)
{
	return j ? ((const struct t_job *)(const void *)j)->id : -1;
}

/* Serve everything; the ids in order into out (at most n). */
static size_t
t_drain(struct dqueue *q, int *out, size_t n)
{
	size_t k = 0;
	struct job *j;

	while ((j = dqueue_next(q, NULL, NULL)) != NULL) {
		dqueue_remove(q, j);
		if (k < n)
			out[k++] = t_id(j);
		free(j);
	}
	return k;
}

START_TEST(test_dqueue_classes_then_tenants_in_turn)
{
	struct dqueue q = { 0 };
	int got[16];
	const int want[] = { 7, 8, 1, 4, 6, 2, 5, 3, 9 };

	/* tenant a sends 3 normal, b 2 normal, then c 1 normal */
	dqueue_push(&q, &t_job(1, SHOAL__PRIORITY__PRIORITY_NORMAL, "a")->j);
	dqueue_push(&q, &t_job(2, SHOAL__PRIORITY__PRIORITY_NORMAL, "a")->j);
	dqueue_push(&q, &t_job(3, SHOAL__PRIORITY__PRIORITY_NORMAL, "a")->j);
	dqueue_push(&q, &t_job(4, SHOAL__PRIORITY__PRIORITY_NORMAL, "b")->j);
	dqueue_push(&q, &t_job(5, SHOAL__PRIORITY__PRIORITY_NORMAL, "b")->j);
	dqueue_push(&q, &t_job(6, SHOAL__PRIORITY__PRIORITY_NORMAL, "c")->j);
	/* high comes later but goes first, bulk last */
	dqueue_push(&q, &t_job(9, SHOAL__PRIORITY__PRIORITY_BULK, "a")->j);
	dqueue_push(&q, &t_job(7, SHOAL__PRIORITY__PRIORITY_HIGH, "b")->j);
	dqueue_push(&q, &t_job(8, SHOAL__PRIORITY__PRIORITY_HIGH, "b")->j);
	ck_assert_uint_eq(q.n, 9);
	ck_assert_uint_eq(t_drain(&q, got, 16), 9);
	for (size_t i = 0; i < 9; i++)
		ck_assert_int_eq(got[i], want[i]);
	ck_assert_uint_eq(q.n, 0);
}
END_TEST

static bool
t_not_a(void *arg, const struct job *j)
{
	(void)arg;
	return strcmp(j->msg->sm->envelope->tenant, "a") != 0;
}

START_TEST(test_dqueue_passes_over_a_tenant_that_may_not_send)
{
	struct dqueue q = { 0 };
	struct job *j;

	dqueue_push(&q, &t_job(1, SHOAL__PRIORITY__PRIORITY_HIGH, "a")->j);
	dqueue_push(&q, &t_job(2, SHOAL__PRIORITY__PRIORITY_NORMAL, "a")->j);
	dqueue_push(&q, &t_job(3, SHOAL__PRIORITY__PRIORITY_BULK, "b")->j);
	/* a may not: the next class's other tenant goes */
	j = dqueue_next(&q, t_not_a, NULL);
	ck_assert_int_eq(t_id(j), 3);
	dqueue_remove(&q, j);
	free(j);
	ck_assert_ptr_null(dqueue_next(&q, t_not_a, NULL));
	ck_assert_int_eq(t_id(dqueue_next(&q, NULL, NULL)), 1);
	ck_assert_uint_eq(t_drain(&q, (int[4]){ 0 }, 4), 2);
}
END_TEST

START_TEST(test_dqueue_push_front_and_take_all)
{
	struct dqueue q = { 0 };
	struct job *j, *all;
	int n = 0;

	dqueue_push(&q, &t_job(1, SHOAL__PRIORITY__PRIORITY_NORMAL, "a")->j);
	dqueue_push(&q, &t_job(2, SHOAL__PRIORITY__PRIORITY_NORMAL, "b")->j);
	j = dqueue_next(&q, NULL, NULL);
	ck_assert_int_eq(t_id(j), 1);
	dqueue_remove(&q, j);
	/* a send that could not start: back in front, its tenant next */
	dqueue_push_front(&q, j);
	ck_assert_int_eq(t_id(dqueue_next(&q, NULL, NULL)), 1);
	dqueue_push(&q, &t_job(3, SHOAL__PRIORITY__PRIORITY_HIGH, "")->j);
	all = dqueue_take_all(&q);
	ck_assert_uint_eq(q.n, 0);
	ck_assert_ptr_null(dqueue_next(&q, NULL, NULL));
	ck_assert_int_eq(t_id(all), 3); /* classes in order */
	while ((j = all) != NULL) {
		all = j->next;
		ck_assert_ptr_null(j->dq);
		free(j);
		n++;
	}
	ck_assert_int_eq(n, 3);
}
END_TEST

START_TEST(test_dqueue_unknown_class_is_normal)
{
	struct t_job *x = t_job(1, (Shoal__Priority)77, "a");

	ck_assert_uint_eq(dqueue_class(&x->j), 1);
	x->env.priority = SHOAL__PRIORITY__PRIORITY_BULK;
	ck_assert_uint_eq(dqueue_class(&x->j), 2);
	free(x);
}
END_TEST

static Suite *
dqueue_suite(void)
{
	Suite *s = suite_create("dqueue");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_dqueue_classes_then_tenants_in_turn);
	tcase_add_test(tc, test_dqueue_passes_over_a_tenant_that_may_not_send);
	tcase_add_test(tc, test_dqueue_push_front_and_take_all);
	tcase_add_test(tc, test_dqueue_unknown_class_is_normal);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(dqueue_suite)
