#!/usr/bin/env bash
# What the default outbound TLS policy costs on MX delivery (docs/tls.md).
# With `tls` unset on a delivery.limits entry a node asks, besides the MX
# and address records, `_mta-sts.<domain>` TXT per job (cached for the
# record's TTL, at least 5 s) and `_<port>._tcp.<mx>` TLSA per new
# connection; `tls = "opportunistic"` asks neither. One build, two configs:
#
#   A  limits = ( { domain = "*"; max_connections = 20; max_msgs_per_conn = 1000; } );
#   B  the same with tls = "opportunistic"
#
#   bench/policy.sh [-r ROUNDS] [-s SESSIONS,...] [-m N,...] [-D DOMAINS,...] [-l BYTES] [-c] [-k]
#
# For each sessions count S (default 1,50) and domain count D (default
# 1,50): ROUNDS rounds (default 5) of A and B taking turns (A first in odd
# rounds, B first in even ones, so drift on a shared machine falls on
# both), each on a fresh router + node pair (sync replication) and a fresh
# dnsmasq. smtp-source sends N messages of BYTES (default 1024) over S
# sessions to rcpt@d1.test .. rcpt@dD.test, evenly; -m gives N for each S
# in turn, or one N for all (default 20000,60000: some 30 s at 1 session,
# 10-20 s at 50, so the 5 s TXT cache runs out a few times). The nodes
# find dK.test's MX through dnsmasq on 127.0.0.1 (MX mx.dK.test, A
# 127.0.0.1, nothing else: TLSA and _mta-sts TXT are NXDOMAIN, the common
# case; --no-resolv and --local=/test/, so no query leaves it) and deliver
# to smtp-sink on 127.0.0.1 (delivery.smtp_port). Every query goes through
# the node's DNS cache (node/delivery/dns_query.c): dnsmasq's records have
# TTL 0 and are kept 5 s (DNS_TTL_MIN), its NXDOMAINs carry no SOA and are
# kept 60 s (DNS_NEG_TTL_MAX, the most any negative answer is kept). So a
# run shorter than a minute asks one TXT per domain and one TLSA per MX
# host on each node, however many jobs and connections there are.
#
# Per run: end-to-end msg/s (from the first message until smtp-sink
# counted all), CPU seconds of n1 and n2 (and router, dnsmasq) from the
# first message until both nodes logged every delivery, and the queries
# dnsmasq answered by type (--log-queries; the warm-up domain left out).
# Per (S, D): medians of A and B, and the median of each round's B/A.
# -c runs both nodes under callgrind and adds their instructions per
# message (start-up and the warm-up included: keep -m the same), and the
# part of them spent in the policy's own files (self cost of the functions
# in node/policy/sts*, tlsrpt*, node/delivery/dest_tls.c,
# node/tls/sts_policy.c and tlsrpt_json.c; what they call in libc,
# libevent or c-ares not counted). Instruction counts do not move with the
# load; rates and CPU under callgrind mean nothing. Try -c -r 2 -m 3000 -s 50.
# Writes bench/results/policy-<UTC time>.txt. -k keeps the run's dirs.
# Only 127.0.0.1 on free ports; every process is stopped by PID at exit.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
ROUNDS=5 MSGS_LIST=20000,60000 SESS_LIST=1,50 DOM_LIST=1,50 LEN=1024 KEEP="" CG=""
while getopts "r:m:s:D:l:ck" o; do
	case $o in
	r) ROUNDS=$OPTARG ;;
	m) MSGS_LIST=$OPTARG ;;
	s) SESS_LIST=$OPTARG ;;
	D) DOM_LIST=$OPTARG ;;
	l) LEN=$OPTARG ;;
	c) CG=1 ;;
	k) KEEP=1 ;;
	*) sed -n '/^#   bench\/policy.sh/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
IFS=, read -r -a SESSIONS <<<"$SESS_LIST"
IFS=, read -r -a DOMAINS <<<"$DOM_LIST"
IFS=, read -r -a MSGS <<<"$MSGS_LIST"
bench_positive "$ROUNDS" "$LEN" "${SESSIONS[@]}" "${MSGS[@]}" "${DOMAINS[@]}"
[ ${#MSGS[@]} -eq 1 ] || [ ${#MSGS[@]} -eq ${#SESSIONS[@]} ] ||
	{ echo "-m: one count, or one per -s entry" >&2; exit 2; }
for n in "${MSGS[@]}"; do
	for d in "${DOMAINS[@]}"; do
		[ "$d" -le "$n" ] || { echo "-D $d: more domains than the $n messages" >&2; exit 2; }
	done
done
bench_need smtp-source smtp-sink dnsmasq dig python3
[ -z "$CG" ] || bench_need valgrind callgrind_annotate
bench_build
bench_init shoal-policy
ROWS=$BENCH_DIR/rows
OUT=$BENCH_ROOT/bench/results/policy-$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p "${OUT%/*}"
LIMIT='domain = "*"; max_connections = 20; max_msgs_per_conn = 1000;'

say() { echo "$*" | tee -a "$OUT"; }

# cpu_s PID: utime + stime in seconds (fields 14 and 15 of /proc/PID/stat).
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }

# dns_start DIR D: dnsmasq on 127.0.0.1:$DNS answering only from its
# arguments: dK.test MX mx.dK.test, mx.dK.test A 127.0.0.1 (K = 1..D) and
# the same for warm.test; every query logged to DIR/dns.log.
dns_start() {
	local dir=$1 d=$2 k args=()
	DNS=$(free_port)
	for k in $(seq 1 "$d") warm; do
		[ "$k" = warm ] && k=warm.test || k=d$k.test
		args+=("--mx-host=$k,mx.$k,10" "--host-record=mx.$k,127.0.0.1")
	done
	dnsmasq --no-daemon --port="$DNS" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --conf-file=/dev/null --pid-file --local=/test/ \
		--log-queries --log-facility="$dir/dns.log" "${args[@]}" 2>"$dir/dns.err" &
	PIDS+=($!) DNS_PID=$!
	for _ in $(seq 1 50); do
		dig +short +tries=1 +time=1 -p "$DNS" @127.0.0.1 warm.test MX 2>/dev/null | grep -q mx.warm.test && return 0
		kill -0 "$DNS_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "dnsmasq did not answer:" >&2
	cat "$dir/dns.err" >&2
	return 1
}

# dns_counts LOG: the queries in LOG by type, those for warm.test left out:
# "MX A AAAA TLSA TXT other" (counts only).
dns_counts() {
	awk '/ query\[/ && !/warm\.test from / {
		t = $0; sub(/.* query\[/, "", t); sub(/\].*/, "", t); c[t]++; n++ }
	END { o = n - c["MX"] - c["A"] - c["AAAA"] - c["TLSA"] - c["TXT"]
		printf "%d %d %d %d %d %d", c["MX"], c["A"], c["AAAA"], c["TLSA"], c["TXT"], o }' "$1"
}

# send_all DIR N S D: N messages over S sessions to rcpt@d1.test ..
# rcpt@dD.test, N/D each (the first N%D one more). smtp-source's -t takes
# one recipient, so one smtp-source per domain: with S >= D all at once,
# the S sessions shared out (S/D each, the first S%D one more); with S < D
# in waves of S domains at once, one session each.
send_all() {
	local dir=$1 n=$2 s=$3 d=$4 k=1 i m ss p base=${#PIDS[@]} rc=0
	while [ "$k" -le "$d" ]; do
		for ((i = 0; i < s && k <= d; i++, k++)); do
			m=$((n / d + (k <= n % d ? 1 : 0)))
			ss=1
			[ "$s" -ge "$d" ] && ss=$((s / d + (k <= s % d ? 1 : 0)))
			smtp-source -s "$ss" -m "$m" -l "$LEN" -f bench@bench.local -t "rcpt@d$k.test" \
				127.0.0.1:"$SMTP" 2>>"$dir/source.log" &
			PIDS+=($!)
		done
		for p in "${PIDS[@]:base}"; do wait "$p" || rc=1; done
		PIDS=("${PIDS[@]:0:base}")
	done
	return $rc
}

# wait_until WHAT N FN ARGS...: until FN ARGS prints at least N (10 min).
wait_until() {
	local what=$1 n=$2 deadline=$(($(date +%s) + 600))
	shift 2
	while [ "$("$@")" -lt "$n" ]; do
		[ "$(date +%s)" -lt $deadline ] || { echo "$what: only $("$@")/$n after 600 s" >&2; return 1; }
		sleep 0.05
	done
}

# cg_stop: stop both nodes and wait for them: callgrind writes its file at
# their exit (not in $(...): a subshell cannot wait for them).
cg_stop() {
	kill "$N1_PID" "$N2_PID"
	wait "$N1_PID" "$N2_PID" || true
}

# cg_count DIR: the nodes' instructions summed, "TOTAL POLICY" (-c above).
cg_count() {
	for f in "$1"/cg.n1 "$1"/cg.n2; do callgrind_annotate --auto=no --threshold=100 "$f"; done | awk '
		/PROGRAM TOTALS/ { v = $1; gsub(",", "", v); t += v }
		/node\/(policy\/(sts|tlsrpt)|delivery\/dest_tls|tls\/(sts_policy|tlsrpt_json))[a-z_]*\.[ch]:/ {
			v = $1; gsub(",", "", v); p += v }
		END { printf "%d %d", t, p }'
}

# run_one X N S D ROUND: one run of config X (A or B), N messages; prints
# its line and appends its figures to $ROWS.
run_one() {
	local x=$1 n=$2 s=$3 d=$4 r=$5 dir tls="" load t0 t1 c0 c1 secs ir="0 0" deadline
	dir=$BENCH_DIR/s$s-d$d-r$r-$x
	mkdir -p "$dir"
	[ "$x" = B ] && tls=' tls = "opportunistic";'
	load=$(cut -d' ' -f1 /proc/loadavg)
	dns_start "$dir" "$d"
	SINK=$(free_port) SMTP=$(free_port)
	if [ -n "$CG" ]; then
		WRAP_N1=(valgrind --tool=callgrind --callgrind-out-file="$dir/cg.n1" -q)
		WRAP_N2=(valgrind --tool=callgrind --callgrind-out-file="$dir/cg.n2" -q)
	fi
	BENCH_DELIVERY="  dns_servers = [ \"127.0.0.1:$DNS\" ];
  smtp_port = $SINK;
  limits = ( { $LIMIT$tls } );" shoal_conf "$dir" "$SMTP" "$SINK"
	if [ -n "$CG" ]; then
		# a node under callgrind takes seconds to start: no takeover of
		# the slower one's shards meanwhile (work in one run, not the other)
		sed -i 's/^replication: { mode = "sync"; };/replication: { mode = "sync"; failover_after_ms = 60000; peer_timeout_ms = 30000; };/' "$dir/shoal.conf"
		grep -q failover_after_ms "$dir/shoal.conf" || { echo "shoal_conf changed: no replication line to extend" >&2; return 1; }
	fi
	sink_start "$SINK" "$dir/sink.out"
	shoal_start "$dir" "$SMTP"
	# warm-up: one message through router, both nodes (sync replication)
	# and the sink says the pair is up (sent again while refused: nodes
	# under callgrind take seconds to start); its domain is not counted
	deadline=$(($(date +%s) + 120))
	until smtp-source -m 1 -f bench@bench.local -t postmaster@warm.test 127.0.0.1:"$SMTP" 2>>"$dir/source.log"; do
		[ "$(date +%s)" -lt $deadline ] || { echo "warm-up refused for 120 s" >&2; tail -n 5 "$dir"/*.log >&2; return 1; }
		sleep 0.5
	done
	wait_until "warm-up at the sink" 1 sink_count "$dir/sink.out"

	c0="$(cpu_s "$N1_PID") $(cpu_s "$N2_PID") $(cpu_s "$ROUTER_PID") $(cpu_s "$DNS_PID")"
	t0=$(now)
	send_all "$dir" "$n" "$s" "$d" ||
		{ echo "smtp-source failed:" >&2; tail -n 5 "$dir"/*.log >&2; return 1; }
	wait_until "messages at the sink" $((n + 1)) sink_count "$dir/sink.out"
	t1=$(now)
	wait_until "deliveries logged" $((n + 1)) shoal_delivered "$dir"
	c1="$(cpu_s "$N1_PID") $(cpu_s "$N2_PID") $(cpu_s "$ROUTER_PID") $(cpu_s "$DNS_PID")"
	if [ -n "$CG" ]; then
		cg_stop
		ir=$(cg_count "$dir")
	fi
	bench_stop_all
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	# S D round X msgs secs cpu(n1 n2 router dnsmasq) MX A AAAA TLSA TXT other load Ir(total policy)
	echo "$s $d $r $x $n $secs $(awk -v a="$c0" -v b="$c1" 'BEGIN {
		split(a, p); split(b, q); for (i = 1; i <= 4; i++) printf "%.2f ", q[i] - p[i] }')$(dns_counts "$dir/dns.log") $load $ir" |
		tee -a "$ROWS" | awk '{
		m = $5; printf "  round %d %s: %6.0f msg/s  cpu s n1 %.2f n2 %.2f (%.3f ms/msg) router %.2f dnsmasq %.2f  queries MX %d A %d AAAA %d TLSA %d TXT %d other %d  load %s\n",
			$3, $4, m / $6, $7, $8, ($7 + $8) * 1000 / m, $9, $10, $11, $12, $13, $14, $15, $16, $17
		if ($18 > 0) printf "    n1+n2 Ir/msg %.0f, in the policy files %.0f\n", $18 / m, $19 / m }' |
		tee -a "$OUT"
	[ -n "$KEEP" ] || rm -rf "$dir"
}

say "Shoal default TLS policy (A: tls unset) vs tls = \"opportunistic\" (B), MX delivery via dnsmasq"
say "$(date -u +%FT%TZ) host=$(hostname) cpus=$(nproc) rev=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)" \
	"rounds=$ROUNDS sessions=$SESS_LIST messages=$MSGS_LIST size=$LEN domains=$DOM_LIST"
say "A limits: { $LIMIT }"
say "B limits: { $LIMIT tls = \"opportunistic\"; }"
for i in "${!SESSIONS[@]}"; do
	s=${SESSIONS[i]} n=${MSGS[i]:-${MSGS[0]}}
	for d in "${DOMAINS[@]}"; do
		say "== $s sessions, $d domains, $n messages"
		for r in $(seq 1 "$ROUNDS"); do
			if [ $((r % 2)) -eq 1 ]; then order="A B"; else order="B A"; fi
			for x in $order; do run_one "$x" "$n" "$s" "$d" "$r"; done
		done
	done
done

# medians per (S, D) and the ratios of each round's A and B
python3 - "$ROWS" <<'PY' | tee -a "$OUT"
import sys
from statistics import median

TYPES = ("MX", "A", "AAAA", "TLSA", "TXT", "other")
runs = {}  # (S, D) -> "A"/"B" -> round -> figures
for line in open(sys.argv[1]):
    f = line.split()
    s, d, r, x, m, secs = int(f[0]), int(f[1]), int(f[2]), f[3], int(f[4]), float(f[5])
    n1, n2 = float(f[6]), float(f[7])
    runs.setdefault((s, d), {}).setdefault(x, {})[r] = {
        "rate": m / secs, "cpu": (n1 + n2) * 1000 / m,
        "dns": [int(v) * 1000 / m for v in f[10:16]],
        "ir": int(f[17]) / m, "ir_pol": int(f[18]) / m}


def med(x, key):
    return median(v[key] for v in x.values())


def ratio(num, den, key):
    q = [num[r][key] / den[r][key] for r in sorted(set(num) & set(den)) if den[r][key] > 0]
    return f"{median(q):.3f} ({min(q):.2f}..{max(q):.2f})" if q else "-"


print("\nsummary, medians over the rounds; ratios: median of each round's, (min..max)")
print("  rate B/A > 1 and cpu A/B > 1: the default policy (A) costs that much")
print(f"{'S':>4} {'D':>4} | {'msg/s A':>8} {'B':>8} {'rate B/A':>19} |"
      f" {'n1+n2 CPU ms/msg A':>18} {'B':>6} {'cpu A/B':>19}")
for (s, d), xs in sorted(runs.items()):
    a, b = xs.get("A", {}), xs.get("B", {})
    if not a or not b:
        continue
    print(f"{s:>4} {d:>4} | {med(a, 'rate'):8.0f} {med(b, 'rate'):8.0f} {ratio(b, a, 'rate'):>19} |"
          f" {med(a, 'cpu'):18.3f} {med(b, 'cpu'):6.3f} {ratio(a, b, 'cpu'):>19}")
print("\nDNS queries answered per 1000 messages (median over the rounds)")
print(f"{'S':>4} {'D':>4}   " + " ".join(f"{t:>6}" for t in TYPES))
for (s, d), xs in sorted(runs.items()):
    for x in ("A", "B"):
        if x in xs:
            row = [median(v["dns"][i] for v in xs[x].values()) for i in range(len(TYPES))]
            print(f"{s:>4} {d:>4} {x} " + " ".join(f"{v:6.2f}" for v in row))
if any(v["ir"] > 0 for xs in runs.values() for x in xs.values() for v in x.values()):
    print("\ncallgrind: n1+n2 instructions per message (start-up included), median over the rounds;")
    print("  policy: self cost of the policy's own files; A-B: median of each round's difference")
    print(f"{'S':>4} {'D':>4} | {'Ir/msg A':>10} {'B':>10} {'A-B':>8} {'(A-B)/B':>8} | {'policy A':>8} {'B':>6}")
    for (s, d), xs in sorted(runs.items()):
        a, b = xs.get("A", {}), xs.get("B", {})
        rounds = sorted(set(a) & set(b))
        if not rounds:
            continue
        diff = median(a[r]["ir"] - b[r]["ir"] for r in rounds)
        print(f"{s:>4} {d:>4} | {med(a, 'ir'):10.0f} {med(b, 'ir'):10.0f} {diff:8.0f} {diff / med(b, 'ir'):8.2%} |"
              f" {med(a, 'ir_pol'):8.0f} {med(b, 'ir_pol'):6.0f}")
PY
echo "written to bench/results/${OUT##*/}" >&2
if [ -n "$KEEP" ]; then
	echo "kept $BENCH_DIR" >&2
	BENCH_DIR="" # bench_cleanup removes nothing then
fi
