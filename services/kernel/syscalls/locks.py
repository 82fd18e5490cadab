"""flock and fcntl's lock commands (F_GETLK, F_SETLK, F_SETLKW and their OFD
forms): the guest's struct flock read once, checked, and turned into a
range for fs/locks.py."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.fcntl import (
    F_GETLK, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_RDLCK, F_SETLK, F_SETLKW, F_UNLCK, F_WRLCK, LOCK_EX, LOCK_MAND,
    LOCK_NB, LOCK_SH, LOCK_UN, O_PATH, OFFSET_MAX, SEEK_CUR, SEEK_END, SEEK_SET)
from services.kernel.core.errors import Errno
from services.kernel.fs import locks
from services.kernel.syscalls.paths import fd_arg

FLOCK = struct.Struct("<hh4xqqi4x")     # struct flock: type, whence, start, len, pid
LOCK_CMDS = (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)


def _inode(f):
    if f.loc is None:
        raise Errno(errno.EINVAL)     # anonymous pipes, eventfds ...: no inode to lock
    return f.loc.inode


async def sys_flock(t, fd, operation, *_):
    """In Linux's order: LOCK_MAND is ignored (no longer supported), a bad
    operation is EINVAL before a bad fd, an fd with no access mode (O_PATH)
    may only unlock."""
    op = operation & 0xFFFFFFFF
    if op & LOCK_MAND:
        return 0
    kind = op & ~LOCK_NB
    if kind not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise Errno(errno.EINVAL)
    f = t.files.get(fd_arg(fd))
    if kind == LOCK_UN:
        if f.loc is not None:
            locks.funlock(f.loc.inode, f)
        return 0
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    await locks.flock(_inode(f), f, kind, wait=not op & LOCK_NB)
    return 0


def _range(f, whence: int, start: int, length: int) -> tuple[int, int]:
    """A struct flock's range as first and last byte (Linux's
    flock_to_posix_lock): a length of 0 runs to the end and beyond, a
    negative one ends before start."""
    if whence == SEEK_SET:
        base = 0
    elif whence == SEEK_CUR:
        base = f.pos
    elif whence == SEEK_END:
        base = f.loc.inode.size
    else:
        raise Errno(errno.EINVAL)
    if start > OFFSET_MAX - base:
        raise Errno(errno.EOVERFLOW)
    first = base + start
    if first < 0:
        raise Errno(errno.EINVAL)
    if length > 0:
        if length - 1 > OFFSET_MAX - first:
            raise Errno(errno.EOVERFLOW)
        return first, first + length - 1
    if length < 0:
        if first + length < 0:
            raise Errno(errno.EINVAL)
        return first + length, first - 1
    return first, OFFSET_MAX


async def fcntl_lock(t, f, cmd: int, arg: int) -> int:
    """F_GETLK/F_SETLK/F_SETLKW (owner: the fd table, as Linux's
    files_struct) and F_OFD_* (owner: the open file description)."""
    kind, whence, start, length, pid = FLOCK.unpack(t.mem.read(arg, FLOCK.size))
    ofd = cmd >= F_OFD_GETLK
    if ofd and pid:
        raise Errno(errno.EINVAL)
    inode = _inode(f)
    first, last = _range(f, whence, start, length)
    owner = f if ofd else t.files
    if cmd in (F_GETLK, F_OFD_GETLK):
        if kind not in (F_RDLCK, F_WRLCK):
            raise Errno(errno.EINVAL)
        r = locks.conflict(inode, owner, first, last, kind)
        if r is None:
            out = FLOCK.pack(F_UNLCK, whence, start, length, pid)
        else:
            out = FLOCK.pack(r.type, SEEK_SET, r.start,
                             0 if r.end == OFFSET_MAX else r.end - r.start + 1, r.pid)
        t.mem.write(arg, out)
        return 0
    if kind not in (F_RDLCK, F_WRLCK, F_UNLCK):
        raise Errno(errno.EINVAL)
    if kind == F_RDLCK and not f.readable or kind == F_WRLCK and not f.writable:
        raise Errno(errno.EBADF)
    await locks.set_record(inode, owner, first, last, kind, -1 if ofd else t.tgid,
                           wait=cmd in (F_SETLKW, F_OFD_SETLKW), posix=not ofd)
    return 0
