#!/usr/bin/env bash
# Measures what libkeepalive costs and prints Markdown tables:
#   - socket()+close(): no library, the floor (the benchmark itself making
#     the very setsockopt calls the library makes), this library, with four
#     outbound rules (nothing to set at socket(): compare it with "no
#     library"), and each peer library present; then the exact user-space
#     instructions of each (callgrind);
#   - a loopback connect()+accept()+close() pair: no library, the floor
#     (options set by the program on its listener and client sockets), ours,
#     ours with KEEPALIVE_RULES: four rules walked at each connect()
#     (inbound decided once at listen(): the same system calls as the
#     floor, so the difference is the matching), and the same rules applying
#     to inbound addresses too (each accepted connection is then decided
#     and configured on its own, after a getpeername: bench passes no
#     address to accept); times, then instructions (callgrind);
#   - start-up of /bin/true with each library: time, instructions (callgrind,
#     split into the dynamic linker's work, of which relocation and symbol
#     binding, and the constructors, of which our dlsym lookups), peak
#     resident memory, library size;
#   - memory that is really the process's own: Pss and Private_Dirty from
#     /proc/PID/smaps_rollup, for one process and summed over 100 at once;
#   - beside this library as built by `cargo build --release`, the library
#     that ships (scripts/build-portable.sh, when it exists and builds
#     something else), and Debian's libkeepalive0 (its package is fetched
#     with apt-get download and unpacked here, never installed: it
#     conflicts with ours).
# Every row runs with the same environment, entry for entry (the dynamic
# linker pays per entry): every spelling of the settings (each peer reads
# one), a slot for the library (LD_PRELOAD, or a variable nobody reads)
# and one for our extra setting (rules, override, or another such
# variable).
# A ratio or difference to the floor is printed only for rows that strace
# shows making exactly the floor's system calls; "-" otherwise.
# Needs cargo, gcc, strace, valgrind (callgrind_annotate), awk, apt-get and
# dpkg-deb (Debian's library).
# Times: each figure is the median of interleaved rounds (each round runs
# every variant once, in a rotating order, so a noisy neighbour slows all
# alike); ratios are ratios of those medians, so a table never contradicts
# itself. Instruction counts are exact and need no rounds.
#
# Environment:
#   BENCH_PEERS       extra peer libraries, colon-separated paths (Debian's
#                     /usr/lib/libkeepalive.so is added when installed)
#   BENCH_ROUNDS      rounds (default 31)
#   BENCH_SOCKETS     socket()+close() iterations per run (default 20000)
#   BENCH_PAIRS       connections per run (default 2000)
#   BENCH_SPAWNS      /bin/true start-ups per run (default 200)
#   CARGO_TARGET_DIR  honoured: the library built is the library measured
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-31}
sockets=${BENCH_SOCKETS:-20000}
pairs=${BENCH_PAIRS:-2000}
spawns=${BENCH_SPAWNS:-200}

# The settings measured: three timers, so four setsockopt calls per socket.
# Every row gets every spelling (ours and the HOWTO's, msantos', libdontdie's):
# each peer reads one, and all rows pay the loader for the same entries.
settings=(KEEPIDLE=60 KEEPINTVL=10 KEEPCNT=6 TCP_KEEPIDLE=60 TCP_KEEPINTVL=10 TCP_KEEPCNT=6
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
need strace strace
need valgrind valgrind
need callgrind_annotate valgrind
need dpkg-deb dpkg

echo "building..." >&2
(cd "$root" && cargo build --release --lib --quiet)
# Wherever cargo put it (CARGO_TARGET_DIR, .cargo/config): the file just built.
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
library="$target_dir/release/libkeepalive.so"
[ -f "$library" ] || { echo "bench.sh: $library was not built" >&2; exit 1; }
work="$target_dir/bench"
mkdir -p "$work"
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" "$root/tests/c/bench.c"
bench="$work/bench"

# The library that ships, when the project builds it differently
# (scripts/build-portable.sh: older glibc floor, another linker).
shipped=
if [ -x "$root/scripts/build-portable.sh" ]; then
    echo "building the shipped library (scripts/build-portable.sh)..." >&2
    if ! (cd "$root" && scripts/build-portable.sh) >"$work/portable.log" 2>&1; then
        echo "bench.sh: scripts/build-portable.sh failed; see $work/portable.log" >&2
        exit 1
    fi
    shipped="$target_dir/portable/libkeepalive.so"
    [ -f "$shipped" ] || { echo "bench.sh: $shipped was not built" >&2; exit 1; }
    cmp -s "$shipped" "$library" && shipped=
fi

# Peers: a name for the table and a path. Debian's libkeepalive0 is
# unpacked from its package (apt-get download), not installed: our .deb
# conflicts with it, and other work on this machine installs ours.
peer_names=()
peer_paths=()
debian="$work/debian"
if [ ! -f "$debian/usr/lib/libkeepalive.so" ]; then
    echo "fetching Debian's libkeepalive0 (apt-get download, unpacked in $debian)..." >&2
    rm -rf "$debian" && mkdir -p "$debian"
    (cd "$debian" && apt-get download libkeepalive0 >/dev/null) ||
        { echo "bench.sh: apt-get download libkeepalive0 failed (apt-get update first?)" >&2; exit 1; }
    dpkg-deb -x "$debian"/libkeepalive0_*.deb "$debian"
fi
version=$(dpkg-deb -f "$debian"/libkeepalive0_*.deb Version)
peer_names+=("Debian libkeepalive0 $version")
peer_paths+=("$debian/usr/lib/libkeepalive.so")
IFS=: read -r -a extra_peers <<<"${BENCH_PEERS:-}"
for path in "${extra_peers[@]}"; do
    [ -n "$path" ] || continue
    [ -e "$path" ] || { echo "bench.sh: BENCH_PEERS: no such file $path" >&2; exit 1; }
    peer_names+=("$(basename "$path")")
    peer_paths+=("$path")
done

# variant_env VARIANT: sets `setup`, the command prefix giving that
# variant's environment. env -i keeps the shell's own LD_PRELOAD or KEEP*
# variables out of the measurement; every variant gets as many entries.
variant_env() {
    local preload=BENCH_NO_LIBRARY=1 extra=BENCH_NO_EXTRA=1
    case "$1" in
    none | floor) ;;
    ours) preload="LD_PRELOAD=$library" ;;
    shipped) preload="LD_PRELOAD=$shipped" ;;
    override) preload="LD_PRELOAD=$library" extra=KEEPALIVE_OVERRIDE=on ;;
    rules) preload="LD_PRELOAD=$library" extra="KEEPALIVE_RULES=$rules_out" ;;
    rules-peer) preload="LD_PRELOAD=$library" extra="KEEPALIVE_RULES=$rules_peer" ;;
    peer*) preload="LD_PRELOAD=${peer_paths[${1#peer}]}" ;;
    esac
    setup=(env -i "PATH=$PATH" "${settings[@]}" "$preload" "$extra")
}
# Runs one variant once; prints ns per operation. A wrapper (strace,
# valgrind) comes before the environment, so that only bench runs with it.
run_variant() { # section variant iterations [wrapper...]
    local section=$1 variant=$2 iterations=$3 args=()
    shift 3
    variant_env "$variant"
    [ "$variant" = floor ] && args=("${floor_options[@]}")
    case "$section" in
    socket | pair) "$@" "${setup[@]}" "$bench" "$section" "$iterations" "${args[@]}" ;;
    spawn) "$@" "${setup[@]}" "$bench" spawn "$iterations" /bin/true ;;
    esac
}
socket_variants=(none floor ours)
pair_variants=(none floor ours)
spawn_variants=(none ours)
if [ -n "$shipped" ]; then
    socket_variants+=(shipped)
    pair_variants+=(shipped)
    spawn_variants+=(shipped)
fi
socket_variants+=(override rules)
pair_variants+=(override rules rules-peer)
for i in "${!peer_paths[@]}"; do
    socket_variants+=("peer$i")
    spawn_variants+=("peer$i")
done

# Which system calls a variant makes (network calls, fcntl, dup*), counted,
# with what varies from run to run (pids, ports, results) taken out.
trace_calls() { # section variant
    run_variant "$1" "$2" 10 strace -qq -f -e trace=%network,fcntl,dup,dup2,dup3 -o "$work/trace" >/dev/null
    sed -E 's/^[0-9]+ +//; s/ += .*//; s/htons\([0-9]+\)/htons(PORT)/g' "$work/trace" |
        grep -E '^[a-z0-9_]+\(' | sort | uniq -c
}
# same_calls[section/variant]: "yes" when the variant makes exactly the
# floor's system calls, so that comparing it with the floor isolates the
# library's user-space work.
declare -A same_calls
for section in socket pair; do
    floor_trace=$(trace_calls "$section" floor)
    declare -n list="${section}_variants"
    for v in "${list[@]}"; do
        if [ "$(trace_calls "$section" "$v")" = "$floor_trace" ]; then
            same_calls[$section/$v]=yes
        else
            same_calls[$section/$v]=no
        fi
    done
done
# The library with plain settings must make the floor's calls, no more.
for section in socket pair; do
    if [ "${same_calls[$section/ours]}" != yes ]; then
        printf 'bench.sh: %s: the library does not make the floor'"'"'s calls:\nfloor:\n%s\nlibrary:\n%s\n' \
            "$section" "$(trace_calls "$section" floor)" "$(trace_calls "$section" ours)" >&2
        exit 1
    fi
done
# With outbound-only rules a pair costs the floor's calls: what differs
# is the matching.
if [ "${same_calls[pair/rules]}" != yes ]; then
    printf 'bench.sh: pair: the rules do not make the floor'"'"'s calls:\nfloor:\n%s\nrules:\n%s\n' \
        "$(trace_calls pair floor)" "$(trace_calls pair rules)" >&2
    exit 1
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
# ratio A B: A/B to three decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# Peak resident memory of a process started with the variant's
# environment, KiB: VmHWM of `cat /proc/self/status`, read by the process
# about itself (a fresh address space: nothing of the launcher is counted).
# The median of 31 runs: where the loader puts each library decides which
# 64 KiB stretches of it the kernel maps around a fault, so single runs
# differ by tens of KiB.
peak_rss() { # variant
    for _ in $(seq 31); do
        variant_env "$1"
        "${setup[@]}" /bin/cat /proc/self/status | awk '/^VmHWM:/ { print $2 }'
    done | sort -n | sed -n 16p
}

# Memory that is the processes' own: COUNT `sleep` processes started at
# once with the variant's environment, each read from outside once it
# sleeps (its libraries loaded, its constructors run). Prints "Pss
# Private_Dirty", KiB, summed over the processes (/proc/PID/smaps_rollup).
# Pss counts each shared page divided among the processes mapping it, so
# a library's code read from the page cache costs 100 processes about one
# copy; Private_Dirty is what each wrote itself (relocations, .data, .bss,
# heap, stack).
smaps_total() { # variant count
    local pids=() pid i call
    variant_env "$1"
    for ((i = 0; i < $2; i++)); do
        "${setup[@]}" /bin/sleep 60 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        # In sleep's own clock_nanosleep (230) or nanosleep (35): env has
        # exec'd it, ld.so and every constructor are done.
        until [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f /bin/sleep)" ] &&
            read -r call _ <"/proc/$pid/syscall" 2>/dev/null && { [ "$call" = 230 ] || [ "$call" = 35 ]; }; do
            sleep 0.01
        done
    done
    for pid in "${pids[@]}"; do cat "/proc/$pid/smaps_rollup"; done |
        awk '/^Pss:/ { pss += $2 } /^Private_Dirty:/ { dirty += $2 } END { print pss, dirty }'
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
}
# The median of RUNS runs of smaps_total: other processes on the machine
# share (and stop sharing) libc's pages, which moves Pss a little.
smaps_median() { # variant count runs
    local runs
    runs=$(for ((i = 0; i < $3; i++)); do smaps_total "$1" "$2"; done)
    echo "$(echo "$runs" | awk '{ print $1 }' | sort -n | sed -n "$(($3 / 2 + 1))p")" \
        "$(echo "$runs" | awk '{ print $2 }' | sort -n | sed -n "$(($3 / 2 + 1))p")"
}

# User-space instructions per operation, counted by callgrind: unlike
# times they are exact, so small differences show. The difference between
# two run lengths cancels start-up and exit: bench runs n + n/10 + 1
# iterations in all (with its warm-up), so 1000 and 11000 differ by 11000.
instructions() { # section variant small big
    local counts=() n
    for n in "$3" "$4"; do
        counts+=("$(run_variant "$1" "$2" "$n" valgrind --tool=callgrind --trace-children=yes \
            --callgrind-out-file=/dev/null 2>&1 >/dev/null |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p')")
    done
    echo $(((counts[1] - counts[0]) / ($4 + $4 / 10 - $3 - $3 / 10)))
}

# Start-up of /bin/true under callgrind, as `valgrind --trace-children=yes
# env ... /bin/true`: "total dynamic-linker relocation constructors dlsym",
# inclusive counts: ld.so's _dl_start (loading, relocating, binding),
# _dl_relocate_object within it (relocations and the symbol lookups that
# bind them, every object), _dl_init (every object's constructors) and
# dlsym (ours, finding the real functions).
startup_instructions() { # variant
    local out="$work/startup.$1.callgrind"
    rm -f "$out"
    variant_env "$1"
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out" \
        "${setup[@]}" /bin/true >/dev/null 2>&1
    callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null | awk '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
        /:_dl_start \[/ { gsub(",", "", $1); start = $1 }
        /:_dl_relocate_object \[/ { gsub(",", "", $1); relocate = $1 }
        /:_dl_init \[/ { gsub(",", "", $1); init = $1 }
        /:dlsym(@@GLIBC_[0-9.]+)? \[/ { gsub(",", "", $1); dlsym = $1 }
        END { print total + 0, start + 0, relocate + 0, init + 0, dlsym + 0 }'
}

name_of() {
    case "$1" in
    none) echo "no library" ;;
    floor) echo "floor: the program's own ${#floor_options[@]} setsockopt calls" ;;
    ours) echo "libkeepalive (this, cargo build --release)" ;;
    shipped) echo "libkeepalive as shipped (scripts/build-portable.sh)" ;;
    override) echo "libkeepalive, KEEPALIVE_OVERRIDE=on" ;;
    rules) echo "libkeepalive, 4 rules on outbound addresses" ;;
    rules-peer) echo "libkeepalive, 4 rules on all addresses" ;;
    peer*) echo "${peer_names[${1#peer}]}" ;;
    esac
}
path_of() {
    case "$1" in
    ours | rules* | override) echo "$library" ;;
    shipped) echo "$shipped" ;;
    peer*) echo "${peer_paths[${1#peer}]}" ;;
    esac
}
# to_floor SECTION VARIANT A B: A compared with the floor's B by the
# command in $compare, or "-" when the variant's system calls differ.
to_floor() {
    if [ "${same_calls[$1/$2]}" = yes ]; then "$compare" "$3" "$4"; else echo "-"; fi
}
difference() { printf '%+d' $(($1 - $2)); }

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "Machine: $(nproc) CPUs, $cpu, Linux $(uname -r)."
echo "Settings: ${settings[*]}; $rounds interleaved rounds; each time a median, each ratio a ratio of medians."
echo "\"-\": the row makes other system calls than the floor (strace), so it is compared with no library only."
echo
echo "| socket()+close() | ns | ratio to no library | ratio to floor |"
echo "|---|---:|---:|---:|"
base=$(median socket none)
floor=$(median socket floor)
compare=ratio
for v in "${socket_variants[@]}"; do
    ns=$(median socket "$v")
    printf '| %s | %.0f | %s | %s |\n' "$(name_of "$v")" "$ns" "$(ratio "$ns" "$base")" \
        "$(to_floor socket "$v" "$ns" "$floor")"
done
echo
echo "| socket()+close(), user-space instructions (callgrind) | per call | beyond no library | beyond the floor |"
echo "|---|---:|---:|---:|"
declare -A count
for v in "${socket_variants[@]}"; do count[$v]=$(instructions socket "$v" 1000 11000); done
compare=difference
for v in "${socket_variants[@]}"; do
    printf '| %s | %d | %+d | %s |\n' "$(name_of "$v")" "${count[$v]}" \
        "$((count[$v] - count[none]))" "$(to_floor socket "$v" "${count[$v]}" "${count[floor]}")"
done
echo
echo "| loopback connect()+accept()+close() | ns | ratio to no library | ratio to floor |"
echo "|---|---:|---:|---:|"
base=$(median pair none)
floor=$(median pair floor)
compare=ratio
for v in "${pair_variants[@]}"; do
    ns=$(median pair "$v")
    printf '| %s | %.0f | %s | %s |\n' "$(name_of "$v")" "$ns" "$(ratio "$ns" "$base")" \
        "$(to_floor pair "$v" "$ns" "$floor")"
done
echo
echo "| connect()+accept()+close(), user-space instructions (callgrind) | per pair | beyond no library | beyond the floor |"
echo "|---|---:|---:|---:|"
for v in "${pair_variants[@]}"; do count[$v]=$(instructions pair "$v" 100 1100); done
compare=difference
for v in "${pair_variants[@]}"; do
    printf '| %s | %d | %+d | %s |\n' "$(name_of "$v")" "${count[$v]}" \
        "$((count[$v] - count[none]))" "$(to_floor pair "$v" "${count[$v]}" "${count[floor]}")"
done
echo
echo "Matching the 4 outbound rules costs $((count[rules] - count[ours])) instructions per connection (the rules row minus the plain row; both make the floor's system calls)."
echo
echo "| start-up of /bin/true | µs | extra µs | instructions (callgrind) | extra | of which loading and linking | of which relocation and binding | of which constructors | peak RSS KiB | extra KiB | library bytes |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
base_us=$(median spawn none)
declare -A extra_total extra_start extra_relocate extra_init dlsym_of private_each pss_each
for v in "${spawn_variants[@]}"; do
    read -r total start relocate init dlsym < <(startup_instructions "$v")
    rss=$(peak_rss "$v")
    # spawn_variants starts with none: the base of every "extra".
    [ "$v" = none ] && { base_total=$total base_start=$start base_relocate=$relocate base_init=$init base_rss=$rss; }
    extra_total[$v]=$((total - base_total)) extra_start[$v]=$((start - base_start))
    extra_relocate[$v]=$((relocate - base_relocate)) extra_init[$v]=$((init - base_init))
    dlsym_of[$v]=$dlsym
    path=$(path_of "$v")
    size=$([ -n "$path" ] && stat -c %s "$path" || echo "-")
    us=$(median spawn "$v")
    printf '| %s | %.0f | %+.0f | %d | %+d | %+d | %+d | %+d | %s | %+d | %s |\n' "$(name_of "$v")" \
        "$(awk -v n="$us" 'BEGIN { print n / 1000 }')" \
        "$(awk -v n="$us" -v b="$base_us" 'BEGIN { print (n - b) / 1000 }')" \
        "$total" "${extra_total[$v]}" "${extra_start[$v]}" "${extra_relocate[$v]}" "${extra_init[$v]}" \
        "$rss" "$((rss - base_rss))" "$size"
done
echo
echo "Of libkeepalive's constructor instructions, ${dlsym_of[ours]} are dlsym finding the real functions (all of them, at start-up, so that no hook ever looks one up later)."
debian_extra=${extra_total[peer0]}
goal=$((debian_extra + dlsym_of[ours]))
for v in ours ${shipped:+shipped}; do
    echo
    echo "Start-up goal for $(name_of "$v"): Debian's extra ($debian_extra) plus our dlsym lookups (${dlsym_of[ours]}) = $goal; it takes ${extra_total[$v]} ($((extra_total[$v] - goal)) from the goal): loading and linking ${extra_start[$v]} (of which relocation and binding ${extra_relocate[$v]}, so mapping and the rest $((extra_start[$v] - extra_relocate[$v]))), constructors ${extra_init[$v]} (of which dlsym ${dlsym_of[$v]}, so the rest of our constructor $((extra_init[$v] - dlsym_of[$v])))."
done
echo
echo "| memory (smaps_rollup of sleep) | Pss KiB | extra | Private_Dirty KiB | extra | 100 processes: Pss KiB | extra | Private_Dirty KiB | extra |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for v in "${spawn_variants[@]}"; do
    read -r pss dirty < <(smaps_median "$v" 1 11)
    read -r pss100 dirty100 < <(smaps_median "$v" 100 3)
    [ "$v" = none ] && { base_pss=$pss base_dirty=$dirty base_pss100=$pss100 base_dirty100=$dirty100; }
    printf '| %s | %d | %+d | %d | %+d | %d | %+d | %d | %+d |\n' "$(name_of "$v")" \
        "$pss" "$((pss - base_pss))" "$dirty" "$((dirty - base_dirty))" \
        "$pss100" "$((pss100 - base_pss100))" "$dirty100" "$((dirty100 - base_dirty100))"
    private_each[$v]=$(awk -v d="$((dirty100 - base_dirty100))" 'BEGIN { printf "%.1f", d / 100 }')
    pss_each[$v]=$(awk -v d="$((pss100 - base_pss100))" 'BEGIN { printf "%.1f", d / 100 }')
done
echo
for v in "${spawn_variants[@]}"; do
    [ "$v" = none ] && continue
    echo "- $(name_of "$v"): per process of the 100, +${pss_each[$v]} KiB Pss and +${private_each[$v]} KiB Private_Dirty beyond no library."
done
echo
echo "Memory goal: at most Debian's Private_Dirty + 8 KiB per process, $(awk -v d="${private_each[peer0]}" 'BEGIN { printf "%.1f", d + 8 }') KiB."
echo
echo "Release library: $(stat -c %s "$library") bytes, $(file -b "$library" | grep -o 'not stripped\|stripped')."
if [ "$(id -u)" = 0 ]; then
    echo
    echo "Kernel-side mode (keepalive --bpf), the same pair inside against outside its cgroup:"
    echo
    BENCH_ROUNDS=$rounds BENCH_PAIRS=$pairs "$root/scripts/bench-bpf.sh"
    echo
    echo "Node agent (keepalive --agent): its own cost at idle and while cgroups come and go, and a connection under it beside --attach:"
    echo
    BENCH_ROUNDS=$rounds BENCH_PAIRS=$pairs "$root/scripts/bench-agent.sh"
else
    echo
    echo "Kernel-side mode and node agent: not measured (need root): sudo scripts/bench-bpf.sh; sudo scripts/bench-agent.sh"
fi
