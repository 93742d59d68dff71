"""End-to-end tests of the suppression list (docs/suppression.md): a
"no such user" bounce puts the address on the list of the owner of its
shard; later RCPTs to it are refused (mode refuse) or bounced without an
attempt (mode bounce); shoalctl suppress list/add/remove/show; the list
survives kill -9 of its owner and failover; a node that does not answer
the RCPT check lets the recipient through (fail open).

Real parts only: the router and nodes, dnsmasq serving the MX records and
tests/fixtures/capture_smtpd.py as the MX (it answers 550 5.1.1 for the
recipient a test names, and keeps every message it accepts). The helpers
and peers are those of test_delivery.py.
"""

import re
import time

import test_delivery as td
from shoaltest import SMTPConn, ShoalTestCase, make_message, shard_of, \
    wait_for

SENDER = td.SENDER
DEST = td.DEST
POLL = td.POLL
UNKNOWN = ("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown "
           "in local recipient table")


class SuppressTest(ShoalTestCase):

    # the cluster-and-peers helpers of test_delivery.py (not its tests)
    setUp = td.DeliveryTest.setUp
    tearDown = td.DeliveryTest.tearDown
    _on_deadline = td.DeliveryTest._on_deadline
    setup = td.DeliveryTest.setup
    send = td.DeliveryTest.send
    wait_captured = td.DeliveryTest.wait_captured
    assertDsn = td.DeliveryTest.assertDsn

    # ---- helpers ----

    def listed(self, c, addr):
        """The suppress list entries for addr (every node asked)."""
        rc, doc, err = c.shoalctl("suppress", "list")
        if rc != 0 or doc is None:
            return []
        return [e for e in doc["entries"] if e["address"] == addr]

    def wait_listed(self, c, addr, timeout=20):
        return wait_for(lambda: self.listed(c, addr), timeout,
                        f"{addr} on the suppression list", interval=POLL)[0]

    def rcpt(self, c, addr, timeout=15):
        """The router's reply to RCPT TO:<addr> (then RSET)."""
        with SMTPConn(c.port, timeout=timeout) as conn:
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            r = conn.cmd(f"RCPT TO:<{addr}>", timeout=timeout)
            conn.cmd("QUIT")
        return r

    def owner_pair(self, c, addr):
        """(primary, replica) of the shard of addr now."""
        shard = shard_of(addr.lower(), c.shards)
        owner = c.owners()[shard]
        return shard, owner, c.peer_of(owner)

    # ---- 1 ----

    def test_01_bounce_lists_then_refused_then_removed(self):
        ghost = f"ghost@{DEST}"
        rule = {"cmd": "RCPT", "match": ghost,
                "reply": UNKNOWN.format(rcpt=ghost)}
        c, p = self.setup(lambda p: p.capture(rules=[rule]))
        cap = p.captures[0]
        qid = self.send(c, [ghost], make_message("first", sender=SENDER,
                                                 rcpt=ghost))
        self.wait_captured(cap, lambda m: m["mail_from"] == "", 1, 20,
                           "the DSN of the first message")
        e = self.wait_listed(c, ghost)
        self.assertEqual(e["source"], "bounce", e)
        self.assertEqual(e["qid"], qid, e)
        self.assertIn("User unknown", e["reply"], e)
        self.assertEqual(e["enhanced"], "5.1.1", e)
        self.assertGreater(e["created"], time.time() - 120, e)

        # refused at RCPT with the original reason
        r = self.rcpt(c, ghost)
        self.assertEqual(r.code, 550, r)
        self.assertTrue(r.text.startswith("5.1.1"), r)
        self.assertIn("suppressed", r.text, r)
        self.assertIn("User unknown", r.text, r)
        # case and quoting do not matter ("ghost"@ is ghost@); other
        # recipients are not affected
        self.assertEqual(self.rcpt(c, ghost.upper()).code, 550)
        local, domain = ghost.split("@")
        self.assertEqual(self.rcpt(c, f'"{local}"@{domain}').code, 550)
        self.assertEqual(self.rcpt(c, f"alive@{DEST}").code, 250)

        # show, then remove: mail goes through again
        doc = c.ctl_ok("suppress", "show", ghost)
        self.assertTrue(doc["found"], doc)
        self.assertEqual(doc["entries"][0]["qid"], qid, doc)
        doc = c.ctl_ok("suppress", "remove", ghost)
        self.assertTrue(doc["found"], doc)
        rc, doc, err = c.shoalctl("suppress", "remove", ghost)
        self.assertEqual(rc, 1, "removing it twice fails")
        self.assertEqual(self.listed(c, ghost), [])
        cap.set_rules([])
        self.send(c, [ghost], make_message("second", sender=SENDER,
                                           rcpt=ghost))
        self.wait_captured(cap, lambda m: ghost in m["rcpt_tos"], 1, 20,
                           "the second message delivered")

    # ---- 2 ----

    def test_02_admin_add_and_hostile_input(self):
        c, p = self.setup(lambda p: p.capture())
        addr = f"Former.Employee@{DEST}"
        doc = c.ctl_ok("suppress", "add", addr, "--reason",
                       "left the company in 2025")
        self.assertTrue(doc["found"], doc)
        e = self.wait_listed(c, addr.lower(), timeout=5)
        self.assertEqual(e["source"], "admin", e)
        r = self.rcpt(c, addr.lower())
        self.assertEqual(r.code, 550, r)
        self.assertIn("left the company in 2025", r.text, r)
        doc = c.ctl_ok("suppress", "list", "--domain", DEST)
        self.assertEqual([x["address"] for x in doc["entries"]],
                         [addr.lower()], doc)
        doc = c.ctl_ok("suppress", "list", "--domain", "other.test")
        self.assertEqual(doc["entries"], [], doc)

        # hostile or wrong input: clear errors, the nodes keep serving
        huge = "a" * 5000 + "@" + DEST
        rc, doc, err = c.shoalctl("suppress", "add", huge)
        self.assertEqual(rc, 1, err)
        self.assertIn("invalid address", err)
        for bad in (["suppress"], ["suppress", "add"],
                    ["suppress", "frobnicate", "x@y"],
                    ["suppress", "list", "extra"],
                    ["suppress", "list", "--limit", "-3"],
                    ["suppress", "add", "x@y", "--limit", "3"],
                    ["suppress", "add", "x@y", "--reason", "r" * 5000]):
            rc, doc, err = c.shoalctl(*bad)
            self.assertEqual(rc, 2, f"{bad}: {err}")
        for bad in ("no-at-sign", "sp ace@x.test", "ctl\x01@x.test", ""):
            rc, doc, err = c.shoalctl("suppress", "show", bad)
            self.assertEqual(rc, 1, f"{bad!r}: {err}")
        # a huge RCPT gets the router's own error, not a check
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            r = conn.cmd(f"RCPT TO:<{'b' * 3000}@{DEST}>")
            self.assertGreaterEqual(r.code, 500, r)
            conn.expect("RSET", 250)
        self.assertEqual(self.rcpt(c, addr.lower()).code, 550)
        for n in c.node_ids:
            self.assertTrue(c.node(n).running(), n)

    # ---- 3 ----

    def test_03_mode_bounce_bounces_without_an_attempt(self):
        dead, good = f"dead@{DEST}", f"good@{DEST}"
        c, p = self.setup(
            lambda p: p.capture(),
            cluster_kw={"extra": 'suppression = { mode = "bounce"; };'})
        cap = p.captures[0]
        c.ctl_ok("suppress", "add", dead, "--reason",
                 "550 5.1.1 mailbox gone")
        subject = f"bounce mode {time.time_ns()}"
        qid = self.send(c, [dead, good], make_message(subject, sender=SENDER,
                                                      rcpt=dead))
        dsn, = self.wait_captured(cap, lambda m: m["mail_from"] == "", 1,
                                  20, "the DSN for the suppressed rcpt")
        block = self.assertDsn(dsn, dead, status="5.1.1",
                               orig_subject=subject)
        self.assertIn(b"mailbox gone", dsn["content"])
        got, = self.wait_captured(cap, lambda m: good in m["rcpt_tos"], 1,
                                  20, "the good recipient delivered")
        self.assertEqual(got["rcpt_tos"], [good], "alone in its attempt")
        # the message is gone from the queue: no attempt can follow
        wait_for(lambda: any(f"qid={qid} event=removed" in
                             c.node(n).log_text() for n in c.node_ids),
                 20, f"{qid} removed", interval=POLL)
        self.assertEqual(cap.to(dead), [], "the MX never saw it")
        text = p.procs["capture"].log_text()
        self.assertIn(good, text, "the MX log names the recipients it got")
        self.assertNotIn(dead, text, "not even a RCPT for it")
        self.assertNotIn(good.encode(), block.get("final-recipient",
                                                  "").encode())

    # ---- 4 ----

    def test_04_entry_survives_kill_of_its_owner(self):
        c, p = self.setup(lambda p: p.capture())
        addr = f"kept@{DEST}"
        c.ctl_ok("suppress", "add", addr, "--reason", "550 5.1.1 kept")
        shard, owner, peer = self.owner_pair(c, addr)
        c.kill_node(owner)
        wait_for(lambda: (c.shoalctl("status")[1] or {}) and
                 c.owners(c.shoalctl("status")[1]).get(shard) == peer,
                 30, f"{peer} taking over shard {shard}", interval=0.2)
        doc = c.ctl_ok("suppress", "show", addr)
        self.assertTrue(doc["found"], doc)
        self.assertEqual(doc["node"], peer, doc)
        r = wait_for(lambda: (lambda r: r if r.code == 550 else None)(
            self.rcpt(c, addr)), 20, "a refused RCPT on the new owner",
            interval=0.2)
        self.assertIn("kept", r.text, r)

    # ---- 5 ----

    def test_05_unreachable_owner_fails_open(self):
        # no failover: the owner stays dead while we ask
        c, p = self.setup(
            lambda p: p.capture(),
            cluster_kw={"replication": "failover_after_ms = 600000;",
                        "router_metrics": True,
                        "extra": "suppression = { check_timeout_ms = 300; "
                                 "};"})
        addr = f"someone@{DEST}"
        c.ctl_ok("suppress", "add", addr)
        shard, owner, peer = self.owner_pair(c, addr)
        c.kill_node(owner)
        t0 = time.monotonic()
        r = self.rcpt(c, addr)
        spent = time.monotonic() - t0
        self.assertEqual(r.code, 250, r)
        self.assertLess(spent, 5.0, "bounded by the check's timeout")
        self.assertIn("suppress_check", c.router.log_text())
        # two more within the second: folded into the first warning's
        # count, and logged within a heartbeat after that second, not
        # only when a later failure comes (none does here)
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)
            for _ in range(2):
                self.assertEqual(conn.cmd(f"RCPT TO:<{addr}>").code, 250)
        wait_for(lambda: "folded=2 " in c.router.log_text(), 5,
                 "the folded failures logged")
        lines = [ln for ln in c.router.log_text().splitlines()
                 if "event=suppress_check_failed" in ln]
        # a line with rcpt= is one failure and those folded before it;
        # the heartbeat's line only those folded
        self.assertEqual(sum(("rcpt=" in ln) +
                             int(re.search(r"folded=(\d+)", ln).group(1))
                             for ln in lines), 3, lines)
        self.assertEqual(c.metric(
            "router", "shoal_router_suppress_checks_failed_open_total"), 3)

    # ---- 6 ----

    def test_06_entry_moves_with_its_shard(self):
        c = self.cluster(nodes=4)
        addr = next(f"u{i}@{DEST}" for i in range(1000)
                    if c.initial_owner(shard_of(f"u{i}@{DEST}",
                                                c.shards))[0] == "n1")
        shard = shard_of(addr, c.shards)
        c.ctl_ok("suppress", "add", addr, "--reason", "550 5.1.1 moved")
        doc = c.ctl_ok("shard", "move", shard, "--to", "n3")
        self.assertEqual((doc["from"], doc["to"]), ("n1", "n3"), doc)
        doc = c.ctl_ok("suppress", "show", addr)
        self.assertEqual((doc["found"], doc["node"]), (True, "n3"), doc)
        entries = [e for e in c.ctl_ok("suppress", "list")["entries"]
                   if e["address"] == addr]
        self.assertEqual([e["node"] for e in entries], ["n3"], entries)
        r = wait_for(lambda: (lambda r: r if r.code == 550 else None)(
            self.rcpt(c, addr)), 20, "a refused RCPT after the move",
            interval=0.2)
        self.assertIn("moved", r.text, r)
        # and it replicates on the new pair: n3 dies, n4 has it
        c.kill_node("n3")
        wait_for(lambda: (c.shoalctl("status")[1] or {}) and
                 c.owners(c.shoalctl("status")[1]).get(shard) == "n4",
                 30, f"n4 taking over shard {shard}", interval=0.2)
        doc = c.ctl_ok("suppress", "show", addr)
        self.assertEqual((doc["found"], doc["node"]), (True, "n4"), doc)

    # ---- 7 ----

    def test_07_bounce_on_another_node_reaches_the_owner(self):
        rule = {"cmd": "RCPT", "match": "ghost",
                "reply": "550 5.1.1 User unknown"}
        c, p = self.setup(lambda p: p.capture(rules=[rule]))
        owners = c.owners()
        cross = same = None
        for i in range(40):
            addr = f"ghost{i}@{DEST}"
            qid = self.send(c, [addr], make_message(f"g{i}", sender=SENDER,
                                                    rcpt=addr))
            mine = owners[shard_of(qid, c.shards)] == \
                owners[shard_of(addr, c.shards)]
            if mine and same is None:
                same = addr
            if not mine and cross is None:
                cross = addr
            if cross and same:
                break
        self.assertIsNotNone(cross, "a message delivered by the node that "
                             "does not own its recipient's entry")
        for addr in (a for a in (cross, same) if a):
            e = self.wait_listed(c, addr)
            self.assertEqual(e["node"], owners[shard_of(addr, c.shards)], e)
            # a router may answer from the owner's filter for 20 ms after
            # the entry's write (docs/suppression.md, "What this
            # changes"): a RCPT right after the entry shows may pass
            wait_for(lambda: self.rcpt(c, addr).code == 550, 2,
                     f"the router refusing {addr}", interval=0.025)
        logs = "".join(c.node(n).log_text() for n in c.node_ids)
        self.assertIn(f"rcpt=<{cross}> event=suppress_pending", logs)
        self.assertIn("event=suppress_add_acked", logs)

    # ---- 8 ----

    def test_08_pending_add_survives_kill_of_the_delivering_node(self):
        # the entry's owner is down (and not failed over) when the bounce
        # happens elsewhere: the add waits on disk, through a kill -9
        ghost = None
        rule = {"cmd": "RCPT", "match": "lost",
                "reply": "550 5.1.1 User unknown"}
        c, p = self.setup(
            lambda p: p.capture(rules=[rule]),
            cluster_kw={"replication": "failover_after_ms = 600000;",
                        "node_timeout_ms": 1000})
        owners = c.owners()
        ghost = f"lost@{DEST}"
        owner = owners[shard_of(ghost, c.shards)]
        other = c.peer_of(owner)

        def paired():
            st = {n["id"]: n for n in c.status()["nodes"]}
            return all(st[n]["replication"]["state"] == "healthy" and
                       st[n]["replication"]["may_deliver"]
                       for n in (owner, other))
        # a node that never heard its peer delivers nothing (fencing)
        wait_for(paired, 20, "the pair up", interval=POLL)
        c.kill_node(owner)
        qid = None
        for i in range(30):
            with SMTPConn(c.port, timeout=15) as conn:
                conn.ehlo()
                r = conn.mail(SENDER, [ghost],
                              make_message(f"p{i}", sender=SENDER,
                                           rcpt=ghost))
            if r.code == 250 and owners[shard_of(r.qid, c.shards)] == other:
                qid = r.qid
                break
        self.assertIsNotNone(qid, f"a message stored on {other}")
        wait_for(lambda: f"rcpt=<{ghost}> event=suppress_pending" in
                 c.node(other).log_text(), 20, "the pending add",
                 interval=POLL)
        c.kill_node(other)
        c.start_node(other)
        c.start_node(owner)
        e = self.wait_listed(c, ghost, timeout=30)
        self.assertEqual((e["node"], e["qid"]), (owner, qid), e)
        self.assertEqual(self.rcpt(c, ghost).code, 550)

    # ---- 9 ----

    def test_09_expired_entries_stop_counting(self):
        c, p = self.setup(
            lambda p: p.capture(),
            cluster_kw={"extra": "suppression = { expire = 2; };"})
        addr = f"temp@{DEST}"
        c.ctl_ok("suppress", "add", addr)
        self.assertEqual(self.rcpt(c, addr).code, 550)
        wait_for(lambda: self.rcpt(c, addr).code == 250, 10,
                 "the entry expired", interval=0.5)
        self.assertEqual(self.listed(c, addr), [])

    def test_10_disabled_checks_nothing(self):
        ghost = f"ghost@{DEST}"
        c, p = self.setup(
            lambda p: p.capture(rules=[{"cmd": "RCPT", "match": ghost,
                                        "reply": UNKNOWN.format(
                                            rcpt=ghost)}]),
            cluster_kw={"extra": "suppression = { enabled = false; };"})
        cap = p.captures[0]
        c.ctl_ok("suppress", "add", f"listed@{DEST}")
        self.assertEqual(self.rcpt(c, f"listed@{DEST}").code, 250)
        self.send(c, [ghost], make_message("off", sender=SENDER,
                                           rcpt=ghost))
        self.wait_captured(cap, lambda m: m["mail_from"] == "", 1, 20,
                           "the DSN")
        # the DSN was queued in the commit that would have added the
        # entry (or its pending add: event=suppress_added / _pending,
        # as test_01 and test_07 see them)
        self.assertEqual(self.listed(c, ghost), [], "no entry from bounces")
        for n in c.node_ids:
            self.assertNotIn(f"rcpt=<{ghost}> event=suppress_",
                             c.node(n).log_text(), n)
        self.assertNotIn("suppress_check", c.router.log_text())

    # ---- 11 ----

    def rcpts(self, conn, addrs):
        """RCPT TO each of addrs in one open transaction: their codes."""
        return [conn.cmd(f"RCPT TO:<{a}>").code for a in addrs]

    def checks(self, c):
        return (c.metric("router", "shoal_router_suppress_checks_total",
                         via="node"),
                c.metric("router", "shoal_router_suppress_checks_total",
                         via="filter"))

    def test_11_router_filter_skips_checks_and_learns_adds(self):
        """RCPTs in quick succession are answered by the owner's filter
        (docs/suppression.md, "The routers' filter") without a question
        to the node; a listed address is still refused, also one added
        while the router was answering from the filter."""
        c, p = self.setup(lambda p: p.capture(),
                          cluster_kw={"router_metrics": True})
        listed = f"listed@{DEST}"
        c.ctl_ok("suppress", "add", listed)
        # the filters are fetched after the first replies that offer them
        wait_for(lambda: all(f"event=filter_ready" in c.node(n).log_text()
                             for n in c.node_ids), 10, "filters ready",
                 interval=POLL)
        with SMTPConn(c.port, timeout=15) as conn:
            conn.ehlo()
            conn.expect(f"MAIL FROM:<{SENDER}>", 250)

            def burst(tag, n=30):
                return self.rcpts(conn, [f"{tag}{i}@{DEST}"
                                         for i in range(n)])

            wait_for(lambda: burst("warm") and self.checks(c)[1] > 0, 10,
                     "a check answered by the filter", interval=POLL)
            asked0, filtered0 = self.checks(c)
            self.assertEqual(burst("open"), [250] * 30)
            self.assertEqual(self.rcpts(conn, [listed]), [550],
                             "listed: the filter sends it to the node")
            asked1, filtered1 = self.checks(c)
            self.assertGreater(filtered1 - filtered0, 0, (asked1, filtered1))
            self.assertGreater(asked1 - asked0, 0, "the listed one at least")
            # an add while the filter is in use: answered only once no
            # router may still skip the check for it
            late = f"late@{DEST}"
            c.ctl_ok("suppress", "add", late)
            self.assertEqual(self.rcpts(conn, [late]), [550])
            burst("again")
            self.assertEqual(self.rcpts(conn, [late]), [550],
                             "right after RCPTs the filter answered")
            asked2, filtered2 = self.checks(c)
            self.assertGreater(filtered2 - filtered1, 0,
                               "the filter is believed again after the add")
            conn.cmd("RSET")
            conn.cmd("QUIT")
