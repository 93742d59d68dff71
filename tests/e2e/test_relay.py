"""No open relay: a client outside relay_networks that has not
authenticated gets 554 5.7.1 for every recipient, whatever trick the
address uses to look local or to route through us (percent hack, bang
path, source route, quoted local part with @, IP literal, trailing dot,
UTF-8 look-alike). The same client authenticated may relay; a client
inside relay_networks may too. Nothing is queued for the refused ones.
"""

import base64
import os
import unittest

from shoaltest import ShoalTestCase, SMTPConn
from test_tls import Raw, client_ctx, make_cert

TRICKS = [
    "user%victim.example@example.net",
    "victim.example!user@example.net",
    "@relay.example:user@victim.example",
    "@a.example,@b.example:user@victim.example",
    '"user@victim.example"@example.net',
    '"user%victim.example"@[127.0.0.1]',
    "user@[127.0.0.1]",
    "user@[IPv6:::1]",
    "user@localhost",
    "user@example.net.",
    "user@victim.example.",
    "postmaster@victim.example",
    "user@xn--exmple-cua.net",
    "user@ex\u0430mple.net",            # Cyrillic a
    "us\u0435r@victim.example",         # Cyrillic e in the local part
    "user@victim.example@example.net",
    "user%victim.example%relay.example@example.net",
    "victim.example!relay.example!user",
    "user@[10.0.0.1]",
    "abuse@victim.example",
]


class RelayTest(ShoalTestCase):

    def test_1_outside_clients_cannot_relay(self):
        # 127.0.0.0/8 is not a relay network here: the test client is an
        # outsider
        c = self.cluster(relay_networks=("192.0.2.0/24",))
        refused = []
        with SMTPConn(c.port) as s:
            s.ehlo()
            for addr in TRICKS:
                r = s.cmd("MAIL FROM:<sender@example.org> SMTPUTF8")
                self.assertEqual(r.code, 250, r)
                r = s.cmd(f"RCPT TO:<{addr}>")
                refused.append((addr, r.code, r.text))
                s.cmd("RSET")
        for addr, code, text in refused:
            self.assertEqual((code, text.split()[0]), (554, "5.7.1"),
                             f"{addr}: {code} {text}")
        self.assertEqual(c.queue_list()["messages"], [])
        self.assertTrue(c.router.running())

    def test_2_relay_networks_and_authenticated_users_may(self):
        d = self.tempdir("shoal-relay-")
        cert, key = make_cert(d, "mx.relay.example")
        users = os.path.join(d, "users")
        c = self.cluster(start=False, relay_networks=("192.0.2.0/24",),
                         router_extra=f'tls_cert = "{cert}"; tls_key = '
                                      f'"{key}"; users_file = "{users}";')
        c.write_config()
        c.add_user("carol", "pw")
        c.start()
        raw = Raw(c.port)
        raw.reply()
        raw.cmd("EHLO client.example")
        raw.cmd("STARTTLS")
        raw.tls()
        raw.cmd("EHLO client.example")
        raw.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(raw.cmd("RCPT TO:<user@victim.example>")[0], 554)
        raw.cmd("RSET")
        tok = base64.b64encode(b"\0carol\0pw").decode()
        self.assertEqual(raw.cmd("AUTH PLAIN " + tok)[0], 235)
        raw.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(raw.cmd("RCPT TO:<user@victim.example>")[0], 250)
        raw.close()
        # inside relay_networks: allowed without AUTH
        c2 = self.cluster(relay_networks=("127.0.0.0/8",))
        with SMTPConn(c2.port) as s:
            s.ehlo()
            s.cmd("MAIL FROM:<sender@example.org>")
            self.assertEqual(s.cmd("RCPT TO:<user@victim.example>").code,
                             250)


if __name__ == "__main__":
    unittest.main()
