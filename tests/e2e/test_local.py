"""deploy/local/cluster.sh, the demo behind `make run`, as a user drives
it: up starts two routers, four nodes, dnsmasq and the MX sink; mail to
the demo domain lands in the sink as a file and in a node's delivery log;
up over a running cluster refuses, status lists every process, down stops
them all and says when nothing runs; `run` stops everything on SIGINT.
Ports: the script's own with SHOAL_DEMO_PORT_OFFSET, chosen so that every
one is free.
"""

import os
import queue
import random
import re
import signal
import socket
import subprocess
import threading
import time

from shoaltest import REPO, ShoalTestCase, bin_dir, port_free, wait_for

SCRIPT = os.path.join(REPO, "deploy", "local", "cluster.sh")
TCP_PORTS = [2525, 2526, 2625] + [7101, 7102, 7103, 7104] + \
    [9101, 9102, 9103, 9104]
UDP_PORTS = [5354]
PROCS = ["dnsmasq", "mx-sink", "n1", "n2", "n3", "n4", "router1", "router2"]


def free_offset():
    for _ in range(50):
        off = random.randrange(1000, 20000)
        if all(port_free(p + off) for p in TCP_PORTS) and \
                all(port_free(p + off, socket.SOCK_DGRAM)
                    for p in UDP_PORTS):
            return off
    raise AssertionError("no free set of demo ports")


class Lines:
    """The lines of a child's text output, read by a thread of its own so
    that every wait for one has a deadline (readline() has none)."""

    def __init__(self, f):
        self.q = queue.Queue()
        self.got = []
        self.t = threading.Thread(target=self._read, args=(f,), daemon=True)
        self.t.start()

    def _read(self, f):
        for ln in f:
            self.q.put(ln)
        self.q.put(None)

    def until(self, pred, timeout, what):
        """The first line from now on for which pred is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ln = self.q.get(timeout=max(0.0, left))
            except queue.Empty:
                ln = None
                left = 0
            if ln is not None:
                self.got.append(ln)
                if pred(ln):
                    return ln
                continue
            why = "output ended" if left > 0 else f"{timeout}s passed"
            raise AssertionError(f"{why} waiting for {what}; output:\n"
                                 f"{self.text()}")

    def rest(self, timeout):
        """Every line until the output ends (within timeout)."""
        start = len(self.got)
        self.t.join(timeout)
        while not self.q.empty():
            ln = self.q.get()
            if ln is not None:
                self.got.append(ln)
        return "".join(self.got[start:])

    def text(self):
        return "".join(self.got)


class LocalClusterTest(ShoalTestCase):

    def setUp(self):
        self.dir = os.path.join(self.tempdir("shoal-demo-"), "demo")
        self.off = free_offset()
        self.env = dict(os.environ, SHOAL_DEMO_DIR=self.dir,
                        SHOAL_DEMO_PORT_OFFSET=str(self.off),
                        SHOAL_BIN=bin_dir())
        # whatever happens, nothing the script started outlives the test
        self.addCleanup(self.kill_leftovers)

    def script(self, *args, timeout=180):
        return subprocess.run(["bash", SCRIPT] + list(args), env=self.env,
                              capture_output=True, text=True,
                              timeout=timeout)

    def pids(self):
        out = {}
        for p in PROCS:
            try:
                with open(os.path.join(self.dir, p + ".pid")) as f:
                    out[p] = int(f.read())
            except (OSError, ValueError):
                pass
        return out

    def alive(self, pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:      # a zombie is gone too
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"

    def demo_processes(self):
        """pids of processes whose command line names the demo dir."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if self.dir.encode() in f.read():
                        out.append(int(d))
            except OSError:
                pass
        return out

    def kill_leftovers(self):
        self.script("down", timeout=60)
        for pid in self.demo_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def send(self, port, rcpt):
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}",
                            "--from", "you@demo.example", "--to", rcpt,
                            "--timeout", "30"], capture_output=True,
                           text=True, timeout=60)
        m = re.search(r"queued as (\w+)", r.stdout)
        self.assertIsNotNone(m, r.stdout[-1500:])
        return m.group(1)

    def delivery_lines(self):
        out = []
        for n in ("n1", "n2", "n3", "n4"):
            try:
                with open(os.path.join(self.dir, n, "delivery.log")) as f:
                    out += f.read().splitlines()
            except OSError:
                pass
        return out

    def test_1_up_mail_status_down(self):
        self.assertIn("not running", self.script("down").stdout)
        r = self.script("up")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pids = self.pids()
        self.assertEqual(sorted(pids), sorted(PROCS))
        self.assertTrue(all(self.alive(p) for p in pids.values()))
        self.assertIn(f"swaks --server 127.0.0.1:{2525 + self.off}",
                      r.stdout)
        self.assertIn("shoalctl -c", r.stdout)
        # a second up leaves the running cluster alone
        r = self.script("up")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already running", r.stderr)
        self.assertEqual(self.pids(), pids)
        self.assertTrue(all(self.alive(p) for p in pids.values()))
        # mail through the second router reaches the sink
        qid = self.send(2526 + self.off, "friend@demo.example")
        wait_for(lambda: any(qid in line and '"delivered"' in line
                             for line in self.delivery_lines()), 30,
                 "the delivery in a node's log")
        mail = os.path.join(self.dir, "mail")
        wait_for(lambda: any(qid in open(os.path.join(mail, f),
                                         errors="replace").read()
                             for f in os.listdir(mail)), 10,
                 "the message in the sink's directory")
        # both of its DKIM signatures verify with python3-dkim against the
        # demo's DNS, and a changed copy does not
        f = next(os.path.join(mail, f) for f in os.listdir(mail)
                 if qid in open(os.path.join(mail, f), errors="replace").read())
        verify = [os.path.join(REPO, "deploy/local/dkimverify.py"), "--dns",
                  f"127.0.0.1:{5354 + self.off}"]
        r = subprocess.run(verify + [f], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("a=rsa-sha256: pass", r.stdout)
        self.assertIn("a=ed25519-sha256: pass", r.stdout)
        bad = os.path.join(self.tempdir(), "changed.eml")
        with open(f, "rb") as src, open(bad, "wb") as dst:
            dst.write(src.read().replace(b"This is a test mailing",
                                         b"This is a changed mailing"))
        r = subprocess.run(verify + [bad], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count(": FAIL"), 2, r.stdout)
        r = self.script("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        for p in PROCS:
            self.assertIn(f"{p}: running", r.stdout)
        self.assertIn("healthy", r.stdout)
        r = self.script("down")
        self.assertIn("stopped (8 processes)", r.stdout)
        self.assertFalse(any(self.alive(p) for p in pids.values()))
        self.assertIn("not running", self.script("status").stdout)
        self.assertIn("not running", self.script("down").stdout)

    def test_2_run_stops_on_sigint(self):
        p = subprocess.Popen(["bash", SCRIPT, "run"], env=self.env,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        out = Lines(p.stdout)
        out.until(lambda ln: "Deliveries as they happen" in ln, 120,
                  "the script following the deliveries")
        pids = self.pids()
        self.assertEqual(len(pids), len(PROCS))
        qid = self.send(2525 + self.off, "friend@demo.example")
        # the script shows the delivery as it happens
        line = out.until(lambda ln: qid in ln, 60, f"a line about {qid}")
        self.assertIn("delivered: " + qid, line)
        p.send_signal(signal.SIGINT)
        # the stop has begun (its first echo comes after `trap '' INT`):
        # a second Ctrl-C now comes in the middle of it and must not cut
        # it short. Processes still running at that moment show it is in
        # the middle (the routers alone take a drain to stop).
        out.until(lambda ln: ln == "\n", 30, "the stop beginning")
        left = [x for x in pids.values() if self.alive(x)]
        self.assertTrue(left, "the second SIGINT comes before the end")
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(60), 0, out.text())
        rest = out.rest(10)
        self.assertIn("stopped (8 processes)", rest)
        self.assertFalse(any(self.alive(x) for x in pids.values()))
        wait_for(lambda: not self.demo_processes(), 10,
                 "no process of the demo left (the follower included)")
