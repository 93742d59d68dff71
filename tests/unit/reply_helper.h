/* A remote SMTP reply built from its parts, for the suites that judge
 * replies (test_outcome.c, test_classify.c). */
#ifndef SHOAL_REPLY_HELPER_H
#define SHOAL_REPLY_HELPER_H

#include <stdio.h>
#include <string.h>

#include "node/delivery/smtpc.h"

static inline struct smtpc_reply
reply(int code, const char *enhanced, const char *text)
{
	struct smtpc_reply r;

	memset(&r, 0, sizeof(r));
	r.code = code;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enhanced);
	snprintf(r.text, sizeof(r.text), "%s", text);
	return r;
}

#endif
