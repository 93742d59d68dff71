/* libFuzzer harness: HTTP injection requests (router/inject.h). Any bytes
 * go to inject_parse(); a request it takes is checked whole
 * (inject_check_all()) and every message of its plan built. What must
 * hold: errors name a field in printable ASCII; a request the check took
 * builds every message, each within max_message_size and together within
 * INJECT_TOTAL_FACTOR times it, and no build fails; every built message
 * has CRLF line ends only and no NUL; a structured one (content an
 * object) also has no line over 998 octets and passes lib/smtp_data.c's
 * checker as it is (raw content is the caller's to check). Any breach
 * aborts. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/smtp_data.h"
#include "router/inject.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MSG_MAX 20000
#define FUZZ_RCPTS_MAX 50
#define FUZZ_HOST "mta.example"
#define FUZZ_QID "0DJ3N8Q2K4M7ZX1P9Q0A3" /* QID_LEN, as the check's */
#define FUZZ_NOW ((time_t)1700000000)

static void
fuzz_check_error(const struct inject_error *e)
{
	for (const char *p = e->field; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	if (e->message[0] == '\0')
		abort();
	for (const char *p = e->message; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
}

/* Whether the request's content is an object (built by us) rather than
 * the client's raw text. */
static bool
fuzz_is_structured(const uint8_t *data, size_t size)
{
	json_t *doc = json_loadb((const char *)data, size, 0, NULL);
	bool is = doc && json_is_object(json_object_get(doc, "content"));

	json_decref(doc);
	return is;
}

static void
fuzz_check_message(const struct buf *b, bool is_structured)
{
	struct smtp_data d;
	struct buf out;
	size_t line = 0, used;

	if (b->len == 0 || b->len > FUZZ_MSG_MAX)
		abort();
	for (size_t i = 0; i < b->len; i++) {
		if (b->data[i] == '\0' || b->data[i] == '\n')
			abort();
		if (b->data[i] == '\r') {
			if (i + 1 >= b->len || b->data[i + 1] != '\n')
				abort();
			i++;
			line = 0;
			continue;
		}
		if (is_structured && ++line > SMTP_TEXT_MAX - 2)
			abort();
	}
	if (line != 0 || !is_structured)
		return;
	buf_init(&out, FUZZ_MSG_MAX + 2);
	smtp_data_init(&d, &out, FUZZ_MSG_MAX + 2, SMTP_DATA_CHUNKED);
	smtp_data_feed(&d, b->data, b->len, &used);
	if (smtp_data_finish(&d) != SMTP_DATA_OK || out.len != b->len ||
	    memcmp(out.data, b->data, b->len) != 0)
		abort();
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct inject_limits lim = { FUZZ_MSG_MAX, FUZZ_RCPTS_MAX };
	struct inject_req *r = NULL;
	struct inject_error e;
	size_t total = 0;
	bool is_checked, is_structured;
	struct buf b;

	if (inject_parse((const char *)data, size, &lim, &r, &e) != 0) {
		fuzz_check_error(&e);
		return 0;
	}
	if (inject_n_messages(r) < 1 ||
	    inject_n_messages(r) > inject_n_rcpts(r) ||
	    inject_n_rcpts(r) > FUZZ_RCPTS_MAX)
		abort();
	is_checked = inject_check_all(r, FUZZ_HOST, FUZZ_NOW, &e) == 0;
	if (!is_checked)
		fuzz_check_error(&e);
	is_structured = fuzz_is_structured(data, size);
	buf_init(&b, FUZZ_MSG_MAX * 2);
	for (size_t m = 0; m < inject_n_messages(r); m++) {
		int rc;

		buf_reset(&b);
		rc = inject_build(r, m, FUZZ_QID, FUZZ_HOST, FUZZ_NOW, &b, &e);
		if (rc != 0) {
			/* the check found every error a build can meet */
			if (is_checked || (rc != -EINVAL && rc != -E2BIG) ||
			    b.len != 0)
				abort();
			fuzz_check_error(&e);
			continue;
		}
		fuzz_check_message(&b, is_structured);
		total += b.len;
	}
	if (is_checked && total > (size_t)INJECT_TOTAL_FACTOR * FUZZ_MSG_MAX)
		abort();
	buf_free(&b);
	inject_free(r);
	return 0;
}
