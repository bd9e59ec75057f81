#!/usr/bin/env bash
# Builds the three shipped artifacts, all from the portable build
# (scripts/build-portable.sh: at most GLIBC_2.17, so they install and load
# on Debian 11, Ubuntu 20.04, RHEL/Rocky/Alma 8, Amazon Linux 2, CentOS 7
# and every later glibc):
#
#   target/debian/keepalive_VERSION-1_ARCH.deb       Debian, Ubuntu (cargo-deb)
#   target/dist/keepalive-VERSION-1.ARCH.rpm          RHEL family (rpmbuild)
#   target/dist/keepalive-VERSION-ARCH-linux-gnu.tar.gz   anything else
#
# ($CARGO_TARGET_DIR instead of target/ if set.) The .deb puts the library
# in the multiarch directory, the .rpm in /usr/lib64 (so that
# LD_PRELOAD=libkeepalive.so works by bare name), both with a /usr/lib link
# for Debian libkeepalive0's path; /usr/bin/keepalive, both man pages and
# the systemd drop-in under /usr/share/doc/keepalive/. The tarball holds
# the same files and install.sh (PREFIX, DESTDIR as scripts/install.sh).
#
#   scripts/package.sh
#   sudo apt install ./target/debian/keepalive_*.deb
#   sudo dnf install ./target/dist/keepalive-*.rpm
#
# Tools: cargo-deb is installed once with `cargo install --locked cargo-deb`
# if it is missing; rpmbuild comes with Debian's rpm package. Extra
# arguments go to cargo deb.
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
if ! command -v rpmbuild >/dev/null; then
    echo "package.sh: rpmbuild not found; install it with: apt-get install -y rpm" >&2
    exit 1
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
machine=${multiarch%%-*}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)

target=${CARGO_TARGET_DIR:-$PWD/target}
scripts/build-portable.sh >/dev/null
portable="$target/portable"

# The glibc floor: the newest GLIBC_ version the shipped files ask for,
# which the packages' libc dependency must state exactly (not cargo-deb's
# $auto, which read the build machine's glibc instead).
floor=$(objdump -T "$portable/libkeepalive.so" "$portable/keepalive" |
    grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
stated=$(sed -n 's/^depends = "libc6 (>= \([0-9.]*\)).*"$/\1/p' Cargo.toml)
if [ "$floor" != "$stated" ]; then
    echo "package.sh: the shipped files need glibc $floor but Cargo.toml's depends states" \
        "libc6 (>= $stated): make them agree" >&2
    exit 1
fi

# The drop-in, pointing at the packaged library. cargo-deb maps the
# target/release/ prefix of an asset onto the real target directory.
mkdir -p "$target/release"
sed "s|/usr/local/lib/libkeepalive.so|/usr/lib/$multiarch/libkeepalive.so|g" \
    scripts/systemd/keepalive.conf >"$target/release/keepalive-systemd.conf"
cargo deb --no-build --variant "$arch" "$@"

dist="$target/dist"
mkdir -p "$dist"

# The tarball: keepalive-VERSION-ARCH-linux-gnu/ with install.sh at its top.
name="keepalive-$version-$multiarch"
stage=$(mktemp -d "$dist/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
top="$stage/$name"
install -D -m 0755 scripts/install.sh "$top/install.sh"
install -D -m 0644 "$portable/libkeepalive.so" "$top/lib/libkeepalive.so"
install -D -m 0755 "$portable/keepalive" "$top/bin/keepalive"
install -D -m 0644 man/keepalive.1 "$top/man/keepalive.1"
install -D -m 0644 man/libkeepalive.8 "$top/man/libkeepalive.8"
install -D -m 0644 scripts/systemd/keepalive.conf "$top/systemd/keepalive.conf"
if [ -f scripts/systemd/keepalive-agent.service ]; then
    install -D -m 0644 scripts/systemd/keepalive-agent.service "$top/systemd/keepalive-agent.service"
fi
install -D -m 0644 scripts/systemd/keepalive-attach@.service "$top/systemd/keepalive-attach@.service"
install -m 0644 README.md LICENSE "$top/"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$dist/$name.tar.gz.new" "$name"
mv -f "$dist/$name.tar.gz.new" "$dist/$name.tar.gz"
echo "$dist/$name.tar.gz"

# The .rpm: rpmbuild packs a staged tree (nothing is compiled in the spec).
root="$stage/rpm/root"
install -D -m 0644 "$portable/libkeepalive.so" "$root/usr/lib64/libkeepalive.so"
mkdir -p "$root/usr/lib"
ln -s ../lib64/libkeepalive.so "$root/usr/lib/libkeepalive.so"
install -D -m 0755 "$portable/keepalive" "$root/usr/bin/keepalive"
install -D -m 0644 man/keepalive.1 "$root/usr/share/man/man1/keepalive.1"
install -D -m 0644 man/libkeepalive.8 "$root/usr/share/man/man8/libkeepalive.8"
install -d "$root/usr/share/doc/keepalive"
sed "s|/usr/local/lib/libkeepalive.so|/usr/lib64/libkeepalive.so|g" \
    scripts/systemd/keepalive.conf >"$root/usr/share/doc/keepalive/keepalive.conf"
install -m 0644 README.md LICENSE "$root/usr/share/doc/keepalive/"
install -m 0644 scripts/systemd/keepalive-attach@.service "$root/usr/share/doc/keepalive/"
agent_unit=""
if [ -f scripts/systemd/keepalive-agent.service ]; then
    install -m 0644 scripts/systemd/keepalive-agent.service "$root/usr/share/doc/keepalive/"
    agent_unit=/usr/share/doc/keepalive/keepalive-agent.service
fi
cat >"$stage/rpm/keepalive.spec" <<EOF
Name: keepalive
Version: $version
Release: 1
Summary: LD_PRELOAD library that turns on TCP keepalive in unmodified programs
License: MIT
# The shipped files ask for at most GLIBC_$floor (scripts/build-portable.sh).
Requires: glibc >= $floor
# The library's unwinder (build.rs): RHEL's libgcc.
Requires: libgcc
Conflicts: libkeepalive
AutoReqProv: no

%description
libkeepalive.so, preloaded with LD_PRELOAD, turns on TCP keepalive, with the
timers and TCP_USER_TIMEOUT given in environment variables, on the TCP
sockets of programs that cannot be changed. The keepalive command runs a
program with the library preloaded and checks the settings. A drop-in for
systemd services is in /usr/share/doc/keepalive/.

%install
cp -a "$root/." "%{buildroot}/"

%files
/usr/lib64/libkeepalive.so
/usr/lib/libkeepalive.so
/usr/bin/keepalive
/usr/share/man/man1/keepalive.1*
/usr/share/man/man8/libkeepalive.8*
%dir /usr/share/doc/keepalive
/usr/share/doc/keepalive/keepalive.conf
/usr/share/doc/keepalive/README.md
/usr/share/doc/keepalive/keepalive-attach@.service
$agent_unit
%license /usr/share/doc/keepalive/LICENSE
EOF
rpmbuild -bb --quiet \
    --define "_topdir $stage/rpm/top" \
    --define "_build_id_links none" \
    --define "__strip /bin/true" \
    --define "__os_install_post %{nil}" \
    --target "$machine-linux" \
    "$stage/rpm/keepalive.spec" >"$stage/rpm/log" 2>&1 || {
    cat "$stage/rpm/log" >&2
    exit 1
}
rpm="keepalive-$version-1.$machine.rpm"
mv -f "$stage/rpm/top/RPMS/$machine/$rpm" "$dist/$rpm"
echo "$dist/$rpm"
