"""File system calls: open, read, write, stat, directories, links, attributes, cwd."""
from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import os
import stat as S
import struct
import time as _time

from services.kernel import devices, signal
from services.kernel.cred import (CAP_CHOWN, CAP_FSETID, CAP_MKNOD, access_cred, capable,
                                  in_group, owner_or_capable)
from services.kernel.errors import Errno
from services.kernel.pipe import (
    F_GETPIPE_SZ, F_SETPIPE_SZ, O_DIRECT, PipeFile, open_fifo, pipe_fcntl)
from services.kernel.vfs import (
    MAXSYMLINKS, MS_RELATIME, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL,
    O_NOFOLLOW, O_NONBLOCK, O_PATH, O_TRUNC, R_OK, W_OK, WRITE_CHUNK, X_OK, InodeFile,
    Location, Mount, check_writable, may_create, may_delete, new_owner, pack_stat, pack_statx,
    permitted)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
O_NOCTTY, O_LARGEFILE, O_TMPFILE = 0o400, 0o100000, 0o20000000
O_PATH_KEEPS = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC   # what O_PATH leaves of the flags
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
RWF_SUPPORTED = 0x7            # HIPRI DSYNC SYNC: nothing to do for them
NO_ID = 0xFFFFFFFF             # chown's "leave it"
ST_VALID, ST_RELATIME = 0x20, 0x1000
MAX_RW = 0x7FFFF000            # Linux's MAX_RW_COUNT
CHUNK = 16 << 20               # larger reads are served in pieces of this
PIECE = 64 << 10               # what a device or an eventfd takes of a write at a time
IOV_MAX = 1024
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
_IOVEC = struct.Struct("<QQ")
_STATFS = struct.Struct("<qqQQQQQiiqqq32x")
_TIMESPEC2 = struct.Struct("<qqqq")
_TIMEVAL2 = struct.Struct("<qqqq")
_UTIMBUF = struct.Struct("<qq")


def _fd(x: int) -> int:
    """A file descriptor argument: the low 32 bits, signed, as Linux reads an int."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def _signed(x: int) -> int:
    """A 64-bit argument Linux reads as loff_t or long."""
    return x - (1 << 64) if x & (1 << 63) else x


def _now() -> tuple[int, int]:
    return divmod(_time.time_ns(), 1_000_000_000)


def _start(t, dirfd: int, path: bytes) -> Location:
    """Where a relative path starts: the cwd, or the directory dirfd."""
    if path.startswith(b"/") or dirfd == AT_FDCWD:
        return t.cwd
    f = t.files.get(dirfd)
    if f.loc is None or not S.S_ISDIR(f.loc.inode.mode):
        raise Errno(errno.ENOTDIR)
    return f.loc


def _fd_loc(t, fd: int) -> Location:
    """The location of an fd for calls that change it (fchmod ...): EBADF for
    O_PATH fds, as Linux's fdget."""
    f = t.files.get(_fd(fd))
    if f.loc is None or f.flags & O_PATH:
        raise Errno(errno.EBADF)
    return f.loc


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
    return await t.kernel.vfs.lookup(_start(t, dirfd, path), path, t.cred, follow=follow)


async def resolve_parent(t, dirfd: int, path_ptr: int) -> tuple[Location, bytes, bool]:
    """For a call that makes or removes a name: the directory, the last name
    (".", ".." or "/" when the path ends so) and whether the path ends in "/"."""
    path = t.mem.read_cstr(path_ptr)
    start = _start(t, _fd(dirfd), path)
    dir_loc, name = await t.kernel.vfs.lookup_parent(start, path, t.cred)
    return dir_loc, name, path.endswith(b"/")


SPECIAL_NAMES = (b".", b"..", b"/")


async def _new_name(t, dirfd: int, path_ptr: int, *, is_dir: bool = False) -> tuple[Location, bytes]:
    """The directory and name for a new inode, checked in Linux's order
    (filename_create): EEXIST, a trailing slash on a non-directory, EROFS."""
    dir_loc, name, slash = await resolve_parent(t, dirfd, path_ptr)
    if name in SPECIAL_NAMES or await dir_loc.inode.lookup(name) is not None:
        raise Errno(errno.EEXIST)
    if slash and not is_dir:
        raise Errno(errno.ENOENT)
    check_writable(dir_loc)
    return dir_loc, name


# --- open / close ------------------------------------------------------------

async def _open_create(t, dirfd: int, path_ptr: int, flags: int, mode: int) -> tuple[Location, bool]:
    """O_CREAT: the file at path and whether it was made now.  A dangling
    symlink is followed and the file made where it points, as Linux does."""
    vfs = t.kernel.vfs
    path = t.mem.read_cstr(path_ptr)
    start = _start(t, _fd(dirfd), path)
    links = [0]
    while True:
        dir_loc, name = await vfs.lookup_parent(start, path, t.cred, _depth=links)
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


def open_file(t, loc: Location, flags: int):
    """The open file for an inode: its driver for a character device."""
    mode = loc.inode.mode
    if flags & O_PATH or S.S_ISREG(mode) or S.S_ISDIR(mode):
        return InodeFile(loc, flags)
    if S.S_ISCHR(mode):
        return devices.open_char(t, loc, flags)
    raise Errno(errno.ENXIO)      # block devices, and sockets until there are sockets


async def _truncate(inode, size: int, touch: bool) -> None:
    """Set the size; ftruncate and O_TRUNC also stamp mtime and ctime when it
    does not change."""
    await inode.truncate(size)
    if touch:
        await inode.setattr(mtime=_now())


async def sys_openat(t, dirfd, path_ptr, flags, mode, *_):
    flags &= 0xFFFFFFFF
    if flags & O_PATH:
        flags &= O_PATH_KEEPS
    if flags & O_TMPFILE:
        raise Errno(errno.EOPNOTSUPP)
    created = False
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
                await _truncate(inode, 0, True)
    flags = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC) | O_LARGEFILE
    if S.S_ISFIFO(inode.mode) and not flags & O_PATH:
        f = await open_fifo(loc, flags & ~O_CLOEXEC)
    else:
        f = open_file(t, loc, flags & ~O_CLOEXEC)
    try:
        return t.files.install(f, cloexec=bool(flags & O_CLOEXEC))
    except Errno:
        f.release()
        raise


def sys_open(t, path_ptr, flags, mode, *_):
    return sys_openat(t, AT_FDCWD, path_ptr, flags, mode)


def sys_creat(t, path_ptr, mode, *_):
    return sys_openat(t, AT_FDCWD, path_ptr, O_CREAT | 1 | O_TRUNC, mode)


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


def _position(f, offset: int) -> int:
    """An explicit file offset (pread, pwrite ...): EINVAL if negative, ESPIPE
    on pipes and ttys."""
    if offset >= 1 << 63:
        raise Errno(errno.EINVAL)
    f.seekable_size()
    return offset


async def _read_into(t, f, buf: int, count: int, offset: int | None) -> int:
    data = await f.read(min(count, MAX_RW, CHUNK), offset)
    if data:
        t.mem.write(buf, data)
    return len(data)


async def sys_read(t, fd, buf, count, *_):
    return await _read_into(t, _readable(t, fd), buf, count, None)


async def sys_pread64(t, fd, buf, count, offset, *_):
    f = _readable(t, fd)
    return await _read_into(t, f, buf, count, _position(f, offset))


def _gather(t, vecs: list[tuple[int, int]], skip: int, n: int) -> bytes:
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


async def _write_pieces(f, read, total: int, offset: int | None) -> int:
    """A write to a file with no ``write_from`` of its own (a device, an
    eventfd), PIECE at a time with the loop let go in between, so that a
    blocked writer holds at most a piece: a short or failed piece, or a
    signal, after some bytes ends it with their count."""
    done = 0
    while True:
        want = min(PIECE, total - done)
        try:
            n = await f.write(read(done, want), None if offset is None else offset + done)
            done += n
            if done == total or n < want:
                return done
            await asyncio.sleep(0)
        except (Errno, asyncio.CancelledError):
            if not done:
                raise
            return done


async def _write_guest(t, f, vecs: list[tuple[int, int]], offset: int | None) -> int:
    """A write from guest memory, read a bounded chunk at a time as it goes
    in (regular files, pipes and the console by their ``write_from``, others
    by ``_write_pieces``), so a 1 GiB write never sits in the kernel whole.
    A write with no reader left is EPIPE and SIGPIPE, as on Linux."""
    total = sum(length for _, length in vecs)
    read = functools.partial(_gather, t, vecs)
    try:
        if total <= WRITE_CHUNK and type(f) is InodeFile:    # most writes: in one piece
            return await f.write(read(0, total), offset)
        if hasattr(f, "write_from"):
            return await f.write_from(read, total, offset)
        return await _write_pieces(f, read, total, offset)
    except Errno as e:
        if e.code == errno.EPIPE:
            signal.send_task(t, signal.SIGPIPE)
        raise


async def sys_write(t, fd, buf, count, *_):
    return await _write_guest(t, _writable(t, fd), [(buf, min(count, MAX_RW))], None)


async def sys_pwrite64(t, fd, buf, count, offset, *_):
    f = _writable(t, fd)
    return await _write_guest(t, f, [(buf, min(count, MAX_RW))], _position(f, offset))


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


async def _readv(t, f, iov: int, iovcnt: int, offset: int | None) -> int:
    """One read of the total, scattered over the buffers: a pipe holding just
    the first buffer's worth returns it, as on Linux, instead of blocking."""
    vecs = _iovecs(t, iov, iovcnt)
    want = sum(length for _, length in vecs)
    if not want:
        return 0
    data = await f.read(min(want, CHUNK), offset)
    at = 0
    for base, length in vecs:
        if at >= len(data):
            break
        t.mem.write(base, data[at:at + length])
        at += length
    return len(data)


async def _writev(t, f, iov: int, iovcnt: int, offset: int | None) -> int:
    vecs = [(base, length) for base, length in _iovecs(t, iov, iovcnt) if length]
    return await _write_guest(t, f, vecs, offset) if vecs else 0


async def sys_readv(t, fd, iov, iovcnt, *_):
    return await _readv(t, _readable(t, fd), iov, iovcnt, None)


async def sys_writev(t, fd, iov, iovcnt, *_):
    return await _writev(t, _writable(t, fd), iov, iovcnt, None)


async def sys_preadv(t, fd, iov, iovcnt, pos, *_):
    f = _readable(t, fd)
    return await _readv(t, f, iov, iovcnt, _position(f, pos))


async def sys_pwritev(t, fd, iov, iovcnt, pos, *_):
    f = _writable(t, fd)
    return await _writev(t, f, iov, iovcnt, _position(f, pos))


async def sys_preadv2(t, fd, iov, iovcnt, pos, _pos_h, flags):
    """pos -1 means the file position, as readv."""
    if flags & ~RWF_SUPPORTED:
        raise Errno(errno.EOPNOTSUPP)
    f = _readable(t, fd)
    offset = None if _signed(pos) == -1 else _position(f, pos)
    return await _readv(t, f, iov, iovcnt, offset)


async def sys_pwritev2(t, fd, iov, iovcnt, pos, _pos_h, flags):
    if flags & ~RWF_SUPPORTED:
        raise Errno(errno.EOPNOTSUPP)
    f = _writable(t, fd)
    offset = None if _signed(pos) == -1 else _position(f, pos)
    return await _writev(t, f, iov, iovcnt, offset)


def sys_lseek(t, fd, offset, whence, *_):
    f = t.files.get(_fd(fd))
    size = f.seekable_size()
    offset = _signed(offset)
    if whence == SEEK_SET:
        pos = offset
    elif whence == SEEK_CUR:
        pos = f.pos + offset
    elif whence == SEEK_END:
        pos = size + offset
    else:
        raise Errno(errno.EINVAL)
    if not 0 <= pos < 1 << 63:        # past loff_t: EINVAL, as vfs_setpos
        raise Errno(errno.EINVAL)
    f.pos = pos
    return pos


async def sys_truncate(t, path_ptr, length, *_):
    if _signed(length) < 0:
        raise Errno(errno.EINVAL)
    loc = await resolve(t, AT_FDCWD, path_ptr)
    if S.S_ISDIR(loc.inode.mode):
        raise Errno(errno.EISDIR)
    if not S.S_ISREG(loc.inode.mode):
        raise Errno(errno.EINVAL)
    check_writable(loc)
    if not permitted(loc.inode, t.cred, W_OK):
        raise Errno(errno.EACCES)
    await _truncate(loc.inode, length, False)
    return 0


async def sys_ftruncate(t, fd, length, *_):
    if _signed(length) < 0:
        raise Errno(errno.EINVAL)
    f = t.files.get(_fd(fd))
    if f.loc is None or not S.S_ISREG(f.loc.inode.mode) or not f.writable:
        raise Errno(errno.EINVAL)
    await _truncate(f.loc.inode, length, True)
    return 0


async def sys_fallocate(t, fd, mode, offset, length, *_):
    """Mode 0 only, on filesystems that can (ext2): others, and the other
    modes, are EOPNOTSUPP, which makes glibc's posix_fallocate write zeros."""
    offset, length = _signed(offset), _signed(length)
    if offset < 0 or length <= 0:
        raise Errno(errno.EINVAL)
    f = t.files.get(_fd(fd))
    if not f.writable:
        raise Errno(errno.EBADF)
    if f.loc is None:
        raise Errno(errno.ESPIPE if isinstance(f, PipeFile) else errno.ENODEV)
    inode = f.loc.inode
    if S.S_ISDIR(inode.mode):
        raise Errno(errno.EISDIR)
    if not S.S_ISREG(inode.mode):
        raise Errno(errno.ENODEV)
    if mode & 0xFFFFFFFF or not hasattr(inode, "allocate"):
        raise Errno(errno.EOPNOTSUPP)
    await inode.allocate(offset, length)
    return 0


async def sys_fsync(t, fd, *_):
    f = t.files.get(_fd(fd))
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    result = f.fsync()
    return await result if inspect.isawaitable(result) else result


async def _sync(fs) -> None:
    """A filesystem that writes back (a writable ext2) to its disk, ending
    with a FLUSH; others have nothing to write."""
    if getattr(fs, "writable", False) and hasattr(fs, "sync"):
        await fs.sync()


async def sync_all(vfs) -> None:
    for m in list(vfs.mounts):
        await _sync(m.fs)


async def unmount_all(vfs) -> None:
    """At halt, when no file is open any more: each writable filesystem's
    last write-back (ext2 frees unlinked files that were still open then)."""
    for m in list(vfs.mounts):
        if getattr(m.fs, "writable", False) and hasattr(m.fs, "unmount"):
            await m.fs.unmount()
        else:
            await _sync(m.fs)


async def sys_sync(t, *_):
    await sync_all(t.kernel.vfs)
    return 0


async def sys_syncfs(t, fd, *_):
    f = t.files.get(_fd(fd))
    if f.loc is not None:
        await _sync(f.loc.mount.fs)
    return 0


# --- stat ------------------------------------------------------------------------

def sys_fstat(t, fd, statbuf, *_):
    t.mem.write(statbuf, t.files.get(_fd(fd)).stat())
    return 0


async def sys_newfstatat(t, dirfd, path_ptr, statbuf, flags, *_):
    if flags & AT_EMPTY_PATH and not t.mem.read_cstr(path_ptr) and _fd(dirfd) != AT_FDCWD:
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
    if flags & AT_EMPTY_PATH and not t.mem.read_cstr(path_ptr) and _fd(dirfd) != AT_FDCWD:
        t.mem.write(buf, t.files.get(_fd(dirfd)).statx())
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
    return _STATFS.pack(s["magic"], s["bsize"], s["blocks"], s["bfree"], s["bavail"],
                        s["files"], s["ffree"], os.minor(m.dev), os.major(m.dev),
                        s["namelen"], s["frsize"], flags)


async def sys_statfs(t, path_ptr, buf, *_):
    loc = await resolve(t, AT_FDCWD, path_ptr)
    t.mem.write(buf, pack_statfs(loc.mount))
    return 0


def sys_fstatfs(t, fd, buf, *_):
    f = t.files.get(_fd(fd))
    if f.loc is None:
        raise Errno(errno.EINVAL)      # pipes and the boot console have no filesystem yet
    t.mem.write(buf, pack_statfs(f.loc.mount))
    return 0


# --- directories and links ------------------------------------------------------------

async def sys_getdents64(t, fd, dirp, count, *_):
    """count is an unsigned int that Linux keeps in an int: only its low 32
    bits count, and 2 GiB or more is too small for any entry (EINVAL)."""
    data = await t.files.get(_fd(fd)).getdents(max(_fd(count), 0))
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


async def sys_mkdirat(t, dirfd, path_ptr, mode, *_):
    dir_loc, name = await _new_name(t, dirfd, path_ptr, is_dir=True)
    may_create(dir_loc, t.cred)
    perm, uid, gid = new_owner(dir_loc.inode, t.cred, S.S_IFDIR | mode & ~t.umask & 0o1777)
    await dir_loc.inode.mkdir(name, perm & 0o7777, uid, gid)
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
    dir_loc, name = await _new_name(t, dirfd, path_ptr)
    may_create(dir_loc, t.cred)
    rdev = 0
    if kind in (S.S_IFCHR, S.S_IFBLK):
        if not capable(t.cred, CAP_MKNOD):
            raise Errno(errno.EPERM)
        dev &= 0xFFFFFFFF          # Linux's new_decode_dev of an unsigned int
        rdev = os.makedev((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00))
    perm, uid, gid = new_owner(dir_loc.inode, t.cred, kind | mode & ~t.umask & 0o7777)
    await dir_loc.inode.create(name, perm, uid, gid, rdev)
    return 0


async def sys_mknod(t, path_ptr, mode, dev, *_):
    return await sys_mknodat(t, AT_FDCWD, path_ptr, mode, dev)


async def sys_symlinkat(t, target_ptr, dirfd, path_ptr, *_):
    target = t.mem.read_cstr(target_ptr)
    if not target:
        raise Errno(errno.ENOENT)
    dir_loc, name = await _new_name(t, dirfd, path_ptr)
    may_create(dir_loc, t.cred)
    _, uid, gid = new_owner(dir_loc.inode, t.cred, S.S_IFLNK | 0o777)
    await dir_loc.inode.symlink(name, target, uid, gid)
    return 0


async def sys_symlink(t, target_ptr, path_ptr, *_):
    return await sys_symlinkat(t, target_ptr, AT_FDCWD, path_ptr)


async def sys_linkat(t, olddirfd, oldpath, newdirfd, newpath, flags, *_):
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    src = await resolve(t, olddirfd, oldpath, follow=bool(flags & AT_SYMLINK_FOLLOW),
                        empty_ok=bool(flags & AT_EMPTY_PATH))
    dir_loc, name = await _new_name(t, newdirfd, newpath)
    if src.mount is not dir_loc.mount:
        raise Errno(errno.EXDEV)
    may_create(dir_loc, t.cred)
    if S.S_ISDIR(src.inode.mode):
        raise Errno(errno.EPERM)
    await dir_loc.inode.link(name, src.inode)
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
    return 0


async def sys_renameat(t, olddirfd, oldpath, newdirfd, newpath, *_):
    return await sys_renameat2(t, olddirfd, oldpath, newdirfd, newpath, 0)


async def sys_rename(t, oldpath, newpath, *_):
    return await sys_renameat2(t, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


# --- attributes -------------------------------------------------------------------------

async def _chmod(t, loc: Location, mode: int) -> int:
    check_writable(loc)
    inode = loc.inode
    if not owner_or_capable(t.cred, inode):
        raise Errno(errno.EPERM)
    mode &= 0o7777
    if not in_group(t.cred, inode.gid) and not capable(t.cred, CAP_FSETID):
        mode &= ~S.S_ISGID            # as Linux: only a member may set the group's bit
    await inode.setattr(mode=mode)
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
    return await _chmod(t, _fd_loc(t, fd), mode)


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
        kill = inode.mode & S.S_ISUID
        if inode.mode & S.S_IXGRP or not (in_group(cred, inode.gid)
                                          or capable(cred, CAP_FSETID)):
            kill |= inode.mode & S.S_ISGID
        if kill and not owner_or_capable(cred, inode):
            raise Errno(errno.EPERM)
        if kill:
            mode = inode.mode & ~kill & 0o7777
    await inode.setattr(mode=mode, uid=None if uid == NO_ID else uid,
                        gid=None if gid == NO_ID else gid)
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
    return await _chown(t, _fd_loc(t, fd), uid, gid)


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
    now = _now()
    pick = {UTIME_NOW: now, UTIME_OMIT: None}
    await inode.setattr(atime=pick.get(atime, atime) if not isinstance(atime, tuple) else atime,
                        mtime=pick.get(mtime, mtime) if not isinstance(mtime, tuple) else mtime)
    return 0


def _timespec_times(t, ptr: int):
    if not ptr:
        return UTIME_NOW, UTIME_NOW
    a_sec, a_ns, m_sec, m_ns = _TIMESPEC2.unpack(t.mem.read(ptr, _TIMESPEC2.size))
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
    a_sec, a_us, m_sec, m_us = _TIMEVAL2.unpack(t.mem.read(ptr, _TIMEVAL2.size))
    if not (0 <= a_us < 1_000_000 and 0 <= m_us < 1_000_000):
        raise Errno(errno.EINVAL)
    return (a_sec, a_us * 1000), (m_sec, m_us * 1000)


async def sys_utimensat(t, dirfd, path_ptr, times_ptr, flags, *_):
    atime, mtime = _timespec_times(t, times_ptr)
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        raise Errno(errno.EINVAL)
    if not path_ptr:                      # futimens
        loc = _fd_loc(t, dirfd)
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
        actime, modtime = _UTIMBUF.unpack(t.mem.read(buf_ptr, _UTIMBUF.size))
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
    """The cwd's path as it is now; ENOENT once it is removed, as Linux."""
    path = await t.kernel.vfs.current_path(t.cwd)
    if path is None:
        raise Errno(errno.ENOENT)
    path += b"\0"
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

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
FD_CLOEXEC = 1
O_NOATIME = 0o1000000
SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


def sys_ioctl(t, fd, request, arg, *_):
    return t.files.get(_fd(fd)).ioctl(t, request & 0xFFFFFFFF, arg)


def _setfl(t, f, arg: int) -> None:
    if arg & O_NOATIME and not f.flags & O_NOATIME and f.loc is not None \
            and not owner_or_capable(t.cred, f.loc.inode):
        raise Errno(errno.EPERM)
    if arg & O_DIRECT and not (isinstance(f, InodeFile) and S.S_ISREG(f.loc.inode.mode)):
        raise Errno(errno.EINVAL)        # pipes' packet mode is not implemented
    f.flags = (f.flags & ~SETFL_MASK) | (arg & SETFL_MASK)


def sys_fcntl(t, fd, cmd, arg, *_):
    fd, cmd = _fd(fd), cmd & 0xFFFFFFFF
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
        _setfl(t, f, arg)
        return 0
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        return pipe_fcntl(t, f, cmd, arg)
    raise Errno(errno.EINVAL)            # locks, owners and signals, leases, seals


def sys_dup(t, fd, *_):
    return t.files.install(t.files.get(_fd(fd)))


def sys_dup3(t, oldfd, newfd, flags, *_):
    oldfd, newfd = _fd(oldfd), _fd(newfd)
    if flags & 0xFFFFFFFF & ~O_CLOEXEC or oldfd == newfd:
        raise Errno(errno.EINVAL)
    return t.files.dup_to(t.files.get(oldfd), newfd, bool(flags & O_CLOEXEC))


def sys_dup2(t, oldfd, newfd, *_):
    if _fd(oldfd) == _fd(newfd):
        t.files.get(_fd(oldfd))
        return _fd(newfd)
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
