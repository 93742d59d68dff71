/* Network prefixes and address matching. */
#include "lib/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t cidr_mapped[12] = { 0, 0, 0, 0, 0, 0,
					 0, 0, 0, 0, 0xff, 0xff };

int
cidr_parse(const char *s, struct cidr *out)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	struct cidr c = { 0 };
	unsigned maxbits;

	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, c.addr) == 1) {
		c.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		c.family = AF_INET6;
		maxbits = 128;
	} else {
		return -EINVAL;
	}
	c.prefix = maxbits;
	if (slash) {
		char *end;
		unsigned long p;

		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		p = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || p > maxbits)
			return -EINVAL;
		c.prefix = (unsigned)p;
	}
	/* ::ffff:192.0.2.0/120 names 192.0.2.0/24; cidr_match() unmaps peers
	 * the same way, so as IPv6 it would match nothing (RFC 4291 2.5.5.2) */
	if (c.family == AF_INET6 && c.prefix >= 96 &&
	    memcmp(c.addr, cidr_mapped, 12) == 0) {
		c.family = AF_INET;
		c.prefix -= 96;
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
	}
	*out = c;
	return 0;
}

static bool
cidr_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* The address of sa as (family, bytes), unmapping ::ffff:a.b.c.d. */
static int
cidr_from_sockaddr(const struct sockaddr *sa, uint8_t *addr)
{
	if (sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a6 =
			((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (memcmp(a6, cidr_mapped, 12) == 0) {
			memcpy(addr, a6 + 12, 4);
			return AF_INET;
		}
		memcpy(addr, a6, 16);
		return AF_INET6;
	}
	return AF_UNSPEC;
}

bool
cidr_match(const struct cidr *nets, size_t n, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family = cidr_from_sockaddr(sa, addr);

	for (size_t i = 0; i < n; i++)
		if (nets[i].family == family &&
		    cidr_prefix_eq(nets[i].addr, addr, nets[i].prefix))
			return true;
	return false;
}

char *
cidr_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	uint8_t addr[16];
	int family = cidr_from_sockaddr(sa, addr);

	if (family == AF_UNSPEC || !inet_ntop(family, addr, out, (socklen_t)outlen))
		snprintf(out, outlen, "unknown");
	return out;
}
