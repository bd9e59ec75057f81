#!/usr/bin/env bash
# The kernel-side mode's cost (issues 12 and 19), as Markdown rows: a
# loopback connect()+accept()+close() pair (tests/c/bench.c) outside any
# attachment; the floor, a program making the same option calls the mode
# makes (the four options on both ends of each pair: 8 setsockopt calls,
# `bench pair-both`); and inside `keepalive --bpf`: with the global settings,
# the same with --override, and with 64 rules that no loopback connection
# matches (the worst walk). Every figure is the median of interleaved
# rounds; each ratio is the ratio of the medians printed beside it, against
# "outside".
#
# Then the programs' own run time, as the kernel counts it
# (kernel.bpf_stats_enabled, switched on only for that measurement and put
# back on exit): our programs attached to a cgroup of this script's, the
# same pairs run in it, run_time_ns / run_cnt of each program.
#
# Needs root, cargo, gcc and bpftool; bench.sh calls it when run as root.
# Environment: BENCH_ROUNDS (default 31), BENCH_PAIRS (default 2000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-31}
pairs=${BENCH_PAIRS:-2000}
[ "$(id -u)" = 0 ] || { echo "bench-bpf.sh: needs root (the kernel-side mode attaches eBPF programs)" >&2; exit 1; }
PATH="$PATH:/usr/sbin:/sbin"
if ! command -v bpftool >/dev/null; then
    echo "installing bpftool (apt-get install -y bpftool)..." >&2
    apt-get install -y -qq bpftool >/dev/null 2>&1 ||
        { echo "bench-bpf.sh: bpftool not found: apt-get install -y bpftool" >&2; exit 1; }
fi

echo "building..." >&2
(cd "$root" && cargo build --release --bin keepalive --quiet)
keepalive="$root/target/release/keepalive"
work="$root/target/bench"
mkdir -p "$work"
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" "$root/tests/c/bench.c"
bench="$work/bench"

timers=(--idle 60 --interval 10 --count 6)
floor=(keepalive=1 idle=60 intvl=10 cnt=6)
rules=()
for i in $(seq 1 63); do rules+=(--rule "net=10.$i.0.0/16,port=5432:idle=30"); done
rules+=(--rule "dir=in,net=192.168.0.0/16:off")

run_variant() { # variant
    case $1 in
    outside) "$bench" pair "$pairs" ;;
    floor) "$bench" pair-both "$pairs" "${floor[@]}" ;;
    inside) "$keepalive" --bpf "${timers[@]}" "$bench" pair "$pairs" ;;
    inside-override) "$keepalive" --bpf --override "${timers[@]}" "$bench" pair "$pairs" ;;
    inside-64-rules) "$keepalive" --bpf "${timers[@]}" "${rules[@]}" "$bench" pair "$pairs" ;;
    esac
}

variants=(outside floor inside inside-override inside-64-rules)
# shellcheck source=scripts/bench-rounds.sh
. "$root/scripts/bench-rounds.sh"
interleave "$work/bpf-results" "$rounds" "${variants[@]}"

echo "| loopback connect+accept+close, $pairs pairs x $rounds rounds | ns/pair | vs outside |"
echo "|---|---|---|"
for variant in "${variants[@]}"; do
    case $variant in
    outside) label="outside the cgroup, no keepalive" ;;
    floor) label="outside, the program sets the 4 options on both ends itself (floor: 8 calls)" ;;
    inside) label="inside keepalive --bpf (global settings)" ;;
    inside-override) label="inside keepalive --bpf --override" ;;
    inside-64-rules) label="inside keepalive --bpf, 64 rules, none matching" ;;
    esac
    printf '| %s | %.0f | %s |\n' "$label" "$(median "$variant")" "$(ratio "$variant" outside)"
done

# The programs' own run time. The statistics cost every eBPF program on the
# host a little, so they are on only from here to the end, then put back.
cgroup_root=$(awk '$9 == "cgroup2" && $4 == "/" { print $5; exit }' /proc/self/mountinfo)
[ -n "$cgroup_root" ] || { echo "bench-bpf.sh: no cgroup2 mounted" >&2; exit 1; }
cgroup="$cgroup_root/keepalive-bench-$$"
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    sysctl -qw kernel.bpf_stats_enabled="$stats_before"
    [ -d "$cgroup" ] && rmdir "$cgroup" 2>/dev/null || true
}
trap cleanup EXIT
mkdir "$cgroup"
"$keepalive" --attach "$cgroup" "${timers[@]}" 2>/dev/null
prog_id() { # attach type as bpftool names it
    bpftool cgroup show "$cgroup" | awk -v t="$1" '$2 == t { print $1; exit }'
}
ops=$(prog_id cgroup_sock_ops)
sso=$(prog_id cgroup_setsockopt)
counters() { # prog id -> "run_time_ns run_cnt"
    bpftool prog show id "$1" | tr -s ' ' '\n' | awk '
        prev == "run_time_ns" { t = $1 } prev == "run_cnt" { c = $1 } { prev = $1 }
        END { print (t ? t : 0), (c ? c : 0) }'
}
sysctl -qw kernel.bpf_stats_enabled=1
read -r ops_t0 ops_c0 < <(counters "$ops")
read -r sso_t0 sso_c0 < <(counters "$sso")
# The floor's options set by the program inside: the setsockopt program
# sees each of its 8 calls per pair, and SO_LINGER.
sh -c 'echo 0 >"$1/cgroup.procs" && shift && exec "$@"' sh "$cgroup" \
    "$bench" pair-both "$pairs" "${floor[@]}" >/dev/null
read -r ops_t1 ops_c1 < <(counters "$ops")
read -r sso_t1 sso_c1 < <(counters "$sso")
sysctl -qw kernel.bpf_stats_enabled="$stats_before"
echo
echo "| our programs' own run time (kernel.bpf_stats_enabled), $pairs pairs + warm-up | runs | ns/run |"
echo "|---|---|---|"
awk -v t=$((ops_t1 - ops_t0)) -v c=$((ops_c1 - ops_c0)) \
    'BEGIN { printf "| sock_ops (every callback the kernel makes, several per connection) | %d | %.0f |\n", c, c ? t / c : 0 }'
awk -v t=$((sso_t1 - sso_t0)) -v c=$((sso_c1 - sso_c0)) \
    'BEGIN { printf "| setsockopt (each of the program'"'"'s calls) | %d | %.0f |\n", c, c ? t / c : 0 }'
