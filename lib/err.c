/* Names for error codes and the assertion failure path. */
#include "lib/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
shoal_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case SHOAL_E_WRONG_EPOCH:
		return "wrong shard map epoch";
	case SHOAL_E_NOT_OWNER:
		return "shard not owned by this node";
	case SHOAL_E_STORAGE_FULL:
		return "storage full";
	case SHOAL_E_NOT_DURABLE:
		return "durability not reached";
	case SHOAL_E_PROTO:
		return "malformed protocol message";
	case SHOAL_E_CONFIG:
		return "configuration error";
	}
	if (err < 0 && err > SHOAL_E_BASE)
		return strerror(-err);
	return "unknown error";
}

void
shoal_assert_fail(const char *cond, const char *file, int line)
{
	fprintf(stderr, "fatal: assertion failed: %s at %s:%d\n", cond, file,
		line);
	abort();
}
