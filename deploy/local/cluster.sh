#!/usr/bin/env bash
# A local Shoal cluster on loopback: two node pairs, two routers, and a
# local MX: dnsmasq answers for demo.example (MX -> 127.0.0.1) and Postfix's
# smtp-sink takes the mail on port 2625. The cluster resolves only through
# that dnsmasq, which knows no other domain: mail never leaves the machine.
#   deploy/local/cluster.sh up       start in the background
#   deploy/local/cluster.sh down     stop everything started by `up`
#   deploy/local/cluster.sh status   shoalctl status
#   deploy/local/cluster.sh run      start, wait for Ctrl-C, stop (make run)
# State (config, data, logs, pids) lives in $SHOAL_DEMO_DIR (default
# ./run/demo). Ports: routers 2525/2526, nodes 7101-7104, DNS 5354 (udp),
# MX sink 2625.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN=${SHOAL_BIN:-$ROOT/bin}
DIR=${SHOAL_DEMO_DIR:-$ROOT/run/demo}
CONF=$DIR/shoal.conf

write_config() {
	mkdir -p "$DIR/logs"
	cat >"$CONF" <<CONF
cluster: { name = "demo"; shards = 64; };
nodes = (
  { id = "n1"; endpoint = "tcp://127.0.0.1:7101"; peer = "n2"; data_dir = "$DIR/n1"; },
  { id = "n2"; endpoint = "tcp://127.0.0.1:7102"; peer = "n1"; data_dir = "$DIR/n2"; },
  { id = "n3"; endpoint = "tcp://127.0.0.1:7103"; peer = "n4"; data_dir = "$DIR/n3"; },
  { id = "n4"; endpoint = "tcp://127.0.0.1:7104"; peer = "n3"; data_dir = "$DIR/n4"; }
);
router: {
  hostname = "mta.demo.example";
  listen = ( { address = "127.0.0.1:2525"; } );
  relay_networks = [ "127.0.0.0/8", "::1/128" ];
};
delivery: {
  helo_name = "mta.demo.example";
  dns_servers = [ "127.0.0.1:5354" ];
  smtp_port = 2625;
};
CONF
}

start_mx() {
	local sbin=/usr/sbin user=()
	[ "$(id -u)" -eq 0 ] && user=(-u nobody)
	"$sbin/dnsmasq" --no-daemon --port=5354 --listen-address=127.0.0.1 \
		--bind-interfaces --no-resolv --no-hosts --conf-file=/dev/null \
		--pid-file --log-facility=- --log-queries \
		--local=/demo.example/ \
		--mx-host=demo.example,mx.demo.example,10 \
		--host-record=mx.demo.example,127.0.0.1 \
		</dev/null >"$DIR/logs/dnsmasq.log" 2>&1 &
	echo $! >"$DIR/dnsmasq.pid"
	"$sbin/smtp-sink" "${user[@]}" -c -h mx.demo.example 127.0.0.1:2625 64 \
		</dev/null >"$DIR/logs/mx-sink.log" 2>&1 &
	echo $! >"$DIR/mx-sink.pid"
	echo "started dnsmasq (pid $(cat "$DIR/dnsmasq.pid")) and the MX sink (pid $(cat "$DIR/mx-sink.pid"))"
}

wait_ready() { # logfile pid
	local i
	for i in $(seq 1 100); do
		grep -q 'event=ready' "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || { echo "failed to start, log:"; cat "$1"; return 1; }
		sleep 0.1
	done
	echo "not ready after 10 s, log:"; cat "$1"; return 1
}

start() { # name, command...
	local name=$1; shift
	"$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
	wait_ready "$DIR/logs/$name.log" "$!"
	echo "started $name (pid $(cat "$DIR/$name.pid"))"
}

up() {
	[ -x "$BIN/shoal-node" ] || { echo "build first: make"; exit 1; }
	write_config
	start_mx
	for n in n1 n2 n3 n4; do start "$n" "$BIN/shoal-node" -c "$CONF" -n "$n"; done
	start router1 "$BIN/shoal-router" -c "$CONF"
	sed 's/127.0.0.1:2525/127.0.0.1:2526/' "$CONF" >"$DIR/shoal-r2.conf"
	start router2 "$BIN/shoal-router" -c "$DIR/shoal-r2.conf"
	cat <<MSG

Shoal demo cluster is up: routers on 127.0.0.1:2525 and 127.0.0.1:2526,
nodes n1..n4 (two pairs). Config: $CONF, logs: $DIR/logs/.
Mail to any address @demo.example is delivered to the local MX sink
(127.0.0.1:2625); other domains are deferred, never sent off this machine.

Send a test mail:
  swaks --server 127.0.0.1:2525 --from you@demo.example --to friend@demo.example
See its delivery:
  cat $DIR/n*/delivery.log
Follow it:
  $BIN/shoalctl -c $CONF queue list
  $BIN/shoalctl -c $CONF queue show QID
  $BIN/shoalctl -c $CONF status
MSG
}

down() {
	local f pid
	for f in "$DIR"/*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	echo "demo cluster stopped"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) "$BIN/shoalctl" -c "$CONF" status ;;
run)
	trap 'echo; down; exit 0' INT TERM
	up
	echo; echo "Ctrl-C stops the cluster."
	while sleep 1; do :; done
	;;
*) echo "usage: $0 up|down|status|run" >&2; exit 2 ;;
esac
