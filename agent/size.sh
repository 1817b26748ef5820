#!/usr/bin/env bash
# Builds the QEMU board's firmware (release: opt-level "z", LTO), checks its formatting and lints,
# and prints what it takes: flash (vector table, code, read-only data and the initial values of
# .data) and static RAM (.data and .bss; the heap is taken from the RAM above them at boot).
#
#   agent/size.sh            print the figures beside the budget (64 KiB flash, 16 KiB RAM)
#   agent/size.sh --enforce  and fail when over it
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
firmware="$(bash "$root/agent/qemu.sh" --build)"
(cd "$root/agent/boards/qemu" && cargo fmt -- --check &&
    CARGO_TARGET_DIR="$root/target/firmware" cargo clippy --release --quiet -- -D warnings)
python3 - "$firmware" "${1:-}" <<'PY'
import struct, sys
path, enforce = sys.argv[1], sys.argv[2] == "--enforce"
elf = open(path, "rb").read()
assert elf[:4] == b"\x7fELF" and elf[4] == 1, "a 32-bit ELF"
shoff, = struct.unpack_from("<I", elf, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x2E)
def section(i):
    return struct.unpack_from("<IIIIIIIIII", elf, shoff + i * shentsize)
strtab = section(shstrndx)
def name(off):
    start = strtab[4] + off
    return elf[start:elf.index(b"\0", start)].decode()
SHF_ALLOC, SHT_NOBITS = 2, 8
flash = ram = 0
for i in range(shnum):
    nm, typ, flags, addr, off, size = section(i)[:6]
    if not flags & SHF_ALLOC or size == 0:
        continue
    in_ram = 0x2000_0000 <= addr < 0x4000_0000
    if typ != SHT_NOBITS:
        flash += size          # code, rodata, and .data's initial values
    if in_ram:
        ram += size            # .data and .bss
FLASH_BUDGET, RAM_BUDGET = 64 * 1024, 16 * 1024
print(f"QEMU board firmware: flash {flash} bytes ({flash / 1024:.1f} KiB of a {FLASH_BUDGET // 1024} KiB budget), "
      f"static RAM {ram} bytes ({ram / 1024:.1f} KiB of {RAM_BUDGET // 1024} KiB)")
over = [w for w, v, b in (("flash", flash, FLASH_BUDGET), ("static RAM", ram, RAM_BUDGET)) if v > b]
if over:
    print("OVER BUDGET: " + ", ".join(over))
    sys.exit(1 if enforce else 0)
PY
