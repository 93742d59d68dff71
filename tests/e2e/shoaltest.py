"""End-to-end test harness: real Shoal processes on 127.0.0.1.

Owns: free ports, a temp dir per cluster, the cluster config file (libconfig,
see DESIGN.md "Config"), starting shoal-node / shoal-router / helper programs
with their stderr in a log file each, readiness under a deadline (a line with
`event=ready`, never a fixed sleep), stopping every process by PID (SIGTERM,
then SIGKILL after a deadline) in a test cleanup, and printing every process
log when the test failed. Also: shoalctl --json, the shard hash, and a raw
SMTP client for what smtplib cannot do (BDAT, bare LF, pipelining bursts).

Waits are for events, under a deadline: a log line from an offset on
(Proc.wait_log), a metric (Cluster.metric), the server having read what
was sent (SMTPConn.wait_peer_read). A check that something did not happen
first waits for proof that the system got past the point where it would
have happened, with a positive control that it would have been seen
(SMTPConn.expect_no_more_replies does both for SMTP replies).

Leaves to the tests: what to send and what to assert. Only talks to
127.0.0.1. Standard library only.
"""

import atexit
import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
READY_TIMEOUT = 10.0          # seconds a process has to log event=ready
STOP_TIMEOUT = 5.0            # seconds between SIGTERM and SIGKILL
START_ATTEMPTS = 3            # port collisions tolerated per cluster start
LOG_DUMP_MAX_LINES = 3000     # per log, on failure: head and tail kept
# How long shoalctl waits for each node (--timeout) where a test has just
# killed one: 1 s, not its default 3 s on every call (twice in queue
# list), for each poll. The nodes still up answer in milliseconds; one
# that did not would fail the test, not pass it.
DOWN_MS = 1000

# Crockford base32 without I L O U, 21 characters (lib/qid.h).
QID_RE = re.compile(r"queued as ([0-9A-HJKMNP-TV-Z]{21})\b")
# a sample line of Prometheus text: name, {labels} or nothing, value
_METRIC_LINE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? "
                             r"(\S+)$", re.M)
_METRIC_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

_live = set()                 # every Popen not yet reaped, for atexit
_live_lock = threading.Lock()


def bin_dir():
    d = os.environ.get("SHOAL_BIN", "bin")
    return d if os.path.isabs(d) else os.path.join(REPO, d)


def bin_path(name):
    return os.path.join(bin_dir(), name)


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ---- ports, hashing -------------------------------------------------------

_ports_given = set()


def port_free(port, kind=socket.SOCK_STREAM):
    """Whether port can be bound on 127.0.0.1 now (TCP or UDP)."""
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(kind=socket.SOCK_STREAM):
    """A port that was free on 127.0.0.1 a moment ago (bind 0, close), and
    never one this test was already given: bind 0 hands a port out again
    while nothing listens on it yet. A UDP port is for a DNS server, which
    listens on TCP too: it must be free there as well (the other tests'
    connections hold many TCP ports of the range, in TIME_WAIT too; in
    one run dnsmasq failed three starts in a row on them). Someone else
    may still take it before we use it: starters retry on EADDRINUSE."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if kind == socket.SOCK_DGRAM and not port_free(port):
            continue
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def shard_of(qid, shards):
    """The shard of a qid: FNV-1a 64 over its ASCII bytes, mod shards."""
    return fnv1a64(qid.encode("ascii")) % shards


def qid_from_reply(text):
    m = QID_RE.search(text)
    return m.group(1) if m else None


def wait_for(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns something true; return that value.
    Raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # keep polling; report the last one
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting "
                                 f"for {what}{extra}")
        time.sleep(interval)


def raise_nofile(limit=65536):
    """Raise RLIMIT_NOFILE's soft limit toward `limit` (capped by the hard
    limit). Usable as a preexec_fn. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- processes ------------------------------------------------------------

class StartError(AssertionError):
    pass


class PortInUse(StartError):
    pass


_ADDR_IN_USE = re.compile(r"address already in use|eaddrinuse|"
                          r"address in use", re.I)


SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error: ")


class Proc:
    """One child process with its output in one log file. The log is
    appended to across restarts, with a marker line per start."""

    def __init__(self, name, argv, log_path, env=None, preexec_fn=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.preexec_fn = preexec_fn
        self.popen = None
        self.starts = 0

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def start(self, ready_re=None, ready_port=None, timeout=READY_TIMEOUT):
        """Start and wait until ready: a log line matching ready_re, or a
        TCP connect to ready_port succeeding. Raises PortInUse or StartError
        carrying the log when the process exits or the deadline passes."""
        if not os.access(self.argv[0], os.X_OK):
            raise StartError(f"{self.name}: no executable {self.argv[0]} "
                             f"(run make?)")
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(f"==== harness: start #{self.starts}: "
                    f"{' '.join(self.argv)}\n".encode())
            offset = f.tell()
        logf = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, env=self.env, preexec_fn=self.preexec_fn,
                cwd=REPO)
        finally:
            logf.close()
        with _live_lock:
            _live.add(self.popen)
        if ready_re is None and ready_port is None:
            return
        pat = re.compile(ready_re) if ready_re else None
        deadline = time.monotonic() + timeout
        while True:
            if pat is not None and pat.search(self._log_since(offset)):
                return
            if ready_port is not None and _port_open(ready_port):
                return
            rc = self.popen.poll()
            if rc is not None:
                # read once more: the ready line may have raced the exit
                text = self._log_since(offset)
                if pat is not None and pat.search(text):
                    return
                self._reap()
                cls = PortInUse if _ADDR_IN_USE.search(text) else StartError
                raise cls(f"{self.name} exited with status {rc} before "
                          f"ready; log {self.log_path}:\n{text}")
            if time.monotonic() >= deadline:
                text = self._log_since(offset)
                self.stop()
                cls = PortInUse if _ADDR_IN_USE.search(text) else StartError
                raise cls(f"{self.name} not ready after {timeout:.0f}s; "
                          f"log {self.log_path}:\n{text}")
            time.sleep(0.02)

    def _log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        if self.popen is None and not os.path.exists(self.log_path):
            return "(never started)"
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"

    def log_offset(self):
        """Where the log ends now: pass it to wait_log(since=) to look
        only at what the process logs from this moment on."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def wait_log(self, pattern, timeout, since=0, what=None):
        """Wait until a line after offset `since` matches the regex
        `pattern`; returns the match. Raises AssertionError naming `what`
        (and quoting the log's new lines) after `timeout` seconds."""
        pat = re.compile(pattern)

        def found():
            return pat.search(self._log_since(since))
        try:
            return wait_for(found, timeout, what or
                            f"{pattern!r} in the log of {self.name}")
        except AssertionError as e:
            tail = self._log_since(since)[-3000:]
            raise AssertionError(f"{e}; {self.name} logged since: "
                                 f"{tail!r}") from None

    def send_signal(self, sig):
        if self.running():
            os.kill(self.popen.pid, sig)

    def wait(self, timeout):
        """Wait for exit; returns the status or None on timeout."""
        if self.popen is None:
            return None
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reap()
        return rc

    def kill(self, sig=signal.SIGKILL, timeout=STOP_TIMEOUT):
        """Send sig by PID and wait for the exit; SIGKILL after timeout.
        Returns the exit status."""
        if self.popen is None:
            return None
        if self.running():
            os.kill(self.popen.pid, sig)
        rc = self.wait(timeout)
        if rc is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            rc = self.wait(timeout)
        return rc

    def stop(self, timeout=STOP_TIMEOUT):
        return self.kill(signal.SIGTERM, timeout)

    def _reap(self):
        with _live_lock:
            _live.discard(self.popen)


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _proc_net_addr(addr):
    """(ip, port) as /proc/net/tcp writes it: the address as a host-order
    32-bit number in hex, then the port."""
    ip = struct.unpack("=I", socket.inet_aton(addr[0]))[0]
    return f"{ip:08X}:{addr[1]:04X}"


def tcp_queues(local, remote):
    """(send queue, receive queue) in octets of the IPv4 TCP socket of this
    network namespace from `local` to `remote` ((ip, port) each), or None
    when there is none."""
    want = (_proc_net_addr(local), _proc_net_addr(remote))
    with open("/proc/net/tcp", encoding="ascii") as f:
        next(f)
        for ln in f:
            p = ln.split()
            if (p[1], p[2]) == want:
                tx, rx = p[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def stop_procs(procs, timeout=STOP_TIMEOUT):
    """SIGTERM every running proc by PID, wait up to timeout for them all,
    then SIGKILL the rest."""
    for p in procs:
        if p.running():
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        if p.popen is None:
            continue
        left = max(0.0, deadline - time.monotonic())
        if p.wait(left) is None:
            log(f"harness: {p.name} (pid {p.pid}) ignored SIGTERM for "
                f"{timeout:.0f}s, sending SIGKILL")
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout)


@atexit.register
def _kill_leftovers():
    with _live_lock:
        left = [p for p in _live if p.poll() is None]
    for p in left:
        try:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


# ---- the test case base ---------------------------------------------------

class _ResultSpy:
    """Forwards to the real TestResult and notes whether the test failed,
    so cleanups (which run before the test's outcome is final) can tell."""

    def __init__(self, result, test):
        self._result = result
        self._test = test

    def addFailure(self, test, err):
        self._test._shoal_failed = True
        return self._result.addFailure(test, err)

    def addError(self, test, err):
        self._test._shoal_failed = True
        return self._result.addError(test, err)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._test._shoal_failed = True
        return self._result.addSubTest(test, subtest, err)

    def __getattr__(self, name):
        return getattr(self._result, name)


class ShoalTestCase(unittest.TestCase):
    """Base for e2e tests: clusters made with self.cluster() are stopped
    (by PID) in a cleanup, and their logs printed if the test failed."""

    maxDiff = 4000

    def run(self, result=None):
        self._shoal_failed = False
        if result is None:
            return super().run(result)
        return super().run(_ResultSpy(result, self))

    def failed(self):
        return getattr(self, "_shoal_failed", False)

    def tempdir(self, prefix="shoal-test-"):
        """A new directory removed at cleanup (0755: helpers running as
        nobody may need to read it)."""
        d = tempfile.mkdtemp(prefix=prefix)
        os.chmod(d, 0o755)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def pin_pages(self, d):
        """A reader of the store in d from outside (mdb_dump into a pipe
        nobody reads): it pins every page freed from now on, as a slow
        delivery's read txn would. Returns the process, once its read
        txn shows in the reader table."""
        pin = subprocess.Popen(["mdb_dump", "-a", d],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (pin.kill(), pin.wait()))
        wait_for(lambda: str(pin.pid) in subprocess.run(
            ["mdb_stat", "-r", d], capture_output=True,
            text=True).stdout, 10, "mdb_dump holding a read txn")
        return pin

    def cluster(self, start=True, **kw):
        c = Cluster(self, **kw)
        if start:
            c.start()
        return c


class ScriptedMX:
    """A small SMTP server on loopback that misbehaves on purpose. With
    late_conn=N, connection N (from 0) greets only once the connections
    before it have taken late_after MAIL commands between them (or after
    late_cap seconds, so a test that is wrong fails, not hangs). With
    stall_at_dot, it never answers the end of DATA: the
    delivery stays in flight (the client's timeout for that is 10 min),
    and the socket waits in .stalled until the test closes it. Otherwise
    it accepts every message. Records, per connection, the commands it
    got and when it closed."""

    def __init__(self, late_conn=None, late_after=0, late_cap=30.0,
                 stall_at_dot=False):
        self.late_conn = late_conn
        self.late_after = late_after
        self.late_cap = late_cap
        self.stall_at_dot = stall_at_dot
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # a command came
        self.conns = []           # per connection: {"cmds": [], "closed"}
        self.stalled = []         # sockets waiting for their 250
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        self.sock.close()
        self.release()

    def release(self):
        """Hang up on every stalled delivery."""
        with self.lock:
            stalled, self.stalled = self.stalled, []
        for s in stalled:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while not self.stop:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                rec = {"cmds": [], "closed": None}
                n = len(self.conns)
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(s, rec, n),
                             daemon=True).start()

    def _serve(self, s, rec, n):
        s.settimeout(None if self.stall_at_dot else 60)
        try:
            if n == self.late_conn:
                with self.changed:
                    self.changed.wait_for(
                        lambda: sum(c["cmds"].count("MAIL")
                                    for c in self.conns[:n]) >=
                        self.late_after, self.late_cap)
            f = s.makefile("rb")
            s.sendall(b"220 mx.test ESMTP\r\n")
            in_data = False
            for line in f:
                if in_data:
                    if line != b".\r\n":
                        continue
                    if self.stall_at_dot:
                        with self.lock:
                            self.stalled.append(s)
                        f.read()  # until the test hangs up
                        break
                    in_data = False
                    s.sendall(b"250 2.0.0 kept\r\n")
                    continue
                cmd = line.decode("ascii", "replace").strip().upper()
                with self.changed:
                    rec["cmds"].append(cmd.split(" ")[0])
                    self.changed.notify_all()
                if cmd.startswith("EHLO"):
                    s.sendall(b"250-mx.test\r\n250 PIPELINING\r\n")
                elif cmd.startswith("DATA"):
                    in_data = True
                    s.sendall(b"354 go on\r\n")
                elif cmd.startswith("QUIT"):
                    s.sendall(b"221 2.0.0 bye\r\n")
                    break
                else:
                    s.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            pass
        finally:
            with self.lock:
                rec["closed"] = time.monotonic()
            s.close()

    def snapshot(self):
        with self.lock:
            return [dict(r, cmds=list(r["cmds"])) for r in self.conns]


# ---- the cluster ----------------------------------------------------------

def _cfg_int(v):
    """libconfig wants the L suffix only past 32 bits."""
    v = int(v)
    return f"{v}L" if v > 0x7FFFFFFF else str(v)


def _cfg_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Loopback:
    """Where each part of a cluster runs: here, everything on 127.0.0.1.
    tests/e2e/netns.py has the same interface with one network namespace
    per part."""

    def host(self, role):
        return "127.0.0.1"

    def wrap(self, role, argv):
        return list(argv)


class Cluster:
    """A Shoal cluster on loopback in a temp dir of its own.

    nodes: count (ids n1..nN; pairs n1<->n2, n3<->n4; an odd last node has
    no peer). map_size: bytes for every node, or a dict id -> bytes.
    router_extra / extra: raw libconfig text inside router: { } / at the top
    level. delivery / replication: raw text for the body of that group
    (delivery defaults to routes and DNS that point at closed local ports, so
    nothing ever leaves 127.0.0.1 and queued mail stays queued).
    node_metrics: give each node a /metrics address (metrics_port).
    router_metrics: give the router one (router_metrics_port); metrics_url()
    names either.
    listen_extra: raw text of more listeners (", { ... }"), port2 is free
    for one. net: where
    each node, the router ("router") and shoalctl ("ctl") run (Loopback by
    default)."""

    def __init__(self, test, nodes=2, shards=16, name="e2e", map_size=None,
                 relay_networks=("127.0.0.0/8",), max_message_size=None,
                 max_recipients=None, node_timeout_ms=None, bare_lf=None,
                 router_extra="", extra="", delivery=None, replication=None,
                 router_preexec=None, node_preexec=None, hostname=None,
                 net=None, node_metrics=False, listen_extra="",
                 cluster_extra="", router_metrics=False):
        self.test = test
        self.net = net or Loopback()
        self.node_metrics = node_metrics
        self.router_metrics = router_metrics
        self.listen_extra = listen_extra
        self.cluster_extra = cluster_extra
        self.shards = shards
        self.name = name
        self.node_ids = [f"n{i + 1}" for i in range(nodes)]
        self.map_size = map_size
        self.relay_networks = relay_networks
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.node_timeout_ms = node_timeout_ms
        self.bare_lf = bare_lf
        self.router_extra = router_extra
        self.extra = extra
        self.delivery = delivery
        self.replication = replication
        self.router_preexec = router_preexec
        self.node_preexec = node_preexec
        self.hostname = hostname or "mta.e2e.example"
        self.dir = tempfile.mkdtemp(prefix="shoal-e2e-")
        self.conf = os.path.join(self.dir, "shoal.conf")
        self.logdir = os.path.join(self.dir, "logs")
        os.mkdir(self.logdir)
        self.ctl_log = os.path.join(self.logdir, "shoalctl.log")
        self.procs = {}             # name -> Proc, in start order
        self._pick_ports()
        test.addCleanup(self._cleanup)

    # -- config --

    def peer_of(self, nid):
        i = self.node_ids.index(nid)
        j = i + 1 if i % 2 == 0 else i - 1
        return self.node_ids[j] if j < len(self.node_ids) else None

    @property
    def router_host(self):
        return self.net.host("router")

    def metrics_url(self, who, path="/metrics"):
        """URL of the /metrics of "router" or of a node id."""
        if who == "router":
            return f"http://{self.router_host}:{self.router_metrics_port}{path}"
        return f"http://{self.net.host(who)}:{self.metrics_port[who]}{path}"

    def metric(self, who, name, **labels):
        """The sum over the series of metric `name` on the /metrics of
        "router" or a node id whose labels include `labels` (0 when none
        match). A plain reader for waits; test_metrics.py checks the
        format itself."""
        with urllib.request.urlopen(self.metrics_url(who), timeout=5) as r:
            text = r.read().decode("utf-8", "replace")
        want = {k: str(v) for k, v in labels.items()}
        total = 0.0
        for m in _METRIC_LINE_RE.finditer(text):
            got = dict(_METRIC_LABEL_RE.findall(m.group(2) or ""))
            if m.group(1) == name and \
                    all(got.get(k) == v for k, v in want.items()):
                total += float(m.group(3))
        return total

    def data_dir(self, nid):
        return os.path.join(self.dir, nid)

    def _pick_ports(self):
        self.node_port = {n: free_port() for n in self.node_ids}
        self.metrics_port = {n: free_port() for n in self.node_ids}
        self.port = free_port()                  # the router's SMTP port
        self.port2 = free_port()                 # for a second listener
        self.router_metrics_port = free_port()   # router: { metrics }
        self.dead_port = free_port()             # nothing listens here
        self.dead_dns_port = free_port(socket.SOCK_DGRAM)

    def config_text(self, listen=None):
        """The cluster's config; listen: raw libconfig text of the
        router's listener list instead of the usual one (another router
        of the cluster, see start_router)."""
        if listen is None:
            listen = (f"{{ address = "
                      f"{_cfg_str(f'{self.router_host}:{self.port}')}; }}"
                      f"{self.listen_extra}")
        out = [f"cluster: {{ name = {_cfg_str(self.name)}; "
               f"shards = {self.shards}; {self.cluster_extra} }};", "",
               "nodes = ("]
        rows = []
        for n in self.node_ids:
            os.makedirs(self.data_dir(n), exist_ok=True)
            ep = f"tcp://{self.net.host(n)}:{self.node_port[n]}"
            row = f"  {{ id = {_cfg_str(n)}; endpoint = {_cfg_str(ep)};"
            peer = self.peer_of(n)
            if peer:
                row += f" peer = {_cfg_str(peer)};"
            row += f" data_dir = {_cfg_str(self.data_dir(n))};"
            if self.node_metrics:
                addr = f"{self.net.host(n)}:{self.metrics_port[n]}"
                row += f" metrics = {_cfg_str(addr)};"
            ms = self.map_size
            if isinstance(ms, dict):
                ms = ms.get(n)
            if ms is not None:
                row += f" map_size = {_cfg_int(ms)};"
            rows.append(row + " }")
        out.append(",\n".join(rows))
        out += [");", "", "router: {",
                f"  hostname = {_cfg_str(self.hostname)};",
                f"  listen = ( {listen} );"]
        if self.relay_networks is not None:
            nets = ", ".join(_cfg_str(n) for n in self.relay_networks)
            out.append(f"  relay_networks = [ {nets} ];")
        if self.max_message_size is not None:
            out.append(f"  max_message_size = "
                       f"{_cfg_int(self.max_message_size)};")
        if self.max_recipients is not None:
            out.append(f"  max_recipients = {int(self.max_recipients)};")
        if self.node_timeout_ms is not None:
            out.append(f"  node_timeout_ms = {int(self.node_timeout_ms)};")
        if self.bare_lf is not None:
            out.append(f"  bare_lf = {_cfg_str(self.bare_lf)};")
        if self.router_metrics:
            addr = f"{self.router_host}:{self.router_metrics_port}"
            out.append(f"  metrics = {_cfg_str(addr)};")
        if self.router_extra:
            out.append("  " + self.router_extra)
        out.append("};")
        out.append("")
        if self.delivery is None:
            dead = f"127.0.0.1:{self.dead_port}"
            routes = ",\n    ".join(
                f"{{ domain = {_cfg_str(d)}; host = {_cfg_str(dead)}; }}"
                for d in ("example.net", "example.com", "example.org"))
            out += ["delivery: {",
                    f"  helo_name = {_cfg_str(self.hostname)};",
                    f"  dns_servers = [ "
                    f"{_cfg_str(f'127.0.0.1:{self.dead_dns_port}')} ];",
                    f"  smtp_port = {self.dead_port};",
                    f"  routes = (\n    {routes}\n  );",
                    "};"]
        else:
            out.append("delivery: {\n" + self.delivery + "\n};")
        if self.replication is not None:
            out.append("replication: {\n" + self.replication + "\n};")
        if self.extra:
            out += ["", self.extra]
        return "\n".join(out) + "\n"

    def write_config(self):
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(self.config_text())

    # -- processes --

    def _proc(self, name, argv, preexec=None):
        p = self.procs.get(name)
        if p is None:
            p = Proc(name, argv, os.path.join(self.logdir, name + ".log"),
                     preexec_fn=preexec)
            self.procs[name] = p
        else:
            p.argv = list(argv)
        return p

    def node(self, nid):
        return self.procs[nid]

    @property
    def router(self):
        return self.procs["router"]

    def start(self, nodes=None, router=True):
        """Write the config, start the nodes (all by default) then the
        router, each waited for. On a port collision everything is stopped,
        new ports picked and the whole start retried."""
        nodes = self.node_ids if nodes is None else nodes
        for attempt in range(1, START_ATTEMPTS + 1):
            self.write_config()
            try:
                for n in nodes:
                    self.start_node(n)
                if router:
                    self.start_router()
                return self
            except PortInUse as e:
                if attempt == START_ATTEMPTS:
                    raise
                log(f"harness: port collision, retrying start "
                    f"({str(e).splitlines()[0]})")
                stop_procs(list(self.procs.values()))
                self._pick_ports()
        return self

    def add_nodes(self, count):
        """Add `count` nodes (the next ids, paired as usual) to the config
        file; running processes keep the config they read. Returns the new
        ids."""
        first = len(self.node_ids)
        new = [f"n{first + i + 1}" for i in range(count)]
        self.node_ids += new
        for n in new:
            self.node_port[n] = free_port()
            self.metrics_port[n] = free_port()
        self.write_config()
        return new

    def start_node(self, nid, timeout=READY_TIMEOUT, join=False):
        """(Re)start one node and wait for its event=ready line. A restart
        keeps the node's port; a collision there is retried for a while.
        join: shoal-node -j (take the running cluster's map)."""
        if not os.path.exists(self.conf):
            self.write_config()
        p = self._proc(nid, self.net.wrap(nid, [
            bin_path("shoal-node"), "-c", self.conf, "-n", nid] +
            (["-j"] if join else [])), self.node_preexec)
        if p.running():
            raise StartError(f"{nid} is already running (pid {p.pid})")
        return self._start_retrying(p, p.starts > 0, timeout)

    def start_router(self, timeout=READY_TIMEOUT, name="router",
                     listen=None):
        """(Re)start a router and wait for its event=ready line. Another
        router of the same cluster: a new name (its process and log) and
        its own listeners in `listen` (raw libconfig text of the list),
        written with the rest of the config to NAME.conf."""
        conf = self.conf
        if listen is not None:
            conf = os.path.join(self.dir, name + ".conf")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(self.config_text(listen=listen))
        elif not os.path.exists(self.conf):
            self.write_config()
        p = self._proc(name, self.net.wrap("router", [
            bin_path("shoal-router"), "-c", conf]), self.router_preexec)
        if p.running():
            raise StartError(f"{name} is already running (pid {p.pid})")
        return self._start_retrying(p, p.starts > 0, timeout)

    def _start_retrying(self, p, is_restart, timeout):
        # a restart cannot move to another port (the others know this one):
        # wait for the old owner to go away instead
        tries = 10 if is_restart else 1
        for i in range(tries):
            try:
                p.start(ready_re=r"event=ready", timeout=timeout)
                return p
            except PortInUse:
                if i == tries - 1:
                    raise
                time.sleep(0.5)
        return p

    def kill_node(self, nid, sig=signal.SIGKILL):
        return self.procs[nid].kill(sig)

    def kill_router(self, sig=signal.SIGKILL, name="router"):
        return self.procs[name].kill(sig)

    def spawn(self, name, argv, preexec=None, ready_port=None,
              ready_re=None):
        """Start a helper program (smtp-source, smtp-sink...) whose output
        goes to a log of its own; it is stopped with the cluster."""
        p = self._proc(name, argv, preexec)
        p.start(ready_port=ready_port, ready_re=ready_re)
        return p

    def stop_all(self):
        stop_procs(list(reversed(list(self.procs.values()))))

    def logs(self):
        """{name: text} of every process log (and the shoalctl log)."""
        out = {n: p.log_text() for n, p in self.procs.items()}
        if os.path.exists(self.ctl_log):
            with open(self.ctl_log, "rb") as f:
                out["shoalctl"] = f.read().decode("utf-8", "replace")
        return out

    def dump_logs(self, why="test failed"):
        log(f"\n======== {why}: logs of every process "
            f"(config {self.conf}) ========")
        try:
            with open(self.conf, encoding="utf-8") as f:
                log("---- shoal.conf ----\n" + f.read().rstrip())
        except OSError:
            pass
        for name, text in self.logs().items():
            lines = text.splitlines()
            log(f"---- {name} log ({len(lines)} lines) ----")
            if len(lines) > LOG_DUMP_MAX_LINES:
                head = LOG_DUMP_MAX_LINES // 10
                tail = LOG_DUMP_MAX_LINES - head
                lines = (lines[:head] +
                         [f"... {len(lines) - head - tail} lines cut ..."] +
                         lines[-tail:])
            log("\n".join(lines))
        log("======== end of logs ========\n")

    def _cleanup(self):
        bad = []
        try:
            self.stop_all()
            # a sanitizer report in any daemon's log fails the test, even
            # when the report came at exit (leaks) after the checks passed
            bad = [name for name, text in self.logs().items()
                   if SANITIZER_RE.search(text)]
        finally:
            if bad or self.test.failed() or os.environ.get("SHOAL_E2E_LOGS"):
                self.dump_logs()
            if os.environ.get("SHOAL_E2E_KEEP"):
                log(f"harness: kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        if bad:
            raise AssertionError(f"sanitizer report in the log of: {bad}")

    # -- shoalctl --

    def shoalctl(self, *args, timeout=30):
        """Run shoalctl -c CONF --json ARGS. Returns (exit status, parsed
        JSON or None, stderr text). Every call is kept in the shoalctl log."""
        argv = self.net.wrap("ctl", [bin_path("shoalctl"), "-c", self.conf,
                                     "--json"] + [str(a) for a in args])
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout, cwd=REPO)
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = None, e.stdout or b"", (e.stderr or b"") + \
                f"\nharness: shoalctl timed out after {timeout}s".encode()
        out_s = out.decode("utf-8", "replace")
        err_s = err.decode("utf-8", "replace")
        doc = None
        if out_s.strip():
            try:
                doc = json.loads(out_s)
            except ValueError as e:
                err_s += f"\nharness: stdout is not JSON: {e}"
        with open(self.ctl_log, "a", encoding="utf-8") as f:
            out_cut = out_s if len(out_s) < 4000 else \
                out_s[:4000] + f"... ({len(out_s)} chars)"
            f.write(f"$ shoalctl {' '.join(str(a) for a in args)}  "
                    f"[exit {rc}, {time.monotonic() - t0:.2f}s]\n"
                    f"stdout: {out_cut.rstrip()}\nstderr: {err_s.rstrip()}\n")
        return rc, doc, err_s

    def add_user(self, name, password):
        """shoalctl user add NAME, the password on stdin (router.users_file
        must be in the config)."""
        r = subprocess.run([bin_path("shoalctl"), "-c", self.conf, "user",
                            "add", name], input=password + "\n", text=True,
                           capture_output=True, timeout=60, cwd=REPO)
        if r.returncode != 0:
            raise AssertionError(f"shoalctl user add {name}: exit "
                                 f"{r.returncode}: {r.stderr}")

    def ctl_ok(self, *args, timeout=30):
        """shoalctl that must succeed with a JSON document; returns it."""
        rc, doc, err = self.shoalctl(*args, timeout=timeout)
        if rc != 0 or doc is None:
            raise AssertionError(f"shoalctl {' '.join(map(str, args))}: "
                                 f"exit {rc}, json {doc!r}, stderr {err!r}")
        return doc

    @staticmethod
    def _wait_arg(wait_ms):
        """shoalctl's --timeout for wait_ms, or nothing (its default, 3 s,
        for each node that does not answer)."""
        return ("--timeout", str(int(wait_ms))) if wait_ms else ()

    def status(self, wait_ms=None):
        """shoalctl status; wait_ms: how long it waits for each node
        (DOWN_MS once the test killed one)."""
        return self.ctl_ok(*self._wait_arg(wait_ms), "status")

    def queue_list(self, *args, wait_ms=None):
        return self.ctl_ok(*self._wait_arg(wait_ms), "queue", "list", *args)

    def queue_show(self, qid):
        return self.ctl_ok("queue", "show", qid)

    def owners(self, status=None, wait_ms=None):
        """{shard: node id} from status' primary_shards, as the nodes at
        the newest epoch say (a restarted node may still hold an older
        map for a moment)."""
        st = status or self.status(wait_ms)
        top = max([n.get("epoch", 0) for n in st.get("nodes", [])] or [0])
        m = {}
        for n in st.get("nodes", []):
            if n.get("epoch", 0) != top:
                continue
            for s in n.get("primary_shards", []):
                m[int(s)] = n["id"]
        return m

    def owner_of(self, qid, status=None):
        return self.owners(status).get(shard_of(qid, self.shards))

    def initial_owner(self, shard):
        """Primary and replica of a shard in the map derived from config."""
        p = self.node_ids[shard % len(self.node_ids)]
        return p, self.peer_of(p)

    def queued(self, qid):
        """Entries of queue list with this qid (normally one)."""
        return [m for m in self.queue_list().get("messages", [])
                if m.get("qid") == qid]


# ---- SMTP over a raw socket ----------------------------------------------

class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines          # text after "NNN-" / "NNN "

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def qid(self):
        return qid_from_reply(self.text)

    def __repr__(self):
        return f"Reply({self.code}, {self.lines!r})"

    def __str__(self):
        return "\n".join(f"{self.code} {ln}" for ln in self.lines)


class SMTPError(AssertionError):
    pass


class SMTPConn:
    """A raw SMTP client. send() writes bytes as given; reply() reads one
    whole (multi-line) reply under a deadline. Text is UTF-8."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, greeting=True,
                 sock=None):
        self.timeout = timeout
        self.buf = b""
        self.sock = sock or socket.create_connection((host, port),
                                                     timeout=timeout)
        self.greeting = self.reply() if greeting else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise SMTPError(f"no complete reply within {self.timeout}s; "
                            f"have {self.buf[:300]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise SMTPError(f"no complete reply within {self.timeout}s; "
                            f"have {self.buf[:300]!r}") from None
        if not chunk:
            raise SMTPError(f"connection closed by server; "
                            f"unparsed {self.buf[:300]!r}")
        self.buf += chunk

    def readline(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self, timeout=None):
        """One reply: returns Reply(code, lines)."""
        lines = []
        code = None
        while True:
            ln = self.readline(timeout)
            if len(ln) < 3 or not ln[:3].isdigit() or \
                    (len(ln) > 3 and ln[3] not in " -"):
                raise SMTPError(f"malformed reply line {ln!r}")
            c = int(ln[:3])
            if code is not None and c != code:
                raise SMTPError(f"reply code changed mid-reply: {lines!r} "
                                f"then {ln!r}")
            code = c
            lines.append(ln[4:])
            if len(ln) == 3 or ln[3] == " ":
                return Reply(code, lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        self.send(line + "\r\n")
        return self.reply(timeout)

    def expect(self, line, code, timeout=None):
        r = self.cmd(line, timeout)
        if r.code != code:
            raise SMTPError(f"{line[:80]!r}: expected {code}, got {r}")
        return r

    def ehlo(self, name="client.e2e.example"):
        return self.expect(f"EHLO {name}", 250)

    def expect_silence(self, seconds=1.0):
        """Assert the server sends nothing more for `seconds`: a fixed
        wait that a slow server passes. Where the server must owe no
        reply, expect_no_more_replies() shows it without one."""
        if self.buf:
            raise SMTPError(f"unexpected extra data from server: "
                            f"{self.buf[:300]!r}")
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if chunk:
            self.buf += chunk
            raise SMTPError(f"unexpected extra data from server: "
                            f"{chunk[:300]!r}")
        raise SMTPError("server closed the connection")

    def expect_no_more_replies(self, timeout=None):
        """Assert the server owes no reply to anything sent so far: send
        HELP (taken in every state between commands, changes nothing) and
        its 214 must be the very next reply. Replies come in order (RFC
        5321 4.2), so one still owed, however late, would come first;
        unlike expect_silence() this takes no fixed time and cannot pass
        because the server was slow. The 214 is the positive control: it
        shows a reply sent now is seen."""
        r = self.cmd("HELP", timeout)
        if r.code != 214:
            raise SMTPError(f"expected nothing before the 214 to HELP, "
                            f"got {r}")
        return r

    def wait_peer_read(self, timeout=10.0):
        """Wait until the server has read every octet sent so far, for a
        step that must come after it where no reply tells: our send
        queue and the server side's receive queue both empty, as the
        kernel shows them in /proc/net/tcp (IPv4; the server must run in
        this network namespace)."""
        me, peer = self.sock.getsockname(), self.sock.getpeername()

        def drained():
            ours, theirs = tcp_queues(me, peer), tcp_queues(peer, me)
            return ours is not None and theirs is not None and \
                ours[0] == 0 and theirs[1] == 0
        wait_for(drained, timeout, f"the server at {peer[0]}:{peer[1]} "
                 f"reading all we sent", interval=0.01)

    def closed_by_peer(self, timeout=None):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout or self.timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def data(self, message):
        """DATA, then the message (bytes, CRLF lines, not yet dot-stuffed;
        a final CRLF is added when missing), then ".". Returns the reply to
        the end of data; the 354 must come first."""
        r = self.cmd("DATA")
        if r.code != 354:
            raise SMTPError(f"DATA: expected 354, got {r}")
        self.send(dot_stuff(message) + b".\r\n")
        return self.reply()

    def mail(self, sender, rcpts, message, mail_params="", ehlo=False):
        """A whole transaction; returns the reply to the end of data."""
        if ehlo:
            self.ehlo()
        self.expect(f"MAIL FROM:<{sender}>{mail_params}", 250)
        for r in rcpts:
            self.expect(f"RCPT TO:<{r}>", 250)
        return self.data(message)


def dot_stuff(message):
    if isinstance(message, str):
        message = message.encode("utf-8")
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..")


# smtp-sink -d dumps: the router's Received header says "... with ESMTP id QID"
DUMP_QID_RE = re.compile(rb"\bid ([0-9A-HJKMNP-TV-Z]{21})\b")


def sink_delivered(dump_dir):
    """{qid: copies} over every message smtp-sink (or capture_smtpd.py,
    whose message files end in .eml) dumped into dump_dir. The capture
    server's side files (.json record, .wire bytes as received) hold the
    same message again and are not counted."""
    counts = {}
    for name in os.listdir(dump_dir):
        if name.endswith((".json", ".wire")):
            continue
        try:
            with open(os.path.join(dump_dir, name), "rb") as f:
                m = DUMP_QID_RE.search(f.read(8192))
        except OSError:
            continue
        if m:
            q = m.group(1).decode()
            counts[q] = counts.get(q, 0) + 1
    return counts


def make_message(subject="e2e test", body="Hello from the Shoal e2e tests.",
                 sender="a@example.com", rcpt="b@example.net", extra=""):
    """A small RFC 5322 message as bytes with CRLF lines."""
    text = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}.{os.getpid()}@e2e.example>\r\n"
            f"{extra}\r\n{body}\r\n")
    return text.encode("utf-8")


def received_block(headers):
    """The first header field of `headers` (the router's Received:) with
    its continuation lines, as the octets it occupies with CRLF endings."""
    lines = headers.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].startswith("Received:"):
        raise AssertionError(f"headers do not start with Received: "
                             f"{headers[:200]!r}")
    block = [lines[0]]
    for ln in lines[1:]:
        if ln[:1] in (" ", "\t"):
            block.append(ln)
        else:
            break
    return "".join(ln + "\r\n" for ln in block).encode("utf-8")
