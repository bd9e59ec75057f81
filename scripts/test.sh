#!/usr/bin/env bash
# The one test command (CI's .ci/run calls it): installs what the suite
# needs on Debian/Ubuntu when run as root, otherwise names the missing
# packages and fails; then checks formatting and lints, builds the release
# library and command, and runs every test. Nothing is skipped: a test whose
# tool is missing fails with the command that installs it.
#
# What it installs and changes, as root: the Debian packages listed in
# REQUIRED (apt-get), cargo-deb and cargo-zigbuild (cargo install, once, into
# ~/.cargo/bin), ziglang, check-jsonschema and kubernetes-validate (pip,
# once), and a Debian 11 root for tests/bullseye.rs, made once with
# debootstrap (about two minutes, from deb.debian.org) and kept in
# /var/cache/keepalive-tests/bullseye (scripts/bullseye-root.sh). The package test
# installs and purges this project's .deb (apt), which removes Debian's
# libkeepalive0 and puts it back afterwards if it was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's PATH for users lacks the sbin directories where nft, sysctl and
# ip live; the tests look there too.
export PATH="$PATH:/usr/sbin:/sbin"

# command  Debian package
REQUIRED="
gcc gcc
objcopy binutils
nc netcat-openbsd
socat socat
curl curl
ip iproute2
ss iproute2
nstat iproute2
nft nftables
strace strace
valgrind valgrind
setpriv util-linux
sysctl procps
systemd-analyze systemd
systemd-socket-activate systemd
man man-db
/usr/bin/time time
/usr/bin/python3 python3
perl perl
java openjdk-17-jdk-headless
node nodejs
lintian lintian
dpkg-shlibdeps dpkg-dev
pip3 python3-pip
go golang-go
unshare util-linux
/usr/include/liburing.h liburing-dev
objdump binutils
readelf binutils
rpmbuild rpm
musl-gcc musl-tools
bpftool bpftool
podman podman
runc runc
debootstrap debootstrap
flock util-linux
"

missing_packages() {
    echo "$REQUIRED" | while read -r cmd package; do
        [ -n "$cmd" ] || continue
        # A command, or (absolute path) a file such as a header.
        command -v "$cmd" >/dev/null 2>&1 || [ -f "$cmd" ] || echo "$package"
    done | sort -u | tr '\n' ' '
    # The sanitizer tests preload gcc's AddressSanitizer runtime.
    if command -v gcc >/dev/null 2>&1 && [ ! -e "$(gcc -print-file-name=libasan.so)" ]; then
        echo libasan8
    fi
    # The tests rely on OpenBSD netcat's behaviour, not another nc's.
    if command -v nc >/dev/null 2>&1 && ! nc -h 2>&1 | grep -q OpenBSD; then
        echo netcat-openbsd
    fi
}

missing=$(missing_packages)
if [ -n "${missing// /}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing $missing"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
        if command -v nc >/dev/null && ! nc -h 2>&1 | grep -q OpenBSD; then
            update-alternatives --set nc /bin/nc.openbsd
        fi
    else
        echo "test.sh: missing tools; install them with:" >&2
        echo "    sudo apt-get install -y $missing" >&2
        exit 1
    fi
fi
# Build and validation tools from crates.io and PyPI, installed once and
# reused: cargo install and pip only run when the command is missing.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "test.sh: installing cargo-deb (once): cargo install --locked cargo-deb"
    cargo install --locked --quiet cargo-deb
fi
# The shipped build (scripts/build-portable.sh, tests/linking.rs, package.rs,
# bullseye.rs, musl.rs): cargo-zigbuild, and zig from PyPI, which
# cargo-zigbuild runs as `python3 -m ziglang`.
if ! cargo zigbuild --help >/dev/null 2>&1; then
    echo "test.sh: installing cargo-zigbuild (once): cargo install --locked cargo-zigbuild"
    cargo install --locked --quiet cargo-zigbuild
fi
if ! command -v zig >/dev/null && ! python3 -m ziglang version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "test.sh: installing zig (once): pip3 install ziglang"
        pip3 install --quiet ziglang 2>/dev/null ||
            pip3 install --quiet --break-system-packages ziglang
    else
        echo "test.sh: zig not found; install it with: pip3 install --user ziglang" >&2
        exit 1
    fi
fi
for tool in check-jsonschema kubernetes-validate; do
    if ! command -v "$tool" >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            echo "test.sh: installing $tool (once): pip3 install $tool"
            # Debian 12 marks its Python as externally managed.
            pip3 install --quiet "$tool" 2>/dev/null ||
                pip3 install --quiet --break-system-packages "$tool"
        else
            echo "test.sh: $tool not found; install it with: pip3 install --user $tool" >&2
            exit 1
        fi
    fi
done

if [ "$(id -u)" != 0 ]; then
    # sudo's secure_path drops ~/.cargo/bin, and with it cargo: pass PATH on.
    echo "test.sh: note: the network-namespace, setuid, socket-activation and package tests" >&2
    echo "         need root; as $(id -un) they will fail saying so. Run:" >&2
    echo "             sudo -E env \"PATH=\$PATH\" scripts/test.sh" >&2
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo build --release --quiet
cargo test --workspace --all-targets
