"""The TLS policy rig of the end-to-end tests of issue 20: MTA-STS (RFC
8461), DANE for SMTP (RFC 7672) and TLS-RPT (RFC 8460).

    python3 tests/e2e/tlsrig.py --selftest   (= runner.py test_tlsrig)

Owns, on top of test_delivery.py's Peers (dnsmasq, capture MX servers on
one SMTP port at distinct loopback addresses):
- TestCA: a certificate authority made with the openssl command (EC
  P-256): leaf certificates for DNS names (SANs), an expired leaf, and a
  second, untrusted CA for leaves that must not verify.
- StsServer: tests/fixtures/sts_server.py, one HTTPS port for every
  mta-sts.DOMAIN host (and the TLS-RPT https rua host); policies in a JSON
  file it reads per request, report POSTs kept as files.
- TlsPeers: Peers whose dnsmasq also serves the _mta-sts / _smtp._tls TXT
  records and A records of the policy hosts (-> 127.0.0.1, where the
  policy server listens), restartable on the same port with new records;
  MX servers with a given certificate; the delivery config keys of the
  contract (delivery.tls_ca_file, delivery.mta_sts_port).
- DnssecRig: zones signed with ldns-keygen/ldns-signzone (and one with a
  broken signature, and unsigned ones) served by an authoritative unbound
  (auth-zone), and a validating unbound in front that sends each test
  zone's queries to the authoritative one (unbound's "stub-zone"
  directive), a trust anchor (the KSK's DS) per signed zone,
  domain-insecure for the unsigned ones, and a forward-zone "." to the
  peers' dnsmasq for every other name (dest.test, sender.test, ...), which
  have no trust anchor and so come back insecure. The node's dns_servers
  is the validator when a test uses the rig. TLSA owners name the port
  the node connects to: _<delivery.smtp_port>._tcp.<mx host>.
- TlsDeliveryMixin: test_delivery.DeliveryTest's helpers (not its tests)
  with setup() building TlsPeers; TLS-RPT report checks (RFC 8460 4.4).

Every process is a Proc started on free loopback ports, waited for under
a deadline and stopped by PID with the cluster; logs are printed on
failure. Test-only code; talks only to 127.0.0.1.
"""

import datetime
import email
import email.policy
import gzip
import hashlib
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import test_delivery as td                      # noqa: E402
from shoaltest import (REPO, PortInUse, StartError, free_port,  # noqa: E402
                       log, wait_for)

OPENSSL = "/usr/bin/openssl"
UNBOUND = "/usr/sbin/unbound"
UNBOUND_CHECKCONF = "/usr/sbin/unbound-checkconf"
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"
DIG = "/usr/bin/dig"
CURL = "/usr/bin/curl"
STS_SERVER = os.path.join(REPO, "tests", "fixtures", "sts_server.py")

DNS_TTL = 5                 # seconds, every record of the rig's zones
REPORTS_HOST = "tlsrpt.reports.test"   # host of https:// rua URIs

# RFC 8460 4.3 (and the IANA registry it sets up)
RESULT_TYPES = {
    "starttls-not-supported", "certificate-host-mismatch",
    "certificate-expired", "certificate-not-trusted", "validation-failure",
    "tlsa-invalid", "dnssec-invalid", "dane-required",
    "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}
POLICY_TYPES = {"tlsa", "sts", "no-policy-found"}
# RFC 3339 5.6 date-time
RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-]\d{2}:\d{2})$")


def run(argv, what, cwd=None, input=None, timeout=60):
    """Run a command; its stdout as text. Raises StartError with its
    stderr when it fails."""
    r = subprocess.run(argv, cwd=cwd, input=input, capture_output=True,
                       timeout=timeout,
                       stdin=None if input is not None else
                       subprocess.DEVNULL)
    if r.returncode != 0:
        raise StartError(f"{what}: {' '.join(argv)} exited "
                         f"{r.returncode}: {r.stderr.decode(errors='replace')}"
                         f"{r.stdout.decode(errors='replace')}")
    return r.stdout.decode("utf-8", "replace")


# ---- certificates -----------------------------------------------------------

def _asn1_time(t):
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(t))


class TestCA:
    """A CA in directory d (made at once): ca.crt, ca.key, and leaves
    issued with `openssl ca` (EC P-256, SHA-256)."""

    def __init__(self, d, name="Shoal Test CA"):
        self.dir = d
        self.name = name
        os.makedirs(os.path.join(d, "issued"), exist_ok=True)
        self.cert = os.path.join(d, "ca.crt")
        self.key = os.path.join(d, "ca.key")
        self.conf = os.path.join(d, "ca.cnf")
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.conf, "w") as f:
            f.write(f"""[ ca ]
default_ca = test_ca
[ test_ca ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/issued
serial = {d}/serial
certificate = {self.cert}
private_key = {self.key}
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
[ policy_any ]
commonName = supplied
""")
        run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key,
             "-out", self.cert, "-subj", f"/CN={name}", "-days", "3",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            f"{name}: CA certificate")

    def leaf(self, label, names, expired=False):
        """A server certificate for DNS names `names` (the first is also
        the CN), valid from an hour ago for two days, or, expired=True,
        for one day ending yesterday. Returns (cert path, key path)."""
        base = os.path.join(self.dir, label)
        key, csr, cert = base + ".key", base + ".csr", base + ".crt"
        ext = base + ".ext"
        with open(ext, "w") as f:
            f.write("[ leaf ]\nbasicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid\n"
                    "subjectAltName = " +
                    ", ".join(f"DNS:{n}" for n in names) + "\n")
        run([OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
             csr, "-subj", f"/CN={names[0]}"], f"{label}: request")
        now = time.time()
        start, end = (now - 3 * 86400, now - 86400) if expired else \
            (now - 3600, now + 2 * 86400)
        run([OPENSSL, "ca", "-batch", "-config", self.conf, "-notext",
             "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
             "-extfile", ext, "-extensions", "leaf", "-in", csr,
             "-out", cert], f"{label}: issue")
        return cert, key

    def verify(self, cert, name=None):
        """`openssl verify` of cert against this CA: (ok, output)."""
        argv = [OPENSSL, "verify", "-CAfile", self.cert]
        if name:
            argv += ["-verify_hostname", name]
        r = subprocess.run(argv + [cert], capture_output=True, timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).decode(
            "utf-8", "replace")


def spki_sha256(cert):
    """SHA-256 (hex) of the certificate's SubjectPublicKeyInfo: the data
    of TLSA 3 1 1 (RFC 6698 2.1.3, RFC 7218)."""
    pem = run([OPENSSL, "x509", "-in", cert, "-noout", "-pubkey"],
              "public key").encode()
    r = subprocess.run([OPENSSL, "pkey", "-pubin", "-outform", "DER"],
                       input=pem, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise StartError(f"openssl pkey: {r.stderr!r}")
    return hashlib.sha256(r.stdout).hexdigest()


def cert_sha256(cert):
    """SHA-256 (hex) of the whole certificate (TLSA x 0 1)."""
    r = subprocess.run([OPENSSL, "x509", "-in", cert, "-outform", "DER"],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise StartError(f"openssl x509: {r.stderr!r}")
    return hashlib.sha256(r.stdout).hexdigest()


# ---- MTA-STS policies -------------------------------------------------------

def sts_policy(mode, mx, max_age=86400):
    """An RFC 8461 3.2 policy text; mx: one pattern or a list."""
    if isinstance(mx, str):
        mx = [mx]
    lines = ["version: STSv1", f"mode: {mode}"] + \
        [f"mx: {m}" for m in mx] + [f"max_age: {max_age}"]
    return "".join(ln + "\r\n" for ln in lines)


class StsServer:
    """tests/fixtures/sts_server.py with its policy file and report dir."""

    def __init__(self, peers, name="sts"):
        self.peers = peers
        self.name = name
        self.dir = os.path.join(peers.dir, name)
        self.reports_dir = os.path.join(self.dir, "reports")
        self.policies_path = os.path.join(self.dir, "policies.json")
        os.makedirs(self.dir, exist_ok=True)
        self.hosts = {}
        self.port = None
        self.proc = None
        self._write()

    def _write(self):
        tmp = self.policies_path + ".new"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"hosts": self.hosts}, f)
        os.replace(tmp, self.policies_path)

    def set_policy(self, domain, body, status=200,
                   content_type="text/plain"):
        """What GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt gets
        from the next request on (body None: 404)."""
        host = f"mta-sts.{domain}"
        if body is None:
            self.hosts.pop(host, None)
        else:
            self.hosts[host] = {"body": body, "status": status,
                                "content_type": content_type}
        self._write()

    def start(self, cert, key, same_port=False):
        """Start on a free port (same_port: again on the one it had, which
        the node's config names)."""
        if not same_port or self.port is None:
            self.port = free_port()
        argv = [td.PYTHON, STS_SERVER, "--listen", f"127.0.0.1:{self.port}",
                "--cert", cert, "--key", key, "--policies",
                self.policies_path, "--reports", self.reports_dir]
        if self.proc is None:
            self.proc = self.peers.proc(self.name, argv)
        else:
            self.proc.argv = argv
        self.proc.start(ready_re=r"sts event=ready",
                        timeout=td.PEER_READY_TIMEOUT)

    def stop(self):
        self.proc.stop()

    def restart(self):
        """Start again after stop(), on the same port and certificate."""
        self.start(*self.peers._sts_cert, same_port=True)

    def requests(self, host=None):
        """Logged GETs (dicts of the key=value pairs), of one host."""
        out = []
        for m in re.finditer(r"sts event=request method=GET (.*)",
                             self.proc.log_text()):
            kv = dict(re.findall(r"(\w+)=('[^']*'|\S+)", m.group(1)))
            if host is None or kv.get("host") == host:
                out.append(kv)
        return out

    def reports(self):
        """Kept POSTs by arrival: their .json record with the decoded
        body under "report" (bytes)."""
        out = []
        try:
            names = sorted(n for n in os.listdir(self.reports_dir)
                           if n.endswith(".json") and n[0].isdigit())
        except FileNotFoundError:
            return out
        for n in names:
            with open(os.path.join(self.reports_dir, n), encoding="utf-8") \
                    as f:
                doc = json.load(f)
            with open(doc["report"], "rb") as f:
                doc["report"] = f.read()
            out.append(doc)
        return out


# ---- DNSSEC -----------------------------------------------------------------

def dig(port, name, qtype, dnssec=True, timeout=2):
    """dig @127.0.0.1 -p port: {"status", "flags" (set), "answer" (list
    of (owner, type, rdata))}."""
    argv = [DIG, "@127.0.0.1", "-p", str(port), "+tries=1",
            f"+time={timeout}", name, qtype]
    if dnssec:
        argv.insert(4, "+dnssec")
    r = subprocess.run(argv, capture_output=True, timeout=timeout * 3 + 5)
    text = r.stdout.decode("utf-8", "replace")
    st = re.search(r"status: (\w+)", text)
    fl = re.search(r";; flags: ([a-z ]*);", text)
    if not st or not fl:
        raise AssertionError(f"dig {name} {qtype} @{port}: no answer:\n"
                             f"{text}{r.stderr.decode(errors='replace')}")
    answer = []
    sect = re.search(r";; ANSWER SECTION:\n(.*?)(?:\n\n|\Z)", text, re.S)
    if sect:
        for ln in sect.group(1).splitlines():
            f = ln.split(None, 4)
            if len(f) == 5:
                answer.append((f[0], f[3], f[4]))
    return {"status": st.group(1), "flags": set(fl.group(1).split()),
            "answer": answer, "text": text}


class DnssecRig:
    """Zones for an authoritative unbound and a validating one in front.

    zone(name, kind, records): kind "signed" (trust anchor at the zone),
    "bogus" (signed, trust anchor, then one A record changed after
    signing: every answer for it is SERVFAIL) or "insecure" (unsigned,
    domain-insecure). records are master-file lines with absolute owner
    names; "{port}" in them becomes the SMTP port at start (TLSA owners).
    """

    def __init__(self, peers):
        self.peers = peers
        self.dir = os.path.join(peers.dir, "dnssec")
        self.zones = []             # (name, kind, records)
        self.auth_port = None
        self.port = None            # the validator's: the node's resolver
        self.auth = None
        self.validator = None

    def zone(self, name, kind="signed", records=()):
        assert kind in ("signed", "bogus", "insecure"), kind
        self.zones.append((name, kind, list(records)))

    @staticmethod
    def tlsa(host, cert, usage=3, selector=1, mtype=1):
        """A TLSA record (RFC 6698) for SMTP at host; the owner's port is
        filled in at start."""
        data = spki_sha256(cert) if selector == 1 else cert_sha256(cert)
        return (f"_{{port}}._tcp.{host}. {DNS_TTL} IN TLSA {usage} "
                f"{selector} {mtype} {data}")

    def _zonefile(self, name, records, port):
        lines = [f"$ORIGIN {name}.", f"$TTL {DNS_TTL}",
                 f"@ IN SOA ns.{name}. hostmaster.{name}. 1 60 60 600 "
                 f"{DNS_TTL}",
                 f"@ IN NS ns.{name}.", f"ns.{name}. IN A 127.0.0.1"]
        lines += [r.replace("{port}", str(port)) for r in records]
        path = os.path.join(self.dir, name + ".zone")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _sign(self, name, path, bogus):
        """Sign the zone (ECDSAP256SHA256, a KSK and a ZSK, NSEC). Returns
        (signed zone path, DS record of the KSK)."""
        ksk = run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", name],
                  f"{name}: KSK", cwd=self.dir).strip()
        zsk = run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", name],
                  f"{name}: ZSK", cwd=self.dir).strip()
        now = int(time.time())
        signed = path + ".signed"
        run([LDNS_SIGNZONE, "-i", str(now - 86400), "-e",
             str(now + 7 * 86400), "-f", signed, path, zsk, ksk],
            f"{name}: sign", cwd=self.dir)
        with open(os.path.join(self.dir, ksk + ".ds")) as f:
            ds = " ".join(f.read().split())
        if bogus:
            # change the data of the first A record below the apex (not
            # the name server's): its RRSIG no longer verifies
            with open(signed) as f:
                text = f.read()
            m = [x for x in re.finditer(
                rf"^(\S+\.{re.escape(name)}\.\s+\d+\s+IN\s+A\s+)"
                r"127\.0\.0\.(\d+)$", text, re.M)
                if not x.group(1).startswith(f"ns.{name}.")]
            if not m:
                raise StartError(f"{name}: no A record to break in {signed}")
            m = m[0]
            octet = int(m.group(2)) % 250 + 1
            text = text[:m.start()] + m.group(1) + f"127.0.0.{octet}" + \
                text[m.end():]
            with open(signed, "w") as f:
                f.write(text)
        return signed, ds

    def _conf(self, role, port, body):
        """Write and check unbound-ROLE.conf; its log goes to the log
        file of the Proc that runs it (logs/unbound-ROLE.log)."""
        logp = os.path.join(self.peers.c.logdir, f"unbound-{role}.log")
        text = f"""server:
    interface: 127.0.0.1@{port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    username: ""
    chroot: ""
    directory: "{self.dir}"
    pidfile: "{self.dir}/unbound-{role}.pid"
    use-syslog: no
    logfile: "{logp}"
    log-time-ascii: yes
    verbosity: 1
    log-queries: yes
    log-replies: yes
    log-servfail: yes
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    qname-minimisation: no
    prefetch: no
    minimal-responses: no
    cache-max-ttl: {DNS_TTL}
    cache-max-negative-ttl: 1
    val-log-level: 2
    # RFC 6761 names are served empty by default: not ours
    local-zone: "test." nodefault
{body}
remote-control:
    control-enable: no
"""
        path = os.path.join(self.dir, f"unbound-{role}.conf")
        with open(path, "w") as f:
            f.write(text)
        run([UNBOUND_CHECKCONF, path], f"unbound-checkconf {role}")
        return path, logp

    def _unbound(self, role, conf, logp, port, probe):
        p = self.peers.proc(f"unbound-{role}", [UNBOUND, "-d", "-c", conf])
        assert p.log_path == logp, (p.log_path, logp)
        p.start()

        def answers():
            try:
                return dig(port, probe, "SOA", timeout=1)["status"] == \
                    "NOERROR"
            except (AssertionError, subprocess.TimeoutExpired):
                return False    # not listening yet: dig got no reply
        self.peers.await_ready(p, answers)
        return p

    def start(self, forward_port, smtp_port):
        """Write and sign the zones, start the authoritative unbound, then
        the validator (forwarding names outside the zones to
        127.0.0.1:forward_port)."""
        os.makedirs(self.dir, exist_ok=True)
        auth_body, val_body = ["    module-config: \"iterator\""], [
            "    module-config: \"validator iterator\"",
            "    val-permissive-mode: no",
            "    harden-dnssec-stripped: yes"]
        auth_zones = []
        for name, kind, records in self.zones:
            path = self._zonefile(name, records, smtp_port)
            if kind == "insecure":
                val_body.append(f'    domain-insecure: "{name}"')
            else:
                path, ds = self._sign(name, path, kind == "bogus")
                val_body.append(f'    trust-anchor: "{ds}"')
            auth_zones.append(f'auth-zone:\n    name: "{name}"\n'
                              f'    zonefile: "{path}"\n'
                              f"    for-downstream: yes\n"
                              f"    for-upstream: no\n"
                              f"    fallback-enabled: no\n")
        self.auth_port = free_port(socket.SOCK_DGRAM)
        self.port = free_port(socket.SOCK_DGRAM)
        conf, logp = self._conf("auth", self.auth_port,
                                "\n".join(auth_body) + "\n\n" +
                                "\n".join(auth_zones))
        self.auth = self._unbound("auth", conf, logp, self.auth_port,
                                  self.zones[0][0])
        # the validator sends each test zone's queries to the
        # authoritative unbound (unbound.conf's directive for that is
        # called stub-zone, with stub-addr and stub-first)
        zone_routes = "".join(f'stub-zone:\n    name: "{n}"\n'
                            f"    stub-addr: 127.0.0.1@{self.auth_port}\n"
                            f"    stub-first: no\n"
                            for n, _, _ in self.zones)
        fwd = (f'forward-zone:\n    name: "."\n'
               f"    forward-addr: 127.0.0.1@{forward_port}\n")
        conf, logp = self._conf("validator", self.port,
                                "\n".join(val_body) + "\n\n" + zone_routes +
                                fwd)
        # the apex SOA is signed right in a bogus zone too
        self.validator = self._unbound("validator", conf, logp, self.port,
                                       self.zones[0][0])


# ---- the peers --------------------------------------------------------------

class TlsPeers(td.Peers):
    """test_delivery.Peers plus the TLS policy rig (see the module doc).

    Declare before start(): ca(), sts_server(), mta_sts(), tlsrpt(),
    tls_capture(), host(), dnssec(); after start(): set_txt() and
    restart_dns() to change DNS, StsServer.set_policy() to change a
    policy, restart_capture() to give an MX other TLS."""

    def __init__(self, test, c):
        super().__init__(test, c)
        self._ca = None
        self._rogue = None
        self.sts = None
        self.txt = {}               # name -> TXT text ("{sts_port}" filled)
        self.rig = None
        self.extra_delivery = []    # more lines for delivery: { }

    # -- declaring --

    def ca(self):
        """The test CA (trusted by the node: delivery.tls_ca_file)."""
        if self._ca is None:
            self._ca = TestCA(os.path.join(self.dir, "ca"))
        return self._ca

    def rogue_ca(self):
        """Another CA, which nobody trusts."""
        if self._rogue is None:
            self._rogue = TestCA(os.path.join(self.dir, "rogue-ca"),
                                 "Rogue CA")
        return self._rogue

    def host(self, name, ip):
        self.hosts.append((name, ip))

    def sts_server(self):
        if self.sts is None:
            self.sts = StsServer(self)
        return self.sts

    def set_txt(self, name, text):
        """A TXT record for dnsmasq (text None: none); after start() it
        takes effect at restart_dns()."""
        if text is None:
            self.txt.pop(name, None)
        else:
            self.txt[name] = text

    def mta_sts(self, domain, mode="enforce", mx=None, max_age=86400,
                policy_id="1", body=None):
        """Publish an MTA-STS policy for domain: the TXT record
        _mta-sts.DOMAIN "v=STSv1; id=ID", mta-sts.DOMAIN -> 127.0.0.1,
        and the policy (body, or one made of mode/mx/max_age) on the
        policy server. Call again with a new policy_id (then
        restart_dns()) to change it."""
        srv = self.sts_server()
        self.set_txt(f"_mta-sts.{domain}", f"v=STSv1; id={policy_id}")
        if not any(n == f"mta-sts.{domain}" for n, _ in self.hosts):
            self.host(f"mta-sts.{domain}", "127.0.0.1")
        srv.set_policy(domain, body if body is not None else
                       sts_policy(mode, mx or f"mx1.{domain}", max_age))

    def tlsrpt(self, domain, rua):
        """_smtp._tls.DOMAIN TXT "v=TLSRPTv1; rua=RUA". In rua,
        "{sts}" becomes https://tlsrpt.reports.test:PORT (the policy
        server, which keeps what is POSTed)."""
        self.sts_server()
        if not any(n == REPORTS_HOST for n, _ in self.hosts):
            self.host(REPORTS_HOST, "127.0.0.1")
        self.set_txt(f"_smtp._tls.{domain}", f"v=TLSRPTv1; rua={rua}")

    def tls_capture(self, name, ips, cert=None, rules=None):
        """A capture MX at ips offering STARTTLS with cert ((cert, key)),
        or not offering it (cert None)."""
        return self.capture(name=name, ips=ips, tls=cert or False,
                            rules=rules)

    def dnssec(self):
        if self.rig is None:
            self.rig = DnssecRig(self)
        return self.rig

    # -- processes --

    def _txt_args(self):
        port = self.sts.port if self.sts else 0
        out = []
        for name, text in sorted(self.txt.items()):
            text = text.replace("{sts}", f"https://{REPORTS_HOST}:{port}")
            out.append(f"--txt-record={name},{text}")
        return out

    def _host_args(self):
        return [f"--host-record={n},{ip}" for n, ip in self.hosts]

    def proc(self, name, argv):
        if name == "dnsmasq":
            argv = argv + self._txt_args()
        return super().proc(name, argv)

    def restart_dns(self):
        """Restart dnsmasq on its port with the records as they are now
        (dnsmasq reads TXT records only at start)."""
        p = self.procs["dnsmasq"]
        p.stop()
        p.argv = [a for a in p.argv if not a.startswith(
            ("--txt-record=", "--host-record="))] + self._host_args() + \
            self._txt_args()
        p.start()
        self.await_ready(p, lambda: td.dns_query(self.dns_port, td.DEST_MX,
                                                 1) == (0, 1))

    def restart_capture(self, cap, tls):
        """Restart a capture MX on its addresses with other TLS (True,
        (cert, key) or False). Its directory starts empty again."""
        cap.proc.stop()
        cap.tls = tls
        cap.start(self.smtp_port)
        # the cluster stops (and prints) the new process, not the old one
        if ("peer-" + cap.name) in self.c.procs:
            self.c.procs["peer-" + cap.name] = cap.proc

    def start(self):
        """The policy server, dnsmasq, the DNSSEC rig, then the MX
        servers; everything again on new ports after a collision."""
        for attempt in range(1, td.PEER_START_ATTEMPTS + 1):
            self.smtp_port = free_port()
            self.dns_port = free_port(socket.SOCK_DGRAM)
            try:
                if self.sts is not None:
                    names = sorted({n for n, _ in self.hosts
                                    if n.startswith("mta-sts.") or
                                    n == REPORTS_HOST})
                    if not hasattr(self, "_sts_cert"):
                        self._sts_cert = self.ca().leaf("policy-hosts",
                                                        names)
                    self.sts.start(*self._sts_cert)
                self._start_dns()
                if self.rig is not None:
                    self.rig.start(self.dns_port, self.smtp_port)
                for cap in self.captures:
                    cap.start(self.smtp_port)
                for s in self.sinks:
                    s.start(self.smtp_port)
                return
            except PortInUse as e:
                self._stop()
                if attempt == td.PEER_START_ATTEMPTS:
                    raise
                log(f"tlsrig: peer port collision, retrying "
                    f"({str(e).splitlines()[0]})")

    # -- config --

    def delivery(self, **kw):
        text = super().delivery(**kw)
        extra = list(self.extra_delivery)
        if self._ca is not None:
            extra.append(f'  tls_ca_file = "{self._ca.cert}";')
        if self.sts is not None:
            extra.append(f"  mta_sts_port = {self.sts.port};")
        if self.rig is not None:
            text = re.sub(r"dns_servers = \[ [^]]* \];",
                          f'dns_servers = [ "127.0.0.1:{self.rig.port}" ];',
                          text)
        return text + ("\n" + "\n".join(extra) if extra else "")


# ---- helpers for test classes -----------------------------------------------

class TlsDeliveryMixin:
    """Mix into a ShoalTestCase: test_delivery.DeliveryTest's helpers (not
    its tests: subclassing it would run them again) with TlsPeers."""

    setUp = td.DeliveryTest.setUp
    tearDown = td.DeliveryTest.tearDown
    _on_deadline = td.DeliveryTest._on_deadline
    send = td.DeliveryTest.send
    dlog = td.DeliveryTest.dlog
    dlog_final = td.DeliveryTest.dlog_final
    queue_empty = td.DeliveryTest.queue_empty
    wait_queue_empty = td.DeliveryTest.wait_queue_empty
    wait_captured = td.DeliveryTest.wait_captured

    def setup(self, peers_fn=None, cluster_kw=None, **delivery_kw):
        """As DeliveryTest.setup, with TlsPeers."""
        c = self.cluster(start=False, **(cluster_kw or {}))
        p = TlsPeers(self, c)
        if peers_fn:
            peers_fn(p)
        p.start()
        c.delivery = p.delivery(**delivery_kw)
        c.start()
        p.adopt()
        return c, p

    def dlog_match(self, c, qid, rcpt, pred, timeout=20, what=None):
        """Wait for a delivery.log line of qid/rcpt for which pred(line)
        holds; returns it."""
        def found():
            return [ln for ln in self.dlog(c, qid)
                    if ln.get("rcpt") == rcpt and pred(ln)]
        try:
            return wait_for(found, timeout, what or f"a matching "
                            f"delivery.log line for {qid} <{rcpt}>",
                            interval=td.POLL)[-1]
        except AssertionError as e:
            raise AssertionError(f"{e}; its lines so far: "
                                 f"{self.dlog(c, qid)}") from None

    def dlog_deferred(self, c, qid, rcpt, prefix, timeout=20):
        """Wait for a deferred line of qid/rcpt whose text starts with
        prefix (the policy's name, see the contract)."""
        return self.dlog_match(
            c, qid, rcpt, lambda ln: ln.get("result") == "deferred" and
            str(ln.get("text", "")).startswith(prefix), timeout,
            f"a deferred delivery.log line for {qid} <{rcpt}> whose text "
            f"starts with {prefix!r}")

    def tls_report(self, c, domain):
        """shoalctl --json tls report DOMAIN (must succeed)."""
        return c.ctl_ok("tls", "report", domain)

    def assertTlsReport(self, doc, domain):
        """doc is an RFC 8460 4.4 report: types, required keys, RFC 3339
        dates for today (UTC), counts. Returns {policy-type: policy}."""
        check_tls_report(self, doc, domain)
        return {p["policy"]["policy-type"]: p for p in doc["policies"]}


def _rfc3339(tc, value, what):
    tc.assertIsInstance(value, str, what)
    m = RFC3339_RE.match(value)
    tc.assertIsNotNone(m, f"{what} is not an RFC 3339 date-time: {value!r}")
    v = value.replace("z", "Z").replace("t", "T")
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(v.split(".")[0] +
                                           (v[-6:] if "." in v else ""))


def check_tls_report(tc, doc, domain):
    """Hold doc against RFC 8460 4.4's schema (see assertTlsReport)."""
    tc.assertIsInstance(doc, dict, doc)
    for k in ("organization-name", "date-range", "contact-info",
              "report-id", "policies"):
        tc.assertIn(k, doc, f"report lacks {k}: {doc}")
    for k in ("organization-name", "contact-info", "report-id"):
        tc.assertIsInstance(doc[k], str, f"{k}: {doc}")
        tc.assertTrue(doc[k].strip(), f"{k} is empty: {doc}")
    dr = doc["date-range"]
    tc.assertIsInstance(dr, dict, dr)
    start = _rfc3339(tc, dr.get("start-datetime"), "start-datetime")
    end = _rfc3339(tc, dr.get("end-datetime"), "end-datetime")
    tc.assertEqual(start.utcoffset(), datetime.timedelta(0),
                   f"start-datetime in UTC: {dr}")
    tc.assertEqual((start.hour, start.minute, start.second), (0, 0, 0),
                   f"a day's report starts at 00:00:00Z: {dr}")
    today = datetime.datetime.now(datetime.timezone.utc).date()
    tc.assertIn(start.date(), (today, today - datetime.timedelta(days=1)),
                f"today's report (UTC {today}): {dr}")
    tc.assertGreater(end, start, dr)
    tc.assertLessEqual(end - start, datetime.timedelta(days=1),
                       f"one day at most: {dr}")
    tc.assertIsInstance(doc["policies"], list, doc)
    for pol in doc["policies"]:
        tc.assertIsInstance(pol, dict, pol)
        for k in ("policy", "summary"):
            tc.assertIn(k, pol, f"policies[] lacks {k}: {pol}")
        p = pol["policy"]
        tc.assertIn(p.get("policy-type"), POLICY_TYPES, p)
        tc.assertEqual(p.get("policy-domain"), domain, p)
        if p["policy-type"] != "no-policy-found":
            tc.assertIsInstance(p.get("policy-string"), list, p)
            tc.assertTrue(p["policy-string"], p)
            for s in p["policy-string"]:
                tc.assertIsInstance(s, str, p)
        if "mx-host" in p:
            mx = p["mx-host"]
            if isinstance(mx, str):
                mx = [mx]
            tc.assertIsInstance(mx, list, p)
            for h in mx:
                tc.assertIsInstance(h, str, p)
        s = pol["summary"]
        for k in ("total-successful-session-count",
                  "total-failure-session-count"):
            tc.assertIsInstance(s.get(k), int, f"{k}: {s}")
            tc.assertNotIsInstance(s.get(k), bool, s)
            tc.assertGreaterEqual(s[k], 0, s)
        details = pol.get("failure-details", [])
        tc.assertIsInstance(details, list, pol)
        failed = 0
        for d in details:
            tc.assertIsInstance(d, dict, pol)
            tc.assertIn(d.get("result-type"), RESULT_TYPES, d)
            tc.assertIsInstance(d.get("failed-session-count"), int, d)
            tc.assertGreaterEqual(d["failed-session-count"], 1, d)
            failed += d["failed-session-count"]
            # the contract's fields; receiving-ip may lack (no address)
            for k in ("sending-mta-ip", "receiving-mx-hostname"):
                tc.assertIn(k, d, f"failure-details[] lacks {k}")
            for k in ("sending-mta-ip", "receiving-ip"):
                if k in d:
                    try:
                        ipaddress.ip_address(d[k])
                    except ValueError:
                        tc.fail(f"{k} is not an IP address: {d}")
            for k in ("receiving-mx-hostname", "receiving-mx-helo",
                      "additional-information", "failure-reason-code"):
                if k in d:
                    tc.assertIsInstance(d[k], str, d)
        tc.assertEqual(failed, s["total-failure-session-count"],
                       f"failure-details add up to the failure count: "
                       f"{pol}")


def report_from_mail(tc, content, domain):
    """The JSON report of an RFC 8460 5.3 mail (bytes): checks the
    TLS-Report-Domain and TLS-Report-Submitter headers, the multipart/report; report-type=tlsrpt
    type and the application/tlsrpt+gzip or +json part. Returns it."""
    msg = email.message_from_bytes(content, policy=email.policy.default)
    tc.assertEqual(str(msg.get("TLS-Report-Domain", "")).strip(), domain,
                   f"TLS-Report-Domain header:\n{content[:1500]!r}")
    tc.assertTrue(str(msg.get("TLS-Report-Submitter", "")).strip(),
                  f"TLS-Report-Submitter header:\n{content[:1500]!r}")
    tc.assertEqual(msg.get_content_type(), "multipart/report",
                   content[:1500])
    tc.assertEqual(msg.get_param("report-type"), "tlsrpt", content[:1500])
    parts = [p for p in msg.walk() if p.get_content_type() in
             ("application/tlsrpt+gzip", "application/tlsrpt+json")]
    tc.assertEqual(len(parts), 1, f"one tlsrpt part:\n{content[:3000]!r}")
    raw = parts[0].get_payload(decode=True)
    if parts[0].get_content_type().endswith("gzip"):
        raw = gzip.decompress(raw)
    return json.loads(raw.decode("utf-8"))


if __name__ == "__main__":
    import unittest
    if "--selftest" in sys.argv:
        sys.argv = [sys.argv[0], "-v", "test_tlsrig"]
        unittest.main(module=None)
    else:
        print(__doc__)
