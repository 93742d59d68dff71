/* The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and
 * 2) that a load balancer sends before anything else on a connection to a
 * listener with proxy_protocol = true. Pure parsing: bytes in, a verdict
 * out, no sockets (router/proxy_wait.c reads the socket). Handles
 * untrusted input: every length is bounded before use. */
#ifndef SHOAL_ROUTER_PROXY_H
#define SHOAL_ROUTER_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107      /* proxy-protocol.txt 2.1, incl. CRLF */
#define PROXY_V2_FIXED 16     /* signature, ver/cmd, family, length */
#define PROXY_V2_LEN_MAX 1024 /* addresses + TLVs; ours, the spec allows 64k */
#define PROXY_HDR_MAX (PROXY_V2_FIXED + PROXY_V2_LEN_MAX)

/* What proxy_parse() returns besides PROXY_DONE and PROXY_NEED_MORE. */
enum proxy_error {
	PROXY_E_SIGNATURE = -1,	 /* neither "PROXY " nor the v2 signature */
	PROXY_E_V1_LONG = -2,	 /* no CRLF within PROXY_V1_MAX octets */
	PROXY_E_V1_SYNTAX = -3,	 /* a v1 line that does not parse */
	PROXY_E_V1_ADDR = -4,	 /* a v1 address or port out of range */
	PROXY_E_V2_VERSION = -5, /* version other than 2 */
	PROXY_E_V2_COMMAND = -6, /* command other than LOCAL or PROXY */
	PROXY_E_V2_FAMILY = -7,	 /* undefined family or transport */
	PROXY_E_V2_LONG = -8,	 /* length over PROXY_V2_LEN_MAX */
	PROXY_E_V2_SHORT = -9,	 /* length too short for the family */
};

enum {
	PROXY_NEED_MORE = 0, /* a proper prefix of a header: read more */
	PROXY_DONE = 1,	     /* a whole header; see struct proxy_hdr */
};

struct proxy_hdr {
	int version; /* 1 or 2 */
	/* false: the header carries no usable address (v2 LOCAL, as in a
	 * balancer's health check; v1 UNKNOWN; v2 UNSPEC or UNIX): the
	 * connection's own peer is the client */
	bool has_addr;
	struct sockaddr_storage src; /* the client, when has_addr */
	struct sockaddr_storage dst; /* the address it connected to */
	socklen_t addr_len;	     /* of src and dst */
	size_t len;		     /* octets of the header */
};

/* Parse the PROXY header at the start of buf, whose n octets are all that
 * the peer has sent so far (no need to NUL-terminate). Returns
 *   PROXY_DONE: *out is filled; out->len octets are the header, whatever
 *     follows them is the client's own data (SMTP or TLS);
 *   PROXY_NEED_MORE: all n octets may begin a valid header and belong to
 *     it; never returned once n >= PROXY_HDR_MAX;
 *   a PROXY_E_* error: no valid header starts this way.
 * Stateless: call again from the start with more bytes. *out is written
 * only on PROXY_DONE. */
int proxy_parse(const uint8_t *buf, size_t n, struct proxy_hdr *out);

/* A short text naming a PROXY_E_* code; static. */
const char *proxy_strerror(int rc);

#endif
