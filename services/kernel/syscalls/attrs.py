"""Attributes and places: chmod, chown, utimes, umask, access, getcwd, chdir, chroot."""
from __future__ import annotations

import errno
import stat as S

from services.kernel.core.cred import NO_ID, access_cred, capable, in_group, owner_or_capable
from services.kernel.core.errors import Errno
from services.kernel.fs import fsnotify
from services.kernel.fs.vfs import Location, check_writable, permitted, sgid_to_drop
from services.kernel.syscalls.paths import (
    TIMESPEC2, TIMEVAL2, UTIMBUF, fd_arg, fd_loc, resolve, timestamp_now)
from services.kernel.abi.fcntl import (
    AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, UTIME_NOW, UTIME_OMIT, W_OK, X_OK)
from services.kernel.abi.capability import CAP_CHOWN, CAP_FSETID, CAP_SYS_CHROOT
from services.kernel.abi.inotify import IN_ACCESS, IN_ATTRIB, IN_MODIFY


async def _chmod(t, loc: Location, mode: int) -> int:
    check_writable(loc)
    inode = loc.inode
    if not owner_or_capable(t.cred, inode):
        raise Errno(errno.EPERM)
    mode &= 0o7777
    if not in_group(t.cred, inode.gid) and not capable(t.cred, CAP_FSETID):
        mode &= ~S.S_ISGID            # as Linux: only a member may set the group's bit
    await inode.setattr(mode=mode)
    fsnotify.on_file(loc, IN_ATTRIB)
    return 0


async def sys_fchmodat2(t, dirfd, path_ptr, mode, flags, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    if S.S_ISLNK(loc.inode.mode):
        raise Errno(errno.EOPNOTSUPP)     # symlinks have no mode of their own
    return await _chmod(t, loc, mode)


async def sys_fchmodat(t, dirfd, path_ptr, mode, *_):
    return await sys_fchmodat2(t, dirfd, path_ptr, mode, 0)


async def sys_chmod(t, path_ptr, mode, *_):
    return await sys_fchmodat2(t, AT_FDCWD, path_ptr, mode, 0)


async def sys_fchmod(t, fd, mode, *_):
    return await _chmod(t, fd_loc(t, fd), mode)


async def _chown(t, loc: Location, uid: int, gid: int) -> int:
    """Only CAP_CHOWN gives a file away; the owner may change its group to one
    of theirs.  Set-user-ID goes, and set-group-ID with group execute (or
    held by one not in the group), which is a mode change the owner or
    CAP_FOWNER must be allowed, as on Linux (chown_ok, chgrp_ok, notify_change)."""
    uid, gid = uid & 0xFFFFFFFF, gid & 0xFFFFFFFF
    check_writable(loc)
    inode, cred = loc.inode, t.cred
    owner = cred.fsuid == inode.uid
    if not capable(cred, CAP_CHOWN):
        if uid != NO_ID and not (owner and uid == inode.uid):
            raise Errno(errno.EPERM)
        if gid != NO_ID and not (owner and (gid == inode.gid or in_group(cred, gid))):
            raise Errno(errno.EPERM)
    mode = None
    if not S.S_ISDIR(inode.mode):
        kill = inode.mode & S.S_ISUID | sgid_to_drop(inode, cred)
        if kill and not owner_or_capable(cred, inode):
            raise Errno(errno.EPERM)
        if kill:
            mode = inode.mode & ~kill & 0o7777
    await inode.setattr(mode=mode, uid=None if uid == NO_ID else uid,
                        gid=None if gid == NO_ID else gid)
    if uid != NO_ID or gid != NO_ID or mode is not None:
        fsnotify.on_file(loc, IN_ATTRIB)
    return 0


async def sys_fchownat(t, dirfd, path_ptr, uid, gid, flags, *_):
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    return await _chown(t, loc, uid, gid)


async def sys_chown(t, path_ptr, uid, gid, *_):
    return await sys_fchownat(t, AT_FDCWD, path_ptr, uid, gid, 0)


async def sys_lchown(t, path_ptr, uid, gid, *_):
    return await sys_fchownat(t, AT_FDCWD, path_ptr, uid, gid, AT_SYMLINK_NOFOLLOW)


async def sys_fchown(t, fd, uid, gid, *_):
    return await _chown(t, fd_loc(t, fd), uid, gid)


async def _set_times(t, loc: Location, atime, mtime) -> int:
    """Each time is (sec, nsec), UTIME_NOW or UTIME_OMIT.  Explicit times need
    the owner (or CAP_FOWNER); "now" also whoever may write the file."""
    if atime == mtime == UTIME_OMIT:
        return 0
    check_writable(loc)
    inode = loc.inode
    explicit = any(isinstance(x, tuple) for x in (atime, mtime))
    if not owner_or_capable(t.cred, inode):
        if explicit:
            raise Errno(errno.EPERM)
        if not permitted(inode, t.cred, W_OK):
            raise Errno(errno.EACCES)
    now = timestamp_now()
    pick = {UTIME_NOW: now, UTIME_OMIT: None}
    await inode.setattr(atime=pick.get(atime, atime) if not isinstance(atime, tuple) else atime,
                        mtime=pick.get(mtime, mtime) if not isinstance(mtime, tuple) else mtime)
    # Linux's fsnotify_change: both times is a utime (IN_ATTRIB), one alone an access or a modify
    fsnotify.on_file(loc, IN_ATTRIB if UTIME_OMIT not in (atime, mtime)
                     else IN_MODIFY if atime == UTIME_OMIT else IN_ACCESS)
    return 0


def _timespec_times(t, ptr: int):
    if not ptr:
        return UTIME_NOW, UTIME_NOW
    a_sec, a_ns, m_sec, m_ns = TIMESPEC2.unpack(t.mem.read(ptr, TIMESPEC2.size))
    out = []
    for sec, ns in ((a_sec, a_ns), (m_sec, m_ns)):
        if ns in (UTIME_NOW, UTIME_OMIT):
            out.append(ns)
        elif 0 <= ns < 1_000_000_000:
            out.append((sec, ns))
        else:
            raise Errno(errno.EINVAL)
    return out


def _timeval_times(t, ptr: int):
    if not ptr:
        return UTIME_NOW, UTIME_NOW
    a_sec, a_us, m_sec, m_us = TIMEVAL2.unpack(t.mem.read(ptr, TIMEVAL2.size))
    if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
        raise Errno(errno.EINVAL)
    return (a_sec, a_us * 1000), (m_sec, m_us * 1000)


async def sys_utimensat(t, dirfd, path_ptr, times_ptr, flags, *_):
    atime, mtime = _timespec_times(t, times_ptr)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    if not path_ptr:                      # futimens
        loc = fd_loc(t, dirfd)
    else:
        loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                            empty_ok=bool(flags & AT_EMPTY_PATH))
    return await _set_times(t, loc, atime, mtime)


async def sys_futimesat(t, dirfd, path_ptr, times_ptr, *_):
    atime, mtime = _timeval_times(t, times_ptr)
    return await _set_times(t, await resolve(t, dirfd, path_ptr), atime, mtime)


async def sys_utimes(t, path_ptr, times_ptr, *_):
    return await sys_futimesat(t, AT_FDCWD, path_ptr, times_ptr)


async def sys_utime(t, path_ptr, buf_ptr, *_):
    times = (UTIME_NOW, UTIME_NOW)
    if buf_ptr:
        actime, modtime = UTIMBUF.unpack(t.mem.read(buf_ptr, UTIMBUF.size))
        times = ((actime, 0), (modtime, 0))
    return await _set_times(t, await resolve(t, AT_FDCWD, path_ptr), *times)


def sys_umask(t, mask, *_):
    old, t.umask = t.umask, mask & 0o777
    return old


async def sys_faccessat2(t, dirfd, path_ptr, mode, flags, *_):
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    real = t.cred
    if not flags & AT_EACCESS:      # the real ids, for the lookup too (override_creds)
        t.cred = access_cred(real)
    try:
        loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                            empty_ok=bool(flags & AT_EMPTY_PATH))
        kind = S.S_IFMT(loc.inode.mode)
        if mode & W_OK and kind in (S.S_IFREG, S.S_IFDIR, S.S_IFLNK):
            check_writable(loc)
        if mode and not permitted(loc.inode, t.cred, mode):
            raise Errno(errno.EACCES)
    finally:
        t.cred = real
    return 0


async def sys_faccessat(t, dirfd, path_ptr, mode, *_):
    return await sys_faccessat2(t, dirfd, path_ptr, mode, 0)


async def sys_access(t, path_ptr, mode, *_):
    return await sys_faccessat2(t, AT_FDCWD, path_ptr, mode, 0)


async def sys_getcwd(t, buf, size, *_):
    """The cwd's path as it is now, from the task's root; ENOENT once it is
    removed, and a cwd outside the root (left there by a chroot) is
    "(unreachable)" and its path from the VFS root, as Linux."""
    found = await t.kernel.vfs.current_path(t.cwd, t.root)
    if found is None:
        raise Errno(errno.ENOENT)
    path, reachable = found
    path = (path if reachable else b"(unreachable)" + path) + b"\0"
    if size < len(path):
        raise Errno(errno.ERANGE)
    t.mem.write(buf, path)
    return len(path)


async def _searchable_dir(t, path_ptr: int) -> Location:
    """The directory chdir and chroot name: ENOTDIR, then EACCES without search."""
    loc = await resolve(t, AT_FDCWD, path_ptr)
    if not S.S_ISDIR(loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    if not permitted(loc.inode, t.cred, X_OK):
        raise Errno(errno.EACCES)
    return loc


async def sys_chdir(t, path_ptr, *_):
    t.cwd = await _searchable_dir(t, path_ptr)
    return 0


async def sys_chroot(t, path_ptr, *_):
    """The root of the task and of the threads it shares its fs with
    (CLONE_FS) becomes the directory; the cwd stays, even outside it, as
    Linux leaves it (so a process holding a directory outside can fchdir
    there and climb out, as on Linux: chroot confines paths, not
    privilege).  Lookup errors and EACCES come before EPERM, as Linux's."""
    loc = await _searchable_dir(t, path_ptr)
    if not capable(t.cred, CAP_SYS_CHROOT):
        raise Errno(errno.EPERM)
    t.fs.root = loc
    return 0


def sys_fchdir(t, fd, *_):
    f = t.files.get(fd_arg(fd))
    if f.loc is None or not S.S_ISDIR(f.loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    t.cwd = f.loc
    return 0
