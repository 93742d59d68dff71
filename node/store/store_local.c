/* Node-local records (store.h "node-local records"): named values that
 * stay on this node, outside the journal, so that replication never sees
 * them. The policy caches and report counters of node/policy/ live here.
 * Handles untrusted input: names and values come from the network through
 * their owners; both are bounded here. */
#include <errno.h>
#include <string.h>

#include "node/store/store_int.h"

static int
store_local_key(const char *name, MDB_val *key)
{
	size_t n = name == NULL ? 0 : strnlen(name, STORE_LOCAL_NAME_MAX + 1);

	if (n == 0 || n > STORE_LOCAL_NAME_MAX)
		return -EINVAL;
	key->mv_data = (void *)name;
	key->mv_size = n + 1; /* with its NUL */
	return 0;
}

int
store_local_put(struct store_txn *t, const char *name, const void *p,
		size_t len)
{
	MDB_val key, val = { len, (void *)p };
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_local_key(name, &key)) != 0)
		return rc;
	if (len > STORE_LOCAL_MAX)
		return -EMSGSIZE;
	return store_put(t, STORE_DB_LOCAL, &key, &val, 0);
}

int
store_local_get(struct store_txn *t, const char *name, const void **p,
		size_t *len)
{
	MDB_val key, val;
	int rc = store_local_key(name, &key);

	if (rc != 0 || (rc = store_get(t, STORE_DB_LOCAL, &key, &val)) != 0)
		return rc;
	*p = val.mv_data;
	*len = val.mv_size;
	return 0;
}

int
store_local_del(struct store_txn *t, const char *name)
{
	MDB_val key;
	int rc;

	if ((rc = store_writable(t)) != 0 ||
	    (rc = store_local_key(name, &key)) != 0)
		return rc;
	return store_del(t, STORE_DB_LOCAL, &key);
}

int
store_local_foreach(struct store_txn *t, const char *prefix,
		    store_local_fn fn, void *arg)
{
	return store_local_foreach_from(t, prefix, prefix, fn, arg);
}

int
store_local_foreach_from(struct store_txn *t, const char *prefix,
			 const char *from, store_local_fn fn, void *arg)
{
	size_t plen = strlen(prefix), flen = strlen(from);
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	if (flen < plen || memcmp(from, prefix, plen) != 0)
		return -EINVAL;
	if ((rc = store_cursor_open(t, STORE_DB_LOCAL, &cur)) != 0)
		return rc;
	key.mv_data = (void *)from;
	key.mv_size = flen;
	rc = store_cursor_get(t, cur, &key, &val,
			      flen ? MDB_SET_RANGE : MDB_FIRST);
	while (rc == 0 && key.mv_data != NULL) {
		const char *name = key.mv_data;

		if (key.mv_size < plen + 1 || memcmp(name, prefix, plen) != 0)
			break;
		/* a name is text ending at its only NUL */
		if (memchr(name, '\0', key.mv_size) != name + key.mv_size - 1) {
			rc = store_corrupt(t->st, "local", &key);
			break;
		}
		if ((rc = fn(name, val.mv_data, val.mv_size, arg)) != 0)
			break;
		rc = store_cursor_get(t, cur, &key, &val, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc;
}
