"""The stub: the tiny static ELF whose address space every guest image is built in.

Generated here, byte by byte, so no compiler is needed at run time.  It maps
one read-and-execute page at ``STUB_BASE`` (common/layout.py), far from
where executables, the static-PIE base and the top-down mmap area go.  Its
code stops itself (``kill(getpid(), SIGSTOP)``) so the tracer can seize it,
and is followed by the ``syscall; int3`` gadget every injected system call
runs through, the code a fork returns through, and the constant paths and
argv that userspace's injected ``execve`` names.

The page after it, up to ``STUB_END``, is the scratch: the file
``RUN_DIR/scratch`` mapped shared and read-only into every guest process
from ``SCRATCH_FD``, an fd opened read-only (so no ``mprotect`` can make the
map writable) that every guest process holds from its first stub on, across
exec and fork; written only by userspace through its own mapping
(``Scratch``).  Host
data an injected call points at (a BPF program, a page-cache file name, the
``PR_SET_MM_MAP`` struct) lives there, where no guest thread can change it
between the write and the call.  Both pages are sealed (``mseal``) once
mapped, and the filter and the kernel keep guest calls off them.
"""
from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from common.layout import STUB_BASE, STUB_SIZE

PAGE = 0x1000
SCRATCH = STUB_BASE + PAGE
SCRATCH_SIZE = STUB_SIZE - PAGE
# Names relative to a guest process's working directory: the root of its
# mount namespace (services/userspace/jail.py), or the run directory where
# the host gives no namespaces.  No host path is ever in guest memory.
STUB_NAME, SCRATCH_NAME = "stub", "scratch"

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
SCRATCH_FD = 15            # the highest fd RLIMIT_NOFILE (jail.py) lets a stub hold
PROT_READ, MAP_SHARED_FIXED, SYS_mmap, SYS_mseal = 0x1, 0x11, 9, 462
# Where a new image's address space is made ours right after exec, before
# any guest code: the scratch mapped from SCRATCH_FD, the stub's range
# sealed, each argument set here (the filter lets exactly these two calls
# run: no stop for either).  It ends at one of two int3s: PREPARED (rax:
# the seal's result) or UNPREPARED (rax: the map's error).
_PREPARE_CODE = (
    b"\x48\xbf" + struct.pack("<Q", STUB_BASE + PAGE)     # mov rdi, SCRATCH
    + b"\xbe" + struct.pack("<I", STUB_SIZE - PAGE)        # mov esi, SCRATCH_SIZE
    + b"\xba" + struct.pack("<I", PROT_READ)               # mov edx, PROT_READ
    + b"\x41\xba" + struct.pack("<I", MAP_SHARED_FIXED)    # mov r10d, MAP_SHARED|MAP_FIXED
    + b"\x41\xb8" + struct.pack("<I", SCRATCH_FD)          # mov r8d, SCRATCH_FD
    + b"\x45\x31\xc9"                                      # xor r9d, r9d
    + b"\xb8" + struct.pack("<I", SYS_mmap)                # mov eax, SYS_mmap
    + b"\x0f\x05"                                          # syscall
    + b"\x48\x39\xf8"                                      # cmp rax, rdi
    + b"\x75\x19"                                          # jne unprepared
    + b"\x48\xbf" + struct.pack("<Q", STUB_BASE)          # mov rdi, STUB_BASE
    + b"\xbe" + struct.pack("<I", STUB_SIZE)               # mov esi, STUB_SIZE
    + b"\x31\xd2"                                          # xor edx, edx
    + b"\xb8" + struct.pack("<I", SYS_mseal)               # mov eax, SYS_mseal
    + b"\x0f\x05"                                          # syscall
    + b"\xcc"                                              # int3
    + b"\xcc")                                             # unprepared: int3
FORK_WORDS = ("vtid", "rdi", "rsi", "rdx", "r10", "r8", "rip")
FORK_SLOTS = 128 + 8 * len(FORK_WORDS)   # the red zone is the guest's: below it
ENTRY = STUB_BASE + _HEADERS
GADGET = ENTRY + len(_CODE)
GADGET_RETURN = GADGET + 2  # rip after the gadget's syscall: the int3
GADGET_TRAPPED = GADGET_RETURN + 1   # rip at the int3's SIGTRAP: an injected call's end
FORK_RETURN = GADGET + len(_GADGET_CODE)
_CODE_END = FORK_RETURN + len(_FORK_CODE)
FORK_FAILED = _CODE_END     # rip at the fork code's int3's SIGTRAP
PREPARE = _CODE_END
PREPARED = PREPARE + len(_PREPARE_CODE) - 1     # rip at its first int3's SIGTRAP
UNPREPARED = PREPARED + 1                       # and at the second's
_CODE_END = PREPARE + len(_PREPARE_CODE)
# The constants: argv {STUB_NAME, NULL} (its NULL is also an empty envp),
# then the name.
ARGV = (_CODE_END + 7) & ~7
STUB_PATH = ARGV + 16
_DATA = struct.pack("<QQ", STUB_PATH, 0) + STUB_NAME.encode() + b"\0"


def build() -> bytes:
    """The stub ELF image: one PT_LOAD, read and execute, one page."""
    code = _CODE + _GADGET_CODE + _FORK_CODE + _PREPARE_CODE
    code += bytes(ARGV - _CODE_END) + _DATA
    filesz = _HEADERS + len(code)
    assert filesz <= PAGE
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, LE, SysV
    ehdr = _EHDR.pack(ident, 2, 62, 1, ENTRY, _EHDR.size, 0, 0,
                      _EHDR.size, _PHDR.size, 1, 0, 0, 0)
    phdr = _PHDR.pack(1, 5, 0, STUB_BASE, STUB_BASE, filesz, PAGE, PAGE)  # PT_LOAD R-X
    return ehdr + phdr + code


def install(run_dir: Path) -> Path:
    """Write the stub into the guest's run directory and return its path.
    Readable and executable by all: the guest's host processes run as an
    unprivileged uid (the run directory itself stays the owner's)."""
    path = Path(run_dir) / STUB_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(build())
    os.chmod(tmp, 0o555)
    os.replace(tmp, path)
    return path


class Scratch:
    """Userspace's writable mapping of the scratch file every guest process
    maps read-only at ``SCRATCH``.  Userspace is single-threaded and runs
    one injected call at a time, so one scratch serves every process."""

    def __init__(self, run_dir: Path):
        path = Path(run_dir) / SCRATCH_NAME
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
        try:
            os.ftruncate(fd, SCRATCH_SIZE)
            self.map = mmap.mmap(fd, SCRATCH_SIZE, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self.path = path

    def write(self, offset: int, data: bytes) -> int:
        """Put data at offset; returns its guest address."""
        if offset < 0 or offset + len(data) > SCRATCH_SIZE:
            raise ValueError("op argument larger than the stub's scratch area")
        self.map[offset:offset + len(data)] = data
        return SCRATCH + offset
