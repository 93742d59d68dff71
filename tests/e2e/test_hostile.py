"""Hostile input over a real socket: each case sends what a broken or
malicious client might (smuggling attempts, NUL bytes, overlong lines,
8-bit without 8BITMIME, too many recipients, every sequence error, bad
base64 in AUTH, AUTH before TLS, pipelining floods, idle and slow
clients) and checks the exact reply code, that the router is still
alive, and at the end that its memory stayed bounded. The cases are a
table; each runs on a fresh connection.

Every hostile message body goes in twice more, by BDAT (RFC 3030): in
one chunk and cut in two right after its first bad octet, so the bad
sequence spans the chunks. DATA and BDAT must answer the same bytes the
same way (lib/smtp_data.c is the one checker both feed); test_3 holds
the whole reply lines side by side and proves at a real MX that none of
those messages is delivered while a clean and an 8-bit BDAT message are,
the 8-bit one with BODY=8BITMIME.
"""

import os
import socket
import time
import unittest

from shoaltest import SMTPConn, ShoalTestCase, log, wait_for
from test_delivery import DEST, Peers

HDR = b"From: <a@example.org>\r\nSubject: hostile\r\n\r\n"
MAIL = b"MAIL FROM:<a@example.org>\r\n"
RCPT = b"RCPT TO:<b@example.net>\r\n"
EHLO = b"EHLO client.example\r\n"
HOP = b"Received: from a.example by b.example; 1 Jan 2026 00:00 +0000\r\n"


def txn(body):
    """EHLO, MAIL, RCPT, DATA then body (which ends the data or not)."""
    return [EHLO, MAIL, RCPT, b"DATA\r\n", body]


def bdat_steps(body, cut=None):
    """BDAT chunks carrying body: one "BDAT n LAST", or two when cut (an
    offset) is given."""
    if cut is None or not 0 < cut < len(body):
        return [b"BDAT %d LAST\r\n" % len(body) + body]
    return [b"BDAT %d\r\n" % cut + body[:cut],
            b"BDAT %d LAST\r\n" % (len(body) - cut) + body[cut:]]


def first_bad(body):
    """The offset just past the first octet that makes body bad (a bare
    CR or LF, a NUL, the 999th octet of a line), or the middle; a chunk
    cut there splits the bad sequence between two chunks."""
    line = 0
    for i, c in enumerate(body):
        if c == 0 or (c == 0x0D and body[i + 1:i + 2] != b"\n") or \
                (c == 0x0A and body[i - 1:i] != b"\r") or line == 998:
            return i + 1
        line = 0 if c == 0x0A else line + 1
    return len(body) // 2


# Message bodies as DATA sends them, without the final ".\r\n", and the
# reply code to their end (lib/smtp_data.c). BDAT sends the same octets and must get the
# same answer: the content rules are the message's, not the command's.
BODIES = [
    # SMTP smuggling (CVE-2023-51764 and friends): only CRLF.CRLF ends
    ("smuggle_lf_dot_lf", HDR + b"x\n.\nMAIL FROM:<evil@x.example>\r\n",
     550),
    ("smuggle_cr_dot_lf", HDR + b"x\r.\nRCPT TO:<e@x.example>\r\n", 550),
    ("smuggle_lf_dot_crlf", HDR + b"x\n.\r\nQUIT\r\n", 550),
    ("smuggle_crlf_dot_lf", HDR + b"x\r\n.\nQUIT\r\n", 550),
    ("smuggle_cr_dot_cr", HDR + b"x\r.\r.\r\n", 550),
    ("smuggle_cr_dot_crlf", HDR + b"hello\r.\r\nMAIL FROM:<e@x.example>"
     b"\r\n", 550),
    ("bare_lf_in_body", HDR + b"line\nline\r\n", 550),
    ("bare_cr_in_body", HDR + b"line\rline\r\n", 550),
    ("dot_stuffed_ok", HDR + b"..not the end\r\n", 250),
    # NUL bytes
    ("nul_in_body", HDR + b"a\0b\r\n", 550),
    # overlong lines: 998 octets and CRLF is the most (RFC 5321 4.5.3.1.6)
    ("long_body_line", HDR + b"y" * 1200 + b"\r\n", 550),
    ("longest_body_line", HDR + b"y" * 998 + b"\r\n", 250),
    # 8-bit without BODY=8BITMIME is taken, and recorded as 8-bit
    ("eight_bit_without_8bitmime", HDR + b"caf\xc3\xa9\r\n", 250),
    # a mail loop (RFC 5321 6.3): 50 Received: fields are too many
    ("hops_49", HOP * 49 + HDR + b"x\r\n", 250),
    ("hops_50", HOP * 50 + HDR + b"x\r\n", 554),
]

CONTENT_CASES = []
for _name, _body, _code in BODIES:
    _cut = first_bad(_body)
    CONTENT_CASES += [
        (_name, txn(_body + b".\r\n"), [250, 250, 250, 354, _code]),
        ("bdat_" + _name, [EHLO, MAIL, RCPT] + bdat_steps(_body),
         [250, 250, 250, _code]),
        ("bdat_cut_" + _name, [EHLO, MAIL, RCPT] + bdat_steps(_body, _cut),
         [250, 250, 250, 250, _code]),
    ]

# (name, steps, the reply codes expected in order after the greeting)
CASES = CONTENT_CASES + [
    # BDAT only: a chunk ending inside CRLF, a last line without CRLF
    # (taken; the router ends it), a CR as the very last octet (bare)
    ("bdat_crlf_across_chunks", [EHLO, MAIL, RCPT] +
     bdat_steps(HDR + b"a\r\nb\r\n", len(HDR) + 2), [250] * 5),
    ("bdat_last_line_without_crlf", [EHLO, MAIL, RCPT] +
     bdat_steps(HDR + b"no newline"), [250] * 4),
    ("bdat_ends_in_cr", [EHLO, MAIL, RCPT] + bdat_steps(HDR + b"x\r", 3),
     [250, 250, 250, 250, 550]),
    # NUL bytes
    ("nul_in_command", [b"EH\0LO x\r\n"], [500]),
    ("nul_in_mail_arg", [EHLO, b"MAIL FROM:<a\0@b.example>\r\n"],
     [250, 500]),
    # overlong lines
    ("long_command", [b"NOOP " + b"x" * 5000 + b"\r\n", b"NOOP\r\n"],
     [500, 250]),
    ("long_address", [EHLO, b"MAIL FROM:<" + b"a" * 300 +
                      b"@b.example>\r\n"], [250, 501]),
    # 8-bit
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
    # RFC 1870: size-value is 1*20DIGIT; past 2^64 it is only too big
    ("size_20_digits", [EHLO, b"MAIL FROM:<a@b.example> "
                        b"SIZE=99999999999999999999\r\n"], [250, 552]),
    ("size_21_digits", [EHLO, b"MAIL FROM:<a@b.example> "
                        b"SIZE=100000000000000000000\r\n"], [250, 501]),
    ("size_not_digits", [EHLO, b"MAIL FROM:<a@b.example> SIZE=1e9\r\n"],
     [250, 501]),
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
    # (RSET may stand anywhere in a group, RFC 2920 3.1; NOOP must end
    # one: test_session has that flood, answered 554 once)
    ("pipelining_flood", [EHLO, b"RSET\r\n" * 300], [250] * 301),
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

    def delivering_cluster(self, **kw):
        """A cluster whose nodes deliver to a capturing MX (test_delivery's
        Peers); returns (cluster, capture)."""
        c = self.cluster(start=False, **kw)
        peers = Peers(self, c)
        cap = peers.capture()
        peers.start()
        c.delivery = peers.delivery()
        c.start()
        peers.adopt()
        return c, cap

    def send(self, c, rcpt, body, how):
        """One message to rcpt by DATA ("data"), BDAT in one chunk
        ("bdat") or BDAT cut at first_bad() ("cut"); returns the whole
        reply line to its end."""
        with SMTPConn(c.port) as conn:
            conn.ehlo()
            conn.send(f"MAIL FROM:<a@example.org>\r\n"
                      f"RCPT TO:<{rcpt}>\r\n".encode())
            for r in conn.replies(2):
                self.assertEqual(r.code, 250, r)
            if how == "data":
                self.assertEqual(conn.cmd("DATA").code, 354)
                conn.send(body + b".\r\n")
                return str(conn.reply())
            steps = bdat_steps(body, first_bad(body) if how == "cut"
                               else None)
            for step in steps[:-1]:
                conn.send(step)
                self.assertEqual(conn.reply().code, 250, how)
            conn.send(steps[-1])
            return str(conn.reply())

    def delivered(self, c, cap, rcpts):
        """Wait until every rcpt has a message at the MX and the queue is
        empty; returns {rcpt: [messages]}."""
        def all_delivered():
            if c.queue_list()["messages"]:
                return None
            got = {r: cap.to(r) for r in rcpts}
            return got if all(got.values()) else None
        return wait_for(all_delivered, 30, "delivered, queue empty",
                        interval=0.2)

    def test_3_bdat_refuses_what_data_refuses(self):
        c, cap = self.delivering_cluster()
        bad = [(n, b) for n, b, code in BODIES if code != 250]
        for name, body in bad:
            with self.subTest(body=name):
                got = {how: self.send(c, f"{name}-{how}@{DEST}", body, how)
                       for how in ("data", "bdat", "cut")}
                self.assertRegex(got["data"], r"^55[04] 5\.", got)
                self.assertEqual(got["bdat"], got["data"], name)
                self.assertEqual(got["cut"], got["data"], name)
        # the positive control, sent last: a clean message by BDAT is
        # delivered, so the bad ones would have been seen at the MX
        ok = f"clean-cut@{DEST}"
        self.assertTrue(self.send(c, ok, HDR + b"clean\r\n",
                                  "cut").startswith("250 "))
        self.delivered(c, cap, [ok])
        self.assertEqual([r for m in cap.messages() for r in m["rcpt_tos"]],
                         [ok], "only the clean message reached the MX")
        self.assertEqual(c.router.log_text().count("event=accepted"), 1,
                         "the router accepted only the clean message")

    def test_4_bdat_8bit_goes_out_with_body_8bitmime(self):
        c, cap = self.delivering_cluster()
        body8, body7 = HDR + b"caf\xc3\xa9\r\n", HDR + b"cafe\r\n"
        sent = {f"8bit-data@{DEST}": (body8, "data"),
                f"8bit-cut@{DEST}": (body8, "cut"),
                f"7bit-cut@{DEST}": (body7, "cut")}
        for rcpt, (body, how) in sent.items():
            self.assertTrue(self.send(c, rcpt, body, how).startswith("250 "))
        got = self.delivered(c, cap, list(sent))
        opts = {r: [o.upper() for o in m[0]["mail_options"]]
                for r, m in got.items()}
        # DATA shows the way: 8-bit content without BODY= goes out 8-bit
        self.assertIn("BODY=8BITMIME", opts[f"8bit-data@{DEST}"], opts)
        self.assertIn("BODY=8BITMIME", opts[f"8bit-cut@{DEST}"], opts)
        self.assertNotIn("BODY=8BITMIME", opts[f"7bit-cut@{DEST}"], opts)
        self.assertEqual(got[f"8bit-cut@{DEST}"][0]["content"].split(
            b"\r\n\r\n", 1)[1], b"caf\xc3\xa9\r\n")
    def test_5_bdat_normalizes_as_data_does(self):
        # router.bare_lf = "normalize": a bare LF becomes CRLF by either
        # command, and the smuggled lines stay content of one message
        c, cap = self.delivering_cluster(bare_lf="normalize")
        body = HDR + b"x\n.\nMAIL FROM:<evil@x.example>\r\nend\r\n"
        sent = {f"norm-{how}@{DEST}": how for how in ("data", "cut")}
        for rcpt, how in sent.items():
            self.assertTrue(self.send(c, rcpt, body, how).startswith("250 "))
        got = self.delivered(c, cap, list(sent))
        want = body.replace(b"x\n.\n", b"x\r\n.\r\n")
        for rcpt in sent:
            content = got[rcpt][0]["content"]
            self.assertTrue(content.endswith(want), (rcpt, content))
        self.assertEqual(len(cap.messages()), 2)


def _replies_for(step):
    """Replies a step gets before the next is sent: one per command line;
    none for a DATA body that does not end."""
    if step.startswith(b"BDAT"):
        return 1
    return max(1, step.count(b"\r\n"))


if __name__ == "__main__":
    unittest.main()
