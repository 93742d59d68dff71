"""shoalctl and tenants, end to end: router.pool_rules give mail from
a.example the tenant "alpha" and mail from b.example "beta"; `queue list
--tenant`, `queue flush --tenant` and `queue hold|release|delete|bounce
--tenant` act on exactly that tenant's messages on every node (alpha's are
the positive control each time), and `status` shows each tenant's delivery
results. Delivery points at closed ports (the harness default), so mail
stays queued and every attempt counts as a deferral.
"""

import subprocess
import unittest

from shoaltest import (REPO, SMTPConn, ShoalTestCase, bin_path,
                       make_message, wait_for)

FAST = ('heartbeat_ms = 200; failover_after_ms = 1500; '
        'peer_timeout_ms = 800;')
RULES = ('pool_rules = ( { sender_domain = "a.example"; tenant = "alpha"; },'
         ' { sender_domain = "b.example"; tenant = "beta"; } );')
RCPT = "x@example.net"
SMTP_SOURCE = "/usr/sbin/smtp-source"
MANY = 1500


def send(c, sender, n):
    qids = []
    with SMTPConn(c.port) as s:
        s.ehlo()
        for i in range(n):
            r = s.mail(sender, [RCPT], make_message(f"{sender} {i}"))
            assert r.code == 250, r
            qids.append(r.qid)
    return qids


def listed(c, *args):
    return {m["qid"]: m for m in c.queue_list(*args)["messages"]}


def tenant_sums(st):
    """{tenant: [delivered, deferred, bounced]} summed over the nodes."""
    out = {}
    for n in st["nodes"]:
        for t in n.get("tenants", []):
            row = out.setdefault(t["tenant"], [0, 0, 0])
            row[0] += t["delivered"]
            row[1] += t["deferred"]
            row[2] += t["bounced"]
    return out


def ctl_text(c, *args):
    r = subprocess.run([bin_path("shoalctl"), "-c", c.conf] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30, cwd=REPO)
    return r.returncode, r.stdout, r.stderr


class TenantsCtlTest(ShoalTestCase):

    def cluster_up(self):
        c = self.cluster(replication=f'mode = "sync"; {FAST}',
                         router_extra=RULES)
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 10,
                 "the pair healthy")
        return c

    def test_1_list_hold_release_delete_flush_status(self):
        c = self.cluster_up()
        alpha = send(c, "s@a.example", 5)
        beta = send(c, "s@b.example", 3)
        wait_for(lambda: all(r["state"] == "deferred"
                             for m in c.queue_list()["messages"]
                             for r in m["recipients"]) and
                 len(c.queue_list()["messages"]) == 8, 20,
                 "every recipient deferred once")

        # list: exactly the tenant's, with its name; the others untouched
        got = listed(c, "--tenant", "alpha")
        self.assertEqual(set(got), set(alpha))
        self.assertEqual({m["tenant"] for m in got.values()}, {"alpha"})
        # both nodes hold some of them (16 shards over 2 nodes)
        self.assertEqual(set(listed(c, "--tenant", "beta", "--state",
                                    "deferred")), set(beta))
        self.assertEqual(listed(c, "--tenant", "alph"), {})
        self.assertEqual(listed(c, "--tenant", "ALPHA"), {})
        everything = listed(c)
        self.assertEqual(set(everything), set(alpha) | set(beta))
        rc, out, err = ctl_text(c, "queue", "list", "--tenant", "beta")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("tenant=beta"), 3, out)
        self.assertNotIn("tenant=alpha", out)

        # hold: exactly beta's three, on whichever node has them
        doc = c.ctl_ok("queue", "hold", "--tenant", "beta")
        self.assertEqual((doc["done"], doc["failed"]), (3, 0), doc)
        self.assertEqual({r["qid"] for r in doc["results"]}, set(beta))
        self.assertEqual(doc["unreachable"], [])
        self.assertEqual(sum(n["done"] for n in doc["nodes"]), 3)
        self.assertEqual(set(listed(c, "--state", "held")), set(beta))
        self.assertFalse(any(m["held"] for m in
                             listed(c, "--tenant", "alpha").values()))
        # again: done, each with a note, through the per-qid checks
        doc = c.ctl_ok("queue", "hold", "--tenant", "beta")
        self.assertEqual({r["message"] for r in doc["results"]},
                         {"already held"})
        self.assertEqual(sum(n["held"] for n in c.status()["nodes"]), 3)

        # the hold is on the peer's copies too: n1's shards to n2
        c.ctl_ok("node", "failover", "n1")
        wait_for(lambda: set(listed(c, "--state", "held")) == set(beta),
                 15, "beta held on n2 after the failover of n1")

        # release: none held any more, alpha's untouched
        doc = c.ctl_ok("queue", "release", "--tenant", "beta")
        self.assertEqual((doc["done"], doc["failed"]), (3, 0), doc)
        self.assertEqual(listed(c, "--state", "held"), {})
        self.assertEqual(set(listed(c)), set(alpha) | set(beta))

        # delete: beta's gone, no DSN, alpha's all there
        doc = c.ctl_ok("queue", "delete", "--tenant", "beta")
        self.assertEqual((doc["done"], doc["failed"]), (3, 0), doc)
        self.assertEqual(set(listed(c)), set(alpha))
        doc = c.ctl_ok("queue", "delete", "--tenant", "beta")
        self.assertEqual((doc["done"], doc["failed"], doc["results"]),
                         (0, 0, []))

        # flush: alpha's five; nothing of beta's or for another domain
        doc = c.ctl_ok("queue", "flush", "--tenant", "alpha")
        self.assertEqual(doc["messages"], 5, doc)
        doc = c.ctl_ok("queue", "flush", "--tenant", "beta")
        self.assertEqual(doc["messages"], 0, doc)
        doc = c.ctl_ok("queue", "flush", "--tenant", "alpha", "--domain",
                       "example.com")
        self.assertEqual(doc["messages"], 0, doc)
        doc = c.ctl_ok("queue", "flush", "--tenant", "alpha", "--domain",
                       "example.net")
        self.assertEqual(doc["messages"], 5, doc)

        # status: every attempt to the dead port was a deferral
        def sums():
            s = tenant_sums(c.status())
            return s if s.get("alpha", [0, 0, 0])[1] >= 10 else None
        s = wait_for(sums, 20, "alpha's flushed mail deferred again")
        self.assertEqual(s["alpha"][0], 0)
        self.assertGreaterEqual(s["beta"][1], 3)
        self.assertEqual(s["beta"][0], 0)
        rc, out, err = ctl_text(c, "status")
        self.assertEqual(rc, 0, err)
        self.assertIn("tenants", out)
        rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()
                if ln.startswith("  alpha ") or ln.startswith("  beta ")}
        self.assertEqual(set(rows), {"alpha", "beta"}, out)
        self.assertGreaterEqual(int(rows["alpha"][1]), 10, out)
        self.assertIn("NODE", out)     # the node table is still there

    def test_2_bounce_and_bad_input(self):
        c = self.cluster_up()
        alpha = send(c, "s@a.example", 2)
        beta = send(c, "s@b.example", 2)
        # bounce: the tenant's messages go, a DSN each to their sender
        doc = c.ctl_ok("queue", "bounce", "--tenant", "beta")
        self.assertEqual((doc["done"], doc["failed"]), (2, 0), doc)
        after = listed(c)
        self.assertTrue(set(alpha) <= set(after))
        self.assertFalse(set(beta) & set(after))
        dsns = [m for m in after.values() if m["sender"] == ""]
        self.assertEqual(len(dsns), 2, "a DSN per bounced message")
        self.assertEqual({m["tenant"] for m in dsns}, {""})
        self.assertEqual({m["recipients"][0]["address"] for m in dsns},
                         {"s@b.example"})

        # usage errors: exit 2, before any node is asked
        for args in (("queue", "hold", "--tenant", "beta", alpha[0]),
                     ("queue", "hold", "--tenant", ""),
                     ("queue", "list", "--tenant", "t" * 65),
                     ("queue", "flush", "--tenant", "a\tb"),
                     ("queue", "show", alpha[0], "--tenant", "alpha"),
                     ("status", "--tenant", "alpha"),
                     ("queue", "hold")):
            rc, _, err = c.shoalctl(*args)
            self.assertEqual(rc, 2, f"{args}: {err}")
        # 64 is fine, and names nobody
        doc = c.ctl_ok("queue", "list", "--tenant", "t" * 64)
        self.assertEqual(doc["messages"], [])
        doc = c.ctl_ok("queue", "hold", "--tenant", "nobody")
        self.assertEqual((doc["done"], doc["results"]), (0, []))
        self.assertEqual(listed(c, "--state", "held"), {})

        # a node down: its part is missing, and shoalctl says so (exit 1)
        c.kill_node("n2")
        rc, doc, err = c.shoalctl("--timeout", "1000", "queue", "hold",
                                  "--tenant", "alpha")
        self.assertEqual(rc, 1, err)
        self.assertEqual(doc["unreachable"], ["n2"])
        self.assertIn("node n2 did not answer", err)

    def test_3_a_tenant_of_many_messages_in_batches(self):
        """More messages than a node acts on in one batch (512): the walk
        goes on batch by batch and misses none."""
        c = self.cluster_up()
        src = c.spawn("smtp-source", [
            SMTP_SOURCE, "-s", "10", "-m", str(MANY), "-l", "256",
            "-f", "s@a.example", "-t", RCPT, f"127.0.0.1:{c.port}"])
        wait_for(lambda: src.popen.poll() is not None, 120,
                 "smtp-source to send")
        self.assertEqual(src.popen.returncode, 0, src.log_text()[-2000:])
        beta = send(c, "s@b.example", 3)
        wait_for(lambda: sum(n["messages"] for n in c.status()["nodes"])
                 == MANY + 3, 30, "every message stored")
        doc = c.ctl_ok("queue", "hold", "--tenant", "alpha", timeout=120)
        self.assertEqual((doc["done"], doc["failed"]), (MANY, 0))
        self.assertEqual(len({r["qid"] for r in doc["results"]}), MANY)
        self.assertEqual(sum(n["held"] for n in c.status()["nodes"]), MANY)
        self.assertFalse(set(beta) & set(listed(c, "--state", "held")))
        walks = [ln for nid in ("n1", "n2")
                 for ln in c.node(nid).log_text().splitlines()
                 if "event=walk_done op=hold" in ln]
        self.assertEqual(len(walks), 2, walks)
        self.assertTrue(any(" batches=1 " not in ln for ln in walks),
                        f"one walk took more than one batch: {walks}")
        doc = c.ctl_ok("queue", "delete", "--tenant", "alpha", timeout=120)
        self.assertEqual(doc["done"], MANY)
        self.assertEqual(set(listed(c)), set(beta))


if __name__ == "__main__":
    unittest.main()
