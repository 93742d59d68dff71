"""TLS on the router (RFC 3207 STARTTLS and implicit TLS), with Python's
ssl and smtplib as clients and certificates made by the openssl command:
the protocol versions, the discarding of commands pipelined behind
STARTTLS (CVE-2011-0411), the reset of the session after the handshake,
certificate reload on SIGHUP without dropping sessions, and the errors.
"""

import os
import signal
import smtplib
import socket
import ssl
import subprocess
import unittest

from shoaltest import (ShoalTestCase, StartError, make_message, wait_for)

OPENSSL = "/usr/bin/openssl"
SENDER = "sender@example.org"
RCPT = "rcpt@example.net"


def make_cert(d, name):
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", f"/CN={name}", "-days", "1", "-keyout", key,
                    "-out", cert], check=True, capture_output=True,
                   timeout=60)
    return cert, key


def client_ctx(minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    return ctx


class Raw:
    """A line-level SMTP client that can switch to TLS mid-stream."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("closed")
            self.buf += data
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode().rstrip("\r")

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), lines

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.reply()

    def tls(self):
        self.sock = client_ctx().wrap_socket(self.sock)

    def close(self):
        self.sock.close()


class TLSTest(ShoalTestCase):

    def setUp(self):
        self.dir = self.tempdir("shoal-tls-")
        self.cert, self.key = make_cert(self.dir, "mx.tls.example")

    def tls_cluster(self, implicit=False, plain=False, extra=""):
        """A cluster whose router has a certificate; its first listener
        offers STARTTLS, and a second one (port2) is implicit TLS or
        plain when asked. extra: more router settings."""
        c = self.cluster(start=False,
                         router_extra=f'tls_cert = "{self.cert}"; '
                                      f'tls_key = "{self.key}"; {extra}')
        if implicit:
            c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                              f'tls = "implicit"; }}')
        if plain:
            c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                              f'tls = "none"; }}')
        c.start()
        return c

    def test_1_starttls_then_mail(self):
        c = self.tls_cluster()
        with smtplib.SMTP("127.0.0.1", c.port, timeout=10) as s:
            s.ehlo("client.tls.example")
            self.assertTrue(s.has_extn("starttls"))
            code, _ = s.starttls(context=client_ctx())
            self.assertEqual(code, 220)
            self.assertEqual(s.sock.version() in ("TLSv1.2", "TLSv1.3"),
                             True)
            s.ehlo("client.tls.example")
            self.assertFalse(s.has_extn("starttls"), "not offered twice")
            s.sendmail(SENDER, [RCPT], make_message("over tls"))
            code, text = s.noop()
            self.assertEqual(code, 250)
        listing = c.queue_list()["messages"]
        self.assertEqual(len(listing), 1)
        shown = c.queue_show(listing[0]["qid"])
        self.assertIn("with ESMTPS id", shown["headers"])

    def test_2_only_tls_12_and_13(self):
        c = self.tls_cluster()
        for maxv, ok in ((ssl.TLSVersion.TLSv1_1, False),
                         (ssl.TLSVersion.TLSv1_2, True),
                         (ssl.TLSVersion.TLSv1_3, True)):
            ctx = client_ctx(ssl.TLSVersion.TLSv1, maxv)
            if not ok:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            s = smtplib.SMTP("127.0.0.1", c.port, timeout=10)
            s.ehlo()
            try:
                s.starttls(context=ctx)
                got = s.sock.version()
                s.quit()
            except (ssl.SSLError, smtplib.SMTPServerDisconnected,
                    ConnectionError) as e:
                got = None
                self.assertFalse(ok, f"{maxv}: {e}")
            finally:
                s.close()
            self.assertEqual(got is not None, ok, f"{maxv}: {got}")
        self.assertTrue(c.router.running())

    def test_3_commands_pipelined_behind_starttls_are_dropped(self):
        c = self.tls_cluster()
        r = Raw(c.port)
        self.assertEqual(r.reply()[0], 220)
        self.assertEqual(r.cmd("EHLO client.example")[0], 250)
        # one packet: STARTTLS and an injected transaction
        r.sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n"
                       b"RCPT TO:<victim@example.net>\r\n")
        code, lines = r.reply()
        self.assertEqual(code, 220, lines)
        r.tls()
        # the injected MAIL never ran: after the handshake we are back
        # before EHLO, so MAIL is out of sequence
        self.assertEqual(r.cmd("MAIL FROM:<a@example.org>")[0], 503)
        self.assertEqual(r.cmd("EHLO client.example")[0], 250)
        self.assertEqual(r.cmd("MAIL FROM:<a@example.org>")[0], 250)
        r.close()
        wait_for(lambda: "event=starttls_pipelined" in c.router.log_text(),
                 5, "the router logging the dropped commands")

    def test_4_starttls_in_a_transaction_and_errors(self):
        c = self.tls_cluster()
        r = Raw(c.port)
        r.reply()
        r.cmd("EHLO client.example")
        self.assertEqual(r.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(r.cmd("STARTTLS")[0], 503, "not mid-transaction")
        self.assertEqual(r.cmd("RSET")[0], 250)
        self.assertEqual(r.cmd("STARTTLS now")[0], 501)
        self.assertEqual(r.cmd("STARTTLS")[0], 220)
        r.tls()
        r.cmd("EHLO client.example")
        self.assertEqual(r.cmd("STARTTLS")[0], 503, "TLS already active")
        r.close()

    def test_5_implicit_tls_listener(self):
        c = self.tls_cluster(implicit=True)
        with smtplib.SMTP_SSL("127.0.0.1", c.port2, timeout=10,
                              context=client_ctx()) as s:
            s.ehlo("client.tls.example")
            self.assertFalse(s.has_extn("starttls"))
            s.sendmail(SENDER, [RCPT], make_message("implicit"))
        # the plain listener is still there, with STARTTLS
        with smtplib.SMTP("127.0.0.1", c.port, timeout=10) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("starttls"))
        self.assertEqual(len(c.queue_list()["messages"]), 1)

    def test_6_reload_on_sighup_keeps_sessions(self):
        c = self.tls_cluster()
        before = smtplib.SMTP("127.0.0.1", c.port, timeout=10)
        before.ehlo()
        before.starttls(context=client_ctx())
        old_der = before.sock.getpeercert(binary_form=True)
        new_cert, new_key = make_cert(self.dir, "renewed.tls.example")
        os.replace(new_cert, self.cert)
        os.replace(new_key, self.key)
        c.router.send_signal(signal.SIGHUP)
        wait_for(lambda: "tls event=reloaded" in c.router.log_text(), 5,
                 "the router reloading its certificate")
        after = smtplib.SMTP("127.0.0.1", c.port, timeout=10)
        after.ehlo()
        after.starttls(context=client_ctx())
        new_der = after.sock.getpeercert(binary_form=True)
        self.assertNotEqual(old_der, new_der, "new sessions get the new "
                            "certificate")
        with open(self.cert, "rb") as f:
            pem = f.read().decode()
        self.assertEqual(ssl.DER_cert_to_PEM_cert(new_der).strip(),
                         pem.strip())
        # the session from before goes on
        before.ehlo()
        self.assertEqual(before.noop()[0], 250)
        before.sendmail(SENDER, [RCPT], make_message("old session"))
        before.quit()
        after.quit()
        # a broken key: the reload fails, the old context stays
        with open(self.key, "w") as f:
            f.write("not a key\n")
        c.router.send_signal(signal.SIGHUP)
        wait_for(lambda: "tls event=reload_failed" in c.router.log_text(),
                 5, "the failed reload logged")
        with smtplib.SMTP("127.0.0.1", c.port, timeout=10) as s:
            s.ehlo()
            s.starttls(context=client_ctx())
            self.assertEqual(s.sock.getpeercert(binary_form=True), new_der)

    def test_7_no_tls_where_not_configured(self):
        c = self.tls_cluster(plain=True)
        r = Raw(c.port2)
        r.reply()
        code, lines = r.cmd("EHLO client.example")
        self.assertNotIn("250-STARTTLS", lines)
        self.assertEqual(r.cmd("STARTTLS")[0], 502)
        r.close()
        # implicit TLS without a certificate: the router refuses to start
        c2 = self.cluster(start=False)
        c2.listen_extra = (f', {{ address = "127.0.0.1:{c2.port2}"; '
                           f'tls = "implicit"; }}')
        with self.assertRaises(StartError) as e:
            c2.start()
        self.assertIn("router.tls_cert is not set", str(e.exception))

    def test_8_a_handshake_that_never_comes_ends_the_session(self):
        """A client that asks for TLS (STARTTLS, or connecting to the
        implicit listener) and then sends nothing: idle_timeout ends the
        session, though its 421 cannot go out before a handshake; the
        router closes the socket (and frees the session) within another
        idle_timeout."""
        c = self.tls_cluster(implicit=True, extra="idle_timeout = 1;")
        r = Raw(c.port)
        self.assertEqual(r.reply()[0], 220)
        self.assertEqual(r.cmd("EHLO client.example")[0], 250)
        self.assertEqual(r.cmd("STARTTLS")[0], 220)
        implicit = socket.create_connection(("127.0.0.1", c.port2))
        self.addCleanup(implicit.close)
        for what, sock in (("STARTTLS", r.sock), ("implicit", implicit)):
            sock.settimeout(10)
            try:
                got = sock.recv(100)
            except ConnectionResetError:
                got = b""
            except socket.timeout:
                self.fail(f"{what}: the router kept the session 10 s")
            self.assertEqual(got, b"", f"{what}: closed, nothing said")
        wait_for(lambda: c.router.log_text().count(
                 "event=timeout state=closing") >= 2, 5,
                 "both closings logged")


if __name__ == "__main__":
    unittest.main()
