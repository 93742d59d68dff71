"""Fault tests: a node pair, a router, an MX sink and DNS under load, and
one fault each (issue 4, docs/replication.md).

As root each part runs in a network namespace of its own (tests/e2e/
netns.py: n1, n2, router, sink, dns, client on 10.77.0.0/24, joined by a
bridge in a hub namespace); otherwise everything runs on 127.0.0.1 and the
link cut, which needs namespaces, is skipped.

Load: Postfix's smtp-source streaming through the router, plus
tests/fixtures/tracked_sender.py, which records every 250 with its qid.
The MX is Postfix's smtp-sink dumping each message to a file; dnsmasq
serves sink.example's MX. For each fault the test counts: messages
acknowledged with 250 (tracked), delivered (those found at the sink),
lost (acknowledged, never delivered: must be 0) and duplicated (qids the
sink got more than once, over all traffic), and the seconds from the fault
to a 250 again for a shard the fault hit. Each row is printed as
`fault: ...` and the table at the end of the module.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import netns
from shoaltest import (REPO, Loopback, ShoalTestCase, bin_path, free_port,
                       log, shard_of, sink_delivered, wait_for)

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
DNSMASQ = "/usr/sbin/dnsmasq"
SENDER = os.path.join(REPO, "tests", "fixtures", "tracked_sender.py")
PYTHON = "/usr/bin/python3"
DOMAIN = "sink.example"
RCPT = f"rcpt@{DOMAIN}"
ROLES = ["n1", "n2", "router", "sink", "dns", "client"]
# fast enough for a test, slow enough for a loaded 2-core machine
REPLICATION = ('mode = "sync"; heartbeat_ms = 200; '
               'failover_after_ms = 1500; peer_timeout_ms = 800;')
DELIVERY_TIMEOUT = 120.0

RESULTS = []


class Rig:
    """The parts of one fault test and the counting."""

    def __init__(self, test, map_size=None, sink_first=True, size=1024,
                 nodes=2, spare=0):
        self.test = test
        self.size = size
        self.use_ns = netns.available()
        roles = [f"n{i + 1}" for i in range(nodes + spare)] + ROLES[2:]
        self.net = netns.NetNS(test, roles) if self.use_ns else Loopback()
        self.sink_port = 25 if self.use_ns else free_port()
        self.dns_port = 53 if self.use_ns else free_port(socket.SOCK_DGRAM)
        self.dir = tempfile.mkdtemp(prefix="shoal-fault-")
        os.chmod(self.dir, 0o755)           # smtp-sink runs as nobody
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.dump_dir = os.path.join(self.dir, "sink")
        os.mkdir(self.dump_dir)
        os.chmod(self.dump_dir, 0o777)
        self.acks_path = os.path.join(self.dir, "acks.txt")
        self.stall_path = os.path.join(self.dir, "stalled.txt")
        delivery = "\n".join([
            '  helo_name = "mta.fault.example";',
            f'  dns_servers = [ "{self.net.host("dns")}:{self.dns_port}" ];',
            f"  smtp_port = {self.sink_port};",
            "  retry_schedule = [ 1, 2, 3 ];",
        ])
        # beyond loopback the links need CURVE keys (lib/curve.h)
        extra = ""
        if self.use_ns:
            keys = os.path.join(self.dir, "cluster.keys")
            subprocess.run([bin_path("shoalctl"), "keygen", keys],
                           check=True, capture_output=True, timeout=30)
            extra = f'curve_keys = "{keys}";'
        self.c = test.cluster(start=False, net=self.net, cluster_extra=extra,
                              relay_networks=("127.0.0.0/8",
                                              f"{netns.SUBNET}.0/24"),
                              delivery=delivery, replication=REPLICATION,
                              node_timeout_ms=15000, map_size=map_size,
                              nodes=nodes)
        self.sink_first = sink_first
        self.sender = None
        self.source = None

    # -- parts --

    def start(self):
        self.start_dns()
        if self.sink_first:
            self.start_sink()
        self.c.start()
        return self

    def start_dns(self):
        ip = self.net.host("dns")
        argv = [DNSMASQ, "--no-daemon", f"--port={self.dns_port}",
                f"--listen-address={ip}", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--pid-file", "--log-facility=-",
                f"--mx-host={DOMAIN},mx.{DOMAIN},10",
                f"--host-record=mx.{DOMAIN},{self.net.host('sink')}"]
        self.c.spawn("dnsmasq", self.net.wrap("dns", argv),
                     ready_re=r"started, version")

    def start_sink(self):
        argv = [SMTP_SINK, "-c", "-d",
                os.path.join(self.dump_dir, "%H%M%S.")]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += [f"{self.net.host('sink')}:{self.sink_port}", "256"]
        self.c.spawn("smtp-sink", self.net.wrap("sink", argv))
        self.probe(self.net.host("sink"), self.sink_port)

    def probe(self, host, port, timeout=10):
        """Wait until host:port accepts a connection, seen from the
        client's side of the network."""
        code = ("import socket,sys\ntry:\n socket.create_connection("
                f"('{host}',{port}),0.5).close()\nexcept OSError:\n"
                " sys.exit(1)\n")
        wait_for(lambda: subprocess.run(
            self.net.wrap("client", [PYTHON, "-c", code]),
            stdin=subprocess.DEVNULL, capture_output=True,
            timeout=10).returncode == 0, timeout, f"{host}:{port} listening")

    def start_load(self, source=True, sessions=4):
        host, port = self.c.router_host, self.c.port
        self.sender = self.c.spawn("tracked-sender", self.net.wrap(
            "client", [PYTHON, SENDER, "--host", host, "--port", str(port),
                       "--out", self.acks_path, "--sessions",
                       str(sessions), "--size", str(self.size)]),
            ready_re=r"tracked_sender event=ready")
        if source:
            self.source = self.c.spawn("smtp-source", self.net.wrap(
                "client", [SMTP_SOURCE, "-s", "4", "-m", "1000000", "-l",
                           str(self.size), "-f", "source@client.example",
                           "-t", RCPT, f"{host}:{port}"]))

    def stop_load(self):
        if self.sender:
            self.sender.stop(timeout=40)
        if self.source:
            self.source.kill()

    def stall_in_data(self, n):
        host, port = self.c.router_host, self.c.port
        p = self.c.spawn("stalled-sender", self.net.wrap(
            "client", [PYTHON, SENDER, "--host", host, "--port", str(port),
                       "--out", self.stall_path, "--stall-in-data", str(n),
                       "--size", "200000"]),
            ready_re=r"tracked_sender event=ready")
        wait_for(lambda: self.lines(self.stall_path).count("STALLED") >= n,
                 15, f"{n} sessions in the middle of DATA")
        return p

    # -- reading what happened --

    @staticmethod
    def lines(path):
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                return [ln.split()[0] for ln in f.read().splitlines()
                        if ln.strip()]
        except FileNotFoundError:
            return []

    def acks(self):
        """[(unix time, qid)] of every 250 the tracked sender saw."""
        out = []
        try:
            with open(self.acks_path, encoding="ascii") as f:
                for ln in f:
                    p = ln.split()
                    if len(p) == 3 and p[0] == "ACK":
                        out.append((float(p[1]), p[2]))
        except FileNotFoundError:
            pass
        return out

    def refusals(self):
        out = []
        try:
            with open(self.acks_path, encoding="ascii") as f:
                for ln in f:
                    p = ln.split()
                    if len(p) == 3 and p[0] == "REFUSED":
                        out.append(int(p[2]))
        except FileNotFoundError:
            pass
        return out

    def delivered(self):
        """{qid: copies} over every message the sink dumped."""
        return sink_delivered(self.dump_dir)

    def sink_text(self):
        out = []
        for name in os.listdir(self.dump_dir):
            with open(os.path.join(self.dump_dir, name), "rb") as f:
                out.append(f.read())
        return b"\n".join(out)

    def owner_at_start(self, qid):
        return self.c.initial_owner(shard_of(qid, self.c.shards))[0]

    def wait_acks(self, n, timeout=30, what="acks"):
        base = len(self.acks())
        wait_for(lambda: len(self.acks()) >= base + n, timeout,
                 f"{n} more {what}")

    def first_ack_after(self, t, node, timeout=30, gap=0.5):
        """Seconds from the fault at t until mail flows again for the
        shards `node` owned at the start: the first 250 for one of them
        after the longest pause (of at least `gap` s) that follows t, or
        the first 250 after t when it never paused. Replies already on
        their way at t do not count as recovery. Waits for a 250 that comes
        at least 2 s after t, so the pause can be seen."""
        def times():
            return sorted(ts for ts, q in self.acks()
                          if ts > t and self.owner_at_start(q) == node)
        wait_for(lambda: any(ts > t + 2.0 for ts in times()), timeout,
                 f"250s for the shards of {node} after the fault")
        ts = times()
        best, best_gap = ts[0], 0.0
        prev = t
        for x in ts:
            if x - prev >= gap and x - prev > best_gap:
                best, best_gap = x, x - prev
            prev = x
        return best - t

    def wait_healthy(self, timeout=40):
        def healthy():
            st = self.c.status()
            return all(n.get("replication", {}).get("state") == "healthy"
                       for n in st["nodes"])
        wait_for(healthy, timeout, "both nodes of the pair healthy",
                 interval=0.3)

    def finish(self, name, recovery):
        """Stop the load, wait for every acknowledged message at the sink,
        count, record and assert nothing was lost."""
        self.stop_load()
        acked = [q for _, q in self.acks()]
        acked_set = set(acked)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            got = self.delivered()
            if acked_set <= set(got):
                break
            time.sleep(0.5)
        got = self.delivered()
        lost = sorted(acked_set - set(got))
        dups = sum(n - 1 for n in got.values() if n > 1)
        row = {"fault": name, "acked": len(acked),
               "delivered": len(acked_set & set(got)), "lost": len(lost),
               "duplicated": dups, "sink_total": sum(got.values()),
               "refused": len(self.refusals()),
               "recovery_s": recovery,
               "net": "netns" if self.use_ns else "loopback"}
        RESULTS.append(row)
        log("fault: " + " ".join(f"{k}={v if not isinstance(v, float) else f'{v:.2f}'}"
                                 for k, v in row.items()))
        self.test.assertEqual(len(acked), len(acked_set),
                              "a qid acknowledged twice")
        self.test.assertGreater(len(acked), 0, "nothing was acknowledged")
        self.test.assertEqual(lost, [], f"{len(lost)} acknowledged "
                              f"messages never delivered: {lost[:10]}")
        return row


class FaultTest(ShoalTestCase):

    def test_1_kill_primary_under_load(self):
        rig = Rig(self).start()
        rig.start_load()
        rig.wait_acks(100, what="250s before the kill")
        t_kill = time.time()
        rig.c.kill_node("n1", signal.SIGKILL)
        recovery = rig.first_ack_after(t_kill, "n1")
        rig.wait_acks(100, what="250s with n1 down")
        rig.c.start_node("n1")
        rig.wait_healthy()
        st = rig.c.status()
        self.assertGreaterEqual(st["epoch"], 2, "n2 took over with a new "
                                "epoch")
        self.assertEqual(set(rig.c.owners(st).values()), {"n2"},
                         "n2 owns every shard; n1 came back as replica")
        rig.finish("kill -9 primary", recovery)

    def test_2_cut_link_between_primary_and_peer(self):
        if not netns.available():
            self.skipTest("cutting a link needs root and namespaces")
        rig = Rig(self).start()
        rig.start_load()
        rig.wait_acks(100, what="250s before the cut")
        t_cut = time.time()
        rig.net.cut("n1", "n2")
        recovery = max(rig.first_ack_after(t_cut, "n1"),
                       rig.first_ack_after(t_cut, "n2"))
        wait_for(lambda: sorted(rig.c.status()["degraded"]) ==
                 ["n1", "n2"], 15, "both nodes degraded", interval=0.3)
        rig.wait_acks(100, what="250s while the link is cut")
        st = rig.c.status()
        # the routers hear both nodes: neither takes the other's shards
        self.assertEqual(st["epoch"], 1, "no failover over a link cut")
        rig.net.heal("n1", "n2")
        rig.wait_healthy()
        rig.finish("cut primary-peer link", recovery)

    def test_2b_isolated_primary_is_fenced(self):
        if not netns.available():
            self.skipTest("isolating a node needs root and namespaces")
        rig = Rig(self).start()
        rig.start_load()
        rig.wait_acks(100, what="250s before the isolation")
        t_cut = time.time()
        for other in ("n2", "router", "client"):
            rig.net.cut("n1", other)
        recovery = rig.first_ack_after(t_cut, "n1")
        wait_for(lambda: "event=fenced" in rig.c.node("n1").log_text(),
                 15, "n1 fences itself")
        # the routers no longer hear n1 either: n2 takes its shards
        wait_for(lambda: "event=takeover" in rig.c.node("n2").log_text(),
                 15, "n2 takes over n1's shards")
        rig.wait_acks(100, what="250s with n1 cut off")
        for other in ("n2", "router", "client"):
            rig.net.heal("n1", other)
        rig.wait_healthy()
        st = rig.c.status()
        self.assertEqual(set(rig.c.owners(st).values()), {"n2"})
        rig.finish("isolate primary (split brain)", recovery)

    def test_3_kill_replica_under_load(self):
        rig = Rig(self).start()
        rig.start_load()
        rig.wait_acks(100, what="250s before the kill")
        t_kill = time.time()
        rig.c.kill_node("n2", signal.SIGKILL)
        # n1's own shards: acknowledged alone after peer_timeout_ms
        recovery = max(rig.first_ack_after(t_kill, "n1"),
                       rig.first_ack_after(t_kill, "n2"))
        rig.wait_acks(100, what="250s with n2 down")
        self.assertIn("n1", rig.c.status()["degraded"])
        rig.c.start_node("n2")
        rig.wait_healthy()
        rig.finish("kill -9 replica", recovery)

    def test_4_kill_router_in_the_middle_of_data(self):
        rig = Rig(self).start()
        rig.start_load()
        rig.wait_acks(50, what="250s before the stall")
        rig.stall_in_data(3)
        t_kill = time.time()
        rig.c.kill_router(signal.SIGKILL)
        rig.c.start_router()
        # a new router takes sessions at once: any pause counts
        recovery = min(rig.first_ack_after(t_kill, "n1", gap=0.05),
                       rig.first_ack_after(t_kill, "n2", gap=0.05))
        rig.wait_acks(100, what="250s after the router restart")
        row = rig.finish("kill -9 router mid-DATA", recovery)
        # whatever a node stored is delivered once every queue is empty
        wait_for(lambda: not rig.c.queue_list()["messages"],
                 DELIVERY_TIMEOUT, "every queue empty", interval=0.5)
        text = rig.sink_text()
        self.assertRegex(text, rb"<s\d+-\d+@client\.example>",
                         "the sink's text names each message by its ID")
        for n in range(3):
            self.assertNotIn(f"<stall{n}@client.example>".encode(), text,
                             "a message cut off in DATA was delivered")
        self.assertEqual(row["lost"], 0)

    def test_5_fill_the_primary_disk(self):
        small = 6 << 20
        if os.geteuid() == 0:
            map_size = {"n1": 64 << 20}
        else:
            map_size = {"n1": small}
        rig = Rig(self, map_size=map_size, sink_first=False, size=20000)
        if os.geteuid() == 0:
            d = rig.c.data_dir("n1")
            os.makedirs(d, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o",
                            f"size={small}", "tmpfs", d], check=True)
            self.addCleanup(subprocess.run, ["umount", "-l", d])
        rig.start()
        rig.start_load(source=False)
        # with the MX down everything stays queued: n1 fills up
        wait_for(lambda: len(rig.refusals()) >= 20, 60,
                 "the router refusing mail for the full node")
        codes = set(rig.refusals())
        self.assertTrue(all(400 <= c < 500 for c in codes),
                        f"a full disk is a temporary failure: {codes}")
        # refused at the store's reserve, which keeps room for what
        # frees space (saving results, retiring messages)
        self.assertIn("event=reserve_reached for=mail",
                      rig.c.node("n1").log_text())
        t_sink = time.time()
        rig.start_sink()
        # deliveries free the space: n1 accepts again
        recovery = rig.first_ack_after(t_sink, "n1", timeout=60)
        rig.wait_acks(20, what="250s after space came back")
        row = rig.finish("fill primary disk", recovery)
        # a delivery whose result could not be saved on the full disk is
        # saved later, not sent again (it was, on every pass, before)
        self.assertEqual(row["duplicated"], 0)

    def move_and_kill(self, victim):
        """Move shard 0 from n1 to n3 under load and kill -9 `victim` as
        soon as n3 receives the first batch. The MX is down at first so
        that shard 0 holds more than one batch (4 MiB): the kill comes
        between batches. Returns (rig, time of the kill)."""
        rig = Rig(self, nodes=4, sink_first=False, size=200000)
        rig.start()
        rig.start_load()
        rig.wait_acks(400, 60, "250s before the move")
        move = rig.c.spawn("shoalctl-move", rig.net.wrap("ctl", [
            bin_path("shoalctl"), "-c", rig.c.conf, "--json", "shard",
            "move", "0", "--to", "n3"]))
        wait_for(lambda: "event=move_incoming shard=0" in
                 rig.c.node("n3").log_text(), 30, "n3 receiving shard 0")
        t_kill = time.time()
        rig.c.kill_node(victim, signal.SIGKILL)
        mid = "event=move_done" not in rig.c.node("n1").log_text()
        log(f"fault: {victim} killed {'mid-move' if mid else 'after it'}")
        if victim != "n1":
            rig.c.start_node(victim)
        # a dead source: shoalctl goes on with its successor (n2, once it
        # took over); a dead target: n1 sends everything again
        self.assertEqual(move.wait(120), 0, "shoalctl shard move done")
        wait_for(lambda: rig.c.owners().get(0) == "n3", 15,
                 "shard 0 on n3")
        rig.start_sink()
        return rig, t_kill

    def test_6_shard_move_killing_the_source(self):
        rig, t_kill = self.move_and_kill("n1")
        recovery = rig.first_ack_after(t_kill, "n1")
        rig.c.start_node("n1")
        rig.wait_acks(50, what="250s after the move")
        rig.finish("kill -9 source mid shard move", recovery)

    def test_6b_shard_move_killing_the_target(self):
        rig, t_kill = self.move_and_kill("n3")
        recovery = rig.first_ack_after(t_kill, "n1")
        rig.wait_acks(50, what="250s after the move")
        rig.finish("kill -9 target mid shard move", recovery)

    def test_7_drain_under_load(self):
        rig = Rig(self, nodes=4).start()
        rig.start_load()
        rig.wait_acks(100, what="250s before the drain")
        t0 = time.time()
        rc, doc, err = rig.c.shoalctl("node", "drain", "n1", timeout=300)
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc["shards"], rig.c.shards // 4)
        wait_for(lambda: "n1" not in rig.c.owners().values() and
                 len(rig.c.owners()) == rig.c.shards, 10,
                 "n1 owning no shard")
        rig.wait_acks(100, what="250s after the drain")
        rig.finish("node drain under load", time.time() - t0)

    def test_8_add_a_node_pair_under_load(self):
        # README "Add a node pair": config, start with -j, move shards
        rig = Rig(self, nodes=2, spare=2).start()
        rig.start_load()
        rig.wait_acks(100, what="250s before the new pair")
        new = rig.c.add_nodes(2)
        for nid in new:
            rig.c.start_node(nid, join=True)
        wait_for(lambda: rig.c.status()["epoch"] >= 2, 15,
                 "the epoch that lists the new nodes")
        t0 = time.time()
        for shard, to in ((0, "n3"), (1, "n4"), (2, "n3"), (3, "n4")):
            doc = rig.c.ctl_ok("shard", "move", shard, "--to", to,
                               timeout=120)
            self.assertEqual(doc["to"], to)
        wait_for(lambda: {"n3", "n4"} <= set(rig.c.owners().values()), 15,
                 "the new pair owning shards")
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in rig.c.status()["nodes"]), 30,
                 "both pairs healthy", interval=0.3)
        rig.wait_acks(100, what="250s with the new pair")
        rig.finish("add a node pair, move 4 shards", time.time() - t0)


def tearDownModule():
    if not RESULTS:
        return
    log("\nfault results (lost must be 0):")
    log(f"{'fault':32} {'net':8} {'acked':>6} {'deliv':>6} {'lost':>5} "
        f"{'dups':>5} {'sink':>6} {'refused':>7} {'recovery':>9}")
    for r in RESULTS:
        log(f"{r['fault']:32} {r['net']:8} {r['acked']:6} "
            f"{r['delivered']:6} {r['lost']:5} {r['duplicated']:5} "
            f"{r['sink_total']:6} {r['refused']:7} "
            f"{r['recovery_s']:8.2f}s")


if __name__ == "__main__":
    unittest.main()
