"""IP pools (docs/pools.md), end to end: shoal-router picks a pool per
message (X-Shoal-Pool from a trusted client, router.pool_rules by
authenticated user then sender domain, delivery.default_pool) and strips
the header; shoal-node binds each connection to the pool's next source
address (loopback aliases 127.0.0.x), says EHLO with that address's name,
skips an address it cannot bind (192.0.2.1, TEST-NET-1: bind() fails with
EADDRNOTAVAIL before any connect, so no packet leaves), and keeps a
pool's delivery.limits. The MX is tests/fixtures/capture_smtpd.py
(aiosmtpd) on 127.0.0.1, reached through delivery.routes; it records the
peer address and HELO name of every message and the most connections it
had open at once.
"""

import glob
import json
import os
import smtplib
import unittest

from shoaltest import REPO, ShoalTestCase, free_port, make_message, wait_for

PYTHON = "/usr/bin/python3"
CAPTURE = os.path.join(REPO, "tests", "fixtures", "capture_smtpd.py")
DELIVERY_TIMEOUT = 60


class Capture:
    """capture_smtpd.py on 127.0.0.1:port, started as one of the cluster's
    processes (stopped by PID with it, its log printed on failure)."""

    def __init__(self, test, cluster, name="capture", hold_ms=0,
                 rules=None):
        self.dir = test.tempdir("shoal-capture-")
        self.port = free_port()
        self.rules_path = os.path.join(self.dir, "rules.json")
        with open(self.rules_path, "w", encoding="utf-8") as f:
            json.dump({"rules": rules or []}, f)
        self.msgdir = os.path.join(self.dir, "msgs")
        os.mkdir(self.msgdir)
        self.argv = [PYTHON, CAPTURE, "--dir", self.msgdir, "--rules",
                     self.rules_path, "--hold-ms", str(hold_ms),
                     "--listen", f"127.0.0.1:{self.port}"]
        self.cluster = cluster
        self.name = name

    def start(self):
        self.cluster.spawn(self.name, self.argv,
                           ready_re=r"capture event=ready")

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def messages(self):
        """Every captured message: its envelope doc plus "content"."""
        out = []
        for p in sorted(glob.glob(os.path.join(self.msgdir, "[0-9]*.json"))):
            with open(p, encoding="utf-8") as f:
                doc = json.load(f)
            with open(doc["file"], "rb") as f:
                doc["content"] = f.read()
            out.append(doc)
        return out

    def wait_messages(self, n):
        return wait_for(lambda: len(self.messages()) >= n and
                        self.messages(), DELIVERY_TIMEOUT,
                        f"{n} messages at {self.name}")

    def stats(self):
        with open(os.path.join(self.msgdir, "stats.json"),
                  encoding="utf-8") as f:
            return json.load(f)


def peer_ip(doc):
    return doc["peer"].rsplit(":", 1)[0].strip("[]")


def dlog_lines(cluster, nid="n1"):
    path = os.path.join(cluster.data_dir(nid), "delivery.log")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def delivery_conf(cap, domains, pools, extra=""):
    """delivery: { } body: every domain routed to the capture."""
    routes = ",\n    ".join(
        f'{{ domain = "{d}"; host = "{cap.host}"; tls = "none"; }}'
        for d in domains)
    return (f'  helo_name = "mta.e2e.example";\n'
            f'  dns_servers = [ "127.0.0.1:{free_port()}" ];\n'
            f'  routes = (\n    {routes}\n  );\n'
            f'  pools = ( {pools} );\n' + extra)


class PoolsTest(ShoalTestCase):

    def test_1_header_rules_user_and_default(self):
        d = self.tempdir("shoal-pools-")
        users = os.path.join(d, "users")
        pools = (
            '{ name = "bulk"; addresses = ('
            ' { address = "127.0.0.2"; ehlo = "mta2.pool.example"; },'
            ' { address = "127.0.0.3"; ehlo = "mta3.pool.example"; } ); },'
            ' { name = "tx"; addresses = ('
            ' { address = "127.0.0.4"; ehlo = "mta4.pool.example"; } ); },'
            ' { name = "news"; addresses = ('
            ' { address = "127.0.0.5"; } ); },'
            ' { name = "vip"; addresses = ('
            ' { address = "127.0.0.6"; ehlo = "mta6.pool.example"; } ); }')
        c = self.cluster(start=False, nodes=1,
                         router_extra=(
                             f'users_file = "{users}";\n'
                             '  pool_rules = ('
                             ' { sender_domain = "news.example.com";'
                             ' pool = "news"; },'
                             ' { user = "carol"; pool = "vip"; } );'))
        cap = Capture(self, c)
        # one message per connection, so round robin shows per message
        c.delivery = delivery_conf(
            cap, ["dest.test"], pools,
            '  default_pool = "tx";\n'
            '  limits = ( { domain = "*"; max_msgs_per_conn = 1; } );\n')
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'tls = "none"; auth_plaintext = true; }}')
        c.write_config()
        c.add_user("carol", "pw")
        cap.start()
        c.start()

        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(4):
                msg = make_message(f"bulk {i}", rcpt=f"b{i}@dest.test",
                                   extra="X-Shoal-Pool: bulk\r\n")
                s.sendmail("a@shop.example", [f"b{i}@dest.test"], msg)
            s.sendmail("n@news.example.com", ["n@dest.test"],
                       make_message("news", rcpt="n@dest.test"))
            s.sendmail("p@plain.example", ["p@dest.test"],
                       make_message("plain", rcpt="p@dest.test"))
            # the header names no pool: the rules, then the default
            s.sendmail("q@plain.example", ["q@dest.test"],
                       make_message("unknown pool", rcpt="q@dest.test",
                                    extra="X-Shoal-Pool: nope\r\n"))
        with smtplib.SMTP("127.0.0.1", c.port2, timeout=30) as s:
            s.login("carol", "pw")
            # the user's rule comes before the sender domain's
            s.sendmail("c@news.example.com", ["c@dest.test"],
                       make_message("carol", rcpt="c@dest.test"))

        msgs = cap.wait_messages(8)
        by_rcpt = {m["rcpt_tos"][0]: m for m in msgs}
        bulk = [by_rcpt[f"b{i}@dest.test"] for i in range(4)]
        self.assertEqual({peer_ip(m) for m in bulk},
                         {"127.0.0.2", "127.0.0.3"},
                         "round robin over the pool's two addresses")
        for m in bulk:
            want = {"127.0.0.2": "mta2.pool.example",
                    "127.0.0.3": "mta3.pool.example"}[peer_ip(m)]
            self.assertEqual(m["helo"], want)
            self.assertNotIn(b"x-shoal-pool", m["content"].lower(),
                             "the pool header is removed")
        self.assertEqual(peer_ip(by_rcpt["n@dest.test"]), "127.0.0.5")
        # no ehlo for the address: delivery.helo_name
        self.assertEqual(by_rcpt["n@dest.test"]["helo"], "mta.e2e.example")
        self.assertEqual(peer_ip(by_rcpt["p@dest.test"]), "127.0.0.4")
        self.assertEqual(by_rcpt["p@dest.test"]["helo"], "mta4.pool.example")
        self.assertEqual(peer_ip(by_rcpt["q@dest.test"]), "127.0.0.4")
        self.assertNotIn(b"x-shoal-pool", by_rcpt["q@dest.test"]["content"]
                         .lower())
        self.assertEqual(peer_ip(by_rcpt["c@dest.test"]), "127.0.0.6")
        self.assertEqual(by_rcpt["c@dest.test"]["helo"], "mta6.pool.example")

        # the delivery log names pool and source of every attempt
        lines = wait_for(lambda: len(dlog_lines(c)) >= 8 and dlog_lines(c),
                         DELIVERY_TIMEOUT, "8 delivery log lines")
        got = {ln["rcpt"]: (ln["pool"], ln["source"], ln["result"])
               for ln in lines}
        self.assertEqual(got["n@dest.test"],
                         ("news", "127.0.0.5", "delivered"))
        self.assertEqual(got["c@dest.test"],
                         ("vip", "127.0.0.6", "delivered"))
        self.assertEqual(got["p@dest.test"], ("tx", "127.0.0.4", "delivered"))
        for i in range(4):
            pool, src, res = got[f"b{i}@dest.test"]
            self.assertEqual((pool, res), ("bulk", "delivered"))
            self.assertEqual(src, peer_ip(by_rcpt[f"b{i}@dest.test"]))

    def test_2_pool_header_name_is_configurable(self):
        # router.pool_header names another field: X-Shoal-Pool is then
        # an ordinary header, delivered as is
        pools = ('{ name = "bulk"; addresses = ('
                 ' { address = "127.0.0.2"; } ); },'
                 ' { name = "tx"; addresses = ('
                 ' { address = "127.0.0.4"; } ); }')
        c = self.cluster(start=False, nodes=1,
                         router_extra='pool_header = "X-Mail-Class";')
        cap = Capture(self, c)
        c.delivery = delivery_conf(cap, ["dest.test"], pools,
                                   '  default_pool = "tx";\n')
        c.write_config()
        cap.start()
        c.start()
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            s.sendmail("a@shop.example", ["k@dest.test"],
                       make_message("class", rcpt="k@dest.test",
                                    extra="x-mail-class:\r\n bulk\r\n"))
            s.sendmail("a@shop.example", ["o@dest.test"],
                       make_message("other", rcpt="o@dest.test",
                                    extra="X-Shoal-Pool: bulk\r\n"))
        by_rcpt = {m["rcpt_tos"][0]: m for m in cap.wait_messages(2)}
        k, o = by_rcpt["k@dest.test"], by_rcpt["o@dest.test"]
        self.assertEqual(peer_ip(k), "127.0.0.2")
        self.assertNotIn(b"x-mail-class", k["content"].lower())
        self.assertEqual(peer_ip(o), "127.0.0.4")
        self.assertIn(b"X-Shoal-Pool: bulk\r\n", o["content"])

    def test_3_unbindable_address_is_skipped(self):
        pools = ('{ name = "odd"; addresses = ('
                 ' { address = "192.0.2.1"; ehlo = "never.pool.example"; },'
                 ' { address = "127.0.0.7"; ehlo = "mta7.pool.example"; } ); }')
        c = self.cluster(start=False, nodes=1)
        cap = Capture(self, c)
        c.delivery = delivery_conf(
            cap, ["dest.test"], pools,
            '  default_pool = "odd";\n'
            '  limits = ( { domain = "*"; max_msgs_per_conn = 1; } );\n')
        c.write_config()
        cap.start()
        c.start()
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(3):
                s.sendmail("a@shop.example", [f"u{i}@dest.test"],
                           make_message(f"odd {i}", rcpt=f"u{i}@dest.test"))
        msgs = cap.wait_messages(3)
        self.assertEqual({peer_ip(m) for m in msgs}, {"127.0.0.7"})
        self.assertEqual({m["helo"] for m in msgs}, {"mta7.pool.example"})
        self.assertEqual(cap.stats()["connections"], 3,
                         "no connection came from 192.0.2.1")
        node_log = c.node("n1").log_text()
        self.assertIn("pool=odd source=192.0.2.1 event=source_cooling_down",
                      node_log)
        # cooled down once: the later messages did not try it again
        self.assertEqual(node_log.count("source_cooling_down"), 1, node_log)
        lines = wait_for(lambda: len(dlog_lines(c)) >= 3 and dlog_lines(c),
                         DELIVERY_TIMEOUT, "3 delivery log lines")
        self.assertEqual({(ln["source"], ln["result"]) for ln in lines},
                         {("127.0.0.7", "delivered")})

    def test_4_pool_limit_holds(self):
        pools = ('{ name = "bulk"; addresses = ('
                 ' { address = "127.0.0.2"; }, { address = "127.0.0.3"; } );'
                 ' }')
        c = self.cluster(start=False, nodes=1)
        cap = Capture(self, c, hold_ms=300)
        wide = Capture(self, c, name="wide", hold_ms=300)
        conf = delivery_conf(
            cap, ["dest.test"], pools,
            '  default_pool = "bulk";\n'
            '  limits = ( { domain = "*"; max_connections = 20; },\n'
            '    { domain = "dest.test"; pool = "bulk";'
            ' max_connections = 1; } );\n')
        # the same pool to another domain has no such limit: the control
        c.delivery = conf.replace(
            "  routes = (\n",
            f'  routes = (\n    {{ domain = "wide.test"; host = '
            f'"{wide.host}"; tls = "none"; }},\n')
        c.write_config()
        cap.start()
        wide.start()
        c.start()
        n = 6
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            for i in range(n):
                for dom in ("dest.test", "wide.test"):
                    s.sendmail("a@shop.example", [f"l{i}@{dom}"],
                               make_message(f"limit {i}",
                                            rcpt=f"l{i}@{dom}"))
        cap.wait_messages(n)
        wide.wait_messages(n)
        st = cap.stats()
        self.assertEqual(st["max_open"], 1, st)
        self.assertGreater(wide.stats()["max_open"], 1,
                           "without the limit the pool opens more")


if __name__ == "__main__":
    unittest.main()
