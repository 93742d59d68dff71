"""Pair faults where two paths meet (issue 15, items 12 to 14): a primary
paused past its lease, a failback under load, a replica whose disk was
full, a primary whose disk is full keeping its results until it can save
them, then handing its shards over, and (16) starting no delivery it
cannot record before it is killed. Built on test_faults.Rig (network namespaces as root, loopback
otherwise): a node pair, a router, dnsmasq and an MX, with
tests/fixtures/tracked_sender.py recording every 250. The MX is
smtp-sink, or for 12 and 13 a slow one (SlowRig: capture_smtpd.py with
few connections), so that the nodes hold a delivery backlog.

Each test counts what test_faults counts (acknowledged, delivered, lost,
duplicated) and asserts what its item promises; docs/replication.md
states the rules.
"""

import calendar
import errno
import json
import os
import re
import signal
import subprocess
import time

import netns
from shoaltest import DUMP_QID_RE, REPO, ShoalTestCase, log, wait_for
from test_faults import PYTHON, Rig

CAPTURE = os.path.join(REPO, "tests", "fixtures", "capture_smtpd.py")
HOLD_MS = 50                 # the MX answers each end of data this late
MX_CONNECTIONS = 8           # cluster-wide: 4 per node of the pair
FULL_CONNECTIONS = 4         # test 16: connections per node to the MX


class SlowRig(Rig):
    """A Rig whose MX is tests/fixtures/capture_smtpd.py answering every
    end of data HOLD_MS late, with at most MX_CONNECTIONS connections to
    it: mail arrives faster than it leaves, so the nodes build a delivery
    backlog. Each message's capture record says which node sent it (its
    peer address: needs the namespaces) and when its reply went out."""

    def __init__(self, test, **kw):
        super().__init__(test, **kw)
        self.c.delivery += (
            f"\n  limits = ( {{ domain = \"*\"; max_connections = "
            f"{MX_CONNECTIONS}; max_msgs_per_conn = 100000; }} );")

    def start_sink(self):
        argv = [PYTHON, CAPTURE, "--dir", self.dump_dir, "--listen",
                f"{self.net.host('sink')}:{self.sink_port}",
                "--hold-ms", str(HOLD_MS)]
        self.c.spawn("capture", self.net.wrap("sink", argv),
                     ready_re=r"capture event=ready")

    def captured(self):
        """[(reply time, sending node's address, qid)] of every message
        the MX took."""
        out = []
        for name in os.listdir(self.dump_dir):
            if not name.endswith(".json") or name == "stats.json":
                continue
            try:
                with open(os.path.join(self.dump_dir, name)) as f:
                    doc = json.load(f)
                with open(doc["file"], "rb") as f:
                    m = DUMP_QID_RE.search(f.read(8192))
            except (OSError, ValueError, KeyError):
                continue
            out.append((doc["time"], doc["peer"].rpartition(":")[0],
                        m.group(1).decode() if m else None))
        return out

    def backlog(self, nid):
        return backlog_of(self, nid)


def fill_disk(path, chunk=1 << 20):
    """Write zeros to path until the file system is full. Returns the
    bytes written."""
    buf = b"\0" * chunk
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                w = os.write(fd, buf[:chunk])
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if chunk <= 4096:
                    return n
                chunk //= 16
                continue
            n += w
    finally:
        os.close(fd)


# "2026-12-06T16:12:43.371Z shoal-node[...] info: qid=Q rcpt=... result=delivered"
# A delivery result reaches the peer within one round trip of the journal
# (commit, ship, apply, ack): a message delivered this long before a pause
# may be delivered again by the peer that takes over.
LAST_ROUND_TRIP_S = 0.5

RESULT_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z .*"
                       r"\bqid=(\S+) rcpt=.* result=delivered ")


def results_after(log_text, t):
    """qids a node logged as delivered at or after unix time t."""
    out = set()
    for ln in log_text.splitlines():
        m = RESULT_RE.match(ln)
        if m:
            ts = calendar.timegm(time.strptime(m.group(1),
                                               "%Y-%m-%dT%H:%M:%S"))
            if ts + int(m.group(2)) / 1000.0 >= t:
                out.add(m.group(3))
    return out


def backlog_of(rig, nid):
    """Messages node nid owns (its shards' queue)."""
    for n in rig.c.status()["nodes"]:
        if n["id"] == nid:
            return n.get("messages", 0)
    return 0


def repl_of(rig, nid):
    for n in rig.c.status()["nodes"]:
        if n["id"] == nid:
            return n.get("replication", {})
    return {}


class PairFaultTest(ShoalTestCase):

    def mount_tmpfs(self, d, size):
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                        "tmpfs", d], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", d])

    # ---- 12 ----

    def test_12_paused_primary_does_not_deliver_what_its_peer_took(self):
        """SIGSTOP n1 with a delivery backlog for longer than
        failover_after_ms, until n2 has taken its shards, then SIGCONT.
        The fencing rule must hold across the pause: n1 may finish the
        transactions whose DATA was on the wire when it stopped, and
        start nothing more of the shards n2 now owns."""
        if not netns.available():
            self.skipTest("telling the nodes apart at the MX needs "
                          "namespaces (root)")
        rig = SlowRig(self).start()
        rig.start_load()
        wait_for(lambda: rig.backlog("n1") >= 200, 60,
                 "a delivery backlog of 200 messages on n1")
        n1, n2 = rig.c.node("n1"), rig.c.node("n2")
        ip1 = rig.net.host("n1")
        t_stop = time.time()
        n1.send_signal(signal.SIGSTOP)
        self.addCleanup(n1.send_signal, signal.SIGCONT)
        wait_for(lambda: "event=takeover" in n2.log_text(), 15,
                 "n2 taking over n1's shards")
        t_cont = time.time()
        n1.send_signal(signal.SIGCONT)
        # n1 awake again, with n2's map: primary of nothing
        wait_for(lambda: "n1" not in rig.c.owners().values(), 15,
                 "n1 holding n2's map, primary of nothing")
        rig.wait_acks(50, what="250s after the pause")
        row = rig.finish("SIGSTOP primary past the lease", t_cont - t_stop)
        # what n1 had on the wire when it stopped: messages whose end of
        # data the MX answered after that (n1 was frozen: their DATA was
        # out already), and those whose reply n1 only read after it woke
        got = rig.captured()
        before_cont = {q for t, ip, q in got if ip == ip1 and t <= t_cont}
        on_wire = {q for t, ip, q in got
                   if ip == ip1 and t_stop < t <= t_cont}
        on_wire |= results_after(n1.log_text(), t_cont) & before_cont
        # and what n1 had delivered in the last round trip before it
        # stopped: the result may not have reached n2 (docs/replication.md,
        # "Why duplicates stay rare"), so n2 delivers it again
        unshipped = {q for t, ip, q in got
                     if ip == ip1 and t_stop - LAST_ROUND_TRIP_S < t <= t_stop}
        sent_after = [q for t, ip, q in got if ip == ip1 and t > t_cont]
        dups = {q for q, n in rig.delivered().items() if n > 1}
        log(f"pause: {len(on_wire)} messages of n1 on the wire at SIGSTOP, "
            f"{len(unshipped)} delivered in the round trip before it, "
            f"{len(sent_after)} sent by n1 after SIGCONT, "
            f"{len(dups)} duplicated ({len(dups - on_wire)} of them not "
            f"on the wire, {len(dups - on_wire - unshipped)} of them "
            f"neither on the wire nor just delivered)")
        self.assertEqual(len(sent_after), 0, f"n1 delivered after its "
                         f"lease lapsed: {sent_after[:5]}")
        self.assertLessEqual(len(dups), len(on_wire | unshipped),
                             f"{len(dups)} duplicates, but only "
                             f"{len(on_wire)} messages had their DATA on "
                             f"the wire when n1 stopped and "
                             f"{len(unshipped)} were delivered in the round "
                             f"trip before: {sorted(dups)[:5]}")
        self.assertEqual(dups - on_wire - unshipped, set(),
                         "duplicates that were neither on the wire nor "
                         "delivered just before the pause")
        # and it was the lease that stopped n1, not an empty queue
        self.assertIn("event=lease_lost", n1.log_text())
        self.assertGreater(len(results_after(n1.log_text(), 0)), 0)

    # ---- 13 ----

    def test_13_failback_under_load_finishes_in_seconds(self):
        """kill -9 n1 under load with a delivery backlog, restart it, and
        give its shards back while mail keeps flowing: the giver freezes
        the shards it gives away, so the failback is done in seconds, and
        nothing acknowledged is lost."""
        rig = SlowRig(self).start()
        rig.start_load()
        wait_for(lambda: rig.backlog("n2") >= 100, 60,
                 "a delivery backlog on n2")
        rig.c.kill_node("n1", signal.SIGKILL)
        wait_for(lambda: "event=takeover" in rig.c.node("n2").log_text(),
                 15, "n2 taking over n1's shards")
        rig.c.start_node("n1")
        rig.wait_healthy()
        backlog = rig.backlog("n2")
        t0 = time.monotonic()
        rc, doc, err = rig.c.shoalctl("node", "failback", "n1", timeout=60)
        took = time.monotonic() - t0
        log(f"failback: {took:.1f}s with a backlog of {backlog} on n2")
        self.assertEqual(rc, 0, f"failback failed after {took:.1f}s: {err}")
        self.assertGreater(doc["shards"], 0, doc)
        # before the freeze this waited for every delivery picked from
        # the backlog (up to 30 s, then gave up)
        self.assertLess(took, 5.0, "failback under load took too long")
        wait_for(lambda: set(rig.c.owners().values()) == {"n1", "n2"}, 15,
                 "n1 primary of its shards again")
        rig.wait_acks(50, what="250s after the failback")
        rig.finish("failback under load", took)

    # ---- 14 ----

    def test_14_replica_disk_full_then_freed(self):
        """n1 (the replica of n2's shards) runs out of disk under load,
        then gets space back: the stream must resume from what n1
        applied, the pair must become healthy again, and after n2 dies
        for good n1 must deliver every message n2 acknowledged."""
        if os.geteuid() != 0:
            self.skipTest("a real full disk needs root (tmpfs)")
        # the map is far bigger than the file system: the disk fills,
        # not the map
        # and the MX is down until the end: every message n2 acknowledges
        # stays queued, so n1 must hold all of them
        rig = Rig(self, map_size={"n1": 1 << 30}, sink_first=False,
                  size=5000)
        d = rig.c.data_dir("n1")
        self.mount_tmpfs(d, 128 << 20)
        rig.start()
        rig.start_load()
        rig.wait_acks(60, what="250s before the disk fills")
        filler = os.path.join(d, "filler")
        log(f"filled n1's disk with {fill_disk(filler)} bytes")
        n1, n2 = rig.c.node("n1"), rig.c.node("n2")
        wait_for(lambda: "event=apply_failed" in n1.log_text(), 30,
                 "n1 failing to apply n2's stream")
        # n2 goes on acknowledging while n1 cannot store its stream
        rig.wait_acks(300, what="250s while n1's disk is full")
        os.unlink(filler)
        t_free = time.monotonic()
        # the stream restarts from what n1 applied: n1 gets everything
        # n2 had journaled when the space came back, and the pair is
        # healthy again
        head = repl_of(rig, "n2")["head_seq"]

        def caught_up():
            r = repl_of(rig, "n2")
            return r.get("state") == "healthy" and \
                r.get("acked_seq", 0) >= head
        wait_for(caught_up, 30, f"n1 acknowledging n2's stream up to "
                 f"{head} and the pair healthy", interval=0.3)
        log(f"pair healthy {time.monotonic() - t_free:.1f}s after the "
            f"disk was freed")
        rig.wait_acks(20, what="250s after the heal")
        # n2 gone for good: n1 must hold everything n2 acknowledged
        rig.c.kill_node("n2", signal.SIGKILL)
        wait_for(lambda: "event=takeover" in n1.log_text(), 15,
                 "n1 taking over n2's shards")
        rig.start_sink()
        rig.wait_acks(20, what="250s after the takeover")
        rig.finish("replica disk full, freed, then primary killed", 0.0)
        self.assertTrue("event=apply_recovered" in n1.log_text(),
                        "n1 logged its recovery")
        # while it was behind, n2 said so, and why
        behind = [ln for ln in n2.log_text().splitlines()
                  if "event=behind" in ln]
        self.assertTrue(any("storage full" in ln for ln in behind),
                        f"n2 did not say why its pair was behind: "
                        f"{behind[:3]}")

    # ---- a full primary hands its shards over ----

    def test_15_full_primary_saves_its_results_then_fails_over(self):
        """n1's disk fills to the last byte (a filler after its store
        refused mail) while a reader pins its freed pages, the MX comes
        back: n1 delivers and cannot save the results. It keeps them and
        does not deliver those messages again (it did, on every pass).
        The reader is then killed, leaving a stale slot in LMDB's reader
        table, and the filler removed: n1 clears the slot (or the freed
        pages stay pinned for as long as it runs), saves the results and
        hands its shards to n2. Nothing acknowledged is lost, nothing is
        delivered twice."""
        if os.geteuid() != 0:
            self.skipTest("a real full disk needs root (tmpfs)")
        rig = Rig(self, map_size={"n1": 64 << 20}, sink_first=False,
                  size=20000)
        d = rig.c.data_dir("n1")
        self.mount_tmpfs(d, 6 << 20)
        rig.start()
        rig.start_load(source=False)
        n1 = rig.c.node("n1")
        wait_for(lambda: "event=reserve_reached" in n1.log_text(), 60,
                 "n1's store at its reserve")
        # a reader pins every page freed from now on: with the disk
        # full too, nothing can be written until it ends
        pin = self.pin_pages(d)
        filler = os.path.join(d, "filler")
        log(f"filled n1's disk with {fill_disk(filler)} bytes")
        rig.start_sink()
        # the positive control: deliveries happened and their results
        # could not be saved
        wait_for(lambda: "event=result_not_saved" in n1.log_text(), 30,
                 "n1 failing to save a delivery's result")
        pin.kill()
        pin.wait()
        os.unlink(filler)
        wait_for(lambda: "event=stale_readers_cleared" in n1.log_text(),
                 30, "n1 clearing the dead reader's slot")
        wait_for(lambda: "event=result_saved" in n1.log_text(), 30,
                 "n1 saving the results it kept")
        t0 = time.monotonic()
        rc, doc, err = rig.c.shoalctl("node", "failover", "n1",
                                      timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, f"failover once there is room: {err}")
        wait_for(lambda: "n1" not in rig.c.owners().values(), 15,
                 "n2 owning every shard")
        rig.wait_acks(20, what="250s after the failover")
        row = rig.finish("full primary: results kept, then failover",
                         took)
        self.assertEqual(row["duplicated"], 0)

    # ---- a full primary starts no delivery it cannot record ----

    def test_16_full_primary_starts_no_delivery_it_cannot_record(self):
        """n1 holds a backlog (the MX down) when its disk fills to the last
        byte and a reader pins its freed pages: nothing can be saved. Once
        a result fails to save, n1 starts no delivery (each would be one
        more whose result a crash loses), while n2 delivers its own
        backlog. Then n1 is killed: n2 takes over and delivers again only
        what n1 had in flight when it paused, never its whole backlog
        (before, n1 went on delivering everything, and all of it came
        twice)."""
        if os.geteuid() != 0:
            self.skipTest("a real full disk needs root (tmpfs)")
        rig = Rig(self, map_size={"n1": 64 << 20}, sink_first=False,
                  size=20000)
        rig.c.delivery += (
            f"\n  limits = ( {{ domain = \"*\"; max_connections = "
            f"{FULL_CONNECTIONS}; max_msgs_per_conn = 100000; }} );")
        d = rig.c.data_dir("n1")
        self.mount_tmpfs(d, 24 << 20)
        rig.start()
        rig.start_load(source=False)
        wait_for(lambda: backlog_of(rig, "n1") >= 150 and
                 backlog_of(rig, "n2") >= 150, 60,
                 "a backlog of 150 messages on each node")
        rig.sender.stop(timeout=40)
        rig.sender = None
        held = backlog_of(rig, "n1")
        n1, n2 = rig.c.node("n1"), rig.c.node("n2")
        pin = self.pin_pages(d)
        filler = os.path.join(d, "filler")
        log(f"filled n1's disk with {fill_disk(filler)} bytes; "
            f"n1 holds {held}")
        rig.start_sink()
        wait_for(lambda: "event=deliveries_paused" in n1.log_text(), 30,
                 "n1 pausing its deliveries")
        paused = [ln for ln in n1.log_text().splitlines()
                  if "event=deliveries_paused" in ln][0]
        log(f"n1: {paused}")
        # the window in which n1 would have sent its backlog: the MX took
        # n2's whole backlog meanwhile
        wait_for(lambda: backlog_of(rig, "n2") == 0, 60,
                 "n2 delivering its backlog")
        self.assertGreaterEqual(len(rig.delivered()), 150,
                                "the MX took mail during the window")
        self.assertGreater(backlog_of(rig, "n1"), held // 2,
                           "n1 kept its backlog while its disk was full")
        # what n1 sent once it had paused: only what was on the wire then
        # (without the pause, its whole backlog)
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z", paused)
        t_pause = calendar.timegm(time.strptime(
            m.group(1), "%Y-%m-%dT%H:%M:%S")) + int(m.group(2)) / 1000.0
        late = results_after(n1.log_text(), t_pause + LAST_ROUND_TRIP_S)
        self.assertLessEqual(len(late), 2 * FULL_CONNECTIONS,
                             f"n1 delivered after it paused: {paused}")
        rig.c.kill_node("n1", signal.SIGKILL)
        pin.kill()
        pin.wait()
        os.unlink(filler)
        wait_for(lambda: "event=takeover" in n2.log_text(), 15,
                 "n2 taking over n1's shards")
        rig.c.start_node("n1")
        row = rig.finish("full primary paused, then killed", 0.0)
        # sent twice: what n1 delivered before its first failed save
        # came back (one batch of results, more on a slow disk) and what
        # was on the wire when it paused; never the backlog it kept
        self.assertLess(row["duplicated"], held // 2,
                        f"n1 held {held}; {paused}")


if __name__ == "__main__":
    import unittest
    unittest.main()
