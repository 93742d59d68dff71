/* Queue id generation and shard hashing. */
#include "lib/qid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

static const char qid_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int
qid_digit(char c)
{
	const char *p = c ? strchr(qid_alphabet, c) : NULL;

	return p ? (int)(p - qid_alphabet) : -1;
}

static void
qid_put(char *out, uint64_t v, int chars)
{
	for (int i = chars - 1; i >= 0; i--) {
		out[i] = qid_alphabet[v & 31];
		v >>= 5;
	}
}

int
qid_gen_init(struct qid_gen *g)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return errno ? -errno : -EIO;
	g->instance = r & ((1u << 30) - 1);
	g->last_us = 0;
	g->seq = 0;
	return 0;
}

void
qid_next(struct qid_gen *g, char out[QID_LEN + 1])
{
	struct timeval tv;
	uint64_t now;

	gettimeofday(&tv, NULL);
	now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	if (now <= g->last_us) {
		/* clock stood still or stepped back: stay monotonic */
		now = g->last_us;
		if (++g->seq >= (1u << 20)) {
			now++;
			g->seq = 0;
		}
	} else {
		g->seq = 0;
	}
	g->last_us = now;
	qid_put(out, now, 11);
	qid_put(out + 11, g->instance, 6);
	qid_put(out + 17, g->seq, 4);
	out[QID_LEN] = '\0';
}

bool
qid_valid(const char *s, size_t len)
{
	if (len != QID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (qid_digit(s[i]) < 0)
			return false;
	return true;
}

uint64_t
qid_time_us(const char *qid)
{
	uint64_t v = 0;

	for (int i = 0; i < 11; i++)
		v = (v << 5) | (uint64_t)qid_digit(qid[i]);
	return v;
}

uint64_t
shard_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint32_t
shard_of(const char *qid, uint32_t shards)
{
	return (uint32_t)(shard_hash(qid, strlen(qid)) % shards);
}
