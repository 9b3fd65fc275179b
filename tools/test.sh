#!/bin/sh
# Runs every test of dovecot-dmarcreport from a clean checkout on Debian 12
# (as root: the end-to-end tests start a private Dovecot, which drops to the
# test user's uid). Stages, each counted in the closing line:
#   1. build, make check: unit tests and end-to-end tests
#   2. the unit tests again under valgrind (no errors, no leaks)
#   3. an ASan+UBSan build, make check again with it (plugins preloaded
#      into the private Dovecot)
#   4. a short libFuzzer run of unpack+parse+store, seeded from the corpus
# SKIP_VALGRIND=1, SKIP_SANITIZERS=1, SKIP_FUZZ=1 leave a stage out;
# FUZZ_SECONDS sets the fuzz run's length (default 60).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
corpus=${CORPUS_DIR:-$top/../shared/corpus}

extra_packages=""
[ "${SKIP_FUZZ:-}" = 1 ] || extra_packages="clang libclang-rt-14-dev"
"$top/tools/deps.sh" $extra_packages

results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0

# make check in $1; adds its .trs results to $results
run_check() {
	dir=$1; label=$2
	rc=0
	(cd "$dir" && make -j"$(nproc)" check >check.out 2>&1) || rc=$?
	grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS): |^# (TOTAL|PASS|FAIL|ERROR|SKIP):' \
		"$dir/check.out" | sed "s/^/$label /" || true
	for log in $(grep -l '^:test-result: \(FAIL\|ERROR\)' "$dir"/tests/*.trs "$dir"/tests/e2e/*.trs 2>/dev/null); do
		echo "---- $label ${log%.trs}.log"
		tail -60 "${log%.trs}.log"
	done
	[ $rc -eq 0 ] || { tail -30 "$dir/check.out"; status=1; }
	cat "$dir"/tests/*.trs "$dir"/tests/e2e/*.trs 2>/dev/null |
		grep '^:test-result:' >> "$results" || true
}

# 1. the build and all tests
BUILD_DIR=$build "$top/tools/build.sh"
run_check "$build" "[check]"

# 2. unit tests under valgrind
if [ "${SKIP_VALGRIND:-}" != 1 ]; then
	for t in "$build"/tests/test-dmarc-*; do
		case "$t" in *.o|*.lo|*.log|*.trs) continue ;; esac
		[ -x "$t" ] || continue
		if "$build/libtool" --mode=execute valgrind -q --leak-check=full \
			--errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect --error-exitcode=99 \
			"$t" > "$t.valgrind.out" 2>&1; then
			echo ":test-result: PASS" >> "$results"
		else
			echo ":test-result: FAIL" >> "$results"
			echo "---- [valgrind] $t"; tail -40 "$t.valgrind.out"
			status=1
		fi
	done
	echo "[valgrind] unit tests done"
fi

# 3. ASan + UBSan, the whole suite again
if [ "${SKIP_SANITIZERS:-}" != 1 ]; then
	BUILD_DIR=$build-asan "$top/tools/build.sh" --enable-sanitizers
	E2E_PRELOAD=$(gcc -print-file-name=libasan.so)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	export E2E_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
	run_check "$build-asan" "[sanitizers]"
	unset E2E_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
fi

# 4. a short fuzz run (a crash fails it; its input is kept in the build dir)
if [ "${SKIP_FUZZ:-}" != 1 ] && [ -d "$corpus/aggregate" ]; then
	fuzz=$build-fuzz
	BUILD_DIR=$fuzz "$top/tools/build.sh" --enable-fuzzer CC=clang
	(cd "$fuzz/tests" && make fuzz/fuzz-dmarc >/dev/null)
	rm -rf "$fuzz/seeds" && mkdir -p "$fuzz/seeds" "$fuzz/artifacts"
	cp "$corpus"/aggregate/* "$corpus"/aggregate-invalid/* "$corpus"/email/* \
		"$fuzz/seeds/"
	rm -f "$fuzz"/seeds/*.json
	if "$fuzz/tests/fuzz/fuzz-dmarc" -max_total_time="${FUZZ_SECONDS:-60}" \
		-timeout=20 -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$fuzz/artifacts/" "$fuzz/seeds" > "$fuzz/fuzz.out" 2>&1; then
		echo ":test-result: PASS" >> "$results"
		echo "[fuzz] $(grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' "$fuzz/fuzz.out" | tr '\n' ' ')"
	else
		echo ":test-result: FAIL" >> "$results"
		echo "---- [fuzz] crash, input in $fuzz/artifacts"; tail -40 "$fuzz/fuzz.out"
		status=1
	fi
fi

pass=$(grep -c ': PASS' "$results" || true)
fail=$(grep -c ': \(FAIL\|ERROR\|XPASS\)' "$results" || true)
skip=$(grep -c ': SKIP' "$results" || true)
echo "tests: $pass passed, $fail failed, $skip skipped"
[ $status -eq 0 ] && [ "$fail" -eq 0 ]
