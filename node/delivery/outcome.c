/* Delivery-error policy (see outcome.h): reply → outcome, setup failures
 * → next host, plain-text retry, host down or the whole destination
 * deferred, DNS and local failures → outcome, retry times, expiry and DSN
 * status. Pure functions; no I/O. Replies come from remote servers but
 * have been bounded by smtpc; only their code and enhanced code are read
 * here (classify.c reads the text). */
#include "node/delivery/outcome.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

const char *
outcome_name(enum outcome oc)
{
	switch (oc) {
	case OUTCOME_DELIVERED:
		return "delivered";
	case OUTCOME_BOUNCED:
		return "bounced";
	default:
		return "deferred";
	}
}

static void
outcome_set(struct outcome_verdict *out, enum outcome oc,
	    enum classify_cat cat, const char *status)
{
	out->outcome = oc;
	out->category = cat;
	snprintf(out->status, sizeof(out->status), "%s", status);
	out->retry_at = 0;
}

enum outcome
outcome_of_reply(const struct smtpc_reply *r)
{
	if (r->code >= 200 && r->code < 300)
		return OUTCOME_DELIVERED;
	if (r->code >= 500 && r->code < 600)
		return OUTCOME_BOUNCED;
	return OUTCOME_DEFERRED;
}

void
outcome_of_rcpt(const struct smtpc_reply *r, enum smtpc_phase failed_phase,
		struct outcome_verdict *out)
{
	out->outcome = outcome_of_reply(r);
	out->category = classify_reply(r, failed_phase);
	outcome_status(r, out->status);
	out->retry_at = 0;
}

bool
outcome_is_relayed(enum outcome oc, bool peer_has_dsn)
{
	return oc == OUTCOME_DELIVERED && !peer_has_dsn;
}

bool
outcome_try_next_host(enum smtpc_phase phase, const struct smtpc_reply *r)
{
	(void)phase;
	(void)r;
	return true;
}

bool
outcome_retry_plain(enum smtpc_phase phase, bool is_tls_opportunistic,
		    bool is_plain_tried)
{
	return phase == SMTPC_PH_TLS && is_tls_opportunistic &&
	       !is_plain_tried;
}

bool
outcome_marks_host_down(enum smtpc_phase phase)
{
	return phase <= SMTPC_PH_GREETING;
}

void
outcome_of_setup_failure(enum smtpc_phase phase, const struct smtpc_reply *r,
			 struct outcome_verdict *out)
{
	enum outcome oc = outcome_of_reply(r);

	/* a connection-level failure never delivers nor bounces by itself */
	if (oc == OUTCOME_DELIVERED || phase <= SMTPC_PH_TLS)
		oc = OUTCOME_DEFERRED;
	out->outcome = oc;
	out->category = classify_reply(r, phase);
	outcome_status(r, out->status);
	if (oc == OUTCOME_DEFERRED && out->status[0] != '4')
		out->status[0] = '4';
	out->retry_at = 0;
}

bool
outcome_of_dns(enum dns_status st, struct outcome_verdict *out)
{
	switch (st) {
	case DNS_OK:
		return false;
	case DNS_NULL_MX:
		outcome_set(out, OUTCOME_BOUNCED, CLASSIFY_DNS_FAILURE,
			    "5.1.10");
		return true;
	case DNS_NXDOMAIN:
	case DNS_NO_HOSTS:
		outcome_set(out, OUTCOME_BOUNCED, CLASSIFY_DNS_FAILURE,
			    "5.1.2");
		return true;
	default:
		outcome_set(out, OUTCOME_DEFERRED, CLASSIFY_DNS_FAILURE,
			    "4.4.3");
		return true;
	}
}

void
outcome_of_local(enum outcome_local why, struct outcome_verdict *out)
{
	switch (why) {
	case OUTCOME_LOCAL_NO_DOMAIN:
		outcome_set(out, OUTCOME_BOUNCED, CLASSIFY_INVALID_RECIPIENT,
			    "5.1.3");
		return;
	case OUTCOME_LOCAL_BAD_LITERAL:
		outcome_set(out, OUTCOME_BOUNCED, CLASSIFY_INVALID_RECIPIENT,
			    "5.1.2");
		return;
	case OUTCOME_LOCAL_SUPPRESSED:
		outcome_set(out, OUTCOME_BOUNCED, CLASSIFY_INVALID_RECIPIENT,
			    "5.1.1");
		return;
	case OUTCOME_LOCAL_BAD_ROUTE:
	default:
		/* our own config: never the recipient's fault */
		outcome_set(out, OUTCOME_DEFERRED, CLASSIFY_OTHER, "4.3.5");
		return;
	}
}

static uint32_t
outcome_random(void)
{
	uint32_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)rand();
	return rnd;
}

void
outcome_of_suspension(uint64_t now, uint64_t until_s,
		      struct outcome_verdict *out)
{
	uint64_t wait = until_s > now ? until_s - now : 0;
	uint64_t spread = wait / 10 < 60 ? wait / 10 : 60;

	outcome_set(out, OUTCOME_DEFERRED, CLASSIFY_RATE_LIMITED, "4.4.5");
	out->retry_at = (until_s > now ? until_s : now + 1) +
			outcome_random() % (spread + 1);
}

uint64_t
outcome_next_try(uint64_t now, uint32_t attempts, const uint32_t *schedule,
		 size_t n_schedule)
{
	uint64_t delay = 60;
	uint32_t rnd = outcome_random();
	uint64_t jitter;

	if (n_schedule > 0) {
		size_t slot = attempts >= 1 ? attempts - 1 : 0;

		if (slot >= n_schedule)
			slot = n_schedule - 1;
		delay = schedule[slot];
	}
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

enum outcome
outcome_final(enum outcome oc, uint64_t now, uint64_t arrival,
	      uint32_t max_queue_lifetime)
{
	if (oc == OUTCOME_DEFERRED &&
	    outcome_is_expired(now, arrival, max_queue_lifetime))
		return OUTCOME_BOUNCED;
	return oc;
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
