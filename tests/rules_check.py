#!/usr/bin/env python3
"""Hold the Grafana dashboard and the Prometheus alerts against the metrics
Shoal exports (docs/dashboards.md).

    python3 tests/rules_check.py [REPO]
    python3 tests/rules_check.py --self-test

--self-test runs the checks on small inputs made for it (an unknown
metric, a histogram suffix on a counter, a label value that only looks
like a metric, a pending name the code has since spelled otherwise, an
expression that does not parse, overlapping panels, a fixed datasource,
an alert without a negative case) and fails unless each is judged as it
should be.

Each check prints one line, `rules: NAME ok` or `rules: NAME FAIL`
followed by what breaks it:

  dashboard_json     deploy/grafana/shoal.json is a dashboard: schemaVersion,
                     a uid, unique panel ids that do not overlap, the
                     `datasource` (prometheus) and `node` variables, every
                     query through ${datasource}
  dashboard_metrics  every PromQL expression of the dashboard (panels and
                     the node variable) names only metrics Shoal exports
  dashboard_promql   every such expression parses: promtool checks them as
                     recording rules, Grafana's variables replaced
  alerts_metrics     every expression of deploy/prometheus/shoal-alerts.yml
                     names only metrics Shoal exports
  alerts_annotated   every alert has severity warning or critical, a summary
                     and a description that names a shoalctl command
  alerts_tested      in shoal-alerts.test.yml every alert fires somewhere
                     (each severity it has), and has a case where it must
                     not fire whose input holds a metric it reads

The metrics Shoal exports are the "shoal_..." strings of the C sources
under router/, node/ and lib/ and the `shoal_...` names of docs/metrics.md;
a histogram family (metrics_family(..., "histogram") in the code, or a
histogram row in the doc) also has _bucket, _sum and _count. PENDING holds
the names other parts of issue 19 are adding: they count only while no
metric of their prefix is in the code or the doc, so that a name that
lands spelled otherwise fails here instead of passing unseen.

Exit status 0 when every check passes, 1 otherwise. Runs promtool (for
dashboard_promql) and reads files; writes only a temporary rules file.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

DASHBOARD = "deploy/grafana/shoal.json"
ALERTS = "deploy/prometheus/shoal-alerts.yml"
ALERT_TESTS = "deploy/prometheus/shoal-alerts.test.yml"
SOURCE_ROOTS = ("router", "node", "lib")
METRICS_DOC = "docs/metrics.md"

# Metrics of issue 19 that other work adds; by prefix (see the docstring).
PENDING = {
    # delivery.webhooks (docs/webhooks.md)
    "shoal_webhook_": {
        "shoal_webhook_backlog": "gauge",
        "shoal_webhook_events_total": "counter",
        "shoal_webhook_posts_total": "counter",
    },
    # router.http_listen, the HTTP API (docs/http.md)
    "shoal_router_http_": {
        "shoal_router_http_messages_total": "counter",
    },
}

HIST_SUFFIXES = ("_bucket", "_sum", "_count")
SEVERITIES = ("warning", "critical")

C_NAME = re.compile(r'"(shoal_[A-Za-z0-9_]+)"')
C_HIST = re.compile(r'metrics_family\(\s*\w+\s*,\s*"(shoal_[A-Za-z0-9_]+)"'
                    r'\s*,\s*"histogram"')
DOC_NAME = re.compile(r"`(shoal_[A-Za-z0-9_]+)`")
DOC_HIST = re.compile(r"^\|\s*`(shoal_[A-Za-z0-9_]+)`\s*\|\s*histogram\s*\|",
                      re.M)
# PromQL: string literals (label values, regexes) and the names outside them
PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
PROMQL_SHOAL = re.compile(r"\bshoal_[A-Za-z0-9_:]*")
PROMQL_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
GRAFANA_RANGE = re.compile(r"\$\{?__(rate_interval|interval|range)\}?")
GRAFANA_VAR = re.compile(r"\$\{?[A-Za-z_]\w*(?::\w+)?\}?")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def known_metrics(repo):
    """(names, histograms, notes): every metric name Shoal exports, the
    histogram families among them, and a note per PENDING prefix used."""
    names, hists = set(), set()
    for root in SOURCE_ROOTS:
        for dirpath, _, files in os.walk(os.path.join(repo, root)):
            for f in files:
                if not f.endswith((".c", ".h")):
                    continue
                with open(os.path.join(dirpath, f), errors="replace") as fh:
                    text = fh.read()
                names.update(C_NAME.findall(text))
                hists.update(C_HIST.findall(text))
    doc = os.path.join(repo, METRICS_DOC)
    if os.path.exists(doc):
        with open(doc) as fh:
            text = fh.read()
        names.update(DOC_NAME.findall(text))
        hists.update(DOC_HIST.findall(text))
    notes = []
    for prefix, pending in PENDING.items():
        if any(n.startswith(prefix) for n in names):
            continue
        names.update(pending)
        hists.update(n for n, t in pending.items() if t == "histogram")
        notes.append(f"{prefix}* not in the code yet: taking issue 19's "
                     f"names ({', '.join(sorted(pending))})")
    for h in list(hists):
        names.update(h + s for s in HIST_SUFFIXES)
    return names, hists, notes


def promql_names(expr):
    """The shoal_ metric names an expression reads (not label values)."""
    return set(PROMQL_SHOAL.findall(PROMQL_STRING.sub('""', expr)))


def promql_idents(expr):
    """Every identifier outside string literals: metric names among them."""
    return set(PROMQL_IDENT.findall(PROMQL_STRING.sub('""', expr)))


def metric_problems(exprs, known):
    """exprs: (where, expr) pairs. One line per unknown name, and per
    expression that reads no Shoal metric at all."""
    bad = []
    for where, expr in exprs:
        names = promql_names(expr)
        for n in sorted(names - known):
            bad.append(f"{where}: {n} is not a metric Shoal exports")
        if not names and "up" not in promql_idents(expr):
            bad.append(f"{where}: reads no Shoal metric")
    return bad


# ---- the dashboard -------------------------------------------------------

def dashboard_panels(dash):
    """Every panel, those inside collapsed rows too."""
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_exprs(dash):
    """(where, expr) for every query: panel targets and query variables
    (label_values(M, L) stands for M)."""
    out = []
    for p in dashboard_panels(dash):
        for t in p.get("targets", []):
            if "expr" in t:
                out.append((f"panel {p.get('id')} \"{p.get('title')}\" "
                            f"{t.get('refId')}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q or ""
        m = LABEL_VALUES.match(q)
        out.append((f"variable {v.get('name')}", m.group(1) if m else q))
    return out


def check_dashboard_json(dash):
    bad = []
    if not isinstance(dash.get("schemaVersion"), int) or \
            dash["schemaVersion"] < 36:
        bad.append("schemaVersion missing or older than 36 (Grafana 9)")
    if not dash.get("uid") or not dash.get("title"):
        bad.append("no uid or title")
    variables = {v.get("name"): v
                 for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or \
            ds.get("query") != "prometheus":
        bad.append("no `datasource` variable of type datasource/prometheus")
    node = variables.get("node")
    if not node or node.get("type") != "query":
        bad.append("no `node` query variable")
    ids = {}
    for p in dashboard_panels(dash):
        pid = p.get("id")
        if pid in ids:
            bad.append(f"panel id {pid} used twice")
        ids[pid] = p
        if p.get("type") == "row":
            continue
        if "gridPos" not in p:
            bad.append(f"panel {pid}: no gridPos")
        refs = [p.get("datasource")] + \
            [t.get("datasource") for t in p.get("targets", [])]
        for r in refs:
            if not isinstance(r, dict) or r.get("uid") != "${datasource}":
                bad.append(f"panel {pid}: a datasource other than "
                           "${datasource}")
                break
        if not p.get("targets"):
            bad.append(f"panel {pid}: no query")
    placed = [(pid, p["gridPos"]) for pid, p in ids.items()
              if "gridPos" in p]
    for i, (a, ga) in enumerate(placed):
        for b, gb in placed[i + 1:]:
            if ga["x"] < gb["x"] + gb["w"] and gb["x"] < ga["x"] + ga["w"] \
                    and ga["y"] < gb["y"] + gb["h"] and \
                    gb["y"] < ga["y"] + ga["h"]:
                bad.append(f"panels {a} and {b} overlap")
    return bad


def grafana_to_promql(expr):
    """What Prometheus would be sent, near enough to parse: ranges as 5m,
    every other variable (used in regex matchers) as .*"""
    return GRAFANA_VAR.sub(".*", GRAFANA_RANGE.sub("5m", expr))


def check_promql_parses(exprs):
    """Parse (where, expr) pairs with promtool, as recording rules."""
    rules = []
    where_of = {}
    for i, (where, expr) in enumerate(exprs):
        name = f"dashboard:expr_{i}"
        where_of[name] = where
        rules.append({"record": name, "expr": grafana_to_promql(expr)})
    fd, path = tempfile.mkstemp(prefix="shoal-dashboard-", suffix=".yml")
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump({"groups": [{"name": "dashboard",
                                        "rules": rules}]}, fh)
        try:
            r = subprocess.run(["promtool", "check", "rules", path],
                               capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            return ["promtool not found (deploy/install-deps.sh installs it)"]
    finally:
        os.unlink(path)
    if r.returncode == 0:
        return []
    bad = []
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r'"(dashboard:expr_\d+)"', line)
        if m:
            why = line.split(m.group(0))[-1].lstrip(": ")
            bad.append(f"{where_of[m.group(1)]}: {why}")
    return bad or [f"promtool: {(r.stdout + r.stderr).strip()}"]


# ---- the alerts ----------------------------------------------------------

def alert_rules(rules_doc):
    return [r for g in rules_doc.get("groups", [])
            for r in g.get("rules", []) if "alert" in r]


def check_annotated(alerts):
    bad = []
    for a in alerts:
        name = a["alert"]
        sev = a.get("labels", {}).get("severity")
        if sev not in SEVERITIES:
            bad.append(f"{name}: severity {sev!r}, not one of "
                       f"{', '.join(SEVERITIES)}")
        ann = a.get("annotations", {})
        if not ann.get("summary"):
            bad.append(f"{name}: no summary")
        if "shoalctl " not in ann.get("description", ""):
            bad.append(f"{name}: the description names no shoalctl command")
    return bad


def check_tested(alerts, tests_doc):
    """Every (alert, severity) fires in some case; every alert has a case
    where it must not fire, with a metric it reads in that case's input."""
    fired, quiet = set(), {}
    for t in tests_doc.get("tests", []):
        series = {s.get("series", "").split("{")[0].strip()
                  for s in t.get("input_series", [])}
        for c in t.get("alert_rule_test", []):
            name = c.get("alertname")
            exp = c.get("exp_alerts") or []
            for e in exp:
                fired.add((name, e.get("exp_labels", {}).get("severity")))
            if not exp:
                quiet.setdefault(name, set()).update(series)
    bad = []
    reads = {}
    for a in alerts:
        reads.setdefault(a["alert"], set()).update(promql_idents(a["expr"]))
        sev = a.get("labels", {}).get("severity")
        if (a["alert"], sev) not in fired:
            bad.append(f"{a['alert']} ({sev}): no case where it fires")
    for name, idents in reads.items():
        if name not in quiet:
            bad.append(f"{name}: no case where it must not fire")
        elif not quiet[name] & idents:
            bad.append(f"{name}: its not-firing cases hold none of the "
                       "metrics it reads")
    return bad


# ---- running -------------------------------------------------------------

def run_checks(repo):
    """[(name, problems)], notes."""
    known, _, notes = known_metrics(repo)
    with open(os.path.join(repo, DASHBOARD)) as fh:
        dash = json.load(fh)
    with open(os.path.join(repo, ALERTS)) as fh:
        rules_doc = yaml.safe_load(fh)
    with open(os.path.join(repo, ALERT_TESTS)) as fh:
        tests_doc = yaml.safe_load(fh)
    dexprs = dashboard_exprs(dash)
    alerts = alert_rules(rules_doc)
    aexprs = [(f"alert {a['alert']} ({a.get('labels', {}).get('severity')})",
               a["expr"]) for a in alerts]
    return [
        ("dashboard_json", check_dashboard_json(dash)),
        ("dashboard_metrics", metric_problems(dexprs, known)),
        ("dashboard_promql", check_promql_parses(dexprs)),
        ("alerts_metrics", metric_problems(aexprs, known)),
        ("alerts_annotated", check_annotated(alerts)),
        ("alerts_tested", check_tested(alerts, tests_doc)),
    ], notes


def self_test():
    d = tempfile.mkdtemp(prefix="shoal-rules-")
    os.makedirs(os.path.join(d, "node"))
    os.makedirs(os.path.join(d, "docs"))
    with open(os.path.join(d, "node", "m.c"), "w") as fh:
        fh.write('metrics_counter(b, "shoal_a_total", "A.", n);\n'
                 'metrics_family(b, "shoal_h_seconds", "histogram",\n'
                 '               "H.");\n')
    with open(os.path.join(d, "docs", "metrics.md"), "w") as fh:
        fh.write("| `shoal_d` | gauge | | D |\n")
    known, _, notes = known_metrics(d)
    ok = True
    ok &= metric_problems([("good", 'rate(shoal_a_total[5m]) + shoal_d'
                            '{x="shoal_not_a_metric"} + on () sum(rate('
                            'shoal_h_seconds_bucket[5m]))')], known) == []
    ok &= len(metric_problems([("unknown", "shoal_nope")], known)) == 1
    ok &= len(metric_problems([("suffix", "shoal_a_total_bucket")],
                              known)) == 1
    ok &= len(metric_problems([("none", "vector(1)")], known)) == 1
    ok &= "shoal_webhook_backlog" in known and len(notes) == len(PENDING)
    # once the code has a shoal_webhook_ metric, the pending names go
    with open(os.path.join(d, "node", "w.c"), "w") as fh:
        fh.write('metrics_gauge(b, "shoal_webhook_queue", "W.", n);\n')
    known, _, _ = known_metrics(d)
    ok &= "shoal_webhook_backlog" not in known
    ok &= "shoal_router_http_messages_total" in known
    bad = check_promql_parses([("panel 1", 'sum(rate(shoal_a_total'
                                '{node=~"$node"}[$__rate_interval]))'),
                               ("panel 2", "sum(rate(shoal_a_total[5m])")])
    ok &= len(bad) == 1 and bad[0].startswith("panel 2:")
    alert = {"alert": "X", "expr": "shoal_d > 1",
             "labels": {"severity": "warning"},
             "annotations": {"summary": "s", "description": "shoalctl status"}}
    fires = {"input_series": [{"series": "shoal_d{a=\"1\"}"}],
             "alert_rule_test": [{"alertname": "X", "exp_alerts": [
                 {"exp_labels": {"severity": "warning"}}]}]}
    quiet = {"input_series": [{"series": "shoal_d{a=\"1\"}"}],
             "alert_rule_test": [{"alertname": "X", "exp_alerts": []}]}
    empty = {"input_series": [], "alert_rule_test": [{"alertname": "X"}]}
    ok &= check_tested([alert], {"tests": [fires, quiet]}) == []
    ok &= len(check_tested([alert], {"tests": [fires]})) == 1
    ok &= len(check_tested([alert], {"tests": [fires, empty]})) == 1
    ok &= len(check_tested([alert], {"tests": [quiet]})) == 1
    ds = {"type": "prometheus", "uid": "${datasource}"}

    def panel(pid, x, source=ds):
        return {"id": pid, "type": "timeseries", "datasource": source,
                "gridPos": {"x": x, "y": 0, "w": 12, "h": 8},
                "targets": [{"refId": "A", "expr": "shoal_d",
                             "datasource": source}]}
    dash = {"schemaVersion": 38, "uid": "u", "title": "t",
            "templating": {"list": [
                {"name": "datasource", "type": "datasource",
                 "query": "prometheus"},
                {"name": "node", "type": "query",
                 "query": "label_values(shoal_d, node)"}]},
            "panels": [panel(1, 0), panel(2, 12)]}
    ok &= check_dashboard_json(dash) == []
    ok &= dashboard_exprs(dash)[-1][1] == "shoal_d"
    dash["panels"] = [panel(1, 0), panel(2, 6, {"uid": "prom-1"})]
    ok &= len(check_dashboard_json(dash)) == 2   # overlap, datasource
    ok &= check_annotated([alert]) == []
    ok &= len(check_annotated([dict(alert, labels={})])) == 1
    for dirpath, _, files in os.walk(d, topdown=False):
        for f in files:
            os.unlink(os.path.join(dirpath, f))
        os.rmdir(dirpath)
    print(f"rules: self_test {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    checks, notes = run_checks(repo)
    failed = 0
    for name, problems in checks:
        if problems:
            failed += 1
            print(f"rules: {name} FAIL")
            for p in problems:
                print(f"    {p}")
        else:
            print(f"rules: {name} ok")
    for n in notes:
        print(f"    note: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
