"""Bytes moved between files by the kernel: sendfile, copy_file_range,
splice and tee, and the advice calls that have nothing to do (fadvise64,
readahead).

A transfer goes TRANSFER_PIECE bytes at a time, each read then written, the loop
let go in between, so that a guest's 2 GiB sendfile never sits in the
kernel whole and a signal ends it with the count done.  A file read at a
position is read at explicit offsets, and the position (or the guest's
offset word) moved by what was written, as Linux's do_sendfile; a pipe is
read as read(2) reads it."""
from __future__ import annotations

import asyncio
import errno
import stat as S

from services.kernel.abi.fcntl import (
    MAX_RW, O_APPEND, O_NONBLOCK, POSIX_FADV_NOREUSE, POSIX_FADV_NORMAL, SPLICE_F_GIFT, SPLICE_F_MORE,
    SPLICE_F_MOVE, SPLICE_F_NONBLOCK)
from services.kernel.abi.inotify import IN_ACCESS, IN_MODIFY
from services.kernel.abi.poll import POLLERR, POLLHUP, POLLIN, POLLOUT
from services.kernel.abi.signal import SIGPIPE
from services.kernel.core.errors import Errno
from services.kernel.sched import signals
from services.kernel.fs import fsnotify
from services.kernel.fs.pipe import PipeFile
from services.kernel.fs.vfs import InodeFile
from services.kernel.syscalls.paths import LOFF, as_signed, fd_arg

TRANSFER_PIECE = 1 << 20          # what one transfer holds in the kernel at a time
SPLICE_FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT


def _readable(t, fd: int):
    f = t.files.get(fd_arg(fd))
    if not f.readable:
        raise Errno(errno.EBADF)
    return f


def _writable(t, fd: int):
    f = t.files.get(fd_arg(fd))
    if not f.writable:
        raise Errno(errno.EBADF)
    return f


def _offset(t, ptr: int) -> int | None:
    """The guest's loff_t at ptr (None for a null pointer); EINVAL if negative."""
    if not ptr:
        return None
    (off,) = LOFF.unpack(t.mem.read(ptr, LOFF.size))
    if off < 0:
        raise Errno(errno.EINVAL)
    return off


async def _put(f, data: bytes, offset: int | None) -> int:
    return await f.write_from(lambda skip, n: data[skip:skip + n], len(data), offset)


def _told(src, dst, n: int) -> int:
    """inotify hears of a transfer as of a read and a write."""
    if n:
        if src.loc is not None:
            fsnotify.on_file(src.loc, IN_ACCESS)
        if dst.loc is not None:
            fsnotify.on_file(dst.loc, IN_MODIFY)
    return n


async def _copy(src, src_at: int, dst, dst_at: int | None, count: int) -> int:
    """count bytes of src from src_at (a regular file) to dst, at dst_at or
    its position: the bytes written, short at src's end, at a short write,
    or where an error or a signal stopped it after some bytes."""
    done = 0
    while done < count:
        try:
            data = await src.read(min(TRANSFER_PIECE, count - done), src_at + done)
            if not data:
                break
            n = await _put(dst, data, None if dst_at is None else dst_at + done)
        except (Errno, asyncio.CancelledError):
            if done:
                break
            raise
        done += n
        if n < len(data) or done >= count:
            break
        await asyncio.sleep(0)       # between pieces: other calls run, a signal may stop it
    return done


async def _file_to_pipe(src, start: int, dst: PipeFile, count: int, nonblock: bool) -> int:
    """What a pipe's free slots take of src from start (a wait while it is
    full), a slot per page of the file, as Linux's splice from a file."""
    await _wait_pipe(dst, nonblock, readable=False)
    data = await src.read(min(count, dst.pipe.splice_room(start)), start)
    if data:
        dst.pipe.fill_spliced(data, start)
    return len(data)


async def _send(src, start: int, dst, count: int) -> int:
    """sendfile's loop: into a pipe a slot per page, elsewhere by write."""
    if not isinstance(dst, PipeFile):
        return await _copy(src, start, dst, None, count)
    done = 0
    while done < count:
        try:
            n = await _file_to_pipe(src, start + done, dst, count - done, False)
        except (Errno, asyncio.CancelledError):
            if done:
                break
            raise
        if not n:
            break
        done += n
    return done


async def _sigpipe(t, call):
    """A pipe with no reader left: EPIPE and SIGPIPE, as a write's."""
    try:
        return await call
    except Errno as e:
        if e.code == errno.EPIPE:
            signals.send_task(t, SIGPIPE)
        raise


def sys_sendfile(t, out_fd, in_fd, offset_ptr, count, *_):
    return _sigpipe(t, _sendfile(t, out_fd, in_fd, offset_ptr, count))


async def _sendfile(t, out_fd, in_fd, offset_ptr, count):
    src, dst = _readable(t, in_fd), _writable(t, out_fd)
    if not isinstance(src, InodeFile) or not S.S_ISREG(src.loc.inode.mode):
        raise Errno(errno.EINVAL)        # the source must be a file with pages
    if dst.flags & O_APPEND:
        raise Errno(errno.EINVAL)
    at = _offset(t, offset_ptr)
    start = src.pos if at is None else at
    done = _told(src, dst, await _send(src, start, dst, min(count, MAX_RW)))
    if at is None:
        src.pos = start + done
    else:
        t.mem.write(offset_ptr, LOFF.pack(start + done))
    return done


def _regular(f) -> None:
    if f.loc is None:
        raise Errno(errno.EINVAL)
    mode = f.loc.inode.mode
    if S.S_ISDIR(mode):
        raise Errno(errno.EISDIR)
    if not S.S_ISREG(mode):
        raise Errno(errno.EINVAL)


async def sys_copy_file_range(t, fd_in, off_in, fd_out, off_out, length, flags):
    if flags & 0xFFFFFFFF:
        raise Errno(errno.EINVAL)
    src, dst = _readable(t, fd_in), _writable(t, fd_out)
    _regular(src)
    _regular(dst)
    if dst.flags & O_APPEND:
        raise Errno(errno.EBADF)
    at_in, at_out = _offset(t, off_in), _offset(t, off_out)
    start_in = src.pos if at_in is None else at_in
    start_out = dst.pos if at_out is None else at_out
    count = min(length, MAX_RW)
    if src.loc.inode is dst.loc.inode and start_in < start_out + count \
            and start_out < start_in + count:
        raise Errno(errno.EINVAL)        # overlapping ranges of one file
    done = _told(src, dst, await _copy(src, start_in, dst, start_out, count))
    for f, ptr, start in ((src, off_in, start_in), (dst, off_out, start_out)):
        if ptr:
            t.mem.write(ptr, LOFF.pack(start + done))
        else:
            f.pos = start + done
    return done


async def _wait_pipe(f: PipeFile, nonblock: bool, *, readable: bool) -> bool:
    """Wait until the pipe has bytes (readable) or room; False if it never
    will (no writer left, for a reader).  EAGAIN instead of a wait for
    SPLICE_F_NONBLOCK or an O_NONBLOCK end."""
    pipe = f.pipe
    if not readable and not pipe.readers:
        raise Errno(errno.EPIPE)
    while not pipe.pages if readable else pipe.full:
        if readable and not pipe.writers:
            return False
        if nonblock or f.flags & O_NONBLOCK:
            raise Errno(errno.EAGAIN)
        await pipe.waitq.wait((POLLIN | POLLHUP) if readable else (POLLOUT | POLLERR))
    return True


def sys_splice(t, fd_in, off_in, fd_out, off_out, length, flags):
    return _sigpipe(t, _splice(t, fd_in, off_in, fd_out, off_out, length, flags))


async def _splice(t, fd_in, off_in, fd_out, off_out, length, flags):
    """One step, as Linux's: from a pipe, what it holds (a wait only while it
    is empty); into a pipe, what its free slots take (a wait only while it
    is full)."""
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_FLAGS:
        raise Errno(errno.EINVAL)
    src, dst = _readable(t, fd_in), _writable(t, fd_out)
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    count = min(length, MAX_RW)
    if not isinstance(src, PipeFile) and not isinstance(dst, PipeFile):
        raise Errno(errno.EINVAL)        # one end at least must be a pipe
    if isinstance(src, PipeFile) and off_in or isinstance(dst, PipeFile) and off_out:
        raise Errno(errno.ESPIPE)
    if not count:
        return 0
    if isinstance(src, PipeFile):
        if isinstance(dst, PipeFile) and src.pipe is dst.pipe:
            raise Errno(errno.EINVAL)
        if not isinstance(dst, PipeFile):
            _regular(dst)
            if dst.flags & O_APPEND:
                raise Errno(errno.EINVAL)
        if not await _wait_pipe(src, nonblock, readable=True):
            return 0
        if isinstance(dst, PipeFile):
            await _wait_pipe(dst, nonblock, readable=False)
            count = min(count, dst.pipe.room)
        at = _offset(t, off_out)
        data = src.pipe.take(min(count, TRANSFER_PIECE))
        done = await _put(dst, data, at)
        if at is not None:
            t.mem.write(off_out, LOFF.pack(at + done))
        return _told(src, dst, done)
    _regular(src)
    at = _offset(t, off_in)
    start = src.pos if at is None else at
    done = await _file_to_pipe(src, start, dst, count, nonblock)
    if at is None:
        src.pos = start + done
    else:
        t.mem.write(off_in, LOFF.pack(start + done))
    return _told(src, dst, done)


def sys_tee(t, fd_in, fd_out, length, flags, *_):
    return _sigpipe(t, _tee(t, fd_in, fd_out, length, flags))


async def _tee(t, fd_in, fd_out, length, flags):
    """Copies what a pipe holds into another, leaving it there."""
    flags &= 0xFFFFFFFF
    if flags & ~SPLICE_FLAGS:
        raise Errno(errno.EINVAL)
    src, dst = _readable(t, fd_in), _writable(t, fd_out)
    if not isinstance(src, PipeFile) or not isinstance(dst, PipeFile) or src.pipe is dst.pipe:
        raise Errno(errno.EINVAL)
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    if not length or not await _wait_pipe(src, nonblock, readable=True):
        return 0
    await _wait_pipe(dst, nonblock, readable=False)
    data = src.pipe.peek(min(length, MAX_RW, dst.pipe.room))
    return await _put(dst, data, None)


def sys_fadvise64(t, fd, offset, length, advice, *_):
    """Advice is taken and nothing done: the page cache reads what is asked."""
    f = t.files.get(fd_arg(fd))
    if isinstance(f, PipeFile):
        raise Errno(errno.ESPIPE)
    if as_signed(length) < 0 or not POSIX_FADV_NORMAL <= advice & 0xFFFFFFFF <= POSIX_FADV_NOREUSE:
        raise Errno(errno.EINVAL)
    return 0


def sys_readahead(t, fd, offset, count, *_):
    """Nothing to read ahead of: the page cache reads what is asked."""
    f = _readable(t, fd)
    if not isinstance(f, InodeFile) or not S.S_ISREG(f.loc.inode.mode):
        raise Errno(errno.EINVAL)
    return 0
