"""read and write in all their forms, lseek, fallocate and the syncs."""
from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import stat as S

from services.kernel.sched import signals
from services.kernel.abi.signal import SIGPIPE
from services.kernel.core.errors import Errno
from services.kernel.fs import fsnotify
from services.kernel.fs.pipe import (
    PipeFile)
from services.kernel.net.unix import SocketFile
from services.kernel.fs.vfs import (
    WRITE_CHUNK, InodeFile, check_writable, data_of, permitted, remove_privs)
from services.kernel.syscalls.open_close import truncate_inode
from services.kernel.syscalls.socket import write_socket
from services.kernel.syscalls.paths import (
    READ_CHUNK, RWF_SUPPORTED, as_signed, fd_arg, gather, iovecs, resolve)
from services.kernel.abi.fcntl import (
    AT_FDCWD, MAX_RW, O_PATH, SEEK_CUR, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET,
    SYNC_FILE_RANGE_WAIT_AFTER, SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE, W_OK)
from services.kernel.abi.inotify import IN_ACCESS, IN_MODIFY


def _readable(t, fd):
    f = t.files.get(fd_arg(fd))
    if not f.readable:
        raise Errno(errno.EBADF)
    return f


def _writable(t, fd):
    f = t.files.get(fd_arg(fd))
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


def _accessed(f, n: int) -> int:
    """n bytes were read from f (inotify's IN_ACCESS)."""
    if n and f.loc is not None:
        fsnotify.on_file(f.loc, IN_ACCESS)
    return n


async def _read_into(t, f, buf: int, count: int, offset: int | None) -> int:
    count = min(count, MAX_RW, READ_CHUNK)
    if type(f) is InodeFile and f.cached_reads:
        return _accessed(f, await f.read_into(t.mem, buf, count, offset))
    data = await f.read(count, offset)
    if data:
        t.mem.write(buf, data)
    return _accessed(f, len(data))


async def sys_read(t, fd, buf, count, *_):
    return await _read_into(t, _readable(t, fd), buf, count, None)


async def sys_pread64(t, fd, buf, count, offset, *_):
    f = _readable(t, fd)
    return await _read_into(t, f, buf, count, _position(f, offset))


async def _write_guest(t, f, vecs: list[tuple[int, int]], offset: int | None) -> int:
    """A write from guest memory, read a bounded chunk at a time as it goes
    in (regular files, pipes and the console by their ``write_from``, others
    by OpenFile's, a piece at a time), so a 1 GiB write never sits in the kernel whole.
    A write with no reader left is EPIPE and SIGPIPE, as on Linux (a
    socket's is a send, which knows when it signals)."""
    if isinstance(f, SocketFile):
        return await write_socket(t, f, vecs)
    total = vecs[0][1] if len(vecs) == 1 else sum(length for _, length in vecs)
    read = functools.partial(gather, t, vecs)
    if total and isinstance(f, InodeFile) and f.loc.inode.mode & (S.S_ISUID | S.S_ISGID):
        await remove_privs(f.loc.inode, t.cred)     # (a set-ID bit is rare: no await without)
    try:
        if total <= WRITE_CHUNK and type(f) is InodeFile:    # most writes: in one piece
            n = await f.write(read(0, total), offset)
        else:
            n = await f.write_from(read, total, offset)
    except Errno as e:
        if e.code == errno.EPIPE:
            signals.send_task(t, SIGPIPE)
        raise
    if n and f.loc is not None:
        fsnotify.on_file(f.loc, IN_MODIFY)
    return n


async def sys_write(t, fd, buf, count, *_):
    return await _write_guest(t, _writable(t, fd), [(buf, min(count, MAX_RW))], None)


async def sys_pwrite64(t, fd, buf, count, offset, *_):
    f = _writable(t, fd)
    return await _write_guest(t, f, [(buf, min(count, MAX_RW))], _position(f, offset))


async def _readv(t, f, iov: int, iovcnt: int, offset: int | None) -> int:
    """One read of the total, scattered over the buffers: a pipe holding just
    the first buffer's worth returns it, as on Linux, instead of blocking."""
    vecs = iovecs(t, iov, iovcnt)
    want = sum(length for _, length in vecs)
    if not want:
        return 0
    data = await f.read(min(want, READ_CHUNK), offset)
    at = 0
    for base, length in vecs:
        if at >= len(data):
            break
        t.mem.write(base, data[at:at + length])
        at += length
    return _accessed(f, len(data))


async def _writev(t, f, iov: int, iovcnt: int, offset: int | None) -> int:
    vecs = [(base, length) for base, length in iovecs(t, iov, iovcnt) if length]
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
    offset = None if as_signed(pos) == -1 else _position(f, pos)
    return await _readv(t, f, iov, iovcnt, offset)


async def sys_pwritev2(t, fd, iov, iovcnt, pos, _pos_h, flags):
    if flags & ~RWF_SUPPORTED:
        raise Errno(errno.EOPNOTSUPP)
    f = _writable(t, fd)
    offset = None if as_signed(pos) == -1 else _position(f, pos)
    return await _writev(t, f, iov, iovcnt, offset)


def sys_lseek(t, fd, offset, whence, *_):
    f = t.files.get(fd_arg(fd))
    size = f.seekable_size()
    offset = as_signed(offset)
    if whence == SEEK_SET:
        pos = offset
    elif whence == SEEK_CUR:
        pos = f.pos + offset
    elif whence == SEEK_END:
        pos = size + offset
    elif whence in (SEEK_DATA, SEEK_HOLE):
        # generic_file_llseek_size: the file is data to its end, one hole there
        if not 0 <= offset < size:
            raise Errno(errno.ENXIO)
        pos = offset if whence == SEEK_DATA else size
    else:
        raise Errno(errno.EINVAL)
    if not 0 <= pos < 1 << 63:        # past loff_t: EINVAL, as vfs_setpos
        raise Errno(errno.EINVAL)
    f.pos = pos
    return pos


async def sys_truncate(t, path_ptr, length, *_):
    if as_signed(length) < 0:
        raise Errno(errno.EINVAL)
    loc = await resolve(t, AT_FDCWD, path_ptr)
    if S.S_ISDIR(loc.inode.mode):
        raise Errno(errno.EISDIR)
    if not S.S_ISREG(loc.inode.mode):
        raise Errno(errno.EINVAL)
    check_writable(loc)
    if not permitted(loc.inode, t.cred, W_OK):
        raise Errno(errno.EACCES)
    await truncate_inode(t, loc.inode, length, False)
    fsnotify.on_file(loc, IN_MODIFY)
    return 0


async def sys_ftruncate(t, fd, length, *_):
    if as_signed(length) < 0:
        raise Errno(errno.EINVAL)
    f = t.files.get(fd_arg(fd))
    if f.loc is None or not S.S_ISREG(f.loc.inode.mode) or not f.writable:
        raise Errno(errno.EINVAL)
    await truncate_inode(t, f.loc.inode, length, True)
    fsnotify.on_file(f.loc, IN_MODIFY)
    return 0


async def sys_fallocate(t, fd, mode, offset, length, *_):
    """Mode 0 only, on filesystems that can (ext2): others, and the other
    modes, are EOPNOTSUPP, which makes glibc's posix_fallocate write zeros."""
    offset, length = as_signed(offset), as_signed(length)
    if offset < 0 or length <= 0:
        raise Errno(errno.EINVAL)
    f = t.files.get(fd_arg(fd))
    if not f.writable:
        raise Errno(errno.EBADF)
    if f.loc is None:
        raise Errno(errno.ESPIPE if isinstance(f, PipeFile) else errno.ENODEV)
    inode = f.loc.inode
    if S.S_ISDIR(inode.mode):
        raise Errno(errno.EISDIR)
    if not S.S_ISREG(inode.mode):
        raise Errno(errno.ENODEV)
    if mode & 0xFFFFFFFF:
        raise Errno(errno.EOPNOTSUPP)
    await remove_privs(inode, t.cred)        # file_modified, as ext4's fallocate
    await data_of(inode).allocate(offset, length)
    fsnotify.on_file(f.loc, IN_MODIFY)
    return 0


async def sys_fsync(t, fd, *_):
    f = t.files.get(fd_arg(fd))
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    result = f.fsync()
    return await result if inspect.isawaitable(result) else result


async def sys_sync_file_range(t, fd, offset, nbytes, flags, *_):
    """Linux's checks; WRITE alone (start write-back: dpkg's hint for each
    file it unpacks) has nothing to do, as the kernel's writes go to ubd_io
    as they come; a wait after is the file's fsync (more than Linux's: the
    metadata and a FLUSH too)."""
    f = t.files.get(fd_arg(fd))
    offset, nbytes = as_signed(offset), as_signed(nbytes)
    flags &= 0xFFFFFFFF
    wanted = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
    if flags & ~wanted or offset < 0 or nbytes < 0 or offset + nbytes >= 1 << 63:
        raise Errno(errno.EINVAL)
    if f.flags & O_PATH:
        raise Errno(errno.EBADF)
    mode = f.loc.inode.mode if f.loc is not None else 0
    if not (S.S_ISREG(mode) or S.S_ISBLK(mode) or S.S_ISDIR(mode) or S.S_ISLNK(mode)):
        raise Errno(errno.ESPIPE)
    if flags & SYNC_FILE_RANGE_WAIT_AFTER:
        return await sys_fsync(t, fd)
    return 0


async def _sync(fs) -> None:
    """A filesystem that writes back (a writable ext2) to its disk, ending
    with a FLUSH; others have nothing to write."""
    if fs.writable:
        await fs.sync()


async def sync_all(vfs) -> None:
    for m in list(vfs.mounts):
        await _sync(m.fs)


async def unmount_all(vfs) -> None:
    """At halt, when no file is open any more: each writable filesystem's
    last write-back (ext2 frees unlinked files that were still open then)."""
    for m in list(vfs.mounts):
        await (m.fs.unmount() if m.fs.writable else _sync(m.fs))


async def sys_sync(t, *_):
    """Linux's sync(2) cannot fail: a write-back error is kept for the next
    fsync of each file open on that filesystem (fs/errseq.py), and the
    other filesystems are written back all the same."""
    with contextlib.suppress(Errno):
        await t.kernel.pagecache.write_back_all()
    for m in list(t.kernel.vfs.mounts):
        with contextlib.suppress(Errno):
            await _sync(m.fs)
    return 0


async def sys_syncfs(t, fd, *_):
    f = t.files.get(fd_arg(fd))
    if f.loc is not None:
        await _sync(f.loc.mount.fs)
    return 0
