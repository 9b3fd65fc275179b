#!/bin/sh
# Installs what building and testing dovecot-dmarcreport needs on Debian 12
# or 13 (run as root). Installs nothing when everything is already there.
set -e

PACKAGES="
autoconf automake libtool pkg-config make gcc
dovecot-dev dovecot-core dovecot-lmtpd dovecot-sieve
libsqlite3-dev libxml2-dev libarchive-dev zlib1g-dev
python3 sqlite3 libxml2-utils util-linux valgrind
chromium
"
# extra packages for a caller, e.g. clang for the fuzzer
PACKAGES="$PACKAGES $*"

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Do not let the packages start the system's Dovecot: the tests and the demo
# run their own private instance.
policy=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	created_policy=yes
fi
apt-get install -y -qq --no-install-recommends $missing
[ "$created_policy" = yes ] && rm -f "$policy"
exit 0
