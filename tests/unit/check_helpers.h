/* Shared helpers for the Check suites: every test_<module>.c defines
 * <module>_suite() and uses CHECK_MAIN to run it. */
#ifndef SHOAL_CHECK_HELPERS_H
#define SHOAL_CHECK_HELPERS_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

/* A new empty directory /tmp/shoal-test-NAME-<6 random characters>, its
 * path in buf (the XXXXXX below is mkdtemp(3)'s template, which it
 * replaces). */
static inline void
check_mkdtemp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/tmp/shoal-test-%s-XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* A new file /tmp/shoal-test-NAME-<6 random characters> (mkstemp(3)'s
 * template, as above) holding the len bytes of data; its path in buf. */
static inline void
check_write_temp(char *buf, size_t buflen, const char *name, const void *data,
		 size_t len)
{
	const char *p = data;
	int fd;

	snprintf(buf, buflen, "/tmp/shoal-test-%s-XXXXXX", name);
	fd = mkstemp(buf);
	ck_assert_msg(fd >= 0, "mkstemp %s failed", buf);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		ck_assert_msg(n > 0, "write %s failed", buf);
		p += n;
		len -= (size_t)n;
	}
	ck_assert_int_eq(close(fd), 0);
}

static inline int
check_rm_one(const char *path, const struct stat *sb, int flag,
	     struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove dir and everything under it. */
static inline void
check_rmtree(const char *dir)
{
	nftw(dir, check_rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
