"""fork, vfork, clone and clone3.

The host does the copying (DESIGN §3): userspace runs a host clone in the
caller with flags the kernel chooses, the host attaches the child to
userspace before its first instruction, and the kernel gives the child its
virtual tid, its Process (or the caller's, for a thread), its fd table and
signal state.  The guest's flags are not passed through as they are:
  - PARENT_SETTID / CHILD_SETTID would write host tids: the kernel writes
    the virtual tid itself;
  - every new host process is made a child of userspace (CLONE_PARENT on
    the host), which reaps them all; the guest's tree is the kernel's;
  - CLONE_VFORK's wait is the kernel's (the parent's call does not return
    until the child execs or exits), so userspace never blocks in the host;
  - namespaces are refused (EINVAL); CLONE_PIDFD gives the parent a pidfd
    (services/kernel/sched/pidfd.py) to a new process, not to a thread.
CHILD_CLEARTID goes to the host: clearing the word and waking its futex at
thread exit does not depend on the tid, and the host does it race-free."""
from __future__ import annotations

import errno
import struct
from dataclasses import replace

from common.ops import Clone
from services.kernel.core.errors import Errno
from services.kernel.core.limits import refuse
from services.kernel.abi.resource import RLIMIT_NPROC
from services.kernel.abi.signal import SIGCHLD
from services.kernel.core.answers import Ops
from services.kernel.sched import pidfd
from services.kernel.sched.task import Process, Task
from services.kernel.abi.sched import (
    CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID, CLONE_DETACHED, CLONE_FILES, CLONE_FS,
    CLONE_INTO_CGROUP, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID,
    CLONE_NEWUSER, CLONE_NEWUTS, CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PIDFD, CLONE_SETTLS,
    CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD, CLONE_VFORK, CLONE_VM, CSIGNAL)

UNSUPPORTED = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
               | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_INTO_CGROUP)
# what a thread shares with its creator on the host, besides what the guest asked
HOST_THREAD = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM
# struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack,
# stack_size, tls (then set_tid, set_tid_size, cgroup in later versions)
CLONE_ARGS = struct.Struct("<8Q")
_TID = struct.Struct("<i")


def clone(t: Task, flags: int, stack: int, ptid: int, ctid: int, tls: int, pidfd_at: int):
    """The one way a task is made; the call returns the child's virtual tid.
    Only vfork waits (a coroutine); fork and clone are answered at once
    with the op that makes the host process.  pidfd_at is where
    CLONE_PIDFD's fd goes (clone's parent_tid, clone3's pidfd)."""
    if flags & UNSUPPORTED:
        raise Errno(errno.EINVAL)
    # Linux 6.9+ makes a thread's pidfd (PIDFD_THREAD) for CLONE_THREAD: not here
    if flags & CLONE_PIDFD and (flags & (CLONE_THREAD | CLONE_DETACHED) or (
            flags & CLONE_PARENT_SETTID and pidfd_at == ptid)):
        raise Errno(errno.EINVAL)
    if (flags & CLONE_THREAD and not flags & CLONE_SIGHAND) or (
            flags & CLONE_SIGHAND and not flags & CLONE_VM):
        raise Errno(errno.EINVAL)
    if flags & CLONE_PARENT and t.process.parent is None:
        raise Errno(errno.EINVAL)       # init has no parent to share
    k = t.kernel
    _check_room(t)
    files = t.files if flags & CLONE_FILES else t.files.copy()
    tid = k.alloc_pid()
    if flags & CLONE_THREAD:
        proc = t.process
    else:
        parent = t.process.parent if flags & CLONE_PARENT else t.process
        proc = Process(k, tid, parent, t.pgid, t.sid)
        if flags & CLONE_PIDFD:
            given = _give_pidfd(t, proc, pidfd_at, files)
        proc.sigactions = t.sigactions if flags & CLONE_SIGHAND else dict(t.sigactions)
        proc.exit_signal = flags & CSIGNAL
        proc.rlimits = list(t.process.rlimits)
        proc.dumpable = t.process.dumpable
        proc.tty = t.process.tty
        k.pagecache.inherit(t.process, proc)
    child = Task(k, tid, proc, replace(t.cred, groups=list(t.cred.groups)), files,
                 t.fs if flags & CLONE_FS else t.fs.copy())
    child.comm, child.exe, child.sigmask, child.brk = t.comm, t.exe, t.sigmask, t.brk
    child.mm_ranges = t.mm_ranges
    child.sched = t.sched.for_child()
    child.no_new_privs = t.no_new_privs
    child.affinity = t.affinity
    if flags & CLONE_PIDFD:
        child.clone_pidfd = given
    if not flags & CLONE_VM or flags & CLONE_VFORK:
        child.altstack = t.altstack
    if flags & CLONE_THREAD:
        host = HOST_THREAD | flags & (CLONE_SETTLS | CLONE_CHILD_CLEARTID)
    else:
        host = CLONE_PARENT | SIGCHLD | flags & (CLONE_VM | CLONE_SETTLS | CLONE_CHILD_CLEARTID)
    op = Clone(task=tid, flags=host, stack=stack,
               ctid=ctid if flags & CLONE_CHILD_CLEARTID else 0, tls=tls,
               settid=ctid if flags & CLONE_CHILD_SETTID else 0)
    # The child is known before it runs: userspace lets it go within the op
    # and announces its host pid (``spawned``) ahead of its next message.
    k.tasks[tid] = child
    child.flight.in_kernel = False
    if proc is not t.process:
        k.processes[tid] = proc
        proc.parent.children.append(proc)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    if not flags & CLONE_VFORK:
        # Nothing to wait for: the call ends with the op, returning the tid
        # (if the host clone fails, userspace returns its errno and says so).
        if flags & CLONE_PARENT_SETTID:
            _put_tid(t, ptid, tid)
        child.created_by = t
        return Ops([op], tid)
    child.vfork_done = k.loop.create_future()
    return _vfork(t, child, op, flags, ptid)


def _give_pidfd(t: Task, proc: Process, addr: int, files) -> tuple:
    """CLONE_PIDFD: a pidfd to the new process in the parent's table, after
    the child's copy was made (the child does not inherit it), its number
    written at addr.  EMFILE or EFAULT and there is no child, as Linux's
    copy_process: what was made for it goes."""
    try:
        fd = pidfd.install(t, proc, 0)
        try:
            t.mem.write(addr, _TID.pack(fd))
        except Errno:
            t.files.close(fd)
            raise
    except Errno:
        proc.kernel.free_pid(proc.pid)
        if files is not t.files:
            files.close_all()
        raise
    return fd, t.files.get(fd)


def _check_room(t: Task) -> None:
    """EAGAIN, as Linux's copy_process, when the guest holds max_tasks pids
    (threads, and zombies not yet reaped: each live one is a host process),
    or when a user other than root has RLIMIT_NPROC tasks: a fork bomb
    ends there, in its own guest."""
    k = t.kernel
    if len(k.pids) >= k.cfg.max_tasks:
        raise refuse("max_tasks", k.cfg.max_tasks, errno.EAGAIN)
    nproc = t.process.rlimits[RLIMIT_NPROC][0]
    uid = t.cred.uid
    if uid and nproc <= len(k.tasks) and sum(o.cred.uid == uid for o in k.tasks.values()) >= nproc:
        raise refuse("RLIMIT_NPROC", nproc, errno.EAGAIN)


async def _vfork(t: Task, child: Task, op: dict, flags: int, ptid: int) -> int:
    """Make the child, then hold the parent until it execs or exits."""
    k, tid = t.kernel, child.tid
    try:
        result = (await k.run_ops(t, [op]))[0]
    except BaseException:
        _undo(t, child)
        raise
    if isinstance(result, int) and result < 0:
        _undo(t, child)
        raise Errno(-result)
    if flags & CLONE_PARENT_SETTID:
        _put_tid(t, ptid, tid)
    if child.vfork_done is not None:
        t.flight.in_ops = True              # not cut short by signals: vfork must not run twice
        try:
            await child.vfork_done   # until the child execs or exits
        finally:
            t.flight.in_ops = False
    return tid


def clone_failed(child: Task) -> None:
    """Userspace could not make the host process of a clone: no child."""
    _undo(child.created_by, child)


def _undo(parent: Task, child: Task) -> None:
    """The host clone failed: forget the child."""
    k = child.kernel
    k.tasks.pop(child.tid, None)
    del child.process.threads[child.tid]
    if child.process is not parent.process:
        k.processes.pop(child.tid, None)
        child.process.parent.children.remove(child.process)
        k.pagecache.release(child.process)
        child.process.reaped = True
    if child.files is not parent.files:
        child.files.close_all()
    if child.clone_pidfd is not None:
        fd, f = child.clone_pidfd
        if parent.files.fds.get(fd, (None,))[0] is f:
            parent.files.close(fd)
    k.free_pid(child.tid)


def _put_tid(t: Task, addr: int, tid: int) -> None:
    """Linux ignores a bad address here; so do we."""
    try:
        t.mem.write(addr, _TID.pack(tid))
    except Errno:
        pass


