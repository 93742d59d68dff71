"""Operations (issue 7): logs, sd_notify and graceful shutdown, with real
daemons on loopback and Postfix's smtp-sink as the MX.

- log.format = "json": every line of the router's and the nodes' logs is
  parsed with json.loads; hostile text (quotes, backslashes, escapes,
  UTF-8) comes back byte for byte; message lines carry their qid.
- log.file + SIGHUP: logrotate-style rename, HUP, new lines in the new
  file, old lines stay in the renamed one.
- sd_notify: an AF_UNIX datagram socket as NOTIFY_SOCKET gets READY=1,
  then STOPPING=1 on SIGTERM, from the router and from a node.
- Router SIGTERM: a DATA transfer in flight completes with 250 and is
  delivered, a new connection is refused, an idle session gets 421, a
  session idling mid-transaction gets 421 at router.shutdown_timeout, and
  the router exits 0 within it.
- deploy/systemd: systemd-analyze verify on copies whose ExecStart points
  at the built binaries (no unknown keys, no parse errors; a bogus key in a
  copy is caught, so the check can fail), the settings the units promise,
  and systemd-sysusers creating the shoal user in a scratch root.
- Node SIGTERM under load: the node exits 0 and every message acked with
  250 is delivered (after the node's restart).
"""

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time

from shoaltest import (REPO, SMTPConn, ShoalTestCase, bin_path, free_port,
                       make_message, qid_from_reply, shard_of,
                       sink_delivered, wait_for)

SMTP_SINK = "/usr/sbin/smtp-sink"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
SYSTEMD_SYSUSERS = "/usr/bin/systemd-sysusers"
UNITS_DIR = os.path.join(REPO, "deploy", "systemd")
# router.shutdown_timeout + router.node_timeout_ms + the flush (defaults)
ROUTER_STOP_S = 30 + 10 + 3
DOMAIN = "sink.example"
RCPT = f"rcpt@{DOMAIN}"
READY_TIMEOUT = 20.0
# events about one message: each of their lines must name its qid
MESSAGE_EVENTS = {"accepted", "not_queued", "stored", "stored_already",
                  "refused", "delivered", "deferred", "bounced", "expired",
                  "dsn", "held", "released", "data_refused", "node_timeout",
                  "withdrawn"}


class Notify:
    """A NOTIFY_SOCKET: an AF_UNIX datagram socket in the test's dir."""

    def __init__(self, test, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        test.addCleanup(self.sock.close)
        self.got = []

    def wait(self, what, timeout):
        """Wait for a datagram holding the line `what`; returns every
        line received so far."""
        deadline = time.monotonic() + timeout
        while what not in self.got:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} on {self.path} within "
                                     f"{timeout}s; got {self.got!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.got += data.decode("utf-8", "replace").split("\n")
        return self.got


def proc_state(pid):
    """The state letter of a process (R, S, T for stopped...)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class OpsTest(ShoalTestCase):

    # -- helpers --

    def sink(self, c):
        """smtp-sink dumping each message to DIR/sink/; started before
        the cluster, stopped with it."""
        self.dump_dir = os.path.join(c.dir, "sink")
        os.mkdir(self.dump_dir)
        os.chmod(c.dir, 0o755)
        os.chmod(self.dump_dir, 0o777)     # smtp-sink runs as nobody
        argv = [SMTP_SINK, "-c", "-d",
                os.path.join(self.dump_dir, "%H%M%S.")]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += [f"127.0.0.1:{self.sink_port}", "256"]
        c.spawn("smtp-sink", argv, ready_port=self.sink_port)

    def make_cluster(self, log_extra="", router_extra="", **kw):
        self.sink_port = free_port()
        delivery = "\n".join([
            '  helo_name = "mta.ops.example";',
            f"  smtp_port = {self.sink_port};",
            f'  routes = ( {{ domain = "{DOMAIN}"; '
            f'host = "127.0.0.1:{self.sink_port}"; }} );',
            "  retry_schedule = [ 1, 2, 3 ];",
        ])
        extra = f"log: {{ {log_extra} }};" if log_extra else ""
        c = self.cluster(start=False, delivery=delivery, extra=extra,
                         router_extra=router_extra, **kw)
        self.sink(c)
        return c

    def start_notified(self, c, name, argv):
        """Start a daemon with a NOTIFY_SOCKET of its own and wait for
        READY=1 (the readiness signal systemd would get)."""
        p = c._proc(name, argv)
        n = Notify(self, os.path.join(c.dir, f"notify-{name}-{p.starts}"))
        p.env = dict(os.environ, NOTIFY_SOCKET=n.path)
        p.start()
        try:
            n.wait("READY=1", READY_TIMEOUT)
        except AssertionError:
            raise AssertionError(f"{name} not ready: {p.log_text()}")
        return p, n

    def start_all_notified(self, c):
        c.write_config()
        notes = {}
        for nid in c.node_ids:
            notes[nid] = self.start_notified(c, nid, [
                bin_path("shoal-node"), "-c", c.conf, "-n", nid])[1]
        notes["router"] = self.start_notified(c, "router", [
            bin_path("shoal-router"), "-c", c.conf])[1]
        return notes

    def send(self, port, body=None, timeout=20):
        """One message through the router; returns its qid."""
        with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as s:
            s.ehlo("client.ops.example")
            code, text = s.mail("a@sender.example")
            self.assertEqual(code, 250)
            code, text = s.rcpt(RCPT)
            self.assertEqual(code, 250)
            code, text = s.data(body or make_message(rcpt=RCPT))
            self.assertEqual(code, 250, text)
            return qid_from_reply(text.decode())

    def delivered(self):
        """{qid: copies} over every message the sink dumped."""
        return sink_delivered(self.dump_dir)

    def wait_delivered(self, qids, timeout=60):
        wait_for(lambda: set(qids) <= set(self.delivered()), timeout,
                 f"{len(qids)} messages at the sink "
                 f"(missing {sorted(set(qids) - set(self.delivered()))[:5]})")

    @staticmethod
    def json_lines(text):
        """Every log line parsed with json.loads (the harness's own
        '==== harness' markers aside); a line that does not parse fails."""
        out = []
        for ln in text.splitlines():
            if not ln.strip() or ln.startswith("==== harness"):
                continue
            try:
                obj = json.loads(ln)
            except ValueError as e:
                raise AssertionError(f"log line is not JSON ({e}): {ln!r}")
            assert isinstance(obj, dict), ln
            out.append(obj)
        return out

    # -- tests --

    def test_json_logs_parse_and_carry_qids(self):
        # 127.0.0.1 is not a relay client here (127.0.0.2 is), so its
        # hostile RCPT is refused and logged through log_quote()
        c = self.make_cluster(log_extra='format = "json";',
                              relay_networks=("127.0.0.2/32",))
        c.start()
        hostile = 'x"y\\z=1 \\x41 \\" end'
        with SMTPConn(c.port) as s:
            s.ehlo()
            s.expect("MAIL FROM:<a@sender.example>", 250)
            s.expect(f"RCPT TO:<{hostile}@{DOMAIN}>", 554)
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", c.port))
        with SMTPConn(c.port, sock=sock) as s:
            s.ehlo()
            s.expect("MAIL FROM:<a@sender.example>", 250)
            s.expect(f"RCPT TO:<{RCPT}>", 250)
            s.expect("DATA", 354)
            s.send(make_message(rcpt=RCPT) + b".\r\n")
            r = s.reply()
            self.assertEqual(r.code, 250, r)
            qid = r.qid
        self.wait_delivered([qid])
        wait_for(lambda: any(
            o.get("qid") == qid and o.get("result") == "delivered"
            for n in c.node_ids
            for o in self.json_lines(c.node(n).log_text())),
            10, "the delivered line")
        c.stop_all()

        lines = {name: self.json_lines(c.procs[name].log_text())
                 for name in ["router"] + c.node_ids}
        for name, objs in lines.items():
            self.assertTrue(objs, f"{name} logged nothing")
            for o in objs:
                for k in ("ts", "level", "prog", "pid", "msg"):
                    self.assertIn(k, o, o)
                self.assertIsInstance(o["pid"], int)
                for k, v in o.items():
                    if k != "pid":
                        self.assertIsInstance(v, str, (k, o))
                if o.get("event") in MESSAGE_EVENTS or "result" in o:
                    self.assertIn("qid", o, f"{name}: no qid: {o}")
        router = lines["router"]
        denied = [o for o in router if o.get("event") == "relay_denied"]
        self.assertEqual(len(denied), 1, router)
        # the RCPT argument as sent, bytes for bytes
        self.assertEqual(denied[0]["rcpt"], f"TO:<{hostile}@{DOMAIN}>")
        self.assertTrue(any(o.get("event") == "accepted" and
                            o.get("qid") == qid for o in router))
        node_objs = [o for n in c.node_ids for o in lines[n]]
        self.assertTrue(any(o.get("event") == "stored" and
                            o.get("qid") == qid for o in node_objs))
        self.assertTrue(any(o.get("result") == "delivered" and
                            o.get("qid") == qid for o in node_objs))
        self.assertTrue(any(o.get("event") == "ready" for o in router))

    def test_log_file_reopens_on_sighup_and_sd_notify(self):
        c = self.make_cluster()
        logfile = os.path.join(c.dir, "shoal.log")
        c.extra = f'log: {{ file = "{logfile}"; }};'
        notes = self.start_all_notified(c)
        q1 = self.send(c.port)
        self.wait_delivered([q1])
        # its last line: removed once its delivery result committed
        wait_for(lambda: f"qid={q1} event=removed" in open(logfile).read(),
                 10, "the first message in the log file, to its end")
        # nothing of it on stderr: the file has it all
        for name in ["router"] + c.node_ids:
            self.assertNotIn("event=ready", c.procs[name].log_text())

        # logrotate: rename, then HUP every process (the nodes' delivery
        # logs too)
        os.rename(logfile, logfile + ".1")
        dlogs = [os.path.join(c.data_dir(n), "delivery.log")
                 for n in c.node_ids]
        for p in dlogs:
            if os.path.exists(p):
                os.rename(p, p + ".1")
        for name in ["router"] + c.node_ids:
            c.procs[name].send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(logfile) and all(
            f"[{c.procs[n].pid}] info: " in open(logfile).read()
            for n in ["router"] + c.node_ids), 10,
            "every process writing to the new file")
        # the router still serves after its reload
        q2 = self.send(c.port)
        self.wait_delivered([q2])
        wait_for(lambda: f"qid={q2} " in open(logfile).read(), 10,
                 "the second message in the new file")
        wait_for(lambda: any(os.path.exists(p) and q2 in open(p).read()
                             for p in dlogs), 10,
                 "the second message in a new delivery.log")
        for p in dlogs:
            if os.path.exists(p):
                self.assertNotIn(q1, open(p).read())
        self.assertTrue(any(os.path.exists(p + ".1") and
                            q1 in open(p + ".1").read() for p in dlogs))
        old = open(logfile + ".1").read()
        new = open(logfile).read()
        self.assertIn(f"qid={q1} ", old)
        self.assertNotIn(f"qid={q2} ", old)
        self.assertNotIn(f"qid={q1} ", new)
        self.assertIn("event=sighup", new)
        for text in (old, new):
            for ln in text.splitlines():
                self.assertRegex(ln, r"^\S+Z shoal-(router|node)\[\d+\] "
                                     r"(error|warn|info|debug): ")

        # sd_notify: READY=1 came first, STOPPING=1 on SIGTERM, exit 0
        for name in ["router"] + c.node_ids:
            c.procs[name].send_signal(signal.SIGTERM)
            got = notes[name].wait("STOPPING=1", 20)
            self.assertLess(got.index("READY=1"), got.index("STOPPING=1"))
            self.assertEqual(c.procs[name].wait(20), 0, name)
        self.assertIn("event=stopped", open(logfile).read())

    def test_router_sigterm_drains_sessions(self):
        c = self.make_cluster(router_extra="shutdown_timeout = 8;")
        notes = self.start_all_notified(c)
        # mid-DATA: half the body sent
        busy = SMTPConn(c.port)
        self.addCleanup(busy.close)
        busy.ehlo()
        busy.expect("MAIL FROM:<a@sender.example>", 250)
        busy.expect(f"RCPT TO:<{RCPT}>", 250)
        busy.expect("DATA", 354)
        msg = make_message(rcpt=RCPT, body="x" * 70 + "\r\n" * 60)
        busy.send(msg[:len(msg) // 2])
        # idle after EHLO, and idle inside a transaction
        idle = SMTPConn(c.port)
        self.addCleanup(idle.close)
        idle.ehlo()
        mid = SMTPConn(c.port)
        self.addCleanup(mid.close)
        mid.ehlo()
        mid.expect("MAIL FROM:<a@sender.example>", 250)
        busy.wait_peer_read()       # the router has read the half body

        t0 = time.monotonic()
        c.router.send_signal(signal.SIGTERM)
        notes["router"].wait("STOPPING=1", 10)
        r = idle.reply(timeout=10)
        self.assertEqual(r.code, 421, r)
        self.assertIn("4.3.2", r.text)
        self.assertIn("shutting down", r.text)
        self.assertTrue(idle.closed_by_peer(5))

        def refused():
            try:
                socket.create_connection(("127.0.0.1", c.port), 1).close()
            except ConnectionRefusedError:
                return True
            return False
        wait_for(refused, 5, "new connections refused")

        busy.send(msg[len(msg) // 2:] + b".\r\n")
        r = busy.reply(timeout=15)
        self.assertEqual(r.code, 250, r)
        qid = r.qid
        # then the 421: the transaction is over
        r = busy.reply(timeout=10)
        self.assertEqual(r.code, 421, r)

        # the session inside MAIL gets its 421 at the deadline
        r = mid.reply(timeout=15)
        self.assertEqual(r.code, 421, r)
        self.assertGreaterEqual(time.monotonic() - t0, 7.5)
        self.assertEqual(c.router.wait(15), 0)
        self.assertLess(time.monotonic() - t0, 8 + 10)
        text = c.router.log_text()
        self.assertIn("event=drain_timeout", text)
        self.assertIn(f"qid={qid} event=accepted", text)
        self.wait_delivered([qid])

    def start_load(self, c, sessions=3, rcpt=RCPT):
        """Sessions sending messages back to back until the returned
        event is set; acked collects the qid of every 250."""
        acked, errors = [], []
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    with smtplib.SMTP("127.0.0.1", c.port, timeout=40) as s:
                        s.ehlo("load.ops.example")
                        while not stop.is_set():
                            s.mail("a@sender.example")
                            s.rcpt(rcpt)
                            code, text = s.data(make_message(rcpt=rcpt))
                            if code == 250:
                                acked.append(qid_from_reply(text.decode()))
                            else:
                                errors.append(code)
                except (OSError, smtplib.SMTPException) as e:
                    errors.append(repr(e))
                    time.sleep(0.1)

        threads = [threading.Thread(target=load, daemon=True)
                   for _ in range(sessions)]
        for t in threads:
            t.start()

        def finish():
            stop.set()
            for t in threads:
                t.join(60)
        self.addCleanup(stop.set)
        return acked, finish

    def sigterm_and_restart(self, c, notes, nid, while_down=None):
        """SIGTERM, exit 0, then start again (after while_down() if
        given). Returns the log of the run that stopped."""
        p = c.node(nid)
        p.send_signal(signal.SIGTERM)
        notes[nid].wait("STOPPING=1", 10)
        self.assertEqual(p.wait(20), 0, p.log_text())
        text = p.log_text()
        self.assertIn("event=stopping", text)
        self.assertIn("event=stopped", text)
        if while_down:
            while_down()
        notes[nid] = self.start_notified(c, nid, p.argv)[1]
        return text

    def test_node_sigterm_under_load_loses_nothing(self):
        # zmq debug lines: the router logs each hand-off it holds for a
        # node that is not connected
        c = self.make_cluster(node_timeout_ms=20000,
                              log_extra='debug = "zmq";')
        notes = self.start_all_notified(c)
        acked, finish = self.start_load(c)
        wait_for(lambda: len(acked) >= 20, 30, "20 messages acked")
        held = []

        def a_handoff_waits():
            # load while n1 is down: a message for it waits at the router
            off = c.router.log_offset()
            held.append(c.router.wait_log(
                r"qid=(\w+) event=node_not_connected node=n1\b", 15,
                since=off, what="a hand-off held for n1 while it is down"
            ).group(1))
        self.sigterm_and_restart(c, notes, "n1", while_down=a_handoff_waits)
        before = len(acked)
        wait_for(lambda: len(acked) >= before + 20, 40,
                 "20 more messages acked after the restart")
        wait_for(lambda: held[0] in acked, 30,
                 f"{held[0]}, held while n1 was down, acknowledged")
        finish()
        self.wait_delivered(acked, timeout=120)

    def test_node_sigterm_waits_for_enqueues_in_flight(self):
        # the peer frozen: n1's enqueues wait for it (peer_timeout_ms),
        # so SIGTERM finds some in flight; they are answered (acked by
        # n1 alone) before it exits, and new ones are turned away until
        # it is back
        c = self.make_cluster(
            node_timeout_ms=30000,
            replication='mode = "sync"; heartbeat_ms = 200; '
                        'failover_after_ms = 600000; '
                        'peer_timeout_ms = 2000;')
        notes = self.start_all_notified(c)
        # the router checks each RCPT with the owner of its suppression
        # shard: n1's, so that a frozen n2 does not hold every session
        rcpt = next(r for r in (f"r{i}@{DOMAIN}" for i in range(1000))
                    if c.initial_owner(shard_of(r, c.shards))[0] == "n1")
        # each session's next message is for n1 or n2 at even odds: with
        # 10, some wait at n1 when it gets SIGTERM but for 1 run in 1000
        acked, finish = self.start_load(c, sessions=10, rcpt=rcpt)
        wait_for(lambda: len(acked) >= 10, 30, "10 messages acked")
        # n1 waits for its peer only while the pair is healthy (catching
        # up, it acknowledges alone)
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 20,
                 "the pair healthy under load", interval=0.1)
        n2 = c.node("n2")
        n2.send_signal(signal.SIGSTOP)
        self.addCleanup(n2.send_signal, signal.SIGCONT)
        wait_for(lambda: proc_state(n2.pid) == "T", 10, "n2 stopped")
        # a message n1 stores from now on waits for the frozen peer: up
        # to peer_timeout_ms. The loaded sessions are all waiting for a
        # node by now, most likely: ten fresh ones, each of whose first
        # messages is n1's at even odds, make such a store sure but for
        # 1 run in 1000.
        off = c.node("n1").log_offset()
        acked2, finish2 = self.start_load(c, sessions=10, rcpt=rcpt)
        c.node("n1").wait_log(r"event=stored ", 10, since=off,
                              what="n1 storing a message n2 cannot ack")
        text = self.sigterm_and_restart(c, notes, "n1")
        m = re.search(r"event=stopping signal=15 pending=(\d+)", text)
        self.assertTrue(m and int(m.group(1)) > 0, text)
        n2.send_signal(signal.SIGCONT)
        before = len(acked)
        wait_for(lambda: len(acked) >= before + 10, 60,
                 "10 more messages acked after the restart")
        finish()
        finish2()
        self.wait_delivered(acked + acked2, timeout=120)

    # -- systemd units --

    @staticmethod
    def unit(path):
        """The unit file as {section: {key: [values]}}."""
        out = {}
        section = None
        with open(path, encoding="utf-8") as f:
            for ln in f:
                ln = ln.strip()
                if not ln or ln[0] in "#;":
                    continue
                if ln.startswith("["):
                    section = out.setdefault(ln.strip("[]"), {})
                    continue
                k, v = ln.split("=", 1)
                section.setdefault(k, []).append(v)
        return out

    def verify(self, dirpath, name):
        r = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no",
                            os.path.join(dirpath, name)],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def test_systemd_units(self):
        units = {n: self.unit(os.path.join(UNITS_DIR, n)) for n in
                 ("shoal-node@.service", "shoal-router.service",
                  "shoal-router@.service")}
        for name, u in units.items():
            sv = u["Service"]
            one = {k: v[-1] for k, v in sv.items()}
            with self.subTest(unit=name):
                self.assertEqual(one["Type"], "notify")
                self.assertEqual(one["NotifyAccess"], "main")
                self.assertEqual(one["User"], "shoal")
                self.assertEqual(one["Group"], "shoal")
                self.assertEqual(one["NoNewPrivileges"], "yes")
                self.assertEqual(one["ProtectSystem"], "strict")
                self.assertEqual(one["ProtectHome"], "yes")
                self.assertEqual(one["PrivateTmp"], "yes")
                self.assertEqual(one["Restart"], "on-failure")
                self.assertRegex(one["ExecReload"],
                                 r"kill -HUP \$MAINPID$")
                fams = one["RestrictAddressFamilies"].split()
                for fam in ("AF_INET", "AF_INET6", "AF_UNIX"):
                    self.assertIn(fam, fams)
                self.assertIn("Install", u)
        node = {k: v[-1] for k, v in
                units["shoal-node@.service"]["Service"].items()}
        self.assertRegex(node["ExecStart"],
                         r"^/usr/bin/shoal-node -c /etc/shoal/shoal.conf "
                         r"-n %i$")
        self.assertIn("/var/lib/shoal", node["ReadWritePaths"].split())
        self.assertEqual(node["CapabilityBoundingSet"], "")
        for name in ("shoal-router.service", "shoal-router@.service"):
            rt = {k: v[-1] for k, v in units[name]["Service"].items()}
            self.assertEqual(rt["AmbientCapabilities"],
                             "CAP_NET_BIND_SERVICE")
            self.assertGreaterEqual(int(rt["LimitNOFILE"]), 65536)
            self.assertGreater(int(rt["TimeoutStopSec"].rstrip("s")),
                               ROUTER_STOP_S)
            self.assertRegex(rt["ExecStart"], r"^/usr/bin/shoal-router -c ")

        # systemd's own parser, on copies that run the built binaries
        if not os.access(SYSTEMD_ANALYZE, os.X_OK):
            self.skipTest("no systemd-analyze")
        d = self.tempdir()
        names = {"shoal-node@.service": "shoal-node@n1.service",
                 "shoal-router.service": "shoal-router.service",
                 "shoal-router@.service": "shoal-router@a.service"}
        for src, dst in names.items():
            with open(os.path.join(UNITS_DIR, src), encoding="utf-8") as f:
                text = f.read()
            text = text.replace("/usr/bin/shoal-node", bin_path("shoal-node"))
            text = text.replace("/usr/bin/shoal-router",
                                bin_path("shoal-router"))
            with open(os.path.join(d, dst), "w", encoding="utf-8") as f:
                f.write(text)
        bad = re.compile(r"Unknown (key|section|lvalue)|Failed to parse|"
                         r"[Ii]nvalid|not executable|Missing")
        for dst in names.values():
            rc, out = self.verify(d, dst)
            self.assertEqual(rc, 0, f"{dst}: {out}")
            self.assertIsNone(bad.search(out), f"{dst}: {out}")
        # the check can fail: a misspelt key in a copy is reported
        shutil.copy(os.path.join(d, "shoal-router.service"),
                    os.path.join(d, "shoal-broken.service"))
        with open(os.path.join(d, "shoal-broken.service"), "a") as f:
            f.write("\n[Service]\nNoNewPrivilege=yes\n")
        rc, out = self.verify(d, "shoal-broken.service")
        self.assertRegex(out, r"Unknown key.*NoNewPrivilege")

        # the user the units run as, created by systemd-sysusers
        if os.access(SYSTEMD_SYSUSERS, os.X_OK):
            root = self.tempdir()
            os.mkdir(os.path.join(root, "etc"))
            subprocess.run([SYSTEMD_SYSUSERS, f"--root={root}",
                            os.path.join(UNITS_DIR, "shoal.sysusers")],
                           check=True, capture_output=True, timeout=60)
            with open(os.path.join(root, "etc", "passwd")) as f:
                self.assertRegex(f.read(), r"(?m)^shoal:x:\d+:\d+:")
            with open(os.path.join(root, "etc", "group")) as f:
                self.assertRegex(f.read(), r"(?m)^shoal:x:\d+:")
