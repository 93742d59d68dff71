/* Keys of the suppression list (docs/suppression.md), computed alike by
 * routers and nodes: an address is normalised (ASCII lower case), its
 * shard is shard_of(normalised address) with the hash messages use, and
 * its store key is
 *   "~" || 8 hex digits of the shard || 22 base32 digits of SHA-256(addr)
 * (31 characters): short enough to travel in the replication journal as a
 * qid does (QID_MAX), never a valid qid, self-describing (the shard of a
 * key is read from it), and sorted by shard so that one shard's entries
 * are one range. Handles untrusted input: lengths are bounded. */
#ifndef SHOAL_SUPPRESS_KEY_H
#define SHOAL_SUPPRESS_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUPPRESS_ADDR_MAX 320 /* RFC 5321 4.5.3.1.1 + 4.5.3.1.2, and @ */
#define SUPPRESS_KEY_LEN 31
#define SUPPRESS_KEY_MAX (SUPPRESS_KEY_LEN + 1)
#define SUPPRESS_KEY_TAG '~'	 /* an entry */
#define SUPPRESS_PENDING_TAG '+' /* an add not yet acknowledged (local) */

/* Lower-case addr into out[SUPPRESS_ADDR_MAX + 1]; a quoted local part
 * that holds a dot-atom is unquoted ("Dead"@x and dead@x are one
 * mailbox). Returns 0, or -EINVAL when it is empty, too long, has no '@'
 * or holds a control character or space. */
int suppress_addr_norm(const char *addr, size_t len,
		       char out[SUPPRESS_ADDR_MAX + 1]);

/* The shard of a normalised address. */
uint32_t suppress_shard(const char *norm, uint32_t shards);

/* The key of a normalised address, with the given tag. */
void suppress_key(const char *norm, uint32_t shards, char tag,
		  char out[SUPPRESS_KEY_MAX]);

/* Whether s (a NUL-terminated string) is an entry key ("~..."), and if so
 * its shard. */
bool suppress_key_parse(const char *s, uint32_t *shard);

/* The prefix of every entry key of a shard ("~" and 8 hex digits) into
 * out[10]. */
void suppress_key_prefix(uint32_t shard, char out[10]);

/* The membership filter of a node's entries (docs/suppression.md, "The
 * routers' filter"): a Bloom filter of 2^log2 bits over the keys' hash
 * digits, SUPPRESS_FILTER_K bits per key. A node sets the bits of every
 * entry it stores; a router that finds one of a key's bits clear knows
 * the key is not among them. Bits are never cleared. */
#define SUPPRESS_FILTER_K 4
/* A router believes a node's filter only this long after a reply of
 * the node said the router's copy is current; so an entry is known to
 * every router at most this long after its write (plus the reply's way
 * over the network), and shoalctl's add is answered after twice this. */
#define SUPPRESS_FILTER_TRUST_MS 20
#define SUPPRESS_FILTER_LOG2_MIN 10
#define SUPPRESS_FILTER_LOG2_MAX 27

/* The bit positions of an entry key (SUPPRESS_KEY_LEN characters). */
void suppress_filter_pos(const char *key, uint32_t log2,
			 uint32_t pos[SUPPRESS_FILTER_K]);

/* Whether every bit of key is set in bits (2^log2 bits). */
bool suppress_filter_has(const uint8_t *bits, uint32_t log2,
			 const char *key);

/* Set bit pos; returns whether it was clear. pos < 2^log2. */
static inline bool
suppress_filter_set(uint8_t *bits, uint32_t pos)
{
	uint8_t m = (uint8_t)(1u << (pos & 7));

	if (bits[pos >> 3] & m)
		return false;
	bits[pos >> 3] |= m;
	return true;
}

#endif
