"""Extended attributes: get, set, list and remove, by path (following the
last symlink, or not: the l* calls), by fd (the f* calls), and by dirfd,
path and AT_* flags (the *xattrat calls of Linux 6.13, which take the
value, its size and the flags in a struct xattr_args).

What is read from the guest is read in Linux 6.13's order (fs/xattr.c):
the flags, the name (ERANGE when empty or longer than 255 bytes), the size
(E2BIG past 64 KiB) and the value, each once, before the file is looked
up; the rules are fs/xattr.py's, the storage each filesystem's."""
from __future__ import annotations

import errno
import struct

from services.kernel.abi.arch import PAGE
from services.kernel.abi.fcntl import AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, O_PATH
from services.kernel.abi.xattr import (
    XATTR_ARGS_SIZE_VER0, XATTR_CREATE, XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_REPLACE,
    XATTR_SIZE_MAX)
from services.kernel.core.errors import Errno
from services.kernel.fs import xattr
from services.kernel.fs.vfs import check_writable
from services.kernel.syscalls.paths import fd_arg, resolve

XATTR_ARGS = struct.Struct("<QII")        # value, size, flags


def _name(t, ptr: int) -> bytes:
    """import_xattr_name: ERANGE for an empty name or one with no NUL in
    its first 256 bytes."""
    try:
        name = t.mem.read_cstr(ptr, XATTR_NAME_MAX + 1)
    except Errno as exc:
        raise Errno(errno.ERANGE if exc.code == errno.ENAMETOOLONG else exc.code) from None
    if not name:
        raise Errno(errno.ERANGE)
    return name


def _of_fd(t, fd: int):
    """An fd's file: its mount (None for a pipe or an eventfd, which live in
    no mount) and inode; O_PATH fds are EBADF, as Linux's fdget."""
    f = t.files.get(fd_arg(fd))
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    return f.loc, f.inode


async def _of_path(t, path_ptr: int, follow: bool):
    loc = await resolve(t, AT_FDCWD, path_ptr, follow=follow)
    return loc, loc.inode


def _at_flags(at_flags: int) -> int:
    at_flags &= 0xFFFFFFFF                # an unsigned int
    if at_flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    return at_flags


async def _at(t, dirfd: int, path_ptr: int, at_flags: int):
    """The *xattrat calls' file: an empty (or NULL) path with AT_EMPTY_PATH
    is dirfd's file (getname_maybe_null), else the path from dirfd."""
    empty = at_flags & AT_EMPTY_PATH and (not path_ptr or not t.mem.read(path_ptr, 1)[0])
    if empty and fd_arg(dirfd) >= 0:
        return _of_fd(t, dirfd)
    loc = await resolve(t, dirfd, path_ptr, follow=not at_flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(empty))
    return loc, loc.inode


def _writable(target) -> None:
    loc, _ = target
    if loc is not None:
        check_writable(loc)       # mnt_want_write: EROFS before any other check


def _value_in(t, value_ptr: int, size: int) -> bytes:
    """setxattr_copy's last step, after the flags and the name."""
    if size > XATTR_SIZE_MAX:
        raise Errno(errno.E2BIG)
    return t.mem.read(value_ptr, size) if size else b""


def _check_flags(flags: int) -> int:
    flags &= 0xFFFFFFFF                   # an int
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise Errno(errno.EINVAL)
    return flags


def _out(t, data: bytes, ptr: int, size: int, limit: int) -> int:
    """A value or list to the guest: its length if size is 0, ERANGE if it
    does not fit (E2BIG if size already reached the limit)."""
    if size:
        if len(data) > min(size, limit):
            raise Errno(errno.E2BIG if size >= limit else errno.ERANGE)
        t.mem.write(ptr, data)
    return len(data)


async def _get(t, target, name: bytes, value_ptr: int, size: int) -> int:
    value = await xattr.value_of(target[1], name, t.cred)
    return _out(t, value, value_ptr, size, XATTR_SIZE_MAX)


async def _set(t, target, name: bytes, value: bytes, flags: int) -> int:
    _writable(target)
    await xattr.set_value(target[1], name, value, flags, t.cred)
    return 0


async def _list(t, target, list_ptr: int, size: int) -> int:
    names = await xattr.names(target[1], t.cred)
    return _out(t, b"".join(n + b"\0" for n in names), list_ptr, size, XATTR_LIST_MAX)


async def _remove(t, target, name: bytes) -> int:
    _writable(target)
    await xattr.remove(target[1], name, t.cred)
    return 0


# --- by path, by path without following, by fd --------------------------------------

async def sys_getxattr(t, path_ptr, name_ptr, value_ptr, size, *_):
    name = _name(t, name_ptr)
    return await _get(t, await _of_path(t, path_ptr, True), name, value_ptr, size)


async def sys_lgetxattr(t, path_ptr, name_ptr, value_ptr, size, *_):
    name = _name(t, name_ptr)
    return await _get(t, await _of_path(t, path_ptr, False), name, value_ptr, size)


async def sys_fgetxattr(t, fd, name_ptr, value_ptr, size, *_):
    target = _of_fd(t, fd)
    return await _get(t, target, _name(t, name_ptr), value_ptr, size)


async def sys_setxattr(t, path_ptr, name_ptr, value_ptr, size, flags, *_):
    flags = _check_flags(flags)
    name = _name(t, name_ptr)
    value = _value_in(t, value_ptr, size)
    return await _set(t, await _of_path(t, path_ptr, True), name, value, flags)


async def sys_lsetxattr(t, path_ptr, name_ptr, value_ptr, size, flags, *_):
    flags = _check_flags(flags)
    name = _name(t, name_ptr)
    value = _value_in(t, value_ptr, size)
    return await _set(t, await _of_path(t, path_ptr, False), name, value, flags)


async def sys_fsetxattr(t, fd, name_ptr, value_ptr, size, flags, *_):
    target = _of_fd(t, fd)
    flags = _check_flags(flags)
    name = _name(t, name_ptr)
    return await _set(t, target, name, _value_in(t, value_ptr, size), flags)


async def sys_listxattr(t, path_ptr, list_ptr, size, *_):
    return await _list(t, await _of_path(t, path_ptr, True), list_ptr, size)


async def sys_llistxattr(t, path_ptr, list_ptr, size, *_):
    return await _list(t, await _of_path(t, path_ptr, False), list_ptr, size)


async def sys_flistxattr(t, fd, list_ptr, size, *_):
    return await _list(t, _of_fd(t, fd), list_ptr, size)


async def sys_removexattr(t, path_ptr, name_ptr, *_):
    name = _name(t, name_ptr)
    return await _remove(t, await _of_path(t, path_ptr, True), name)


async def sys_lremovexattr(t, path_ptr, name_ptr, *_):
    name = _name(t, name_ptr)
    return await _remove(t, await _of_path(t, path_ptr, False), name)


async def sys_fremovexattr(t, fd, name_ptr, *_):
    target = _of_fd(t, fd)
    return await _remove(t, target, _name(t, name_ptr))


# --- the *xattrat calls (Linux 6.13) ---------------------------------------------------

def _xattr_args(t, args_ptr: int, usize: int) -> tuple[int, int, int]:
    """struct xattr_args as copy_struct_from_user takes it: at least its
    first version's 16 bytes, at most a page, anything past them zero."""
    if usize > PAGE:
        raise Errno(errno.E2BIG)
    if usize < XATTR_ARGS_SIZE_VER0:
        raise Errno(errno.EINVAL)
    raw = t.mem.read(args_ptr, usize)
    if any(raw[XATTR_ARGS.size:]):
        raise Errno(errno.E2BIG)
    return XATTR_ARGS.unpack_from(raw)


async def sys_setxattrat(t, dirfd, path_ptr, at_flags, name_ptr, args_ptr, usize):
    value_ptr, size, flags = _xattr_args(t, args_ptr, usize)
    at_flags = _at_flags(at_flags)
    flags = _check_flags(flags)
    name = _name(t, name_ptr)
    value = _value_in(t, value_ptr, size)
    return await _set(t, await _at(t, dirfd, path_ptr, at_flags), name, value, flags)


async def sys_getxattrat(t, dirfd, path_ptr, at_flags, name_ptr, args_ptr, usize):
    value_ptr, size, flags = _xattr_args(t, args_ptr, usize)
    at_flags = _at_flags(at_flags)
    if flags:
        raise Errno(errno.EINVAL)
    name = _name(t, name_ptr)
    return await _get(t, await _at(t, dirfd, path_ptr, at_flags), name, value_ptr, size)


async def sys_listxattrat(t, dirfd, path_ptr, at_flags, list_ptr, size, *_):
    at_flags = _at_flags(at_flags)
    return await _list(t, await _at(t, dirfd, path_ptr, at_flags), list_ptr, size)


async def sys_removexattrat(t, dirfd, path_ptr, at_flags, name_ptr, *_):
    at_flags = _at_flags(at_flags)
    name = _name(t, name_ptr)
    return await _remove(t, await _at(t, dirfd, path_ptr, at_flags), name)
