"""End-to-end tests of DKIM signing at the router (RFC 6376, RFC 8463).

Keys come from `shoalctl dkim keygen` (RSA 2048 and Ed25519), their TXT
records are served by a real dnsmasq on a high port of 127.0.0.1, mail
goes client -> shoal-router -> shoal-node -> tests/fixtures/capture_smtpd.py
(the MX of dest.test), and every delivered message is checked with
Debian's python3-dkim, which looks the keys up in that dnsmasq through
dnspython. Each signature of a message is verified on its own
(dkim.DKIM(msg).verify(idx=i)). A message changed after delivery must
fail, so the check itself can fail.

Domains: signed.test has an RSA (relaxed/relaxed) and an Ed25519
(simple/relaxed) key; simple.test an RSA key with simple/simple, x= and
its own header list; nokey.test none.
"""

import json
import os
import signal
import subprocess
import time

import dkim
import dns.resolver

from shoaltest import SMTPConn, ShoalTestCase, bin_path, wait_for
from test_delivery import Peers

DEST = "dest.test"
TIMEOUT = 60          # delivery of the whole batch

KEYS = [  # domain, selector, type, canonicalization, extra entry text
    ("signed.test", "rsa1", "rsa", "relaxed/relaxed", ""),
    ("signed.test", "ed1", "ed25519", "simple/relaxed", ""),
    ("simple.test", "rsa2", "rsa", "simple/simple",
     'expire = 3600; headers = [ "From", "To", "Subject", "Date", '
     '"Message-ID", "Content-Type" ];'),
]


class DkimPeers(Peers):
    """Peers whose dnsmasq also serves TXT records (name, [strings])."""

    def __init__(self, test, c, txt):
        super().__init__(test, c)
        self.txt = txt

    def proc(self, name, argv):
        if name == "dnsmasq":
            argv = argv + [f"--txt-record={n},{','.join(s)}"
                           for n, s in self.txt]
        return super().proc(name, argv)


def message(sender, rcpt, subject, body, headers=b""):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return (f"From: Sender <{sender}>\r\nTo: <{rcpt}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: Mon, 30 Nov 2026 00:00:00 +0000\r\n"
            f"Message-ID: <{rcpt.split('@')[0]}@e2e.test>\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n").encode() + \
        headers + b"\r\n" + body


def signatures(msg):
    """The DKIM-Signature fields of a message, in order, each as a dict
    of its tags (whitespace removed)."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    out = []
    for f in fields:
        if not f.lower().startswith(b"dkim-signature:"):
            continue
        tags = {}
        for part in f.split(b":", 1)[1].split(b";"):
            if b"=" in part:
                k, v = part.split(b"=", 1)
                tags[k.strip().decode()] = b"".join(v.split()).decode()
        out.append(tags)
    return out


class DkimTest(ShoalTestCase):

    def setUp(self):
        self.dir = self.tempdir("shoal-e2e-dkim-")

    def keygen(self, domain, selector, ktype):
        path = os.path.join(self.dir, f"{selector}.{domain}.pem")
        r = subprocess.run([bin_path("shoalctl"), "--json", "dkim",
                            "keygen", domain, selector, "--type", ktype,
                            "--out", path], capture_output=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(doc["key_file"], path)
        self.assertTrue(all(len(s) <= 255 for s in doc["txt_strings"]))
        return doc

    def setup_cluster(self, router_extra="", **kw):
        entries, txt = [], []
        for domain, sel, ktype, canon, extra in KEYS:
            doc = self.keygen(domain, sel, ktype)
            txt.append((doc["dns_name"].rstrip("."), doc["txt_strings"]))
            entries.append(f'{{ domain = "{domain}"; selector = "{sel}"; '
                           f'key_file = "{doc["key_file"]}"; '
                           f'canonicalization = "{canon}"; {extra} }}')
        c = self.cluster(start=False, router_extra="dkim = (\n    " +
                         ",\n    ".join(entries) + "\n  );\n  " +
                         router_extra, **kw)
        p = DkimPeers(self, c, txt)
        self.capture = p.capture()
        p.start()
        c.delivery = p.delivery()
        c.start()
        p.adopt()
        self.dns_port = p.dns_port
        return c

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.dns_port
        r.lifetime = timeout
        try:
            a = r.resolve(name.rstrip("."), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(a[0].strings)

    def verify_all(self, msg):
        """True/False for each DKIM-Signature of msg, in order (a body
        hash mismatch is raised by DKIM.verify(); it counts as False)."""
        out = []
        for i in range(len(signatures(msg))):
            try:
                out.append(dkim.DKIM(msg).verify(idx=i,
                                                 dnsfunc=self.dnsfunc))
            except dkim.DKIMException:
                out.append(False)
        return out

    def send(self, c, sender, rcpt, msg, params=""):
        with SMTPConn(c.port, timeout=30) as conn:
            conn.ehlo()
            r = conn.mail(sender, [rcpt], msg, params)
        self.assertEqual(r.code, 250, str(r))

    def delivered(self, rcpts):
        def all_there():
            got = {r: self.capture.to(r) for r in rcpts}
            return got if all(got.values()) else None
        got = wait_for(all_there, TIMEOUT, "every message delivered",
                       interval=0.2)
        return {r: m[0]["content"] for r, m in got.items()}

    def test_messages_verify_with_dkimpy(self):
        c = self.setup_cluster()
        long_body = "".join(f"line {i}  with\t some   spaces \r\n"
                            for i in range(40000))        # ~1.3 MB
        cases = {
            # rcpt local part: (sender domain, message, MAIL params)
            "folded": ("signed.test", message(
                "a@signed.test", "folded@dest.test",
                "a subject\r\n  folded  over\r\n\tthree lines",
                "Hello.\r\n", b"X-Long: one\r\n two\r\n"), ""),
            "eightbit": ("signed.test", message(
                "a@signed.test", "eightbit@dest.test", "8-bit",
                "caf\u00e9 \u00fcber  na\u00efve\r\n"), " BODY=8BITMIME"),
            "empty": ("signed.test", message(
                "a@signed.test", "empty@dest.test", "empty", ""), ""),
            "trailing": ("signed.test", message(
                "a@signed.test", "trailing@dest.test", "trailing",
                "text  \r\n\r\n\r\n \r\n\r\n"), ""),
            "long": ("signed.test", message(
                "a@signed.test", "long@dest.test", "long", long_body), ""),
            "s-folded": ("simple.test", message(
                "b@simple.test", "s-folded@dest.test",
                "folded\r\n\tsubject", "Body  with  spaces \r\n"), ""),
            "s-empty": ("simple.test", message(
                "b@simple.test", "s-empty@dest.test", "empty", ""), ""),
            "s-trailing": ("simple.test", message(
                "b@simple.test", "s-trailing@dest.test", "trailing",
                "x\r\n\r\n\r\n"), ""),
            "s-long": ("simple.test", message(
                "b@simple.test", "s-long@dest.test", "long", long_body),
                ""),
            "nokey": ("nokey.test", message(
                "c@nokey.test", "nokey@dest.test", "no key", "x\r\n"), ""),
        }
        for local, (dom, msg, params) in cases.items():
            self.send(c, f"bounce@{dom}", f"{local}@{DEST}", msg, params)
        got = self.delivered([f"{lp}@{DEST}" for lp in cases])

        for local, (dom, _, _) in cases.items():
            msg = got[f"{local}@{DEST}"]
            sigs = signatures(msg)
            with self.subTest(case=local):
                if dom == "nokey.test":
                    self.assertEqual(sigs, [])
                    self.assertNotIn(b"DKIM-Signature", msg)
                    continue
                want = {"signed.test": {("rsa1", "rsa-sha256",
                                         "relaxed/relaxed"),
                                        ("ed1", "ed25519-sha256",
                                         "simple/relaxed")},
                        "simple.test": {("rsa2", "rsa-sha256",
                                         "simple/simple")}}[dom]
                self.assertEqual({(s["s"], s["a"], s["c"]) for s in sigs},
                                 want)
                for s in sigs:
                    self.assertEqual(s["d"], dom)
                    # From oversigned: listed once more than it occurs
                    self.assertEqual(s["h"].split(":").count("from"), 2)
                    if dom == "simple.test":
                        self.assertEqual(int(s["x"]) - int(s["t"]), 3600)
                    else:
                        self.assertNotIn("x", s)
                self.assertEqual(self.verify_all(msg), [True] * len(sigs))
                # folded nicely: no line over 78, continuations by tab
                head = msg.split(b"\r\n\r\n", 1)[0]
                in_sig = False
                for line in head.split(b"\r\n"):
                    if line.startswith(b"DKIM-Signature:"):
                        in_sig = True
                    elif line[:1] != b"\t":
                        in_sig = False
                    if in_sig:
                        self.assertLessEqual(len(line), 78, line)

        # empty bodies: relaxed hashes "", simple hashes CRLF
        sigs = {s["s"]: s for s in signatures(got[f"empty@{DEST}"])}
        self.assertEqual(sigs["rsa1"]["bh"],
                         "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        self.assertEqual(signatures(got[f"s-empty@{DEST}"])[0]["bh"],
                         "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=")
        # the 8-bit body arrived as 8-bit and verified as bytes
        self.assertIn("café".encode(), got[f"eightbit@{DEST}"])

        # changed after signing: every signature fails
        for local, old, new in (("long", b"line 39999", b"line 39998"),
                                ("folded", b"Hello.", b"Hullo."),
                                ("s-folded", b"Subject: folded",
                                 b"Subject: Folded"),
                                ("s-trailing", b"\r\n\r\nx\r\n",
                                 b"\r\n\r\ny\r\n")):
            msg = got[f"{local}@{DEST}"]
            self.assertIn(old, msg)
            bad = msg.replace(old, new)
            with self.subTest(tampered=local):
                self.assertEqual(self.verify_all(bad),
                                 [False] * len(signatures(msg)))

    def test_default_domain_signs_unkeyed_mail_sent_with_bdat(self):
        c = self.setup_cluster('dkim_default_domain = "signed.test";')
        msg = message("c@nokey.test", f"bdat@{DEST}", "by BDAT",
                      "chunked\r\nbody\r\n")
        with SMTPConn(c.port, timeout=30) as conn:
            conn.ehlo()
            conn.expect("MAIL FROM:<c@nokey.test>", 250)
            conn.expect(f"RCPT TO:<bdat@{DEST}>", 250)
            conn.send(b"BDAT 100\r\n" + msg[:100])
            self.assertEqual(conn.reply().code, 250)
            conn.send(f"BDAT {len(msg) - 100} LAST\r\n".encode() +
                      msg[100:])
            self.assertEqual(conn.reply().code, 250)
        # no From at all: passes unsigned
        self.send(c, "c@nokey.test", f"nofrom@{DEST}",
                  b"Subject: no from\r\nTo: <nofrom@dest.test>\r\n\r\n"
                  b"x\r\n")
        got = self.delivered([f"bdat@{DEST}", f"nofrom@{DEST}"])
        sigs = signatures(got[f"bdat@{DEST}"])
        self.assertEqual(sorted(s["s"] for s in sigs), ["ed1", "rsa1"])
        self.assertEqual({s["d"] for s in sigs}, {"signed.test"})
        self.assertEqual(self.verify_all(got[f"bdat@{DEST}"]), [True, True])
        self.assertEqual(signatures(got[f"nofrom@{DEST}"]), [])

    def test_sighup_keeps_old_keys_when_a_file_is_bad(self):
        c = self.setup_cluster()
        key = os.path.join(self.dir, "rsa1.signed.test.pem")
        good = open(key, "rb").read()
        with open(key, "wb") as f:
            f.write(b"not a key\n")
        c.router.send_signal(signal.SIGHUP)
        wait_for(lambda: "dkim event=reload_failed" in c.router.log_text(),
                 20, "the failed reload in the router log")
        self.assertIn(key, c.router.log_text())
        self.send(c, "a@signed.test", f"hup@{DEST}",
                  message("a@signed.test", f"hup@{DEST}", "hup", "x\r\n"))
        msg = self.delivered([f"hup@{DEST}"])[f"hup@{DEST}"]
        self.assertEqual(self.verify_all(msg), [True, True])
        # a good file again: reloaded
        with open(key, "wb") as f:
            f.write(good)
        c.router.send_signal(signal.SIGHUP)
        wait_for(lambda: "dkim event=reloaded keys=3" in c.router.log_text(),
                 20, "the reload in the router log")

    def test_small_or_missing_key_stops_the_router(self):
        small = os.path.join(self.dir, "small.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:1024", "-out", small],
                       check=True, capture_output=True, timeout=60)
        for path, why in ((small, "RSA key of 1024 bits"),
                          (os.path.join(self.dir, "none.pem"),
                           "No such file")):
            c = self.cluster(start=False, router_extra=(
                f'dkim = ( {{ domain = "x.test"; selector = "s"; '
                f'key_file = "{path}"; }} );'))
            c.write_config()
            t0 = time.monotonic()
            r = subprocess.run([bin_path("shoal-router"), "-c", c.conf],
                               capture_output=True, timeout=30)
            with self.subTest(key=path):
                self.assertEqual(r.returncode, 1, r.stderr)
                err = r.stderr.decode()
                self.assertIn(path, err)
                self.assertIn(why, err)
                self.assertIn("router.dkim[0]", err)
                self.assertLess(time.monotonic() - t0, 30)
