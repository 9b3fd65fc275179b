#!/bin/sh
# Builds dovecot-dmarcreport out of tree in $BUILD_DIR (default: build/).
# Extra arguments go to configure, e.g. --enable-sanitizers.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}

cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi >/dev/null
mkdir -p "$build"
cd "$build"
"$top/configure" --enable-werror "$@" >configure.out 2>&1 ||
	{ tail -30 configure.out; exit 1; }
make -j"$(nproc)" >make.out 2>&1 || { grep -B2 -A8 -E 'error|Error' make.out | head -60; exit 1; }
echo "build.sh: built in $build"
