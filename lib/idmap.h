/* A hash map from 64-bit ids to pointers (request ids to waiting requests).
 * Knows nothing of mail. Ids must not be 0. */
#ifndef SHOAL_IDMAP_H
#define SHOAL_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap;

struct idmap *idmap_new(void);

/* idmap_free(NULL) does nothing. Values are not freed. */
void idmap_free(struct idmap *m);

/* Insert or replace. */
void idmap_put(struct idmap *m, uint64_t id, void *value);

/* The value or NULL. */
void *idmap_get(const struct idmap *m, uint64_t id);

/* Remove and return the value, or NULL when absent. */
void *idmap_del(struct idmap *m, uint64_t id);

size_t idmap_count(const struct idmap *m);

/* Call fn for every entry (order unspecified); fn must not modify m. */
void idmap_foreach(const struct idmap *m, void (*fn)(uint64_t, void *, void *),
		   void *arg);

#endif
