# Sourced by bench-bpf.sh and bench-agent.sh: interleaved rounds of the
# caller's `run_variant VARIANT` (which prints one time, in ns), and the
# medians and ratios of what they measured. Not a command of its own.

# interleave RESULTS ROUNDS VARIANT...: each round runs every variant once,
# each round starting one variant further along, so that no variant always
# runs first or right after another; appends "VARIANT ROUND NS" to RESULTS
# (emptied first), which median and ratio then read.
interleave() {
    results=$1
    local rounds=$2 round k variant
    shift 2
    local variants=("$@")
    : >"$results"
    for round in $(seq 1 "$rounds"); do
        for k in "${!variants[@]}"; do
            variant=${variants[$(((k + round) % ${#variants[@]}))]}
            echo "$variant $round $(run_variant "$variant")" >>"$results"
        done
    done
}

# median VARIANT: the median of its rounds' times.
median() {
    awk -v v="$1" '$1 == v { print $3 }' "$results" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# ratio VARIANT BASE: the ratio of the two medians printed beside it, as in
# bench.sh: one method, so a row's time and ratio never disagree.
ratio() {
    awk -v n="$(median "$1")" -v d="$(median "$2")" 'BEGIN { printf "%.3f", n / d }'
}
