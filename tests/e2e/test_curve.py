"""ZeroMQ CURVE on the cluster links (lib/curve.h): with cluster.curve_keys
set, routers, nodes, peers and shoalctl talk encrypted and mail flows and
replicates as before; a shoalctl holding other keys, or a client speaking
plain ZMTP, gets nothing from the nodes. shoalctl keygen writes the file
(0600) and never overwrites one. With keys set, a program that cannot set
CURVE up (keys libzmq refuses, a libzmq without CURVE, any refused socket
option, ZMQ_MAXMSGSIZE included) exits 1 naming the cause and never runs
unencrypted; the last two are made with an LD_PRELOAD shim
(tests/fixtures/zmq_fault.c), since Debian's libzmq has CURVE.
"""

import os
import stat
import subprocess
import time
import unittest

from shoaltest import (REPO, SMTPConn, ShoalTestCase, bin_path, make_message,
                       wait_for)
from test_replication import zmtp_send


# libzmq's option numbers (zmq.h)
ZMQ_OPTS = {"ZMQ_MAXMSGSIZE": 22, "ZMQ_CURVE_SERVER": 47,
            "ZMQ_CURVE_PUBLICKEY": 48, "ZMQ_CURVE_SECRETKEY": 49,
            "ZMQ_CURVE_SERVERKEY": 50, "ZMQ_ZAP_DOMAIN": 55}


def build_fault_shim(d):
    """tests/fixtures/zmq_fault.c as d/zmq_fault.so."""
    so = os.path.join(d, "zmq_fault.so")
    r = subprocess.run(["cc", "-shared", "-fPIC", "-o", so,
                        os.path.join(REPO, "tests/fixtures/zmq_fault.c"),
                        "-ldl"], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"building the shim: {r.stderr}")
    return so


def run_to_exit(argv, fault=None, shim=None, timeout=10):
    """Run a program that should refuse to start. Returns (exit status or
    None when still running after timeout, all it wrote)."""
    env = dict(os.environ)
    if fault:
        env["LD_PRELOAD"] = shim
        env["SHOAL_ZMQ_FAULT"] = fault
        # an ASan build wants its runtime first; the shim is not one
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":verify_asan_link_order=0").lstrip(":")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=env, cwd=REPO)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None, out.decode("utf-8", "replace")


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

    def keyed_cluster(self, keys_text=None):
        """A cluster config (nothing started) whose curve_keys file holds
        keys_text, or keys from shoalctl keygen."""
        d = self.tempdir("shoal-curve-")
        keys = os.path.join(d, "cluster.keys")
        if keys_text is None:
            self.assertEqual(self.keygen(keys).returncode, 0)
        else:
            with open(keys, "w") as f:
                f.write(keys_text)
        c = self.cluster(start=False, cluster_extra=f'curve_keys = "{keys}";')
        c.write_config()
        return d, c

    def programs(self, c):
        return {
            "node": [bin_path("shoal-node"), "-c", c.conf, "-n", "n1"],
            "router": [bin_path("shoal-router"), "-c", c.conf],
            "shoalctl": [bin_path("shoalctl"), "-c", c.conf, "--timeout",
                         "1000", "status"],
        }

    def assert_refused(self, what, rc, out, *needles):
        self.assertIsNotNone(rc, f"{what} still running: it went on "
                                 f"without CURVE. Output:\n{out}")
        self.assertEqual(rc, 1, f"{what}: {out}")
        for n in needles:
            self.assertIn(n, out, f"{what} names the cause")

    def test_2_keys_libzmq_refuses_stop_every_program(self):
        """A key file damaged by hand (a character outside Z85 in the
        secret key): libzmq itself refuses the key on a real socket, and
        node, router and shoalctl each exit 1 saying which option and
        why."""
        d = self.tempdir("shoal-curve-")
        good = os.path.join(d, "good.keys")
        self.assertEqual(self.keygen(good).returncode, 0)
        with open(good) as f:
            pub, sec = f.read().splitlines()
        _, c = self.keyed_cluster(f"{pub}\n{sec[:7]}~{sec[8:]}\n")
        for what, argv in self.programs(c).items():
            with self.subTest(program=what):
                rc, out = run_to_exit(argv)
                self.assert_refused(what, rc, out, "ZMQ_CURVE_SECRETKEY",
                                    "Invalid argument",
                                    "refusing to run the cluster links "
                                    "unencrypted")
        # and a public key that is not the secret key's
        _, c = self.keyed_cluster(f"{sec}\n{sec}\n")
        rc, out = run_to_exit(self.programs(c)["node"])
        self.assert_refused("node", rc, out, "is not the secret key's")

    def test_3_libzmq_without_curve_never_runs_open(self):
        """A libzmq without CURVE (zmq_has("curve") false, its options
        refused): every program exits 1 instead of running unencrypted."""
        d, c = self.keyed_cluster()
        shim = build_fault_shim(d)
        for what, argv in self.programs(c).items():
            with self.subTest(program=what):
                rc, out = run_to_exit(argv, "nocurve", shim)
                self.assert_refused(what, rc, out,
                                    'zmq_has("curve") is false')
        # positive control: the shim lets a program start when the fault
        # is not asked for
        p = subprocess.Popen(self.programs(c)["node"], env=dict(
            os.environ, LD_PRELOAD=shim, SHOAL_ZMQ_FAULT="none",
            ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
            ":verify_asan_link_order=0"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            out = b""
            deadline = time.monotonic() + 10
            while b"event=ready" not in out and time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                out += line
            self.assertIn(b"event=ready", out, out.decode())
        finally:
            p.kill()
            p.communicate()

    def test_4_any_refused_option_stops_the_program(self):
        """libzmq refusing any one of the options a cluster socket needs
        (each CURVE option, the ZAP domain, ZMQ_MAXMSGSIZE): exit 1, the
        option named, never a socket without it."""
        d, c = self.keyed_cluster()
        shim = build_fault_shim(d)
        progs = self.programs(c)
        cases = [(opt, "node") for opt in ZMQ_OPTS] + \
            [("ZMQ_MAXMSGSIZE", "router"), ("ZMQ_MAXMSGSIZE", "shoalctl"),
             ("ZMQ_CURVE_SERVERKEY", "router"),
             ("ZMQ_CURVE_PUBLICKEY", "shoalctl")]
        for opt, what in cases:
            with self.subTest(option=opt, program=what):
                rc, out = run_to_exit(progs[what], f"opt:{ZMQ_OPTS[opt]}",
                                      shim)
                self.assert_refused(what, rc, out, opt)


if __name__ == "__main__":
    unittest.main()
