"""End-to-end tests of the HTTP injection API (docs/http.md).

Real processes: shoal-router with router.http_listen, two nodes (a
pair), dnsmasq serving the MX of dest.test and the DKIM keys' TXT records,
and tests/fixtures/capture_smtpd.py as that MX. Requests are made with curl
and with Python's urllib; what arrives is parsed back with Python's email
package and its DKIM signatures verified with python3-dkim against the
keys in that dnsmasq (test_dkim.py's rig, reused).

- test_1: a plain (RFC 5322) request for two recipients and a structured
  one (text, HTML, a binary attachment, a non-ASCII subject, one message
  per recipient through substitutions) arrive byte-correct and signed.
- test_2: 45 malformed or hostile requests get the right 4xx and the
  field named, and nothing is queued (a valid request afterwards is: the
  positive control).
- test_3: kill -9 of the primary right after a 200 loses nothing: the peer
  takes over and delivers it.
- test_4: authentication (HTTP Basic, users file, TLS), health, the
  per-user rate (429) and node loss (503 with Retry-After).
- test_5: what is judged before a body is read: an outsider without
  credentials, ambiguous framing (request smuggling), an unknown path.
- test_6: a connection whose head is late is closed at its deadline,
  and one whose client hung up in the middle of a body at once.
"""

import base64
import email
import email.policy
import json
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.request

import socket

import test_dkim
from shoaltest import ShoalTestCase, free_port, wait_for
from test_tls import make_cert

TIMEOUT = 60


def post(url, body, user=None, ctx=None, method="POST", timeout=30,
         authorization=None):
    """(status, headers, parsed JSON or None) of one request."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    if user:
        tok = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        req.add_header("Authorization", "Basic " + tok)
    if authorization:
        req.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            status, headers, data = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, data = e.code, dict(e.headers), e.read()
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = None
    return status, headers, doc


class HttpTest(ShoalTestCase):

    # test_dkim.py's rig: keys, dnsmasq with their TXT records, the MX
    # (the module, not the class, is imported: the runner would run the
    # class's own tests here again)
    setUp = test_dkim.DkimTest.setUp
    keygen = test_dkim.DkimTest.keygen
    setup_cluster = test_dkim.DkimTest.setup_cluster
    dnsfunc = test_dkim.DkimTest.dnsfunc
    verify_all = test_dkim.DkimTest.verify_all
    delivered = test_dkim.DkimTest.delivered

    def http_cluster(self, extra="", **kw):
        self.http_port = free_port()
        c = self.setup_cluster(
            router_extra=f'http_listen = ( {{ address = '
                         f'"127.0.0.1:{self.http_port}"; }} ); ' + extra,
            router_metrics=True, node_metrics=True, **kw)
        self.url = f"http://127.0.0.1:{self.http_port}/api/v1/inject"
        return c

    def test_1_plain_and_structured_arrive_signed_and_intact(self):
        c = self.http_cluster()
        raw = ("From: Shop <shop@signed.test>\n"
               "To: buyers@dest.test\n"
               "Subject: Your receipt {{ order }}\n"
               "Message-ID: <r1@signed.test>\n"
               "Date: Mon, 30 Nov 2026 00:00:00 +0000\n"
               "\n"
               "Order {{ order }}: thank you.\n"
               "Line two.\n")
        req = {"envelope_sender": "bounce@signed.test",
               "recipients": [{"email": "p1@dest.test"},
                              {"email": "p2@dest.test"}],
               "substitutions": {"order": "A-17"},
               "content": raw}
        path = os.path.join(self.dir, "plain.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(req, f)
        r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "-H",
                            "Content-Type: application/json",
                            "--data-binary", "@" + path, self.url],
                           capture_output=True, text=True, timeout=60)
        body, code = r.stdout.rsplit("\n", 1)
        self.assertEqual(code, "200", r.stdout + r.stderr)
        doc = json.loads(body)
        self.assertEqual((doc["success_count"], doc["fail_count"]), (2, 0))
        self.assertEqual(len(doc["ids"]), 1, doc)   # one message, 2 rcpts
        plain_id = doc["ids"][0]

        attachment = bytes(range(256)) * 40
        structured = {
            "envelope_sender": "bounce@signed.test",
            "recipients": [
                {"email": "s1@dest.test", "name": "Zo\u00eb Ng",
                 "substitutions": {"first": "Zo\u00eb"}},
                {"email": "s2@dest.test", "name": "Bob",
                 "substitutions": {"first": "Bob"}}],
            "content": {
                "from": {"email": "news@signed.test",
                         "name": "Caf\u00e9 News"},
                "subject": "Hello {{first}} \u2013 caf\u00e9 news",
                "text_body": "Dear {{ first }},\nna\u00efve text.\n",
                "html_body": "<p>Dear {{first}}</p>",
                "headers": {"X-Campaign": "c-42"},
                "attachments": [{
                    "data": base64.b64encode(attachment).decode(),
                    "base64": True, "content_type": "application/pdf",
                    "file_name": "r\u00e9sum\u00e9.pdf"}]},
            "priority": "high"}
        status, _, doc = post(self.url, json.dumps(structured))
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["success_count"], len(doc["ids"])), (2, 2))

        got = self.delivered(["p1@dest.test", "p2@dest.test",
                              "s1@dest.test", "s2@dest.test"])
        # plain: one message for both, our headers in front, the
        # client's text after them with CRLF line ends, substituted
        self.assertEqual(got["p1@dest.test"], got["p2@dest.test"])
        msg = got["p1@dest.test"]
        want = raw.replace("{{ order }}", "A-17").replace("\n", "\r\n")
        self.assertTrue(msg.endswith(want.encode()), msg[-400:])
        head = msg[:-len(want)]
        self.assertIn(b"Received: from unknown ([127.0.0.1])", head)
        self.assertIn(b"with HTTP id " + plain_id.encode(), head)
        self.assertEqual(self.verify_all(msg), [True, True])
        # structured: a MIME message per recipient, parsed back
        for rcpt, first in (("s1", "Zo\u00eb"), ("s2", "Bob")):
            m = got[f"{rcpt}@dest.test"]
            self.assertEqual(self.verify_all(m), [True, True], rcpt)
            p = email.message_from_bytes(m, policy=email.policy.default)
            self.assertEqual(p["Subject"],
                             f"Hello {first} \u2013 caf\u00e9 news")
            self.assertEqual(p["From"].addresses[0].display_name,
                             "Caf\u00e9 News")
            self.assertEqual(p["To"].addresses[0].addr_spec,
                             f"{rcpt}@dest.test")
            self.assertEqual(p["X-Campaign"], "c-42")
            self.assertIsNone(p["X-Shoal-Priority"])
            self.assertEqual(p.get_content_type(), "multipart/mixed")
            text = p.get_body(("plain",)).get_content()
            self.assertEqual(text.replace("\r\n", "\n"),
                             f"Dear {first},\nna\u00efve text.\n")
            html = p.get_body(("html",)).get_content()
            self.assertIn(f"<p>Dear {first}</p>", html)
            att = list(p.iter_attachments())
            self.assertEqual(len(att), 1)
            self.assertEqual(att[0].get_filename(),
                             "r\u00e9sum\u00e9.pdf")
            self.assertEqual(att[0].get_content_type(), "application/pdf")
            self.assertEqual(att[0].get_content(), attachment)

    def test_2_hostile_requests_queue_nothing(self):
        c = self.http_cluster(extra="max_recipients = 5; "
                                    "max_message_size = 100000;")
        ok_rcpt = [{"email": "x@dest.test"}]
        good = {"envelope_sender": "b@signed.test", "recipients": ok_rcpt,
                "content": "Subject: ok\n\nok\n"}

        def req(**kw):
            d = dict(good)
            d.update(kw)
            return json.dumps(d)

        def structured(**kw):
            ct = {"from": {"email": "f@signed.test"}, "subject": "s",
                  "text_body": "t"}
            ct.update(kw)
            return req(content=ct)

        cases = [  # (body, status, field or None)
            ("hello", 400, None),
            ("", 400, None),
            ("[]", 400, None),
            (json.dumps({"recipients": ok_rcpt, "content": "x"}), 400,
             "envelope_sender"),
            (req(envelope_sender=5), 400, "envelope_sender"),
            (json.dumps({"envelope_sender": "b@signed.test",
                         "content": "x"}), 400, "recipients"),
            (req(recipients=[]), 400, "recipients"),
            (req(recipients="x@dest.test"), 400, "recipients"),
            (req(recipients=[{"name": "no email"}]), 400,
             "recipients[0].email"),
            (req(recipients=[{"email": "no-at-sign"}]), 400,
             "recipients[0].email"),
            (req(recipients=[{"email": "user@"}]), 400,
             "recipients[0].email"),
            (req(recipients=[{"email": "a@dest.test\r\nRCPT TO:<v@x.test>"}]),
             400, "recipients[0].email"),
            (req(envelope_sender="a b@signed.test"), 400, "envelope_sender"),
            (json.dumps({"envelope_sender": "b@signed.test",
                         "recipients": ok_rcpt}), 400, "content"),
            (req(content=17), 400, "content"),
            (req(content={"subject": "s", "text_body": "t"}), 400,
             "content.from"),
            (structured(subject=None), 400, "content.subject"),
            (structured(subject="Hi\r\nBcc: victim@x.test"), 400,
             "content.subject"),
            (structured(headers={"X-A": "v\nBcc: victim@x.test"}), 400,
             "content.headers.X-A"),
            (structured(headers={"X:A": "v"}), 400, "content.headers.X:A"),
            (structured(headers={"X A": "v"}), 400, "content.headers.X A"),
            (structured(headers={"From": "evil@x.test"}), 400,
             "content.headers.From"),
            (structured(text_body=None), 400, "content.text_body"),
            (structured(attachments=[{"data": "***", "base64": True,
                                      "content_type": "a/b"}]), 400,
             "content.attachments[0].data"),
            (structured(attachments=[{"data": 5}]), 400,
             "content.attachments[0].data"),
            (req(priority="urgent"), 400, "priority"),
            (req(tenant="bad tenant!"), 400, "tenant"),
            (req(pool="nopool"), 400, "pool"),
            (req(content="Subject: {{ missing }}\n\nx\n"), 400, None),
            (req(substitutions={"a": {"nested": 1}}), 400, None),
            ('{"envelope_sender": "b@signed.test", "envelope_sender": '
             '"c@signed.test", "recipients": [{"email": "x@dest.test"}], '
             '"content": "x"}', 400, None),
            (req() + " trailing", 400, None),
            (b'{"envelope_sender": "b@signed.test", "recipients": '
             b'[{"email": "x@dest.test"}], "content": "\xff\xfe"}', 400,
             None),
            (req(recipients=[{"email": f"r{i}@dest.test"}
                             for i in range(6)]), 400, "recipients"),
            (req(content="Subject: big\n\n" + "x" * 70 + "\n" * 0 +
                 ("y" * 900 + "\n") * 120), 400, "content"),
            (req(content="Subject: nul\n\na\u0000b\n"), 400, None),
            (req(content="Subject: cr\n\na\rb\n"), 400, None),
            (req(content="Subject: long\n\n" + "z" * 2000 + "\n"), 400,
             "content"),
            ("[" * 100000 + "]" * 100000, 400, None),
            (req(bogus=1), 400, "bogus"),
            (structured(attachments=[{"data": "x", "content_type": "a/b",
                                      "file_name": "a\r\nX-Evil: 1"}]),
             400, "content.attachments[0].file_name"),
            # five messages of 90 kB: each fits, together over 4 x 100 kB
            (structured(text_body=("t" * 70 + "\n") * 1260) .replace(
                json.dumps(ok_rcpt), json.dumps(
                    [{"email": f"r{i}@dest.test"} for i in range(5)])),
             400, "recipients"),
        ]
        for body, status, field in cases:
            with self.subTest(body=str(body)[:120]):
                got, _, doc = post(self.url, body)
                self.assertEqual(got, status, doc)
                self.assertIsNotNone(doc, "a JSON error body")
                self.assertIn("error", doc)
                if field is not None:
                    self.assertEqual(doc.get("field"), field, doc)
        # a body past its bound: refused before it is read
        got, _, _ = post(self.url, b"x" * (2 * 100000 + 70000))
        self.assertEqual(got, 413)
        # wrong method and path
        self.assertEqual(post(self.url, None, method="GET")[0], 405)
        self.assertEqual(post(self.url.replace("inject", "nothing"),
                              "{}")[0], 404)
        # nothing reached a node
        self.assertEqual(c.metric("router", "shoal_router_enqueue_requests_total"), 0)
        for nid in c.node_ids:
            self.assertEqual(c.metric(nid, "shoal_messages_stored_total"),
                             0, nid)
        # the positive control: the same rig queues a good request
        got, _, doc = post(self.url, req())
        self.assertEqual(got, 200, doc)
        self.delivered(["x@dest.test"])
        self.assertEqual(c.metric("router", "shoal_router_http_messages_total",
                                  result="queued"), 1)

    def test_3_kill_primary_right_after_200_loses_nothing(self):
        c = self.http_cluster()
        sent = []
        for i in range(5):
            body = json.dumps({
                "envelope_sender": "b@signed.test",
                "recipients": [{"email": f"k{i}@dest.test"}],
                "content": f"Subject: k{i}\n\nbody {i}\n"})
            status, _, doc = post(self.url, body)
            self.assertEqual(status, 200, doc)
            sent.append(doc["ids"][0])
        # the owner of the last message dies at once after its 200
        victim = c.owner_of(sent[-1])
        c.kill_node(victim, signal.SIGKILL)
        self.delivered([f"k{i}@dest.test" for i in range(5)])

    def test_4_auth_health_rate_and_node_loss(self):
        self.dir = self.tempdir("shoal-e2e-http-auth-")
        cert, key = make_cert(self.dir, "mx.http.example")
        users = os.path.join(self.dir, "users")
        self.http_port, tls_port = free_port(), free_port()
        c = self.cluster(
            start=False, relay_networks=(), router_metrics=True,
            node_timeout_ms=2000,
            router_extra=(
                f'tls_cert = "{cert}"; tls_key = "{key}"; '
                f'users_file = "{users}"; '
                f'max_msgs_per_minute_per_user = 2; '
                f'http_listen = ( {{ address = "127.0.0.1:{self.http_port}";'
                f' }}, {{ address = "127.0.0.1:{tls_port}"; '
                f'tls = "implicit"; }} );'))
        c.write_config()
        c.add_user("alice", "s3cret pass")
        c.add_user("bob", "other pw")
        c.start()
        base = f"http://127.0.0.1:{self.http_port}/api/v1"
        tls_base = f"https://127.0.0.1:{tls_port}/api/v1"
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        body = json.dumps({"envelope_sender": "a@e2e.test",
                           "recipients": [{"email": "r@dest.test"}],
                           "content": "Subject: a\n\nb\n"})
        status, _, doc = post(base + "/health", None, method="GET")
        self.assertEqual((status, doc), (200, {"status": "ok"}))
        # outside relay_networks: no credentials, no mail
        status, h, doc = post(base + "/inject", body)
        self.assertEqual(status, 401, doc)
        self.assertIn("Basic", h.get("WWW-Authenticate", ""))
        # a password over plain HTTP from loopback without
        # auth_plaintext: refused before it is checked, as SMTP AUTH is
        status, _, doc = post(base + "/inject", body,
                              user=("alice", "s3cret pass"))
        self.assertEqual((status, doc.get("field")), (403, "Authorization"))
        # over TLS: a wrong password, then the right one
        status, _, doc = post(tls_base + "/inject", body,
                              user=("alice", "wrong"), ctx=ctx)
        self.assertEqual(status, 401, doc)
        # alice's rate is 2 a minute: her requests in a row pass until
        # the third, or (a minute boundary crossed: the sliding minute
        # weighs the last one's count) the fourth, gets 429
        got = []
        while len(got) < 4 and 429 not in got:
            status, h, doc = post(tls_base + "/inject", body,
                                  user=("alice", "s3cret pass"), ctx=ctx)
            got.append(status)
        self.assertEqual(got[:2], [200, 200], got)
        self.assertEqual(got[-1], 429, got)
        self.assertEqual(h.get("Retry-After"), "60")
        # the scheme in any case (RFC 7617); a NUL in the password or
        # bad base64 is refused, never cut short or ignored
        b64 = base64.b64encode(b"bob:other pw").decode()
        status, _, doc = post(tls_base + "/inject", body, ctx=ctx,
                              authorization="basic " + b64)
        self.assertEqual(status, 200, doc)
        for bad in ("Basic " + base64.b64encode(
                        b"alice:s3cret pass\x00junk").decode(),
                    "Basic ***", "Basic " + b64[:-2], "Bearer " + b64):
            status, _, doc = post(tls_base + "/inject", body, ctx=ctx,
                                  authorization=bad)
            self.assertEqual(status, 401, (bad, doc))
        self.assertEqual(c.metric("router", "shoal_router_http_messages_total",
                                  result="queued"), got.count(200) + 1)
        # both nodes gone: 503 with Retry-After, as SMTP gets 451
        for nid in c.node_ids:
            c.kill_node(nid, signal.SIGKILL)
        status, h, doc = post(tls_base + "/inject", body,
                              user=("bob", "other pw"), ctx=ctx)
        self.assertEqual(status, 503, doc)
        self.assertEqual(h.get("Retry-After"), "5")
        self.assertEqual(doc["success_count"], 0)
        self.assertEqual(doc["failed_recipients"], ["r@dest.test"])

    def test_5_judged_before_the_body_and_dead_connections(self):
        c = self.cluster(relay_networks=("127.0.0.1/32",),
                         router_metrics=True, start=False,
                         router_extra=f'idle_timeout = 2; http_listen = ( '
                                      f'{{ address = "127.0.0.1:'
                                      f'{free_port()}"; }} );')
        c.write_config()
        c.start()
        port = int(open(c.conf).read().split("http_listen = ( { address "
                                             '= "127.0.0.1:')[1]
                   .split('"')[0])

        def raw(head, src="127.0.0.1", timeout=10, to_end=False):
            """Send a request head (and nothing else); the reply's head
            (to_end: all the server sends until it closes)."""
            s = socket.create_connection(("127.0.0.1", port), timeout,
                                         source_address=(src, 0))
            s.sendall(head)
            data = b""
            while to_end or b"\r\n\r\n" not in data:
                got = s.recv(65536)
                if not got:
                    break
                data += got
            s.close()
            return data

        big = ("POST /api/v1/inject HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\n"
               "Content-Length: 100000\r\n")
        # an outsider without credentials: 401 before its body is read,
        # and no 100 Continue
        r = raw((big + "Expect: 100-continue\r\n\r\n").encode(),
                src="127.0.0.3")
        self.assertTrue(r.startswith(b"HTTP/1.1 401"), r)
        self.assertNotIn(b"100 Continue", r)
        # the positive control: a relay client is told to go on
        r = raw((big + "Expect: 100-continue\r\n\r\n").encode())
        self.assertTrue(r.startswith(b"HTTP/1.1 100"), r)
        # framing two readers could take differently: refused
        for extra, code in (("Transfer-Encoding: chunked\r\n", b"400"),
                            ("Content-Length: 100000\r\n", b"400")):
            r = raw((big + extra + "\r\n").encode())
            self.assertTrue(r.startswith(b"HTTP/1.1 " + code), r)
        r = raw(b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: gzip, chunked\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 501"), r)
        r = raw(b"POST /api/v1/inject HTTP/1.1\r\n"
                b"Content-Length: 2\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 400"), r)   # no Host
        r = raw(b"POST /elsewhere HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100000\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 404"), r)
        # a body where none is taken (anyone may ask for health): not
        # read into memory
        r = raw(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100000\r\n\r\n", src="127.0.0.3")
        self.assertTrue(r.startswith(b"HTTP/1.1 400"), r)
        # "Content-Length :" hides the next request in its body
        smuggled = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
        r = raw(b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length : %d\r\n\r\n" % len(smuggled) +
                smuggled, to_end=True)
        self.assertTrue(r.startswith(b"HTTP/1.1 400"), r)
        self.assertIn(b"white space in a header field name", r)
        self.assertEqual(r.count(b"HTTP/1.1 "), 1, r)  # one answer

        def conns():
            return c.metric("router", "shoal_router_http_connections")
        wait_for(lambda: conns() == 0, 10, "every connection closed")

    def test_6_late_heads_and_hung_up_bodies_free_their_slots(self):
        http = free_port()
        c = self.cluster(router_metrics=True,
                         router_extra=f'idle_timeout = 120; http_listen = '
                                      f'( {{ address = "127.0.0.1:{http}";'
                                      f' }} );')

        def conns():
            return c.metric("router", "shoal_router_http_connections")
        # the head, part of the body and the FIN arrive together
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", http), 10)
            s.sendall(b"POST /api/v1/inject HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 10000\r\n\r\n{\"a\":")
            s.close()
        # every request ends (logged), and not at the idle timeout
        # (120 s): the sweep sees the hang-ups libmicrohttpd misses
        wait_for(lambda: c.router.log_text().count(
            "code=0 event=ended") == 20, 5,
            "the 20 hung-up requests ended")
        wait_for(lambda: conns() == 0, 5, "no connection left")
        # a head that never ends (slowloris sends a byte now and then:
        # the deadline runs from the connection, whatever comes) is cut
        # at 10 s, long before the 120 s idle timeout
        s = socket.create_connection(("127.0.0.1", http), 30)
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nX-Slow: a")
        wait_for(lambda: conns() == 1, 10, "the slow connection counted")
        wait_for(lambda: "event=http_closed reason=head_timeout"
                 in c.router.log_text(), 20, "the late head cut")
        self.assertEqual(s.recv(1), b"")  # the router closed it
        s.close()
        wait_for(lambda: conns() == 0, 5, "no connection left")
