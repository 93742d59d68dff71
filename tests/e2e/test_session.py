"""The SMTP session's protocol rules as a client meets them on the wire
(router/session_table.c holds them as a table):

- EHLO between BDAT chunks resets the transaction as RSET would (RFC
  5321 4.1.4, RFC 3030 2);
- every state the session goes through has a name in the debug log.
"""

import os
import re

from shoaltest import SMTPConn, ShoalTestCase, make_message, wait_for

SENDER = "a@example.com"
RCPT = "b@example.net"


class SessionTest(ShoalTestCase):

    def smtp(self, c, port=None):
        conn = SMTPConn(port or c.port)
        self.addCleanup(conn.close)
        self.assertEqual(conn.greeting.code, 220, conn.greeting)
        return conn

    # ---- 3 ----

    def test_3_ehlo_between_bdat_chunks_resets(self):
        c = self.cluster()
        conn = self.smtp(c)
        for hello in ("EHLO client.example", "HELO client.example"):
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            conn.expect(f"RCPT TO:<{RCPT}>", 250)
            conn.send(b"BDAT 4\r\nabcd")
            self.assertEqual(conn.reply().code, 250)
            # RFC 5321 4.1.4: as if RSET had been sent; RFC 3030 2: RSET
            # between chunks clears them
            self.assertEqual(conn.cmd(hello).code, 250, hello)
            # no transaction now: a chunk is read and refused, and MAIL
            # starts a new one
            conn.send(b"BDAT 4 LAST\r\nabcd")
            self.assertEqual(conn.reply().code, 503, hello)
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            conn.expect("RSET", 250)
        conn.expect_no_more_replies()
        self.assertEqual(c.queue_list()["messages"], [])

    # ---- 4 ----

    def test_4_every_state_has_a_name_in_the_debug_log(self):
        d = self.tempdir("shoal-session-")
        users = os.path.join(d, "users")
        c = self.cluster(start=False,
                         router_extra=f'users_file = "{users}";',
                         extra='log: { level = "debug"; debug = "smtp"; };')
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'tls = "none"; auth_plaintext = true; }}')
        c.write_config()
        c.add_user("u", "p")
        c.start()
        conn = self.smtp(c, c.port2)
        conn.ehlo()
        self.assertEqual(conn.cmd("AUTH LOGIN").code, 334)
        self.assertEqual(conn.cmd("dQ==").code, 334)        # "u"
        self.assertEqual(conn.cmd("cA==").code, 235)        # "p"
        self.assertEqual(conn.mail(SENDER, [RCPT], make_message("named"))
                         .code, 250)
        conn.expect(f"MAIL FROM:<{SENDER}>", 250)
        conn.expect(f"RCPT TO:<{RCPT}>", 250)
        conn.send(b"BDAT 4\r\nabcd")
        self.assertEqual(conn.reply().code, 250)
        conn.send(b"BDAT 2 LAST\r\nx\n")
        self.assertEqual(conn.reply().code, 550)
        conn.send(b"BDAT 3 LAST\r\nabc")        # refused: no transaction
        self.assertEqual(conn.reply().code, 503)
        self.assertEqual(conn.cmd("QUIT").code, 221)
        self.assertTrue(conn.closed_by_peer())

        pat = re.compile(r"state=(\S+) next=(\S+)")

        def transitions():
            return pat.findall(c.router.log_text())
        wait_for(lambda: ("closing" in {n for _, n in transitions()}), 10,
                 "the session's last transition in the log")
        names = {n for t in transitions() for n in t}
        self.assertNotIn("?", names, transitions())
        self.assertIn("auth", names, transitions())
