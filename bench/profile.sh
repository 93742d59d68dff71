#!/usr/bin/env bash
# Profile one Shoal program on the ingest + delivery path under a fixed
# message count, so that two runs (before and after a change) compare:
#
#   bench/profile.sh -t cpu|strace|callgrind|perf [-p router|n1|n2] [-m N] [-s N] [-l BYTES] [-o DIR]
#
#   -t TOOL  cpu: user and system CPU seconds of every process (router,
#            n1, n2, smtp-sink, smtp-source), no tool in the way;
#            strace: syscall counts (strace -c -f) of the program;
#            callgrind: valgrind --tool=callgrind, instruction counts;
#            perf: perf record -g at full speed, user and kernel time by
#            function (what callgrind cannot see: the kernel's share)
#   -p PROG  router (default), n1 (the primary of about half the shards and
#            the replica of the rest) or n2
#   -m N     messages (default 2000), -s N sessions (default 20),
#            -l BYTES message size (default 1024)
#   -o DIR   keep the profile output there (default: print a summary only)
#
# The summary: strace's table, or callgrind_annotate's top functions (with
# inclusive counts) and the total instructions, also divided per message.
# Instruction counts are stable under load (unlike times); start-up and
# shutdown are included in them, so compare runs with the same -m.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
TOOL="" PROG=router MSGS=2000 SESS=20 LEN=1024 KEEPDIR=""
while getopts "t:p:m:s:l:o:" o; do
	case $o in
	t) TOOL=$OPTARG ;;
	p) PROG=$OPTARG ;;
	m) MSGS=$OPTARG ;;
	s) SESS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	o) KEEPDIR=$OPTARG ;;
	*) sed -n '/^#   bench\/profile.sh/,/^#   -o/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
case $TOOL in cpu | strace | callgrind | perf) ;; *) echo "-t cpu|strace|callgrind|perf" >&2; exit 2 ;; esac
case $PROG in router | n1 | n2) ;; *) echo "-p router|n1|n2" >&2; exit 2 ;; esac
bench_need smtp-source smtp-sink python3
[ "$TOOL" = callgrind ] && bench_need valgrind callgrind_annotate
[ "$TOOL" = strace ] && bench_need strace
[ "$TOOL" = perf ] && bench_need perf
bench_build
bench_init shoal-profile
DIR=$BENCH_DIR
OUTF=$DIR/profile.out
case $TOOL in
cpu) WRAP=() ;;
strace) WRAP=(strace -c -f -o "$OUTF") ;;
callgrind) WRAP=(valgrind --tool=callgrind --callgrind-out-file="$OUTF" -q) ;;
perf) WRAP=(perf record -q -F 2999 -g -o "$OUTF") ;;
esac
case $PROG in
router) WRAP_ROUTER=("${WRAP[@]}") ;;
n1) WRAP_N1=("${WRAP[@]}") ;;
n2) WRAP_N2=("${WRAP[@]}") ;;
esac

bench_pair_start "$DIR"
sleep 2
# cpu_of PID: utime+stime in seconds (fields 14 and 15 of /proc/PID/stat).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "user=%.2f sys=%.2f", $12 / hz, $13 / hz }' "/proc/$1/stat"; }
t0=$(now)
/usr/bin/time -f "%U %S" -o "$DIR/source.time" smtp-source -s "$SESS" -m "$MSGS" -l "$LEN" -f bench@sink.test \
	-t rcpt@sink.test 127.0.0.1:"$SMTP" 2>"$DIR/source.log" ||
	{ echo "smtp-source failed:" >&2; tail -n 5 "$DIR"/*.log >&2; exit 1; }
deadline=$(($(date +%s) + 600))
while [ "$(sink_count "$DIR/sink.out")" -lt "$MSGS" ]; do
	[ "$(date +%s)" -lt $deadline ] || { echo "only $(sink_count "$DIR/sink.out")/$MSGS at the sink" >&2; exit 1; }
	sleep 0.1
done
t1=$(now)
if [ "$TOOL" = cpu ]; then
	echo "CPU seconds, $MSGS messages of $LEN bytes, $SESS sessions, $(awk -v a="$t0" -v b="$t1" -v m="$MSGS" 'BEGIN { printf "%.2f s wall, %.0f msg/s end to end", b - a, m / (b - a) }'):"
	echo "  router      $(cpu_of "$ROUTER_PID")"
	echo "  n1          $(cpu_of "$N1_PID")"
	echo "  n2          $(cpu_of "$N2_PID")"
	echo "  smtp-sink   $(cpu_of "${PIDS[0]}")"
	echo "  smtp-source $(awk '{ printf "user=%.2f sys=%.2f", $1, $2 }' "$DIR/source.time")"
	# group commit: batches, items per batch, explicit syncs
	for n in n1 n2; do
		port=N1_METRICS
		[ $n = n2 ] && port=N2_METRICS
		curl -s "http://127.0.0.1:${!port}/metrics" | awk -v n=$n '
			/^shoal_store_commits_total / { b = $2 }
			/^shoal_store_commit_items_total / { i = $2 }
			/^shoal_store_syncs_total / { s = $2 }
			END { if (b > 0) printf "  %s commits=%d items/commit=%.1f extra_syncs=%d\n", n, b, i / b, s }'
	done
	exit 0
fi
sleep 1
case $PROG in router) pid=$ROUTER_PID ;; n1) pid=$N1_PID ;; n2) pid=$N2_PID ;; esac
# SIGTERM to the program under the tool (the tool's child), so it exits
# cleanly and the tool writes its output.
child=$(pgrep -P "$pid" | head -n 1 || true)
[ "$TOOL" = callgrind ] && child=$pid # valgrind runs the program in its own process
kill "${child:-$pid}" 2>/dev/null || true
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
bench_stop_all
[ -s "$OUTF" ] || { echo "no profile output" >&2; exit 1; }
case $TOOL in
strace)
	echo "strace -c -f of $PROG, $MSGS messages of $LEN bytes, $SESS sessions:"
	head -n 40 "$OUTF" || true
	;;
callgrind)
	total=$(callgrind_annotate "$OUTF" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
	echo "callgrind of $PROG, $MSGS messages of $LEN bytes, $SESS sessions: Ir=$total ($(awk -v t="$total" -v m="$MSGS" 'BEGIN { printf "%.0f", t / m }') per message)"
	# (head closes the pipe early: not a failure)
	{ callgrind_annotate --inclusive=yes "$OUTF" 2>/dev/null | sed -n '/file:function/,$p' | head -n 45; } || true
	echo "--- self"
	{ callgrind_annotate "$OUTF" 2>/dev/null | sed -n '/file:function/,$p' | head -n 30; } || true
	;;
esac
if [ -n "$KEEPDIR" ]; then
	mkdir -p "$KEEPDIR"
	cp "$OUTF" "$KEEPDIR/$TOOL-$PROG.out"
	echo "kept $KEEPDIR/$TOOL-$PROG.out" >&2
fi
