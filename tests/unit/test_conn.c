/* Check suite for router/conn.c, the stream connection under the router's
 * SMTP sessions: input read and handed on, the input limit pausing and
 * resuming reads, end of input, replies written at once or, when the
 * socket is full, later with the write callback, read and write timeouts,
 * looking at unread input (buffer, socket, or neither after a short read),
 * STARTTLS onto TLS, and a free from inside a callback. The far end is the
 * other half of a socketpair, or a thread with a blocking TLS client. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "router/conn.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/tls_helper.h"

#define RUN_MS 5000 /* deadline for one run_until() */

struct fx {
	struct event_base *base;
	struct conn *c;
	int far; /* the other end */
	int reads, writes;
	short what; /* the last event callback's flags */
	int events;
	bool free_on_read;
	size_t drain_on_read; /* take this much of the input on each read */
};

static struct fx fx;

static void
on_read(struct conn *c, void *arg)
{
	struct fx *f = arg;

	f->reads++;
	if (f->drain_on_read)
		evbuffer_drain(conn_input(c), f->drain_on_read);
	if (f->free_on_read) {
		conn_free(c);
		f->c = NULL;
	}
	event_base_loopbreak(f->base);
}

static void
on_write(struct conn *c, void *arg)
{
	struct fx *f = arg;

	(void)c;
	f->writes++;
	event_base_loopbreak(f->base);
}

static void
on_event(struct conn *c, short what, void *arg)
{
	struct fx *f = arg;

	(void)c;
	f->what = what;
	f->events++;
	event_base_loopbreak(f->base);
}

static void
setup(void)
{
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	memset(&fx, 0, sizeof(fx));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	fx.base = event_base_new();
	fx.c = conn_new(fx.base, sv[0]);
	ck_assert_ptr_nonnull(fx.c);
	fx.far = sv[1];
	conn_setcb(fx.c, on_read, on_write, on_event, &fx);
	conn_enable_read(fx.c, true);
}

static void
teardown(void)
{
	conn_free(fx.c);
	if (fx.far >= 0)
		close(fx.far);
	event_base_free(fx.base);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
	event_base_loopbreak(fx.base);
}

/* Run the loop until *counter passes `than` (a callback breaks it each
 * time), at most RUN_MS. */
static void
run_until(const int *counter, int than)
{
	bool late = false;
	struct timeval tv = { RUN_MS / 1000, 0 };
	struct event *t = evtimer_new(fx.base, on_deadline, &late);

	evtimer_add(t, &tv);
	while (*counter <= than && !late)
		event_base_loop(fx.base, EVLOOP_ONCE);
	event_free(t);
	ck_assert_msg(*counter > than, "timed out after %d ms", RUN_MS);
}

/* Loop passes that wait for nothing: whatever is ready runs. */
static void
run_ready(void)
{
	for (int i = 0; i < 3; i++)
		event_base_loop(fx.base, EVLOOP_NONBLOCK);
}

static void
far_write(const char *s)
{
	ck_assert_int_eq(write(fx.far, s, strlen(s)), (ssize_t)strlen(s));
}

static size_t
input_len(void)
{
	return evbuffer_get_length(conn_input(fx.c));
}

START_TEST(test_input_is_read_and_handed_on)
{
	char buf[16] = { 0 };

	far_write("HELO x\r\n");
	run_until(&fx.reads, 0);
	ck_assert_int_eq(input_len(), 8);
	ck_assert_int_eq(evbuffer_copyout(conn_input(fx.c), buf, 8), 8);
	ck_assert_str_eq(buf, "HELO x\r\n");
}
END_TEST

START_TEST(test_input_limit_pauses_and_resumes_reads)
{
	conn_set_read_max(fx.c, 4);
	far_write("abcdefghij");
	run_until(&fx.reads, 0);
	ck_assert_int_eq(input_len(), 4);
	/* full: no read while nothing is taken, though the socket has more */
	run_ready();
	ck_assert_int_eq(fx.reads, 1);
	ck_assert_int_eq(input_len(), 4);
	evbuffer_drain(conn_input(fx.c), 4); /* taken: reading resumes */
	run_until(&fx.reads, 1);
	ck_assert_int_eq(input_len(), 4);
	fx.drain_on_read = 4;
	evbuffer_drain(conn_input(fx.c), 4);
	run_until(&fx.reads, 2);
	ck_assert_int_eq(fx.reads, 3);
}
END_TEST

START_TEST(test_end_of_input_is_an_eof_event)
{
	close(fx.far);
	fx.far = -1;
	run_until(&fx.events, 0);
	ck_assert_int_eq(fx.what, BEV_EVENT_READING | BEV_EVENT_EOF);
	ck_assert_int_eq(fx.reads, 0);
}
END_TEST

START_TEST(test_flush_writes_at_once)
{
	char buf[32] = { 0 };

	evbuffer_add_printf(conn_output(fx.c), "250 ok\r\n");
	ck_assert(conn_flush(fx.c));
	/* no loop pass: the reply is in the socket already */
	ck_assert_int_eq(read(fx.far, buf, sizeof(buf) - 1), 8);
	ck_assert_str_eq(buf, "250 ok\r\n");
	ck_assert(conn_flush(fx.c)); /* nothing left */
	ck_assert_int_eq(fx.writes, 0);
}
END_TEST

/* The far end reads everything that arrives. */
static size_t far_got;

static void
far_on_read(evutil_socket_t fd, short what, void *arg)
{
	char buf[65536];
	ssize_t n;

	(void)what;
	(void)arg;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		far_got += (size_t)n;
}

START_TEST(test_full_socket_writes_later_then_calls_back)
{
	static char big[1 << 20];
	struct event *ev;

	memset(big, 'x', sizeof(big));
	evbuffer_add(conn_output(fx.c), big, sizeof(big));
	ck_assert(!conn_flush(fx.c)); /* a socketpair holds far less */
	ck_assert_int_gt(evbuffer_get_length(conn_output(fx.c)), 0);
	ck_assert_int_eq(fcntl(fx.far, F_SETFL, O_NONBLOCK), 0);
	far_got = 0;
	ev = event_new(fx.base, fx.far, EV_READ | EV_PERSIST, far_on_read,
		       NULL);
	event_add(ev, NULL);
	run_until(&fx.writes, 0);
	event_free(ev);
	ck_assert_int_eq(evbuffer_get_length(conn_output(fx.c)), 0);
	far_on_read(fx.far, EV_READ, NULL);
	ck_assert_int_eq(far_got, sizeof(big));
	ck_assert_int_eq(fx.events, 0);
}
END_TEST

START_TEST(test_write_timeout_when_the_far_end_does_not_read)
{
	static char big[1 << 20];
	struct timeval tv = { 0, 100 * 1000 };

	conn_set_timeouts(fx.c, NULL, &tv);
	evbuffer_add(conn_output(fx.c), big, sizeof(big));
	ck_assert(!conn_flush(fx.c));
	run_until(&fx.events, 0);
	ck_assert_int_eq(fx.what, BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT);
	ck_assert_int_eq(fx.writes, 0);
}
END_TEST

/* The session calls conn_flush() after every input: that must not put
 * the write timeout off (a client sending a byte now and then while it
 * never reads would live on). */
static void
flush_again(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	(void)conn_flush(fx.c);
}

START_TEST(test_flush_while_waiting_keeps_the_write_timeout)
{
	static char big[1 << 20];
	struct timeval tv = { 0, 200 * 1000 }, every = { 0, 20 * 1000 };
	struct event *t = event_new(fx.base, -1, EV_PERSIST, flush_again, NULL);

	conn_set_timeouts(fx.c, NULL, &tv);
	evbuffer_add(conn_output(fx.c), big, sizeof(big));
	ck_assert(!conn_flush(fx.c));
	event_add(t, &every);
	run_until(&fx.events, 0);
	event_free(t);
	ck_assert_int_eq(fx.what, BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT);
}
END_TEST

START_TEST(test_read_timeout_when_nothing_comes)
{
	struct timeval tv = { 0, 100 * 1000 };

	conn_set_timeouts(fx.c, &tv, NULL);
	run_until(&fx.events, 0);
	ck_assert_int_eq(fx.what, BEV_EVENT_READING | BEV_EVENT_TIMEOUT);
	/* positive control: input that comes in time is read */
	conn_enable_read(fx.c, true);
	far_write("x");
	run_until(&fx.reads, 0);
	ck_assert_int_eq(input_len(), 1);
}
END_TEST

START_TEST(test_peek_sees_the_buffer_then_the_socket)
{
	char buf[16] = { 0 };

	conn_set_read_max(fx.c, 4);
	far_write("abcdefgh");
	run_until(&fx.reads, 0);
	/* in the buffer */
	ck_assert_int_eq(conn_peek(fx.c, buf, sizeof(buf)), 4);
	ck_assert(memcmp(buf, "abcd", 4) == 0);
	/* taken: the read filled what it asked for, so the socket is asked */
	conn_enable_read(fx.c, false);
	evbuffer_drain(conn_input(fx.c), 4);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(conn_peek(fx.c, buf, sizeof(buf)), 4);
	ck_assert_str_eq(buf, "efgh");
}
END_TEST

START_TEST(test_peek_after_a_short_read_asks_no_one)
{
	char buf[16];

	far_write("ab");
	run_until(&fx.reads, 0);
	evbuffer_drain(conn_input(fx.c), 2);
	/* what comes after a read that took all there was is not seen */
	conn_enable_read(fx.c, false);
	far_write("cd");
	ck_assert_int_eq(conn_peek(fx.c, buf, sizeof(buf)), 0);
	/* it is read when reading goes on */
	conn_enable_read(fx.c, true);
	run_until(&fx.reads, 1);
	ck_assert_int_eq(input_len(), 2);
}
END_TEST

START_TEST(test_free_inside_the_read_callback)
{
	fx.free_on_read = true;
	far_write("QUIT\r\n");
	run_until(&fx.reads, 0);
	ck_assert_ptr_null(fx.c);
	/* the socket is closed: the far end reads its end */
	{
		char b;

		ck_assert_int_eq(read(fx.far, &b, 1), 0);
	}
}
END_TEST

START_TEST(test_start_tls_needs_written_output_and_empty_input)
{
	SSL_CTX *ctx = check_tls_server_ctx("conn.test");

	evbuffer_add_printf(conn_output(fx.c), "220 go\r\n");
	ck_assert_int_eq(conn_start_tls(fx.c, SSL_new(ctx), true), -1);
	ck_assert(!conn_is_tls(fx.c));
	ck_assert(conn_flush(fx.c));
	far_write("junk");
	run_until(&fx.reads, 0);
	ck_assert_int_eq(conn_start_tls(fx.c, SSL_new(ctx), true), -1);
	ck_assert(!conn_is_tls(fx.c));
	SSL_CTX_free(ctx);
}
END_TEST

/* The TLS client: reads the plaintext 220, shakes hands, says "hi",
 * expects "ok", closes. */
static void *
tls_client(void *arg)
{
	int fd = *(int *)arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	char buf[16] = { 0 };
	intptr_t ok = 0;

	if (read(fd, buf, 8) == 8 && memcmp(buf, "220 go\r\n", 8) == 0) {
		SSL_set_fd(ssl, fd);
		memset(buf, 0, sizeof(buf));
		ok = SSL_connect(ssl) == 1 && SSL_write(ssl, "hi", 2) == 2 &&
		     SSL_read(ssl, buf, 2) == 2 && memcmp(buf, "ok", 2) == 0;
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (void *)ok;
}

START_TEST(test_starttls_goes_on_in_tls)
{
	SSL_CTX *ctx = check_tls_server_ctx("conn.test");
	pthread_t th;
	void *ok = NULL;
	char buf[4] = { 0 };

	ck_assert_int_eq(pthread_create(&th, NULL, tls_client, &fx.far), 0);
	evbuffer_add_printf(conn_output(fx.c), "220 go\r\n");
	ck_assert(conn_flush(fx.c));
	ck_assert_int_eq(conn_start_tls(fx.c, SSL_new(ctx), true), 0);
	ck_assert(conn_is_tls(fx.c));
	run_until(&fx.events, 0);
	ck_assert_int_eq(fx.what, BEV_EVENT_CONNECTED);
	ck_assert_ptr_nonnull(conn_ssl(fx.c));
	run_until(&fx.reads, 0);
	ck_assert_int_eq(evbuffer_remove(conn_input(fx.c), buf, 2), 2);
	ck_assert_str_eq(buf, "hi");
	evbuffer_add(conn_output(fx.c), "ok", 2);
	(void)conn_flush(fx.c);
	run_until(&fx.events, 1); /* the client's close */
	ck_assert(fx.what & BEV_EVENT_EOF);
	ck_assert_int_eq(pthread_join(th, &ok), 0);
	ck_assert_msg(ok != NULL, "the client's TLS exchange failed");
	SSL_CTX_free(ctx);
}
END_TEST

static Suite *
conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_input_is_read_and_handed_on);
	tcase_add_test(tc, test_input_limit_pauses_and_resumes_reads);
	tcase_add_test(tc, test_end_of_input_is_an_eof_event);
	tcase_add_test(tc, test_flush_writes_at_once);
	tcase_add_test(tc, test_full_socket_writes_later_then_calls_back);
	tcase_add_test(tc, test_write_timeout_when_the_far_end_does_not_read);
	tcase_add_test(tc, test_flush_while_waiting_keeps_the_write_timeout);
	tcase_add_test(tc, test_read_timeout_when_nothing_comes);
	tcase_add_test(tc, test_peek_sees_the_buffer_then_the_socket);
	tcase_add_test(tc, test_peek_after_a_short_read_asks_no_one);
	tcase_add_test(tc, test_free_inside_the_read_callback);
	tcase_add_test(tc, test_start_tls_needs_written_output_and_empty_input);
	tcase_add_test(tc, test_starttls_goes_on_in_tls);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(conn_suite)
