/* Delivery-error policy: reply → outcome, retry times, expiry, DSN status
 * and failure categories. Pure functions; no I/O. */
#include "node/outcome.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

static bool
outcome_text_has(const char *text, const char *const *words)
{
	for (; *words; words++)
		if (strcasestr(text, *words))
			return true;
	return false;
}

/* Whether text holds one of words as a whole word, in any case: "DNS" is
 * not found in "DNSBL" (a blocklist, which is policy). */
static bool
outcome_text_has_word(const char *text, const char *const *words)
{
	for (; *words; words++) {
		size_t n = strlen(*words);

		for (const char *p = text; (p = strcasestr(p, *words)); p++)
			if ((p == text || !isalnum((unsigned char)p[-1])) &&
			    !isalnum((unsigned char)p[n]))
				return true;
	}
	return false;
}

enum outcome_category
outcome_categorize(const struct smtpc_reply *r, enum smtpc_phase phase)
{
	static const char *const invalid[] = { "no such user", "user unknown",
		"unknown user", "does not exist", "mailbox unavailable",
		"invalid recipient", "recipient rejected", "no mailbox",
		"address rejected", NULL };
	static const char *const full[] = { "mailbox full", "over quota",
		"quota exceeded", "insufficient storage", NULL };
	static const char *const policy[] = { "spam", "blocked", "blacklist",
		"blocklist", "policy", "reputation", "rejected for policy",
		"dmarc", "spf", "dkim", NULL };
	static const char *const rate[] = { "rate limit", "too many",
		"try again later", "throttl", "slow down", NULL };
	static const char *const size[] = { "too large", "too big",
		"size limit", "exceeds", NULL };
	static const char *const tls[] = { "TLS", "STARTTLS", NULL };
	static const char *const dns[] = { "DNS", "NXDOMAIN", NULL };
	const char *e = r->enhanced;
	/* the subject and detail of the enhanced code: ".1.1" of "5.1.1" */
	const char *sub = e[0] ? e + 1 : "";

	if (outcome_of_reply(r) == OUTCOME_DELIVERED)
		return OUTCOME_CAT_NONE;
	if (phase == SMTPC_PH_TLS)
		return OUTCOME_CAT_TLS;
	/* a specific enhanced code decides, whatever the text mentions */
	if (strcmp(sub, ".7.10") == 0)
		return OUTCOME_CAT_TLS;
	if (strcmp(sub, ".1.10") == 0 || strcmp(sub, ".4.3") == 0)
		return OUTCOME_CAT_DNS;
	if (strcmp(sub, ".1.1") == 0 || strcmp(sub, ".1.2") == 0 ||
	    strcmp(sub, ".1.3") == 0 || strcmp(sub, ".1.6") == 0)
		return OUTCOME_CAT_INVALID_RECIPIENT;
	if (strcmp(sub, ".2.2") == 0 || strcmp(sub, ".3.1") == 0)
		return OUTCOME_CAT_MAILBOX_FULL;
	if (strcmp(sub, ".3.4") == 0 || strcmp(sub, ".2.3") == 0)
		return OUTCOME_CAT_TOO_LARGE;
	/* temporary refusals that ask us to slow down */
	if (r->code == 421 || r->code == 450 || r->code == 451 ||
	    r->code == 452 || strcmp(e, "4.7.0") == 0) {
		if (outcome_text_has(r->text, rate))
			return OUTCOME_CAT_RATE_LIMITED;
	}
	/* X.7.0 says only "security or policy": a reply naming TLS says which */
	if (strcmp(sub, ".7.0") == 0 && outcome_text_has_word(r->text, tls))
		return OUTCOME_CAT_TLS;
	if (strncmp(sub, ".7.", 3) == 0)
		return OUTCOME_CAT_POLICY;
	/* no enhanced code, or one that says little (X.0.0): the text */
	if (outcome_text_has_word(r->text, tls))
		return OUTCOME_CAT_TLS;
	if (outcome_text_has_word(r->text, dns))
		return OUTCOME_CAT_DNS;
	if (outcome_text_has(r->text, invalid))
		return OUTCOME_CAT_INVALID_RECIPIENT;
	if (outcome_text_has(r->text, full))
		return OUTCOME_CAT_MAILBOX_FULL;
	if (outcome_text_has(r->text, size))
		return OUTCOME_CAT_TOO_LARGE;
	if (outcome_text_has(r->text, policy))
		return OUTCOME_CAT_POLICY;
	if (outcome_text_has(r->text, rate))
		return OUTCOME_CAT_RATE_LIMITED;
	return OUTCOME_CAT_OTHER;
}

const char *
outcome_category_name(enum outcome_category c)
{
	static const char *const names[] = {
		"", "invalid_recipient", "mailbox_full", "policy", "dns",
		"tls", "rate_limited", "too_large", "other",
	};

	return (unsigned)c < sizeof(names) / sizeof(*names) ? names[c] :
							      "other";
}
