"""The signal calls: sigaction, masks, the alternate stack, sending, waiting,
sigreturn (services/kernel/sched/signals.py)."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.signal import (
    NSIG,
    SI_TKILL,
    SI_USER,
    SIG_BLOCK,
    SIG_SETMASK,
    SIG_UNBLOCK,
    SIGCONT,
    SIGKILL,
    SIGSTOP,
    SS_AUTODISARM,
    UNBLOCKABLE,
)
from services.kernel.core.cred import may_kill
from services.kernel.core.errors import Errno
from services.kernel.fs.files import c_int
from services.kernel.sched import sigframe
from services.kernel.sched.signals import (SIGACTION_SIZE, bit, deliverable, send_process,
                                          send_task, set_altstack)


def sys_rt_sigaction(t, sig, act, oact, sigsetsize, *_):
    if sigsetsize != 8 or not 1 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    old = t.sigactions.get(sig, bytes(SIGACTION_SIZE))
    new = t.mem.read(act, SIGACTION_SIZE) if act else None
    if new is not None and sig in (SIGKILL, SIGSTOP):
        raise Errno(errno.EINVAL)
    if oact:
        t.mem.write(oact, old)
    if new is not None:
        t.sigactions[sig] = new
    return 0


def sys_rt_sigprocmask(t, how, set_ptr, oset_ptr, sigsetsize, *_):
    if sigsetsize != 8:
        raise Errno(errno.EINVAL)
    old = t.sigmask
    if set_ptr:
        new = struct.unpack("<Q", t.mem.read(set_ptr, 8))[0]
        if how == SIG_BLOCK:
            mask = old | new
        elif how == SIG_UNBLOCK:
            mask = old & ~new
        elif how == SIG_SETMASK:
            mask = new
        else:
            raise Errno(errno.EINVAL)
        t.sigmask = mask & ~UNBLOCKABLE
    if oset_ptr:
        t.mem.write(oset_ptr, struct.pack("<Q", old))
    return 0


def sys_sigaltstack(t, ss, old_ss, *_):
    """As Linux: the new stack is read first, the old one written only if
    the change is made (ss and old_ss may be the same buffer); the old
    one's flags are sas_ss_flags (SS_DISABLE, SS_ONSTACK or 0) and
    SS_AUTODISARM if it has it."""
    new = t.mem.read(ss, sigframe.ALTSTACK.size) if ss else None
    ss_sp, flags, _, size = sigframe.ALTSTACK.unpack(t.altstack)
    old = sigframe.ALTSTACK.pack(
        ss_sp, sigframe.sas_ss_flags(t.altstack, t.flight.user_sp) | flags & SS_AUTODISARM, 0, size)
    if new is not None:
        set_altstack(t, new, t.flight.user_sp)
    if old_ss:
        t.mem.write(old_ss, old)
    return 0


def sys_rt_sigpending(t, set_ptr, sigsetsize, *_):
    if sigsetsize > 8:
        raise Errno(errno.EINVAL)
    pending = 0
    for sig in t.pending.keys() | t.process.pending.keys():
        pending |= bit(sig)
    t.mem.write(set_ptr, struct.pack("<Q", pending & t.sigmask)[:sigsetsize])
    return 0


async def sys_rt_sigsuspend(t, mask_ptr, sigsetsize, *_):
    if sigsetsize != 8:
        raise Errno(errno.EINVAL)
    mask = struct.unpack("<Q", t.mem.read(mask_ptr, 8))[0]
    t.saved_sigmask = t.sigmask
    t.sigmask = mask & ~UNBLOCKABLE
    await _until_signal(t)


async def sys_pause(t, *_):
    await _until_signal(t)


async def _until_signal(t):
    """Sleep until a signal is deliverable: then -EINTR (after its handler)."""
    while not deliverable(t):
        await t.signal_wait.wait()
    raise Errno(errno.EINTR)


async def sys_rt_sigreturn(t, *_):
    """Back from a handler: the registers, mask and altstack of the frame at
    the stack pointer (the handler's ret popped pretcode)."""
    return await t.kernel.sigreturn(t)


def _target(t, pid: int):
    """The processes kill(pid) reaches, as Linux: >0 one, 0 own group,
    -1 every process but init and the caller, <-1 group -pid."""
    procs = [p for p in t.kernel.processes.values() if not p.zombie]
    if pid > 0:
        return [p for p in procs if p.pid == pid]
    if pid == 0:
        return [p for p in procs if p.pgid == t.pgid]
    if pid == -1:
        return [p for p in procs if p.pid not in (1, t.tgid)]
    return [p for p in procs if p.pgid == -pid]


def _may_signal(t, proc, sig: int) -> bool:
    """check_kill_permission: its own process, one whose ids match (or
    CAP_KILL), or SIGCONT within the session."""
    target = next(iter(proc.threads.values()), None)
    return (proc is t.process or target is None or may_kill(t.cred, target.cred)
            or sig == SIGCONT and proc.sid == t.sid)


def sys_kill(t, pid, sig, *_):
    pid, sig = c_int(pid), c_int(sig)
    if not 0 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    if pid == -(1 << 31):
        raise Errno(errno.ESRCH)
    procs = _target(t, pid)
    if not procs:
        raise Errno(errno.ESRCH)
    allowed = [p for p in procs if _may_signal(t, p, sig)]
    if not allowed:
        raise Errno(errno.EPERM)
    for p in allowed:
        send_process(p, sig, {"code": SI_USER, "pid": t.tgid, "uid": t.cred.uid})
    return 0


def sys_tgkill(t, tgid, tid, sig, *_):
    tgid, tid, sig = c_int(tgid), c_int(tid), c_int(sig)
    if tid <= 0 or tgid == 0 or tgid < -1 or not 0 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    task = t.kernel.tasks.get(tid)
    if task is None or (tgid > 0 and task.tgid != tgid):
        raise Errno(errno.ESRCH)
    if not _may_signal(t, task.process, sig):
        raise Errno(errno.EPERM)
    send_task(task, sig, {"code": SI_TKILL, "pid": t.tgid, "uid": t.cred.uid})
    return 0


def sys_tkill(t, tid, sig, *_):
    return sys_tgkill(t, -1, tid, sig)


def sys_rt_sigqueueinfo(t, tgid, sig, uinfo, *_):
    """A signal with the sender's own siginfo; only a negative si_code (as
    sigqueue's SI_QUEUE) may be sent to another process, as on Linux."""
    tgid, sig = c_int(tgid), c_int(sig)
    if not 0 < sig <= NSIG:
        raise Errno(errno.EINVAL)
    code, = struct.unpack("<i", t.mem.read(uinfo + 8, 4))
    value, = struct.unpack("<Q", t.mem.read(uinfo + 24, 8))
    procs = _target(t, tgid) if tgid > 0 else []
    if not procs:
        raise Errno(errno.ESRCH)
    if (code >= 0 or code == SI_TKILL) and procs[0] is not t.process:
        raise Errno(errno.EPERM)
    if not _may_signal(t, procs[0], sig):
        raise Errno(errno.EPERM)
    send_process(procs[0], sig, {"code": code, "pid": t.tgid, "uid": t.cred.uid,
                                 "value": value})
    return 0
