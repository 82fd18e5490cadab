"""Descriptors: ioctl, fcntl, dup in all its forms, close_range."""
from __future__ import annotations

import errno
import stat as S

from services.kernel.core.cred import (owner_or_capable)
from services.kernel.core.errors import Errno
from services.kernel.fs.pipe import pipe_fcntl
from services.kernel.fs.vfs import InodeFile
from services.kernel.syscalls.locks import LOCK_CMDS, fcntl_lock
from services.kernel.syscalls.paths import INT, LOFF, fd_arg
from services.kernel.syscalls.sigio import OWNER_CMDS, owner_fcntl, set_async
from services.kernel.abi.ioctls import FIOASYNC, FIOCLEX, FIONBIO, FIONCLEX, FIONREAD, FIOQSIZE
from services.kernel.abi.fcntl import (
    CLOSE_RANGE_CLOEXEC, CLOSE_RANGE_UNSHARE, FD_CLOEXEC, F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD,
    F_GETFL, F_GETPIPE_SZ, F_SETFD, F_SETFL, F_SETPIPE_SZ, O_APPEND, O_CLOEXEC, O_DIRECT,
    O_ASYNC, O_NOATIME, O_NONBLOCK, O_PATH)


SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME    # O_ASYNC is the file's fasync's


def sys_ioctl(t, fd, request, arg, *_):
    """Linux's do_vfs_ioctl first (the requests every file takes), then
    the file's own."""
    fd, request = fd_arg(fd), request & 0xFFFFFFFF
    f = t.files.get(fd)
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    if request in (FIOCLEX, FIONCLEX):
        t.files.set_cloexec(fd, request == FIOCLEX)
        return 0
    if request == FIONBIO:
        on = INT.unpack(t.mem.read(arg, 4))[0]
        f.flags = f.flags | O_NONBLOCK if on else f.flags & ~O_NONBLOCK
        return 0
    if request == FIOASYNC:
        set_async(f, fd, bool(INT.unpack(t.mem.read(arg, 4))[0]), ioctl=True)
        return 0
    inode = f.loc.inode if isinstance(f, InodeFile) else None
    if request == FIOQSIZE and inode is not None and (
            S.S_ISREG(inode.mode) or S.S_ISDIR(inode.mode) or S.S_ISLNK(inode.mode)):
        t.mem.write(arg, LOFF.pack(inode.blocks * 512))     # inode_get_bytes: allocated
        return 0
    if request == FIONREAD and inode is not None and S.S_ISREG(inode.mode):
        t.mem.write(arg, INT.pack(max(min(inode.size - f.pos, 0x7FFFFFFF), -0x80000000)))
        return 0
    return f.ioctl(t, request, arg)


def _setfl(t, fd: int, f, arg: int) -> None:
    if arg & O_NOATIME and not f.flags & O_NOATIME and f.loc is not None \
            and not owner_or_capable(t.cred, f.loc.inode):
        raise Errno(errno.EPERM)
    if arg & O_DIRECT and not (isinstance(f, InodeFile) and S.S_ISREG(f.loc.inode.mode)):
        raise Errno(errno.EINVAL)        # pipes' packet mode is not implemented
    set_async(f, fd, bool(arg & O_ASYNC), ioctl=False)
    f.flags = (f.flags & ~SETFL_MASK) | (arg & SETFL_MASK)


def sys_fcntl(t, fd, cmd, arg, *_):
    fd, cmd = fd_arg(fd), cmd & 0xFFFFFFFF
    f = t.files.get(fd)
    if f.flags & O_PATH and cmd not in (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL):
        raise Errno(errno.EBADF)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        lowest = arg & 0xFFFFFFFF           # an unsigned int to Linux: -1 is too high
        if lowest >= t.files.limit:
            raise Errno(errno.EINVAL)
        return t.files.install(f, cloexec=cmd == F_DUPFD_CLOEXEC, lowest=lowest)
    if cmd == F_GETFD:
        return FD_CLOEXEC if t.files.cloexec(fd) else 0
    if cmd == F_SETFD:
        t.files.set_cloexec(fd, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        return f.flags
    if cmd == F_SETFL:
        _setfl(t, fd, f, arg)
        return 0
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        return pipe_fcntl(t, f, cmd, arg)
    if cmd in LOCK_CMDS:
        return fcntl_lock(t, f, cmd, arg)
    if cmd in OWNER_CMDS:
        return owner_fcntl(t, fd, f, cmd, arg)
    raise Errno(errno.EINVAL)            # leases, seals


def sys_dup(t, fd, *_):
    return t.files.install(t.files.get(fd_arg(fd)))


def sys_dup3(t, oldfd, newfd, flags, *_):
    oldfd, newfd = fd_arg(oldfd), fd_arg(newfd)
    if flags & 0xFFFFFFFF & ~O_CLOEXEC or oldfd == newfd:
        raise Errno(errno.EINVAL)
    return t.files.dup_to(t.files.get(oldfd), newfd, bool(flags & O_CLOEXEC))


def sys_dup2(t, oldfd, newfd, *_):
    if fd_arg(oldfd) == fd_arg(newfd):
        t.files.get(fd_arg(oldfd))
        return fd_arg(newfd)
    return sys_dup3(t, oldfd, newfd, 0)


def sys_close_range(t, first, last, flags, *_):
    first, last, flags = first & 0xFFFFFFFF, last & 0xFFFFFFFF, flags & 0xFFFFFFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise Errno(errno.EINVAL)
    if flags & CLOSE_RANGE_UNSHARE and any(
            other is not t and other.files is t.files for other in t.kernel.tasks.values()):
        t.files = t.files.copy()
    t.files.close_range(first, last, cloexec=bool(flags & CLOSE_RANGE_CLOEXEC))
    return 0
