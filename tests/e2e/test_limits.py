"""Per-client limits on the router: concurrent sessions per client address
(421 4.7.0), messages per minute per address and per authenticated user
(451 4.7.1), and a client that goes quiet cut at idle_timeout (421 4.4.2).
"""

import base64
import os
import time
import unittest

from shoaltest import SMTPConn, ShoalTestCase, make_message, wait_for
from test_tls import Raw


class LimitsTest(ShoalTestCase):

    def test_1_sessions_per_address(self):
        # loopback is not a relay network here: an outside client
        c = self.cluster(router_extra="max_sessions_per_ip = 3;",
                         relay_networks=("192.0.2.0/24",),
                         router_metrics=True)
        held = [Raw(c.port) for _ in range(3)]
        for r in held:
            self.assertEqual(r.reply()[0], 220)
        extra = Raw(c.port)
        code, lines = extra.reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("4.7.0", lines[-1])
        with self.assertRaises((EOFError, OSError)):
            extra.line()
        extra.close()
        held[0].cmd("QUIT")
        held[0].close()
        # the router frees the address's slot with the session: wait
        # until it counts only the two still held
        wait_for(lambda: c.metric("router", "shoal_router_sessions") == 2,
                 10, "the router down to the two held sessions")
        again = Raw(c.port)
        self.assertEqual(again.reply()[0], 220, "a slot came free")
        for r in held[1:] + [again]:
            r.close()

    def test_2_messages_per_minute_per_address(self):
        c = self.cluster(router_extra="max_msgs_per_minute_per_ip = 5;",
                         relay_networks=("192.0.2.0/24",))
        with SMTPConn(c.port) as s:
            s.ehlo()
            for i in range(5):
                self.assertEqual(s.cmd("MAIL FROM:<a@example.org>").code,
                                 250)
                s.cmd("RSET")
            r = s.cmd("MAIL FROM:<a@example.org>")
            self.assertEqual(r.code, 451, r)
            self.assertIn("4.7.1", r.text)
        # a client in relay_networks is not limited by address
        c2 = self.cluster(router_extra="max_msgs_per_minute_per_ip = 2;")
        with SMTPConn(c2.port) as s:
            s.ehlo()
            for i in range(4):
                r = s.mail("a@example.org", ["b@example.net"],
                           make_message(f"m{i}"))
                self.assertEqual(r.code, 250, r)

    def test_3_messages_per_minute_per_user(self):
        d = self.tempdir("shoal-limits-")
        users = os.path.join(d, "users")
        c = self.cluster(start=False, relay_networks=(),
                         router_extra=f'users_file = "{users}"; '
                                      f'max_msgs_per_minute_per_user = 3;')
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'tls = "none"; auth_plaintext = true; }}')
        c.write_config()
        c.add_user("dave", "pw")
        c.start()
        tok = base64.b64encode(b"\0dave\0pw").decode()
        for conn in range(2):
            raw = Raw(c.port2)
            raw.reply()
            raw.cmd("EHLO client.example")
            self.assertEqual(raw.cmd("AUTH PLAIN " + tok)[0], 235)
            for i in range(2):
                code = raw.cmd("MAIL FROM:<a@example.org>")[0]
                if conn * 2 + i < 3:
                    self.assertEqual(code, 250)
                    raw.cmd("RSET")
                else:
                    self.assertEqual(code, 451, "the 4th in a minute")
            raw.close()

    def test_4_a_quiet_client_is_cut(self):
        c = self.cluster(router_extra="idle_timeout = 1;")
        r = Raw(c.port)
        r.reply()
        t0 = time.monotonic()
        code, lines = r.reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("4.4.2", lines[-1])
        self.assertLess(time.monotonic() - t0, 5)
        with self.assertRaises((EOFError, OSError)):
            r.line()
        r.close()


if __name__ == "__main__":
    unittest.main()
