#!/usr/bin/python3
"""Where one message's enqueue latency goes, from a perf trace of the
router and both nodes (bench/timeline.sh writes the inputs):

    bench/timeline.py TRACE TIDS [--size BYTES] [--show N]

TRACE is `perf trace` output of the syscalls fdatasync, sendto, recvfrom,
readv, writev and pwrite64; TIDS has one line per thread, "PROGRAM TID"
(router, n1, n2). For each message sent over one session it finds, in
order:

  body    the router reads the message (a readv of >= BYTES)
  enq     a node's ZeroMQ thread receives the enqueue (>= BYTES): the
          primary
  ship    the primary's ZeroMQ thread sends the batch (>= BYTES)
  r_recv  the replica's ZeroMQ thread receives it
  r_sync  the replica's second fdatasync after that ends (commit, meta)
  ack     the replica's ZeroMQ thread sends its ack
  p_sync  the primary's first fdatasync after the enqueue ends (its
          commit; since the batch leaves before the commit, this runs
          beside ship .. ack)
  reply   the primary's ZeroMQ thread sends the answer to the router (on
          the connection the enqueue came in on)
  250     the router writes the 250

and prints the median time from body to each step, the median of each
step's own share (the time since the step it waits for: p_sync waits for
enq, reply for the later of ack and p_sync, the rest for the step
before), and with --show N the syscalls of the first N messages. perf trace adds some 20 us to every
syscall it sees: compare the shares, not the absolute times, with runs of
other builds.
"""
import argparse
import re
import statistics
import sys

LINE = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): (\S+)/(\d+) "
                  r"(?:\.\.\. \[continued\]: )?(\w+)\((?:fd: (\d+))?.*\)"
                  r"\s+= (-?\d+)")
STEPS = ["enq", "ship", "r_recv", "r_sync", "ack", "p_sync", "reply", "250"]
# what each step waits for: its own share is the time since that
AFTER = {"enq": "body", "ship": "enq", "r_recv": "ship", "r_sync": "r_recv",
         "ack": "r_sync", "p_sync": "enq", "reply": "ack|p_sync",
         "250": "reply"}


def since(m, s):
    return max(m[x] for x in AFTER[s].split("|"))


def load(trace, tids):
    prog = {}
    for line in open(tids):
        p, t = line.split()
        prog[int(t)] = p
    ev = []
    for line in open(trace):
        m = LINE.match(line)
        if not m:
            continue  # the first half of a call that blocked
        t, d, comm, tid, sc, fd, ret = m.groups()
        tid = int(tid)
        if tid not in prog:
            continue
        zmq = comm.startswith("ZMQ")
        ev.append((float(t), float(d), prog[tid], zmq, sc, int(ret),
                   int(fd) if fd else -1))
    ev.sort()
    return ev


def first(ev, i, pred):
    for k in range(i, len(ev)):
        if pred(ev[k]):
            return k
    return None


def message(ev, i, size):
    """Steps of the message whose body the router read at ev[i]."""
    at = {"body": ev[i][0] + ev[i][1]}
    k = first(ev, i, lambda e: e[3] and e[2] != "router" and
              e[4] == "recvfrom" and e[5] >= size)
    if k is None:
        return None, None
    primary, router_fd = ev[k][2], ev[k][6]
    replica = "n2" if primary == "n1" else "n1"
    at["enq"] = ev[k][0] + ev[k][1]
    k = first(ev, k, lambda e: e[2] == primary and not e[3] and
              e[4] == "fdatasync")
    if k is None:
        return None, None
    at["p_sync"] = ev[k][0] + ev[k][1]
    k2 = first(ev, i, lambda e: e[2] == primary and e[3] and
               e[4] == "sendto" and e[5] >= size)
    k3 = first(ev, i, lambda e: e[2] == replica and e[3] and
               e[4] == "recvfrom" and e[5] >= size)
    if k2 is None or k3 is None:
        return None, None
    at["ship"] = ev[k2][0]
    at["r_recv"] = ev[k3][0] + ev[k3][1]
    syncs = 0
    k = k3
    while syncs < 2:
        k = first(ev, k + 1, lambda e: e[2] == replica and not e[3] and
                  e[4] == "fdatasync")
        if k is None:
            return None, None
        syncs += 1
    at["r_sync"] = ev[k][0] + ev[k][1]
    k = first(ev, k, lambda e: e[2] == replica and e[3] and
              e[4] == "sendto" and e[5] < size)
    if k is None:
        return None, None
    at["ack"] = ev[k][0]
    k = first(ev, k, lambda e: e[2] == primary and e[3] and
              e[4] == "sendto" and e[6] == router_fd)
    k4 = first(ev, i, lambda e: e[2] == "router" and not e[3] and
               e[4] == "writev")
    if k is None or k4 is None:
        return None, None
    at["reply"] = ev[k][0]
    at["250"] = ev[k4][0]
    return at, k4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("tids")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--show", type=int, default=0)
    a = ap.parse_args()
    ev = load(a.trace, a.tids)
    msgs, i, shown, seen = [], 0, 0, 0
    while i < len(ev):
        e = ev[i]
        if e[2] == "router" and not e[3] and e[4] == "readv" and \
                e[5] >= a.size:
            seen += 1
            at, end = message(ev, i, a.size)
            if at is None:  # a step perf lost, or the trace's end
                i += 1
                continue
            if all(since(at, s) <= at[s] + 1e-9 for s in STEPS):
                msgs.append(at)
                if shown < a.show:
                    shown += 1
                    print(f"---- message {len(msgs)}")
                    for e2 in ev[i:end + 1]:
                        print(f"{e2[0] - at['body']:8.3f} +{e2[1]:.3f} "
                              f"{e2[2]:6} {'zmq ' if e2[3] else 'main'} "
                              f"{e2[4]} = {e2[5]}")
            i = end
        i += 1
    if not msgs:
        sys.exit("no complete message found")
    print(f"messages: {len(msgs)} of {seen} (one session; medians in ms, "
          f"perf trace adds ~0.02 ms a syscall; the others had a step "
          f"missing or out of order)")
    print(f"{'step':8} {'since body':>10} {'own share':>10}")
    for s in STEPS:
        total = statistics.median(m[s] - m["body"] for m in msgs)
        share = statistics.median(m[s] - since(m, s) for m in msgs)
        print(f"{s:8} {total:10.3f} {share:10.3f}")


if __name__ == "__main__":
    main()
