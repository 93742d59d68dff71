/* libFuzzer harness: what MTA-STS and TLS-RPT take from DNS and HTTPS
 * (node/tls/sts_policy.h, node/tls/tlsrpt_json.h): the input as one
 * _mta-sts and one _smtp._tls TXT record, as the records of one answer
 * (split at '\n'), as a policy body and as an MX host name; and as the
 * strings of a TLS report. Checks, beyond "no crash": what a parser
 * accepts is within its bounds, a parsed policy written as policy-string
 * lines parses back to itself and matches its own names, and the report
 * is valid JSON. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/tls/sts_policy.h"
#include "node/tls/tlsrpt_json.h"

#define FUZZ_RECORDS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > STS_ID_MAX)
		abort();
}

/* A policy parsed back from its own policy-string lines is the same. */
static void
fuzz_policy_round_trip(const struct sts_policy *p)
{
	static char text[STS_LINES_MAX * (STS_LINE_MAX + 1)];
	static char lines[STS_LINES_MAX][STS_LINE_MAX];
	static struct sts_policy back;
	size_t n = sts_policy_strings(p, lines, STS_LINES_MAX), len = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(lines[i]);

		memcpy(text + len, lines[i], l);
		len += l;
		text[len++] = '\n';
	}
	if (sts_policy_parse(text, len, &back, NULL, 0) != 0 ||
	    back.mode != p->mode || back.max_age != p->max_age ||
	    back.n_mx != p->n_mx)
		abort();
	for (size_t i = 0; i < p->n_mx; i++) {
		if (strcmp(back.mx[i], p->mx[i]) != 0)
			abort();
		/* a plain pattern matches itself, with a dot and upper-cased */
		if (p->mx[i][0] != '*') {
			char host[STS_NAME_MAX + 2];
			size_t l = strlen(p->mx[i]);

			if (!sts_mx_match(p, p->mx[i]))
				abort();
			for (size_t k = 0; k < l; k++)
				host[k] = (char)(p->mx[i][k] >= 'a' &&
								 p->mx[i][k] <=
									 'z' ?
							 p->mx[i][k] - 32 :
							 p->mx[i][k]);
			host[l] = '.';
			host[l + 1] = '\0';
			if (!sts_mx_match(p, host))
				abort();
		}
	}
}

static void
fuzz_rua(const char *txt, size_t len)
{
	struct tlsrpt_rua r;

	if (tlsrpt_txt_parse(txt, len, &r) != 0)
		return;
	if (r.n == 0 || r.n > TLSRPT_RUA_MAX)
		abort();
	for (size_t i = 0; i < r.n; i++)
		if (strlen(r.uri[i]) > TLSRPT_URI_MAX ||
		    (r.scheme[i] == TLSRPT_MAILTO) !=
			    (strchr(r.addr[i], '@') != NULL))
			abort();
}

/* The input as the records of one answer. */
static void
fuzz_pick(const char *s, size_t size)
{
	const char *txts[FUZZ_RECORDS_MAX];
	size_t lens[FUZZ_RECORDS_MAX], n = 0, start = 0;
	char id[STS_ID_MAX + 1];
	struct tlsrpt_rua r;

	for (size_t i = 0; i <= size && n < FUZZ_RECORDS_MAX; i++)
		if (i == size || s[i] == '\n') {
			txts[n] = s + start;
			lens[n++] = i - start;
			start = i + 1;
		}
	if (sts_txt_pick(txts, lens, n, id) == 0)
		fuzz_check_id(id);
	(void)tlsrpt_txt_pick(txts, lens, n, &r);
}

/* A report whose every string is the input (cut to each field). */
static void
fuzz_report(const char *s)
{
	struct tlsrpt_failure f;
	struct tlsrpt_policy pol;
	struct tlsrpt_report r;
	const char *strings[2] = { s, s };
	json_t *doc;
	char *text;

	memset(&f, 0, sizeof(f));
	memset(&pol, 0, sizeof(pol));
	strncpy(f.result_type, s, sizeof(f.result_type));
	strncpy(f.receiving_mx, s, sizeof(f.receiving_mx));
	strncpy(f.sending_ip, s, sizeof(f.sending_ip) - 1);
	f.count = strlen(s);
	strncpy(pol.type, s, sizeof(pol.type));
	strncpy(pol.domain, s, sizeof(pol.domain));
	pol.n_strings = 2;
	pol.strings = strings;
	pol.n_mx_host = 1;
	pol.mx_host = strings;
	pol.n_fail = 1;
	pol.fail = &f;
	r = (struct tlsrpt_report){ .org = s,
				    .contact = s,
				    .report_id = s,
				    .start = strlen(s) * 86400ull,
				    .n = 1,
				    .pol = &pol };
	text = tlsrpt_report_json(&r);
	if (text == NULL)
		abort();
	doc = json_loads(text, 0, NULL);
	if (doc == NULL)
		abort();
	json_decref(doc);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sts_policy p, fixed;
	static bool is_init;
	const char *s = (const char *)data;
	char id[STS_ID_MAX + 1], err[64];
	char *text;

	if (!is_init) {
		static const char body[] = "version: STSv1\nmode: enforce\n"
					   "mx: mx.example.com\n"
					   "mx: *.example.net\nmax_age: 1\n";

		if (sts_policy_parse(body, sizeof(body) - 1, &fixed, NULL, 0) !=
		    0)
			abort();
		is_init = true;
	}
	if (sts_txt_parse(s, size, id) == 0)
		fuzz_check_id(id);
	fuzz_rua(s, size);
	fuzz_pick(s, size);
	if (sts_policy_parse(s, size, &p, err, sizeof(err)) == 0) {
		if (p.n_mx > STS_MX_MAX || p.max_age > STS_MAX_AGE_MAX ||
		    (p.mode != STS_MODE_NONE && p.n_mx == 0))
			abort();
		fuzz_policy_round_trip(&p);
	}
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	(void)sts_mx_match(&fixed, text);
	fuzz_report(text);
	free(text);
	return 0;
}
