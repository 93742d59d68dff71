/* shoalctl tls report DOMAIN [--send] (docs/tls.md): every node's RFC 8460
 * report of DOMAIN for today (UTC), merged into one; with --send each
 * node sends its own report to the domain's rua now. */
#ifndef SHOAL_CLI_TLS_H
#define SHOAL_CLI_TLS_H

#include <stddef.h>

#include "cli/cli.h"
#include "lib/smtp_addr.h"

#define TLS_CMD_DOMAIN_MAX SMTP_NAME_TEXT_MAX
#define TLS_CMD_JSON_MAX (4u << 20) /* bytes of one node's report read */
#define TLS_CMD_POLICIES_MAX 4096   /* policies of the merged report */
#define TLS_CMD_FAILS_MAX 4096      /* failure-details of one policy */

struct cli;

/* Lower-case domain into out and check it is a host name (letters,
 * digits, '-', '_', labels of 1..63, at most TLS_CMD_DOMAIN_MAX, one
 * trailing dot dropped). Returns 0 or -EINVAL (out untouched). */
int tls_cmd_domain(const char *domain, char out[TLS_CMD_DOMAIN_MAX + 1]);

/* Merge n reports (RFC 8460 JSON texts of the nodes, untrusted, each at
 * most TLS_CMD_JSON_MAX bytes): policies that agree on policy-type,
 * policy-domain, policy-string and mx-host become one, their summary
 * counts summed; failure-details that agree on result-type,
 * sending-mta-ip, receiving-mx-hostname and receiving-ip become one,
 * failed-session-count summed. The result takes organization-name and
 * contact-info from the first report, date-range from date (YYYY-MM-DD)
 * 00:00:00Z to 23:59:59Z and report-id "<date>.<domain>@cluster".
 * Returns the JSON text (pretty: indented, else one line; caller frees
 * with free()), or NULL with err saying which report is wrong. */
char *tls_cmd_merge(const char *const *reports, const size_t *lens, size_t n,
		    const char *domain, const char *date, bool pretty,
		    char *err, size_t errlen);

/* Run "tls VERB ARGS". Returns the exit status. */
int tls_cmd_run(struct cli *c, const char *verb, int argc, char **argv);

#endif
