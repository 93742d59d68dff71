#!/usr/bin/env bash
# Shoal against Postfix and against the ceiling, in one run on this machine:
#
#   ceiling  smtp-source -> smtp-sink
#   shoal    smtp-source -> shoal-router -> node pair (LMDB, fsync, sync
#            replication) -> smtp-sink (delivery.routes)
#   postfix  smtp-source -> private Postfix (its own config, queue and data
#            under a temp dir, smtpd on a free loopback port) -> smtp-sink
#            (relayhost)
#
# at 1 and 50 concurrent sessions with 1 KiB and 100 KiB messages.
# Ingest rate: messages / time until smtp-source finishes (every message
# answered 250). End-to-end rate: messages / time until smtp-sink has counted
# them all (smtp-sink -c, the same count for all three). Every system gets a
# fresh sink, a fresh queue and fresh processes for every measurement, and
# one second to settle after its SMTP port opens before the clock starts.
#
# Prints a table with the rates and the ratios Shoal/Postfix and
# Shoal/ceiling and writes it to bench/results/compare-<UTC time>.txt.
# Everything listens on 127.0.0.1 only, on free ports (never port 25); every
# process is stopped by PID at exit and the temp dir removed.
#
#   bench/compare.sh [-m N] [-M N] [-o N] [-O N] [-s "1 50"] [-d] [-t SECS] [-x LIST]
#
#   -m N     messages, 1 KiB, many sessions   (default 20000)
#   -M N     messages, 100 KiB, many sessions (default 5000)
#   -o N     messages, 1 KiB, 1 session       (default 3000)
#   -O N     messages, 100 KiB, 1 session     (default 1000)
#   -s LIST  session counts                   (default "1 50")
#   -z LIST  message sizes in bytes           (default "1024 102400")
#   -d       smtp-source -d: several messages per connection (default: one
#            connection per message, like bench/e2e.sh)
#   -t SECS  give up on a run whose sink count is short after SECS (default 300)
#   -x LIST  systems to run, of ceiling,shoal,postfix (default all three)
#   -k       keep the temp dir (logs, queues) instead of removing it
#   -L SECS  enqueue latency run length (default 10; 0: skip latency)
#
# Enqueue latency: after the rate runs of a row, each system (fresh again) gets
# bench/latency.py with the row's session count at half the ingest rate that
# system just reached (open loop: a fixed schedule, not as fast as it can),
# which records for every message the time from the final "." of DATA to the
# 250. The table shows p50/p99 in ms; the raw lines have p90, max, the rate
# achieved and the messages' lateness against the schedule.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

M_SMALL=20000 M_LARGE=5000 O_SMALL=3000 O_LARGE=1000
SESSIONS="1 50" REUSE=() TIMEOUT=300 SYSTEMS="ceiling,shoal,postfix" KEEP=0 LAT_SECS=10
SIZES="1024 102400"
usage() { sed -n '/^#   bench\/compare.sh/,/^#   -k/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "m:M:o:O:s:z:dt:x:kL:h" o; do
	case $o in
	m) M_SMALL=$OPTARG ;;
	M) M_LARGE=$OPTARG ;;
	o) O_SMALL=$OPTARG ;;
	O) O_LARGE=$OPTARG ;;
	s) SESSIONS=$OPTARG ;;
	z) SIZES=$OPTARG ;;
	d) REUSE=(-d) ;;
	t) TIMEOUT=$OPTARG ;;
	x) SYSTEMS=$OPTARG ;;
	k) KEEP=1 ;;
	L) LAT_SECS=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$M_SMALL" "$M_LARGE" "$O_SMALL" "$O_LARGE" "$TIMEOUT" $SESSIONS $SIZES; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $v" >&2; usage; }
done
[[ $LAT_SECS =~ ^[0-9]+$ ]] || { echo "not a number: $LAT_SECS" >&2; usage; }
for s in ${SYSTEMS//,/ }; do
	case $s in ceiling | shoal | postfix) ;; *) echo "unknown system: $s" >&2; usage ;; esac
done
has() { [[ ,$SYSTEMS, == *,$1,* ]]; }

bench_need smtp-source smtp-sink python3
LAT_PY=/usr/bin/python3
[ -x $LAT_PY ] || LAT_PY=python3
has postfix && bench_need postfix postconf postqueue
has shoal && bench_build
bench_init shoal-compare
if [ $KEEP -eq 1 ]; then
	trap 'bench_stop_all; echo "kept $BENCH_DIR" >&2' EXIT
fi

WHEN=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=$BENCH_ROOT/bench/results
OUT=$OUT_DIR/compare-$WHEN.txt
NOTES=()
note() { NOTES+=("$*"); echo "compare: $*" >&2; }

count_for() { # SESSIONS SIZE
	if [ "$1" -eq 1 ]; then
		[ "$2" -le 1024 ] && echo "$O_SMALL" || echo "$O_LARGE"
	else
		[ "$2" -le 1024 ] && echo "$M_SMALL" || echo "$M_LARGE"
	fi
}

size_name() { awk -v b="$1" 'BEGIN { if (b % 1024 == 0) printf "%dKiB", b / 1024; else printf "%dB", b }'; }

# run_one SYSTEM SESSIONS SIZE MESSAGES: sets RATE_IN and RATE_E2E (msgs/s,
# or "fail"), and one raw line in RAW.
declare -A RESULT
RAW=()
run_one() {
	local sys=$1 sess=$2 len=$3 msgs=$4 dir sink port t0 t1 t2 rc n deadline extra=""
	dir=$BENCH_DIR/$sys-$sess-$len
	mkdir -p "$dir"
	RESULT[$sys,$sess,$len,in]=fail RESULT[$sys,$sess,$len,e2e]=fail
	sink=$(free_port)
	sink_start "$sink" "$dir/sink.out" || { note "$sys sessions=$sess size=$len: smtp-sink did not start"; bench_stop_all; return 1; }
	case $sys in
	ceiling) port=$sink ;;
	shoal)
		port=$(free_port)
		shoal_conf "$dir" "$port" "$sink"
		shoal_start "$dir" "$port" || { note "shoal sessions=$sess size=$len: did not start"; bench_stop_all; return 1; }
		;;
	postfix)
		port=$(free_port)
		postfix_start "$dir/postfix" "$port" "$sink" || { note "postfix sessions=$sess size=$len: did not start"; bench_stop_all; return 1; }
		;;
	esac

	# Start-up is not measured: every system gets a second after its port
	# opens (the router may still be connecting to its nodes).
	sleep 1
	echo "compare: $sys sessions=$sess size=$len messages=$msgs ..." >&2
	t0=$(now)
	rc=0
	smtp-source "${REUSE[@]}" -s "$sess" -m "$msgs" -l "$len" -M bench.local \
		-f bench@sink.test -t rcpt@sink.test 127.0.0.1:"$port" \
		>"$dir/source.out" 2>"$dir/source.err" || rc=$?
	t1=$(now)
	if [ $rc -ne 0 ]; then
		note "$sys sessions=$sess size=$len: smtp-source exit $rc: $(tail -n 2 "$dir/source.err" | tr '\n' ' ')"
		bench_stop_all
		return 1
	fi
	[ -s "$dir/source.err" ] &&
		note "$sys sessions=$sess size=$len: smtp-source said: $(sort "$dir/source.err" | uniq -c | sort -rn | head -n 3 | tr '\n' ' ')"
	deadline=$(($(date +%s) + TIMEOUT))
	while n=$(sink_count "$dir/sink.out"); [ "$n" -lt "$msgs" ]; do
		if [ "$(date +%s)" -ge $deadline ]; then
			note "$sys sessions=$sess size=$len: only $n/$msgs at the sink after ${TIMEOUT}s"
			RESULT[$sys,$sess,$len,in]=$(awk -v m="$msgs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", m / (b - a) }')
			bench_stop_all
			return 1
		fi
		sleep 0.05
	done
	t2=$(now)

	# Sanity after the fact: nothing lost, nothing duplicated, no warnings.
	sleep 0.5
	n=$(sink_count "$dir/sink.out")
	[ "$n" -eq "$msgs" ] || note "$sys sessions=$sess size=$len: the sink counted $n messages for $msgs sent"
	case $sys in
	shoal)
		extra=" delivered_log=$(shoal_delivered "$dir")"
		local w
		w=$(cat "$dir"/n1.log "$dir"/n2.log "$dir"/router.log | grep -ciE 'warn|error|fatal' || true)
		[ "$w" -eq 0 ] || note "shoal sessions=$sess size=$len: $w warning/error lines in the node/router logs, e.g. $(grep -hiE 'warn|error|fatal' "$dir"/n1.log "$dir"/n2.log "$dir"/router.log | head -n 1)"
		;;
	postfix)
		postfix_queue_empty || note "postfix sessions=$sess size=$len: queue not empty after the sink had them all"
		local w
		w=$(grep -ciE 'warning|fatal|panic' "$dir/postfix/maillog" || true)
		extra=" maillog_warnings=$w"
		[ "$w" -eq 0 ] || note "postfix sessions=$sess size=$len: $w warning lines in its maillog, e.g. $(grep -iE 'warning|fatal|panic' "$dir/postfix/maillog" | head -n 1 | cut -d' ' -f5-)"
		;;
	esac
	bench_stop_all

	RESULT[$sys,$sess,$len,in]=$(awk -v m="$msgs" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", m / (b - a) }')
	RESULT[$sys,$sess,$len,e2e]=$(awk -v m="$msgs" -v a="$t0" -v c="$t2" 'BEGIN { printf "%.0f", m / (c - a) }')
	RAW+=("$(awk -v s="$sys" -v se="$sess" -v l="$len" -v m="$msgs" -v a="$t0" -v b="$t1" -v c="$t2" -v x="$extra" 'BEGIN {
		printf "%-8s sessions=%-3d size=%-6d messages=%-5d ingest_s=%.2f ingest_msg_s=%.0f e2e_s=%.2f e2e_msg_s=%.0f%s",
			s, se, l, m, b - a, m / (b - a), c - a, m / (c - a), x }')")
	echo "compare:   ${RAW[-1]}" >&2
}

# run_latency SYSTEM SESSIONS SIZE: bench/latency.py at half the system's
# ingest rate for this row, on a fresh system; sets RESULT[...,lat].
run_latency() {
	local sys=$1 sess=$2 len=$3 dir sink port peak rate msgs out line
	peak=${RESULT[$sys,$sess,$len,in]:-fail}
	[[ $peak =~ ^[0-9]+$ ]] || return 0
	rate=$((peak / 2))
	[ $rate -ge 1 ] || rate=1
	msgs=$((rate * LAT_SECS))
	[ $msgs -ge 100 ] || msgs=100
	dir=$BENCH_DIR/$sys-$sess-$len-latency
	mkdir -p "$dir"
	sink=$(free_port)
	sink_start "$sink" "$dir/sink.out" || { note "$sys latency: smtp-sink did not start"; bench_stop_all; return 1; }
	port=$(free_port)
	case $sys in
	shoal)
		shoal_conf "$dir" "$port" "$sink"
		shoal_start "$dir" "$port" || { note "shoal latency: did not start"; bench_stop_all; return 1; }
		;;
	postfix)
		postfix_start "$dir/postfix" "$port" "$sink" || { note "postfix latency: did not start"; bench_stop_all; return 1; }
		;;
	esac
	sleep 1
	echo "compare: $sys latency sessions=$sess size=$len rate=$rate/s messages=$msgs ..." >&2
	out=$($LAT_PY "$BENCH_ROOT/bench/latency.py" -p "$port" -s "$sess" -r "$rate" -n "$msgs" \
		-w $((rate < 200 ? rate : 200)) -l "$len" 2>"$dir/latency.err") ||
		note "$sys latency sessions=$sess size=$len: $(tail -c 300 "$dir/latency.err" | tr '\n' ' ') $out"
	bench_stop_all
	line=$(echo "$out" | tail -n 1)
	[[ $line == *p99_ms=* ]] || return 1
	RESULT[$sys,$sess,$len,lat]=$(echo "$line" | tr ' ' '\n' | awk -F= '$1 == "p50_ms" { a = $2 } $1 == "p99_ms" { b = $2 } END { print a "/" b }')
	RAW+=("$(printf "%-8s latency  sessions=%-3d size=%-6d %s" "$sys" "$sess" "$len" "$line")")
	echo "compare:   ${RAW[-1]}" >&2
}

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for sess in $SESSIONS; do
	for len in $SIZES; do
		msgs=$(count_for "$sess" "$len")
		for sys in ceiling shoal postfix; do
			has $sys || continue
			run_one "$sys" "$sess" "$len" "$msgs" || true
		done
		if [ "$LAT_SECS" -gt 0 ]; then
			for sys in shoal postfix; do
				has $sys || continue
				run_latency "$sys" "$sess" "$len" || true
			done
		fi
	done
done
ELAPSED=$(($(date +%s) - START))

ratio() { # A B FORMAT: A/B, or "-" when either is missing
	awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN {
		if (a !~ /^[0-9]+$/ || b !~ /^[0-9]+$/ || b == 0) { print "-"; exit }
		if (f == "pct") printf "%.0f%%", 100 * a / b; else printf "%.2fx", a / b }'
}
get() { echo "${RESULT[$1]:--}"; }

SHOAL_REV=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$BENCH_ROOT" diff --quiet HEAD 2>/dev/null || SHOAL_REV="$SHOAL_REV+dirty"
{
	echo "Shoal vs Postfix vs ceiling — $(date -u +%FT%TZ)"
	echo "host=$(hostname) cpus=$(nproc) kernel=$(uname -r) shoal=$SHOAL_REV postfix=$(postconf -dh mail_version 2>/dev/null || echo '?') run_s=$ELAPSED"
	echo "load average: at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (anything above 0 is other work sharing the CPUs)"
	echo "client: smtp-source, $([ ${#REUSE[@]} -gt 0 ] && echo 'several messages per connection (-d)' || echo 'one connection per message'), 1 recipient; sink: smtp-sink on loopback"
	echo "shoal: 1 router + node pair, sync replication, LMDB fsync, max_connections=20 to the sink"
	echo "postfix: private instance, defaults (in_flow_delay=1s, destination concurrency 20) + no DNS, no peername lookup, default_process_limit=150"
	echo "rates in messages/s; in = until smtp-source finished, e2e = until the sink counted them all"
	echo
	printf "%4s %6s %6s | %7s %7s | %7s %7s | %7s %7s | %7s %7s | %6s %6s | %s\n" \
		sess size msgs ceil_in ceil_e2e shoal_in shoal_e2e pfx_in pfx_e2e "S/P_in" "S/P_e2e" "S/C_in" "S/C_e2e" "p50/p99 ms: shoal postfix"
	for sess in $SESSIONS; do
		for len in $SIZES; do
			ci=$(get "ceiling,$sess,$len,in") ce=$(get "ceiling,$sess,$len,e2e")
			si=$(get "shoal,$sess,$len,in") se=$(get "shoal,$sess,$len,e2e")
			pi=$(get "postfix,$sess,$len,in") pe=$(get "postfix,$sess,$len,e2e")
			printf "%4d %6s %6d | %7s %7s | %7s %7s | %7s %7s | %7s %7s | %6s %6s | %s\n" \
				"$sess" "$(size_name "$len")" "$(count_for "$sess" "$len")" "$ci" "$ce" "$si" "$se" "$pi" "$pe" \
				"$(ratio "$si" "$pi" x)" "$(ratio "$se" "$pe" x)" "$(ratio "$si" "$ci" pct)" "$(ratio "$se" "$ce" pct)" \
				"$(get "shoal,$sess,$len,lat") $(get "postfix,$sess,$len,lat")"
		done
	done
	echo
	echo "S/P = Shoal/Postfix, S/C = Shoal/ceiling (same column: in vs in, e2e vs e2e)."
	echo "p50/p99 ms: enqueue latency (final \".\" of DATA to the 250, bench/latency.py) at half each system's"
	echo "own ingest rate in that row, same session count, one connection per session; see the raw lines."
	if [ ${#NOTES[@]} -gt 0 ]; then
		echo
		echo "notes:"
		for n in "${NOTES[@]}"; do echo "  - $n"; done
	fi
	echo
	echo "raw:"
	for r in "${RAW[@]}"; do echo "  $r"; done
} >"$BENCH_DIR/table.txt"
mkdir -p "$OUT_DIR"
cp "$BENCH_DIR/table.txt" "$OUT"
cat "$OUT"
echo "written to ${OUT#"$BENCH_ROOT"/}" >&2
