#!/usr/bin/env bash
# A local Shoal cluster on loopback: two node pairs (n1/n2, n3/n4), two
# routers, and a local MX: dnsmasq answers for demo.example (MX ->
# mx.demo.example -> 127.0.0.1) and Postfix's smtp-sink takes the mail and
# keeps each message as a file. The cluster resolves only through that
# dnsmasq, which knows no other domain: mail never leaves the machine.
#
#   deploy/local/cluster.sh up       start in the background
#   deploy/local/cluster.sh down     stop everything `up` started
#   deploy/local/cluster.sh status   what runs, and shoalctl status
#   deploy/local/cluster.sh run      up, show deliveries as they happen,
#                                    down on Ctrl-C (this is `make run`)
#
# State (config, data, logs, pids, delivered mail) lives in $SHOAL_DEMO_DIR
# (default ./run/demo). Ports: routers 2525 and 2526, nodes 7101-7104, node
# metrics 9101-9104, DNS 5354 (udp), MX sink 2625; SHOAL_DEMO_PORT_OFFSET=N
# adds N to each, for when they are taken.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BIN=${SHOAL_BIN:-$ROOT/bin}
DIR=${SHOAL_DEMO_DIR:-$ROOT/run/demo}
CONF=$DIR/shoal.conf
OFF=${SHOAL_DEMO_PORT_OFFSET:-0}
case "$OFF" in '' | *[!0-9]*) echo "SHOAL_DEMO_PORT_OFFSET: a number" >&2; exit 2 ;; esac
R1=$((2525 + OFF)) R2=$((2526 + OFF)) DNS=$((5354 + OFF)) MX=$((2625 + OFF))
NODES=(n1 n2 n3 n4)
# the programs in start order; down stops them in reverse
PROCS=(dnsmasq mx-sink n1 n2 n3 n4 router1 router2)

node_port() { echo $((7100 + OFF + ${1#n})); }
metrics_port() { echo $((9100 + OFF + ${1#n})); }

write_config() {
	local n peer rows=()
	for n in "${NODES[@]}"; do
		case $n in n1) peer=n2 ;; n2) peer=n1 ;; n3) peer=n4 ;; n4) peer=n3 ;; esac
		rows+=("  { id = \"$n\"; endpoint = \"tcp://127.0.0.1:$(node_port "$n")\"; peer = \"$peer\";
    data_dir = \"$DIR/$n\"; metrics = \"127.0.0.1:$(metrics_port "$n")\"; }")
	done
	mkdir -p "$DIR/logs"
	{
		echo 'cluster: { name = "demo"; shards = 64; };'
		echo 'nodes = ('
		local IFS=$'\n'
		printf '%s,\n' "${rows[@]:0:3}"
		printf '%s\n' "${rows[3]}"
		echo ');'
		cat <<CONF
router: {
  hostname = "mta.demo.example";
  listen = ( { address = "127.0.0.1:$R1"; } );
  relay_networks = [ "127.0.0.0/8", "::1/128" ];
  # mail from @demo.example is signed twice: RSA and Ed25519
  dkim = (
    { domain = "demo.example"; selector = "rsa2026"; key_file = "$DIR/dkim/rsa2026.pem"; },
    { domain = "demo.example"; selector = "ed2026"; key_file = "$DIR/dkim/ed2026.pem"; }
  );
};
delivery: {
  helo_name = "mta.demo.example";
  dns_servers = [ "127.0.0.1:$DNS" ];
  smtp_port = $MX;
  # the demo retries soon, so a deferred message is seen again quickly
  retry_schedule = [ 30, 60, 120 ];
};
CONF
	} >"$CONF"
	# the second router is the same cluster on another port
	sed "s/127.0.0.1:$R1\"/127.0.0.1:$R2\"/" "$CONF" >"$DIR/shoal-router2.conf"
}

pid_of() { # name: its pid if it runs
	local pid
	[ -e "$DIR/$1.pid" ] || return 1
	pid=$(cat "$DIR/$1.pid")
	kill -0 "$pid" 2>/dev/null && echo "$pid"
}

running() {
	local p
	for p in "${PROCS[@]}"; do pid_of "$p" >/dev/null && return 0; done
	return 1
}

wait_log() { # logfile pid pattern
	local i
	for i in $(seq 1 150); do
		grep -q "$3" "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || { echo "failed to start, log $1:"; cat "$1"; return 1; }
		sleep 0.1
	done
	echo "not ready after 15 s, log $1:"; cat "$1"; return 1
}

# Each program runs in a session of its own (setsid): Ctrl-C reaches this
# script only, and down stops the programs in order, routers first.
start() { # name ready-pattern command...
	local name=$1 ready=$2
	shift 2
	setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
	wait_log "$DIR/logs/$name.log" $! "$ready" || return 1
	echo "started $name (pid $(cat "$DIR/$name.pid"))"
}

sink_greets() (
	exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$MX" || exit 1
	line=""
	read -r -t 2 line <&3 || true
	[[ $line == "220 mx.demo.example"* ]]
)

# DKIM keys for demo.example (made once, kept in $DIR/dkim) and the
# dnsmasq options that publish their TXT records.
DKIM_TXT=()
dkim_keys() {
	local sel type doc
	mkdir -p "$DIR/dkim"
	DKIM_TXT=()
	for sel in rsa2026:rsa ed2026:ed25519; do
		type=${sel#*:} sel=${sel%%:*}
		if [ ! -e "$DIR/dkim/$sel.json" ]; then
			"$BIN/shoalctl" --json dkim keygen demo.example "$sel" \
				--type "$type" --out "$DIR/dkim/$sel.pem" --force \
				>"$DIR/dkim/$sel.json" || return 1
		fi
		doc=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(d["dns_name"].rstrip(".") + "," + ",".join(d["txt_strings"]))' \
			"$DIR/dkim/$sel.json") || return 1
		DKIM_TXT+=("--txt-record=$doc")
	done
}

start_mx() {
	local sbin=/usr/sbin user=()
	mkdir -p "$DIR/mail"
	if [ "$(id -u)" -eq 0 ]; then
		user=(-u nobody)
		chown nobody "$DIR/mail"
	fi
	start dnsmasq "started, version" "$sbin/dnsmasq" --no-daemon \
		--port="$DNS" --listen-address=127.0.0.1 --bind-interfaces \
		--no-resolv --no-hosts --conf-file=/dev/null --pid-file \
		--log-facility=- --log-queries --local=/demo.example/ \
		--mx-host=demo.example,mx.demo.example,10 \
		--host-record=mx.demo.example,127.0.0.1 "${DKIM_TXT[@]}" ||
		return 1
	# -d: each message it takes becomes a file under mail/
	setsid "$sbin/smtp-sink" "${user[@]}" -d "$DIR/mail/%Y%m%d-%H%M%S." \
		-h mx.demo.example "127.0.0.1:$MX" 64 \
		</dev/null >"$DIR/logs/mx-sink.log" 2>&1 &
	echo $! >"$DIR/mx-sink.pid"
	# ready when the greeting on the port is our sink's
	for _ in $(seq 1 50); do
		sink_greets && break
		pid_of mx-sink >/dev/null || break
		sleep 0.1
	done
	if ! sink_greets; then
		echo "mx-sink failed to start, log $DIR/logs/mx-sink.log:"
		cat "$DIR/logs/mx-sink.log"
		return 1
	fi
	echo "started mx-sink (pid $(cat "$DIR/mx-sink.pid"))"
}

up() {
	local n
	[ -x "$BIN/shoal-node" ] || { echo "build first: make" >&2; return 1; }
	rm -f "$DIR"/*.pid
	write_config
	dkim_keys || return 1
	start_mx || return 1
	for n in "${NODES[@]}"; do
		start "$n" "event=ready" "$BIN/shoal-node" -c "$CONF" -n "$n" ||
			return 1
	done
	start router1 "event=ready" "$BIN/shoal-router" -c "$CONF" || return 1
	start router2 "event=ready" "$BIN/shoal-router" \
		-c "$DIR/shoal-router2.conf" || return 1
	cat <<MSG

Shoal demo cluster is up: routers on 127.0.0.1:$R1 and 127.0.0.1:$R2,
nodes n1..n4 (pairs n1/n2 and n3/n4). Config: $CONF, logs: $DIR/logs/.
Mail to any address @demo.example goes to the local MX sink
(127.0.0.1:$MX), which keeps each message as a file in $DIR/mail/;
other domains are deferred, never sent off this machine.

Send a test mail (either router):
  swaks --server 127.0.0.1:$R1 --from you@demo.example --to friend@demo.example
  swaks --server 127.0.0.1:$R2 --from you@demo.example --to someone@elsewhere.example
Follow it:
  $BIN/shoalctl -c $CONF status
  $BIN/shoalctl -c $CONF queue list
  $BIN/shoalctl -c $CONF queue show QID
  cat $DIR/n*/delivery.log
  ls $DIR/mail/
  curl -s 127.0.0.1:$(metrics_port n1)/metrics
Mail from @demo.example is DKIM-signed (RSA and Ed25519; the keys' TXT
records are in the demo DNS). Check the signatures with an independent
verifier (python3-dkim):
  $ROOT/deploy/local/dkimverify.py --dns 127.0.0.1:$DNS $DIR/mail/*
MSG
}

down() {
	local i p pid stopped=0
	for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
		p=${PROCS[i]}
		if pid=$(pid_of "$p"); then
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			if kill -0 "$pid" 2>/dev/null; then
				echo "$p (pid $pid) did not stop in 5 s: killed"
				kill -9 "$pid" 2>/dev/null || true
			fi
			stopped=$((stopped + 1))
		fi
		rm -f "$DIR/$p.pid"
	done
	if [ "$stopped" -eq 0 ]; then
		echo "the demo cluster in $DIR is not running"
	else
		echo "demo cluster stopped ($stopped processes); its data stays in $DIR"
	fi
}

status() {
	local p pid
	running || { echo "the demo cluster in $DIR is not running"; return 1; }
	for p in "${PROCS[@]}"; do
		if pid=$(pid_of "$p"); then echo "$p: running (pid $pid)"
		else echo "$p: not running"; fi
	done
	echo
	"$BIN/shoalctl" -c "$CONF" status
}

# One line per delivery attempt, from every node's delivery log. Sets
# FOLLOW to the pid of the tail, which stop_run ends (and which ends by
# itself when this script is gone: --pid); sed ends with it.
follow() {
	local n logs=()
	for n in "${NODES[@]}"; do logs+=("$DIR/$n/delivery.log"); done
	echo "Deliveries as they happen (Ctrl-C stops the cluster):"
	tail -q -n0 -F --pid=$$ "${logs[@]}" 2>/dev/null > >(
		sed -E -u 's/.*"qid":"([^"]*)","rcpt":"([^"]*)".*"mx":"([^"]*)".*"attempt":([0-9]+),"result":"([^"]*)","code":([0-9]+),"enhanced":"([^"]*)","text":"([^"]{0,60}).*/  \5: \1 to <\2> mx=\3 attempt=\4: \6 \7 \8/') &
	FOLLOW=$!
}

stop_run() {
	# a second Ctrl-C must not cut the stop short, nor a reader of our
	# output that the same Ctrl-C ended (`make run | tee log`)
	trap '' INT TERM PIPE
	[ -z "${FOLLOW:-}" ] || kill "$FOLLOW" 2>/dev/null || true
	if ! { echo; } 2>/dev/null; then
		exec >/dev/null 2>&1
	fi
	down
	exit 0
}

# Start, or on a failure stop what did start. A running cluster is left
# alone.
start_all() {
	if running; then
		echo "the demo cluster in $DIR is already running (cluster.sh down stops it)" >&2
		exit 1
	fi
	up || { echo "the demo cluster did not start; stopping what did"; down >/dev/null; exit 1; }
}

case "${1:-}" in
up) start_all ;;
down) down ;;
status) status ;;
run)
	trap stop_run INT TERM HUP
	start_all
	echo
	follow
	wait
	;;
*) echo "usage: $0 up|down|status|run" >&2; exit 2 ;;
esac
