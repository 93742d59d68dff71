"""End-to-end tests of DANE for SMTP (RFC 7672) in delivery (issue 20):
the node's resolver is a validating unbound (tests/e2e/tlsrig.py
DnssecRig) in front of an authoritative one that serves the signed zone
dane.test and the unsigned zone plain.test. An MX host with DNSSEC-secure
TLSA records gets STARTTLS with a certificate that matches them, or
nothing (defer: never another certificate, never plain text); TLSA
records of an insecure zone are ignored (opportunistic TLS).

TLSA owners name the port the node connects to, delivery.smtp_port:
_PORT._tcp.mx1.dane.test. Checked through delivery.log ("result",
"text", "tls", "tls_policy") and what the MX servers receive.
"""

import unittest

import test_delivery as td
import tlsrig
from shoaltest import ShoalTestCase, make_message

SENDER = td.SENDER
DANE = "dane.test"
DANE_MX = "mx1.dane.test"
DANE_IP = "127.0.0.20"
GOOD = "good.dane.test"              # the control in the same zone
GOOD_MX = "mx1.good.dane.test"
GOOD_IP = "127.0.0.21"


class DaneTest(tlsrig.TlsDeliveryMixin, ShoalTestCase):

    def dane_peers(self, mx_tls=True, tlsa_cert=None, extra=None,
                   records=()):
        """peers_fn for setup(): the zone dane.test (signed): MX
        mx1.dane.test (DANE_IP), whose capture offers STARTTLS with its
        own certificate (mx_tls) or not, and TLSA 3 1 1 of tlsa_cert
        ("own": the capture's); the domain good.dane.test whose MX has a
        matching TLSA record (the positive control)."""
        def peers(p):
            ca = p.ca()
            own = ca.leaf("mx1-dane", [DANE_MX])
            good = ca.leaf("mx1-good", [GOOD_MX])
            other = ca.leaf("other", ["other.dane.test"])
            rig = p.dnssec()
            tcert = {"own": own, "other": other}[tlsa_cert or "own"]
            rig.zone(DANE, "signed", [
                f"{DANE}. 5 IN MX 10 {DANE_MX}.",
                f"{DANE_MX}. 5 IN A {DANE_IP}",
                rig.tlsa(DANE_MX, tcert[0]),
                f"{GOOD}. 5 IN MX 10 {GOOD_MX}.",
                f"{GOOD_MX}. 5 IN A {GOOD_IP}",
                rig.tlsa(GOOD_MX, good[0])] + list(records))
            p.tls_capture("mx", (DANE_IP,), own if mx_tls else None)
            p.tls_capture("good", (GOOD_IP,), good)
            if extra:
                extra(p)
        return peers

    def deliver_control(self, c, p):
        """The positive control: good.dane.test delivered under DANE."""
        rcpt = f"control@{GOOD}"
        qid = self.send(c, [rcpt], make_message("dane control",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered", timeout=30)
        self.assertEqual(line.get("tls_policy"), "dane", line)
        self.assertTrue(str(line.get("tls", "")).startswith("TLS"), line)
        cap = p.captures[1]
        self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1, 10,
                           "the control message")
        return line

    def assertDeferredUnsent(self, c, p, qid, rcpt, prefix):
        line = self.dlog_deferred(c, qid, rcpt, prefix)
        cap = p.captures[0]
        # the attempt reached the MX (connection), and no message did
        self.assertGreaterEqual(cap.stats()["connections"], 1,
                                f"the MX was connected to: {line}")
        self.assertEqual(cap.to(rcpt), [], "nothing reached the MX")
        self.assertEqual(cap.stats()["messages"], 0, "never sent")
        return line

    # ---- 1 ----

    def test_01_matching_tlsa_delivers(self):
        c, p = self.setup(self.dane_peers())
        cap = p.captures[0]
        rcpt = f"bob@{DANE}"
        qid = self.send(c, [rcpt], make_message("dane ok", sender=SENDER,
                                                rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered", timeout=30)
        self.assertEqual(line.get("tls_policy"), "dane", line)
        self.assertTrue(str(line.get("tls", "")).startswith("TLS"), line)
        self.assertEqual(line["mx"], DANE_MX, line)
        self.assertEqual(line["ip"], DANE_IP, line)
        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, "the message at the MX")
        self.assertIsNotNone(got["tls"], got)
        # the node asked the validator for the TLSA record of that port
        p.rig.validator.wait_log(
            rf"_{p.smtp_port}\._tcp\.{DANE_MX}\. TLSA IN", 5,
            what="the node's TLSA query")
        self.wait_queue_empty(c, what="after the DANE delivery")

    # ---- 1b ----

    def test_01b_dane_wins_over_mta_sts(self):
        """dane.test also publishes an enforced MTA-STS policy that names
        another MX: the host's secure TLSA records win (RFC 8461 2), the
        mail goes under DANE. Positive control: the policy was fetched
        (so it was there to lose to)."""
        def extra(p):
            p.host(f"mta-sts.{DANE}", "127.0.0.1")  # in the policy cert
            srv = p.sts_server()
            srv.set_policy(DANE, tlsrig.sts_policy(
                "enforce", "mx.elsewhere.test", 86400))
        c, p = self.setup(self.dane_peers(extra=extra, records=[
            f'_mta-sts.{DANE}. 5 IN TXT "v=STSv1; id=1"',
            f"mta-sts.{DANE}. 5 IN A 127.0.0.1"]))
        rcpt = f"both@{DANE}"
        qid = self.send(c, [rcpt], make_message("dane and sts",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered", timeout=30)
        self.assertEqual(line.get("tls_policy"), "dane", line)
        self.assertTrue(str(line.get("tls", "")).startswith("TLS"), line)
        self.assertTrue(p.sts.requests(f"mta-sts.{DANE}"),
                        "the MTA-STS policy was fetched")
        self.assertTrue(any("event=policy_fetched" in c.node(n).log_text()
                            and f"domain={DANE}" in c.node(n).log_text()
                            for n in c.node_ids), "and taken")

    # ---- 2 ----

    def test_02_tlsa_mismatch_defers(self):
        c, p = self.setup(self.dane_peers(tlsa_cert="other"))
        rcpt = f"mismatch@{DANE}"
        qid = self.send(c, [rcpt], make_message("dane mismatch",
                                                sender=SENDER, rcpt=rcpt))
        line = self.assertDeferredUnsent(c, p, qid, rcpt, "DANE")
        self.assertIn("TLSA", line["text"], line)
        self.deliver_control(c, p)

    # ---- 3 ----

    def test_03_no_starttls_with_secure_tlsa_defers(self):
        c, p = self.setup(self.dane_peers(mx_tls=False))
        rcpt = f"plain@{DANE}"
        qid = self.send(c, [rcpt], make_message("dane no starttls",
                                                sender=SENDER, rcpt=rcpt))
        line = self.assertDeferredUnsent(c, p, qid, rcpt, "DANE")
        self.assertIn("STARTTLS", line["text"], line)
        self.deliver_control(c, p)
        # still not in plain text at a later attempt
        self.dlog_match(c, qid, rcpt, lambda ln: ln.get("attempt", 0) >= 2
                        and ln.get("result") == "deferred", 20,
                        "a second deferred attempt")
        self.assertEqual(p.captures[0].stats()["messages"], 0)

    # ---- 4 ----

    def test_04_insecure_tlsa_is_ignored(self):
        # plain.test is unsigned; its TLSA record matches no certificate,
        # so a node that used it would defer
        def extra(p):
            other = p.ca().leaf("other-plain", ["x.plain.test"])
            own = p.ca().leaf("mx1-plain", ["mx1.plain.test"])
            p.rig.zone("plain.test", "insecure", [
                "plain.test. 5 IN MX 10 mx1.plain.test.",
                "mx1.plain.test. 5 IN A 127.0.0.22",
                p.rig.tlsa("mx1.plain.test", other[0])])
            p.tls_capture("plain", ("127.0.0.22",), own)
        c, p = self.setup(self.dane_peers(extra=extra))
        cap = p.captures[2]
        rcpt = "carol@plain.test"
        qid = self.send(c, [rcpt], make_message("insecure tlsa",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered", timeout=30)
        self.assertEqual(line.get("tls_policy"), "opportunistic", line)
        self.assertTrue(str(line.get("tls", "")).startswith("TLS"), line)
        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, "the message at the MX")
        self.assertIsNotNone(got["tls"], got)
        # positive control: DANE is applied where the zone is signed
        self.deliver_control(c, p)


if __name__ == "__main__":
    unittest.main()
