#!/bin/sh
# Tests the Debian package as an admin would get it, on Debian 12 (Dovecot
# 2.3) or Debian 13 (Dovecot 2.4), as root: builds the .deb from a clean
# copy of this tree (dpkg-buildpackage -us -uc -b), installs it with apt-get
# (pulling its dependencies), checks the installed files, runs the
# end-to-end suite against the INSTALLED plugins (the copy's own build has
# its .so files deleted first), then purges the package and whatever its
# installation pulled in, so the packages are as before. Build tools it
# installs (the Build-Depends, lintian) stay, as tools/deps.sh's do.
#
# Prints "PASS: / FAIL: / SKIP: <check>" lines and ends with
# "package-test: N passed, N failed, N skipped"; exits 1 when one failed.
# PACKAGE_RESULTS=FILE also appends automake's ":test-result: X" lines to
# FILE (tools/test.sh counts them). PACKAGE_OUT=DIR keeps the built .deb
# there; KEEP_PACKAGE=1 keeps the work dir. CORPUS_DIR: the corpus for the
# e2e tests (default: ../shared/corpus beside this tree).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
corpus=${CORPUS_DIR:-$top/../shared/corpus}
pkg=dovecot-dmarcreport

if [ "$(id -u)" != 0 ]; then
	echo "package-test.sh: run as root (apt-get, and the e2e tests start Dovecot)" >&2
	exit 77
fi
export DEBIAN_FRONTEND=noninteractive

work=$(mktemp -d /tmp/dmarcreport-package.XXXXXX)
src=$work/$pkg
passed=0; failed=0; skipped=0
installed_here=no
created_policy=no

result() {	# result PASS|FAIL|SKIP "what" ["detail"]
	echo "$1: $2${3:+ ($3)}"
	case $1 in
	PASS) passed=$((passed + 1)) ;;
	FAIL) failed=$((failed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	esac
	[ -z "${PACKAGE_RESULTS:-}" ] || echo ":test-result: $1" >> "$PACKAGE_RESULTS"
}
check() {	# check "what" command...: PASS when the command succeeds
	what=$1; shift
	if "$@"; then result PASS "$what"; else result FAIL "$what"; fi
}
installed_packages() {
	dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort
}
# The packages must not start the system's Dovecot (as tools/deps.sh).
policy_on() {
	[ -e /usr/sbin/policy-rc.d ] && return 0
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created_policy=yes
}
policy_off() {
	[ "$created_policy" = yes ] && rm -f /usr/sbin/policy-rc.d
	created_policy=no
}
# Purges the package and what installing it pulled in.
purge() {
	[ "$installed_here" = yes ] || return 0
	installed_here=no
	policy_on
	apt-get purge -y -q "$pkg" > "$work/purge.out" 2>&1 || true
	# what the install added, not what something else installed meanwhile
	pulled=$(installed_packages | comm -13 "$work/packages.before" - |
		{ [ -f "$work/packages.installed" ] && comm -12 "$work/packages.installed" - || cat; })
	[ -z "$pulled" ] || apt-get purge -y -q $pulled >> "$work/purge.out" 2>&1 || true
	policy_off
}
finish() {
	purge
	policy_off
	if [ "${KEEP_PACKAGE:-}" = 1 ]; then
		echo "package-test: work dir kept: $work"
	else
		rm -rf "$work"
	fi
}
trap finish EXIT
trap 'exit 1' INT TERM

series=$(dovecot --version | cut -d. -f1,2)
moduledir=$(sed -n 's/^dovecot_moduledir=//p' /usr/lib/dovecot/dovecot-config 2>/dev/null)
moduledir=${moduledir:-/usr/lib/dovecot/modules}
echo "package-test: Dovecot $(dovecot --version), $(. /etc/os-release && echo "$PRETTY_NAME")"

# 1. a clean copy: what git tracks plus new files not ignored (local edits
# count, build dirs and generated files do not)
mkdir "$src"
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$src" -xf -
else
	# not a git checkout (e.g. a tree copied into a chroot): everything
	# but build dirs and what autoreconf and configure make
	(cd "$top" && tar --exclude=./.git --exclude=./build --exclude='./build-*' \
		--exclude=./autom4te.cache --exclude=./build-aux --exclude=./configure \
		--exclude=./aclocal.m4 --exclude=./dummy-config.h.in --exclude=Makefile.in \
		--exclude='./m4/l*.m4' --exclude=./config.log --exclude=./config.status \
		--exclude=./libtool --exclude=Makefile --exclude=.deps --exclude=.libs \
		--exclude='*.o' --exclude='*.lo' --exclude='*.la' --exclude='*.so' \
		--exclude=./debian/.debhelper --exclude=./debian/dovecot-dmarcreport \
		-cf - .) | tar -C "$src" -xf -
fi

# 2. what building it needs (Build-Depends, dpkg-dev), and lintian
if ! (cd "$src" && dpkg-checkbuilddeps) >/dev/null 2>&1 ||
   ! command -v dpkg-buildpackage >/dev/null || ! command -v lintian >/dev/null; then
	apt-get update -qq
	apt-get build-dep -y -q "$src" > "$work/build-dep.out" 2>&1 ||
		{ tail -20 "$work/build-dep.out"; exit 1; }
	apt-get install -y -q --no-install-recommends lintian > "$work/lintian-install.out" 2>&1 ||
		echo "package-test: lintian could not be installed"
fi

# 3. the package
start=$(date +%s)
if (cd "$src" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1; then
	result PASS "dpkg-buildpackage -us -uc -b" "$(($(date +%s) - start)) s"
else
	result FAIL "dpkg-buildpackage -us -uc -b"
	tail -40 "$work/build.log"
	exit 1
fi
deb=$(ls "$work"/${pkg}_*.deb)
echo "package-test: built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
grep -E '^(PASS|FAIL|SKIP|# [A-Z]+): ' "$work/build.log" | sed 's/^/package-test: dh_auto_test: /' || true
[ -z "${PACKAGE_OUT:-}" ] || { mkdir -p "$PACKAGE_OUT" && cp "$deb" "$PACKAGE_OUT"/; }

abi=$(cat /usr/share/dovecot/dovecot-abi)
depends=$(dpkg-deb -f "$deb" Depends)
echo "package-test: Depends: $depends"
check "Depends names dovecot-abi-$abi, dovecot-core, dovecot-sieve" \
	sh -c 'echo "$1" | tr -d " " | tr , "\n" | grep -qx "dovecot-abi-$2" &&
	       echo "$1" | tr -d " " | tr , "\n" | grep -qx dovecot-core &&
	       echo "$1" | tr -d " " | tr , "\n" | grep -qx dovecot-sieve' sh "$depends" "$abi"

if command -v lintian >/dev/null; then
	if lintian --fail-on error "$work"/*.changes > "$work/lintian.out" 2>&1; then
		result PASS "lintian: no errors" "$(grep -c '^W:' "$work/lintian.out" || true) warnings"
	else
		result FAIL "lintian: no errors"
	fi
	sed 's/^/package-test: lintian: /' "$work/lintian.out"
else
	result SKIP "lintian" "not installed"
fi

# 4. install it as an admin would, and look at what it put where
conf_before=$(doveconf -n 2>&1) || conf_before=
installed_packages > "$work/packages.before"
policy_on
installed_here=yes
if apt-get install -y -q --no-install-recommends "$deb" > "$work/install.out" 2>&1; then
	result PASS "apt-get install ./$(basename "$deb")"
else
	result FAIL "apt-get install ./$(basename "$deb")"
	tail -20 "$work/install.out"
	exit 1
fi
policy_off
installed_packages > "$work/packages.installed"
dpkg -L "$pkg" | sort > "$work/files"
echo "package-test: installed files:"
while read -r f; do [ -d "$f" ] || echo "  $f"; done < "$work/files"

has() { grep -qx "$1" "$work/files"; }
check "Sieve plugin in $moduledir/sieve" has "$moduledir/sieve/lib90_sieve_dmarcreport_plugin.so"
check "doveadm plugin in $moduledir/doveadm" has "$moduledir/doveadm/lib20_doveadm_dmarcreport_plugin.so"
check "no libtool archives" sh -c '! grep -q "\.la$" "$1"' sh "$work/files"
check "man pages" sh -c 'grep -q "^/usr/share/man/man1/doveadm-dmarc\.1" "$1" &&
			 grep -q "^/usr/share/man/man7/dovecot-dmarcreport\.7" "$1"' sh "$work/files"
for s in "$src"/sieve-scripts/*.sieve; do
	check "example $(basename "$s")" has "/usr/share/doc/$pkg/examples/$(basename "$s")"
done
check "copyright" has "/usr/share/doc/$pkg/copyright"
conf=/etc/dovecot/conf.d/90-dmarcreport.conf
check "conf snippet $conf, a conffile" sh -c \
	'dpkg-query -W -f="\${Conffiles}\n" "$1" | grep -q "^ *$2 "' sh "$pkg" "$conf"
check "conf snippet written for Dovecot $series" \
	cmp -s "$conf" "$src/doc/conf.d/$series/90-dmarcreport.conf"
check "conf snippet off: only comments" sh -c '! grep -qv "^[[:space:]]*\(#.*\)\?$" "$1"' sh "$conf"
if [ -n "$conf_before" ]; then
	check "conf snippet off: doveconf -n unchanged" sh -c '[ "$(doveconf -n 2>&1)" = "$1" ]' sh "$conf_before"
fi
case $series in
2.3)	check "no settings module on 2.3" sh -c '! grep -q "^$1/settings/." "$2"' sh "$moduledir" "$work/files" ;;
*)	check "settings module in $moduledir/settings" \
		sh -c 'grep -q "^$1/settings/.*\.so$" "$2"' sh "$moduledir" "$work/files" ;;
esac
check "doveadm loads the installed plugin" sh -c \
	'doveadm -D help 2>&1 | grep -qF "Module loaded: $1/doveadm/lib20_doveadm_dmarcreport_plugin.so"' \
	sh "$moduledir"

# 5. the e2e suite against the installed plugins: the copy's build dir
# serves the test scripts and the automake harness only; its plugin .so
# files are deleted so nothing can load them
find "$src" -name '*.so' -delete
check "no plugin .so left in the build dir" sh -c '[ -z "$(find "$1" -name "*.so*")" ]' sh "$src"
start=$(date +%s)
E2E_INSTALLED=1 CORPUS_DIR=$corpus make -C "$src/tests" check-TESTS TESTS='$(e2e_tests)' \
	> "$work/e2e.out" 2>&1 || true
e2e_seconds=$(($(date +%s) - start))
n=0
for trs in "$src"/tests/e2e/*.trs; do
	[ -f "$trs" ] || continue
	n=$((n + 1))
	name=e2e/$(basename "${trs%.trs}")
	r=$(sed -n 's/^:test-result: //p' "$trs" | head -1)
	case $r in
	PASS|SKIP) result "$r" "$name against the installed package" ;;
	*)	result FAIL "$name against the installed package"
		tail -40 "${trs%.trs}.log" ;;
	esac
done
[ "$n" -gt 0 ] || { result FAIL "e2e suite ran"; tail -30 "$work/e2e.out"; }
# a file skipped as a whole (no Chromium, no namespace) loads no plugin
check "every e2e file that ran used the installed plugins" sh -c \
	'for trs in "$2"/tests/e2e/*.trs; do
		grep -q "^:test-result: SKIP" "$trs" && continue
		grep -qF "dovetest: testing the installed plugins in $1" \
			"${trs%.trs}.log" || exit 1
	done' sh "$moduledir" "$src"
echo "package-test: e2e suite: $n files in $e2e_seconds s"

# 6. purge: no file of it stays, the package list is as before
purge
left=""
while read -r f; do
	[ -d "$f" ] || [ ! -e "$f" ] || left="$left $f"
done < "$work/files"
check "purge leaves no file of the package" [ -z "$left" ]
[ -z "$left" ] || echo "package-test: left:$left"
installed_packages > "$work/packages.after"
# What the install changed must be undone: what it added is gone, what it
# removed is back. A change made by anything else meanwhile is shown, not
# held against the package.
comm -13 "$work/packages.before" "$work/packages.installed" > "$work/packages.added"
comm -23 "$work/packages.before" "$work/packages.installed" > "$work/packages.removed"
still=$(comm -12 "$work/packages.added" "$work/packages.after" | tr '\n' ' ')
missing=$(comm -23 "$work/packages.removed" "$work/packages.after" | tr '\n' ' ')
echo "package-test: the install added: $(tr '\n' ' ' < "$work/packages.added")"
check "purge removes every package the install added" [ -z "$still" ]
check "purge leaves no package the install removed missing" [ -z "$missing" ]
if [ -n "$still$missing" ]; then
	echo "package-test: still installed: $still; missing: $missing"
	sed 's/^/package-test: install: /' "$work/install.out"
	sed 's/^/package-test: purge: /' "$work/purge.out"
fi
if ! cmp -s "$work/packages.before" "$work/packages.after"; then
	echo "package-test: note: the package list also changed outside the install and purge:"
	diff "$work/packages.before" "$work/packages.after" | sed 's/^/package-test: note: /'
fi

echo "package-test: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
