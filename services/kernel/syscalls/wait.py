"""wait4 and waitid (services/kernel/sched/wait.py)."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.signal import CLD_CONTINUED, CLD_STOPPED, SIGCHLD, SIGCONT
from services.kernel.core.errors import Errno
from services.kernel.fs.files import c_int
from services.kernel.abi.fcntl import O_NONBLOCK
from services.kernel.abi.pidfd import P_PIDFD
from services.kernel.sched import signals, timers
from services.kernel.sched.pidfd import pidfd_of
from services.kernel.sched.task import Process, Task, Usage
from services.kernel.sched.wait import INT_MIN, chld_info, release
from services.kernel.abi.wait import (
    P_ALL, P_PGID, P_PID, WALL, WCLONE, WCONTINUED, WEXITED, WNOHANG, WNOTHREAD, WNOWAIT,
    WSTOPPED, WUNTRACED)


def _matches(waiter: Process, c: Process, pid: int | Process, options: int) -> bool:
    """Whether child c is one pid names: wait4's pid, or the process a
    pidfd names (waitid's P_PIDFD: that object, whatever has its number)."""
    if isinstance(pid, Process):
        if c is not pid:
            return False
    elif pid > 0 and c.pid != pid or pid == 0 and c.pgid != waiter.pgid \
            or pid < -1 and c.pgid != -pid:
        return False
    if options & WALL:
        return True
    return (c.exit_signal != SIGCHLD) == bool(options & WCLONE)


def _ready(me: Process, pid: int | Process, options: int) -> tuple[Process, str] | None:
    """The first matching child with something to report: ("exit") a zombie,
    ("stop") stopped by a signal (WUNTRACED/WSTOPPED), ("cont") continued
    (WCONTINUED); None if there is nothing yet."""
    children = [c for c in me.children if _matches(me, c, pid, options)]
    if not children:
        raise Errno(errno.ECHILD)
    for c in children:
        if c.zombie and options & WEXITED:
            return c, "exit"
        if c.report == "stop" and options & WSTOPPED:
            return c, "stop"
        if c.report == "cont" and options & WCONTINUED:
            return c, "cont"
    return None


def _wait(t: Task, pid: int | Process, options: int, answer):
    """answer(what _ready found) at once when a child has something to report
    (or with WNOHANG, None): most waits find their child done already.
    Otherwise a coroutine that sleeps until a child changes."""
    found = _ready(t.process, pid, options)
    if found is not None or options & WNOHANG:
        return answer(found)
    return _sleep_until_ready(t, pid, options, answer)


async def _sleep_until_ready(t: Task, pid: int | Process, options: int, answer):
    # It looks again before it sleeps: a child may have changed between the
    # call and the first step of this coroutine.
    while True:
        found = _ready(t.process, pid, options)
        if found is not None:
            return answer(found)
        await t.process.child_changed.wait()


def _status(c: Process, event: str) -> int:
    if event == "stop":
        return 0x7F | c.stop_sig << 8
    return 0xFFFF if event == "cont" else c.status


def _report_info(c: Process, event: str) -> dict:
    if event == "exit":
        return chld_info(c)
    if event == "stop":
        return {"code": CLD_STOPPED, "pid": c.pid, "uid": 0, "status": c.stop_sig}
    return {"code": CLD_CONTINUED, "pid": c.pid, "uid": 0, "status": SIGCONT}


def _usage_of(c: Process, event: str) -> tuple:
    """wait's rusage: an ended child's and its waited-for children's."""
    total = Usage()
    if event == "exit":
        for used in (c.usage, c.children_usage):
            total.add(*used.fields())
    return total.fields()


def _consume(c: Process, event: str) -> None:
    """A report taken by wait: a zombie's resources become its parent's
    children's (Linux's cutime/cstime: counted only for children waited for)."""
    if event == "exit":
        c.parent.children_usage.add(*_usage_of(c, event))
        release(c)
    else:
        c.report = None


def sys_wait4(t, pid, status_ptr, options, rusage, *_):
    pid = c_int(pid)
    options &= 0xFFFFFFFF
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE):
        raise Errno(errno.EINVAL)
    if pid == INT_MIN:
        raise Errno(errno.ESRCH)

    def answer(found):
        if found is None:
            return 0
        c, event = found
        status, used = _status(c, event), _usage_of(c, event)
        _consume(c, event)        # as Linux: reaped, even if what follows is EFAULT
        if status_ptr:
            t.mem.write(status_ptr, struct.pack("<i", status))
        if rusage:
            t.mem.write(rusage, timers.pack_rusage(*used))
        return c.pid
    return _wait(t, pid, options | WEXITED, answer)


def sys_waitid(t, idtype, id_, infop, options, rusage, *_):
    """P_PIDFD waits for the child a pidfd names (ECHILD if it is not one,
    or was reaped); a PIDFD_NONBLOCK pidfd does not wait: EAGAIN, with
    infop cleared, when the child has nothing to report, unless WNOHANG
    asked for 0 (Linux's kernel_waitid)."""
    options &= 0xFFFFFFFF
    nonblocking = False
    if options & ~(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD
                   | WALL | WCLONE) or not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise Errno(errno.EINVAL)
    id_ = c_int(id_)
    if idtype == P_ALL:
        pid = -1
    elif idtype == P_PID:
        if id_ <= 0:
            raise Errno(errno.EINVAL)
        pid = id_
    elif idtype == P_PGID:
        if id_ < 0:
            raise Errno(errno.EINVAL)
        pid = -id_ if id_ else 0
    elif idtype == P_PIDFD:
        if id_ < 0:
            raise Errno(errno.EINVAL)
        f = pidfd_of(t, id_)
        pid = f.process
        nonblocking = bool(f.flags & O_NONBLOCK)
    else:
        raise Errno(errno.EINVAL)

    def answer(found):
        # As Linux: the report is taken first, even if what follows is EFAULT;
        # rusage only with a report, infop cleared without one.
        info = bytes(128)
        if found is not None:
            info, used = signals.siginfo(SIGCHLD, _report_info(*found)), _usage_of(*found)
            if not options & WNOWAIT:
                _consume(*found)
            if rusage:
                t.mem.write(rusage, timers.pack_rusage(*used))
        if infop:
            t.mem.write(infop, info)
        if found is None and nonblocking and not options & WNOHANG:
            raise Errno(errno.EAGAIN)
        return 0
    return _wait(t, pid, options | (WNOHANG if nonblocking else 0), answer)
