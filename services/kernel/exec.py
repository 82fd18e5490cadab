"""execve: turn a guest file into a fresh address space, as ``binfmt_elf`` does.

The kernel decides everything and sends userspace two batches of ops: first
``exec_stub`` (an empty address space; it tells us where the host put the vdso
and the stack), then the mappings of each ``PT_LOAD`` from the page cache,
the zeroed bss, the initial stack (argv, envp, auxv), brk and the entry
registers.  Static and static-PIE executables and ``#!`` scripts run;
executables that need an interpreter (``PT_INTERP``) are refused with
ENOEXEC for now.
"""
from __future__ import annotations

import errno
import logging
import os
import random
import stat as S
import struct
from dataclasses import dataclass

from common.layout import ADDR_LIMIT, touches_stub
from services.kernel import cred, signal
from services.kernel.errors import Errno
from services.kernel.vfs import MS_NOSUID, X_OK, permitted

log = logging.getLogger(__name__)

PAGE = 4096
ELF_ET_DYN_BASE = 0x555555554000
STACK_SIZE = 8 << 20          # RLIMIT_STACK's default
BRK_RANDOM_PAGES = 1 << 13    # brk starts up to 32 MiB past the image, as on Linux
ARG_MAX = 2 << 20             # bytes of argv+envp strings (a quarter of the stack)
BINPRM_BUF = 256
MAX_INTERP_DEPTH = 4

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x2, 0x10, 0x20, 0x4000
PT_LOAD, PT_INTERP, PT_PHDR = 1, 3, 6

AT = dict(NULL=0, PHDR=3, PHENT=4, PHNUM=5, PAGESZ=6, BASE=7, FLAGS=8, ENTRY=9, UID=11,
          EUID=12, GID=13, EGID=14, PLATFORM=15, HWCAP=16, CLKTCK=17, SECURE=23, RANDOM=25,
          HWCAP2=26, EXECFN=31, SYSINFO_EHDR=33, MINSIGSTKSZ=51)

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")


def _page_down(x: int) -> int:
    return x & ~(PAGE - 1)


def _page_up(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


def _host_auxv() -> dict[int, int]:
    """The CPU's hardware capabilities, as this host reports them: guest code
    runs natively on this CPU, so the guest must see the same."""
    raw = open("/proc/self/auxv", "rb").read()
    return dict(struct.iter_unpack("<QQ", raw))


HOST_AUXV = _host_auxv()


@dataclass
class Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int

    @property
    def prot(self) -> int:
        return ((PROT_READ if self.flags & 4 else 0) | (PROT_WRITE if self.flags & 2 else 0)
                | (PROT_EXEC if self.flags & 1 else 0))


@dataclass
class Elf:
    type: int
    entry: int
    phoff: int
    phnum: int
    segments: list[Segment]
    phdr_vaddr: int | None
    interp: bool


def parse_elf(head: bytes, phdrs: bytes) -> Elf:
    ident, etype, machine, _v, entry, phoff, _sh, _f, _eh, phentsize, phnum = \
        _EHDR.unpack_from(head)[:11]
    if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
        raise Errno(errno.ENOEXEC)
    if etype not in (2, 3) or machine != 62 or phentsize != _PHDR.size or not 0 < phnum <= 128:
        raise Errno(errno.ENOEXEC)
    segments, phdr_vaddr, interp = [], None, False
    for i in range(phnum):
        ptype, flags, offset, vaddr, _p, filesz, memsz, _a = _PHDR.unpack_from(phdrs, i * _PHDR.size)
        if ptype == PT_LOAD:
            if memsz < filesz or offset % PAGE != vaddr % PAGE:
                raise Errno(errno.ENOEXEC)
            segments.append(Segment(vaddr, offset, filesz, memsz, flags))
        elif ptype == PT_PHDR:
            phdr_vaddr = vaddr
        elif ptype == PT_INTERP:
            interp = True
    if not segments:
        raise Errno(errno.ENOEXEC)
    return Elf(etype, entry, phoff, phnum, segments, phdr_vaddr, interp)


async def prepare(task, path: bytes, argv: list[bytes], envp: list[bytes], depth: int = 0):
    """Everything that can fail before the old image is destroyed.

    Returns (location, elf, argv) with ``#!`` interpreters resolved."""
    vfs = task.kernel.vfs
    loc = await vfs.lookup(task.cwd, path, task.cred)
    inode = loc.inode
    if S.S_ISDIR(inode.mode):
        raise Errno(errno.EACCES)
    if not S.S_ISREG(inode.mode) or not permitted(inode, task.cred, X_OK):
        raise Errno(errno.EACCES)
    head = await inode.read(0, BINPRM_BUF)
    if head.startswith(b"#!"):
        if depth >= MAX_INTERP_DEPTH:
            raise Errno(errno.ELOOP)
        line = head[2:].split(b"\n", 1)[0].strip(b" \t")
        if not line:
            raise Errno(errno.ENOEXEC)
        interp, _, arg = line.replace(b"\t", b" ").partition(b" ")
        arg = arg.strip(b" ")
        new_argv = [interp] + ([arg] if arg else []) + [path] + argv[1:]
        return await prepare(task, interp, new_argv, envp, depth + 1)
    if len(head) < _EHDR.size:
        raise Errno(errno.ENOEXEC)
    phoff, phnum = _EHDR.unpack_from(head)[5], _EHDR.unpack_from(head)[10]
    phdrs = await inode.read(phoff, phnum * _PHDR.size)
    elf = parse_elf(head, phdrs)
    if elf.interp:
        log.warning("exec %s: dynamically linked executables are not supported yet",
                    path.decode(errors="replace"))
        raise Errno(errno.ENOEXEC)
    return loc, elf, argv


def _auxv(task, elf: Elf, bias: int, vdso: int, at_random: int, execfn: int,
          platform: int) -> list[tuple[int, int]]:
    if elf.phdr_vaddr is not None:
        phdr = bias + elf.phdr_vaddr
    else:
        first = next(s for s in elf.segments if s.offset == 0)
        phdr = bias + first.vaddr + elf.phoff
    c = task.cred
    aux = [(AT["SYSINFO_EHDR"], vdso)]
    if AT["MINSIGSTKSZ"] in HOST_AUXV:
        aux.append((AT["MINSIGSTKSZ"], HOST_AUXV[AT["MINSIGSTKSZ"]]))
    aux += [(AT["HWCAP"], HOST_AUXV.get(AT["HWCAP"], 0)), (AT["PAGESZ"], PAGE),
            (AT["CLKTCK"], 100), (AT["PHDR"], phdr), (AT["PHENT"], _PHDR.size),
            (AT["PHNUM"], elf.phnum), (AT["BASE"], 0), (AT["FLAGS"], 0),
            (AT["ENTRY"], bias + elf.entry), (AT["UID"], c.uid), (AT["EUID"], c.euid),
            (AT["GID"], c.gid), (AT["EGID"], c.egid),
            (AT["SECURE"], int(c.euid != c.uid or c.egid != c.gid)),
            (AT["RANDOM"], at_random), (AT["HWCAP2"], HOST_AUXV.get(AT["HWCAP2"], 0)),
            (AT["EXECFN"], execfn), (AT["PLATFORM"], platform), (AT["NULL"], 0)]
    return aux


def build_stack(task, elf: Elf, bias: int, vdso: int, top: int, argv: list[bytes],
                envp: list[bytes], execfn: bytes) -> tuple[int, bytes, dict]:
    """The initial stack as Linux lays it out.  Returns (rsp, bytes from rsp
    up to top, the argument and environment ranges for set_mm)."""
    strings = b"".join(a + b"\0" for a in argv) + b"".join(e + b"\0" for e in envp)
    strings_start = top - 8 - (len(execfn) + 1) - len(strings)
    arg_ptrs, p = [], strings_start
    for a in argv:
        arg_ptrs.append(p)
        p += len(a) + 1
    env_ptrs = []
    for e in envp:
        env_ptrs.append(p)
        p += len(e) + 1
    execfn_addr = p
    platform_addr = strings_start - 16
    random_addr = platform_addr - 16
    vector = [len(argv)] + arg_ptrs + [0] + env_ptrs + [0]
    for key, value in _auxv(task, elf, bias, vdso, random_addr, execfn_addr, platform_addr):
        vector += [key, value]
    sp = (random_addr - 8 * len(vector)) & ~15
    image = bytearray(top - sp)
    image[0:8 * len(vector)] = struct.pack(f"<{len(vector)}Q", *vector)
    off = random_addr - sp
    image[off:off + 16] = os.urandom(16)
    image[platform_addr - sp:platform_addr - sp + 7] = b"x86_64\0"
    image[strings_start - sp:strings_start - sp + len(strings)] = strings
    image[execfn_addr - sp:execfn_addr - sp + len(execfn) + 1] = execfn + b"\0"
    ranges = {"start_stack": sp, "arg_start": strings_start,
              "arg_end": env_ptrs[0] if envp else execfn_addr,
              "env_start": env_ptrs[0] if envp else execfn_addr, "env_end": execfn_addr}
    return sp, bytes(image), ranges


def image_ops(elf: Elf, bias: int, cache_path: str) -> tuple[list[dict], dict]:
    """Map every PT_LOAD; return the ops and the code/data/brk layout."""
    ops: list[dict] = []
    end = 0
    code, data = [], []
    for seg in elf.segments:
        start = bias + seg.vaddr
        map_start = _page_down(start)
        file_end = start + seg.filesz
        if seg.filesz:
            ops.append({"op": "mmap", "addr": map_start, "length": _page_up(file_end) - map_start,
                        "prot": seg.prot, "flags": MAP_PRIVATE | MAP_FIXED, "path": cache_path,
                        "offset": seg.offset - (start - map_start)})
        if seg.memsz > seg.filesz:
            if seg.filesz and file_end % PAGE:
                ops.append({"op": "poke", "addr": file_end, "data": bytes(PAGE - file_end % PAGE)})
            anon_start = _page_up(file_end) if seg.filesz else map_start
            anon_end = _page_up(start + seg.memsz)
            if anon_end > anon_start:
                ops.append({"op": "mmap", "addr": anon_start, "length": anon_end - anon_start,
                            "prot": seg.prot, "flags": MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS,
                            "offset": 0})
        end = max(end, start + seg.memsz)
        (code if seg.flags & 1 else data).append((start, start + seg.memsz))
    start_code = min(s for s, _ in code) if code else bias + elf.segments[0].vaddr
    end_code = max(e for _, e in code) if code else start_code + 1
    start_data = min((s for s, _ in data), default=end_code)
    end_data = max((e for _, e in data), default=end_code)
    brk = _page_up(end) + random.randrange(BRK_RANDOM_PAGES) * PAGE
    return ops, {"start_code": start_code, "end_code": end_code, "start_data": start_data,
                 "end_data": end_data, "start_brk": brk, "brk": brk}


async def execve(task, path: bytes, argv: list[bytes], envp: list[bytes]) -> list[dict]:
    """Replace task's image; returns the final batch of ops (which sets the
    registers).  Errors before the old image is gone are returned to the
    caller as -errno; after that the task is killed, as on Linux."""
    loc, elf, argv = await prepare(task, path, argv, envp)
    if sum(len(a) + 1 for a in argv) + sum(len(e) + 1 for e in envp) > ARG_MAX:
        raise Errno(errno.E2BIG)
    cache_path = await task.kernel.pagecache.host_path(   # the file range the PT_LOADs map
        loc, 0, max(s.offset + s.filesz for s in elf.segments))
    bias = 0
    if elf.type == 3:   # static-PIE: a randomized base, as Linux's ELF_ET_DYN_BASE + mmap_rnd
        bias = ELF_ET_DYN_BASE + (random.getrandbits(28) << 12) - _page_down(elf.segments[0].vaddr)
    _check_layout(elf, bias)
    results = await task.kernel.run_ops(task, [{"op": "exec_stub"}])
    if not results or not isinstance(results[0], dict):
        raise ExecFailed(f"exec_stub failed: {results}")
    space = results[0]
    ops, layout = image_ops(elf, bias, cache_path)
    top = space["stack_top"]
    ops.append({"op": "mmap", "addr": top - STACK_SIZE, "length": STACK_SIZE,
                "prot": PROT_READ | PROT_WRITE,
                "flags": MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE, "offset": 0})
    task.cred = cred.on_exec(task.cred, loc.inode, bool(loc.mount.flags & MS_NOSUID))
    sp, stack, ranges = build_stack(task, elf, bias, space["vdso"], top, argv, envp, path)
    ops.append({"op": "poke", "addr": sp, "data": stack})
    ops.append({"op": "set_mm", **layout, **ranges})
    ops.append({"op": "set_regs", "rip": bias + elf.entry, "rsp": sp})
    task.brk = layout["brk"]
    task.exe = loc.path
    task.comm = os.path.basename(path)[:15]
    task.mm_ranges = dict(ranges, exe_dev=loc.mount.dev, exe_ino=loc.inode.ino)   # for /proc
    past_point_of_no_return(task)
    return ops


def _check_layout(elf: Elf, bias: int) -> None:
    """Every segment inside user space and off the stub's range, checked
    before the old image goes: a program mapped over the stub would run its
    own code where userspace's injected calls return (docs/security.md)."""
    for seg in elf.segments:
        start, end = _page_down(bias + seg.vaddr), bias + seg.vaddr + seg.memsz
        if end > ADDR_LIMIT or touches_stub(start, end - start):
            raise Errno(errno.ENOEXEC)


def past_point_of_no_return(task) -> None:
    """What the old image's going changes, as Linux's exec: O_CLOEXEC fds
    close, caught signals go back to their default (ignored ones stay
    ignored), the alternate stack goes, a vfork parent may run on."""
    task.files.close_on_exec()
    proc = task.process
    for sig in list(proc.sigactions):
        if signal.handler_of(proc, sig) not in (signal.SIG_DFL, signal.SIG_IGN):
            del proc.sigactions[sig]
    task.altstack = bytes(24)
    if task.vfork_done is not None and not task.vfork_done.done():
        task.vfork_done.set_result(None)


class ExecFailed(Exception):
    """The old image is gone and the new one could not be built: kill the task."""
