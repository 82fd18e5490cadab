"""execve from a hostile caller, natively (a chroot of the same tree) and in
a guest: argument vectors at and past Linux's limits, crafted ELF headers
and #! lines; and the kernel serving a bystander while one execve copies
its arguments.  tests/progs/sec_exec.c runs each try in a child and prints
what it came to."""
from __future__ import annotations

import os
import struct
import subprocess

import pytest

from conftest import PROGS, disk_of, make_tree
from test_escapes import with_bystander
from conftest import guest, native

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD, PT_PHDR = 1, 6
R_X, RW_, R__ = 5, 6, 4
BASE = 0x400000
EXIT7 = bytes.fromhex("b83c000000bf070000000f05")       # exit(7)
TOP = 1 << 64


def elf(segments, entry, *, code=EXIT7, etype=2, machine=62, phoff=64, phnum=None,
        phentsize=56, magic=b"\x7fELF", size=0x3000) -> bytes:
    """A file of size bytes: the ELF header, the program headers
    (type, flags, offset, vaddr, filesz, memsz) at phoff, code at 0x1000."""
    out = bytearray(size)
    out[0:64] = _EHDR.pack(magic + b"\x02\x01\x01" + bytes(9), etype, machine, 1, entry, phoff,
                           0, 0, 64, phentsize, len(segments) if phnum is None else phnum, 0, 0, 0)
    table = b"".join(_PHDR.pack(t, f, o, v, v, fs, ms, 0x1000) for t, f, o, v, fs, ms in segments)
    if phoff + len(table) <= size:
        out[phoff:phoff + len(table)] = table
    out[0x1000:0x1000 + len(code)] = code
    return bytes(out)


def text(**kw) -> bytes:
    """One R+X PT_LOAD at offset 0 (headers and code) at BASE."""
    return elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)], BASE + 0x1000, **kw)


def crafted(auxv: bytes) -> dict[str, bytes]:
    """auxv: code that prints AT_PHDR in hex and exits 7 (sec_auxv.S)."""
    empty = (0, 0, 0, 0, 0, 0)
    return {
        "valid": text(),
        "bad-magic": text(magic=b"\x7fELG"),
        "core-file": text(etype=4),
        "i386": text(machine=3),
        "phentsize-32": text(phentsize=32),
        "no-program-headers": text(phnum=0),
        "1170-program-headers": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)] + [empty] * 1169,
                                    BASE + 0x1000, phoff=0x2000, size=0x14000),
        "1171-program-headers": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)] + [empty] * 1170,
                                    BASE + 0x1000, phoff=0x2000, size=0x14000),
        "phoff-past-the-end": text(phoff=0x10000),
        "phoff-2^63": text(phoff=1 << 63),
        "phoff-wraps": text(phoff=TOP - 8),
        "no-pt-load": elf([(PT_PHDR, R__, 64, BASE + 64, 56, 56)], BASE + 0x1000),
        "memsz-wraps": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, TOP - 0x1000)], BASE + 0x1000),
        "memsz-2^47": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 1 << 47)], BASE + 0x1000),
        "vaddr-past-user-space": elf([(PT_LOAD, R_X, 0, 1 << 47, 0x2000, 0x2000)],
                                     (1 << 47) + 0x1000),
        "vaddr-wraps": elf([(PT_LOAD, R_X, 0, TOP - 0x1000, 0x1000, 0x1000)], BASE),
        "vaddr-0": elf([(PT_LOAD, R_X, 0, 0, 0x2000, 0x2000)], 0x1000),
        "filesz-over-memsz": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x1000)], BASE + 0x1000),
        "offset-off-page": elf([(PT_LOAD, R_X, 0x10, BASE, 0x2000, 0x2000)], BASE + 0x1000),
        "offset-2^63": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000),
                            (PT_LOAD, RW_, 1 << 63, BASE + 0x10000, 0x1000, 0x1000)],
                           BASE + 0x1000),
        "offset-wraps": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000),
                             (PT_LOAD, RW_, TOP - 0x1000, BASE + 0x10000, 0x1000, 0x1000)],
                            BASE + 0x1000),
        "filesz-past-the-end": elf([(PT_LOAD, R_X, 0, BASE, 0x100000, 0x100000)], BASE + 0x1000),
        "entry-past-user-space": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)], 1 << 47),
        "entry-wraps": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)], TOP - 1),
        "entry-unmapped": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)], BASE + 0x100000),
        "pie-entry-wraps": elf([(PT_LOAD, R_X, 0, 0, 0x2000, 0x2000)], TOP - 1, etype=3),
        "pie-vaddr-2^63": elf([(PT_LOAD, R_X, 0, 1 << 63, 0x2000, 0x2000)], (1 << 63) + 0x1000,
                              etype=3),
        "out-of-order": elf([(PT_LOAD, RW_, 0x2000, BASE + 0x10000, 0x1000, 0x1000),
                             (PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)], BASE + 0x1000),
        "overlapping": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000),
                            (PT_LOAD, R_X, 0x1000, BASE + 0x1000, 0x1000, 0x1000)], BASE + 0x1000),
        "bss-over-text": elf([(PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000),
                              (PT_LOAD, RW_, 0, BASE, 0, 0x1000)], BASE + 0x1000),
        "at-phdr-in-the-load-at-0": text(code=auxv),
        "at-phdr-no-load-at-0": elf([(PT_LOAD, R_X, 0x1000, BASE + 0x1000, 0x2000, 0x2000)],
                                    BASE + 0x1000, phoff=0x2000, code=auxv),
        "at-phdr-in-no-load": elf([(PT_LOAD, R_X, 0x1000, BASE + 0x1000, 0x1000, 0x1000)],
                                  BASE + 0x1000, phoff=0x2000, code=auxv),
        "at-phdr-not-pt-phdr": elf([(PT_PHDR, R__, 64, BASE + 0x5000, 112, 112),
                                    (PT_LOAD, R_X, 0, BASE, 0x2000, 0x2000)], BASE + 0x1000,
                                   code=auxv),
    }


# Linux finds these wrong only past the point of no return, and the task dies
# of SIGSEGV; skas checks them before and the caller gets ENOEXEC.
REFUSED_EARLIER = {"no-pt-load", "memsz-wraps", "memsz-2^47", "vaddr-past-user-space",
                   "vaddr-wraps", "vaddr-0", "filesz-over-memsz", "offset-off-page",
                   "offset-2^63", "offset-wraps", "entry-past-user-space", "entry-wraps",
                   "pie-entry-wraps", "pie-vaddr-2^63"}

SCRIPTS = {
    "long-line": b"#!" + b"a" * 300 + b"\n",
    "long-argument": b"#!/bin/sec_exec " + b"a" * 300 + b"\n",
    "spaces-and-tabs": b"#! \t /bin/sec_exec   -x \t y \t \n",
    "nothing": b"#!\n",
    "blanks": b"#!   \t \n",
    "nul-after-the-name": b"#!/bin/sec_exec\0 junk arg\n",
    "nul-starts-the-argument": b"#!/bin/sec_exec \0x\n",
    "no-such-interpreter": b"#!/nonexistent\n",
    "no-newline-trailing-spaces": b"#!/bin/sec_exec" + b" " * 300,
    "no-newline-short-file": b"#!/bin/sec_exec",
    "name-fills-the-buffer": b"#!/" + b"a" * 253,
    "name-ends-at-byte-255": b"#!/bin/sec_exec" + b"x" * 240 + b" arg",
    "relative-interpreter": b"#!bin/sec_exec arg\n",
}
CHAINS = (5, 6)        # Linux follows five #! rewrites, not six


def chain(n: int) -> dict[str, bytes]:
    return {f"chain{n}-{i}": f"#!/s/chain{n}-{i + 1}\n".encode() if i + 1 < n
            else b"#!/bin/sec_exec\n" for i in range(n)}


@pytest.fixture(scope="module")
def xtree(tmp_path_factory):
    root = make_tree(tmp_path_factory, "xtree", ("sec_exec",))
    work = tmp_path_factory.mktemp("auxv")
    subprocess.run(["gcc", "-c", "-o", str(work / "auxv.o"), str(PROGS / "sec_auxv.S")], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(work / "auxv.o"),
                    str(work / "auxv.bin")], check=True)
    auxv = (work / "auxv.bin").read_bytes()
    files = {f"e/{name}": image for name, image in crafted(auxv).items()}
    files.update({f"s/{name}": line for name, line in SCRIPTS.items()})
    for n in CHAINS:
        files.update({f"s/{name}": line for name, line in chain(n).items()})
    for rel, data in files.items():
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_bytes(data)
        os.chmod(root / rel, 0o755)
    return root


@pytest.fixture(scope="module")
def xdisk(tmp_path_factory, xtree):
    yield from disk_of(tmp_path_factory, xtree)


def test_argument_vectors_at_and_past_the_limits_as_linux(xtree, xdisk):
    """The strings and pointers exactly at the limit (a quarter of the stack
    rlimit) exec, a byte more is E2BIG; a string of MAX_ARG_STRLEN with its
    NUL execs, one more is E2BIG; bad pointers are EFAULT; the environment is
    copied before the arguments, the file opened before both; an empty argv
    becomes {""}; 16 MiB of pointers are counted to their NULL."""
    want = native(xtree, "/bin/sec_exec", "args")
    got = with_bystander(xdisk, "/bin/sec_exec args")
    assert "12000 pointers to 128 KiB: E2BIG" in want.stdout.splitlines(), want.stdout
    assert got.stdout.splitlines() == want.stdout.splitlines() + ["attacker 0",
                                                                   "bystander alive"], got.stderr


def test_a_huge_execve_leaves_the_kernel_serving_others(xdisk):
    """One execve of 12,000 pointers to one 128 KiB string is E2BIG after
    2 MiB of them, read a step at a time: a child's getppid loop is served
    while it runs (its reads of /proc/PPID/stat find the caller waiting in
    its call, which no other call could see if the copy held the loop)."""
    got = guest(xdisk, "/bin/sec_exec", "bystander")
    assert got.stdout.splitlines() == ["execve: E2BIG every time",
                                       "bystander: served during an execve",
                                       "bystander: still served after",
                                       "bystander: exit 0"], got.stderr


def test_crafted_elf_headers_are_refused_before_the_old_image_goes(xtree, xdisk):
    """binfmt_elf's header checks give ENOEXEC as on Linux; what Linux finds
    wrong only after the point of no return (and kills the task with
    SIGSEGV) is ENOEXEC here, never an op that fails after the old image is
    gone; layouts Linux tolerates (segments out of order, overlapping, past
    the end of the file) run; AT_PHDR is found as Linux finds it."""
    paths = [f"/e/{name}" for name in sorted(os.listdir(xtree / "e"))]
    want = native(xtree, "/bin/sec_exec", "run", *paths).stdout.splitlines()
    got = with_bystander(xdisk, "/bin/sec_exec run " + " ".join(paths))
    expected = []
    for line in want:
        name = line.split(":")[0][3:]
        if name in REFUSED_EARLIER:
            assert line.endswith(": signal 11") or name == "vaddr-0", line   # root maps page 0
            line = f"/e/{name}: ENOEXEC"
        expected.append(line)
    assert got.stdout.splitlines() == expected + ["attacker 0", "bystander alive"], got.stderr


def test_hash_bang_lines_as_linux_binfmt_script(xtree, xdisk):
    """The interpreter's name must end inside the first 256 bytes (ENOEXEC
    otherwise), its argument may be cut there; spaces, tabs and NULs split
    them as Linux does; five rewrites are followed, a sixth is ELOOP."""
    paths = [f"/s/{name}" for name in (*SCRIPTS, *(f"chain{n}-0" for n in CHAINS))]
    want = native(xtree, "/bin/sec_exec", "run", *paths).stdout.splitlines()
    got = with_bystander(xdisk, "/bin/sec_exec run " + " ".join(paths))
    assert "/s/long-line: ENOEXEC" in want and "/s/chain6-0: ELOOP" in want
    assert got.stdout.splitlines() == want + ["attacker 0", "bystander alive"], got.stderr
