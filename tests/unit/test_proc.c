/* Check suite for lib/proc.c: the open-files limit and the resident size
 * of mapped files, which the node watches to hand queue pages back. */
#include "lib/proc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests/unit/check_helpers.h"

#define T_MAP (16u << 20)

START_TEST(test_raise_nofile_reaches_the_hard_limit)
{
	struct rlimit rl;
	long got = proc_raise_nofile();

	ck_assert_int_gt(got, 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq((unsigned long)got, (unsigned long)rl.rlim_cur);
	ck_assert_uint_eq((unsigned long)rl.rlim_cur,
			  (unsigned long)rl.rlim_max);
}
END_TEST

/* Reading 16 MiB of a mapped file adds about that much; MADV_DONTNEED
 * takes it away again (what store_release_pages does to LMDB's map). */
START_TEST(test_mapped_resident_follows_a_file_mapping)
{
	char dir[64], path[96];
	unsigned long long before, touched, after;
	volatile unsigned char sum = 0;
	unsigned char *p;
	int fd;

	check_mkdtemp(dir, sizeof(dir), "proc");
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	{
		/* real blocks, so that reading maps page cache pages */
		char *blk = calloc(1, 1 << 20);

		ck_assert_ptr_nonnull(blk);
		memset(blk, 'x', 1 << 20);
		for (unsigned i = 0; i < T_MAP >> 20; i++)
			ck_assert_int_eq(write(fd, blk, 1 << 20), 1 << 20);
		free(blk);
	}
	p = mmap(NULL, T_MAP, PROT_READ, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);

	ck_assert_int_eq(proc_mapped_resident(&before), 0);
	for (size_t off = 0; off < T_MAP; off += 4096)
		sum += p[off];
	ck_assert_int_eq(proc_mapped_resident(&touched), 0);
	ck_assert_uint_ge(touched, before + T_MAP - (1u << 20));
	ck_assert_int_eq(madvise(p, T_MAP, MADV_DONTNEED), 0);
	ck_assert_int_eq(proc_mapped_resident(&after), 0);
	ck_assert_uint_le(after, touched - T_MAP + (1u << 20));
	(void)sum;

	munmap(p, T_MAP);
	close(fd);
	check_rmtree(dir);
}
END_TEST

static Suite *
proc_suite(void)
{
	Suite *s = suite_create("proc");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_raise_nofile_reaches_the_hard_limit);
	tcase_add_test(tc, test_mapped_resident_follows_a_file_mapping);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(proc_suite)
