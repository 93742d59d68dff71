/* Check suite for node/delivery/tenant.c: which delivery.tenant_limits
 * entry applies (tenant and domain before tenant and "*" before "*" and
 * domain before "*" and "*"; in total: tenant before "*"), waiting for
 * and taking tokens per destination and in total at this node's share,
 * and thousands of tenants at once. Time is passed in, never slept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "node/delivery/job.h"
#include "node/delivery/tenant.h"
#include "tests/unit/check_helpers.h"

#define T0 1000000000ull /* a monotonic clock reading, us */

static struct cfg_tenant_limit limits[] = {
	{ "acme", "gmail.com", 20 },
	{ "acme", "*", 5 },
	{ "acme", NULL, 50 },
	{ "*", "gmail.com", 3 },
	{ "*", "*", 2 },
};

static struct config
cfg_with(struct cfg_tenant_limit *l, size_t n)
{
	struct config c;

	memset(&c, 0, sizeof(c));
	c.delivery.tenant_limits = l;
	c.delivery.n_tenant_limits = n;
	return c;
}

struct t_job {
	struct job j;
	struct job_msg m;
	Shoal__StoredMessage sm;
	Shoal__Envelope env;
	char tenant[JOB_TENANT_MAX];
};

static void
t_job(struct t_job *t, const char *tenant)
{
	memset(t, 0, sizeof(*t));
	shoal__stored_message__init(&t->sm);
	shoal__envelope__init(&t->env);
	snprintf(t->tenant, sizeof(t->tenant), "%s", tenant);
	t->env.tenant = t->tenant;
	t->sm.envelope = &t->env;
	t->m.sm = &t->sm;
	t->j.msg = &t->m;
}

START_TEST(test_tenant_most_specific_entry)
{
	struct config c = cfg_with(limits, 5);

	ck_assert(tenant_limit(&c, "acme", "gmail.com") == 20);
	ck_assert(tenant_limit(&c, "acme", "GMAIL.com") == 20);
	ck_assert(tenant_limit(&c, "acme", "yahoo.com") == 5);
	ck_assert(tenant_limit(&c, "acme", NULL) == 50);
	ck_assert(tenant_limit(&c, "other", "gmail.com") == 3);
	ck_assert(tenant_limit(&c, "other", "yahoo.com") == 2);
	/* no "*" total: no cap in total for others */
	ck_assert(tenant_limit(&c, "other", NULL) == 0);
	c = cfg_with(limits, 0);
	ck_assert(tenant_limit(&c, "acme", "gmail.com") == 0);
}
END_TEST

START_TEST(test_tenant_waits_per_destination_and_in_total)
{
	struct cfg_tenant_limit l[] = { { "acme", "*", 2 },
					{ "acme", NULL, 3 } };
	struct config c = cfg_with(l, 2);
	struct tenant_set *ts = tenant_set_new();
	struct t_job a, b;
	double r;
	int sent = 0;

	t_job(&a, "acme");
	t_job(&b, "beta");
	/* a new bucket starts full: 2 here */
	while (tenant_wait(&c, ts, "dest-x", "x.test", &a.j, 1, T0, &r) == 0 &&
	       sent < 10) {
		tenant_take(&c, ts, "dest-x", "x.test", &a.j, 1, T0);
		sent++;
	}
	ck_assert_int_eq(sent, 2);
	ck_assert(r == 2); /* the smaller rate that applies */
	ck_assert_uint_gt(tenant_wait(&c, ts, "dest-x", "x.test", &a.j, 1, T0,
				      &r),
			  0);
	/* elsewhere the total (3) still has one */
	ck_assert_uint_eq(tenant_wait(&c, ts, "dest-y", "y.test", &a.j, 1, T0,
				      &r),
			  0);
	tenant_take(&c, ts, "dest-y", "y.test", &a.j, 1, T0);
	ck_assert_uint_gt(tenant_wait(&c, ts, "dest-y", "y.test", &a.j, 1, T0,
				      &r),
			  0);
	/* another tenant has no limit at all */
	ck_assert_uint_eq(tenant_wait(&c, ts, "dest-x", "x.test", &b.j, 1, T0,
				      &r),
			  0);
	ck_assert(r == 0);
	/* half a second later at 2/s here and 3/s in total: one again */
	ck_assert_uint_eq(tenant_wait(&c, ts, "dest-x", "x.test", &a.j, 1,
				      T0 + 500000, &r),
			  0);
	tenant_set_free(ts);
}
END_TEST

START_TEST(test_tenant_many_tenants_stay_bounded)
{
	struct cfg_tenant_limit l[] = { { "*", "*", 1 } };
	struct config c = cfg_with(l, 1);
	struct tenant_set *ts = tenant_set_new();
	struct t_job t;
	char name[32];
	double r;

	/* more tenants than buckets, each owing a token: the later wait */
	for (int i = 0; i < TENANT_BUCKETS_MAX + 10; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		t_job(&t, name);
		if (tenant_wait(&c, ts, "d", "x.test", &t.j, 1, T0, &r) == 0)
			tenant_take(&c, ts, "d", "x.test", &t.j, 1, T0);
	}
	snprintf(name, sizeof(name), "t%d", TENANT_BUCKETS_MAX + 9);
	t_job(&t, name);
	ck_assert_uint_gt(tenant_wait(&c, ts, "d", "x.test", &t.j, 1, T0, &r),
			  0);
	/* once they refilled, room again */
	ck_assert_uint_eq(tenant_wait(&c, ts, "d", "x.test", &t.j, 1,
				      T0 + 2000000, &r),
			  0);
	tenant_set_free(ts);
}
END_TEST

static Suite *
tenant_suite(void)
{
	Suite *s = suite_create("tenant");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_tenant_most_specific_entry);
	tcase_add_test(tc, test_tenant_waits_per_destination_and_in_total);
	tcase_add_test(tc, test_tenant_many_tenants_stay_bounded);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(tenant_suite)
