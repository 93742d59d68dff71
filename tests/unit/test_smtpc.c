/* Check suite for the SMTP client (node/delivery/smtpc*.c) against a
 * scripted SMTP server in this process (tests/unit/smtpc_script_helper.h):
 * the exact bytes on the wire, every reply, failure and callback order.
 * Timeouts use timeout_scale_pct = 1 (1% of RFC 5321 values). The checks
 * of the server's certificate (VERIFY, DANE) are in test_smtpc_tls.c.
 *
 * The body encoder (node/delivery/smtpc_proto.h) is held against a model written
 * apart from it, for every short input over CR, LF, "." and a letter and
 * for long lines, each cut into pieces at every offset, and every output
 * is read back as a strict receiver would (no bare CR or LF, one "." line
 * at the end, no line over 1000 octets). */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "lib/log.h"
#include "node/delivery/smtpc.h"
#include "node/delivery/smtpc_proto.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/smtpc_script_helper.h"
#include "tests/unit/tls_helper.h"


/* ---- sessions and the bytes on the wire --------------------------------- */

/* RFC 5321 4.5.2: a leading dot is doubled; the body gets a final CRLF
 * when it lacks one; ".\r\n" ends it. */
static const struct {
	const char *body, *wire;
} bodies[] = {
	{ "Subject: t\r\n\r\nhello\r\n", "Subject: t\r\n\r\nhello\r\n.\r\n" },
	{ "no final line end", "no final line end\r\n.\r\n" },
	{ ".lead\r\nmid.dle\r\n..two\r\n.\r\nend\r\n",
	  "..lead\r\nmid.dle\r\n...two\r\n..\r\nend\r\n.\r\n" },
	{ "", ".\r\n" },
	{ ".", "..\r\n.\r\n" },
	{ "a\r\n.\r\n", "a\r\n..\r\n.\r\n" },
	{ "x\r\n.", "x\r\n..\r\n.\r\n" },
	{ "\r\n.\r\n\r\n", "\r\n..\r\n\r\n.\r\n" },
	/* RFC 5321 2.3.8: whatever the queue holds, a bare CR or LF goes
	 * out as CRLF, and the line it starts is dot-stuffed like any other
	 * (a smuggled "." line after a bare CR stays message text) */
	{ "hello\r.\r\nMAIL FROM:<evil@x.test>\r\n",
	  "hello\r\n..\r\nMAIL FROM:<evil@x.test>\r\n.\r\n" },
	{ "a\n.\nRCPT TO:<evil@x.test>\n",
	  "a\r\n..\r\nRCPT TO:<evil@x.test>\r\n.\r\n" },
	{ "a\r", "a\r\n.\r\n" },
	{ "a\n", "a\r\n.\r\n" },
	{ "\r", "\r\n.\r\n" },
	{ "\n.", "\r\n..\r\n.\r\n" },
	{ "\r\r\n.", "\r\n\r\n..\r\n.\r\n" },
	{ "x\r\n\r", "x\r\n\r\n.\r\n" },
	{ "a\n\r\n.\r\n", "a\r\n\r\n..\r\n.\r\n" },
	{ "a\n\r.\n\r", "a\r\n\r\n..\r\n\r\n.\r\n" },
};

START_TEST(test_plain_session_sends_exact_bytes)
{
	/* no extensions: SIZE, BODY, SMTPUTF8 and the DSN parameters stay
	 * off however the message asks, and each command waits its reply */
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		QUIET(30),
		SEND("250 2.1.0 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		QUIET(30),
		SEND("250 2.1.5 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go ahead\r\n"),
		DATA,
		SEND("250 2.0.0 queued as X1\r\n"),
		QUIT_END,
	};
	static const unsigned notify[] = { 2 | 4 };
	static const char *const orcpt[] = { "rfc822;b@y.test" };
	struct smtpc_msg m = msg(1, bodies[_i].body);
	char expect[512];

	m.body_8bit = true;
	m.notify = notify;
	m.orcpt = orcpt;
	m.ret = 1;
	m.envid = "env-1";
	session_ok(script);
	ck_assert(fx.info.esmtp);
	ck_assert(!fx.info.pipelining && !fx.info.size && !fx.info.dsn);
	ck_assert(!fx.info.eightbit && !fx.info.smtputf8);
	ck_assert(!fx.info.tls_active);
	ck_assert_str_eq(fx.info.peer_ip, "127.0.0.1");
	ck_assert_str_eq(fx.info.mx_name, "mx.test");
	assert_reply(&fx.info.greeting, 220, "", "mx.test ESMTP ready");
	send_msg(&m);
	ck_assert_int_eq(fx.done[0].res.failed_phase, SMTPC_PH_QUIT);
	ck_assert(!fx.done[0].res.conn_lost);
	ck_assert(fx.done[0].usable);
	ck_assert_uint_eq(fx.done[0].res.n_rcpts, 1);
	assert_reply(&fx.done[0].rcpt[0], 250, "2.0.0", "queued as X1");
	assert_reply(&fx.done[0].res.msg_reply, 250, "2.0.0", "queued as X1");
	finish();
	snprintf(expect, sizeof(expect),
		 "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
		 "RCPT TO:<b@y.test>\r\nDATA\r\n%sQUIT\r\n",
		 bodies[_i].wire);
	ck_assert_str_eq(wire(), expect);
}
END_TEST

START_TEST(test_extensions_add_size_body_utf8_and_dsn)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test greets you\r\n250-PIPELINING\r\n"
		     "250-size 1000000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
		     "250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n"),
		LINES(5),
		SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n"
		     "250 2.1.5 ok\r\n354 go\r\n"),
		DATA,
		SEND("250 2.0.0 ok\r\n"),
		QUIT_END,
	};
	/* RFC 3461 bits: 1 NEVER, 2 SUCCESS, 4 FAILURE, 8 DELAY */
	static const unsigned notify[] = { 2 | 4 | 8, 1, 0 };
	static const char *const orcpt[] = { "rfc822;b@y.test", "",
					     "rfc822;bad addr" };
	struct smtpc_msg m = msg(3, "hi\r\n");

	m.body_8bit = true;
	m.smtputf8 = true;
	m.notify = notify;
	m.orcpt = orcpt;
	m.ret = 2;
	m.envid = "id+1=2 x";
	session_ok(script);
	ck_assert(fx.info.esmtp && fx.info.pipelining && fx.info.size);
	ck_assert_uint_eq(fx.info.max_size, 1000000);
	ck_assert(fx.info.eightbit && fx.info.smtputf8 && fx.info.dsn);
	ck_assert(!fx.info.starttls);
	send_msg(&m);
	ck_assert_int_eq(fx.done[0].res.failed_phase, SMTPC_PH_QUIT);
	for (size_t k = 0; k < 3; k++)
		assert_reply(&fx.done[0].rcpt[k], 250, "2.0.0", "ok");
	finish();
	ck_assert_str_eq(wire(),
			 "EHLO client.test\r\n"
			 "MAIL FROM:<a@x.test> SIZE=4 BODY=8BITMIME SMTPUTF8 "
			 "RET=HDRS ENVID=id+2B1+3D2+20x\r\n"
			 "RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE,DELAY "
			 "ORCPT=rfc822;b@y.test\r\n"
			 "RCPT TO:<c@y.test> NOTIFY=NEVER\r\n"
			 "RCPT TO:<d@y.test>\r\n"
			 "DATA\r\nhi\r\n.\r\nQUIT\r\n");
}
END_TEST

START_TEST(test_null_sender_and_7bit_body_sends_no_body)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250-8BITMIME\r\n250-DSN\r\n250 SIZE\r\n"),
		EXPECT("MAIL FROM:<> SIZE=3"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 ok\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	m.mail_from = "";
	session_ok(script);
	ck_assert(fx.info.size);
	ck_assert_uint_eq(fx.info.max_size, 0); /* SIZE with no limit */
	send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 250, "", "ok");
	finish();
}
END_TEST

START_TEST(test_ehlo_refused_falls_back_to_helo)
{
	static const struct step script[] = {
		GREET,
		SEND("502 5.5.1 what is EHLO\r\n"),
		EXPECT("HELO client.test"),
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 ok\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	m.body_8bit = true;
	session_ok(script);
	ck_assert(!fx.info.esmtp);
	ck_assert(!fx.info.pipelining && !fx.info.eightbit);
	send_msg(&m);
	ck_assert_int_eq(fx.done[0].rcpt[0].code, 250);
	finish();
}
END_TEST

START_TEST(test_ehlo_421_fails_without_helo)
{
	static const struct step script[] = {
		GREET,
		SEND("421 4.3.2 shutting down\r\n"),
		WAIT_EOF,
		END,
	};

	session(script, SMTPC_TLS_NONE, NULL, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_EHLO);
	assert_reply(&fx.ready_reply, 421, "4.3.2", "shutting down");
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\n");
}
END_TEST

START_TEST(test_helo_refused_fails_in_ehlo_phase)
{
	static const struct step script[] = {
		GREET,
		SEND("500 no\r\n"),
		EXPECT("HELO client.test"),
		SEND("550 5.7.1 go away\r\n"),
		WAIT_EOF,
		END,
	};

	session(script, SMTPC_TLS_NONE, NULL, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_EHLO);
	assert_reply(&fx.ready_reply, 550, "5.7.1", "go away");
	finish();
}
END_TEST

START_TEST(test_pipelining_sends_one_batch)
{
	/* the server reads MAIL, both RCPTs and DATA before it answers */
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n"
		     "354 go\r\n"),
		DATA,
		SEND("250 2.0.0 done\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");

	session_ok(script);
	ck_assert(fx.info.pipelining);
	send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 250, "2.0.0", "done");
	assert_reply(&fx.done[0].rcpt[1], 250, "2.0.0", "done");
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
				 "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
				 "DATA\r\nx\r\n.\r\nQUIT\r\n");
}
END_TEST

/* _i = 0 pipelined, 1 one by one */
START_TEST(test_mixed_rcpt_results_one_reply_each)
{
	static const struct step piped[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(5),
		SEND("250 2.1.0 sender ok\r\n250 2.1.5 ok\r\n"
		     "550 5.1.1 no such user\r\n451 4.3.0 try later\r\n"
		     "354 go\r\n"),
		DATA,
		SEND("250 2.0.0 queued\r\n"),
		QUIT_END,
	};
	static const struct step stepped[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 2.1.0 sender ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 2.1.5 ok\r\n"),
		EXPECT("RCPT TO:<c@y.test>"),
		SEND("550 5.1.1 no such user\r\n"),
		EXPECT("RCPT TO:<d@y.test>"),
		SEND("451 4.3.0 try later\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 2.0.0 queued\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(3, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(_i == 0 ? piped : stepped);
	send_msg(&m);
	ck_assert_uint_eq(d->res.n_rcpts, 3);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_QUIT);
	ck_assert(!d->res.conn_lost && d->usable);
	assert_reply(&d->rcpt[0], 250, "2.0.0", "queued");
	assert_reply(&d->rcpt[1], 550, "5.1.1", "no such user");
	assert_reply(&d->rcpt[2], 451, "4.3.0", "try later");
	finish();
}
END_TEST

/* _i = 0: DATA gets 554; 1: DATA gets 354 and a lone "." recovers */
START_TEST(test_all_rcpts_refused_with_pipelined_data)
{
	static const struct step data554[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("250 ok\r\n550 5.1.1 no b\r\n550 5.1.1 no c\r\n"
		     "554 5.5.1 no valid recipients\r\n"),
		QUIT_END,
	};
	static const struct step data354[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("250 ok\r\n550 5.1.1 no b\r\n550 5.1.1 no c\r\n"
		     "354 go\r\n"),
		EXPECT("."),
		SEND("554 5.5.1 empty message\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "secret body\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(_i == 0 ? data554 : data354);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_RCPT);
	ck_assert(!d->res.conn_lost && d->usable);
	assert_reply(&d->rcpt[0], 550, "5.1.1", "no b");
	assert_reply(&d->rcpt[1], 550, "5.1.1", "no c");
	if (_i == 0)
		assert_reply(&d->res.msg_reply, 550, "5.1.1", "no c");
	finish();
	/* the body never goes out */
	ck_assert_str_eq(wire(), _i == 0 ? "EHLO client.test\r\n"
					   "MAIL FROM:<a@x.test>\r\n"
					   "RCPT TO:<b@y.test>\r\n"
					   "RCPT TO:<c@y.test>\r\n"
					   "DATA\r\nQUIT\r\n" :
					   "EHLO client.test\r\n"
					   "MAIL FROM:<a@x.test>\r\n"
					   "RCPT TO:<b@y.test>\r\n"
					   "RCPT TO:<c@y.test>\r\n"
					   "DATA\r\n.\r\nQUIT\r\n");
}
END_TEST

START_TEST(test_all_rcpts_refused_unpipelined_skips_data)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("550 5.1.1 no b\r\n"),
		EXPECT("RCPT TO:<c@y.test>"),
		SEND("450 4.2.1 c busy\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_RCPT);
	ck_assert(d->usable);
	assert_reply(&d->rcpt[0], 550, "5.1.1", "no b");
	assert_reply(&d->rcpt[1], 450, "4.2.1", "c busy");
	assert_reply(&d->res.msg_reply, 450, "4.2.1", "c busy");
	finish();
}
END_TEST

START_TEST(test_mail_refused_answers_every_rcpt)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("550 5.7.1 sender blocked\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_MAIL);
	ck_assert(!d->res.conn_lost && d->usable);
	assert_reply(&d->res.msg_reply, 550, "5.7.1", "sender blocked");
	assert_reply(&d->rcpt[0], 550, "5.7.1", "sender blocked");
	assert_reply(&d->rcpt[1], 550, "5.7.1", "sender blocked");
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
				 "QUIT\r\n");
}
END_TEST

START_TEST(test_mail_refused_pipelined_keeps_mail_reply)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("451 4.3.0 sender check failed\r\n503 5.5.1 need MAIL\r\n"
		     "503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_MAIL);
	ck_assert(d->usable);
	for (size_t k = 0; k < 2; k++)
		assert_reply(&d->rcpt[k], 451, "4.3.0", "sender check failed");
	assert_reply(&d->res.msg_reply, 451, "4.3.0", "sender check failed");
	finish();
}
END_TEST

/* _i = 0: 451 after the dot; 1: 554 */
START_TEST(test_dot_refused_answers_accepted_rcpts)
{
	static const struct step s451[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("250 ok\r\n250 ok\r\n550 5.1.1 no c\r\n354 go\r\n"),
		DATA,
		SEND("451 4.7.1 greylisted\r\n"),
		QUIT_END,
	};
	static const struct step s554[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("250 ok\r\n250 ok\r\n550 5.1.1 no c\r\n354 go\r\n"),
		DATA,
		SEND("554 5.7.1 spam\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(_i == 0 ? s451 : s554);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_DOT);
	ck_assert(!d->res.conn_lost && d->usable);
	if (_i == 0)
		assert_reply(&d->rcpt[0], 451, "4.7.1", "greylisted");
	else
		assert_reply(&d->rcpt[0], 554, "5.7.1", "spam");
	assert_reply(&d->rcpt[1], 550, "5.1.1", "no c");
	ck_assert_int_eq(d->res.msg_reply.code, _i == 0 ? 451 : 554);
	finish();
}
END_TEST

START_TEST(test_data_refused_answers_accepted_rcpts)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("452 4.3.1 out of space\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_DATA);
	ck_assert(d->usable);
	assert_reply(&d->rcpt[0], 452, "4.3.1", "out of space");
	finish();
}
END_TEST

START_TEST(test_multiline_replies_are_joined)
{
	static const struct step script[] = {
		SEND("220-mx.test first\r\n220-second\r\n220 third\r\n"),
		EXPECT("EHLO client.test"),
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(3),
		SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
		DATA,
		/* an enhanced code on each line is taken once, dropped
		 * from each; a control byte is shown as '?' */
		SEND("250-2.0.0 queued\r\n250-2.0.0 as\r\n250 2.0.0 X\tY\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	assert_reply(&fx.info.greeting, 220, "",
		     "mx.test first second third");
	send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 250, "2.0.0", "queued as X?Y");
	finish();
}
END_TEST

START_TEST(test_enhanced_code_of_other_class_stays_in_text)
{
	/* RFC 3463: the class must match the reply's; the detail has at
	 * most 3 digits. Anything else is text. */
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("550 4.1.1 odd\r\n"),
		EXPECT("RSET"),
		SEND("250 ok\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("550 5.1.1234 long detail\r\n"),
		EXPECT("RSET"),
		SEND("250 ok\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("550\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	for (int i = 0; i < 3; i++)
		send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 550, "", "4.1.1 odd");
	assert_reply(&fx.done[1].rcpt[0], 550, "", "5.1.1234 long detail");
	assert_reply(&fx.done[2].rcpt[0], 550, "", "");
	finish();
}
END_TEST

START_TEST(test_hundred_line_reply_is_accepted)
{
	static char ehlo[100 * 16];
	struct step script[] = {
		GREET, SEND(ehlo), QUIT_END,
	};
	size_t o = 0;

	o += (size_t)snprintf(ehlo + o, sizeof(ehlo) - o, "250-mx.test\r\n");
	for (int i = 0; i < 98; i++)
		o += (size_t)snprintf(ehlo + o, sizeof(ehlo) - o,
				      "250-X-K%02d\r\n", i);
	snprintf(ehlo + o, sizeof(ehlo) - o, "250 pipelining\r\n");
	session_ok(script);
	ck_assert(fx.info.pipelining);
	finish();
}
END_TEST

/* Each greeting is refused as malformed: ready(false) in GREETING with a
 * local reason, and the client sends nothing. */
enum bad_kind { BAD_TEXT, BAD_101_LINES, BAD_LONG_LINE, BAD_LONG_NO_CRLF };

static const struct {
	enum bad_kind kind;
	const char *text;
	const char *why;
} bad_greetings[] = {
	{ BAD_TEXT, "2x0 hello\r\n", "malformed reply" },
	{ BAD_TEXT, "22\r\n", "malformed reply" },
	{ BAD_TEXT, "220x hello\r\n", "malformed reply" },
	{ BAD_TEXT, "120 too low\r\n", "malformed reply" },
	{ BAD_TEXT, "620 too high\r\n", "malformed reply" },
	{ BAD_TEXT, "hello\r\n", "malformed reply" },
	{ BAD_TEXT, "220-first\r\n221 second\r\n", "malformed reply" },
	{ BAD_TEXT, "220-first\r\n220x\r\n", "malformed reply" },
	{ BAD_101_LINES, NULL, "malformed reply" },
	{ BAD_LONG_LINE, NULL, "reply line too long" },
	{ BAD_LONG_NO_CRLF, NULL, "reply line too long" },
};

START_TEST(test_malformed_greeting_fails)
{
	static char buf[4096];
	struct step script[] = { SEND(buf), WAIT_EOF, END };
	size_t o = 0;

	switch (bad_greetings[_i].kind) {
	case BAD_TEXT:
		snprintf(buf, sizeof(buf), "%s", bad_greetings[_i].text);
		break;
	case BAD_101_LINES:
		for (int i = 0; i < 100; i++)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o,
					      "220-line %d\r\n", i);
		snprintf(buf + o, sizeof(buf) - o, "220 last\r\n");
		break;
	case BAD_LONG_LINE:
	case BAD_LONG_NO_CRLF:
		memset(buf, 'x', 3000);
		memcpy(buf, "220 ", 4);
		buf[3000] = '\0';
		if (bad_greetings[_i].kind == BAD_LONG_LINE)
			memcpy(buf + 3000, "\r\n", 3);
		break;
	}
	session(script, SMTPC_TLS_NONE, NULL, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_GREETING);
	ck_assert_int_eq(fx.ready_reply.code, 0);
	ck_assert_str_eq(fx.ready_reply.text, bad_greetings[_i].why);
	finish();
	ck_assert_str_eq(wire(), "");
}
END_TEST

START_TEST(test_malformed_rcpt_reply_loses_connection)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("25O ok\r\n"),
		WAIT_EOF,
		END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	send_msg(&m);
	ck_assert(d->res.conn_lost && !d->usable);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_RCPT);
	assert_reply(&d->rcpt[0], 0, "4.4.2", "malformed reply");
	assert_reply(&d->rcpt[1], 0, "4.4.2", "malformed reply");
	finish();
}
END_TEST

/* _i = 0: 421; 1: 554 */
START_TEST(test_greeting_refused)
{
	static const struct step s421[] = {
		SEND("421 4.3.2 too busy\r\n"), WAIT_EOF, END,
	};
	static const struct step s554[] = {
		SEND("554-no service\r\n554 for you\r\n"), WAIT_EOF, END,
	};

	session(_i == 0 ? s421 : s554, SMTPC_TLS_NONE, NULL, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_GREETING);
	if (_i == 0)
		assert_reply(&fx.ready_reply, 421, "4.3.2", "too busy");
	else
		assert_reply(&fx.ready_reply, 554, "", "no service for you");
	ck_assert(!smtpc_is_usable(fx.c));
	finish();
	ck_assert_str_eq(wire(), "");
}
END_TEST

START_TEST(test_connection_refused)
{
	int port, fd = listen_any(1, &port);

	close(fd); /* nothing listens there now */
	client_open_at(port, SMTPC_TLS_NONE, NULL, 100, NULL);
	run_until(&fx.n_ready, 1);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_CONNECT);
	ck_assert_int_eq(fx.ready_reply.code, 0);
	ck_assert_str_eq(fx.ready_reply.enhanced, "4.4.1");
	ck_assert_msg(strstr(fx.ready_reply.text, "refused") != NULL, "%s",
		      fx.ready_reply.text);
	finish();
}
END_TEST

START_TEST(test_bind_failure_is_connect_phase)
{
	struct sockaddr_in src = { .sin_family = AF_INET };

	inet_pton(AF_INET, "192.0.2.1", &src.sin_addr); /* not ours */
	client_open_at(25, SMTPC_TLS_NONE, NULL, 100,
		       (const struct sockaddr *)&src);
	run_until(&fx.n_ready, 1);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_CONNECT);
	ck_assert_msg(strncmp(fx.ready_reply.text, "bind source", 11) == 0,
		      "%s", fx.ready_reply.text);
	finish();
}
END_TEST

START_TEST(test_connect_timeout)
{
	int port;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint64_t t0;

	/* a listener that never accepts, its queue full: SYNs are dropped */
	srv.lfd = listen_any(0, &port);
	a.sin_port = htons((uint16_t)port);
	for (size_t i = 0; i < 3; i++) {
		fx.fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fx.fillers[i], (struct sockaddr *)&a, sizeof(a));
	}
	t0 = now_ms();
	client_open_at(port, SMTPC_TLS_NONE, NULL, 1, NULL);
	run_until(&fx.n_ready, 1);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_CONNECT);
	assert_reply(&fx.ready_reply, 0, "4.4.1", "connection timed out");
	/* 1% of 30 s */
	ck_assert_uint_ge(now_ms() - t0, 250);
	ck_assert_uint_lt(now_ms() - t0, 2000);
	finish();
}
END_TEST

START_TEST(test_server_closes_mid_data)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(4),
		SEND("250 ok\r\n550 5.1.1 no b\r\n250 ok\r\n354 go\r\n"),
		LINES(1),
		CLOSE,
		END,
	};
	static char body[64 * 1024];
	struct smtpc_msg m = msg(2, "");
	const struct got_done *d = &fx.done[0];

	for (size_t i = 0; i + 1 < sizeof(body); i++)
		body[i] = i % 64 == 63 ? '\n' : i % 64 == 62 ? '\r' : 'b';
	m.body = body;
	m.body_len = strlen(body);
	session_ok(script);
	send_msg(&m);
	ck_assert(d->res.conn_lost && !d->usable);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_DOT);
	/* the accepted one has no answer; the refused one keeps its own */
	ck_assert_int_eq(d->rcpt[1].code, 0);
	ck_assert_str_eq(d->rcpt[1].enhanced, "4.4.2");
	assert_reply(&d->rcpt[0], 550, "5.1.1", "no b");
	ck_assert_int_eq(d->res.msg_reply.code, 0);
	finish();
}
END_TEST

START_TEST(test_server_closes_before_dot_reply)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		CLOSE,
		END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	send_msg(&m);
	ck_assert(d->res.conn_lost && !d->usable);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_DOT);
	ck_assert_int_eq(d->rcpt[0].code, 0);
	ck_assert_msg(strstr(d->rcpt[0].text, "closed") != NULL, "%s",
		      d->rcpt[0].text);
	finish();
}
END_TEST

START_TEST(test_silent_server_times_out_in_greeting)
{
	static const struct step script[] = { WAIT_EOF, END };
	uint64_t t0 = now_ms();

	session(script, SMTPC_TLS_NONE, NULL, 1);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_GREETING);
	assert_reply(&fx.ready_reply, 0, "4.4.2", "timeout after greeting");
	/* 1% of 5 minutes */
	ck_assert_uint_ge(now_ms() - t0, 2900);
	finish();
}
END_TEST

START_TEST(test_silent_data_reply_times_out)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		WAIT_EOF,
		END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");
	const struct got_done *d = &fx.done[0];
	uint64_t t0;

	session(script, SMTPC_TLS_NONE, NULL, 1);
	ck_assert(fx.ready_ok);
	t0 = now_ms();
	send_msg(&m);
	/* 1% of the 2 minutes for the DATA reply */
	ck_assert_uint_ge(now_ms() - t0, 1100);
	ck_assert_uint_lt(now_ms() - t0, 2500);
	ck_assert(d->res.conn_lost && !d->usable);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_DATA);
	ck_assert_int_eq(d->rcpt[0].code, 0);
	ck_assert_msg(strncmp(d->rcpt[0].text, "timeout", 7) == 0, "%s",
		      d->rcpt[0].text);
	finish();
}
END_TEST

START_TEST(test_smtputf8_needs_server_support)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 8BITMIME\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(2, "x\r\n");
	const struct got_done *d = &fx.done[0];

	m.smtputf8 = true;
	session_ok(script);
	send_msg(&m);
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_MAIL);
	ck_assert(d->usable && !d->res.conn_lost);
	for (size_t k = 0; k < 2; k++) {
		ck_assert_int_eq(d->rcpt[k].code, 554);
		ck_assert_str_eq(d->rcpt[k].enhanced, "5.6.7");
	}
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nQUIT\r\n");
}
END_TEST

START_TEST(test_message_over_server_size_is_refused_locally)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 SIZE 10\r\n"),
		EXPECT("MAIL FROM:<a@x.test> SIZE=10"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 ok\r\n"),
		QUIT_END,
	};
	struct smtpc_msg big = msg(1, "0123456789a");
	struct smtpc_msg fits = msg(1, "01234567\r\n");
	const struct got_done *d = &fx.done[0];

	session_ok(script);
	ck_assert_uint_eq(fx.info.max_size, 10);
	send_msg(&big);
	ck_assert_int_eq(d->rcpt[0].code, 552);
	ck_assert_str_eq(d->rcpt[0].enhanced, "5.3.4");
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_MAIL);
	ck_assert(d->usable);
	/* nothing went out for it: the next message is the first, no RSET */
	send_msg(&fits);
	ck_assert_int_eq(fx.done[1].rcpt[0].code, 250);
	finish();
}
END_TEST

START_TEST(test_reuse_sends_rset_before_second_message)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(3),
		SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
		DATA,
		SEND("250 2.0.0 first\r\n"),
		LINES(4),
		SEND("250 2.0.0 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
		DATA,
		SEND("250 2.0.0 second\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m1 = msg(1, "one\r\n");
	struct smtpc_msg m2 = msg(1, "two\r\n");

	m2.mail_from = "f@x.test";
	m2.rcpts = RCPTS + 1;
	session_ok(script);
	send_msg(&m1);
	ck_assert(fx.done[0].usable);
	ck_assert(smtpc_is_usable(fx.c));
	send_msg(&m2);
	assert_reply(&fx.done[0].rcpt[0], 250, "2.0.0", "first");
	assert_reply(&fx.done[1].rcpt[0], 250, "2.0.0", "second");
	finish();
	ck_assert_str_eq(wire(),
			 "EHLO client.test\r\n"
			 "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
			 "DATA\r\none\r\n.\r\n"
			 "RSET\r\nMAIL FROM:<f@x.test>\r\n"
			 "RCPT TO:<c@y.test>\r\n"
			 "DATA\r\ntwo\r\n.\r\nQUIT\r\n");
}
END_TEST

START_TEST(test_send_next_from_done_callback)
{
	/* no pipelining: RSET waits for its reply before MAIL */
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 first\r\n"),
		EXPECT("RSET"),
		QUIET(30),
		SEND("250 reset\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 second\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	fx.next = m;
	fx.done_action = ACT_SEND_NEXT;
	send_msg(&m);
	ck_assert_int_eq(fx.next_rc, 0);
	run_until(&fx.n_done, 2);
	assert_reply(&fx.done[0].rcpt[0], 250, "", "first");
	assert_reply(&fx.done[1].rcpt[0], 250, "", "second");
	finish();
}
END_TEST

START_TEST(test_send_when_busy_or_not_ready)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		SEND("250 ok\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	srv_start(script);
	client_open_at(srv.port, SMTPC_TLS_NONE, NULL, 100, NULL);
	ck_assert_int_eq(smtpc_send(fx.c, &m, on_done, NULL), -ENOTCONN);
	run_until(&fx.n_ready, 1);
	ck_assert(fx.ready_ok);
	ck_assert_int_eq(smtpc_send(fx.c, &m, on_done, NULL), 0);
	ck_assert_int_eq(smtpc_send(fx.c, &m, on_done, NULL), -EBUSY);
	ck_assert(!smtpc_is_usable(fx.c));
	run_until(&fx.n_done, 1);
	ck_assert_int_eq(fx.done[0].rcpt[0].code, 250);
	finish();
}
END_TEST

START_TEST(test_reply_while_idle_makes_connection_unusable)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		QUIET(50),
		SEND("421 4.3.2 going down\r\n"),
		WAIT_EOF,
		END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	ck_assert(smtpc_is_usable(fx.c));
	while (smtpc_is_usable(fx.c)) {
		struct timeval tv = { 0, 5000 };

		event_base_loopexit(fx.base, &tv);
		event_base_dispatch(fx.base);
	}
	ck_assert_int_eq(smtpc_send(fx.c, &m, on_done, NULL), -ENOTCONN);
	finish();
	ck_assert_int_eq(fx.n_done, 0);
}
END_TEST

/* ---- closing from callbacks ------------------------------------------ */

START_TEST(test_close_inside_done_callback_sends_quit)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		/* the QUIT reply comes in the same read as the dot's */
		SEND("250 ok\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	fx.done_action = ACT_CLOSE;
	send_msg(&m);
	ck_assert_ptr_null(fx.c);
	ck_assert_int_eq(fx.done[0].rcpt[0].code, 250);
	finish();
	ck_assert_int_eq(fx.n_done, 1);
}
END_TEST

START_TEST(test_close_inside_done_callback_after_failure)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n"),
		DATA,
		CLOSE,
		END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	fx.done_action = ACT_CLOSE;
	send_msg(&m);
	ck_assert_ptr_null(fx.c);
	ck_assert(fx.done[0].res.conn_lost);
	finish();
	ck_assert_int_eq(fx.n_done, 1);
}
END_TEST

START_TEST(test_close_inside_ready_callback)
{
	static const struct step ok[] = {
		GREET, SEND("250 mx.test\r\n"), QUIT_END,
	};
	static const struct step refused[] = {
		SEND("554 5.7.1 no\r\n"), WAIT_EOF, END,
	};

	fx.ready_action = ACT_CLOSE;
	session(_i == 0 ? ok : refused, SMTPC_TLS_NONE, NULL, 100);
	ck_assert(fx.ready_ok == (_i == 0));
	ck_assert_ptr_null(fx.c);
	finish();
}
END_TEST

START_TEST(test_close_during_message_calls_nothing)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		WAIT_EOF,
		END,
	};
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	ck_assert_int_eq(smtpc_send(fx.c, &m, on_done, NULL), 0);
	run_until(&srv.steps, 4); /* the server has read MAIL */
	finish(); /* runs the loop until the server saw the close */
	ck_assert_int_eq(fx.n_done, 0);
}
END_TEST

/* A connection closed while ready says QUIT and waits for the reply; one
 * still waiting at shutdown is the owner's context's to free (there is no
 * global list): smtpc_ctx_free() closes it without the loop running. */
START_TEST(test_ctx_free_frees_connection_waiting_for_quit)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("QUIT"),
		WAIT_EOF, /* no 221: only smtpc_ctx_free() ends it */
		END,
	};

	session_ok(script);
	smtpc_close(fx.c);
	fx.c = NULL;
	run_until(&srv.steps, 4); /* the server has read QUIT */
	smtpc_ctx_free(fx.x);
	fx.x = NULL;
	run_until(&srv.finished, 1);
	pthread_join(srv.thread, NULL);
	srv.running = false;
	ck_assert_msg(srv.err[0] == '\0', "server: %s", srv.err);
}
END_TEST

/* ---- input the client must refuse ---------------------------------------- */

/* _i = 0: the reply to the final dot is 554, 1: 250; either way it comes
 * while most of the body is still unsent. */
START_TEST(test_reply_before_end_of_data_stops_the_body)
{
	static const struct step s554[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n554 5.3.4 too big, go away\r\n"),
		WAIT_EOF,
		END,
	};
	static const struct step s250[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go\r\n250 2.0.0 sure\r\n"),
		WAIT_EOF,
		END,
	};
	struct smtpc_msg m;
	const struct got_done *d = &fx.done[0];

	fx.heap_body = malloc(BIG_BODY + 1);
	ck_assert_ptr_nonnull(fx.heap_body);
	for (size_t i = 0; i < BIG_BODY; i++)
		fx.heap_body[i] = i % 80 == 79 ? '\n' :
				  i % 80 == 78 ? '\r' : 'b';
	fx.heap_body[BIG_BODY] = '\0';
	m = msg(1, "");
	m.body = fx.heap_body;
	m.body_len = BIG_BODY;
	srv.rcvbuf = 4096;
	session_ok(_i == 0 ? s554 : s250);
	fx.done_action = ACT_FREE_BODY;
	send_msg(&m);
	ck_assert(d->res.conn_lost && !d->usable);
	ck_assert(!smtpc_is_usable(fx.c));
	ck_assert_int_eq(d->res.failed_phase, SMTPC_PH_DOT);
	if (_i == 0)
		assert_reply(&d->rcpt[0], 554, "5.3.4", "too big, go away");
	else
		ck_assert_int_eq(d->rcpt[0].code, 0); /* no delivery */
	/* the loop runs on with the body freed: nothing may touch it */
	finish();
	ck_assert_uint_lt(srv.got_len, BIG_BODY);
}
END_TEST

START_TEST(test_overlong_addresses_are_refused_locally)
{
	static const struct step script[] = {
		GREET, SEND("250-mx.test\r\n250 SIZE 100000\r\n"), QUIT_END,
	};
	static char longaddr[3100];
	const char *rcpts[2] = { "b@y.test", longaddr };
	struct smtpc_msg m = msg(1, "x\r\n");

	memset(longaddr, 'a', sizeof(longaddr) - 1);
	memcpy(longaddr + sizeof(longaddr) - 8, "@x.test", 8);
	session_ok(script);
	m.mail_from = longaddr;
	send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 553, "5.1.7", NULL);
	m.mail_from = "a@x.test";
	m.rcpts = rcpts;
	m.n_rcpts = 2;
	send_msg(&m);
	assert_reply(&fx.done[1].rcpt[0], 553, "5.1.3", NULL);
	assert_reply(&fx.done[1].rcpt[1], 553, "5.1.3", NULL);
	ck_assert(fx.done[1].usable);
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nQUIT\r\n");
}
END_TEST

START_TEST(test_unsafe_addresses_are_refused_locally)
{
	static const struct step script[] = {
		GREET, SEND("250 mx.test\r\n"), QUIT_END,
	};
	const char *bad_rcpts[] = { "b@y.test>\r\nRSET" };
	struct smtpc_msg m = msg(1, "x\r\n");

	session_ok(script);
	m.mail_from = "a b@x.test";
	send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 553, "5.1.7", NULL);
	m.mail_from = "a@x.test";
	m.rcpts = bad_rcpts;
	send_msg(&m);
	assert_reply(&fx.done[1].rcpt[0], 553, "5.1.3", NULL);
	m.n_rcpts = 0;
	send_msg(&m);
	ck_assert_int_eq(fx.done[2].res.msg_reply.code, 0);
	ck_assert_int_eq(fx.done[2].res.n_rcpts, 0);
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nQUIT\r\n");
}
END_TEST

/* ---- STARTTLS ------------------------------------------------------------ */

START_TEST(test_starttls_upgrades_and_repeats_ehlo)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250-STARTTLS\r\n250-SIZE 5000\r\n"
		     "250 DSN\r\n"),
		EXPECT("STARTTLS"),
		SEND("220 2.0.0 go ahead\r\n"),
		TLS_ACCEPT,
		EXPECT("EHLO client.test"),
		SEND("250-mx.test\r\n250 PIPELINING\r\n"),
		LINES(3),
		SEND("250 ok\r\n250 ok\r\n354 go\r\n"),
		DATA,
		SEND("250 2.0.0 over TLS\r\n"),
		QUIT_END,
	};
	struct smtpc_msg m = msg(1, ".secret\r\n");

	srv.ctx = check_tls_server_ctx("mx.test");
	fx.client_ctx = smtpc_ssl_ctx_new(NULL);
	ck_assert_ptr_nonnull(fx.client_ctx);
	session(script, SMTPC_TLS_OPPORTUNISTIC, fx.client_ctx, 100);
	ck_assert(fx.ready_ok);
	ck_assert(fx.info.tls_active);
	ck_assert_msg(strncmp(fx.info.tls_version, "TLSv1.", 6) == 0, "%s",
		      fx.info.tls_version);
	ck_assert_str_ne(fx.info.tls_version, "TLSv1.1");
	ck_assert_str_ne(fx.info.tls_cipher, "");
	/* what the server said before TLS is forgotten */
	ck_assert(fx.info.pipelining);
	ck_assert(!fx.info.starttls && !fx.info.size && !fx.info.dsn);
	send_msg(&m);
	assert_reply(&fx.done[0].rcpt[0], 250, "2.0.0", "over TLS");
	finish();
	ck_assert_str_eq(srv.sni, "mx.test");
	ck_assert_str_eq(wire(), "EHLO client.test\r\nSTARTTLS\r\n"
				 "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
				 "RCPT TO:<b@y.test>\r\nDATA\r\n"
				 "..secret\r\n.\r\nQUIT\r\n");
}
END_TEST

START_TEST(test_starttls_ignores_plaintext_after_220)
{
	/* RFC 3207 / CVE-2011-0411: a line injected behind the 220 must
	 * not be taken as a reply over TLS */
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 STARTTLS\r\n"),
		EXPECT("STARTTLS"),
		SEND("220 2.0.0 go ahead\r\n250 injected\r\n"),
		TLS_ACCEPT,
		EXPECT("EHLO client.test"),
		SEND("250 mx.test\r\n"),
		QUIT_END,
	};

	srv.ctx = check_tls_server_ctx("mx.test");
	fx.client_ctx = smtpc_ssl_ctx_new(NULL);
	session(script, SMTPC_TLS_REQUIRED, fx.client_ctx, 100);
	ck_assert_msg(fx.ready_ok, "phase %d: %s", fx.ready_phase,
		      fx.ready_reply.text);
	ck_assert(fx.info.tls_active);
	finish();
}
END_TEST

START_TEST(test_tls_required_but_not_offered)
{
	static const struct step script[] = {
		GREET, SEND("250-mx.test\r\n250 PIPELINING\r\n"), WAIT_EOF, END,
	};

	fx.client_ctx = smtpc_ssl_ctx_new(NULL);
	session(script, SMTPC_TLS_REQUIRED, fx.client_ctx, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
	ck_assert_int_eq(fx.ready_reply.code, 0);
	ck_assert_str_eq(fx.ready_reply.enhanced, "4.7.10");
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\n");
}
END_TEST

START_TEST(test_tls_required_without_context_never_goes_plain)
{
	static const struct step script[] = {
		GREET, SEND("250-mx.test\r\n250 STARTTLS\r\n"), WAIT_EOF, END,
	};

	session(script, SMTPC_TLS_REQUIRED, NULL, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
	ck_assert_int_eq(fx.ready_reply.code, 0);
	ck_assert_str_eq(fx.ready_reply.enhanced, "4.7.10");
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\n");
}
END_TEST

START_TEST(test_opportunistic_handshake_failure)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 STARTTLS\r\n"),
		EXPECT("STARTTLS"),
		SEND("220 go ahead\r\n"),
		GARBAGE,
		END,
	};

	fx.client_ctx = smtpc_ssl_ctx_new(NULL);
	session(script, SMTPC_TLS_OPPORTUNISTIC, fx.client_ctx, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
	ck_assert_int_eq(fx.ready_reply.code, 0);
	ck_assert_msg(strncmp(fx.ready_reply.text, "TLS", 3) == 0, "%s",
		      fx.ready_reply.text);
	finish();
}
END_TEST

START_TEST(test_starttls_refused)
{
	static const struct step script[] = {
		GREET,
		SEND("250-mx.test\r\n250 STARTTLS\r\n"),
		EXPECT("STARTTLS"),
		SEND("454 4.7.0 TLS not available\r\n"),
		WAIT_EOF,
		END,
	};

	fx.client_ctx = smtpc_ssl_ctx_new(NULL);
	session(script, SMTPC_TLS_OPPORTUNISTIC, fx.client_ctx, 100);
	ck_assert(!fx.ready_ok);
	ck_assert_int_eq(fx.ready_phase, SMTPC_PH_TLS);
	assert_reply(&fx.ready_reply, 454, "4.7.0", "TLS not available");
	finish();
}
END_TEST

/* _i = 0: TLS_NONE with a context; 1: opportunistic without one */
START_TEST(test_no_starttls_when_tls_is_off)
{
	static const struct step script[] = {
		GREET, SEND("250-mx.test\r\n250 STARTTLS\r\n"), QUIT_END,
	};

	fx.client_ctx = smtpc_ssl_ctx_new(NULL);
	session(script, _i == 0 ? SMTPC_TLS_NONE : SMTPC_TLS_OPPORTUNISTIC,
		_i == 0 ? fx.client_ctx : NULL, 100);
	ck_assert(fx.ready_ok);
	ck_assert(fx.info.starttls && !fx.info.tls_active);
	ck_assert_str_eq(fx.info.tls_version, "");
	finish();
	ck_assert_str_eq(wire(), "EHLO client.test\r\nQUIT\r\n");
}
END_TEST


/* ---- the body encoder ---------------------------------------------------- */

/* What RFC 5321 2.3.8 and 4.5.2 ask of the encoded body, written apart
 * from node/delivery/smtpc_proto.c: every line of the input ends at CRLF, at a bare
 * CR or at a bare LF (the last one, if unterminated, at the end); a line
 * longer than SMTPC_LINE_OCTETS is cut into pieces of that length, each
 * after the first led by a space; a piece starting with "." gets a second
 * one; each piece ends in CRLF; ".\r\n" ends the body. Returns the length
 * written to out (sized 4 * len + 16), counts repairs in *bare. */
static size_t
model_encode(const char *in, size_t len, char *out, size_t *bare,
	     size_t *folds)
{
	size_t o = 0, i = 0;

	*bare = *folds = 0;
	while (i < len) {
		size_t start = i, n, done = 0;

		while (i < len && in[i] != '\r' && in[i] != '\n')
			i++;
		n = i - start;
		if (i < len) {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i += 2;
			else
				i += 1, ++*bare;
		}
		do {
			size_t take = n - done;
			size_t max = done == 0 ? SMTPC_LINE_OCTETS :
						 SMTPC_LINE_OCTETS - 1;

			if (take > max)
				take = max;
			if (done > 0) {
				out[o++] = ' ';
				++*folds;
			} else if (take > 0 && in[start] == '.') {
				out[o++] = '.';
			}
			memcpy(out + o, in + start + done, take);
			o += take;
			done += take;
			out[o++] = '\r';
			out[o++] = '\n';
		} while (done < n);
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* The receiver's view of wire[0..n): only CRLF line ends, no line over
 * 1000 octets with its CRLF (a stuffing dot not counted), and exactly
 * one "." line, the last. */
static void
assert_wire_safe(const char *w, size_t n)
{
	size_t line = 0;

	ck_assert_uint_ge(n, 3);
	for (size_t i = 0; i < n; i++) {
		if (w[i] == '\r')
			ck_assert_msg(i + 1 < n && w[i + 1] == '\n',
				      "bare CR at %zu", i);
		if (w[i] == '\n')
			ck_assert_msg(i > 0 && w[i - 1] == '\r',
				      "bare LF at %zu", i);
	}
	while (line < n) {
		const char *e = memchr(w + line, '\n', n - line);
		size_t len;

		ck_assert_ptr_nonnull(e);
		len = (size_t)(e - (w + line)) + 1;
		if (len == 3 && w[line] == '.')
			ck_assert_msg(line + 3 == n, "a \".\" line at %zu of %zu",
				      line, n);
		ck_assert_uint_le(len - (w[line] == '.' && len > 3), 1000);
		line += len;
	}
}

/* Encode in[0..len) fed in pieces cut at a and b (a <= b <= len) into a
 * fresh buffer; returns it (free()) and its length in *n. */
static char *
encode_split(const char *in, size_t len, size_t a, size_t b, size_t *n,
	     struct smtpc_body_enc *e)
{
	struct evbuffer *out = evbuffer_new();
	char *w;

	ck_assert_ptr_nonnull(out);
	smtpc_proto_body_init(e);
	smtpc_proto_body_feed(e, out, in, a);
	smtpc_proto_body_feed(e, out, in + a, b - a);
	smtpc_proto_body_feed(e, out, in + b, len - b);
	smtpc_proto_body_end(e, out);
	*n = evbuffer_get_length(out);
	w = malloc(*n + 1);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(evbuffer_remove(out, w, *n), (int)*n);
	evbuffer_free(out);
	return w;
}

/* Every split of in into up to three pieces gives the model's bytes. */
static void
assert_every_split(const char *in, size_t len, bool pairs)
{
	char *want = malloc(4 * len + 16);
	size_t want_n, bare, folds;

	ck_assert_ptr_nonnull(want);
	want_n = model_encode(in, len, want, &bare, &folds);
	assert_wire_safe(want, want_n);
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = pairs ? a : len; b <= len; b++) {
			struct smtpc_body_enc e;
			size_t n;
			char *w = encode_split(in, len, a, b, &n, &e);

			ck_assert_msg(n == want_n && memcmp(w, want, n) == 0,
				      "input of %zu octets cut at %zu, %zu: "
				      "%zu octets out, %zu expected",
				      len, a, b, n, want_n);
			ck_assert_uint_eq(e.bare_cr + e.bare_lf, bare);
			ck_assert_uint_eq(e.folded, folds);
			ck_assert(smtpc_proto_body_repaired(&e) ==
				  (bare + folds > 0));
			free(w);
		}
	}
	free(want);
}

START_TEST(test_body_every_short_input_at_every_split)
{
	/* every string of up to 6 octets over CR, LF, "." and a letter,
	 * cut into three pieces every possible way */
	static const char alpha[] = { '\r', '\n', '.', 'a' };
	char in[8];

	for (size_t len = 0; len <= 6; len++) {
		size_t total = 1;

		for (size_t k = 0; k < len; k++)
			total *= sizeof(alpha);
		for (size_t v = 0; v < total; v++) {
			size_t x = v;

			for (size_t k = 0; k < len; k++, x /= sizeof(alpha))
				in[k] = alpha[x % sizeof(alpha)];
			assert_every_split(in, len, true);
		}
	}
}
END_TEST

/* Lines around the length limit, ending every way; cut anywhere. */
START_TEST(test_body_long_lines_fold_at_every_split)
{
	static const size_t lens[] = { 996, 997, 998, 999, 1000, 1995,
				       1996, 1997, 2500 };
	static const char *const tails[] = { "", "\r\n", "\r", "\n",
					     "\r\n.", "\r.", "\n.x", "\r\r\n" };
	static const char heads[] = { 'x', '.' };
	char *in = malloc(2600);

	ck_assert_ptr_nonnull(in);
	for (size_t h = 0; h < sizeof(heads); h++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(*lens); l++)
			for (size_t t = 0; t < sizeof(tails) / sizeof(*tails);
			     t++) {
				size_t n = lens[l], tl = strlen(tails[t]);

				memset(in, 'x', n);
				in[0] = heads[h];
				memcpy(in + n, tails[t], tl);
				assert_every_split(in, n + tl, false);
			}
	free(in);
}
END_TEST

/* A smuggling attempt hidden behind bare CRs and LFs, mixed with
 * well-formed lines; the pieces small enough that a CR often ends one. */
START_TEST(test_body_hostile_text_in_small_pieces)
{
	static const char in[] =
		"From: a@x.test\r\nSubject: s\r\n\r\nhello\r.\r\nMAIL "
		"FROM:<e@x.test>\r\nRCPT TO:<v@y.test>\r\nDATA\r\n.\r\n"
		"x\n.\nQUIT\n\r\r\n.\r\r..\n\r";
	size_t len = sizeof(in) - 1;
	char want[4 * sizeof(in) + 16];
	size_t want_n, bare, folds;

	want_n = model_encode(in, len, want, &bare, &folds);
	ck_assert_uint_gt(bare, 5);
	for (size_t piece = 1; piece <= 8; piece++) {
		struct evbuffer *out = evbuffer_new();
		struct smtpc_body_enc e;
		char w[sizeof(want)];
		size_t n;

		smtpc_proto_body_init(&e);
		for (size_t o = 0; o < len; o += piece)
			smtpc_proto_body_feed(&e, out, in + o,
					      len - o < piece ? len - o : piece);
		smtpc_proto_body_end(&e, out);
		n = evbuffer_get_length(out);
		ck_assert_uint_eq(n, want_n);
		evbuffer_remove(out, w, n);
		ck_assert(memcmp(w, want, n) == 0);
		assert_wire_safe(w, n);
		evbuffer_free(out);
	}
}
END_TEST

/* Megabytes of nothing but bare CRs, bare LFs or one-octet lines: done
 * in one pass (the suite's timeout would stop a quadratic one), and
 * right. */
START_TEST(test_body_large_hostile_bodies_stay_linear)
{
	static const char *const units[] = { "\r", "\n", "a\r", ".\n",
					     ".\r\n", "\n\r" };
	size_t len = 4u << 20;
	char *in = malloc(len);

	ck_assert_ptr_nonnull(in);
	for (size_t u = 0; u < sizeof(units) / sizeof(*units); u++) {
		size_t ul = strlen(units[u]), n, bare, folds, want_n;
		struct smtpc_body_enc e;
		char *w, *want = malloc(4 * len + 16);

		ck_assert_ptr_nonnull(want);
		for (size_t o = 0; o < len; o++)
			in[o] = units[u][o % ul];
		want_n = model_encode(in, len, want, &bare, &folds);
		w = encode_split(in, len, len / 3, len / 3, &n, &e);
		ck_assert_uint_eq(n, want_n);
		ck_assert(memcmp(w, want, n) == 0);
		free(w);
		free(want);
	}
	free(in);
}
END_TEST

START_TEST(test_long_line_and_bare_cr_reach_the_server_safely)
{
	static const struct step script[] = {
		GREET,
		SEND("250 mx.test\r\n"),
		EXPECT("MAIL FROM:<a@x.test>"),
		SEND("250 2.1.0 ok\r\n"),
		EXPECT("RCPT TO:<b@y.test>"),
		SEND("250 2.1.5 ok\r\n"),
		EXPECT("DATA"),
		SEND("354 go ahead\r\n"),
		DATA,
		SEND("250 2.0.0 queued as X1\r\n"),
		QUIT_END,
	};
	char body[1200 + 16], expect[2048];
	struct smtpc_msg m;
	const char *w, *data;

	memset(body, 'y', 1200);
	memcpy(body + 1200, "\r.\rend", 7);
	m = msg(1, body);
	session_ok(script);
	send_msg(&m);
	ck_assert_int_eq(fx.done[0].res.failed_phase, SMTPC_PH_QUIT);
	finish();
	w = wire();
	data = strstr(w, "DATA\r\n");
	ck_assert_ptr_nonnull(data);
	data += 6;
	snprintf(expect, sizeof(expect), "%.998s\r\n %.202s\r\n..\r\nend\r\n"
		 ".\r\nQUIT\r\n", body, body);
	ck_assert_str_eq(data, expect);
}
END_TEST

static Suite *
smtpc_suite(void)
{
	Suite *s = suite_create("smtpc");
	TCase *tc = tcase_create("session");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_plain_session_sends_exact_bytes, 0,
			    (int)(sizeof(bodies) / sizeof(*bodies)));
	tcase_add_test(tc, test_extensions_add_size_body_utf8_and_dsn);
	tcase_add_test(tc, test_null_sender_and_7bit_body_sends_no_body);
	tcase_add_test(tc, test_ehlo_refused_falls_back_to_helo);
	tcase_add_test(tc, test_ehlo_421_fails_without_helo);
	tcase_add_test(tc, test_helo_refused_fails_in_ehlo_phase);
	tcase_add_test(tc, test_pipelining_sends_one_batch);
	tcase_add_loop_test(tc, test_mixed_rcpt_results_one_reply_each, 0, 2);
	tcase_add_loop_test(tc, test_all_rcpts_refused_with_pipelined_data, 0,
			    2);
	tcase_add_test(tc, test_all_rcpts_refused_unpipelined_skips_data);
	tcase_add_test(tc, test_mail_refused_answers_every_rcpt);
	tcase_add_test(tc, test_mail_refused_pipelined_keeps_mail_reply);
	tcase_add_loop_test(tc, test_dot_refused_answers_accepted_rcpts, 0, 2);
	tcase_add_test(tc, test_data_refused_answers_accepted_rcpts);
	tcase_add_test(tc, test_multiline_replies_are_joined);
	tcase_add_test(tc, test_enhanced_code_of_other_class_stays_in_text);
	tcase_add_test(tc, test_hundred_line_reply_is_accepted);
	tcase_add_loop_test(tc, test_malformed_greeting_fails, 0,
			    (int)(sizeof(bad_greetings) /
				  sizeof(*bad_greetings)));
	tcase_add_test(tc, test_malformed_rcpt_reply_loses_connection);
	tcase_add_loop_test(tc, test_greeting_refused, 0, 2);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_bind_failure_is_connect_phase);
	tcase_add_test(tc, test_connect_timeout);
	tcase_add_test(tc, test_server_closes_mid_data);
	tcase_add_test(tc, test_server_closes_before_dot_reply);
	tcase_add_test(tc, test_silent_server_times_out_in_greeting);
	tcase_add_test(tc, test_silent_data_reply_times_out);
	tcase_add_test(tc, test_smtputf8_needs_server_support);
	tcase_add_test(tc, test_message_over_server_size_is_refused_locally);
	tcase_add_test(tc, test_reuse_sends_rset_before_second_message);
	tcase_add_test(tc, test_send_next_from_done_callback);
	tcase_add_test(tc, test_send_when_busy_or_not_ready);
	tcase_add_test(tc, test_reply_while_idle_makes_connection_unusable);
	tcase_add_test(tc, test_close_inside_done_callback_sends_quit);
	tcase_add_test(tc, test_close_inside_done_callback_after_failure);
	tcase_add_loop_test(tc, test_close_inside_ready_callback, 0, 2);
	tcase_add_test(tc, test_close_during_message_calls_nothing);
	tcase_add_test(tc, test_ctx_free_frees_connection_waiting_for_quit);
	tcase_add_loop_test(tc, test_reply_before_end_of_data_stops_the_body,
			    0, 2);
	tcase_add_test(tc, test_overlong_addresses_are_refused_locally);
	tcase_add_test(tc, test_unsafe_addresses_are_refused_locally);
	tcase_add_test(tc, test_long_line_and_bare_cr_reach_the_server_safely);
	suite_add_tcase(s, tc);

	tc = tcase_create("body");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_body_every_short_input_at_every_split);
	tcase_add_test(tc, test_body_long_lines_fold_at_every_split);
	tcase_add_test(tc, test_body_hostile_text_in_small_pieces);
	tcase_add_test(tc, test_body_large_hostile_bodies_stay_linear);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_starttls_upgrades_and_repeats_ehlo);
	tcase_add_test(tc, test_starttls_ignores_plaintext_after_220);
	tcase_add_test(tc, test_tls_required_but_not_offered);
	tcase_add_test(tc, test_tls_required_without_context_never_goes_plain);
	tcase_add_test(tc, test_opportunistic_handshake_failure);
	tcase_add_test(tc, test_starttls_refused);
	tcase_add_loop_test(tc, test_no_starttls_when_tls_is_off, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(smtpc_suite)
