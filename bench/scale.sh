#!/usr/bin/env bash
# A node pair holding a million deferred messages: memory, restart, idle CPU,
# enqueue rate, and the cost of a /metrics scrape and of `shoalctl status`,
# against an empty queue.
#
#   bench/scale.sh [-n MESSAGES] [-c CHUNK] [-s SESSIONS] [-l BYTES] [-k]
#
#   -n N     messages to fill the queue with (default 1000000)
#   -c N     messages per timed chunk (default 50000)
#   -s N     smtp-source sessions (default 50), -l BYTES size (default 1024)
#   -k       keep the temp dir (queues, logs)
#
# Setup: one router and a node pair (sync replication, fsync) as in
# compare.sh; dead.test routes to a closed loopback port, so every message
# gets one attempt (connection refused) and is deferred with the next try a
# day away; live.test routes to smtp-sink. failover_after_ms is 10 minutes
# so n2 does not take n1's shards while n1 restarts.
#
# Steps and what is printed:
#  1. fill: smtp-source (one connection per message, like compare.sh) in
#     chunks of CHUNK to dead.test; each chunk's rate and the queue depth.
#     Then a second, empty pair starts beside the full one and both get
#     chunks of 20,000 in turn, three each: the medians' ratio is the
#     "within 20%" figure (taking turns spreads load from elsewhere evenly).
#  2. a scrape and a status, full against empty: as soon as the empty pair
#     is up, 20 rounds of (GET n1's /metrics, then `shoalctl status` of the
#     pair) on the full pair and the empty one in turn; median, p90 and max
#     milliseconds of each. A scrape runs on the node's event loop, so its
#     time is how long that loop cannot do anything else.
#  3. RSS of both nodes and the router (VmRSS, and its anonymous part and
#     the part that is LMDB's mapped file, which the kernel may drop).
#  4. idle CPU: both nodes and the router over 10 s, after 5 s of quiet.
#  5. restart: kill -9 n1, start it; time until its /metrics answers and
#     until it has delivered a fresh message to live.test (a sender sends
#     one every 50 ms through the router meanwhile; about half land on n1's
#     shards); n1's RSS after the restart.
#  6. upgrade: stop n1, remove its queue counts (as in a queue written
#     before they existed), start it: time until /metrics answers, and the
#     node's own figure for counting the queue once (its log).
# Results go to stdout and bench/results/scale-<UTC time>.txt. Needs about
# 3 KiB of disk per message per node (checked against df before it starts).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
TOTAL=1000000 CHUNK=50000 SESS=50 LEN=1024 KEEP=0
while getopts "n:c:s:l:k" o; do
	case $o in
	n) TOTAL=$OPTARG ;;
	c) CHUNK=$OPTARG ;;
	s) SESS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	k) KEEP=1 ;;
	*) sed -n '/^#   bench\/scale.sh/,/^#   -k/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
bench_positive "$TOTAL" "$CHUNK" "$SESS" "$LEN"
bench_need smtp-source smtp-sink python3 curl
bench_build
bench_init shoal-scale
[ $KEEP -eq 1 ] && trap 'bench_stop_all; echo "kept $BENCH_DIR" >&2' EXIT
DIR=$BENCH_DIR
WHEN=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH_ROOT/bench/results/scale-$WHEN.txt
mkdir -p "$BENCH_ROOT/bench/results"
LOG=$DIR/result.txt
say() { echo "$*" | tee -a "$LOG"; }

need_kb=$(((TOTAL + CHUNK) / 1000 * (LEN + 2048) * 2 / 1000 * 1000 / 1024 + 1048576))
free_kb=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
[ "$free_kb" -gt "$need_kb" ] || { echo "need about $((need_kb / 1024)) MiB free in $DIR, have $((free_kb / 1024))" >&2; exit 1; }

SINK=$(free_port) DEAD=$(free_port)
sink_start "$SINK" "$DIR/sink.out"

# scale_conf DIR: DIR/shoal.conf for a pair under DIR; sets SMTP, M1 (n1's
# /metrics port).
scale_conf() {
	local d=$1 p1 p2 m2 mr
	SMTP=$(free_port) p1=$(free_port) p2=$(free_port) M1=$(free_port) m2=$(free_port) mr=$(free_port)
	mkdir -p "$d"
	cat >"$d/shoal.conf" <<CONF
cluster: { name = "scale"; shards = 64; };
nodes = (
  { id = "n1"; endpoint = "tcp://127.0.0.1:$p1"; peer = "n2"; data_dir = "$d/n1";
    metrics = "127.0.0.1:$M1"; map_size = 34359738368; },
  { id = "n2"; endpoint = "tcp://127.0.0.1:$p2"; peer = "n1"; data_dir = "$d/n2";
    metrics = "127.0.0.1:$m2"; map_size = 34359738368; }
);
router: { hostname = "bench.local"; listen = ( { address = "127.0.0.1:$SMTP"; } );
          metrics = "127.0.0.1:$mr"; };
delivery: {
  helo_name = "bench.local";
  retry_schedule = [ 86400 ];
  routes = ( { domain = "dead.test"; host = "127.0.0.1:$DEAD"; },
             { domain = "live.test"; host = "127.0.0.1:$SINK"; } );
  limits = ( { domain = "*"; max_connections = 20; max_msgs_per_conn = 1000; } );
};
replication: { mode = "sync"; failover_after_ms = 600000; };
log: { level = "warn"; };
CONF
}

# scale_start DIR: the pair and a router on DIR/shoal.conf.
scale_start() {
	n1_start "$1"
	n2_start "$1"
	"$BIN/shoal-router" -c "$1/shoal.conf" 2>"$1/router.log" &
	PIDS+=($!) ROUTER_PID=$!
	wait_port "$SMTP" 300 || { echo "router did not listen" >&2; tail -n 5 "$1"/*.log >&2; exit 1; }
	sleep 1
}

scale_conf "$DIR"
scale_start "$DIR"

# rss PID: VmRSS, RssAnon, RssFile in MiB.
rss() {
	awk '/^VmRSS|^RssAnon|^RssFile/ { v[$1] = $2 } END {
		printf "rss=%.0fMiB anon=%.0fMiB file=%.0fMiB", v["VmRSS:"] / 1024, v["RssAnon:"] / 1024, v["RssFile:"] / 1024 }' "/proc/$1/status"
}
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# queue depth: delivery log lines (one per attempt, so per message here).
attempts() { cat "$DIR"/n1/delivery.log "$DIR"/n2/delivery.log 2>/dev/null | wc -l; }
du_mib() { du -sm "$1" | cut -f1; }

say "Shoal scale — $(date -u +%FT%TZ)"
say "host=$(hostname) cpus=$(nproc) shoal=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') bin=${BIN#"$BENCH_ROOT"/} messages=$TOTAL chunk=$CHUNK sessions=$SESS size=$LEN"
say "router + node pair, sync replication, fsync; every message deferred (connection refused), next try in a day"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)"
say ""
say "1. enqueue rate by queue depth (smtp-source, one connection per message)"

# chunk N [PORT]: send N messages to dead.test; prints the rate.
chunk() {
	local n=$1 port=${2:-$SMTP} t0 t1
	t0=$(now)
	smtp-source -s "$SESS" -m "$n" -l "$LEN" -f bench@dead.test -t rcpt@dead.test \
		127.0.0.1:"$port" >/dev/null 2>>"$DIR/source.err" ||
		{ echo "smtp-source failed: $(tail -n 3 "$DIR/source.err")" >&2; return 1; }
	t1=$(now)
	awk -v m="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", m / (b - a) }'
}

sent=0 first="" fill0=$(date +%s)
while [ $sent -lt "$TOTAL" ]; do
	n=$CHUNK
	[ $((sent + n)) -le "$TOTAL" ] || n=$((TOTAL - sent))
	r=$(chunk $n)
	sent=$((sent + n))
	[ -n "$first" ] || first=$r
	say "   queued=$sent rate=${r}/s attempts_logged=$(attempts) n1_rss: $(rss "$N1_PID") disk_n1=$(du_mib "$DIR/n1")MiB"
done
fill_s=$(($(date +%s) - fill0))
# Let the first attempts of the last messages finish (all deferred).
for _ in $(seq 1 600); do
	[ "$(attempts)" -ge "$TOTAL" ] && break
	sleep 1
done
say "   fill: $TOTAL messages in ${fill_s}s; attempts logged: $(attempts)"
# Full against empty, on a busy machine: a second, empty pair next to the
# full one, and chunks sent to each in turn (full, empty, ...) three
# times, so that load from elsewhere falls on both alike; medians compared.
FULL_PORT=$SMTP FULL_N1=$N1_PID FULL_N2=$N2_PID FULL_ROUTER=$ROUTER_PID FULL_M1=$M1
scale_conf "$DIR/empty"
scale_start "$DIR/empty"
EMPTY_PORT=$SMTP EMPTY_PIDS="$N1_PID $N2_PID $ROUTER_PID" EMPTY_M1=$M1
SMTP=$FULL_PORT N1_PID=$FULL_N1 N2_PID=$FULL_N2 ROUTER_PID=$FULL_ROUTER M1=$FULL_M1
# Scrapes and statuses of both pairs in turn, before the A/B chunks below
# fill the empty one.
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", 1000 * (b - a) }'; }
scrape_ms() {
	curl -s -o /dev/null --max-time 30 -w '%{time_total}' "http://127.0.0.1:$1/metrics" |
		awk '{ printf "%.1f", 1000 * $1 }'
}
status_ms() {
	local t0
	t0=$(now)
	"$BIN/shoalctl" -c "$1" status >/dev/null 2>>"$DIR/status.err" || echo "status failed" >>"$DIR/status.err"
	ms_since "$t0"
}
# stats MS...: median, p90 and max.
stats() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
		printf "median %.1f ms, p90 %.1f ms, max %.1f ms", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
}
queue_messages() {
	curl -s --max-time 30 "http://127.0.0.1:$1/metrics" | awk '$1 == "shoal_queue_messages" { print $2 }'
}
fs=() es=() fc=() ec=()
for _ in $(seq 1 20); do
	fs+=("$(scrape_ms "$FULL_M1")")
	fc+=("$(status_ms "$DIR/shoal.conf")")
	es+=("$(scrape_ms "$EMPTY_M1")")
	ec+=("$(status_ms "$DIR/empty/shoal.conf")")
done
COST_FULL_N=$(queue_messages "$FULL_M1") COST_EMPTY_N=$(queue_messages "$EMPTY_M1")
COST_FS=$(stats "${fs[@]}") COST_ES=$(stats "${es[@]}")
COST_FC=$(stats "${fc[@]}") COST_EC=$(stats "${ec[@]}")
ab=$((CHUNK < 20000 ? CHUNK : 20000))
fr=() er=()
for i in 1 2 3; do
	fr+=("$(chunk "$ab" "$FULL_PORT")")
	er+=("$(chunk "$ab" "$EMPTY_PORT")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
fm=$(median "${fr[@]}") em=$(median "${er[@]}")
say "   full vs empty, $ab messages a chunk, taking turns: full ${fr[*]} msg/s, empty ${er[*]} msg/s"
say "   medians: full ${fm}/s, empty ${em}/s, full/empty=$(awk -v a="$fm" -v b="$em" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
for p in $EMPTY_PIDS; do stop_pid "$p"; done
for _ in $(seq 1 120); do
	[ "$(attempts)" -ge $((TOTAL + 3 * ab)) ] && break
	sleep 1
done
say "   disk: n1=$(du_mib "$DIR/n1")MiB n2=$(du_mib "$DIR/n2")MiB (LMDB + delivery log)"

say ""
say "2. a scrape and a status, full against empty, 20 of each in turn"
say "   /metrics of n1, full ($COST_FULL_N of its messages): $COST_FS"
say "   /metrics of n1, empty ($COST_EMPTY_N):              $COST_ES"
say "   shoalctl status, full pair: $COST_FC"
say "   shoalctl status, empty pair: $COST_EC"
[ -s "$DIR/status.err" ] && say "   status errors: $(sort "$DIR/status.err" | uniq -c | head -n 3 | tr '\n' ' ')"

say ""
say "3. memory with $((TOTAL + 3 * ab)) deferred messages"
say "   n1:     $(rss "$N1_PID")"
say "   n2:     $(rss "$N2_PID")"
say "   router: $(rss "$ROUTER_PID")"

say ""
say "4. idle CPU over 10 s (after 5 s of quiet)"
sleep 5
hz=$(getconf CLK_TCK)
a1=$(ticks "$N1_PID") a2=$(ticks "$N2_PID") ar=$(ticks "$ROUTER_PID")
sleep 10
b1=$(ticks "$N1_PID") b2=$(ticks "$N2_PID") br=$(ticks "$ROUTER_PID")
pct() { awk -v a="$1" -v b="$2" -v hz="$hz" 'BEGIN { printf "%.2f%% of one core (%d ticks)", 100 * (b - a) / hz / 10, b - a }'; }
say "   n1:     $(pct "$a1" "$b1")"
say "   n2:     $(pct "$a2" "$b2")"
say "   router: $(pct "$ar" "$br")"

say ""
say "5. restart n1 (kill -9, start) with $((TOTAL + 3 * ab)) messages queued"
delivered_n1() { grep -c '"domain":"live.test".*"result":"delivered"' "$DIR/n1/delivery.log" 2>/dev/null || true; }
touch "$DIR/sending"
/usr/bin/python3 - "$SMTP" "$DIR/sending" >"$DIR/sender.out" 2>&1 <<'PY' &
import smtplib, sys, threading, time, os
port, flag = int(sys.argv[1]), sys.argv[2]
ok = [0]
def run():
    while os.path.exists(flag):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
                s.sendmail("bench@live.test", ["rcpt@live.test"], b"Subject: restart probe\r\n\r\nprobe\r\n")
                ok[0] += 1
        except Exception:
            pass
        time.sleep(0.05)
ts = [threading.Thread(target=run) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("accepted", ok[0])
PY
SENDER=$!
PIDS+=($SENDER)
kill -9 "$N1_PID"
wait "$N1_PID" 2>/dev/null || true
before=$(delivered_n1) # the old process's deliveries are done with
sleep 1
t0=$(now)
n1_start "$DIR"
metrics_s="" deliver_s=""
for _ in $(seq 1 600); do
	if [ -z "$metrics_s" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$M1/metrics" 2>/dev/null)" = 200 ]; then
		metrics_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
	fi
	if [ "$(delivered_n1)" -gt "$before" ]; then
		deliver_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
		break
	fi
	sleep 0.05
done
rm -f "$DIR/sending"
wait $SENDER 2>/dev/null || true
say "   n1 /metrics answered after ${metrics_s:-never}s; n1 delivered a fresh live.test message after ${deliver_s:-never (60 s)}s"
say "   sender: $(cat "$DIR/sender.out")"
sleep 2
say "   n1 after restart: $(rss "$N1_PID")"
w=$(cat "$DIR"/n1.log "$DIR"/n2.log "$DIR"/router.log | grep -ciE 'error|fatal' || true)
say "   error lines in node/router logs: $w$([ "$w" -gt 0 ] && echo ", e.g. $(grep -hiE 'error|fatal' "$DIR"/n1.log "$DIR"/n2.log "$DIR"/router.log | head -n 1)")"

say ""
say "6. upgrade: n1 stopped, its queue counts removed (a queue from before them), started"
stop_pid "$N1_PID"
# What a queue written before the counts looks like: no counts database,
# no queue_counts marker. LMDB's C API through ctypes (no lmdb-utils
# command drops a database).
dropped=$(/usr/bin/python3 - "$DIR/n1" <<'PY' || echo "python failed"
import ctypes, ctypes.util, sys
L = ctypes.CDLL(ctypes.util.find_library("lmdb"))
L.mdb_strerror.restype = ctypes.c_char_p
class Val(ctypes.Structure):
    _fields_ = [("mv_size", ctypes.c_size_t), ("mv_data", ctypes.c_char_p)]
env, txn, dbi = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_uint()
def ok(rc, what):
    if rc != 0:
        print(f"{what}: {L.mdb_strerror(rc).decode()}")
        sys.exit(0)
ok(L.mdb_env_create(ctypes.byref(env)), "env_create")
ok(L.mdb_env_set_mapsize(env, ctypes.c_size_t(34359738368)), "mapsize")
ok(L.mdb_env_set_maxdbs(env, 32), "maxdbs")
ok(L.mdb_env_open(env, sys.argv[1].encode(), 0, 0o600), "env_open")
ok(L.mdb_txn_begin(env, None, 0, ctypes.byref(txn)), "txn_begin")
ok(L.mdb_dbi_open(txn, b"counts", 0, ctypes.byref(dbi)), "counts")
ok(L.mdb_drop(txn, dbi, 1), "drop")
ok(L.mdb_dbi_open(txn, b"meta", 0, ctypes.byref(dbi)), "meta")
key = Val(len(b"queue_counts"), b"queue_counts")
L.mdb_del(txn, dbi, ctypes.byref(key), None)
ok(L.mdb_txn_commit(txn), "commit")
L.mdb_env_close(env)
print("dropped")
PY
)
# info, for the node's own line on counting (nothing else is due now)
sed -i 's/level = "warn"/level = "info"/' "$DIR/shoal.conf"
t0=$(now)
n1_start "$DIR"
up_s=""
for _ in $(seq 1 1200); do
	if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$M1/metrics" 2>/dev/null)" = 200 ]; then
		up_s=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
		break
	fi
	sleep 0.05
done
rebuilt=$(grep -h 'event=counts_rebuil' "$DIR/n1.log" | tail -n 2 | sed 's/^.*store dir=[^ ]* //' | tr '\n' ';' || true)
say "   counts: $dropped; n1 /metrics answered after ${up_s:-never}s"
say "   n1's log: ${rebuilt:-no counts_rebuild line}"
say "   n1 after counting: $(rss "$N1_PID"), shoal_queue_messages $(queue_messages "$M1")"
cp "$LOG" "$OUT"
echo "written to ${OUT#"$BENCH_ROOT"/}" >&2
