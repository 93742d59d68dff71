"""Bounce classification (node/delivery/classify.c, docs/pools.md), end to end: an
MX (tests/fixtures/capture_smtpd.py, aiosmtpd) refuses chosen recipients
with the replies real providers give; each failure's category shows in
the node's delivery log, in `shoalctl queue show` for a recipient still
queued, and in the RFC 3464 DSN the sender receives (X-Shoal-Category in
the per-recipient part, a short reason in the human-readable part). The
sender's domain routes to the same capture, so the DSN is captured too.
"""

import email
import email.policy
import json
import os
import smtplib
import unittest

from shoaltest import ShoalTestCase, make_message, qid_from_reply, wait_for
from test_pools import DELIVERY_TIMEOUT, Capture, dlog_lines

SENDER = "alice@sender.test"

RULES = [
    {"cmd": "RCPT", "match": "unknown@",
     "reply": "550 5.1.1 <unknown@dest.test>: Recipient address rejected: "
              "User unknown in virtual mailbox table"},
    {"cmd": "RCPT", "match": "full@",
     "reply": "552 5.2.2 The email account that you tried to reach is "
              "over quota"},
    {"cmd": "RCPT", "match": "spam@",
     "reply": "554 5.7.1 Message rejected as spam by content filter"},
    {"cmd": "RCPT", "match": "slow@",
     "reply": "452 4.7.0 Rate limited, try again later"},
    {"cmd": "RCPT", "match": "nocode@",
     "reply": "550 Sorry, no mailbox here by that name: no such user"},
    {"cmd": "DATA", "match": "big@",
     "reply": "552 5.3.4 Message size exceeds fixed maximum message size"},
]

WANT = {
    "unknown@dest.test": ("bounced", "invalid_recipient"),
    "full@dest.test": ("bounced", "mailbox_full"),
    "spam@dest.test": ("bounced", "policy_block"),
    "slow@dest.test": ("deferred", "rate_limited"),
    "nocode@dest.test": ("bounced", "invalid_recipient"),
    "big@dest.test": ("bounced", "message_too_large"),
    "ok@dest.test": ("delivered", ""),
}


def dsn_parts(content):
    """{final recipient: per-recipient fields} and the human part's text."""
    msg = email.message_from_bytes(content, policy=email.policy.compat32)
    fields, human = {}, ""
    for part in msg.walk():
        ct = part.get_content_type()
        if ct == "text/plain" and not human:
            human = part.get_payload(decode=True).decode("ascii", "replace")
        if ct == "message/delivery-status":
            for block in part.get_payload()[1:]:
                rcpt = block["Final-Recipient"].split(";", 1)[1].strip()
                fields[rcpt] = block
    return fields, human


class ClassifyTest(ShoalTestCase):

    def test_1_categories_in_log_queue_and_dsn(self):
        c = self.cluster(start=False, nodes=1)
        cap = Capture(self, c, rules=RULES)
        c.delivery = (f'  helo_name = "mta.e2e.example";\n'
                      f'  dns_servers = [ "127.0.0.1:{c.dead_port}" ];\n'
                      f'  routes = (\n'
                      f'    {{ domain = "dest.test"; host = "{cap.host}"; '
                      f'tls = "none"; }},\n'
                      f'    {{ domain = "sender.test"; host = "{cap.host}"; '
                      f'tls = "none"; }} );\n')
        c.write_config()
        cap.start()
        c.start()
        rcpts = ["ok@dest.test", "unknown@dest.test", "full@dest.test",
                 "spam@dest.test", "slow@dest.test", "nocode@dest.test"]
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30) as s:
            s.ehlo()
            s.mail(SENDER)
            for r in rcpts:
                self.assertEqual(s.rcpt(r)[0], 250)
            code, text = s.data(make_message("classify", sender=SENDER,
                                             rcpt=rcpts[0]))
            self.assertEqual(code, 250)
            qid = qid_from_reply(text.decode())
            s.sendmail(SENDER, ["big@dest.test"],
                       make_message("big", sender=SENDER,
                                    rcpt="big@dest.test"))

        # the delivery log: one line per recipient, with its category
        def logged():
            got = {ln["rcpt"]: (ln["result"], ln["category"])
                   for ln in dlog_lines(c) if ln["rcpt"] in WANT}
            return got if len(got) == len(WANT) else None
        self.assertEqual(wait_for(logged, DELIVERY_TIMEOUT,
                                  "every recipient in the delivery log"),
                         WANT)

        # the DSNs: the first message's four failures, then the big one
        def dsns():
            got = [m for m in cap.messages() if m["mail_from"] == ""]
            return got if len(got) >= 2 else None
        fields, humans = {}, []
        for m in wait_for(dsns, DELIVERY_TIMEOUT, "two DSNs"):
            self.assertEqual(m["rcpt_tos"], [SENDER])
            f, h = dsn_parts(m["content"])
            fields.update(f)
            humans.append(h)
        for rcpt, (result, cat) in WANT.items():
            if result != "bounced":
                self.assertNotIn(rcpt, fields)
                continue
            self.assertEqual(fields[rcpt]["Action"], "failed")
            self.assertEqual(fields[rcpt]["X-Shoal-Category"], cat, rcpt)
        text = "\n".join(humans)
        self.assertIn("(reason: the recipient address does not exist)", text)
        self.assertIn("(reason: the recipient's mailbox is full)", text)
        self.assertIn("(reason: blocked by the receiver's policy", text)
        self.assertIn("(reason: the message is too large", text)

        # the deferred recipient keeps its category in the queue
        shown = c.queue_show(qid)
        by_addr = {r["address"]: r for r in shown["recipients"]}
        self.assertEqual(by_addr["slow@dest.test"]["state"], "deferred")
        self.assertEqual(by_addr["slow@dest.test"]["category"],
                         "rate_limited")
        self.assertIn("4.7.0", by_addr["slow@dest.test"]["last_reply"])


if __name__ == "__main__":
    unittest.main()
