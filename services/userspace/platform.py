"""What userspace does to guest processes on the kernel's orders.

Spawning a stub address space, and the address-space ops of DESIGN §3 run by
injected system calls.  Nothing here decides what a guest system call means.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import struct
from typing import Callable

from common.layout import touches_stub
from common.ops import MM_FIELDS, PAGECACHE_NAME, OpError, check as check_op
from services.userspace import stub
from services.userspace.jail import Jail
from services.userspace.tracee import (
    O_RDONLY_CLOEXEC, O_RDWR_CLOEXEC, OPTIONS, PARKED, PTRACE_EVENT_STOP, PTRACE_SEIZE, PR_SET_MM, SYSCALL,
    PR_SET_MM_MAP, SYS_clone, SYS_close, SYS_execve, SYS_mmap, SYS_mprotect, SYS_munmap,
    SYS_open, SYS_prctl, U64, MAP_FIXED, Tracee, TraceeGone, _call, user_regs_struct)

log = logging.getLogger(__name__)
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1

_MM_MAP = struct.Struct("<11QQII")
EAGAIN, EFAULT, EINVAL = 11, 14, 22
CLONE_VM, CLONE_THREAD = 0x100, 0x10000


def spawn(task: int, jail: Jail, scratch: stub.Scratch, notify: bool = False) -> Tracee:
    """Start a stub, confined (jail.py), seize it, map its scratch, install
    the filter, leave it parked; with notify, its listener is ``t.listener``
    (-1 if the host has none).  A stub is never left behind untraced: it dies
    with userspace until seized (then PTRACE_O_EXITKILL does that), and is
    killed if anything here fails."""
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child: no host fd survives into the guest, no signal stays blocked
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            os.closerange(0, report_w)
            os.closerange(report_w + 1, os.sysconf("SC_OPEN_MAX"))
            jail.enter()
            if report_w == stub.SCRATCH_FD:
                report_w = os.dup(report_w)
            scratch_fd = os.open(stub.SCRATCH_NAME, os.O_RDONLY)   # read-only: see stub.py
            os.dup2(scratch_fd, stub.SCRATCH_FD)                   # kept across exec and fork
            # after the uid change, which clears it; the stub's exec keeps it
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() == parent:
                os.execve(stub.STUB_NAME, ["stub"], {})
        except BaseException as exc:   # noqa: BLE001 -- the parent says what failed
            os.write(report_w, str(exc).encode(errors="replace")[:1024])
        finally:
            os._exit(127)
    os.close(report_w)
    t = Tracee(task, pid)
    try:
        try:
            _, status = os.waitpid(pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                why = os.read(report_r, 1024).decode(errors="replace")
                raise OSError(f"stub {pid} did not start: {why or f'wait status {status:#x}'}")
        finally:
            os.close(report_r)
        _call(PTRACE_SEIZE, pid, 0, OPTIONS)
        while t.wait() >> 8 != PTRACE_EVENT_STOP:   # the group-stop becomes a ptrace stop
            pass
        t.getregs()
        t.prepare(scratch)
        t.listener = t.install_filter(notify)
    except BaseException:
        t.kill()                                    # no half-made stub is left behind
        if t.listener >= 0:
            os.close(t.listener)
        try:
            os.waitpid(pid, 0x40000000)
        except ChildProcessError:
            pass
        raise
    return t


class Context:
    """What ops need besides the tracee: a way to hand a new child (from
    ``clone``) to the service that tracks tracees, to wait for a group, and
    to tell the kernel of an op refused."""

    def __init__(self, adopt: Callable[[Tracee], None],
                 wait_group: Callable[[int, int], tuple[int, int]],
                 took_over: Callable[[Tracee, int], None],
                 gone: Callable[[Tracee, int], None],
                 refused: Callable[[Tracee, int, str], None] = lambda t, index, why: None):
        self.adopt = adopt        # track it; tell the kernel its host pid
        self.wait_group = wait_group    # the next event of either of two host pids
        self.took_over = took_over      # an exec made a thread its group's leader
        self.gone = gone                # a tracee ended: tell the kernel
        self.refused = refused          # op index was not one: tell the kernel why


def run_ops(t: Tracee, ops: list, ctx: Context) -> tuple[list, bool]:
    """Run a batch in order; stop at the first failure.  Returns the results and
    whether the batch set the registers (so the tracee must not be given a
    return value).  Each op is checked as it is taken (common/ops.py): one
    that is not an op the kernel's constructors make is refused, -EINVAL,
    before anything of it runs, and the kernel is told why."""
    results: list = []
    set_regs = False
    for index, op in enumerate(ops):
        try:
            kind = check_op(op)
            result = _OPS[kind](t, op, ctx)
            set_regs = set_regs or kind in _SETS_REGS
        except TraceeGone:
            raise
        except OpError as exc:
            log.error("task %d: op %d refused: %s", t.task, index, exc)
            ctx.refused(t, index, str(exc))
            result = -EINVAL
        except (KeyError, TypeError, ValueError) as exc:
            log.error("task %d: malformed op %r: %s", t.task, op, exc)
            result = -EINVAL
        except OSError as exc:
            result = -(exc.errno or EFAULT)
        results.append(result)
        if isinstance(result, int) and result < 0:
            break
    return results, set_regs


def _exec_stub(t: Tracee, _op: dict, ctx: Context) -> int | dict:
    """A fresh stub address space in the guest's process (its name and argv
    are the stub's own constants: nothing a guest thread could rewrite).
    The host's exec waits until the tracer has reaped every other thread of
    the group, so the wait takes their events too (from any thread: the
    leader's exec waits for them as a thread's does)."""
    was = t.pid
    result = t.inject(SYS_execve, stub.STUB_PATH, stub.ARGV, stub.ARGV + 8,
                      wait_group=ctx.wait_group)
    if t.pid != was:
        ctx.took_over(t, was)
    if result < 0:
        return result
    t.close()
    return {"vdso": t.vdso, "stack_top": t.stack_top}


def _mmap(t: Tracee, op: dict, _ctx: Context) -> int:
    """An anonymous map, or one of a page-cache file: its name relative to
    the run directory ("pagecache/KEY", or "shared/KEY" for a live file),
    which is the guest process's working directory or its jail's root.  A
    live file is opened read-write for a map the kernel says may write it."""
    path, flags = op["path"], op["flags"]
    if touches_stub(op["addr"], op["length"]) and flags & MAP_FIXED:
        return -EINVAL
    if path is None:
        return t.inject(SYS_mmap, op["addr"], op["length"], op["prot"], flags, U64, 0)
    match = PAGECACHE_NAME.fullmatch(path)
    if not match:           # checked on receipt too; this is where a file is opened
        raise ValueError(f"not a page-cache file: {path!r}")
    mode = O_RDWR_CLOEXEC if op["write"] and match[1] == "shared" else O_RDONLY_CLOEXEC
    fd = t.inject(SYS_open, t.write_scratch(0, path.encode() + b"\0"), mode)
    if fd < 0:
        return fd
    try:
        return t.inject(SYS_mmap, op["addr"], op["length"], op["prot"], flags, fd, op["offset"])
    finally:
        t.inject(SYS_close, fd)


def _munmap(t: Tracee, op: dict, _ctx: Context) -> int:
    if touches_stub(op["addr"], op["length"]):
        return -EINVAL
    return t.inject(SYS_munmap, op["addr"], op["length"])


def _mprotect(t: Tracee, op: dict, _ctx: Context) -> int:
    if touches_stub(op["addr"], op["length"]):
        return -EINVAL
    return t.inject(SYS_mprotect, op["addr"], op["length"], op["prot"])


def _poke(t: Tracee, op: dict, _ctx: Context) -> int:
    t.poke(op["addr"], op["data"])
    return 0


def _set_mm(t: Tracee, op: dict, _ctx: Context) -> int:
    """Tell the host where the guest's brk, arguments and environment are, so
    host brk() grows the guest's heap and not the stub's."""
    raw = _MM_MAP.pack(*(op[f] for f in MM_FIELDS), 0, 0, 0xFFFFFFFF)
    addr = t.write_scratch(0, raw)
    return t.inject(SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, addr, len(raw))


def _set_regs(t: Tracee, op: dict, _ctx: Context) -> int:
    """The entry state of a new image: every register zero but rip, rsp, eflags."""
    regs = t.regs
    for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11",
                 "r12", "r13", "r14", "r15", "fs_base", "gs_base"):
        setattr(regs, name, 0)
    regs.rip, regs.rsp, regs.eflags, regs.orig_rax = op["rip"], op["rsp"], 0x202, U64
    t.setregs(regs)
    return 0


def _clone(t: Tracee, op: dict, ctx: Context) -> int:
    """fork/clone on the host (copy-on-write is the host's).  The host attaches
    the child to us before its first instruction; it gets the registers of a
    return from the guest's call (0, on the stack it asked for), the kernel
    hears its host pid (``spawned``), and it runs.  The flags are the kernel's: it keeps
    host tids out of guest memory and makes every guest process a host child
    of this service (CLONE_PARENT), which reaps them all.  A plain fork
    returns through the stub's fork code instead (``fork_in_place``): the
    parent runs on without stopping again, and the child's registers are
    already those of the return."""
    in_place = not op["flags"] & CLONE_VM and not op["stack"] and t.state == SYSCALL
    pid = -1
    if in_place:
        try:
            pid = t.fork_in_place(op["flags"], op["ctid"], op["tls"], op["task"])
        except OSError:              # no stack below the red zone to use
            in_place = False
    if not in_place:
        pid = t.inject(SYS_clone, op["flags"], op["stack"], 0, op["ctid"], op["tls"])
    if pid < 0:
        return pid
    child = Tracee(op["task"], pid)
    if op["flags"] & CLONE_THREAD:
        child.tgid = t.tgid
    child.vdso, child.stack_top, child.scratch = t.vdso, t.stack_top, t.scratch
    try:
        while child.wait() >> 8 != PTRACE_EVENT_STOP:   # its first stop
            pass
        if not in_place:
            _return_regs(t, child)
    except TraceeGone:       # killed before it ever ran
        if not in_place:
            return -EAGAIN   # the guest sees a failed fork
        ctx.adopt(child)     # the parent has its tid: the child ended at once
        ctx.gone(child, getattr(child, "exit_status", 0))
        return pid
    child.state = PARKED
    if op["settid"]:          # CLONE_CHILD_SETTID, with the kernel's tid
        child.poke(op["settid"], struct.pack("<i", op["task"]))
    ctx.adopt(child)
    child.cont()
    return pid


def _return_regs(t: Tracee, child: Tracee) -> None:
    """The child's registers: those of a return from the parent's call, with
    0, on the stack and TLS the host clone gave it."""
    own = child.getregs()
    regs = user_regs_struct.from_buffer_copy(t.syscall_regs)
    regs.rax, regs.orig_rax = 0, U64
    regs.rsp, regs.fs_base, regs.gs_base = own.rsp, own.fs_base, own.gs_base
    child.setregs(regs)
    child.regs = regs


def _get_context(t: Tracee, _op: dict, _ctx: Context) -> dict:
    return t.context()


def _set_context(t: Tracee, op: dict, _ctx: Context) -> int:
    t.set_context(op["regs"], op["xstate"])
    return 0


# What each op type of common/ops.py does here: one function per type, each
# given an op that passed its type's check.
_OPS = {"exec_stub": _exec_stub, "mmap": _mmap, "munmap": _munmap, "mprotect": _mprotect,
        "poke": _poke, "set_mm": _set_mm, "set_regs": _set_regs, "clone": _clone,
        "get_context": _get_context, "set_context": _set_context}
_SETS_REGS = ("set_regs", "set_context")     # the tracee resumes at these registers
