"""pidfd_open and pidfd_getfd (services/kernel/sched/pidfd.py);
pidfd_send_signal is with the signal calls, waitid's P_PIDFD with wait's."""
from __future__ import annotations

import errno

from services.kernel.abi.pidfd import PIDFD_NONBLOCK
from services.kernel.abi.prctl import SUID_DUMP_USER
from services.kernel.core.cred import may_attach
from services.kernel.core.errors import Errno
from services.kernel.fs.files import c_int
from services.kernel.sched import pidfd


def sys_pidfd_open(t, pid, flags, *_):
    """A pidfd to the process pid leads: ENOENT for a thread's tid that does
    not lead (Linux 6.15+; EINVAL before), ESRCH for no such pid, EINVAL
    for PIDFD_THREAD (Linux 6.9+ takes it: a thread's pidfd).  A zombie has
    one until it is reaped."""
    pid = c_int(pid)
    if flags & 0xFFFFFFFF & ~PIDFD_NONBLOCK or pid <= 0:
        raise Errno(errno.EINVAL)
    proc = t.kernel.processes.get(pid)
    if proc is None:
        raise Errno(errno.ENOENT if pid in t.kernel.tasks else errno.ESRCH)
    return pidfd.install(t, proc, flags)


def sys_pidfd_getfd(t, fd, targetfd, flags, *_):
    """A copy of the open file at the pidfd's process's targetfd, close-on-
    exec, in the caller's table, as Linux's pidfd_getfd: only for a caller
    that may ptrace-attach to it (PTRACE_MODE_ATTACH_REALCREDS).  Guest fds
    are the kernel's own OpenFiles: no host fd is reached or made."""
    if flags & 0xFFFFFFFF:
        raise Errno(errno.EINVAL)
    target = pidfd.leader(pidfd.pidfd_of(t, c_int(fd)).process)
    if target.process is not t.process and not may_attach(
            t.cred, target.cred, target.process.dumpable == SUID_DUMP_USER):
        raise Errno(errno.EPERM)
    return t.files.install(target.files.get(c_int(targetfd)), cloexec=True)
