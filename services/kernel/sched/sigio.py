"""A file's owner: who its readiness signals reach (Linux's fown_struct,
f_setown and send_sigio in fs/fcntl.c).

In a nutshell: F_SETOWN, F_SETOWN_EX, F_SETSIG and F_NOTIFY give an open
file an ``Owner``: a thread, a process or a process group, the signal to
send (0: plain SIGIO), and the ids of whoever named the owner.  The files
that can signal (fs/fasync.py) and dnotify call ``send(fd, reason)`` with
a POLL_* reason; the fs layer holds the owner without knowing this module.
An owner names a thread or process by its object, not its number, so a pid
reused after the owner was reaped is never signalled (Linux holds a struct
pid); a process group is named by its number, as long as it has members."""
from __future__ import annotations

import errno

from services.kernel.abi.poll import (
    POLLERR, POLLHUP, POLLIN, POLLMSG, POLLOUT, POLLPRI, POLLRDBAND, POLLRDNORM, POLLWRBAND,
    POLLWRNORM)
from services.kernel.abi.signal import (
    POLL_ERR, POLL_HUP, POLL_IN, POLL_MSG, POLL_OUT, POLL_PRI, SI_KERNEL, SI_SIGIO, SICODE_LIMITS,
    SIGIO)
from services.kernel.core.errors import Errno
from services.kernel.sched.signals import send_process, send_task

PIDTYPE_PID, PIDTYPE_TGID, PIDTYPE_PGID = "tid", "tgid", "pgid"     # what an owner names
# si_band of each reason (Linux's band_table)
BANDS = {POLL_IN: POLLIN | POLLRDNORM, POLL_OUT: POLLOUT | POLLWRNORM | POLLWRBAND,
         POLL_MSG: POLLIN | POLLRDNORM | POLLMSG, POLL_ERR: POLLERR,
         POLL_PRI: POLLPRI | POLLRDBAND, POLL_HUP: POLLHUP | POLLERR}


class Owner:
    """Who a file signals, with what, and with whose permission."""

    __slots__ = ("kernel", "kind", "target", "uid", "euid", "signum")

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.kind = PIDTYPE_PID    # what a file never given an owner reports (F_OWNER_TID, 0)
        self.target = None         # a Task, a Process, a pgid (by kind), or None
        self.uid = self.euid = 0   # of who named the target
        self.signum = 0            # F_SETSIG's; 0 is plain SIGIO

    def set(self, t, kind: str, number: int, force: bool = True) -> None:
        """Name the owner (Linux's f_setown_ex): number 0 names none;
        ESRCH if nothing has the number.  Without force (F_NOTIFY) an
        owner already named stays."""
        target = None
        if number:
            target = self._find(kind, number)
            if target is None:
                raise Errno(errno.ESRCH)
        if not force and self.target is not None:
            return
        self.kind, self.target = kind, target
        if target is not None:
            self.uid, self.euid = t.cred.uid, t.cred.euid

    def _find(self, kind: str, number: int):
        k = self.kernel
        if kind == PIDTYPE_PGID:
            return number if any(p.pgid == number for p in k.processes.values()) else None
        task = k.tasks.get(number)
        if kind == PIDTYPE_PID:
            return task
        return task.process if task is not None else k.processes.get(number)

    def number(self) -> int:
        """The owner's id while it lives (F_GETOWN_EX), else 0."""
        target, k = self.target, self.kernel
        if target is None:
            return 0
        if self.kind == PIDTYPE_PGID:
            return target if any(p.pgid == target for p in k.processes.values()) else 0
        if self.kind == PIDTYPE_PID:
            return target.tid if k.tasks.get(target.tid) is target else 0
        return 0 if target.reaped else target.pid

    def send(self, fd: int, reason: int) -> None:
        """The file at fd is ready for reason (a POLL_*): signal the owner
        (Linux's send_sigio), each target the namer could have signalled."""
        target = self.target
        if target is None:
            return
        if self.kind == PIDTYPE_PID:
            if self.kernel.tasks.get(target.tid) is target and self._may(target):
                send_task(target, *self._signal(fd, reason))
            return
        procs = ([target] if self.kind == PIDTYPE_TGID else
                 [p for p in self.kernel.processes.values() if p.pgid == target])
        for proc in procs:
            first = next(iter(proc.threads.values()), None)
            if first is not None and self._may(first):
                send_process(proc, *self._signal(fd, reason))

    def _may(self, task) -> bool:
        """sigio_perm: root named it, or the namer's real or effective uid is
        the target's real or saved one."""
        cred = task.cred
        return self.euid == 0 or bool({self.euid, self.uid} & {cred.uid, cred.suid})

    def _signal(self, fd: int, reason: int) -> tuple[int, dict]:
        signum = self.signum
        if not signum:
            return SIGIO, {"code": SI_KERNEL}
        # the POLL_* codes are SIGIO's own; a signal with codes of its own gets SI_SIGIO
        code = SI_SIGIO if signum != SIGIO and signum in SICODE_LIMITS else reason
        return signum, {"code": code, "band": BANDS[reason], "fd": fd}
