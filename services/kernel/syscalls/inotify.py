"""inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch."""
from __future__ import annotations

import errno
import stat as S

from services.kernel.abi.fcntl import AT_FDCWD, R_OK
from services.kernel.abi.inotify import (
    IN_ALL_EVENTS, IN_CLOEXEC, IN_DONT_FOLLOW, IN_EXCL_UNLINK, IN_IGNORED, IN_ISDIR, IN_MASK_ADD,
    IN_MASK_CREATE, IN_NONBLOCK, IN_ONESHOT, IN_ONLYDIR, IN_Q_OVERFLOW, IN_UNMOUNT)
from services.kernel.core.errors import Errno
from services.kernel.fs.inotify import Inotify
from services.kernel.fs.vfs import permitted
from services.kernel.syscalls.paths import fd_arg, resolve

ALL_INOTIFY_BITS = (IN_ALL_EVENTS | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED | IN_ONLYDIR
                    | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_MASK_CREATE | IN_MASK_ADD | IN_ISDIR
                    | IN_ONESHOT)


def sys_inotify_init1(t, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~(IN_NONBLOCK | IN_CLOEXEC):
        raise Errno(errno.EINVAL)
    f = Inotify(flags, t.cred.uid)
    try:
        return t.files.install(f, cloexec=bool(flags & IN_CLOEXEC))
    except Errno:
        f.release()
        raise


def sys_inotify_init(t, *_):
    return sys_inotify_init1(t, 0)


def _instance(t, fd: int) -> Inotify:
    f = t.files.get(fd_arg(fd))
    if not isinstance(f, Inotify):
        raise Errno(errno.EINVAL)
    return f


async def sys_inotify_add_watch(t, fd, path_ptr, mask, *_):
    """Checked in Linux's order: the flags, the fd, the path (ENOTDIR with
    IN_ONLYDIR), read permission on it."""
    mask &= 0xFFFFFFFF
    if mask & IN_MASK_ADD and mask & IN_MASK_CREATE or not mask & ALL_INOTIFY_BITS:
        raise Errno(errno.EINVAL)
    f = _instance(t, fd)
    loc = await resolve(t, AT_FDCWD, path_ptr, follow=not mask & IN_DONT_FOLLOW)
    if mask & IN_ONLYDIR and not S.S_ISDIR(loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    if not permitted(loc.inode, t.cred, R_OK):
        raise Errno(errno.EACCES)
    if mask & IN_MASK_CREATE and id(loc.inode) in f.by_inode:
        raise Errno(errno.EEXIST)
    return f.add(loc.inode, mask & ~(IN_MASK_CREATE | IN_ONLYDIR | IN_DONT_FOLLOW))


def sys_inotify_rm_watch(t, fd, wd, *_):
    _instance(t, fd).remove(fd_arg(wd))
    return 0
