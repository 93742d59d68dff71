"""ZeroMQ CURVE on the cluster links (lib/curve.h): with cluster.curve_keys
set, routers, nodes, peers and shoalctl talk encrypted and mail flows and
replicates as before; a shoalctl holding other keys, or a client speaking
plain ZMTP, gets nothing from the nodes. shoalctl keygen writes the file
(0600) and never overwrites one.
"""

import os
import stat
import subprocess
import unittest

from shoaltest import (SMTPConn, ShoalTestCase, bin_path, make_message,
                       wait_for)
from test_replication import zmtp_send


class CurveTest(ShoalTestCase):

    def keygen(self, path):
        return subprocess.run([bin_path("shoalctl"), "keygen", path],
                              capture_output=True, text=True, timeout=30)

    def test_1_encrypted_cluster(self):
        d = self.tempdir("shoal-curve-")
        keys = os.path.join(d, "cluster.keys")
        r = self.keygen(keys)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(keys).st_mode), 0o600)
        with open(keys) as f:
            lines = f.read().splitlines()
        self.assertEqual([len(x) for x in lines], [40, 40])
        self.assertEqual(self.keygen(keys).returncode, 1, "no overwrite")
        c = self.cluster(cluster_extra=f'curve_keys = "{keys}";',
                         replication='heartbeat_ms = 200;')
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 10,
                 "the pair healthy over CURVE")
        with SMTPConn(c.port) as s:
            s.ehlo()
            for i in range(6):
                r = s.mail("a@example.org", ["b@example.net"],
                           make_message(f"curve {i}"))
                self.assertEqual(r.code, 250, r)
        self.assertEqual(len(c.queue_list()["messages"]), 6)
        st = {n["id"]: n for n in c.status()["nodes"]}
        self.assertEqual(st["n1"]["replication"]["replica_messages"] +
                         st["n2"]["replication"]["replica_messages"], 6)
        # other keys: the nodes do not answer
        other = os.path.join(d, "other.keys")
        self.assertEqual(self.keygen(other).returncode, 0)
        conf2 = os.path.join(d, "other.conf")
        with open(c.conf) as f:
            text = f.read().replace(keys, other)
        with open(conf2, "w") as f:
            f.write(text)
        r = subprocess.run([bin_path("shoalctl"), "-c", conf2, "--timeout",
                            "1000", "status"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no node answered", r.stderr)
        # plain ZMTP (NULL mechanism): refused in the handshake, so the
        # undecodable frame that a node without keys logs as bad_message
        # (test_replication test_6, where zmtp_send returns "sent") never
        # reaches n1
        self.assertEqual(zmtp_send(c.node_port["n1"],
                                   [b"N1", b"\xff" * 64]), "refused")
        self.assertNotIn("repl event=bad_message", c.node("n1").log_text())
        self.assertTrue(c.node("n1").running())
        # and without keys, a node binding beyond loopback says so
        self.assertNotIn("event=unencrypted", c.node("n1").log_text())


if __name__ == "__main__":
    unittest.main()
