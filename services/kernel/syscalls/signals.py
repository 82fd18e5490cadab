"""The signal calls: sigaction, masks, the alternate stack, sending, waiting,
sigreturn (services/kernel/sched/signals.py)."""
from __future__ import annotations

import asyncio
import errno
import struct

from services.kernel.abi.signal import (
    KERNEL_SIGINFO_SIZE,
    NSIG,
    NSIGPOLL,
    SI_ASYNCNL,
    SI_DETHREAD,
    SI_KERNEL,
    SI_TKILL,
    SI_USER,
    SICODE_LIMITS,
    SIG_BLOCK,
    SIG_SETMASK,
    SIG_UNBLOCK,
    SIGCONT,
    SIGKILL,
    SIGSTOP,
    SFD_CLOEXEC,
    SFD_NONBLOCK,
    SS_AUTODISARM,
    UNBLOCKABLE,
)
from services.kernel.abi.pidfd import (
    PIDFD_SIGNAL_PROCESS_GROUP, PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP)
from services.kernel.core.cred import may_kill
from services.kernel.core.errors import Errno
from services.kernel.core.waitqueue import PollTable
from services.kernel.fs.poll import TIMESPEC
from services.kernel.fs.files import c_int
from services.kernel.sched import sigframe
from services.kernel.sched.pidfd import pidfd_of
from services.kernel.sched.signalfd import SignalFd
from services.kernel.sched.signals import (SIGACTION_SIZE, bit, deliverable, flush_ignored,
                                           send_process, send_task, set_altstack, siginfo,
                                           take_waited)

_SCOPES = PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP
# siginfo's head as rt_sigqueueinfo's si_code (SI_QUEUE ...) lays it out:
# signo, errno, code, pid, uid, value
_SIGINFO_HEAD = struct.Struct("<iii4xiIQ")


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
        flush_ignored(t.process, sig)
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


async def sys_rt_sigtimedwait(t, set_ptr, info_ptr, ts_ptr, sigsetsize, *_):
    """Wait for one of set's signals (which the caller normally blocks) and
    take it without its handler: its number, and its siginfo at info_ptr.
    EAGAIN when the timeout passes (0: look once); a signal outside the
    set that is not blocked ends the wait with EINTR after its handler, as
    Linux's do_sigtimedwait.  While it waits the set counts as unblocked
    for the senders (t.sigwaiting, Linux's real_blocked)."""
    if sigsetsize != 8:
        raise Errno(errno.EINVAL)
    wanted = struct.unpack("<Q", t.mem.read(set_ptr, 8))[0] & ~UNBLOCKABLE
    deadline = None
    if ts_ptr:
        sec, nsec = TIMESPEC.unpack(t.mem.read(ts_ptr, TIMESPEC.size))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise Errno(errno.EINVAL)
        deadline = asyncio.get_running_loop().time() + sec + nsec / 1e9
    t.sigwaiting = wanted
    try:
        while True:
            taken = take_waited(t, wanted)
            if taken is not None:
                sig, info = taken
                if info_ptr:
                    t.mem.write(info_ptr, siginfo(sig, info))
                return sig
            if deliverable(t):
                raise Errno(errno.EINTR)
            if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                raise Errno(errno.EAGAIN)
            table = PollTable()
            table.add(t.signal_wait)
            try:
                await table.sleep(deadline)
            finally:
                table.close()
    finally:
        t.sigwaiting = 0


def sys_signalfd4(t, fd, mask_ptr, sizemask, flags, *_):
    """A new signalfd for the mask (fd -1), or a new mask for signalfd fd
    (EINVAL if it is another file); SIGKILL and SIGSTOP are never in it."""
    if sizemask != 8:
        raise Errno(errno.EINVAL)
    mask = struct.unpack("<Q", t.mem.read(mask_ptr, 8))[0] & ~UNBLOCKABLE
    flags &= 0xFFFFFFFF
    if flags & ~(SFD_CLOEXEC | SFD_NONBLOCK):
        raise Errno(errno.EINVAL)
    fd = c_int(fd)
    if fd == -1:
        return t.files.install(SignalFd(mask, flags), cloexec=bool(flags & SFD_CLOEXEC))
    f = t.files.get(fd)
    if not isinstance(f, SignalFd):
        raise Errno(errno.EINVAL)
    f.mask = mask
    t.process.signal_queued.wake()
    return fd


def sys_signalfd(t, fd, mask_ptr, sizemask, *_):
    return sys_signalfd4(t, fd, mask_ptr, sizemask, 0)


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
    -1 every process but init and the caller, <-1 group -pid.  Zombies
    are there until reaped (a kill of one succeeds and does nothing)."""
    procs = list(t.kernel.processes.values())
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


def _send(t, procs: list, sig: int, info: dict) -> int:
    """kill's end: sig to each of procs the caller may signal; ESRCH for
    none, EPERM if it may signal none of them.  A zombie, whose credentials
    went with its last thread, may be signalled by anyone (Linux checks the
    ones it kept): nothing reaches it either way."""
    if not procs:
        raise Errno(errno.ESRCH)
    allowed = [p for p in procs if _may_signal(t, p, sig)]
    if not allowed:
        raise Errno(errno.EPERM)
    for p in allowed:
        if not p.zombie:
            send_process(p, sig, info)
    return 0


def sys_kill(t, pid, sig, *_):
    pid, sig = c_int(pid), c_int(sig)
    if not 0 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    if pid == -(1 << 31):
        raise Errno(errno.ESRCH)
    return _send(t, _target(t, pid), sig, {"code": SI_USER, "pid": t.tgid, "uid": t.cred.uid})


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


def _known_layout(signo: int, code: int) -> bool:
    """Linux's known_siginfo_layout: whether the kernel knows which fields
    a siginfo of this signal and code has."""
    if code == SI_KERNEL or SI_DETHREAD <= code <= SI_USER or code == SI_ASYNCNL:
        return True
    return code > SI_USER and code <= SICODE_LIMITS.get(signo, NSIGPOLL)


def _user_siginfo(t, uinfo: int) -> tuple[int, dict]:
    """A siginfo the caller gives (rt_sigqueueinfo, pidfd_send_signal), as
    Linux's copy_siginfo_from_user: the fields, each byte read once; for a
    layout the kernel does not know, the rest of the 128 bytes too, which
    must be zeros (E2BIG).  Its si_signo, and what the signal carries
    (si_code, si_pid, si_uid, si_value as given)."""
    head = t.mem.read(uinfo, KERNEL_SIGINFO_SIZE)
    signo, _, code, pid, uid, value = _SIGINFO_HEAD.unpack_from(head)
    if not _known_layout(signo & 0xFFFFFFFF, code) and any(
            t.mem.read(uinfo + KERNEL_SIGINFO_SIZE, sigframe.SIGINFO_SIZE - KERNEL_SIGINFO_SIZE)):
        raise Errno(errno.E2BIG)
    return signo, {"code": code, "pid": pid, "uid": uid, "value": value}


def _forged(code: int) -> bool:
    """si_code only the kernel, kill or tkill may give (Linux: not even root
    may send them to another task with its own siginfo)."""
    return code >= 0 or code == SI_TKILL


def sys_rt_sigqueueinfo(t, tgid, sig, uinfo, *_):
    """A signal with the sender's own siginfo; only a negative si_code (as
    sigqueue's SI_QUEUE) may be sent to another process, as on Linux."""
    tgid, sig = c_int(tgid), c_int(sig)
    if not 0 < sig <= NSIG:
        raise Errno(errno.EINVAL)
    _, info = _user_siginfo(t, uinfo)
    procs = _target(t, tgid) if tgid > 0 else []
    if not procs:
        raise Errno(errno.ESRCH)
    if _forged(info["code"]) and procs[0] is not t.process:
        raise Errno(errno.EPERM)
    if not _may_signal(t, procs[0], sig):
        raise Errno(errno.EPERM)
    send_process(procs[0], sig, info)
    return 0


def sys_pidfd_send_signal(t, fd, sig, uinfo, flags, *_):
    """kill through a pidfd (Linux's pidfd_send_signal): to its process, or,
    with PIDFD_SIGNAL_THREAD, its first thread, or, with
    PIDFD_SIGNAL_PROCESS_GROUP, the group it leads; with the caller's
    siginfo if given (its si_signo must be sig; a code only kill or the
    kernel may give goes to the caller's own thread alone).  ESRCH once
    the process is reaped; a zombie takes the signal and drops it."""
    flags &= 0xFFFFFFFF
    if flags & ~_SCOPES or flags & (flags - 1):
        raise Errno(errno.EINVAL)
    proc = pidfd_of(t, c_int(fd)).process
    sig = c_int(sig)
    if uinfo:
        signo, info = _user_siginfo(t, uinfo)
        if signo != sig:
            raise Errno(errno.EINVAL)
        itself = proc is t.process and t.tid == proc.pid
        if _forged(info["code"]) and (not itself or flags == PIDFD_SIGNAL_PROCESS_GROUP):
            raise Errno(errno.EPERM)
    else:
        info = {"code": SI_TKILL if flags == PIDFD_SIGNAL_THREAD else SI_USER,
                "pid": t.tgid, "uid": t.cred.uid}
    if proc.reaped:
        raise Errno(errno.ESRCH)
    if not 0 <= sig <= NSIG:
        raise Errno(errno.EINVAL)
    if flags == PIDFD_SIGNAL_PROCESS_GROUP:
        return _send(t, _target(t, -proc.pid), sig, info)
    if not _may_signal(t, proc, sig):
        raise Errno(errno.EPERM)
    first = proc.threads.get(proc.pid)
    if flags != PIDFD_SIGNAL_THREAD:
        send_process(proc, sig, info)
    elif first is not None:
        send_task(first, sig, info)
    return 0
