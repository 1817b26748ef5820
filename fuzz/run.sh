#!/usr/bin/env bash
# Builds the fuzz targets (cargo fuzz, libFuzzer with AddressSanitizer) and runs each one.
#
#   bash fuzz/run.sh                     # every target for 60 s (the smoke run of .ci/run)
#   bash fuzz/run.sh --time 600 frame    # one target for 10 minutes
#   bash fuzz/run.sh --runs 10000000     # every target for 10 million inputs (the long run)
#
# Seeds are fuzz/corpus/TARGET (committed); what a run finds grows target/fuzz/corpus/TARGET,
# and a crash is written to target/fuzz/artifacts/TARGET/ and fails the run. Installs
# cargo-fuzz if it is missing. libFuzzer needs rustc's unstable flags: this machine's only
# toolchain is stable, so RUSTC_BOOTSTRAP=1 lets stable rustc take them (its AddressSanitizer
# runtime ships with the standard library).
set -euo pipefail
cd "$(dirname "$0")"

limit=(-max_total_time=60)
targets=()
while [ $# -gt 0 ]; do
    case $1 in
        --time) limit=(-max_total_time="$2"); shift 2 ;;
        --runs) limit=(-runs="$2"); shift 2 ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
dir=../target/fuzz
echo "== cargo fuzz build"
cargo fuzz build -O --target-dir "$dir"

for t in "${targets[@]}"; do
    mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
    echo "== fuzz $t ${limit[*]}"
    log="$dir/$t.log"
    if ! cargo fuzz run -O --target-dir "$dir" "$t" "$dir/corpus/$t" "corpus/$t" -- \
        "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/$t/" >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz/run.sh: $t failed; the input is in target/fuzz/artifacts/$t/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "   $t: ${runs:-?} inputs in ${secs:-?} s, $cov, no crash"
done
