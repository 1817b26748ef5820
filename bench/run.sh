#!/usr/bin/env bash
# Benchmarks of the foundation, each side by side with a peer measured in the same run:
#   1. `asyncmctl status hello.service` as a whole process, against runit's `sv status` and
#      s6's `s6-svstat` (hyperfine, no shell);
#   2. journal intake: 1,000,000 lines of 60 bytes from one service, against s6-log writing
#      the same lines to its log directory;
#   3. whether `asyncmjournal -F` keeps up with that flood (lines received, entries missed).
# Installs hyperfine, runit and s6 from Debian when missing. Usage: bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null && return
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
need hyperfine hyperfine
need runsv runit
need s6-svstat s6

cargo build --release --quiet -p asyncmdd -p asyncmctl -p asyncmjournal
B=$PWD/target/release
# The clients linked statically skip the dynamic loader (about 0.2 ms of every run here). An
# explicit --target keeps proc macros, which cannot be static, on the host's normal flags.
HOST=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet --target "$HOST" -p asyncmctl
S=$PWD/target/$HOST/release
W=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 60 s
    local what=$1; shift
    for _ in $(seq 600); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for $what" >&2; exit 1
}

echo "== 1. status latency: one client process, start to exit"
"$B/asyncmdd" --units units --socket "$W/a.sock" >/dev/null 2>&1 & pids+=($!)
for d in "$W/sv/hello" "$W/s6/hello"; do
    mkdir -p "$d"; printf '#!/bin/sh\nexec sleep 100000\n' > "$d/run"; chmod +x "$d/run"
done
runsv "$W/sv/hello" & pids+=($!)
s6-supervise "$W/s6/hello" & pids+=($!)
wait_for "asyncmdd" "$B/asyncmctl" --socket "$W/a.sock" status hello.service
wait_for "runsv" sv status "$W/sv/hello"
wait_for "s6-supervise" s6-svstat "$W/s6/hello"
hyperfine -N --warmup 100 --runs 1000 --export-json "$W/status.json" \
    "$S/asyncmctl --socket $W/a.sock status hello.service" \
    "$B/asyncmctl --socket $W/a.sock status hello.service" \
    "sv status $W/sv/hello" \
    "s6-svstat $W/s6/hello" >/dev/null
python3 - "$W/status.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours = r[0]["median"]
names = ["asyncmctl (static)", "asyncmctl (dynamic)", "sv status (runit)", "s6-svstat (s6)"]
for name, x in zip(names, r):
    print(f"  {name:22} median {x['median']*1e3:7.3f} ms  ({x['median']/ours:4.2f}x asyncmctl)")
PY

echo "== 2. journal intake: 1,000,000 lines of 60 bytes"
LINE='flood line that is sixty bytes long, give or take: xxxxxxxxx'
mkdir -p "$W/units"
cat > "$W/units/flood.service" <<UNIT
[unit]
type = "oneshot"
[service]
exec = ["sh", "-c", "yes '$LINE' | head -n 1000000"]
UNIT
echo '{"flood": {"enabled": false}}' > "$W/units/services.config"
"$B/asyncmdd" --units "$W/units" --socket "$W/f.sock" --journal-size 1M >/dev/null 2>&1 & pids+=($!)
wait_for "asyncmdd" "$B/asyncmctl" --socket "$W/f.sock" list
"$B/asyncmjournal" --socket "$W/f.sock" -F -n 0 -u flood -g toggled -o cat > /dev/null 2>&1 & pids+=($!)
"$B/asyncmjournal" --socket "$W/f.sock" -F -n 0 -u flood -o cat > "$W/follow.out" 2> "$W/follow.err" & fpid=$!
sleep 0.2
for run in 1 2 3; do
    # A oneshot start returns when the unit has finished; its status says when it ran.
    "$B/asyncmctl" --socket "$W/f.sock" start flood.service
    "$B/asyncmctl" --socket "$W/f.sock" status --json flood.service > "$W/run$run.json" || true
done
# Let the follower finish what it can still read, then stop it.
prev=-1
for _ in $(seq 600); do
    now=$(wc -l < "$W/follow.out")
    [ "$now" = "$prev" ] && break
    prev=$now; sleep 0.5
done
kill "$fpid" 2>/dev/null || true
python3 - "$W"/run1.json "$W"/run2.json "$W"/run3.json <<'PY' > "$W/ours.txt"
import json, sys
rates = []
for f in sys.argv[1:]:
    u = json.load(open(f))[0]
    rates.append(1_000_000 / ((u["done_us"] - u["started_us"]) / 1e6))
print(sorted(rates)[1])
PY
OURS=$(cat "$W/ours.txt")
hyperfine -N --warmup 1 --runs 5 --export-json "$W/s6log.json" \
    --prepare "rm -rf $W/s6log" \
    "sh -c \"yes '$LINE' | head -n 1000000 | s6-log n2 s16777215 $W/s6log\"" >/dev/null
hyperfine -N --warmup 1 --runs 5 --export-json "$W/gen.json" \
    "sh -c \"yes '$LINE' | head -n 1000000 > /dev/null\"" >/dev/null
python3 - "$W/s6log.json" "$W/gen.json" "$OURS" <<'PY'
import json, sys
s6 = json.load(open(sys.argv[1]))["results"][0]["median"]
gen = json.load(open(sys.argv[2]))["results"][0]["median"]
ours = float(sys.argv[3])
print(f"  asyncmdd ring journal: {ours/1e6:6.2f} M lines/s (median of 3 runs: spawn to exit and last line stored)")
print(f"  s6-log to a directory: {1e6/s6/1e6:6.2f} M lines/s (whole pipeline; the generator alone: {1e6/gen/1e6:.1f} M lines/s)")
print(f"  ratio asyncmdd / s6-log: {ours/(1e6/s6):.2f}x")
PY
received=$(wc -l < "$W/follow.out")
missed=$(grep -o '^-- [0-9]*' "$W/follow.err" | awk '{s+=$2} END {print s+0}')
echo "== 3. asyncmjournal -F during the flood: received $received lines, told of $missed missed (of 3,000,000 lines + 6 start/finish entries)"
