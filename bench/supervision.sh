#!/usr/bin/env bash
# Restart latency: SIGKILL a service's process, time until its new process runs; median of 50,
# for asyncmdd (restart = "always", restart_delay = "0s"), supervisord (autorestart, startsecs=0)
# and runit's runsv, all in one run. Each service has run for over a second before each kill,
# since runsv pauses a second before restarting a service that ran for less.
# Installs runit and supervisor from Debian when missing. Usage: bash bench/supervision.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
need runsv runit
need supervisord supervisor

cargo build --release --quiet -p asyncmdd -p asyncmctl
B=$PWD/target/release
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/a" "$W/sup" "$W/sv/s"
printf '[service]\nexec = ["sleep", "200123"]\nrestart = "always"\nrestart_delay = "0s"\nstart_limit = 0\n' > "$W/a/s.service"
cat > "$W/sup/supervisord.conf" <<CONF
[supervisord]
nodaemon=true
logfile=$W/sup/supervisord.log
pidfile=$W/sup/supervisord.pid
[program:s]
command=sleep 200124
startsecs=0
autorestart=true
startretries=1000
CONF
printf '#!/bin/sh\nexec sleep 200125\n' > "$W/sv/s/run"; chmod +x "$W/sv/s/run"

python3 - "$B" "$W" <<'PY'
import os, signal, statistics, subprocess, sys, time
b, w = sys.argv[1], sys.argv[2]
RUNS = 50

sys.path.insert(0, "bench")
from procs import sleeps_under

def find(root, arg):
    found = sleeps_under(root, arg)
    return found[0] if found else None

def measure(cmd, arg):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    times = []
    try:
        old = None
        while old is None:
            old = find(p.pid, arg)
            time.sleep(0.01)
        for _ in range(RUNS):
            time.sleep(1.1)
            t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            while True:
                new = find(p.pid, arg)
                if new is not None and new != old:
                    break
                if time.monotonic() - t0 > 30:
                    raise SystemExit(f"no restart within 30 s: {cmd}")
            times.append(time.monotonic() - t0)
            old = new
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait()
    return statistics.median(times), max(times)

peers = [
    ("asyncmdd", [f"{b}/asyncmdd", "--units", f"{w}/a", "--socket", f"{w}/a.sock"], b"200123"),
    ("supervisord", ["supervisord", "-c", f"{w}/sup/supervisord.conf"], b"200124"),
    ("runsv (runit)", ["runsv", f"{w}/sv/s"], b"200125"),
]
res = {name: measure(cmd, arg) for name, cmd, arg in peers}
ours = res["asyncmdd"][0]
for name, (med, worst) in res.items():
    print(f"  {name:14} median {med*1e3:7.2f} ms  max {worst*1e3:7.2f} ms  ({med/ours:5.2f}x asyncmdd)")
PY
