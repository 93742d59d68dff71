"""Pair faults where two paths meet (issue 15, items 12 to 14): a replica
whose disk was full, a primary paused past its lease, a failback under
load. Built on test_faults.Rig (network namespaces as root, loopback
otherwise): a node pair, a router, smtp-sink as the MX and dnsmasq, with
tests/fixtures/tracked_sender.py recording every 250.

Each test counts what test_faults counts (acknowledged, delivered, lost,
duplicated) and asserts what its item promises; docs/replication.md
states the rules.
"""

import errno
import os
import signal
import subprocess
import time

import netns
from shoaltest import ShoalTestCase, log, wait_for
from test_faults import Rig


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


if __name__ == "__main__":
    import unittest
    unittest.main()
