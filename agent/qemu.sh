#!/usr/bin/env bash
# The asyncmd agent on an emulated board: builds the QEMU board's firmware (netduinoplus2, an
# STM32F405) and runs it in QEMU in the foreground, its serial line on tcp:127.0.0.1:PORT.
#
#   agent/qemu.sh [PORT [MONITOR_PORT]]   run it (PORT 4444; QEMU's monitor on MONITOR_PORT,
#                                         default PORT+1, where `system_reset` resets the board)
#   agent/qemu.sh --build                 only build it, and print the firmware's path
#
# Then, from another shell: asyncmctl --agent tcp:127.0.0.1:4444 status
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
firmware="$root/target/firmware/thumbv7em-none-eabihf/release/asyncmd-board-qemu"

need_qemu() {
    command -v qemu-system-arm >/dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "agent/qemu.sh: installing qemu-system-arm" >&2
        apt-get install -y --no-install-recommends qemu-system-arm >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends qemu-system-arm >/dev/null; }
    fi
    command -v qemu-system-arm >/dev/null || {
        echo "agent/qemu.sh: qemu-system-arm is missing: apt-get install -y --no-install-recommends qemu-system-arm" >&2
        exit 1
    }
}

build() {
    rustup target list --installed 2>/dev/null | grep -qx thumbv7em-none-eabihf ||
        rustup target add thumbv7em-none-eabihf >&2
    (cd "$root/agent/boards/qemu" &&
        CARGO_TARGET_DIR="$root/target/firmware" cargo build --release --quiet)
}

if [ "${1:-}" = "--build" ]; then
    build
    echo "$firmware"
    exit 0
fi
port="${1:-4444}"
monitor="${2:-$((port + 1))}"
need_qemu
build
echo "agent/qemu.sh: the board's serial line is tcp:127.0.0.1:$port, QEMU's monitor tcp:127.0.0.1:$monitor" >&2
exec qemu-system-arm -machine netduinoplus2 -display none -kernel "$firmware" \
    -serial "tcp:127.0.0.1:$port,server=on,wait=off,nodelay=on" \
    -monitor "tcp:127.0.0.1:$monitor,server=on,wait=off"
