"""Signal state: dispositions, the blocked mask and the alternate stack.

Signals belong to the kernel: it keeps each task's sigaction table, mask and
sigaltstack as Linux does and answers the calls that read and change them.
Delivering signals to guest handlers comes with the process work (issue 3)."""
from __future__ import annotations

import errno
import struct

from services.kernel.errors import Errno

NSIG = 64
SIGKILL, SIGSTOP = 9, 19
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
SIGACTION_SIZE = 32        # handler, flags, restorer, mask
UNBLOCKABLE = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1))


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
    if old_ss:
        t.mem.write(old_ss, t.altstack)
    if ss:
        t.altstack = t.mem.read(ss, 24)
    return 0
