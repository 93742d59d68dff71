#!/usr/bin/python3
"""Check the DKIM signatures of delivered messages with an independent
verifier (Debian's python3-dkim), asking the demo's DNS for the keys.

    deploy/local/dkimverify.py --dns 127.0.0.1:5354 run/demo/mail/*

Prints one line per signature and exits 1 when any fails."""
import argparse
import sys

import dkim
import dns.resolver


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dns", required=True, help="host:port of the DNS server")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    host, _, port = a.dns.rpartition(":")
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [host]
    res.port = int(port)
    res.lifetime = 5

    def txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        ans = res.resolve(name, "TXT")
        return b"".join(b"".join(r.strings) for r in ans)

    bad = 0
    for path in a.files:
        with open(path, "rb") as f:
            raw = f.read()
        # smtp-sink -d files start with its own envelope lines; the message
        # begins at the first header the router wrote (ours come first)
        start = raw.find(b"DKIM-Signature:")
        if start < 0:
            print(f"{path}: no DKIM-Signature")
            bad += 1
            continue
        msg = raw[start:]
        if b"\r\n" not in msg:  # a dump written with bare LF line ends
            msg = msg.replace(b"\n", b"\r\n")
        d = dkim.DKIM(msg)
        n = sum(1 for line in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                if line.lower().startswith(b"dkim-signature:"))
        for i in range(n):
            why = ""
            try:
                ok = d.verify(idx=i, dnsfunc=txt)
            except dkim.DKIMException as e:
                ok, why = False, f" ({e})"
            sig = dict(d.signature_fields) if d.signature_fields else {}
            print(f"{path}: signature {i + 1}/{n} d={sig.get(b'd', b'?').decode()} "
                  f"s={sig.get(b's', b'?').decode()} a={sig.get(b'a', b'?').decode()}: "
                  f"{'pass' if ok else 'FAIL'}{why}")
            bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
