/* DKIM at the router: the router.dkim keys, loaded at start and again on
 * SIGHUP, and the choice of the keys that sign one message (every entry
 * whose domain is the message's From domain, else the entries of
 * router.dkim_default_domain, else none). The signing itself is
 * lib/dkim.c. */
#ifndef SHOAL_ROUTER_SIGNER_H
#define SHOAL_ROUTER_SIGNER_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/config.h"

struct signer;

/* Load the key of every router.dkim entry and check the entries (domain,
 * selector, header names, dkim_default_domain). Returns 0 and sets *out
 * (free with signer_free(); NULL when there are no entries), or -1 with a
 * message naming the entry and the file in err. cfg must outlive it. */
int signer_new(const struct config *cfg, struct signer **out, char *err,
	       size_t errlen);

/* Read every key file again. All or nothing: on any failure the old keys
 * stay and the reason is logged. Returns 0 or -1. */
int signer_reload(struct signer *sg);

/* Sign msg[0..len) (the message as the client sent it) with the keys of
 * its From domain: appends one DKIM-Signature field per key to out.
 * Returns the number of signatures appended; a message without keys, or
 * without one readable From, gets none (logged at debug), and a failed
 * signature is logged and left out. qid is for the log. Safe on any
 * thread, beside a signer_reload() on the loop (the keys are locked). */
int signer_sign(struct signer *sg, const char *qid, const char *msg, size_t len,
		struct buf *out);

/* signer_free(NULL) does nothing. */
void signer_free(struct signer *sg);

#endif
