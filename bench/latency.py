#!/usr/bin/python3
"""Open-loop enqueue latency: N SMTP sessions at a fixed total rate.

    bench/latency.py -p PORT [-H 127.0.0.1] [-s SESSIONS] [-r RATE] [-n MESSAGES]
                     [-l BYTES] [-w WARMUP] [--json]

Messages are due on a fixed schedule (MESSAGES at RATE per second in total,
evenly spaced); a due message goes out on the next idle session, so a slow
server does not slow the schedule down (open loop), it only makes messages
late, and the lateness is reported too. Each session connects once, says
EHLO and then sends MAIL, RCPT, DATA, the body and "." for every message.
The latency of one message is the time from writing the final "." of DATA
to reading the complete 250 reply: the time the server takes to make the
message durable and say so. The first WARMUP messages are sent but not
counted.

Prints one line: sent, ok, failed, achieved rate, p50/p90/p99/max latency in
ms, p99 lateness; with --json one JSON object instead. Exit 1 when a message
got anything but 250 or a session failed.
"""
import argparse
import asyncio
import json
import sys
import time


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


class Bench:
    def __init__(self, args):
        self.a = args
        self.lat = []          # seconds, counted messages only
        self.late = []         # seconds between due time and the first byte
        self.failed = 0
        self.errors = {}
        self.sent = 0
        self.queue = asyncio.Queue()
        body = []
        line = "X" * 76
        size = 0
        hdr = ("From: <bench@sink.test>\r\nTo: <rcpt@sink.test>\r\n"
               "Subject: latency bench\r\n\r\n")
        size = len(hdr)
        while size < args.bytes:
            body.append(line)
            size += len(line) + 2
        self.data = (hdr + "\r\n".join(body) + "\r\n").encode()

    def error(self, what):
        self.failed += 1
        self.errors[what] = self.errors.get(what, 0) + 1

    async def reply(self, reader):
        """One SMTP reply (all lines); returns (code, text)."""
        lines = []
        while True:
            line = await asyncio.wait_for(reader.readline(), self.a.timeout)
            if not line:
                raise ConnectionError("connection closed")
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
        return code, b"".join(lines).decode(errors="replace").strip()

    async def cmd(self, reader, writer, text, want):
        writer.write(text.encode() + b"\r\n")
        code, msg = await self.reply(reader)
        if code != want:
            raise RuntimeError(f"{text.split(':')[0]} -> {msg[:60]}")

    async def session(self, sid):
        reader = writer = None
        while True:
            item = await self.queue.get()
            if item is None:
                break
            idx, due = item
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.a.host, self.a.port), self.a.timeout)
                    code, msg = await self.reply(reader)
                    if code != 220:
                        raise RuntimeError(f"greeting {msg[:60]}")
                    await self.cmd(reader, writer, "EHLO latency.bench.local", 250)
                start = time.monotonic()
                await self.cmd(reader, writer, "MAIL FROM:<bench@sink.test>", 250)
                await self.cmd(reader, writer, "RCPT TO:<rcpt@sink.test>", 250)
                await self.cmd(reader, writer, "DATA", 354)
                writer.write(self.data)
                writer.write(b".\r\n")
                t0 = time.monotonic()
                code, msg = await self.reply(reader)
                t1 = time.monotonic()
                self.sent += 1
                if code != 250:
                    self.error(f"DATA -> {msg[:60]}")
                elif idx >= self.a.warmup:
                    self.lat.append(t1 - t0)
                    self.late.append(max(0.0, start - due))
            except (OSError, ConnectionError, RuntimeError, asyncio.TimeoutError) as e:
                self.error(str(e)[:80] or type(e).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            try:
                writer.write(b"QUIT\r\n")
                await asyncio.wait_for(self.reply(reader), 2)
            except (OSError, ConnectionError, asyncio.TimeoutError):
                pass
            writer.close()

    async def run(self):
        tasks = [asyncio.create_task(self.session(i)) for i in range(self.a.sessions)]
        total = self.a.messages + self.a.warmup
        t_start = time.monotonic() + 0.2
        for i in range(total):
            due = t_start + i / self.a.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.queue.put_nowait((i, due))
        t_sched_end = time.monotonic()
        for _ in tasks:
            self.queue.put_nowait(None)
        await asyncio.gather(*tasks)
        t_end = time.monotonic()
        # The achieved rate: counted messages over the time they took (from
        # the first counted message's due time to the last reply).
        t_first = t_start + self.a.warmup / self.a.rate
        counted = len(self.lat)
        return {
            "sessions": self.a.sessions,
            "target_rate": self.a.rate,
            "bytes": len(self.data),
            "sent": self.sent,
            "ok": counted,
            "failed": self.failed,
            "errors": self.errors,
            "rate": counted / max(1e-9, t_end - t_first),
            "schedule_s": t_sched_end - t_start,
            "p50_ms": 1000 * percentile(sorted(self.lat), 50),
            "p90_ms": 1000 * percentile(sorted(self.lat), 90),
            "p99_ms": 1000 * percentile(sorted(self.lat), 99),
            "max_ms": 1000 * (max(self.lat) if self.lat else float("nan")),
            "late_p99_ms": 1000 * percentile(sorted(self.late), 99),
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-H", "--host", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("-s", "--sessions", type=int, default=50)
    ap.add_argument("-r", "--rate", type=float, default=1000.0, help="messages/s in total")
    ap.add_argument("-n", "--messages", type=int, default=10000, help="counted messages")
    ap.add_argument("-w", "--warmup", type=int, default=200)
    ap.add_argument("-l", "--bytes", type=int, default=1024, help="message size")
    ap.add_argument("-t", "--timeout", type=float, default=30.0, help="per reply, seconds")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not (0 < a.sessions <= 10000 and a.rate > 0 and a.messages > 0 and a.warmup >= 0
            and 0 < a.bytes <= 64 << 20):
        ap.error("out of range")
    r = asyncio.run(Bench(a).run())
    if a.json:
        print(json.dumps(r))
    else:
        print("sessions=%d target_rate=%.0f achieved_rate=%.0f ok=%d failed=%d "
              "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f late_p99_ms=%.1f%s" % (
                  r["sessions"], r["target_rate"], r["rate"], r["ok"], r["failed"],
                  r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["late_p99_ms"],
                  (" errors=" + json.dumps(r["errors"])) if r["errors"] else ""))
    return 1 if r["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
