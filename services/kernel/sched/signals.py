"""Signals: dispositions, masks, the alternate stack, sending and default actions.

Signals belong to the kernel: it keeps each process's sigaction table and
each task's mask and sigaltstack as Linux does.  A signal sent to a process
is discarded if ignored, ends the process if its default action is to
terminate, and otherwise waits in the process's pending set; one sent to a
thread waits in that thread's, and only that thread takes it."""
from __future__ import annotations

import errno
import struct

from common import syscalls as policy
from services.kernel.sched import sigframe
from services.kernel.core.errors import Errno
from services.kernel.sched.task import NO_ALTSTACK
from services.kernel.abi.arch import U64
from services.kernel.abi.signal import (
    CLD_CONTINUED, CLD_STOPPED, MINSIGSTKSZ, SA_NOCLDSTOP, SA_NODEFER,
    SA_ONSTACK, SA_RESETHAND, SA_RESTART, SA_RESTORER, SI_KERNEL, SI_USER,
    SIG_DFL, SIG_IGN, SIGBUS, SIGCHLD, SIGCONT, SIGKILL, SIGSEGV, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH,
    SS_AUTODISARM, SS_DISABLE, SS_ONSTACK, UNBLOCKABLE)
from services.kernel.abi.errno import (
    ERESTARTNOHAND, ERESTARTNOINTR, ERESTARTSYS, ERESTART_RESTARTBLOCK)

IGNORED_BY_DEFAULT = {SIGCHLD, SIGCONT, SIGURG, SIGWINCH}
STOPPING = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
SIGACTION_SIZE = 32        # handler, flags, restorer, mask
# calls a handler never restarts (SA_RESTART or not), and calls that always
# run again after one: the policy's restart classes
NO_RESTART = policy.restarting(policy.NOHAND)
ALWAYS_RESTART = policy.restarting(policy.NOINTR)
_ACTION = struct.Struct("<QQQQ")        # handler, flags, restorer, mask


def bit(sig: int) -> int:
    return 1 << (sig - 1)


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
    proc.signal_queued.wake()
    for t in proc.threads.values():
        if sig == SIGKILL or not t.sigmask & bit(sig):
            _wake(t)
            return
        if t.sigwaiting & bit(sig):       # in sigtimedwait for it: it takes it
            t.signal_wait.wake()
            return


def send_task(t, sig: int, info: dict | None = None) -> None:
    """Send sig to one thread (tgkill, SIGPIPE, a fault): only that thread
    takes it, and while it blocks it the signal waits for it, whatever
    the other threads block."""
    if _discard(t.process, sig, t):
        return
    t.pending.setdefault(sig, info or {"code": SI_USER})
    t.process.signal_queued.wake()
    if sig == SIGKILL or not t.sigmask & bit(sig):
        _wake(t)
    elif t.sigwaiting & bit(sig):
        t.signal_wait.wake()


def force(t, sig: int, code: int, addr: int) -> None:
    """A fault: blocked or ignored, it still reaches the task, with its
    default action (as Linux's force_sig_fault)."""
    if t.sigmask & bit(sig) or handler_of(t.process, sig) == SIG_IGN:
        t.sigmask &= ~bit(sig)
        t.process.sigactions.pop(sig, None)
    t.pending[sig] = {"code": code, "addr": addr}


def _discard(proc, sig: int, target=None) -> bool:
    """What happens at sending time: SIGCONT continues a stopped process and
    a stop signal stops it (job control); ignored signals are dropped; a
    fatal one that a thread which may take it does not block (the target
    of a thread-directed signal, else any) ends the process at once."""
    if proc.zombie or not proc.threads or sig == 0:
        return True
    handler = handler_of(proc, sig)
    takers = (target,) if target is not None else proc.threads.values()
    unblocked = any(not t.sigmask & bit(sig) for t in takers)
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
    # sig_ignored: a blocked signal is never dropped (its handler may change
    # before it is unblocked, and sigtimedwait takes it); the target of a
    # process-directed one is its first thread, as Linux's kill picks
    first = target if target is not None else next(iter(proc.threads.values()))
    if first.sigmask & bit(sig) or first.sigwaiting & bit(sig):
        return False
    return ignored(proc, sig)


def ignored(proc, sig: int) -> bool:
    """Its action is to do nothing (SIG_IGN, or the default of SIGCHLD & co)."""
    handler = handler_of(proc, sig)
    return handler == SIG_IGN or handler == SIG_DFL and sig in IGNORED_BY_DEFAULT


def take_waited(t, wanted: int) -> tuple[int, dict] | None:
    """sigtimedwait's dequeue: the lowest pending signal of wanted, the
    thread's own first, then the process's."""
    for pending in (t.pending, t.process.pending):
        for sig in sorted(pending):
            if wanted & bit(sig):
                return sig, pending.pop(sig)
    return None


def flush_ignored(proc, sig: int) -> None:
    """sigaction to SIG_IGN (or SIG_DFL of an ignored-by-default signal)
    drops what is pending of it, in every thread (flush_sigqueue_mask)."""
    if ignored(proc, sig):
        for pending in (proc.pending, *(t.pending for t in proc.threads.values())):
            pending.pop(sig, None)


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
        if not t.flight.in_kernel:
            t.kernel.interrupt(t)
    _tell_parent(proc, CLD_STOPPED, sig)


def _continue(proc) -> None:
    if not proc.stopped:
        return
    proc.stopped, proc.report = False, "cont"
    proc.continued.wake()
    for t in proc.threads.values():
        if t.flight.held is not None:
            held, t.flight.held = t.flight.held, None
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
    if t.flight.in_kernel:
        if t.flight.call is not None and not t.flight.call.done() and not t.flight.in_ops:
            t.flight.signalled = True
            t.flight.call.cancel()
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
    elif "band" in info:                 # SIGIO's: si_band, si_fd
        body = struct.pack("<qi", info["band"], info["fd"])
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


async def deliver(t, regs: dict, xstate: bytes, seen=None) -> dict | None:
    """Take t's next deliverable signal and set up its handler on the guest
    stack.  Returns the registers to resume with, or None if the signal
    killed the process.  seen(t, sig, info), if given, hears of each signal
    taken (the decoded syscall log)."""
    proc = t.process
    while (taken := _take(t)) is not None:
        sig, info = taken
        if seen is not None:
            seen(t, sig, info)
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
        if sigframe.ALTSTACK.unpack(t.altstack)[1] & SS_AUTODISARM:
            t.altstack = NO_ALTSTACK      # Linux's signal_delivered: sas_ss_reset
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
    try:
        # Linux's restore_altstack, at the stack pointer just restored
        set_altstack(t, ss, new["rsp"])
    except Errno:
        pass                      # squashed there too
    return new, new_x


def set_altstack(t, ss: bytes, sp: int) -> None:
    """Set t's alternate stack to ss (a stack_t) as Linux's do_sigaltstack
    does, sp the thread's stack pointer: EPERM while on the present one,
    EINVAL for a mode other than 0, SS_ONSTACK or SS_DISABLE, ENOMEM for a
    stack under MINSIGSTKSZ.  The flags are kept as given (Linux's
    sas_ss_flags, which a signal frame's uc_stack shows); a disabled stack
    has address and size 0."""
    ss_sp, flags, _, size = sigframe.ALTSTACK.unpack(ss)
    if sigframe.on_stack(t.altstack, sp):
        raise Errno(errno.EPERM)
    mode = flags & ~SS_AUTODISARM
    if mode not in (0, SS_ONSTACK, SS_DISABLE):
        raise Errno(errno.EINVAL)
    if mode == SS_DISABLE:
        t.altstack = disabled_altstack(flags)
    elif size < MINSIGSTKSZ:
        raise Errno(errno.ENOMEM)
    else:
        t.altstack = sigframe.ALTSTACK.pack(ss_sp, flags, 0, size)


def disabled_altstack(flags: int) -> bytes:
    """No alternate stack: address and size 0, the flags as they are
    (Linux keeps them in sas_ss_flags: SS_DISABLE with whatever came with
    it, or, after exec, those of the stack the old image had; sigaltstack
    reports SS_DISABLE for size 0, and SS_AUTODISARM if they have it)."""
    return sigframe.ALTSTACK.pack(0, flags, 0, 0)

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


