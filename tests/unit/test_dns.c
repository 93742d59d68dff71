/* Check suite for the resolver (node/delivery/dns*.c) against a real
 * dnsmasq on 127.0.0.1 at a free port, plus a fake server in this process
 * for the answers dnsmasq will not give (SERVFAIL, REFUSED, silence,
 * garbage) and for counting queries.
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

enum fake_mode { FAKE_SILENT, FAKE_RCODE, FAKE_GARBAGE };

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

static void
fake_on_read(evutil_socket_t fd, short what, void *arg)
{
	unsigned char b[512];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(fd, b, sizeof(b), 0, (struct sockaddr *)&from,
			     &flen);

	if (n < 12)
		return;
	fx.fake_queries++;
	if (fx.fake_mode == FAKE_SILENT)
		return;
	b[2] |= 0x80;                                /* QR */
	b[3] = (unsigned char)(0x80 | fx.fake_rcode); /* RA, RCODE */
	if (fx.fake_mode == FAKE_GARBAGE)
		b[7] = 1; /* ANCOUNT 1, and no record follows */
	sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&from, flen);
}

static void
fake_start(enum fake_mode mode, int rcode)
{
	int port;

	fx.fake_fd = udp_bound(&port);
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
	return s;
}

CHECK_MAIN(dns_suite)
