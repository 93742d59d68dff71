/* Shared helpers for the Check suites: every test_<module>.c defines
 * <module>_suite() and uses CHECK_MAIN to run it. */
#ifndef SHOAL_CHECK_HELPERS_H
#define SHOAL_CHECK_HELPERS_H

#include <check.h>
#include <stdlib.h>

#define CHECK_MAIN(suite_fn)                                                 \
	int main(void)                                                       \
	{                                                                    \
		SRunner *sr = srunner_create(suite_fn());                    \
		int failed;                                                  \
		srunner_run_all(sr, CK_NORMAL);                              \
		failed = srunner_ntests_failed(sr);                          \
		srunner_free(sr);                                            \
		return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;            \
	}

#endif
