#!/bin/sh
# The demo: installs what is missing (as root), builds, starts a private
# Dovecot on 127.0.0.1 with the plugin, delivers sample DMARC reports over
# LMTP and shows what `doveadm dmarc` says about them. Leaves the system's
# Dovecot alone and removes its temp dir at the end (KEEP_E2E=1 keeps it).
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$top/build}

"$top/tools/deps.sh"
"$top/tools/build.sh"
top_srcdir=$top top_builddir=$BUILD_DIR exec python3 "$top/tools/demo.py" "$@"
