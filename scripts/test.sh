#!/usr/bin/env bash
# The one test command (CI's .ci/run calls it): installs what the suite
# needs on Debian/Ubuntu when run as root, otherwise names the missing
# packages and fails; then checks formatting and lints, builds the release
# library and command, and runs every test. Nothing is skipped: a test whose
# tool is missing fails with the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/.."

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
go golang-go
unshare util-linux
/usr/include/liburing.h liburing-dev
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
if [ "$(id -u)" != 0 ]; then
    echo "test.sh: note: the network-namespace, setuid and socket-activation tests need root;" >&2
    echo "         as $(id -un) they will fail saying so. Run: sudo -E scripts/test.sh" >&2
fi

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo build --release --quiet
cargo test --all-targets
