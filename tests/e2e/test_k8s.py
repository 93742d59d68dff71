"""deploy/k8s against itself and against the config it ships: every
manifest parses and is well formed (names, selectors, volumes, ConfigMaps
and Secrets that exist, probe and Service ports that are container ports),
the shoal.conf in the ConfigMap loads in the real shoal-router and
shoal-node (-t), and the manifests match it: one StatefulSet pod per node
whose name is the node id and whose DNS name and port are the endpoint, the
data volume at data_dir, the metrics port probed, the router's listeners as
container and LoadBalancer ports, the key and certificate paths on Secret
mounts. A copy mutated in memory must be reported (the checker can fail).
Also: a node whose endpoint is a host name (localhost) binds and serves,
as the pod names in the ConfigMap need.
"""

import copy
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

import netns
from test_tls import make_cert
from shoaltest import (REPO, Loopback, SMTPConn, ShoalTestCase, bin_path,
                       make_message, wait_for)

K8S = os.path.join(REPO, "deploy", "k8s")
CONFIG_MAP = "shoal-config"
CONFIG_KEY = "shoal.conf"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


# ---- a small libconfig reader (values only; the binaries judge validity) --

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:0x[0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+)L{0,2})
  | (?P<bool>\b(?:true|false|TRUE|FALSE)\b)
  | (?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
  | (?P<punct>[{}()\[\]=:;,])
""", re.S | re.X)


def _tokens(text):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"libconfig: cannot read at {text[pos:pos+20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            yield m.lastgroup, m.group()


def libconfig_parse(text):
    """The settings of a libconfig file as dicts and lists."""
    toks = list(_tokens(text)) + [("end", "")]
    i = 0

    def value():
        nonlocal i
        kind, t = toks[i]
        i += 1
        if kind == "str":
            s = yaml.safe_load(t)       # a JSON-style double-quoted string
            while toks[i][0] == "str":  # adjacent strings concatenate
                s += yaml.safe_load(toks[i][1])
                i += 1
            return s
        if kind == "num":
            t = t.rstrip("L")
            return float(t) if "." in t else int(t, 0)
        if kind == "bool":
            return t.lower() == "true"
        if t == "{":
            g = settings("}")
            i += 1
            return g
        if t in "([":
            close = ")" if t == "(" else "]"
            out = []
            while toks[i][1] != close:
                out.append(value())
                if toks[i][1] == ",":
                    i += 1
            i += 1
            return out
        raise ValueError(f"libconfig: unexpected {t!r}")

    def settings(close):
        nonlocal i
        out = {}
        while toks[i][1] != close and toks[i][0] != "end":
            kind, name = toks[i]
            if kind != "name" or toks[i + 1][1] not in "=:":
                raise ValueError(f"libconfig: expected a setting at {name!r}")
            i += 2
            out[name] = value()
            if toks[i][1] in ";,":
                i += 1
        return out

    return settings("")


# ---- reading the manifests ------------------------------------------------

def load_manifests(root=K8S):
    """{file name: [documents]} for every YAML file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    docs = [d for d in yaml.safe_load_all(fh) if d is not None]
                out[os.path.relpath(path, root)] = docs
    return out


def _pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def _ports(container):
    """{name or number (str): number} of a container's ports."""
    out = {}
    for p in container.get("ports") or []:
        out[str(p["containerPort"])] = p["containerPort"]
        if p.get("name"):
            out[p["name"]] = p["containerPort"]
    return out


def _labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v
                                  for k, v in selector.items())


def _host_port(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


class Checker:
    """Collects every problem of a set of manifests, as text."""

    def __init__(self, files, conf_text=None):
        self.files = files
        self.problems = []
        self.docs = []
        self.kustomization = None
        for name, docs in files.items():
            for d in docs:
                if (isinstance(d, dict) and d.get("kind") == "Kustomization"):
                    self.kustomization = (name, d)
                else:
                    self.docs.append((name, d))
        self.conf_text = conf_text

    def fail(self, msg):
        self.problems.append(msg)

    def of_kind(self, *kinds):
        return [d for _, d in self.docs if d.get("kind") in kinds]

    def find(self, kind, name):
        for d in self.of_kind(kind):
            if d["metadata"]["name"] == name:
                return d
        return None

    # -- structure --

    def generated(self, what):
        """{name: set of keys} of kustomize's configMapGenerator or
        secretGenerator."""
        out = {}
        if self.kustomization is None:
            return out
        for g in self.kustomization[1].get(what) or []:
            keys = set()
            for f in g.get("files") or []:
                keys.add(f.split("=", 1)[0] if "=" in f
                         else os.path.basename(f))
            for lit in g.get("literals") or []:
                keys.add(lit.split("=", 1)[0])
            out[g["name"]] = keys
        return out

    def object_keys(self, kind, name):
        """The keys of a ConfigMap or Secret, or None when it is nowhere."""
        d = self.find(kind, name)
        if d is not None:
            return set(d.get("data") or {}) | set(d.get("stringData") or {}) \
                | set(d.get("binaryData") or {})
        gen = self.generated("configMapGenerator" if kind == "ConfigMap"
                             else "secretGenerator")
        return gen.get(name)

    def check_structure(self):
        for name, d in self.docs:
            if not isinstance(d, dict):
                self.fail(f"{name}: a document that is not a mapping")
                continue
            for key in ("apiVersion", "kind"):
                if not d.get(key):
                    self.fail(f"{name}: no {key}")
            if not (d.get("metadata") or {}).get("name"):
                self.fail(f"{name}: {d.get('kind')} without metadata.name")
        if self.kustomization is not None:
            kname, k = self.kustomization
            listed = set(k.get("resources") or [])
            present = {f for f in self.files if f != kname}
            for f in sorted(present - listed):
                self.fail(f"{f}: not in {kname} resources")
            for f in sorted(listed - present):
                self.fail(f"{kname}: resource {f} does not exist")
        for d in self.of_kind(*WORKLOADS):
            self.check_workload(d)
        for d in self.of_kind("Service"):
            self.check_service(d)
        for d in self.of_kind("PodDisruptionBudget"):
            sel = d["spec"].get("selector", {}).get("matchLabels", {})
            if not self.pods_selected(sel):
                self.fail(f"PodDisruptionBudget {d['metadata']['name']}: "
                          f"selects no pods")

    def pods_selected(self, selector):
        return [d for d in self.of_kind(*WORKLOADS)
                if _labels_match(selector, d["spec"]["template"]["metadata"]
                                 .get("labels") or {})]

    def check_workload(self, d):
        what = f"{d['kind']} {d['metadata']['name']}"
        sel = d["spec"].get("selector", {}).get("matchLabels", {})
        labels = d["spec"]["template"]["metadata"].get("labels") or {}
        if not _labels_match(sel, labels):
            self.fail(f"{what}: selector {sel} does not match the template "
                      f"labels {labels}")
        spec = _pod_spec(d)
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for t in d["spec"].get("volumeClaimTemplates") or []:
            volumes[t["metadata"]["name"]] = {"pvc": t}
        for v in volumes.values():
            if "configMap" in v and self.object_keys(
                    "ConfigMap", v["configMap"]["name"]) is None:
                self.fail(f"{what}: ConfigMap {v['configMap']['name']} "
                          f"is not in the manifests")
            if "secret" in v and self.object_keys(
                    "Secret", v["secret"]["secretName"]) is None:
                self.fail(f"{what}: Secret {v['secret']['secretName']} "
                          f"is not in the manifests")
        psc = spec.get("securityContext") or {}
        if not psc.get("runAsNonRoot"):
            self.fail(f"{what}: pod securityContext without runAsNonRoot")
        for c in spec["containers"]:
            cw = f"{what} container {c['name']}"
            for m in c.get("volumeMounts") or []:
                if m["name"] not in volumes:
                    self.fail(f"{cw}: volumeMount {m['name']} has no volume")
            ports = _ports(c)
            for pk in ("readinessProbe", "livenessProbe", "startupProbe"):
                p = c.get(pk)
                if p is None:
                    if pk != "startupProbe":
                        self.fail(f"{cw}: no {pk}")
                    continue
                act = p.get("httpGet") or p.get("tcpSocket")
                if act is not None and str(act["port"]) not in ports:
                    self.fail(f"{cw}: {pk} port {act['port']} is not a "
                              f"container port")
            sc = c.get("securityContext") or {}
            if sc.get("readOnlyRootFilesystem") is not True:
                self.fail(f"{cw}: root filesystem not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                self.fail(f"{cw}: allowPrivilegeEscalation not false")
            res = c.get("resources") or {}
            if not res.get("requests") or not res.get("limits"):
                self.fail(f"{cw}: resources without requests and limits")

    def check_service(self, d):
        what = f"Service {d['metadata']['name']}"
        pods = self.pods_selected(d["spec"].get("selector") or {})
        if not pods:
            self.fail(f"{what}: selects no pods")
            return
        for p in d["spec"].get("ports") or []:
            target = str(p.get("targetPort", p["port"]))
            if not any(target in _ports(c) for w in pods
                       for c in _pod_spec(w)["containers"]):
                self.fail(f"{what}: targetPort {target} is not a container "
                          f"port of the pods it selects")

    # -- the config against the manifests --

    def config(self):
        cm = self.find("ConfigMap", CONFIG_MAP)
        if cm is None or CONFIG_KEY not in (cm.get("data") or {}):
            self.fail(f"ConfigMap {CONFIG_MAP} with {CONFIG_KEY}: missing")
            return None, None
        text = cm["data"][CONFIG_KEY]
        try:
            return text, libconfig_parse(text)
        except ValueError as e:
            self.fail(f"{CONFIG_KEY}: {e}")
            return text, None

    def program(self, binary):
        """(workload, container) that runs binary."""
        for d in self.of_kind(*WORKLOADS):
            for c in _pod_spec(d)["containers"]:
                argv = (c.get("command") or []) + (c.get("args") or [])
                if argv and os.path.basename(argv[0]) == binary:
                    return d, c, argv
        self.fail(f"no workload runs {binary}")
        return None, None, None

    def mounts(self, d, c):
        """{mountPath: (kind, object name or None, subPath)}."""
        vols = {v["name"]: v for v in _pod_spec(d).get("volumes") or []}
        pvcs = {t["metadata"]["name"]
                for t in d["spec"].get("volumeClaimTemplates") or []}
        out = {}
        for m in c.get("volumeMounts") or []:
            v = vols.get(m["name"], {})
            if m["name"] in pvcs:
                kind = ("pvc", m["name"])
            elif "secret" in v:
                kind = ("Secret", v["secret"]["secretName"])
            elif "configMap" in v:
                kind = ("ConfigMap", v["configMap"]["name"])
            else:
                kind = ("other", None)
            out[m["mountPath"].rstrip("/")] = kind + (m.get("subPath"),)
        return out

    def check_file_on(self, d, c, path, kind, key):
        """path is a file of a mounted kind (Secret / ConfigMap)."""
        who = f"{d['kind']} {d['metadata']['name']}"
        mounts = self.mounts(d, c)
        if path in mounts and mounts[path][0] == kind:
            obj, sub = mounts[path][1], mounts[path][2]
            keys = self.object_keys(kind, obj) or set()
            if sub is None or sub not in keys:
                self.fail(f"{who}: {key} {path}: subPath {sub} is not a key "
                          f"of {kind} {obj}")
            return
        dirname, base = os.path.split(path)
        m = mounts.get(dirname)
        if m is None or m[0] != kind or m[2] is not None:
            self.fail(f"{who}: {key} {path} is not on a {kind} mount")
            return
        keys = self.object_keys(kind, m[1]) or set()
        if base not in keys:
            self.fail(f"{who}: {key} {path}: {kind} {m[1]} has no key "
                      f"{base}")

    def check_config(self, loader=None):
        text, conf = self.config()
        if text is not None and loader is not None:
            for msg in loader(text, conf):
                self.fail(msg)
        if conf is None:
            return
        nodes = conf.get("nodes") or []
        router = conf.get("router") or {}
        cluster = conf.get("cluster") or {}
        sts, nc, nargv = self.program("shoal-node")
        dep, rc, rargv = self.program("shoal-router")
        for d, c, argv in ((sts, nc, nargv), (dep, rc, rargv)):
            if d is None:
                continue
            if "-c" not in argv:
                self.fail(f"{d['metadata']['name']}: no -c FILE")
            else:
                self.check_file_on(d, c, argv[argv.index("-c") + 1],
                                   "ConfigMap", "-c")
            if cluster.get("curve_keys"):
                self.check_file_on(d, c, cluster["curve_keys"], "Secret",
                                   "cluster.curve_keys")
        if sts is not None:
            self.check_nodes(sts, nc, nargv, nodes)
        if dep is not None:
            self.check_router(dep, rc, router)

    def check_nodes(self, sts, c, argv, nodes):
        name = sts["metadata"]["name"]
        if sts["kind"] != "StatefulSet":
            self.fail(f"shoal-node runs in a {sts['kind']}, not a "
                      f"StatefulSet")
            return
        if sts["spec"].get("replicas") != len(nodes):
            self.fail(f"StatefulSet {name}: replicas "
                      f"{sts['spec'].get('replicas')} but the config has "
                      f"{len(nodes)} nodes")
        # -n is the pod's own name, which is the node id
        env = {e["name"]: e for e in c.get("env") or []}
        n_arg = argv[argv.index("-n") + 1] if "-n" in argv else None
        m = re.fullmatch(r"\$\((\w+)\)", n_arg or "")
        ref = env.get(m.group(1), {}) if m else {}
        if (ref.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                != "metadata.name"):
            self.fail(f"StatefulSet {name}: -n is {n_arg!r}, not the pod "
                      f"name from the downward API")
        svc = self.find("Service", sts["spec"].get("serviceName", ""))
        if svc is None or svc["spec"].get("clusterIP") != "None":
            self.fail(f"StatefulSet {name}: serviceName "
                      f"{sts['spec'].get('serviceName')} is not a headless "
                      f"Service in the manifests")
        svc_name = sts["spec"].get("serviceName")
        svc_ports = {p["port"] for p in (svc or {}).get("spec", {})
                     .get("ports") or []}
        ports = _ports(c)
        mounts = self.mounts(sts, c)
        probes = [c.get("readinessProbe") or {}, c.get("livenessProbe") or {}]
        for i, nd in enumerate(nodes):
            pod = f"{name}-{i}"
            if nd.get("id") != pod:
                self.fail(f"nodes[{i}].id {nd.get('id')!r}: the pod is "
                          f"{pod}")
            ep = nd.get("endpoint", "")
            if not ep.startswith("tcp://"):
                self.fail(f"nodes[{i}].endpoint {ep}: not tcp://")
                continue
            host, port = _host_port(ep[6:])
            if not re.fullmatch(re.escape(f"{pod}.{svc_name}") +
                                r"(\.[a-z0-9-]+(\.svc(\.cluster\.local)?)?)?",
                                host):
                self.fail(f"nodes[{i}].endpoint host {host}: not the pod's "
                          f"DNS name {pod}.{svc_name}")
            if port not in ports.values():
                self.fail(f"nodes[{i}].endpoint port {port} is not a "
                          f"container port of {name}")
            if port not in svc_ports:
                self.fail(f"nodes[{i}].endpoint port {port} is not a port "
                          f"of Service {svc_name}")
            dd = nd.get("data_dir", "").rstrip("/")
            if mounts.get(dd, ("",))[0] != "pvc":
                self.fail(f"nodes[{i}].data_dir {dd} is not the mountPath "
                          f"of a volumeClaimTemplate")
            if nd.get("metrics"):
                mport = _host_port(nd["metrics"])[1]
                for p in probes:
                    hg = p.get("httpGet")
                    if hg is None or ports.get(str(hg["port"])) != mport \
                            or hg.get("path") != "/metrics":
                        self.fail(f"nodes[{i}].metrics port {mport}: a "
                                  f"probe is not GET /metrics on it")
            peer = nd.get("peer")
            if peer is not None and not any(x.get("id") == peer
                                            for x in nodes):
                self.fail(f"nodes[{i}].peer {peer} is no node")

    def check_router(self, dep, c, router):
        name = dep["metadata"]["name"]
        listen = router.get("listen") or [{"address": "127.0.0.1:2525"}]
        listen = list(listen) + list(router.get("http_listen") or [])
        want = {_host_port(ls["address"])[1] for ls in listen}
        have = {p["containerPort"] for p in c.get("ports") or []}
        if want != have:
            self.fail(f"Deployment {name}: container ports {sorted(have)}, "
                      f"router.listen ports {sorted(want)}")
        lbs = [s for s in self.of_kind("Service")
               if s["spec"].get("type") == "LoadBalancer"
               and _labels_match(s["spec"].get("selector") or {},
                                 dep["spec"]["template"]["metadata"]
                                 ["labels"])]
        if len(lbs) != 1:
            self.fail(f"Deployment {name}: {len(lbs)} LoadBalancer "
                      f"Services, want 1")
        ports = _ports(c)
        for s in lbs:
            sp = {p["port"] for p in s["spec"]["ports"]}
            if sp != want:
                self.fail(f"Service {s['metadata']['name']}: ports "
                          f"{sorted(sp)}, router.listen ports "
                          f"{sorted(want)}")
            for p in s["spec"]["ports"]:
                tgt = ports.get(str(p.get("targetPort", p["port"])))
                if tgt != p["port"]:
                    self.fail(f"Service {s['metadata']['name']}: port "
                              f"{p['port']} goes to container port {tgt}")
        for key in ("tls_cert", "tls_key", "users_file"):
            if router.get(key):
                self.check_file_on(dep, c, router[key], "Secret",
                                   f"router.{key}")
        probes = [c.get("readinessProbe") or {}, c.get("livenessProbe") or {}]
        for p in probes:
            act = p.get("tcpSocket") or p.get("httpGet") or {}
            if ports.get(str(act.get("port"))) not in want | {
                    _host_port(router["metrics"])[1]
                    if router.get("metrics") else None}:
                self.fail(f"Deployment {name}: a probe is on neither a "
                          f"listener nor router.metrics")

    def run(self, loader=None):
        self.check_structure()
        self.check_config(loader)
        return self.problems


def real_loader(text, conf):
    """Load the config with shoal-router -t and shoal-node -t -n ID."""
    d = tempfile.mkdtemp(prefix="shoal-k8s-")
    try:
        path = os.path.join(d, CONFIG_KEY)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        argvs = [[bin_path("shoal-router"), "-t", "-c", path]]
        ids = [n.get("id") for n in (conf or {}).get("nodes") or []]
        argvs += [[bin_path("shoal-node"), "-t", "-c", path, "-n", i]
                  for i in ids if i]
        out = []
        for argv in argvs:
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=30)
            if r.returncode != 0 or "config ok" not in r.stdout:
                out.append(f"{os.path.basename(argv[0])} rejects the "
                           f"ConfigMap's {CONFIG_KEY}: exit {r.returncode}: "
                           f"{r.stderr.strip()}")
        return out
    finally:
        shutil.rmtree(d, True)


class NamedLoopback(Loopback):
    """Nodes named by host name, as in Kubernetes; all on loopback."""

    def host(self, role):
        return "127.0.0.1" if role == "router" else "localhost"


class PodNames(netns.NetNS):
    """A namespace per part, as in test_faults, and the nodes known only by
    Kubernetes-style names (n1.shoal-node), from a hosts file that `ip netns
    exec` mounts over /etc/hosts in each namespace."""

    SERVICE = "shoal-node"

    def __init__(self, test, nodes, roles):
        super().__init__(test, list(nodes) + list(roles))
        self.nodes = list(nodes)
        self.dirs = []
        test.addCleanup(self.remove_hosts)
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{self.ip[n]} {n}.{self.SERVICE}\n" for n in self.nodes)
        for ns in self.ns.values():
            d = os.path.join("/etc/netns", ns)
            os.makedirs(d)
            self.dirs.append(d)
            with open(os.path.join(d, "hosts"), "w") as f:
                f.write(hosts)

    def host(self, role):
        if role in self.nodes:
            return f"{role}.{self.SERVICE}"
        return super().host(role)

    def remove_hosts(self):
        for d in self.dirs:
            shutil.rmtree(d, True)


class K8sTest(ShoalTestCase):

    def setUp(self):
        self.files = load_manifests()

    def test_1_manifests_match_the_config(self):
        kinds = sorted({d.get("kind") for docs in self.files.values()
                        for d in docs})
        for k in ("ConfigMap", "Deployment", "Kustomization",
                  "PodDisruptionBudget", "Service", "StatefulSet"):
            self.assertIn(k, kinds)
        problems = Checker(self.files).run(real_loader)
        self.assertEqual(problems, [], "\n".join(problems))
        # -t also says when the config has no node of that id
        d = self.tempdir("shoal-k8s-")
        path = os.path.join(d, CONFIG_KEY)
        with open(path, "w") as f:
            f.write(Checker(self.files).config()[0])
        r = subprocess.run([bin_path("shoal-node"), "-t", "-c", path, "-n",
                            "shoal-node-9"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no node with id "shoal-node-9"', r.stderr)

    def test_2_the_checker_sees_drift(self):
        """Each mutation of an in-memory copy is reported."""

        def first(files, kind, name=None):
            for docs in files.values():
                for d in docs:
                    if d.get("kind") == kind and (
                            name is None or d["metadata"]["name"] == name):
                        return d
            raise AssertionError(f"no {kind} {name}")

        def container(files, kind):
            return _pod_spec(first(files, kind))["containers"][0]

        def conf_edit(files, old, new):
            cm = first(files, "ConfigMap", CONFIG_MAP)
            text = cm["data"][CONFIG_KEY]
            self.assertIn(old, text)
            cm["data"][CONFIG_KEY] = text.replace(old, new, 1)

        def set_mount(files, kind, vol, path):
            for m in container(files, kind)["volumeMounts"]:
                if m["name"] == vol:
                    m["mountPath"] = path

        # what: (mutation, a problem that must be reported)
        mutations = {
            "replicas": (lambda f: first(f, "StatefulSet")["spec"].update(
                replicas=3), "replicas 3 but the config has 4 nodes"),
            "selector": (lambda f: first(f, "Deployment")["spec"]
                         ["selector"]["matchLabels"].update(
                             {"app.kubernetes.io/component": "x"}),
                         "does not match the template labels"),
            "pvc mount": (lambda f: set_mount(f, "StatefulSet", "data",
                                              "/data"),
                          "data_dir /var/lib/shoal is not the mountPath"),
            "secret mount": (lambda f: set_mount(f, "Deployment", "tls",
                                                 "/etc/tls"),
                             "tls.crt is not on a Secret mount"),
            "router port": (lambda f: container(f, "Deployment")["ports"]
                            .pop(), "container ports [25, 465, 587], "),
            "service port": (lambda f: first(f, "Service", "shoal-router")
                             ["spec"]["ports"][0].update(targetPort="smtpx"),
                             "targetPort smtpx is not a container port"),
            "probe port": (lambda f: container(f, "StatefulSet")
                           ["readinessProbe"]["httpGet"].update(
                               port="metrix"),
                           "port metrix is not a container port"),
            "missing secret": (lambda f: _pod_spec(first(f, "StatefulSet"))
                               ["volumes"][1]["secret"].update(
                                   secretName="nope"),
                               "Secret nope is not in the manifests"),
            "volume": (lambda f: container(f, "Deployment")["volumeMounts"]
                       .append({"name": "ghost", "mountPath": "/ghost"}),
                       "volumeMount ghost has no volume"),
            "root fs": (lambda f: container(f, "Deployment")
                        ["securityContext"].update(
                            readOnlyRootFilesystem=False),
                        "root filesystem not read-only"),
        }
        # edits of the ConfigMap's shoal.conf: (what, old, new, problem)
        conf_edits = [
            ("node id", 'id = "shoal-node-1"', 'id = "n2"',
             "nodes[1].id 'n2': the pod is shoal-node-1"),
            ("endpoint host", "shoal-node-3.shoal-node:",
             "shoal-node-3.other:",
             "not the pod's DNS name shoal-node-3.shoal-node"),
            ("endpoint port", "shoal-node-2.shoal-node:7100",
             "shoal-node-2.shoal-node:7200",
             "port 7200 is not a container port"),
            ("data_dir", 'data_dir = "/var/lib/shoal"',
             'data_dir = "/srv/shoal"',
             "nodes[0].data_dir /srv/shoal is not the mountPath"),
            ("metrics", '"0.0.0.0:9100"', '"0.0.0.0:9200"',
             "metrics port 9200: a probe is not GET /metrics"),
            ("listener", '"0.0.0.0:587"', '"0.0.0.0:2587"',
             "router.listen ports [25, 465, 2587, 8080]"),
            ("curve path", "/etc/shoal/curve/", "/etc/shoal/keys/",
             "keys/curve.keys is not on a Secret mount"),
            ("bad config", "shards = 256;", "shards = 256; shard = 1;",
             "cluster.shard: unknown key"),
        ]
        for what, old, new, want in conf_edits:
            mutations[what] = (
                lambda f, old=old, new=new: conf_edit(f, old, new), want)
        for what, (mutate, want) in mutations.items():
            with self.subTest(what):
                files = copy.deepcopy(self.files)
                mutate(files)
                problems = Checker(files).run(real_loader)
                self.assertTrue(any(want in p for p in problems),
                                f"{what}: {want!r} not in {problems}")
        # a resource file the kustomization does not list
        files = copy.deepcopy(self.files)
        files["extra.yaml"] = [{"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "x"}}]
        self.assertTrue(any("extra.yaml" in p
                            for p in Checker(files).run()))

    def test_3_libconfig_reader(self):
        conf = libconfig_parse('a: { b = "x" "y"; c = 10L; d = [1, 2]; };\n'
                               '# c\nl = ( { e = true; f = 0.5; } ); '
                               '/* x */ g = -3; // y\n')
        self.assertEqual(conf, {"a": {"b": "xy", "c": 10, "d": [1, 2]},
                                "l": [{"e": True, "f": 0.5}], "g": -3})

    def test_4_kustomize_build(self):
        """kubectl kustomize, where installed, builds the manifests (with
        secret files made as the operator would) and the built output passes the checker."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl not installed")
        d = self.tempdir("shoal-k8s-")
        root = os.path.join(d, "k8s")
        shutil.copytree(K8S, root, ignore=shutil.ignore_patterns(
            "curve.keys", "tls.*", "users"))
        # the secret files an operator makes (deploy/k8s/secrets/README.md)
        sec = os.path.join(root, "secrets")
        subprocess.run([bin_path("shoalctl"), "keygen",
                        os.path.join(sec, "curve.keys")], check=True,
                       capture_output=True, timeout=30)
        cert, key = make_cert(d, "mta.example.com")
        shutil.copy(cert, os.path.join(sec, "tls.crt"))
        shutil.copy(key, os.path.join(sec, "tls.key"))
        h = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                           input="secret\n", capture_output=True, text=True,
                           check=True, timeout=30).stdout.strip()
        with open(os.path.join(sec, "users"), "w") as fh:
            fh.write(f"alice:{h}\n")
        r = subprocess.run([kubectl, "kustomize", root], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        built = {"built.yaml": list(yaml.safe_load_all(r.stdout))}
        problems = Checker(built).run(real_loader)
        self.assertEqual(problems, [], "\n".join(problems))
        self.assertTrue(all(d["metadata"].get("namespace") == "shoal"
                            for d in built["built.yaml"]
                            if d["kind"] != "Namespace"))

    def test_5_host_name_endpoints(self):
        """Nodes at tcp://localhost:PORT bind (ZeroMQ binds no DNS names)
        and take mail, with and without CURVE."""
        d = self.tempdir("shoal-k8s-")
        keys = os.path.join(d, "cluster.keys")
        r = subprocess.run([bin_path("shoalctl"), "keygen", keys],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        for extra in ("", f'curve_keys = "{keys}";'):
            with self.subTest(curve=bool(extra)):
                c = self.cluster(net=NamedLoopback(), cluster_extra=extra,
                                 replication="heartbeat_ms = 200;")
                with open(c.conf) as f:
                    self.assertIn("tcp://localhost:", f.read())
                wait_for(lambda: all(
                    n["replication"]["state"] == "healthy"
                    for n in c.status()["nodes"]), 20, "the pair healthy")
                with SMTPConn(c.port) as s:
                    s.ehlo()
                    r = s.mail("a@example.org", ["b@example.net"],
                               make_message("named"))
                    self.assertEqual(r.code, 250, r)
                self.assertEqual(len(c.queue_list()["messages"]), 1)

    def test_6_readme_config_table_is_current(self):
        """README.md's key reference is what deploy/config_table.py reads
        from lib/config.c now: a key added without --update fails here."""
        tool = os.path.join(REPO, "deploy", "config_table.py")
        r = subprocess.run(["python3", tool, "--check",
                            os.path.join(REPO, "README.md")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        with open(os.path.join(REPO, "lib", "config.c"),
                  encoding="utf-8") as f:
            keys = re.findall(r'^\s*\{ "(\w+)", CT_', f.read(), re.M)
        for k in keys:
            self.assertIn(k, readme)

    def test_7_nodes_on_other_hosts_by_name(self):
        """As on Kubernetes: nodes in namespaces of their own, their
        endpoints DNS-style names, CURVE on. Each binds its port on every
        interface; the pair replicates, the router and shoalctl reach them
        by name, and mail from another host is stored on both."""
        if not netns.available():
            self.skipTest("needs root and network namespaces")
        d = self.tempdir("shoal-k8s-")
        keys = os.path.join(d, "cluster.keys")
        subprocess.run([bin_path("shoalctl"), "keygen", keys], check=True,
                       capture_output=True, timeout=30)
        net = PodNames(self, ["n1", "n2"], ["router", "client"])
        c = self.cluster(net=net, cluster_extra=f'curve_keys = "{keys}";',
                         relay_networks=(f"{netns.SUBNET}.0/24",),
                         replication="heartbeat_ms = 200;")
        with open(c.conf) as f:
            self.assertIn("tcp://n1.shoal-node:", f.read())
        self.assertIn("bound=tcp://*:", c.node("n1").log_text())
        wait_for(lambda: all(n["replication"]["state"] == "healthy"
                             for n in c.status()["nodes"]), 30,
                 "the pair healthy across namespaces")
        r = subprocess.run(net.wrap("client", [
            "swaks", "--server", f"{net.host('router')}:{c.port}",
            "--from", "a@example.org", "--to", "b@example.net",
            "--timeout", "30"]), capture_output=True, text=True, timeout=60)
        self.assertIn("250 2.0.0 Ok: queued as", r.stdout, r.stdout[-2000:])
        self.assertEqual(len(c.queue_list()["messages"]), 1)
        st = c.status()["nodes"]
        self.assertEqual(sum(n["replication"]["replica_messages"]
                             for n in st), 1)


if __name__ == "__main__":
    unittest.main()
