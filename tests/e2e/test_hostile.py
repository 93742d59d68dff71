"""Hostile input over a real socket: each case sends what a broken or
malicious client might (smuggling attempts, NUL bytes, overlong lines,
8-bit without 8BITMIME, too many recipients, every sequence error, bad
base64 in AUTH, AUTH before TLS, pipelining floods, idle and slow
clients) and checks the exact reply code, that the router is still
alive, and at the end that its memory stayed bounded. The cases are a
table; each runs on a fresh connection.
"""

import os
import socket
import time
import unittest

from shoaltest import ShoalTestCase, log

HDR = b"From: <a@example.org>\r\nSubject: hostile\r\n\r\n"
MAIL = b"MAIL FROM:<a@example.org>\r\n"
RCPT = b"RCPT TO:<b@example.net>\r\n"
EHLO = b"EHLO client.example\r\n"


def txn(body):
    """EHLO, MAIL, RCPT, DATA then body (which ends the data or not)."""
    return [EHLO, MAIL, RCPT, b"DATA\r\n", body]


# (name, steps, the reply codes expected in order after the greeting)
CASES = [
    # SMTP smuggling (CVE-2023-51764 and friends): only CRLF.CRLF ends
    ("smuggle_lf_dot_lf", txn(HDR + b"x\n.\nMAIL FROM:<evil@x.example>\r\n"
                              b".\r\n"), [250, 250, 250, 354, 550]),
    ("smuggle_cr_dot_lf", txn(HDR + b"x\r.\nRCPT TO:<e@x.example>\r\n"
                              b".\r\n"), [250, 250, 250, 354, 550]),
    ("smuggle_lf_dot_crlf", txn(HDR + b"x\n.\r\nQUIT\r\n.\r\n"),
     [250, 250, 250, 354, 550]),
    ("smuggle_crlf_dot_lf", txn(HDR + b"x\r\n.\nQUIT\r\n.\r\n"),
     [250, 250, 250, 354, 550]),
    ("smuggle_cr_dot_cr", txn(HDR + b"x\r.\r.\r\n.\r\n"),
     [250, 250, 250, 354, 550]),
    ("bare_lf_in_body", txn(HDR + b"line\nline\r\n.\r\n"),
     [250, 250, 250, 354, 550]),
    ("dot_stuffed_ok", txn(HDR + b"..not the end\r\n.\r\n"),
     [250, 250, 250, 354, 250]),
    # NUL bytes
    ("nul_in_command", [b"EH\0LO x\r\n"], [500]),
    ("nul_in_mail_arg", [EHLO, b"MAIL FROM:<a\0@b.example>\r\n"],
     [250, 500]),
    ("nul_in_body", txn(HDR + b"a\0b\r\n.\r\n"), [250, 250, 250, 354, 550]),
    # overlong lines
    ("long_command", [b"NOOP " + b"x" * 5000 + b"\r\n", b"NOOP\r\n"],
     [500, 250]),
    ("long_body_line", txn(HDR + b"y" * 1200 + b"\r\n.\r\n"),
     [250, 250, 250, 354, 550]),
    ("long_address", [EHLO, b"MAIL FROM:<" + b"a" * 300 +
                      b"@b.example>\r\n"], [250, 501]),
    # 8-bit
    ("eight_bit_without_8bitmime", [EHLO, MAIL, RCPT, b"DATA\r\n",
                                    HDR + b"caf\xc3\xa9\r\n.\r\n"],
     [250, 250, 250, 354, 250]),
    ("eight_bit_in_command", [b"EHLO caf\xc3\xa9.example\r\n"], [500]),
    ("utf8_address_without_smtputf8",
     [EHLO, "MAIL FROM:<r\u00e9@b.example>\r\n".encode()], [250, 553]),
    # recipients
    ("too_many_recipients", [EHLO, MAIL] + [RCPT] * 4, [250, 250, 250, 250,
                                                        250, 452]),
    # every sequence error
    ("mail_before_helo", [MAIL], [503]),
    ("rcpt_before_mail", [EHLO, RCPT], [250, 503]),
    ("data_before_rcpt", [EHLO, MAIL, b"DATA\r\n"], [250, 250, 503]),
    ("data_before_mail", [EHLO, b"DATA\r\n"], [250, 503]),
    ("nested_mail", [EHLO, MAIL, MAIL], [250, 250, 503]),
    ("bdat_before_mail", [EHLO, b"BDAT 4 LAST\r\nabcd"], [250, 503]),
    ("data_after_bdat", [EHLO, MAIL, RCPT, b"BDAT 4\r\nabcd",
                         b"DATA\r\n"], [250, 250, 250, 250, 503]),
    ("helo_without_name", [b"HELO\r\n"], [501]),
    ("ehlo_without_name", [b"EHLO\r\n"], [501]),
    ("unknown_command", [b"XYZZY\r\n"], [500]),
    ("empty_line", [b"\r\n"], [500]),
    # syntax
    ("mail_syntax", [EHLO, b"MAIL FROM:a@b.example\r\n"], [250, 501]),
    ("rcpt_syntax", [EHLO, MAIL, b"RCPT TO:<@>\r\n"], [250, 250, 501]),
    ("size_too_big", [EHLO, b"MAIL FROM:<a@b.example> SIZE=999999999999\r\n"],
     [250, 552]),
    ("unknown_mail_param", [EHLO, b"MAIL FROM:<a@b.example> FOO=BAR\r\n"],
     [250, 555]),
    ("bad_notify", [EHLO, MAIL, b"RCPT TO:<b@example.net> NOTIFY=SOMETIMES"
                    b"\r\n"], [250, 250, 501]),
    ("envid_too_long", [EHLO, b"MAIL FROM:<a@b.example> ENVID=" +
                        b"x" * 200 + b"\r\n"], [250, 501]),
    ("bdat_not_a_number", [EHLO, MAIL, RCPT, b"BDAT many\r\n"],
     [250, 250, 250, 501, 421]),        # framing lost: closed
    ("bdat_chunk_then_rset", [EHLO, MAIL, RCPT, b"BDAT 4\r\nabcd",
                              b"RSET\r\n", b"MAIL FROM:<a@b.example>\r\n"],
     [250, 250, 250, 250, 250, 250]),
    ("bare_cr_in_command", [b"NOOP\rQUIT\r\n"], [500]),
    # TLS and AUTH where they are not offered
    ("starttls_not_offered", [b"EHLO x\r\n", b"STARTTLS\r\n"], [250, 502]),
    # users configured but no TLS here: 538 (RFC 4954 encryption required)
    ("auth_before_tls", [b"EHLO x\r\n", b"AUTH PLAIN AAAA\r\n"], [250, 538]),
    # pipelining: a flood of commands in one write, every one answered
    ("pipelining_flood", [b"NOOP\r\n" * 300], [250] * 300),
    ("rset_mid_transaction", [EHLO, MAIL, RCPT, b"RSET\r\n", RCPT],
     [250, 250, 250, 250, 503]),
]

# On the listener with AUTH in plaintext (port2) and TLS on the main one
AUTH_CASES = [
    ("auth_bad_base64", [EHLO, b"AUTH PLAIN %%%%\r\n"], [250, 501]),
    ("auth_unknown_mechanism", [EHLO, b"AUTH GSSAPI\r\n"], [250, 504]),
    ("auth_cancel", [EHLO, b"AUTH LOGIN\r\n", b"*\r\n"], [250, 334, 501]),
    ("auth_in_transaction", [EHLO, MAIL, b"AUTH PLAIN AAAA\r\n"],
     [250, 250, 503]),
]

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def reply(self):
        while True:
            while b"\n" not in self.buf:
                data = self.s.recv(65536)
                if not data:
                    raise EOFError("closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            if line[3:4] != b"-":
                return int(line[:3]), line


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


class HostileTest(ShoalTestCase):

    def run_cases(self, c, port, cases):
        for name, steps, want in cases:
            with self.subTest(case=name):
                t0 = time.monotonic()
                conn = Conn(port)
                self.assertEqual(conn.reply()[0], 220)
                got = []
                for i, step in enumerate(steps):
                    conn.s.sendall(step)
                    # the last step takes every reply still expected;
                    # the others one per command line they hold
                    n = (len(want) - len(got) if i == len(steps) - 1
                         else _replies_for(step))
                    for _ in range(n):
                        try:
                            got.append(conn.reply()[0])
                        except (EOFError, OSError):
                            break
                # and no reply more (to smuggled or cut-off commands):
                # the 214 to a HELP sent now must come next
                if got == want and want[-1] not in (221, 421):
                    conn.s.sendall(b"HELP\r\n")
                    try:
                        got.append(conn.reply()[0])
                    except (EOFError, OSError):
                        got.append("closed")
                    want = want + [214]
                conn.s.close()
                if time.monotonic() - t0 > 2:
                    log(f"hostile: {name} took "
                        f"{time.monotonic() - t0:.1f}s")
                self.assertEqual(got, want, name)
                self.assertTrue(c.router.running(), f"router died: {name}")

    def test_1_hostile_cases(self):
        d = self.tempdir("shoal-hostile-")
        users = os.path.join(d, "users")
        c = self.cluster(start=False, max_recipients=3,
                         router_extra=f'users_file = "{users}"; '
                                      'max_errors = 1000;')
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'tls = "none"; auth_plaintext = true; }}')
        c.write_config()
        c.add_user("u", "p")
        c.start()
        before = rss_kb(c.router.pid)
        for _ in range(2):   # two rounds: memory must not grow with them
            self.run_cases(c, c.port, CASES)
            self.run_cases(c, c.port2, AUTH_CASES)
        after = rss_kb(c.router.pid)
        log(f"hostile: {len(CASES) + len(AUTH_CASES)} cases x2, router "
            f"RSS {before} kB -> {after} kB")
        self.assertLess(after - before, 64 * 1024, "memory stayed bounded")

    def test_2_too_many_errors_and_slow_clients(self):
        c = self.cluster(router_extra="max_errors = 5; idle_timeout = 1; "
                                      "session_timeout = 3;")
        conn = Conn(c.port)
        conn.reply()
        conn.s.sendall(b"GARBAGE\r\n" * 10)
        codes = []
        while True:
            try:
                codes.append(conn.reply()[0])
            except (EOFError, OSError):
                break
        self.assertEqual(codes[:5], [500] * 5)
        self.assertEqual(codes[-1], 421, codes)
        # a slowloris: one byte every 0.5 s never finishes a line; the
        # session ends at session_timeout
        conn = Conn(c.port)
        conn.reply()
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < 10:
            try:
                conn.s.sendall(b"N")
            except OSError:
                break
            conn.s.settimeout(0.5)
            try:
                data = conn.s.recv(4096)
            except socket.timeout:
                continue
            if data.startswith(b"421"):
                got = data
                break
        self.assertIsNotNone(got, "cut by the router")
        self.assertLess(time.monotonic() - t0, 6)
        self.assertTrue(c.router.running())


def _replies_for(step):
    """Replies a step gets before the next is sent: one per command line;
    none for a DATA body that does not end."""
    if step.startswith(b"BDAT"):
        return 1
    return max(1, step.count(b"\r\n"))


if __name__ == "__main__":
    unittest.main()
