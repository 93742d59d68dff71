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
# exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=${SHOAL_BIN:-$ROOT/bin}
MSGS=10000 SESS=20 LEN=1024
while getopts "m:s:l:" o; do
	case $o in
	m) MSGS=$OPTARG ;;
	s) SESS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	*) echo "usage: $0 [-m MESSAGES] [-s SESSIONS] [-l BYTES]" >&2; exit 2 ;;
	esac
done
for p in smtp-source smtp-sink; do
	command -v $p >/dev/null || PATH=$PATH:/usr/sbin
	command -v $p >/dev/null || { echo "$p missing: make deps" >&2; exit 1; }
done
[ -x "$BIN/shoal-node" ] || { echo "build first: make" >&2; exit 1; }

DIR=$(mktemp -d /tmp/shoal-bench.XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
SINK=$(free_port) SMTP=$(free_port) P1=$(free_port) P2=$(free_port)

cat >"$DIR/shoal.conf" <<CONF
cluster: { name = "bench"; shards = 64; };
nodes = (
  { id = "n1"; endpoint = "tcp://127.0.0.1:$P1"; peer = "n2"; data_dir = "$DIR/n1"; },
  { id = "n2"; endpoint = "tcp://127.0.0.1:$P2"; peer = "n1"; data_dir = "$DIR/n2"; }
);
router: { hostname = "bench.local"; listen = ( { address = "127.0.0.1:$SMTP"; } ); };
delivery: {
  helo_name = "bench.local";
  routes = ( { domain = "sink.test"; host = "127.0.0.1:$SINK"; } );
  limits = ( { domain = "*"; max_connections = 20; max_msgs_per_conn = 1000; } );
};
log: { level = "warn"; };
CONF

SINK_USER=()
[ "$(id -u)" -eq 0 ] && SINK_USER=(-u nobody)
smtp-sink "${SINK_USER[@]}" 127.0.0.1:"$SINK" 256 2>"$DIR/sink.log" &
PIDS+=($!)
for n in n1 n2; do
	"$BIN/shoal-node" -c "$DIR/shoal.conf" -n $n 2>"$DIR/$n.log" &
	PIDS+=($!)
done
"$BIN/shoal-router" -c "$DIR/shoal.conf" 2>"$DIR/router.log" &
PIDS+=($!)
for _ in $(seq 1 100); do
	(exec 3<>/dev/tcp/127.0.0.1/"$SMTP") 2>/dev/null && break
	sleep 0.1
done

delivered() {
	cat "$DIR"/n1/delivery.log "$DIR"/n2/delivery.log 2>/dev/null |
		grep -c '"result":"delivered"' || true
}
now() { date +%s.%N; }

t0=$(now)
smtp-source -s "$SESS" -m "$MSGS" -l "$LEN" -f bench@sink.test \
	-t rcpt@sink.test 127.0.0.1:"$SMTP" 2>"$DIR/source.log" ||
	{ echo "smtp-source failed:" >&2; for f in "$DIR"/*.log; do echo "== $f"; tail -n 5 "$f"; done >&2; exit 1; }
t1=$(now)
deadline=$(( $(date +%s) + 600 ))
while [ "$(delivered)" -lt "$MSGS" ]; do
	[ "$(date +%s)" -lt $deadline ] || { echo "not all delivered after 600 s: $(delivered)/$MSGS" >&2; exit 1; }
	sleep 0.05
done
t2=$(now)

line=$(awk -v m="$MSGS" -v s="$SESS" -v l="$LEN" -v a="$t0" -v b="$t1" -v c="$t2" \
	-v host="$(hostname)" -v cpus="$(nproc)" -v when="$(date -u +%FT%TZ)" 'BEGIN {
	printf "%s host=%s cpus=%d messages=%d sessions=%d size=%d ingest_s=%.2f ingest_msg_s=%.0f e2e_s=%.2f e2e_msg_s=%.0f\n",
		when, host, cpus, m, s, l, b - a, m / (b - a), c - a, m / (c - a) }')
echo "$line"
mkdir -p "$ROOT/bench/results"
echo "$line" >>"$ROOT/bench/results/e2e.txt"
