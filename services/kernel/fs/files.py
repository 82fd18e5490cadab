"""The fd table: a task's file descriptors and the open files they share.

In a nutshell: an fd names an ``OpenFile`` (Linux's struct file) plus a
close-on-exec flag.  One open file may sit under several fds (dup) and in
several tables (fork), so it counts its references in ``refs``; when the
last one goes, its ``release()`` hook runs (a pipe end tells the other side,
an epoll drops its watches).  Threads sharing a table (CLONE_FILES) share
one ``FdTable`` object."""
from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.kernel.core.errors import Errno
from services.kernel.core.limits import refuse
from services.kernel.fs.inode import Inode
from services.kernel.abi.fcntl import O_ASYNC, O_PATH
from services.kernel.abi.inotify import IN_CLOSE_NOWRITE, IN_CLOSE_WRITE
from services.kernel.fs import dnotify, fsnotify, locks

if TYPE_CHECKING:
    from services.kernel.fs.vfs import OpenFile

FULL_WORD = (1 << 64) - 1
GUEST_FDS = 1 << 20      # fds in all of a guest's tables together: Linux's nr_open, once
_fds_in_use = 0          # in every table (the kernel serves one guest)


def c_int(x: int) -> int:
    """An int argument (an fd, a timeout): the low 32 bits, signed, as Linux reads it."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x

def hold(f: OpenFile) -> OpenFile:
    """Take a reference to an open file."""
    f.refs += 1
    return f


def put(f: OpenFile, table: FdTable | None = None) -> None:
    """Drop a reference, the close of an fd of table if given: the process's
    record locks on the file go, and the table's dnotify watch by it (any
    close does that, as on Linux); the last reference releases the file,
    its flock and OFD locks and its O_ASYNC, and says it was closed
    (inotify)."""
    inode = f.loc.inode if f.loc is not None else None
    if table is not None and inode is not None:
        if inode.locks is not None:
            locks.drop_records(inode, table)
        if inode.watches:
            dnotify.flush(inode, f, table)
    f.refs -= 1
    if f.refs == 0:
        if f.flags & O_ASYNC and f.fasync is not None:
            f.fasync(-1, False)
        if fsnotify.watching and inode is not None and not f.flags & O_PATH:
            fsnotify.on_file(f.loc, IN_CLOSE_WRITE if f.writable else IN_CLOSE_NOWRITE)
        if inode is not None and inode.locks is not None:
            locks.funlock(inode, f)
            locks.drop_records(inode, f)
        f.release()


def _count(n: int, code: int = errno.ENFILE) -> None:
    """n more (or fewer) fds in the guest's tables, or the errno code if
    they do not fit."""
    global _fds_in_use
    if _fds_in_use + n > GUEST_FDS:
        raise refuse("fds in the guest", GUEST_FDS, code)
    _fds_in_use += n


class FdTable:
    """File descriptors of a task: fd -> (open file, close-on-exec).

    The lowest free fd is found as Linux's find_next_fd finds it: in a bitmap
    of the fds in use, 64 to a word, and a bitmap of the words that are full,
    so an open at 40,000 fds looks at a few ints instead of 40,000 slots.

    The fds of all tables count against GUEST_FDS (each costs the kernel
    memory, and a fork copies them): a new fd past it is ENFILE, a copy
    of a table that does not fit ENOMEM, as when Linux cannot allocate."""

    def __init__(self) -> None:
        self.fds: dict[int, tuple[OpenFile, bool]] = {}
        self.limit = 1024        # RLIMIT_NOFILE's soft limit
        self.words: list[int] = []   # bit b of word w: fd 64*w + b is in use
        self.full = 0                # bit w: word w is FULL_WORD

    def get(self, fd: int) -> OpenFile:
        entry = self.fds.get(fd)
        if entry is None:
            raise Errno(errno.EBADF)
        return entry[0]

    def cloexec(self, fd: int) -> bool:
        self.get(fd)
        return self.fds[fd][1]

    def set_cloexec(self, fd: int, cloexec: bool) -> None:
        self.fds[fd] = (self.get(fd), cloexec)

    def lowest_free(self, lowest: int) -> int:
        """The lowest fd >= lowest not in use."""
        words, w = self.words, lowest >> 6
        if w >= len(words):
            return lowest
        free = ~words[w] & FULL_WORD >> (lowest & 63) << (lowest & 63)
        if not free:
            rest = ~(self.full >> (w + 1))        # its lowest bit: the next word not full
            w += (rest & -rest).bit_length()
            if w >= len(words):
                return w << 6
            free = ~words[w] & FULL_WORD
        return (w << 6) + (free & -free).bit_length() - 1

    def in_use(self, lowest: int, count: int) -> list[int]:
        """At most count fds in use, the first at lowest or after it, in
        order (/proc's fd listing, a piece at a time), found in the bitmap."""
        words, w, out = self.words, lowest >> 6, []
        bits = words[w] >> (lowest & 63) << (lowest & 63) if w < len(words) else 0
        while True:
            while bits and len(out) < count:
                low = bits & -bits
                out.append((w << 6) + low.bit_length() - 1)
                bits ^= low
            w += 1
            if len(out) >= count or w >= len(words):
                return out
            bits = words[w]

    def _mark(self, fd: int, used: bool) -> None:
        words, w = self.words, fd >> 6
        if w >= len(words):
            words.extend([0] * (w + 1 - len(words)))
        bit, old = 1 << (fd & 63), words[w]
        words[w] = word = old | bit if used else old & ~bit
        if (old == FULL_WORD) != (word == FULL_WORD):
            self.full ^= 1 << w

    def install(self, f: OpenFile, cloexec: bool = False, lowest: int = 0) -> int:
        """Put f at the lowest free fd >= lowest (EMFILE past the limit)."""
        words = self.words
        if not lowest and words and words[0] != FULL_WORD:    # the usual case: a low fd
            w = words[0]
            fd = (~w & (w + 1)).bit_length() - 1
        else:
            fd = self.lowest_free(lowest)
        if fd >= self.limit:
            raise refuse("RLIMIT_NOFILE", self.limit, errno.EMFILE)
        _count(1)
        self.fds[fd] = (hold(f), cloexec)
        self._mark(fd, True)
        return fd

    def dup_to(self, f: OpenFile, newfd: int, cloexec: bool) -> int:
        """Put f at newfd, closing what was there (dup2, dup3)."""
        if not 0 <= newfd < self.limit:
            raise Errno(errno.EBADF)
        old = self.fds.get(newfd)
        if old is None:
            _count(1)
        self.fds[newfd] = (hold(f), cloexec)
        self._mark(newfd, True)
        if old is not None:
            put(old[0], self)
        return newfd

    def close(self, fd: int) -> None:
        entry = self.fds.pop(fd, None)
        if entry is None:
            raise Errno(errno.EBADF)
        self._mark(fd, False)
        _count(-1)
        put(entry[0], self)

    def close_range(self, first: int, last: int, cloexec: bool = False) -> None:
        """Close fds first..last (inclusive), or mark them close-on-exec;
        a walk of the range or of the table, whichever is shorter."""
        span = range(first, last + 1)
        for fd in [fd for fd in (span if len(span) < len(self.fds) else self.fds)
                   if fd in span and fd in self.fds]:
            if cloexec:
                self.fds[fd] = (self.fds[fd][0], True)
            else:
                self.close(fd)

    def close_on_exec(self) -> None:
        """What execve does: close every O_CLOEXEC fd."""
        for fd in [fd for fd, (_, cloexec) in self.fds.items() if cloexec]:
            self.close(fd)

    def close_all(self) -> None:
        """What the last task using the table does when it exits."""
        for fd in list(self.fds):
            self.close(fd)

    def copy(self) -> FdTable:
        """A new table with the same open files (fork without CLONE_FILES)."""
        _count(len(self.fds), errno.ENOMEM)
        new = FdTable()
        new.limit = self.limit
        new.fds = {fd: (hold(f), cloexec) for fd, (f, cloexec) in self.fds.items()}
        new.words, new.full = list(self.words), self.full
        return new


@dataclass
class PseudoInode(Inode):
    """The inode of a file that lives only in fd tables (a pipe, an eventfd, an
    epoll): what fstat shows of it, and no extended attributes."""
    ino: int
    mode: int
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    rdev: int = 0
    size: int = 0
    blocks: int = 0
    atime: int = 0
    atime_ns: int = 0
    mtime: int = 0
    mtime_ns: int = 0
    ctime: int = 0
    ctime_ns: int = 0

    def touch(self, *, access: bool = False, modify: bool = False) -> None:
        """Set atime (a read) or mtime and ctime (a write) to now."""
        sec, ns = divmod(time.time_ns(), 1_000_000_000)
        if access:
            self.atime, self.atime_ns = sec, ns
        if modify:
            self.mtime, self.mtime_ns = self.ctime, self.ctime_ns = sec, ns
