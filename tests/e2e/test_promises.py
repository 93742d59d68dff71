"""Promises where paths meet (issue 15): a 250 means the message is
durable and will be delivered once, a 4xx means it will not be delivered,
whatever the node pair does meanwhile. Each test sets up one meeting of
paths on loopback and checks what the client was told against what the MX
(Postfix's smtp-sink, every message dumped to a file) received:

  3   require_peer with a silent peer: 451, and nothing delivered
  4   two SIGTERMs while an enqueue waits for a silent peer (run under the
      ASan build, the harness fails the test on a sanitizer report)
  15  an enqueue that a map change overtakes between the node's check and
      its group commit; planned failover and failback under load
  16  a resend of a message already delivered: no second copy, also after
      a takeover (the replica's tombstone)
  17  a primary killed after it stored a message and back within seconds:
      the router resends, the client gets 250, the MX one copy
  18  a message refused and withdrawn under require_peer, sent again: it
      is stored, on the primary and on the replica after a takeover (no
      tombstone of a withdrawal anywhere)
  19  require_peer, a resend to a node restarted while its peer is silent:
      the reply the client gets matches what becomes of the stored copy;
      two requests for one qid on one node get one answer

Some tests speak the router link themselves (FakeRouter: ZMTP 3.0 with
the NULL mechanism and hand-packed protobuf, proto/router_node.proto) to
put two requests into one read of the node's socket, or to resend a qid.
Standard library only.
"""

import os
import random
import signal
import socket
import struct
import threading
import time

from shoaltest import (REPO, SANITIZER_RE, SMTPConn, SMTPError,
                       ShoalTestCase, free_port, make_message, shard_of,
                       sink_delivered, wait_for)

SMTP_SINK = "/usr/sbin/smtp-sink"
PYTHON = "/usr/bin/python3"
SENDER_FIXTURE = os.path.join(REPO, "tests", "fixtures", "tracked_sender.py")
SENDER = "sender@example.org"
RCPT = "rcpt@example.net"
FAST = "heartbeat_ms = 200; failover_after_ms = 1500; peer_timeout_ms = 800;"


# ---- protobuf, packed by hand (proto/router_node.proto, queue.proto) -----

def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_uint(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(b)) + b


def pb_fields(buf):
    """[(field, value)] of a message: ints for varints, bytes for
    length-delimited fields (fixed-size fields are skipped)."""
    out, i = [], 0
    while i < len(buf):
        key, i = _pb_read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _pb_read_varint(buf, i)
        elif wt == 2:
            n, i = _pb_read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt in (1, 5):
            i += 8 if wt == 1 else 4
            continue
        else:
            raise AssertionError(f"protobuf wire type {wt}")
        out.append((field, v))
    return out


def _pb_read_varint(buf, i):
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def pb_get(buf, field, default=None):
    for f, v in pb_fields(buf):
        if f == field:
            return v
    return default


STATUS = {0: "OK", 1: "WRONG_EPOCH", 2: "NOT_OWNER", 3: "STORAGE_FULL",
          4: "NOT_DURABLE", 5: "BAD_REQUEST", 6: "INTERNAL", 7: "MOVING"}
QID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_qid_seq = [0]


def make_qid():
    """A fresh qid in lib/qid.h's layout: time, instance, sequence."""
    def b32(v, n):
        return "".join(QID_ALPHABET[(v >> (5 * (n - 1 - i))) & 31]
                       for i in range(n))
    _qid_seq[0] += 1
    return (b32(time.time_ns() // 1000, 11) +
            b32(random.getrandbits(30), 6) + b32(_qid_seq[0], 4))


def qid_for(c, owner):
    """A new qid whose shard node `owner` is primary of at the start."""
    while True:
        q = make_qid()
        if c.initial_owner(shard_of(q, c.shards))[0] == owner:
            return q


def map_with_primary(map_bytes, shard, epoch, author):
    """The map with primary and replica of `shard` swapped, at `epoch`."""
    out = b""
    n = 0
    for f, v in pb_fields(map_bytes):
        if f == 1 or f == 4:
            continue
        if f == 3:
            if n == shard:
                a = dict(pb_fields(v))
                v = pb_bytes(1, a.get(2, b"")) + pb_bytes(2, a.get(1, b""))
            n += 1
        out += pb_bytes(f, v)
    return pb_uint(1, epoch) + out + pb_bytes(4, author)


# ---- a router link spoken by hand ----------------------------------------

class FakeRouter:
    """A ZeroMQ DEALER (ZMTP 3.0, NULL) on a node's endpoint, sending
    RouterRequests tagged R1 (lib/wire.h) and reading NodeReplies."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.next_id = 0
        self.sock.sendall(b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" +
                          b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31)
        self._need(64)
        self.buf = self.buf[64:]
        body = (b"\x05READY\x0bSocket-Type" + (6).to_bytes(4, "big") +
                b"DEALER")
        self.sock.sendall(b"\x04" + bytes([len(body)]) + body)

    def close(self):
        self.sock.close()

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("node closed the router link")
            self.buf += chunk

    @staticmethod
    def frames(parts):
        out = b""
        for i, p in enumerate(parts):
            more = 1 if i + 1 < len(parts) else 0
            if len(p) > 255:
                out += bytes([more | 2]) + struct.pack(">Q", len(p)) + p
            else:
                out += bytes([more, len(p)]) + p
        return out

    def recv(self, timeout=10):
        """The frames of the next message (commands skipped)."""
        self.sock.settimeout(timeout)
        parts = []
        while True:
            self._need(2)
            flags = self.buf[0]
            if flags & 2:
                self._need(9)
                n, hdr = struct.unpack(">Q", self.buf[1:9])[0], 9
            else:
                n, hdr = self.buf[1], 2
            self._need(hdr + n)
            data, self.buf = self.buf[hdr:hdr + n], self.buf[hdr + n:]
            if flags & 4:
                continue
            parts.append(data)
            if not flags & 1:
                return parts

    def reply(self, request_id, timeout=10):
        """(status name, NodeReply fields) of the reply to request_id."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply to request {request_id}")
            (payload,) = self.recv(left)
            f = dict(pb_fields(payload))
            if f.get(1, 0) == request_id:
                return STATUS.get(f.get(2, 0), "?"), f

    def request_id(self):
        self.next_id += 1
        return self.next_id

    def map_request(self, offer=None):
        rid = self.request_id()
        req = (pb_uint(1, rid) + pb_bytes(3, "fake-router") +
               pb_bytes(11, pb_bytes(1, offer) if offer else b""))
        return rid, self.frames([b"R1", req])

    def enqueue_request(self, qid, epoch, shards, tag="fake"):
        """(request id, frames) of an enqueue of a small message to RCPT;
        its body carries a Received line naming the qid (the sink's dumps
        are matched on it, as the router's own are)."""
        rid = self.request_id()
        env = (pb_bytes(1, SENDER) + pb_bytes(2, pb_bytes(1, RCPT)) +
               pb_bytes(8, "127.0.0.1") + pb_bytes(9, "fake.example"))
        eq = (pb_bytes(1, qid) + pb_uint(2, shard_of(qid, shards)) +
              pb_bytes(3, env))
        req = (pb_uint(1, rid) + pb_uint(2, epoch) +
               pb_bytes(3, "fake-router") + pb_bytes(10, eq))
        body = (f"Received: from fake.example by test with ESMTP id {qid}"
                f"\r\n").encode() + make_message(tag)
        return rid, self.frames([b"R1", req, body])

    def node_map(self):
        """(epoch, packed map) of the node."""
        rid, fr = self.map_request()
        self.sock.sendall(fr)
        status, f = self.reply(rid)
        assert status == "OK", status
        return f.get(6, 0), f[5]

    def enqueue(self, qid, epoch, shards, tag="fake"):
        """Send one enqueue and wait for its answer: (status, fields)."""
        rid, fr = self.enqueue_request(qid, epoch, shards, tag)
        self.sock.sendall(fr)
        return self.reply(rid)


# ---- a cluster with an MX ----------------------------------------------

class Rig:
    """A node pair (and a router unless router=False) delivering to
    smtp-sink for example.net and example.org."""

    def __init__(self, test, replication, router=True, node_timeout_ms=None,
                 nodes=2):
        self.test = test
        d = test.tempdir("shoal-promises-")
        self.dump_dir = os.path.join(d, "sink")
        os.mkdir(self.dump_dir)
        os.chmod(self.dump_dir, 0o777)      # smtp-sink runs as nobody
        self.acks_path = os.path.join(d, "acks.txt")
        self.sink_port = free_port()
        dns = free_port(socket.SOCK_DGRAM)
        sink = f"127.0.0.1:{self.sink_port}"
        self.c = test.cluster(
            start=False, nodes=nodes, node_timeout_ms=node_timeout_ms,
            replication=f'mode = "sync"; {replication}',
            delivery="\n".join([
                '  helo_name = "mta.promises.example";',
                f'  dns_servers = [ "127.0.0.1:{dns}" ];',
                "  retry_schedule = [ 1, 2, 3 ];",
                f'  routes = ( {{ domain = "example.net"; host = "{sink}"; }},',
                f'             {{ domain = "example.org"; host = "{sink}"; }} );',
            ]))
        argv = [SMTP_SINK, "-c", "-d", os.path.join(self.dump_dir, "%H%M%S.")]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        self.c.spawn("smtp-sink", argv + [sink, "64"],
                     ready_port=self.sink_port)
        self.c.start(router=router)

    def delivered(self):
        return sink_delivered(self.dump_dir)

    def wait_delivered(self, qid, timeout=20):
        wait_for(lambda: self.delivered().get(qid), timeout,
                 f"{qid} at the sink")

    def repl_state(self, nid):
        for n in self.c.status()["nodes"]:
            if n["id"] == nid:
                return n.get("replication", {}).get("state")
        return None

    def wait_healthy(self, *nids, timeout=15):
        for nid in nids:
            wait_for(lambda: self.repl_state(nid) == "healthy", timeout,
                     f"{nid}'s pair healthy", interval=0.2)

    def log(self, nid):
        return self.c.node(nid).log_text()

    def wait_log(self, nid, text, timeout=15):
        wait_for(lambda: text in self.log(nid), timeout,
                 f"{text!r} in {nid}'s log")

    def stored_qid(self, nid, after=0):
        """The first qid `nid` logged as stored past offset `after`."""
        for line in self.log(nid)[after:].splitlines():
            if "event=stored " in line:
                return line.split("qid=")[1].split()[0]
        return None

    def owner_all(self, nid):
        """Planned failover of the other node of the pair: nid primary of
        every shard."""
        other = "n2" if nid == "n1" else "n1"
        self.c.ctl_ok("node", "failover", other)
        wait_for(lambda: set(self.c.owners().values()) == {nid}, 10,
                 f"{nid} owning every shard")


class Client(threading.Thread):
    """One message over one SMTP session, in the background: .reply is
    the reply to the end of data (or the error that ended the session)."""

    def __init__(self, c, tag, timeout=30):
        super().__init__(daemon=True)
        self.c, self.tag, self.timeout = c, tag, timeout
        self.reply = None

    def run(self):
        try:
            with SMTPConn(self.c.port, timeout=self.timeout) as s:
                s.ehlo()
                self.reply = s.mail(SENDER, [RCPT], make_message(self.tag))
        except (OSError, SMTPError) as e:
            self.reply = e

    def result(self):
        self.join(self.timeout + 5)
        self.c.test.assertFalse(self.is_alive(), "client finished")
        return self.reply


def send_one(c, tag):
    with SMTPConn(c.port) as s:
        s.ehlo()
        return s.mail(SENDER, [RCPT], make_message(tag))


class PromisesTest(ShoalTestCase):

    # ---- item 3 ----

    def test_03_require_peer_refused_message_is_not_delivered(self):
        rig = Rig(self, f"require_peer = true; {FAST}")
        c = rig.c
        rig.wait_healthy("n1", "n2")
        rig.owner_all("n1")
        rig.wait_healthy("n1")
        # the peer goes silent: no ack ever comes for what n1 stores now
        mark = len(rig.log("n1"))
        c.node("n2").send_signal(signal.SIGSTOP)
        self.addCleanup(c.node("n2").send_signal, signal.SIGCONT)
        r = send_one(c, "refused")
        self.assertEqual(r.code, 451, r)
        refused = rig.stored_qid("n1", mark)
        self.assertIsNotNone(refused, "n1 stored it before refusing")
        rig.wait_log("n1", f"qid={refused} event=withdrawn")
        # positive control: with the peer back the same path delivers
        c.node("n2").send_signal(signal.SIGCONT)
        rig.wait_healthy("n1")
        r = send_one(c, "control")
        self.assertEqual(r.code, 250, r)
        rig.wait_delivered(r.qid)
        self.assertNotIn(refused, rig.delivered(),
                         "a message answered 451 was delivered")

    # ---- item 4 ----

    def test_04_shutdown_with_an_enqueue_waiting_for_a_silent_peer(self):
        rig = Rig(self, "require_peer = true; heartbeat_ms = 200; "
                  "failover_after_ms = 6000; peer_timeout_ms = 3000;")
        c = rig.c
        rig.wait_healthy("n1", "n2")
        rig.owner_all("n1")
        rig.wait_healthy("n1")
        mark = len(rig.log("n1"))
        c.node("n2").send_signal(signal.SIGSTOP)
        self.addCleanup(c.node("n2").send_signal, signal.SIGCONT)
        client = Client(c, "in flight at shutdown")
        client.start()
        wait_for(lambda: rig.stored_qid("n1", mark), 10,
                 "n1 storing the message")
        qid = rig.stored_qid("n1", mark)
        # still waiting for the peer's ack (peer_timeout_ms is 3 s)
        self.assertNotIn(f"qid={qid} event=refused", rig.log("n1"))
        c.node("n1").send_signal(signal.SIGTERM)
        rig.wait_log("n1", "event=stopping")
        c.node("n1").send_signal(signal.SIGTERM)
        self.assertEqual(c.node("n1").wait(20), 0, "n1 exited cleanly")
        text = rig.log("n1")
        self.assertIsNone(SANITIZER_RE.search(text), "sanitizer report")
        self.assertIn("event=stopped", text)
        self.assertIn(f"qid={qid} event=withdrawn", text,
                      "the refused message was withdrawn at shutdown")
        c.node("n2").send_signal(signal.SIGCONT)

    # ---- item 15 ----

    def test_15_enqueue_overtaken_by_a_map_change_goes_to_the_new_owner(self):
        rig = Rig(self, FAST, router=False)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        fr = FakeRouter(c.node_port["n1"])
        self.addCleanup(fr.close)
        epoch, m = fr.node_map()
        qid = qid_for(c, "n1")
        shard = shard_of(qid, c.shards)
        newer = map_with_primary(m, shard, epoch + 1, "n1")
        rid, enq = fr.enqueue_request(qid, epoch, c.shards, "overtaken")
        _, offer = fr.map_request(offer=newer)
        # one write, one read on n1: the enqueue passes the ownership
        # check, then the map that gives the shard to n2 is taken before
        # the group commit stores the message
        n1 = c.node("n1")
        n1.send_signal(signal.SIGSTOP)
        try:
            fr.sock.sendall(enq + offer)
        finally:
            n1.send_signal(signal.SIGCONT)
        status, f = fr.reply(rid)
        self.assertEqual(status, "NOT_OWNER",
                         "n1 stored mail of a shard it no longer owns")
        self.assertEqual(f.get(6), epoch + 1, "the reply carries the map")
        # as the router does: to the owner the map names
        fr2 = FakeRouter(c.node_port["n2"])
        self.addCleanup(fr2.close)
        wait_for(lambda: fr2.node_map()[0] == epoch + 1, 10,
                 "n2 on the new epoch")
        status, _ = fr2.enqueue(qid, epoch + 1, c.shards, "overtaken")
        self.assertEqual(status, "OK")
        rig.wait_delivered(qid)
        self.assertIn(f"qid={qid} event=turned_away", rig.log("n1"))
        self.assertNotIn(f"qid={qid} event=stored ", rig.log("n1"))

    def test_15b_failover_and_failback_under_load_lose_nothing(self):
        rig = Rig(self, FAST, node_timeout_ms=15000)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        sender = c.spawn("tracked-sender", [
            PYTHON, SENDER_FIXTURE, "--host", "127.0.0.1", "--port",
            str(c.port), "--out", rig.acks_path, "--sessions", "4",
            "--to", RCPT, "--size", "1024"],
            ready_re=r"tracked_sender event=ready")

        def acks():
            try:
                with open(rig.acks_path, encoding="ascii") as f:
                    return [ln.split()[2] for ln in f
                            if ln.startswith("ACK ")]
            except FileNotFoundError:
                return []
        wait_for(lambda: len(acks()) >= 50, 20, "50 acks before the moves")
        for i in range(3):
            c.ctl_ok("node", "failover", "n1", timeout=60)
            n = len(acks())
            wait_for(lambda: len(acks()) >= n + 20, 20, "acks after failover")
            c.ctl_ok("node", "failback", "n1", timeout=60)
            n = len(acks())
            wait_for(lambda: len(acks()) >= n + 20, 20, "acks after failback")
        sender.stop(timeout=40)
        acked = acks()
        self.assertEqual(len(acked), len(set(acked)))
        wait_for(lambda: set(acked) <= set(rig.delivered()), 60,
                 "every acknowledged message at the sink", interval=0.5)

    # ---- item 16 ----

    def test_16_resend_of_a_delivered_message_is_a_no_op(self):
        rig = Rig(self, FAST, router=False)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        fr = FakeRouter(c.node_port["n1"])
        self.addCleanup(fr.close)
        epoch, _ = fr.node_map()
        qid = qid_for(c, "n1")
        status, _ = fr.enqueue(qid, epoch, c.shards, "once")
        self.assertEqual(status, "OK")
        rig.wait_delivered(qid)
        rig.wait_log("n1", f"qid={qid} event=removed")
        # a router's resend (its reply was lost): answered OK, not stored
        status, _ = fr.enqueue(qid, epoch, c.shards, "once")
        self.assertEqual(status, "OK")
        self.assertEqual(c.queued(qid), [], "stored again after delivery")
        # n2 takes the shards; its copy was deleted through the stream,
        # and the resend to it is a no-op too
        rig.wait_healthy("n1")
        c.ctl_ok("node", "failover", "n1")
        fr2 = FakeRouter(c.node_port["n2"])
        self.addCleanup(fr2.close)
        epoch2, _ = fr2.node_map()
        self.assertGreater(epoch2, epoch)
        status, _ = fr2.enqueue(qid, epoch2, c.shards, "once")
        self.assertEqual(status, "OK")
        self.assertEqual(c.queued(qid), [], "n2 stored a delivered qid")
        # positive control: a new message by the same path is delivered
        other = qid_for(c, "n1")
        status, _ = fr2.enqueue(other, epoch2, c.shards, "control")
        self.assertEqual(status, "OK")
        rig.wait_delivered(other)
        self.assertEqual(rig.delivered().get(qid), 1,
                         "a delivered message came back")

    # ---- item 17 ----

    def test_17_primary_back_within_the_timeout_gets_the_resend(self):
        rig = Rig(self, "heartbeat_ms = 200; failover_after_ms = 8000; "
                  "peer_timeout_ms = 3000;", node_timeout_ms=10000)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        rig.owner_all("n1")
        rig.wait_healthy("n1")
        mark = len(rig.log("n1"))
        # n1 waits for its peer's ack, so the router has no answer yet
        c.node("n2").send_signal(signal.SIGSTOP)
        self.addCleanup(c.node("n2").send_signal, signal.SIGCONT)
        client = Client(c, "killed after store", timeout=20)
        t0 = time.monotonic()
        client.start()
        wait_for(lambda: rig.stored_qid("n1", mark), 10,
                 "n1 storing the message")
        qid = rig.stored_qid("n1", mark)
        c.kill_node("n1", signal.SIGKILL)
        c.node("n2").send_signal(signal.SIGCONT)
        c.start_node("n1")
        r = client.result()
        took = time.monotonic() - t0
        self.assertFalse(isinstance(r, Exception), r)
        self.assertEqual((r.code, r.qid), (250, qid),
                         f"reply after {took:.1f}s: {r}")
        self.assertLess(took, 9.0, "answered before the router's timeout")
        rig.wait_delivered(qid)
        # positive control for "one copy": a later message delivered
        r2 = send_one(c, "after")
        self.assertEqual(r2.code, 250, r2)
        rig.wait_delivered(r2.qid)
        self.assertEqual(rig.delivered().get(qid), 1)

    # ---- follow-up: a withdrawal is no final outcome ----

    def test_18_withdrawn_message_is_stored_again_after_a_takeover(self):
        """require_peer refuses an enqueue and the primary withdraws its
        copy; the deletion reaches the replica. When the router sends the
        qid again (the refusal was lost on the way, the primary died), it
        must be stored, on the primary as on the replica after a
        takeover: not answered OK from a tombstone and never delivered."""
        rig = Rig(self, f"require_peer = true; {FAST}", router=False)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        fr = FakeRouter(c.node_port["n1"])
        self.addCleanup(fr.close)
        epoch, _ = fr.node_map()
        qid = qid_for(c, "n1")
        c.node("n2").send_signal(signal.SIGSTOP)
        self.addCleanup(c.node("n2").send_signal, signal.SIGCONT)
        status, _ = fr.enqueue(qid, epoch, c.shards, "withdrawn")
        self.assertEqual(status, "NOT_DURABLE")
        rig.wait_log("n1", f"qid={qid} event=withdrawn")
        # the resend to the primary: stored again (and refused again)
        status, _ = fr.enqueue(qid, epoch, c.shards, "withdrawn")
        self.assertEqual(status, "NOT_DURABLE")
        self.assertEqual(rig.log("n1").count(f"qid={qid} event=stored "),
                         2, "the primary did not store the resend")
        wait_for(lambda: rig.log("n1").count(
            f"qid={qid} event=withdrawn") == 2, 10, "second withdrawal")
        # the replica gets the withdrawal through the stream, then owns
        # the shard
        c.node("n2").send_signal(signal.SIGCONT)
        rig.wait_healthy("n1")
        c.ctl_ok("node", "failover", "n1")
        fr2 = FakeRouter(c.node_port["n2"])
        self.addCleanup(fr2.close)
        epoch2, _ = fr2.node_map()
        self.assertGreater(epoch2, epoch)
        status, _ = fr2.enqueue(qid, epoch2, c.shards, "withdrawn")
        self.assertEqual(status, "OK")
        self.assertIn(f"qid={qid} event=stored ", rig.log("n2"),
                      "answered OK for a message n2 does not hold")
        rig.wait_delivered(qid)
        self.assertEqual(rig.delivered().get(qid), 1)

    # ---- follow-up: a resend to a restarted node under require_peer ----

    def _resend_after_restart(self, resume_during_wait):
        """n1 stores a message its silent peer never acknowledges and is
        killed before it answers; it restarts with the peer still
        stopped and the router resends. The peer comes back during the
        node's wait, or only after its answer. Returns (client reply,
        copies at the sink, qid) once the queue has drained."""
        rig = Rig(self, "require_peer = true; heartbeat_ms = 200; "
                  "failover_after_ms = 8000; peer_timeout_ms = 2500;",
                  node_timeout_ms=15000)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        rig.owner_all("n1")
        rig.wait_healthy("n1")
        mark = len(rig.log("n1"))
        n2 = c.node("n2")
        n2.send_signal(signal.SIGSTOP)
        self.addCleanup(n2.send_signal, signal.SIGCONT)
        client = Client(c, "resent after a restart", timeout=25)
        client.start()
        wait_for(lambda: rig.stored_qid("n1", mark), 10,
                 "n1 storing the message")
        qid = rig.stored_qid("n1", mark)
        c.kill_node("n1", signal.SIGKILL)
        since = c.node("n1").log_offset()
        c.start_node("n1")
        c.node("n1").wait_log(f"qid={qid} event=stored_already", 10,
                              since=since, what="the router's resend")
        if resume_during_wait:
            n2.send_signal(signal.SIGCONT)
        r = client.result()
        self.assertFalse(isinstance(r, Exception), r)
        n2.send_signal(signal.SIGCONT)
        rig.wait_healthy("n1")
        # positive control: the same path delivers a message now
        ctl = send_one(c, "control")
        self.assertEqual(ctl.code, 250, ctl)
        rig.wait_delivered(ctl.qid)
        # the stored copy is delivered or gone: nothing more can arrive
        wait_for(lambda: c.queued(qid) == [], 30, f"{qid} out of the queue",
                 interval=0.3)
        return r, rig.delivered().get(qid, 0), qid

    def _assert_consistent(self, r, copies, qid):
        self.assertTrue(
            (r.code == 250 and copies == 1) or
            (400 <= r.code < 500 and copies == 0),
            f"client told {r.code} for {qid}, the MX got {copies} "
            f"copies")

    def test_19_resend_refused_after_a_restart_is_not_delivered(self):
        r, copies, qid = self._resend_after_restart(False)
        self._assert_consistent(r, copies, qid)
        self.assertEqual(r.code, 451, "the peer never acknowledged it")

    def test_19b_resend_after_a_restart_waits_for_the_peer(self):
        r, copies, qid = self._resend_after_restart(True)
        self._assert_consistent(r, copies, qid)
        self.assertEqual(r.code, 250, "the peer came back within "
                         "peer_timeout_ms")

    def test_19c_two_requests_for_one_qid_get_one_answer(self):
        """The same qid twice in one read while the first waits for the
        peer: the second finds it stored and gets the first's answer
        (node/queue/ingest.c, ingest_follow), and the MX one copy."""
        rig = Rig(self, "require_peer = true; heartbeat_ms = 200; "
                  "failover_after_ms = 8000; peer_timeout_ms = 2500;",
                  router=False)
        c = rig.c
        rig.wait_healthy("n1", "n2")
        fr = FakeRouter(c.node_port["n1"])
        self.addCleanup(fr.close)
        epoch, _ = fr.node_map()
        qid = qid_for(c, "n1")
        n2 = c.node("n2")
        n2.send_signal(signal.SIGSTOP)
        self.addCleanup(n2.send_signal, signal.SIGCONT)
        rid1, f1 = fr.enqueue_request(qid, epoch, c.shards, "twice")
        rid2, f2 = fr.enqueue_request(qid, epoch, c.shards, "twice")
        fr.sock.sendall(f1 + f2)
        rig.wait_log("n1", f"qid={qid} event=stored_already")
        n2.send_signal(signal.SIGCONT)
        answers = {}
        deadline = time.monotonic() + 15
        while len(answers) < 2 and time.monotonic() < deadline:
            (payload,) = fr.recv(deadline - time.monotonic())
            f = dict(pb_fields(payload))
            if f.get(1) in (rid1, rid2):
                answers[f[1]] = STATUS.get(f.get(2, 0), "?")
        self.assertEqual(answers, {rid1: "OK", rid2: "OK"})
        self.assertIn(f"qid={qid} event=follows", rig.log("n1"))
        rig.wait_delivered(qid)
        # positive control for "one copy": a later message delivered
        other = qid_for(c, "n1")
        status, _ = fr.enqueue(other, epoch, c.shards, "control")
        self.assertEqual(status, "OK")
        rig.wait_delivered(other)
        self.assertEqual(rig.delivered().get(qid), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
