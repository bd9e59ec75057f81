#!/usr/bin/env bash
# Measures what libkeepalive costs and prints a Markdown table:
#   - socket()+close(): no library, the floor (the benchmark itself making
#     the very setsockopt calls the library makes), this library, and each
#     peer library present; each with its ratio to the floor; and, when
#     valgrind is installed, the exact user-space instructions of each;
#   - a loopback connect()+accept()+close() pair: no library, the floor
#     (options set by the program on its listener and client sockets), ours,
#     and ours with KEEPALIVE_RULES: four rules walked at each connect()
#     (inbound decided once at listen(): the same system calls as the
#     floor, so the difference is the matching), and the same rules applying
#     to inbound addresses too (each accepted connection is then decided
#     and configured on its own, after a getpeername: bench passes no
#     address to accept);
#   - start-up of /bin/true and its peak resident memory, with each library;
#   - the size of the stripped release library.
# Needs cargo, gcc, /usr/bin/time (package time); strace (cross-checks the
# floor) and valgrind (instruction counts) are used when present.
# Every figure is the median of interleaved rounds: each round runs every
# variant once, in a rotating order, so that a noisy neighbour slows all of
# them alike. Ratios are medians of per-round ratios; compare those rather
# than absolute times.
#
# Environment:
#   BENCH_PEERS       extra peer libraries, colon-separated paths (Debian's
#                     /usr/lib/libkeepalive.so is added when installed)
#   BENCH_ROUNDS      rounds (default 31)
#   BENCH_SOCKETS     socket()+close() iterations per run (default 20000)
#   BENCH_PAIRS       connections per run (default 2000)
#   BENCH_SPAWNS      /bin/true start-ups per run (default 200)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-31}
sockets=${BENCH_SOCKETS:-20000}
pairs=${BENCH_PAIRS:-2000}
spawns=${BENCH_SPAWNS:-200}

# The settings measured: three timers, so four setsockopt calls per socket.
# Every peer reads one of these spellings.
settings=(KEEPIDLE=60 KEEPINTVL=10 KEEPCNT=6)
peer_settings=("${settings[@]}" TCP_KEEPIDLE=60 TCP_KEEPINTVL=10 TCP_KEEPCNT=6
    DD_TCP_KEEPALIVE_TIME=60 DD_TCP_KEEPALIVE_INTVL=10 DD_TCP_KEEPALIVE_PROBES=6)
# The same calls, made by the benchmark itself.
floor_options=(keepalive=1 idle=60 intvl=10 cnt=6)
# A few rules that loopback connections walk to the end of; the last one
# gives them the floor's options. "rules" looks at outbound addresses only,
# "rules-peer" at inbound ones too.
rules_out="dir=out,net=10.0.0.0/8,port=5432:idle=30; dir=out,net=192.168.0.0/16:off; dir=out,net=fd00::/8:off; *:idle=60"
rules_peer="net=10.0.0.0/8,port=5432:idle=30; net=192.168.0.0/16:off; net=fd00::/8:off; *:idle=60"

need() {
    command -v "$1" >/dev/null || { echo "bench.sh: $1 is missing: apt-get install -y $2" >&2; exit 1; }
}
need cargo cargo
need gcc gcc
need awk gawk
[ -x /usr/bin/time ] || { echo "bench.sh: /usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }

echo "building..." >&2
(cd "$root" && cargo build --release --lib --quiet)
library="$root/target/release/libkeepalive.so"
work="$root/target/bench"
mkdir -p "$work"
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" "$root/tests/c/bench.c"
bench="$work/bench"

# Peers: a name for the table and a path.
peer_names=()
peer_paths=()
if [ -e /usr/lib/libkeepalive.so ]; then
    version=$(dpkg-query -W -f='${Version}' libkeepalive0 2>/dev/null || echo "?")
    peer_names+=("Debian libkeepalive0 $version")
    peer_paths+=(/usr/lib/libkeepalive.so)
else
    echo "note: Debian's libkeepalive0 is not installed (apt-get install -y libkeepalive0)" >&2
fi
IFS=: read -r -a extra_peers <<<"${BENCH_PEERS:-}"
for path in "${extra_peers[@]}"; do
    [ -n "$path" ] || continue
    [ -e "$path" ] || { echo "bench.sh: BENCH_PEERS: no such file $path" >&2; exit 1; }
    peer_names+=("$(basename "$path")")
    peer_paths+=("$path")
done

# Runs one variant once; prints ns per operation (or, under callgrind,
# nothing: the count is in the callgrind file). env -i keeps the shell's own
# LD_PRELOAD or KEEP* variables out of the measurement.
run_variant() { # section variant iterations [wrapper...]
    local section=$1 variant=$2 iterations=$3
    shift 3
    local setup=(env -i "PATH=$PATH") args=()
    case "$variant" in
    none) ;;
    floor) args=("${floor_options[@]}") ;;
    ours) setup+=("${settings[@]}" "LD_PRELOAD=$library") ;;
    rules) setup+=("${settings[@]}" "KEEPALIVE_RULES=$rules_out" "LD_PRELOAD=$library") ;;
    rules-peer) setup+=("${settings[@]}" "KEEPALIVE_RULES=$rules_peer" "LD_PRELOAD=$library") ;;
    peer*) setup+=("${peer_settings[@]}" "LD_PRELOAD=${peer_paths[${variant#peer}]}") ;;
    esac
    case "$section" in
    socket) "${setup[@]}" "$@" "$bench" socket "$iterations" "${args[@]}" ;;
    pair) "${setup[@]}" "$@" "$bench" pair "$iterations" "${args[@]}" ;;
    spawn) "${setup[@]}" "$@" "$bench" spawn "$iterations" /bin/true ;;
    esac
}
socket_variants=(none floor ours rules)
spawn_variants=(none ours)
for i in "${!peer_paths[@]}"; do
    socket_variants+=("peer$i")
    spawn_variants+=("peer$i")
done
pair_variants=(none floor ours rules rules-peer)

# Honesty check of the floor: under strace, the library and the floor must
# make the same setsockopt calls (and the library nothing else per socket).
if command -v strace >/dev/null; then
    trace_calls() {
        strace -qq -f -e trace=socket,setsockopt,getsockopt,fcntl,close -o "$work/trace" "$@" >/dev/null
        grep -E '^[0-9]+ +(socket|setsockopt|getsockopt|fcntl)\(' "$work/trace" |
            sed -E 's/^[0-9]+ +//; s/ += .*//' | sort | uniq -c
    }
    floor_calls=$(trace_calls env -i "$bench" socket 10 "${floor_options[@]}")
    our_calls=$(trace_calls env -i "${settings[@]}" LD_PRELOAD="$library" "$bench" socket 10)
    if [ "$floor_calls" != "$our_calls" ]; then
        printf 'bench.sh: the floor does not match the library:\nfloor:\n%s\nlibrary:\n%s\n' \
            "$floor_calls" "$our_calls" >&2
        exit 1
    fi
    # With outbound-only rules a pair costs the floor's calls: what differs
    # in time is the matching.
    floor_calls=$(trace_calls env -i "$bench" pair 10 "${floor_options[@]}")
    rules_calls=$(trace_calls env -i "${settings[@]}" "KEEPALIVE_RULES=$rules_out" LD_PRELOAD="$library" "$bench" pair 10)
    if [ "$floor_calls" != "$rules_calls" ]; then
        printf 'bench.sh: the pair floor does not match the rules:\nfloor:\n%s\nrules:\n%s\n' \
            "$floor_calls" "$rules_calls" >&2
        exit 1
    fi
else
    echo "note: strace missing, floor not cross-checked (apt-get install -y strace)" >&2
fi

# Interleaved rounds. Results: lines "section variant round ns".
results="$work/results"
: >"$results"
for ((round = 0; round < rounds; round++)); do
    echo "round $((round + 1))/$rounds" >&2
    for section in socket pair spawn; do
        declare -n variants="${section}_variants"
        count=${#variants[@]}
        for ((k = 0; k < count; k++)); do
            variant=${variants[$(((k + round) % count))]}
            declare -n iterations="$section"s
            echo "$section $variant $round $(run_variant "$section" "$variant" "$iterations")" >>"$results"
        done
    done
done

# median SECTION VARIANT: the median ns of that variant's rounds.
median() {
    awk -v s="$1" -v v="$2" '$1 == s && $2 == v { print $4 }' "$results" | sort -g |
        awk '{ x[NR] = $1 } END { print (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}
# ratio SECTION VARIANT BASE: the median over rounds of VARIANT/BASE.
ratio() {
    awk -v s="$1" -v v="$2" -v b="$3" '
        $1 == s && $2 == v { top[$3] = $4 }
        $1 == s && $2 == b { bottom[$3] = $4 }
        END { for (r in top) if (r in bottom) print top[r] / bottom[r] }' "$results" | sort -g |
        awk '{ x[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'
}

# Peak RSS of /bin/true, KiB: the median of 11 runs (it barely varies).
peak_rss() { # variant
    for _ in $(seq 11); do run_variant_rss "$1"; done | sort -n | sed -n 6p
}
run_variant_rss() { # variant: one peak RSS of /bin/true in that variant
    local setup=(env -i "PATH=$PATH")
    case "$1" in
    ours) setup+=("${settings[@]}" "LD_PRELOAD=$library") ;;
    peer*) setup+=("${peer_settings[@]}" "LD_PRELOAD=${peer_paths[${1#peer}]}") ;;
    esac
    "${setup[@]}" /usr/bin/time -f %M /bin/true 2>&1
}

# User-space instructions per socket()+close(), counted by callgrind: unlike
# times they are exact, so small differences between libraries show. The
# difference between two run lengths cancels start-up and exit: bench runs
# n + n/10 + 1 iterations in all (with its warm-up), so 1000 and 11000 differ
# by 11000.
instructions() { # variant
    local counts=()
    for n in 1000 11000; do
        run_variant socket "$1" "$n" valgrind --tool=callgrind \
            --callgrind-out-file=/dev/null 2>&1 >/dev/null |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p' >"$work/count"
        counts+=("$(cat "$work/count")")
    done
    echo $(((counts[1] - counts[0]) / 11000))
}

name_of() {
    case "$1" in
    none) echo "no library" ;;
    floor) echo "floor: the program's own ${#floor_options[@]} setsockopt calls" ;;
    ours) echo "libkeepalive (this)" ;;
    rules) echo "libkeepalive, 4 rules on outbound addresses" ;;
    rules-peer) echo "libkeepalive, 4 rules on all addresses" ;;
    peer*) echo "${peer_names[${1#peer}]}" ;;
    esac
}
path_of() {
    case "$1" in
    ours | rules*) echo "$library" ;;
    peer*) echo "${peer_paths[${1#peer}]}" ;;
    esac
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "Machine: $(nproc) CPUs, $cpu, Linux $(uname -r)."
echo "Settings: ${settings[*]}; $rounds interleaved rounds; each figure a median."
echo
echo "| socket()+close() | ns | ratio to floor |"
echo "|---|---:|---:|"
for v in "${socket_variants[@]}"; do
    printf '| %s | %.0f | %s |\n' "$(name_of "$v")" "$(median socket "$v")" "$(ratio socket "$v" floor)"
done
if command -v valgrind >/dev/null; then
    echo
    echo "| socket()+close(), user-space instructions (callgrind) | per call | beyond the floor |"
    echo "|---|---:|---:|"
    floor_count=$(instructions floor)
    for v in "${socket_variants[@]}"; do
        count=$([ "$v" = floor ] && echo "$floor_count" || instructions "$v")
        printf '| %s | %d | %+d |\n' "$(name_of "$v")" "$count" "$((count - floor_count))"
    done
else
    echo "note: valgrind missing, no instruction counts (apt-get install -y valgrind)" >&2
fi
echo
echo "| loopback connect()+accept()+close() | ns | ratio to no library | ratio to floor |"
echo "|---|---:|---:|---:|"
for v in "${pair_variants[@]}"; do
    printf '| %s | %.0f | %s | %s |\n' "$(name_of "$v")" "$(median pair "$v")" \
        "$(ratio pair "$v" none)" "$(ratio pair "$v" floor)"
done
echo
echo "| start-up of /bin/true | µs | extra µs | peak RSS KiB | extra KiB | library bytes |"
echo "|---|---:|---:|---:|---:|---:|"
base_us=$(median spawn none)
for v in "${spawn_variants[@]}"; do
    rss=$(peak_rss "$v")
    [ "$v" = none ] && base_rss=$rss
    path=$(path_of "$v")
    size=$([ -n "$path" ] && stat -c %s "$path" || echo "-")
    us=$(median spawn "$v")
    printf '| %s | %.0f | %+.0f | %s | %+d | %s |\n' "$(name_of "$v")" \
        "$(awk -v n="$us" 'BEGIN { print n / 1000 }')" \
        "$(awk -v n="$us" -v b="$base_us" 'BEGIN { print (n - b) / 1000 }')" \
        "$rss" "$((rss - base_rss))" "$size"
done
echo
echo "Release library: $(stat -c %s "$library") bytes, $(file -b "$library" | grep -o 'not stripped\|stripped')."
