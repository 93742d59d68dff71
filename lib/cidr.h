/* IPv4/IPv6 networks ("192.0.2.0/24", "::1/128", a bare address) and
 * matching of socket addresses against a list of them. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) match IPv4 networks. Knows nothing of mail. */
#ifndef SHOAL_CIDR_H
#define SHOAL_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;          /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;     /* bits */
};

/* Parse one network. An IPv4-mapped network (::ffff:192.0.2.0/120, prefix
 * at least 96) becomes the IPv4 network it names (192.0.2.0/24). Returns 0,
 * or -EINVAL (bad address, prefix too long; host bits set beyond the prefix
 * are allowed and ignored). */
int cidr_parse(const char *s, struct cidr *out);

/* Whether sa falls in any of the n networks. */
bool cidr_match(const struct cidr *nets, size_t n, const struct sockaddr *sa);

/* Print sa's address (no port) into out: "192.0.2.1" or "2001:db8::1",
 * IPv4-mapped addresses as IPv4. Returns out. */
char *cidr_addr_str(const struct sockaddr *sa, char *out, size_t outlen);

#endif
