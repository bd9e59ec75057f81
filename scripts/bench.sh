#!/usr/bin/env bash
# Measures what libkeepalive costs and prints a Markdown table:
#   - socket()+close(): no library, the floor (the benchmark itself making
#     the very setsockopt calls the library makes), this library, and each
#     peer library present; each with its ratio to the floor;
#   - a loopback connect()+accept()+close() pair with and without it;
#   - start-up of /bin/true and its peak resident memory;
#   - the size of the stripped release library.
# Every figure is the median of interleaved rounds: each round runs every
# variant once, in a rotating order, so that a noisy neighbour slows all of
# them alike. Ratios are medians of per-round ratios; compare those rather
# than absolute times.
#
# Environment:
#   BENCH_PEERS       extra peer libraries, colon-separated paths (Debian's
#                     /usr/lib/libkeepalive.so is added when installed)
#   BENCH_ROUNDS      rounds (default 21)
#   BENCH_SOCKETS     socket()+close() iterations per run (default 20000)
#   BENCH_PAIRS       connections per run (default 2000)
#   BENCH_SPAWNS      /bin/true start-ups per run (default 200)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-21}
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

# Runs one variant once; prints ns per operation. env -i keeps the shell's
# own LD_PRELOAD or KEEP* variables out of the measurement.
clean_env=(env -i "PATH=$PATH")
run_variant() { # section variant
    case "$1:$2" in
    socket:none) "${clean_env[@]}" "$bench" socket "$sockets" ;;
    socket:floor) "${clean_env[@]}" "$bench" socket "$sockets" "${floor_options[@]}" ;;
    socket:ours) "${clean_env[@]}" "${settings[@]}" LD_PRELOAD="$library" "$bench" socket "$sockets" ;;
    socket:peer*) "${clean_env[@]}" "${peer_settings[@]}" LD_PRELOAD="${peer_paths[${2#peer}]}" \
        "$bench" socket "$sockets" ;;
    pair:none) "${clean_env[@]}" "$bench" pair "$pairs" ;;
    pair:ours) "${clean_env[@]}" "${settings[@]}" LD_PRELOAD="$library" "$bench" pair "$pairs" ;;
    spawn:none) "${clean_env[@]}" "$bench" spawn "$spawns" /bin/true ;;
    spawn:ours) "${clean_env[@]}" "${settings[@]}" LD_PRELOAD="$library" \
        "$bench" spawn "$spawns" /bin/true ;;
    spawn:peer*) "${clean_env[@]}" "${peer_settings[@]}" LD_PRELOAD="${peer_paths[${2#peer}]}" \
        "$bench" spawn "$spawns" /bin/true ;;
    *) echo "bench.sh: no variant $1:$2" >&2; exit 1 ;;
    esac
}

socket_variants=(none floor ours)
spawn_variants=(none ours)
for i in "${!peer_paths[@]}"; do
    socket_variants+=("peer$i")
    spawn_variants+=("peer$i")
done
pair_variants=(none ours)

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
            echo "$section $variant $round $(run_variant "$section" "$variant")" >>"$results"
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
peak_rss() { # LD_PRELOAD value, or empty
    for _ in $(seq 11); do
        if [ -n "$1" ]; then
            "${clean_env[@]}" "${peer_settings[@]}" LD_PRELOAD="$1" /usr/bin/time -f %M /bin/true 2>&1
        else
            "${clean_env[@]}" /usr/bin/time -f %M /bin/true 2>&1
        fi
    done | sort -n | sed -n 6p
}

name_of() {
    case "$1" in
    none) echo "no library" ;;
    floor) echo "floor: the program's own ${#floor_options[@]} setsockopt calls" ;;
    ours) echo "libkeepalive (this)" ;;
    peer*) echo "${peer_names[${1#peer}]}" ;;
    esac
}
path_of() {
    case "$1" in
    ours) echo "$library" ;;
    peer*) echo "${peer_paths[${1#peer}]}" ;;
    esac
}

echo
echo "Settings: ${settings[*]}; $rounds interleaved rounds; medians."
echo
echo "| socket()+close() | ns | ratio to floor |"
echo "|---|---:|---:|"
for v in "${socket_variants[@]}"; do
    printf '| %s | %.0f | %s |\n' "$(name_of "$v")" "$(median socket "$v")" "$(ratio socket "$v" floor)"
done
echo
echo "| loopback connect()+accept()+close() | ns | ratio to no library |"
echo "|---|---:|---:|"
for v in "${pair_variants[@]}"; do
    printf '| %s | %.0f | %s |\n' "$(name_of "$v")" "$(median pair "$v")" "$(ratio pair "$v" none)"
done
echo
none_rss=$(peak_rss "")
echo "| /bin/true | start-up µs | extra µs | peak RSS KiB | extra KiB | library bytes |"
echo "|---|---:|---:|---:|---:|---:|"
for v in "${spawn_variants[@]}"; do
    path=$(path_of "$v")
    rss=$(peak_rss "$path")
    size=$([ -n "$path" ] && stat -c %s "$path" || echo "-")
    base=$(median spawn none)
    mine=$(median spawn "$v")
    printf '| %s | %.0f | %+.0f | %s | %+d | %s |\n' "$(name_of "$v")" \
        "$(awk -v n="$mine" 'BEGIN { print n / 1000 }')" \
        "$(awk -v n="$mine" -v b="$base" 'BEGIN { print (n - b) / 1000 }')" \
        "$rss" "$((rss - none_rss))" "$size"
done
echo
echo "Stripped release library: $(stat -c %s "$library") bytes ($(file -b "$library" | grep -o 'stripped\|not stripped' || echo '?'))."
