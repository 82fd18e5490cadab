"""Directories and links: mkdir, mknod, symlink, link, unlink, rmdir, rename."""
from __future__ import annotations

import errno
import os
import stat as S
import struct

from services.kernel.core.cred import capable
from services.kernel.abi.fcntl import (
    AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, RENAME_EXCHANGE, RENAME_NOREPLACE,
    W_OK)
from services.kernel.core.errors import Errno
from services.kernel.fs import fsnotify
from services.kernel.fs.vfs import check_writable, may_create, may_delete, new_owner, permitted
from services.kernel.syscalls.paths import SPECIAL_NAMES, fd_arg, new_name, resolve, resolve_parent
from services.kernel.abi.capability import CAP_MKNOD
from services.kernel.abi.inotify import IN_ACCESS


async def sys_getdents64(t, fd, dirp, count, *_):
    """count is an unsigned int that Linux keeps in an int: only its low 32
    bits count, and 2 GiB or more is too small for any entry (EINVAL)."""
    f = t.files.get(fd_arg(fd))
    data = await f.getdents(max(fd_arg(count), 0))
    if data:
        t.mem.write(dirp, data)
    fsnotify.on_file(f.loc, IN_ACCESS)
    return len(data)


_DIRENT64_HEAD = struct.Struct("<QqHB")


async def sys_getdents(t, fd, dirp, count, *_):
    """The old linux_dirent: the name, then d_type in the record's last
    byte.  Its records are as long as linux_dirent64's, so getdents64's are
    rewritten in place."""
    f = t.files.get(fd_arg(fd))
    data = await f.getdents(max(fd_arg(count), 0))
    out, at = bytearray(len(data)), 0
    while at < len(data):
        ino, off, reclen, dtype = _DIRENT64_HEAD.unpack_from(data, at)
        name = data[at + 19:at + reclen].partition(b"\0")[0]
        struct.pack_into("<QqH", out, at, ino, off, reclen)
        out[at + 18:at + 18 + len(name)] = name
        out[at + reclen - 1] = dtype
        at += reclen
    if out:
        t.mem.write(dirp, bytes(out))
    fsnotify.on_file(f.loc, IN_ACCESS)
    return len(out)


async def sys_readlinkat(t, dirfd, path_ptr, buf, size, *_):
    if fd_arg(size) <= 0:
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=False)
    if not S.S_ISLNK(loc.inode.mode):
        raise Errno(errno.EINVAL)
    target = (await loc.inode.readlink())[:size]
    t.mem.write(buf, target)
    return len(target)


async def sys_readlink(t, path_ptr, buf, size, *_):
    return await sys_readlinkat(t, AT_FDCWD, path_ptr, buf, size)


async def sys_mkdirat(t, dirfd, path_ptr, mode, *_):
    dir_loc, name = await new_name(t, dirfd, path_ptr, is_dir=True)
    may_create(dir_loc, t.cred)
    perm, uid, gid = new_owner(dir_loc.inode, t.cred, S.S_IFDIR | mode & ~t.umask & 0o1777)
    await dir_loc.inode.mkdir(name, perm & 0o7777, uid, gid)
    fsnotify.created(dir_loc.inode, name, True)
    return 0


async def sys_mkdir(t, path_ptr, mode, *_):
    return await sys_mkdirat(t, AT_FDCWD, path_ptr, mode)


async def sys_mknodat(t, dirfd, path_ptr, mode, dev, *_):
    mode &= 0xFFFFFFFF
    kind = S.S_IFMT(mode) or S.S_IFREG
    if kind == S.S_IFDIR:
        raise Errno(errno.EPERM)
    if kind not in (S.S_IFREG, S.S_IFCHR, S.S_IFBLK, S.S_IFIFO, S.S_IFSOCK):
        raise Errno(errno.EINVAL)
    dir_loc, name = await new_name(t, dirfd, path_ptr)
    may_create(dir_loc, t.cred)
    rdev = 0
    if kind in (S.S_IFCHR, S.S_IFBLK):
        if not capable(t.cred, CAP_MKNOD):
            raise Errno(errno.EPERM)
        dev &= 0xFFFFFFFF          # Linux's new_decode_dev of an unsigned int
        rdev = os.makedev((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))
    perm, uid, gid = new_owner(dir_loc.inode, t.cred, kind | mode & ~t.umask & 0o7777)
    await dir_loc.inode.create(name, perm, uid, gid, rdev)
    fsnotify.created(dir_loc.inode, name, False)
    return 0


async def sys_mknod(t, path_ptr, mode, dev, *_):
    return await sys_mknodat(t, AT_FDCWD, path_ptr, mode, dev)


async def sys_symlinkat(t, target_ptr, dirfd, path_ptr, *_):
    target = t.mem.read_cstr(target_ptr)
    if not target:
        raise Errno(errno.ENOENT)
    dir_loc, name = await new_name(t, dirfd, path_ptr)
    may_create(dir_loc, t.cred)
    _, uid, gid = new_owner(dir_loc.inode, t.cred, S.S_IFLNK | 0o777)
    await dir_loc.inode.symlink(name, target, uid, gid)
    fsnotify.created(dir_loc.inode, name, False)
    return 0


async def sys_symlink(t, target_ptr, path_ptr, *_):
    return await sys_symlinkat(t, target_ptr, AT_FDCWD, path_ptr)


async def sys_linkat(t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    src = await resolve(t, olddirfd, oldpath, follow=bool(flags & AT_SYMLINK_FOLLOW),
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    dir_loc, name = await new_name(t, newdirfd, newpath)
    if src.mount is not dir_loc.mount:
        raise Errno(errno.EXDEV)
    may_create(dir_loc, t.cred)
    if S.S_ISDIR(src.inode.mode):
        raise Errno(errno.EPERM)
    await dir_loc.inode.link(name, src.inode)
    fsnotify.linked(dir_loc.inode, name, src.inode)
    return 0


async def sys_link(t, oldpath, newpath, *_):
    return await sys_linkat(t, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


async def _remove(t, dirfd: int, path_ptr: int, isdir: bool) -> None:
    """unlink and rmdir, with Linux's errors for ".", ".." and "/", trailing
    slashes, sticky directories and mount points."""
    dir_loc, name, slash = await resolve_parent(t, dirfd, path_ptr)
    if name in SPECIAL_NAMES:
        raise Errno(errno.EISDIR if not isdir else {b".": errno.EINVAL, b"..": errno.ENOTEMPTY,
                                                     b"/": errno.EBUSY}[name])
    check_writable(dir_loc)
    victim = await dir_loc.inode.lookup(name)
    if victim is None:
        raise Errno(errno.ENOENT)
    if slash and not isdir:
        raise Errno(errno.EISDIR if S.S_ISDIR(victim.mode) else errno.ENOTDIR)
    may_delete(dir_loc, victim, t.cred, isdir)
    if isdir:
        if t.kernel.vfs.is_mountpoint(dir_loc, victim):
            raise Errno(errno.EBUSY)
        await dir_loc.inode.rmdir(name)
    else:
        await dir_loc.inode.unlink(name)
        t.kernel.pagecache.moved(dir_loc.mount.dev, [(dir_loc.child(name, victim).path, None)])
    fsnotify.removed(dir_loc.inode, name, victim)


async def sys_unlinkat(t, dirfd, path_ptr, flags, *_):
    if flags & ~AT_REMOVEDIR:
        raise Errno(errno.EINVAL)
    await _remove(t, dirfd, path_ptr, bool(flags & AT_REMOVEDIR))
    return 0


async def sys_unlink(t, path_ptr, *_):
    return await sys_unlinkat(t, AT_FDCWD, path_ptr, 0)


async def sys_rmdir(t, path_ptr, *_):
    return await sys_unlinkat(t, AT_FDCWD, path_ptr, AT_REMOVEDIR)


async def sys_renameat2(t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
        raise Errno(errno.EINVAL)     # no whiteouts: there is no overlayfs
    exchange = bool(flags & RENAME_EXCHANGE)
    vfs = t.kernel.vfs
    old_dir, old_name, old_slash = await resolve_parent(t, olddirfd, oldpath)
    new_dir, new_name, new_slash = await resolve_parent(t, newdirfd, newpath)
    if old_dir.mount is not new_dir.mount:
        raise Errno(errno.EXDEV)
    if old_name in SPECIAL_NAMES or new_name in SPECIAL_NAMES:
        raise Errno(errno.EBUSY)
    check_writable(old_dir)
    src = await old_dir.inode.lookup(old_name)
    if src is None:
        raise Errno(errno.ENOENT)
    dst = await new_dir.inode.lookup(new_name)
    if dst is not None and flags & RENAME_NOREPLACE:
        raise Errno(errno.EEXIST)
    if dst is None and exchange:
        raise Errno(errno.ENOENT)
    src_dir = S.S_ISDIR(src.mode)
    dst_dir = S.S_ISDIR(dst.mode) if dst is not None else src_dir
    if (old_slash and not src_dir) or (new_slash and not (dst_dir if exchange else src_dir)):
        raise Errno(errno.ENOTDIR)
    if src_dir and await vfs.is_ancestor(new_dir, src):
        raise Errno(errno.EINVAL)                  # a directory moved under itself
    if dst is not None and dst_dir and await vfs.is_ancestor(old_dir, dst):
        raise Errno(errno.EINVAL if exchange else errno.ENOTEMPTY)
    if src is dst:
        return 0
    may_delete(old_dir, src, t.cred, src_dir)
    if dst is None:
        may_create(new_dir, t.cred)
    else:
        may_delete(new_dir, dst, t.cred, dst_dir if exchange else src_dir)
    if new_dir.inode is not old_dir.inode:         # a moved directory's ".." changes
        for moved in (src, dst if exchange else None):
            if moved is not None and S.S_ISDIR(moved.mode) and not permitted(moved, t.cred, W_OK):
                raise Errno(errno.EACCES)
    if vfs.is_mountpoint(old_dir, src) or (dst is not None and vfs.is_mountpoint(new_dir, dst)):
        raise Errno(errno.EBUSY)
    await old_dir.inode.rename(old_name, new_dir.inode, new_name, flags)
    old, new = old_dir.child(old_name, src).path, new_dir.child(new_name, dst).path
    t.kernel.pagecache.moved(old_dir.mount.dev, [(old, new), (new, old)] if exchange
                             else [(old, new)] if dst is None else [(new, None), (old, new)])
    fsnotify.moved(old_dir.inode, old_name, new_dir.inode, new_name, src,
                   None if exchange else dst)
    if exchange:
        fsnotify.moved(new_dir.inode, new_name, old_dir.inode, old_name, dst)
    return 0


async def sys_renameat(t, olddirfd, oldpath, newdirfd, newpath, *_):
    return await sys_renameat2(t, olddirfd, oldpath, newdirfd, newpath, 0)


async def sys_rename(t, oldpath, newpath, *_):
    return await sys_renameat2(t, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)
