"""Pipes: pipe(2), pipe2(2), and the Pipe a FIFO inode can share.

In a nutshell: a ``Pipe`` is Linux's pipe_inode_info: a ring of page-sized
buffers (16 by default: 64 KiB), counts of readers and writers, and one wait
queue; the ends that asked for O_ASYNC are told of data (POLL_IN) and
room (POLL_OUT) where Linux's pipe_write and pipe_read tell them.  A
``PipeFile`` is one open end of it; pipe(2) makes two, a FIFO
opens as many as it likes.  Capacity is counted in pages as Linux counts it,
so a write merges into the last page only when it fits there, a write of at
most PIPE_BUF bytes never splits, and a full pipe is one with every slot
taken.  The slots of all the guest's pipes are counted as Linux counts a
user's (pipe-user-pages-soft and -hard), which bounds what its pipes can
hold in the kernel's memory.
"""
from __future__ import annotations

import asyncio
import errno
import itertools
import struct
from collections import deque

from services.kernel.abi.arch import PAGE
from services.kernel.core.errors import Errno
from services.kernel.fs.fasync import fasync_helper, kill_fasync
from services.kernel.fs.files import PseudoInode
from services.kernel.core.limits import refuse
from services.kernel.core.waitqueue import ALL_EVENTS, WaitQueue
from services.kernel.fs.vfs import Location, OpenFile, makedev, pack_stat, pack_statx
from services.kernel.abi.fcntl import F_SETPIPE_SZ, O_ACCMODE, O_NONBLOCK, O_WRONLY
from services.kernel.abi.poll import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM
from services.kernel.abi.ioctls import FIONREAD
from services.kernel.abi.signal import POLL_IN, POLL_OUT

PIPE_BUF = PAGE
PIPE_DEF_BUFFERS = 16
PIPE_MIN_DEF_BUFFERS = 2
# Linux's /proc/sys/fs/pipe-user-pages-soft and -hard, for the whole guest,
# root too: past the soft limit a new pipe gets 2 slots and none grows;
# past the hard one (unlimited on Linux, where memory cgroups bound the
# rest) pipe() is ENFILE.  A guest's pipes hold at most 128 MiB.
PIPE_PAGES_SOFT, PIPE_PAGES_HARD = 16384, 32768
PIPE_MAX_SIZE = 1 << 20        # /proc/sys/fs/pipe-max-size
PIPEFS_DEV = makedev(0, 13)
S_IFIFO = 0o010000

_inode_numbers = itertools.count(4096)
_slots_in_use = 0      # of every pipe in the guest (the kernel serves one guest)


def _account(old: int, new: int) -> int:
    """A pipe's slots go from old to new: the guest's count after that."""
    global _slots_in_use
    _slots_in_use += new - old
    return _slots_in_use


class _Page:
    """One ring slot: the unread bytes of a page and where they start in it."""
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes):
        self.data = bytearray(data)
        self.offset = 0

    def room(self) -> int:
        return PAGE - self.offset - len(self.data)


class Pipe:
    """A pipe's buffer and its ends (Linux's pipe_inode_info)."""

    def __init__(self, uid: int = 0, gid: int = 0):
        slots = PIPE_DEF_BUFFERS
        if _account(0, slots) > PIPE_PAGES_SOFT:
            _account(slots, PIPE_MIN_DEF_BUFFERS)
            slots = PIPE_MIN_DEF_BUFFERS
        if _slots_in_use > PIPE_PAGES_HARD:
            _account(slots, 0)
            raise refuse("pipe pages in the guest", PIPE_PAGES_HARD, errno.ENFILE)
        self.pages: deque[_Page] = deque()
        self.slots = slots
        self.nbytes = 0
        self.readers = 0
        self.writers = 0
        self.waitq = WaitQueue()
        self.fasync_readers: dict = {}          # ends told of data (fs/fasync.py)
        self.fasync_writers: dict = {}          # ends told of room
        self.inode = PseudoInode(next(_inode_numbers), S_IFIFO | 0o600, uid, gid)
        self.inode.touch(access=True, modify=True)
        self.opened_r = self.opened_w = 0       # ends ever opened: what a FIFO's open awaits
        self.fifo: tuple | None = None          # its key in _FIFOS, for a FIFO

    @property
    def full(self) -> bool:
        return len(self.pages) >= self.slots

    def mask(self, readable: bool, writable: bool) -> int:
        mask = 0
        if readable:
            if self.pages:
                mask |= POLLIN | POLLRDNORM
            if not self.writers:
                mask |= POLLHUP
        if writable:
            if not self.full:
                mask |= POLLOUT | POLLWRNORM
            if not self.readers:
                mask |= POLLERR
        return mask

    def take(self, count: int) -> bytes:
        """Up to count bytes, oldest first."""
        was_full = self.full
        out = bytearray()
        while self.pages and len(out) < count:
            page = self.pages[0]
            piece = page.data[:count - len(out)]
            out += piece
            del page.data[:len(piece)]
            page.offset += len(piece)
            if not page.data:
                self.pages.popleft()
        self.nbytes -= len(out)
        self.inode.touch(access=True)
        kill_fasync(self.fasync_writers, POLL_OUT)     # each read, as Linux's pipe_read
        if was_full and not self.full:
            self.waitq.wake(POLLOUT | POLLWRNORM)
        return bytes(out)

    def splice_room(self, offset: int) -> int:
        """Bytes of a file from offset that the free slots take as Linux's
        splice fills them: a slot per page of the file, the first from
        offset to the end of its page."""
        free = self.slots - len(self.pages)
        return (free - 1) * PAGE + PAGE - offset % PAGE if free else 0

    def fill_spliced(self, data: bytes, offset: int) -> None:
        """data, a file's from offset (at most splice_room), a slot per page
        of the file; no later write joins these slots (Linux's buffers of
        page-cache pages cannot merge)."""
        view, at = memoryview(data), 0
        while at < len(data):
            n = min(PAGE - (offset + at) % PAGE, len(data) - at)
            page = _Page(view[at:at + n])
            page.offset = PAGE - n          # no room left in it
            self.pages.append(page)
            at += n
        self._added(len(data))

    def peek(self, count: int) -> bytes:
        """Up to count bytes, oldest first, left in the pipe (tee)."""
        out = bytearray()
        for page in self.pages:
            if len(out) >= count:
                break
            out += page.data[:count - len(out)]
        return bytes(out)

    @property
    def room(self) -> int:
        """Bytes the free slots take, a page each."""
        return (self.slots - len(self.pages)) * PAGE

    def tail_room(self) -> int:
        """Bytes the last page can still take (a write's first bytes may join it)."""
        return self.pages[-1].room() if self.pages else 0

    def merge(self, data: bytes) -> None:
        """data, which fits in the last page, into it."""
        self.pages[-1].data += data
        self._added(len(data))

    def fill(self, data: bytes) -> None:
        """data, which fits in the free slots, a page to a slot."""
        view = memoryview(data)
        for at in range(0, len(data), PAGE):
            self.pages.append(_Page(view[at:at + PAGE]))
        self._added(len(data))

    def _added(self, n: int) -> None:
        self.nbytes += n
        self.inode.touch(modify=True)
        self.waitq.wake(POLLIN | POLLRDNORM)
        kill_fasync(self.fasync_readers, POLL_IN)

    def resize(self, size: int) -> int:
        """F_SETPIPE_SZ: whole pages, a power of two of them; the new size."""
        if size > 1 << 31:
            raise Errno(errno.EINVAL)
        pages = 1 if size <= PAGE else 1 << ((size - 1) // PAGE).bit_length()
        if pages * PAGE > PIPE_MAX_SIZE and pages > self.slots:
            # Linux lets CAP_SYS_RESOURCE past pipe-max-size; here the kernel's
            # own memory would pay, so nobody goes past it.
            raise Errno(errno.EPERM)
        if pages > self.slots and _slots_in_use + pages - self.slots > PIPE_PAGES_SOFT:
            raise refuse("pipe pages in the guest (to grow)", PIPE_PAGES_SOFT, errno.EPERM)
        if pages < len(self.pages):
            raise Errno(errno.EBUSY)
        _account(self.slots, pages)
        self.slots = pages
        self.waitq.wake(POLLOUT | POLLWRNORM)
        return pages * PAGE

    def open_end(self, readable: bool, writable: bool) -> None:
        self.readers += readable
        self.writers += writable
        self.opened_r += readable
        self.opened_w += writable
        self.waitq.wake(ALL_EVENTS)

    def close_end(self, readable: bool, writable: bool) -> None:
        self.readers -= readable
        self.writers -= writable
        if not self.readers and not self.writers:
            self.pages.clear()            # a FIFO forgets its data once nobody has it open
            self.nbytes = 0
            _FIFOS.pop(self.fifo, None)
            _account(self.slots, 0)       # the pipe is gone (a FIFO's next opener
            self.slots = 0                # makes a new one)
        self.waitq.wake(ALL_EVENTS)
        kill_fasync(self.fasync_readers, POLL_IN)
        kill_fasync(self.fasync_writers, POLL_OUT)


class PipeFile(OpenFile):
    """One open end of a pipe (or of a FIFO, whose location it then has)."""

    @property
    def link_name(self) -> bytes:
        return b"pipe:[%d]" % self.pipe.inode.ino

    def __init__(self, pipe: Pipe, flags: int, loc: Location | None = None):
        super().__init__(loc, flags)
        self.pipe = pipe
        pipe.open_end(self.readable, self.writable)

    def release(self) -> None:
        self.pipe.close_end(self.readable, self.writable)

    def fasync(self, fd: int, on: bool) -> None:
        if self.readable:
            fasync_helper(self.pipe.fasync_readers, self, fd, on)
        if self.writable:
            fasync_helper(self.pipe.fasync_writers, self, fd, on)

    def poll(self, table=None) -> int:
        if table is not None:
            table.add(self.pipe.waitq)
        return self.pipe.mask(self.readable, self.writable)

    async def read(self, count: int, offset: int | None = None) -> bytes:
        pipe = self.pipe
        if not count:
            return b""
        while not pipe.pages:
            if not pipe.writers:
                return b""
            if self.flags & O_NONBLOCK:
                raise Errno(errno.EAGAIN)
            await pipe.waitq.wait(POLLIN | POLLHUP)
        return pipe.take(count)

    async def write_from(self, read, total: int, offset: int | None = None) -> int:
        """write of the total bytes read(skip, n) gives (guest memory), as
        Linux's pipe_write: the bytes that are not a whole page join the last
        page if they fit there, the rest goes a page to a free slot.  Bytes
        are read only once there is room for them, so a blocked writer holds
        none of its data in the kernel and a 1 GiB write passes a pipe's
        worth at a time.  At most PIPE_BUF bytes go in at once or not at all;
        a blocking write returns once all is in; a signal, O_NONBLOCK or a
        bad address after some bytes ends it with their count."""
        pipe = self.pipe
        if not total:
            return 0
        if not pipe.readers:
            raise Errno(errno.EPIPE)
        done = 0
        tail = total % PAGE
        if tail and pipe.tail_room() >= tail:
            pipe.merge(read(0, tail))
            done = tail
        while done < total:
            if not pipe.readers:
                if done:
                    return done
                raise Errno(errno.EPIPE)
            try:
                if pipe.full:
                    if self.flags & O_NONBLOCK:
                        raise Errno(errno.EAGAIN)
                    await pipe.waitq.wait(POLLOUT | POLLERR)
                    continue
                data = read(done, min(total - done, pipe.room))
            except (Errno, asyncio.CancelledError):
                if done:         # what went in stays in, and counts
                    return done
                raise
            pipe.fill(data)
            done += len(data)
        return done

    def ioctl(self, task, request: int, arg: int) -> int:
        if request != FIONREAD:
            raise Errno(errno.ENOTTY)
        task.mem.write(arg, struct.pack("<i", self.pipe.nbytes))
        return 0

    @property
    def inode(self):
        return self.loc.inode if self.loc else self.pipe.inode

    def stat(self) -> bytes:
        return super().stat() if self.loc else pack_stat(self.pipe.inode, PIPEFS_DEV)

    def statx(self) -> bytes:
        return super().statx() if self.loc else pack_statx(self.pipe.inode, PIPEFS_DEV)


_FIFOS: dict[tuple, Pipe] = {}    # (filesystem, inode number) -> the pipe of an open FIFO


async def open_fifo(loc: Location, flags: int) -> PipeFile:
    """Open a FIFO as Linux's fifo_open does: every opener of the inode shares
    one pipe; a reader waits for a writer and a writer for a reader (a
    nonblocking reader does not wait, a nonblocking writer with no reader is
    ENXIO); O_RDWR never waits."""
    key = (loc.mount.fs, loc.inode.ino)
    pipe = _FIFOS.get(key)
    mode = flags & O_ACCMODE
    if mode == O_WRONLY and flags & O_NONBLOCK and (pipe is None or not pipe.readers):
        raise Errno(errno.ENXIO)
    if pipe is None:
        pipe = _FIFOS[key] = Pipe(loc.inode.uid, loc.inode.gid)
        pipe.fifo = key
    f = PipeFile(pipe, flags, loc)
    try:
        if mode == 0 and not flags & O_NONBLOCK:
            seen = pipe.opened_w
            while not pipe.writers and pipe.opened_w == seen:
                await pipe.waitq.wait(ALL_EVENTS)
        elif mode == O_WRONLY:
            seen = pipe.opened_r
            while not pipe.readers and pipe.opened_r == seen:
                await pipe.waitq.wait(ALL_EVENTS)
    except BaseException:
        f.release()
        raise
    return f


def pipe_fcntl(t, f: OpenFile, cmd: int, arg: int) -> int:
    """F_GETPIPE_SZ and F_SETPIPE_SZ; EBADF on anything but a pipe."""
    if not isinstance(f, PipeFile):
        raise Errno(errno.EBADF)
    if cmd == F_SETPIPE_SZ:
        return f.pipe.resize(arg & 0xFFFFFFFF)
    return f.pipe.slots * PAGE


