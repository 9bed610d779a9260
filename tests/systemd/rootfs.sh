#!/usr/bin/env bash
# Builds (once) the Debian 12 root filesystem the systemd machine boots: what a Vagrant
# "debian/bookworm64" box holds that matters here (systemd as PID 1, sudo, openssh-server, rsync,
# python3), from the Debian mirror apt uses on this host.  Cached under $CACHE/rootfs; rebuilt
# only when this script or the package list below changes (their hash is kept in $CACHE/rootfs.key).
# Usage: rootfs.sh CACHE_DIR        prints the rootfs path on its last line
set -euo pipefail
cache=${1:?usage: rootfs.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)

# What a Debian cloud/Vagrant box has and the workshop path uses; minstack installs everything else.
PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,iproute2,ifupdown,sudo,python3,rsync,openssh-server,ca-certificates,iputils-ping,procps,netbase,kmod,less,curl,locales-all

# The mirror apt uses here: the first http(s) URI of the sources listing bookworm.
mirror=$(grep -rhoE '^(URIs:|deb)[[:space:]]+https?://[^[:space:]]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
         | awk '{print $2}' | grep -v -e security -e nodesource -e google | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

FORMAT=1   # bump when what this script does to the tree changes
key=$(echo "$PACKAGES $mirror $FORMAT" | sha256sum | cut -c1-16)
if [ -f "$cache/rootfs.key" ] && [ "$(cat "$cache/rootfs.key")" = "$key" ] && [ -x "$cache/rootfs/usr/lib/systemd/systemd" ]; then
    echo "rootfs: cached ($cache/rootfs, key $key)" >&2
    echo "$cache/rootfs"; exit 0
fi

command -v debootstrap >/dev/null || {
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap >/dev/null
}
mkdir -p "$cache"
rm -rf "$cache/rootfs.new" "$cache/rootfs.key"
start=$(date +%s)
echo "rootfs: debootstrap bookworm from $mirror into $cache/rootfs.new" >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$cache/rootfs.new" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
# apt inside uses the same mirror, with bookworm-updates and security like a box's sources.list
cat >"$cache/rootfs.new/etc/apt/sources.list" <<LIST
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
LIST
rm -rf "$cache/rootfs.new/var/cache/apt/archives/"*.deb
rm -rf "$cache/rootfs"
mv "$cache/rootfs.new" "$cache/rootfs"
echo "$key" >"$cache/rootfs.key"
echo "rootfs: built in $(( $(date +%s) - start )) s, $(du -sh "$cache/rootfs" | cut -f1)" >&2
echo "$cache/rootfs"
