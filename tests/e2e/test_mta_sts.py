"""End-to-end tests of MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) in
delivery (issue 20): the node looks up _mta-sts.DOMAIN, fetches the
policy from https://mta-sts.DOMAIN:delivery.mta_sts_port/.well-known/
mta-sts.txt (verified against delivery.tls_ca_file), applies it to the MX
hosts (enforce: defer, never plain text; testing: deliver and report),
keeps it while it is fresh even when the policy host is down, and counts
sessions for `shoalctl tls report DOMAIN` (--send: to the rua of
_smtp._tls.DOMAIN by https POST or by mail).

The rig is tests/e2e/tlsrig.py (test CA, policy server, dnsmasq TXT
records) on top of test_delivery.py's peers; each test has its own
cluster. Checked through delivery.log ("result", "text", "tls",
"tls_policy"), what the MX servers and the policy server receive, and
shoalctl --json.
"""

import json
import socket
import unittest

import test_delivery as td
import tlsrig
from shoaltest import ShoalTestCase, make_message, wait_for

DEST = td.DEST                       # mx1.dest.test = 127.0.0.2
DEST_MX = td.DEST_MX
DEST_IP = td.DEST_IP
SENDER = td.SENDER
POLL = td.POLL


def port_closed(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


class MtaStsTest(tlsrig.TlsDeliveryMixin, ShoalTestCase):

    # ---- helpers ----

    def mx(self, p, cert, ips=(DEST_IP, td.SENDER_IP)):
        """The capture at mx1.dest.test (and the sender's MX) with this
        certificate from the test CA (None: no STARTTLS)."""
        return p.tls_capture("mx", ips, cert)

    def good_cert(self, p, names=(DEST_MX,)):
        return p.ca().leaf("mx-good", list(names))

    def assertNothingCaptured(self, cap, rcpt):
        self.assertEqual(cap.to(rcpt), [], "nothing reached the MX")

    def warm_every_node(self, c):
        """A node that never had the policy and cannot fetch it has none
        (RFC 8461 3.3): send messages (each lands on a node by its qid's
        shard) until every node has fetched the enforced, non-matching
        policy or learned it from the one that did. Returns the (qid,
        rcpt) sent."""
        def has(n):
            text = c.node(n).log_text()
            return "event=policy_fetched" in text or \
                "event=policy_learned" in text
        sent = []
        for k in range(24):
            if all(has(n) for n in c.node_ids):
                break
            rk = f"warm{k}@{DEST}"
            qk = self.send(c, [rk], make_message("warm", sender=SENDER,
                                                 rcpt=rk))
            self.dlog_deferred(c, qk, rk, "MTA-STS: MX host")
            sent.append((qk, rk))
        for n in c.node_ids:
            self.assertTrue(has(n), f"node {n} has the policy")
        return sent

    def report_with(self, c, domain, pred, what, timeout=20):
        """Poll shoalctl tls report DOMAIN until pred(doc) holds."""
        def ok():
            rc, doc, _ = c.shoalctl("tls", "report", domain)
            return doc if rc == 0 and doc and pred(doc) else None
        try:
            return wait_for(ok, timeout, what, interval=POLL)
        except AssertionError as e:
            raise AssertionError(f"{e}; last report: "
                                 f"{c.shoalctl('tls', 'report', domain)}") \
                from None

    @staticmethod
    def sts_counts(doc):
        """(successes, failures, {result-type: count}) of the report's
        sts policies."""
        ok = bad = 0
        kinds = {}
        for pol in doc.get("policies", []):
            if pol.get("policy", {}).get("policy-type") != "sts":
                continue
            s = pol.get("summary", {})
            ok += s.get("total-successful-session-count", 0)
            bad += s.get("total-failure-session-count", 0)
            for d in pol.get("failure-details", []):
                k = d.get("result-type")
                kinds[k] = kinds.get(k, 0) + d.get("failed-session-count", 0)
        return ok, bad, kinds

    def assertDeliveredOverTls(self, c, cap, qid, rcpt, policy):
        line = self.dlog_final(c, qid, rcpt, "delivered", timeout=30)
        self.assertTrue(str(line.get("tls", "")).startswith("TLS"),
                        f"tls of {line}")
        self.assertEqual(line.get("tls_policy"), policy, line)
        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, f"{rcpt}'s copy at the MX")
        self.assertIsNotNone(got["tls"], f"the MX saw STARTTLS: {got}")
        return line

    # ---- 1 ----

    def test_01_mx_mismatch_defers_until_the_policy_changes(self):
        def peers(p):
            self.mx(p, self.good_cert(p))
            p.mta_sts(DEST, "enforce", mx="mx.elsewhere.test", policy_id="1")
        c, p = self.setup(peers)
        cap = p.captures[0]
        rcpt = f"strict@{DEST}"
        qid = self.send(c, [rcpt], make_message("mx mismatch", sender=SENDER,
                                                rcpt=rcpt))
        line = self.dlog_deferred(c, qid, rcpt, "MTA-STS")
        self.assertIn(DEST, line["text"], line)
        self.assertIn("does not match the policy", line["text"], line)
        # the policy was fetched (the reason the attempt stopped), and
        # the MX never got the message
        self.assertTrue(p.sts.requests(f"mta-sts.{DEST}"),
                        "the node fetched the policy")
        self.assertNothingCaptured(cap, rcpt)

        # a new policy (new id in DNS) that names the MX: delivered over
        # TLS, under the policy
        p.mta_sts(DEST, "enforce", mx=DEST_MX, policy_id="2")
        p.restart_dns()
        self.assertDeliveredOverTls(c, cap, qid, rcpt, "mta-sts")
        self.assertEqual(len(cap.to(rcpt)), 1, "delivered exactly once")
        self.wait_queue_empty(c, what="after the policy changed")

    # ---- 2 ----

    def test_02_matching_mx_with_valid_certificate(self):
        def peers(p):
            self.mx(p, self.good_cert(p))
            p.mta_sts(DEST, "enforce", mx=["mx9.dest.test", "*.dest.test"])
        c, p = self.setup(peers)
        cap = p.captures[0]
        rcpt = f"ok@{DEST}"
        qid = self.send(c, [rcpt], make_message("mta-sts ok", sender=SENDER,
                                                rcpt=rcpt))
        line = self.assertDeliveredOverTls(c, cap, qid, rcpt, "mta-sts")
        self.assertEqual(line["mx"], DEST_MX, line)
        req = p.sts.requests(f"mta-sts.{DEST}")
        self.assertTrue(req, "the policy was fetched")
        self.assertEqual(req[0]["sni"], f"mta-sts.{DEST}",
                         f"SNI names the policy host: {req[0]}")
        self.assertEqual(req[0]["path"], "'/.well-known/mta-sts.txt'",
                         req[0])
        self.wait_queue_empty(c, what="after the delivery")

    # ---- 3 ----

    def test_03_enforce_without_starttls_defers(self):
        def peers(p):
            self.mx(p, None)
            p.mta_sts(DEST, "enforce", mx=DEST_MX)
        c, p = self.setup(peers)
        cap = p.captures[0]
        rcpt = f"nostarttls@{DEST}"
        qid = self.send(c, [rcpt], make_message("no starttls",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_deferred(c, qid, rcpt, "MTA-STS")
        self.assertIn("STARTTLS", line["text"], line)
        # positive control: the node did talk to this MX
        self.assertGreaterEqual(cap.stats()["connections"], 1,
                                "the MX was connected to")
        self.assertNothingCaptured(cap, rcpt)
        self.assertEqual(cap.stats()["messages"], 0,
                         "never sent in plain text")
        # the queue's record says which policy held it back
        def recorded():
            rs = [r for r in c.queue_show(qid)["recipients"]
                  if r["address"] == rcpt]
            return rs[0] if rs and rs[0].get("last_tls_policy") else None
        r = wait_for(recorded, 10, "last_tls_policy in queue show",
                     interval=POLL)
        self.assertEqual(r["last_tls_policy"], "mta-sts", r)
        self.assertEqual(r["last_tls"], "", r)

    # ---- 4 ----

    def test_04_enforce_with_bad_certificates_defers(self):
        # dest.test: an untrusted CA; wrong.test: a certificate for
        # another name; old.test: expired; good.test: the control
        bad = {}

        def peers(p):
            ca = p.ca()
            certs = {
                DEST: p.rogue_ca().leaf("mx-rogue", [DEST_MX]),
                "wrong.test": ca.leaf("mx-wrong", ["other-name.test"]),
                "old.test": ca.leaf("mx-old", ["mx1.old.test"],
                                    expired=True),
                "good.test": ca.leaf("mx-good", ["mx1.good.test"]),
            }
            for i, (dom, cert) in enumerate(sorted(certs.items())):
                host = f"mx1.{dom}"
                ip = DEST_IP if dom == DEST else f"127.0.0.{11 + i}"
                if dom != DEST:
                    p.mx.append((dom, host, 10))
                    p.host(host, ip)
                bad[dom] = p.tls_capture(f"mx-{dom.split('.')[0]}", (ip,),
                                         cert)
                p.mta_sts(dom, "enforce", mx=host)
        c, p = self.setup(peers)
        sent = {}
        for dom in bad:
            rcpt = f"cert@{dom}"
            sent[dom] = (self.send(c, [rcpt], make_message(
                f"cert test {dom}", sender=SENDER, rcpt=rcpt)), rcpt)
        # the control first: the CA file and the rig work
        q, rcpt = sent["good.test"]
        self.assertDeliveredOverTls(c, bad["good.test"], q, rcpt, "mta-sts")
        for dom in (DEST, "wrong.test", "old.test"):
            q, rcpt = sent[dom]
            line = self.dlog_deferred(c, q, rcpt, "MTA-STS: certificate")
            self.assertGreaterEqual(bad[dom].stats()["connections"], 1,
                                    f"{dom}'s MX was connected to")
            self.assertNothingCaptured(bad[dom], rcpt)
            self.assertEqual(bad[dom].stats()["messages"], 0, line)

    # ---- 5 ----

    def test_05_testing_mode_delivers_in_plain_text_and_reports(self):
        def peers(p):
            self.mx(p, None)
            p.mta_sts(DEST, "testing", mx=DEST_MX)
        c, p = self.setup(peers)
        cap = p.captures[0]
        rcpt = f"testing@{DEST}"
        qid = self.send(c, [rcpt], make_message("testing mode",
                                                sender=SENDER, rcpt=rcpt))
        line = self.dlog_final(c, qid, rcpt, "delivered")
        self.assertEqual(line.get("tls_policy"), "mta-sts-testing", line)
        self.assertFalse(line.get("tls"), f"plain text: {line}")
        got, = self.wait_captured(cap, lambda m: rcpt in m["rcpt_tos"], 1,
                                  10, "the message at the MX")
        self.assertIsNone(got["tls"], got)
        doc = self.report_with(
            c, DEST, lambda d: self.sts_counts(d)[1] >= 1,
            "a failure in the TLS report")
        self.assertTlsReport(doc, DEST)
        ok, failed, kinds = self.sts_counts(doc)
        self.assertGreaterEqual(failed, 1, doc)
        self.assertIn("starttls-not-supported", kinds, doc)
        pol = self.assertTlsReport(doc, DEST)["sts"]
        self.assertIn("mode: testing", pol["policy"]["policy-string"], pol)

    # ---- 6 ----

    def test_06_cached_policy_outlives_the_policy_host(self):
        def peers(p):
            self.mx(p, self.good_cert(p))
            p.mta_sts(DEST, "enforce", mx="mx.elsewhere.test",
                      max_age=86400, policy_id="1")
        c, p = self.setup(peers)
        cap = p.captures[0]
        r1 = f"first@{DEST}"
        q1 = self.send(c, [r1], make_message("cached 1", sender=SENDER,
                                             rcpt=r1))
        first = self.dlog_deferred(c, q1, r1, "MTA-STS: MX host")
        self.assertTrue(p.sts.requests(f"mta-sts.{DEST}"), "fetched once")
        warm = [(q1, r1)] + self.warm_every_node(c)

        # the policy host goes away, and DNS announces a new policy id:
        # the fetch fails, the cached (fresh) policy still applies
        p.sts.stop()
        self.assertTrue(port_closed(p.sts.port), "the policy host is down")
        dns = p.procs["dnsmasq"]
        p.mta_sts(DEST, "enforce", mx=DEST_MX, policy_id="2")
        since = dns.log_offset()
        p.restart_dns()
        r2 = f"second@{DEST}"
        q2 = self.send(c, [r2], make_message("cached 2", sender=SENDER,
                                             rcpt=r2))
        dns.wait_log(r"query\[TXT\] _mta-sts\.dest\.test", 20, since=since,
                     what="the node looking up the new policy id")
        line = self.dlog_deferred(c, q2, r2, "MTA-STS: MX host")
        self.assertEqual(line["text"], first["text"],
                         "the same policy reason (not DNS, not the fetch)")
        self.assertNothingCaptured(cap, r1)
        self.assertNothingCaptured(cap, r2)

        # positive control: the host back with the new policy (the
        # matching one set above), both are delivered
        p.sts.restart()
        p.mta_sts(DEST, "enforce", mx=DEST_MX, policy_id="3")
        p.restart_dns()
        for q, r in warm + [(q2, r2)]:
            self.assertDeliveredOverTls(c, cap, q, r, "mta-sts")

    # ---- 6b ----

    def test_06b_cached_policy_survives_a_restart(self):
        """The cache is in the node's store: after kill -9 and a restart,
        with the policy host down, the enforced policy still holds."""
        def peers(p):
            self.mx(p, self.good_cert(p))
            p.mta_sts(DEST, "enforce", mx="mx.elsewhere.test",
                      max_age=86400, policy_id="7")
        c, p = self.setup(peers)
        cap = p.captures[0]
        r1 = f"first@{DEST}"
        q1 = self.send(c, [r1], make_message("restart 1", sender=SENDER,
                                             rcpt=r1))
        self.dlog_deferred(c, q1, r1, "MTA-STS: MX host")
        self.warm_every_node(c)
        # a later deferral of the first message: the commits after the
        # policy's (group commit runs in order) are done
        wait_for(lambda: sum(1 for ln in self.dlog(c, q1)
                             if ln["rcpt"] == r1) >= 3, 20,
                 "the first message deferred three times", interval=POLL)
        p.sts.stop()
        self.assertTrue(port_closed(p.sts.port), "the policy host is down")
        for n in c.node_ids:
            c.kill_node(n)
        for n in c.node_ids:
            c.start_node(n)
        r2 = f"after@{DEST}"
        q2 = self.send(c, [r2], make_message("restart 2", sender=SENDER,
                                             rcpt=r2))
        line = self.dlog_deferred(c, q2, r2, "MTA-STS: MX host")
        self.assertEqual(line["tls_policy"], "mta-sts", line)
        self.assertNothingCaptured(cap, r2)
        # the restarted nodes took the stored policy (the same id): no
        # fetch was even tried
        for n in c.node_ids:
            text = c.node(n).log_text()
            restart = text.rfind("event=ready")
            self.assertNotIn("event=fetch_failed", text[restart:],
                             f"node {n} used its stored policy")
        # positive control: a matching policy under a new id is fetched
        # once the host is back, and the mail goes
        p.sts.restart()
        p.mta_sts(DEST, "enforce", mx=DEST_MX, policy_id="8")
        p.restart_dns()
        self.assertDeliveredOverTls(c, cap, q2, r2, "mta-sts")

    # ---- 6c ----

    def test_06c_a_fetched_policy_reaches_every_node(self):
        """One node fetches the policy and tells the others: with the TXT
        record gone and the policy host down afterwards, mail on every
        node is still held to it (none sent in plain text), though only
        one node ever fetched."""
        def peers(p):
            self.mx(p, None)                 # no STARTTLS: plain if lost
            p.mta_sts(DEST, "enforce", mx=DEST_MX, max_age=86400,
                      policy_id="5")
        c, p = self.setup(peers)
        cap = p.captures[0]
        r1 = f"first@{DEST}"
        q1 = self.send(c, [r1], make_message("spread 1", sender=SENDER,
                                             rcpt=r1))
        self.dlog_deferred(c, q1, r1, "MTA-STS")
        fetched = [n for n in c.node_ids
                   if "event=policy_fetched" in c.node(n).log_text()]
        self.assertEqual(len(fetched), 1, "one node fetched")
        for n in c.node_ids:
            if n not in fetched:
                c.node(n).wait_log(r"sts domain=dest\.test "
                                   r"event=policy_learned id=5", 10,
                                   what=f"{n} learning the policy")
        # the attacker: no TXT record, no policy host
        p.sts.stop()
        p.set_txt(f"_mta-sts.{DEST}", None)
        p.restart_dns()
        sent, nodes = [], set()
        for k in range(24):
            rk = f"after{k}@{DEST}"
            qk = self.send(c, [rk], make_message("spread", sender=SENDER,
                                                 rcpt=rk))
            self.dlog_deferred(c, qk, rk, "MTA-STS")
            sent.append(rk)
            nodes.add(c.owner_of(qk))
            if nodes == set(c.node_ids):
                break
        self.assertEqual(nodes, set(c.node_ids), "mail on every node")
        for r in sent + [r1]:
            self.assertNothingCaptured(cap, r)
        self.assertEqual(cap.stats()["messages"], 0, "nothing in plain")
        for n in c.node_ids:
            if n not in fetched:
                self.assertNotIn("event=policy_fetched",
                                 c.node(n).log_text(), f"{n} never fetched")

    # ---- 7 ----

    def test_07_tls_report_json_and_https_send(self):
        def peers(p):
            self.mx(p, None)                 # first without STARTTLS
            p.mta_sts(DEST, "testing", mx=DEST_MX)
            p.tlsrpt(DEST, "{sts}/tlsrpt")
        c, p = self.setup(peers)
        cap = p.captures[0]
        r1 = f"plain@{DEST}"
        q1 = self.send(c, [r1], make_message("report 1", sender=SENDER,
                                             rcpt=r1))
        self.dlog_final(c, q1, r1, "delivered")
        # the same MX now with a valid certificate: a success
        p.restart_capture(cap, self.good_cert(p))
        r2 = f"tls@{DEST}"
        q2 = self.send(c, [r2], make_message("report 2", sender=SENDER,
                                             rcpt=r2))
        self.assertDeliveredOverTls(c, cap, q2, r2, "mta-sts-testing")

        doc = self.report_with(
            c, DEST, lambda d: self.sts_counts(d)[0] >= 1 and
            self.sts_counts(d)[1] >= 1, "a success and a failure reported")
        pol = self.assertTlsReport(doc, DEST)["sts"]
        ok, failed, kinds = self.sts_counts(doc)
        self.assertIn("starttls-not-supported", kinds, doc)
        detail = [d for d in pol["failure-details"]
                  if d["result-type"] == "starttls-not-supported"][0]
        self.assertEqual(detail.get("receiving-mx-hostname", "").rstrip("."),
                         DEST_MX, detail)
        if "receiving-ip" in detail:
            self.assertEqual(detail["receiving-ip"], DEST_IP, detail)
        self.assertEqual(pol["policy"]["policy-domain"], DEST)
        self.assertIn(f"mx: {DEST_MX}", pol["policy"]["policy-string"], pol)

        # each node sends its own report (its sessions): together they
        # are the cluster's, the one shown
        rc, res, err = c.shoalctl("tls", "report", DEST, "--send")
        self.assertEqual(rc, 0, err)
        senders = [x["node"] for x in res["nodes"] if x["sent"]]
        self.assertTrue(senders, res)
        posts = wait_for(lambda: len(p.sts.reports()) >= len(senders) and
                         p.sts.reports(), 20,
                         "every node's report POSTed to the rua",
                         interval=POLL)
        self.assertEqual(len(posts), len(senders), posts)
        total_ok = total_failed = 0
        for got in posts:
            self.assertEqual(got["path"], "/tlsrpt", got)
            self.assertEqual(got["host"], tlsrig.REPORTS_HOST, got)
            self.assertEqual(
                got["content_type"].split(";")[0].strip().lower(),
                "application/tlsrpt+gzip", got)
            self.assertTrue(got["gzip"], f"a gzip body: {got}")
            sent = json.loads(got["report"].decode("utf-8"))
            self.assertTlsReport(sent, DEST)
            total_ok += self.sts_counts(sent)[0]
            total_failed += self.sts_counts(sent)[1]
        self.assertEqual((total_ok, total_failed), (ok, failed),
                         "the reports sent add up to the one shown")

    # ---- 8 ----

    def test_08_tls_report_by_mail(self):
        def peers(p):
            self.mx(p, None)
            p.mx.append(("reports.test", "mx.reports.test", 10))
            p.host("mx.reports.test", td.SENDER_IP)
            p.mta_sts(DEST, "testing", mx=DEST_MX)
            p.tlsrpt(DEST, "mailto:tlsrpt@reports.test")
        c, p = self.setup(peers)
        cap = p.captures[0]
        rcpt = f"plain@{DEST}"
        qid = self.send(c, [rcpt], make_message("report by mail",
                                                sender=SENDER, rcpt=rcpt))
        self.dlog_final(c, qid, rcpt, "delivered")
        doc = self.report_with(c, DEST, lambda d: self.sts_counts(d)[1] >= 1,
                               "the failure reported")
        rc, res, err = c.shoalctl("tls", "report", DEST, "--send")
        self.assertEqual(rc, 0, err)
        senders = [x["node"] for x in res["nodes"] if x["sent"]]
        self.assertTrue(senders, res)
        mails = self.wait_captured(
            cap, lambda m: "tlsrpt@reports.test" in m["rcpt_tos"],
            len(senders), 20, "every node's report mail at reports.test's MX")
        ok = failed = 0
        kinds = {}
        for got in mails:
            sent = tlsrig.report_from_mail(self, got["content"], DEST)
            self.assertTlsReport(sent, DEST)
            o, f, k = self.sts_counts(sent)
            ok, failed = ok + o, failed + f
            for name, n in k.items():
                kinds[name] = kinds.get(name, 0) + n
        self.assertEqual((ok, failed, kinds), self.sts_counts(doc))
        self.assertIn("starttls-not-supported", kinds)


if __name__ == "__main__":
    unittest.main()
