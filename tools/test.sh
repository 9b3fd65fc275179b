#!/bin/sh
# Runs every test of dovecot-dmarcreport from a clean checkout on Debian 12:
# installs the dependencies (as root), builds out of tree, runs the unit
# tests and the end-to-end tests against a private Dovecot (make check).
# The end-to-end tests need root: they start Dovecot, which drops to the
# test user's uid.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$top/build}

"$top/tools/deps.sh"
"$top/tools/build.sh"

cd "$BUILD_DIR"
status=0
make -j"$(nproc)" check >check.out 2>&1 || status=$?
# automake's own summary, then each failed test's log
sed -n '/^=\{10,\}$/,/^=\{10,\}$/p' check.out | grep -E '^# ' || true
for log in $(grep -l '^:test-result: \(FAIL\|ERROR\)' tests/*.trs tests/e2e/*.trs 2>/dev/null); do
	echo "---- ${log%.trs}.log"
	tail -60 "${log%.trs}.log"
done
[ $status -eq 0 ] || tail -40 check.out

# The unit tests once more under valgrind: no memory errors, no leaks.
if [ $status -eq 0 ] && [ "${SKIP_VALGRIND:-}" != 1 ]; then
	for t in tests/test-dmarc-*; do
		case "$t" in *.o|*.lo|*.log|*.trs) continue ;; esac
		[ -x "$t" ] || continue
		if ./libtool --mode=execute valgrind -q --leak-check=full \
			--errors-for-leak-kinds=definite,indirect \
			--show-leak-kinds=definite,indirect --error-exitcode=99 \
			"$t" > "$t.valgrind.log" 2>&1; then
			echo ":test-result: PASS" > "$t.valgrind.trs"
		else
			echo ":test-result: FAIL" > "$t.valgrind.trs"
			echo "---- valgrind $t"; tail -40 "$t.valgrind.log"
			status=1
		fi
	done
fi

pass=$(cat tests/*.trs tests/e2e/*.trs 2>/dev/null | grep -c '^:test-result: PASS' || true)
fail=$(cat tests/*.trs tests/e2e/*.trs 2>/dev/null | grep -c '^:test-result: \(FAIL\|ERROR\|XPASS\)' || true)
skip=$(cat tests/*.trs tests/e2e/*.trs 2>/dev/null | grep -c '^:test-result: SKIP' || true)
echo "tests: $pass passed, $fail failed, $skip skipped"
[ $status -eq 0 ] && [ "$fail" -eq 0 ]
