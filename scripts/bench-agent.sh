#!/usr/bin/env bash
# The node agent's cost (issue 20), as Markdown rows:
# - its CPU time and peak RSS at idle, and while 1,000 cgroups appear (each
#   with a process that has KEEPIDLE in its environment, so each gets an
#   attachment of its own) and go;
# - the window between such a process's exec and its attachment (the
#   agent logs it per cgroup): median, 90th percentile, max;
# - a loopback connection's cost (tests/c/bench.c "pair") outside any
#   attachment, under `keepalive --attach`, under the agent's node default,
#   and under a workload's own attachment below the node default (two
#   attachments on the path), as medians of interleaved rounds.
# Run by bench.sh (as root) after bench-bpf.sh, or on its own; needs root,
# cargo, gcc and bpftool. Everything it makes is under one cgroup of its
# own, removed at exit.
#
# Environment: BENCH_ROUNDS (default 15), BENCH_PAIRS (default 2000),
# BENCH_CGROUPS (default 1000), BENCH_IDLE_SECS (default 10).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${BENCH_ROUNDS:-15}
pairs=${BENCH_PAIRS:-2000}
cgroups=${BENCH_CGROUPS:-1000}
idle_secs=${BENCH_IDLE_SECS:-10}
[ "$(id -u)" = 0 ] || { echo "bench-agent.sh: needs root (the agent attaches eBPF programs)" >&2; exit 1; }
command -v bpftool >/dev/null || { echo "bench-agent.sh: needs bpftool: apt-get install -y bpftool" >&2; exit 1; }

echo "building..." >&2
(cd "$root" && cargo build --release --bin keepalive --quiet)
keepalive="$root/target/release/keepalive"
work="$root/target/bench"
mkdir -p "$work"
gcc -O2 -Wall -Wextra -Werror -o "$work/bench" "$root/tests/c/bench.c"
bench="$work/bench"

mount=$(awk -F' - ' '{ split($1, l, " "); split($2, r, " ") } r[1] == "cgroup2" && l[4] == "/" { print l[5]; exit }' /proc/self/mountinfo)
[ -n "$mount" ] || { echo "bench-agent.sh: no cgroup2 mounted" >&2; exit 1; }
top="$mount$(sed -n 's/^0:://p' /proc/self/cgroup)/kabench20-$$"
top=${top//\/\//\/}
agent_pid=
cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
    for dir in $(find "$top" -mindepth 1 -depth -type d 2>/dev/null); do
        for pid in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        "$keepalive" --detach "$dir" 2>/dev/null || true
        rmdir "$dir" 2>/dev/null || true
    done
    "$keepalive" --detach "$top" 2>/dev/null || true
    rmdir "$top" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$top/outside" "$top/attach" "$top/agent/node" "$top/agent/own"

# run_in DIR PROGRAM ARGS...: PROGRAM runs in cgroup DIR.
run_in() { local dir=$1; shift; sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$dir" "$@"; }

# CPU time (ms) and peak RSS (KiB) of a process.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

timers=(--idle 60 --interval 10 --count 6)
"$keepalive" --attach "$top/attach" "${timers[@]}" 2>/dev/null
log="$work/agent.log"
"$keepalive" --agent "${timers[@]}" --ready "$work/agent.ready" "$top/agent" 2>"$log" &
agent_pid=$!
for _ in $(seq 100); do [ -e "$work/agent.ready" ] && break; sleep 0.1; done
# A workload with its own variables, kept running: its cgroup's attachment
# stays while the benchmark connects from there.
# (sh itself in the background, not run_in's subshell: killed at the end,
# it leaves no shell behind to report it)
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$top/agent/own" env KEEPIDLE=60 KEEPINTVL=10 KEEPCNT=6 sleep 100000 &
disown $!
for _ in $(seq 100); do bpftool cgroup show "$top/agent/own" | grep -q keepalive_ops && break; sleep 0.1; done

# --- idle
cpu0=$(cpu_ms "$agent_pid")
sleep "$idle_secs"
cpu1=$(cpu_ms "$agent_pid")
idle_hwm=$(hwm_kib "$agent_pid")

# --- the window, one cgroup at a time (nothing else for the agent to do)
for i in $(seq 1 50); do
    mkdir "$top/agent/w$i"
    run_in "$top/agent/w$i" env KEEPIDLE=30 sleep 0.5
    rmdir "$top/agent/w$i"
done
windows=$(sed -n 's/.*(\([0-9.]*\) ms after its exec).*/\1/p' "$log" | sort -g)
count=$(echo "$windows" | grep -c . || true)
pick() { echo "$windows" | awk -v q="$1" -v n="$count" 'NR == int((n - 1) * q) + 1'; }

cpu_window=$(cpu_ms "$agent_pid")

# --- cgroups appearing and going, 20 at a time, each process living 0.3 s
start=$(date +%s.%N)
for batch in $(seq 0 20 $((cgroups - 1))); do
    for i in $(seq "$batch" $((batch + 19))); do
        [ "$i" -lt "$cgroups" ] || break
        mkdir "$top/agent/c$i"
        run_in "$top/agent/c$i" env KEEPIDLE=30 sleep 0.3 &
    done
    wait $(jobs -p | grep -vx "$agent_pid") 2>/dev/null || true
    for i in $(seq "$batch" $((batch + 19))); do
        [ "$i" -lt "$cgroups" ] || break
        rmdir "$top/agent/c$i"
    done
done
end=$(date +%s.%N)
cpu2=$(cpu_ms "$agent_pid")
churn_hwm=$(hwm_kib "$agent_pid")
sleep 2 # one sweep: the agent forgets the removed cgroups
left=$(sed -n 's/^attachments //p' "$work/agent.ready")

# --- connection cost
run_variant() { # variant
    case $1 in
    outside) run_in "$top/outside" "$bench" pair "$pairs" ;;
    attach) run_in "$top/attach" "$bench" pair "$pairs" ;;
    agent-node) run_in "$top/agent/node" "$bench" pair "$pairs" ;;
    agent-own) run_in "$top/agent/own" "$bench" pair "$pairs" ;;
    esac
}
variants=(outside attach agent-node agent-own)
# shellcheck source=scripts/bench-rounds.sh
. "$root/scripts/bench-rounds.sh"
interleave "$work/agent-results" "$rounds" "${variants[@]}"

configured=$(grep -c '^keepalive: agent: configured .*/c[0-9]' "$log" || true)

echo "| node agent | figure |"
echo "|---|---|"
awk -v c0="$cpu0" -v c1="$cpu1" -v s="$idle_secs" 'BEGIN { printf "| CPU at idle | %.0f ms over %d s |\n", c1 - c0, s }'
echo "| peak RSS at idle | $idle_hwm KiB |"
awk -v c1="$cpu1" -v c2="$cpu_window" 'BEGIN { printf "| CPU per attachment (50 one at a time) | %.1f ms |\n", (c2 - c1) / 50 }'
awk -v c1="$cpu_window" -v c2="$cpu2" -v n="$cgroups" -v a="$start" -v b="$end" \
    'BEGIN { printf "| CPU while %d cgroups appear and go | %.0f ms over %.1f s (%.2f ms per cgroup) |\n", n, c2 - c1, b - a, (c2 - c1) / n }'
echo "| peak RSS after them | $churn_hwm KiB |"
echo "| of those, configured before their process ended | $configured |"
echo "| attachments it counts afterwards | $left (the node default and the running workload) |"
echo "| exec -> attachment window, $count cgroups one at a time | median $(pick 0.5) ms, 90th percentile $(pick 0.9) ms, max $(pick 1) ms |"
echo
echo "| loopback connect+accept+close, $pairs pairs x $rounds rounds | ns/pair | vs outside |"
echo "|---|---|---|"
for variant in "${variants[@]}"; do
    case $variant in
    outside) label="no attachment" ;;
    attach) label="keepalive --attach (one attachment)" ;;
    agent-node) label="agent, node default (one attachment)" ;;
    agent-own) label="agent, a workload's own variables (its attachment below the node default)" ;;
    esac
    printf '| %s | %.0f | %s |\n' "$label" "$(median "$variant")" "$(ratio "$variant" outside)"
done
