"""The end of tasks and processes: exit, zombies, reparenting, wait4/waitid.

A task ends when userspace reports its host process (or thread) gone; a
process ends with its last task and stays a zombie, holding its wait status,
until its parent reaps it, or at once if the parent ignores SIGCHLD.  Its
children go to init, as on Linux."""
from __future__ import annotations

import errno
import struct

from services.kernel.sched import signal
from services.kernel.sched import time
from services.kernel.abi.signal import SA_NOCLDWAIT, SIG_IGN, CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED, SIGCHLD, SIGCONT
from services.kernel.core.errors import Errno
from services.kernel.fs.files import c_int
from services.kernel.sched.task import Process, Task, Usage

WNOHANG, WUNTRACED, WSTOPPED, WEXITED, WCONTINUED = 1, 2, 2, 4, 8
WNOWAIT, WNOTHREAD, WALL, WCLONE = 0x1000000, 0x20000000, 0x40000000, 0x80000000
P_ALL, P_PID, P_PGID = 0, 1, 2
RUSAGE_SIZE = 144
INT_MIN = -(1 << 31)


def task_exited(t: Task, host_status: int, usage: list) -> None:
    """Userspace reports t's host thread gone (exit, exit_group, killed),
    with what the host says it used."""
    k = t.kernel
    proc = t.process
    if len(usage) == 5 and all(isinstance(v, int) and v >= 0 for v in usage):
        proc.usage.add(*usage)
    k.tasks.pop(t.tid, None)
    proc.threads.pop(t.tid, None)
    if t.call is not None and not t.call.done():
        t.call.cancel()            # it was waiting in the kernel (a pipe, wait4 ...)
    if t.vfork_done is not None and not t.vfork_done.done():
        t.vfork_done.set_result(None)
    if not any(o.files is t.files for o in proc.threads.values()):
        t.files.close_all()
    if t.tid != proc.pid:
        k.free_pid(t.tid)
    if not proc.threads:
        process_exited(proc, proc.exit_code if proc.exit_code is not None else host_status)


def process_exited(proc: Process, status: int) -> None:
    k = proc.kernel
    proc.status = status
    k.pagecache.release(proc)
    init = k.processes.get(1)
    for child in proc.children:
        child.parent = init
        if init is not None and init is not proc:
            init.children.append(child)
    proc.children = []
    if init is not None and init is not proc:
        init.child_changed.wake()
    parent = proc.parent
    if parent is None:               # init: the guest is over
        k.init_exited(status)
        return
    handler, sa_flags, _, _ = signal.action(parent, SIGCHLD)
    if proc.exit_signal == SIGCHLD and (handler == SIG_IGN
                                        or sa_flags & SA_NOCLDWAIT):
        release(proc)                # nobody will wait: no zombie
    if proc.exit_signal:
        signal.send_process(parent, proc.exit_signal, chld_info(proc))
    parent.child_changed.wake()


def release(proc: Process) -> None:
    """Reap: the pid is free again."""
    k = proc.kernel
    if proc.parent is not None and proc in proc.parent.children:
        proc.parent.children.remove(proc)
    k.processes.pop(proc.pid, None)
    k.free_pid(proc.pid)


def chld_info(proc: Process) -> dict:
    """What SIGCHLD's siginfo and waitid say about an ended child."""
    status = proc.status
    if status & 0x7F == 0:
        code, value = CLD_EXITED, status >> 8 & 0xFF
    else:
        code, value = (CLD_DUMPED if status & 0x80 else CLD_KILLED), status & 0x7F
    return {"code": code, "pid": proc.pid, "uid": 0, "status": value}


def _matches(waiter: Process, c: Process, pid: int, options: int) -> bool:
    if pid > 0 and c.pid != pid:
        return False
    if pid == 0 and c.pgid != waiter.pgid:
        return False
    if pid < -1 and c.pgid != -pid:
        return False
    if options & WALL:
        return True
    return (c.exit_signal != SIGCHLD) == bool(options & WCLONE)


def _ready(me: Process, pid: int, options: int) -> tuple[Process, str] | None:
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


def _wait(t: Task, pid: int, options: int, answer):
    """answer(what _ready found) at once when a child has something to report
    (or with WNOHANG, None): most waits find their child done already.
    Otherwise a coroutine that sleeps until a child changes."""
    found = _ready(t.process, pid, options)
    if found is not None or options & WNOHANG:
        return answer(found)
    return _sleep_until_ready(t, pid, options, answer)


async def _sleep_until_ready(t: Task, pid: int, options: int, answer):
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
        if status_ptr:
            t.mem.write(status_ptr, struct.pack("<i", _status(c, event)))
        if rusage:
            t.mem.write(rusage, time.pack_rusage(*_usage_of(c, event)))
        _consume(c, event)
        return c.pid
    return _wait(t, pid, options | WEXITED, answer)


def sys_waitid(t, idtype, id_, infop, options, rusage, *_):
    options &= 0xFFFFFFFF
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
    else:
        raise Errno(errno.EINVAL)

    def answer(found):
        if infop:
            if found is None:
                t.mem.write(infop, bytes(128))
            else:
                t.mem.write(infop, signal.siginfo(SIGCHLD, _report_info(*found)))
        if rusage:
            t.mem.write(rusage, time.pack_rusage(*_usage_of(*found)) if found
                        else bytes(RUSAGE_SIZE))
        if found is not None and not options & WNOWAIT:
            _consume(*found)
        return 0
    return _wait(t, pid, options, answer)

