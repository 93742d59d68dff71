"""The SMTP session's protocol rules as a client meets them on the wire
(router/session_table.c holds them as a table):

- improper command pipelining (RFC 2920 3.1) is refused as Postfix's
  smtpd refuses it ("554 5.5.0 Error: SMTP protocol synchronization",
  then the connection closes): input already sent behind a command that
  must end its group (EHLO, HELO, DATA, NOOP, VRFY, EXPN), or behind any
  command of a client that did not say EHLO (it was never offered
  PIPELINING);
- real clients that pipeline, or do not, still go through: a raw
  pipelined burst with DATA and BDAT, swaks --pipeline, Python's smtplib,
  Postfix's smtp-source and Postfix's own smtp client relaying to us;
- EHLO between BDAT chunks resets the transaction as RSET would (RFC
  5321 4.1.4, RFC 3030 2);
- every state the session goes through has a name in the debug log.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import time

from shoaltest import (SMTPConn, ShoalTestCase, free_port, make_message,
                       qid_from_reply, wait_for)

SENDER = "a@example.com"
RCPT = "b@example.net"
SYNC = "554 5.5.0 Error: SMTP protocol synchronization"


class SessionTest(ShoalTestCase):

    def smtp(self, c, port=None):
        conn = SMTPConn(port or c.port)
        self.addCleanup(conn.close)
        self.assertEqual(conn.greeting.code, 220, conn.greeting)
        return conn

    def assertRefusedAndClosed(self, conn, what):
        r = conn.reply()
        self.assertEqual(f"{r.code} {r.text}", SYNC, what)
        self.assertTrue(conn.closed_by_peer(), f"{what}: closed after 554")

    # ---- 1 ----

    def test_1_improper_pipelining_is_refused(self):
        c = self.cluster()
        body = make_message("pipelined behind DATA") + b".\r\n"

        # the positive control first: the same transaction, DATA's 354
        # awaited, is queued; so is a burst MAIL RCPT DATA after EHLO
        conn = self.smtp(c)
        conn.ehlo()
        conn.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n")
        self.assertEqual([r.code for r in conn.replies(3)], [250, 250, 354])
        conn.send(body)
        self.assertIsNotNone(qid_from_reply(conn.reply().text))

        # the message sent behind DATA, before its 354
        conn = self.smtp(c)
        conn.ehlo()
        conn.expect(f"MAIL FROM:<{SENDER}>", 250)
        conn.expect(f"RCPT TO:<{RCPT}>", 250)
        conn.send(b"DATA\r\n" + body)
        self.assertRefusedAndClosed(conn, "body behind DATA")

        # MAIL behind EHLO, before its 250
        conn = self.smtp(c)
        conn.send(f"EHLO client.example\r\nMAIL FROM:<{SENDER}>\r\n")
        self.assertRefusedAndClosed(conn, "MAIL behind EHLO")

        # a client that said HELO was not offered PIPELINING; the same
        # burst after EHLO is fine (above)
        conn = self.smtp(c)
        conn.expect("HELO client.example", 250)
        conn.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\n")
        self.assertRefusedAndClosed(conn, "MAIL RCPT after HELO")

        # a flood of NOOPs gets one answer
        conn = self.smtp(c)
        conn.ehlo()
        conn.send(b"NOOP\r\n" * 300)
        self.assertRefusedAndClosed(conn, "NOOP flood")

        log = c.router.log_text()
        for verb in ("DATA", "EHLO", "MAIL", "NOOP"):
            self.assertRegex(log, r"event=improper_pipelining after=" + verb +
                             r" input=\"", verb)
        self.assertIn('input="MAIL FROM:<a@example.com>\\x0d\\x0a"', log)
        self.assertEqual(len(c.queue_list()["messages"]), 1,
                         "only the control message was queued")

    # ---- 2 ----

    def test_2_pipelining_clients_go_through(self):
        c = self.cluster()
        accepted = 0

        def wait_accepted(n, what):
            wait_for(lambda: c.router.log_text().count("event=accepted")
                     >= n, 30, what)

        # a raw burst: RSET, MAIL, RCPTs, DATA in one write; then MAIL,
        # RCPT and two BDAT chunks with their octets in one write
        conn = self.smtp(c)
        conn.ehlo()
        conn.send(f"RSET\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\n"
                  f"RCPT TO:<c@example.net>\r\nDATA\r\n")
        self.assertEqual([r.code for r in conn.replies(5)],
                         [250, 250, 250, 250, 354])
        conn.send(make_message("burst") + b".\r\n")
        self.assertIsNotNone(qid_from_reply(conn.reply().text))
        msg = make_message("chunks")
        conn.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\n"
                  f"BDAT 10\r\n".encode() + msg[:10] +
                  f"BDAT {len(msg) - 10} LAST\r\n".encode() + msg[10:] +
                  b"QUIT\r\n")
        rs = conn.replies(5)
        self.assertEqual([r.code for r in rs], [250, 250, 250, 250, 221], rs)
        self.assertIsNotNone(qid_from_reply(rs[3].text), rs[3])
        accepted += 2

        # swaks, pipelining what it may
        r = subprocess.run(
            ["/usr/bin/swaks", "--server", f"127.0.0.1:{c.port}",
             "--from", SENDER, "--to", RCPT, "--pipeline",
             "--header", "Subject: swaks pipelined"],
            capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertRegex(out, r"queued as ", out)
        self.assertRegex(out, r"MAIL FROM:<a@example.com>\n -> RCPT TO", out)
        accepted += 1

        # Python's smtplib, one command at a time
        with smtplib.SMTP("127.0.0.1", c.port, timeout=10) as s:
            s.sendmail(SENDER, [RCPT], make_message("smtplib"))
        accepted += 1

        # Postfix's smtp-source: HELO, and no pipelining
        src = subprocess.run(
            ["smtp-source", "-s", "2", "-m", "4", "-f", SENDER, "-t", RCPT,
             "-M", "source.example", f"127.0.0.1:{c.port}"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(src.returncode, 0, src.stderr)
        accepted += 4
        wait_accepted(accepted, f"{accepted} messages accepted")

        # Postfix's smtp client, which pipelines MAIL RCPT DATA
        if shutil.which("postfix") is None:
            self.skipTest("no Postfix here for its smtp client")
        pfx = self.postfix_relaying_to(c.port)
        with smtplib.SMTP("127.0.0.1", pfx, timeout=10) as s:
            s.sendmail(SENDER, [RCPT, "d@example.net"],
                       make_message("through postfix"))
        accepted += 1
        wait_accepted(accepted, "the message Postfix relayed")
        self.assertRegex(c.router.log_text(),
                         r"event=accepted client=127\.0\.0\.1 "
                         r"from=<a@example\.com> nrcpt=2")
        self.assertNotIn("improper_pipelining", c.router.log_text())

    def postfix_relaying_to(self, relay_port):
        """A private Postfix instance (as bench/lib.sh's postfix_start)
        whose smtpd listens on a free port and relays all mail to
        127.0.0.1:relay_port; stopped at cleanup. Returns the port."""
        d = self.tempdir("shoal-postfix-")
        conf, port = os.path.join(d, "etc"), free_port()
        os.makedirs(conf)
        os.makedirs(os.path.join(d, "queue"))
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
config_directory = {conf}
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = postfix.e2e.example
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{relay_port}
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
""")
        services = [
            f"127.0.0.1:{port} inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write("\n".join(services) + "\n")
        os.chmod(d, 0o755)
        r = subprocess.run(["postfix", "-c", conf, "start"],
                           capture_output=True, text=True, timeout=60)
        self.addCleanup(self.postfix_stop, conf, d)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def listening():
            try:
                with SMTPConn(port, timeout=2):
                    return True
            except OSError:
                return False
        wait_for(listening, 15, "Postfix's smtpd listening")
        return port

    def postfix_stop(self, conf, d):
        try:
            with open(os.path.join(d, "queue", "pid", "master.pid")) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        subprocess.run(["postfix", "-c", conf, "stop"],
                       capture_output=True, timeout=60)
        if pid:
            def gone():
                try:
                    os.kill(pid, 0)
                    return False
                except ProcessLookupError:
                    return True
            try:
                wait_for(gone, 10, "Postfix's master exiting")
            except AssertionError:
                os.killpg(pid, signal.SIGKILL)

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

    # ---- 5 ----

    def test_5_session_timeout_while_waiting_answers_first(self):
        """router.session_timeout passing while the session waits for the
        node's answer to its message: the client gets that answer (the
        message may be stored: a bare 421 would make it send it again)
        and then the 421, and nothing after it."""
        c = self.cluster(nodes=1, router_extra="session_timeout = 1;",
                         node_timeout_ms=8000)
        conn = self.smtp(c)
        conn.ehlo()
        conn.expect(f"MAIL FROM:<{SENDER}>", 250)
        conn.expect(f"RCPT TO:<{RCPT}>", 250)
        conn.expect("DATA", 354)
        n1 = c.node("n1")
        router = c.router
        mark = router.log_offset()
        # the node cannot answer: the session waits past its lifetime
        n1.send_signal(signal.SIGSTOP)
        self.addCleanup(n1.send_signal, signal.SIGCONT)
        conn.send(make_message("waits past the session timeout") +
                  b".\r\n")
        router.wait_log(r"event=session_timeout", 10, since=mark)
        n1.send_signal(signal.SIGCONT)
        first = conn.reply()
        self.assertEqual(first.code, 250, f"the answer to the message "
                         f"first, then the 421: got {first}")
        qid = qid_from_reply(first.text)
        second = conn.reply()
        self.assertEqual((second.code, second.text.split()[0]),
                         (421, "4.4.2"), second)
        self.assertTrue(conn.closed_by_peer(), "closed after the 421")
        # the 250 was true: the node has it
        self.assertIn(qid, [m["qid"] for m in c.queue_list()["messages"]])

    # ---- 6 ----

    def test_6_a_half_close_still_gets_every_answer(self):
        """A client that sends its messages and QUIT and then shuts its
        side (shutdown(SHUT_WR)) before it reads: every message is
        answered (250 with its qid, stored) and then 221 and the close.
        The end of input used to end the session at once: messages stored
        without their 250, which the client would send again."""
        c = self.cluster(nodes=1)
        # DATA: the body, "." and QUIT behind it
        conn = self.smtp(c)
        conn.ehlo()
        conn.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\nDATA\r\n")
        self.assertEqual([r.code for r in conn.replies(3)], [250, 250, 354])
        conn.send(make_message("half close, DATA") + b".\r\nQUIT\r\n")
        conn.sock.shutdown(socket.SHUT_WR)
        answer = conn.reply()
        self.assertEqual(answer.code, 250, answer)
        qids = [qid_from_reply(answer.text)]
        self.assertEqual(conn.reply().code, 221)
        self.assertTrue(conn.closed_by_peer(), "closed after the 221")
        # BDAT: three whole transactions pipelined, QUIT, the half-close
        conn = self.smtp(c)
        conn.ehlo()
        sent = b""
        for i in range(3):
            msg = make_message(f"half close, BDAT {i}")
            sent += (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\n"
                     f"BDAT {len(msg)} LAST\r\n").encode() + msg
        conn.send(sent + b"QUIT\r\n")
        conn.sock.shutdown(socket.SHUT_WR)
        for i in range(3):
            mail, rcpt, bdat = conn.replies(3)
            self.assertEqual((mail.code, rcpt.code, bdat.code),
                             (250, 250, 250), f"transaction {i}: {bdat}")
            qids.append(qid_from_reply(bdat.text))
        self.assertEqual(conn.reply().code, 221)
        self.assertTrue(conn.closed_by_peer(), "closed after the 221")
        stored = [m["qid"] for m in c.queue_list()["messages"]]
        for q in qids:
            self.assertIn(q, stored)
