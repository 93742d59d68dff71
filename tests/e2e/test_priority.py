"""Priorities (docs/shaping.md, "Priorities and tenants"), end to end: a
campaign of 20,000 bulk messages (router.pool_rules classify its sender's
domain as bulk) waits at a destination limited to one message a second
(delivery.limits); a password reset to the same destination, marked
X-Shoal-Priority: high by a trusted client, overtakes the whole campaign:
it is the next message the destination gets, within 2 s of its 250. The
MX is tests/fixtures/capture_smtpd.py through delivery.routes; the
campaign comes from Postfix's smtp-source.
"""

import datetime
import smtplib
import unittest

from shoaltest import ShoalTestCase, make_message, wait_for
from test_pools import Capture, dlog_lines

DOMAIN = "bigmail.test"
BULK = 20000
TIMEOUT = 60
SMTP_SOURCE = "/usr/sbin/smtp-source"


def dlog_time(doc):
    return datetime.datetime.strptime(
        doc["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


class PriorityTest(ShoalTestCase):

    def start(self, pool_rules, delivery_extra):
        """One node, the router's pool_rules (raw entries), the MX route
        and delivery_extra; returns the cluster and its capture MX."""
        c = self.cluster(start=False, nodes=1, node_metrics=True,
                         router_extra=f"pool_rules = ( {pool_rules} );")
        cap = Capture(self, c)
        c.delivery = (
            f'  helo_name = "mta.e2e.example";\n'
            f'  dns_servers = [ "127.0.0.1:{c.dead_dns_port}" ];\n'
            f'  routes = ( {{ domain = "{DOMAIN}"; host = "{cap.host}";'
            f' tls = "none"; }} );\n' + delivery_extra)
        c.write_config()
        cap.start()
        c.start()
        return c, cap

    def test_1_high_priority_overtakes_a_throttled_campaign(self):
        c, cap = self.start(
            '{ sender_domain = "campaign.example"; priority = "bulk"; '
            'tenant = "campaign"; }',
            f'  limits = ( {{ domain = "*"; }}, {{ domain = "{DOMAIN}";'
            f' max_msgs_per_sec = 1.0; }} );\n')

        src = c.spawn("smtp-source", [
            SMTP_SOURCE, "-s", "20", "-m", str(BULK), "-l", "512",
            "-f", "news@campaign.example", "-t", f"reader@{DOMAIN}",
            f"127.0.0.1:{c.port}"])
        wait_for(lambda: src.popen.poll() is not None, 300,
                 "smtp-source to send the campaign")
        self.assertEqual(src.popen.returncode, 0, src.log_text()[-2000:])
        wait_for(lambda: c.metric("n1", "shoal_messages_stored_total")
                 >= BULK, TIMEOUT, f"{BULK} messages stored")
        # positive control: the campaign goes out, one a second
        wait_for(lambda: len(cap.messages()) >= 2, TIMEOUT,
                 "the campaign reaching the MX")

        # the same sender domain, so the same tenant as the campaign (by
        # the rule): only its class sets it apart
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            msg = make_message("Your password reset",
                               sender="reset@campaign.example",
                               rcpt=f"vip@{DOMAIN}",
                               extra="X-Shoal-Priority: high\r\n")
            s.sendmail("reset@campaign.example", [f"vip@{DOMAIN}"], msg)
            t_250 = datetime.datetime.now(
                datetime.timezone.utc).timestamp()

        def vip_line():
            for d in dlog_lines(c, "n1"):
                if d.get("rcpt") == f"vip@{DOMAIN}" and \
                        d["result"] == "delivered":
                    return d
            return None
        vip = wait_for(vip_line, TIMEOUT, "the high-priority message")
        t_vip = dlog_time(vip)
        self.assertLessEqual(t_vip - t_250, 2.0,
                             f"delivered {t_vip - t_250:.2f}s after its 250")
        # it took the first message the throttle allowed once it was at
        # the destination: at most the one whose turn came while it was
        # on its way there (scheduler, route) went first
        bulk_between = [d for d in dlog_lines(c, "n1")
                        if d.get("rcpt") == f"reader@{DOMAIN}" and
                        d["result"] == "delivered" and
                        t_250 < dlog_time(d) < t_vip]
        self.assertLessEqual(len(bulk_between), 1,
                             "no bulk message went first")
        # the campaign was really there, and still is
        got = [m for m in cap.messages()
               if m["rcpt_tos"] == [f"vip@{DOMAIN}"]]
        self.assertEqual(len(got), 1)
        self.assertNotIn(b"x-shoal-priority", got[0]["content"].lower(),
                         "the header is removed")
        depth = c.metric("n1", "shoal_queue_messages")
        self.assertGreater(depth, BULK - 100,
                           "the campaign is still queued behind it")

    def test_2_tenants_progress_in_proportion_to_their_limits(self):
        c, cap = self.start(
            '{ sender_domain = "big.example"; tenant = "big"; }, '
            '{ sender_domain = "small.example"; tenant = "small"; }',
            f'  tenant_limits = ( {{ tenant = "big"; domain = "*";'
            f' max_msgs_per_sec = 4.0; }}, {{ tenant = "small";'
            f' domain = "*"; max_msgs_per_sec = 2.0; }} );\n')
        # ten times the volume for big, sent first
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(100):
                s.sendmail("news@big.example", [f"b{i}@{DOMAIN}"],
                           make_message(f"b{i}", rcpt=f"b{i}@{DOMAIN}"))
            for i in range(10):
                s.sendmail("news@small.example", [f"s{i}@{DOMAIN}"],
                           make_message(f"s{i}", rcpt=f"s{i}@{DOMAIN}"))

        def delivered(prefix):
            return sorted(dlog_time(d) for d in dlog_lines(c, "n1")
                          if d.get("result") == "delivered" and
                          d["rcpt"].startswith(prefix))
        # small is not starved behind big's backlog: its ten go at its
        # own pace while big goes at twice that
        small = wait_for(lambda: len(delivered("s")) == 10 and
                         delivered("s"), TIMEOUT, "small's 10 messages")
        start = min(small[0], delivered("b")[0])
        window = small[-1] - start
        big_in_window = [t for t in delivered("b") if t <= small[-1]]
        self.assertGreaterEqual(window, 3.0,
                                f"small's limit paced it: {window:.2f}s")
        ratio = len(big_in_window) / 10
        self.assertTrue(1.4 <= ratio <= 2.8,
                        f"big {len(big_in_window)} vs small 10 in "
                        f"{window:.2f}s: ratio {ratio:.2f}, want about 2")
        self.assertLess(len(big_in_window), 100, "big still had a backlog")
        # each tenant's counts in /metrics
        wait_for(lambda: c.metric("n1", "shoal_tenant_deliveries_total",
                                  tenant="small", result="delivered") == 10,
                 TIMEOUT, "small's counter")
        self.assertGreaterEqual(
            c.metric("n1", "shoal_tenant_deliveries_total", tenant="big",
                     result="delivered"), len(big_in_window))
        wait_for(lambda: len(delivered("b")) == 100, TIMEOUT,
                 "big's 100 messages, in the end")

    def test_3_a_slow_tenant_holds_up_no_other(self):
        # a tenant allowed one message in 1000 s waits; another tenant at
        # the same destination goes at its own pace meanwhile (the long
        # wake of the one must not put off the other's short ones), and
        # the slow one's backlog past 100 waiting is held back, not kept
        # in memory
        c, cap = self.start(
            '{ sender_domain = "slow.example"; tenant = "slow"; }, '
            '{ sender_domain = "fast.example"; tenant = "fast"; }',
            f'  tenant_limits = ( {{ tenant = "slow"; domain = "*";'
            f' max_msgs_per_sec = 0.001; }}, {{ tenant = "fast";'
            f' domain = "*"; max_msgs_per_sec = 2.0; }} );\n')
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(103):
                s.sendmail("a@slow.example", [f"s{i}@{DOMAIN}"],
                           make_message(f"s{i}", rcpt=f"s{i}@{DOMAIN}"))
        wait_for(lambda: len(cap.messages()) == 1, TIMEOUT,
                 "the slow tenant's first message")
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(10):
                s.sendmail("a@fast.example", [f"f{i}@{DOMAIN}"],
                           make_message(f"f{i}", rcpt=f"f{i}@{DOMAIN}"))
        wait_for(lambda: sum(1 for m in cap.messages()
                             if m["rcpt_tos"][0].startswith("f")) == 10,
                 TIMEOUT, "the fast tenant's 10 at 2/s")
        self.assertEqual(sum(1 for m in cap.messages()
                             if m["rcpt_tos"][0].startswith("s")), 1,
                         "the slow one kept to its limit")
        held = [d for d in dlog_lines(c, "n1")
                if d.get("held") and "tenant slow" in d["text"]]
        self.assertGreaterEqual(len(held), 1, "its backlog held back")


if __name__ == "__main__":
    unittest.main()
