/* shoalctl dkim keygen DOMAIN SELECTOR: a new DKIM private key written to
 * a file (mode 0600; an existing file only with --force, replaced
 * atomically), then the DNS TXT record to publish, in strings of at most
 * 255 bytes (RFC 1035 3.3.14, RFC 6376 3.6.2.2), and the router.dkim
 * entry to add. --json prints the same as one object. Needs no config
 * and no node. */
#include "cli/dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/dkim.h"
#include "lib/dkim_key.h"
#include "lib/json.h"
#include "lib/xmalloc.h"

#define DKIM_TXT_STRING_MAX 255 /* RFC 1035 3.3.14 character-string */

struct dkim_keygen {
	const char *domain, *selector, *out;
	enum dkim_alg alg;
	unsigned bits;
	bool is_force;
};

static int
dkim_keygen_args(struct cli *c, int argc, char **argv, struct dkim_keygen *g)
{
	char *end;
	unsigned long v;

	if (argc != 2)
		return cli_usage_error("dkim keygen takes DOMAIN SELECTOR");
	g->domain = argv[0];
	g->selector = argv[1];
	if (!dkim_is_dns_name(g->domain))
		return cli_usage_error("\"%.255s\" is not a domain name",
				       g->domain);
	if (!dkim_is_dns_name(g->selector) || strlen(g->selector) > 63)
		return cli_usage_error("\"%.255s\" is not a selector (a DNS "
				       "label or labels)",
				       g->selector);
	g->alg = DKIM_ALG_RSA_SHA256;
	if (c->opt_type && strcmp(c->opt_type, "ed25519") == 0)
		g->alg = DKIM_ALG_ED25519_SHA256;
	else if (c->opt_type && strcmp(c->opt_type, "rsa") != 0)
		return cli_usage_error("--type is rsa or ed25519");
	g->bits = g->alg == DKIM_ALG_RSA_SHA256 ? DKIM_RSA_BITS_MIN : 256;
	if (c->opt_bits) {
		if (g->alg != DKIM_ALG_RSA_SHA256)
			return cli_usage_error("--bits is for --type rsa");
		errno = 0;
		v = strtoul(c->opt_bits, &end, 10);
		if (c->opt_bits[0] < '0' || c->opt_bits[0] > '9' ||
		    *end != '\0' || errno != 0 || v < DKIM_RSA_BITS_MIN ||
		    v > DKIM_RSA_BITS_MAX)
			return cli_usage_error("--bits is %d to %d",
					       DKIM_RSA_BITS_MIN,
					       DKIM_RSA_BITS_MAX);
		g->bits = (unsigned)v;
	}
	g->out = c->opt_out;
	if (g->out != NULL && g->out[0] == '\0')
		return cli_usage_error("--out needs a file name");
	g->is_force = (c->opts_given & CLI_OPT_FORCE) != 0;
	return -1;
}

static int
dkim_write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return fsync(fd);
}

/* Write pem to path with mode 0600: a new file, or with force a file
 * beside it renamed over path. Returns 0 or -1 (printed). */
static int
dkim_write_key(const char *path, const char *pem, bool force)
{
	char tmp[PATH_MAX];
	const char *target = path;
	int fd;

	if (force) {
		if (snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path,
			     (long)getpid()) >= (int)sizeof(tmp)) {
			cli_error("%s: name too long", path);
			return -1;
		}
		target = tmp;
	}
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST && !force)
			cli_error("%s exists; --force replaces it", path);
		else
			cli_error("%s: %s", target, strerror(errno));
		return -1;
	}
	if (dkim_write_all(fd, pem, strlen(pem)) != 0 ||
	    (force && rename(tmp, path) != 0)) {
		cli_error("%s: %s", target, strerror(errno));
		close(fd);
		unlink(target);
		return -1;
	}
	close(fd);
	return 0;
}

/* The record as quoted strings of at most 255 bytes (base64 has no quote
 * or backslash to escape), separated by sep. */
static void
dkim_print_strings(FILE *f, const char *rec, const char *sep)
{
	size_t n = strlen(rec);

	for (size_t off = 0; off < n; off += DKIM_TXT_STRING_MAX) {
		size_t take = n - off < DKIM_TXT_STRING_MAX ?
				      n - off :
				      DKIM_TXT_STRING_MAX;

		fprintf(f, "%s\"%.*s\"", off ? sep : "", (int)take, rec + off);
	}
}

static void
dkim_print_json(const struct dkim_keygen *g, const char *key_file,
		const char *rec)
{
	struct json j;
	char name[512];
	size_t n = strlen(rec);

	snprintf(name, sizeof(name), "%s._domainkey.%s.", g->selector,
		 g->domain);
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_str(&j, "domain", g->domain);
	json_kv_str(&j, "selector", g->selector);
	json_kv_str(&j, "algorithm", dkim_alg_name(g->alg));
	json_kv_u64(&j, "bits", g->bits);
	json_kv_str(&j, "key_file", key_file);
	json_kv_str(&j, "dns_name", name);
	json_kv_str(&j, "txt", rec);
	json_key(&j, "txt_strings");
	json_array_begin(&j);
	for (size_t off = 0; off < n; off += DKIM_TXT_STRING_MAX)
		json_strn(&j, rec + off,
			  n - off < DKIM_TXT_STRING_MAX ? n - off :
							  DKIM_TXT_STRING_MAX);
	json_array_end(&j);
	json_key(&j, "config");
	json_object_begin(&j);
	json_kv_str(&j, "domain", g->domain);
	json_kv_str(&j, "selector", g->selector);
	json_kv_str(&j, "key_file", key_file);
	json_object_end(&j);
	json_object_end(&j);
	json_end(&j);
}

static void
dkim_print_text(const struct dkim_keygen *g, const char *key_file,
		const char *rec)
{
	printf("DKIM key (%s, %u bits) written to %s\n\n",
	       dkim_alg_name(g->alg), g->bits, key_file);
	printf("Publish this DNS record:\n\n%s._domainkey.%s. IN TXT ( ",
	       g->selector, g->domain);
	dkim_print_strings(stdout, rec, "\n\t");
	printf(" )\n\nAdd this entry to router.dkim and send the routers "
	       "SIGHUP (or restart them):\n\n");
	printf("  { domain = \"%s\"; selector = \"%s\"; key_file = \"%s\"; "
	       "},\n",
	       g->domain, g->selector, key_file);
}

int
dkim_keygen_run(struct cli *c, int argc, char **argv)
{
	struct dkim_keygen g = { 0 };
	struct dkim_key *k = NULL;
	char defname[600], abspath[PATH_MAX];
	const char *key_file;
	char *pem = NULL, *rec = NULL;
	int rc = dkim_keygen_args(c, argc, argv, &g);

	if (rc >= 0)
		return rc;
	if (g.out == NULL) {
		snprintf(defname, sizeof(defname), "%s.%s.pem", g.domain,
			 g.selector);
		g.out = defname;
	}
	if (!g.is_force && access(g.out, F_OK) == 0) {
		cli_error("%s exists; --force replaces it", g.out);
		return CLI_EXIT_FAIL;
	}
	rc = CLI_EXIT_FAIL;
	if (dkim_key_generate(g.alg, g.bits, &k) != 0) {
		cli_error("cannot make a %s key", dkim_alg_name(g.alg));
		goto out;
	}
	pem = dkim_key_private_pem(k);
	rec = dkim_key_dns_record(k);
	if (pem == NULL || rec == NULL) {
		cli_error("cannot encode the key");
		goto out;
	}
	if (dkim_write_key(g.out, pem, g.is_force) != 0)
		goto out;
	key_file = realpath(g.out, abspath) ? abspath : g.out;
	if (c->is_json)
		dkim_print_json(&g, key_file, rec);
	else
		dkim_print_text(&g, key_file, rec);
	rc = CLI_EXIT_OK;
out:
	if (pem != NULL) {
		memset(pem, 0, strlen(pem));
		free(pem);
	}
	free(rec);
	dkim_key_free(k);
	return rc;
}
