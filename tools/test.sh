#!/bin/sh
# Runs every test of dovecot-dmarcreport from a clean checkout on Debian 12
# (Dovecot 2.3), and again against Dovecot 2.4 in a Debian 13 chroot (as
# root: the end-to-end tests start a private Dovecot, which drops to the
# test user's uid). Stages, each counted in the closing line:
#   1. build, make check: unit tests and end-to-end tests
#   2. the unit tests again under valgrind (no errors, no leaks)
#   3. an ASan+UBSan build, make check again with it (plugins preloaded
#      into the private Dovecot)
#   4. a short libFuzzer run of unpack+parse+store, seeded from the corpus
#      (counted as skipped when there is no corpus)
#   5. Dovecot 2.4: a Debian 13 chroot (tools/chroot-trixie.sh, kept in
#      $DOVECOT24_CHROOT, default /var/cache/dovecot-dmarcreport/trixie),
#      the tree built and installed in it, make check there (unit tests
#      and every e2e test against a private 2.4 Dovecot), then the package
#      test (tools/package-test.sh) there
#   6. the Debian package on this host: built from a clean copy,
#      installed, the e2e tests run against the installed files, purged
#      (tools/package-test.sh)
# SKIP_VALGRIND=1, SKIP_SANITIZERS=1, SKIP_FUZZ=1, SKIP_DOVECOT24=1,
# SKIP_PACKAGE=1 leave a stage out; FUZZ_SECONDS sets the fuzz run's
# length (default 60).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
corpus=${CORPUS_DIR:-$top/../shared/corpus}

extra_packages=""
[ "${SKIP_FUZZ:-}" = 1 ] || extra_packages="clang libclang-rt-14-dev"
"$top/tools/deps.sh" $extra_packages

results=$(mktemp)
chroot_root=""
cleanup() {
	rm -f "$results"
	# only what this script mounted
	[ -z "$chroot_root" ] || ! mountpoint -q "$chroot_root/proc" ||
		umount "$chroot_root/proc"
}
trap cleanup EXIT
status=0

# make check in $1 (a path inside the chroot $3, when given); adds its .trs
# results to $results
run_check() {
	dir=$1; label=$2; root=${3:-}
	rc=0
	if [ -n "$root" ]; then
		chroot "$root" sh -c "cd '$dir' && make -j$(nproc) check >check.out 2>&1" || rc=$?
		dir=$root$dir
	else
		(cd "$dir" && make -j"$(nproc)" check >check.out 2>&1) || rc=$?
	fi
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
if [ "${SKIP_FUZZ:-}" != 1 ] && [ ! -d "$corpus/aggregate" ]; then
	echo ":test-result: SKIP" >> "$results"
	echo "[fuzz] skipped: no corpus in $corpus to seed it (CORPUS_DIR)"
elif [ "${SKIP_FUZZ:-}" != 1 ]; then
	fuzz=$build-fuzz
	BUILD_DIR=$fuzz "$top/tools/build.sh" --enable-fuzzer CC=clang
	(cd "$fuzz/tests" && make fuzz/fuzz-dmarc >/dev/null)
	rm -rf "$fuzz/seeds" && mkdir -p "$fuzz/seeds" "$fuzz/artifacts"
	cp "$corpus"/aggregate/* "$corpus"/aggregate-invalid/* "$corpus"/email/* \
		"$fuzz/seeds/"
	rm -f "$fuzz"/seeds/*.json
	# TLS reports and failure report mails seed the kinds' parsers
	for f in "$corpus"/tlsrpt/* "$corpus"/failure/*; do
		case "$f" in *.expected.json) ;; *) cp "$f" "$fuzz/seeds/" ;; esac
	done
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

# 5. Dovecot 2.4 in a Debian 13 chroot. The tree is copied in fresh (no
# build dirs, no .git) with the corpus beside it as ../shared/corpus, built,
# and installed into the chroot's system dirs: Dovecot 2.4 reads settings
# modules and doveadm plugins only from its compiled-in MODULEDIR, and a
# private mount namespace cannot be made inside a chroot, so the e2e
# harness sees that the installed modules are the build's and uses them
# (dovetest.use_installed). The chroot is a throwaway: nothing of the host
# is touched.
dovecot24_stage() {
	chroot_root=${DOVECOT24_CHROOT:-/var/cache/dovecot-dmarcreport/trixie}
	if ! "$top/tools/chroot-trixie.sh" "$chroot_root"; then
		echo ":test-result: FAIL" >> "$results"
		echo "---- [dovecot-2.4] no Debian 13 chroot: tools/chroot-trixie.sh failed"
		status=1; return
	fi
	rm -rf "$chroot_root/build"
	mkdir -p "$chroot_root/build/dovecot-dmarcreport" "$chroot_root/build/shared"
	(cd "$top" && tar --exclude=./.git --exclude=./build --exclude='./build-*' \
		--exclude=./autom4te.cache --exclude=./configure -cf - .) |
		tar -C "$chroot_root/build/dovecot-dmarcreport" -xf -
	[ ! -d "$corpus" ] || cp -r "$corpus" "$chroot_root/build/shared/corpus"
	mountpoint -q "$chroot_root/proc" || mount -t proc proc "$chroot_root/proc"
	if chroot "$chroot_root" sh -c 'cd /build/dovecot-dmarcreport &&
		BUILD_DIR=$PWD/build tools/build.sh && make -C build install >build/install.out 2>&1'
	then
		run_check /build/dovecot-dmarcreport/build "[dovecot-2.4]" "$chroot_root"
	else
		echo ":test-result: FAIL" >> "$results"
		echo "---- [dovecot-2.4] build or install failed"; status=1
	fi
	# builds the .deb, installs it, runs the e2e tests on the installed
	# files; make install's copies go first, so that dpkg does not
	# silently take over identical files
	chroot "$chroot_root" make -C /build/dovecot-dmarcreport/build uninstall \
		>/dev/null 2>&1 || true
	rm -f "$chroot_root/build/package-results"
	rc=0
	[ "${SKIP_PACKAGE:-}" = 1 ] ||
		chroot "$chroot_root" sh -c 'cd /build/dovecot-dmarcreport &&
			PACKAGE_RESULTS=/build/package-results tools/package-test.sh' \
			> "$chroot_root/build/package-test.out" 2>&1 || rc=$?
	cat "$chroot_root/build/package-results" >> "$results" 2>/dev/null || true
	if [ $rc -ne 0 ]; then
		echo ":test-result: FAIL" >> "$results"
		echo "---- [dovecot-2.4] tools/package-test.sh"
		tail -40 "$chroot_root/build/package-test.out"; status=1
	fi
	echo "[dovecot-2.4] $(chroot "$chroot_root" dovecot --version) done"
}
[ "${SKIP_DOVECOT24:-}" = 1 ] || dovecot24_stage

# 6. the .deb, installed on this host, e2e against it, then purged
if [ "${SKIP_PACKAGE:-}" != 1 ]; then
	mkdir -p "$build"
	rc=0
	PACKAGE_RESULTS=$results CORPUS_DIR=$corpus "$top/tools/package-test.sh" \
		> "$build/package-test.out" 2>&1 || rc=$?
	grep -E '^(PASS|FAIL|SKIP): |^package-test: ([0-9]+ passed|built|e2e suite)' "$build/package-test.out" |
		sed 's/^/[package] /'
	[ $rc -eq 0 ] || { echo "---- [package] $build/package-test.out"; tail -60 "$build/package-test.out"; status=1; }
fi

pass=$(grep -c ': PASS' "$results" || true)
fail=$(grep -c ': \(FAIL\|ERROR\|XPASS\)' "$results" || true)
skip=$(grep -c ': SKIP' "$results" || true)
echo "tests: $pass passed, $fail failed, $skip skipped"
[ $status -eq 0 ] && [ "$fail" -eq 0 ]
