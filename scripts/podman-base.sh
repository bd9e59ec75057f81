#!/usr/bin/env bash
# The base image of the podman tests: Debian 12 minbase, made once with
# debootstrap (no registry is reachable here) and cached as a tarball under
# a stable path, built atomically (a lock, a temporary directory, a rename),
# then imported into podman's storage as localhost/keepalive-test/bookworm
# if it is not there yet. Prints the image's name. Root only.
#
# Environment: CONTAINERS_CONF (podman's configuration, see tests/podman.rs).
set -euo pipefail

cache=/var/cache/keepalive-tests
tarball="$cache/bookworm-minbase.tar"
image=localhost/keepalive-test/bookworm:minbase
mkdir -p "$cache"
exec 9>"$cache/bookworm-minbase.lock"
flock 9
if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "podman-base.sh: apt-get install -y debootstrap" >&2; exit 1; }
    work=$(mktemp -d "$cache/bookworm-minbase.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    debootstrap --variant=minbase bookworm "$work/root" http://deb.debian.org/debian >"$work/log" 2>&1 ||
        { tail -20 "$work/log" >&2; exit 1; }
    tar -C "$work/root" -cf "$work/image.tar" .
    mv "$work/image.tar" "$tarball"
fi
if ! podman image exists "$image"; then
    podman import --quiet "$tarball" "$image" >/dev/null
fi
echo "$image"
