"""signalfd: a file whose reads take the reader's pending signals (Linux's
fs/signalfd.c).

In a nutshell: the file holds only a mask.  Which signals it shows is the
reading (or polling) task's business: its own pending ones first, then its
process's, as sigtimedwait dequeues them, each as a 128-byte
signalfd_siginfo.  A signal joining a pending set wakes the process's
``signal_queued`` queue, on which readers and pollers (epoll too) wait.
Programs block the signals they read this way; an unblocked one still goes
to its handler first, as on Linux."""
from __future__ import annotations

import errno
import struct

from services.kernel.core.errors import Errno
from services.kernel.fs.poll import AnonFile
from services.kernel.sched.signals import bit, take_waited
from services.kernel.sched.task import CURRENT
from services.kernel.abi.fcntl import O_NONBLOCK, O_RDWR
from services.kernel.abi.poll import POLLIN, POLLRDNORM
from services.kernel.abi.signal import SIGNALFD_SIGINFO_SIZE

# ssi_signo, errno, code, pid, uid, fd, tid, band, overrun, trapno, status, int,
# ptr, utime, stime, addr, then addr_lsb, pad, syscall, call_addr, arch: zero here
_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQ")


def signalfd_siginfo(sig: int, info: dict) -> bytes:
    """Linux's signalfd_copyinfo: the fields of the signal's siginfo layout."""
    pid = uid = fd = band = status = value = addr = 0
    if "addr" in info:                       # a fault
        addr = info["addr"]
    elif "band" in info:                     # SIGIO's
        band, fd = info["band"], info["fd"]
    else:                                    # kill, sigqueue, SIGCHLD
        pid, uid = info.get("pid", 0), info.get("uid", 0)
        status, value = info.get("status", 0), info.get("value", 0)
    packed = _SIGINFO.pack(sig, 0, info.get("code", 0), pid & 0xFFFFFFFF, uid, fd, 0,
                           band & 0xFFFFFFFF, 0, 0, status, _c_int(value),
                           value & (1 << 64) - 1, 0, 0, addr)
    return packed.ljust(SIGNALFD_SIGINFO_SIZE, b"\0")


def _c_int(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 1 << 31 else value


class SignalFd(AnonFile):
    link_name = b"anon_inode:[signalfd]"

    def __init__(self, mask: int, flags: int):
        super().__init__(None, O_RDWR | flags & O_NONBLOCK)
        self.mask = mask

    def poll(self, table=None) -> int:
        t = CURRENT.get()
        if t is None:
            return 0
        if table is not None:
            table.add(t.process.signal_queued)
        pending = t.pending.keys() | t.process.pending.keys()
        return POLLIN | POLLRDNORM if any(self.mask & bit(s) for s in pending) else 0

    async def read(self, count: int, offset: int | None = None) -> bytes:
        """As many signals as fit and are pending; waits for the first
        (a signal to handle ends the wait, as any slow call's)."""
        n = count // SIGNALFD_SIGINFO_SIZE
        if not n:
            raise Errno(errno.EINVAL)
        t = CURRENT.get()
        out = []
        while len(out) < n:
            taken = take_waited(t, self.mask)
            if taken is not None:
                out.append(signalfd_siginfo(*taken))
                continue
            if out:
                break
            if self.flags & O_NONBLOCK:
                raise Errno(errno.EAGAIN)
            await t.process.signal_queued.wait()
        return b"".join(out)
