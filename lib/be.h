/* Big-endian (network order) integers in byte buffers: the one codec for
 * every binary key, value and wire field Shoal encodes by hand (LMDB keys
 * and values in node/store/, the marks other modules keep in its meta
 * database, PROXY v2 and DNS header fields).
 *
 * Why big-endian: LMDB compares keys with memcmp(), and only big-endian
 * bytes sort as their numbers do (due times, shard numbers, journal seqs).
 * Byte by byte with shifts, so p may be unaligned (LMDB values usually are)
 * and the host's byte order does not matter; compilers turn each into one
 * load or store and a byte swap.
 *
 * A plain helper: knows nothing of mail. The caller checks that p holds
 * the 2, 4 or 8 bytes; nothing here can fail. Untrusted input is fine once
 * its length is checked. */
#ifndef SHOAL_BE_H
#define SHOAL_BE_H

#include <stdint.h>

/* Write v into p[0..1], most significant byte first. */
static inline void
be16_put(void *p, uint16_t v)
{
	unsigned char *b = p;

	b[0] = (unsigned char)(v >> 8);
	b[1] = (unsigned char)v;
}

/* Read the 2 bytes at p, most significant first. */
static inline uint16_t
be16_get(const void *p)
{
	const unsigned char *b = p;

	return (uint16_t)((unsigned)b[0] << 8 | b[1]);
}

/* Write v into p[0..3], most significant byte first. */
static inline void
be32_put(void *p, uint32_t v)
{
	unsigned char *b = p;

	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

/* Read the 4 bytes at p, most significant first. */
static inline uint32_t
be32_get(const void *p)
{
	const unsigned char *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Write v into p[0..7], most significant byte first. */
static inline void
be64_put(void *p, uint64_t v)
{
	be32_put(p, (uint32_t)(v >> 32));
	be32_put((unsigned char *)p + 4, (uint32_t)v);
}

/* Read the 8 bytes at p, most significant first. */
static inline uint64_t
be64_get(const void *p)
{
	return (uint64_t)be32_get(p) << 32 |
	       be32_get((const unsigned char *)p + 4);
}

#endif
