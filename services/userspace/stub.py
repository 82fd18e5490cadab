"""The stub: the tiny static ELF whose address space every guest image is built in.

Generated here, byte by byte, so no compiler is needed at run time.  It maps
one 64 KiB RWX segment at ``STUB_BASE``, far from where executables, the
static-PIE base and the top-down mmap area go.  Its code stops itself
(``kill(getpid(), SIGSTOP)``) so the tracer can seize it, and is followed by
the ``syscall; int3`` gadget every injected system call runs through, and
the code a fork returns through.  The
rest of the segment (from ``SCRATCH``) is room for the BPF program, paths and
structs that injected calls point at.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

STUB_BASE = 0x7E0000000000
STUB_SIZE = 0x10000
SCRATCH = STUB_BASE + 0x1000
SCRATCH_SIZE = STUB_SIZE - 0x1000

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_HEADERS = _EHDR.size + _PHDR.size

_CODE = bytes.fromhex(
    "b827000000"    # mov eax, SYS_getpid
    "0f05"          # syscall
    "89c7"          # mov edi, eax
    "be13000000"    # mov esi, SIGSTOP
    "b83e000000"    # mov eax, SYS_kill
    "0f05"          # syscall
)
_GADGET_CODE = bytes.fromhex("0f05cc")  # syscall; int3
# Where a fork done as the guest's own call returns (Tracee.fork_in_place).
# Below the red zone the caller's stack holds FORK_WORDS: the child's
# virtual tid, the guest's rdi rsi rdx r10 r8 (the clone's arguments took
# their place), and the return address.
_FORK_CODE = bytes.fromhex(
    "4885c0"        # test rax, rax
    "7810"          # js fail           the host clone failed: stop for userspace
    "7503"          # jnz parent
    "59"            # pop rcx           the child: rax stays 0 (rcx is the syscall's)
    "eb01"          # jmp tail
    "58"            # parent: pop rax   the child's virtual tid
    "5f5e5a415a4158"  # tail: pop rdi, rsi, rdx, r10, r8
    "c28000"        # ret 128           back to the call site, rsp as it was
    "cc"            # fail: int3
)
FORK_WORDS = ("vtid", "rdi", "rsi", "rdx", "r10", "r8", "rip")
FORK_SLOTS = 128 + 8 * len(FORK_WORDS)   # the red zone is the guest's: below it
ENTRY = STUB_BASE + _HEADERS
GADGET = ENTRY + len(_CODE)
GADGET_RETURN = GADGET + 2  # rip after the gadget's syscall: the int3
FORK_RETURN = GADGET + len(_GADGET_CODE)


def build() -> bytes:
    """The stub ELF image."""
    code = _CODE + _GADGET_CODE + _FORK_CODE
    filesz = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, LE, SysV
    ehdr = _EHDR.pack(ident, 2, 62, 1, ENTRY, _EHDR.size, 0, 0,
                      _EHDR.size, _PHDR.size, 1, 0, 0, 0)
    phdr = _PHDR.pack(1, 7, 0, STUB_BASE, STUB_BASE, filesz, STUB_SIZE, 0x1000)  # PT_LOAD RWX
    return ehdr + phdr + code


def install(run_dir: Path) -> Path:
    """Write the stub into the guest's run directory (owner-only) and return its path."""
    path = Path(run_dir) / "stub"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(build())
    os.chmod(tmp, 0o500)
    os.replace(tmp, path)
    return path
