/* Delivery-error policy: reply → outcome, retry times, expiry and DSN
 * status. Pure functions; no I/O. */
#include "node/delivery/outcome.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum outcome
outcome_of_reply(const struct smtpc_reply *r)
{
	if (r->code >= 200 && r->code < 300)
		return OUTCOME_DELIVERED;
	if (r->code >= 500 && r->code < 600)
		return OUTCOME_BOUNCED;
	return OUTCOME_DEFERRED;
}

bool
outcome_try_next_host(enum smtpc_phase phase, const struct smtpc_reply *r)
{
	(void)phase;
	(void)r;
	return true;
}

uint64_t
outcome_next_try(uint64_t now, uint32_t attempts, const uint32_t *schedule,
		 size_t n_schedule)
{
	uint64_t delay = 60;
	uint32_t rnd = 0;
	uint64_t jitter;

	if (n_schedule > 0) {
		size_t slot = attempts >= 1 ? attempts - 1 : 0;

		if (slot >= n_schedule)
			slot = n_schedule - 1;
		delay = schedule[slot];
	}
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)rand();
	/* uniform in [-10%, +10%] of the delay */
	jitter = delay / 5;
	if (jitter > 0)
		delay = delay - delay / 10 + rnd % (jitter + 1);
	if (delay == 0)
		delay = 1;
	return now + delay;
}

bool
outcome_is_expired(uint64_t now, uint64_t arrival, uint32_t max_queue_lifetime)
{
	return arrival + max_queue_lifetime <= now;
}

/* Whether s starts with a well-formed enhanced code of class c. */
static bool
outcome_enhanced_ok(const char *s, char c)
{
	const char *p = s;

	if (p[0] != c || p[1] != '.')
		return false;
	p += 2;
	for (int part = 0; part < 2; part++) {
		int digits = 0;

		while (isdigit((unsigned char)*p) && digits < 3) {
			p++;
			digits++;
		}
		if (digits == 0)
			return false;
		if (part == 0 && *p++ != '.')
			return false;
	}
	return *p == '\0';
}

void
outcome_status(const struct smtpc_reply *r, char out[16])
{
	/* RFC 3463 2: the classes are 2, 4 and 5 only; any other reply
	 * (354 where a final reply was due, 1xx, out of range) is a deferral */
	char cls = r->code >= 200 && r->code < 300 ? '2' :
		   r->code >= 500 && r->code < 600 ? '5' :
						     '4';

	if (r->code != 0 && outcome_enhanced_ok(r->enhanced, cls)) {
		snprintf(out, 16, "%s", r->enhanced);
		return;
	}
	if (r->code == 0) {
		snprintf(out, 16, "%s", r->enhanced[0] ? r->enhanced : "4.4.1");
		return;
	}
	snprintf(out, 16, "%c.0.0", cls);
}
