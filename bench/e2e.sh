#!/usr/bin/env bash
# Shoal's ingest and end-to-end rates on this machine, in one run:
#   smtp-source -> shoal-router -> node pair (LMDB, fsync) -> smtp-sink
#
#   bench/e2e.sh [-m MESSAGES] [-s SESSIONS] [-l BYTES]
#
# Ingest rate: messages / time until smtp-source finishes (every message
# answered 250, so fsync'd on its node). End-to-end rate: messages / time
# until every message is in the nodes' delivery logs as delivered to the
# sink. Prints one result line and appends it to bench/results/e2e.txt.
# Everything runs on loopback on free ports; all processes are stopped at
# exit. bench/compare.sh measures the same against Postfix and the ceiling.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
MSGS=10000 SESS=20 LEN=1024
while getopts "m:s:l:" o; do
	case $o in
	m) MSGS=$OPTARG ;;
	s) SESS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	*) echo "usage: $0 [-m MESSAGES] [-s SESSIONS] [-l BYTES]" >&2; exit 2 ;;
	esac
done
bench_need smtp-source smtp-sink python3
bench_build
bench_init shoal-bench
DIR=$BENCH_DIR

bench_pair_start "$DIR"

t0=$(now)
smtp-source -s "$SESS" -m "$MSGS" -l "$LEN" -f bench@sink.test \
	-t rcpt@sink.test 127.0.0.1:"$SMTP" 2>"$DIR/source.log" ||
	{ echo "smtp-source failed:" >&2; for f in "$DIR"/*.log; do echo "== $f"; tail -n 5 "$f"; done >&2; exit 1; }
t1=$(now)
deadline=$(( $(date +%s) + 600 ))
while [ "$(shoal_delivered "$DIR")" -lt "$MSGS" ]; do
	[ "$(date +%s)" -lt $deadline ] || { echo "not all delivered after 600 s: $(shoal_delivered "$DIR")/$MSGS" >&2; exit 1; }
	sleep 0.05
done
t2=$(now)

line=$(awk -v m="$MSGS" -v s="$SESS" -v l="$LEN" -v a="$t0" -v b="$t1" -v c="$t2" \
	-v host="$(hostname)" -v cpus="$(nproc)" -v when="$(date -u +%FT%TZ)" 'BEGIN {
	printf "%s host=%s cpus=%d messages=%d sessions=%d size=%d ingest_s=%.2f ingest_msg_s=%.0f e2e_s=%.2f e2e_msg_s=%.0f\n",
		when, host, cpus, m, s, l, b - a, m / (b - a), c - a, m / (c - a) }')
echo "$line"
mkdir -p "$BENCH_ROOT/bench/results"
echo "$line" >>"$BENCH_ROOT/bench/results/e2e.txt"
