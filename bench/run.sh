#!/usr/bin/env bash
# Every benchmark in one run: asyncmd against runit, s6 and supervisord on the same workloads
# (bench/bench.py: memory per service, the status client, the log path through a follower,
# launch, restart, idle memory), then the criterion micro-benchmarks of the hot paths
# (asyncmdd/benches/hot.rs) and of traceable tasks (asyncmdd/benches/tasks.rs).
# Installs hyperfine, runit, s6 and supervisor from Debian when missing.
#
#   bash bench/run.sh                       # everything
#   bash bench/run.sh --rows 2,5            # only those rows of the peer table, no micro-benchmarks
#   bash bench/run.sh --also old=DIR        # an extra column: the asyncmd binaries in DIR (an A/B)
#   bash bench/run.sh --micro               # only the micro-benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null && return
    echo "== installing $2"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

table=1 micro=1 args=()
while [ $# -gt 0 ]; do
    case $1 in
        --micro) table=0; shift ;;
        --rows) micro=0; args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done

if [ $table = 1 ]; then
    need hyperfine hyperfine
    need runsv runit
    need s6-svscan s6
    need supervisord supervisor
    need python3 python3
    cargo build --release --quiet -p asyncmdd -p asyncmctl -p asyncmjournal
    # Many services and pipes at once, for every manager alike.
    ulimit -n 8192 2>/dev/null || true
    python3 bench/bench.py --bin "$PWD/target/release" "${args[@]}"
fi
if [ $micro = 1 ]; then
    echo "== micro-benchmarks (criterion)"
    cargo bench --quiet -p asyncmdd --bench hot 2>&1 |
        grep -E '^[a-z].*/|time:|thrpt:' || true
    cargo bench --quiet -p asyncmdd --bench tasks
fi
