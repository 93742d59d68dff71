"""RCPT TO:<Postmaster> (RFC 5321 4.5.1: a relay MUST accept it) from any
client, routed to router.postmaster, and what it must not open.

The test client (127.0.0.1) is outside relay_networks and does not
authenticate. It may write to <Postmaster> (any case, no domain) and to
postmaster@<router.hostname>; both arrive at the capturing MX of dest.test
as router.postmaster. Every other recipient, postmaster@ another domain
included, still gets 554 5.7.1, in the same transaction too. Mail from
such a client is not DKIM-signed with the operator's keys; the same
message from a relay network client (127.0.0.2) is, and its
postmaster@dest.test is relayed as an ordinary address: the positive
controls, which also show that the MX would have seen anything else.
"""

import json
import os
import socket
import subprocess

from shoaltest import SMTPConn, ShoalTestCase, bin_path, wait_for
from test_delivery import DEST, Peers

HOSTNAME = "mta.e2e.example"
PM = f"hostmaster@{DEST}"          # router.postmaster
TRUSTED_IP = "127.0.0.2"


def message(sender, subject):
    return (f"From: <{sender}>\r\nTo: <postmaster>\r\n"
            f"Subject: {subject}\r\n\r\nPlease look at this.\r\n").encode()


class PostmasterTest(ShoalTestCase):

    def keygen(self, d, domain, selector):
        path = os.path.join(d, f"{selector}.pem")
        r = subprocess.run([bin_path("shoalctl"), "--json", "dkim", "keygen",
                            domain, selector, "--type", "ed25519", "--out",
                            path], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["key_file"]

    def conn(self, c, source=None):
        sock = None
        if source:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", c.port))
        conn = SMTPConn(c.port, sock=sock)
        self.addCleanup(conn.close)
        conn.ehlo()
        return conn

    def test_postmaster_from_anyone_and_nothing_else(self):
        d = self.tempdir("shoal-pm-")
        key = self.keygen(d, "own.test", "s1")
        c = self.cluster(start=False, hostname=HOSTNAME,
                         relay_networks=(f"{TRUSTED_IP}/32",),
                         router_extra=f'postmaster = "{PM}"; dkim = ( {{ '
                                      f'domain = "own.test"; selector = '
                                      f'"s1"; key_file = "{key}"; }} );')
        peers = Peers(self, c)
        cap = peers.capture()
        peers.start()
        c.delivery = peers.delivery()
        c.start()
        peers.adopt()

        out = self.conn(c)
        out.expect("MAIL FROM:<stranger@outside.example>", 250)
        out.expect("RCPT TO:<Postmaster>", 250)
        # only the postmaster is exempt: no relay, not even alongside it
        for rcpt in (f"b@{DEST}", "postmaster@other.example",
                     f"postmaster@{HOSTNAME}.evil.example",
                     f"abuse@{HOSTNAME}"):
            r = out.cmd(f"RCPT TO:<{rcpt}>")
            self.assertEqual((r.code, r.lines[-1][:5]), (554, "5.7.1"),
                             f"{rcpt}: {r}")
        r = out.data(message("spoof@own.test", "no domain"))
        self.assertEqual(r.code, 250, r)
        # postmaster@<router.hostname>, any case, by BDAT this time
        out.expect("MAIL FROM:<stranger@outside.example>", 250)
        out.expect(f"RCPT TO:<POSTMASTER@{HOSTNAME.upper()}>", 250)
        body = message("spoof@own.test", "our hostname")
        out.send(f"BDAT {len(body)} LAST\r\n".encode() + body)
        self.assertEqual(out.reply().code, 250)
        # an outsider's transaction without the postmaster gets nowhere
        out.expect("MAIL FROM:<stranger@outside.example>", 250)
        self.assertEqual(out.cmd(f"RCPT TO:<b@{DEST}>").code, 554)
        self.assertEqual(out.cmd("DATA").code, 503)
        out.expect("QUIT", 221)

        # the positive controls, from a relay network client: its own
        # domain's mail is signed; postmaster@dest.test is not ours
        ins = self.conn(c, source=TRUSTED_IP)
        r = ins.mail("app@own.test", [f"postmaster@{DEST}"],
                     message("app@own.test", "from inside"))
        self.assertEqual(r.code, 250, r)

        def delivered():
            if c.queue_list()["messages"]:
                return None
            got = cap.messages()
            return got if len(got) >= 3 else None
        got = wait_for(delivered, 30, "three messages at the MX, queue "
                       "empty", interval=0.2)
        self.assertEqual(sorted(r for m in got for r in m["rcpt_tos"]),
                         sorted([PM, PM, f"postmaster@{DEST}"]))
        self.assertEqual(c.router.log_text().count("event=accepted"), 3)
        for m in got:
            signed = b"DKIM-Signature:" in m["content"]
            if m["rcpt_tos"] == [PM]:
                self.assertEqual(m["mail_from"], "stranger@outside.example")
                self.assertFalse(signed, "an outsider's mail is not signed")
            else:
                self.assertEqual(m["mail_from"], "app@own.test")
                self.assertTrue(signed, "a relay client's mail is signed")
        self.assertTrue(c.router.running())
