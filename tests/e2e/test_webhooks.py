"""Delivery webhooks (docs/webhooks.md), end to end: real nodes and a
router on loopback, the MX is tests/fixtures/capture_smtpd.py reached
through delivery.routes (told by its rules file to defer or refuse some
recipients), and the webhook receiver is an http.server in this process
on a free port that checks the X-Shoal-Signature of every POST
(HMAC-SHA256 of the body) and records the events.

1. every event of a run arrives (deliveries, a deferral then its
   delivery, a bounce), each signed correctly;
2. the receiver is down (connection refused) while the senders back off
   past 30 s, then comes back and gets every event written meanwhile;
3. kill -9 of the primary once its results are committed and its events
   not yet sent (the receiver answers 503): its peer takes over and the
   events still arrive (duplicates allowed; by id, none is missing);
4. a hostile receiver (a 5 MB response, a garbage status line, a
   connection closed mid-response, a response slower than timeout_ms)
   crashes or wedges nothing: the node keeps serving, its memory stays
   bounded, the last error is shown escaped, and once the receiver
   behaves every event arrives.
5. the other event types (expired, suppressed, shaping), and a shard
   moved to another pair while its events wait (the receiver answers
   503): the new owner sends them, the old one drops its copies.
(A store too small for the backlog is tests/unit/test_webhook.c's: the
events stop at half the store, mail goes on.)
"""

import hashlib
import hmac
import json
import os
import signal
import smtplib
import socket
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shoaltest import (DOWN_MS, ShoalTestCase, free_port, make_message,
                       shard_of, wait_for)
from test_pools import Capture

DOMAIN = "hooks.test"
SECRET = "s3cret-for-e2e"
TIMEOUT = 60
FAST = ('heartbeat_ms = 200; failover_after_ms = 1500; '
        'peer_timeout_ms = 800;')


def sign(body):
    return "sha256=" + hmac.new(SECRET.encode(), body,
                                hashlib.sha256).hexdigest()


class Receiver:
    """The webhook endpoint. mode: "ok" (200), "fail" (503), or one of
    the hostile ones: "huge" (200 with a 5 MB body after the headers
    promise it... and a status that is not 2xx), "garbage" (not HTTP),
    "close" (closes mid-response), "slow" (never answers: waits until the
    node gives up at timeout_ms and hangs up).
    Every POST is counted; an accepted one has its events recorded by id
    and its signature checked (a bad one is counted, and refused)."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.mode = "ok"
        self.lock = threading.Lock()
        self.events = {}          # id -> event
        self.deliveries = []      # every event received, duplicates too
        self.posts = 0
        self.hung_up = 0          # "slow": the node gave up waiting
        self.refused = 0
        self.bad_signatures = 0
        self.names = set()
        self.server = None
        self.thread = None

    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.posts += 1
                    mode = outer.mode
                if mode == "garbage":
                    self.wfile.write(b"\x00\x01NOT HTTP AT ALL\r\n\r\n")
                    self.close_connection = True
                    return
                if mode == "close":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length:"
                                     b" 1000\r\n\r\npartial")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "slow":
                    # answer nothing: wait until the node gives up
                    # (timeout_ms) and hangs up, then count that
                    self.connection.settimeout(30)
                    try:
                        while self.connection.recv(4096):
                            pass
                    except OSError:
                        return
                    with outer.lock:
                        outer.hung_up += 1
                    self.close_connection = True
                    return
                if mode == "huge":
                    chunk = b"\x1b[31mX\x00" * 65536
                    self.send_response(500)
                    self.send_header("Content-Length",
                                     str(len(chunk) * 20))
                    self.end_headers()
                    try:
                        for _ in range(20):
                            self.wfile.write(chunk)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                ok = hmac.compare_digest(
                    self.headers.get("X-Shoal-Signature", ""), sign(body))
                if mode == "fail" or not ok:
                    with outer.lock:
                        outer.refused += 1
                        if not ok:
                            outer.bad_signatures += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"down")
                    return
                doc = json.loads(body)
                with outer.lock:
                    outer.names.add(self.headers.get("X-Shoal-Webhook"))
                    for ev in doc["events"]:
                        outer.events[ev["id"]] = ev
                        outer.deliveries.append(ev)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that hung up on a hostile answer

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def of_type(self, kind):
        with self.lock:
            return [e for e in self.events.values() if e["type"] == kind]

    def snapshot(self):
        with self.lock:
            return dict(self.events)


def webhook_conf(recv, extra=""):
    return (f'  webhooks = ( {{ name = "main"; url = "{recv.url()}"; '
            f'secret = "{SECRET}"; batch_size = 20; max_delay_ms = 200; '
            f'timeout_ms = 1000; {extra} }} );\n')


class WebhooksTest(ShoalTestCase):

    def make_cluster(self, recv, mx_rules=None, extra_hook=""):
        c = self.cluster(start=False, nodes=2, node_metrics=True,
                         replication=FAST)
        cap = Capture(self, c, rules=mx_rules or [])
        c.delivery = (f'  helo_name = "mta.e2e.example";\n'
                      f'  dns_servers = [ "127.0.0.1:{c.dead_dns_port}" ];\n'
                      f'  retry_schedule = [ 1 ];\n'
                      f'  routes = ( {{ domain = "{DOMAIN}"; '
                      f'host = "{cap.host}"; tls = "none"; }} );\n'
                      + webhook_conf(recv, extra_hook))
        c.write_config()
        cap.start()
        c.start()
        self.addCleanup(recv.stop)
        return c, cap

    def send(self, c, rcpts, sender=f"shop@{DOMAIN}"):
        """One message per recipient, each acknowledged with 250."""
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for rcpt in rcpts:
                refused = s.sendmail(sender, [rcpt],
                                     make_message(rcpt, rcpt=rcpt))
                self.assertEqual(refused, {})

    def dlog(self, c, nid):
        path = os.path.join(c.data_dir(nid), "delivery.log")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    def outcomes(self, c, rcpts):
        """(qid, rcpt, result) of every attempt of rcpts in the delivery
        logs of both nodes."""
        out = set()
        for nid in c.node_ids:
            for d in self.dlog(c, nid):
                if d.get("rcpt") in rcpts and "result" in d:
                    out.add((d["qid"], d["rcpt"], d["result"]))
        return out

    def expect_events(self, recv, outcomes):
        """Every outcome has its event at the receiver (by qid, recipient
        and type)."""
        def have():
            got = {(e.get("qid"), e.get("recipient"), e["type"])
                   for e in recv.snapshot().values()}
            missing = outcomes - got
            return not missing
        wait_for(have, TIMEOUT, f"{len(outcomes)} events at the receiver")

    def test_1_every_event_arrives_signed(self):
        recv = Receiver()
        recv.start()
        rules = [{"cmd": "RCPT", "match": "later@", "times": 1,
                  "reply": "451 4.3.0 Try again later"},
                 {"cmd": "RCPT", "match": "nobody@",
                  "reply": "550 5.1.1 No such user"}]
        c, cap = self.make_cluster(recv, rules)
        ok = [f"u{i}@{DOMAIN}" for i in range(10)]
        rcpts = ok + [f"later@{DOMAIN}", f"nobody@{DOMAIN}"]
        self.send(c, rcpts)
        want = set(ok) | {f"later@{DOMAIN}"}
        wait_for(lambda: want <= {m["rcpt_tos"][0] for m in cap.messages()},
                 TIMEOUT, "deliveries at the MX")
        outs = self.outcomes(c, set(rcpts))
        kinds = {r for _, _, r in outs}
        self.assertEqual(kinds, {"delivered", "deferred", "bounced"}, outs)
        self.expect_events(recv, outs)
        evs = recv.snapshot().values()
        bounced = [e for e in evs if e["type"] == "bounced"]
        self.assertTrue(any(e["recipient"] == f"nobody@{DOMAIN}" and
                            e["code"] == 550 and e["enhanced"] == "5.1.1"
                            for e in bounced), bounced)
        deferred = [e for e in evs if e["type"] == "deferred"]
        self.assertTrue(any(e["recipient"] == f"later@{DOMAIN}" and
                            e["code"] == 451 for e in deferred), deferred)
        for e in evs:
            for k in ("id", "type", "time", "node", "qid", "sender",
                      "recipient", "destination", "mx", "response", "code",
                      "enhanced", "attempt", "tenant", "pool", "priority"):
                self.assertIn(k, e, e)
        one = next(e for e in evs if e["recipient"] == f"u0@{DOMAIN}")
        self.assertEqual((one["sender"], one["destination"], one["attempt"],
                          one["priority"]),
                         (f"shop@{DOMAIN}", DOMAIN, 1, "normal"))
        self.assertEqual(recv.bad_signatures, 0)
        self.assertEqual(recv.names, {"main"})
        # positive control of the signature check: a changed body fails
        body = json.dumps({"events": [one]}).encode()
        self.assertNotEqual(sign(body), sign(body + b" "))
        # the metrics and the status command say the same
        wait_for(lambda: sum(c.metric(n, "shoal_webhook_events_total",
                                      webhook="main", result="sent")
                             for n in c.node_ids) >= len(outs),
                 TIMEOUT, "events counted as sent")
        wait_for(lambda: sum(c.metric(n, "shoal_webhook_backlog",
                                      webhook="main")
                             for n in c.node_ids) == 0,
                 TIMEOUT, "backlog empty")
        for n in c.node_ids:
            self.assertGreater(c.metric(
                n, "shoal_webhook_last_success_timestamp_seconds",
                webhook="main"), 0)
        doc = c.ctl_ok("webhooks", "status")
        rows = doc["webhooks"]
        self.assertEqual({r["node"] for r in rows}, set(c.node_ids))
        for r in rows:
            self.assertEqual((r["name"], r["backlog"], r["dropped"],
                              r["failures"], r["last_error"]),
                             ("main", 0, 0, 0, ""), r)
            self.assertEqual(r["sent"], c.metric(
                r["node"], "shoal_webhook_events_total", webhook="main",
                result="sent"))

    def test_2_receiver_down_then_back_gets_everything(self):
        recv = Receiver()   # not started: connection refused
        c, cap = self.make_cluster(recv)
        rcpts = [f"d{i}@{DOMAIN}" for i in range(30)]
        self.send(c, rcpts)
        wait_for(lambda: len(cap.messages()) >= 30, TIMEOUT,
                 "30 deliveries at the MX")

        def down_long():
            doc = c.ctl_ok("webhooks", "status")
            rows = [r for r in doc["webhooks"] if r["posts_failed"] > 0]
            # 1+2+4+8+16 s of backoff: the endpoint was down > 30 s
            return rows and all(r["failures"] >= 5 for r in rows) and rows
        rows = wait_for(down_long, 90, "senders backing off for 30 s")
        self.assertTrue(all(r["last_error"] for r in rows), rows)
        self.assertEqual(recv.posts, 0)
        backlog = sum(c.metric(n, "shoal_webhook_backlog", webhook="main")
                      for n in c.node_ids)
        self.assertGreaterEqual(backlog, 30)
        recv.start()
        outs = self.outcomes(c, set(rcpts))
        self.assertEqual(len(outs), 30)
        self.expect_events_long(recv, outs)
        self.assertEqual(recv.bad_signatures, 0)

    def expect_events_long(self, recv, outcomes):
        def have():
            got = {(e.get("qid"), e.get("recipient"), e["type"])
                   for e in recv.snapshot().values()}
            return outcomes <= got
        # the senders retry within their backoff (at most 60 s)
        wait_for(have, 90, f"{len(outcomes)} events after the outage")

    def test_3_kill_primary_after_commit_peer_sends_its_events(self):
        recv = Receiver()
        recv.mode = "fail"
        recv.start()
        c, cap = self.make_cluster(recv)
        rcpts = [f"k{i}@{DOMAIN}" for i in range(40)]
        self.send(c, rcpts)
        wait_for(lambda: len(cap.messages()) >= 40, TIMEOUT,
                 "40 deliveries at the MX")
        n1_qids = {d["qid"] for d in self.dlog(c, "n1")
                   if d.get("result") == "delivered"}
        self.assertTrue(n1_qids, "n1 delivered some (positive control)")
        # committed: n1 logs event=removed after the results' commit
        for q in n1_qids:
            c.node("n1").wait_log(rf"qid={q} event=removed", TIMEOUT)
        wait_for(lambda: recv.refused > 0, TIMEOUT, "n1 tried to POST")
        pending = c.metric("n1", "shoal_webhook_backlog", webhook="main")
        self.assertGreater(pending, 0, "n1 had events to send")
        c.kill_node("n1", signal.SIGKILL)
        wait_for(lambda: set(c.owners(wait_ms=DOWN_MS).values()) ==
                 {"n2"}, 30, "n2 owning every shard")
        recv.mode = "ok"
        outs = self.outcomes(c, set(rcpts))
        self.assertEqual(len(outs), 40)
        self.expect_events_long(recv, outs)
        got = recv.snapshot()
        mine = [e for e in got.values() if e["qid"] in n1_qids]
        self.assertEqual({e["node"] for e in mine}, {"n1"},
                         "n1's events, sent by n2 with their ids")
        self.assertEqual(recv.bad_signatures, 0)

    def test_4_hostile_receiver(self):
        recv = Receiver()
        recv.start()
        c, cap = self.make_cluster(recv)
        pid = c.node("n1").pid
        rss0 = rss_kb(pid)
        rcpts = []
        for i, mode in enumerate(("huge", "garbage", "close", "slow")):
            recv.mode = mode
            before = recv.posts
            batch = [f"h{i}x{j}@{DOMAIN}" for j in range(5)]
            rcpts += batch
            self.send(c, batch)
            wait_for(lambda: recv.posts > before + 1, TIMEOUT,
                     f"POSTs answered {mode}")
            doc = c.ctl_ok("webhooks", "status")
            for r in doc["webhooks"]:
                err = r["last_error"]
                self.assertTrue(all(0x20 <= ord(ch) < 0x7f for ch in err),
                                err)
                self.assertLessEqual(len(err), 200)
        self.assertTrue(c.node("n1").running() and c.node("n2").running())
        # the slow receiver saw the node give up (its timeout_ms)
        wait_for(lambda: recv.hung_up >= 1, TIMEOUT,
                 "a node hanging up on the slow receiver")
        recv.mode = "ok"
        outs = self.outcomes(c, set(rcpts))
        self.expect_events_long(recv, outs)
        self.assertLess(rss_kb(pid) - rss0, 64 * 1024,
                        "n1's memory grew by less than 64 MiB")
        self.assertEqual(recv.bad_signatures, 0)


SHAPING_RULES = """
providers = ( { name = "hookmail"; mx = [ "127.0.0.1" ]; } );
rules = (
  { name = "hookmail-rate-limited"; provider = "hookmail"; code = "421";
     enhanced = "4.7.28"; action = "suspend"; duration = 2; }
);
"""


class MoreEventsTest(ShoalTestCase):

    def test_5_expired_suppressed_shaping_and_a_shard_move(self):
        recv = Receiver()
        recv.mode = "fail"
        recv.start()
        self.addCleanup(recv.stop)
        d = self.tempdir("shoal-e2e-hooks-")
        rules_path = os.path.join(d, "shaping.rules")
        with open(rules_path, "w", encoding="utf-8") as f:
            f.write(SHAPING_RULES)
        c = self.cluster(start=False, nodes=4, node_metrics=True,
                         replication=FAST,
                         extra='suppression: { mode = "bounce"; };')
        cap = Capture(self, c, rules=[
            {"cmd": "RCPT", "match": "expire@", "reply": "451 4.3.0 later"},
            {"cmd": "RCPT", "match": "throttle@", "times": 1,
             "reply": "421 4.7.28 Our system has detected an unusual rate"
                      " of mail; rate limited"}])
        c.delivery = (f'  helo_name = "mta.e2e.example";\n'
                      f'  dns_servers = [ "127.0.0.1:{c.dead_dns_port}" ];\n'
                      f'  retry_schedule = [ 1 ];\n'
                      f'  max_queue_lifetime = 3;\n'
                      f'  shaping_rules = "{rules_path}";\n'
                      f'  routes = ( {{ domain = "{DOMAIN}"; '
                      f'host = "{cap.host}"; tls = "none"; }} );\n'
                      + webhook_conf(recv))
        c.write_config()
        cap.start()
        c.start()
        c.ctl_ok("suppress", "add", f"supp@{DOMAIN}", "--reason",
                 "550 5.1.1 gone")
        rcpts = ([f"expire@{DOMAIN}", f"supp@{DOMAIN}",
                  f"throttle@{DOMAIN}"] +
                 [f"m{i}@{DOMAIN}" for i in range(24)])
        WebhooksTest.send(self, c, rcpts)
        # every normal message delivered (after the 2 s suspension)
        want = {f"m{i}@{DOMAIN}" for i in range(24)} | {f"throttle@{DOMAIN}"}
        wait_for(lambda: want <= {r for m in cap.messages()
                                  for r in m["rcpt_tos"]},
                 TIMEOUT, "deliveries at the MX")

        def backlog(nid):
            return c.metric(nid, "shoal_webhook_backlog", webhook="main")

        # the types wait in the backlogs: expired and suppressed by their
        # message's primary, shaping by the node whose rule fired
        def typed():
            got = set()
            for nid in c.node_ids:
                for dl in WebhooksTest.dlog(self, c, nid):
                    if dl.get("event") == "shaping" or \
                            dl.get("category") == "shaping":
                        got.add("shaping")
                    if dl.get("rcpt") == f"expire@{DOMAIN}" and \
                            dl.get("result") == "bounced":
                        got.add("expired")
            return {"expired"} <= got and got
        wait_for(typed, TIMEOUT, "the expiry in the delivery log")
        # a shard with events waiting on its primary moves to the other pair
        n1_shards = [s for s, n in c.owners().items() if n == "n1"]
        qids = [dl["qid"] for dl in WebhooksTest.dlog(self, c, "n1")
                if dl.get("result") == "delivered"]
        self.assertTrue(qids, "n1 delivered some (positive control)")
        shard = shard_of(qids[0], c.shards)
        self.assertIn(shard, n1_shards)
        moved = [q for q in qids if shard_of(q, c.shards) == shard]
        wait_for(lambda: backlog("n1") > 0, TIMEOUT, "n1's backlog")
        c.ctl_ok("shard", "move", str(shard), "--to", "n3")
        wait_for(lambda: c.owners().get(shard) == "n3", 60,
                 f"shard {shard} owned by n3")
        sent_n3 = c.metric("n3", "shoal_webhook_events_total",
                           webhook="main", result="sent")
        recv.mode = "ok"
        kinds = ("delivered", "expired", "suppressed", "shaping")

        def all_kinds():
            got = recv.snapshot().values()
            have = {e["type"] for e in got}
            qs = {e.get("qid") for e in got if e["type"] == "delivered"}
            return set(kinds) <= have and set(moved) <= qs
        wait_for(all_kinds, 90, "every kind, and the moved shard's events")
        got = list(recv.snapshot().values())
        exp = [e for e in got if e["type"] == "expired"]
        self.assertEqual({e["recipient"] for e in exp}, {f"expire@{DOMAIN}"})
        sup = [e for e in got if e["type"] == "suppressed"]
        self.assertEqual({e["recipient"] for e in sup}, {f"supp@{DOMAIN}"})
        sh = [e for e in got if e["type"] == "shaping"]
        self.assertTrue(any(e.get("action") == "suspend" and
                            e.get("rule") == "hookmail-rate-limited"
                            for e in sh), sh)
        # the moved shard's events went out from n3, and n1 dropped its
        # copies (none of them waits there any more)
        wait_for(lambda: c.metric("n3", "shoal_webhook_events_total",
                                  webhook="main", result="sent") > sent_n3,
                 TIMEOUT, "n3 sent the moved shard's events")
        wait_for(lambda: sum(backlog(n) for n in c.node_ids) == 0,
                 TIMEOUT, "every backlog empty")
        self.assertEqual(recv.bad_signatures, 0)


def rss_kb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


if __name__ == "__main__":
    unittest.main()
