"""open, openat, creat and close; truncation at open and by ftruncate."""
from __future__ import annotations

import errno
import stat as S

from services.kernel.drivers import mem
from services.kernel.fs import fsnotify
from services.kernel.core.errors import Errno
from services.kernel.fs.pipe import (
    open_fifo)
from services.kernel.fs.vfs import (
    InodeFile, Location, check_writable, data_of, may_create, new_owner, permitted, remove_privs)
from services.kernel.syscalls.paths import (
    O_PATH_KEEPS, SPECIAL_NAMES, fd_arg, resolve, start_of, timestamp_now)
from services.kernel.abi.fcntl import (
    AT_FDCWD, MAXSYMLINKS, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_LARGEFILE,
    O_NOCTTY, O_NOFOLLOW, O_PATH, O_TMPFILE, O_TRUNC, R_OK, W_OK)
from services.kernel.abi.inotify import IN_MODIFY, IN_OPEN


async def _open_create(t, dirfd: int, path_ptr: int, flags: int, mode: int) -> tuple[Location, bool]:
    """O_CREAT: the file at path and whether it was made now.  A dangling
    symlink is followed and the file made where it points, as Linux does."""
    vfs = t.kernel.vfs
    path = t.mem.read_cstr(path_ptr)
    start = start_of(t, fd_arg(dirfd), path)
    links = [0]
    while True:
        dir_loc, name = await vfs.lookup_parent(start, path, t.cred, t.root, _depth=links)
        if path.endswith(b"/") or name in SPECIAL_NAMES:
            raise Errno(errno.EISDIR)
        inode = await dir_loc.inode.lookup(name)
        if inode is None:
            may_create(dir_loc, t.cred)
            perm, uid, gid = new_owner(dir_loc.inode, t.cred,
                                       S.S_IFREG | mode & ~t.umask & 0o7777)
            try:
                inode = await dir_loc.inode.create(name, perm, uid, gid, 0)
            except Errno as e:
                if e.code != errno.EEXIST or flags & O_EXCL:
                    raise
                continue        # another task made it meanwhile: open that one
            fsnotify.created(dir_loc.inode, name, False)
            return dir_loc.child(name, inode), True
        if flags & O_EXCL:
            raise Errno(errno.EEXIST)
        if not S.S_ISLNK(inode.mode) or flags & O_NOFOLLOW:
            return vfs.step_in(dir_loc.child(name, inode)), False
        links[0] += 1
        if links[0] > MAXSYMLINKS:
            raise Errno(errno.ELOOP)
        start, path = dir_loc, await inode.readlink()


def _may_open(t, loc: Location, flags: int) -> None:
    """Permission to open an existing inode: EROFS for writing a file on a
    read-only mount (devices are not on it), then the mode bits."""
    want = {0: R_OK, 1: W_OK}.get(flags & O_ACCMODE, R_OK | W_OK)
    if flags & O_TRUNC:
        want |= W_OK
    mode = loc.inode.mode
    if want & W_OK and (S.S_ISREG(mode) or S.S_ISDIR(mode) or S.S_ISLNK(mode)):
        check_writable(loc)
    if not permitted(loc.inode, t.cred, want):
        raise Errno(errno.EACCES)
    if want & W_OK:
        loc.inode.open_for_write()


def open_file(t, loc: Location, flags: int, noctty: bool = True):
    """The open file for an inode: its driver for a character device (a
    terminal may become the caller's controlling one unless noctty)."""
    mode = loc.inode.mode
    if flags & O_PATH or S.S_ISREG(mode) or S.S_ISDIR(mode):
        return InodeFile(loc, flags)
    if S.S_ISCHR(mode):
        return mem.open_char(t, loc, flags, noctty)
    raise Errno(errno.ENXIO)      # block devices, and sockets until there are sockets


async def truncate_inode(t, inode, size: int, touch: bool) -> None:
    """Set the size, dropping set-ID bits as a write does (do_truncate);
    ftruncate and O_TRUNC also stamp mtime and ctime when it does not
    change."""
    await remove_privs(inode, t.cred)
    await data_of(inode).truncate(size)
    if touch:
        await inode.setattr(mtime=timestamp_now())


async def sys_openat(t, dirfd, path_ptr, flags, mode, *_):
    flags &= 0xFFFFFFFF
    if flags & O_PATH:
        flags &= O_PATH_KEEPS
    if flags & O_TMPFILE:
        raise Errno(errno.EOPNOTSUPP)
    created = truncated = False
    if flags & O_CREAT:
        loc, created = await _open_create(t, dirfd, path_ptr, flags, mode)
    else:
        loc = await resolve(t, dirfd, path_ptr, follow=not flags & O_NOFOLLOW)
    inode = loc.inode
    if S.S_ISLNK(inode.mode) and not flags & O_PATH:
        raise Errno(errno.ELOOP)
    if flags & O_DIRECTORY and not S.S_ISDIR(inode.mode):
        raise Errno(errno.ENOTDIR)
    if not flags & O_PATH:
        if S.S_ISDIR(inode.mode) and (flags & O_ACCMODE or flags & (O_CREAT | O_TRUNC)):
            raise Errno(errno.EISDIR)
        if not created:
            _may_open(t, loc, flags)
            if flags & O_TRUNC and S.S_ISREG(inode.mode):
                await truncate_inode(t, inode, 0, True)
                truncated = True
    noctty = bool(flags & O_NOCTTY)
    flags = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC) | O_LARGEFILE
    if S.S_ISFIFO(inode.mode) and not flags & O_PATH:
        f = await open_fifo(loc, flags & ~O_CLOEXEC)
    else:
        f = open_file(t, loc, flags & ~O_CLOEXEC, noctty)
    try:
        fd = t.files.install(f, cloexec=bool(flags & O_CLOEXEC))
    except Errno:
        f.release()
        raise
    if not flags & O_PATH:
        fsnotify.on_file(loc, IN_OPEN)
    if truncated:
        fsnotify.on_file(loc, IN_MODIFY)     # after IN_OPEN, as Linux truncates after vfs_open
    return fd


def sys_open(t, path_ptr, flags, mode, *_):
    return sys_openat(t, AT_FDCWD, path_ptr, flags, mode)


def sys_creat(t, path_ptr, mode, *_):
    return sys_openat(t, AT_FDCWD, path_ptr, O_CREAT | 1 | O_TRUNC, mode)


def sys_close(t, fd, *_):
    t.files.close(fd_arg(fd))
    return 0
