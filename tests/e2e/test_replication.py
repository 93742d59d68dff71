"""Replication on a node pair (docs/replication.md), on loopback: copies on
the replica, the pair's state in shoalctl status, catch-up from the
journal after the peer was down, require_peer, async mode, and hostile
frames on the peer link. The fault tests (test_faults.py) cover the
failures under load; these check each mechanism on its own.

Delivery points at closed ports (the harness default), so accepted mail
stays queued and can be counted with shoalctl.
"""

import re
import signal
import socket
import unittest
import urllib.error
import urllib.request

from shoaltest import (DOWN_MS, SMTPConn, ShoalTestCase, make_message,
                       shard_of, tcp_queues, wait_for)

FAST = ('heartbeat_ms = 200; failover_after_ms = 1500; '
        'peer_timeout_ms = 800;')
SENDER = "sender@example.org"
RCPT = "rcpt@example.net"


def send(c, n, tag="m"):
    """n messages over one session; returns the 250 replies' qids and the
    other replies."""
    qids, other = [], []
    with SMTPConn(c.port, host=c.router_host) as s:
        s.ehlo()
        for i in range(n):
            r = s.mail(SENDER, [RCPT], make_message(f"{tag} {i}"))
            if r.code == 250 and r.qid:
                qids.append(r.qid)
            else:
                other.append(r)
                s.cmd("RSET")
    return qids, other


def node_status(c, nid, wait_ms=None):
    for n in c.status(wait_ms)["nodes"]:
        if n["id"] == nid:
            return n
    raise AssertionError(f"no {nid} in status")


def repl(c, nid, wait_ms=None):
    return node_status(c, nid, wait_ms).get("replication", {})


class ReplicationTest(ShoalTestCase):

    def test_1_replica_holds_a_copy_and_lists_show_it_once(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}')
        wait_for(lambda: repl(c, "n1").get("state") == "healthy", 10,
                 "n1's pair healthy")
        qids, other = send(c, 40)
        self.assertEqual((len(qids), other), (40, []))
        st = c.status()
        mine = {n["id"]: n for n in st["nodes"]}
        on_n1 = [q for q in qids if c.owner_of(q, st) == "n1"]
        on_n2 = [q for q in qids if c.owner_of(q, st) == "n2"]
        self.assertEqual(mine["n1"]["messages"], len(on_n1))
        self.assertEqual(mine["n2"]["messages"], len(on_n2))
        # sync: each 250 came after the peer's fsync, so the copies are
        # there already
        self.assertEqual(
            mine["n1"]["replication"]["replica_messages"], len(on_n2))
        self.assertEqual(
            mine["n2"]["replication"]["replica_messages"], len(on_n1))
        for nid in ("n1", "n2"):
            r = mine[nid]["replication"]
            self.assertEqual(r["mode"], "sync")
            self.assertEqual(r["state"], "healthy")
            self.assertTrue(r["may_deliver"])
        self.assertEqual(st["degraded"], [])
        listing = c.queue_list()["messages"]
        self.assertEqual(sorted(m["qid"] for m in listing), sorted(qids),
                         "each message listed once, by its primary")

    def test_2_replica_down_degrades_then_catches_up_from_the_journal(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}')
        wait_for(lambda: repl(c, "n1").get("state") == "healthy", 10,
                 "n1's pair healthy")
        before, _ = send(c, 10, "before")
        c.kill_node("n2", signal.SIGKILL)
        wait_for(lambda: repl(c, "n1", DOWN_MS).get("state") ==
                 "degraded", 10, "n1 degraded without its peer")
        # n1 takes n2's shards (the router no longer hears n2) and
        # acknowledges alone: everything journaled for n2
        wait_for(lambda: set(c.owners(wait_ms=DOWN_MS).values()) ==
                 {"n1"}, 15, "n1 owning every shard")
        during, other = send(c, 30, "during")
        self.assertEqual((len(during), other), (30, []))
        r = repl(c, "n1", DOWN_MS)
        self.assertGreaterEqual(r["lag_ops"], 30, "changes waiting for n2")
        self.assertIn("n1", c.status(DOWN_MS)["degraded"])
        c.start_node("n2")
        wait_for(lambda: repl(c, "n1").get("state") == "healthy", 20,
                 "n1's pair healthy again")
        wait_for(lambda: repl(c, "n1").get("lag_ops") == 0, 10,
                 "the journal acknowledged")
        self.assertEqual(repl(c, "n2")["replica_messages"], 40,
                         "n2 caught up with all 40 messages")
        # the copies are good: n2 takes over and holds every message
        c.kill_node("n1", signal.SIGKILL)
        wait_for(lambda: set(c.owners(wait_ms=DOWN_MS).values()) ==
                 {"n2"}, 15, "n2 owning every shard")
        listed = {m["qid"] for m in
                  c.queue_list(wait_ms=DOWN_MS)["messages"]}
        self.assertEqual(listed, set(before) | set(during))

    def test_3_require_peer_refuses_without_the_peer(self):
        c = self.cluster(replication=f'mode = "sync"; require_peer = true; '
                         f'{FAST}', node_timeout_ms=5000)
        wait_for(lambda: repl(c, "n1").get("state") == "healthy", 10,
                 "n1's pair healthy")
        ok, _ = send(c, 4, "ok")
        self.assertEqual(len(ok), 4)
        c.kill_node("n2", signal.SIGKILL)
        wait_for(lambda: repl(c, "n1", DOWN_MS).get("state") ==
                 "degraded", 10, "n1 degraded")
        qids, other = send(c, 6, "refused")
        self.assertEqual(qids, [], "nothing acknowledged without a peer")
        self.assertEqual({r.code for r in other}, {451})
        self.assertTrue(all("4.3.0" in r.text for r in other), other)
        # refused messages were withdrawn: only the first four remain
        listed = {m["qid"] for m in
                  c.queue_list(wait_ms=DOWN_MS)["messages"]}
        self.assertEqual(listed, set(ok))

    def test_4_async_mode_replicates_after_the_reply(self):
        c = self.cluster(replication=f'mode = "async"; {FAST}')
        qids, other = send(c, 20)
        self.assertEqual((len(qids), other), (20, []))
        st = c.status()
        on_n1 = [q for q in qids if c.owner_of(q, st) == "n1"]
        wait_for(lambda: repl(c, "n2")["replica_messages"] == len(on_n1),
                 10, "n2 holding copies of n1's messages")
        self.assertEqual(repl(c, "n1")["mode"], "async")

    def test_5_mode_none_keeps_no_copies(self):
        c = self.cluster(replication=f'mode = "none"; {FAST}')
        qids, _ = send(c, 10)
        self.assertEqual(len(qids), 10)
        for nid in ("n1", "n2"):
            r = repl(c, nid)
            self.assertEqual((r["state"], r["replica_messages"]),
                             ("off", 0))
        self.assertEqual(c.status()["degraded"], [])

    def test_6_hostile_peer_frames_are_dropped(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}')
        port = c.node_port["n1"]
        frames = [
            b"N1",                                  # tag, nothing else
            b"N1" + b"\xff" * 64,                   # undecodable
            # a well-formed PeerMessage from a node that is not the peer
            b"N1" + b"\x0a\x05evil!",
        ]
        for f in frames:
            self.assertEqual(
                zmtp_send(port, [f[:2], f[2:]] if len(f) > 2 else [f]),
                "sent", "a plain ZMTP peer gets through the handshake")
        wait_for(lambda: "repl event=bad_message" in c.node("n1").log_text(),
                 10, "n1 logging the bad peer frames")
        self.assertTrue(c.node("n1").running(), "n1 survived")
        qids, _ = send(c, 2)
        self.assertEqual(len(qids), 2, "n1 still works")
        self.assertIn('reason="not from our peer"', c.node("n1").log_text())

    def test_7_planned_failover_and_failback(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}')
        wait_for(lambda: repl(c, "n1").get("state") == "healthy", 10,
                 "n1's pair healthy")
        first, _ = send(c, 20, "first")
        self.assertEqual(len(first), 20)
        initial = c.owners()
        doc = c.ctl_ok("node", "failover", "n1")
        self.assertEqual((doc["primary"], doc["shards"], doc["forced"],
                          doc["asked"]), ("n2", c.shards // 2, False, "n1"))
        st = c.status()
        self.assertEqual(st["epoch"], doc["epoch"])
        self.assertEqual(set(c.owners(st).values()), {"n2"})
        # n1 is n2's replica now and delivers nothing of its old shards
        wait_for(lambda: repl(c, "n1")["replica_messages"] == 20, 10,
                 "n1 holding copies of all 20")
        self.assertEqual(node_status(c, "n1")["primary_shards"], [])
        more, other = send(c, 10, "after failover")
        self.assertEqual((len(more), other), (10, []))
        doc = c.ctl_ok("node", "failback", "n1")
        self.assertEqual((doc["primary"], doc["shards"], doc["asked"]),
                         ("n1", c.shards // 2, "n2"))
        self.assertEqual(c.owners(), initial, "n1's first shards back")
        listed = sorted(m["qid"] for m in c.queue_list()["messages"])
        self.assertEqual(listed, sorted(first + more))
        # n1 down: its peer takes the shards at once
        c.kill_node("n1", signal.SIGKILL)
        rc, doc, err = c.shoalctl("--timeout", "1000", "node", "failover",
                                  "n1")
        self.assertEqual(rc, 0, err)
        self.assertTrue(doc["forced"])
        self.assertIn("n1 does not answer", err)
        self.assertEqual(set(c.owners(wait_ms=DOWN_MS).values()), {"n2"})

    def test_8_failover_bad_input(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}')
        rc, _, err = c.shoalctl("node", "failover", "nope")
        self.assertEqual(rc, 1)
        self.assertIn('no node "nope"', err)
        rc, _, err = c.shoalctl("node", "failover")
        self.assertEqual(rc, 2)
        rc, _, err = c.shoalctl("node", "failover", "n1", "n2")
        self.assertEqual(rc, 2)
        self.assertEqual(c.status()["epoch"], 1, "nothing moved")

    def test_9_two_pairs_fail_over_at_once(self):
        # n1<->n2 and n3<->n4: n2 and n4 die together; n1 and n3 each make
        # an epoch; routers and nodes settle on one map with both moves
        c = self.cluster(nodes=4, replication=f'mode = "sync"; {FAST}')
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 10,
                 "both pairs healthy")
        before, _ = send(c, 20, "before")
        c.kill_node("n2", signal.SIGKILL)
        c.kill_node("n4", signal.SIGKILL)

        def settled():
            st = c.status(DOWN_MS)
            live = [n for n in st["nodes"] if n.get("reachable")]
            return (len({n["epoch"] for n in live}) == 1 and
                    set(c.owners(st).values()) == {"n1", "n3"} and
                    len(c.owners(st)) == c.shards)
        wait_for(settled, 20, "one map: n1 and n3 own every shard",
                 interval=0.3)
        after, other = send(c, 20, "after")
        self.assertEqual((len(after), other), (20, []))
        listed = {m["qid"] for m in
                  c.queue_list(wait_ms=DOWN_MS)["messages"]}
        self.assertEqual(listed, set(before) | set(after))

    def test_10_metrics_show_the_pair(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}',
                         node_metrics=True)
        wait_for(lambda: scrape(c, "n1")[
            'shoal_replication_state{state="healthy"}'] == 1, 10,
            "n1 healthy in its metrics")
        m = scrape(c, "n1")
        self.assertEqual(m['shoal_node_info{node="n1",peer="n2",'
                           'mode="sync"}'], 1)
        self.assertEqual(m["shoal_replication_degraded"], 0)
        self.assertEqual(m["shoal_shard_map_epoch"], 1)
        self.assertEqual(m["shoal_node_primary_shards"], c.shards // 2)
        self.assertEqual(m["shoal_node_may_deliver"], 1)
        qids, _ = send(c, 10)
        on_n1 = [q for q in qids if c.owner_of(q) == "n1"]
        m = scrape(c, "n1")
        self.assertEqual(m["shoal_messages_stored_total"], len(on_n1))
        self.assertEqual(m["shoal_store_messages"], 10, "own and copies")
        c.kill_node("n2", signal.SIGKILL)
        wait_for(lambda: scrape(c, "n1")["shoal_replication_degraded"] == 1,
                 10, "n1's metrics showing the pair degraded")
        send(c, 5, "degraded")
        m = scrape(c, "n1")
        self.assertGreaterEqual(m["shoal_replication_lag_ops"], 5)
        self.assertEqual(m['shoal_replication_state{state="degraded"}'], 1)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(
                f"http://127.0.0.1:{c.metrics_port['n1']}/other", timeout=5)
        self.assertEqual(e.exception.code, 404)


METRIC_LINE = re.compile(r'^([a-z_]+)(\{[a-z_]+="[^"\\]*"'
                         r'(,[a-z_]+="[^"\\]*")*\})? (\d+(\.\d+)?)$')


def scrape(c, nid):
    """{series: value} of a node's /metrics; every line must parse as
    Prometheus text (a comment or `name{labels} value`)."""
    url = f"http://127.0.0.1:{c.metrics_port[nid]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode("ascii")
    out = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = METRIC_LINE.match(line)
        if not m:
            raise AssertionError(f"not a metrics line: {line!r}")
        out[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    return out


def zmtp_send(port, frames, host="127.0.0.1"):
    """Speak just enough ZMTP 3.0 (NULL mechanism, DEALER) to deliver one
    multipart message with an empty delimiter-less layout to a ROUTER.
    Returns "sent" once the peer answered our READY with its own and the
    frames went out, or "refused" when it closed the connection before
    (a node with CURVE keys does that in the greeting)."""
    greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" +
                b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(greeting)
        if len(_recv_exactly(s, 64)) < 64:
            return "refused"
        props = b"\x0bSocket-Type" + (6).to_bytes(4, "big") + b"DEALER"
        body = b"\x05READY" + props
        try:
            s.sendall(b"\x04" + bytes([len(body)]) + body)
        except OSError:
            return "refused"
        # the peer's READY: a short command frame (flags 0x04, size)
        head = _recv_exactly(s, 2)
        if len(head) < 2 or head[0] != 0x04 or \
                not _recv_exactly(s, head[1]).startswith(b"\x05READY"):
            return "refused"
        for i, f in enumerate(frames):
            flag = 0x01 if i + 1 < len(frames) else 0x00
            s.sendall(bytes([flag, len(f)]) + f)
        # close only once the peer has read every frame
        me, peer = s.getsockname(), s.getpeername()
        wait_for(lambda: (tcp_queues(me, peer) or (1,))[0] == 0 and
                 (tcp_queues(peer, me) or (0, 1))[1] == 0, 5,
                 "the node reading our frames", interval=0.01)
    return "sent"


def _recv_exactly(s, n):
    """n octets from s, or fewer when the peer closed first."""
    got = b""
    try:
        while len(got) < n:
            chunk = s.recv(n - len(got))
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    return got


if __name__ == "__main__":
    unittest.main()
