"""The end of tasks and processes: exit, zombies, reparenting, wait4/waitid.

A task ends when userspace reports its host process (or thread) gone; a
process ends with its last task and stays a zombie, holding its wait status,
until its parent reaps it, or at once if the parent ignores SIGCHLD.  Its
children go to init, as on Linux."""
from __future__ import annotations


from services.kernel.abi.poll import POLLHUP, POLLIN, POLLRDNORM
from services.kernel.sched import signals
from services.kernel.abi.signal import SA_NOCLDWAIT, SIG_IGN, CLD_DUMPED, CLD_EXITED, CLD_KILLED, SIGCHLD
from services.kernel.sched.task import Process, Task

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
    if t.flight.call is not None and not t.flight.call.done():
        t.flight.call.cancel()            # it was waiting in the kernel (a pipe, wait4 ...)
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
    if proc.tty is not None and proc.sid == proc.pid:
        proc.tty.disassociate(proc, on_exit=True)   # a session leader's end
    proc.tty = None
    init = k.processes.get(1)
    for child in proc.children:
        child.parent = init
        if init is not None and init is not proc:
            init.children.append(child)
    proc.children = []
    if init is not None and init is not proc:
        init.child_changed.wake()
    parent = proc.parent
    proc.pidfd_wait.wake(POLLIN | POLLRDNORM)
    if parent is None:               # init: the guest is over
        k.init_exited(status)
        return
    handler, sa_flags, _, _ = signals.action(parent, SIGCHLD)
    if proc.exit_signal == SIGCHLD and (handler == SIG_IGN
                                        or sa_flags & SA_NOCLDWAIT):
        release(proc)                # nobody will wait: no zombie
    if proc.exit_signal:
        signals.send_process(parent, proc.exit_signal, chld_info(proc))
    parent.child_changed.wake()


def release(proc: Process) -> None:
    """Reap: the pid is free again.  The object may live on in pidfds: it
    lets its parent go, so that one holds no chain of ancestors."""
    k = proc.kernel
    if proc.parent is not None and proc in proc.parent.children:
        proc.parent.children.remove(proc)
    proc.parent = None
    k.processes.pop(proc.pid, None)
    k.free_pid(proc.pid)
    proc.reaped = True
    proc.pidfd_wait.wake(POLLIN | POLLRDNORM | POLLHUP)


def chld_info(proc: Process) -> dict:
    """What SIGCHLD's siginfo and waitid say about an ended child."""
    status = proc.status
    if status & 0x7F == 0:
        code, value = CLD_EXITED, status >> 8 & 0xFF
    else:
        code, value = (CLD_DUMPED if status & 0x80 else CLD_KILLED), status & 0x7F
    return {"code": code, "pid": proc.pid, "uid": 0, "status": value}


