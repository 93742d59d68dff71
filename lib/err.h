/* Error codes. Functions that can fail return 0, a negative errno, or a
 * negative Shoal code from the reserved range below. shoal_strerror() names
 * both. */
#ifndef SHOAL_ERR_H
#define SHOAL_ERR_H

#define SHOAL_E_BASE          (-30000)
#define SHOAL_E_WRONG_EPOCH   (SHOAL_E_BASE - 1) /* request used an old map */
#define SHOAL_E_NOT_OWNER     (SHOAL_E_BASE - 2) /* shard owned elsewhere */
#define SHOAL_E_STORAGE_FULL  (SHOAL_E_BASE - 3) /* LMDB map or disk full */
#define SHOAL_E_NOT_DURABLE   (SHOAL_E_BASE - 4) /* durability not reached */
#define SHOAL_E_PROTO         (SHOAL_E_BASE - 5) /* malformed peer message */
#define SHOAL_E_CONFIG        (SHOAL_E_BASE - 6) /* bad configuration */
#define SHOAL_E_LAST          (SHOAL_E_BASE - 7)

#define SHOAL_ASSERT(cond)                                                   \
	do {                                                                 \
		if (!(cond))                                                 \
			shoal_assert_fail(#cond, __FILE__, __LINE__);        \
	} while (0)

/* Name an error: a negative errno or a SHOAL_E_* code. The string is static. */
const char *shoal_strerror(int err);

/* Print "assertion failed: COND at FILE:LINE" and abort(). */
void shoal_assert_fail(const char *cond, const char *file, int line)
	__attribute__((noreturn));

#endif
