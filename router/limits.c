/* Counters keyed by client address or user name, in one table keyed by a
 * 64-bit hash of "i:ADDR" / "u:USER" (the key is kept to tell collisions
 * apart: a colliding key is simply not limited). The message rate is a
 * sliding minute from two fixed ones: this minute's count plus the last
 * minute's, weighted by how much of it the window still covers. Entries
 * with no session and no recent message are dropped when the table is
 * swept (every LIMITS_SWEEP new entries); the table never holds more than
 * LIMITS_MAX. */
#include "router/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/idmap.h"
#include "lib/qid.h"
#include "lib/xmalloc.h"

#define LIMITS_MAX 200000
#define LIMITS_SWEEP 10000
#define LIMITS_KEY_MAX 272

struct limit_entry {
	char key[LIMITS_KEY_MAX];
	uint32_t sessions;
	uint64_t minute;             /* unix time / 60 of `now_count` */
	uint32_t now_count, prev_count;
};

struct limits {
	const struct config *cfg;
	struct idmap *map;
	size_t added;
};

struct limits *
limits_new(const struct config *cfg)
{
	struct limits *l = xcalloc(1, sizeof(*l));

	l->cfg = cfg;
	l->map = idmap_new();
	return l;
}

static void
limits_free_one(uint64_t id, void *value, void *arg)
{
	(void)id;
	(void)arg;
	free(value);
}

void
limits_free(struct limits *l)
{
	if (l == NULL)
		return;
	idmap_foreach(l->map, limits_free_one, NULL);
	idmap_free(l->map);
	free(l);
}

static uint64_t
limits_id(const char *key)
{
	return shard_hash(key, strlen(key));
}

/* Age the counters of e to the current minute. */
static void
limits_roll(struct limit_entry *e, uint64_t minute)
{
	if (e->minute == minute)
		return;
	e->prev_count = e->minute + 1 == minute ? e->now_count : 0;
	e->now_count = 0;
	e->minute = minute;
}

struct limits_sweep {
	struct limits *l;
	uint64_t minute;
	uint64_t *dead;
	size_t n_dead, cap;
};

static void
limits_sweep_one(uint64_t id, void *value, void *arg)
{
	struct limits_sweep *s = arg;
	struct limit_entry *e = value;

	limits_roll(e, s->minute);
	if (e->sessions || e->now_count || e->prev_count)
		return;
	if (s->n_dead == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->dead = xrealloc(s->dead, s->cap * sizeof(*s->dead));
	}
	s->dead[s->n_dead++] = id;
}

static void
limits_sweep(struct limits *l, uint64_t minute)
{
	struct limits_sweep s = { l, minute, NULL, 0, 0 };

	idmap_foreach(l->map, limits_sweep_one, &s);
	for (size_t i = 0; i < s.n_dead; i++)
		free(idmap_del(l->map, s.dead[i]));
	free(s.dead);
}

/* The entry for key, made when missing; NULL when the key collides with
 * another or the table is full (then it is not limited). */
static struct limit_entry *
limits_get(struct limits *l, const char *kind, const char *name)
{
	char key[LIMITS_KEY_MAX];
	struct limit_entry *e;
	uint64_t id, minute = (uint64_t)time(NULL) / 60;

	snprintf(key, sizeof(key), "%s:%s", kind, name);
	id = limits_id(key);
	e = idmap_get(l->map, id);
	if (e != NULL) {
		limits_roll(e, minute);
		return strcmp(e->key, key) == 0 ? e : NULL;
	}
	if (++l->added % LIMITS_SWEEP == 0)
		limits_sweep(l, minute);
	if (idmap_count(l->map) >= LIMITS_MAX)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->minute = minute;
	idmap_put(l->map, id, e);
	return e;
}

bool
limits_session_start(struct limits *l, const char *client)
{
	uint32_t max = l->cfg->router.max_sessions_per_ip;
	struct limit_entry *e;

	if (max == 0)
		return true;
	e = limits_get(l, "i", client);
	if (e == NULL)
		return true;
	if (e->sessions >= max)
		return false;
	e->sessions++;
	return true;
}

void
limits_session_end(struct limits *l, const char *client)
{
	struct limit_entry *e;

	if (l->cfg->router.max_sessions_per_ip == 0)
		return;
	e = limits_get(l, "i", client);
	if (e != NULL && e->sessions > 0)
		e->sessions--;
}

/* This minute's count plus the share of the last one the sliding minute
 * still covers. */
static bool
limits_over(const struct limit_entry *e, uint32_t max)
{
	uint64_t into = (uint64_t)time(NULL) % 60;
	uint64_t rate = e->now_count + e->prev_count * (60 - into) / 60;

	return rate >= max;
}

bool
limits_message(struct limits *l, const char *client, const char *user)
{
	uint32_t max_ip = l->cfg->router.max_msgs_per_minute_per_ip;
	uint32_t max_user = l->cfg->router.max_msgs_per_minute_per_user;
	struct limit_entry *ip = max_ip && client[0] ?
					 limits_get(l, "i", client) :
					 NULL;
	struct limit_entry *u = max_user && user[0] ?
					limits_get(l, "u", user) :
					NULL;

	if ((ip && limits_over(ip, max_ip)) || (u && limits_over(u, max_user)))
		return false;
	if (ip)
		ip->now_count++;
	if (u)
		u->now_count++;
	return true;
}

bool
limits_connection_start(struct limits *l, const char *client,
			bool is_relay_client, bool *slot)
{
	*slot = false;
	if (is_relay_client)
		return true;
	if (!limits_session_start(l, client))
		return false;
	*slot = true;
	return true;
}
