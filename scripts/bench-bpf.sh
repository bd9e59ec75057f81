#!/usr/bin/env bash
# The kernel-side mode's cost (issue 12), as Markdown rows: a loopback
# connect()+accept()+close() pair (tests/c/bench.c "pair") outside any
# attachment, with the program setting the options itself (the floor), and
# inside `keepalive --bpf`: with the global settings only, and with 64 rules
# that no loopback connection matches (the worst walk). Inside, both the
# connected and the accepted socket get the options from the kernel.
# Every figure is the median of interleaved rounds; each ratio is the ratio
# of the medians printed beside it, against "outside". Needs root, cargo and gcc; bench.sh
# calls it when run as root.
#
# Environment: BENCH_ROUNDS (default 31), BENCH_PAIRS (default 2000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-31}
pairs=${BENCH_PAIRS:-2000}
[ "$(id -u)" = 0 ] || { echo "bench-bpf.sh: needs root (the kernel-side mode attaches eBPF programs)" >&2; exit 1; }

echo "building..." >&2
(cd "$root" && cargo build --release --bin keepalive --quiet)
keepalive="$root/target/release/keepalive"
work="$root/target/bench"
mkdir -p "$work"
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" "$root/tests/c/bench.c"
bench="$work/bench"

timers=(--idle 60 --interval 10 --count 6)
rules=()
for i in $(seq 1 63); do rules+=(--rule "net=10.$i.0.0/16,port=5432:idle=30"); done
rules+=(--rule "dir=in,net=192.168.0.0/16:off")

run_variant() { # variant
    case $1 in
    outside) "$bench" pair "$pairs" ;;
    floor) "$bench" pair "$pairs" keepalive=1 idle=60 intvl=10 cnt=6 ;;
    inside) "$keepalive" --bpf "${timers[@]}" "$bench" pair "$pairs" ;;
    inside-64-rules) "$keepalive" --bpf "${timers[@]}" "${rules[@]}" "$bench" pair "$pairs" ;;
    esac
}

variants=(outside floor inside inside-64-rules)
results="$work/bpf-results"
: >"$results"
for round in $(seq 1 "$rounds"); do
    for k in "${!variants[@]}"; do
        variant=${variants[$(((k + round) % ${#variants[@]}))]}
        echo "$variant $round $(run_variant "$variant")" >>"$results"
    done
done

median() { # variant
    awk -v v="$1" '$1 == v { print $3 }' "$results" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
# The ratio of the two medians printed beside it, as in bench.sh: one
# method, so a row's time and ratio never disagree.
ratio() { # variant base
    awk -v n="$(median "$1")" -v d="$(median "$2")" 'BEGIN { printf "%.3f", n / d }'
}

echo "| loopback connect+accept+close, $pairs pairs x $rounds rounds | ns/pair | vs outside |"
echo "|---|---|---|"
for variant in "${variants[@]}"; do
    case $variant in
    outside) label="outside the cgroup, no keepalive" ;;
    floor) label="outside, the program sets the options itself (floor)" ;;
    inside) label="inside keepalive --bpf (global settings)" ;;
    inside-64-rules) label="inside keepalive --bpf, 64 rules, none matching" ;;
    esac
    printf '| %s | %.0f | %s |\n' "$label" "$(median "$variant")" "$(ratio "$variant" outside)"
done
