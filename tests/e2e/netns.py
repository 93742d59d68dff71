"""Network namespaces for the fault tests: one per part of a cluster.

Owns: a hub namespace holding a bridge, and for each role (n1, n2, router,
sink, dns, client...) a namespace of its own with loopback up and a veth
link to the bridge, addressed 10.77.0.(10 + i)/24. Traffic never leaves
these namespaces: they have no route anywhere else. Cutting the link
between two roles adds blackhole routes on both sides; healing removes
them. Everything is deleted at the test's cleanup (after the harness has
stopped the processes in them).

Same interface as shoaltest.Loopback: host(role) and wrap(role, argv)
(`ip netns exec NS argv...` replaces itself with argv, so the PID the
harness kills is the program's). Needs root; available() says whether this
machine lets us create namespaces at all.
"""

import os
import secrets
import subprocess

from shoaltest import log

IP = "/usr/sbin/ip"
SUBNET = "10.77.0"
ALIASES = {"ctl": "client"}     # shoalctl runs next to the test clients


def _ip(*args, check=True):
    r = subprocess.run([IP] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: "
                           f"{r.stderr.decode(errors='replace').strip()}")
    return r.returncode


def available():
    """Root, iproute2, and the kernel lets us make a namespace (and
    SHOAL_E2E_NO_NETNS is not set: then tests run on loopback)."""
    if os.environ.get("SHOAL_E2E_NO_NETNS"):
        return False
    if os.geteuid() != 0 or not os.access(IP, os.X_OK):
        return False
    name = f"shoal-probe-{os.getpid()}"
    if _ip("netns", "add", name, check=False) != 0:
        return False
    _ip("netns", "del", name, check=False)
    return True


class NetNS:
    def __init__(self, test, roles):
        self.tag = secrets.token_hex(3)
        self.hub = f"shoal-{self.tag}-hub"
        self.ns = {}
        self.ip = {}
        self.cuts = set()
        test.addCleanup(self.destroy)
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "set", "lo", "up")
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        for i, role in enumerate(roles, start=1):
            ns = f"shoal-{self.tag}-{role}"
            inner, outer = f"s{self.tag}a{i}", f"s{self.tag}b{i}"
            _ip("netns", "add", ns)
            self.ns[role] = ns
            self.ip[role] = f"{SUBNET}.{10 + i}"
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "add", inner, "type", "veth", "peer",
                "name", outer, "netns", self.hub)
            _ip("-n", self.hub, "link", "set", outer, "master", "br0")
            _ip("-n", self.hub, "link", "set", outer, "up")
            _ip("-n", ns, "addr", "add", f"{self.ip[role]}/24", "dev",
                inner)
            _ip("-n", ns, "link", "set", inner, "up")
        log(f"netns: {len(roles)} namespaces shoal-{self.tag}-* on "
            f"{SUBNET}.0/24: " +
            ", ".join(f"{r}={self.ip[r]}" for r in roles))

    def _role(self, role):
        return ALIASES.get(role, role)

    def host(self, role):
        return self.ip[self._role(role)]

    def wrap(self, role, argv):
        return [IP, "netns", "exec", self.ns[self._role(role)]] + list(argv)

    def cut(self, a, b):
        """Drop everything between roles a and b, both ways."""
        _ip("-n", self.ns[a], "route", "add", "blackhole",
            f"{self.ip[b]}/32")
        _ip("-n", self.ns[b], "route", "add", "blackhole",
            f"{self.ip[a]}/32")
        self.cuts.add((a, b))

    def heal(self, a, b):
        _ip("-n", self.ns[a], "route", "del", "blackhole",
            f"{self.ip[b]}/32", check=False)
        _ip("-n", self.ns[b], "route", "del", "blackhole",
            f"{self.ip[a]}/32", check=False)
        self.cuts.discard((a, b))

    def destroy(self):
        for ns in list(self.ns.values()) + [self.hub]:
            _ip("netns", "del", ns, check=False)
        self.ns = {}
