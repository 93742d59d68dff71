"""What the node's SMTP client puts on the wire, and with how many
connections (issue 15, items 2 and 10).

Wire: whatever the queue holds, node/delivery/smtpc.c never sends a bare CR or a
bare LF (RFC 5321 2.3.8), dot-stuffs every line it starts (4.5.2) and keeps
lines within 1000 octets (4.5.3.1.6). The router refuses such bodies on
input, so the hostile body goes into the queue as a record an older build
or a damaged disk would leave: the node is stopped and the message's body
in LMDB is overwritten with lmdb-utils' mdb_load. The MX is
tests/fixtures/capture_smtpd.py, whose wire check reads every octet of DATA
and BDAT as the strictest receiver would and counts every fault.

Limits: delivery.limits are cluster-wide; each node's share follows the
shard map. After a failover the survivor owns every shard and may use the
whole limit (4 connections, not the 2 it had as one of two).

Peers (dnsmasq, capture servers) come from test_delivery.py.
"""

import os
import re
import signal
import subprocess
import threading

from shoaltest import (DOWN_MS, SMTPConn, ShoalTestCase, log, make_message,
                       wait_for)
from test_delivery import DEST, SENDER, Peers, read_json_lines

MDB_LOAD = "/usr/bin/mdb_load"
LINE = 998                        # RFC 5321 4.5.3.1.6, without CRLF
FAST = ('mode = "sync"; heartbeat_ms = 200; failover_after_ms = 1500; '
        'peer_timeout_ms = 800;')
POLL = 0.1


def mdb_text(data):
    """data as one line of mdb_load -T input: a backslash doubled, other
    octets outside printable ASCII as a backslash and two hex digits."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:02x}")
    return "".join(out)


def put_body(data_dir, qid, body):
    """Overwrite qid's body in the stopped node's LMDB (node/store/store.c: the
    "body" database, key qid with its NUL)."""
    text = mdb_text(qid.encode() + b"\0") + "\n" + mdb_text(body) + "\n"
    r = subprocess.run([MDB_LOAD, "-T", "-s", "body", data_dir],
                       input=text.encode("ascii"), capture_output=True,
                       timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"mdb_load: exit {r.returncode}: {r.stderr!r}")


def model_wire_view(body):
    """What a strict receiver keeps of body once it is sent safely: every
    CRLF, bare CR and bare LF ends a line; a line over LINE octets is
    folded with CRLF SP (node/delivery/smtpc_proto.h)."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        j = i
        while j < n and body[j] not in (0x0D, 0x0A):
            j += 1
        line = body[i:j]
        if j < n:
            j += 2 if body[j:j + 2] == b"\r\n" else 1
        i = j
        out += line[:LINE] + b"\r\n"
        rest = line[LINE:]
        while rest:
            out += b" " + rest[:LINE - 1] + b"\r\n"
            rest = rest[LINE - 1:]
    return bytes(out)


class WireTest(ShoalTestCase):

    def setup(self, peers_fn, nodes=1, **kw):
        """A cluster of `nodes` and its peers (see test_delivery.setup)."""
        replication = kw.pop("replication", None)
        c = self.cluster(start=False, nodes=nodes, replication=replication)
        p = Peers(self, c)
        peers_fn(p)
        p.start()
        c.delivery = p.delivery(**kw)
        c.start()
        p.adopt()
        return c, p

    def send(self, c, rcpt, message):
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            r = conn.mail(SENDER, [rcpt], message)
        self.assertEqual(r.code, 250, f"router refused the message: {r}")
        return r.qid

    def dlog(self, c, qid):
        lines = []
        for n in c.node_ids:
            lines += read_json_lines(os.path.join(c.data_dir(n),
                                                  "delivery.log"))
        return [ln for ln in lines if ln.get("qid") == qid]

    # ---- item 2 ----

    def test_1_hostile_queued_body_goes_out_safe(self):
        rcpt = f"bob@{DEST}"
        later = [{"cmd": "RCPT", "reply": "451 4.3.0 not yet"}]
        c, p = self.setup(lambda p: p.capture(rules=later),
                          retry="[ 1, 1, 1 ]")
        cap = p.captures[0]
        qid = self.send(c, rcpt, make_message("to be replaced",
                                              sender=SENDER, rcpt=rcpt))
        wait_for(lambda: any(ln.get("result") == "deferred"
                             for ln in self.dlog(c, qid)), 15,
                 f"{qid} deferred by the MX", interval=POLL)
        # positive control: the checker saw commands, no body yet
        self.assertEqual(cap.stats()["wire_checked"], 0)

        # an SMTP smuggling attempt behind a bare CR, another behind bare
        # LFs, a lone "." line behind a bare LF, a line of 1,500 octets,
        # and a bare CR to end it
        body = (f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\n"
                "Subject: hostile queue record\r\n\r\n"
                "hello\r.\r\nMAIL FROM:<evil@sender.test>\r\n"
                "RCPT TO:<victim@dest.test>\r\nDATA\r\n"
                "x\n.\nRSET\n"
                ".dot after a bare LF\n"
                + "y" * 1500 + "\r\n"
                "end\r").encode()
        c.node("n1").stop()
        put_body(c.data_dir("n1"), qid, body)
        cap.set_rules([])
        c.start_node("n1")

        wait_for(lambda: cap.stats()["wire_checked"] >= 1, 20,
                 "the body checked at the MX", interval=POLL)
        st = cap.stats()
        self.assertEqual(st["wire_violations"], 0,
                         f"faults on the wire (see the capture log): {st}")
        got = wait_for(lambda: cap.to(rcpt), 10, "the message captured",
                       interval=POLL)
        self.assertEqual(len(got), 1, "one message, nothing smuggled")
        self.assertEqual([m["rcpt_tos"] for m in cap.messages()], [[rcpt]],
                         "no second transaction (victim@) was run")
        m = got[0]
        self.assertEqual(m["wire_violations"], [])
        want = model_wire_view(body)
        with open(m["wire_file"], "rb") as f:
            wire = f.read()
        self.assertTrue(wire.endswith(want),
                        f"the MX keeps the body with CRLF line ends:\n"
                        f"got  {wire[-400:]!r}\nwant {want[-400:]!r}")
        self.assertTrue(m["content"].endswith(want), m["content"][-300:])
        self.assertRegex(c.node("n1").log_text(),
                         rf"qid={qid} .*event=body_repaired bare_cr=2 "
                         rf"bare_lf=4 folded=1")

    # ---- item 10 ----

    def test_2_limits_follow_a_failover(self):
        limit, total = 4, 16
        c, p = self.setup(
            lambda p: p.capture(hold_ms=400), nodes=2, replication=FAST,
            limits=f'{{ domain = "*"; max_connections = {limit}; '
                   'max_msgs_per_conn = 100; max_msgs_per_sec = 0.0; }')
        cap = p.captures[0]
        rcpt = f"many@{DEST}"
        wait_for(lambda: all(n.get("replication", {}).get("state") ==
                             "healthy" for n in c.status()["nodes"]), 10,
                 "the pair healthy", interval=POLL)
        c.kill_node("n1", signal.SIGKILL)
        wait_for(lambda: set(c.owners(wait_ms=DOWN_MS).values()) ==
                 {"n2"}, 15, "n2 owning every shard", interval=POLL)

        errors = []

        def session(k):
            try:
                with SMTPConn(c.port, timeout=30) as conn:
                    conn.ehlo()
                    for i in range(total // 2):
                        r = conn.mail(SENDER, [rcpt], make_message(
                            f"after failover {k}.{i}", sender=SENDER,
                            rcpt=rcpt))
                        if r.code != 250:
                            errors.append((k, i, str(r)))
            except Exception as e:   # reported below, in the test thread
                errors.append((k, repr(e)))
        threads = [threading.Thread(target=session, args=(k,), daemon=True)
                   for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [], "every message accepted by the router")
        wait_for(lambda: len(cap.to(rcpt)) >= total, 30,
                 f"{total} messages at the MX", interval=POLL)
        st = cap.stats()
        log(f"wire: capture stats {st}")
        self.assertEqual(st["max_open"], limit,
                         f"n2 owns every shard and uses the whole limit of "
                         f"{limit} connections, not its old share: {st}")
        self.assertRegex(c.node("n2").log_text(),
                         r"event=limits_share share=1\.0000 "
                         r"old_share=0\.5000 ")

        # failback: n1 restarts, learns the takeover map (1 of 16 shards
        # as its floor), gets its shards back; each node is at half again
        c.start_node("n1")
        wait_for(lambda: all(n.get("replication", {}).get("state") ==
                             "healthy" for n in c.status()["nodes"]), 15,
                 "the pair healthy again", interval=POLL)
        doc = c.ctl_ok("node", "failback", "n1")
        self.assertEqual(doc["primary"], "n1", doc)
        for nid, old in (("n2", "1.0000"), ("n1", "0.0625")):
            wait_for(lambda: re.search(
                rf"event=limits_share share=0\.5000 old_share={old} ",
                c.node(nid).log_text()), 10, f"{nid}'s share back to half",
                interval=POLL)
