#!/usr/bin/env bash
# Shows a real, unmodified program getting TCP keepalive: an OpenBSD nc
# listener and an nc client on 127.0.0.1, both under libkeepalive.so, and the
# kernel's view of their connection (`ss -tno`). Then the same without the
# library, for contrast. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "demo: $1 not found: apt-get install -y $2" >&2; exit 1; }; }
# Debian 12 has no rustup package and its rustc (1.63) is older than the
# 1.80 this crate needs: rustup's installer is the way.
need_cargo() {
    command -v cargo >/dev/null && return
    echo "demo: cargo not found: install Rust 1.80 or later with rustup:" >&2
    echo "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    echo "then open a new shell (or: . \"\$HOME/.cargo/env\")." >&2
    exit 1
}
need_cargo
need nc netcat-openbsd
need ss iproute2

cargo build --release --quiet
LIBRARY="$PWD/target/release/libkeepalive.so"
PORT=${DEMO_PORT:-$((40000 + RANDOM % 20000))}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Starts a listener and a client (with LD_PRELOAD=$1, empty for none), waits
# for their connection, and prints its two `ss` lines.
show_connection() {
    local preload=$1 port=$2
    env ${preload:+LD_PRELOAD="$preload"} KEEPIDLE=60 KEEPINTVL=10 KEEPCNT=6 \
        nc -l 127.0.0.1 "$port" >/dev/null &
    pids+=($!)
    for _ in $(seq 50); do ss -tlnH | grep -q "127.0.0.1:$port " && break; sleep 0.1; done
    # -d: the client reads no stdin, so the connection stays open and idle.
    env ${preload:+LD_PRELOAD="$preload"} KEEPIDLE=60 KEEPINTVL=10 KEEPCNT=6 \
        nc -d 127.0.0.1 "$port" >/dev/null </dev/null &
    pids+=($!)
    for _ in $(seq 50); do
        [ "$(ss -tnoH state established "( sport = :$port or dport = :$port )" | wc -l)" -ge 2 ] && break
        sleep 0.1
    done
    sleep 1
    ss -tnoH state established "( sport = :$port or dport = :$port )" | sed 's/^/    /'
}

echo "With the library: LD_PRELOAD=$LIBRARY KEEPIDLE=60 KEEPINTVL=10 KEEPCNT=6 nc ..."
show_connection "$LIBRARY" "$PORT"
echo
echo "Without it (same nc, same variables):"
show_connection "" "$((PORT + 1))"
echo
echo "timer:(keepalive,58sec,0) means: the first probe goes out after 60 s of silence,"
echo "then every 10 s; after 6 unanswered probes the connection is dropped."
echo "Without the library there is no timer: a dead peer is never noticed."
