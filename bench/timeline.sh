#!/usr/bin/env bash
# Where a single client's enqueue latency goes: the router and the node
# pair under `perf trace` (syscalls only, no ptrace stops) while one
# session sends messages one after another, then bench/timeline.py splits
# each message's time from the end of its DATA to its 250 into steps
# (primary's commit, the batch to the replica, the replica's two syncs,
# the ack, the answer):
#
#   bench/timeline.sh [-m N] [-l BYTES] [-S SHOW] [-o DIR]
#
#   -m N      messages traced (default 300, after 200 not traced)
#   -l BYTES  message size (default 1024)
#   -S SHOW   also print the syscalls of the first SHOW messages
#   -o DIR    keep the trace there
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
MSGS=300 LEN=1024 SHOW=0 KEEPDIR=""
while getopts "m:l:S:o:" o; do
	case $o in
	m) MSGS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	S) SHOW=$OPTARG ;;
	o) KEEPDIR=$OPTARG ;;
	*) sed -n '/^#   bench\/timeline.sh/,/^#   -o/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
bench_need smtp-source smtp-sink python3 perf
bench_build
bench_init shoal-timeline
DIR=$BENCH_DIR
bench_pair_start "$DIR"
source_run() {
	smtp-source -s 1 -m "$1" -l "$LEN" -f bench@sink.test -t rcpt@sink.test \
		127.0.0.1:"$SMTP" 2>>"$DIR/source.log"
}
source_run 200 # warm: the pair healthy, the sink's connections open
for p in router:$ROUTER_PID n1:$N1_PID n2:$N2_PID; do
	for t in /proc/"${p#*:}"/task/*; do echo "${p%%:*} ${t##*/}"; done
done >"$DIR/tids"
perf trace -e fdatasync,sendto,recvfrom,readv,writev,pwrite64 \
	--pid "$ROUTER_PID,$N1_PID,$N2_PID" -o "$DIR/trace.txt" 2>"$DIR/perf.log" &
PERF=$!
# perf trace attaches before it writes its first line; the first node
# heartbeat (every 100 ms by default) shows it is on
for _ in $(seq 1 100); do
	[ -s "$DIR/trace.txt" ] && break
	sleep 0.05
done
source_run "$MSGS"
kill -INT "$PERF"
wait "$PERF" || true
python3 "$(dirname "$0")/timeline.py" "$DIR/trace.txt" "$DIR/tids" \
	--size "$LEN" --show "$SHOW"
if [ -n "$KEEPDIR" ]; then
	mkdir -p "$KEEPDIR"
	cp "$DIR/trace.txt" "$DIR/tids" "$KEEPDIR/"
	echo "kept $KEEPDIR/trace.txt" >&2
fi
