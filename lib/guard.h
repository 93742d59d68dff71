/* Deferred free for an object whose own callbacks may end it (STYLE.md,
 * "Memory and ownership": never free an object inside its own callback
 * chain; mark it closing, and the event handler frees it on the way out).
 *
 * The object embeds a struct guard. Code that may end the object while
 * the object's own code is still on the stack (a libevent callback of the
 * object, a call out to its owner) runs between guard_enter() and
 * guard_leave(). Whoever ends the object asks guard_free(): it answers
 * whether the object may be freed at once (no section is open) or the
 * outermost guard_leave() will say so. guard_close() marks an object
 * closing that frees itself later by its own event (a connection waiting
 * for the reply to its QUIT): it calls nothing out any more, and leaving a
 * section does not free it.
 *
 * Plain counters: knows nothing of events, sockets or mail. Header only. */
#ifndef SHOAL_GUARD_H
#define SHOAL_GUARD_H

#include <stdbool.h>

#include "lib/err.h"

struct guard {
	unsigned depth;	 /* guarded sections on the stack */
	bool is_closing; /* ended by its owner: call nothing out any more */
	bool want_free;	 /* free when the outermost section is left */
};

/* Open a section: until the matching guard_leave(), guard_free() defers. */
static inline void
guard_enter(struct guard *g)
{
	g->depth++;
}

/* Close a section. Returns true when the caller must now free the object
 * and touch it no more: this was the outermost section and guard_free()
 * was asked inside it. Unbalanced (no section open): SHOAL_ASSERT. */
static inline bool
guard_leave(struct guard *g)
{
	SHOAL_ASSERT(g->depth > 0);
	return --g->depth == 0 && g->want_free;
}

/* Mark the object closing without asking for a free: it ends itself
 * later, from an event of its own. */
static inline void
guard_close(struct guard *g)
{
	g->is_closing = true;
}

/* Ask for the object to be freed; marks it closing too. Returns true when
 * the caller may free it at once (no section is open), false when the
 * outermost guard_leave() will return true instead: until then the object
 * should stop its I/O and call nothing out. */
static inline bool
guard_free(struct guard *g)
{
	g->is_closing = true;
	g->want_free = true;
	return g->depth == 0;
}

/* Whether guard_close() or guard_free() was called. */
static inline bool
guard_is_closing(const struct guard *g)
{
	return g->is_closing;
}

/* Whether a section is open (some caller up the stack still uses the
 * object). */
static inline bool
guard_is_held(const struct guard *g)
{
	return g->depth > 0;
}

/* Whether exactly one section is open: the next guard_leave() is the
 * outermost (work to do once per event, e.g. flushing output, before
 * leaving). */
static inline bool
guard_is_outermost(const struct guard *g)
{
	return g->depth == 1;
}

#endif
