"""Process file descriptors (Linux's pidfs): an open file that names one
process, for pidfd_open, clone's CLONE_PIDFD, poll, waitid(P_PIDFD),
pidfd_send_signal and pidfd_getfd.

A pidfd holds the ``Process`` object, not its number: the number goes back
to the kernel when the process is reaped and may name another process
afterwards, the object never does.  What it keeps alive after the reap is
that object alone (no threads, no children, no fd table: exit let them
go), for as long as some fd refers to it, and fds are bounded by
RLIMIT_NOFILE; every call on it then says ESRCH (Linux: the struct pid
outlives its task the same way)."""
from __future__ import annotations

import errno

from services.kernel.abi.fcntl import O_NONBLOCK, O_RDWR
from services.kernel.abi.poll import POLLHUP, POLLIN, POLLRDNORM
from services.kernel.core.errors import Errno
from services.kernel.fs.files import PseudoInode
from services.kernel.fs.vfs import OpenFile, makedev, pack_stat, pack_statx
from services.kernel.sched.task import Process, Task

# pidfs's device (the host's Linux 6.18 numbers it 0:5, first of its
# anonymous filesystems; here it follows anon_inodefs' 0:14)
PIDFS_DEV = makedev(0, 15)


class PidFile(OpenFile):
    """An open pidfd: O_RDWR, and O_NONBLOCK if asked (then waitid on it
    does not wait).  fstat shows pidfs's inode of the process (mode 0700,
    root's, one number per process), /proc/PID/fd its anon_inode name, as
    Linux's pidfs does."""

    link_name = b"anon_inode:[pidfd]"

    def __init__(self, process: Process, flags: int):
        super().__init__(None, O_RDWR | flags & O_NONBLOCK)
        self.process = process
        self._inode = PseudoInode(ino=process.pidfs_ino, mode=0o700)

    @property
    def inode(self) -> PseudoInode:
        return self._inode

    def stat(self) -> bytes:
        return pack_stat(self._inode, PIDFS_DEV)

    def statx(self) -> bytes:
        return pack_statx(self._inode, PIDFS_DEV)

    def poll(self, table=None) -> int:
        """Linux's pidfd_poll: readable once every thread has ended (a
        zombie), and hung up too once reaped."""
        if table is not None:
            table.add(self.process.pidfd_wait)
        if self.process.reaped:
            return POLLIN | POLLRDNORM | POLLHUP
        return POLLIN | POLLRDNORM if self.process.zombie else 0


def pidfd_of(t: Task, fd: int) -> PidFile:
    """The pidfd at t's fd: EBADF for no file or one that is not a pidfd,
    as Linux's pidfd_pid."""
    f = t.files.get(fd)
    if not isinstance(f, PidFile):
        raise Errno(errno.EBADF)
    return f


def leader(proc: Process) -> Task:
    """The thread a pidfd's fd table and credentials are read from (Linux's
    pid_task(PIDTYPE_PID)): its first thread, ESRCH once that has ended,
    whether or not others still run (Linux's PF_EXITING answer)."""
    t = proc.threads.get(proc.pid)
    if t is None or proc.reaped:
        raise Errno(errno.ESRCH)
    return t


def install(t: Task, proc: Process, flags: int) -> int:
    """A new pidfd to proc in t's table, close-on-exec as Linux makes every
    pidfd (EMFILE past RLIMIT_NOFILE)."""
    return t.files.install(PidFile(proc, flags), cloexec=True)
