#!/usr/bin/env bash
# Prints the path of a Debian 11 (bullseye, glibc 2.31) root for the tests
# of the portable build (tests/bullseye.rs), building it once if it is not
# there: debootstrap --variant=minbase from Debian's mirror, about two
# minutes; the tests run its own programs (bash, perl, dpkg). Cached under
# BULLSEYE_ROOT (default /var/cache/keepalive-tests/bullseye) and
# reused by every later run.
#
# Built atomically: debootstrap fills a temporary directory beside the cache,
# which is renamed into place only once complete, so an interrupted build is
# never reused (its leftovers, *.partial.*, are removed by the next run).
# Concurrent runs serialise on a lock; the loser finds the winner's root.
set -euo pipefail

root=${BULLSEYE_ROOT:-/var/cache/keepalive-tests/bullseye}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
parent=$(dirname "$root")

if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi
if ! command -v debootstrap >/dev/null; then
    echo "bullseye-root.sh: debootstrap not found; install it with: apt-get install -y debootstrap" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "bullseye-root.sh: building the bullseye root needs root (debootstrap, chroot)" >&2
    exit 1
fi
mkdir -p "$parent"
exec 9>"$root.lock"
flock 9
if [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi
# Leftovers of interrupted builds (none can be running: we hold the lock).
rm -rf "$root".partial.*
partial="$root.partial.$$"
echo "bullseye-root.sh: building $root (once, about two minutes)" >&2
debootstrap --variant=minbase bullseye "$partial" "$mirror" >"$partial.log" 2>&1 || {
    echo "bullseye-root.sh: debootstrap failed; its log:" >&2
    tail -20 "$partial.log" >&2
    rm -rf "$partial" "$partial.log"
    exit 1
}
rm -f "$partial.log"
# Downloaded .debs are not needed again.
rm -rf "$partial"/var/cache/apt/archives/*.deb
touch "$partial/.complete"
rm -rf "$root"
mv "$partial" "$root"
echo "$root"
