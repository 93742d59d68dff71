"""Self-test of tests/e2e/tlsrig.py, the rig of test_mta_sts.py and
test_dane.py: every piece started on its own and checked with the tools a
person would use (openssl verify and s_client, curl, dig), without Shoal.
Cheap (a few seconds), so that a failure of a feature test points at the
node and not at the rig.

    python3 tests/e2e/tlsrig.py --selftest
"""

import datetime
import email.message
import gzip
import json
import os
import subprocess
import unittest

import test_delivery as td
import tlsrig
from shoaltest import ShoalTestCase, wait_for

PLAIN_IP = "127.0.0.5"       # mx1.plain-mx.test: no STARTTLS


class RigSelfTest(ShoalTestCase):

    def rig(self, peers_fn):
        """Peers on a cluster that is never started (its dir and logs
        only: no Shoal binary is needed)."""
        c = self.cluster(start=False)
        p = tlsrig.TlsPeers(self, c)
        peers_fn(p)
        p.start()
        p.adopt()
        return c, p

    # ---- certificates ----

    def test_ca(self):
        d = self.tempdir()
        ca = tlsrig.TestCA(os.path.join(d, "ca"))
        rogue = tlsrig.TestCA(os.path.join(d, "rogue"), "Rogue CA")
        good, _ = ca.leaf("good", ["mx1.dest.test", "mx2.dest.test"])
        old, _ = ca.leaf("old", ["mx1.dest.test"], expired=True)
        bad, _ = rogue.leaf("bad", ["mx1.dest.test"])
        ok, text = ca.verify(good, "mx2.dest.test")
        self.assertTrue(ok, text)
        ok, text = ca.verify(good, "other.dest.test")
        self.assertFalse(ok, "a name not among the SANs fails")
        self.assertIn("hostname mismatch", text)
        ok, text = ca.verify(old)
        self.assertFalse(ok, text)
        self.assertIn("certificate has expired", text)
        ok, text = ca.verify(bad)
        self.assertFalse(ok, text)
        self.assertIn("unable to get local issuer certificate", text)
        ok, text = rogue.verify(bad)
        self.assertTrue(ok, "the rogue CA itself is a working CA: " + text)
        h = tlsrig.spki_sha256(good)
        self.assertRegex(h, r"^[0-9a-f]{64}$")
        self.assertNotEqual(h, tlsrig.spki_sha256(bad))
        self.assertNotEqual(h, tlsrig.cert_sha256(good))

    # ---- the TLS-RPT report checks ----

    @staticmethod
    def sample_report():
        """RFC 8460 Appendix B's example, for today (UTC)."""
        day = datetime.datetime.now(datetime.timezone.utc).date()
        return {
            "organization-name": "Company-X",
            "date-range": {"start-datetime": f"{day}T00:00:00Z",
                           "end-datetime": f"{day}T23:59:59Z"},
            "contact-info": "sts-reporting@company-x.example",
            "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
            "policies": [{
                "policy": {
                    "policy-type": "sts",
                    "policy-string": ["version: STSv1", "mode: testing",
                                      "mx: *.dest.test", "max_age: 86400"],
                    "policy-domain": "dest.test",
                    "mx-host": ["*.dest.test"]},
                "summary": {"total-successful-session-count": 5326,
                            "total-failure-session-count": 303},
                "failure-details": [{
                    "result-type": "certificate-expired",
                    "sending-mta-ip": "2001:db8:abcd:0012::1",
                    "receiving-mx-hostname": "mx1.dest.test",
                    "failed-session-count": 100}, {
                    "result-type": "starttls-not-supported",
                    "sending-mta-ip": "2001:db8:abcd:0013::1",
                    "receiving-mx-hostname": "mx2.dest.test",
                    "receiving-ip": "203.0.113.56",
                    "failed-session-count": 200,
                    "additional-information": "https://reports.test/x"}, {
                    "result-type": "validation-failure",
                    "sending-mta-ip": "198.51.100.62",
                    "receiving-ip": "203.0.113.58",
                    "receiving-mx-hostname": "mx-backup.dest.test",
                    "failed-session-count": 3,
                    "failure-reason-code": "X509_V_ERR_PROXY_PATH"}]}]}

    def test_report_checks(self):
        good = self.sample_report()
        self.assertEqual(set(tlsrig.TlsDeliveryMixin.assertTlsReport(
            self, good, "dest.test")), {"sts"})
        bad = [
            ("no report-id", lambda r: r.pop("report-id")),
            ("a date", lambda r: r["date-range"].update(
                {"start-datetime": "yesterday"})),
            ("not midnight", lambda r: r["date-range"].update(
                {"start-datetime": r["date-range"]["start-datetime"]
                 .replace("00:00:00", "01:00:00")})),
            ("a count as text", lambda r: r["policies"][0]["summary"]
             .update({"total-successful-session-count": "5326"})),
            ("counts not adding up", lambda r: r["policies"][0]["summary"]
             .update({"total-failure-session-count": 304})),
            ("an unknown result", lambda r: r["policies"][0]
             ["failure-details"][0].update({"result-type": "oops"})),
            ("another domain", lambda r: r["policies"][0]["policy"]
             .update({"policy-domain": "other.test"})),
            ("a bad IP", lambda r: r["policies"][0]["failure-details"][0]
             .update({"sending-mta-ip": "mx.example"})),
        ]
        for what, spoil in bad:
            r = self.sample_report()
            spoil(r)
            with self.assertRaises(AssertionError, msg=what):
                tlsrig.check_tls_report(self, r, "dest.test")

        # RFC 8460 5.3's mail, with the report gzipped
        msg = email.message.EmailMessage()
        msg["From"] = "tlsrpt@mta.e2e.example"
        msg["To"] = "tlsrpt@reports.test"
        msg["Subject"] = "Report Domain: dest.test Submitter: e2e"
        msg["TLS-Report-Domain"] = "dest.test"
        msg["TLS-Report-Submitter"] = "e2e"
        msg.set_content("This is an aggregate TLS report.")
        msg.add_attachment(gzip.compress(json.dumps(good).encode()),
                           maintype="application", subtype="tlsrpt+gzip",
                           filename="e2e!dest.test!1!2!1.json.gz")
        msg.replace_header("Content-Type", msg["Content-Type"].replace(
            "multipart/mixed", "multipart/report") + '; report-type="tlsrpt"')
        self.assertEqual(tlsrig.report_from_mail(self, msg.as_bytes(),
                                                 "dest.test"), good)
        del msg["TLS-Report-Domain"]
        with self.assertRaises(AssertionError):
            tlsrig.report_from_mail(self, msg.as_bytes(), "dest.test")

    # ---- policy server, dnsmasq records, MX servers ----

    def curl(self, p, url_host, path, data=None, headers=()):
        """(status, content type, body) of an HTTPS request to the policy
        server, verified against the test CA."""
        port = p.sts.port
        argv = [tlsrig.CURL, "-sS", "--max-time", "10", "--cacert",
                p.ca().cert, "--resolve", f"{url_host}:{port}:127.0.0.1",
                "-o", "-", "-w", "\n%{http_code} %{content_type}"]
        for h in headers:
            argv += ["-H", h]
        if data is not None:
            argv += ["--data-binary", "@-"]
        r = subprocess.run(argv + [f"https://{url_host}:{port}{path}"],
                           input=data, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.rpartition(b"\n")
        code, _, ctype = tail.decode().partition(" ")
        return int(code), ctype, body

    def s_client(self, p, ip, name):
        """openssl s_client -starttls smtp to ip, verifying name against
        the test CA: (exit status, output)."""
        r = subprocess.run(
            [tlsrig.OPENSSL, "s_client", "-starttls", "smtp", "-connect",
             f"{ip}:{p.smtp_port}", "-servername", name, "-CAfile",
             p.ca().cert, "-verify_hostname", name, "-verify_return_error",
             "-brief"], input=b"QUIT\r\n", capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def test_policy_server_dns_and_mx(self):
        def peers(p):
            ca = p.ca()
            p.tls_capture("mx", (td.DEST_IP,),
                          ca.leaf("mx1", ["mx1.dest.test"]))
            p.tls_capture("rogue", ("127.0.0.6",),
                          p.rogue_ca().leaf("rogue", ["mx1.rogue.test"]))
            p.tls_capture("plain", (PLAIN_IP,))
            p.mta_sts("dest.test", mode="enforce", mx="mx1.dest.test")
            p.tlsrpt("dest.test", "{sts}/tlsrpt")
        c, p = self.rig(peers)
        sts = p.sts

        # dnsmasq: the TXT and A records of the policy
        def txt(name):
            a = tlsrig.dig(p.dns_port, name, "TXT", dnssec=False)
            return [r[2] for r in a["answer"] if r[1] == "TXT"]
        self.assertEqual(txt("_mta-sts.dest.test"), ['"v=STSv1; id=1"'])
        self.assertEqual(txt("_smtp._tls.dest.test"), [
            f'"v=TLSRPTv1; rua=https://{tlsrig.REPORTS_HOST}:{sts.port}'
            f'/tlsrpt"'])
        a = tlsrig.dig(p.dns_port, "mta-sts.dest.test", "A", dnssec=False)
        self.assertEqual(a["answer"], [("mta-sts.dest.test.", "A",
                                        "127.0.0.1")])

        # the policy, per Host, verified against the test CA
        code, ctype, body = self.curl(p, "mta-sts.dest.test",
                                      "/.well-known/mta-sts.txt")
        self.assertEqual((code, ctype), (200, "text/plain"))
        self.assertEqual(body.decode(), tlsrig.sts_policy(
            "enforce", "mx1.dest.test"))
        req, = sts.requests("mta-sts.dest.test")
        self.assertEqual(req["sni"], "mta-sts.dest.test", req)
        code, _, _ = self.curl(p, "mta-sts.dest.test", "/other")
        self.assertEqual(code, 404)
        # a changed policy is served at the next request
        sts.set_policy("dest.test", tlsrig.sts_policy("testing", "*.x"),
                       status=200, content_type="text/html")
        code, ctype, body = self.curl(p, "mta-sts.dest.test",
                                      "/.well-known/mta-sts.txt")
        self.assertEqual((code, ctype), (200, "text/html"))
        self.assertIn(b"mode: testing", body)
        sts.set_policy("dest.test", "gone", status=404)
        code, _, body = self.curl(p, "mta-sts.dest.test",
                                  "/.well-known/mta-sts.txt")
        self.assertEqual((code, body), (404, b"gone"))

        # a TLS-RPT POST, gzipped, kept decoded
        report = {"organization-name": "self-test", "policies": []}
        raw = json.dumps(report).encode()
        code, _, _ = self.curl(p, tlsrig.REPORTS_HOST, "/tlsrpt",
                               data=gzip.compress(raw), headers=[
                                   "Content-Type: application/tlsrpt+gzip"])
        self.assertEqual(code, 200)
        got, = sts.reports()
        self.assertTrue(got["gzip"], got)
        self.assertEqual(got["content_type"], "application/tlsrpt+gzip")
        self.assertEqual(json.loads(got["report"]), report)
        self.assertEqual(got["path"], "/tlsrpt")

        # new records after a dnsmasq restart on the same port
        old_port = p.dns_port
        p.set_txt("_mta-sts.dest.test", "v=STSv1; id=2")
        p.restart_dns()
        self.assertEqual(p.dns_port, old_port)
        self.assertEqual(txt("_mta-sts.dest.test"), ['"v=STSv1; id=2"'])
        p.procs["dnsmasq"].wait_log(r"query\[TXT\] _mta-sts\.dest\.test",
                                    5, what="dnsmasq logging queries")

        # the MX servers: verified STARTTLS, untrusted, none
        rc, text = self.s_client(p, td.DEST_IP, "mx1.dest.test")
        self.assertEqual(rc, 0, text)
        self.assertIn("Verification: OK", text)
        rc, text = self.s_client(p, "127.0.0.6", "mx1.rogue.test")
        self.assertNotEqual(rc, 0, text)
        self.assertIn("unable to get local issuer certificate", text)
        rc, text = self.s_client(p, PLAIN_IP, "mx1.plain-mx.test")
        self.assertNotEqual(rc, 0, text)
        self.assertIn("STARTTLS", text)
        self.assertEqual(p.captures[2].stats()["connections"], 1)

        # a capture restarted with TLS offers it
        p.restart_capture(p.captures[2], p.ca().leaf(
            "plain-now-tls", ["mx1.plain-mx.test"]))
        rc, text = self.s_client(p, PLAIN_IP, "mx1.plain-mx.test")
        self.assertEqual(rc, 0, text)
        self.assertIs(c.procs["peer-plain"], p.captures[2].proc)

    # ---- DNSSEC ----

    def test_dnssec(self):
        cert = {}

        def peers(p):
            cert["mx"] = p.ca().leaf("mx1", ["mx1.dane.test"])
            rig = p.dnssec()
            rig.zone("dane.test", "signed", [
                "dane.test. 5 IN MX 10 mx1.dane.test.",
                "mx1.dane.test. 5 IN A 127.0.0.20",
                rig.tlsa("mx1.dane.test", cert["mx"][0])])
            rig.zone("bogus.test", "bogus", [
                "bogus.test. 5 IN MX 10 mx1.bogus.test.",
                "mx1.bogus.test. 5 IN A 127.0.0.21"])
            rig.zone("plain.test", "insecure", [
                "plain.test. 5 IN MX 10 mx1.plain.test.",
                "mx1.plain.test. 5 IN A 127.0.0.22",
                rig.tlsa("mx1.plain.test", cert["mx"][0])])
        c, p = self.rig(peers)
        rig = p.rig
        vport = rig.port
        owner = f"_{p.smtp_port}._tcp.mx1.dane.test"

        # signed: the answer is validated (ad) and holds the cert's hash
        a = tlsrig.dig(vport, owner, "TLSA")
        self.assertEqual(a["status"], "NOERROR", a["text"])
        self.assertIn("ad", a["flags"], a["text"])
        tlsa = [r for r in a["answer"] if r[1] == "TLSA"]
        self.assertEqual(len(tlsa), 1, a["text"])
        self.assertEqual(tlsa[0][2].replace(" ", "").lower(),
                         "311" + tlsrig.spki_sha256(cert["mx"][0]))
        self.assertTrue([r for r in a["answer"] if r[1] == "RRSIG"],
                        a["text"])
        for name, qtype in (("dane.test", "MX"), ("mx1.dane.test", "A")):
            a = tlsrig.dig(vport, name, qtype)
            self.assertEqual(a["status"], "NOERROR", a["text"])
            self.assertIn("ad", a["flags"], a["text"])
        # a name the zone lacks: NXDOMAIN, proven (NSEC) and so secure
        a = tlsrig.dig(vport, "_mta-sts.dane.test", "TXT")
        self.assertEqual(a["status"], "NXDOMAIN", a["text"])
        self.assertIn("ad", a["flags"], a["text"])
        # the authoritative server answers as such, without ad
        a = tlsrig.dig(rig.auth_port, owner, "TLSA")
        self.assertIn("aa", a["flags"], a["text"])

        # a broken signature: SERVFAIL (positive control: the apex of the
        # same zone validates)
        a = tlsrig.dig(vport, "bogus.test", "SOA")
        self.assertEqual(a["status"], "NOERROR", a["text"])
        self.assertIn("ad", a["flags"], a["text"])
        a = tlsrig.dig(vport, "mx1.bogus.test", "A")
        self.assertEqual(a["status"], "SERVFAIL", a["text"])
        a = tlsrig.dig(rig.auth_port, "mx1.bogus.test", "A")
        self.assertEqual(a["status"], "NOERROR", "the authoritative server "
                         "serves it: only validation fails")

        # unsigned: answered, not validated
        a = tlsrig.dig(vport, f"_{p.smtp_port}._tcp.mx1.plain.test", "TLSA")
        self.assertEqual(a["status"], "NOERROR", a["text"])
        self.assertTrue([r for r in a["answer"] if r[1] == "TLSA"],
                        a["text"])
        self.assertNotIn("ad", a["flags"], a["text"])

        # names outside the zones: dnsmasq's, through the validator
        a = tlsrig.dig(vport, td.DEST_MX, "A")
        self.assertEqual(a["answer"], [(td.DEST_MX + ".", "A", td.DEST_IP)],
                         a["text"])
        self.assertNotIn("ad", a["flags"], a["text"])
        a = tlsrig.dig(vport, "nothing.dest.test", "A")
        self.assertEqual(a["status"], "NXDOMAIN", a["text"])

        # the delivery config points the node at the validator
        text = p.delivery()
        self.assertIn(f'dns_servers = [ "127.0.0.1:{vport}" ];', text)
        self.assertIn(f'tls_ca_file = "{p.ca().cert}";', text)
        wait_for(lambda: "validation failure" in
                 p.procs["unbound-validator"].log_text(), 5,
                 "the validator logging why bogus.test failed")


if __name__ == "__main__":
    unittest.main()
