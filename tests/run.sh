#!/usr/bin/env bash
# Run the test suites and print, as the very last line, "N passed, N failed"
# over all of them. `tests/run.sh` runs unit, the layout check, the
# monitoring rules, a short fuzz run, then e2e; `tests/run.sh
# unit|layout|rules|fuzz|e2e` runs one kind.
# SHOAL_BUILD / SHOAL_BIN pick the build (the asan build sets them).
# SHOAL_FUZZ_BUILD=1 (make test) runs `make fuzz-build` meanwhile, see
# fuzz_build_start.
set -u
cd "$(dirname "$0")/.."
BUILD=${SHOAL_BUILD:-build}
export SHOAL_BIN=${SHOAL_BIN:-bin}
what=${1:-all}
passed=0
failed=0

# A test binary older than its source, the shared test headers or the
# libraries it links would test yesterday's code: `make all` (or `make
# unit`) relinks it. Prints the newer file, or nothing.
unit_stale() {
	local t=$1 src f
	src=tests/unit/$(basename "$t").c
	for f in "$src" tests/unit/*.h "$BUILD"/lib*.a; do
		[ -e "$f" ] && [ "$f" -nt "$t" ] && { echo "$f"; return; }
	done
}

# One unit binary's output (stdout and stderr) into $2, captured as it
# always was (a crash is reported by the missing summary line, not by
# bash); its exit status is not used, the Check summary line is.
unit_one() {
	local out
	out=$("$1" 2>&1)
	printf '%s\n' "$out" >"$2"
}

# The counting of one unit binary's output, as each used to be counted
# when they ran one after another.
unit_count() {
	local t=$1 out=$2 line checks fails errs
	echo "$out" | grep -E '^[0-9]+%: Checks|:[EF]:' || true
	line=$(echo "$out" | grep -E '^[0-9]+%: Checks:' | tail -n 1)
	if [ -z "$line" ]; then
		echo "unit: $(basename "$t"): no result (crashed?)"
		echo "$out" | tail -n 20
		failed=$((failed + 1))
		return
	fi
	checks=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
	fails=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
	errs=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
	passed=$((passed + checks - fails - errs))
	failed=$((failed + fails + errs))
}

# The unit binaries run UNIT_JOBS at a time (default: one per core; they
# are independent processes, each on ports and temp files of its own, and
# mostly wait on timers), while their results are printed and counted in
# name order, each once it and every one before it have ended. Waits for
# the exits of its own jobs only (the fuzz build may run meanwhile).
run_unit() {
	local jobs=${UNIT_JOBS:-$(nproc 2>/dev/null || echo 1)}
	local dir t i next=0 done_pid=
	local -a tests=() stale=() pids=()
	[[ $jobs =~ ^[1-9][0-9]*$ ]] || jobs=1
	dir=$(mktemp -d)
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		tests+=("$t")
		stale+=("$(unit_stale "$t")")
	done
	for ((i = 0; i < ${#tests[@]}; i++)); do
		# a stale binary is not run; its line comes in its turn
		[ -n "${stale[i]}" ] && continue
		while [ "${#pids[@]}" -ge "$jobs" ]; do
			wait -n -p done_pid "${pids[@]}"
			unit_forget "$done_pid"
			unit_report
		done
		( unit_one "${tests[i]}" "$dir/$i.out"; : >"$dir/$i.done" ) &
		pids+=("$!")
	done
	while [ "${#pids[@]}" -gt 0 ]; do
		wait -n -p done_pid "${pids[@]}"
		unit_forget "$done_pid"
	done
	unit_report
	rm -rf "$dir"
}

# Drops an ended job from run_unit's pids.
unit_forget() {
	local -a left=()
	local p
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || left+=("$p")
	done
	pids=("${left[@]}")
}

# Prints and counts, in order, every result from $next on that is there
# (run_unit's tests, stale, dir and next: bash lets a called function see
# its caller's locals).
unit_report() {
	while [ "$next" -lt "${#tests[@]}" ]; do
		t=${tests[next]}
		if [ -n "${stale[next]}" ]; then
			echo "unit: $(basename "$t"): stale, ${stale[next]} is newer (make all)"
			failed=$((failed + 1))
		elif [ -e "$dir/$next.done" ]; then
			unit_count "$t" "$(cat "$dir/$next.out")"
		else
			return
		fi
		next=$((next + 1))
	done
}

run_e2e() {
	local out line
	out=$(mktemp)
	SHOAL_E2E_JOBS=${SHOAL_E2E_JOBS:-$(nproc 2>/dev/null || echo 1)} \
		python3 tests/e2e/runner.py 2>&1 | tee "$out"
	line=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "e2e: runner produced no result"
		failed=$((failed + 1))
	else
		passed=$((passed + $(echo "$line" | sed -E 's/e2e: ([0-9]+) passed.*/\1/')))
		failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
	fi
	rm -f "$out"
}

# The source layout rules (README's "Source layout"): its self-test first
# (a cycle and a wrong-way include it must catch), then the tree; each
# "layout: NAME ok|FAIL" line is one pass or failure.
run_layout() {
	local out
	out=$({ python3 tests/layout_check.py --self-test; python3 tests/layout_check.py; } 2>&1)
	echo "$out" | grep -E '^layout: |^    ' || true
	passed=$((passed + $(echo "$out" | grep -cE '^layout: .* ok$')))
	failed=$((failed + $(echo "$out" | grep -cE '^layout: .* FAIL$')))
}

# The Prometheus alerts and the Grafana dashboard (docs/dashboards.md):
# promtool checks the rules and the example config and runs the rules'
# unit tests (each alert firing and not), then tests/rules_check.py holds
# the dashboard and the rules against the metrics Shoal exports, after its
# self-test. Each "rules: NAME ok|FAIL" line is one pass or failure.
rules_promtool() { # NAME COMMAND...: one check line, output on failure
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "rules: $name ok"
	else
		echo "rules: $name FAIL"
		echo "$out" | sed 's/^/    /'
	fi
}

run_rules() {
	local out
	if ! command -v promtool >/dev/null 2>&1; then
		echo "rules: promtool not found (deploy/install-deps.sh installs it)"
		failed=$((failed + 1))
		return
	fi
	out=$({
		rules_promtool check_rules \
			promtool check rules deploy/prometheus/shoal-alerts.yml
		rules_promtool check_config \
			promtool check config deploy/prometheus/prometheus.yml
		rules_promtool test_rules \
			promtool test rules deploy/prometheus/shoal-alerts.test.yml
		python3 tests/rules_check.py --self-test
		python3 tests/rules_check.py
	} 2>&1)
	echo "$out" | grep -E '^rules: |^    ' || true
	passed=$((passed + $(echo "$out" | grep -cE '^rules: .* ok$')))
	failed=$((failed + $(echo "$out" | grep -cE '^rules: .* FAIL$')))
}

# A short run of every libFuzzer harness (build-fuzz/, `make fuzz-build`),
# each a pass or a failure; `make fuzz` runs them longer.
run_fuzz() {
	local out
	if ! ls build-fuzz/fuzz/fuzz_* >/dev/null 2>&1; then
		echo "fuzz: no harnesses built (make fuzz-build)"
		failed=$((failed + 1))
		return
	fi
	out=$(mktemp)
	FUZZ_TIME=${SHOAL_FUZZ_TIME:-5} FUZZ_JOBS=$(nproc 2>/dev/null || echo 1) \
		bash fuzz/run.sh >"$out" 2>&1
	grep -E '^fuzz: ' "$out" || tail -n 40 "$out"
	passed=$((passed + $(grep -cE '^fuzz: .* result=ok$' "$out")))
	failed=$((failed + $(grep -cE '^fuzz: .* result=crash$' "$out")))
	rm -f "$out"
}

# `make fuzz-build` in the background, niced, while the unit tests, the
# layout and the rules run: those mostly wait on timers and leave the
# cores to the compilers (a unit test that wakes up comes first), where
# one after the other they took the build's time and then the tests'.
# fuzz_build_wait waits for it before the fuzz run and prints its output;
# a failed build is a failure, and its harnesses are not run.
fuzz_build_pid=
fuzz_build_start() {
	fuzz_build_log=$(mktemp)
	nice -n 10 make --no-print-directory fuzz-build >"$fuzz_build_log" 2>&1 &
	fuzz_build_pid=$!
}

fuzz_build_wait() {
	local rc=0
	wait "$fuzz_build_pid" || rc=$?
	cat "$fuzz_build_log"
	rm -f "$fuzz_build_log"
	fuzz_build_pid=
	if [ "$rc" -ne 0 ]; then
		echo "fuzz: make fuzz-build failed (status $rc)"
		failed=$((failed + 1))
		return 1
	fi
}

case "$what" in
unit) run_unit; run_layout ;;
layout) run_layout ;;
rules) run_rules ;;
e2e) run_e2e ;;
fuzz) run_fuzz ;;
all)
	if [ "${SHOAL_FUZZ_BUILD:-}" = 1 ]; then
		fuzz_build_start
		run_unit; run_layout; run_rules
		fuzz_build_wait && run_fuzz
	else
		run_unit; run_layout; run_rules; run_fuzz
	fi
	run_e2e ;;
*) echo "usage: tests/run.sh [unit|layout|rules|fuzz|e2e|all]" >&2; exit 2 ;;
esac

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
