"""Upgrade (issue 16): a queue written by an older build is read by this
one. "Config keys, flags, replies, metrics and on-disk format stay the
same (an LMDB queue written by today's main is read by the new build)."

The data dirs of a node pair that the old build (FIXTURE_COMMIT) ran are
in tests/fixtures/old_queue/queue-COMMIT.tar.gz, with a manifest
queue-COMMIT.json of what they hold; tests/fixtures/old_queue/make.py
made both and says how to make them again. They are unpacked into a new
cluster's data dirs (same node ids, shard count, replication settings)
and the current binaries run on them:

1. First open, delivery into a tarpit (a socket that never accepts, so
   every attempt waits for a greeting and no state changes). n1 starts
   alone first and shows the journal the old build left (newest seq,
   what n2 acknowledged, the entries in between). Then each node
   counts its queue once (`event=counts_rebuild reason=missing` with the
   number of msg records the manifest says its data dir holds); the
   epoch and owners are the stored ones; `queue list` shows every
   message once, on its primary; `queue show` of each equals what the
   old build showed (envelope, DSN parameters, held, every recipient's
   state, attempts, next try and last reply, and the headers read from
   the body); the messages that were gone stay gone; `status` figures
   and /metrics equal the old status; the suppression entry is there and
   the router refuses its address at RCPT; the journal n1 kept while n2
   was down reaches n2 (the pair becomes healthy with nothing
   unacknowledged, and each node's replica copies equal its peer's
   messages).
2. Second open, delivery to a capture server: no count again; after
   `queue flush` and `queue release` of the held messages each pending
   recipient of each message arrives exactly once (the recipients that
   were delivered already do not come again, nor do the gone messages),
   the old DSN arrives once, and both queues drain, replica copies too.

A format change the new build misreads fails here: a renamed named
database would hold no messages (the counts, the list and the show
fail); a changed key or value layout would list other qids or states.
Three broken builds were run against it and each failed: the msg
database renamed (counts_rebuild found 0 messages), the shard_map meta
key renamed (epoch 1, not 3), Recipient.state renumbered in
proto/queue.proto (status counted every recipient as queued).

Every wait is for a log line, a status figure or a file, never a fixed
time. The fixture's age does not matter: nothing in step 1 completes an
attempt, and in step 2 every attempt succeeds, so delivery's
max_queue_lifetime never ends a recipient.
"""

import json
import os
import re
import socket
import tarfile
import unittest

from shoaltest import SMTPConn, ShoalTestCase, free_port, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURE_COMMIT = "e7173a7"
FIXTURES = os.path.join(REPO, "tests", "fixtures", "old_queue")
PYTHON = "/usr/bin/python3"
CAPTURE = os.path.join(REPO, "tests", "fixtures", "capture_smtpd.py")
DOMAINS = ("sink.example", "tarpit.example", "example.net", "example.com",
           "example.org")
A_YEAR = 31536000
WAIT = 30                       # seconds, any one wait
QID_IN_RECEIVED = re.compile(rb"\bid ([0-9A-HJKMNP-TV-Z]{21})\b")
QID_IN_DSN = re.compile(rb"X-Shoal-Queue-ID: ([0-9A-HJKMNP-TV-Z]{21})")
PENDING = ("queued", "deferred")


def delivery(port, dns_port):
    """Every domain of the fixture to 127.0.0.1:port."""
    rows = ",\n    ".join(f'{{ domain = "{d}"; host = "127.0.0.1:{port}"; }}'
                          for d in DOMAINS)
    return "\n".join([
        '  helo_name = "mta.e2e.example";',
        f'  dns_servers = [ "127.0.0.1:{dns_port}" ];',
        f"  smtp_port = {port};",
        f"  routes = (\n    {rows}\n  );",
        f"  retry_schedule = [ {A_YEAR} ];",
        f"  max_queue_lifetime = {A_YEAR};",
    ])


def by_node(st):
    return {n["id"]: n for n in st["nodes"]}


def acked_all(node):
    """The peer acknowledged every change of this node's journal. (Not
    lag_ops == 0: lag_ops counts the journal's entries, and the entries
    of an ack that arrives while a trim is being committed stay until
    the next ack; after the last one they stay.)"""
    r = node["replication"]
    return r["head_seq"] == r["acked_seq"]


def subset(want, got, where):
    """Every key of want in got with the same value (lists item by item):
    the new build may show more, never other."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            raise AssertionError(f"{where}: {got!r} is not an object")
        for k, v in want.items():
            if k not in got:
                raise AssertionError(f"{where}: no {k!r} in {got!r}")
            subset(v, got[k], f"{where}.{k}")
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise AssertionError(f"{where}: {got!r}, want {want!r}")
        for i, (w, g) in enumerate(zip(want, got)):
            subset(w, g, f"{where}[{i}]")
    elif want != got:
        raise AssertionError(f"{where}: {got!r}, want {want!r}")


class UpgradeTest(ShoalTestCase):

    def setUp(self):
        with open(os.path.join(FIXTURES, f"queue-{FIXTURE_COMMIT}.json"),
                  encoding="utf-8") as f:
            self.m = json.load(f)
        self.msgs = self.m["messages"]

    def unpack(self, c):
        """The fixture's n1/ and n2/ into the cluster's data dirs."""
        path = os.path.join(FIXTURES, f"queue-{FIXTURE_COMMIT}.tar.gz")
        with tarfile.open(path, "r:gz") as tar:
            for ti in tar.getmembers():
                nid, _, name = ti.name.partition("/")
                self.assertTrue(ti.isfile() and nid in c.node_ids and
                                name and "/" not in name and
                                name != "lock.mdb", ti.name)
                os.makedirs(c.data_dir(nid), exist_ok=True)
                with tar.extractfile(ti) as src, \
                        open(os.path.join(c.data_dir(nid), name), "wb") as dst:
                    dst.write(src.read())
        for nid in c.node_ids:
            self.assertTrue(os.path.exists(os.path.join(c.data_dir(nid),
                                                        "data.mdb")), nid)

    def tarpit(self):
        """A port where connections are made and never greeted."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(512)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def healthy(self, c):
        def ok():
            st = c.status()
            return st if all(n.get("reachable") and
                             n["replication"]["state"] == "healthy" and
                             acked_all(n) for n in st["nodes"]) else None
        return wait_for(ok, WAIT, "the pair healthy with nothing "
                        "unacknowledged")

    def captured(self, d):
        """Every message the capture server took: its envelope, with
        "qid" (from the router's Received, or for a DSN the qid it
        reports on, under "dsn_for")."""
        out = []
        for name in sorted(os.listdir(d)):
            if not (name.endswith(".json") and name[0].isdigit()):
                continue
            with open(os.path.join(d, name), encoding="utf-8") as f:
                doc = json.load(f)
            with open(doc["file"], "rb") as f:
                content = f.read()
            if doc["mail_from"] == "":
                m = QID_IN_DSN.search(content)
                doc["dsn_for"] = m.group(1).decode() if m else None
            else:
                m = QID_IN_RECEIVED.search(content[:8192])
                doc["qid"] = m.group(1).decode() if m else None
            out.append(doc)
        return out

    # -- step 1: the first open --

    def check_journal(self, c):
        """n1, its peer not yet started, shows the journal as the old
        build left it: the newest seq, what n2 acknowledged, the gap."""
        want = self.m["journal"]["n1"]
        self.assertGreater(want["lag_ops"], 0, "the fixture has a journal "
                           "n2 never acknowledged")

        def n1():
            # n2 is not up: do not wait the default 3 s for it
            _, doc, _ = c.shoalctl("--timeout", "300", "status")
            return by_node(doc)["n1"]["replication"] if doc else None
        r = wait_for(n1, WAIT, "n1's status")
        # every start of a replicating node moves its head past 2^32 seqs
        # it will never give out (node/cluster/repl.c: a commit lost in a
        # crash may have been shipped)
        want = dict(want, head_seq=want["head_seq"] + 2**32)
        self.assertEqual({k: r[k] for k in want}, want, "n1's journal")

    def check_first_open(self, c):
        m = self.m
        for nid in c.node_ids:
            text = c.node(nid).log_text()
            got = re.findall(r"event=counts_rebuild reason=(\S+) "
                             r"messages=(\d+)", text)
            self.assertEqual(got, [("missing", str(m["stored"][nid]))],
                             f"{nid} counts the old queue once, every msg "
                             f"record of its data dir")
            c.node(nid).wait_log(r"event=counts_rebuilt messages="
                                 f"{m['stored'][nid]} ", WAIT)

        # the journal n1 kept alone reaches n2: healthy, nothing unacked,
        # and each node holds a copy of each of its peer's messages
        st = self.healthy(c)
        nodes = by_node(st)
        self.assertEqual(st["epoch"], m["epoch"])
        self.assertEqual(c.owners(st), {int(k): v for k, v in
                                        m["owners"].items()})
        for nid in c.node_ids:
            want = dict(m["status"][nid])
            got = {k: nodes[nid][k] for k in want}
            self.assertEqual(got, want, f"status of {nid}")
            self.assertEqual(c.metric(nid, "shoal_queue_messages"),
                             want["messages"], f"/metrics of {nid}")
            self.assertEqual(c.metric(nid, "shoal_queue_depth",
                                      state="held"), want["held"], nid)
            peer = c.peer_of(nid)
            self.assertEqual(nodes[nid]["replication"]["replica_messages"],
                             m["status"][peer]["messages"],
                             f"{nid} holds copies of all {peer}'s messages")
        # n2 came with fewer copies of n1's messages than n1 has: those
        # it lacked came with n1's journal
        self.assertEqual(m["stored"]["n2"] - m["status"]["n2"]["messages"],
                         m["status"]["n1"]["messages"] -
                         len(m["journaled_by_n1_unacked"]))

        # each message listed once, on its primary, as the old build had it
        listing = c.queue_list()
        self.assertEqual(listing.get("unreachable"), [])
        listed = {}
        for e in listing["messages"]:
            self.assertNotIn(e["qid"], listed, "listed twice")
            listed[e["qid"]] = e
        self.assertEqual(sorted(listed), sorted(self.msgs))
        for qid, want in self.msgs.items():
            old = want["show"]
            e = listed[qid]
            self.assertEqual((e["node"], e["shard"], e["held"]),
                             (old["node"], old["shard"], old["held"]),
                             f"{qid} ({want['kind']})")
            self.assertEqual([(r["address"], r["state"])
                              for r in e["recipients"]],
                             [(r["address"], r["state"])
                              for r in old["recipients"]],
                             f"{qid} ({want['kind']})")
            subset(old, c.queue_show(qid), f"show {qid} ({want['kind']})")
        kinds = {r["state"] for w in self.msgs.values()
                 for r in w["show"]["recipients"]}
        self.assertEqual(kinds, {"queued", "deferred", "delivered"})
        self.assertEqual({w["show"]["held"] for w in self.msgs.values()},
                         {True, False})
        self.assertEqual(self.msgs[m["dsn"]["qid"]]["show"]["sender"], "")
        for qid in m["gone"]:
            rc, _, err = c.shoalctl("queue", "show", qid)
            self.assertEqual(rc, 1, f"{qid} gone")
            self.assertIn("no such message", err)

        # the suppression entry, and the router's check reads it
        supp = m["suppressed"]
        got = c.ctl_ok("suppress", "show", supp["address"])
        subset(supp, got, "suppress show")
        with SMTPConn(c.port) as s:
            s.ehlo()
            s.expect("MAIL FROM:<a@example.org>", 250)
            s.expect("RCPT TO:<alive@example.net>", 250)   # the control
            r = s.cmd(f"RCPT TO:<{supp['address']}>")
            self.assertEqual(r.code, 550, r)
            s.cmd("RSET")
        return st

    # -- step 2: the second open, and delivery --

    def check_delivery(self, c, capture_dir):
        m = self.m
        want = {}                      # (qid, rcpt) -> 1
        for qid, w in self.msgs.items():
            if qid == m["dsn"]["qid"]:
                continue
            for r in w["show"]["recipients"]:
                if r["state"] in PENDING:
                    want[(qid, r["address"])] = 1
        held = [q for q, w in self.msgs.items() if w["show"]["held"]]
        c.ctl_ok("queue", "flush")
        c.ctl_ok("queue", "release", *held)

        def drained():
            st = c.status()
            return all(n["messages"] == 0 and
                       n["replication"]["replica_messages"] == 0 and
                       acked_all(n) for n in st["nodes"])
        wait_for(drained, 60, "both queues empty, replica copies too")

        got, dsns = {}, []
        for doc in self.captured(capture_dir):
            if doc["mail_from"] == "":
                dsns.append(doc)
                continue
            for r in doc["rcpt_tos"]:
                got[(doc["qid"], r)] = got.get((doc["qid"], r), 0) + 1
        self.assertEqual(got, want, "each pending recipient exactly once, "
                         "none delivered before")
        for qid in m["gone"]:
            self.assertNotIn(qid, {q for q, _ in got})
        # the old DSN once; and the success DSN its NOTIFY asked for
        success = {q for q, w in self.msgs.items()
                   for r in w["show"]["recipients"]
                   if r["state"] in PENDING and "success" in
                   r.get("notify", [])}
        self.assertEqual(sorted(d["dsn_for"] for d in dsns),
                         sorted([m["dsn"]["orig_qid"]] + list(success)))
        for d in dsns:
            self.assertEqual(d["rcpt_tos"], [m["dsn"]["to"]])
        self.assertEqual(c.queue_list()["messages"], [])

    def test_old_queue_is_read_then_delivered(self):
        m = self.m
        self.assertEqual(m["commit"], FIXTURE_COMMIT)
        c = self.cluster(start=False, nodes=len(m["cluster"]["nodes"]),
                         shards=m["cluster"]["shards"],
                         name=m["cluster"]["name"],
                         replication=m["replication"], node_metrics=True,
                         node_timeout_ms=2000,
                         extra="suppression: { check_timeout_ms = 5000; };")
        self.assertEqual(c.node_ids, m["cluster"]["nodes"])
        c.delivery = delivery(self.tarpit(), c.dead_dns_port)
        self.unpack(c)
        # n1 alone first: the journal it kept while n2 was down is read
        c.start(nodes=["n1"], router=False)
        self.check_journal(c)
        c.start_node("n2")
        c.start_router()
        self.check_first_open(c)

        # second open: delivery to a capture server now
        capture_port = free_port()
        capture_dir = os.path.join(c.dir, "capture")
        os.mkdir(capture_dir)
        for nid in c.node_ids:
            self.assertEqual(c.node(nid).stop(), 0, f"{nid} exit status")
        c.spawn("capture", [PYTHON, CAPTURE, "--dir", capture_dir,
                            "--listen", f"127.0.0.1:{capture_port}"],
                ready_re=r"capture event=ready")
        c.delivery = delivery(capture_port, c.dead_dns_port)
        c.write_config()
        since = {nid: c.node(nid).log_offset() for nid in c.node_ids}
        for nid in c.node_ids:
            c.start_node(nid)
        for nid in c.node_ids:
            text = c.node(nid)._log_since(since[nid])
            self.assertRegex(text, r"store dir=\S+ event=open ",
                             f"{nid}'s second open")
            self.assertNotIn("event=counts_rebuild", text,
                             f"{nid} kept its counts")
        self.healthy(c)
        self.check_delivery(c, capture_dir)


if __name__ == "__main__":
    unittest.main()
