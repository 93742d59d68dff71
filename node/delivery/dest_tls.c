/* The TLS policy of one connection to one MX address (deliver_impl.h
 * "dest_tls.c"): which of DANE (RFC 7672), MTA-STS (RFC 8461), CA
 * verification or plain opportunistic STARTTLS applies, decided before
 * the connection opens, and the TLS-RPT count of what the session met.
 *
 * The order, for the default policy: DNSSEC-secure TLSA records of the
 * host → DANE (it wins over MTA-STS, RFC 8461 2, also for a host the
 * policy does not name); else the domain's MTA-STS policy (enforce: only
 * a host matching its mx patterns, with a CA-verified certificate for
 * the MX name; testing: opportunistic, checked for the report); else
 * opportunistic.
 * A TLSA lookup that fails while the host's own address records are
 * DNSSEC-secure, or cannot be looked up either, defers the host (an
 * attacker may be hiding the records); with insecure addresses it means
 * no DANE.
 * Handles untrusted input: TLSA records (bounded by dns.c, checked by
 * smtpc.c / OpenSSL). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xmalloc.h"
#include "node/delivery/deliver_impl.h"
#include "node/tls/sts_policy.h"

static uint16_t
dest_tls_port(const struct dest_addr *a)
{
	if (a->sa.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

/* An address, not a name: it has no TLSA records of its own. */
static bool
dest_tls_is_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	       inet_pton(AF_INET6, host, &a6) == 1;
}

static void
dest_tls_ready(struct dest_tls *t)
{
	t->is_ready = true;
	t->lookup = 0;
}

static void
dest_tls_fail(struct dest_tls *t, const char *type, const char *text)
{
	t->fail_type = type;
	snprintf(t->fail_text, sizeof(t->fail_text), "%s", text);
}

/* No DANE for this host: the domain's MTA-STS policy, or opportunistic. */
static void
dest_tls_no_dane(struct dest_tls *t)
{
	const struct dest *ds = t->ds;

	if (ds->tls_cfg == CFG_TLS_DANE) {
		char text[SMTPC_REPLY_TEXT_MAX];

		snprintf(text, sizeof(text),
			 "DANE: no DNSSEC-validated TLSA records for %s",
			 t->mx);
		t->policy = "dane";
		t->rpt_type = "tlsa";
		dest_tls_fail(t, "dane-required", text);
		return;
	}
	if (ds->sts != NULL && ds->sts->mode == STS_MODE_ENFORCE) {
		t->mode = SMTPC_TLS_VERIFY;
		t->policy = "mta-sts";
		t->rpt_type = "sts";
		/* RFC 8461 4.1: only the hosts the policy names (a host with
		 * secure TLSA got DANE above: DANE wins, RFC 8461 2) */
		if (!sts_mx_match(ds->sts, t->mx)) {
			char text[SMTPC_REPLY_TEXT_MAX];

			snprintf(text, sizeof(text),
				 "MTA-STS: MX host %.200s of %.200s does not "
				 "match the policy",
				 t->mx, ds->domain);
			dest_tls_fail(t, "validation-failure", text);
		}
	} else if (ds->sts != NULL) {
		t->mode = SMTPC_TLS_OPPORTUNISTIC;
		t->evaluate = true;
		/* testing: delivered anyway, reported as a failure */
		t->is_unlisted = !sts_mx_match(ds->sts, t->mx);
		t->policy = "mta-sts-testing";
		t->rpt_type = "sts";
	} else {
		t->mode = SMTPC_TLS_OPPORTUNISTIC;
		t->policy = "opportunistic";
		t->rpt_type = ds->tls_cfg == CFG_TLS_DEFAULT ? "no-policy-found" :
							       NULL;
	}
}

/* The host's DNSSEC-secure TLSA records: DANE. */
static void
dest_tls_dane(struct dest_tls *t, const struct dns_rrset *r)
{
	size_t total = 0, off = 0;

	for (size_t i = 0; i < r->n && i < DEST_TLSA_MAX; i++)
		total += r->rr[i].len;
	t->tlsa_data = xmalloc(total ? total : 1);
	for (size_t i = 0; i < r->n && i < DEST_TLSA_MAX; i++) {
		const struct dns_rr *rr = &r->rr[i];
		struct smtpc_tlsa *x = &t->tlsa[t->n_tlsa];
		size_t hl = rr->len > 3 ? 2 * (rr->len - 3) : 0;
		char *txt;

		if (rr->len < 3)
			continue; /* not even a header: unusable */
		memcpy(t->tlsa_data + off, rr->data, rr->len);
		x->usage = rr->data[0];
		x->selector = rr->data[1];
		x->mtype = rr->data[2];
		x->data = t->tlsa_data + off + 3;
		x->len = rr->len - 3u;
		off += rr->len;
		/* RFC 8460 4.4: the records as text for the report */
		txt = xmalloc(16 + hl);
		int n = snprintf(txt, 16, "%u %u %u ", x->usage, x->selector,
				 x->mtype);
		for (size_t k = 0; k < x->len; k++)
			snprintf(txt + n + 2 * k, 3, "%02X", x->data[k]);
		txt[n + hl] = '\0';
		t->tlsa_text[t->n_tlsa++] = txt;
	}
	t->mode = SMTPC_TLS_DANE;
	t->policy = "dane";
	t->rpt_type = "tlsa";
}

static void
dest_tls_on_addr(const struct dns_rrset *r, void *arg)
{
	struct dest_tls *t = arg;

	dest_tls_ready(t);
	/* secure, or not known to be insecure (the lookup failed too):
	 * the host may have TLSA records someone hides, so no plain
	 * opportunistic session */
	if (r->secure || r->status == DNS_TEMPFAIL) {
		char text[SMTPC_REPLY_TEXT_MAX];

		snprintf(text, sizeof(text),
			 r->secure ? "DANE: TLSA lookup for %s failed in a "
				     "DNSSEC-signed zone" :
				     "DANE: TLSA lookup for %s failed and its "
				     "zone's DNSSEC status is unknown",
			 t->mx);
		t->policy = "dane";
		t->rpt_type = "tlsa";
		dest_tls_fail(t, "dnssec-invalid", text);
	} else {
		dest_tls_no_dane(t);
	}
	t->fn(t->arg);
}

static void
dest_tls_on_tlsa(const struct dns_rrset *r, void *arg)
{
	struct dest_tls *t = arg;

	if (r->status == DNS_TEMPFAIL) {
		/* is the host in a signed zone? its address records say */
		t->lookup = dns_query(t->ds->d->dns, t->mx,
				      t->family == AF_INET6 ? DNS_TYPE_AAAA :
							      DNS_TYPE_A,
				      dest_tls_on_addr, t);
		return;
	}
	dest_tls_ready(t);
	if (r->status == DNS_OK && r->secure && r->n > 0)
		dest_tls_dane(t, r);
	else
		dest_tls_no_dane(t);
	t->fn(t->arg);
}

struct dest_tls *
dest_tls_new(struct dest *ds, size_t addr_idx, void (*fn)(void *arg),
	     void *arg)
{
	struct dest_tls *t = xcalloc(1, sizeof(*t));
	const struct dest_addr *a = &ds->addrs[addr_idx];
	char name[DNS_NAME_MAX + 32];

	t->ds = ds;
	t->fn = fn;
	t->arg = arg;
	t->family = a->sa.ss_family;
	snprintf(t->mx, sizeof(t->mx), "%s", a->mx);
	switch (ds->tls_cfg) {
	case CFG_TLS_NONE:
		t->mode = SMTPC_TLS_NONE;
		t->policy = "none";
		break;
	case CFG_TLS_REQUIRED:
		t->mode = SMTPC_TLS_REQUIRED;
		t->policy = "required";
		break;
	case CFG_TLS_VERIFY:
		t->mode = SMTPC_TLS_VERIFY;
		t->policy = "verify";
		break;
	case CFG_TLS_DEFAULT:
	case CFG_TLS_DANE:
		/* RFC 7672 3: the TLSA records of the host at its port */
		if (!dest_tls_is_literal(a->mx) &&
		    snprintf(name, sizeof(name), "_%u._tcp.%s",
			     dest_tls_port(a), a->mx) < (int)sizeof(name)) {
			t->lookup = dns_query(ds->d->dns, name, DNS_TYPE_TLSA,
					      dest_tls_on_tlsa, t);
			return t;
		}
		dest_tls_no_dane(t);
		break;
	case CFG_TLS_MTA_STS:
		dest_tls_no_dane(t);
		break;
	default: /* "opportunistic", and listener words on a route */
		t->mode = SMTPC_TLS_OPPORTUNISTIC;
		t->policy = "opportunistic";
		break;
	}
	dest_tls_ready(t);
	return t;
}

void
dest_tls_free(struct dest_tls *t)
{
	if (t == NULL)
		return;
	if (t->lookup != 0)
		dns_cancel(t->ds->d->dns, t->lookup);
	for (size_t i = 0; i < t->n_tlsa; i++)
		free(t->tlsa_text[i]);
	free(t->tlsa_data);
	free(t);
}

void
dest_tls_opts(const struct dest_tls *t, struct smtpc_opts *o)
{
	o->tls = t->mode;
	o->verify_name = t->mx;
	o->tlsa = t->tlsa;
	o->n_tlsa = t->n_tlsa;
	o->evaluate = t->evaluate;
	o->policy = t->mode == SMTPC_TLS_DANE ? "DANE" :
		    t->rpt_type && strcmp(t->rpt_type, "sts") == 0 ? "MTA-STS" :
								       "TLS";
}

const char *
dest_tls_result(const struct dest_tls *t, const struct smtpc_info *info,
		bool ok)
{
	if (t->fail_type != NULL)
		return t->fail_type;
	if (info == NULL || t->is_unlisted)
		return "validation-failure";
	if (info->tls_failure[0] != '\0' &&
	    strcmp(info->tls_failure, "tlsa-invalid") != 0)
		return info->tls_failure;
	if (!info->tls_active)
		return "starttls-not-supported";
	return ok ? "" : "validation-failure";
}

void
dest_tls_report(const struct dest_tls *t, const char *domain,
		const struct smtpc_info *info, const char *result)
{
	struct deliver *d = t->ds->d;
	struct deliver_tls_session s = {
		.domain = domain,
		.policy_type = t->rpt_type,
		.sts = t->ds->sts,
		.tlsa = (const char *const *)t->tlsa_text,
		.n_tlsa = t->n_tlsa,
		.mx = t->mx,
		.ip = info ? info->peer_ip : "",
		.source = info == NULL      ? "" :
			  info->source_ip[0] ? info->source_ip :
					       info->local_ip,
		.result = result,
	};

	if (t->rpt_type == NULL || d->hooks.tls_session == NULL)
		return;
	if (strcmp(t->rpt_type, "sts") != 0)
		s.sts = NULL;
	d->hooks.tls_session(d->hooks.arg, &s);
}
