/* Check suite for lib/guard.h, the deferred free of an object ended from
 * inside its own callbacks: free at once outside any section, on the way
 * out of the outermost section inside one, never for an object only marked
 * closing (it ends itself later). */
#include <signal.h>
#include <stdbool.h>

#include "lib/guard.h"
#include "tests/unit/check_helpers.h"

START_TEST(test_guard_free_outside_sections_is_at_once)
{
	struct guard g = { 0 };

	ck_assert(!guard_is_closing(&g));
	ck_assert(!guard_is_held(&g));
	ck_assert(guard_free(&g));
	ck_assert(guard_is_closing(&g));
}
END_TEST

START_TEST(test_guard_free_inside_waits_for_outermost_leave)
{
	struct guard g = { 0 };

	guard_enter(&g);
	ck_assert(guard_is_outermost(&g));
	guard_enter(&g); /* a callback re-entered */
	ck_assert(guard_is_held(&g));
	ck_assert(!guard_is_outermost(&g));
	ck_assert(!guard_free(&g));
	ck_assert(guard_is_closing(&g));
	ck_assert(!guard_leave(&g)); /* the inner one: not yet */
	ck_assert(guard_is_held(&g));
	ck_assert(guard_is_outermost(&g));
	ck_assert(guard_leave(&g));  /* the outermost: free now */
	ck_assert(!guard_is_held(&g));
}
END_TEST

START_TEST(test_guard_leave_without_free_frees_nothing)
{
	struct guard g = { 0 };

	for (int i = 0; i < 3; i++) {
		guard_enter(&g);
		ck_assert(!guard_leave(&g));
	}
	ck_assert(!guard_is_closing(&g));
}
END_TEST

/* Closing (a connection waiting for its QUIT reply): callbacks stop, but
 * leaving the section does not free; a later guard_free() still can. */
START_TEST(test_guard_close_is_not_a_free)
{
	struct guard g = { 0 };

	guard_enter(&g);
	guard_close(&g);
	ck_assert(guard_is_closing(&g));
	ck_assert(!guard_leave(&g));
	ck_assert(guard_free(&g));
}
END_TEST

START_TEST(test_guard_unbalanced_leave_aborts)
{
	struct guard g = { 0 };

	(void)guard_leave(&g);
}
END_TEST

static Suite *
guard_suite(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("guard");

	tcase_add_test(tc, test_guard_free_outside_sections_is_at_once);
	tcase_add_test(tc, test_guard_free_inside_waits_for_outermost_leave);
	tcase_add_test(tc, test_guard_leave_without_free_frees_nothing);
	tcase_add_test(tc, test_guard_close_is_not_a_free);
	tcase_add_test_raise_signal(tc, test_guard_unbalanced_leave_aborts,
				    SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(guard_suite)
