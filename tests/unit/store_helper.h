/* A node store filled to the last half KiB, for the suites that test what
 * a full disk does (test_scheduler.c, test_owner.c). */
#ifndef SHOAL_STORE_HELPER_H
#define SHOAL_STORE_HELPER_H

#include <stdio.h>

#include "lib/err.h"
#include "node/store/store.h"
#include "tests/unit/check_helpers.h"

/* Fill st until not even half a KiB more fits, with a reader open from
 * before: the pages the filling freed stay pinned by it (as a delivery's
 * read txn pins them while it sends a body), so nothing can be written
 * until store_helper_unpin() ends it. Returns the reader. */
static inline struct store_txn *
store_helper_fill(struct store *st)
{
	static char chunk[1u << 20];
	static int n; /* names stay unique across fills of one store */
	struct store_txn *reader;
	size_t len = sizeof(chunk);
	int before = n;

	ck_assert_int_eq(store_txn_begin(st, true, &reader), 0);
	while (len >= 512) {
		struct store_txn *t;
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "fill%d", n);
		ck_assert_int_eq(store_txn_begin(st, false, &t), 0);
		rc = store_meta_put(t, name, chunk, len);
		if (rc == 0)
			rc = store_txn_commit(t);
		else
			store_txn_abort(t);
		if (rc == 0)
			n++;
		else if (rc == SHOAL_E_STORAGE_FULL)
			len /= 2;
		else
			ck_abort_msg("filling the store: %d", rc);
	}
	ck_assert_int_gt(n, before);
	return reader;
}

static inline void
store_helper_unpin(struct store_txn *reader)
{
	store_txn_abort(reader);
}

#endif
