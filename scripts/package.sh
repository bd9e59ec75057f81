#!/usr/bin/env bash
# Builds the Debian package target/debian/keepalive_VERSION-1_ARCH.deb (or
# $CARGO_TARGET_DIR/debian/) with cargo-deb, from [package.metadata.deb] in
# Cargo.toml. Contents: the library in the multiarch directory (so that
# LD_PRELOAD=libkeepalive.so works by bare name) with a /usr/lib link for
# Debian libkeepalive0's path, /usr/bin/keepalive, both man pages, and the
# systemd drop-in under /usr/share/doc/keepalive/.
#
#   scripts/package.sh                 # builds the release and the package
#   sudo apt install ./target/debian/keepalive_*.deb
#
# cargo-deb is installed once with `cargo install --locked cargo-deb` if it
# is missing (a few minutes), then reused. Extra arguments go to cargo deb.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "package.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "package.sh: installing cargo-deb (once): cargo install --locked cargo-deb"
    cargo install --locked --quiet cargo-deb
fi

# The multiarch directory of each architecture with a variant in Cargo.toml.
arch=$(dpkg --print-architecture)
case "$arch" in
    amd64) multiarch=x86_64-linux-gnu ;;
    arm64) multiarch=aarch64-linux-gnu ;;
    *)
        echo "package.sh: no package variant for $arch; add [package.metadata.deb.variants.$arch]" \
            "to Cargo.toml, as for amd64" >&2
        exit 1 ;;
esac

target=${CARGO_TARGET_DIR:-$PWD/target}
# The drop-in, pointing at the packaged library. cargo-deb maps the
# target/release/ prefix of an asset onto the real target directory.
mkdir -p "$target/release"
sed "s|/usr/local/lib/libkeepalive.so|/usr/lib/$multiarch/libkeepalive.so|g" \
    scripts/systemd/keepalive.conf >"$target/release/keepalive-systemd.conf"

cargo deb --variant "$arch" "$@"
