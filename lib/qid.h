/* Queue ids: short opaque tokens, unique cluster-wide, that sort by time.
 *
 * Layout (Crockford base32, whose ASCII order is its numeric order):
 *   11 chars  microseconds since 1970 (55 bits, good past year 3000)
 *    6 chars  generator instance (30 random bits, drawn at start)
 *    4 chars  sequence (20 bits) within the generator
 * e.g. "0DJ3N8Q2K4M7ZX1P9Q0A3". Two generators never collide unless they
 * draw the same 30 random bits and produce the same microsecond.
 *
 * The shard of a message is shard_of(qid) = fnv1a64(qid) mod shards, which
 * every router and node computes alike. */
#ifndef SHOAL_QID_H
#define SHOAL_QID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QID_LEN 21
#define QID_MAX 32  /* buffer size for any qid we accept from a peer */

struct qid_gen {
	uint32_t instance;   /* 30 random bits */
	uint64_t last_us;
	uint32_t seq;
};

/* Seed a generator from the kernel's random source. Returns 0 or -errno. */
int qid_gen_init(struct qid_gen *g);

/* Write the next qid (QID_LEN chars + NUL) into out[QID_LEN + 1]. */
void qid_next(struct qid_gen *g, char out[QID_LEN + 1]);

/* Whether s is a syntactically valid qid (QID_LEN base32 chars). */
bool qid_valid(const char *s, size_t len);

/* Microseconds since 1970 encoded in a valid qid. */
uint64_t qid_time_us(const char *qid);

/* FNV-1a, 64 bits. */
uint64_t shard_hash(const char *s, size_t len);

/* The shard of a qid in a cluster of `shards` shards (shards >= 1). */
uint32_t shard_of(const char *qid, uint32_t shards);

#endif
