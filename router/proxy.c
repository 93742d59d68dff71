/* PROXY protocol header parser (HAProxy's proxy-protocol.txt): version 1,
 * one text line "PROXY TCP4|TCP6|UNKNOWN ...\r\n" of at most 107 octets;
 * version 2, a 16-octet binary head (signature, version and command,
 * family and transport, length) and that many octets of addresses and
 * TLVs. TLVs are skipped; the length is capped at PROXY_V2_LEN_MAX.
 *
 * The parser is stateless and looks only at the octets it is given, so a
 * header split across any number of reads parses the same as a whole one,
 * and it never asks for more once PROXY_HDR_MAX octets are there. It is
 * strict where the spec is (single spaces, CRLF, ports without leading
 * zeros, addresses as inet_pton(3) reads them) and falls back to the
 * connection's own peer where the spec says to (LOCAL, UNKNOWN, UNSPEC).
 * Untrusted input. */
#include "router/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "lib/be.h"

#define PROXY_V1_PREFIX "PROXY "
#define PROXY_V1_PREFIX_LEN 6
#define PROXY_V1_ADDR_MAX 45 /* INET6_ADDRSTRLEN - 1 */

#define PROXY_V2_SIG_LEN 12
#define PROXY_V2_CMD_LOCAL 0x0
#define PROXY_V2_CMD_PROXY 0x1
#define PROXY_V2_AF_UNSPEC 0x0
#define PROXY_V2_AF_INET 0x1
#define PROXY_V2_AF_INET6 0x2
#define PROXY_V2_AF_UNIX 0x3
#define PROXY_V2_TP_STREAM 0x1
#define PROXY_V2_TP_MAX 0x2   /* 0 UNSPEC, 1 STREAM, 2 DGRAM */
#define PROXY_V2_INET_LEN 12  /* 2 x 4 address octets, 2 x port */
#define PROXY_V2_INET6_LEN 36 /* 2 x 16, 2 x port */
#define PROXY_V2_UNIX_LEN 216 /* 2 x 108 path octets */

static const uint8_t proxy_v2_sig[PROXY_V2_SIG_LEN] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

const char *
proxy_strerror(int rc)
{
	switch (rc) {
	case PROXY_DONE:
		return "complete header";
	case PROXY_NEED_MORE:
		return "incomplete header";
	case PROXY_E_SIGNATURE:
		return "not a PROXY protocol header";
	case PROXY_E_V1_LONG:
		return "v1 header without CRLF within 107 octets";
	case PROXY_E_V1_SYNTAX:
		return "v1 header syntax";
	case PROXY_E_V1_ADDR:
		return "v1 address or port out of range";
	case PROXY_E_V2_VERSION:
		return "v2 header with a version other than 2";
	case PROXY_E_V2_COMMAND:
		return "v2 header with an unknown command";
	case PROXY_E_V2_FAMILY:
		return "v2 header with an unknown family or transport";
	case PROXY_E_V2_LONG:
		return "v2 header longer than 1024 octets";
	case PROXY_E_V2_SHORT:
		return "v2 header too short for its addresses";
	default:
		return "unknown PROXY error";
	}
}

/* ---- version 1 ------------------------------------------------------ */

/* Cut the next space-separated token of line[*pos..len): returns its
 * length (0 if empty, as with two spaces in a row) and moves *pos past
 * the token and one following space. */
static size_t
proxy_v1_token(const char *line, size_t len, size_t *pos, const char **tok)
{
	size_t start = *pos, end = start;

	while (end < len && line[end] != ' ')
		end++;
	*tok = line + start;
	*pos = end < len ? end + 1 : end;
	return end - start;
}

/* A decimal port 0..65535 without sign or leading zeros. */
static int
proxy_v1_port(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5 || (len > 1 && s[0] == '0'))
		return PROXY_E_V1_SYNTAX;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return PROXY_E_V1_SYNTAX;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return PROXY_E_V1_ADDR;
	*out = (uint16_t)v;
	return 0;
}

/* One address of family af (AF_INET / AF_INET6) and its port into ss. */
static int
proxy_v1_addr(int af, const char *a, size_t alen, const char *p, size_t plen,
	      struct sockaddr_storage *ss)
{
	char text[PROXY_V1_ADDR_MAX + 1];
	uint16_t port;
	int rc;

	if (alen == 0 || alen > PROXY_V1_ADDR_MAX)
		return PROXY_E_V1_ADDR;
	memcpy(text, a, alen);
	text[alen] = '\0';
	rc = proxy_v1_port(p, plen, &port);
	if (rc != 0)
		return rc;
	memset(ss, 0, sizeof(*ss));
	if (af == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, text, &s4->sin_addr) != 1)
			return PROXY_E_V1_ADDR;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
			return PROXY_E_V1_ADDR;
	}
	return 0;
}

/* The line without its CRLF (len octets, no CR or LF inside). */
static int
proxy_v1_line(const char *line, size_t len, struct proxy_hdr *h)
{
	const char *proto, *src, *dst, *sport, *dport;
	size_t pos = PROXY_V1_PREFIX_LEN;
	size_t n_proto, n_src, n_dst, n_sport, n_dport;
	int af, rc;

	n_proto = proxy_v1_token(line, len, &pos, &proto);
	/* 2.1: after UNKNOWN the receiver ignores the rest of the line */
	if (n_proto == 7 && memcmp(proto, "UNKNOWN", 7) == 0) {
		h->has_addr = false;
		return 0;
	}
	if (n_proto == 4 && memcmp(proto, "TCP4", 4) == 0)
		af = AF_INET;
	else if (n_proto == 4 && memcmp(proto, "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return PROXY_E_V1_SYNTAX;
	n_src = proxy_v1_token(line, len, &pos, &src);
	n_dst = proxy_v1_token(line, len, &pos, &dst);
	n_sport = proxy_v1_token(line, len, &pos, &sport);
	n_dport = proxy_v1_token(line, len, &pos, &dport);
	/* exactly four fields, one space apart, nothing after the last */
	if (n_src == 0 || n_dst == 0 || n_sport == 0 || n_dport == 0 ||
	    dport + n_dport != line + len)
		return PROXY_E_V1_SYNTAX;
	rc = proxy_v1_addr(af, src, n_src, sport, n_sport, &h->src);
	if (rc == 0)
		rc = proxy_v1_addr(af, dst, n_dst, dport, n_dport, &h->dst);
	if (rc != 0)
		return rc;
	h->has_addr = true;
	h->addr_len = af == AF_INET ? sizeof(struct sockaddr_in) :
				      sizeof(struct sockaddr_in6);
	return 0;
}

static int
proxy_parse_v1(const uint8_t *buf, size_t n, struct proxy_hdr *out)
{
	size_t prefix = n < PROXY_V1_PREFIX_LEN ? n : PROXY_V1_PREFIX_LEN;
	size_t look = n < PROXY_V1_MAX ? n : PROXY_V1_MAX;
	struct proxy_hdr h;
	int rc;

	if (memcmp(buf, PROXY_V1_PREFIX, prefix) != 0)
		return PROXY_E_SIGNATURE;
	for (size_t i = 0; i < look; i++) {
		/* printable US-ASCII up to the CR: no bare LF, no NUL that
		 * would cut an address short for inet_pton() */
		if (buf[i] != '\r' && (buf[i] < 0x20 || buf[i] > 0x7e))
			return PROXY_E_V1_SYNTAX;
		if (buf[i] != '\r')
			continue;
		if (i + 2 > PROXY_V1_MAX)
			return PROXY_E_V1_LONG; /* no room for the LF */
		if (i + 1 == n)
			return PROXY_NEED_MORE;
		if (buf[i + 1] != '\n' || i < PROXY_V1_PREFIX_LEN)
			return PROXY_E_V1_SYNTAX;
		memset(&h, 0, sizeof(h));
		rc = proxy_v1_line((const char *)buf, i, &h);
		if (rc != 0)
			return rc;
		h.version = 1;
		h.len = i + 2;
		*out = h;
		return PROXY_DONE;
	}
	return n < PROXY_V1_MAX ? PROXY_NEED_MORE : PROXY_E_V1_LONG;
}

/* ---- version 2 ------------------------------------------------------ */

static int
proxy_parse_v2(const uint8_t *buf, size_t n, struct proxy_hdr *out)
{
	size_t sig = n < PROXY_V2_SIG_LEN ? n : PROXY_V2_SIG_LEN;
	unsigned ver, cmd, af = 0, tp = 0;
	size_t len, need = 0;
	struct proxy_hdr h;

	if (memcmp(buf, proxy_v2_sig, sig) != 0)
		return PROXY_E_SIGNATURE;
	/* reject a bad field as soon as its octet is here */
	if (n > 12) {
		ver = buf[12] >> 4;
		cmd = buf[12] & 0x0f;
		if (ver != 2)
			return PROXY_E_V2_VERSION;
		if (cmd != PROXY_V2_CMD_LOCAL && cmd != PROXY_V2_CMD_PROXY)
			return PROXY_E_V2_COMMAND;
	}
	if (n > 13) {
		af = buf[13] >> 4;
		tp = buf[13] & 0x0f;
		if (af > PROXY_V2_AF_UNIX || tp > PROXY_V2_TP_MAX)
			return PROXY_E_V2_FAMILY;
	}
	if (n < PROXY_V2_FIXED)
		return PROXY_NEED_MORE;
	cmd = buf[12] & 0x0f;
	len = be16_get(buf + 14);
	if (len > PROXY_V2_LEN_MAX)
		return PROXY_E_V2_LONG;
	/* 2.2: a LOCAL header's address block, if any, is skipped unread */
	if (cmd == PROXY_V2_CMD_PROXY) {
		if (af == PROXY_V2_AF_INET)
			need = PROXY_V2_INET_LEN;
		else if (af == PROXY_V2_AF_INET6)
			need = PROXY_V2_INET6_LEN;
		else if (af == PROXY_V2_AF_UNIX)
			need = PROXY_V2_UNIX_LEN;
	}
	if (len < need)
		return PROXY_E_V2_SHORT;
	if (n < PROXY_V2_FIXED + len)
		return PROXY_NEED_MORE;

	memset(&h, 0, sizeof(h));
	h.version = 2;
	h.len = PROXY_V2_FIXED + len;
	/* an address we can use: TCP over IPv4 or IPv6. UNSPEC, UNIX and
	 * datagram addresses say nothing about this TCP client: the spec
	 * lets the receiver fall back to the connection's peer */
	if (cmd == PROXY_V2_CMD_PROXY && tp == PROXY_V2_TP_STREAM &&
	    af == PROXY_V2_AF_INET) {
		const uint8_t *a = buf + PROXY_V2_FIXED;
		struct sockaddr_in *s = (struct sockaddr_in *)&h.src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h.dst;

		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2); /* both in network order */
		memcpy(&d->sin_port, a + 10, 2);
		h.addr_len = sizeof(struct sockaddr_in);
		h.has_addr = true;
	} else if (cmd == PROXY_V2_CMD_PROXY && tp == PROXY_V2_TP_STREAM &&
		   af == PROXY_V2_AF_INET6) {
		const uint8_t *a = buf + PROXY_V2_FIXED;
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h.src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h.dst;

		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		h.addr_len = sizeof(struct sockaddr_in6);
		h.has_addr = true;
	}
	*out = h;
	return PROXY_DONE;
}

int
proxy_parse(const uint8_t *buf, size_t n, struct proxy_hdr *out)
{
	if (n == 0)
		return PROXY_NEED_MORE;
	/* the first octet tells the versions apart: 'P' or CR */
	if (buf[0] == proxy_v2_sig[0])
		return proxy_parse_v2(buf, n, out);
	return proxy_parse_v1(buf, n, out);
}
