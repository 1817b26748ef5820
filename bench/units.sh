#!/usr/bin/env bash
# Benchmarks of the units issue, each beside a peer measured in the same run:
#   1. the boot plan of 10,000 units with random requires/after edges: `asyncmdd --plan`
#      (reads and parses every file, then plans) against coreutils `tsort` ordering the
#      same edges from one file; asyncmdd also reports the planning step alone;
#   2. from daemon start to 500 `sleep` services all running: asyncmdd against supervisord
#      (startsecs=0) and runit's runsvdir, counting the sleep processes each has under it.
# Installs hyperfine, runit and supervisor from Debian when missing. Usage: bash bench/units.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. bench/common.sh
need hyperfine hyperfine
need runsvdir runit
need supervisord supervisor

cargo build --release --quiet -p asyncmdd -p asyncmctl
B=$PWD/target/release
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

echo "== 1. boot plan of 10,000 units with random dependencies"
python3 - "$W" <<'PY'
import os, random, sys
w = sys.argv[1]
random.seed(3)
n = 10_000
os.makedirs(f"{w}/plan")
edges = []
for i in range(n):
    # About three edges each, to units defined before (so no cycle), near and far.
    req = sorted({random.randrange(i) for _ in range(2)}) if i else []
    aft = sorted({random.randrange(i) for _ in range(1)} - set(req)) if i else []
    names = lambda v: ", ".join(f'"u{j}.service"' for j in v)
    with open(f"{w}/plan/u{i}.service", "w") as f:
        f.write(f'[unit]\nrequires = [{names(req)}]\nafter = [{names(aft)}]\npriority = {random.randrange(10)}\n'
                f'[service]\nexec = ["true"]\n')
    edges += [(j, i) for j in req + aft]
with open(f"{w}/plan.edges", "w") as f:
    for j, i in edges:
        f.write(f"u{j}.service u{i}.service\n")
    for i in range(n):
        f.write(f"u{i}.service u{i}.service\n")
print(f"  {n} units, {len(edges)} edges")
PY
"$B/asyncmdd" --plan --no-color --units "$W/plan" 2>&1 >/dev/null | sed 's/^/  /'
hyperfine -N --warmup 2 --runs 10 --export-json "$W/plan.json" \
    "$B/asyncmdd --plan --no-color --units $W/plan" \
    "tsort $W/plan.edges" >/dev/null
python3 - "$W/plan.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours = r[0]["median"]
for name, x in zip(["asyncmdd --plan (read 10k files + plan)", "tsort (one edge file)"], r):
    print(f"  {name:40} median {x['median']*1e3:8.1f} ms  ({x['median']/ours:4.2f}x asyncmdd)")
PY

echo "== 2. daemon start to 500 sleep services running (median of 5)"
mkdir -p "$W/a/units" "$W/sup" "$W/sv"
for i in $(seq 500); do
    printf '[service]\nexec = ["sleep", "100123"]\nstop_timeout = "1s"\n' > "$W/a/units/s$i.service"
    printf '[program:s%d]\ncommand=sleep 100124\nstartsecs=0\nautorestart=false\n' "$i" >> "$W/sup/programs.conf"
    mkdir -p "$W/sv/s$i"; printf '#!/bin/sh\nexec sleep 100125\n' > "$W/sv/s$i/run"; chmod +x "$W/sv/s$i/run"
done
cat > "$W/sup/supervisord.conf" <<CONF
[supervisord]
nodaemon=true
logfile=$W/sup/supervisord.log
pidfile=$W/sup/supervisord.pid
minfds=4096
[unix_http_server]
file=$W/sup/supervisor.sock
[include]
files=$W/sup/programs.conf
CONF
ulimit -n 8192 || true
python3 - "$B" "$W" <<'PY'
import os, signal, statistics, subprocess, sys, time
b, w = sys.argv[1], sys.argv[2]

sys.path.insert(0, "bench")
from procs import sleeps_under

def count(root, arg):
    return len(sleeps_under(root, arg))

def alive(arg):
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == b"sleep\0" + arg + b"\0":
                        return True
            except OSError:
                pass
    return False

def run(cmd, arg, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    while count(p.pid, arg) < 500:
        if time.monotonic() - t0 > 120:
            raise SystemExit(f"timed out: {cmd}")
        time.sleep(0.002)
    took = time.monotonic() - t0
    os.killpg(p.pid, signal.SIGTERM)
    p.wait()
    while alive(arg):
        time.sleep(0.05)
    return took

peers = [
    ("asyncmdd", [f"{b}/asyncmdd", "--units", f"{w}/a/units", "--socket", f"{w}/a/s.sock"], b"100123"),
    ("supervisord", ["supervisord", "-c", f"{w}/sup/supervisord.conf"], b"100124"),
    ("runsvdir (runit)", ["runsvdir", f"{w}/sv"], b"100125"),
]
res = {}
for name, cmd, arg in peers:
    res[name] = statistics.median(run(cmd, arg) for _ in range(5))
ours = res["asyncmdd"]
for name, t in res.items():
    print(f"  {name:18} median {t*1e3:8.1f} ms  ({t/ours:4.2f}x asyncmdd)")
PY
