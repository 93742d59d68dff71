#!/usr/bin/env bash
# Two builds of Shoal against each other, taking turns, so that load from
# elsewhere on the machine falls on both alike:
#
#   bench/ab.sh A_BIN B_BIN [-r ROUNDS] [-m N] [-s N] [-l BYTES] [-a CONF] [-b CONF]
#
# A_BIN and B_BIN are directories holding shoal-node and shoal-router (for
# an older commit: git archive REV | tar -x -C DIR, make -C DIR). Each round
# runs bench/profile.sh -t cpu once with A, then once with B (default 3
# rounds of 10,000 1 KiB messages over 50 sessions): end-to-end rate and
# CPU seconds of every process. -a / -b append CONF (config lines) to A's /
# B's shoal.conf, so one build can be A/B'd against itself with a setting
# changed. Writes bench/results/ab-<UTC time>.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { sed -n '/^#   bench\/ab.sh/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd)
shift 2
ROUNDS=3 MSGS=10000 SESS=50 LEN=1024 CONF_A="" CONF_B=""
while getopts "r:m:s:l:a:b:" o; do
	case $o in
	r) ROUNDS=$OPTARG ;;
	m) MSGS=$OPTARG ;;
	s) SESS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	a) CONF_A=$OPTARG ;;
	b) CONF_B=$OPTARG ;;
	*) exit 2 ;;
	esac
done
for v in "$ROUNDS" "$MSGS" "$SESS" "$LEN"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $v" >&2; exit 2; }
done
for d in "$A" "$B"; do
	[ -x "$d/shoal-node" ] && [ -x "$d/shoal-router" ] || { echo "$d: no shoal-node/shoal-router" >&2; exit 1; }
done
OUT=$HERE/results/ab-$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p "$HERE/results"
{
	echo "Shoal A/B — $(date -u +%FT%TZ), $ROUNDS rounds of $MSGS messages of $LEN bytes over $SESS sessions, taking turns"
	echo "A=$A"
	echo "B=$B"
	[ -z "$CONF_A" ] || echo "A conf: $CONF_A"
	[ -z "$CONF_B" ] || echo "B conf: $CONF_B"
	for i in $(seq 1 "$ROUNDS"); do
		for x in A B; do
			if [ $x = A ]; then d=$A c=$CONF_A; else d=$B c=$CONF_B; fi
			echo "== round $i $x (load $(cut -d' ' -f1 /proc/loadavg))"
			BENCH_CONF=$c SHOAL_BIN=$d "$HERE/profile.sh" -t cpu -m "$MSGS" -s "$SESS" -l "$LEN" 2>&1
		done
	done
} | tee "$OUT"
echo "written to bench/results/${OUT##*/}" >&2
