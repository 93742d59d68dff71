/* Check suite for router/proxy.c, the PROXY protocol header parser (v1
 * text, v2 binary). Every good header is also fed one octet at a time: each
 * proper prefix must ask for more, the whole must parse with the right
 * length, and octets after it (pipelined SMTP) must be left alone. Every
 * malformed header must fail with its own error, never ask for more past
 * the bound, and leave the output untouched. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "router/proxy.h"
#include "tests/unit/check_helpers.h"

/* ---- helpers ------------------------------------------------------- */

#define V2_SIG "\r\n\r\n\0\r\nQUIT\n"

/* A v2 header: signature, ver_cmd, fam, then len octets of body (the
 * first n_body taken from body, the rest zero) into out. Returns its
 * length. */
static size_t
v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, size_t len,
   const uint8_t *body, size_t n_body)
{
	memcpy(out, V2_SIG, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(len >> 8);
	out[15] = (uint8_t)len;
	memset(out + 16, 0, len);
	if (n_body)
		memcpy(out + 16, body, n_body);
	return 16 + len;
}

static const char *
addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET)
		return inet_ntop(AF_INET,
				 &((const struct sockaddr_in *)ss)->sin_addr,
				 buf, (socklen_t)len);
	if (ss->ss_family == AF_INET6)
		return inet_ntop(AF_INET6,
				 &((const struct sockaddr_in6 *)ss)->sin6_addr,
				 buf, (socklen_t)len);
	return "?";
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* h names src:sport -> dst:dport of family. */
static void
assert_addrs(const struct proxy_hdr *h, int family, const char *src,
	     const char *dst, unsigned sport, unsigned dport)
{
	char a[64];

	ck_assert(h->has_addr);
	ck_assert_int_eq(h->src.ss_family, family);
	ck_assert_int_eq(h->dst.ss_family, family);
	ck_assert_uint_eq(h->addr_len, family == AF_INET ?
					       sizeof(struct sockaddr_in) :
					       sizeof(struct sockaddr_in6));
	ck_assert_str_eq(addr_str(&h->src, a, sizeof(a)), src);
	ck_assert_str_eq(addr_str(&h->dst, a, sizeof(a)), dst);
	ck_assert_uint_eq(port_of(&h->src), sport);
	ck_assert_uint_eq(port_of(&h->dst), dport);
}

/* Feed buf one octet at a time, then whole, then with SMTP after it.
 * Every proper prefix must be NEED_MORE; returns the whole header. */
static struct proxy_hdr
parse_split(const uint8_t *buf, size_t len)
{
	uint8_t more[PROXY_HDR_MAX + 64];
	struct proxy_hdr h, h2;

	for (size_t k = 0; k < len; k++)
		ck_assert_msg(proxy_parse(buf, k, &h) == PROXY_NEED_MORE,
			      "prefix of %zu/%zu octets: not NEED_MORE", k,
			      len);
	ck_assert_int_eq(proxy_parse(buf, len, &h), PROXY_DONE);
	ck_assert_uint_eq(h.len, len);
	memcpy(more, buf, len);
	memcpy(more + len, "EHLO client.example\r\n", 21);
	ck_assert_int_eq(proxy_parse(more, len + 21, &h2), PROXY_DONE);
	ck_assert_uint_eq(h2.len, len);
	return h;
}

/* The error of buf, checking that no prefix gave another error and that
 * *out was not written. */
static int
parse_bad(const uint8_t *buf, size_t len)
{
	struct proxy_hdr h, poison;
	int rc = 0;

	memset(&poison, 0xa5, sizeof(poison));
	for (size_t k = 0; k <= len; k++) {
		int r;

		h = poison;
		r = proxy_parse(buf, k, &h);
		ck_assert_msg(r != PROXY_DONE, "prefix of %zu octets parsed",
			      k);
		ck_assert(memcmp(&h, &poison, sizeof(h)) == 0);
		if (rc < 0)
			ck_assert_msg(r == rc, "error %d became %d at %zu",
				      rc, r, k);
		rc = r;
	}
	ck_assert_msg(rc < 0, "whole header: %d, not an error", rc);
	ck_assert_str_ne(proxy_strerror(rc), "unknown PROXY error");
	return rc;
}

/* ---- version 1 ----------------------------------------------------- */

struct v1_ok_case {
	const char *in;
	bool has_addr;
	int family;
	const char *src, *dst;
	unsigned sport, dport;
};

static const struct v1_ok_case v1_ok[] = {
	{ "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", true, AF_INET,
	  "192.0.2.1", "198.51.100.2", 56324, 25 },
	{ "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", true, AF_INET,
	  "0.0.0.0", "255.255.255.255", 0, 65535 },
	{ "PROXY TCP6 2001:db8::1 2001:db8::2 4000 587\r\n", true, AF_INET6,
	  "2001:db8::1", "2001:db8::2", 4000, 587 },
	{ "PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n", true, AF_INET6,
	  "::ffff:192.0.2.7", "::1", 1, 2 },
	{ "PROXY UNKNOWN\r\n", false, 0, NULL, NULL, 0, 0 },
	/* 2.1: the longest v1 line there is, 107 octets with CRLF */
	{ "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
	  false, 0, NULL, NULL, 0, 0 },
	{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  false, 0, NULL, NULL, 0, 0 },
};

START_TEST(test_v1_parses_and_splits)
{
	const struct v1_ok_case *c = &v1_ok[_i];
	struct proxy_hdr h;

	h = parse_split((const uint8_t *)c->in, strlen(c->in));
	ck_assert_int_eq(h.version, 1);
	ck_assert_int_eq(h.has_addr, c->has_addr);
	if (c->has_addr)
		assert_addrs(&h, c->family, c->src, c->dst, c->sport,
			     c->dport);
}
END_TEST

START_TEST(test_v1_longest_line_is_107)
{
	char line[PROXY_V1_MAX + 8];
	struct proxy_hdr h;

	/* "PROXY UNKNOWN " + padding + CRLF = exactly 107 */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PROXY_V1_MAX - 2, "\r\n", 2);
	h = parse_split((const uint8_t *)line, PROXY_V1_MAX);
	ck_assert_uint_eq(h.len, PROXY_V1_MAX);
	/* one more octet before the CRLF is over the bound */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PROXY_V1_MAX - 1, "\r\n", 2);
	ck_assert_int_eq(parse_bad((const uint8_t *)line, PROXY_V1_MAX + 1),
			 PROXY_E_V1_LONG);
}
END_TEST

struct v1_bad_case {
	const char *in;
	int err;
};

static const struct v1_bad_case v1_bad[] = {
	/* not a PROXY header at all */
	{ "EHLO client.example\r\n", PROXY_E_SIGNATURE },
	{ "GET / HTTP/1.0\r\n", PROXY_E_SIGNATURE },
	{ "\x16\x03\x01\x02\x00", PROXY_E_SIGNATURE },	/* TLS hello */
	{ "PROXZ TCP4\r\n", PROXY_E_SIGNATURE },
	{ "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_SIGNATURE },
	{ "PROXY\r\n", PROXY_E_SIGNATURE },
	{ "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_SIGNATURE },
	/* syntax */
	{ "PROXY \r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY UNKNOWNX\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY UNKNOWN\n", PROXY_E_V1_SYNTAX },		/* bare LF */
	{ "PROXY UNKNOWN\rX\r\n", PROXY_E_V1_SYNTAX },	/* bare CR */
	{ "PROXY UNKNOWN \x01\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x7f\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY UNKNOWN \xc3\xa9\r\n", PROXY_E_V1_SYNTAX },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_E_V1_SYNTAX },
	/* addresses and ports */
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8.9 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP6 2001:db8:::1 ::1 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP6 ::1%eth0 ::1 1 2\r\n", PROXY_E_V1_ADDR },
	{ "PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n",
	  PROXY_E_V1_ADDR },
	{ "PROXY TCP4 host.example 5.6.7.8 1 2\r\n", PROXY_E_V1_ADDR },
};

START_TEST(test_v1_rejects)
{
	const struct v1_bad_case *c = &v1_bad[_i];

	ck_assert_msg(parse_bad((const uint8_t *)c->in, strlen(c->in)) ==
			      c->err,
		      "%s: wrong error", c->in);
}
END_TEST

START_TEST(test_v1_rejects_nul_in_line)
{
	static const char in[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";

	ck_assert_int_eq(parse_bad((const uint8_t *)in, sizeof(in) - 1),
			 PROXY_E_V1_SYNTAX);
}
END_TEST

START_TEST(test_v1_without_crlf_stops_at_107)
{
	uint8_t in[PROXY_HDR_MAX];
	struct proxy_hdr h;

	memset(in, '1', sizeof(in));
	memcpy(in, "PROXY TCP4 ", 11);
	ck_assert_int_eq(proxy_parse(in, PROXY_V1_MAX - 1, &h),
			 PROXY_NEED_MORE);
	ck_assert_int_eq(proxy_parse(in, PROXY_V1_MAX, &h), PROXY_E_V1_LONG);
	ck_assert_int_eq(proxy_parse(in, sizeof(in), &h), PROXY_E_V1_LONG);
}
END_TEST

/* ---- version 2 ----------------------------------------------------- */

static const uint8_t v2_tcp4[12] = {
	192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x00, 0x19,
};

START_TEST(test_v2_tcp4)
{
	uint8_t in[PROXY_HDR_MAX];
	size_t len = v2(in, 0x21, 0x11, 12, v2_tcp4, 12);
	struct proxy_hdr h = parse_split(in, len);

	ck_assert_int_eq(h.version, 2);
	assert_addrs(&h, AF_INET, "192.0.2.1", "198.51.100.2", 56324, 25);
}
END_TEST

START_TEST(test_v2_tcp6)
{
	uint8_t body[36], in[PROXY_HDR_MAX];
	struct proxy_hdr h;
	size_t len;

	inet_pton(AF_INET6, "2001:db8::77", body);
	inet_pton(AF_INET6, "2001:db8::1", body + 16);
	memcpy(body + 32, "\x01\x02\x02\x4b", 4);	/* 258, 587 */
	len = v2(in, 0x21, 0x21, 36, body, 36);
	h = parse_split(in, len);
	ck_assert_int_eq(h.version, 2);
	assert_addrs(&h, AF_INET6, "2001:db8::77", "2001:db8::1", 258, 587);
}
END_TEST

/* TLVs after the addresses are skipped, up to the cap exactly. */
START_TEST(test_v2_skips_tlvs_up_to_cap)
{
	uint8_t in[PROXY_HDR_MAX];
	size_t sizes[] = { 12 + 3, 12 + 100, PROXY_V2_LEN_MAX };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		size_t len = v2(in, 0x21, 0x11, sizes[i], v2_tcp4, 12);
		struct proxy_hdr h = parse_split(in, len);

		assert_addrs(&h, AF_INET, "192.0.2.1", "198.51.100.2", 56324,
			     25);
	}
}
END_TEST

/* LOCAL (a balancer's own health check), UNSPEC, UNIX and datagram
 * headers parse but name no address: the socket's peer is used. */
struct v2_noaddr_case {
	uint8_t ver_cmd, fam;
	size_t len;
};

static const struct v2_noaddr_case v2_noaddr[] = {
	{ 0x20, 0x00, 0 },   /* LOCAL, UNSPEC: what haproxy's checks send */
	{ 0x20, 0x11, 12 },  /* LOCAL with an address block: ignored */
	{ 0x20, 0x11, 0 },   /* LOCAL needs no address block */
	{ 0x20, 0x21, 7 },   /* LOCAL: any length of block is skipped */
	{ 0x21, 0x00, 0 },   /* PROXY, UNSPEC */
	{ 0x21, 0x00, 20 },  /* PROXY, UNSPEC with TLVs */
	{ 0x21, 0x31, 216 }, /* PROXY, UNIX stream */
	{ 0x21, 0x32, 216 }, /* PROXY, UNIX datagram */
	{ 0x21, 0x12, 12 },  /* PROXY, UDP over IPv4 */
	{ 0x21, 0x22, 36 },  /* PROXY, UDP over IPv6 */
	{ 0x21, 0x10, 12 },  /* PROXY, IPv4 with unspecified transport */
};

START_TEST(test_v2_without_address)
{
	const struct v2_noaddr_case *c = &v2_noaddr[_i];
	uint8_t in[PROXY_HDR_MAX];
	size_t len = v2(in, c->ver_cmd, c->fam, c->len, v2_tcp4,
			c->len < 12 ? c->len : 12);
	struct proxy_hdr h = parse_split(in, len);

	ck_assert_int_eq(h.version, 2);
	ck_assert(!h.has_addr);
}
END_TEST

struct v2_bad_case {
	uint8_t ver_cmd, fam;
	size_t len;        /* what the length field says */
	size_t n_body;     /* octets of body actually given */
	int err;
};

static const struct v2_bad_case v2_bad[] = {
	{ 0x11, 0x11, 12, 12, PROXY_E_V2_VERSION },
	{ 0x31, 0x11, 12, 12, PROXY_E_V2_VERSION },
	{ 0x01, 0x11, 12, 12, PROXY_E_V2_VERSION },
	{ 0xf1, 0x11, 12, 12, PROXY_E_V2_VERSION },
	{ 0x22, 0x11, 12, 12, PROXY_E_V2_COMMAND },
	{ 0x2f, 0x11, 12, 12, PROXY_E_V2_COMMAND },
	{ 0x21, 0x41, 12, 12, PROXY_E_V2_FAMILY },
	{ 0x21, 0xf1, 12, 12, PROXY_E_V2_FAMILY },
	{ 0x21, 0x13, 12, 12, PROXY_E_V2_FAMILY },
	{ 0x20, 0x0f, 0, 0, PROXY_E_V2_FAMILY },
	{ 0x21, 0x11, PROXY_V2_LEN_MAX + 1, 0, PROXY_E_V2_LONG },
	{ 0x21, 0x11, 0xffff, 0, PROXY_E_V2_LONG },
	{ 0x20, 0x00, 0xffff, 0, PROXY_E_V2_LONG },
	{ 0x21, 0x11, 11, 11, PROXY_E_V2_SHORT },
	{ 0x21, 0x11, 0, 0, PROXY_E_V2_SHORT },
	{ 0x21, 0x21, 35, 35, PROXY_E_V2_SHORT },
	{ 0x21, 0x21, 12, 12, PROXY_E_V2_SHORT },
	{ 0x21, 0x31, 215, 215, PROXY_E_V2_SHORT },
};

START_TEST(test_v2_rejects)
{
	const struct v2_bad_case *c = &v2_bad[_i];
	uint8_t in[PROXY_HDR_MAX + 16];
	size_t len;

	memcpy(in, V2_SIG, 12);
	in[12] = c->ver_cmd;
	in[13] = c->fam;
	in[14] = (uint8_t)(c->len >> 8);
	in[15] = (uint8_t)c->len;
	memset(in + 16, 0, c->n_body);
	len = 16 + c->n_body;
	ck_assert_int_eq(parse_bad(in, len), c->err);
}
END_TEST

/* A wrong octet anywhere in the signature is refused as soon as it is
 * seen, without waiting for the rest. */
START_TEST(test_v2_bad_signature_octet)
{
	uint8_t in[PROXY_HDR_MAX];
	struct proxy_hdr h;
	size_t len = v2(in, 0x21, 0x11, 12, v2_tcp4, 12);

	in[_i] ^= 0x40;
	ck_assert_int_eq(proxy_parse(in, (size_t)_i + 1, &h),
			 PROXY_E_SIGNATURE);
	ck_assert_int_eq(parse_bad(in, len), PROXY_E_SIGNATURE);
}
END_TEST

/* The version/command and family octets are judged on arrival. */
START_TEST(test_v2_bad_fields_refused_early)
{
	uint8_t in[PROXY_HDR_MAX];
	struct proxy_hdr h;

	v2(in, 0x21, 0x11, 12, v2_tcp4, 12);
	in[12] = 0x11;
	ck_assert_int_eq(proxy_parse(in, 13, &h), PROXY_E_V2_VERSION);
	in[12] = 0x21;
	in[13] = 0x51;
	ck_assert_int_eq(proxy_parse(in, 14, &h), PROXY_E_V2_FAMILY);
	in[13] = 0x11;
	in[14] = 0x10;	/* 4096 + 12 */
	ck_assert_int_eq(proxy_parse(in, 16, &h), PROXY_E_V2_LONG);
}
END_TEST

/* A truncated header (the peer stops) is only ever "need more": the
 * caller's deadline ends it. */
START_TEST(test_v2_truncated_needs_more)
{
	uint8_t in[PROXY_HDR_MAX];
	struct proxy_hdr h;
	size_t len = v2(in, 0x21, 0x21, 36 + 40, NULL, 0);

	for (size_t k = 0; k < len; k++)
		ck_assert_int_eq(proxy_parse(in, k, &h), PROXY_NEED_MORE);
	ck_assert_int_eq(proxy_parse(in, len, &h), PROXY_DONE);
}
END_TEST

/* Whatever the octets, with PROXY_HDR_MAX of them the verdict is final. */
START_TEST(test_never_needs_more_at_max)
{
	uint8_t in[PROXY_HDR_MAX];
	struct proxy_hdr h;
	uint32_t x = 2463534242u;

	for (int round = 0; round < 2000; round++) {
		for (size_t i = 0; i < sizeof(in); i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			in[i] = (uint8_t)x;
		}
		/* half the rounds start like a header */
		if (round % 4 == 1)
			memcpy(in, "PROXY ", 6);
		else if (round % 4 == 2)
			memcpy(in, V2_SIG "\x21\x11", 14);
		else if (round % 4 == 3)
			memcpy(in, V2_SIG "\x20\x00\x04", 15);
		ck_assert_int_ne(proxy_parse(in, sizeof(in), &h),
				 PROXY_NEED_MORE);
	}
}
END_TEST

static Suite *
proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("v1");

	tcase_add_loop_test(tc, test_v1_parses_and_splits, 0,
			    sizeof(v1_ok) / sizeof(*v1_ok));
	tcase_add_test(tc, test_v1_longest_line_is_107);
	tcase_add_loop_test(tc, test_v1_rejects, 0,
			    sizeof(v1_bad) / sizeof(*v1_bad));
	tcase_add_test(tc, test_v1_rejects_nul_in_line);
	tcase_add_test(tc, test_v1_without_crlf_stops_at_107);
	suite_add_tcase(s, tc);

	tc = tcase_create("v2");
	tcase_add_test(tc, test_v2_tcp4);
	tcase_add_test(tc, test_v2_tcp6);
	tcase_add_test(tc, test_v2_skips_tlvs_up_to_cap);
	tcase_add_loop_test(tc, test_v2_without_address, 0,
			    sizeof(v2_noaddr) / sizeof(*v2_noaddr));
	tcase_add_loop_test(tc, test_v2_rejects, 0,
			    sizeof(v2_bad) / sizeof(*v2_bad));
	tcase_add_loop_test(tc, test_v2_bad_signature_octet, 0, 12);
	tcase_add_test(tc, test_v2_bad_fields_refused_early);
	tcase_add_test(tc, test_v2_truncated_needs_more);
	tcase_add_test(tc, test_never_needs_more_at_max);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(proxy_suite)
