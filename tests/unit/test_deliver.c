/* Check suite for node/delivery/deliver.c and dest.c, built without the
 * rest of the node: delivery gets an event base, a config, an id, a map
 * and struct deliver_hooks, and these tests are the layer above. They
 * cover the job flow and the destination bookkeeping: local refusals
 * answered inside deliver_submit(), a job that may not start handed back
 * (not done), an unreachable destination deferred as a whole and freed,
 * jobs waiting on a connection handed back by deliver_recheck(), and one
 * message delivered through a scripted server with the connection kept
 * for reuse. Every destination here is an address literal on loopback:
 * no DNS server is asked. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/shardmap.h"
#include "node/delivery/deliver.h"
#include "node/delivery/job.h"
#include "tests/unit/check_helpers.h"

#define RUN_MS 10000   /* a test's loop waits at most this long */
#define MAX_SEEN 8

/* ---- the layer above --------------------------------------------------- */

struct seen {
	enum outcome outcome;
	char status[16];
	char category[32];
	int code;
	bool relayed;
};

static struct {
	struct event_base *base;
	struct config *cfg;
	Shoal__ShardMap *map;
	struct deliver *d;
	bool may_start;      /* what job_may_start answers */
	bool in_submit;      /* inside deliver_submit() */
	int n_done, n_done_in_submit, n_abandoned, n_dns;
	enum dns_status dns_last;
	struct seen seen[MAX_SEEN];
} fx;

static void
hook_done(void *arg, struct job *j)
{
	ck_assert_ptr_eq(arg, &fx);
	for (size_t k = 0; k < j->n && fx.n_done < MAX_SEEN; k++) {
		struct seen *s = &fx.seen[fx.n_done];

		s->outcome = j->res[k].outcome;
		snprintf(s->status, sizeof(s->status), "%s", j->res[k].status);
		snprintf(s->category, sizeof(s->category), "%s",
			 classify_name(j->res[k].category));
		s->code = j->res[k].reply.code;
		s->relayed = j->res[k].relayed_no_dsn;
	}
	fx.n_done++;
	fx.n_done_in_submit += fx.in_submit;
	job_free(j);
}

static bool
hook_may_start(void *arg, const struct job *j)
{
	(void)arg;
	(void)j;
	return fx.may_start;
}

static void
hook_abandon(void *arg, struct job *j)
{
	(void)arg;
	fx.n_abandoned++;
	job_free(j);
}

static void
hook_dns(void *arg, enum dns_status st)
{
	(void)arg;
	fx.n_dns++;
	fx.dns_last = st;
}

static const struct deliver_hooks hooks = {
	.job_done = hook_done,
	.job_may_start = hook_may_start,
	.job_abandon = hook_abandon,
	.dns_done = hook_dns,
	.arg = &fx,
};

/* ---- a job, as the scheduler would make it ------------------------------ */

static struct job *
make_job(const char *domain, const char *rcpt)
{
	Shoal__StoredMessage sm = SHOAL__STORED_MESSAGE__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Recipient r = SHOAL__RECIPIENT__INIT;
	Shoal__Recipient *rs[1] = { &r };
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	struct job_msg *m = calloc(1, sizeof(*m));
	struct job *j = calloc(1, sizeof(*j));
	size_t len;
	uint8_t *buf;

	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(j);
	r.address = (char *)rcpt;
	r.orcpt = "";
	env.mail_from = "a@x.test";
	env.n_rcpts = 1;
	env.rcpts = rs;
	env.envid = "";
	sm.qid = "0TEST00000001";
	sm.envelope = &env;
	len = shoal__stored_message__get_packed_size(&sm);
	buf = malloc(len ? len : 1);
	shoal__stored_message__pack(&sm, buf);
	m->sm = shoal__stored_message__unpack(NULL, len, buf);
	free(buf);
	ck_assert_ptr_nonnull(m->sm);
	m->refs = 1;
	snprintf(m->qid, sizeof(m->qid), "%s", sm.qid);
	m->body = strdup(body);
	m->body_len = strlen(body);
	j->msg = m;
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	j->n = 1;
	j->rcpt = calloc(1, sizeof(*j->rcpt));
	j->res = calloc(1, sizeof(*j->res));
	j->started = (uint64_t)time(NULL);
	j->started_us = clock_mono_us();
	return j;
}

static void
submit(const char *domain, const char *rcpt)
{
	fx.in_submit = true;
	deliver_submit(fx.d, make_job(domain, rcpt));
	fx.in_submit = false;
}

static void
run_until(const int *counter, int want)
{
	uint64_t deadline = clock_mono_ms() + RUN_MS;

	while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < want) {
		struct timeval tv = { 0, 5000 };

		ck_assert_msg(clock_mono_ms() < deadline, "deadline passed");
		event_base_loopexit(fx.base, &tv);
		event_base_dispatch(fx.base);
	}
}

static void
run_ms(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(fx.base, &tv);
	event_base_dispatch(fx.base);
}

static void
count_dest(const char *domain, uint32_t n_conns, void *arg)
{
	uint32_t *out = arg;

	(void)domain;
	out[0]++;
	out[1] += n_conns;
}

/* [0]: destinations, [1]: their connections */
static void
dests(uint32_t out[2])
{
	out[0] = out[1] = 0;
	deliver_foreach_dest(fx.d, count_dest, out);
}

/* ---- fixture --------------------------------------------------------------- */

/* A port on loopback where nothing listens (bound, then closed). */
static int
closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* A listening socket on loopback; its port in *port. */
static int
listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void
start(int smtp_port, const char *extra)
{
	char text[2048], path[64], err[512];
	int rc;

	snprintf(text, sizeof(text),
		 "nodes = ( { id = \"n1\"; endpoint = \"tcp://127.0.0.1:7101\"; "
		 "data_dir = \"/tmp/n1\"; } );\n"
		 "delivery: {\n"
		 "  smtp_port = %d;\n"
		 "  dns_servers = [ \"127.0.0.1:1\" ];\n"
		 "  helo_name = \"n1.test\";\n"
		 "%s"
		 "};\n",
		 smtp_port, extra ? extra : "");
	check_write_temp(path, sizeof(path), "deliver", text, strlen(text));
	rc = config_load(path, &fx.cfg, err, sizeof(err));
	unlink(path);
	ck_assert_msg(rc == 0, "config_load: %s", err);
	fx.map = shardmap_derive(fx.cfg);
	ck_assert_ptr_nonnull(fx.map);
	fx.d = deliver_new(fx.base, fx.cfg, "n1", fx.map, &hooks);
	ck_assert_ptr_nonnull(fx.d);
}

static void
setup(void)
{
	memset(&fx, 0, sizeof(fx));
	signal(SIGPIPE, SIG_IGN);
	log_init("test_deliver", getenv("TEST_DELIVER_DEBUG") ?
					 LOG_LVL_DEBUG :
					 LOG_LVL_ERROR);
	if (getenv("TEST_DELIVER_DEBUG"))
		log_set_debug("smtp");
	fx.base = event_base_new();
	ck_assert_ptr_nonnull(fx.base);
	fx.may_start = true;
}

static void
teardown(void)
{
	deliver_free(fx.d);
	shardmap_free(fx.map);
	config_free(fx.cfg);
	event_base_free(fx.base);
}

/* ---- refused before any lookup --------------------------------------------- */

struct local_case {
	const char *domain;
	enum outcome want;
	const char *status;
	const char *category;
};

static const struct local_case local_cases[] = {
	{ "", OUTCOME_BOUNCED, "5.1.3", "invalid_recipient" },
	{ "[127.0.0.1", OUTCOME_BOUNCED, "5.1.2", "invalid_recipient" },
	{ "[]", OUTCOME_BOUNCED, "5.1.2", "invalid_recipient" },
	/* (a route host delivery cannot parse, 4.3.5, is refused by the
	 * config check first: test_outcome.c has its verdict) */
};

START_TEST(test_deliver_local_refusal_is_done_inside_submit)
{
	const struct local_case *c = &local_cases[_i];
	uint32_t n[2];
	start(closed_port(), NULL);
	submit(c->domain, "b@y.test");
	ck_assert_int_eq(fx.n_done, 1);
	ck_assert_int_eq(fx.n_done_in_submit, 1);
	ck_assert_int_eq(fx.seen[0].outcome, c->want);
	ck_assert_str_eq(fx.seen[0].status, c->status);
	ck_assert_str_eq(fx.seen[0].category, c->category);
	ck_assert_int_eq(fx.n_dns, 0);
	dests(n);
	ck_assert_uint_eq(n[0], 0);
	ck_assert_uint_eq(deliver_connections(fx.d), 0);
}
END_TEST

/* ---- destinations and connections ------------------------------------------ */

/* Nothing listens: every address failed, the destination's jobs are
 * deferred as a whole (4.4.1, connection_failure) and the destination,
 * with nothing left to do, is freed. */
START_TEST(test_deliver_unreachable_destination_deferred_and_freed)
{
	uint32_t n[2];

	start(closed_port(), NULL);
	submit("[127.0.0.1]", "b@[127.0.0.1]");
	ck_assert_int_eq(fx.n_done, 0); /* never inside submit */
	run_until(&fx.n_done, 1);
	ck_assert_int_eq(fx.n_dns, 1);
	ck_assert_int_eq(fx.dns_last, DNS_OK);
	ck_assert_int_eq(fx.seen[0].outcome, OUTCOME_DEFERRED);
	ck_assert_str_eq(fx.seen[0].status, "4.4.1");
	ck_assert_str_eq(fx.seen[0].category, "connection_failure");
	ck_assert_int_eq(fx.seen[0].code, 0);
	dests(n);
	ck_assert_uint_eq(n[0], 0);
	ck_assert_uint_eq(deliver_connections(fx.d), 0);
}
END_TEST

/* A job that may not start (lease lapsed, fenced, frozen) goes back
 * through job_abandon, never job_done, and opens no connection. */
START_TEST(test_deliver_job_that_may_not_start_is_abandoned)
{
	uint32_t n[2];

	start(closed_port(), NULL);
	fx.may_start = false;
	submit("[127.0.0.1]", "b@[127.0.0.1]");
	run_until(&fx.n_abandoned, 1);
	ck_assert_int_eq(fx.n_done, 0);
	ck_assert_uint_eq(deliver_connections(fx.d), 0);
	dests(n);
	ck_assert_uint_eq(n[0], 0);
}
END_TEST

/* A server that accepts the connection but never greets: the jobs wait
 * on the destination; deliver_recheck() hands back those that may no
 * longer start, while the connection stays until deliver_free(). */
START_TEST(test_deliver_recheck_hands_back_waiting_jobs)
{
	int port, lfd = listener(&port);
	uint32_t n[2];

	start(port, NULL);
	submit("[127.0.0.1]", "b@[127.0.0.1]");
	submit("[127.0.0.1]", "c@[127.0.0.1]");
	run_until(&fx.n_dns, 2);
	run_ms(50);
	dests(n);
	ck_assert_uint_eq(n[0], 1);   /* one destination for both */
	ck_assert_uint_ge(n[1], 1);   /* connecting */
	ck_assert_int_eq(fx.n_done + fx.n_abandoned, 0);
	fx.may_start = false;
	deliver_recheck(fx.d);
	ck_assert_int_eq(fx.n_abandoned, 2);
	ck_assert_int_eq(fx.n_done, 0);
	dests(n);
	ck_assert_uint_eq(n[0], 1);   /* its connections still open */
	close(lfd);
}
END_TEST

/* ---- one message through a scripted server ------------------------------- */

static struct {
	int lfd;
	int done;        /* the script ran to its end */
	char err[128];
} srv;

static bool
srv_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char ch;

		if (poll(&p, 1, RUN_MS) != 1 || read(fd, &ch, 1) != 1)
			return false;
		if (ch == '\n') {
			if (n > 0 && buf[n - 1] == '\r')
				n--;
			buf[n] = '\0';
			return true;
		}
		buf[n++] = ch;
	}
	return false;
}

static void
srv_say(int fd, const char *s)
{
	ssize_t w = write(fd, s, strlen(s));

	(void)w;
}

static void *
srv_run(void *arg)
{
	static const char *const expect[][2] = {
		{ "EHLO n1.test", "250 mx.test\r\n" }, /* no DSN offered */
		{ "MAIL FROM:<a@x.test>", "250 ok\r\n" },
		{ "RCPT TO:<b@[127.0.0.1]>", "250 ok\r\n" },
		{ "DATA", "354 go\r\n" },
	};
	char line[1024];
	int fd = accept(srv.lfd, NULL, NULL);

	(void)arg;
	if (fd < 0) {
		snprintf(srv.err, sizeof(srv.err), "accept: %s",
			 strerror(errno));
		goto out;
	}
	srv_say(fd, "220 mx.test ESMTP\r\n");
	for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		if (!srv_line(fd, line, sizeof(line)) ||
		    strcmp(line, expect[i][0]) != 0) {
			snprintf(srv.err, sizeof(srv.err), "want \"%s\"",
				 expect[i][0]);
			goto close;
		}
		srv_say(fd, expect[i][1]);
	}
	do {
		if (!srv_line(fd, line, sizeof(line))) {
			snprintf(srv.err, sizeof(srv.err), "no final dot");
			goto close;
		}
	} while (strcmp(line, ".") != 0);
	srv_say(fd, "250 2.0.0 queued as X1\r\n");
	/* QUIT when delivery is freed; or just the close */
	if (srv_line(fd, line, sizeof(line)) && strcmp(line, "QUIT") == 0)
		srv_say(fd, "221 bye\r\n");
close:
	close(fd);
out:
	__atomic_store_n(&srv.done, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(test_deliver_one_message_keeps_the_connection)
{
	pthread_t t;
	int port;
	uint32_t n[2];

	memset(&srv, 0, sizeof(srv));
	srv.lfd = listener(&port);
	ck_assert_int_eq(pthread_create(&t, NULL, srv_run, NULL), 0);
	start(port, NULL);
	submit("[127.0.0.1]", "b@[127.0.0.1]");
	run_until(&fx.n_done, 1);
	ck_assert_msg(srv.err[0] == '\0', "server: %s", srv.err);
	ck_assert_int_eq(fx.seen[0].outcome, OUTCOME_DELIVERED);
	ck_assert_int_eq(fx.seen[0].code, 250);
	ck_assert_str_eq(fx.seen[0].status, "2.0.0");
	ck_assert(fx.seen[0].relayed); /* RFC 3461: no DSN offered */
	/* kept for the next message: idle, not closed */
	ck_assert_uint_eq(deliver_connections(fx.d), 1);
	dests(n);
	ck_assert_uint_eq(n[0], 1);
	ck_assert_uint_eq(n[1], 1);
	/* shutdown says QUIT on it and frees it without the loop */
	deliver_free(fx.d);
	fx.d = NULL;
	pthread_join(t, NULL);
	ck_assert_msg(srv.err[0] == '\0', "server: %s", srv.err);
	close(srv.lfd);
}
END_TEST

/* ---- the limits share ------------------------------------------------------ */

START_TEST(test_deliver_map_changed_takes_the_map_as_argument)
{
	start(closed_port(), NULL);
	deliver_map_changed(NULL, fx.map);  /* nothing */
	deliver_map_changed(fx.d, fx.map);  /* same share: nothing */
	deliver_map_changed(fx.d, NULL);    /* no map: the whole limits */
	submit("", "b");
	ck_assert_int_eq(fx.n_done, 1);
}
END_TEST

static Suite *
deliver_suite(void)
{
	Suite *s = suite_create("deliver");
	TCase *tc;

	tc = tcase_create("flow");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_deliver_local_refusal_is_done_inside_submit,
			    0, sizeof(local_cases) / sizeof(local_cases[0]));
	tcase_add_test(tc, test_deliver_map_changed_takes_the_map_as_argument);
	suite_add_tcase(s, tc);

	tc = tcase_create("dest");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc,
		       test_deliver_unreachable_destination_deferred_and_freed);
	tcase_add_test(tc, test_deliver_job_that_may_not_start_is_abandoned);
	tcase_add_test(tc, test_deliver_recheck_hands_back_waiting_jobs);
	tcase_add_test(tc, test_deliver_one_message_keeps_the_connection);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(deliver_suite)
