/* DKIM key selection at the router (see signer.h). Owns the loaded keys
 * and which router.dkim entries sign a message; lib/dkim.c does RFC 6376.
 * The message is untrusted (its From field picks the keys); the config is
 * trusted but checked, each error naming the entry and its file. */
#include "router/signer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/dkim.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

struct signer_entry {
	const struct cfg_dkim *cfg;
	struct dkim_key *key;
	enum dkim_canon header_canon, body_canon;
	const char **headers; /* NULL-terminated, or NULL for the default */
};

/* Signing may run on worker threads (the HTTP API's) while SIGHUP
 * reloads the keys on the loop: keys are read under lock. */
struct signer {
	const struct config *cfg;
	struct signer_entry *e;
	size_t n;
	pthread_rwlock_t lock;
};

/* The canonicalizations of a CFG_DKIM_* value, in its order. */
static const enum dkim_canon signer_canon[][2] = {
	{ DKIM_CANON_RELAXED, DKIM_CANON_RELAXED },
	{ DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE },
	{ DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED },
	{ DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE },
	{ DKIM_CANON_RELAXED, DKIM_CANON_SIMPLE },
	{ DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE },
};

static int
signer_check_entry(const struct config *cfg, size_t i, char *err, size_t errlen)
{
	const struct cfg_dkim *d = &cfg->router.dkim[i];
	bool has_from = false;

	if (!dkim_is_dns_name(d->domain) || !dkim_is_dns_name(d->selector)) {
		snprintf(err, errlen,
			 "%s: router.dkim[%zu]: domain \"%s\" or "
			 "selector \"%s\" is not a DNS name",
			 cfg->path, i, d->domain, d->selector);
		return -1;
	}
	for (size_t k = 0; k < d->n_headers; k++) {
		if (!dkim_is_header_name(d->headers[k])) {
			snprintf(err, errlen,
				 "%s: router.dkim[%zu].headers"
				 "[%zu]: \"%.64s\" is not a header name",
				 cfg->path, i, k, d->headers[k]);
			return -1;
		}
		has_from |= strcasecmp(d->headers[k], "from") == 0;
	}
	if (d->headers != NULL && !has_from) {
		/* RFC 6376 5.4: From MUST be signed */
		snprintf(err, errlen,
			 "%s: router.dkim[%zu].headers must "
			 "include From",
			 cfg->path, i);
		return -1;
	}
	return 0;
}

/* Load every key into keys[] (n entries). Returns 0, or -1 with err set
 * and nothing left allocated. */
static int
signer_load_keys(const struct config *cfg, struct dkim_key **keys, char *err,
		 size_t errlen)
{
	for (size_t i = 0; i < cfg->router.n_dkim; i++) {
		char why[512];

		if (dkim_key_load(cfg->router.dkim[i].key_file, &keys[i], why,
				  sizeof(why)) == 0)
			continue;
		snprintf(err, errlen,
			 "%s: router.dkim[%zu] (domain %s, "
			 "selector %s): %s",
			 cfg->path, i, cfg->router.dkim[i].domain,
			 cfg->router.dkim[i].selector, why);
		while (i-- > 0) {
			dkim_key_free(keys[i]);
			keys[i] = NULL;
		}
		return -1;
	}
	return 0;
}

int
signer_new(const struct config *cfg, struct signer **out, char *err,
	   size_t errlen)
{
	struct dkim_key **keys;
	struct signer *sg;
	const char *dflt = cfg->router.dkim_default_domain;
	bool dflt_found = dflt == NULL;
	size_t n = cfg->router.n_dkim;

	*out = NULL;
	for (size_t i = 0; i < n; i++) {
		if (signer_check_entry(cfg, i, err, errlen) != 0)
			return -1;
		if (dflt && strcasecmp(cfg->router.dkim[i].domain, dflt) == 0)
			dflt_found = true;
	}
	if (!dflt_found) {
		snprintf(err, errlen,
			 "%s: router.dkim_default_domain \"%s\" "
			 "has no router.dkim entry",
			 cfg->path, dflt);
		return -1;
	}
	if (n == 0)
		return 0;
	keys = xcalloc(n, sizeof(*keys));
	if (signer_load_keys(cfg, keys, err, errlen) != 0) {
		free(keys);
		return -1;
	}
	sg = xcalloc(1, sizeof(*sg));
	sg->cfg = cfg;
	sg->n = n;
	pthread_rwlock_init(&sg->lock, NULL);
	sg->e = xcalloc(n, sizeof(*sg->e));
	for (size_t i = 0; i < n; i++) {
		const struct cfg_dkim *d = &cfg->router.dkim[i];
		struct signer_entry *e = &sg->e[i];

		e->cfg = d;
		e->key = keys[i];
		e->header_canon = signer_canon[d->canonicalization][0];
		e->body_canon = signer_canon[d->canonicalization][1];
		if (d->headers != NULL) {
			e->headers =
				xcalloc(d->n_headers + 1, sizeof(*e->headers));
			for (size_t k = 0; k < d->n_headers; k++)
				e->headers[k] = d->headers[k];
		}
		log_info("dkim event=key_loaded domain=%s selector=%s "
			 "algorithm=%s bits=%u file=%s",
			 d->domain, d->selector,
			 dkim_alg_name(dkim_key_alg(keys[i])),
			 dkim_key_bits(keys[i]), d->key_file);
	}
	free(keys);
	*out = sg;
	return 0;
}

int
signer_reload(struct signer *sg)
{
	struct dkim_key **keys;
	char err[1024];

	if (sg == NULL)
		return 0;
	keys = xcalloc(sg->n, sizeof(*keys));
	if (signer_load_keys(sg->cfg, keys, err, sizeof(err)) != 0) {
		log_error("dkim event=reload_failed error=\"%s\" "
			  "keeping=old_keys",
			  err);
		free(keys);
		return -1;
	}
	pthread_rwlock_wrlock(&sg->lock);
	for (size_t i = 0; i < sg->n; i++) {
		struct dkim_key *old = sg->e[i].key;

		sg->e[i].key = keys[i];
		keys[i] = old;
	}
	pthread_rwlock_unlock(&sg->lock);
	for (size_t i = 0; i < sg->n; i++)
		dkim_key_free(keys[i]);
	free(keys);
	log_info("dkim event=reloaded keys=%zu", sg->n);
	return 0;
}

/* Sign with every entry of domain. Returns the signatures made. */
static int
signer_sign_domain(struct signer *sg, const char *qid, struct dkim_msg *m,
		   const char *domain, struct buf *out)
{
	uint64_t now = (uint64_t)time(NULL);
	int made = 0;

	for (size_t i = 0; i < sg->n; i++) {
		const struct signer_entry *e = &sg->e[i];
		struct dkim_sign_req req = {
			.domain = e->cfg->domain,
			.selector = e->cfg->selector,
			.header_canon = e->header_canon,
			.body_canon = e->body_canon,
			.headers = e->headers,
			.now = now,
			.expire_s = e->cfg->expire,
		};
		int rc;

		if (strcasecmp(e->cfg->domain, domain) != 0)
			continue;
		rc = dkim_sign(m, e->key, &req, out);
		if (rc != 0) {
			log_warn("qid=%s dkim=not_signed domain=%s "
				 "selector=%s error=\"%s\"",
				 qid, e->cfg->domain, e->cfg->selector,
				 shoal_strerror(rc));
			continue;
		}
		made++;
	}
	return made;
}

static bool
signer_has_domain(const struct signer *sg, const char *domain)
{
	for (size_t i = 0; i < sg->n; i++)
		if (strcasecmp(sg->e[i].cfg->domain, domain) == 0)
			return true;
	return false;
}

int
signer_sign(struct signer *sg, const char *qid, const char *msg, size_t len,
	    struct buf *out)
{
	char from[DKIM_DOMAIN_MAX + 1];
	const char *domain;
	struct dkim_msg *m;
	int rc, made;

	if (sg == NULL)
		return 0;
	if ((rc = dkim_msg_parse(msg, len, &m)) != 0) {
		log_info("qid=%s dkim=not_signed reason=\"too many header "
			 "fields\"",
			 qid);
		return 0;
	}
	rc = dkim_msg_from_domain(m, from, sizeof(from));
	if (rc != 0) {
		log_debug(LOG_SUB_SMTP, "qid=%s dkim=not_signed reason=\"%s\"",
			  qid,
			  rc == -ENOENT ? "no From" :
			  rc == -EMLINK ? "several From addresses" :
					  "unreadable From");
		dkim_msg_free(m);
		return 0;
	}
	domain = from;
	if (!signer_has_domain(sg, from))
		domain = sg->cfg->router.dkim_default_domain;
	if (domain == NULL) {
		char q[LOG_QUOTE_BUF];

		log_debug(LOG_SUB_SMTP,
			  "qid=%s dkim=not_signed "
			  "reason=\"no key\" from_domain=%s",
			  qid, log_quote(q, sizeof(q), from, strlen(from)));
		dkim_msg_free(m);
		return 0;
	}
	pthread_rwlock_rdlock(&sg->lock);
	made = signer_sign_domain(sg, qid, m, domain, out);
	pthread_rwlock_unlock(&sg->lock);
	log_debug(LOG_SUB_SMTP, "qid=%s dkim=signed domain=%s signatures=%d",
		  qid, domain, made);
	dkim_msg_free(m);
	return made;
}

void
signer_free(struct signer *sg)
{
	if (sg == NULL)
		return;
	for (size_t i = 0; i < sg->n; i++) {
		dkim_key_free(sg->e[i].key);
		free(sg->e[i].headers);
	}
	pthread_rwlock_destroy(&sg->lock);
	free(sg->e);
	free(sg);
}
