/* Process setup: resource limits. */
#include "lib/proc.h"

#include <errno.h>
#include <sys/resource.h>

long
proc_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -errno;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return -errno;
	}
	return (long)rl.rlim_cur;
}
