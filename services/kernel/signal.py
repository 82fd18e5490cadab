"""Signals: dispositions, masks, the alternate stack, sending and default actions.

Signals belong to the kernel: it keeps each process's sigaction table and
each task's mask and sigaltstack as Linux does.  A signal sent to a process
is discarded if ignored, ends the process if its default action is to
terminate, and otherwise waits in the process's pending set."""
from __future__ import annotations

import errno
import struct

from common import syscalls as policy
from services.kernel import sigframe
from services.kernel.cred import may_kill
from services.kernel.errors import Errno
from services.kernel.files import c_int
from services.kernel.task import NO_ALTSTACK

NSIG = 64
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGKILL, SIGSEGV, SIGPIPE = 4, 5, 7, 8, 9, 11, 13
SIGCHLD, SIGCONT, SIGSTOP = 17, 18, 19
SIG_DFL, SIG_IGN = 0, 1
IGNORED_BY_DEFAULT = {SIGCHLD, SIGCONT, 23, 28}        # CHLD CONT URG WINCH
STOPPING = {SIGSTOP, 20, 21, 22}                        # STOP TSTP TTIN TTOU
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGACTION_SIZE = 32        # handler, flags, restorer, mask
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO, SA_RESTORER = 1, 2, 4, 0x04000000
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x08000000, 0x10000000, 0x40000000, 0x80000000
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = sigframe.SS_ONSTACK, sigframe.SS_DISABLE, sigframe.SS_AUTODISARM

MINSIGSTKSZ = 2048
ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
# calls a handler never restarts (SA_RESTART or not), and calls that always
# run again after one: the policy's restart classes
NO_RESTART = policy.restarting(policy.NOHAND)
ALWAYS_RESTART = policy.restarting(policy.NOINTR)
SI_USER, SI_TKILL, SI_KERNEL = 0, -6, 0x80
CLD_STOPPED, CLD_CONTINUED = 5, 6
U64 = (1 << 64) - 1
_ACTION = struct.Struct("<QQQQ")        # handler, flags, restorer, mask


def bit(sig: int) -> int:
    return 1 << (sig - 1)


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
    on = sigframe.on_stack(t.altstack, t.user_sp)
    if old_ss:
        ss_sp, flags, _, size = sigframe.ALTSTACK.unpack(t.altstack)
        if on:
            flags = SS_ONSTACK | flags & SS_AUTODISARM
        t.mem.write(old_ss, sigframe.ALTSTACK.pack(ss_sp, flags, 0, size))
    if ss:
        ss_sp, flags, _, size = sigframe.ALTSTACK.unpack(t.mem.read(ss, 24))
        if on:
            raise Errno(errno.EPERM)
        if flags & ~SS_AUTODISARM not in (0, SS_ONSTACK, SS_DISABLE):
            raise Errno(errno.EINVAL)
        if flags & SS_DISABLE:
            t.altstack = NO_ALTSTACK
        else:
            if size < MINSIGSTKSZ:
                raise Errno(errno.ENOMEM)
            t.altstack = sigframe.ALTSTACK.pack(ss_sp, flags & SS_AUTODISARM, 0, size)
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

def action(proc, sig: int) -> tuple[int, int, int, int]:
    """The disposition of sig: (handler, flags, restorer, mask)."""
    raw = proc.sigactions.get(sig)
    return _ACTION.unpack(raw) if raw else (SIG_DFL, 0, 0, 0)


def handler_of(proc, sig: int) -> int:
    return action(proc, sig)[0]


def send_process(proc, sig: int, info: dict | None = None) -> None:
    """Send sig to a whole process (kill, SIGCHLD ...): any thread not
    blocking it takes it."""
    if _discard(proc, sig):
        return
    proc.pending.setdefault(sig, info or {"code": SI_USER})
    for t in proc.threads.values():
        if sig == SIGKILL or not t.sigmask & bit(sig):
            _wake(t)
            return


def send_task(t, sig: int, info: dict | None = None) -> None:
    """Send sig to one thread (tgkill, SIGPIPE, a fault)."""
    if _discard(t.process, sig):
        return
    t.pending.setdefault(sig, info or {"code": SI_USER})
    if sig == SIGKILL or not t.sigmask & bit(sig):
        _wake(t)


def force(t, sig: int, code: int, addr: int) -> None:
    """A fault: blocked or ignored, it still reaches the task, with its
    default action (as Linux's force_sig_fault)."""
    if t.sigmask & bit(sig) or handler_of(t.process, sig) == SIG_IGN:
        t.sigmask &= ~bit(sig)
        t.process.sigactions.pop(sig, None)
    t.pending[sig] = {"code": code, "addr": addr}


def _discard(proc, sig: int) -> bool:
    """What happens at sending time: SIGCONT continues a stopped process and
    a stop signal stops it (job control); ignored signals are dropped; a
    fatal one that some thread does not block ends the process at once."""
    if proc.zombie or not proc.threads or sig == 0:
        return True
    handler = handler_of(proc, sig)
    unblocked = any(not t.sigmask & bit(sig) for t in proc.threads.values())
    if sig == SIGCONT:
        for pending in (proc.pending, *(t.pending for t in proc.threads.values())):
            for stop in STOPPING & pending.keys():
                del pending[stop]
        _continue(proc)
    elif sig in STOPPING:
        proc.pending.pop(SIGCONT, None)
        if sig == SIGSTOP or handler == SIG_DFL and unblocked:
            _stop(proc, sig)
            return True
    if sig == SIGKILL or handler == SIG_DFL and sig not in IGNORED_BY_DEFAULT | STOPPING \
            and unblocked:
        terminate(proc, sig)
        return True
    return handler == SIG_IGN or handler == SIG_DFL and sig in IGNORED_BY_DEFAULT


def orphaned(proc) -> bool:
    """Whether proc's process group is orphaned (Linux's
    will_become_orphaned_pgrp): no member has a parent in another group of
    the same session, children of init not counting.  The terminal's stop
    signals (TSTP, TTIN, TTOU) are discarded there: nobody would continue it."""
    for p in proc.kernel.processes.values():
        if p.pgid != proc.pgid or p.zombie or p.parent is None or p.parent.pid == 1:
            continue
        if p.parent.pgid != proc.pgid and p.parent.sid == p.sid:
            return False
    return True


def _stop(proc, sig: int) -> None:
    """Every thread stays stopped (the kernel holds what would resume it)
    until SIGCONT; the parent's wait sees it (WUNTRACED).  Only SIGSTOP
    stops an orphaned process group."""
    if proc.stopped or sig != SIGSTOP and orphaned(proc):
        return
    proc.stopped, proc.stop_sig, proc.report = True, sig, "stop"
    for t in proc.threads.values():
        if not t.in_kernel:
            t.kernel.interrupt(t)
    _tell_parent(proc, CLD_STOPPED, sig)


def _continue(proc) -> None:
    if not proc.stopped:
        return
    proc.stopped, proc.report = False, "cont"
    for t in proc.threads.values():
        if t.held is not None:
            held, t.held = t.held, None
            t.kernel.to_userspace(*held)
    _tell_parent(proc, CLD_CONTINUED, SIGCONT)


def _tell_parent(proc, code: int, sig: int) -> None:
    parent = proc.parent
    if parent is None:
        return
    parent.child_changed.wake()
    if not action(parent, SIGCHLD)[1] & SA_NOCLDSTOP:
        send_process(parent, SIGCHLD, {"code": code, "pid": proc.pid, "uid": 0, "status": sig})


def _wake(t) -> None:
    """Get a signal to a task soon: a task waiting in the kernel is woken
    (its call ends with EINTR or restarts), a running one interrupted."""
    t.signal_wait.wake()
    if t.in_kernel:
        if t.call is not None and not t.call.done() and not t.in_ops:
            t.signalled = True
            t.call.cancel()
    else:
        t.kernel.interrupt(t)


def deliverable(t) -> bool:
    for sig in (*t.pending, *t.process.pending):
        if not t.sigmask & bit(sig) or sig == SIGKILL:
            return True
    return False


def _take(t) -> tuple[int, dict] | None:
    for pending in (t.pending, t.process.pending):
        for sig in sorted(pending):
            if not t.sigmask & bit(sig) or sig == SIGKILL:
                return sig, pending.pop(sig)
    return None


def siginfo(sig: int, info: dict) -> bytes:
    head = struct.pack("<iii4x", sig, 0, info.get("code", 0))
    if "addr" in info:
        body = struct.pack("<Q", info["addr"])
    elif "status" in info:
        body = struct.pack("<iIi4xqq", info["pid"], info["uid"], info["status"], 0, 0)
    else:
        body = struct.pack("<iIQ", info.get("pid", 0), info.get("uid", 0), info.get("value", 0))
    return (head + body).ljust(sigframe.SIGINFO_SIZE, b"\0")


def _signed(x: int) -> int:
    return x - (1 << 64) if x & (1 << 63) else x


def _restart(regs: dict, handler_flags: int | None) -> None:
    """An interrupted system call: EINTR, or run again (Linux's
    handle_signal/restart rules); handler_flags None when no handler runs."""
    if _signed(regs["orig_rax"]) < 0:
        return
    rax = -_signed(regs["rax"])
    if rax == ERESTART_RESTARTBLOCK or handler_flags is not None and (
            rax == ERESTARTNOHAND or rax == ERESTARTSYS and not handler_flags & SA_RESTART):
        regs["rax"] = -errno.EINTR & U64
    elif rax in (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND):
        regs["rax"] = regs["orig_rax"]
        regs["rip"] -= 2


async def deliver(t, regs: dict, xstate: bytes) -> dict | None:
    """Take t's next deliverable signal and set up its handler on the guest
    stack.  Returns the registers to resume with, or None if the signal
    killed the process."""
    proc = t.process
    while (taken := _take(t)) is not None:
        sig, info = taken
        handler, flags, restorer, mask = action(proc, sig)
        if handler == SIG_IGN or handler == SIG_DFL and sig in IGNORED_BY_DEFAULT:
            continue
        if handler == SIG_DFL and sig in STOPPING:
            _stop(proc, sig)          # it was blocked when sent
            continue
        if handler == SIG_DFL:
            terminate(proc, sig)
            return None
        _restart(regs, flags)
        saved = t.saved_sigmask if t.saved_sigmask is not None else t.sigmask
        try:
            if not flags & SA_RESTORER:
                raise Errno(errno.EFAULT)
            frame, data, entry = sigframe.build(
                regs, xstate, sig, siginfo(sig, info), handler, restorer,
                bool(flags & SA_ONSTACK), t.altstack, saved,
                info.get("addr", 0) if sig in (SIGSEGV, SIGBUS) else 0)
            t.mem.write(frame, data)
        except Errno:
            force_sigsegv(t, sig)         # no room for the frame
            continue
        t.saved_sigmask = None
        t.sigmask = (saved | mask | (0 if flags & SA_NODEFER else bit(sig))) & ~UNBLOCKABLE
        if flags & SA_RESETHAND:
            proc.sigactions.pop(sig, None)
        if sigframe.ALTSTACK.unpack(t.altstack)[1] & SS_AUTODISARM and \
                entry["rsp"] != regs["rsp"] - sigframe.RED_ZONE:
            t.altstack = NO_ALTSTACK
        return entry
    _restart(regs, None)
    if t.saved_sigmask is not None:
        t.sigmask, t.saved_sigmask = t.saved_sigmask, None
    return regs


def force_sigsegv(t, sig: int) -> None:
    """sig's frame could not be written (Linux's force_sigsegv): SIGSEGV for
    the task, which a handler may catch; if it was SIGSEGV's own frame,
    SIGSEGV goes back to its default and the task dies of it."""
    if sig == SIGSEGV:
        t.process.sigactions.pop(SIGSEGV, None)
    force(t, SIGSEGV, SI_KERNEL, 0)


def sigreturn(t, regs: dict, xstate: bytes) -> tuple[dict, bytes | None]:
    """rt_sigreturn: the frame's registers, mask, xsave image and altstack,
    in Linux's order.  A frame that cannot be read or restored is Linux's
    badframe: SIGSEGV for the task (a handler may catch it), rax 0 and
    whatever was restored before."""
    try:
        raw = t.mem.read(regs["rsp"], sigframe.FRAME.size - 8)
    except Errno:
        return _badframe(t, regs), None
    new, mask, ss, fpstate = sigframe.parse(raw, regs)
    t.sigmask = mask & ~UNBLOCKABLE
    try:
        new_x = sigframe.restore_xstate(t.mem, fpstate, xstate) if fpstate else None
    except Errno:
        return _badframe(t, new), None
    ss_sp, flags, _, size = sigframe.ALTSTACK.unpack(ss)
    if not sigframe.on_stack(t.altstack, regs["rsp"]):
        if flags & SS_DISABLE:
            t.altstack = NO_ALTSTACK
        elif size >= MINSIGSTKSZ:
            t.altstack = sigframe.ALTSTACK.pack(ss_sp, flags & SS_AUTODISARM, 0, size)
    return new, new_x


def _badframe(t, regs: dict) -> dict:
    force(t, SIGSEGV, SI_KERNEL, 0)
    return dict(regs, rax=0)


def terminate(proc, sig: int) -> None:
    """The default action of a fatal signal: every thread dies; the parent's
    wait sees the signal (no core is ever written: RLIMIT_CORE is 0)."""
    if proc.exit_code is None:
        proc.exit_code = sig & 0x7F
    for task in list(proc.threads.values()):
        proc.kernel.kill_task(task)


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
