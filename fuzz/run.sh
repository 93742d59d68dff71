#!/usr/bin/env bash
# Run every libFuzzer harness of build-fuzz/fuzz for FUZZ_TIME seconds
# each (default 60), from the seeds in fuzz/corpus/NAME plus what earlier
# runs found (build-fuzz/corpus/NAME). Inputs in fuzz/regress/NAME (crashes
# found before, kept as regression tests) are run first, once each. A crash
# leaves its input in build-fuzz/crashes/. Prints one line per harness,
#   fuzz: NAME runs=N time=Ts result=ok|crash
# and exits 1 when any harness crashed.
set -u
cd "$(dirname "$0")/.."
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"
time=${FUZZ_TIME:-60}
bad=0
mkdir -p build-fuzz/crashes
for bin in build-fuzz/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	work=build-fuzz/corpus/$name
	mkdir -p "$work" "fuzz/corpus/$name"
	log=build-fuzz/$name.log
	result=ok
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
	[ "$result" = ok ] || bad=1
done
exit $bad
