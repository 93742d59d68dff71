# shellcheck shell=bash
# Shared by the bench/ scripts; source it, do not run it.
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init shoal-bench        # temp dir in $BENCH_DIR, exit trap
#
# Every process started here is recorded by PID and stopped by PID
# (bench_stop_all, also run by the exit trap); a private Postfix instance is
# stopped with "postfix -c DIR stop" and then by its master's process group.
# Everything listens on 127.0.0.1 only, on free ports.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${SHOAL_BIN:-$BENCH_ROOT/bin}
BENCH_DIR=""
PIDS=()
WRAP_N1=() WRAP_N2=() WRAP_ROUTER=()
ROUTER_PID="" N1_PID="" N2_PID=""
POSTFIX_CONF=""

bench_need() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null || PATH=$PATH:/usr/sbin
		command -v "$p" >/dev/null || { echo "$p missing: deploy/install-deps.sh" >&2; exit 1; }
	done
}

# bench_positive N...: exit 2 unless every argument is a positive integer.
bench_positive() {
	local v
	for v in "$@"; do
		[[ $v =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $v" >&2; exit 2; }
	done
}

# bench_build: make -j2 when a binary is missing; retries a failed build
# (others may be editing sources) a few times, a minute apart.
bench_build() {
	local b try
	for b in shoal-node shoal-router; do
		[ -x "$BIN/$b" ] && continue
		for try in 1 2 3 4; do
			echo "bench: building (make -j2), attempt $try" >&2
			make -C "$BENCH_ROOT" -j2 >&2 && break
			[ $try -lt 4 ] || { echo "bench: build failed" >&2; exit 1; }
			sleep 60
		done
	done
}

bench_init() {
	BENCH_DIR=$(mktemp -d "/tmp/${1:-shoal-bench}.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# On failure the directory (logs, queues) stays for a look.
bench_cleanup() {
	local rc=$?
	bench_stop_all
	if [ "$rc" -ne 0 ] && [ -n "$BENCH_DIR" ]; then
		echo "exit $rc: logs kept in $BENCH_DIR" >&2
	elif [ -n "$BENCH_DIR" ]; then
		rm -rf "$BENCH_DIR"
	fi
	BENCH_DIR=""
}

# stop_pid PID: SIGTERM, up to 5 s grace, then SIGKILL.
stop_pid() {
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}

bench_stop_all() {
	local pid
	[ -n "$POSTFIX_CONF" ] && postfix_stop
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	PIDS=()
}

# free_port: a port free on 127.0.0.1 a moment ago, and never one this
# script was already given: bind(0) and close hands the same port out again
# while nothing listens on it yet (a sink and a node's metrics once got the
# same one). The ports given out are kept in the run's directory.
free_port() {
	python3 - "${BENCH_DIR:?free_port needs bench_init}/.ports" <<'PY'
import os, socket, sys
path = sys.argv[1]
given = set(open(path).read().split()) if os.path.exists(path) else set()
for _ in range(100):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
    s.close()
    if port not in given:
        open(path, "a").write(port + "\n")
        print(port)
        sys.exit(0)
sys.exit("no free port")
PY
}

# wait_port PORT [TENTHS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
	for _ in $(seq 1 "${2:-100}"); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

now() { date +%s.%N; }

# sink_start PORT OUT: smtp-sink on 127.0.0.1:PORT, running counters in OUT.
sink_start() {
	local user=()
	[ "$(id -u)" -eq 0 ] && user=(-u nobody)
	smtp-sink -c "${user[@]}" 127.0.0.1:"$1" 256 >"$2" 2>"$2.err" &
	PIDS+=($!)
	wait_port "$1" || { echo "smtp-sink did not start" >&2; cat "$2.err" >&2; return 1; }
}

# sink_count OUT: messages received so far (the "mesg=" counter of smtp-sink -c).
sink_count() {
	local n
	n=$(tail -c 200 "$1" 2>/dev/null | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n 1)
	echo "${n:-0}"
}

# shoal_conf DIR SMTP_PORT SINK_PORT: writes DIR/shoal.conf for one router and
# a node pair (sync replication, fsync) routing sink.test to the sink; with
# HTTP_PORT set, the router's HTTP API listens there too; BENCH_CONF (if
# set) is appended, so a setting can be A/B'd (bench/ab.sh -c);
# BENCH_DELIVERY (if set) replaces the routes and limits lines of delivery
# (libconfig refuses a second delivery group, so BENCH_CONF cannot).
shoal_conf() {
	local dir=$1 smtp=$2 sink=$3 p1 p2 http="" dlv
	p1=$(free_port) p2=$(free_port)
	dlv="  routes = ( { domain = \"sink.test\"; host = \"127.0.0.1:$sink\"; } );
  limits = ( { domain = \"*\"; max_connections = 20; max_msgs_per_conn = 1000; } );"
	[ -n "${BENCH_DELIVERY:-}" ] && dlv=$BENCH_DELIVERY
	[ -n "${HTTP_PORT:-}" ] && http="http_listen = ( { address = \"127.0.0.1:$HTTP_PORT\"; } );"
	# metrics (read only when asked: bench/profile.sh -t cpu)
	N1_METRICS=$(free_port) N2_METRICS=$(free_port)
	cat >"$dir/shoal.conf" <<CONF
cluster: { name = "bench"; shards = 64; };
nodes = (
  { id = "n1"; endpoint = "tcp://127.0.0.1:$p1"; peer = "n2"; data_dir = "$dir/n1"; metrics = "127.0.0.1:$N1_METRICS"; },
  { id = "n2"; endpoint = "tcp://127.0.0.1:$p2"; peer = "n1"; data_dir = "$dir/n2"; metrics = "127.0.0.1:$N2_METRICS"; }
);
router: { hostname = "bench.local"; listen = ( { address = "127.0.0.1:$smtp"; } ); $http };
delivery: {
  helo_name = "bench.local";
$dlv
};
replication: { mode = "sync"; };
log: { level = "warn"; };
${BENCH_CONF:-}
CONF
}

# shoal_start DIR SMTP_PORT: the node pair and a router on DIR/shoal.conf.
# WRAP_N1, WRAP_N2, WRAP_ROUTER (arrays, may be unset): a command to run
# that program under (strace, valgrind); bench/profile.sh sets them.
shoal_start() {
	local dir=$1 n
	n1_start "$dir"
	n2_start "$dir"
	"${WRAP_ROUTER[@]}" "$BIN/shoal-router" -c "$dir/shoal.conf" 2>"$dir/router.log" &
	PIDS+=($!) ROUTER_PID=$!
	wait_port "$2" 300 || { echo "shoal-router did not listen" >&2; tail -n 5 "$dir"/*.log >&2; return 1; }
}

# bench_pair_start DIR: free ports SINK and SMTP, DIR/shoal.conf, the
# sink and the cluster (the start of every bench that needs nothing else).
bench_pair_start() {
	SINK=$(free_port) SMTP=$(free_port)
	shoal_conf "$1" "$SMTP" "$SINK"
	sink_start "$SINK" "$1/sink.out"
	shoal_start "$1" "$SMTP"
}

# n1_start DIR / n2_start DIR: one node of the pair; sets N1_PID / N2_PID.
n1_start() {
	"${WRAP_N1[@]}" "$BIN/shoal-node" -c "$1/shoal.conf" -n n1 2>>"$1/n1.log" &
	PIDS+=($!) N1_PID=$!
}
n2_start() {
	"${WRAP_N2[@]}" "$BIN/shoal-node" -c "$1/shoal.conf" -n n2 2>>"$1/n2.log" &
	PIDS+=($!) N2_PID=$!
}

# shoal_delivered DIR: delivery.log lines with "result":"delivered".
shoal_delivered() {
	cat "$1"/n1/delivery.log "$1"/n2/delivery.log 2>/dev/null |
		grep -c '"result":"delivered"' || true
}

# postfix_start DIR SMTP_PORT SINK_PORT: a private Postfix instance entirely
# under DIR (config, queue, data, log), smtpd on 127.0.0.1:SMTP_PORT only,
# relaying everything to [127.0.0.1]:SINK_PORT; no local delivery, no DNS,
# no port 25, the system /etc/postfix untouched (read only: postfix-files).
postfix_start() {
	local dir=$1 smtp=$2 sink=$3 conf=$1/etc
	# postfix chdirs to the queue first; post-install creates the rest
	# (data_directory owned by the postfix user).
	mkdir -p "$conf" "$dir/queue"
	# mktemp dirs are 0700; the postfix user must reach its queue.
	local d=$dir
	chmod 755 "$d"
	while [[ -n $BENCH_DIR && $d == "$BENCH_DIR"/* ]]; do
		d=$(dirname "$d")
		chmod 755 "$d"
	done
	cat >"$conf/main.cf" <<CF
compatibility_level = 3.6
config_directory = $conf
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = postfix.bench.local
mydomain = bench.local
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$sink
smtp_host_lookup = native
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
default_process_limit = 150
CF
	cat >"$conf/master.cf" <<CF
127.0.0.1:$smtp inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
	# Guard: nothing but our loopback port is an inet service.
	if postconf -c "$conf" -M | awk '$2 == "inet"' | grep -v "^127.0.0.1:$smtp " | grep -q .; then
		echo "postfix: refusing a master.cf with another inet service" >&2
		return 1
	fi
	POSTFIX_CONF=$conf
	postfix -c "$conf" start >"$dir/start.log" 2>&1 ||
		{ echo "postfix did not start:" >&2; cat "$dir/start.log" "$dir/maillog" >&2 2>/dev/null; return 1; }
	wait_port "$smtp" || { echo "postfix smtpd did not listen" >&2; tail -n 20 "$dir/maillog" >&2; return 1; }
}

# postfix_queue_empty: 0 when the private instance's queue is empty.
postfix_queue_empty() {
	postqueue -c "$POSTFIX_CONF" -p 2>/dev/null | grep -q 'Mail queue is empty'
}

postfix_stop() {
	local conf=$POSTFIX_CONF queue pid p
	POSTFIX_CONF=""
	queue=$(postconf -c "$conf" -h queue_directory 2>/dev/null) || return 0
	pid=$({ tr -dc 0-9 <"$queue/pid/master.pid"; } 2>/dev/null || true)
	postfix -c "$conf" stop >/dev/null 2>&1 || true
	[ -n "$pid" ] || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	# The master leads its own process group; whatever is left of it goes.
	for p in $(pgrep -g "$pid" 2>/dev/null || true); do kill -9 "$p" 2>/dev/null || true; done
	kill -9 "$pid" 2>/dev/null || true
}
