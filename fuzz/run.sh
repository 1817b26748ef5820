#!/usr/bin/env bash
# Builds the fuzz targets (cargo fuzz, libFuzzer with AddressSanitizer) and runs each one.
#
#   bash fuzz/run.sh                     # every target for 60 s (the smoke run of .ci/run)
#   bash fuzz/run.sh --time 600 frame    # one target for 10 minutes
#   bash fuzz/run.sh --runs 10000000     # every target for 10 million inputs (the long run)
#   bash fuzz/run.sh --runs 10000000 --jobs 2 --no-trace-compares journal_query
#                                        # the same spread over two workers, in a build
#                                        # without compare tracing (about twice as fast)
#
# Seeds are fuzz/corpus/TARGET (committed); what a run finds grows target/fuzz/corpus/TARGET,
# and a crash is written to target/fuzz/artifacts/TARGET/ and fails the run. With --jobs N the
# inputs are split over N workers that share that corpus (each picks up what the others find).
# Installs cargo-fuzz if it is missing. libFuzzer needs rustc's unstable flags: this machine's
# only toolchain is stable, so RUSTC_BOOTSTRAP=1 lets stable rustc take them (its
# AddressSanitizer runtime ships with the standard library).
set -euo pipefail
cd "$(dirname "$0")"

limit=(-max_total_time=60)
runs=
jobs=1
build=()
targets=()
while [ $# -gt 0 ]; do
    case $1 in
        --time) limit=(-max_total_time="$2"); runs=; shift 2 ;;
        --runs) runs=$2; limit=(); shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --no-trace-compares) build=(--no-trace-compares); shift ;;
        -h|--help) sed -n 2,16p "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
[ -z "$runs" ] || limit=(-runs=$(((runs + jobs - 1) / jobs)))

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
dir=../target/fuzz
# A build with other flags keeps its own target directory, so neither rebuilds the other.
bin=$dir${build:+-ntc}
echo "== cargo fuzz build ${build[*]}"
cargo fuzz build -O "${build[@]}" --target-dir "$bin"

for t in "${targets[@]}"; do
    mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
    workers=
    if [ "$jobs" -gt 1 ]; then
        workers=" in $jobs workers"
        rm -f "$dir/$t".*.log
    fi
    echo "== fuzz $t ${limit[*]}$workers"
    pids=()
    logs=()
    for ((j = 0; j < jobs; j++)); do
        log="$dir/$t.log"
        [ "$jobs" -eq 1 ] || log="$dir/$t.$j.log"
        logs+=("$log")
        cargo fuzz run -O "${build[@]}" --target-dir "$bin" "$t" "$dir/corpus/$t" "corpus/$t" -- \
            "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
            -artifact_prefix="$dir/artifacts/$t/" >"$log" 2>&1 &
        pids+=($!)
    done
    # The first worker to fail stops the others (their fuzzers are cargo fuzz's children).
    failed=
    for _ in "${pids[@]}"; do
        if ! wait -n; then
            failed=1
            for p in "${pids[@]}"; do pkill -INT -P "$p" 2>/dev/null || true; done
            wait || true
            break
        fi
    done
    if [ -n "$failed" ]; then
        for log in "${logs[@]}"; do tail -40 "$log"; done
        echo "fuzz/run.sh: $t failed; the input is in target/fuzz/artifacts/$t/" >&2
        exit 1
    fi
    n=0
    for r in $(sed -n 's/^stat::number_of_executed_units: *//p' "${logs[@]}"); do
        n=$((n + r))
    done
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "${logs[@]}" | sort -n | tail -1)
    cov=$(grep -ho 'cov: [0-9]*' "${logs[@]}" | sort -t' ' -k2 -n | tail -1)
    echo "   $t: $n inputs in ${secs:-?} s, $cov, no crash"
done
