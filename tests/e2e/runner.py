"""Run Shoal's end-to-end tests: every tests/e2e/test_*.py (unittest).

    python3 tests/e2e/runner.py [FILTER...]

A FILTER keeps the tests whose id (module.Class.test_name) contains it.
Prints each test and its result as it goes; the harness (shoaltest.py)
prints the logs of every process a failed test started. The last line is
exactly `e2e: N passed, N failed` (skips are reported on the line before
and counted in neither). Re-executes itself under Debian's /usr/bin/python3,
which has aiosmtpd and dkim. Env: SHOAL_BIN (binaries, default "bin" under
the repo root), SHOAL_E2E_TIMEOUT (seconds per test, default 300),
SHOAL_E2E_KEEP=1 keeps temp dirs, SHOAL_E2E_LOGS=1 prints logs always,
SHOAL_E2E_JOBS=N runs the modules not in SERIAL N at a time, each in a
worker process of its own (longest first, the next one as soon as a
worker ends; each test's lines are printed together), then the SERIAL
ones alone: those time faults, failovers or latencies, which a busy
neighbour would distort.
"""

import os
import signal
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def _reexec():
    if os.environ.get("SHOAL_E2E_REEXEC") or not os.path.exists(
            SYSTEM_PYTHON):
        return
    if os.path.realpath(sys.executable) == os.path.realpath(SYSTEM_PYTHON):
        return
    os.environ["SHOAL_E2E_REEXEC"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, "-u", os.path.abspath(__file__)]
             + sys.argv[1:])


_reexec()

import re          # noqa: E402  (after the re-exec on purpose)
import time        # noqa: E402
import traceback   # noqa: E402
import unittest    # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class TestTimeout(AssertionError):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded SHOAL_E2E_TIMEOUT "
                      f"({os.environ.get('SHOAL_E2E_TIMEOUT', '300')}s)")


def _on_term(signum, frame):
    # turn SIGTERM/SIGHUP into an exception so cleanups kill our children
    raise KeyboardInterrupt(f"signal {signum}")


class Result(unittest.TestResult):
    """Prints each test as it ends and counts outcomes per test."""

    def __init__(self, timeout):
        super().__init__()
        self.timeout = timeout
        self.n_pass = self.n_fail = self.n_skip = 0
        self.current = None
        self.status = None
        self.t0 = 0.0

    def _out(self, text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def startTest(self, test):
        super().startTest(test)
        self.current = test
        self.status = "ok"
        self.detail = ""
        self.t0 = time.monotonic()
        self._out(f"{test.id()} ...")
        signal.alarm(self.timeout)

    def stopTest(self, test):
        signal.alarm(0)
        super().stopTest(test)
        dt = time.monotonic() - self.t0
        if self.status == "ok":
            self.n_pass += 1
        elif self.status == "skipped":
            self.n_skip += 1
        else:
            self.n_fail += 1
        extra = f": {self.detail}" if self.detail else ""
        self._out(f"{test.id()} ... {self.status} ({dt:.1f}s){extra}")
        self.current = None

    def _failed(self, test, err, kind):
        text = self._exc_info_to_string(err, test)
        self._out(f"---- {kind}: {test.id()} ----\n{text.rstrip()}\n----")
        if self.current is None:
            # a class or module fixture failed outside any test
            self.n_fail += 1
            self._out(f"{test.id()} ... {kind}")
        elif self.status in ("ok", "skipped"):
            self.status = kind

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed(test, err, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._failed(test, err, "ERROR")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "FAIL" if issubclass(err[0], test.failureException) \
                else "ERROR"
            self._failed(subtest, err, kind)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.current is None:
            self.n_skip += 1
            self._out(f"{test.id()} ... skipped: {reason}")
        elif self.status == "ok":
            self.status = "skipped"
            self.detail = reason

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.status = "FAIL"
        self.detail = "unexpected success"


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


# Modules that run alone, after the parallel phase: fault injection,
# failover and lease timing, latency bounds, the demo's fixed ports.
SERIAL = ("test_faults", "test_pair_faults", "test_replication",
          "test_promises", "test_auth", "test_local")

# Rough seconds per module (its tests' times in a 2-core CI run), to
# start the long ones first: modules are handed out one at a time, and a
# long one started last would keep one worker busy while the other has
# nothing left to do. An unknown module counts as 5; the order changes
# only how long the run takes.
WEIGHT = {"test_webhooks": 70, "test_suppress": 50, "test_mta_sts": 45,
          "test_delivery": 38, "test_priority": 35, "test_lost_commit": 30,
          "test_http": 28, "test_ops": 16, "test_ingest": 15,
          "test_haproxy": 13, "test_shaping": 10, "test_dane": 9,
          "test_hostile": 9, "test_metrics": 8, "test_shoalctl": 8,
          "test_wire": 8, "test_queue_counts": 7, "test_session": 7,
          "test_tls": 7, "test_dkim": 6}

TEST_END = re.compile(r"^\S+ \.\.\. (ok|FAIL|ERROR|skipped)")
SUMMARY = re.compile(r"^e2e: (\d+) passed, (\d+) failed$")


def _module(test):
    return test.id().split(".", 1)[0]


def _longest_first(modules):
    """modules in the order to start them: heaviest first, then by name
    (the same order every run)."""
    return sorted(modules, key=lambda m: (-WEIGHT.get(m, 5), m))


def _run_workers(modules, jobs, out):
    """Run each module in a worker process of its own, `jobs` at a time,
    the longest first and the next one as soon as a worker ends; print
    each one's lines test by test as they come. Returns (passed, failed)
    over all workers. Waits on events only: a worker's output pipe
    becoming readable, or its process ending (a pidfd), whichever comes
    first."""
    import codecs
    import selectors
    import subprocess

    sel = selectors.DefaultSelector()
    live = []
    total = {"passed": 0, "failed": 0}

    def feed(w, text, done):
        lines = (w["part"] + text).split("\n")
        w["part"] = lines.pop()
        if done and w["part"]:
            lines.append(w["part"])
            w["part"] = ""
        for ln in lines:
            m = SUMMARY.match(ln)
            if m:
                total["passed"] += int(m.group(1))
                total["failed"] += int(m.group(2))
                continue
            w["buf"].append(ln)
            if TEST_END.match(ln):
                out("\n".join(w["buf"]))
                w["buf"] = []

    def drain(w):
        """What the pipe holds now (non-blocking); False at its end."""
        fd = w["p"].stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            feed(w, w["dec"].decode(data), False)

    def finish(w):
        if w["out_open"]:
            drain(w)
            sel.unregister(w["p"].stdout)
        sel.unregister(w["pidfd"])
        os.close(w["pidfd"])
        w["p"].wait()
        feed(w, w["dec"].decode(b"", final=True), True)
        if w["buf"]:
            out("\n".join(w["buf"]))
        if w["p"].returncode not in (0, 1):
            out(f"e2e: a worker ended with status {w['p'].returncode}")
            total["failed"] += 1
        w["p"].stdout.close()
        live.remove(w)

    def spawn(module):
        env = dict(os.environ, SHOAL_E2E_JOBS="1", SHOAL_E2E_REEXEC="1")
        p = subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__), module + "."],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        os.set_blocking(p.stdout.fileno(), False)
        w = {"p": p, "buf": [], "part": "", "out_open": True,
             "dec": codecs.getincrementaldecoder("utf-8")("replace"),
             "pidfd": os.pidfd_open(p.pid)}
        sel.register(p.stdout, selectors.EVENT_READ, ("out", w))
        sel.register(w["pidfd"], selectors.EVENT_READ, ("exit", w))
        live.append(w)

    waiting = _longest_first(modules)  # modules not started yet
    try:
        while waiting or live:
            while waiting and len(live) < jobs:
                spawn(waiting.pop(0))
            for key, _ in sel.select():
                kind, w = key.data
                if w not in live:
                    continue
                if kind == "out":
                    if not drain(w):
                        # the end of its output: its exit follows
                        sel.unregister(w["p"].stdout)
                        w["out_open"] = False
                else:
                    # ended; output its children may still hold open is
                    # read as far as it is there now
                    finish(w)
    finally:
        for w in list(live):
            w["p"].kill()
            w["p"].wait()
    return total["passed"], total["failed"]


def _discover(loader, filters):
    """Every test module's tests; when each filter names a whole module
    ("test_x.", what a worker is given) only those modules are loaded, as
    importing all of them again in every worker costs a few tenths of a
    second each time."""
    names = [f[:-1] for f in filters if re.fullmatch(r"test_\w+\.", f)]
    if not filters or len(names) != len(filters) or not all(
            os.path.isfile(os.path.join(HERE, n + ".py")) for n in names):
        return loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    return unittest.TestSuite(
        loader.discover(HERE, pattern=n + ".py", top_level_dir=HERE)
        for n in names)


def main(argv):
    os.chdir(REPO)
    sys.path.insert(0, HERE)
    filters = [a for a in argv if not a.startswith("-")]
    timeout = int(os.environ.get("SHOAL_E2E_TIMEOUT", "300"))
    jobs = int(os.environ.get("SHOAL_E2E_JOBS", "1") or 1)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)

    loader = unittest.TestLoader()
    suite = _discover(loader, filters)
    tests = [t for t in _flatten(suite)
             if not filters or any(f in t.id() for f in filters)]
    result = Result(timeout)
    interrupted = False
    matched = len(tests)
    w_passed = w_failed = 0
    try:
        if jobs > 1:
            parallel = sorted({_module(t) for t in tests} - set(SERIAL))
            if len(parallel) > 1:
                w_passed, w_failed = _run_workers(parallel, jobs,
                                                  result._out)
                tests = [t for t in tests if _module(t) not in parallel]
        # one suite keeps setUpClass/setUpModule semantics
        unittest.TestSuite(tests).run(result)
    except KeyboardInterrupt as e:
        interrupted = True
        result._out(f"e2e: interrupted ({e}); stopping")
        if result.current is not None:
            result.n_fail += 1
    except Exception:
        traceback.print_exc()
        result.n_fail += 1
    if not matched:
        result._out(f"e2e: no tests matched {filters!r}")
    if result.n_skip:
        result._out(f"e2e: {result.n_skip} skipped")
    result.n_pass += w_passed
    result.n_fail += w_failed
    result._out(f"e2e: {result.n_pass} passed, {result.n_fail} failed")
    return 1 if (result.n_fail or interrupted) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
