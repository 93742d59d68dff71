#!/usr/bin/env bash
# Run every libFuzzer harness of build-fuzz/fuzz for FUZZ_TIME seconds
# each (default 60), from the seeds in fuzz/corpus/NAME plus what earlier
# runs found (build-fuzz/corpus/NAME). Inputs in fuzz/regress/NAME (crashes
# found before, kept as regression tests) are run first, once each. A crash
# leaves its input in build-fuzz/crashes/. FUZZ_JOBS harnesses run at once
# (default 1; tests/run.sh runs one per core). Prints one line per harness
# as it ends,
#   fuzz: NAME runs=N time=Ts result=ok|crash
# and exits 1 when any harness crashed.
set -u
cd "$(dirname "$0")/.."
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"
time=${FUZZ_TIME:-60}
jobs=${FUZZ_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || jobs=1
mkdir -p build-fuzz/crashes

# One harness: its line on stdout (with the log's tail after a crash);
# exit status 1 when it crashed.
run_one() {
	local bin=$1 name work log result=ok runs
	name=$(basename "$bin")
	work=build-fuzz/corpus/$name
	mkdir -p "$work" "fuzz/corpus/$name"
	log=build-fuzz/$name.log
	if [ -d "fuzz/regress/$name" ] && [ -n "$(ls -A "fuzz/regress/$name")" ]; then
		if ! "$bin" "fuzz/regress/$name"/* >"$log.regress" 2>&1; then
			result=crash
			tail -n 30 "$log.regress"
		fi
	fi
	if [ "$result" = ok ] && ! "$bin" -max_total_time="$time" \
		-timeout=10 -rss_limit_mb=1024 -max_len=65536 \
		-artifact_prefix="build-fuzz/crashes/$name-" \
		"$work" "fuzz/corpus/$name" >"$log" 2>&1; then
		result=crash
		tail -n 40 "$log"
	fi
	runs=$(grep -Eo 'Done [0-9]+ runs' "$log" 2>/dev/null | grep -Eo '[0-9]+' || echo 0)
	echo "fuzz: $name runs=${runs:-0} time=${time}s result=$result"
	[ "$result" = ok ]
}

bad=0
running=0
for bin in build-fuzz/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	if [ "$jobs" -eq 1 ]; then
		run_one "$bin" || bad=1
		continue
	fi
	if [ "$running" -ge "$jobs" ]; then
		wait -n || bad=1
		running=$((running - 1))
	fi
	# its output in one piece, whatever else ends meanwhile
	( out=$(run_one "$bin"); rc=$?; printf '%s\n' "$out"; exit $rc ) &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	wait -n || bad=1
	running=$((running - 1))
done
exit $bad
