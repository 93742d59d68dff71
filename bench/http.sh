#!/usr/bin/env bash
# HTTP injection against SMTP on the same cluster build, in one run:
#
#   smtp   smtp-source -s SESSIONS -> shoal-router:SMTP -> node pair -> smtp-sink
#   http   ab -k -c SESSIONS (POST /api/v1/inject, one message per request)
#          -> shoal-router:HTTP -> node pair -> smtp-sink
#
# Both get a fresh sink, fresh queues and fresh processes, with sync
# replication and fsync on both nodes, the same message size (the HTTP
# request carries the same RFC 5322 text as "content"). Ingest rate:
# messages / time until the client has every answer (250 or 200); end to
# end: until smtp-sink has counted them all. Prints the table and the
# ratio HTTP/SMTP and writes bench/results/http-<UTC time>.txt. As in
# bench/compare.sh, smtp-source opens a connection per message; ab keeps
# its 50 connections alive (what an application's HTTP client does).
#
#   bench/http.sh [-m N] [-s SESSIONS] [-l BYTES] [-t SECS]
#
#   -m N     messages per run (default 20000)
#   -s N     concurrent clients (default 50)
#   -l N     message size in bytes (default 1024)
#   -t SECS  give up on a run whose sink count is short after SECS (default 300)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

MSGS=20000 SESS=50 LEN=1024 TIMEOUT=300
while getopts "m:s:l:t:h" o; do
	case $o in
	m) MSGS=$OPTARG ;;
	s) SESS=$OPTARG ;;
	l) LEN=$OPTARG ;;
	t) TIMEOUT=$OPTARG ;;
	*) sed -n '/^#   bench\/http.sh/,/^#   -t/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
bench_positive "$MSGS" "$SESS" "$LEN" "$TIMEOUT"
bench_need smtp-source smtp-sink ab python3
bench_build
bench_init shoal-bench-http

# wait_sink OUT N T0: until the sink counted N; prints the seconds since T0.
wait_sink() {
	local deadline=$(( $(date +%s) + TIMEOUT ))
	while [ "$(sink_count "$1")" -lt "$2" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { echo "sink has $(sink_count "$1") of $2" >&2; return 1; }
		sleep 0.05
	done
	echo "$(now) - $3" | bc
}

run() { # run smtp|http: prints "ingest_s e2e_s"
	local kind=$1 dir=$BENCH_DIR/$1 t0 t1 e2e
	mkdir -p "$dir"
	HTTP_PORT=$(free_port)
	bench_pair_start "$dir"
	wait_port "$HTTP_PORT" 300
	sleep 1 # settle, as bench/compare.sh does
	if [ "$kind" = smtp ]; then
		t0=$(now)
		smtp-source -s "$SESS" -m "$MSGS" -l "$LEN" -f bench@bench.local \
			-t to@sink.test 127.0.0.1:"$SMTP" >"$dir/client.out" 2>&1
		t1=$(now)
	else
		python3 - "$LEN" >"$dir/body.json" <<'PY'
import json, sys
n = int(sys.argv[1])
head = "From: bench@bench.local\nTo: to@sink.test\nSubject: bench\n\n"
body = ("x" * 70 + "\n") * max(1, (n - len(head)) // 71)
print(json.dumps({"envelope_sender": "bench@bench.local",
                  "recipients": [{"email": "to@sink.test"}],
                  "content": head + body}))
PY
		t0=$(now)
		ab -q -k -c "$SESS" -n "$MSGS" -p "$dir/body.json" -T application/json \
			http://127.0.0.1:"$HTTP_PORT"/api/v1/inject >"$dir/client.out" 2>&1
		t1=$(now)
		grep -q "^Failed requests: *0$" "$dir/client.out" &&
			grep -q "^Complete requests: *$MSGS$" "$dir/client.out" ||
			{ echo "ab: not every request got 200" >&2; cat "$dir/client.out" >&2; return 1; }
		if grep -q "^Non-2xx responses" "$dir/client.out"; then
			echo "ab: non-2xx answers" >&2; cat "$dir/client.out" >&2; return 1
		fi
	fi
	e2e=$(wait_sink "$dir/sink.out" "$MSGS" "$t0")
	echo "$(echo "$t1 - $t0" | bc) $e2e"
	bench_stop_all
}

OUT=$(dirname "$0")/results/http-$(date -u +%Y%m%dT%H%M%SZ).txt
mkdir -p "$(dirname "$OUT")"
read -r s_in s_e2e < <(run smtp)
read -r h_in h_e2e < <(run http)
{
	echo "HTTP injection vs SMTP — $(date -u +%FT%TZ), $MSGS messages of $LEN bytes, $SESS concurrent clients, sync replication"
	echo "$(nproc) CPUs; $(uname -sr)"
	printf '%-6s %12s %12s\n' path "ingest/s" "e2e/s"
	printf '%-6s %12.0f %12.0f\n' smtp "$(echo "$MSGS / $s_in" | bc -l)" "$(echo "$MSGS / $s_e2e" | bc -l)"
	printf '%-6s %12.0f %12.0f\n' http "$(echo "$MSGS / $h_in" | bc -l)" "$(echo "$MSGS / $h_e2e" | bc -l)"
	printf 'http/smtp ingest %.2fx, end to end %.2fx\n' "$(echo "$s_in / $h_in" | bc -l)" "$(echo "$s_e2e / $h_e2e" | bc -l)"
} | tee "$OUT"
