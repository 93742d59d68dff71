"""A primary whose store comes back older than what its peer applied from
it must not leave the peer believing it has changes it never got
(node/cluster/repl.c, repl_load; node/cluster/repl_send.c, repl_resync).

The journal ships a commit before it is written and fdatasynced
(node/store/commit.h, the hook): after kill -9 in that commit, or a power
cut, the primary may come back without a batch its peer has applied. Had
the primary handed the same seqs to new changes, the peer would take them
for the ones it has, skip them and acknowledge them: mail answered 250
after the restart would be missing on the peer, and lost when the peer
takes over. Two defences, one method each, and a third method for what
the peer answers for meanwhile:

test_restored_primary_does_not_reuse_seqs_its_peer_applied (a crash):
    the node skips 2^32 seqs at every start, stored durably before
    anything is journaled, and an empty batch carries the peer's ack up
    to the head. The copy of n1's store is taken after a restart, so
    the seqs n1 loses are below that start's skip; the skip alone
    covers them, and no resync may be needed (none may be logged).

test_primary_restored_from_backup_resyncs_its_peer (a restored backup):
    the copy is taken from the stopped n1, before the start that skips,
    as a backup put back (or a disk that lost its cache) can be: more
    than a crash can lose, the next start's skip lands n1 below seqs n2
    applied, and the skip alone does not help. n2's ack above n1's head
    must make n1 log `event=peer_ahead` (warn), journal every message of
    its shards again past n2's ack and log `event=resync ...
    result=success`; only once n2 acknowledged that resync (and batch
    C) does n2 take over.

test_copy_answered_by_the_peer_survives_the_failback (a resend in
between): the peer takes over and the routers resend what the crash left
unanswered; the peer finds copies it adopted and answers OK. It must
journal each again with its body (node/queue/ingest.c, ingest_known), or
the primary, back without them, never gets them, and once its shards are
handed back they stay on the peer as replica copies, never delivered.
Its own steps are in its docstring.

The scenario of the first two (shared; the methods differ in step 3 and
the checks of 5 and 6):

1. n1 <-> n2 (sync) and a router; the test domain routes to a port where
   nothing listens yet, so every message stays queued on its primary and
   as a copy on the peer.
2. Batch A (10 messages, all 250); n1's journal all acknowledged.
3. n1 stopped with SIGTERM and started again (its start skips seqs,
   durably), the pair healthy again, and a copy of n1's data dir:
   - crash: after the restart, mdb_copy of n1's store as it runs (a
     consistent read transaction) and the rest of its data dir. A crash
     loses only commits of the run it cuts short, never the skip that
     run's start synced before anything was journaled;
   - backup: a plain copy of the whole data dir while n1 is stopped,
     between the SIGTERM and the start.
4. Batch B (10 messages, all 250; more, one at a time, until at least 5
   of them had n1 as primary); n1's journal all acknowledged: n2 applied
   B's changes of n1's shards.
5. kill -9 n1, its data dir replaced by the copy (n1 lost B's commits,
   which n2 applied), n1 started again, the pair healthy. Backup: n1
   logs peer_ahead with n2's ack of B (peer_has) above its head, then a
   successful resync, and its journal is acknowledged with the head past
   peer_has (until the resync is committed, an ack above the head would
   pass for "all acknowledged").
6. Batch C (20 messages, all 250); n1's journal all acknowledged (backup:
   every resync logged has finished, the head past every peer_has).
7. n1 gone for good: kill -9 and `shoalctl node failover n1`, which, n1
   not answering, makes n2 take n1's shards at once (forced).
   failover_after_ms is 600000, so nothing fails over before that, in the
   restarts of steps 3 and 5 either.
8. The sink starts on the route's port, `queue flush`; once n2's queue is
   empty, everything it delivered is at the sink, which must hold every
   message of C. About half of C had n1 as primary: with seqs given out
   again, n2 skipped the first of them and they never arrive.

Every wait is for a status figure, a log line or the queue list, never
a fixed time. Loopback only.
"""

import os
import re
import shutil
import signal
import subprocess
import unittest

from shoaltest import (REPO, SMTPConn, ShoalTestCase, log, make_message,
                       shard_of, sink_delivered, wait_for)
from test_promises import FakeRouter, qid_for

PYTHON = "/usr/bin/python3"
CAPTURE = os.path.join(REPO, "tests", "fixtures", "capture_smtpd.py")
MDB_COPY = "/usr/bin/mdb_copy"
SENDER = "sender@example.org"
RCPT = "rcpt@example.net"          # routed to the cluster's dead_port
# no failover in the short restarts: only the explicit one of step 7
REPLICATION = ('mode = "sync"; heartbeat_ms = 200; '
               'failover_after_ms = 600000; peer_timeout_ms = 2000;')
WAIT = 20                           # seconds, any one wait

# n1's log lines of a resync (node/cluster/repl_send.c): one that starts
# (or asks for) one, with what n2 has of n1's stream; one that ends one
RESYNC_ASKED_RE = (r"repl node=n1 peer=n2 event=(peer_ahead|peer_lost_data|"
                   r"resync_again) acked=(\d+) peer_has=(\d+) head=(\d+)")
PEER_AHEAD_RE = (r"repl node=n1 peer=n2 event=peer_ahead acked=(\d+) "
                 r"peer_has=(\d+) head=(\d+)")
RESYNC_DONE_RE = (r"repl node=n1 peer=n2 event=resync messages=(\d+) "
                  r"result=([^\n]*)")


class LostCommitTest(ShoalTestCase):

    # -- the tests --

    def test_restored_primary_does_not_reuse_seqs_its_peer_applied(self):
        self.lose_commits(copy_before_restart=False)

    def test_primary_restored_from_backup_resyncs_its_peer(self):
        self.lose_commits(copy_before_restart=True)

    def test_copy_answered_by_the_peer_survives_the_failback(self):
        """n1's batch reaches n2 and n1 is killed in the commit that
        would have made it durable (the journal leaves before that
        commit's fdatasync), so no router had an answer. n2 takes over;
        the routers resend to n2, which finds the copies it adopted and
        answers OK. n1 comes back without them, and gets its shards back:
        every message n2 answered for must be delivered.

        The cut commit is made by putting back a copy of n1's store
        taken before the batch (mdb_copy of the running node: what a
        crash keeps), the lost answers by a router of the test's own
        (FakeRouter), whose replies stand for those a crash cut short."""
        if not os.access(MDB_COPY, os.X_OK):
            self.skipTest(f"needs {MDB_COPY} (lmdb-utils)")
        c = self.cluster(replication=REPLICATION, node_timeout_ms=10000)
        initial = {s: c.initial_owner(s)[0] for s in range(c.shards)}
        n1, n2 = c.node("n1"), c.node("n2")
        self.wait_healthy(c, initial)
        snap = os.path.join(self.tempdir("shoal-lost-commit-"), "n1")
        self.snapshot(c, "n1", snap)

        # the batch: stored on n1, applied by n2 (their answers "lost")
        fr = FakeRouter(c.node_port["n1"])
        self.addCleanup(fr.close)
        epoch, _ = fr.node_map()
        batch = [qid_for(c, "n1") for _ in range(5)]
        for q in batch:
            status, _ = fr.enqueue(q, epoch, c.shards, f"cut {q}")
            self.assertEqual(status, "OK", f"{q} on n1")
        fr.close()
        self.wait_acked(c, "after the batch n1 is to lose")

        # n1 killed in that commit: it comes back without the batch
        c.kill_node("n1", signal.SIGKILL)
        shutil.rmtree(c.data_dir("n1"))
        shutil.copytree(snap, c.data_dir("n1"))
        rc, doc, err = c.shoalctl("--timeout", "1000", "node", "failover",
                                  "n1")
        self.assertEqual(rc, 0, f"forced failover of n1: {err}")
        wait_for(lambda: set(c.owners().values()) == {"n2"}, WAIT,
                 "n2 primary of every shard", interval=0.1)

        # the routers' resends: n2 holds each copy and answers for it
        off2 = n2.log_offset()
        fr = FakeRouter(c.node_port["n2"])
        self.addCleanup(fr.close)
        epoch, _ = fr.node_map()
        for q in batch:
            status, _ = fr.enqueue(q, epoch, c.shards, f"resent {q}")
            self.assertEqual(status, "OK", f"{q} resent to n2")
        fr.close()
        for q in batch:
            n2.wait_log(rf"qid={q} event=stored_already shard=\d+ "
                        r"state=queued", WAIT, since=off2,
                        what=f"n2 answering for its copy of {q}")

        # n1 back without the batch, then its shards given back
        c.start_node("n1")
        wait_for(lambda: all(
            n.get("replication", {}).get("state") == "healthy"
            for n in c.status()["nodes"]), WAIT, "the pair healthy again",
            interval=0.1)
        c.ctl_ok("node", "failback", "n1", timeout=60)
        wait_for(lambda: c.owners() == initial, WAIT,
                 "n1 primary of its shards again", interval=0.1)

        # the MX comes up: every message answered for is delivered
        got = self.deliver_all(c)
        missing = [q for q in batch if q not in got]
        log(f"lost_commit: answered by n2 and delivered after the "
            f"failback: {len(batch) - len(missing)}/{len(batch)}")
        self.assertEqual(missing, [], "messages n2 answered OK for, "
                         "never delivered after n1 took its shards back")
        self.assertEqual([q for q in batch if got[q] != 1], [],
                         "delivered more than once")

    # -- helpers --

    def repl(self, c, nid):
        for n in c.status()["nodes"]:
            if n["id"] == nid:
                return n.get("replication", {})
        raise AssertionError(f"no {nid} in status")

    def seqs(self, c, nid="n1"):
        r = self.repl(c, nid)
        return (f"head_seq={r.get('head_seq')} acked_seq="
                f"{r.get('acked_seq')} lag_ops={r.get('lag_ops')}")

    def wait_healthy(self, c, initial):
        def healthy():
            st = c.status()
            return (all(n.get("reachable", True) and
                        n.get("replication", {}).get("state") == "healthy"
                        for n in st["nodes"]) and
                    c.owners(st) == initial)
        wait_for(healthy, WAIT, "both nodes healthy, each primary of its "
                 "first shards", interval=0.1)

    def wait_acked(self, c, what, past=0):
        """n1's journal all acknowledged by n2: nothing held, the ack at
        the head, and the head past seq `past` (a resync's floor: while
        the resync is not committed, the ack is n2's claim, above the
        head, and proves nothing)."""
        def acked():
            r = self.repl(c, "n1")
            return (r.get("state") == "healthy" and
                    r.get("lag_ops") == 0 and
                    r.get("head_seq", 0) > past and
                    r.get("acked_seq", 0) >= r.get("head_seq", 1))
        wait_for(acked, WAIT, f"n1's journal acknowledged by n2 ({what})",
                 interval=0.1)
        log(f"lost_commit: {what}: n1 {self.seqs(c)}")

    def send(self, c, tag, n):
        """n messages with unique subjects over one session, each of
        which must get 250. Returns {qid: subject}."""
        out = {}
        with SMTPConn(c.port, host=c.router_host) as s:
            s.ehlo()
            for i in range(n):
                subject = f"lost-commit {tag} {i}"
                r = s.mail(SENDER, [RCPT], make_message(subject))
                self.assertEqual(r.code, 250, f"{subject}: {r}")
                self.assertTrue(r.qid, f"{subject}: no qid in {r}")
                out[r.qid] = subject
        return out

    def snapshot(self, c, nid, dest):
        """A consistent copy of a running node's data dir: the LMDB
        store through mdb_copy (a read transaction), the rest as files."""
        src = c.data_dir(nid)
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(
            "data.mdb", "lock.mdb"))
        r = subprocess.run([MDB_COPY, src, dest], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, f"mdb_copy {src}: {r.stderr}")

    def deliver_all(self, c):
        """The sink on the route's port and a queue flush; once every
        primary's queue is empty, {qid: copies} at the sink (it writes a
        message before its 250, so whatever was delivered is there)."""
        dump = os.path.join(c.dir, "sink")
        os.mkdir(dump)
        c.spawn("capture", [PYTHON, CAPTURE, "--dir", dump, "--listen",
                            f"127.0.0.1:{c.dead_port}"],
                ready_re=r"capture event=ready")
        c.ctl_ok("queue", "flush")
        wait_for(lambda: c.queue_list()["messages"] == [], WAIT,
                 "every primary's queue empty: everything delivered",
                 interval=0.2)
        return sink_delivered(dump)

    def resyncs(self, n1, since):
        """n1's resync lines from log offset `since` on: (the asking
        ones as (event, peer_has, position), the ending ones as
        (messages, result, position))."""
        with open(n1.log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        asked = [(m[1], int(m[3]), m.start())
                 for m in re.finditer(RESYNC_ASKED_RE, text)]
        done = [(int(m[1]), m[2].strip(), m.start())
                for m in re.finditer(RESYNC_DONE_RE, text)]
        return asked, done

    # -- the scenario --

    def lose_commits(self, copy_before_restart):
        """Steps 1-8 of the module docstring; copy_before_restart picks
        the backup variant of step 3 (and its checks in 5 and 6)."""
        backup = copy_before_restart
        if not backup and not os.access(MDB_COPY, os.X_OK):
            self.skipTest(f"needs {MDB_COPY} (lmdb-utils)")
        c = self.cluster(replication=REPLICATION, node_timeout_ms=10000)
        initial = {s: c.initial_owner(s)[0] for s in range(c.shards)}
        n1 = c.node("n1")

        def on_n1(qids):
            return {q for q in qids
                    if initial[shard_of(q, c.shards)] == "n1"}

        # 1, 2: batch A, acknowledged by n2
        self.wait_healthy(c, initial)
        batch_a = self.send(c, "A", 10)
        self.wait_acked(c, "after batch A")

        # 3: a clean restart; the copy of n1's data dir before it (backup)
        # or of n1's store after it (crash)
        snap = os.path.join(self.tempdir("shoal-lost-commit-"), "n1")
        self.assertEqual(n1.stop(), 0, "n1's exit status after SIGTERM")
        if backup:
            shutil.copytree(c.data_dir("n1"), snap)
            log("lost_commit: copy of the stopped n1's data dir taken")
        c.start_node("n1")
        self.wait_healthy(c, initial)
        self.wait_acked(c, "n1 restarted")
        if not backup:
            self.snapshot(c, "n1", snap)
            log(f"lost_commit: copy of n1's store taken at n1 "
                f"{self.seqs(c)}")

        # 4: batch B, applied by n2. The commits n1 loses must span a
        # few seqs, for the first of C's to fall in them: at least 5
        # messages of n1 (half of 10 on average), topped up one at a
        # time when fewer
        batch_b = self.send(c, "B", 10)
        while len(on_n1(batch_b)) < 5 and len(batch_b) < 40:
            batch_b.update(self.send(c, f"B+{len(batch_b)}", 1))
        self.assertGreaterEqual(len(on_n1(batch_b)), 5, "messages of "
                                "batch B with n1 as primary")
        self.wait_acked(c, f"after batch B ({len(batch_b)} messages, "
                        f"{len(on_n1(batch_b))} of them n1's)")
        b_acked = self.repl(c, "n1")["acked_seq"]

        # 5: n1 loses B's commits: kill -9, the old copy back, start
        c.kill_node("n1", signal.SIGKILL)
        shutil.rmtree(c.data_dir("n1"))
        shutil.copytree(snap, c.data_dir("n1"))
        off = n1.log_offset()
        c.start_node("n1")
        n1.wait_log(r"repl node=n1 peer=n2 event=start ", WAIT, since=off,
                    what="n1's replication starting on the restored store")
        past = 0
        if backup:
            # n2 acks what it applied of n1's stream, B included: past
            # the head n1's restored store starts at
            m = n1.wait_log(PEER_AHEAD_RE, WAIT, since=off,
                            what="n1 seeing n2 ahead of its restored store")
            peer_has, head = int(m[2]), int(m[3])
            log(f"lost_commit: n1 restored: {m[0]}")
            # at least what n1 saw acked after B (n1 may have journaled
            # B's first deferrals since, before the kill)
            self.assertGreaterEqual(peer_has, b_acked, "what n2 has of "
                                    "n1's stream: n1's ack after batch B")
            self.assertGreater(peer_has, head, "n2's ack above the head "
                               "of n1's restored store")
            n1.wait_log(RESYNC_DONE_RE, WAIT, since=off,
                        what="n1's resync after peer_ahead")
            _, done = self.resyncs(n1, off)
            messages, result = done[0][0], done[0][1]
            self.assertEqual(result, "success", f"n1's resync: {done[0]}")
            # every message n1 still holds as primary: batch A's (B's
            # were lost with the restore; nothing was delivered)
            self.assertEqual(messages, len(on_n1(batch_a)), "messages "
                             "journaled again by n1's resync")
            past = peer_has
        self.wait_healthy(c, initial)
        if backup:
            self.wait_acked(c, "n1 restored, its resync acknowledged",
                            past=past)
        else:
            log(f"lost_commit: n1 restored and healthy: n1 {self.seqs(c)}")

        # 6: batch C, every message 250, all acknowledged (backup: after
        # every resync n1 asked for has finished)
        batch_c = self.send(c, "C", 20)
        if backup:
            def settled():
                asked, done = self.resyncs(n1, off)
                return (asked and done and done[-1][2] > asked[-1][2] and
                        (asked, done))
            asked, done = wait_for(settled, WAIT, "every resync n1 asked "
                                   "for finished", interval=0.1)
            self.assertEqual([d for d in done if d[1] != "success"], [],
                             "n1's resyncs that failed")
            past = max(a[1] for a in asked)
            log(f"lost_commit: resyncs of n1: asked {len(asked)} "
                f"({', '.join(a[0] for a in asked)}), done {len(done)} "
                f"(messages {[d[0] for d in done]})")
        self.wait_acked(c, "after batch C", past=past)
        if not backup:
            # the skip at start covered the lost seqs: n2 never was ahead
            # (a resync would be logged before the ack of C, which proves
            # n2's acks were read)
            self.assertEqual(self.resyncs(n1, off)[0], [],
                             "resyncs n1 asked for after a crash")
        c_on_n1 = on_n1(batch_c)
        self.assertTrue(c_on_n1, "some of batch C had n1 as primary")
        self.assertEqual(c.status()["epoch"], 1, "no failover so far")

        # 7: n1 gone for good; n2 takes its shards at once
        c.kill_node("n1", signal.SIGKILL)
        rc, doc, err = c.shoalctl("--timeout", "1000", "node", "failover",
                                  "n1")
        self.assertEqual(rc, 0, f"forced failover of n1: {err}")
        self.assertEqual((doc["primary"], doc["forced"]), ("n2", True), doc)
        wait_for(lambda: set(c.owners().values()) == {"n2"} and
                 len(c.owners()) == c.shards, WAIT,
                 "n2 primary of every shard", interval=0.1)

        # 8: the sink on the route's port, deliver everything n2 holds
        got = self.deliver_all(c)
        counts = {name: len(set(b) & set(got)) for name, b in
                  (("A", batch_a), ("B", batch_b), ("C", batch_c))}
        log(f"lost_commit: at the sink: A {counts['A']}/{len(batch_a)}, "
            f"B {counts['B']}/{len(batch_b)}, C {counts['C']}/"
            f"{len(batch_c)} ({len(c_on_n1)} of C had n1 as primary); "
            f"{sum(got.values())} messages in all")
        missing = sorted(q for q in batch_c if q not in got)
        self.assertEqual(
            [batch_c[q] for q in missing], [],
            f"{len(missing)} of the {len(batch_c)} messages of batch C "
            f"(all answered 250) never reached the sink, "
            f"{len(set(missing) & c_on_n1)} of them had n1 as primary "
            f"(of {len(c_on_n1)}): {missing}")


if __name__ == "__main__":
    unittest.main()
