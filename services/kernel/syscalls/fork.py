"""fork, vfork, clone and clone3: their arguments checked; the work is
services/kernel/sched/fork.py's."""
from __future__ import annotations

import errno

from services.kernel.abi.signal import SIGCHLD
from services.kernel.core.errors import Errno
from services.kernel.sched.fork import CLONE_ARGS, clone
from services.kernel.abi.sched import (
    CLONE_ARGS_SIZE_VER0, CLONE_CLEAR_SIGHAND, CLONE_VFORK, CLONE_VM, CSIGNAL)


def sys_clone(t, flags, stack, ptid, ctid, tls, *_):
    return clone(t, flags & 0xFFFFFFFF, stack, ptid, ctid, tls, ptid)


def sys_fork(t, *_):
    return clone(t, SIGCHLD, 0, 0, 0, 0, 0)


def sys_vfork(t, *_):
    return clone(t, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0, 0)


def sys_clone3(t, args, size, *_):
    if size < CLONE_ARGS_SIZE_VER0 or size > 4096:
        raise Errno(errno.EINVAL)
    raw = t.mem.read(args, size)
    if any(raw[CLONE_ARGS.size:]):      # set_tid and cgroup: not supported
        raise Errno(errno.EINVAL)
    flags, pidfd_at, ctid, ptid, exit_signal, stack, stack_size, tls = CLONE_ARGS.unpack(
        raw[:CLONE_ARGS.size])
    if exit_signal & ~CSIGNAL or flags & CSIGNAL or flags & CLONE_CLEAR_SIGHAND:
        raise Errno(errno.EINVAL)
    if bool(stack) != bool(stack_size):
        raise Errno(errno.EINVAL)
    return clone(t, flags | exit_signal, stack + stack_size if stack else 0,
                 ptid, ctid, tls, pidfd_at)
