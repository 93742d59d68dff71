/* libFuzzer harness: an SMTP command line as a client may send it, through
 * the command splitter and the MAIL / RCPT / BDAT argument parsers, and
 * xtext both ways. Every parser must return, never read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[SMTP_CMD_MAX + 1], out[SMTP_CMD_MAX + 1];
	struct smtp_cmd cmd;
	struct smtp_mail mail;
	struct smtp_rcpt rcpt;
	uint64_t chunk;
	bool last;

	if (size > SMTP_CMD_MAX)
		size = SMTP_CMD_MAX;
	memcpy(line, data, size);
	line[size] = '\0';
	if (smtp_cmd_parse(line, size, &cmd) == 0) {
		smtp_mail_parse(cmd.arg, cmd.arg_len, &mail);
		smtp_rcpt_parse(cmd.arg, cmd.arg_len, true, &rcpt);
		smtp_rcpt_parse(cmd.arg, cmd.arg_len, false, &rcpt);
		smtp_bdat_parse(cmd.arg, cmd.arg_len, &chunk, &last);
	}
	/* the argument parsers take raw bytes too */
	smtp_mail_parse(line, size, &mail);
	smtp_rcpt_parse(line, size, true, &rcpt);
	if (smtp_xtext_decode(line, size, out, sizeof(out)) >= 0)
		smtp_xtext_encode(out, line, sizeof(line));
	return 0;
}
