"""shoalctl against a running cluster: queue actions (hold, release,
delete, bounce), flush, and the errors scripts rely on (exit 1 with a
message, exit 2 for usage). Delivery points at closed ports (the harness
default), so mail stays queued and deferred where a test can see it.
"""

import os
import signal
import subprocess
import time
import unittest

from shoaltest import (DOWN_MS, SMTPConn, ScriptedMX, ShoalTestCase,
                       bin_path, make_message, shard_of, wait_for)

FAST = ('heartbeat_ms = 200; failover_after_ms = 1500; '
        'peer_timeout_ms = 800;')
SENDER = "sender@example.org"
RCPT = "rcpt@example.net"


def send(c, n, tag="m", rcpts=(RCPT,)):
    qids = []
    with SMTPConn(c.port) as s:
        s.ehlo()
        for i in range(n):
            r = s.mail(SENDER, list(rcpts), make_message(f"{tag} {i}"))
            assert r.code == 250, r
            qids.append(r.qid)
    return qids


def shown(c, qid):
    return c.queue_show(qid)


class ShoalctlTest(ShoalTestCase):

    def cluster_up(self, **kw):
        c = self.cluster(replication=f'mode = "sync"; {FAST}', **kw)
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 10,
                 "the pair healthy")
        return c

    def test_1_hold_and_release_replicate(self):
        c = self.cluster_up()
        qids = send(c, 4)
        doc = c.ctl_ok("queue", "hold", qids[0], qids[1])
        self.assertEqual([(r["qid"], r["done"]) for r in doc["results"]],
                         [(qids[0], True), (qids[1], True)])
        self.assertEqual(doc["unreachable"], [])
        owner = c.owner_of(qids[0])
        self.assertEqual({r["node"] for r in doc["results"]
                          if r["qid"] == qids[0]}, {owner})
        held = {m["qid"] for m in c.queue_list("--state", "held")[
            "messages"]}
        self.assertEqual(held, {qids[0], qids[1]})
        self.assertEqual(sum(n["held"] for n in c.status()["nodes"]), 2)
        # again: done, with a note
        doc = c.ctl_ok("queue", "hold", qids[0])
        self.assertEqual(doc["results"][0]["message"], "already held")
        # the hold is on the peer's copy too: move every shard to the
        # other nodes and look there
        for nid in ("n1", "n2"):
            c.ctl_ok("node", "failover", nid)
            self.assertTrue(shown(c, qids[0])["held"],
                            f"held after the failover of {nid}")
        doc = c.ctl_ok("queue", "release", qids[0])
        self.assertTrue(doc["results"][0]["done"])
        self.assertFalse(shown(c, qids[0])["held"])
        now = time.time()
        # released: due now, so tried again at once (and deferred: the
        # harness MX is a closed port)
        wait_for(lambda: shown(c, qids[0])["recipients"][0][
            "attempts"] >= 1, 15, "an attempt after release")
        self.assertLess(abs(now - time.time()), 20)

    def test_2_delete_and_bounce(self):
        c = self.cluster_up()
        qids = send(c, 3)
        doc = c.ctl_ok("queue", "delete", qids[0])
        self.assertTrue(doc["results"][0]["done"])
        listing = c.queue_list()["messages"]
        self.assertNotIn(qids[0], [m["qid"] for m in listing])
        self.assertEqual(len(listing), 2, "delete sends no DSN")
        doc = c.ctl_ok("queue", "bounce", qids[1])
        self.assertTrue(doc["results"][0]["done"])
        listing = c.queue_list()["messages"]
        qs = [m["qid"] for m in listing]
        self.assertNotIn(qids[1], qs)
        dsns = [m for m in listing if m["sender"] == ""]
        self.assertEqual(len(dsns), 1, "bounce queued one DSN")
        self.assertEqual(dsns[0]["recipients"][0]["address"], SENDER)
        self.assertRegex(c.node(c.owner_of(qids[1])).log_text(),
                         rf"qid={qids[1]} event=bounce by=admin")
        # gone is gone: a second delete finds nothing
        rc, doc, err = c.shoalctl("queue", "delete", qids[0])
        self.assertEqual(rc, 1)
        self.assertFalse(doc["results"][0]["done"])
        self.assertIn("not found", err)

    def test_3_flush_makes_deferred_mail_due(self):
        c = self.cluster_up()
        qids = send(c, 3, rcpts=(RCPT, "other@example.com"))
        wait_for(lambda: all(r["state"] == "deferred"
                             for m in c.queue_list()["messages"]
                             for r in m["recipients"]), 15,
                 "every recipient deferred")
        before = {q: shown(c, q)["recipients"] for q in qids}
        self.assertTrue(all(r["attempts"] == 1 and
                            r["next_try"] > time.time() + 30
                            for rs in before.values() for r in rs))
        doc = c.ctl_ok("queue", "flush", "--domain", "example.net")
        self.assertEqual(doc["messages"], 3)
        wait_for(lambda: all(shown(c, q)["recipients"][0][
            "attempts"] == 2 for q in qids), 15, "example.net tried again")
        for q in qids:
            # a flush makes a recipient due now: example.com would have
            # a new next_try, tried or not
            rs = shown(c, q)["recipients"]
            self.assertEqual((rs[1]["attempts"], rs[1]["next_try"]),
                             (1, before[q][1]["next_try"]),
                             "example.com was not flushed")
        doc = c.ctl_ok("queue", "flush")
        self.assertEqual(doc["messages"], 3)
        self.assertEqual(len(doc["nodes"]), 2)
        # status: 3 x 2 first attempts and 3 flushed ones deferred within
        # the minute, and the router seen by both nodes
        st = c.status()
        self.assertGreaterEqual(sum(n["deferred_1m"] for n in st["nodes"]),
                                9)
        self.assertEqual(sum(n["delivered_1m"] for n in st["nodes"]), 0)
        # a node lists the router once its first heartbeat arrived: in a
        # fast run the flushes can come before that (seen once in CI)
        st = wait_for(lambda: (lambda s: s if all(
            len(n["routers"]) == 1 for n in s["nodes"]) else None)(
                c.status()), 10, "the router seen by both nodes")
        for n in st["nodes"]:
            self.assertEqual(len(n["routers"]), 1, n)
            self.assertLess(n["routers"][0]["seen_ms"], 3000)

    def test_4_bad_input_and_a_node_down(self):
        c = self.cluster_up()
        qids = send(c, 6)
        rc, _, err = c.shoalctl("queue", "hold")
        self.assertEqual(rc, 2)
        rc, _, err = c.shoalctl("queue", "hold", "not-a-qid")
        self.assertEqual(rc, 1)
        self.assertIn("invalid queue id", err)
        rc, doc, err = c.shoalctl("queue", "release", qids[0])
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc["results"][0]["message"], "not held")
        rc, _, err = c.shoalctl("queue", "flush", "extra")
        self.assertEqual(rc, 2)
        # n2 down: n1's messages can still be held; shoalctl names n2
        c.kill_node("n2", signal.SIGKILL)
        st = c.status(DOWN_MS)
        mine = [q for q in qids if c.owner_of(q, st) == "n1"]
        self.assertTrue(mine)
        rc, doc, err = c.shoalctl("--timeout", "1000", "queue", "hold",
                                  mine[0])
        self.assertEqual(rc, 0, err)
        self.assertIn("n2", doc["unreachable"])
        self.assertIn("node n2 did not answer", err)

    def test_4c_storage_full_is_named(self):
        """A node that cannot store an action says so, and shoalctl
        passes that on: not "did not answer", which sends an operator
        looking for a network fault."""
        # (a full replica holds its peer's enqueues until node_timeout_ms)
        c = self.cluster(map_size=1048576, node_timeout_ms=2000)
        body = make_message("fill") + (b"x" * 98 + b"\r\n") * 8
        qids = []
        pin = None
        with SMTPConn(c.port, timeout=30) as s:
            s.ehlo()
            for i in range(5000):
                r = s.mail(SENDER, [RCPT], body)
                if r.code != 250:
                    break
                qids.append(r.qid)
                if len(qids) == 150:
                    # from here no page n1 frees can be used again: the
                    # map fills for good (its dump by now is more than a
                    # pipe holds, so mdb_dump stays in its read txn)
                    pin = self.pin_pages(c.data_dir("n1"))
        self.assertIsNotNone(pin)
        # full: n1's own map (452), or n2 waiting for n1 to apply (451)
        self.assertIn(r.code, (451, 452), r)
        wait_for(lambda: "event=full" in c.node("n1").log_text(), 10,
                 "n1's map full")
        st = c.status()
        mine = [q for q in qids if c.owner_of(q, st) == "n1"]
        rc, doc, err = c.shoalctl("queue", "hold", mine[-1])
        self.assertEqual(rc, 1, (doc, err))
        self.assertIn("node n1: storage full", err)
        self.assertNotIn("did not answer", err)
        self.assertIn("n1", doc["unreachable"])
        # a flush the same (it makes n1's deferred mail due: writes)
        rc, doc, err = c.shoalctl("queue", "flush")
        self.assertIn("node n1: storage full", err)
        self.assertNotIn("did not answer", err)
        self.assertEqual([n["id"] for n in doc["nodes"]], ["n2"], err)
        # the positive control: the same request once pages are free.
        # The dead reader's slot is cleared at the next storage-full
        # error, so the first try after the kill may still fail.
        pin.kill()
        pin.wait()

        def hold():
            rc, doc, _ = c.shoalctl("queue", "hold", mine[-1])
            return rc == 0 and doc["results"][0]["node"] == "n1"
        wait_for(hold, 30, "the hold stored once the pages are free",
                 interval=0.2)
        self.assertIn("event=stale_readers_cleared",
                      c.node("n1").log_text())

    def test_5_shard_list(self):
        c = self.cluster_up()
        qids = send(c, 12)
        doc = c.ctl_ok("shard", "list")
        self.assertEqual(doc["epoch"], 1)
        self.assertEqual(len(doc["shards"]), c.shards)
        owners = c.owners()
        for e in doc["shards"]:
            self.assertEqual(e["primary"], owners[e["shard"]])
            p, r = c.initial_owner(e["shard"])
            self.assertEqual((e["primary"], e["replica"]), (p, r))
        self.assertEqual(sum(e["messages"] for e in doc["shards"]), 12)
        by_shard = {}
        for q in qids:
            by_shard[shard_of(q, c.shards)] = by_shard.get(
                shard_of(q, c.shards), 0) + 1
        for e in doc["shards"]:
            self.assertEqual(e["messages"], by_shard.get(e["shard"], 0))
        c.ctl_ok("node", "failover", "n1")
        doc = c.ctl_ok("shard", "list")
        self.assertEqual((doc["epoch"], doc["author"]), (2, "n1"))
        self.assertEqual({e["primary"] for e in doc["shards"]}, {"n2"})
        self.assertEqual(sum(e["messages"] for e in doc["shards"]), 12)
        # with n2 down its shards' counts are unknown, the map still shows
        c.kill_node("n2", signal.SIGKILL)
        rc, doc, err = c.shoalctl("--timeout", "1000", "shard", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("node n2 did not answer", err)
        # (n1 may have taken n2's shards meanwhile: then it counts them)
        for e in doc["shards"]:
            self.assertEqual(e["messages"] is None, e["primary"] == "n2")

    def test_6_shard_move_and_drain(self):
        c = self.cluster_up(nodes=4)
        qids = send(c, 40)
        before = c.ctl_ok("shard", "list")["shards"][0]
        self.assertEqual((before["primary"], before["replica"]),
                         ("n1", "n2"))
        doc = c.ctl_ok("shard", "move", "0", "--to", "n3")
        self.assertEqual((doc["from"], doc["to"], doc["replica"],
                          doc["messages"], doc["epoch"]),
                         ("n1", "n3", "n4", before["messages"], 2))
        after = c.ctl_ok("shard", "list")
        self.assertEqual((after["shards"][0]["primary"],
                          after["shards"][0]["replica"],
                          after["shards"][0]["messages"]),
                         ("n3", "n4", before["messages"]))
        listed = [m["qid"] for m in c.queue_list()["messages"]]
        self.assertEqual(sorted(listed), sorted(qids), "each message once")
        # the old pair drops its copies (n2 once n1's heartbeat brings
        # it the map), the new pair has them
        def copies_match():
            st = {n["id"]: n for n in c.status()["nodes"]}
            return (st["n2"]["replication"]["replica_messages"] ==
                    st["n1"]["messages"] and
                    st["n4"]["replication"]["replica_messages"] ==
                    st["n3"]["messages"])
        wait_for(copies_match, 10, "each replica holding its primary's "
                 "messages only", interval=0.2)
        doc = c.ctl_ok("shard", "move", "0", "--to", "n3")
        self.assertTrue(doc["already"])
        # mail for the moved shard goes to n3 now
        more = send(c, 20, "after")
        self.assertEqual(len(more), 20)
        doc = c.ctl_ok("node", "drain", "n1")
        self.assertEqual(doc["shards"], c.shards // 4 - 1)
        # every node hears of the last epoch within a heartbeat or two
        wait_for(lambda: len(c.owners()) == c.shards, 10,
                 "every node at the newest epoch", interval=0.2)
        self.assertNotIn("n1", c.owners().values())
        listed = [m["qid"] for m in c.queue_list()["messages"]]
        self.assertEqual(sorted(listed), sorted(qids + more))
        self.assertEqual(node_of(c, "n1")["messages"], 0)

    def test_6c_move_gives_up_on_a_delivery_that_never_ends(self):
        """A move waits for the deliveries of its shard in flight, as a
        planned failover does, and like it gives up after 30 s: the shard
        stays where it was, unfrozen, and shoalctl says why, even when the
        give-up falls between two of its asks. Before, the drain had no
        end: an MX that never answers the end of DATA (for its 10
        minutes) or a result that cannot be saved on a full disk froze
        the shard as long."""
        mx = ScriptedMX(stall_at_dot=True)
        self.addCleanup(mx.close)
        c = self.cluster_up(nodes=4, delivery=(
            'helo_name = "mta.e2e.example";\n'
            f'routes = ({{ domain = "example.net"; '
            f'host = "127.0.0.1:{mx.port}"; }});'))
        st = c.status()
        qids = []
        while not qids or c.owner_of(qids[-1], st) != "n1":
            qids += send(c, 1)
        shard = shard_of(qids[-1], c.shards)
        # every message in flight: n1's among them
        wait_for(lambda: len(mx.stalled) >= len(qids), 10,
                 "each delivery waiting for the MX's answer to its dot")
        # n4 down: each of shoalctl's reads of the map between its 5 s
        # asks waits 3 s for it, and the give-up at 30 s falls between
        # two asks (asks at 0, 8, 16, 24 and 32 s). The answer must
        # still reach shoalctl, and the next ask must not start the move
        # again.
        c.kill_node("n4", signal.SIGKILL)
        t0 = time.monotonic()
        rc, doc, err = c.shoalctl("--timeout", "3000", "shard", "move",
                                  shard, "--to", "n2", timeout=90)
        took = time.monotonic() - t0
        self.assertEqual(rc, 1, (doc, err))
        self.assertIn("deliveries still in flight after 30 s", err)
        self.assertGreater(took, 29)
        self.assertLess(took, 60, "one drain, not a second")
        self.assertEqual(c.owners()[shard], "n1")
        log = c.node("n1").log_text()
        self.assertIn(f"event=move_failed shard={shard} to=n2", log)
        self.assertEqual(log.count(f"event=move_start shard={shard} "),
                         1, "the move started once")
        # the control: once the MX hangs up, the delivery ends and the
        # same move goes through (a new run of shoalctl, a new move)
        mx.release()
        doc = c.ctl_ok("--timeout", "3000", "shard", "move", shard,
                       "--to", "n2")
        self.assertEqual((doc["from"], doc["to"]), ("n1", "n2"))
        self.assertEqual(c.owners()[shard], "n2")

    def test_7_shard_move_bad_input(self):
        c = self.cluster_up()
        for args, code, text in [
                (("shard", "move", "0"), 2, "--to"),
                (("shard", "move", "x", "--to", "n2"), 2, "not a shard"),
                (("shard", "move", "99", "--to", "n2"), 1, "out of range"),
                (("shard", "move", "0", "--to", "n9"), 1, 'no node "n9"'),
                (("node", "drain", "n9"), 1, 'no node "n9"'),
                (("node", "drain"), 2, "one node id")]:
            rc, _, err = c.shoalctl(*args)
            self.assertEqual(rc, code, f"{args}: {err}")
            self.assertIn(text, err, args)
        self.assertEqual(c.status()["epoch"], 1, "nothing moved")
        # a malformed config: file, line and key named, exit 1
        bad = os.path.join(c.dir, "bad.conf")
        with open(bad, "w", encoding="utf-8") as f:
            f.write("cluster: { shards = \"many\"; };\n")
        r = subprocess.run([bin_path("shoalctl"), "-c", bad, "status"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.conf:1", r.stderr)
        self.assertIn("cluster.shards", r.stderr)


def node_of(c, nid):
    return next(n for n in c.status()["nodes"] if n["id"] == nid)


if __name__ == "__main__":
    unittest.main()
