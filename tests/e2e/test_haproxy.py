"""The PROXY protocol on router listeners (proxy_protocol = true), with
Debian's real haproxy in front of two routers, run from the shipped
deploy/haproxy/haproxy.cfg (addresses given through the environment it
documents, never a copy of the file).

Clients bind their own loopback source address: 127.0.0.77 is the only
relay network, 127.0.0.88 an outsider, and haproxy itself connects from
127.0.0.1, so only a router that believes the PROXY header lets .77 relay.
Mail goes on to the delivery tests' peers (dnsmasq and capture_smtpd.py,
tests/e2e/test_delivery.py) and is checked where it lands.

Also, with no haproxy: headers written by hand straight to a router
(v1, v2, LOCAL, pipelined SMTP after the header, PROXY before implicit
TLS), hostile ones (garbage, over-long, trickled, truncated) that must
be closed with a log line while the router keeps serving, and the per-IP
session limit counting the header's address, not the socket's.
"""

import os
import socket
import ssl
import struct
import subprocess
import time

from shoaltest import (REPO, Proc, SMTPConn, ShoalTestCase, free_port,
                       make_message, wait_for)
from test_delivery import DEST, SENDER, Peers
from test_tls import client_ctx, make_cert

HAPROXY = "/usr/sbin/haproxy"
HAPROXY_CFG = os.path.join(REPO, "deploy", "haproxy", "haproxy.cfg")
CLIENT_OK = "127.0.0.77"       # the one relay network
CLIENT_NO = "127.0.0.88"       # an outsider
RCPT = f"bob@{DEST}"
DEFER_RCPT = f"defer@{DEST}"   # the capture answers 451: stays queued
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_DEADLINE = 5            # router.idle_timeout below (< 10 s cap)


def connect_from(src, port, timeout=15.0):
    """A TCP connection to 127.0.0.1:port from source address src."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(src, 0))


def v1(src, dst="127.0.0.1", sport=40000, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2_tcp4(src, dst="127.0.0.1", sport=40000, dport=25, tlv=b""):
    body = (socket.inet_aton(src) + socket.inet_aton(dst) +
            struct.pack(">HH", sport, dport) + tlv)
    return V2_SIG + b"\x21\x11" + struct.pack(">H", len(body)) + body


def v2_local():
    return V2_SIG + b"\x20\x00\x00\x00"


def haproxy_env(bind_port, router1, router2, sock):
    """The variables deploy/haproxy/haproxy.cfg documents."""
    env = dict(os.environ)
    env.update(SHOAL_SMTP_BIND=f"127.0.0.1:{bind_port}",
               SHOAL_ROUTER1=f"127.0.0.1:{router1}",
               SHOAL_ROUTER2=f"127.0.0.1:{router2}",
               SHOAL_HAPROXY_SOCKET=sock)
    return env


def haproxy_stat(sock_path):
    """haproxy's "show stat" over its admin socket: {server name: row}
    for the routers' backend."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sock_path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    lines = data.decode("utf-8", "replace").splitlines()
    head = lines[0].lstrip("# ").split(",")
    rows = {}
    for ln in lines[1:]:
        row = dict(zip(head, ln.split(",")))
        if row.get("pxname") == "shoal_routers":
            rows[row.get("svname")] = row
    return rows


class HaproxyTest(ShoalTestCase):

    # ---- 1: the shipped file passes haproxy's own check ----

    def test_1_config_file_checks(self):
        d = self.tempdir("shoal-haproxy-")
        env = haproxy_env(free_port(), free_port(), free_port(),
                          os.path.join(d, "admin.sock"))
        r = subprocess.run([HAPROXY, "-c", "-f", HAPROXY_CFG], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Configuration file is valid", r.stdout + r.stderr)
        # the routers really come from the environment
        del env["SHOAL_ROUTER2"]
        r = subprocess.run([HAPROXY, "-c", "-f", HAPROXY_CFG], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("server", r.stdout + r.stderr)

    # ---- 2: haproxy, two routers, one node pair ----

    def send_via(self, port, src, subject, rcpt=RCPT):
        """One message from source address src; returns the end-of-data
        reply."""
        with SMTPConn(port, sock=connect_from(src, port),
                      timeout=30) as s:
            self.assertEqual(s.greeting.code, 220, s.greeting)
            s.ehlo()
            return s.mail(SENDER, [rcpt],
                          make_message(subject, sender=SENDER, rcpt=rcpt))

    def test_2_haproxy_in_front_of_two_routers(self):
        if os.geteuid() != 0:
            self.skipTest("the shipped haproxy.cfg chroots and drops to "
                          "user haproxy: needs root")
        c = self.cluster(start=False, relay_networks=(f"{CLIENT_OK}/32",))
        p = Peers(self, c)
        cap = p.capture(rules=[{"cmd": "RCPT", "match": "defer@",
                                "reply": "451 4.3.0 Try later"}])
        p.start()
        c.delivery = p.delivery()
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'proxy_protocol = true; }}')
        c.start()
        p.adopt()
        r2_port = free_port()
        c.start_router(name="router2",
                       listen=f'{{ address = "127.0.0.1:{r2_port}"; '
                              f'proxy_protocol = true; }}')
        hport = free_port()
        sock = os.path.join(c.dir, "haproxy.sock")
        ha = Proc("haproxy", [HAPROXY, "-db", "-f", HAPROXY_CFG],
                  os.path.join(c.logdir, "haproxy.log"),
                  env=haproxy_env(hport, c.port2, r2_port, sock))
        c.procs["haproxy"] = ha
        ha.start(ready_port=hport)

        # haproxy's SMTP checks (with a LOCAL PROXY header) pass
        def both_checked():
            st = haproxy_stat(sock)
            return all(st[n]["status"] == "UP" and
                       st[n]["check_status"] == "L7OK"
                       for n in ("router1", "router2"))
        wait_for(both_checked, 30, "haproxy's SMTP checks of both routers")

        # (1) the client behind haproxy relays, as itself, on both routers
        sent = 0
        for i in range(4):
            r = self.send_via(hport, CLIENT_OK, f"via haproxy {i}")
            self.assertEqual(r.code, 250, r)
            sent += 1
        for name in ("router", "router2"):
            self.assertRegex(c.procs[name].log_text(),
                             rf"event=accepted client={CLIENT_OK} ",
                             f"{name} served {CLIENT_OK}")
        got = wait_for(lambda: len(cap.to(RCPT)) >= sent and cap.to(RCPT),
                       30, "the messages at the MX")
        for m in got:
            head = m["content"].split(b"\r\n\r\n", 1)[0]
            self.assertIn(f"([{CLIENT_OK}])".encode(), head)
            self.assertNotIn(b"([127.0.0.1])", head)
        # the envelope the node keeps names the client too
        r = self.send_via(hport, CLIENT_OK, "deferred", rcpt=DEFER_RCPT)
        self.assertEqual(r.code, 250, r)
        qid = r.qid
        shown = wait_for(lambda: c.queue_show(qid), 20, "queue show")
        self.assertEqual(shown["client_addr"], CLIENT_OK, shown)

        # (2) an outsider behind haproxy may not relay
        with SMTPConn(hport, sock=connect_from(CLIENT_NO, hport),
                      timeout=30) as s:
            s.ehlo()
            s.expect(f"MAIL FROM:<{SENDER}>", 250)
            r = s.cmd(f"RCPT TO:<{RCPT}>")
            self.assertEqual((r.code, r.text.split()[0]), (554, "5.7.1"), r)
        wait_for(lambda: any(f"client={CLIENT_NO} event=relay_denied" in
                             c.procs[n].log_text()
                             for n in ("router", "router2")),
                 10, "the relay_denied line naming the outsider")

        # (3) one router dies: mail keeps flowing, from the first moment
        # (a refused connect is redispatched) and after haproxy's checks
        # take the dead router out
        c.kill_router(name="router2")
        for i in range(5):
            r = self.send_via(hport, CLIENT_OK, f"after kill {i}")
            self.assertEqual(r.code, 250, r)
            sent += 1
        wait_for(lambda: haproxy_stat(sock)["router2"]["status"] == "DOWN",
                 30, "haproxy to mark router2 DOWN")
        self.assertEqual(haproxy_stat(sock)["router1"]["status"], "UP")
        for i in range(3):
            r = self.send_via(hport, CLIENT_OK, f"router2 down {i}")
            self.assertEqual(r.code, 250, r)
            sent += 1
        wait_for(lambda: len(cap.to(RCPT)) >= sent, 60,
                 f"all {sent} messages at the MX")
        subjects = sorted(m["content"].split(b"Subject: ", 1)[1]
                          .split(b"\r\n", 1)[0].decode()
                          for m in cap.to(RCPT))
        self.assertEqual(len(subjects), sent, subjects)
        self.assertEqual(len(set(subjects)), sent, "none twice")
        self.assertTrue(c.router.running())

    # ---- 3: headers straight to a router ----

    def direct_cluster(self):
        d = self.tempdir("shoal-proxy-")
        cert, key = make_cert(d, "mx.proxy.example")
        c = self.cluster(start=False, relay_networks=(f"{CLIENT_OK}/32",),
                         router_extra=f'tls_cert = "{cert}"; '
                                      f'tls_key = "{key}"; '
                                      f'idle_timeout = {HEADER_DEADLINE};')
        self.port_tls = free_port()
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'proxy_protocol = true; }}, '
                          f'{{ address = "127.0.0.1:{self.port_tls}"; '
                          f'tls = "implicit"; proxy_protocol = true; }}')
        return c.start()

    def proxied(self, port, header, pipelined=b""):
        """An SMTPConn on port after header (and pipelined octets, in the
        same write)."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(header + pipelined)
        return SMTPConn(port, sock=sock)

    def assertRefused(self, c, sock, reason, timeout=10):
        """The router closes sock without a word and logs why."""
        sock.settimeout(timeout)
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        finally:
            sock.close()
        self.assertEqual(data, b"", "closed without a greeting")
        wait_for(lambda: f'event=proxy_refused reason="{reason}' in
                 c.router.log_text(), 10, f"the log line for {reason!r}")

    def test_3_headers_direct_to_a_router(self):
        c = self.direct_cluster()

        # v1, with SMTP pipelined behind the header in the same segment
        with self.proxied(c.port2, v1(CLIENT_OK),
                          b"EHLO client.example\r\n") as s:
            self.assertEqual(s.greeting.code, 220, s.greeting)
            self.assertEqual(s.reply().code, 250)
            r = s.mail(SENDER, ["rcpt@example.net"], make_message("v1"))
            self.assertEqual(r.code, 250, r)
        shown = c.queue_show(r.qid)
        self.assertEqual(shown["client_addr"], CLIENT_OK, shown)
        self.assertIn(f"([{CLIENT_OK}])", shown["headers"])

        # v2 naming an outsider; v2 LOCAL leaves the socket's own peer
        # (127.0.0.1, no relay network either); TLVs are skipped
        for hdr in (v2_tcp4(CLIENT_NO, tlv=b"\x04\x00\x03abc"), v2_local()):
            with self.proxied(c.port2, hdr) as s:
                s.ehlo()
                s.expect(f"MAIL FROM:<{SENDER}>", 250)
                self.assertEqual(s.cmd("RCPT TO:<x@example.net>").code, 554)
        with self.proxied(c.port2, v2_tcp4(CLIENT_OK)) as s:
            s.ehlo()
            s.expect(f"MAIL FROM:<{SENDER}>", 250)
            s.expect("RCPT TO:<x@example.net>", 250)

        # implicit TLS: the header comes first, in clear, then TLS
        raw = socket.create_connection(("127.0.0.1", self.port_tls),
                                       timeout=10)
        raw.sendall(v1(CLIENT_OK))
        tls = client_ctx().wrap_socket(raw)
        with SMTPConn(self.port_tls, sock=tls) as s:
            self.assertEqual(s.greeting.code, 220)
            s.ehlo()
            r = s.mail(SENDER, ["rcpt@example.net"], make_message("tls"))
            self.assertEqual(r.code, 250, r)
        shown = c.queue_show(r.qid)
        self.assertEqual(shown["client_addr"], CLIENT_OK, shown)
        self.assertIn("with ESMTPS", shown["headers"])

        # on a listener without proxy_protocol a header is a bad command
        with SMTPConn(c.port) as s:
            r = s.cmd(v1(CLIENT_OK).decode().rstrip("\r\n"))
            self.assertEqual((r.code, r.text.split()[0]), (500, "5.5.2"), r)
            s.expect("NOOP", 250)

    def test_4_hostile_headers(self):
        c = self.direct_cluster()

        def conn(data=b""):
            s = socket.create_connection(("127.0.0.1", c.port2), timeout=10)
            if data:
                s.sendall(data)
            return s

        self.assertRefused(c, conn(b"EHLO client.example\r\n"),
                           "not a PROXY protocol header")
        self.assertRefused(c, conn(b"\x16\x03\x01\x00\xa5\x01\x00"),
                           "not a PROXY protocol header")
        self.assertRefused(c, conn(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
                           "v1 header syntax")
        self.assertRefused(c, conn(b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n"),
                           "v1 address or port out of range")
        self.assertRefused(c, conn(b"PROXY UNKNOWN " + b"x" * 300),
                           "v1 header without CRLF")
        self.assertRefused(c, conn(V2_SIG + b"\x21\x11\xff\xff" +
                                   b"\0" * 2000),
                           "v2 header longer than 1024")
        self.assertRefused(c, conn(V2_SIG + b"\x31\x11\x00\x0c"),
                           "v2 header with a version other than 2")
        self.assertRefused(c, conn(V2_SIG + b"\x21\x11\x00\x04" + b"\0" * 4),
                           "v2 header too short")

        # a peer that leaves without a word (a TCP check) is only info
        conn().close()
        wait_for(lambda: 'info: client=127.0.0.1 listener=127.0.0.1:'
                 f'{c.port2} event=proxy_refused reason="closed without '
                 'a header"' in c.router.log_text(), 10,
                 "the empty connection's log line")

        # truncated: half a header, then the client leaves
        s = conn(v2_tcp4(CLIENT_OK)[:20])
        s.close()
        wait_for(lambda: 'reason="closed before the header ended"' in
                 c.router.log_text(), 10, "the truncated header's log line")

        # silent and trickling clients are closed at one deadline from
        # the connect, however busy they keep the socket
        silent = [conn() for _ in range(10)]
        trickle = conn()
        t0 = time.monotonic()
        line = v1(CLIENT_OK)
        closed_at = None
        for i in range(len(line) - 2):
            try:
                trickle.sendall(line[i:i + 1])
            except OSError:
                closed_at = time.monotonic() - t0
                break
            trickle.settimeout(0.4)
            try:
                if trickle.recv(1) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.monotonic() - t0
                break
        trickle.close()
        self.assertIsNotNone(closed_at, "the trickling client was not cut")
        self.assertLess(closed_at, HEADER_DEADLINE + 5, closed_at)
        for s in silent:
            self.assertRefused(c, s, "no header before deadline")
        self.assertIn('reason="header incomplete at deadline"',
                      c.router.log_text())

        # the router is alive and serving both kinds of listener
        self.assertTrue(c.router.running())
        with self.proxied(c.port2, v1(CLIENT_OK)) as s:
            self.assertEqual(s.greeting.code, 220)
            s.ehlo()
        with SMTPConn(c.port) as s:
            s.ehlo()

        # stopping, the router drops connections still owing a header
        # (accepted before the session below, from the same listener)
        pending = conn(b"PROXY TCP4 ")
        with self.proxied(c.port2, v1(CLIENT_OK)) as s:
            s.ehlo()
        self.assertEqual(c.router.stop(), 0)
        self.assertIn("proxy event=closed_waiting connections=1",
                      c.router.log_text())
        pending.settimeout(10)
        try:
            self.assertEqual(pending.recv(4096), b"")
        except ConnectionResetError:
            pass
        pending.close()

    # ---- 5: per-IP limits count the header's address ----

    def test_5_per_ip_limit_uses_the_header_address(self):
        # no relay networks here: relay clients are exempt from the limit
        c = self.cluster(start=False, relay_networks=("192.0.2.0/24",),
                         router_extra="max_sessions_per_ip = 1;")
        c.listen_extra = (f', {{ address = "127.0.0.1:{c.port2}"; '
                          f'proxy_protocol = true; }}')
        c.start()
        # every socket comes from 127.0.0.1; the headers differ
        with self.proxied(c.port2, v1(CLIENT_NO)) as first:
            self.assertEqual(first.greeting.code, 220)
            first.ehlo()
            second = socket.create_connection(("127.0.0.1", c.port2),
                                              timeout=10)
            second.sendall(v1(CLIENT_NO))
            with SMTPConn(c.port2, sock=second) as s:
                self.assertEqual(s.greeting.code, 421, s.greeting)
            with self.proxied(c.port2, v2_tcp4("127.0.0.99")) as other:
                self.assertEqual(other.greeting.code, 220)
                other.ehlo()
        self.assertIn(f"client={CLIENT_NO} event=refused "
                      f"reason=max_sessions_per_ip", c.router.log_text())


if __name__ == "__main__":
    import unittest
    unittest.main()
