"""File system calls: open, read, write, stat, directories, links, cwd."""
from __future__ import annotations

import errno
import stat as S
import struct

from services.kernel.errors import Errno
from services.kernel.vfs import (
    O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_TRUNC,
    R_OK, W_OK, X_OK, InodeFile, Location, permitted)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
AT_EMPTY_PATH = 0x1000
MAX_RW = 0x7FFFF000            # Linux's MAX_RW_COUNT
CHUNK = 16 << 20               # larger reads are served in pieces of this
IOV_MAX = 1024
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
FD_CLOEXEC = 1
_IOVEC = struct.Struct("<QQ")


def _fd(x: int) -> int:
    """A file descriptor argument: the low 32 bits, signed, as Linux reads an int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


async def resolve(t, dirfd: int, path_ptr: int, *, follow: bool = True,
                  empty_ok: bool = False) -> Location:
    """The location a (dirfd, path) pair names."""
    path = t.mem.read_cstr(path_ptr)
    dirfd = _fd(dirfd)
    if not path:
        if not empty_ok:
            raise Errno(errno.ENOENT)
        if dirfd == AT_FDCWD:
            return t.cwd
        f = t.files.get(dirfd)
        if f.loc is None:
            raise Errno(errno.EBADF)
        return f.loc
    start = t.cwd
    if not path.startswith(b"/") and dirfd != AT_FDCWD:
        f = t.files.get(dirfd)
        if f.loc is None or not S.S_ISDIR(f.loc.inode.mode):
            raise Errno(errno.ENOTDIR)
        start = f.loc
    return await t.kernel.vfs.lookup(start, path, t.cred, follow=follow)


# --- open / close ------------------------------------------------------------

async def sys_openat(t, dirfd, path_ptr, flags, mode, *_):
    flags &= 0xFFFFFFFF
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & O_NOFOLLOW)
    inode = loc.inode
    if S.S_ISLNK(inode.mode) and not flags & O_PATH:
        raise Errno(errno.ELOOP)
    if flags & O_DIRECTORY and not S.S_ISDIR(inode.mode):
        raise Errno(errno.ENOTDIR)
    acc = flags & O_ACCMODE
    if not flags & O_PATH:
        if flags & (O_CREAT | O_TRUNC) or acc != 0:
            if S.S_ISDIR(inode.mode):
                raise Errno(errno.EISDIR)
            raise Errno(errno.EROFS)       # the root filesystem is read-only for now
        if not permitted(inode, t.cred, R_OK):
            raise Errno(errno.EACCES)
    f = InodeFile(loc, flags & ~(O_CREAT | O_TRUNC | O_CLOEXEC))
    return t.files.install(f, cloexec=bool(flags & O_CLOEXEC))


def sys_open(t, path_ptr, flags, mode, *_):
    return sys_openat(t, AT_FDCWD, path_ptr, flags, mode)


def sys_close(t, fd, *_):
    t.files.close(_fd(fd))
    return 0


# --- read / write -------------------------------------------------------------

def _readable(t, fd):
    f = t.files.get(_fd(fd))
    if not f.readable:
        raise Errno(errno.EBADF)
    return f


def _writable(t, fd):
    f = t.files.get(_fd(fd))
    if not f.writable:
        raise Errno(errno.EBADF)
    return f


async def _read_into(t, f, buf: int, count: int, offset: int | None) -> int:
    data = await f.read(min(count, MAX_RW, CHUNK), offset)
    if data:
        t.mem.write(buf, data)
    return len(data)


async def sys_read(t, fd, buf, count, *_):
    return await _read_into(t, _readable(t, fd), buf, count, None)


async def sys_pread64(t, fd, buf, count, offset, *_):
    if offset >= 1 << 63:
        raise Errno(errno.EINVAL)
    f = _readable(t, fd)
    f.seekable_size()   # ESPIPE for pipes and ttys
    return await _read_into(t, f, buf, count, offset)


async def sys_write(t, fd, buf, count, *_):
    f = _writable(t, fd)
    return await f.write(t.mem.read(buf, min(count, MAX_RW)))


def _iovecs(t, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if iovcnt > IOV_MAX:
        raise Errno(errno.EINVAL)
    if iovcnt == 0:
        return []
    raw = t.mem.read(iov, iovcnt * _IOVEC.size)
    vecs = list(_IOVEC.iter_unpack(raw))
    if sum(length for _, length in vecs) > MAX_RW or any(ln >= 1 << 63 for _, ln in vecs):
        raise Errno(errno.EINVAL)
    return vecs


async def sys_readv(t, fd, iov, iovcnt, *_):
    f = _readable(t, fd)
    total = 0
    for base, length in _iovecs(t, iov, iovcnt):
        n = await _read_into(t, f, base, length, None)
        total += n
        if n < length:
            break
    return total


async def sys_writev(t, fd, iov, iovcnt, *_):
    f = _writable(t, fd)
    data = b"".join(t.mem.read(base, length) for base, length in _iovecs(t, iov, iovcnt))
    return await f.write(data) if data else 0


def sys_lseek(t, fd, offset, whence, *_):
    f = t.files.get(_fd(fd))
    size = f.seekable_size()
    offset = offset - (1 << 64) if offset & (1 << 63) else offset
    if whence == SEEK_SET:
        pos = offset
    elif whence == SEEK_CUR:
        pos = f.pos + offset
    elif whence == SEEK_END:
        pos = size + offset
    else:
        raise Errno(errno.EINVAL)
    if pos < 0:
        raise Errno(errno.EINVAL)
    if S.S_ISDIR(f.loc.inode.mode):
        f.dirents = None if pos == 0 else f.dirents
    f.pos = pos
    return pos


# --- stat ------------------------------------------------------------------------

def sys_fstat(t, fd, statbuf, *_):
    t.mem.write(statbuf, t.files.get(_fd(fd)).stat())
    return 0


async def sys_newfstatat(t, dirfd, path_ptr, statbuf, flags, *_):
    if flags & AT_EMPTY_PATH and not t.mem.read_cstr(path_ptr) and _fd(dirfd) != AT_FDCWD:
        return sys_fstat(t, dirfd, statbuf)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    t.mem.write(statbuf, InodeFile(loc, 0).stat())
    return 0


async def sys_stat(t, path_ptr, statbuf, *_):
    return await sys_newfstatat(t, AT_FDCWD, path_ptr, statbuf, 0)


async def sys_lstat(t, path_ptr, statbuf, *_):
    return await sys_newfstatat(t, AT_FDCWD, path_ptr, statbuf, AT_SYMLINK_NOFOLLOW)


async def sys_statx(t, dirfd, path_ptr, flags, mask, buf, *_):
    if flags & AT_EMPTY_PATH and not t.mem.read_cstr(path_ptr) and _fd(dirfd) != AT_FDCWD:
        t.mem.write(buf, t.files.get(_fd(dirfd)).statx())
        return 0
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    t.mem.write(buf, InodeFile(loc, 0).statx())
    return 0


# --- directories and links ------------------------------------------------------------

async def sys_getdents64(t, fd, dirp, count, *_):
    data = await t.files.get(_fd(fd)).getdents(min(count, MAX_RW))
    if data:
        t.mem.write(dirp, data)
    return len(data)


async def sys_readlinkat(t, dirfd, path_ptr, buf, size, *_):
    if _fd(size) <= 0:
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=False)
    if not S.S_ISLNK(loc.inode.mode):
        raise Errno(errno.EINVAL)
    target = (await loc.inode.readlink())[:size]
    t.mem.write(buf, target)
    return len(target)


async def sys_readlink(t, path_ptr, buf, size, *_):
    return await sys_readlinkat(t, AT_FDCWD, path_ptr, buf, size)


async def sys_faccessat2(t, dirfd, path_ptr, mode, flags, *_):
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    loc = await resolve(t, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    if mode & W_OK:
        raise Errno(errno.EROFS)
    if mode and not permitted(loc.inode, t.cred, mode & (R_OK | X_OK)):
        raise Errno(errno.EACCES)
    return 0


async def sys_faccessat(t, dirfd, path_ptr, mode, *_):
    return await sys_faccessat2(t, dirfd, path_ptr, mode, 0)


async def sys_access(t, path_ptr, mode, *_):
    return await sys_faccessat2(t, AT_FDCWD, path_ptr, mode, 0)


def sys_getcwd(t, buf, size, *_):
    path = t.cwd.path + b"\0"
    if size < len(path):
        raise Errno(errno.ERANGE)
    t.mem.write(buf, path)
    return len(path)


async def sys_chdir(t, path_ptr, *_):
    loc = await resolve(t, AT_FDCWD, path_ptr)
    if not S.S_ISDIR(loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    if not permitted(loc.inode, t.cred, X_OK):
        raise Errno(errno.EACCES)
    t.cwd = loc
    return 0


def sys_fchdir(t, fd, *_):
    f = t.files.get(_fd(fd))
    if f.loc is None or not S.S_ISDIR(f.loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    t.cwd = f.loc
    return 0


# --- descriptors -----------------------------------------------------------------------

def sys_ioctl(t, fd, request, arg, *_):
    return t.files.get(_fd(fd)).ioctl(t, request & 0xFFFFFFFF, arg)


def sys_fcntl(t, fd, cmd, arg, *_):
    fd = _fd(fd)
    f = t.files.get(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        return t.files.install(f, cloexec=cmd == F_DUPFD_CLOEXEC, lowest=_fd(arg))
    if cmd == F_GETFD:
        return FD_CLOEXEC if t.files.fds[fd][1] else 0
    if cmd == F_SETFD:
        t.files.fds[fd] = (f, bool(arg & FD_CLOEXEC))
        return 0
    if cmd == F_GETFL:
        return f.flags
    if cmd == F_SETFL:
        changeable = O_APPEND | 0o4000 | 0o40000 | 0o1000000   # APPEND NONBLOCK DIRECT NOATIME
        f.flags = (f.flags & ~changeable) | (arg & changeable)
        return 0
    raise Errno(errno.EINVAL)


def sys_dup(t, fd, *_):
    return t.files.install(t.files.get(_fd(fd)))


def sys_dup3(t, oldfd, newfd, flags, *_):
    oldfd, newfd = _fd(oldfd), _fd(newfd)
    if flags & ~O_CLOEXEC or oldfd == newfd:
        raise Errno(errno.EINVAL)
    f = t.files.get(oldfd)
    if not 0 <= newfd < t.files.limit:
        raise Errno(errno.EBADF)
    t.files.fds[newfd] = (f, bool(flags & O_CLOEXEC))
    return newfd


def sys_dup2(t, oldfd, newfd, *_):
    if _fd(oldfd) == _fd(newfd):
        t.files.get(_fd(oldfd))
        return _fd(newfd)
    return sys_dup3(t, oldfd, newfd, 0)
