/* Check suite for the resolver (node/delivery/dns*.c) against a real
 * dnsmasq on 127.0.0.1 at a free port, plus a fake server in this process
 * for the answers dnsmasq will not give (SERVFAIL, REFUSED, silence,
 * garbage, the AD bit, hostile records) and for counting queries. The
 * fake answers on UDP and, for answers past the query's EDNS0 size (it
 * sets TC on UDP then), on TCP at the same port.
 * No test reads /etc/resolv.conf or sends DNS anywhere else. */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/err.h"
#include "lib/log.h"
#include "node/delivery/dns.h"
#include "tests/unit/check_helpers.h"

#define DNSMASQ "/usr/sbin/dnsmasq"
#define RUN_MS 10000      /* deadline for one run_until() */
#define READY_MS 5000     /* deadline for dnsmasq to answer */
#define MANY_MX 20        /* many.test: more MX than DNS_HOSTS_MAX */

#define FAKE_RR_MAX 128    /* records one fake answer may carry */
#define FAKE_CONN_MAX 4    /* TCP connections to the fake at once */
#define FAKE_MSG_MAX 65535 /* RFC 1035 4.2.2: TCP length prefix */

enum fake_mode { FAKE_SILENT, FAKE_RCODE, FAKE_GARBAGE, FAKE_RECORDS };

/* One answer record the fake sends (FAKE_RECORDS) */
struct fake_rr {
	uint16_t type;
	uint32_t ttl;
	const void *rdata;
	size_t rdlen;
	int rdlen_claim;      /* >= 0: the RDLENGTH written instead */
	bool is_owner_loop;   /* owner: a compression pointer to itself */
};

struct fake_conn {
	int fd;               /* -1: slot free */
	struct event *ev;
	size_t len;
	unsigned char buf[600];
};

static struct {
	struct event_base *base;
	struct dns *dns;
	pid_t pid;               /* dnsmasq, 0 when not running */
	int port;                /* dnsmasq's */
	char log[32];            /* its stderr */
	int done, want;          /* callbacks run, callbacks awaited */
	bool in_resolve;         /* inside dns_resolve_*() */
	int early;               /* callbacks run inside dns_resolve_*() */
	/* fake server */
	int fake_fd;
	struct event *fake_ev;
	enum fake_mode fake_mode;
	int fake_rcode, fake_queries;
	int fake_tcp_fd, fake_tcp_queries;
	struct event *fake_tcp_ev;
	struct fake_conn conns[FAKE_CONN_MAX];
	struct fake_rr fake_rrs[FAKE_RR_MAX];
	size_t n_fake_rrs;
	bool fake_ad;            /* set AD in answers */
	uint32_t fake_soa_min;   /* > 0: an SOA in authority, this MINIMUM */
	int fake_cut;            /* > 0: send only this many bytes */
	bool query_ad;           /* the last query had AD set */
	int query_edns;          /* its EDNS0 payload size, 0: none */
} fx;

struct got {
	int calls;
	struct dns_result r;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
dump_log(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open(fx.log, O_RDONLY);

	if (fd < 0)
		return;
	fprintf(stderr, "---- dnsmasq log %s ----\n", fx.log);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

/* A UDP socket on 127.0.0.1 at a port the kernel picked. */
static int
udp_bound(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Ready means: answers a query. The answer must be one (QR set, our id):
 * while nothing listens, the probe's own port may be the one we ask, and
 * the query comes back to us. */
static bool
dnsmasq_answers(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned char *q, ans[512];
	int qlen, fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n = -1;

	ck_assert_int_eq(ares_create_query("ready.test", 1, 1, 4242, 1, &q,
					   &qlen, 0), ARES_SUCCESS);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    send(fd, q, (size_t)qlen, 0) == qlen && poll(&p, 1, 100) == 1)
		n = recv(fd, ans, sizeof(ans), 0);
	ares_free_string(q);
	close(fd);
	if (n < 0)
		usleep(10000); /* refused at once: not listening yet */
	return n >= 12 && ans[0] == 4242 >> 8 && ans[1] == (4242 & 0xff) &&
	       (ans[2] & 0x80);
}

static bool
dnsmasq_try(int port)
{
	static const char *const records[] = {
		/* pref 20 listed first: order must come from preference */
		"--mx-host=two.test,mx2.two.test,20",
		"--mx-host=two.test,mx1.two.test,10",
		"--host-record=mx1.two.test,127.0.0.2",
		"--host-record=mx2.two.test,127.0.0.3",
		"--mx-host=eq.test,a.eq.test,10",
		"--mx-host=eq.test,b.eq.test,10",
		"--mx-host=eq.test,c.eq.test,10",
		"--host-record=a.eq.test,127.0.1.1",
		"--host-record=b.eq.test,127.0.1.2",
		"--host-record=c.eq.test,127.0.1.3",
		"--host-record=aonly.test,127.0.0.4",
		"--host-record=v6.test,::1",
		"--host-record=both.test,::1,127.0.0.5",
		"--mx-host=null.test,.,0",
		"--mx-host=nullmix.test,.,0",
		"--mx-host=nullmix.test,mx1.two.test,10",
		"--mx-host=dangling.test,gone.dangling.test,10",
		"--mx-host=partial.test,gone.partial.test,10",
		"--mx-host=partial.test,mx2.two.test,20",
		"--txt-record=empty.test,nothing",
		"--txt-record=_mta-sts.two.test,v=STSv1;,id=abc",
		"--dns-rr=_25._tcp.mx1.two.test,52,030101abcd",
	};
	char many[MANY_MX][64], sport[32];
	const char *argv[64];
	size_t n = 0;
	uint64_t deadline;

	snprintf(sport, sizeof(sport), "--port=%d", port);
	argv[n++] = DNSMASQ;
	argv[n++] = "--no-daemon";
	argv[n++] = sport;
	argv[n++] = "--listen-address=127.0.0.1";
	argv[n++] = "--bind-interfaces";
	argv[n++] = "--no-resolv";
	argv[n++] = "--no-hosts";
	argv[n++] = "--conf-file=/dev/null";
	argv[n++] = "--pid-file=";
	argv[n++] = "--local=/test/"; /* NXDOMAIN here, never forwarded */
	argv[n++] = "--local-ttl=120";
	argv[n++] = "--log-facility=-";
	argv[n++] = "--log-queries";
	for (size_t i = 0; i < sizeof(records) / sizeof(*records); i++)
		argv[n++] = records[i];
	/* IP literal targets, preferences 50, 40, ..., 10, 50, ... */
	for (int i = 0; i < MANY_MX; i++) {
		snprintf(many[i], sizeof(many[i]),
			 "--mx-host=many.test,127.0.2.%d,%d", i + 1,
			 (5 - i % 5) * 10);
		argv[n++] = many[i];
	}
	argv[n] = NULL;
	ck_assert_uint_lt(n, sizeof(argv) / sizeof(*argv));

	fx.pid = fork();
	ck_assert_int_ge(fx.pid, 0);
	if (fx.pid == 0) {
		int fd = open(fx.log, O_WRONLY | O_APPEND);

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test dies too */
		dup2(fd, 1);
		dup2(fd, 2);
		execv(DNSMASQ, (char *const *)argv);
		_exit(127);
	}
	fx.port = port;
	deadline = now_ms() + READY_MS;
	while (now_ms() < deadline) {
		if (waitpid(fx.pid, NULL, WNOHANG) == fx.pid) {
			fx.pid = 0; /* e.g. the TCP port was taken */
			return false;
		}
		if (dnsmasq_answers(port))
			return true;
	}
	return false;
}

static void
dnsmasq_stop(void)
{
	if (fx.pid > 0) {
		kill(fx.pid, SIGTERM); /* not KILL: dnsmasq flushes its log */
		waitpid(fx.pid, NULL, 0);
	}
	fx.pid = 0;
}

/* port 0: a free one */
static void
dnsmasq_start(int port)
{
	for (int tries = 0; tries < 5; tries++) {
		int p = port, fd = port ? -1 : udp_bound(&p);

		if (fd >= 0)
			close(fd);
		if (dnsmasq_try(p))
			return;
		dnsmasq_stop();
		if (port)
			break;
	}
	dump_log();
	ck_abort_msg("dnsmasq did not start");
}

static struct dns *
dns_at(int port)
{
	char server[32], *servers[1] = { server };
	struct config cfg;
	struct dns *d = NULL;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	cfg.delivery.dns_servers = servers;
	cfg.delivery.n_dns_servers = 1;
	ck_assert_int_eq(dns_new(fx.base, &cfg, &d), 0);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* The answer to query q (qlen bytes) as FAKE_RECORDS builds it, into out
 * (FAKE_MSG_MAX bytes). On UDP an answer past the query's EDNS0 size (512
 * without EDNS0) goes out as header and question with TC set. */
static size_t
fake_answer(const unsigned char *q, size_t qlen, unsigned char *out,
	    bool is_udp)
{
	size_t off = 12, qend, n, udp_max = 512;

	while (off < qlen && q[off] != 0)
		off += q[off] + 1u;
	qend = off + 5;
	ck_assert_uint_le(qend, qlen);
	fx.query_ad = (q[3] & 0x20) != 0;
	fx.query_edns = 0;
	if (q[11] >= 1 && qend + 11 <= qlen && q[qend] == 0 &&
	    q[qend + 1] == 0 && q[qend + 2] == 41)
		fx.query_edns = q[qend + 3] << 8 | q[qend + 4];
	if (fx.query_edns > 512)
		udp_max = (size_t)fx.query_edns;
	memcpy(out, q, qend);
	out[2] |= 0x80; /* QR */
	out[3] = (unsigned char)(0x80 | (fx.fake_ad ? 0x20 : 0) |
				 fx.fake_rcode);
	memset(out + 6, 0, 6);
	n = qend;
	for (size_t i = 0; i < fx.n_fake_rrs; i++) {
		const struct fake_rr *rr = &fx.fake_rrs[i];
		size_t rdlen = rr->rdlen_claim >= 0 ? (size_t)rr->rdlen_claim :
						      rr->rdlen;

		ck_assert_uint_le(n + 12 + rr->rdlen, FAKE_MSG_MAX);
		out[n] = 0xc0 | (unsigned char)((rr->is_owner_loop ? n : 12) >> 8);
		out[n + 1] = (unsigned char)(rr->is_owner_loop ? n : 12);
		out[n + 2] = (unsigned char)(rr->type >> 8);
		out[n + 3] = (unsigned char)rr->type;
		out[n + 4] = 0;
		out[n + 5] = 1; /* IN */
		out[n + 6] = (unsigned char)(rr->ttl >> 24);
		out[n + 7] = (unsigned char)(rr->ttl >> 16);
		out[n + 8] = (unsigned char)(rr->ttl >> 8);
		out[n + 9] = (unsigned char)rr->ttl;
		out[n + 10] = (unsigned char)(rdlen >> 8);
		out[n + 11] = (unsigned char)rdlen;
		memcpy(out + n + 12, rr->rdata, rr->rdlen);
		n += 12 + rr->rdlen;
	}
	out[6] = (unsigned char)(fx.n_fake_rrs >> 8);
	out[7] = (unsigned char)fx.n_fake_rrs;
	if (fx.fake_soa_min) { /* owner, SOA IN, TTL 3600, root root, 5 */
		static const unsigned char soa[] = {
			0xc0, 12, 0, 6, 0, 1, 0, 0, 0x0e, 0x10, 0, 22, 0, 0,
			0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1 };

		memcpy(out + n, soa, sizeof(soa));
		n += sizeof(soa);
		out[n++] = (unsigned char)(fx.fake_soa_min >> 24);
		out[n++] = (unsigned char)(fx.fake_soa_min >> 16);
		out[n++] = (unsigned char)(fx.fake_soa_min >> 8);
		out[n++] = (unsigned char)fx.fake_soa_min;
		out[9] = 1;
	}
	if (is_udp && n > udp_max) {
		out[2] |= 0x02; /* TC */
		memset(out + 6, 0, 6);
		n = qend;
	}
	if (fx.fake_cut > 0 && (size_t)fx.fake_cut < n)
		n = (size_t)fx.fake_cut;
	return n;
}

static void
fake_on_read(evutil_socket_t fd, short what, void *arg)
{
	unsigned char b[512];
	static unsigned char out[FAKE_MSG_MAX];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(fd, b, sizeof(b), 0, (struct sockaddr *)&from,
			     &flen);

	if (n < 12)
		return;
	fx.fake_queries++;
	if (fx.fake_mode == FAKE_SILENT)
		return;
	if (fx.fake_mode == FAKE_RECORDS) {
		size_t len = fake_answer(b, (size_t)n, out, true);

		sendto(fd, out, len, 0, (struct sockaddr *)&from, flen);
		return;
	}
	b[2] |= 0x80;                                /* QR */
	b[3] = (unsigned char)(0x80 | fx.fake_rcode); /* RA, RCODE */
	if (fx.fake_mode == FAKE_GARBAGE)
		b[7] = 1; /* ANCOUNT 1, and no record follows */
	sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&from, flen);
}

static void
fake_conn_close(struct fake_conn *c)
{
	event_free(c->ev);
	close(c->fd);
	c->fd = -1;
}

/* Queries over TCP, each after its two-byte length (RFC 1035 4.2.2). */
static void
fake_conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_conn *c = arg;
	static unsigned char out[FAKE_MSG_MAX + 2];
	ssize_t n = recv(fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	size_t qlen;

	if (n <= 0) {
		fake_conn_close(c);
		return;
	}
	c->len += (size_t)n;
	while (c->len >= 2 && c->len >= 2 + (qlen = (size_t)(c->buf[0] << 8 |
							    c->buf[1]))) {
		size_t alen = fake_answer(c->buf + 2, qlen, out + 2, false);

		fx.fake_queries++;
		fx.fake_tcp_queries++;
		out[0] = (unsigned char)(alen >> 8);
		out[1] = (unsigned char)alen;
		ck_assert_int_eq(send(fd, out, alen + 2, 0), (int)(alen + 2));
		memmove(c->buf, c->buf + 2 + qlen, c->len - 2 - qlen);
		c->len -= 2 + qlen;
	}
	ck_assert_uint_lt(c->len, sizeof(c->buf));
}

static void
fake_on_accept(evutil_socket_t fd, short what, void *arg)
{
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

	if (cfd < 0)
		return;
	for (size_t i = 0; i < FAKE_CONN_MAX; i++) {
		struct fake_conn *c = &fx.conns[i];

		if (c->fd >= 0)
			continue;
		c->fd = cfd;
		c->len = 0;
		c->ev = event_new(fx.base, cfd, EV_READ | EV_PERSIST,
				  fake_conn_on_read, c);
		event_add(c->ev, NULL);
		return;
	}
	close(cfd);
}

/* The TCP side of the fake, at the UDP side's port; false when another
 * program holds that TCP port (the caller picks another pair). */
static bool
fake_tcp_start(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;

	fx.fake_tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fx.fake_tcp_fd, 0);
	setsockopt(fx.fake_tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one,
		   sizeof(one));
	if (bind(fx.fake_tcp_fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		ck_assert_int_eq(errno, EADDRINUSE);
		close(fx.fake_tcp_fd);
		fx.fake_tcp_fd = -1;
		return false;
	}
	ck_assert_int_eq(listen(fx.fake_tcp_fd, 8), 0);
	fx.fake_tcp_ev = event_new(fx.base, fx.fake_tcp_fd,
				   EV_READ | EV_PERSIST, fake_on_accept, NULL);
	event_add(fx.fake_tcp_ev, NULL);
	return true;
}

static void
fake_start(enum fake_mode mode, int rcode)
{
	int port, tries = 0;

	/* a free UDP port whose TCP twin is free too */
	for (;;) {
		fx.fake_fd = udp_bound(&port);
		if (fake_tcp_start(port))
			break;
		close(fx.fake_fd);
		ck_assert_int_lt(++tries, 100);
	}
	fx.fake_mode = mode;
	fx.fake_rcode = rcode;
	fx.fake_ev = event_new(fx.base, fx.fake_fd, EV_READ | EV_PERSIST,
			       fake_on_read, NULL);
	event_add(fx.fake_ev, NULL);
	fx.dns = dns_at(port);
}

static void
setup_base(void)
{
	memset(&fx, 0, sizeof(fx));
	fx.fake_fd = -1;
	fx.fake_tcp_fd = -1;
	for (size_t i = 0; i < FAKE_CONN_MAX; i++)
		fx.conns[i].fd = -1;
	/* TEST_DNS_DEBUG=1 shows the resolver's debug lines */
	log_init("test_dns", getenv("TEST_DNS_DEBUG") ? LOG_LVL_DEBUG :
							LOG_LVL_WARN);
	fx.base = event_base_new();
	ck_assert_ptr_nonnull(fx.base);
	snprintf(fx.log, sizeof(fx.log), "/tmp/test_dns.XXXXXX");
	close(mkstemp(fx.log));
}

static void
setup_dnsmasq(void)
{
	setup_base();
	dnsmasq_start(0);
	fx.dns = dns_at(fx.port);
}

static void
teardown(void)
{
	dns_free(fx.dns);
	fx.dns = NULL;
	if (fx.fake_ev)
		event_free(fx.fake_ev);
	if (fx.fake_fd >= 0)
		close(fx.fake_fd);
	for (size_t i = 0; i < FAKE_CONN_MAX; i++)
		if (fx.conns[i].fd >= 0)
			fake_conn_close(&fx.conns[i]);
	if (fx.fake_tcp_ev)
		event_free(fx.fake_tcp_ev);
	if (fx.fake_tcp_fd >= 0)
		close(fx.fake_tcp_fd);
	dnsmasq_stop();
	event_base_free(fx.base);
	unlink(fx.log);
}

static void
on_result(const struct dns_result *r, void *arg)
{
	struct got *g = arg;

	if (fx.in_resolve)
		fx.early++;
	g->calls++;
	g->r = *r;
	if (++fx.done >= fx.want)
		event_base_loopbreak(fx.base);
}

static void
run_until(int want)
{
	uint64_t deadline = now_ms() + RUN_MS;

	fx.want = want;
	while (fx.done < want) {
		struct timeval tv = { 0, 50000 };

		if (now_ms() > deadline) {
			dump_log();
			ck_abort_msg("%d of %d callbacks before the deadline",
				     fx.done, want);
		}
		event_base_loopexit(fx.base, &tv);
		event_base_dispatch(fx.base);
	}
	ck_assert_int_eq(fx.early, 0);
}

static uint64_t
start_mx(const char *domain, struct got *g)
{
	uint64_t id;

	fx.in_resolve = true;
	id = dns_resolve_mx(fx.dns, domain, on_result, g);
	fx.in_resolve = false;
	ck_assert_uint_ne(id, 0);
	return id;
}

static uint64_t
start_host(const char *host, struct got *g)
{
	uint64_t id;

	fx.in_resolve = true;
	id = dns_resolve_host(fx.dns, host, on_result, g);
	fx.in_resolve = false;
	ck_assert_uint_ne(id, 0);
	return id;
}

static const struct dns_result *
mx(const char *domain, struct got *g)
{
	memset(g, 0, sizeof(*g));
	start_mx(domain, g);
	run_until(fx.done + 1);
	ck_assert_int_eq(g->calls, 1);
	return &g->r;
}

static const struct dns_result *
host(const char *name, struct got *g)
{
	memset(g, 0, sizeof(*g));
	start_host(name, g);
	run_until(fx.done + 1);
	ck_assert_int_eq(g->calls, 1);
	return &g->r;
}

struct gotrr {
	int calls;
	struct dns_rrset r;
};

static void
on_rrset(const struct dns_rrset *r, void *arg)
{
	struct gotrr *g = arg;

	if (fx.in_resolve)
		fx.early++;
	g->calls++;
	g->r = *r;
	if (++fx.done >= fx.want)
		event_base_loopbreak(fx.base);
}

static uint64_t
start_rr(const char *name, uint16_t type, struct gotrr *g)
{
	uint64_t id;

	fx.in_resolve = true;
	id = dns_query(fx.dns, name, type, on_rrset, g);
	fx.in_resolve = false;
	ck_assert_uint_ne(id, 0);
	return id;
}

static const struct dns_rrset *
query(const char *name, uint16_t type, struct gotrr *g)
{
	memset(g, 0, sizeof(*g));
	start_rr(name, type, g);
	run_until(fx.done + 1);
	ck_assert_int_eq(g->calls, 1);
	return &g->r;
}

/* Record i of the answer is exactly the n bytes at want. */
static void
assert_rr(const struct dns_rrset *r, size_t i, const void *want, size_t n)
{
	ck_assert_uint_lt(i, r->n);
	ck_assert_uint_eq(r->rr[i].len, n);
	ck_assert_int_eq(memcmp(r->rr[i].data, want, n), 0);
}

static struct fake_rr *
fake_add(uint16_t type, uint32_t ttl, const void *rdata, size_t rdlen)
{
	struct fake_rr *rr = &fx.fake_rrs[fx.n_fake_rrs++];

	ck_assert_uint_le(fx.n_fake_rrs, FAKE_RR_MAX);
	memset(rr, 0, sizeof(*rr));
	rr->type = type;
	rr->ttl = ttl;
	rr->rdata = rdata;
	rr->rdlen = rdlen;
	rr->rdlen_claim = -1;
	return rr;
}

/* Address i of host h as text; every address has port 0. */
static const char *
addr(const struct dns_result *r, size_t h, size_t i)
{
	static char buf[INET6_ADDRSTRLEN];
	const struct sockaddr_storage *ss = &r->hosts[h].addrs[i];

	ck_assert_uint_lt(i, r->hosts[h].n_addrs);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		ck_assert_uint_eq(s4->sin_port, 0);
		return inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	ck_assert_int_eq(ss->ss_family, AF_INET6);
	ck_assert_uint_eq(s6->sin6_port, 0);
	return inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
}

/* ---- MX ------------------------------------------------------------------ */

START_TEST(test_mx_orders_hosts_by_preference)
{
	struct got g;
	const struct dns_result *r = mx("two.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_int_eq(r->implicit_mx, 0);
	ck_assert_uint_eq(r->n_hosts, 2);
	ck_assert_str_eq(r->hosts[0].name, "mx1.two.test");
	ck_assert_uint_eq(r->hosts[0].preference, 10);
	ck_assert_uint_eq(r->hosts[0].n_addrs, 1);
	ck_assert_str_eq(addr(r, 0, 0), "127.0.0.2");
	ck_assert_str_eq(r->hosts[1].name, "mx2.two.test");
	ck_assert_uint_eq(r->hosts[1].preference, 20);
	ck_assert_uint_eq(r->hosts[1].n_addrs, 1);
	ck_assert_str_eq(addr(r, 1, 0), "127.0.0.3");
	ck_assert_uint_eq(r->ttl, 120); /* --local-ttl */
}
END_TEST

START_TEST(test_mx_shuffles_equal_preferences)
{
	enum { N = 60 };
	static struct got g[N];
	int first[3] = { 0 };

	mx("eq.test", &g[0]); /* one query; the rest come from the cache */
	memset(g, 0, sizeof(g));
	for (int i = 0; i < N; i++)
		start_mx("eq.test", &g[i]);
	run_until(fx.done + N);
	for (int i = 0; i < N; i++) {
		const struct dns_result *r = &g[i].r;
		int seen = 0;

		ck_assert_int_eq(g[i].calls, 1);
		ck_assert_int_eq(r->status, DNS_OK);
		ck_assert_uint_eq(r->n_hosts, 3);
		for (size_t h = 0; h < 3; h++) {
			ck_assert_uint_eq(r->hosts[h].preference, 10);
			ck_assert_uint_eq(r->hosts[h].n_addrs, 1);
			seen |= 1 << (r->hosts[h].name[0] - 'a');
		}
		ck_assert_int_eq(seen, 7);
		first[r->hosts[0].name[0] - 'a']++;
	}
	/* each one leads sometimes: fails with probability 3 * (2/3)^60 */
	for (int k = 0; k < 3; k++)
		ck_assert_int_gt(first[k], 0);
}
END_TEST

START_TEST(test_mx_keeps_at_most_16_hosts_and_ip_literal_names)
{
	struct got g;
	const struct dns_result *r = mx("many.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n_hosts, DNS_HOSTS_MAX);
	ck_assert_uint_eq(r->hosts[0].preference, 10);
	for (size_t i = 0; i < r->n_hosts; i++) {
		struct in_addr want;

		if (i > 0)
			ck_assert_uint_le(r->hosts[i - 1].preference,
					  r->hosts[i].preference);
		/* a dotted-quad target is its own address */
		ck_assert_uint_eq(r->hosts[i].n_addrs, 1);
		ck_assert_int_eq(inet_pton(AF_INET, r->hosts[i].name, &want),
				 1);
		ck_assert_str_eq(addr(r, i, 0), r->hosts[i].name);
	}
	/* 20 hosts, 4 per preference: the 4 at 50 are the ones dropped */
	ck_assert_uint_eq(r->hosts[DNS_HOSTS_MAX - 1].preference, 40);
}
END_TEST

START_TEST(test_mx_host_without_address_is_kept)
{
	struct got g;
	const struct dns_result *r = mx("partial.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n_hosts, 2);
	ck_assert_str_eq(r->hosts[0].name, "gone.partial.test");
	ck_assert_uint_eq(r->hosts[0].n_addrs, 0);
	ck_assert_str_eq(r->hosts[1].name, "mx2.two.test");
	ck_assert_str_eq(addr(r, 1, 0), "127.0.0.3");
}
END_TEST

START_TEST(test_mx_hosts_all_without_address_is_no_hosts)
{
	struct got g;
	const struct dns_result *r = mx("dangling.test", &g);

	ck_assert_int_eq(r->status, DNS_NO_HOSTS);
	ck_assert_ptr_nonnull(r->error);
	ck_assert_uint_le(r->ttl, 60);
}
END_TEST

START_TEST(test_implicit_mx_uses_a_record)
{
	struct got g;
	const struct dns_result *r = mx("aonly.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_int_eq(r->implicit_mx, 1);
	ck_assert_uint_eq(r->n_hosts, 1);
	ck_assert_str_eq(r->hosts[0].name, "aonly.test");
	ck_assert_uint_eq(r->hosts[0].preference, 0);
	ck_assert_uint_eq(r->hosts[0].n_addrs, 1);
	ck_assert_str_eq(addr(r, 0, 0), "127.0.0.4");
	ck_assert_uint_eq(r->ttl, 60); /* the MX NODATA counts, capped */
}
END_TEST

START_TEST(test_implicit_mx_uses_aaaa_record)
{
	struct got g;
	const struct dns_result *r = mx("v6.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_int_eq(r->implicit_mx, 1);
	ck_assert_uint_eq(r->hosts[0].n_addrs, 1);
	ck_assert_str_eq(addr(r, 0, 0), "::1");
}
END_TEST

START_TEST(test_implicit_mx_lists_ipv4_first)
{
	struct got g;
	const struct dns_result *r = mx("both.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->hosts[0].n_addrs, 2);
	ck_assert_str_eq(addr(r, 0, 0), "127.0.0.5");
	ck_assert_str_eq(addr(r, 0, 1), "::1");
}
END_TEST

START_TEST(test_no_mx_and_no_address_is_no_hosts)
{
	struct got g;
	const struct dns_result *r = mx("empty.test", &g);

	ck_assert_int_eq(r->status, DNS_NO_HOSTS);
	ck_assert_str_eq(r->error, "Domain has no MX and no A/AAAA records");
}
END_TEST

START_TEST(test_null_mx_accepts_no_mail)
{
	struct got g;
	const struct dns_result *r = mx("null.test", &g);

	ck_assert_int_eq(r->status, DNS_NULL_MX);
	ck_assert_str_eq(r->error,
			 "Domain accepts no mail (null MX, RFC 7505)");
}
END_TEST

START_TEST(test_null_mx_beside_others_is_ignored)
{
	struct got g;
	const struct dns_result *r = mx("nullmix.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n_hosts, 1);
	ck_assert_str_eq(r->hosts[0].name, "mx1.two.test");
}
END_TEST

START_TEST(test_unknown_domain_is_nxdomain)
{
	struct got g;
	const struct dns_result *r = mx("nope.test", &g);

	ck_assert_int_eq(r->status, DNS_NXDOMAIN);
	ck_assert_str_eq(r->error, "Host or domain name not found (NXDOMAIN)");
	ck_assert_uint_eq(r->ttl, 60);
}
END_TEST

START_TEST(test_invalid_names_are_nxdomain_without_dns)
{
	char long_name[DNS_NAME_MAX + 2], long_label[80];
	const char *names[] = { "", "a..example", long_name, long_label };
	struct got g;

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	snprintf(long_label, sizeof(long_label), "%064d.example", 0);
	fake_start(FAKE_SILENT, 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		ck_assert_int_eq(mx(names[i], &g)->status, DNS_NXDOMAIN);
		ck_assert_str_eq(g.r.error, "Invalid domain name");
		ck_assert_int_eq(host(names[i], &g)->status, DNS_NXDOMAIN);
	}
	ck_assert_int_eq(fx.fake_queries, 0);
}
END_TEST

struct nested {
	struct got outer, inner;
};

static void
on_outer_resolves_again(const struct dns_result *r, void *arg)
{
	struct nested *n = arg;

	on_result(r, &n->outer);
	start_mx("aonly.test", &n->inner);
	dns_cancel(fx.dns, 12345); /* an unknown id, from a callback */
}

START_TEST(test_callback_may_resolve_again)
{
	struct nested n;

	memset(&n, 0, sizeof(n));
	dns_resolve_mx(fx.dns, "two.test", on_outer_resolves_again, &n);
	run_until(2);
	ck_assert_int_eq(n.outer.r.status, DNS_OK);
	ck_assert_int_eq(n.inner.calls, 1);
	ck_assert_int_eq(n.inner.r.status, DNS_OK);
	ck_assert_int_eq(n.inner.r.implicit_mx, 1);
}
END_TEST

/* ---- single hosts ------------------------------------------------------ */

START_TEST(test_host_literals_answer_without_dns)
{
	static const char *const lits[] = { "127.0.0.9", "::1",
					    "2001:db8::25" };
	struct got g;

	/* a server that never answers: a literal must not ask it */
	fake_start(FAKE_SILENT, 0);
	for (size_t i = 0; i < 3; i++) {
		const struct dns_result *r = host(lits[i], &g);

		ck_assert_int_eq(r->status, DNS_OK);
		ck_assert_uint_eq(r->n_hosts, 1);
		ck_assert_str_eq(r->hosts[0].name, lits[i]);
		ck_assert_uint_eq(r->hosts[0].n_addrs, 1);
		ck_assert_str_eq(addr(r, 0, 0), lits[i]);
	}
	ck_assert_int_eq(fx.fake_queries, 0);
}
END_TEST

START_TEST(test_host_name_resolves_to_addresses)
{
	struct got g;
	const struct dns_result *r = host("mx1.two.test", &g);

	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n_hosts, 1);
	ck_assert_str_eq(r->hosts[0].name, "mx1.two.test");
	ck_assert_str_eq(addr(r, 0, 0), "127.0.0.2");
	r = host("v6.test", &g);
	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_str_eq(addr(r, 0, 0), "::1");
	/* a host lookup never asks for MX: two.test has no address */
	ck_assert_int_eq(host("two.test", &g)->status, DNS_NO_HOSTS);
	ck_assert_int_eq(host("nope.test", &g)->status, DNS_NXDOMAIN);
	ck_assert_int_eq(host("empty.test", &g)->status, DNS_NO_HOSTS);
}
END_TEST

/* ---- failures ---------------------------------------------------------- */

START_TEST(test_servfail_is_tempfail)
{
	struct got g;

	fake_start(FAKE_RCODE, 2);
	ck_assert_int_eq(mx("a.example", &g)->status, DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS temporary failure: SERVFAIL");
}
END_TEST

START_TEST(test_refused_is_tempfail)
{
	struct got g;

	fake_start(FAKE_RCODE, 5);
	ck_assert_int_eq(mx("a.example", &g)->status, DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS temporary failure: REFUSED");
}
END_TEST

START_TEST(test_malformed_answer_is_tempfail)
{
	struct got g;

	fake_start(FAKE_GARBAGE, 0);
	ck_assert_int_eq(mx("a.example", &g)->status, DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS temporary failure: malformed answer");
}
END_TEST

START_TEST(test_timeout_is_tempfail_after_three_tries)
{
	struct got g;
	uint64_t t0;

	fake_start(FAKE_SILENT, 0);
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 100), 0);
	t0 = now_ms();
	ck_assert_int_eq(mx("a.example", &g)->status, DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS timeout");
	ck_assert_int_eq(fx.fake_queries, 3);
	ck_assert_uint_lt(now_ms() - t0, 5000);
	/* too late once lookups were made */
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 100), -EINVAL);
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 0), -EINVAL);
}
END_TEST

START_TEST(test_nobody_listening_is_tempfail)
{
	struct got g;
	int port, fd = udp_bound(&port);

	close(fd); /* nothing there now: ICMP port unreachable */
	fx.dns = dns_at(port);
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 500), 0);
	ck_assert_int_eq(mx("a.example", &g)->status, DNS_TEMPFAIL);
	ck_assert_int_eq(host("b.example", &g)->status, DNS_TEMPFAIL);
}
END_TEST

START_TEST(test_concurrent_lookups_share_one_query)
{
	struct got g[3], again;

	fake_start(FAKE_RCODE, 3); /* NXDOMAIN */
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 3; i++)
		start_mx("gone.example", &g[i]);
	run_until(3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(g[i].calls, 1);
		ck_assert_int_eq(g[i].r.status, DNS_NXDOMAIN);
	}
	ck_assert_int_eq(fx.fake_queries, 1);
	/* negative answers are cached too, and MX and host lookups apart */
	ck_assert_int_eq(mx("gone.example", &again)->status, DNS_NXDOMAIN);
	ck_assert_int_eq(fx.fake_queries, 1);
	ck_assert_int_eq(host("gone.example", &again)->status, DNS_NXDOMAIN);
	ck_assert_int_eq(fx.fake_queries, 3); /* A and AAAA */
}
END_TEST

/* ---- cache, cancel, free ------------------------------------------------- */

START_TEST(test_cache_answers_after_server_stops)
{
	struct got g;
	const struct dns_result *r;

	ck_assert_int_eq(mx("two.test", &g)->status, DNS_OK);
	ck_assert_int_eq(host("mx1.two.test", &g)->status, DNS_OK);
	dnsmasq_stop();
	r = mx("two.test", &g);
	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n_hosts, 2);
	ck_assert_str_eq(addr(r, 1, 0), "127.0.0.3");
	ck_assert_uint_le(r->ttl, 120);
	ck_assert_uint_gt(r->ttl, 100);
	ck_assert_int_eq(host("mx1.two.test", &g)->status, DNS_OK);
}
END_TEST

START_TEST(test_tempfail_is_not_cached)
{
	struct got g;
	int port = fx.port;

	dnsmasq_stop();
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 500), 0);
	ck_assert_int_eq(mx("two.test", &g)->status, DNS_TEMPFAIL);
	dnsmasq_start(port);
	ck_assert_int_eq(mx("two.test", &g)->status, DNS_OK);
}
END_TEST

START_TEST(test_cancel_pending_lookup)
{
	struct got cancelled, other, g;
	uint64_t id;

	memset(&cancelled, 0, sizeof(cancelled));
	memset(&other, 0, sizeof(other));
	id = start_mx("two.test", &cancelled);
	start_mx("two.test", &other);
	dns_cancel(fx.dns, id);
	dns_cancel(fx.dns, id);     /* twice: nothing */
	dns_cancel(fx.dns, 999999); /* unknown: nothing */
	run_until(1);
	ck_assert_int_eq(other.calls, 1);
	ck_assert_int_eq(other.r.status, DNS_OK);
	/* a lone cancelled lookup still fills the cache */
	memset(&cancelled, 0, sizeof(cancelled));
	dns_cancel(fx.dns, start_host("mx2.two.test", &cancelled));
	ck_assert_int_eq(host("mx1.two.test", &g)->status, DNS_OK);
	dnsmasq_stop();
	ck_assert_int_eq(host("mx2.two.test", &g)->status, DNS_OK);
	ck_assert_int_eq(cancelled.calls, 0);
}
END_TEST

START_TEST(test_cancel_cached_and_literal_lookups)
{
	struct got g, cancelled, last;

	mx("two.test", &g);
	memset(&cancelled, 0, sizeof(cancelled));
	dns_cancel(fx.dns, start_mx("two.test", &cancelled));
	dns_cancel(fx.dns, start_host("127.0.0.1", &cancelled));
	mx("two.test", &last);
	ck_assert_int_eq(last.r.status, DNS_OK);
	ck_assert_int_eq(cancelled.calls, 0);
}
END_TEST

START_TEST(test_free_with_lookups_outstanding)
{
	struct got g, never;

	mx("two.test", &g);
	memset(&never, 0, sizeof(never));
	start_mx("two.test", &never);     /* cached, ready */
	start_mx("eq.test", &never);      /* in flight */
	start_mx("eq.test", &never);      /* coalesced */
	start_host("mx1.two.test", &never);
	start_host("::1", &never);        /* literal */
	dns_free(fx.dns);
	fx.dns = NULL;
	event_base_loop(fx.base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(never.calls, 0);
}
END_TEST

/* ---- records of any type (dns_query) ------------------------------------ */

/* RFC 8461 3.1 TXT, as two character-strings */
static const unsigned char TXT_STS[] = "\x09v=STSv1; \x0eid=20240101T01";
static const unsigned char TXT_RPT[] =
	"\x29v=TLSRPTv1; rua=mailto:tlsrpt@example.net";
/* RFC 6698 2.1: usage 3, selector 1, matching type 1, a SHA-256 */
static const unsigned char TLSA_311[35] = {
	3, 1, 1, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
	12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28 };
static const unsigned char A_4[4] = { 192, 0, 2, 25 };
static const unsigned char CNAME_ROOT[1] = { 0 };

START_TEST(test_query_txt_joins_character_strings)
{
	struct gotrr g;
	const struct dns_rrset *r;

	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_TXT, 300, TXT_STS, sizeof(TXT_STS) - 1);
	fake_add(DNS_TYPE_TXT, 200, TXT_RPT, sizeof(TXT_RPT) - 1);
	fake_add(DNS_TYPE_TXT, 300, "", 0); /* no string at all: empty */
	r = query("_mta-sts.example.net", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_str_eq(r->error, "");
	ck_assert_uint_eq(r->n, 3);
	ck_assert_uint_eq(r->n_dropped, 0);
	assert_rr(r, 0, "v=STSv1; id=20240101T01", 23);
	assert_rr(r, 1, "v=TLSRPTv1; rua=mailto:tlsrpt@example.net", 41);
	ck_assert_uint_eq(r->rr[2].len, 0);
	ck_assert_uint_eq(r->ttl, 200); /* the smallest */
	ck_assert(!r->secure);
}
END_TEST

START_TEST(test_query_tlsa_is_raw_rdata_of_the_asked_type_only)
{
	struct gotrr g;
	const struct dns_rrset *r;

	fake_start(FAKE_RECORDS, 0);
	fx.fake_ad = true;
	/* a CNAME the resolver followed, then one record of another type */
	fake_add(5, 100, CNAME_ROOT, sizeof(CNAME_ROOT));
	fake_add(DNS_TYPE_TLSA, 600, TLSA_311, sizeof(TLSA_311));
	fake_add(DNS_TYPE_A, 600, A_4, sizeof(A_4));
	r = query("_25._tcp.mx1.example.net", DNS_TYPE_TLSA, &g);
	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n, 1);
	assert_rr(r, 0, TLSA_311, sizeof(TLSA_311));
	ck_assert_uint_eq(r->ttl, 100); /* the chain lives as long as the CNAME */
	ck_assert(r->secure);
}
END_TEST

START_TEST(test_query_asks_with_ad_bit_and_edns)
{
	struct gotrr g;

	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_A, 60, A_4, sizeof(A_4));
	ck_assert(query("mx1.example.net", DNS_TYPE_A, &g)->secure == false);
	assert_rr(&g.r, 0, A_4, sizeof(A_4));
	ck_assert(fx.query_ad);
	ck_assert_int_eq(fx.query_edns, 1232);
	fx.fake_ad = true;
	ck_assert(query("mx2.example.net", DNS_TYPE_A, &g)->secure);
	/* the flag is cached with the answer */
	fx.fake_ad = false;
	ck_assert(query("mx2.example.net", DNS_TYPE_A, &g)->secure);
	ck_assert(!query("mx1.example.net", DNS_TYPE_A, &g)->secure);
	ck_assert_int_eq(fx.fake_queries, 2);
}
END_TEST

START_TEST(test_query_nodata_is_ok_with_no_records)
{
	struct gotrr g;
	const struct dns_rrset *r;

	fake_start(FAKE_RECORDS, 0);
	fx.fake_soa_min = 30;
	fx.fake_ad = true; /* a validated denial */
	r = query("_25._tcp.mx.example.net", DNS_TYPE_TLSA, &g);
	ck_assert_int_eq(r->status, DNS_OK);
	ck_assert_uint_eq(r->n, 0);
	ck_assert_uint_eq(r->ttl, 30); /* RFC 2308 5: SOA MINIMUM */
	ck_assert(r->secure);
	fx.fake_soa_min = 0; /* no SOA: 60 s at most */
	ck_assert_uint_eq(query("b.example.net", DNS_TYPE_TXT, &g)->ttl, 60);
}
END_TEST

START_TEST(test_query_nxdomain)
{
	struct gotrr g;
	const struct dns_rrset *r;

	fake_start(FAKE_RECORDS, 3);
	fx.fake_soa_min = 3000; /* capped at 60 */
	r = query("_mta-sts.gone.example", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(r->status, DNS_NXDOMAIN);
	ck_assert_str_eq(r->error, "Host or domain name not found (NXDOMAIN)");
	ck_assert_uint_eq(r->n, 0);
	ck_assert_uint_eq(r->ttl, 60);
	ck_assert(!r->secure);
	query("_mta-sts.gone.example", DNS_TYPE_TXT, &g); /* cached */
	ck_assert_int_eq(g.r.status, DNS_NXDOMAIN);
	ck_assert_int_eq(fx.fake_queries, 1);
}
END_TEST

START_TEST(test_query_servfail_is_tempfail_and_not_cached)
{
	struct gotrr g;

	fake_start(FAKE_RECORDS, 2); /* a validator's answer to bogus data */
	fx.fake_ad = true;
	fake_add(DNS_TYPE_TLSA, 60, TLSA_311, sizeof(TLSA_311));
	ck_assert_int_eq(query("_25._tcp.mx.example", DNS_TYPE_TLSA, &g)->status,
			 DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS temporary failure: SERVFAIL");
	ck_assert_uint_eq(g.r.n, 0);
	ck_assert(!g.r.secure);
	fx.fake_rcode = 5;
	ck_assert_int_eq(query("_25._tcp.mx.example", DNS_TYPE_TLSA, &g)->status,
			 DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS temporary failure: REFUSED");
	ck_assert_int_eq(fx.fake_queries, 2);
}
END_TEST

START_TEST(test_query_timeout_is_tempfail)
{
	struct gotrr g;

	fake_start(FAKE_SILENT, 0);
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 100), 0);
	ck_assert_int_eq(query("a.example", DNS_TYPE_TXT, &g)->status,
			 DNS_TEMPFAIL);
	ck_assert_str_eq(g.r.error, "DNS timeout");
}
END_TEST

/* Hostile answers: each gives TEMPFAIL "malformed", never a crash. */
static const unsigned char TXT_OVERRUN[] = "\x05" "abc"; /* 5 > 3 left */

START_TEST(test_query_malformed_answers_are_tempfail)
{
	struct gotrr g;
	char name[32];

	fake_start(FAKE_RECORDS, 0);
	ck_assert_int_eq(dns_set_timeout_ms(fx.dns, 100), 0);
	for (int k = 0; k < 5; k++) {
		uint16_t type = DNS_TYPE_TLSA;

		fx.n_fake_rrs = 0;
		fx.fake_cut = 0;
		switch (k) {
		case 0: /* RDLENGTH past the end of the message */
			type = DNS_TYPE_TXT;
			fake_add(type, 60, TXT_STS, sizeof(TXT_STS) - 1)
				->rdlen_claim = 300;
			break;
		case 1: /* RDLENGTH short: the rest reads as a record */
			fake_add(type, 60, TLSA_311, sizeof(TLSA_311))
				->rdlen_claim = 3;
			fake_add(type, 60, TLSA_311, sizeof(TLSA_311));
			break;
		case 2: /* a TXT string running past its RDATA */
			type = DNS_TYPE_TXT;
			fake_add(type, 60, TXT_OVERRUN, sizeof(TXT_OVERRUN) - 1);
			break;
		case 3: /* cut inside the record */
			fake_add(type, 60, TLSA_311, sizeof(TLSA_311));
			fx.fake_cut = 60;
			break;
		case 4: /* cut inside the header: c-ares drops it, times out */
			fake_add(type, 60, TLSA_311, sizeof(TLSA_311));
			fx.fake_cut = 11;
			break;
		}
		snprintf(name, sizeof(name), "m%d.example", k);
		query(name, type, &g);
		ck_assert_msg(g.r.status == DNS_TEMPFAIL, "case %d", k);
		ck_assert_uint_eq(g.r.n, 0);
		if (k < 4)
			ck_assert_str_eq(g.r.error,
					 "DNS temporary failure: malformed "
					 "answer");
	}
}
END_TEST

START_TEST(test_query_compression_loop_in_owner_is_not_followed)
{
	struct gotrr g;

	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_TLSA, 60, TLSA_311, sizeof(TLSA_311))
		->is_owner_loop = true;
	query("_25._tcp.loop.example", DNS_TYPE_TLSA, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	assert_rr(&g.r, 0, TLSA_311, sizeof(TLSA_311));
}
END_TEST

START_TEST(test_query_keeps_16_of_100_records_over_tcp)
{
	static unsigned char txt[100][16];
	struct gotrr g;

	fake_start(FAKE_RECORDS, 0);
	for (int i = 0; i < 100; i++) {
		snprintf((char *)txt[i], sizeof(txt[i]), "\x06r=%04d", i);
		fake_add(DNS_TYPE_TXT, 60, txt[i], 7);
	}
	query("many.example", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	ck_assert_uint_eq(g.r.n, DNS_RR_MAX);
	ck_assert_uint_eq(g.r.n_dropped, 100 - DNS_RR_MAX);
	assert_rr(&g.r, 0, "r=0000", 6);
	assert_rr(&g.r, DNS_RR_MAX - 1, "r=0015", 6);
	/* over 1232 bytes: TC on UDP, and c-ares asked again on TCP */
	ck_assert_int_eq(fx.fake_tcp_queries, 1);
}
END_TEST

START_TEST(test_query_drops_records_over_4096_bytes)
{
	static unsigned char big[5000], txt[17 * 256], txt2[17 * 256 + 2];
	struct gotrr g;
	size_t n = 0;

	memset(big, 0xab, sizeof(big));
	/* 16 strings of 255 and one of 16: 4096 joined, kept; txt2 has one
	 * more byte, dropped */
	for (int i = 0; i < 17; i++) {
		unsigned char len = i < 16 ? 255 : 16;

		txt[n++] = len;
		memset(txt + n, 'a' + i, len);
		n += len;
	}
	memcpy(txt2, txt, n);
	txt2[n] = 1;
	txt2[n + 1] = 'z';
	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_TLSA, 60, big, sizeof(big));
	fake_add(DNS_TYPE_TLSA, 60, TLSA_311, sizeof(TLSA_311));
	query("_25._tcp.big.example", DNS_TYPE_TLSA, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	ck_assert_uint_eq(g.r.n, 1);
	ck_assert_uint_eq(g.r.n_dropped, 1);
	assert_rr(&g.r, 0, TLSA_311, sizeof(TLSA_311));

	fx.n_fake_rrs = 0;
	fake_add(DNS_TYPE_TXT, 60, txt2, n + 2);
	fake_add(DNS_TYPE_TXT, 60, txt, n);
	query("big.example", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	ck_assert_uint_eq(g.r.n, 1);
	ck_assert_uint_eq(g.r.n_dropped, 1);
	ck_assert_uint_eq(g.r.rr[0].len, DNS_RR_DATA_MAX);
	ck_assert_int_eq(g.r.rr[0].data[0], 'a');
	ck_assert_int_eq(g.r.rr[0].data[255], 'b');
	ck_assert_int_eq(g.r.rr[0].data[DNS_RR_DATA_MAX - 1], 'q');
	ck_assert_int_eq(fx.fake_tcp_queries, 2);
}
END_TEST

START_TEST(test_query_cache_and_coalescing)
{
	static struct gotrr g[3];
	struct gotrr again;

	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_TXT, 300, TXT_STS, sizeof(TXT_STS) - 1);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 3; i++)
		start_rr("_mta-sts.example.org", DNS_TYPE_TXT, &g[i]);
	run_until(3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(g[i].calls, 1);
		assert_rr(&g[i].r, 0, "v=STSv1; id=20240101T01", 23);
	}
	ck_assert_int_eq(fx.fake_queries, 1);
	/* case and a trailing dot do not matter; no packet for a hit */
	query("_MTA-STS.Example.ORG.", DNS_TYPE_TXT, &again);
	ck_assert_int_eq(again.r.status, DNS_OK);
	assert_rr(&again.r, 0, "v=STSv1; id=20240101T01", 23);
	ck_assert_uint_le(again.r.ttl, 300);
	ck_assert_uint_gt(again.r.ttl, 290);
	ck_assert_int_eq(fx.fake_queries, 1);
	/* another type is another entry; so are MX lookups */
	query("_mta-sts.example.org", DNS_TYPE_TLSA, &again);
	ck_assert_uint_eq(again.r.n, 0);
	ck_assert_int_eq(fx.fake_queries, 2);
}
END_TEST

START_TEST(test_query_cancel)
{
	static struct gotrr cancelled, other, g;

	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_TXT, 300, TXT_STS, sizeof(TXT_STS) - 1);
	memset(&cancelled, 0, sizeof(cancelled));
	memset(&other, 0, sizeof(other));
	dns_cancel(fx.dns, start_rr("a.example", DNS_TYPE_TXT, &cancelled));
	start_rr("a.example", DNS_TYPE_TXT, &other);
	dns_cancel(fx.dns, start_rr("b.example", DNS_TYPE_TXT, &cancelled));
	dns_cancel(fx.dns, start_rr("", DNS_TYPE_TXT, &cancelled)); /* bad */
	run_until(1);
	ck_assert_int_eq(other.calls, 1);
	/* the lone cancelled query filled the cache all the same */
	query("a.example", DNS_TYPE_TXT, &g);
	query("b.example", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(fx.fake_queries, 2);
	dns_cancel(fx.dns, start_rr("b.example", DNS_TYPE_TXT, &cancelled));
	query("a.example", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(cancelled.calls, 0);
}
END_TEST

START_TEST(test_query_bad_names_are_nxdomain_without_dns)
{
	char long_name[DNS_RR_NAME_MAX + 2], long_label[80];
	const char *names[] = { "",         ".",           "a..example",
				".example", long_name,     long_label,
				"a b.example", "a\\046.example", "a\n.example",
				"\xc3\xa4.example", "a/b.example", "*.example" };
	struct gotrr g;

	memset(long_name, 'a', sizeof(long_name) - 1);
	for (size_t i = 60; i < sizeof(long_name) - 1; i += 60)
		long_name[i] = '.';
	long_name[sizeof(long_name) - 1] = '\0';
	snprintf(long_label, sizeof(long_label), "%064d.example", 0);
	fake_start(FAKE_SILENT, 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		query(names[i], DNS_TYPE_TXT, &g);
		ck_assert_msg(g.r.status == DNS_NXDOMAIN, "name %zu", i);
		ck_assert_str_eq(g.r.error, "Invalid domain name");
		ck_assert(!g.r.secure);
	}
	ck_assert_int_eq(fx.fake_queries, 0);
}
END_TEST

START_TEST(test_query_longest_name_is_asked)
{
	char name[DNS_RR_NAME_MAX + 2];
	struct gotrr g;

	memset(name, 'a', DNS_RR_NAME_MAX);
	for (size_t i = 60; i < DNS_RR_NAME_MAX; i += 60)
		name[i] = '.';
	name[DNS_RR_NAME_MAX] = '.'; /* the root's dot does not count */
	name[DNS_RR_NAME_MAX + 1] = '\0';
	fake_start(FAKE_RECORDS, 3);
	ck_assert_int_eq(query(name, DNS_TYPE_TXT, &g)->status, DNS_NXDOMAIN);
	ck_assert_str_eq(g.r.error, "Host or domain name not found (NXDOMAIN)");
	ck_assert_int_eq(fx.fake_queries, 1);
}
END_TEST

static void
on_rr_queries_again(const struct dns_rrset *r, void *arg)
{
	static struct gotrr inner;

	on_rrset(r, arg);
	memset(&inner, 0, sizeof(inner));
	start_rr("again.example", DNS_TYPE_A, &inner);
}

START_TEST(test_query_callback_may_query_again)
{
	static struct gotrr outer;

	fake_start(FAKE_RECORDS, 0);
	fake_add(DNS_TYPE_A, 60, A_4, sizeof(A_4));
	memset(&outer, 0, sizeof(outer));
	dns_query(fx.dns, "first.example", DNS_TYPE_A, on_rr_queries_again,
		  &outer);
	run_until(2);
	ck_assert_int_eq(outer.calls, 1);
	ck_assert_int_eq(fx.fake_queries, 2);
}
END_TEST

START_TEST(test_free_with_queries_outstanding)
{
	static struct gotrr never;
	struct got never_mx;

	fake_start(FAKE_SILENT, 0);
	memset(&never, 0, sizeof(never));
	memset(&never_mx, 0, sizeof(never_mx));
	start_rr("a.example", DNS_TYPE_TXT, &never); /* in flight */
	start_rr("a.example", DNS_TYPE_TXT, &never); /* coalesced */
	start_rr("b.example", DNS_TYPE_TLSA, &never);
	start_rr("..", DNS_TYPE_TLSA, &never);        /* ready: bad name */
	start_mx("c.example", &never_mx);
	dns_free(fx.dns);
	fx.dns = NULL;
	event_base_loop(fx.base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(never.calls, 0);
	ck_assert_int_eq(never_mx.calls, 0);
}
END_TEST

/* dnsmasq: TXT strings (--txt-record) and raw TLSA (--dns-rr) */
START_TEST(test_query_against_dnsmasq)
{
	static const unsigned char tlsa[] = { 3, 1, 1, 0xab, 0xcd };
	struct gotrr g;

	query("_mta-sts.two.test", DNS_TYPE_TXT, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	ck_assert_uint_eq(g.r.n, 1);
	assert_rr(&g.r, 0, "v=STSv1;id=abc", 14);
	ck_assert(!g.r.secure); /* dnsmasq validates nothing here */
	ck_assert_uint_eq(g.r.ttl, 120);
	query("_25._tcp.mx1.two.test", DNS_TYPE_TLSA, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	assert_rr(&g.r, 0, tlsa, sizeof(tlsa));
	query("_25._tcp.mx2.two.test", DNS_TYPE_TLSA, &g);
	ck_assert_int_eq(g.r.status, DNS_NXDOMAIN);
	query("mx1.two.test", DNS_TYPE_A, &g);
	assert_rr(&g.r, 0, "\x7f\x00\x00\x02", 4);
	query("mx1.two.test", DNS_TYPE_AAAA, &g);
	ck_assert_int_eq(g.r.status, DNS_OK);
	ck_assert_uint_eq(g.r.n, 0);
}
END_TEST

/* ---- setup ------------------------------------------------------------- */

static const char *const bad_servers[] = {
	"",           "localhost",     "127.0.0.1:",  "127.0.0.1:0",
	"127.0.0.1:99999", "127.0.0.1:x", "[::1",  "[::1]x", "[::1]:",
	"1.2.3",      ":53",           "[127.0.0.1",
};

START_TEST(test_new_rejects_bad_server)
{
	char *servers[2] = { "127.0.0.1:53", (char *)bad_servers[_i] };
	struct config cfg;
	struct dns *d = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.delivery.dns_servers = servers;
	cfg.delivery.n_dns_servers = 2;
	ck_assert_int_eq(dns_new(fx.base, &cfg, &d), SHOAL_E_CONFIG);
	ck_assert_ptr_null(d);
}
END_TEST

START_TEST(test_new_accepts_server_forms)
{
	char *servers[] = { "127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1",
			    "[::1]" };
	struct config cfg;
	struct dns *d = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.delivery.dns_servers = servers;
	cfg.delivery.n_dns_servers = 5;
	ck_assert_int_eq(dns_new(fx.base, &cfg, &d), 0);
	dns_free(d);
	dns_free(NULL);
}
END_TEST

static Suite *
dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("mx");

	tcase_add_checked_fixture(tc, setup_dnsmasq, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_mx_orders_hosts_by_preference);
	tcase_add_test(tc, test_mx_shuffles_equal_preferences);
	tcase_add_test(tc, test_mx_keeps_at_most_16_hosts_and_ip_literal_names);
	tcase_add_test(tc, test_mx_host_without_address_is_kept);
	tcase_add_test(tc, test_mx_hosts_all_without_address_is_no_hosts);
	tcase_add_test(tc, test_implicit_mx_uses_a_record);
	tcase_add_test(tc, test_implicit_mx_uses_aaaa_record);
	tcase_add_test(tc, test_implicit_mx_lists_ipv4_first);
	tcase_add_test(tc, test_no_mx_and_no_address_is_no_hosts);
	tcase_add_test(tc, test_null_mx_accepts_no_mail);
	tcase_add_test(tc, test_null_mx_beside_others_is_ignored);
	tcase_add_test(tc, test_unknown_domain_is_nxdomain);
	tcase_add_test(tc, test_callback_may_resolve_again);
	tcase_add_test(tc, test_host_name_resolves_to_addresses);
	tcase_add_test(tc, test_cache_answers_after_server_stops);
	tcase_add_test(tc, test_tempfail_is_not_cached);
	tcase_add_test(tc, test_cancel_pending_lookup);
	tcase_add_test(tc, test_cancel_cached_and_literal_lookups);
	tcase_add_test(tc, test_free_with_lookups_outstanding);
	tcase_add_test(tc, test_query_against_dnsmasq);
	suite_add_tcase(s, tc);

	tc = tcase_create("fake");
	tcase_add_checked_fixture(tc, setup_base, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_host_literals_answer_without_dns);
	tcase_add_test(tc, test_invalid_names_are_nxdomain_without_dns);
	tcase_add_test(tc, test_servfail_is_tempfail);
	tcase_add_test(tc, test_refused_is_tempfail);
	tcase_add_test(tc, test_malformed_answer_is_tempfail);
	tcase_add_test(tc, test_timeout_is_tempfail_after_three_tries);
	tcase_add_test(tc, test_nobody_listening_is_tempfail);
	tcase_add_test(tc, test_concurrent_lookups_share_one_query);
	tcase_add_loop_test(tc, test_new_rejects_bad_server, 0,
			    sizeof(bad_servers) / sizeof(*bad_servers));
	tcase_add_test(tc, test_new_accepts_server_forms);
	suite_add_tcase(s, tc);

	tc = tcase_create("rr");
	tcase_add_checked_fixture(tc, setup_base, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_query_txt_joins_character_strings);
	tcase_add_test(tc, test_query_tlsa_is_raw_rdata_of_the_asked_type_only);
	tcase_add_test(tc, test_query_asks_with_ad_bit_and_edns);
	tcase_add_test(tc, test_query_nodata_is_ok_with_no_records);
	tcase_add_test(tc, test_query_nxdomain);
	tcase_add_test(tc, test_query_servfail_is_tempfail_and_not_cached);
	tcase_add_test(tc, test_query_timeout_is_tempfail);
	tcase_add_test(tc, test_query_malformed_answers_are_tempfail);
	tcase_add_test(tc, test_query_compression_loop_in_owner_is_not_followed);
	tcase_add_test(tc, test_query_keeps_16_of_100_records_over_tcp);
	tcase_add_test(tc, test_query_drops_records_over_4096_bytes);
	tcase_add_test(tc, test_query_cache_and_coalescing);
	tcase_add_test(tc, test_query_cancel);
	tcase_add_test(tc, test_query_bad_names_are_nxdomain_without_dns);
	tcase_add_test(tc, test_query_longest_name_is_asked);
	tcase_add_test(tc, test_query_callback_may_query_again);
	tcase_add_test(tc, test_free_with_queries_outstanding);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(dns_suite)
