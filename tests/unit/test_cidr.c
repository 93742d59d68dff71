/* Check suite for lib/cidr.c: parsing IPv4 and IPv6 networks (a bare
 * address is a /32 or /128), matching socket addresses against a list of
 * them (IPv4-mapped IPv6 peers match IPv4 networks) and printing a peer's
 * address. The parser sees config text, so bad input must give -EINVAL and
 * leave the output alone. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lib/cidr.h"
#include "tests/unit/check_helpers.h"

/* ---- helpers ------------------------------------------------------- */

static struct sockaddr_storage
sa_of(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

/* Whether ip falls in the one network net (which must parse). */
static bool
in_net(const char *net, const char *ip)
{
	struct cidr c;
	struct sockaddr_storage ss = sa_of(ip, 25);

	ck_assert_msg(cidr_parse(net, &c) == 0, "cannot parse %s", net);
	return cidr_match(&c, 1, (const struct sockaddr *)&ss);
}

/* ---- parsing ------------------------------------------------------- */

struct parse_ok_case {
	const char *in;
	int family;
	const char *addr; /* as inet_pton reads it */
	unsigned prefix;
};

static const struct parse_ok_case parse_ok_cases[] = {
	{ "192.0.2.0/24", AF_INET, "192.0.2.0", 24 },
	{ "192.0.2.1", AF_INET, "192.0.2.1", 32 },      /* bare: host */
	{ "192.0.2.1/32", AF_INET, "192.0.2.1", 32 },
	{ "0.0.0.0/0", AF_INET, "0.0.0.0", 0 },
	{ "10.0.0.0/8", AF_INET, "10.0.0.0", 8 },
	{ "172.16.0.0/12", AF_INET, "172.16.0.0", 12 },
	{ "127.0.0.0/8", AF_INET, "127.0.0.0", 8 },
	{ "255.255.255.255/32", AF_INET, "255.255.255.255", 32 },
	{ "192.0.2.77/24", AF_INET, "192.0.2.77", 24 }, /* host bits kept */
	{ "192.0.2.0/024", AF_INET, "192.0.2.0", 24 },  /* leading zero */
	{ "::1/128", AF_INET6, "::1", 128 },
	{ "::1", AF_INET6, "::1", 128 },                /* bare: host */
	{ "::/0", AF_INET6, "::", 0 },
	{ "2001:db8::/32", AF_INET6, "2001:db8::", 32 },
	{ "2001:db8::/33", AF_INET6, "2001:db8::", 33 },
	{ "fe80::/10", AF_INET6, "fe80::", 10 },
	{ "2001:DB8:0:0:0:0:0:1/64", AF_INET6, "2001:db8::1", 64 },
	/* IPv4-mapped networks are the IPv4 networks they name */
	{ "::ffff:192.0.2.1", AF_INET, "192.0.2.1", 32 },
	{ "::ffff:192.0.2.0/120", AF_INET, "192.0.2.0", 24 },
	{ "::FFFF:c000:0200/120", AF_INET, "192.0.2.0", 24 },
	{ "::ffff:10.0.0.0/104", AF_INET, "10.0.0.0", 8 },
	{ "::ffff:0:0/96", AF_INET, "0.0.0.0", 0 },
	/* shorter than /96 it is wider than the mapped range: stays IPv6 */
	{ "::ffff:0:0/95", AF_INET6, "::ffff:0.0.0.0", 95 },
	/* not mapped: the compatible form and NAT64 stay IPv6 */
	{ "::192.0.2.0/120", AF_INET6, "::192.0.2.0", 120 },
	{ "64:ff9b::192.0.2.0/120", AF_INET6, "64:ff9b::192.0.2.0", 120 },
};

START_TEST(test_cidr_parse_accepts)
{
	const struct parse_ok_case *pc = &parse_ok_cases[_i];
	uint8_t want[16] = { 0 };
	struct cidr c;

	memset(&c, 0xa5, sizeof(c));
	ck_assert_msg(cidr_parse(pc->in, &c) == 0, "%s rejected", pc->in);
	ck_assert_int_eq(c.family, pc->family);
	ck_assert_uint_eq(c.prefix, pc->prefix);
	ck_assert_int_eq(inet_pton(pc->family, pc->addr, want), 1);
	ck_assert_mem_eq(c.addr, want, pc->family == AF_INET ? 4 : 16);
	if (pc->family == AF_INET) { /* the rest of addr is zeroed */
		static const uint8_t zero[12];

		ck_assert_mem_eq(c.addr + 4, zero, 12);
	}
}
END_TEST

static const char *const parse_bad_cases[] = {
	"",
	"abc",
	"1.2.3.4/33",
	"1.2.3.4/64",
	"::1/129",
	"2001:db8::/200",
	"/24",
	"/",
	"1.2.3.4/",
	"1.2.3.4/-1",
	"1.2.3.4/+8",
	"1.2.3.4/ 8",
	"1.2.3.4/8 ",
	"1.2.3.4/8x",
	"1.2.3.4/8/8",
	"1.2.3.4/0x10",
	"1.2.3.4/99999999999999999999999999",
	"1.2.3.4 ",
	" 1.2.3.4",
	"1.2.3",
	"1.2.3.4.5",
	"256.1.1.1",
	"1.2.3.-4",
	"::1/12a",
	":::1",
	"2001:db8::g",
	"fe80::1%eth0",
	"[::1]",
	"[::1]/128",
	"localhost",
	"192.0.2.0/24,10.0.0.0/8",
	/* a host part longer than any address (64 octets and more) */
	"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:00001",
};

START_TEST(test_cidr_parse_rejects)
{
	const char *in = parse_bad_cases[_i];
	struct cidr c, before;

	memset(&c, 0x5a, sizeof(c));
	before = c;
	ck_assert_msg(cidr_parse(in, &c) == -EINVAL, "\"%s\" accepted", in);
	/* out-parameters are written only on success */
	ck_assert_mem_eq(&c, &before, sizeof(c));
}
END_TEST

/* ---- matching ------------------------------------------------------ */

START_TEST(test_cidr_match_ipv4_slash24)
{
	ck_assert(in_net("192.0.2.0/24", "192.0.2.0"));
	ck_assert(in_net("192.0.2.0/24", "192.0.2.1"));
	ck_assert(in_net("192.0.2.0/24", "192.0.2.255"));
	ck_assert(!in_net("192.0.2.0/24", "192.0.3.0"));
	ck_assert(!in_net("192.0.2.0/24", "192.0.1.255"));
	ck_assert(!in_net("192.0.2.0/24", "193.0.2.1"));
}
END_TEST

START_TEST(test_cidr_match_ipv4_unaligned_prefixes)
{
	ck_assert(in_net("172.16.0.0/12", "172.16.0.0"));
	ck_assert(in_net("172.16.0.0/12", "172.31.255.255"));
	ck_assert(!in_net("172.16.0.0/12", "172.32.0.0"));
	ck_assert(!in_net("172.16.0.0/12", "172.15.255.255"));

	ck_assert(in_net("128.0.0.0/1", "200.1.2.3"));
	ck_assert(!in_net("128.0.0.0/1", "127.255.255.255"));

	ck_assert(in_net("192.0.2.6/31", "192.0.2.6"));
	ck_assert(in_net("192.0.2.6/31", "192.0.2.7"));
	ck_assert(!in_net("192.0.2.6/31", "192.0.2.5"));
	ck_assert(!in_net("192.0.2.6/31", "192.0.2.8"));

	ck_assert(in_net("10.0.0.0/9", "10.127.0.1"));
	ck_assert(!in_net("10.0.0.0/9", "10.128.0.1"));
}
END_TEST

START_TEST(test_cidr_match_ipv4_slash32_is_one_host)
{
	ck_assert(in_net("192.0.2.1/32", "192.0.2.1"));
	ck_assert(!in_net("192.0.2.1/32", "192.0.2.0"));
	ck_assert(!in_net("192.0.2.1/32", "192.0.2.2"));
	ck_assert(!in_net("192.0.2.1/32", "192.0.2.129"));
	ck_assert(!in_net("192.0.2.1/32", "64.0.2.1"));
	/* a bare address is the same /32 */
	ck_assert(in_net("192.0.2.1", "192.0.2.1"));
	ck_assert(!in_net("192.0.2.1", "192.0.2.3"));
}
END_TEST

START_TEST(test_cidr_match_ipv4_slash0_is_every_ipv4)
{
	ck_assert(in_net("0.0.0.0/0", "0.0.0.0"));
	ck_assert(in_net("0.0.0.0/0", "192.0.2.1"));
	ck_assert(in_net("0.0.0.0/0", "255.255.255.255"));
	ck_assert(in_net("0.0.0.0/0", "::ffff:198.51.100.7"));
	/* host bits of a /0 are ignored too */
	ck_assert(in_net("10.1.2.3/0", "203.0.113.9"));
	/* but an IPv6 peer is not an IPv4 address */
	ck_assert(!in_net("0.0.0.0/0", "2001:db8::1"));
	ck_assert(!in_net("0.0.0.0/0", "::1"));
}
END_TEST

/* The header: host bits beyond the prefix are allowed and ignored. */
START_TEST(test_cidr_match_ignores_host_bits_of_network)
{
	ck_assert(in_net("192.0.2.77/24", "192.0.2.1"));
	ck_assert(in_net("192.0.2.77/24", "192.0.2.200"));
	ck_assert(!in_net("192.0.2.77/24", "192.0.3.77"));
	ck_assert(in_net("2001:db8::dead:beef/64", "2001:db8::1"));
	ck_assert(!in_net("2001:db8::dead:beef/64", "2001:db8:0:1::1"));
}
END_TEST

START_TEST(test_cidr_match_ipv6)
{
	ck_assert(in_net("::1/128", "::1"));
	ck_assert(!in_net("::1/128", "::2"));
	ck_assert(!in_net("::1/128", "::"));
	ck_assert(in_net("::1", "::1"));

	ck_assert(in_net("2001:db8::/32", "2001:db8::1"));
	ck_assert(in_net("2001:db8::/32",
			 "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	ck_assert(!in_net("2001:db8::/32", "2001:db9::1"));
	ck_assert(!in_net("2001:db8::/32", "2001:db7:ffff::1"));

	ck_assert(in_net("2001:db8:1:2::/64",
			 "2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
	ck_assert(!in_net("2001:db8:1:2::/64", "2001:db8:1:3::"));

	ck_assert(in_net("fe80::/10", "fe80::1"));
	ck_assert(in_net("fe80::/10", "febf::1"));
	ck_assert(!in_net("fe80::/10", "fec0::1"));

	/* /127: the last bit only is free */
	ck_assert(in_net("2001:db8::a/127", "2001:db8::b"));
	ck_assert(!in_net("2001:db8::a/127", "2001:db8::c"));
}
END_TEST

START_TEST(test_cidr_match_ipv6_slash0_is_every_ipv6)
{
	ck_assert(in_net("::/0", "::"));
	ck_assert(in_net("::/0", "::1"));
	ck_assert(in_net("::/0", "2001:db8::1"));
	ck_assert(in_net("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	/* an IPv4 peer, plain or mapped, is not in an IPv6 network */
	ck_assert(!in_net("::/0", "192.0.2.1"));
	ck_assert(!in_net("::/0", "::ffff:192.0.2.1"));
}
END_TEST

/* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; they must
 * match the IPv4 networks a config names (relay_networks 127.0.0.0/8). */
START_TEST(test_cidr_match_mapped_ipv4_matches_ipv4_networks)
{
	ck_assert(in_net("127.0.0.0/8", "::ffff:127.0.0.1"));
	ck_assert(in_net("192.0.2.0/24", "::ffff:192.0.2.200"));
	ck_assert(!in_net("192.0.2.0/24", "::ffff:192.0.3.1"));
	ck_assert(in_net("192.0.2.1/32", "::ffff:192.0.2.1"));
	ck_assert(!in_net("192.0.2.1/32", "::ffff:192.0.2.2"));
	/* only ::ffff:0:0/96 is mapped: the deprecated compatible form
	 * ::a.b.c.d and NAT64 64:ff9b::/96 stay IPv6 */
	ck_assert(!in_net("192.0.2.0/24", "::192.0.2.1"));
	ck_assert(!in_net("192.0.2.0/24", "64:ff9b::192.0.2.1"));
	ck_assert(!in_net("::1/128", "::ffff:0.0.0.1"));
}
END_TEST

/* A network written as IPv4-mapped IPv6 matches the IPv4 peers it names,
 * whether they arrive as IPv4 or mapped. */
START_TEST(test_cidr_match_mapped_network_matches_ipv4_peers)
{
	ck_assert(in_net("::ffff:192.0.2.0/120", "192.0.2.1"));
	ck_assert(in_net("::ffff:192.0.2.0/120", "::ffff:192.0.2.200"));
	ck_assert(!in_net("::ffff:192.0.2.0/120", "192.0.3.1"));
	ck_assert(!in_net("::ffff:192.0.2.0/120", "::ffff:192.0.3.1"));
	ck_assert(in_net("::ffff:127.0.0.1", "127.0.0.1"));
	ck_assert(!in_net("::ffff:127.0.0.1", "127.0.0.2"));
	ck_assert(in_net("::ffff:0:0/96", "198.51.100.1"));
	/* it is an IPv4 network now: no IPv6 peer is in it */
	ck_assert(!in_net("::ffff:0:0/96", "::1"));
	ck_assert(!in_net("::ffff:192.0.2.0/120", "::192.0.2.1"));
}
END_TEST

START_TEST(test_cidr_match_any_of_list)
{
	struct cidr nets[3];
	struct sockaddr_storage a = sa_of("10.9.8.7", 0);
	struct sockaddr_storage b = sa_of("::1", 0);
	struct sockaddr_storage c = sa_of("198.51.100.1", 0);
	struct sockaddr_storage d = sa_of("::ffff:10.0.0.1", 0);

	ck_assert_int_eq(cidr_parse("127.0.0.0/8", &nets[0]), 0);
	ck_assert_int_eq(cidr_parse("::1/128", &nets[1]), 0);
	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &nets[2]), 0);
	ck_assert(cidr_match(nets, 3, (struct sockaddr *)&a));
	ck_assert(cidr_match(nets, 3, (struct sockaddr *)&b));
	ck_assert(!cidr_match(nets, 3, (struct sockaddr *)&c));
	ck_assert(cidr_match(nets, 3, (struct sockaddr *)&d));
	/* n bounds the list: the third network is not looked at */
	ck_assert(!cidr_match(nets, 2, (struct sockaddr *)&a));
	ck_assert(cidr_match(nets, 2, (struct sockaddr *)&b));
}
END_TEST

START_TEST(test_cidr_match_empty_list_is_false)
{
	struct cidr net;
	struct sockaddr_storage a = sa_of("127.0.0.1", 0);

	ck_assert_int_eq(cidr_parse("0.0.0.0/0", &net), 0);
	ck_assert(!cidr_match(&net, 0, (struct sockaddr *)&a));
	ck_assert(!cidr_match(NULL, 0, (struct sockaddr *)&a));
}
END_TEST

START_TEST(test_cidr_match_ignores_port)
{
	struct cidr net;
	struct sockaddr_storage a = sa_of("192.0.2.1", 0);
	struct sockaddr_storage b = sa_of("192.0.2.1", 65535);
	struct sockaddr_storage c = sa_of("2001:db8::1", 25);

	ck_assert_int_eq(cidr_parse("192.0.2.1", &net), 0);
	ck_assert(cidr_match(&net, 1, (struct sockaddr *)&a));
	ck_assert(cidr_match(&net, 1, (struct sockaddr *)&b));
	ck_assert_int_eq(cidr_parse("2001:db8::1", &net), 0);
	ck_assert(cidr_match(&net, 1, (struct sockaddr *)&c));
}
END_TEST

START_TEST(test_cidr_match_unix_socket_is_false)
{
	struct cidr nets[2];
	struct sockaddr_un un;

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	strcpy(un.sun_path, "/tmp/x");
	ck_assert_int_eq(cidr_parse("0.0.0.0/0", &nets[0]), 0);
	ck_assert_int_eq(cidr_parse("::/0", &nets[1]), 0);
	ck_assert(!cidr_match(nets, 2, (struct sockaddr *)&un));
}
END_TEST

/* ---- printing ------------------------------------------------------ */

struct str_case {
	const char *ip;
	const char *want;
};

static const struct str_case str_cases[] = {
	{ "192.0.2.1", "192.0.2.1" },
	{ "0.0.0.0", "0.0.0.0" },
	{ "255.255.255.255", "255.255.255.255" },
	{ "2001:db8::1", "2001:db8::1" },
	{ "::1", "::1" },
	{ "::", "::" },
	{ "2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },
	{ "::ffff:192.0.2.1", "192.0.2.1" },   /* mapped: printed as IPv4 */
	{ "::ffff:127.0.0.1", "127.0.0.1" },
	{ "64:ff9b::c000:201", "64:ff9b::c000:201" },
};

START_TEST(test_cidr_addr_str_prints)
{
	const struct str_case *sc = &str_cases[_i];
	struct sockaddr_storage ss = sa_of(sc->ip, 2525);
	char out[64];

	memset(out, 'X', sizeof(out));
	ck_assert_ptr_eq(
		cidr_addr_str((struct sockaddr *)&ss, out, sizeof(out)), out);
	ck_assert_str_eq(out, sc->want);
}
END_TEST

START_TEST(test_cidr_addr_str_full_length_ipv6)
{
	struct sockaddr_storage ss =
		sa_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 0);
	char out[INET6_ADDRSTRLEN];

	cidr_addr_str((struct sockaddr *)&ss, out, sizeof(out));
	ck_assert_str_eq(out, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
}
END_TEST

START_TEST(test_cidr_addr_str_unknown_family)
{
	struct sockaddr_un un;
	char out[64];

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	ck_assert_ptr_eq(
		cidr_addr_str((struct sockaddr *)&un, out, sizeof(out)), out);
	ck_assert_str_eq(out, "unknown");
}
END_TEST

/* Too small a buffer never overflows and always ends in a NUL. */
START_TEST(test_cidr_addr_str_short_buffer_is_terminated)
{
	struct sockaddr_storage ss = sa_of("192.0.2.123", 0);
	char out[8];

	memset(out, 'X', sizeof(out));
	ck_assert_ptr_eq(cidr_addr_str((struct sockaddr *)&ss, out, 4), out);
	ck_assert_uint_lt(strlen(out), 4);
	ck_assert_int_eq(out[4], 'X');
	ck_assert_int_eq(out[7], 'X');
}
END_TEST

static Suite *
cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_cidr_parse_accepts, 0,
			    sizeof(parse_ok_cases) / sizeof(parse_ok_cases[0]));
	tcase_add_loop_test(tc, test_cidr_parse_rejects, 0,
			    sizeof(parse_bad_cases) /
				    sizeof(parse_bad_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("match");
	tcase_add_test(tc, test_cidr_match_ipv4_slash24);
	tcase_add_test(tc, test_cidr_match_ipv4_unaligned_prefixes);
	tcase_add_test(tc, test_cidr_match_ipv4_slash32_is_one_host);
	tcase_add_test(tc, test_cidr_match_ipv4_slash0_is_every_ipv4);
	tcase_add_test(tc, test_cidr_match_ignores_host_bits_of_network);
	tcase_add_test(tc, test_cidr_match_ipv6);
	tcase_add_test(tc, test_cidr_match_ipv6_slash0_is_every_ipv6);
	tcase_add_test(tc, test_cidr_match_mapped_ipv4_matches_ipv4_networks);
	tcase_add_test(tc, test_cidr_match_mapped_network_matches_ipv4_peers);
	tcase_add_test(tc, test_cidr_match_any_of_list);
	tcase_add_test(tc, test_cidr_match_empty_list_is_false);
	tcase_add_test(tc, test_cidr_match_ignores_port);
	tcase_add_test(tc, test_cidr_match_unix_socket_is_false);
	suite_add_tcase(s, tc);

	tc = tcase_create("addr_str");
	tcase_add_loop_test(tc, test_cidr_addr_str_prints, 0,
			    sizeof(str_cases) / sizeof(str_cases[0]));
	tcase_add_test(tc, test_cidr_addr_str_full_length_ipv6);
	tcase_add_test(tc, test_cidr_addr_str_unknown_family);
	tcase_add_test(tc, test_cidr_addr_str_short_buffer_is_terminated);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(cidr_suite)
