"""Adaptive shaping (docs/shaping.md), end to end: a rules file names a
provider by its MX host and a rule on the reply it sends when it throttles
(421 4.7.28 ... rate limited). The MX is tests/fixtures/capture_smtpd.py
(aiosmtpd) on 127.0.0.1, reached through delivery.routes, told by its
rules file to answer one RCPT with that reply. The node that receives it
suspends the provider and tells every other node (two pairs here) at once;
while the suspension lasts no node sends to the MX and what is due is held
back (deferred without an attempt); when it expires, delivery resumes and
every message arrives, none bounced. Also: the action in `shoalctl
shaping list`, /metrics and the delivery log; suspend and resume by hand;
a SIGHUP with a broken rules file keeps the rules in use; a
suspend_source rule moves a pool's mail to its other address; an
address warming up stops at its daily allowance and the pool's warm
address sends the rest.
"""

import datetime
import json
import os
import re
import signal
import smtplib
import unittest

from shoaltest import ShoalTestCase, make_message, wait_for
from test_delivery import Peers
from test_pools import Capture, dlog_lines, peer_ip

DOMAIN = "bigmail.test"
HEARTBEAT_MS = 500
SUSPEND_S = 5
TIMEOUT = 60
THROTTLE = ("421 4.7.28 [127.0.0.1] Our system has detected an unusual "
            "rate of unsolicited mail originating from your IP address. "
            "To protect our users from spam, mail sent from your IP "
            "address has been temporarily rate limited.")

RULES = f"""
providers = ( {{ name = "bigmail"; mx = [ "127.0.0.1" ]; }} );
rules = (
  {{ name = "bigmail-rate-limited"; provider = "bigmail"; code = "421";
     enhanced = "4.7.28"; action = "suspend"; duration = {SUSPEND_S}; }},
  {{ name = "bigmail-ip-deferred"; provider = "bigmail"; text = "TSS04";
     action = "suspend_source"; duration = 60; }}
);
"""


def log_time(line):
    """The unix time of a node log line (its first field, UTC)."""
    stamp = line.split(" ", 1)[0]
    return datetime.datetime.strptime(
        stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


def dlog_time(doc):
    return datetime.datetime.strptime(
        doc["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


def find_lines(text, pattern):
    return [ln for ln in text.splitlines() if re.search(pattern, ln)]


class ShapingTest(ShoalTestCase):

    def make_cluster(self, nodes, extra_delivery="", pools=None):
        d = self.tempdir("shoal-shaping-")
        self.rules_path = os.path.join(d, "shaping.rules")
        with open(self.rules_path, "w", encoding="utf-8") as f:
            f.write(RULES)
        c = self.cluster(start=False, nodes=nodes, node_metrics=True,
                         replication=f"heartbeat_ms = {HEARTBEAT_MS};")
        cap = Capture(self, c)
        body = (f'  helo_name = "mta.e2e.example";\n'
                f'  dns_servers = [ "127.0.0.1:{c.dead_dns_port}" ];\n'
                f'  retry_schedule = [ 1 ];\n'
                f'  shaping_rules = "{self.rules_path}";\n'
                f'  routes = ( {{ domain = "{DOMAIN}"; host = "{cap.host}";'
                f' tls = "none"; }} );\n')
        if pools:
            body += f"  pools = ( {pools} );\n"
        c.delivery = body + extra_delivery
        c.write_config()
        cap.start()
        c.start()
        return c, cap

    def set_mx_rules(self, cap, rules):
        tmp = cap.rules_path + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"rules": rules}, f)
        os.replace(tmp, cap.rules_path)

    def send(self, c, first, count, extra=""):
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(first, first + count):
                rcpt = f"u{i}@{DOMAIN}"
                s.sendmail("shop@sender.example", [rcpt],
                           make_message(f"m{i}", rcpt=rcpt, extra=extra))

    def wait_rcpts(self, cap, want):
        def got():
            have = {m["rcpt_tos"][0] for m in cap.messages()}
            return want <= have and have
        return wait_for(got, TIMEOUT, f"{len(want)} recipients at the MX")

    def test_1_throttle_stops_the_whole_cluster(self):
        c, cap = self.make_cluster(4)
        ids = c.node_ids
        self.send(c, 0, 20)
        self.wait_rcpts(cap, {f"u{i}@{DOMAIN}" for i in range(20)})
        # positive control: the first twenty went out from both pairs
        senders = {nid for nid in ids
                   if any(d.get("result") == "delivered"
                          for d in dlog_lines(c, nid))}
        self.assertTrue({"n1", "n2"} & senders and {"n3", "n4"} & senders,
                        f"deliveries from both pairs, got {senders}")

        # the MX throttles: one RCPT gets the provider's reply
        offsets = {nid: c.node(nid).log_offset() for nid in ids}
        self.set_mx_rules(cap, [{"cmd": "RCPT", "reply": THROTTLE,
                                 "times": 1}])
        self.send(c, 20, 40)

        # one node's rule fires; every other node hears within a heartbeat
        def fired():
            for nid in ids:
                text = c.node(nid)._log_since(offsets[nid])
                hit = find_lines(text, r"shaping event=action key=bigmail")
                if hit:
                    return nid, hit[0]
            return None
        origin, action_line = wait_for(fired, TIMEOUT, "a shaping action")
        t0 = log_time(action_line)
        self.assertIn("action=suspend", action_line)
        self.assertIn("rule=bigmail-rate-limited", action_line)
        self.assertIn("4.7.28", action_line)
        learned = {}
        for nid in ids:
            if nid == origin:
                continue
            m = c.node(nid).wait_log(
                r"[^\n]*shaping event=learned key=bigmail[^\n]*",
                TIMEOUT, since=offsets[nid], what=f"{nid} learns it")
            learned[nid] = log_time(m.group(0))
            self.assertIn(f"origin={origin}", m.group(0))
        for nid, t in learned.items():
            self.assertLessEqual(t - t0, HEARTBEAT_MS / 1000,
                                 f"{nid} learned {t - t0:.3f}s after")

        # visible while it lasts: shoalctl, /metrics
        doc = c.ctl_ok("shaping", "list")
        acts = [a for a in doc["actions"] if a["key"] == "bigmail"]
        self.assertEqual(len(acts), 1, doc)
        self.assertEqual(acts[0]["action"], "suspend")
        self.assertEqual(acts[0]["rule"], "bigmail-rate-limited")
        self.assertEqual(acts[0]["origin"], origin)
        self.assertIn("4.7.28", acts[0]["trigger"])
        for nid in ids:
            self.assertEqual(c.metric(nid, "shoal_shaping_active",
                                      action="suspend"), 1, nid)
        self.assertEqual(c.metric(origin, "shoal_shaping_actions_total",
                                  action="suspend"), 1)
        # mail that comes meanwhile is held, wherever it lands
        def held_count():
            return sum(1 for nid in ids for d in dlog_lines(c, nid)
                       if d.get("held"))
        before = held_count()
        self.send(c, 60, 5)
        wait_for(lambda: held_count() >= before + 5, TIMEOUT,
                 "5 more messages held")

        # it expires by itself, and the held mail goes out: none lost,
        # none bounced
        m = c.node(origin).wait_log(
            r"[^\n]*shaping event=expired key=bigmail[^\n]*",
            SUSPEND_S + TIMEOUT, since=offsets[origin],
            what="the suspension expires")
        t_exp = log_time(m.group(0))
        self.assertGreaterEqual(t_exp - t0, SUSPEND_S - 0.5)
        self.wait_rcpts(cap, {f"u{i}@{DOMAIN}" for i in range(65)})
        held, sent_in_window, late_held = [], [], []
        quiet_from = max(learned.values()) + 0.2
        late = {f"u{i}@{DOMAIN}" for i in range(60, 65)}
        for nid in ids:
            for d in dlog_lines(c, nid):
                if "rcpt" not in d:
                    continue
                self.assertNotEqual(d["result"], "bounced", d)
                t = dlog_time(d)
                # attempts on loopback end a few ms after they start:
                # 0.2 s of margin after the last node learned, a tenth
                # before the expiry
                if quiet_from <= t <= t_exp - 0.1:
                    (held if d.get("held") else sent_in_window).append(
                        (nid, d))
                if d["rcpt"] in late and d.get("held"):
                    late_held.append(t)
        self.assertEqual(sent_in_window, [],
                         "no node sends while the provider is suspended")
        # positive control: mail sent after every node learned was held
        # before the expiry, then delivered
        self.assertGreaterEqual(len(late_held), 5, "late mail held")
        self.assertTrue(all(t < t_exp for t in late_held), late_held)
        all_held = [(nid, d) for nid in ids for d in dlog_lines(c, nid)
                    if d.get("held")]
        self.assertGreaterEqual(len({nid for nid, _ in all_held}), 2,
                                f"held on several nodes: {all_held}")
        for _, d in all_held:
            self.assertEqual(d["result"], "deferred")
            self.assertIn("held by adaptive shaping", d["text"])
        self.assertGreater(sum(c.metric(nid, "shoal_shaping_held_total")
                               for nid in ids), 0)
        # each node's delivery log has the action
        for nid in ids:
            ev = [d for d in dlog_lines(c, nid)
                  if d.get("event") == "shaping"]
            want = "action" if nid == origin else "learned"
            self.assertTrue(any(d["shaping"] == want and
                                d["key"] == "bigmail" for d in ev),
                            f"{nid}: {ev}")
        doc = c.ctl_ok("shaping", "list")
        self.assertEqual([a for a in doc["actions"]
                          if a["key"] == "bigmail"], [])

    def test_2_by_hand_and_reload(self):
        c, cap = self.make_cluster(2)
        doc = c.ctl_ok("shaping", "suspend", DOMAIN, "--for", "10m")
        self.assertEqual(doc["key"], DOMAIN)
        self.assertEqual(doc["duration_s"], 600)
        for nid in c.node_ids:
            c.node(nid).wait_log(r"shaping event=(manual|learned) key="
                                 + re.escape(DOMAIN), TIMEOUT)
        self.send(c, 0, 3)
        # held on whichever node owns each message, nothing at the MX
        wait_for(lambda: sum(1 for nid in c.node_ids
                             for d in dlog_lines(c, nid) if d.get("held"))
                 >= 3, TIMEOUT, "3 messages held")
        self.assertEqual(cap.messages(), [])
        acts = c.ctl_ok("shaping", "list")["actions"]
        self.assertEqual([(a["key"], a["action"], a["rule"]) for a in acts],
                         [(DOMAIN, "suspend", "manual")])
        doc = c.ctl_ok("shaping", "resume", DOMAIN)
        self.assertEqual(doc["cleared"], 1, doc)
        # held mail is due again when the suspension would have ended
        # (10 min): flush brings it now
        c.ctl_ok("queue", "flush")
        self.wait_rcpts(cap, {f"u{i}@{DOMAIN}" for i in range(3)})
        self.assertEqual(c.ctl_ok("shaping", "list")["actions"], [])

        # a broken rules file on SIGHUP: logged with its line, old rules stay
        n1 = c.node("n1")
        off = n1.log_offset()
        with open(self.rules_path, "w", encoding="utf-8") as f:
            f.write(RULES + '\nrules2 = ( { name = "x" );\n')
        n1.send_signal(signal.SIGHUP)
        m = n1.wait_log(r"shaping event=bad_rules[^\n]*", TIMEOUT, since=off)
        self.assertIn(self.rules_path + ":", m.group(0))
        # positive control: a good file is taken
        off = n1.log_offset()
        with open(self.rules_path, "w", encoding="utf-8") as f:
            f.write(RULES)
        n1.send_signal(signal.SIGHUP)
        n1.wait_log(r"shaping event=rules_loaded file=" +
                    re.escape(self.rules_path) + r" providers=1 rules=2",
                    TIMEOUT, since=off)

    def test_3_suspend_source_moves_to_the_other_address(self):
        pools = ('{ name = "bulk"; addresses = ('
                 ' { address = "127.0.0.2"; }, { address = "127.0.0.3"; }'
                 ' ); }')
        c, cap = self.make_cluster(
            1, extra_delivery='  default_pool = "bulk";\n'
            '  limits = ( { domain = "*"; max_msgs_per_conn = 1; } );\n',
            pools=pools)
        self.set_mx_rules(cap, [{"cmd": "RCPT", "times": 1,
                                 "reply": "421 4.7.0 [TSS04] Messages from "
                                          "this address temporarily "
                                          "deferred due to user "
                                          "complaints"}])
        self.send(c, 0, 1)
        m = c.node("n1").wait_log(
            r"shaping event=action key=bigmail action=suspend_source "
            r"source=(127\.0\.0\.[23])", TIMEOUT)
        bad = m.group(1)
        good = "127.0.0.3" if bad == "127.0.0.2" else "127.0.0.2"
        self.send(c, 1, 6)
        msgs = self.wait_rcpts(cap, {f"u{i}@{DOMAIN}" for i in range(7)})
        msgs = cap.messages()
        self.assertEqual(len(msgs), 7)
        self.assertEqual({peer_ip(d) for d in msgs}, {good},
                         "after the action only the other address sends")
        acts = c.ctl_ok("shaping", "list")["actions"]
        self.assertEqual([(a["action"], a["source"]) for a in acts],
                         [("suspend_source", bad)])

    def test_4_warmup_address_stops_at_its_allowance(self):
        today = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d")
        pools = ('{ name = "bulk"; addresses = ('
                 f' {{ address = "127.0.0.2"; warmup_start = "{today}";'
                 ' warmup = [ 3, 30 ]; },'
                 ' { address = "127.0.0.3"; } ); }')
        c, cap = self.make_cluster(
            1, extra_delivery='  default_pool = "bulk";\n'
            '  limits = ( { domain = "*"; max_msgs_per_conn = 1; } );\n',
            pools=pools)
        self.send(c, 0, 12)
        self.wait_rcpts(cap, {f"u{i}@{DOMAIN}" for i in range(12)})
        by_src = {}
        for d in cap.messages():
            by_src[peer_ip(d)] = by_src.get(peer_ip(d), 0) + 1
        self.assertEqual(by_src, {"127.0.0.2": 3, "127.0.0.3": 9},
                         "the warming address sends its allowance, the "
                         "warm one the rest")
        c.node("n1").wait_log(r"pool=bulk source=127\.0\.0\.2 dest=bigmail "
                              r"event=warmup_allowance_spent sent=3",
                              TIMEOUT)
        # nothing waited: every message went on its first attempt
        for d in dlog_lines(c, "n1"):
            if "rcpt" in d:
                self.assertEqual((d["result"], d["attempt"]),
                                 ("delivered", 1), d)

    def test_5_only_the_provider_speaks_for_the_provider(self):
        # evil.test lists its own MX first and bigmail's host second; its
        # server answers with bigmail's throttling reply. That must not
        # suspend bigmail for the cluster: only bigmail's own host may.
        rules = """
providers = ( { name = "bigmail"; mx = [ "*.bigmail.test" ]; } );
rules = ( { name = "rate-limited"; code = "421"; enhanced = "4.7.28";
            action = "suspend"; duration = 600; } );
"""
        d = self.tempdir("shoal-shaping-")
        rules_path = os.path.join(d, "shaping.rules")
        with open(rules_path, "w", encoding="utf-8") as f:
            f.write(rules)
        c = self.cluster(start=False, nodes=1)
        peers = Peers(self, c)
        peers.mx += [("evil.test", "mx.evil.test", 10),
                     ("evil.test", "mx1.bigmail.test", 20),
                     ("victim.test", "mx1.bigmail.test", 10)]
        peers.hosts += [("mx.evil.test", "127.0.0.5"),
                        ("mx1.bigmail.test", "127.0.0.6")]
        evil = peers.capture("evil", ips=("127.0.0.5",), rules=[
            {"cmd": "RCPT", "reply": THROTTLE}])
        big = peers.capture("big", ips=("127.0.0.6",))
        peers.start()
        c.delivery = peers.delivery() + \
            f'\n  shaping_rules = "{rules_path}";'
        c.write_config()
        c.start()
        peers.adopt()
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            s.sendmail("shop@sender.test", ["u@evil.test"],
                       make_message("evil", rcpt="u@evil.test"))
        # the rule fired, for the host that replied only
        m = c.node("n1").wait_log(r"shaping event=action key=(\S+)", TIMEOUT)
        self.assertEqual(m.group(1), "mx.evil.test")
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            s.sendmail("shop@sender.test", ["v@victim.test"],
                       make_message("victim", rcpt="v@victim.test"))
        wait_for(lambda: big.to("v@victim.test"), TIMEOUT,
                 "the provider's own mail goes on")
        # positive control: the provider's own host saying it suspends it
        off = c.node("n1").log_offset()
        big.set_rules([{"cmd": "RCPT", "reply": THROTTLE, "times": 1}])
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            s.sendmail("shop@sender.test", ["w@victim.test"],
                       make_message("victim 2", rcpt="w@victim.test"))
        c.node("n1").wait_log(r"shaping event=action key=bigmail ",
                              TIMEOUT, since=off)
        self.assertEqual(len(evil.messages()), 0)


if __name__ == "__main__":
    unittest.main()
