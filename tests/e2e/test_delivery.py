"""End-to-end tests of delivery: SMTP client -> shoal-router -> shoal-node
-> the recipient's MX, with real peers on loopback only: Debian's dnsmasq
serving the MX and A records of *.test on a high port of 127.0.0.1,
Postfix's smtp-sink, and tests/fixtures/capture_smtpd.py (aiosmtpd) that
keeps every message it accepts and answers 4xx/5xx on command.

MX hosts are distinct loopback addresses (127.0.0.2, .3, .4) that all
listen on one port, since the node connects to delivery.smtp_port for
every MX host. Each test has its own cluster (nodes n1<->n2 and a router),
its own helpers (started before the cluster, stopped with it by PID, their
logs printed with the cluster's on failure) and a hard deadline.

Checked through what the node shows the world: the bytes and envelopes the
peers receive, DATA_DIR/delivery.log, and shoalctl --json queue list/show.
"""

import email
import email.policy
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from shoaltest import (REPO, PortInUse, Proc, SMTPConn, ScriptedMX,
                       ShoalTestCase, StartError, free_port, log, make_message,
                       qid_from_reply, received_block, wait_for)

PYTHON = "/usr/bin/python3"
DNSMASQ = "/usr/sbin/dnsmasq"
SMTP_SINK = "/usr/sbin/smtp-sink"
OPENSSL = "/usr/bin/openssl"
CAPTURE = os.path.join(REPO, "tests", "fixtures", "capture_smtpd.py")

HELO = "mta.e2e.example"
SENDER = "alice@sender.test"       # its MX is mx.sender.test = 127.0.0.4
DEST = "dest.test"                 # its MX is mx1.dest.test = 127.0.0.2
DEST_MX = "mx1.dest.test"
DEST_IP = "127.0.0.2"
SENDER_IP = "127.0.0.4"

TEST_DEADLINE = 60                 # seconds, per test (see setUp)
PEER_READY_TIMEOUT = 10.0
PEER_START_ATTEMPTS = 3
POLL = 0.1                         # seconds between shoalctl polls


class DeadlinePassed(BaseException):
    """A test ran past TEST_DEADLINE. Not an Exception on purpose: the
    polling loops (wait_for) catch Exception and would swallow it; unittest
    still records it as an error and runs the cleanups."""


# ---- small helpers --------------------------------------------------------

def dns_query(port, name, qtype, timeout=0.5):
    """One UDP query to 127.0.0.1:port. Returns (rcode, answer count)."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode("ascii")
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        data = s.recv(4096)
    finally:
        s.close()
    rid, flags, _, ancount = struct.unpack(">HHHH", data[:8])
    if rid != qid:
        raise AssertionError("DNS answer with another id")
    return flags & 0xF, ancount


def tcp_states(ip, port):
    """States (hex strings, "0A" = LISTEN, "01" = ESTABLISHED) of every
    IPv4 TCP socket whose local address is ip:port, from /proc/net/tcp."""
    a = socket.inet_aton(ip)
    want = f"{struct.unpack('<I', a)[0]:08X}:{port:04X}"
    states = []
    with open("/proc/net/tcp", encoding="ascii") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want:
                states.append(cols[3])
    return states


def is_listening(ip, port):
    return "0A" in tcp_states(ip, port)


def read_json_lines(path):
    """Complete JSON lines of a file that may be being appended to."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if not data.endswith(b"\n"):
        lines = lines[:-1]          # a line still being written
    return [json.loads(ln) for ln in lines if ln.strip()]


def parse_dsn(content):
    """A DSN as (message, per-message fields, [per-recipient fields]),
    the fields as dicts; fails unless it is an RFC 3464 report."""
    msg = email.message_from_bytes(content, policy=email.policy.default)
    if msg.get_content_type() != "multipart/report":
        raise AssertionError(f"DSN is {msg.get_content_type()}, not "
                             f"multipart/report:\n{content[:2000]!r}")
    if msg.get_param("report-type") != "delivery-status":
        raise AssertionError(f"report-type is "
                             f"{msg.get_param('report-type')!r}")
    parts = [p for p in msg.iter_parts()
             if p.get_content_type() == "message/delivery-status"]
    if len(parts) != 1:
        raise AssertionError(f"{len(parts)} message/delivery-status parts:"
                             f"\n{content[:2000]!r}")
    blocks = parts[0].get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise AssertionError(f"delivery-status without recipient fields: "
                             f"{blocks!r}")
    fields = [{k.lower(): str(v).strip() for k, v in b.items()}
              for b in blocks]
    return msg, fields[0], fields[1:]


class RecordingSMTP(smtplib.SMTP):
    """smtplib.SMTP that keeps the reply to every end of data (the QID)."""

    def __init__(self, *a, **kw):
        self.data_replies = []
        super().__init__(*a, **kw)

    def data(self, msg):
        code, text = super().data(msg)
        self.data_replies.append((code, text.decode("utf-8", "replace")))
        return code, text


# ---- helper processes -----------------------------------------------------

class Capture:
    """One capture_smtpd.py process (see its docstring)."""

    def __init__(self, peers, name, ips, own_port, hold_ms, tls, rules):
        self.peers = peers
        self.name = name
        self.ips = list(ips)
        self.own_port = own_port
        self.hold_ms = hold_ms
        self.tls = tls
        self.dir = os.path.join(peers.dir, name)
        self.rules_path = os.path.join(peers.dir, name + ".rules.json")
        self.port = None
        self.proc = None
        self.set_rules(rules or [])

    def set_rules(self, rules):
        """Replace the reply rules; the server reads them at its next
        command ([] = accept everything)."""
        tmp = self.rules_path + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"rules": rules}, f)
        os.replace(tmp, self.rules_path)

    def start(self, port):
        self.port = free_port() if self.own_port else port
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        argv = [PYTHON, CAPTURE, "--dir", self.dir, "--rules",
                self.rules_path, "--hold-ms", str(self.hold_ms)]
        for ip in self.ips:
            argv += ["--listen", f"{ip}:{self.port}"]
        if self.tls:
            # tls: True (the peers' self-signed certificate) or (cert, key)
            cert, key = self.tls if isinstance(self.tls, tuple) else \
                self.peers.certificate()
            argv += ["--tls-cert", cert, "--tls-key", key]
        self.proc = self.peers.proc(self.name, argv)
        self.proc.start(ready_re=r"capture event=ready",
                        timeout=PEER_READY_TIMEOUT)

    def addr(self, ip=None):
        return f"{ip or self.ips[0]}:{self.port}"

    def messages(self):
        """Every accepted message so far, by arrival: the envelope dict
        with the content under "content" (bytes)."""
        out = []
        try:
            names = sorted(n for n in os.listdir(self.dir)
                           if n.endswith(".json") and n[0].isdigit())
        except FileNotFoundError:
            return out
        for n in names:
            with open(os.path.join(self.dir, n), encoding="utf-8") as f:
                doc = json.load(f)
            with open(doc["file"], "rb") as f:
                doc["content"] = f.read()
            out.append(doc)
        return out

    def to(self, rcpt):
        return [m for m in self.messages() if rcpt in m["rcpt_tos"]]

    def dsns_to(self, rcpt):
        return [m for m in self.to(rcpt) if m["mail_from"] == ""]

    def stats(self):
        with open(os.path.join(self.dir, "stats.json"),
                  encoding="utf-8") as f:
            return json.load(f)


class Sink:
    """One Postfix smtp-sink: -c counters in its log, -d one file per
    message in a directory of its own (it drops root for nobody)."""

    def __init__(self, peers, name, ip):
        self.peers = peers
        self.name = name
        self.ip = ip
        self.port = None
        self.proc = None
        self.dump_dir = None

    def start(self, port):
        self.port = port
        if self.dump_dir is None:
            self.dump_dir = tempfile.mkdtemp(prefix="shoal-e2e-sink-")
            os.chmod(self.dump_dir, 0o777)
            self.peers.test.addCleanup(shutil.rmtree, self.dump_dir, True)
        argv = [SMTP_SINK, "-c", "-d", os.path.join(self.dump_dir, "%H%M%S.")]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += [f"{self.ip}:{port}", "128"]
        self.proc = self.peers.proc(self.name, argv)
        self.proc.start()
        self.peers.await_ready(self.proc,
                               lambda: is_listening(self.ip, port))

    def counters(self):
        """The last "sess=N quit=N mesg=N" line of -c, as a dict."""
        text = self.proc.log_text().replace("\r", "\n")
        last = {"sess": 0, "quit": 0, "mesg": 0}
        for ln in text.splitlines():
            if ln.startswith("sess="):
                try:
                    last = {k: int(v) for k, v in
                            (kv.split("=") for kv in ln.split())}
                except ValueError:
                    pass
        return last

    def dumps(self):
        out = []
        for n in sorted(os.listdir(self.dump_dir)):
            with open(os.path.join(self.dump_dir, n), "rb") as f:
                out.append(f.read())
        return out


class Peers:
    """The real peers of one test: dnsmasq plus capture servers and
    smtp-sinks, all on one SMTP port at distinct loopback addresses.
    Started before the cluster (its config needs their ports); a port
    collision restarts them all on new ports. Once the cluster runs they
    are handed to it (stopped and their logs printed with its own)."""

    def __init__(self, test, c):
        self.test = test
        self.c = c
        self.dir = os.path.join(c.dir, "peers")
        os.makedirs(self.dir, exist_ok=True)
        self.mx = [("dest.test", DEST_MX, 10),
                   ("sender.test", "mx.sender.test", 10)]
        self.hosts = [(DEST_MX, DEST_IP), ("mx.sender.test", SENDER_IP)]
        self.captures = []
        self.sinks = []
        self.procs = {}
        self.smtp_port = None
        self.dns_port = None
        self.cert = None
        test.addCleanup(self._cleanup)

    # -- declaring --

    def capture(self, name="capture", ips=(DEST_IP, SENDER_IP),
                own_port=False, hold_ms=0, tls=False, rules=None):
        cap = Capture(self, name, ips, own_port, hold_ms, tls, rules)
        self.captures.append(cap)
        return cap

    def sink(self, name, ip):
        s = Sink(self, name, ip)
        self.sinks.append(s)
        return s

    # -- processes --

    def proc(self, name, argv):
        p = Proc(name, argv, os.path.join(self.c.logdir, name + ".log"))
        self.procs[name] = p
        return p

    def await_ready(self, p, check, timeout=PEER_READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except OSError:
                pass
            if not p.running():
                text = p.log_text()
                p.wait(1)
                cls = PortInUse if "already in use" in text.lower() \
                    else StartError
                raise cls(f"{p.name} exited before ready; log "
                          f"{p.log_path}:\n{text}")
            if time.monotonic() >= deadline:
                p.kill()
                raise StartError(f"{p.name} not ready after {timeout:.0f}s;"
                                 f" log {p.log_path}:\n{p.log_text()}")
            time.sleep(0.05)

    def certificate(self):
        if self.cert is None:
            cert = os.path.join(self.dir, "mx.crt")
            key = os.path.join(self.dir, "mx.key")
            r = subprocess.run(
                [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-subj", "/CN=mx.test", "-days", "1", "-keyout", key,
                 "-out", cert], stdin=subprocess.DEVNULL,
                capture_output=True, timeout=60)
            if r.returncode != 0:
                raise StartError(f"openssl req failed: {r.stderr!r}")
            self.cert = (cert, key)
        return self.cert

    def _start_dns(self):
        argv = [DNSMASQ, "--no-daemon", f"--port={self.dns_port}",
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file", "--log-facility=-", "--log-queries",
                "--local=/test/"]
        for dom, host, pref in self.mx:
            argv.append(f"--mx-host={dom},{host},{pref}")
        for name, ip in self.hosts:
            argv.append(f"--host-record={name},{ip}")
        p = self.proc("dnsmasq", argv)
        p.start()
        self.await_ready(p, lambda: dns_query(self.dns_port, DEST_MX, 1)
                         == (0, 1))

    def start(self):
        """Start dnsmasq and every declared server; retried on new ports
        after a collision."""
        for attempt in range(1, PEER_START_ATTEMPTS + 1):
            self.smtp_port = free_port()
            self.dns_port = free_port(socket.SOCK_DGRAM)
            try:
                self._start_dns()
                for cap in self.captures:
                    cap.start(self.smtp_port)
                for s in self.sinks:
                    s.start(self.smtp_port)
                return
            except PortInUse as e:
                self._stop()
                if attempt == PEER_START_ATTEMPTS:
                    raise
                log(f"delivery: peer port collision, retrying "
                    f"({str(e).splitlines()[0]})")

    def adopt(self):
        """Hand the running peers to the cluster (stop + log dump)."""
        for name, p in self.procs.items():
            self.c.procs["peer-" + name] = p

    def _stop(self):
        for p in self.procs.values():
            if p.running():
                p.stop()

    def _cleanup(self):
        # peers already handed to the cluster are left to it
        mine = [p for p in self.procs.values()
                if p not in self.c.procs.values()]
        for p in mine:
            if p.running():
                p.stop()
        if self.test.failed():
            for p in mine:
                log(f"---- {p.name} log ----\n{p.log_text()}")

    # -- config --

    def delivery(self, retry="[ 1, 1, 1 ]", lifetime=600, routes=(),
                 limits=None):
        """The body of delivery: { } for these peers. routes: (domain,
        "host:port" or a Capture) pairs; limits: raw libconfig text of the
        list's entries."""
        lines = [f'  helo_name = "{HELO}";',
                 f'  dns_servers = [ "127.0.0.1:{self.dns_port}" ];',
                 f"  smtp_port = {self.smtp_port};",
                 f"  retry_schedule = {retry};",
                 f"  max_queue_lifetime = {lifetime};"]
        if routes:
            rows = ",\n    ".join(
                f'{{ domain = "{d}"; host = '
                f'"{h.addr() if isinstance(h, Capture) else h}"; }}'
                for d, h in routes)
            lines.append(f"  routes = (\n    {rows}\n  );")
        lines.append("  limits = ( " + (limits or
                     '{ domain = "*"; max_connections = 20; '
                     'max_msgs_per_conn = 100; max_msgs_per_sec = 0.0; }')
                     + " );")
        return "\n".join(lines)


# ---- the tests ------------------------------------------------------------

class DeliveryTest(ShoalTestCase):

    # ---- deadline: our own alarm, the runner's restored in tearDown ----

    def setUp(self):
        self._t0 = time.monotonic()
        self._runner_handler = signal.getsignal(signal.SIGALRM)
        self._runner_left = signal.alarm(0)
        limit = TEST_DEADLINE
        if self._runner_left:
            limit = min(limit, self._runner_left)
        signal.signal(signal.SIGALRM, self._on_deadline)
        signal.alarm(limit)

    def _on_deadline(self, signum, frame):
        raise DeadlinePassed(f"test deadline of {TEST_DEADLINE}s passed")

    def tearDown(self):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self._runner_handler)
        if self._runner_left:
            spent = int(time.monotonic() - self._t0)
            signal.alarm(max(1, self._runner_left - spent))

    # ---- set-up helpers ----

    def setup(self, peers_fn=None, cluster_kw=None, **delivery_kw):
        """A cluster (not started) and its peers: peers_fn(peers) declares
        captures and sinks; then peers start, the cluster starts with a
        delivery config pointing at them, and the peers join the cluster."""
        c = self.cluster(start=False, **(cluster_kw or {}))
        p = Peers(self, c)
        if peers_fn:
            peers_fn(p)
        p.start()
        if callable(delivery_kw.get("routes")):
            delivery_kw["routes"] = delivery_kw["routes"]()
        c.delivery = p.delivery(**delivery_kw)
        c.start()
        p.adopt()
        return c, p

    def send(self, c, rcpts, message, sender=SENDER, params=""):
        """One message through the router; returns its qid."""
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            r = conn.mail(sender, rcpts, message, params)
        self.assertEqual(r.code, 250, f"router refused the message: {r}")
        self.assertIsNotNone(r.qid, r)
        return r.qid

    def dlog(self, c, qid=None):
        """delivery.log lines of every node (of one qid if given)."""
        lines = []
        for n in c.node_ids:
            lines += read_json_lines(os.path.join(c.data_dir(n),
                                                  "delivery.log"))
        if qid is not None:
            lines = [ln for ln in lines if ln.get("qid") == qid]
        return sorted(lines, key=lambda ln: (ln.get("time", ""),
                                            ln.get("attempt", 0)))

    def dlog_final(self, c, qid, rcpt, result, timeout=20):
        """Wait for a delivery.log line of qid/rcpt with this result."""
        def found():
            return [ln for ln in self.dlog(c, qid)
                    if ln.get("rcpt") == rcpt and
                    ln.get("result") == result]
        try:
            return wait_for(found, timeout, f"a {result!r} delivery.log "
                            f"line for {qid} <{rcpt}>", interval=POLL)[-1]
        except AssertionError as e:
            raise AssertionError(f"{e}; its lines so far: "
                                 f"{self.dlog(c, qid)}") from None

    def queue_empty(self, c):
        listing = c.queue_list()
        return listing.get("unreachable") == [] and not listing["messages"]

    def wait_queue_empty(self, c, timeout=20, what=""):
        try:
            wait_for(lambda: self.queue_empty(c), timeout,
                     f"an empty queue {what}", interval=POLL)
        except AssertionError as e:
            raise AssertionError(f"{e}; queue list: {c.queue_list()}") \
                from None

    def wait_captured(self, cap, pred, n, timeout, what):
        """Wait until cap holds at least n messages matching pred."""
        def got():
            ms = [m for m in cap.messages() if pred(m)]
            return ms if len(ms) >= n else None
        try:
            return wait_for(got, timeout, what, interval=POLL)
        except AssertionError as e:
            have = [(m["mail_from"], m["rcpt_tos"]) for m in cap.messages()]
            raise AssertionError(f"{e}; captured so far: {have}") from None

    def assertDsn(self, dsn_doc, rcpt, action="failed", status=None,
                  status_prefix=None, orig_subject=None):
        """A captured DSN: from <> to SENDER, one recipient block for rcpt
        with this action and status. Returns that block."""
        self.assertEqual(dsn_doc["mail_from"], "", "DSN MAIL FROM is <>")
        self.assertEqual(dsn_doc["rcpt_tos"], [SENDER])
        msg, per_msg, per_rcpt = parse_dsn(dsn_doc["content"])
        self.assertIn("reporting-mta", per_msg, per_msg)
        self.assertEqual(len(per_rcpt), 1,
                         f"one recipient block, for {rcpt}: {per_rcpt}")
        block = per_rcpt[0]
        self.assertIn(rcpt, block.get("final-recipient", ""), block)
        self.assertTrue(block.get("final-recipient", "").lower()
                        .startswith("rfc822;"), block)
        self.assertEqual(block.get("action", "").lower(), action, block)
        if status is not None:
            self.assertEqual(block.get("status"), status, block)
        if status_prefix is not None:
            self.assertRegex(block.get("status", ""),
                             rf"^{status_prefix}\d{{1,3}}\.\d{{1,3}}$",
                             block)
        if orig_subject is not None:
            self.assertIn(orig_subject.encode(), dsn_doc["content"],
                          "the DSN returns the original's headers")
        return block

    # ---- 1 ----

    def test_01_delivered_byte_for_byte(self):
        c, p = self.setup(lambda p: p.capture())
        cap = p.captures[0]
        rcpt = f"bob@{DEST}"
        original = (
            f"From: Alice <{SENDER}>\r\n"
            f"To: <{rcpt}>\r\n"
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= byte for byte\r\n"
            "Message-ID: <b4b.1@sender.test>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "X-Folded: first part\r\n\tsecond part\r\n"
            "\r\n"
            ".a line that starts with a dot\r\n"
            "..two dots\r\n"
            ".\r\n"
            "the line above is a lone dot; this one ends in spaces   \r\n"
            "Grüße aus Köln — ünïcödé ✓ δοκιμή 日本語\r\n"
            "\r\n"
            "\tindented with a tab\r\n"
            + "x" * 900 + "\r\n"
            "last line\r\n").encode("utf-8")
        with RecordingSMTP("127.0.0.1", c.port, timeout=30) as s:
            s.ehlo("client.e2e.example")
            self.assertIn("8bitmime", s.esmtp_features)
            self.assertEqual(s.sendmail(SENDER, [rcpt], original,
                                        mail_options=["BODY=8BITMIME"]), {})
            (code, text), = s.data_replies
        self.assertEqual(code, 250, text)
        qid = qid_from_reply(text)
        self.assertIsNotNone(qid, text)

        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  20, f"the message at {DEST_MX}")
        self.assertEqual(got["mail_from"], SENDER)
        self.assertEqual(got["rcpt_tos"], [rcpt])
        self.assertEqual(got["sock"], cap.addr(DEST_IP))
        self.assertIn("BODY=8BITMIME", got["mail_options"])
        content = got["content"]
        rec = received_block(content.decode("utf-8", "surrogateescape"))
        self.assertEqual(content, rec + original,
                         "the MX got our Received: block and then the "
                         "original, byte for byte")
        self.assertEqual(sum(1 for ln in rec.split(b"\r\n")
                             if ln.startswith(b"Received:")), 1, rec)

        self.wait_queue_empty(c, what="after delivery")
        line = self.dlog_final(c, qid, rcpt, "delivered")
        self.assertEqual(line["mx"], DEST_MX, line)
        self.assertEqual(line["ip"], DEST_IP, line)
        self.assertEqual(line["domain"], DEST, line)
        self.assertEqual(line["attempt"], 1, line)
        self.assertEqual(line["code"], 250, line)
        self.assertEqual(line["size"], len(content), line)
        self.assertEqual(len(cap.messages()), 1, "delivered exactly once")

    # ---- 2 ----

    def test_02_backup_mx(self):
        def peers(p):
            p.mx += [("backup.test", "mx1.backup.test", 10),
                     ("backup.test", "mx2.backup.test", 20)]
            p.hosts += [("mx1.backup.test", "127.0.0.2"),   # nothing there
                        ("mx2.backup.test", "127.0.0.3")]
            p.sink("sink", "127.0.0.3")
        c, p = self.setup(peers)
        sink = p.sinks[0]
        self.assertFalse(tcp_states("127.0.0.2", p.smtp_port),
                         "nothing listens on the primary MX")
        rcpt = "carol@backup.test"
        subject = f"backup mx {time.time_ns()}"
        qid = self.send(c, [rcpt], make_message(subject, sender=SENDER,
                                                rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered")
        self.assertEqual(line["mx"], "mx2.backup.test", line)
        self.assertEqual(line["ip"], "127.0.0.3", line)
        self.wait_queue_empty(c, what="after delivery via the backup MX")
        dumps = wait_for(lambda: [d for d in sink.dumps()
                                  if subject.encode() in d], 10,
                         "the message in smtp-sink's dump")
        self.assertEqual(len(dumps), 1)
        self.assertIn(f"X-Rcpt-Args: <{rcpt}>".encode(), dumps[0])
        self.assertIn(f"X-Mail-Args: <{SENDER}>".encode(), dumps[0])

    # ---- 3 ----

    def test_03_temporary_failure_then_success(self):
        rcpt = f"later@{DEST}"
        c, p = self.setup(lambda p: p.capture(rules=[
            {"cmd": "RCPT", "match": rcpt, "times": 1,
             "reply": "451 4.3.0 <later@dest.test>: try again later"}]))
        cap = p.captures[0]
        qid = self.send(c, [rcpt], make_message("retry me", sender=SENDER,
                                                rcpt=rcpt))
        done = self.dlog_final(c, qid, rcpt, "delivered", timeout=20)
        lines = self.dlog(c, qid)
        first = lines[0]
        self.assertEqual((first["result"], first["code"], first["attempt"]),
                         ("deferred", 451, 1), lines)
        self.assertEqual(first["enhanced"], "4.3.0", first)
        self.assertGreaterEqual(done["attempt"], 2, lines)
        self.assertEqual([ln["result"] for ln in lines].count("delivered"),
                         1, lines)
        self.wait_queue_empty(c, what="after the retry delivered")
        self.assertEqual(len(cap.to(rcpt)), 1, "delivered exactly once")

    # ---- 4 ----

    def test_04_permanent_failure_sends_a_dsn(self):
        bad, good = f"bad@{DEST}", f"good@{DEST}"
        c, p = self.setup(lambda p: p.capture(rules=[
            {"cmd": "RCPT", "match": bad,
             "reply": "550 5.1.1 <bad@dest.test>: Recipient address "
                      "rejected: User unknown"}]))
        cap = p.captures[0]
        subject = f"dsn please {time.time_ns()}"
        qid = self.send(c, [bad, good], make_message(subject, sender=SENDER,
                                                      rcpt=bad))
        bounced = self.dlog_final(c, qid, bad, "bounced")
        self.assertEqual((bounced["code"], bounced["enhanced"]),
                         (550, "5.1.1"), bounced)
        self.assertEqual(bounced["mx"], DEST_MX, bounced)
        self.dlog_final(c, qid, good, "delivered")

        dsn, = self.wait_captured(cap, lambda m: m["mail_from"] == "", 1, 20,
                                  f"a DSN for {SENDER}")
        self.assertEqual(dsn["sock"], cap.addr(SENDER_IP),
                         "the DSN went to the sender's MX")
        block = self.assertDsn(dsn, bad, status="5.1.1",
                               orig_subject=subject)
        self.assertIn("550", block.get("diagnostic-code", ""), block)
        self.assertNotIn(good.encode(), b"".join(
            ln for ln in dsn["content"].split(b"\r\n")
            if ln.lower().startswith(b"final-recipient")))
        self.assertEqual(len(cap.to(good)), 1, "good@ delivered once")
        self.wait_queue_empty(c, what="after the bounce and the DSN")
        self.assertEqual(len(cap.dsns_to(SENDER)), 1, "exactly one DSN")

    # ---- 5 ----

    def test_05_no_dsn_for_null_sender(self):
        bad, good = f"bad@{DEST}", f"good@{DEST}"
        c, p = self.setup(lambda p: p.capture(rules=[
            {"cmd": "RCPT", "match": bad,
             "reply": "550 5.1.1 <bad@dest.test>: User unknown"}]))
        cap = p.captures[0]
        qid = self.send(c, [bad, good], make_message("from <>", rcpt=bad),
                        sender="")
        self.dlog_final(c, qid, bad, "bounced")
        self.dlog_final(c, qid, good, "delivered")
        # a DSN would be queued (and logged) in the commit that applies
        # the bounce, the one that also removes the message
        def logs():
            return "".join(c.node(n).log_text() for n in c.node_ids)
        wait_for(lambda: f"qid={qid} event=removed" in logs(), 20,
                 "the commit that removed the message", interval=POLL)
        # positive control: the same bounce for a message with a sender
        # queues its DSN in that commit, and the DSN reaches the MX (bad@
        # is on the suppression list now; the rule matches notbad@ too)
        also_bad = f"not{bad}"
        ctl = self.send(c, [also_bad], make_message(
            "with a sender", sender=SENDER, rcpt=also_bad))
        self.wait_captured(cap, lambda m: m["mail_from"] == "" and
                           m["rcpt_tos"] == [SENDER], 1, 20,
                           "the control message's DSN")
        self.assertIn(f"event=dsn_queued orig_qid={ctl} ", logs())
        self.wait_queue_empty(c, what="after the bounces")
        self.assertEqual([ln for ln in logs().splitlines()
                          if f"orig_qid={qid} " in ln], [], "no DSN for <>")
        msgs = cap.messages()
        self.assertEqual(sorted((m["mail_from"], m["rcpt_tos"])
                                for m in msgs),
                         [("", [SENDER]), ("", [good])],
                         "the good recipient's copy and the control's DSN")
        others = [ln for ln in self.dlog(c)
                  if ln.get("qid") not in (qid, ctl) and
                  ln.get("rcpt") != SENDER]
        self.assertEqual(others, [], "no other message was ever attempted")

    # ---- 6 ----

    def test_06_expiry_bounces_with_last_error(self):
        rcpt = f"slow@{DEST}"
        c, p = self.setup(lambda p: p.capture(rules=[
            {"cmd": "RCPT", "match": rcpt,
             "reply": "451 4.7.1 <slow@dest.test>: Greylisted, come back"}]),
            retry="[ 1, 1, 1 ]", lifetime=2)
        cap = p.captures[0]
        t0 = time.monotonic()
        subject = f"expire me {time.time_ns()}"
        qid = self.send(c, [rcpt], make_message(subject, sender=SENDER,
                                                rcpt=rcpt))
        dsn, = self.wait_captured(cap, lambda m: m["mail_from"] == "", 1, 15,
                                  "a DSN after max_queue_lifetime = 2")
        took = time.monotonic() - t0
        log(f"expiry: DSN after {took:.1f}s")
        self.assertLessEqual(took, 12.0, "expired within ~10 s")
        block = self.assertDsn(dsn, rcpt, status_prefix=r"[45]\.",
                               orig_subject=subject)
        self.assertIn("451", block.get("diagnostic-code", ""),
                      f"the DSN gives the last error: {block}")
        self.wait_queue_empty(c, what="after expiry")
        self.assertEqual(cap.to(rcpt), [], "never delivered")
        lines = self.dlog(c, qid)
        self.assertGreaterEqual(len(lines), 1, lines)
        self.assertTrue(all(ln["code"] == 451 for ln in lines), lines)
        # the attempt that expired the recipient ended it: the log says so
        self.assertEqual(lines[-1]["result"], "bounced",
                         f"last delivery.log line of an expired recipient "
                         f"should be result=bounced: {lines}")

    # ---- 7 ----

    def test_07_null_mx_nxdomain_and_implicit_mx(self):
        def peers(p):
            p.mx.append(("null.test", ".", 0))
            p.hosts.append(("aonly.test", DEST_IP))
            p.capture()
        c, p = self.setup(peers)
        cap = p.captures[0]
        self.assertEqual(dns_query(p.dns_port, "null.test", 15), (0, 1),
                         "dnsmasq serves the null MX")
        self.assertEqual(dns_query(p.dns_port, "nx.test", 15)[0], 3,
                         "nx.test is NXDOMAIN")
        self.assertEqual(dns_query(p.dns_port, "aonly.test", 15), (0, 0),
                         "aonly.test has no MX")
        q_null = self.send(c, ["u@null.test"], make_message(
            "to null mx", sender=SENDER, rcpt="u@null.test"))
        q_nx = self.send(c, ["u@nx.test"], make_message(
            "to nxdomain", sender=SENDER, rcpt="u@nx.test"))
        q_a = self.send(c, ["u@aonly.test"], make_message(
            "to implicit mx", sender=SENDER, rcpt="u@aonly.test"))

        line = self.dlog_final(c, q_null, "u@null.test", "bounced")
        self.assertEqual(line["enhanced"], "5.1.10", line)
        line = self.dlog_final(c, q_nx, "u@nx.test", "bounced")
        self.assertEqual(line["enhanced"], "5.1.2", line)
        line = self.dlog_final(c, q_a, "u@aonly.test", "delivered")
        self.assertEqual(line["mx"], "aonly.test", line)
        self.assertEqual(line["ip"], DEST_IP, line)
        got, = self.wait_captured(cap, lambda m: "u@aonly.test" in
                                  m["rcpt_tos"], 1, 10, "u@aonly.test's copy")
        self.assertEqual(got["sock"], cap.addr(DEST_IP))

        dsns = self.wait_captured(cap, lambda m: m["mail_from"] == "", 2, 20,
                                  "two DSNs (null MX, NXDOMAIN)")
        by_rcpt = {}
        for d in dsns:
            _, _, blocks = parse_dsn(d["content"])
            for b in blocks:
                by_rcpt[b.get("final-recipient", "").split(";")[-1]
                        .strip()] = d
        self.assertEqual(sorted(by_rcpt), ["u@null.test", "u@nx.test"],
                         f"DSN recipients: {list(by_rcpt)}")
        self.assertDsn(by_rcpt["u@null.test"], "u@null.test",
                       status="5.1.10", orig_subject="to null mx")
        self.assertDsn(by_rcpt["u@nx.test"], "u@nx.test", status="5.1.2",
                       orig_subject="to nxdomain")
        self.wait_queue_empty(c, what="after the bounces and DSNs")

    # ---- 8 ----

    def test_08_connection_reuse(self):
        n_msgs = 20
        c, p = self.setup(
            lambda p: p.sink("sink", DEST_IP),
            limits='{ domain = "*"; max_connections = 1; '
                   'max_msgs_per_conn = 100; max_msgs_per_sec = 0.0; }')
        sink = p.sinks[0]
        rcpt = f"reuse@{DEST}"
        tag = f"reuse {time.time_ns()}"
        qids = []
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            for i in range(n_msgs):
                r = conn.mail(SENDER, [rcpt], make_message(
                    f"{tag} #{i}", sender=SENDER, rcpt=rcpt))
                self.assertEqual(r.code, 250, r)
                qids.append(r.qid)
        for q in qids:
            self.dlog_final(c, q, rcpt, "delivered")
        self.wait_queue_empty(c, what=f"after {n_msgs} deliveries")
        # stop the nodes: their connections end, and smtp-sink counts a
        # session when it ends
        for n in c.node_ids:
            c.kill_node(n, signal.SIGTERM)
        # (ESTABLISHED or CLOSE_WAIT on its side: not yet ended)
        wait_for(lambda: not {"01", "08"} & set(
                 tcp_states(DEST_IP, p.smtp_port)), 10,
                 "smtp-sink's sessions to end")
        cnt = wait_for(lambda: (lambda k: k if k["mesg"] >= n_msgs else
                                None)(sink.counters()), 5,
                       f"smtp-sink counting {n_msgs} messages")
        log(f"reuse: smtp-sink counters {cnt}")
        subjects = [d for d in sink.dumps() if tag.encode() in d]
        self.assertEqual(len(subjects), n_msgs, "each message dumped once")
        self.assertEqual(cnt["mesg"], n_msgs, cnt)
        self.assertGreaterEqual(cnt["sess"], 1, cnt)
        self.assertLess(cnt["sess"], n_msgs,
                        f"connections reused: {cnt['sess']} sessions for "
                        f"{n_msgs} messages")

    # ---- 9 ----

    def test_09_cluster_wide_connection_limit(self):
        n_sessions, per_session, limit = 6, 10, 4
        c, p = self.setup(
            lambda p: p.capture(hold_ms=200),
            limits=f'{{ domain = "*"; max_connections = {limit}; '
                   'max_msgs_per_conn = 100; max_msgs_per_sec = 0.0; }')
        cap = p.captures[0]
        rcpt = f"many@{DEST}"
        errors = []

        def session(k):
            try:
                with SMTPConn(c.port, timeout=30) as conn:
                    conn.ehlo()
                    for i in range(per_session):
                        r = conn.mail(SENDER, [rcpt], make_message(
                            f"limit {k}.{i}", sender=SENDER, rcpt=rcpt))
                        if r.code != 250:
                            errors.append((k, i, str(r)))
            except Exception as e:   # reported below, in the test thread
                errors.append((k, repr(e)))
        threads = [threading.Thread(target=session, args=(k,), daemon=True)
                   for k in range(n_sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        self.assertEqual(errors, [], "every message accepted by the router")
        total = n_sessions * per_session
        self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], total, 40,
                           f"{total} messages at the MX")
        self.wait_queue_empty(c, what=f"after {total} deliveries")
        st = cap.stats()
        log(f"limit: capture stats {st}")
        self.assertEqual(len(cap.to(rcpt)), total, "each delivered once")
        self.assertLessEqual(st["max_open"], limit,
                             f"at most {limit} connections at once "
                             f"cluster-wide: {st}")

    # ---- 10 ----

    def test_10_starttls_when_offered(self):
        c, p = self.setup(lambda p: p.capture(tls=True))
        cap = p.captures[0]
        rcpt = f"secret@{DEST}"
        original = make_message("over TLS", sender=SENDER, rcpt=rcpt)
        qid = self.send(c, [rcpt], original)
        line = self.dlog_final(c, qid, rcpt, "delivered")
        self.assertTrue(line.get("tls", "").startswith("TLS"),
                        f"tls field of {line}")
        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, "the message at the TLS MX")
        self.assertIsNotNone(got["tls"], f"the MX saw STARTTLS: {got}")
        self.assertTrue(got["content"].endswith(original), got["content"])
        self.wait_queue_empty(c, what="after TLS delivery")

    # ---- 11 ----

    def test_11_smarthost_route(self):
        relay = {}

        def peers(p):
            relay["cap"] = p.capture("relay", ips=("127.0.0.1",),
                                     own_port=True)
            p.capture()       # the MX hosts, which must not be used
        c, p = self.setup(peers,
                          routes=lambda: [("relay.test", relay["cap"])])
        cap = relay["cap"]
        self.assertEqual(dns_query(p.dns_port, "relay.test", 15)[0], 3,
                         "relay.test has no DNS: only the route reaches it")
        rcpt = "dave@relay.test"
        qid = self.send(c, [rcpt], make_message("via smarthost",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered")
        self.assertEqual(line["ip"], "127.0.0.1", line)
        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, "the message at the smarthost")
        self.assertEqual(got["sock"], f"127.0.0.1:{cap.port}")
        self.assertEqual(got["mail_from"], SENDER)
        self.assertEqual(p.captures[1].messages(), [],
                         "nothing went to the MX hosts")
        self.wait_queue_empty(c, what="after the smarthost delivery")

    # ---- 12 ----

    def test_12_restart_keeps_deferrals(self):
        rcpt = f"wait@{DEST}"
        refuse = [{"cmd": "RCPT", "match": rcpt,
                   "reply": "451 4.3.2 <wait@dest.test>: not now"}]
        c, p = self.setup(lambda p: p.capture(rules=refuse),
                          retry="[ 3, 3, 3 ]")
        cap = p.captures[0]
        qid = self.send(c, [rcpt], make_message("survive a restart",
                                                sender=SENDER, rcpt=rcpt))
        owner = c.owner_of(qid)
        self.assertIn(owner, c.node_ids)

        def deferred():
            show = c.queue_show(qid)
            r, = show["recipients"]
            return r if r["state"] == "deferred" and r["attempts"] >= 1 \
                else None
        before = wait_for(deferred, 15, f"{qid} deferred (committed)",
                          interval=POLL)
        self.assertIn("451", before.get("last_reply", ""), before)

        c.kill_node(owner, signal.SIGKILL)
        c.start_node(owner)
        show = c.queue_show(qid)
        after, = show["recipients"]
        self.assertEqual(after["address"], rcpt)
        self.assertEqual(after["state"], "deferred", show)
        self.assertGreaterEqual(after["attempts"], before["attempts"],
                                f"attempts survive kill -9: before {before},"
                                f" after {after}")
        self.assertIn("451", after.get("last_reply", ""), show)

        cap.set_rules([])
        done = self.dlog_final(c, qid, rcpt, "delivered", timeout=20)
        self.assertGreaterEqual(done["attempt"], 2, self.dlog(c, qid))
        self.wait_queue_empty(c, what="after the restarted node delivered")
        self.assertEqual(len(cap.to(rcpt)), 1, "delivered exactly once")

    # ---- 13 ----

    def test_13_attempt_in_flight_at_kill_is_tried_again(self):
        # the MX holds its reply to the final dot; the node dies meanwhile
        c, p = self.setup(lambda p: p.capture(hold_ms=2500))
        cap = p.captures[0]
        rcpt = f"inflight@{DEST}"
        qid = self.send(c, [rcpt], make_message("in flight at kill -9",
                                                sender=SENDER, rcpt=rcpt))
        owner = c.owner_of(qid)
        # MAIL, RCPT, DATA and the body are out: the MX holds its reply
        cap.proc.wait_log(r"capture event=holding conn=1 ", 10,
                          what="the whole message at the MX")
        self.assertEqual(self.dlog(c, qid), [], "no result before the kill")
        c.kill_node(owner, signal.SIGKILL)
        c.start_node(owner)
        done = self.dlog_final(c, qid, rcpt, "delivered", timeout=20)
        self.assertEqual(done["code"], 250, done)
        self.wait_queue_empty(c, what="after the retried attempt")
        # at-least-once: the MX may have kept the first copy too
        got = cap.to(rcpt)
        self.assertIn(len(got), (1, 2), f"one or two copies: {got}")

    # ---- 14 ----

    def test_14_tls_required_skips_a_plaintext_mx(self):
        def peers(p):
            p.mx += [("tlsreq.test", "mx1.tlsreq.test", 10),
                     ("tlsreq.test", "mx2.tlsreq.test", 20)]
            p.hosts += [("mx1.tlsreq.test", "127.0.0.7"),
                        ("mx2.tlsreq.test", "127.0.0.8")]
            p.capture(name="plain", ips=("127.0.0.7",))
            p.capture(name="tls", ips=("127.0.0.8",), tls=True)
        c, p = self.setup(peers, limits=(
            '{ domain = "*"; max_connections = 20; max_msgs_per_conn = 100;'
            ' tls = "required"; }'))
        plain, tls = p.captures
        rcpt = "dana@tlsreq.test"
        qid = self.send(c, [rcpt], make_message("TLS or nothing",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered")
        self.assertEqual(line["mx"], "mx2.tlsreq.test", line)
        self.assertTrue(line.get("tls", "").startswith("TLS"), line)
        got, = self.wait_captured(tls, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, "the message at the TLS MX")
        self.assertIsNotNone(got["tls"], got)
        self.assertEqual(plain.messages(), [],
                         "nothing went to the MX without STARTTLS")
        self.assertGreaterEqual(plain.stats()["connections"], 1,
                                "the preferred MX was tried first")


    # ---- 15 ----

    def test_15_connection_that_found_no_job_idles_out(self):
        # Two messages for one destination open two connections; the
        # second greets late, after the first took both jobs. It must
        # still close when idle (5 s), like one that has sent mail. One
        # node, so that both jobs meet at one node's delivery.
        # the second greets once the first has taken both jobs
        srv = ScriptedMX(late_conn=1, late_after=2)
        self.addCleanup(srv.close)
        c, p = self.setup(cluster_kw={"nodes": 1},
                          routes=[("slow.test", f"127.0.0.1:{srv.port}")])
        qids = []
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            for i in range(2):
                rcpt = f"r{i}@slow.test"
                r = conn.mail(SENDER, [rcpt], make_message(
                    f"late greeting #{i}", sender=SENDER, rcpt=rcpt))
                self.assertEqual(r.code, 250, r)
                qids.append((r.qid, rcpt))
        for q, rcpt in qids:
            self.dlog_final(c, q, rcpt, "delivered")
        wait_for(lambda: len(srv.snapshot()) >= 2, 10,
                 "a second connection to the destination")
        conns = wait_for(
            lambda: (lambda v: v if all(x["closed"] for x in v) else None)(
                srv.snapshot()), 15, "every connection closed when idle")
        late = conns[1]
        self.assertNotIn("MAIL", late["cmds"],
                         f"the late connection found no job: {conns}")
        self.assertIn("QUIT", late["cmds"], conns)
        self.assertEqual(sum(x["cmds"].count("MAIL") for x in conns), 2,
                         conns)

if __name__ == "__main__":
    import unittest
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    unittest.main()
