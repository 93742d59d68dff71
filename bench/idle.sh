#!/usr/bin/env bash
# One router holding many idle SMTP sessions: its memory, and that it still
# serves a new client meanwhile.
#
#   bench/idle.sh [-n SESSIONS] [-H SECONDS]
#
#   -n N  idle sessions (default 10000)
#   -H S  how long to hold them once all are open (default 20)
#
# A router (max_sessions = N + 100, max_sessions_per_ip = 0) and a node pair
# delivering to smtp-sink. A Python asyncio client opens N connections, from
# 127.0.0.2 .. 127.0.0.11 in turn (so no one source address runs out of
# ports), reads the greeting and says EHLO on each, then leaves them idle.
# Prints the router's RSS before and with all sessions open (and per
# session), its CPU while they idle, and whether a message sent meanwhile on
# a new connection gets its 250; writes bench/results/idle-<UTC time>.txt.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
N=10000 HOLD=20
while getopts "n:H:" o; do
	case $o in
	n) N=$OPTARG ;;
	H) HOLD=$OPTARG ;;
	*) sed -n '/^#   bench\/idle.sh/,/^#   -H/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
for v in "$N" "$HOLD"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $v" >&2; exit 2; }
done
bench_need smtp-sink python3
bench_build
want=$((N + 200))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge $want ] ||
	{ echo "the hard limit on open files ($(ulimit -Hn)) is below $want" >&2; exit 1; }
ulimit -n "$want"
bench_init shoal-idle
DIR=$BENCH_DIR
WHEN=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH_ROOT/bench/results/idle-$WHEN.txt
mkdir -p "$BENCH_ROOT/bench/results"
say() { echo "$*" | tee -a "$DIR/result.txt"; }

SINK=$(free_port) SMTP=$(free_port)
shoal_conf "$DIR" "$SMTP" "$SINK"
# the router's limits for this bench
sed -i "s|^router: { hostname = \"bench.local\";|router: { hostname = \"bench.local\"; max_sessions = $((N + 100)); max_sessions_per_ip = 0;|" "$DIR/shoal.conf"
grep -q "max_sessions = $((N + 100))" "$DIR/shoal.conf" || { echo "could not set max_sessions" >&2; exit 1; }
sink_start "$SINK" "$DIR/sink.out"
shoal_start "$DIR" "$SMTP"
sleep 1

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
r0=$(rss_kib "$ROUTER_PID")

say "Shoal router, idle sessions — $(date -u +%FT%TZ)"
say "host=$(hostname) cpus=$(nproc) shoal=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') sessions=$N"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "router RSS before: $((r0 / 1024)) MiB"

# The client: opens N sessions, says EHLO on each, writes "ready K" to its
# stdout (K = sessions that got their 250), then holds them until stdin closes.
mkfifo "$DIR/hold"
cat >"$DIR/client.py" <<'PY'
import asyncio, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
async def one(i, conns, sem):
    async with sem:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, local_addr=("127.0.0.%d" % (2 + i % 10), 0)), 30)
            line = await asyncio.wait_for(r.readline(), 30)
            if not line.startswith(b"220"):
                w.close(); return 0
            w.write(b"EHLO idle%d.bench.local\r\n" % i)
            while True:
                line = await asyncio.wait_for(r.readline(), 30)
                if not line.startswith(b"250"):
                    w.close(); return 0
                if line[3:4] == b" ":
                    break
            conns.append((r, w))
            return 1
        except (OSError, asyncio.TimeoutError) as e:
            print("session %d: %s" % (i, e), file=sys.stderr)
            return 0
async def main():
    conns, sem = [], asyncio.Semaphore(200)
    ok = sum(await asyncio.gather(*(one(i, conns, sem) for i in range(n))))
    print("ready", ok, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    alive = 0
    for r, w in conns:
        if not r.at_eof():
            alive += 1
        w.close()
    print("alive", alive, flush=True)
asyncio.run(main())
PY
/usr/bin/python3 "$DIR/client.py" "$SMTP" "$N" <"$DIR/hold" >"$DIR/client.out" 2>"$DIR/client.err" &
CLIENT=$!
PIDS+=($CLIENT)
exec 7>"$DIR/hold"
t0=$(now)
for _ in $(seq 1 3000); do
	grep -q '^ready' "$DIR/client.out" && break
	kill -0 $CLIENT 2>/dev/null || break
	sleep 0.1
done
t1=$(now)
ready=$(sed -n 's/^ready //p' "$DIR/client.out")
[ -n "$ready" ] || { echo "the client did not get ready: $(tail -n 3 "$DIR/client.err")" >&2; exit 1; }
say "sessions open after EHLO: $ready of $N in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s$([ -s "$DIR/client.err" ] && echo "; client errors: $(cut -d: -f2- "$DIR/client.err" | sort | uniq -c | sort -rn | head -n 2 | tr '\n' ' ')")"
sleep 2
r1=$(rss_kib "$ROUTER_PID")
say "router RSS with them open: $((r1 / 1024)) MiB ($(awk -v a="$r0" -v b="$r1" -v n="$ready" 'BEGIN { if (n > 0) printf "%.1f", (b - a) / n; else print "-" }') KiB per session)"
c0=$(ticks "$ROUTER_PID")
# A message on a new connection while they idle.
probe=$(/usr/bin/python3 - "$SMTP" <<'PY' 2>&1 || true
import smtplib, sys, time
t = time.monotonic()
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.sendmail("bench@sink.test", ["rcpt@sink.test"], b"Subject: idle probe\r\n\r\nprobe\r\n")
print("250 in %.1f ms" % (1000 * (time.monotonic() - t)))
PY
)
say "a new session sending one message meanwhile: $probe"
sleep "$HOLD"
c1=$(ticks "$ROUTER_PID")
hz=$(getconf CLK_TCK)
say "router CPU while they idle ($HOLD s): $(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$HOLD" 'BEGIN { printf "%.2f%% of one core", 100 * (b - a) / hz / s }')"
say "router RSS at the end: $(($(rss_kib "$ROUTER_PID") / 1024)) MiB"
exec 7>&-
for _ in $(seq 1 300); do kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
say "sessions still open when released: $(sed -n 's/^alive //p' "$DIR/client.out")"
cp "$DIR/result.txt" "$OUT"
echo "written to ${OUT#"$BENCH_ROOT"/}" >&2
