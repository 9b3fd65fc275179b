#!/bin/sh
# Makes (or brings up to date) a Debian 13 "trixie" chroot with Dovecot 2.4
# and everything building and testing dovecot-dmarcreport needs, for the
# Dovecot 2.4 stage of tools/test.sh. Run as root on the Debian 12 host.
#   tools/chroot-trixie.sh [ROOT]     default ROOT: $DOVECOT24_CHROOT or
#                                     /var/cache/dovecot-dmarcreport/trixie
# The chroot is kept between runs (a re-run takes seconds); it is a cache:
# removing it only costs the next run about a minute.
set -e
root=${1:-${DOVECOT24_CHROOT:-/var/cache/dovecot-dmarcreport/trixie}}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# the same list as tools/deps.sh (but valgrind: stage 2 runs on the host
# only), for the chroot's own Debian; chromium renders the report test's
# pages against Dovecot 2.4 too
packages="autoconf automake libtool pkg-config make gcc
dovecot-dev dovecot-core dovecot-lmtpd dovecot-sieve
libsqlite3-dev libxml2-dev libarchive-dev zlib1g-dev
python3 sqlite3 libxml2-utils util-linux
chromium"
packages="$packages $EXTRA_PACKAGES"

if [ ! -x "$root/usr/bin/apt-get" ]; then
	command -v debootstrap >/dev/null || {
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1; } ||
		{ echo "chroot-trixie.sh: cannot install debootstrap" >&2; exit 1; }
	}
	rm -rf "$root.new"
	mkdir -p "$root.new"
	debootstrap --variant=minbase trixie "$root.new" "$mirror" >"$root.new.log" 2>&1 ||
		{ tail -20 "$root.new.log"; exit 1; }
	rm -f "$root.new.log"
	cat > "$root.new/etc/apt/sources.list" <<EOS
deb $mirror trixie main
deb $mirror trixie-updates main
deb http://security.debian.org/debian-security trixie-security main
EOS
	# the packages must not start the chroot's own Dovecot
	printf '#!/bin/sh\nexit 101\n' > "$root.new/usr/sbin/policy-rc.d"
	chmod 755 "$root.new/usr/sbin/policy-rc.d"
	# only a complete chroot gets the real name, so an interrupted run starts over
	mv "$root.new" "$root"
fi

cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# The host's names, so that a lookup of this machine's own name (smtplib,
# Dovecot's hostname) is answered here, not by a DNS query that times out
# after 5 s without a network.
cp /etc/hosts "$root/etc/hosts" 2>/dev/null || true
missing=$(chroot "$root" sh -c "for p in $(echo $packages); do
	dpkg-query -W -f='\${Status}' \$p 2>/dev/null | grep -q 'install ok installed' || echo \$p
done")
if [ -n "$missing" ]; then
	chroot "$root" sh -c "export DEBIAN_FRONTEND=noninteractive;
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(echo $missing)" \
		>"$root/apt.log" 2>&1 || { tail -20 "$root/apt.log"; exit 1; }
fi
echo "chroot-trixie.sh: $root: $(chroot "$root" dovecot --version)"
