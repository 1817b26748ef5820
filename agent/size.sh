#!/usr/bin/env bash
# Builds the boards' firmware (release: opt-level "z", LTO), checks its formatting and lints,
# and prints what each takes: flash (every section stored in the image: code, read-only data,
# the initial values of .data) and static RAM (.data and .bss; on the STM32 boards the heap is
# taken from the RAM above them at boot, on the ESP32-C3 it is a static buffer, so it counts).
#
#   agent/size.sh            print the figures beside the budget (64 KiB flash, 16 KiB RAM)
#   agent/size.sh --enforce  and fail when the STM32 boards are over it
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rustup target list --installed 2>/dev/null | grep -qx riscv32imc-unknown-none-elf ||
    rustup target add riscv32imc-unknown-none-elf >&2
bash "$root/agent/qemu.sh" --build >/dev/null
for board in qemu stm32f405 esp32c3; do
    (cd "$root/agent/boards/$board" && cargo fmt -- --check &&
        CARGO_TARGET_DIR="$root/target/firmware" cargo build --release --quiet &&
        CARGO_TARGET_DIR="$root/target/firmware" cargo clippy --release --quiet -- -D warnings)
done
python3 - "$root/target/firmware" "${1:-}" <<'PY'
import struct, sys
out, enforce = sys.argv[1], sys.argv[2] == "--enforce"
SHF_ALLOC, SHT_NOBITS = 2, 8
FLASH_BUDGET, RAM_BUDGET = 64 * 1024, 16 * 1024

def sizes(path):
    elf = open(path, "rb").read()
    assert elf[:4] == b"\x7fELF" and elf[4] == 1, "a 32-bit ELF"
    shoff, = struct.unpack_from("<I", elf, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x2E)
    strtab_off = struct.unpack_from("<IIIIII", elf, shoff + shstrndx * shentsize)[4]
    flash = ram = 0
    for i in range(shnum):
        nm, typ, flags, addr, _, size = struct.unpack_from("<IIIIII", elf, shoff + i * shentsize)
        start = strtab_off + nm
        name = elf[start:elf.index(b"\0", start)].decode()
        # esp-hal's placeholders (address space, not bytes) and the stack, which is the RAM
        # left over, not a static allocation.
        if not flags & SHF_ALLOC or size == 0 or name.endswith("_dummy") or name == ".stack":
            continue
        if typ != SHT_NOBITS:
            flash += size
        if 0x2000_0000 <= addr < 0x4000_0000:
            ram += size
    return flash, ram

failed = []
for board, target, budgeted in [("qemu", "thumbv7em-none-eabihf", True),
                                ("stm32f405", "thumbv7em-none-eabihf", True),
                                ("esp32c3", "riscv32imc-unknown-none-elf", False)]:
    flash, ram = sizes(f"{out}/{target}/release/asyncmd-board-{board}")
    over = [w for w, v, b in (("flash", flash, FLASH_BUDGET), ("static RAM", ram, RAM_BUDGET)) if v > b]
    print(f"{board:10} flash {flash:7} bytes ({flash / 1024:5.1f} KiB of {FLASH_BUDGET // 1024})   "
          f"static RAM {ram:6} bytes ({ram / 1024:5.1f} KiB of {RAM_BUDGET // 1024})"
          + ((f"   OVER: {', '.join(over)}" if budgeted else "   (the budget is the STM32 boards')")
             if over else ""))
    if over and budgeted:
        failed.append(board)
if failed and enforce:
    sys.exit(1)
PY
