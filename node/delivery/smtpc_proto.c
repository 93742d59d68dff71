/* The SMTP client's wire format (see smtpc_proto.h): what the SMTP client
 * reads from and writes to the server, with no connection state. Reply
 * lines are untrusted: bounded by the caller's line limit and
 * SMTPC_REPLY_LINES_MAX here, parsed strictly, and kept as printable ASCII
 * so they can be logged and put in DSNs. */
#include "node/delivery/smtpc_proto.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/smtp_cmd.h"

#define SMTPC_REF_MIN 512 /* shorter runs of the body are copied */

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

/* Add [from, to) of the body: by reference when long, else copied, so
 * a hostile body of short pieces ("a\ra\r...", ".\r\n.\r\n...") costs at
 * most one buffer chain per SMTPC_REF_MIN octets, not one per line. */
static void
smtpc_proto_ref(struct evbuffer *out, const char *from, const char *to)
{
	size_t n = to > from ? (size_t)(to - from) : 0;

	if (n >= SMTPC_REF_MIN)
		evbuffer_add_reference(out, from, n, NULL, NULL);
	else if (n > 0)
		evbuffer_add(out, from, n);
}

void
smtpc_proto_body_init(struct smtpc_body_enc *e)
{
	memset(e, 0, sizeof(*e));
}

/* n octets of line text at p (no CR, no LF) join the run that starts at
 * *run; past SMTPC_LINE_OCTETS the line is folded with CRLF SP. */
static void
smtpc_proto_body_text(struct smtpc_body_enc *e, struct evbuffer *out,
		      const char **run, const char *p, size_t n)
{
	while (n > 0) {
		size_t room;

		if (e->col >= SMTPC_LINE_OCTETS) {
			smtpc_proto_ref(out, *run, p);
			evbuffer_add(out, "\r\n ", 3);
			*run = p;
			e->col = 1;
			e->folded++;
		}
		room = SMTPC_LINE_OCTETS - e->col;
		if (room > n)
			room = n;
		e->col += room;
		p += room;
		n -= room;
	}
	e->mid_line = true;
}

/* A bare CR or LF at p: the run ends before it and CRLF goes instead. */
static const char *
smtpc_proto_body_repair(struct smtpc_body_enc *e, struct evbuffer *out,
			const char *run, const char *p)
{
	smtpc_proto_ref(out, run, p);
	evbuffer_add(out, "\r\n", 2);
	e->mid_line = false;
	e->col = 0;
	return p + 1;
}

/* Well-formed lines stay in one run added by reference; only a stuffing
 * dot, a repair or a fold cuts it. Each octet is looked at a bounded
 * number of times (the next LF is searched once per LF), so a body of
 * nothing but bare CRs costs no more than any other. */
void
smtpc_proto_body_feed(struct smtpc_body_enc *e, struct evbuffer *out,
		      const char *p, size_t len)
{
	const char *end = p + len;
	const char *run, *nl = NULL;
	bool have_nl = false;

	if (len == 0)
		return;
	if (e->pending_cr) {
		/* the CR that ended the last piece: CRLF, or a bare CR */
		e->pending_cr = false;
		if (*p == '\n') {
			evbuffer_add(out, "\r\n", 2);
			e->mid_line = false;
			e->col = 0;
			p++;
		} else {
			e->bare_cr++;
			(void)smtpc_proto_body_repair(e, out, p, p);
		}
	}
	run = p;
	while (p < end) {
		const char *cr, *text_end;

		if (!e->mid_line && *p == '.') {
			/* RFC 5321 4.5.2: double a leading dot */
			smtpc_proto_ref(out, run, p);
			evbuffer_add(out, ".", 1);
			run = p;
		}
		if (!have_nl || (nl != NULL && nl < p)) {
			nl = memchr(p, '\n', (size_t)(end - p));
			have_nl = true;
		}
		cr = memchr(p, '\r', (size_t)((nl ? nl : end) - p));
		text_end = cr ? cr : nl ? nl : end;
		if (text_end > p)
			smtpc_proto_body_text(e, out, &run, p,
					      (size_t)(text_end - p));
		if (cr != NULL && cr + 1 == nl) {
			/* CRLF: stays in the run */
			e->mid_line = false;
			e->col = 0;
			p = nl + 1;
		} else if (cr != NULL && cr + 1 == end) {
			/* is an LF next? the next piece will tell */
			smtpc_proto_ref(out, run, cr);
			e->pending_cr = true;
			run = p = end;
		} else if (cr != NULL) {
			e->bare_cr++;
			run = p = smtpc_proto_body_repair(e, out, run, cr);
		} else if (nl != NULL) {
			e->bare_lf++;
			run = p = smtpc_proto_body_repair(e, out, run, nl);
		} else {
			p = end;
		}
	}
	smtpc_proto_ref(out, run, end);
}

void
smtpc_proto_body_end(struct smtpc_body_enc *e, struct evbuffer *out)
{
	if (e->pending_cr) {
		e->pending_cr = false;
		e->bare_cr++;
		e->mid_line = true;
	}
	if (e->mid_line)
		evbuffer_add(out, "\r\n", 2);
	e->mid_line = false;
	e->col = 0;
	evbuffer_add(out, ".\r\n", 3);
}

bool
smtpc_proto_body_repaired(const struct smtpc_body_enc *e)
{
	return e->bare_cr > 0 || e->bare_lf > 0 || e->folded > 0;
}
