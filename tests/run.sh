#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need and is missing
# (qemu-system-arm for the agent's QEMU board, the boards' rustup targets), then runs
# `cargo test --workspace`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-system-arm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing qemu-system-arm (the agent's QEMU board)"
        apt-get install -y --no-install-recommends qemu-system-arm >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y --no-install-recommends qemu-system-arm >/dev/null; }
    else
        echo "tests/run.sh: qemu-system-arm is missing and cannot be installed here:" \
            "sudo apt-get install -y --no-install-recommends qemu-system-arm" >&2
        exit 1
    fi
fi
rustup target add thumbv7em-none-eabihf riscv32imc-unknown-none-elf >/dev/null 2>&1 || true

echo "== cargo test --workspace"
cargo test --workspace "$@"
