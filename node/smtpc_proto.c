/* The SMTP client's wire format (see smtpc_proto.h): what node/smtpc.c
 * reads from and writes to the server, with no connection state. Reply
 * lines are untrusted: bounded by the caller's line limit and
 * SMTPC_REPLY_LINES_MAX here, parsed strictly, and kept as printable ASCII
 * so they can be logged and put in DSNs. */
#include "node/smtpc_proto.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/smtp_cmd.h"

/* --- replies ------------------------------------------------------------ */

/* Take an enhanced code of the reply's class off the front of text. */
static size_t
smtpc_proto_take_enhanced(struct smtpc_reply *r, const char *t, size_t n)
{
	size_t i = 0;
	int parts = 0;

	if (n < 5 || t[0] != (char)('0' + r->code / 100) || t[1] != '.')
		return 0;
	i = 2;
	for (parts = 0; parts < 2; parts++) {
		size_t d = 0;

		while (i < n && isdigit((unsigned char)t[i]) && d < 3) {
			i++;
			d++;
		}
		if (d == 0)
			return 0;
		if (parts == 0) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return 0;
	if (r->enhanced[0] == '\0' && i < sizeof(r->enhanced))
		snprintf(r->enhanced, sizeof(r->enhanced), "%.*s", (int)i, t);
	while (i < n && t[i] == ' ')
		i++;
	return i;
}

int
smtpc_proto_reply_line(struct smtpc_reply_reader *rd, const char *line,
		       size_t n)
{
	struct smtpc_reply *r = &rd->reply;
	bool more = n > 3 && line[3] == '-';
	int code;
	size_t skip;

	if (n < 3 || !isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) || line[0] < '2' ||
	    line[0] > '5' || (n > 3 && line[3] != ' ' && line[3] != '-'))
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (rd->lines == 0) {
		memset(r, 0, sizeof(*r));
		r->code = code;
		rd->textlen = 0;
	} else if (code != r->code) {
		return -1;
	}
	if (++rd->lines > SMTPC_REPLY_LINES_MAX)
		return -1;
	line += n > 3 ? 4 : 3;
	n -= n > 3 ? 4 : 3;
	skip = smtpc_proto_take_enhanced(r, line, n);
	line += skip;
	n -= skip;
	/* join lines with a space; keep printable ASCII only */
	if (rd->textlen > 0 && rd->textlen + 1 < sizeof(r->text))
		r->text[rd->textlen++] = ' ';
	for (size_t i = 0; i < n && rd->textlen + 1 < sizeof(r->text); i++) {
		unsigned char ch = (unsigned char)line[i];

		r->text[rd->textlen++] = ch >= 32 && ch < 127 ? (char)ch : '?';
	}
	r->text[rd->textlen] = '\0';
	if (more)
		return 1;
	rd->lines = 0;
	return 0;
}

void
smtpc_proto_ehlo_keyword(struct smtpc_info *info, const char *kw, size_t n)
{
	char word[32];
	size_t w = 0;

	while (w < n && w + 1 < sizeof(word) && kw[w] != ' ' && kw[w] != '=') {
		word[w] = (char)toupper((unsigned char)kw[w]);
		w++;
	}
	word[w] = '\0';
	if (strcmp(word, "PIPELINING") == 0) {
		info->pipelining = true;
	} else if (strcmp(word, "STARTTLS") == 0) {
		info->starttls = true;
	} else if (strcmp(word, "8BITMIME") == 0) {
		info->eightbit = true;
	} else if (strcmp(word, "SMTPUTF8") == 0) {
		info->smtputf8 = true;
	} else if (strcmp(word, "DSN") == 0) {
		info->dsn = true;
	} else if (strcmp(word, "SIZE") == 0) {
		uint64_t v = 0;
		size_t i = w;

		info->size = true;
		while (i < n && kw[i] == ' ')
			i++;
		for (; i < n && isdigit((unsigned char)kw[i]); i++) {
			if (v > (UINT64_MAX - 9) / 10) {
				v = 0;
				break;
			}
			v = v * 10 + (uint64_t)(kw[i] - '0');
		}
		info->max_size = v;
	}
}

/* --- commands ----------------------------------------------------------- */

/* Whether s may stand between <> or as a parameter value. */
static bool
smtpc_proto_is_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '<' || *s == '>' ||
		    *s == 0x7f)
			return false;
	return true;
}

void
smtpc_proto_format_mail(char *line, size_t size, const struct smtpc_msg *m,
			const struct smtpc_info *info)
{
	size_t o;

	o = (size_t)snprintf(line, size, "MAIL FROM:<%s>", m->mail_from);
	if (info->size)
		o += (size_t)snprintf(line + o, size - o, " SIZE=%zu",
				      m->body_len);
	if (m->body_8bit && info->eightbit)
		o += (size_t)snprintf(line + o, size - o, " BODY=8BITMIME");
	if (m->smtputf8)
		o += (size_t)snprintf(line + o, size - o, " SMTPUTF8");
	if (info->dsn && m->ret >= 1 && m->ret <= 2)
		o += (size_t)snprintf(line + o, size - o, " RET=%s",
				      m->ret == 1 ? "FULL" : "HDRS");
	if (info->dsn && m->envid && m->envid[0]) {
		char x[400];

		if (smtp_xtext_encode(m->envid, x, sizeof(x)) > 0)
			snprintf(line + o, size - o, " ENVID=%s", x);
	}
}

void
smtpc_proto_format_rcpt(char *line, size_t size, const struct smtpc_msg *m,
			size_t k, const struct smtpc_info *info)
{
	size_t o;

	o = (size_t)snprintf(line, size, "RCPT TO:<%s>", m->rcpts[k]);
	if (info->dsn && m->notify && m->notify[k]) {
		static const struct {
			unsigned bit;
			const char *name;
		} bits[] = { { 2, "SUCCESS" },
			     { 4, "FAILURE" },
			     { 8, "DELAY" } };
		const char *sep = "=";

		o += (size_t)snprintf(line + o, size - o, " NOTIFY");
		if (m->notify[k] & 1) {
			o += (size_t)snprintf(line + o, size - o, "=NEVER");
		} else {
			for (size_t b = 0; b < 3; b++) {
				if (!(m->notify[k] & bits[b].bit))
					continue;
				o += (size_t)snprintf(line + o, size - o,
						      "%s%s", sep,
						      bits[b].name);
				sep = ",";
			}
		}
	}
	if (info->dsn && m->orcpt && m->orcpt[k] && m->orcpt[k][0] &&
	    smtpc_proto_is_safe(m->orcpt[k]) && o < size)
		snprintf(line + o, size - o, " ORCPT=%s", m->orcpt[k]);
}

int
smtpc_proto_check_msg(const struct smtpc_msg *m, const struct smtpc_info *info,
		      const char **enhanced, char *why, size_t size)
{
	/* the length bound keeps MAIL and RCPT within SMTPC_CMD_MAX */
	if (!smtpc_proto_is_safe(m->mail_from[0] ? m->mail_from : "x") ||
	    strlen(m->mail_from) > SMTP_MAILBOX_MAX) {
		*enhanced = "5.1.7";
		snprintf(why, size, "malformed sender address in queue");
		return 553;
	}
	for (size_t k = 0; k < m->n_rcpts; k++)
		if (!smtpc_proto_is_safe(m->rcpts[k]) ||
		    m->rcpts[k][0] == '\0' ||
		    strlen(m->rcpts[k]) > SMTP_MAILBOX_MAX) {
			*enhanced = "5.1.3";
			snprintf(why, size,
				 "malformed recipient address in queue");
			return 553;
		}
	if (m->smtputf8 && !info->smtputf8) {
		*enhanced = "5.6.7";
		snprintf(why, size,
			 "the message needs SMTPUTF8 and %.100s does not "
			 "offer it",
			 info->mx_name[0] ? info->mx_name : info->peer_ip);
		return 554;
	}
	if (info->size && info->max_size > 0 && m->body_len > info->max_size) {
		*enhanced = "5.3.4";
		snprintf(why, size,
			 "message size %zu exceeds the %llu bytes %.60s "
			 "accepts",
			 m->body_len, (unsigned long long)info->max_size,
			 info->mx_name);
		return 552;
	}
	return 0;
}

/* --- the body ----------------------------------------------------------- */

/* Runs of lines are added by reference and a "." is inserted before each
 * line that starts with one. */
void
smtpc_proto_add_body(struct evbuffer *out, const char *body, size_t len)
{
	const char *p = body;
	const char *end = p + len;
	const char *run = p;

	while (p < end) {
		if (*p == '.') {
			evbuffer_add_reference(out, run, (size_t)(p - run),
					       NULL, NULL);
			evbuffer_add(out, ".", 1);
			run = p;
		}
		p = memchr(p, '\n', (size_t)(end - p));
		if (p == NULL)
			break;
		p++;
	}
	evbuffer_add_reference(out, run, (size_t)(end - run), NULL, NULL);
	if (len > 0 && end[-1] != '\n')
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
}
