"""Where the stub lives in every guest address space: userspace maps it
there, the filter and the kernel keep the guest out of it.

The range is the stub's code page (read and execute) and its scratch (read
only to the guest: userspace writes it through its own mapping of the same
file).  No guest call may map, unmap, remap, protect or advise any byte of
it, and no ELF segment may lie on it (docs/security.md)."""
from __future__ import annotations

STUB_BASE = 0x7E0000000000
STUB_SIZE = 0x10000
STUB_END = STUB_BASE + STUB_SIZE
ADDR_LIMIT = 1 << 47          # user addresses end here on x86_64


def touches_stub(addr: int, length: int) -> bool:
    """Whether [addr, addr + length), the length page-rounded as the host
    rounds it, meets the stub's range (unbounded integers: a range the host
    would see wrap past 2^64 is one it refuses anyway)."""
    return addr < STUB_END and addr + ((length + 0xFFF) & ~0xFFF) > STUB_BASE
