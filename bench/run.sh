#!/usr/bin/env bash
# Benchmarks of the foundation, each side by side with a peer measured in the same run:
#   1. `asyncmctl status hello.service` as a whole process, against runit's `sv status` and
#      s6's `s6-svstat` (hyperfine, no shell), and `asyncmctl --version`: what start-up alone costs;
#   2. journal intake: 1,000,000 lines of 60 bytes from one service, against supervisord
#      writing the same service's output to its log file, and s6-log reading the same lines;
#   3. whether `asyncmjournal -F` keeps up with that flood (lines received, entries missed).
# Installs hyperfine, runit, s6 and supervisor from Debian when missing. Usage: bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/common.sh
need hyperfine hyperfine
need runsv runit
need s6-svstat s6
need supervisord supervisor

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
    "s6-svstat $W/s6/hello" \
    "$S/asyncmctl --version" >/dev/null
python3 - "$W/status.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours = r[0]["median"]
names = ["asyncmctl (static)", "asyncmctl (dynamic)", "sv status (runit)", "s6-svstat (s6)",
         "asyncmctl --version (static; start-up alone, no socket)"]
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
cat > "$W/units/mark.service" <<UNIT
[unit]
type = "oneshot"
[service]
exec = ["echo", "MARK"]
UNIT
echo '{"flood": {"enabled": false}, "mark": {"enabled": false}}' > "$W/units/services.config"
"$B/asyncmdd" --units "$W/units" --socket "$W/f.sock" --journal-size 1M >/dev/null 2>&1 & pids+=($!)
wait_for "asyncmdd" "$B/asyncmctl" --socket "$W/f.sock" list
# floods N: start the flood unit 3 times; prints the median intake rate (lines/s), from the
# unit's own status (spawn to exit, after its last line is stored).
floods() {
    for run in 1 2 3; do
        # A oneshot start returns when the unit has finished.
        "$B/asyncmctl" --socket "$W/f.sock" start flood.service
        "$B/asyncmctl" --socket "$W/f.sock" status --json flood.service > "$W/run$run.json" || true
    done
    python3 - "$W"/run1.json "$W"/run2.json "$W"/run3.json <<'PY'
import json, sys
rates = []
for f in sys.argv[1:]:
    u = json.load(open(f))[0]
    rates.append(1_000_000 / ((u["done_us"] - u["started_us"]) / 1e6))
print(sorted(rates)[1])
PY
}
floods > "$W/ours.txt"
OURS=$(cat "$W/ours.txt")
hyperfine -N --warmup 1 --runs 5 --export-json "$W/s6log.json" \
    --prepare "rm -rf $W/s6log" \
    "sh -c \"yes '$LINE' | head -n 1000000 | s6-log n2 s16777215 $W/s6log\"" >/dev/null
hyperfine -N --warmup 1 --runs 5 --export-json "$W/gen.json" \
    "sh -c \"yes '$LINE' | head -n 1000000 > /dev/null\"" >/dev/null
# supervisord, timed the same way: from the service's own start to its last line stored (the
# log file at its full size). The script sleeps after the flood so it is not restarted.
mkdir -p "$W/sup"
cat > "$W/sup/flood.sh" <<SH
#!/bin/sh
date +%s%N > $W/sup/start
yes '$LINE' | head -n 1000000
exec sleep 100000
SH
chmod +x "$W/sup/flood.sh"
SUP_RATES=()
for run in 1 2 3; do
    rm -f "$W/sup/flood.log" "$W/sup/start"
    cat > "$W/sup/sup.conf" <<CONF
[supervisord]
nodaemon=true
logfile=$W/sup/supervisord.log
pidfile=$W/sup/supervisord.pid
[program:flood]
command=$W/sup/flood.sh
startsecs=0
stdout_logfile=$W/sup/flood.log
stdout_logfile_maxbytes=0
CONF
    SUP_RATES+=("$(python3 - "$W/sup" <<'PY'
import os, subprocess, sys, time
d = sys.argv[1]
p = subprocess.Popen(["supervisord", "-c", f"{d}/sup.conf"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
want, end = 1_000_000 * 61, None
deadline = time.time() + 120
while time.time() < deadline:
    try:
        if os.path.getsize(f"{d}/flood.log") >= want:
            end = time.time_ns()
            break
    except FileNotFoundError:
        pass
    time.sleep(0.0005)
p.terminate()
p.wait()
start = int(open(f"{d}/start").read())
print(1e6 / ((end - start) / 1e9))
PY
)")
done
SUP=$(printf '%s\n' "${SUP_RATES[@]}" | sort -g | sed -n 2p)
python3 - "$W/s6log.json" "$W/gen.json" "$OURS" "$SUP" <<'PY'
import json, sys
s6 = json.load(open(sys.argv[1]))["results"][0]["median"]
gen = json.load(open(sys.argv[2]))["results"][0]["median"]
ours, sup = float(sys.argv[3]), float(sys.argv[4])
print(f"  asyncmdd ring journal: {ours/1e6:6.2f} M lines/s (median of 3: spawn to last line stored)")
print(f"  supervisord log file:  {sup/1e6:6.2f} M lines/s (median of 3: service start to last line written)")
print(f"  s6-log to a directory: {1e6/s6/1e6:6.2f} M lines/s (whole pipeline; the generator alone: {1e6/gen/1e6:.1f} M lines/s)")
print(f"  ratios: asyncmdd / supervisord {ours/sup:.2f}x, asyncmdd / s6-log {ours/(1e6/s6):.2f}x")
PY
echo "== 3. the same floods with \`asyncmjournal -F -o cat\` attached (it writes to a file)"
"$B/asyncmjournal" --socket "$W/f.sock" -F -n 0 -u flood -u mark -o cat > "$W/follow.out" 2> "$W/follow.err" & fpid=$!
# Attached once it shows a marker logged after its start.
wait_for "the follower to attach" sh -c "'$B/asyncmctl' --socket '$W/f.sock' start mark >/dev/null; grep -qx MARK '$W/follow.out'"
WITH=$(floods)
# Let the follower finish what it can still read, then stop it.
prev=-1
for _ in $(seq 600); do
    now=$(wc -l < "$W/follow.out")
    [ "$now" = "$prev" ] && break
    prev=$now; sleep 0.5
done
kill "$fpid" 2>/dev/null || true
# What came after the last marker, less that run's own Finished line, is the floods'.
received=$(awk '/^MARK$/ {n = 0; next} {n++} END {print n - 1}' "$W/follow.out")
missed=$({ grep -o '^-- [0-9]*' "$W/follow.err" || true; } | awk '{s+=$2} END {print s+0}')
python3 -c "print(f'  asyncmdd intake with a follower: {$WITH/1e6:.2f} M lines/s')"
echo "  the follower received $received lines and was told of $missed missed (of 3,000,000 lines + 6 start/finish entries)"
