#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need and is missing
# (qemu-system-arm for the agent's QEMU board, mosquitto for the fleet tests, curl and
# prometheus_client for the metrics test, tmux for asyncmctl top, the boards' rustup targets),
# then runs
# `cargo test --workspace`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests drive that is not ours: qemu-system-arm runs the agent's QEMU board, mosquitto
# is the broker of the MQTT fleet tests.
need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing $pkg"
        apt-get install -y --no-install-recommends "$pkg" >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$pkg" >/dev/null; }
    else
        echo "tests/run.sh: $cmd is missing and cannot be installed here:" \
            "sudo apt-get install -y --no-install-recommends $pkg" >&2
        exit 1
    fi
}
need qemu-system-arm qemu-system-arm
PATH="$PATH:/usr/sbin" need mosquitto mosquitto
# The stats builtin's tests fetch with curl and read its metrics with prometheus_client's parser.
need curl curl
# asyncmctl top is tested in a real terminal: tmux's.
need tmux tmux
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
    echo "== installing prometheus_client (pip)"
    python3 -m pip install --quiet prometheus_client ||
        { echo "tests/run.sh: cannot install prometheus_client: python3 -m pip install prometheus_client" >&2; exit 1; }
fi
rustup target add thumbv7em-none-eabihf riscv32imc-unknown-none-elf >/dev/null 2>&1 || true

echo "== cargo test --workspace"
cargo test --workspace "$@"
