"""End-to-end tests of /metrics on the router (router.metrics) and on the
nodes (nodes[].metrics): a real cluster takes accepted and refused mail,
delivers some of it to a capture server (test_delivery's peers: dnsmasq and
capture_smtpd.py on loopback), bounces some and defers some to a dead MX;
then both endpoints are scraped.

Every scrape is read twice: by prometheus_client's parser (what Prometheus
users run) and by strict_parse() below, which checks each line on its own
(`# HELP`, `# TYPE`, or `name{labels} value`), that every family has HELP
and TYPE before its samples, that label values are escaped right, and that
histograms are cumulative in ascending le order with +Inf == _count. The
values must then match what the test did, exactly where the test knows.
"""

import math
import os
import re
import smtplib
import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from shoaltest import SMTPConn, ShoalTestCase, make_message, wait_for
from test_delivery import DEST, DEST_MX, SENDER, Peers
from test_tls import client_ctx, make_cert

SCRAPE_TIMEOUT = 10
OUTSIDER_IP = "127.0.0.9"          # not in relay_networks below
DEST_LABELS = 20                   # node/ops/metrics.h METRICS_DEST_LABELS
MANY = [f"d{i:02d}.test" for i in range(DEST_LABELS + 5)]
ENQUEUE_BUCKETS = ["0.0005", "0.001", "0.002", "0.005", "0.01", "0.02",
                   "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "+Inf"]

# ---- the strict reader ------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVALUE = r'(?:[^"\\\n]|\\[\\"n])*'
SAMPLE_RE = re.compile(rf'^({NAME})(?:\{{({LNAME}="{LVALUE}"'
                       rf'(?:,{LNAME}="{LVALUE}")*)\}})? (\S+)$')
LABEL_RE = re.compile(rf'({LNAME})="({LVALUE})"')
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram)$")
VALUE_RE = re.compile(r"^(?:[+-]?\d+(?:\.\d+)?|\+Inf|-Inf|NaN)$")


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1),
                                                      m.group(1)), v)


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return None


def strict_parse(text):
    """{(name, frozenset(labels)): value} and {family: type}; raises
    AssertionError naming the first line that breaks a rule."""
    if not text.endswith("\n"):
        raise AssertionError("exposition does not end with a newline")
    helps, types, samples = {}, {}, {}
    done, current = set(), None
    for no, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {no}: {line!r}"
        if line.startswith("#"):
            m = HELP_RE.match(line)
            if m:
                if m.group(1) in helps:
                    raise AssertionError(f"second HELP, {where}")
                if re.search(r"\\[^\\n]", m.group(2)):
                    raise AssertionError(f"bad escape in HELP, {where}")
                helps[m.group(1)] = m.group(2)
                continue
            m = TYPE_RE.match(line)
            if not m:
                raise AssertionError(f"neither HELP nor TYPE, {where}")
            if m.group(1) in types or m.group(1) not in helps:
                raise AssertionError(f"TYPE twice or before HELP, {where}")
            types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"not `name{{labels}} value`, {where}")
        name, labels, value = m.groups()
        fam = family_of(name, types)
        if fam is None:
            raise AssertionError(f"sample before its TYPE, {where}")
        if fam != current:
            if fam in done:
                raise AssertionError(f"family {fam} split up, {where}")
            if current:
                done.add(current)
            current = fam
        if not VALUE_RE.match(value):
            raise AssertionError(f"bad value, {where}")
        lab = {}
        for k, v in LABEL_RE.findall(labels or ""):
            if k in lab:
                raise AssertionError(f"label {k} twice, {where}")
            lab[k] = unescape(v)
        key = (name, frozenset(lab.items()))
        if key in samples:
            raise AssertionError(f"series twice, {where}")
        samples[key] = float(value)
    for fam, t in types.items():
        if t == "histogram":
            check_histogram(fam, samples)
    return samples, types


def check_histogram(fam, samples):
    groups = {}
    for (name, labels), v in samples.items():
        if name == fam + "_bucket":
            d = dict(labels)
            le = d.pop("le")
            groups.setdefault(frozenset(d.items()), []).append((le, v))
    for rest, buckets in groups.items():
        les = [float(le) for le, _ in buckets]
        if les != sorted(les) or les[-1] != math.inf:
            raise AssertionError(f"{fam}{dict(rest)}: le not ascending to "
                                 f"+Inf: {buckets}")
        counts = [v for _, v in buckets]
        if counts != sorted(counts):
            raise AssertionError(f"{fam}{dict(rest)}: not cumulative: "
                                 f"{buckets}")
        if samples.get((fam + "_count", rest)) != counts[-1]:
            raise AssertionError(f"{fam}{dict(rest)}: +Inf != _count")
        if (fam + "_sum", rest) not in samples:
            raise AssertionError(f"{fam}{dict(rest)}: no _sum")


def client_parse(text):
    """The same samples as prometheus_client reads them."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


class Scrape:
    """One scrape, read both ways (they must agree)."""

    def __init__(self, text):
        self.text = text
        self.samples, self.types = strict_parse(text)
        theirs = client_parse(text)
        if theirs != self.samples:
            only_ours = set(self.samples) - set(theirs)
            only_theirs = set(theirs) - set(self.samples)
            raise AssertionError(f"prometheus_client reads it otherwise: "
                                 f"only ours {sorted(only_ours)[:5]}, only "
                                 f"theirs {sorted(only_theirs)[:5]}")

    def series(self, name, **labels):
        want = set(labels.items())
        return {k: v for k, v in self.samples.items()
                if k[0] == name and want <= k[1]}

    def get(self, name, **labels):
        found = self.series(name, **labels)
        if len(found) != 1:
            raise AssertionError(f"{name}{labels}: {len(found)} series "
                                 f"match: {sorted(found)[:5]}")
        return next(iter(found.values()))

    def sum(self, name, **labels):
        return sum(self.series(name, **labels).values())

    def label_values(self, name, label):
        return {dict(k[1]).get(label) for k in self.series(name)}


def fetch(url, timeout=SCRAPE_TIMEOUT):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        ctype = r.headers["Content-Type"]
        if not ctype.startswith("text/plain; version=0.0.4"):
            raise AssertionError(f"{url}: Content-Type {ctype!r}")
        return r.read().decode("utf-8")


def scrape(c, who):
    return Scrape(fetch(c.metrics_url(who)))


def outsider_conn(c):
    """An SMTP connection from OUTSIDER_IP: not a relay client."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((OUTSIDER_IP, 0))
    s.connect((c.router_host, c.port))
    return SMTPConn(c.port, sock=s)


def raw_http(host, port, data, timeout=5):
    """Send bytes, return what comes back until the server closes (or
    stops talking for `timeout`)."""
    out = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return out


class MetricsTest(ShoalTestCase):

    def start(self, **cluster_kw):
        """A cluster with both kinds of metrics and test_delivery's peers:
        dest.test and MANY all have mx1.dest.test (the capture server) as
        MX; bounce@ is refused there with 550; dead.test is routed to a
        closed port; nx.test does not exist. Retries wait 600 s."""
        kw = dict(relay_networks=("127.0.0.1/32",), max_recipients=26,
                  max_message_size=100000, node_metrics=True,
                  router_metrics=True)
        kw.update(cluster_kw)
        c = self.cluster(start=False, **kw)
        p = Peers(self, c)
        p.mx += [(d, DEST_MX, 10) for d in MANY]
        cap = p.capture(rules=[{"cmd": "RCPT", "match": "bounce@",
                                "reply": "550 5.1.1 No such user"}])
        p.start()
        c.delivery = p.delivery(
            retry="[ 600 ]",
            routes=[("dead.test", f"127.0.0.1:{c.dead_port}")])
        c.start()
        p.adopt()
        return c, cap

    def send(self, c, rcpts, subject="metrics"):
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            r = conn.mail(SENDER, rcpts, make_message(subject=subject))
            conn.expect("QUIT", 221)
        self.assertEqual(r.code, 250, r)
        return r.qid

    def scrape_nodes(self, c):
        return {n: scrape(c, n) for n in c.node_ids}

    def node_sum(self, c, name, **labels):
        return sum(s.sum(name, **labels)
                   for s in self.scrape_nodes(c).values())

    # ---- 1 ----

    def test_01_counters_match_what_was_done(self):
        c, cap = self.start()
        r0 = scrape(c, "router")
        self.assertEqual(r0.get("shoal_router_messages_accepted_total"), 0)
        self.assertEqual(r0.get("shoal_router_enqueue_seconds_count"), 0)
        self.assertEqual(
            [dict(k[1])["le"] for k in sorted(
                r0.series("shoal_router_enqueue_seconds_bucket"),
                key=lambda k: float(dict(k[1])["le"]))],
            ENQUEUE_BUCKETS)
        sessions = 0

        # accepted: 5 messages, 29 recipients
        self.send(c, [f"ok@{DEST}"])
        self.send(c, [f"bounce@{DEST}"])
        dead = self.send(c, ["someone@dead.test"])
        self.send(c, ["who@nx.test"])
        many = self.send(c, [f"u@{d}" for d in MANY])
        sessions += 5
        accepted, rcpts = 5, 1 + 1 + 1 + 1 + len(MANY)

        # refused: relay denied 3 times from outside relay_networks
        with outsider_conn(c) as conn:
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            for i in range(3):
                conn.expect(f"RCPT TO:<x{i}@{DEST}>", 554)
            conn.expect("QUIT", 221)
        sessions += 1
        # too many recipients (26 taken, the 27th refused), too big
        # (SIZE=), bad syntax (MAIL without brackets), bad sequence
        with SMTPConn(c.port) as conn:
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            for i in range(26):
                conn.expect(f"RCPT TO:<r{i}@{DEST}>", 250)
            conn.expect(f"RCPT TO:<r26@{DEST}>", 452)
            conn.expect("RSET", 250)
            conn.expect(f"MAIL FROM:<{SENDER}> SIZE=500000", 552)
            bad = conn.cmd("MAIL FROM:nobrackets@x.test")
            self.assertGreaterEqual(bad.code, 500, bad)
            conn.expect("DATA", 503)
            conn.expect("QUIT", 221)
        sessions += 1
        rcpts += 26

        r = wait_for(lambda: (lambda s: s if s.get(
            "shoal_router_sessions") == 0 else None)(scrape(c, "router")),
            10, "no sessions open in the router's metrics")
        self.assertEqual(r.get("shoal_router_sessions_total") -
                         r0.get("shoal_router_sessions_total"), sessions)
        self.assertEqual(r.get("shoal_router_messages_accepted_total"),
                         accepted)
        self.assertEqual(r.get("shoal_router_recipients_accepted_total"),
                         rcpts)
        want = {"relay_denied": 3, "too_many_recipients": 1, "too_big": 1,
                "bad_syntax": 1, "bad_sequence": 1}
        for reason in r.label_values("shoal_router_rejected_total",
                                     "reason"):
            self.assertEqual(
                r.get("shoal_router_rejected_total", reason=reason),
                want.get(reason, 0), f"rejected reason={reason}")
        self.assertLessEqual(set(want), r.label_values(
            "shoal_router_rejected_total", "reason"))
        self.assertEqual(r.get("shoal_router_enqueue_seconds_count"),
                         accepted)
        self.assertEqual(r.get("shoal_router_enqueue_seconds_bucket",
                               le="+Inf"), accepted)
        self.assertGreater(r.get("shoal_router_enqueue_seconds_sum"), 0)
        self.assertEqual(r.sum("shoal_router_enqueue_requests_total",
                               result="ok"), accepted)
        self.assertEqual(r.sum("shoal_router_enqueue_requests_total"),
                         accepted)
        self.assertEqual(r.label_values("shoal_router_enqueue_requests_total",
                                        "node"), {"n1", "n2", "none"})
        self.assertGreater(r.get("shoal_router_received_bytes_total"),
                           accepted * 100)
        self.assertEqual(r.get("shoal_router_enqueue_pending"), 0)

        # the nodes: 25 + 1 delivered, 2 bounced (550, NXDOMAIN) with a DSN
        # each to SENDER (delivered too), 1 deferred to the dead route
        wait_for(lambda: len(cap.to(SENDER)) >= 2 and
                 len(cap.messages()) >= 28, 30,
                 "25 + 1 messages and 2 DSNs at the capture server")
        want_results = {"delivered": 28, "bounced": 2, "deferred": 1}

        def settled():
            got = {res: self.node_sum(c, "shoal_deliveries_total",
                                      result=res) for res in want_results}
            return got if got == want_results else None
        try:
            wait_for(settled, 20, f"deliveries {want_results}")
        except AssertionError:
            got = {res: self.node_sum(c, "shoal_deliveries_total",
                                      result=res) for res in want_results}
            raise AssertionError(f"deliveries: {got}, want {want_results}")
        nodes = self.scrape_nodes(c)
        self.assertEqual(sum(s.sum("shoal_dns_lookups_total",
                                   result="nxdomain")
                             for s in nodes.values()), 1)
        self.assertGreaterEqual(sum(s.sum("shoal_dns_lookups_total",
                                          result="ok")
                                    for s in nodes.values()), 28)
        # one attempt per job: 5 messages in 29 jobs, 2 DSNs
        self.assertEqual(sum(s.get("shoal_delivery_attempt_seconds_count")
                             for s in nodes.values()), 29 + 2)
        # the destination label stays bounded; the node that delivered
        # the 25-domain message names 20 domains and counts the rest
        owner = c.owner_of(many)
        for nid, s in nodes.items():
            dests = s.label_values("shoal_deliveries_total", "destination")
            self.assertIn("other", dests)
            self.assertLessEqual(len(dests), DEST_LABELS + 1, nid)
            self.assertEqual(
                s.label_values("shoal_delivery_connections", "destination"),
                dests)
            self.assertEqual(s.sum("shoal_delivery_connections"),
                             s.get("shoal_delivery_connections_open"))
        s = nodes[owner]
        self.assertEqual(len(s.label_values("shoal_deliveries_total",
                                            "destination")),
                         DEST_LABELS + 1)
        self.assertGreaterEqual(s.get("shoal_deliveries_total",
                                      destination="other",
                                      result="delivered"), 5)

        # queue depth: the dead route's recipient is deferred; held after
        # shoalctl queue hold
        def depth(state):
            return self.node_sum(c, "shoal_queue_depth", state=state)
        wait_for(lambda: (depth("deferred"), depth("queued"),
                          depth("held")) == (1, 0, 0), 10,
                 "queue depth deferred=1 queued=0 held=0")
        self.assertEqual(self.node_sum(c, "shoal_queue_messages"), 1)
        c.ctl_ok("queue", "hold", dead)
        wait_for(lambda: (depth("deferred"), depth("held")) == (0, 1), 10,
                 "queue depth deferred=0 held=1 after the hold")
        # connections close when idle (5 s): the gauges follow
        wait_for(lambda: self.node_sum(c, "shoal_delivery_connections") == 0,
                 20, "no delivery connections open")
        for nid in c.node_ids:
            self.assertTrue(c.node(nid).running(), nid)
        self.assertTrue(c.router.running())

    # ---- 2 ----

    def test_02_bad_requests_do_not_hurt(self):
        c = self.cluster(node_metrics=True, router_metrics=True)
        for who in ["router"] + c.node_ids:
            url = c.metrics_url(who)
            host, port = url.split("/")[2].rsplit(":", 1)
            port = int(port)
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(c.metrics_url(who, "/nope"),
                                       timeout=SCRAPE_TIMEOUT)
            self.assertEqual(e.exception.code, 404, who)
            req = urllib.request.Request(url, data=b"x", method="POST")
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=SCRAPE_TIMEOUT)
            self.assertEqual(e.exception.code, 405, who)
            # garbage, a huge header, a huge request line, a huge body,
            # and a connection that never finishes its request
            answers = [
                raw_http(host, port, bytes(range(256)) * 64),
                raw_http(host, port, b"GET /metrics HTTP/1.1\r\nX: " +
                         b"a" * 200000 + b"\r\n\r\n"),
                raw_http(host, port, b"GET /" + b"m" * 200000 +
                         b" HTTP/1.1\r\n\r\n"),
                raw_http(host, port, b"POST /metrics HTTP/1.1\r\n"
                         b"Content-Length: 100000000\r\n\r\n" +
                         b"z" * 100000),
            ]
            for a in answers:
                self.assertFalse(a.startswith(b"HTTP/1.1 200"), a[:200])
            idle = socket.create_connection((host, port), timeout=5)
            idle.sendall(b"GET /metr")
            # still serving, and what it serves still parses
            s = Scrape(fetch(url))
            self.assertTrue(s.types, who)
            idle.close()
            head = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(head, timeout=SCRAPE_TIMEOUT) as r:
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read(), b"")
        for nid in c.node_ids:
            self.assertTrue(c.node(nid).running(), nid)
        self.assertTrue(c.router.running())
        # and the cluster still takes mail
        with SMTPConn(c.port) as conn:
            conn.ehlo()
            r = conn.mail("a@example.com", ["b@example.net"], make_message())
        self.assertEqual(r.code, 250, r)
        wait_for(lambda: scrape(c, "router").get(
            "shoal_router_messages_accepted_total") == 1, 10,
            "the message counted")

    # ---- 3 ----

    def test_03_unusable_address_is_logged_not_fatal(self):
        c = self.cluster(start=False, router_metrics=True)
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind((c.router_host, 0))
        taken.listen(1)
        c.router_metrics_port = taken.getsockname()[1]
        c.start()
        wait_for(lambda: "metrics" in c.router.log_text() and
                 "listen_failed" in c.router.log_text(), 10,
                 "the router logging that /metrics cannot listen")
        with SMTPConn(c.port) as conn:
            conn.ehlo()
            r = conn.mail("a@example.com", ["b@example.net"], make_message())
        self.assertEqual(r.code, 250, r)
        self.assertTrue(c.router.running())

    # ---- 4 ----

    def test_04_tls_and_auth_counters(self):
        d = self.tempdir("shoal-metrics-")
        cert, key = make_cert(d, "mx.metrics.example")
        users = os.path.join(d, "users")
        c = self.cluster(start=False, relay_networks=(), router_metrics=True,
                         router_extra=f'tls_cert = "{cert}"; tls_key = '
                                      f'"{key}"; users_file = "{users}";')
        c.write_config()
        c.add_user("alice", "s3cret pass")
        c.start()
        with smtplib.SMTP(c.router_host, c.port, timeout=15) as s:
            s.ehlo()
            code, _ = s.docmd("AUTH", "PLAIN")
            self.assertEqual(code, 538, "AUTH before TLS")
            s.starttls(context=client_ctx())
            s.ehlo()
            s.user, s.password = "alice", "wrong"
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                s.auth("PLAIN", s.auth_plain)
            s.user, s.password = "alice", "s3cret pass"
            s.auth("PLAIN", s.auth_plain)
            s.sendmail("a@example.org", ["b@example.net"], make_message())
        # a handshake that fails: STARTTLS, then bytes that are not TLS
        with SMTPConn(c.port) as conn:
            conn.ehlo()
            conn.expect("STARTTLS", 220)
            conn.send(b"\x16\x03\x01\x00\x05hello, this is not TLS\r\n" * 4)
            conn.closed_by_peer(10)

        def counted():
            r = scrape(c, "router")
            return r if r.get("shoal_router_sessions") == 0 else None
        r = wait_for(counted, 10, "both sessions over")
        self.assertEqual(r.get("shoal_router_tls_handshakes_total",
                               result="ok"), 1)
        self.assertEqual(r.get("shoal_router_tls_handshakes_total",
                               result="failed"), 1)
        self.assertEqual(r.get("shoal_router_auth_total", result="ok"), 1)
        self.assertEqual(r.get("shoal_router_auth_total", result="failed"),
                         1)
        self.assertEqual(r.get("shoal_router_rejected_total",
                               reason="tls_required"), 1)
        self.assertEqual(r.get("shoal_router_rejected_total",
                               reason="auth_failed"), 1)
        self.assertEqual(r.get("shoal_router_messages_accepted_total"), 1)
