"""stat in all its forms, statfs, getdents64 and readlink."""
from __future__ import annotations

import errno
import os

from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import Mount, pack_stat, pack_statx
from services.kernel.syscalls.paths import STATFS, ST_RELATIME, ST_VALID, fd_arg, resolve
from services.kernel.abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW
from services.kernel.abi.mount import MS_RELATIME


def sys_fstat(t, fd, statbuf, *_):
    t.mem.write(statbuf, t.files.get(fd_arg(fd)).stat())
    return 0


async def sys_newfstatat(t, dirfd, path_ptr, statbuf, flags, *_):
    if flags & AT_EMPTY_PATH and not t.mem.read_cstr(path_ptr) and fd_arg(dirfd) != AT_FDCWD:
        return sys_fstat(t, dirfd, statbuf)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    t.mem.write(statbuf, pack_stat(loc.inode, loc.mount.dev))
    return 0


async def sys_stat(t, path_ptr, statbuf, *_):
    return await sys_newfstatat(t, AT_FDCWD, path_ptr, statbuf, 0)


async def sys_lstat(t, path_ptr, statbuf, *_):
    return await sys_newfstatat(t, AT_FDCWD, path_ptr, statbuf, AT_SYMLINK_NOFOLLOW)


async def sys_statx(t, dirfd, path_ptr, flags, mask, buf, *_):
    if flags & AT_EMPTY_PATH and not t.mem.read_cstr(path_ptr) and fd_arg(dirfd) != AT_FDCWD:
        t.mem.write(buf, t.files.get(fd_arg(dirfd)).statx())
        return 0
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    t.mem.write(buf, pack_statx(loc.inode, loc.mount.dev))
    return 0


def pack_statfs(m: Mount) -> bytes:
    """struct statfs of a mount: its filesystem's counts and its flags as ST_*
    (the low MS_* bits are the same; relatime moves)."""
    s = m.fs.statfs()
    flags = ST_VALID | m.flags & 0xF0F | (ST_RELATIME if m.flags & MS_RELATIME else 0)
    return STATFS.pack(s["magic"], s["bsize"], s["blocks"], s["bfree"], s["bavail"],
                        s["files"], s["ffree"], os.minor(m.dev), os.major(m.dev),
                        s["namelen"], s["frsize"], flags)


async def sys_statfs(t, path_ptr, buf, *_):
    loc = await resolve(t, AT_FDCWD, path_ptr)
    t.mem.write(buf, pack_statfs(loc.mount))
    return 0


def sys_fstatfs(t, fd, buf, *_):
    f = t.files.get(fd_arg(fd))
    if f.loc is None:
        raise Errno(errno.EINVAL)      # pipes and the boot console have no filesystem yet
    t.mem.write(buf, pack_statfs(f.loc.mount))
    return 0
