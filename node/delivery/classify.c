/* Bounce classification: enhanced code, then basic code and reply text,
 * then the phase of a local failure. See classify.h for the list. */
#include "node/delivery/classify.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* Reply text, lower-cased and cut to CLASSIFY_SCAN_MAX bytes. */
struct classify_text {
	char s[CLASSIFY_SCAN_MAX + 1];
};

static void
classify_lower(const char *in, struct classify_text *t)
{
	size_t i;

	for (i = 0; i < CLASSIFY_SCAN_MAX && in[i]; i++)
		t->s[i] = (char)tolower((unsigned char)in[i]);
	t->s[i] = '\0';
}

/* Whether t holds one of the phrases (lower case) anywhere. */
static bool
classify_has(const struct classify_text *t, const char *const *phrases)
{
	for (; *phrases; phrases++)
		if (strstr(t->s, *phrases))
			return true;
	return false;
}

/* Whether t holds one of words as a whole word: "dns" is not found in
 * "dnsbl" (a blocklist, which is policy). */
static bool
classify_has_word(const struct classify_text *t, const char *const *words)
{
	for (; *words; words++) {
		size_t n = strlen(*words);

		for (const char *p = t->s; (p = strstr(p, *words)); p++)
			if ((p == t->s || !isalnum((unsigned char)p[-1])) &&
			    !isalnum((unsigned char)p[n]))
				return true;
	}
	return false;
}

static const char *const classify_invalid[] = {
	"no such user",	       "user unknown",
	"unknown user",	       "does not exist",
	"doesn't exist",       "mailbox unavailable",
	"mailbox not found",   "invalid recipient",
	"recipient rejected",  "no mailbox",
	"address rejected",    "unknown recipient",
	"not a valid mailbox", NULL
};
static const char *const classify_full[] = {
	"mailbox full",		"mailbox is full",
	"over quota",		"quota exceeded",
	"exceeded quota",	"exceeded storage",
	"insufficient storage", NULL
};
static const char *const classify_policy[] = {
	"spam",	    "blocked", "blacklist",   "blocklist",
	"denylist", "policy",  "reputation",  "dmarc",
	"spf",	    "dkim",    "unsolicited", NULL
};
static const char *const classify_rate[] = {
	"rate limit", "too many", "try again later", "throttl", "slow down",
	"rate that",  "volume",	  "unusual rate",    NULL
};
static const char *const classify_size[] = { "too large",
					     "too big",
					     "size limit",
					     "message size",
					     "exceeds the maximum size",
					     NULL };
static const char *const classify_tls[] = { "tls", "starttls", NULL };
static const char *const classify_dns[] = { "dns", "nxdomain", "servfail",
					    "null mx", NULL };

/* The subject and detail of a well-formed enhanced code ("1.1" of
 * "5.1.1"), or "" when there is none. */
static const char *
classify_detail(const char *e)
{
	if ((e[0] != '2' && e[0] != '4' && e[0] != '5') || e[1] != '.')
		return "";
	return e + 2;
}

enum classify_cat
classify_reply(const struct smtpc_reply *r, enum smtpc_phase phase)
{
	const char *d = classify_detail(r->enhanced);
	bool is_temp = r->code == 0 || (r->code >= 400 && r->code < 500);
	struct classify_text t;

	if (r->code >= 200 && r->code < 300)
		return CLASSIFY_NONE;
	classify_lower(r->text, &t);
	if (phase == SMTPC_PH_TLS)
		return CLASSIFY_TLS_FAILURE;
	/* a specific enhanced code decides, whatever the text mentions */
	if (strcmp(d, "7.10") == 0 || strcmp(d, "7.11") == 0)
		return CLASSIFY_TLS_FAILURE;
	if (strcmp(d, "1.10") == 0 || strcmp(d, "4.3") == 0 ||
	    strcmp(d, "4.4") == 0)
		return CLASSIFY_DNS_FAILURE;
	if (strcmp(d, "1.0") == 0 || strcmp(d, "1.1") == 0 ||
	    strcmp(d, "1.2") == 0 || strcmp(d, "1.3") == 0 ||
	    strcmp(d, "1.6") == 0)
		return CLASSIFY_INVALID_RECIPIENT;
	if (strcmp(d, "2.2") == 0 || strcmp(d, "3.1") == 0)
		return CLASSIFY_MAILBOX_FULL;
	if (strcmp(d, "3.4") == 0 || strcmp(d, "2.3") == 0)
		return CLASSIFY_MESSAGE_TOO_LARGE;
	/* temporary refusals (4.7.x, 4.2.1, 421, 45x) that ask us to slow
	 * down; a permanent 5.7.x naming a rate is still a policy block */
	if (is_temp && r->code != 0 && classify_has(&t, classify_rate))
		return CLASSIFY_RATE_LIMITED;
	/* X.2.1: the mailbox is disabled (5) or busy (4, not a rate) */
	if (strcmp(d, "2.1") == 0)
		return is_temp ? CLASSIFY_OTHER : CLASSIFY_INVALID_RECIPIENT;
	/* X.7.0 says only "security or policy": naming TLS says which */
	if (strcmp(d, "7.0") == 0 && classify_has_word(&t, classify_tls))
		return CLASSIFY_TLS_FAILURE;
	if (strncmp(d, "7.", 2) == 0)
		return CLASSIFY_POLICY_BLOCK;
	/* no enhanced code, or one that says little: the text */
	if (classify_has_word(&t, classify_tls))
		return CLASSIFY_TLS_FAILURE;
	if (classify_has_word(&t, classify_dns))
		return CLASSIFY_DNS_FAILURE;
	if (classify_has(&t, classify_invalid))
		return CLASSIFY_INVALID_RECIPIENT;
	if (classify_has(&t, classify_full))
		return CLASSIFY_MAILBOX_FULL;
	if (classify_has(&t, classify_size))
		return CLASSIFY_MESSAGE_TOO_LARGE;
	if (classify_has(&t, classify_policy))
		return CLASSIFY_POLICY_BLOCK;
	if (r->code != 0 && classify_has(&t, classify_rate))
		return CLASSIFY_RATE_LIMITED;
	/* no reply at all: refused, timed out, lost, no route */
	if (r->code == 0)
		return CLASSIFY_CONNECTION_FAILURE;
	return CLASSIFY_OTHER;
}

/* Name and description, indexed by enum classify_cat. */
static const char *const classify_names[][2] = {
	{ "", "" },
	{ "invalid_recipient", "the recipient address does not exist" },
	{ "mailbox_full", "the recipient's mailbox is full" },
	{ "policy_block", "blocked by the receiver's policy or spam filter" },
	{ "dns_failure", "the recipient's domain could not be resolved" },
	{ "tls_failure", "a secure (TLS) connection could not be made" },
	{ "rate_limited", "the receiver asked us to slow down" },
	{ "message_too_large", "the message is too large for the receiver" },
	{ "connection_failure", "the receiving server could not be reached" },
	{ "other", "other delivery failure" },
};

#define CLASSIFY_N (sizeof(classify_names) / sizeof(*classify_names))

const char *
classify_name(enum classify_cat c)
{
	return (unsigned)c < CLASSIFY_N ? classify_names[c][0] : "other";
}

const char *
classify_describe(const char *name)
{
	for (size_t i = 1; i < CLASSIFY_N; i++)
		if (strcmp(classify_names[i][0], name) == 0)
			return classify_names[i][1];
	return classify_names[CLASSIFY_OTHER][1];
}
