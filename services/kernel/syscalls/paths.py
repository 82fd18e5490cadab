"""What the file calls share: arguments decoded (fds, signed ints), the *at
calls' starting points, path lookup from guest memory, and their flags."""
from __future__ import annotations

import errno
import stat as S
import struct
import time as _time

from services.kernel.core.errors import Errno
from services.kernel.fs.vfs import Location, check_writable
from services.kernel.abi.fcntl import (
    AT_FDCWD, IOV_MAX, MAX_RW, O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, O_PATH)


O_PATH_KEEPS = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC   # what O_PATH leaves of the flags
RWF_SUPPORTED = 0x7            # HIPRI DSYNC SYNC: nothing to do for them
ST_VALID, ST_RELATIME = 0x20, 0x1000
READ_CHUNK = 16 << 20          # larger reads are served in pieces of this
IOVEC = struct.Struct("<QQ")
INT = struct.Struct("<i")       # an int argument read or written through a pointer
LOFF = struct.Struct("<q")      # a loff_t
STATFS = struct.Struct("<qqQQQQQiiqqq32x")
TIMESPEC2 = struct.Struct("<qqqq")
TIMEVAL2 = struct.Struct("<qqqq")
UTIMBUF = struct.Struct("<qq")


def fd_arg(x: int) -> int:
    """A file descriptor argument: the low 32 bits, signed, as Linux reads an int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def as_signed(x: int) -> int:
    """A 64-bit argument Linux reads as loff_t or long."""
    return x - (1 << 64) if x & (1 << 63) else x


def timestamp_now() -> tuple[int, int]:
    return divmod(_time.time_ns(), 1_000_000_000)


def start_of(t, dirfd: int, path: bytes) -> Location:
    """Where a relative path starts: the cwd, or the directory dirfd (an
    absolute one starts at the task's root: Vfs.lookup)."""
    if path.startswith(b"/") or dirfd == AT_FDCWD:
        return t.cwd
    f = t.files.get(dirfd)
    if f.loc is None or not S.S_ISDIR(f.loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    return f.loc


def fd_loc(t, fd: int) -> Location:
    """The location of an fd for calls that change it (fchmod ...): EBADF for
    O_PATH fds, as Linux's fdget."""
    f = t.files.get(fd_arg(fd))
    if f.loc is None or f.flags & O_PATH:
        raise Errno(errno.EBADF)
    return f.loc


async def resolve(t, dirfd: int, path_ptr: int, *, follow: bool = True,
                  empty_ok: bool = False) -> Location:
    """The location a (dirfd, path) pair names."""
    path = t.mem.read_cstr(path_ptr)
    dirfd = fd_arg(dirfd)
    if not path:
        if not empty_ok:
            raise Errno(errno.ENOENT)
        if dirfd == AT_FDCWD:
            return t.cwd
        f = t.files.get(dirfd)
        if f.loc is None:
            raise Errno(errno.EBADF)
        return f.loc
    return await t.kernel.vfs.lookup(start_of(t, dirfd, path), path, t.cred, t.root,
                                     follow=follow)


async def resolve_parent(t, dirfd: int, path_ptr: int) -> tuple[Location, bytes, bool]:
    """For a call that makes or removes a name: the directory, the last name
    (".", ".." or "/" when the path ends so) and whether the path ends in "/"."""
    path = t.mem.read_cstr(path_ptr)
    start = start_of(t, fd_arg(dirfd), path)
    dir_loc, name = await t.kernel.vfs.lookup_parent(start, path, t.cred, t.root)
    return dir_loc, name, path.endswith(b"/")


SPECIAL_NAMES = (b".", b"..", b"/")


async def new_name(t, dirfd: int, path_ptr: int, *, is_dir: bool = False) -> tuple[Location, bytes]:
    """The directory and name for a new inode, checked in Linux's order
    (filename_create): EEXIST, a trailing slash on a non-directory, EROFS."""
    dir_loc, name, slash = await resolve_parent(t, dirfd, path_ptr)
    if name in SPECIAL_NAMES or await dir_loc.inode.lookup(name) is not None:
        raise Errno(errno.EEXIST)
    if slash and not is_dir:
        raise Errno(errno.ENOENT)
    check_writable(dir_loc)
    return dir_loc, name


def gather(t, vecs: list[tuple[int, int]], skip: int, n: int) -> bytes:
    """n bytes of guest memory from skip bytes into the buffers vecs."""
    parts = []
    for base, length in vecs:
        if skip >= length:
            skip -= length
            continue
        take = min(length - skip, n)
        parts.append(t.mem.read(base + skip, take))
        n, skip = n - take, 0
        if not n:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def iovecs(t, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    """An iovec array from guest memory, read once: (base, length) pairs."""
    if iovcnt > IOV_MAX:
        raise Errno(errno.EINVAL)
    if iovcnt == 0:
        return []
    raw = t.mem.read(iov, iovcnt * IOVEC.size)
    vecs = list(IOVEC.iter_unpack(raw))
    if sum(length for _, length in vecs) > MAX_RW or any(ln >= 1 << 63 for _, ln in vecs):
        raise Errno(errno.EINVAL)
    return vecs


def scatter(t, vecs: list[tuple[int, int]], at: int, data: bytes) -> None:
    """data into the buffers vecs, from at bytes into them."""
    view = memoryview(data)
    for base, length in vecs:
        if not view:
            return
        if at >= length:
            at -= length
            continue
        piece = view[:length - at]
        t.mem.write(base + at, bytes(piece))
        view, at = view[len(piece):], 0
