"""The queue counts behind `shoalctl status` and a node's /metrics
(shoal_queue_depth, shoal_queue_messages): kept by the store in the commit
that changes a message, so a scrape or a status costs the same at any queue
size (bench/scale.sh shows it at scale) and shows every change at once.
They follow the shards: after a takeover the new primary reports what it
held as a replica, and a restarted node reads the counts it kept instead
of counting again.

Delivery points at closed ports (the harness default), so accepted mail
stays queued and deferred where a test can count it.
"""

import signal
import time
import unittest

from shoaltest import SMTPConn, ShoalTestCase, make_message, wait_for
from test_metrics import scrape

FAST = ('heartbeat_ms = 200; failover_after_ms = 1500; '
        'peer_timeout_ms = 800;')
SENDER = "sender@example.org"
RCPT = "rcpt@example.net"


def send(c, n, tag="count"):
    qids = []
    with SMTPConn(c.port) as s:
        s.ehlo()
        for i in range(n):
            r = s.mail(SENDER, [RCPT], make_message(f"{tag} {i}"))
            assert r.code == 250, r
            qids.append(r.qid)
    return qids


def by_node(st):
    return {n["id"]: n for n in st["nodes"]}


def figures(node):
    """What status says of one node's primary shards."""
    return {"messages": node["messages"], "queued": node["rcpts_queued"],
            "deferred": node["rcpts_deferred"], "held": node["held"]}


def scraped(c, nid):
    s = scrape(c, nid)
    return {"messages": s.get("shoal_queue_messages"),
            "queued": s.get("shoal_queue_depth", state="queued"),
            "deferred": s.get("shoal_queue_depth", state="deferred"),
            "held": s.get("shoal_queue_depth", state="held")}


class QueueCountsTest(ShoalTestCase):

    def cluster_up(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}',
                         node_metrics=True)
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 10,
                 "the pair healthy")
        return c

    def all_deferred(self, c, n):
        """Wait until the n messages had their first attempt (deferred:
        the port is closed); returns that status."""
        def done():
            st = c.status()
            total = sum(x["rcpts_deferred"] for x in st["nodes"])
            return st if total == n else None
        return wait_for(done, 15, f"{n} recipients deferred")

    def test_1_status_and_metrics_show_each_change_at_once(self):
        c = self.cluster_up()
        t0 = int(time.time())
        qids = send(c, 6)
        st = self.all_deferred(c, 6)
        nodes = by_node(st)
        for nid in c.node_ids:
            self.assertEqual(scraped(c, nid), figures(nodes[nid]), nid)
            # replica copies are the peer's messages, counted there
            peer = c.peer_of(nid)
            self.assertEqual(nodes[nid]["replication"]["replica_messages"],
                             nodes[peer]["messages"], nid)
        oldest = min(n["oldest_arrival"] for n in nodes.values()
                     if n["messages"])
        self.assertTrue(t0 - 1 <= oldest <= time.time(), oldest)

        # a hold and a delete show in the very next scrape and status:
        # no waiting, no cached figure (the scrape just before would have
        # been reused for a second)
        owner = c.owner_of(qids[0], st)
        before = scraped(c, owner)
        c.ctl_ok("queue", "hold", qids[0])
        after = scraped(c, owner)
        self.assertEqual((after["held"], after["deferred"]),
                         (before["held"] + 1, before["deferred"] - 1),
                         f"{owner}: {before} then {after}")
        self.assertEqual(figures(by_node(c.status())[owner]), after)
        owner = c.owner_of(qids[1], st)
        before = scraped(c, owner)
        c.ctl_ok("queue", "delete", qids[1])
        after = scraped(c, owner)
        self.assertEqual(after["messages"], before["messages"] - 1,
                         f"{owner}: {before} then {after}")
        self.assertEqual(figures(by_node(c.status())[owner]), after)

    def test_2_counts_follow_a_takeover_and_survive_a_restart(self):
        c = self.cluster_up()
        send(c, 10)
        self.all_deferred(c, 10)
        # each node counted its queue once, at its first start (the
        # control for "no count at the restart" below)
        for nid in c.node_ids:
            self.assertEqual(c.node(nid).log_text().count(
                "event=counts_rebuild "), 1, nid)

        c.kill_node("n2", signal.SIGKILL)
        wait_for(lambda: set(c.owners().values()) == {"n1"}, 15,
                 "n1 owning every shard")
        n1 = by_node(c.status())["n1"]
        want = {"messages": 10, "queued": 0, "deferred": 10, "held": 0}
        self.assertEqual(figures(n1), want)
        self.assertEqual(n1["replication"]["replica_messages"], 0)
        self.assertEqual(scraped(c, "n1"), want)

        # n2 comes back as n1's replica: it reads the counts it kept
        c.start_node("n2")
        wait_for(lambda: by_node(c.status())["n2"]["replication"]
                 ["replica_messages"] == 10, 15,
                 "n2 holding the 10 copies")
        self.assertEqual(c.node("n2").log_text().count(
            "event=counts_rebuild "), 1, "n2 counted its queue again")
        n2 = by_node(c.status())["n2"]
        self.assertEqual(n2["messages"], 0)
        self.assertEqual(scraped(c, "n2")["messages"], 0)


if __name__ == "__main__":
    unittest.main()
