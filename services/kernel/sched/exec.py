"""execve: turn a guest file into a fresh address space, as ``binfmt_elf`` does.

The kernel decides everything and sends userspace two batches of ops: first
``exec_stub`` (an empty address space; it tells us where the host put the vdso
and the stack), then the mappings of each ``PT_LOAD`` from the page cache,
the zeroed bss, the initial stack (argv, envp, auxv), brk and the entry
registers.  Static, static-PIE and dynamic executables (their ``PT_INTERP``
loaded too) and ``#!`` scripts run; the credentials the program starts with
are core/cred.py's ``on_exec``.

Everything the guest hands in is hostile: the argument vectors are copied
as Linux's ``copy_strings`` does (counted, held to the limit as they come
in, in bounded steps between turns of the kernel's loop), and every address
the loader computes is checked before the old image goes.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import re
import stat as S
import struct
from dataclasses import dataclass

from common.layout import touches_stub
from common.ops import ExecStub, Mmap, Poke, SetMm, SetRegs
from services.kernel.core import cred
from services.kernel.sched import sigframe, signals
from services.kernel.abi.arch import PAGE, TASK_SIZE, U64
from services.kernel.abi.mman import (MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, MAP_PRIVATE,
                                      PROT_EXEC, PROT_READ, PROT_WRITE)
from services.kernel.abi.resource import RLIMIT_STACK
from services.kernel.abi.signal import SIG_DFL, SIG_IGN
from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import permitted
from services.kernel.abi.fcntl import PATH_MAX, R_OK, X_OK
from services.kernel.abi.mount import MS_NOSUID
from services.kernel.abi.prctl import SUID_DUMP_DISABLE, SUID_DUMP_USER
from services.kernel.abi.elf import AT, PT_INTERP, PT_LOAD

log = logging.getLogger(__name__)

MAX_FILE_OFFSET = (1 << 63) - 1   # MAX_LFS_FILESIZE: how far mmap may reach into a file
MMAP_MIN_ADDR = int(open("/proc/sys/vm/mmap_min_addr").read())   # the host maps nothing below
ELF_ET_DYN_BASE = 0x555555554000
INTERP_BASE = 0x7F0000000000  # interpreters go in the 64 GiB above, clear of the stub's range
STACK_SIZE = 8 << 20          # RLIMIT_STACK's default
BRK_RANDOM_PAGES = 1 << 13    # brk starts up to 32 MiB past the image, as on Linux
STK_LIM = 8 << 20             # Linux's _STK_LIM: the argument limit is at most 3/4 of it
ARG_MIN = 32 * PAGE           # Linux's ARG_MAX: the limit is at least this
MAX_ARG_STRLEN = 32 * PAGE    # one argument or environment string, with its NUL
MAX_ARG_STRINGS = 0x7FFFFFFF
MAX_PHDRS_SIZE = 65536        # the program header table, as load_elf_phdrs
BINPRM_BUF = 256
MAX_INTERP_DEPTH = 5          # #! rewrites before ELOOP, as exec_binprm
COPY_STEP = 256 << 10         # bytes of guest memory read between turns of the loop
COPY_CALL = 1024              # what one read of guest memory counts for besides its bytes



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
    interp: tuple[int, int] | None      # PT_INTERP's file range: the interpreter's name

    @property
    def phdr_vaddr(self) -> int:
        """Where the program headers are mapped, as Linux finds them (the
        last PT_LOAD whose file range holds e_phoff; 0 if none), before the
        load bias: PT_PHDR is not looked at."""
        return next((s.vaddr + self.phoff - s.offset for s in reversed(self.segments)
                     if s.offset <= self.phoff < s.offset + s.filesz), 0)


def _phdr_table(head: bytes, file_size: int) -> tuple[int, int]:
    """Where the program header table is (offset, size), after binfmt_elf's
    checks of the header: the magic, type and machine, the entry size, and
    a table of at most 64 KiB inside the file; ENOEXEC otherwise."""
    if len(head) < _EHDR.size:
        raise Errno(errno.ENOEXEC)
    ident, etype, machine, _v, _entry, phoff, _sh, _f, _eh, phentsize, phnum = \
        _EHDR.unpack_from(head)[:11]
    size = phnum * _PHDR.size
    if (ident[:4] != b"\x7fELF" or etype not in (2, 3) or machine != 62
            or phentsize != _PHDR.size or not 0 < size <= MAX_PHDRS_SIZE
            or phoff + size > file_size):
        raise Errno(errno.ENOEXEC)
    return phoff, size


def parse_elf(head: bytes, phdrs: bytes) -> Elf:
    """The header and its program headers (``_phdr_table`` has checked the
    header; ``_check_layout`` checks the addresses, with the load bias)."""
    etype, entry, phoff, phnum = (_EHDR.unpack_from(head)[i] for i in (1, 4, 5, 10))
    segments, interp = [], None
    for i in range(phnum):
        ptype, flags, offset, vaddr, _p, filesz, memsz, _a = \
            _PHDR.unpack_from(phdrs, i * _PHDR.size)
        if ptype == PT_LOAD:
            segments.append(Segment(vaddr, offset, filesz, memsz, flags))
        elif ptype == PT_INTERP and interp is None:
            interp = (offset, filesz)
    if not segments:
        raise Errno(errno.ENOEXEC)
    return Elf(etype, entry, phoff, phnum, segments, interp)


class Args:
    """argv and envp as exec holds them (Linux's bprm): room is what is left
    of the limit on their strings once their pointers are counted."""

    def __init__(self, task, argc: int, envc: int):
        limit = max(min(STK_LIM // 4 * 3, task.process.rlimits[RLIMIT_STACK][0] // 4), ARG_MIN)
        self.room = limit - (max(argc, 1) + envc) * 8
        if self.room <= 0:
            raise Errno(errno.E2BIG)
        self.argv: list[bytes] = []
        self.envp: list[bytes] = []

    @classmethod
    def of(cls, task, filename: bytes, argv: list[bytes], envp: list[bytes]) -> Args:
        """The kernel's own (init's): held to the same limit."""
        args = cls(task, len(argv), len(envp))
        for s in (filename, *envp, *argv):
            args.take(s)
        args.argv, args.envp = list(argv), list(envp)
        return args

    def take(self, s: bytes) -> None:
        self.room -= len(s) + 1
        if self.room < 0:
            raise Errno(errno.E2BIG)

    def shebang(self, interp: bytes, arg: bytes | None, filename: bytes) -> None:
        """binfmt_script: argv[0] gives way to the interpreter, its argument
        and the script's name, each held to the limit."""
        self.room += len(self.argv[0]) + 1
        new = [interp] + ([arg] if arg is not None else []) + [filename]
        for s in new:
            self.take(s)
        self.argv[0:1] = new


class _Steps:
    """Guest memory read since the loop last had a turn: at COPY_STEP it has
    one, so a copy of any size holds the loop a bounded time."""

    def __init__(self):
        self.done = 0

    async def spend(self, n: int) -> None:
        self.done += n + COPY_CALL
        if self.done >= COPY_STEP:
            self.done = 0
            await asyncio.sleep(0)


def _first_zero_word(chunk: bytes) -> int:
    """The index of chunk's first all-zero 8-byte word, or -1, at C speed:
    the eight byte lanes ORed, each word becomes one byte."""
    lanes = 0
    for k in range(8):
        lanes |= int.from_bytes(chunk[k::8], "little")
    return lanes.to_bytes(len(chunk) // 8, "little").find(b"\0")


async def _count(mem, addr: int, steps: _Steps) -> int:
    """Linux's count(): the pointers before the NULL (EFAULT at a hole, E2BIG
    past MAX_ARG_STRINGS); a NULL vector has none."""
    n, want = 0, 512          # a usual vector is a few words: read more only as needed
    while addr:
        chunk = mem.read_some(addr, want)
        want = min(want * 8, COPY_STEP)
        words = len(chunk) // 8
        if not words:
            raise Errno(errno.EFAULT)       # a pointer running into a hole
        await steps.spend(len(chunk))
        end = _first_zero_word(chunk[:words * 8])
        n += words if end < 0 else end
        if n > MAX_ARG_STRINGS:
            raise Errno(errno.E2BIG)
        if end >= 0:
            break
        addr += words * 8
    return n


async def _string(mem, addr: int, steps: _Steps) -> bytes:
    """One argument string (strnlen_user to MAX_ARG_STRLEN), joined once;
    E2BIG if it has no NUL within the limit."""
    pieces = []
    for piece, ended in mem.cstr_pieces(addr, MAX_ARG_STRLEN):
        await steps.spend(len(piece))
        pieces.append(piece)
        if ended:
            return b"".join(pieces)
    raise Errno(errno.E2BIG)


async def copy_args(task, filename: bytes, argv_ptr: int, envp_ptr: int) -> Args:
    """do_execveat_common's copy: both vectors counted, their pointers held
    to the limit, then the strings, the environment's first and each
    vector's from its end, E2BIG as soon as they pass it.  An empty argv
    gets "" as its argv[0], as on Linux."""
    mem, steps = task.mem, _Steps()
    argc = await _count(mem, argv_ptr, steps)
    envc = await _count(mem, envp_ptr, steps)
    args = Args(task, argc, envc)
    args.take(filename)
    for ptr, n, into in ((envp_ptr, envc, args.envp), (argv_ptr, argc, args.argv)):
        if n:
            ptrs = memoryview(mem.read(ptr, n * 8)).cast("Q")    # taken one by one, not
            await steps.spend(n * 8)                            # unpacked in one step
            for i in range(n - 1, -1, -1):
                s = await _string(mem, ptrs[i], steps)
                args.take(s)
                into.append(s)
            into.reverse()
    if not argc:
        args.take(b"")
        args.argv.append(b"")
    return args


async def open_exec(task, path: bytes):
    """The file to run, as do_open_execat: a regular file the caller may
    execute (EACCES otherwise); the program, its PT_INTERP and its #!
    interpreter are all looked up from the task's root."""
    return executable(task, await task.kernel.vfs.lookup(task.cwd, path, task.cred, task.root))


def executable(task, loc):
    inode = loc.inode
    if not S.S_ISREG(inode.mode) or not permitted(inode, task.cred, X_OK):
        raise Errno(errno.EACCES)
    return loc


_TERMINATOR = re.compile(rb"[ \t\0]")


def _shebang(head: bytes) -> tuple[bytes, bytes | None]:
    """binfmt_script's reading of a #! line in the first BINPRM_BUF bytes:
    (interpreter, its optional argument).  Without a newline there, the
    name must still end (space, tab or NUL) inside them, or it may be cut
    short: ENOEXEC; the argument may be cut."""
    buf = head.ljust(BINPRM_BUF, b"\0")
    end = buf.find(b"\n")
    if end < 0:
        name = BINPRM_BUF - len(buf[2:].lstrip(b" \t"))
        if name == BINPRM_BUF or not _TERMINATOR.search(buf, name):
            raise Errno(errno.ENOEXEC)
        end = BINPRM_BUF - 1
    line = buf[2:end].strip(b" \t")
    if not line:
        raise Errno(errno.ENOEXEC)
    sep = _TERMINATOR.search(line)
    if sep is None:
        return line, None
    rest = line[sep.start():].lstrip(b" \t") if line[sep.start()] else b""
    return line[:sep.start()], rest.split(b"\0", 1)[0] if rest else None


async def prepare(task, loc, path: bytes, args: Args, depth: int = 0):
    """Everything that can fail before the old image is destroyed.

    Returns (location, elf, interpreter, unreadable) with ``#!`` interpreters
    resolved into args; unreadable: a file of the chain (script, its
    interpreters, the program, its PT_INTERP) the caller may not read,
    which makes the process not dumpable (would_dump)."""
    inode = loc.inode
    unreadable = not permitted(inode, task.cred, R_OK)
    head = await inode.read(0, BINPRM_BUF)
    if head.startswith(b"#!"):
        if depth >= MAX_INTERP_DEPTH:
            raise Errno(errno.ELOOP)
        interp, arg = _shebang(head)
        args.shebang(interp, arg, path)
        *found, more = await prepare(task, await open_exec(task, interp), interp, args, depth + 1)
        return *found, unreadable or more
    elf = await read_elf(inode, head)
    interp = None
    if elf.interp is not None:
        interp = await _interpreter(task, inode, elf)
        unreadable = unreadable or not permitted(interp[0].inode, task.cred, R_OK)
    return loc, elf, interp, unreadable


async def read_elf(inode, head: bytes) -> Elf:
    phoff, size = _phdr_table(head, inode.size)
    return parse_elf(head, await inode.read(phoff, size))


async def _interpreter(task, inode, elf: Elf) -> tuple:
    """PT_INTERP, as load_elf_binary reads it: a name of at most PATH_MAX
    bytes ending in its NUL, a file the caller may execute, an ELF of its
    own (its own PT_INTERP is not followed).  (location, its Elf)."""
    offset, size = elf.interp
    if not 2 <= size <= PATH_MAX or offset + size > inode.size:
        raise Errno(errno.ENOEXEC)
    name = await inode.read(offset, size)
    if len(name) != size or name[-1] != 0:
        raise Errno(errno.ENOEXEC)
    loc = await open_exec(task, name[:-1].split(b"\0", 1)[0])
    ielf = await read_elf(loc.inode, await loc.inode.read(0, BINPRM_BUF))
    return loc, ielf


def _auxv(task, elf: Elf, bias: int, vdso: int, at_random: int, execfn: int,
          platform: int, base: int, secure: bool) -> list[tuple[int, int]]:
    c = task.cred
    aux = [(AT["SYSINFO_EHDR"], vdso)]
    if AT["MINSIGSTKSZ"] in HOST_AUXV:
        aux.append((AT["MINSIGSTKSZ"], HOST_AUXV[AT["MINSIGSTKSZ"]]))
    aux += [(AT["HWCAP"], HOST_AUXV.get(AT["HWCAP"], 0)), (AT["PAGESZ"], PAGE),
            (AT["CLKTCK"], 100), (AT["PHDR"], (bias + elf.phdr_vaddr) & U64),
            (AT["PHENT"], _PHDR.size), (AT["PHNUM"], elf.phnum), (AT["BASE"], base), (AT["FLAGS"], 0),
            (AT["ENTRY"], bias + elf.entry), (AT["UID"], c.uid), (AT["EUID"], c.euid),
            (AT["GID"], c.gid), (AT["EGID"], c.egid),
            (AT["SECURE"], int(secure)),
            (AT["RANDOM"], at_random), (AT["HWCAP2"], HOST_AUXV.get(AT["HWCAP2"], 0)),
            (AT["EXECFN"], execfn), (AT["PLATFORM"], platform), (AT["NULL"], 0)]
    return aux


def build_stack(task, elf: Elf, bias: int, vdso: int, top: int, argv: list[bytes],
                envp: list[bytes], execfn: bytes, base: int = 0,
                secure: bool = False) -> tuple[int, bytes, dict]:
    """The initial stack as Linux lays it out (base: where the interpreter
    is, AT_BASE; secure: AT_SECURE, which has ld.so ignore LD_PRELOAD and
    the like).  Returns (rsp, bytes from rsp up to top, the argument and
    environment ranges for set_mm)."""
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
    for key, value in _auxv(task, elf, bias, vdso, random_addr, execfn_addr, platform_addr,
                            base, secure):
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
            ops.append(Mmap(addr=map_start, length=_page_up(file_end) - map_start,
                            prot=seg.prot, flags=MAP_PRIVATE | MAP_FIXED, path=cache_path,
                            offset=seg.offset - (start - map_start)))
        if seg.memsz > seg.filesz:
            if seg.filesz and file_end % PAGE:
                ops.append(Poke(addr=file_end, data=bytes(PAGE - file_end % PAGE)))
            anon_start = _page_up(file_end) if seg.filesz else map_start
            anon_end = _page_up(start + seg.memsz)
            if anon_end > anon_start:
                ops.append(Mmap(addr=anon_start, length=anon_end - anon_start,
                                prot=seg.prot, flags=MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS,
                                offset=0))
        end = max(end, start + seg.memsz)
        (code if seg.flags & 1 else data).append((start, start + seg.memsz))
    start_code = min(s for s, _ in code) if code else bias + elf.segments[0].vaddr
    end_code = max(e for _, e in code) if code else start_code + 1
    start_data = min((s for s, _ in data), default=end_code)
    end_data = max((e for _, e in data), default=end_code)
    brk = _page_up(end) + random.randrange(BRK_RANDOM_PAGES) * PAGE
    return ops, {"start_code": start_code, "end_code": end_code, "start_data": start_data,
                 "end_data": end_data, "start_brk": brk, "brk": brk}


async def execve(task, path: bytes, loc, args: Args) -> list[dict]:
    """Replace task's image; returns the final batch of ops (which sets the
    registers).  Errors before the old image is gone are returned to the
    caller as -errno; after that the task is killed, as on Linux."""
    loc, elf, interp, unreadable = await prepare(task, loc, path, args)
    bias = 0
    if elf.type == 3:   # PIE: a randomized base, as Linux's ELF_ET_DYN_BASE + mmap_rnd
        bias = ELF_ET_DYN_BASE + (random.getrandbits(28) << 12) - _page_down(elf.segments[0].vaddr)
    _check_layout(elf, bias)
    images = [(loc, elf, bias)]
    if interp is not None:          # the interpreter where Linux's mmap would put it
        iloc, ielf = interp
        ibias = 0
        if ielf.type == 3:
            ibias = INTERP_BASE + (random.getrandbits(24) << 12) - _page_down(ielf.segments[0].vaddr)
        _check_layout(ielf, ibias)
        images.append((iloc, ielf, ibias))
    cache, proc = task.kernel.pagecache, task.process
    maps, ops = [], []
    try:
        for iloc_, ielf_, ibias_ in images:   # the file range the PT_LOADs map
            cached, new = await cache.map(
                iloc_, 0, max(s.offset + s.filesz for s in ielf_.segments), holder=proc)
            maps.append((cached, new))
            image, layout_ = image_ops(ielf_, ibias_, cached.name)   # before the old image goes
            ops += image
            if ielf_ is elf:
                layout = layout_
        results = await task.kernel.run_ops(task, [ExecStub()])
    except BaseException:
        for cached, new in maps:
            if new:
                cache.let_go(proc, cached)
        raise
    if not results or not isinstance(results[0], dict):
        raise ExecFailed(f"exec_stub failed: {results}")
    cache.release(proc, *(cached for cached, _ in maps))     # the old image's maps are gone
    space = results[0]
    top = space["stack_top"]
    ops.append(Mmap(addr=top - STACK_SIZE, length=STACK_SIZE, prot=PROT_READ | PROT_WRITE,
                    flags=MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_NORESERVE, offset=0))
    secure = _commit_exec_creds(task, loc, unreadable)
    base = images[1][2] + _page_down(images[1][1].segments[0].vaddr) if interp else 0
    sp, stack, ranges = build_stack(task, elf, bias, space["vdso"], top, args.argv, args.envp,
                                    path, base, secure)
    ops.append(Poke(addr=sp, data=stack))
    ops.append(SetMm(**layout, **ranges))
    start = images[-1][2] + images[-1][1].entry     # the interpreter's entry, if any
    ops.append(SetRegs(rip=start, rsp=sp))
    task.brk = layout["brk"]
    task.exe = loc.path
    task.comm = os.path.basename(path)[:15]
    task.mm_ranges = ranges       # for /proc
    past_point_of_no_return(task)
    return ops


def _check_layout(elf: Elf, bias: int) -> None:
    """Every address the loader will compute, checked before the old image
    goes (Linux checks most of them after, and the task dies of SIGSEGV;
    here the caller gets ENOEXEC): each PT_LOAD as binfmt_elf wants it
    (p_filesz <= p_memsz, p_offset and p_vaddr alike within a page, inside
    TASK_SIZE before the bias, a file range mmap can reach), and loaded,
    inside what the host maps and off the stub's range (a program mapped
    over the stub would run its own code where userspace's injected calls
    return: docs/security.md); the entry inside user space."""
    for seg in elf.segments:
        start, end = _page_down(bias + seg.vaddr), bias + seg.vaddr + seg.memsz
        if (seg.filesz > seg.memsz or seg.offset % PAGE != seg.vaddr % PAGE
                or seg.vaddr + seg.memsz > TASK_SIZE or seg.offset + seg.filesz > MAX_FILE_OFFSET
                or start < MMAP_MIN_ADDR or end > TASK_SIZE or touches_stub(start, end - start)):
            raise Errno(errno.ENOEXEC)
    if not 0 <= bias + elf.entry < TASK_SIZE:
        raise Errno(errno.ENOEXEC)


def _commit_exec_creds(task, loc, unreadable: bool) -> bool:
    """The program's credentials (cred.on_exec: set-ID bits of the program,
    not of a #! script; the mount's nosuid) and its dumpability, as
    begin_new_exec: not dumpable if a file of the chain was unreadable or
    the caller's effective ids were not its real ones, else dumpable, and
    then as commit_creds has it.  Returns AT_SECURE."""
    old = task.cred
    new, secure = cred.on_exec(old, loc.inode, bool(loc.mount.flags & MS_NOSUID),
                               task.no_new_privs)
    if unreadable or old.euid != old.uid or old.egid != old.gid:
        task.process.dumpable = SUID_DUMP_DISABLE
    else:
        task.process.dumpable = SUID_DUMP_USER
    task.commit_creds(new)
    return secure


def past_point_of_no_return(task) -> None:
    """What the old image's going changes, as Linux's exec: O_CLOEXEC fds
    close, caught signals go back to their default (ignored ones stay
    ignored), the alternate stack goes, a vfork parent may run on."""
    task.files.close_on_exec()
    proc = task.process
    for sig in list(proc.sigactions):
        if signals.handler_of(proc, sig) not in (SIG_DFL, SIG_IGN):
            del proc.sigactions[sig]
    # Linux zeroes its address and size; its flags stay (SS_AUTODISARM shows)
    task.altstack = signals.disabled_altstack(sigframe.ALTSTACK.unpack(task.altstack)[1])
    if task.vfork_done is not None and not task.vfork_done.done():
        task.vfork_done.set_result(None)


class ExecFailed(Exception):
    """The old image is gone and the new one could not be built: kill the task."""
