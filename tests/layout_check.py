#!/usr/bin/env python3
"""Check the source layout rules of README's "Source layout".

    python3 tests/layout_check.py [REPO]
    python3 tests/layout_check.py --self-test

--self-test runs the checks on small trees made for it (one with a cycle,
one with a wrong-way include, one clean) and fails unless each is judged
as it should be: the positive control of the checks themselves.

Each rule is one check and prints one line, `layout: NAME ok` or
`layout: NAME FAIL` followed by what breaks it:

  cycles      no include cycle between the folders under node/ (a folder
              is a module; node/*.c and node/*.h themselves are the
              composition root and may include anything)
  direction   every include between node/ folders follows the allowed
              edges below (so a new edge is a decision, not an accident)
  file_size   no .c or .h file of router/, node/, lib/, cli/ over 900 lines
  folder_size no folder with more than 25 .c files

Exit status 0 when every check passes, 1 otherwise. Reads files only.
"""

import os
import re
import sys

FILE_MAX_LINES = 900
FOLDER_MAX_C = 25
SOURCE_ROOTS = ("lib", "router", "node", "cli")

# Which node/ folders each folder may include (besides itself and lib/,
# proto/). The root (node/*.c) may include every folder. Keep in step with
# README's "Source layout".
ALLOWED = {
    "rpc": set(),
    "store": set(),
    # http: the node's HTTP client (libcurl on the loop), for webhooks and
    # the TLS policies. tls: MTA-STS and TLS-RPT texts, parsed and built
    # (pure functions).
    "http": set(),
    "tls": set(),
    # delivery applies the policies (types from tls/) that policy/ finds.
    "delivery": {"tls"},
    "cluster": {"store", "rpc"},
    "suppress": {"cluster", "store", "rpc"},
    # webhook (issue 19): events are stored and replicated with the queue
    # (store) and sent by the primary of their shard (cluster: owner).
    "webhook": {"cluster", "store", "http"},
    # policy (issue 20): MTA-STS policies fetched and cached, TLS-RPT
    # counted and sent; looks names up through delivery's resolver and
    # queues mailto: reports like DSNs (queue).
    "policy": {"tls", "delivery", "http", "store", "queue", "cluster"},
    # queue writes webhook events in its result transactions.
    "queue": {"cluster", "suppress", "store", "rpc", "delivery", "webhook"},
    "ops": {"queue", "suppress", "cluster", "store", "rpc", "delivery",
            "webhook", "policy"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"node/([^"]+)"', re.M)


def node_folder(path):
    """'node/store/store.c' -> 'store'; 'node/node.c' -> '' (the root)."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else ""


def include_edges(repo):
    """(from_folder, to_folder, file) for every include across node/
    folders."""
    edges = []
    base = os.path.join(repo, "node")
    for dirpath, _, files in os.walk(base):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, repo)
            src = node_folder(rel)
            with open(full, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for inc in INCLUDE.findall(text):
                dst = node_folder("node/" + inc)
                if dst != src:
                    edges.append((src, dst, rel))
    return edges


def find_cycle(graph):
    """A list of folders forming a cycle in graph, or None."""
    state = {}
    stack = []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if state.get(w) is None:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if state.get(v) is None:
            found = visit(v)
            if found:
                return found
    return None


def check_cycles(edges):
    graph = {}
    for src, dst, _ in edges:
        if src:  # the root is above everything
            graph.setdefault(src, set()).add(dst)
    cycle = find_cycle(graph)
    if cycle is None:
        return []
    out = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:]):
        files = sorted({f for s, d, f in edges if s == a and d == b})
        out.append(f"  {a} -> {b}: {', '.join(files)}")
    return out


def check_direction(edges):
    bad = []
    for src, dst, f in sorted(set(edges)):
        if not src:
            continue
        if src not in ALLOWED:
            bad.append(f"{f}: folder node/{src}/ is not in the layout")
        elif dst and dst not in ALLOWED[src]:
            bad.append(f"{f}: node/{src}/ may not include node/{dst}/")
        elif not dst:
            bad.append(f"{f}: node/{src}/ may not include the root "
                       "(node/*.h)")
    return bad


def check_file_size(repo):
    bad = []
    for root in SOURCE_ROOTS:
        for dirpath, _, files in os.walk(os.path.join(repo, root)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                full = os.path.join(dirpath, f)
                with open(full, encoding="utf-8", errors="replace") as fh:
                    n = sum(1 for _ in fh)
                if n > FILE_MAX_LINES:
                    bad.append(f"{os.path.relpath(full, repo)}: {n} lines")
    return bad


def check_folder_size(repo):
    bad = []
    for root in SOURCE_ROOTS:
        for dirpath, _, files in os.walk(os.path.join(repo, root)):
            n = sum(1 for f in files if f.endswith(".c"))
            if n > FOLDER_MAX_C:
                bad.append(f"{os.path.relpath(dirpath, repo)}: {n} C files")
    return bad


def self_test():
    import tempfile

    def tree(files):
        d = tempfile.mkdtemp(prefix="shoal-layout-")
        for path, text in files.items():
            full = os.path.join(d, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as fh:
                fh.write(text)
        return d

    clean = tree({"node/node.c": '#include "node/queue/ingest.h"\n',
                  "node/queue/ingest.c": '#include "node/store/store.h"\n',
                  "node/store/store.c": '#include "lib/log.h"\n'})
    cycle = tree({"node/queue/ingest.c": '#include "node/store/store.h"\n',
                  "node/store/store.c": '#include "node/cluster/owner.h"\n',
                  "node/cluster/owner.c":
                      '#include "node/queue/sched.h"\n'})
    upward = tree({"node/delivery/deliver.c":
                       '#include "node/queue/scheduler.h"\n'})
    ok = True
    e = include_edges(clean)
    ok &= check_cycles(e) == [] and check_direction(e) == []
    e = include_edges(cycle)
    found = check_cycles(e)
    ok &= bool(found) and "cluster -> queue" in found[0]
    e = include_edges(upward)
    ok &= check_cycles(e) == [] and any(
        "node/delivery/ may not include node/queue/" in p
        for p in check_direction(e))
    print(f"layout: self_test {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    edges = include_edges(repo)
    checks = [
        ("cycles", check_cycles(edges)),
        ("direction", check_direction(edges)),
        ("file_size", check_file_size(repo)),
        ("folder_size", check_folder_size(repo)),
    ]
    failed = 0
    for name, problems in checks:
        if problems:
            failed += 1
            print(f"layout: {name} FAIL")
            for p in problems:
                print(f"    {p}")
        else:
            print(f"layout: {name} ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
