"""Waiting for files: wait queues, poll/select, epoll and eventfd.

In a nutshell: a file whose readiness changes (a pipe end, an eventfd, an
epoll, the console) overrides ``OpenFile.poll(table)``: it returns its POLL*
bits now and, when given a table, adds the ``WaitQueue``s it wakes when they
may change (Linux's f_op->poll and poll_wait).  A sleeper registers with
every queue of every file it polls, sleeps until one wakes it or its deadline
passes, unregisters, and polls again.  Nothing is taken while asleep, so a
sleeper cancelled by a signal leaves nothing behind once its ``finally`` has
unregistered it.  Deadlines are times on the kernel's event loop.
"""
from __future__ import annotations

import asyncio
import errno
import struct
from typing import Callable

from services.kernel.core.errors import Errno
from services.kernel.fs.files import PseudoInode
from services.kernel.core.waitqueue import PollTable, WaitQueue
from services.kernel.fs.vfs import OpenFile, makedev, pack_stat, pack_statx
from services.kernel.abi.fcntl import O_NONBLOCK, O_RDWR
from services.kernel.abi.poll import (
    EFD_SEMAPHORE, EPOLLET, EPOLLEXCLUSIVE, EPOLLONESHOT, EPOLLWAKEUP, EPOLL_CTL_ADD,
    EPOLL_CTL_DEL, EPOLL_CTL_MOD, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI, POLLRDBAND,
    POLLRDNORM, POLLWRBAND, POLLWRNORM)

# What select counts as readable, writable, exceptional (Linux's POLL*_SET).
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI

# Files with no inode of their own share anon_inodefs' one inode, mode 0600 and no type.
ANON_DEV = makedev(0, 14)
ANON_INODE = PseudoInode(ino=1, mode=0o600)

TIMESPEC = struct.Struct("<qq")
POLLFD = struct.Struct("<iHH")
SIGSET_ARGPACK = struct.Struct("<QQ")
NSEC, USEC = 1_000_000_000, 1_000_000


# --- the readiness mechanism -------------------------------------------------

async def wait_until(scan: Callable[[PollTable | None], tuple[int, object]],
                     deadline: float | None) -> tuple[int, object]:
    """Call scan(table) until it counts something ready or the deadline passes
    (None: never); scan adds the queues to sleep on to table when given one."""
    loop = asyncio.get_running_loop()
    while True:
        if deadline is not None and loop.time() >= deadline:
            return scan(None)
        table = PollTable()
        try:
            found = scan(table)
            if found[0]:
                return found
            await table.sleep(deadline)
        finally:
            table.close()


def can_poll(f: OpenFile) -> bool:
    """Whether the file has readiness of its own (Linux's file_can_poll): epoll
    refuses regular files."""
    return type(f).poll is not OpenFile.poll


# --- timeouts and temporary signal masks ---------------------------------------


# --- poll and select -------------------------------------------------------------


# --- epoll -----------------------------------------------------------------------

EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = (POLLIN | POLLOUT | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET
                          | EPOLLEXCLUSIVE)
EP_MAX_NESTS = 4
EPOLL_EVENT = struct.Struct("<IQ")          # packed on x86_64
EP_MAX_EVENTS = 0x7FFFFFFF // EPOLL_EVENT.size


class AnonFile(OpenFile):
    """A file on Linux's anonymous inode (epoll, eventfd, inotify): one
    inode they all share, as fstat shows it."""

    inode = ANON_INODE

    def stat(self) -> bytes:
        return pack_stat(ANON_INODE, ANON_DEV)

    def statx(self) -> bytes:
        return pack_statx(ANON_INODE, ANON_DEV)


class _Watch:
    """One (fd, file) an epoll watches (Linux's epitem).  Its callback sits on
    the file's wait queues for as long as the watch exists and puts it on its
    epoll's ready list when the file wakes with an event it wants."""

    def __init__(self, ep: EpollFile, f: OpenFile, events: int, data: int):
        self.ep = ep
        self.file = f
        self.events = events | POLLERR | POLLHUP
        self.data = data
        self.queues: list[WaitQueue] = []
        f.poll(self)                              # registers with f's queues

    def add(self, queue: WaitQueue) -> None:     # the poll-table protocol
        queue.add(self.wake)
        self.queues.append(queue)

    def wake(self, events: int) -> None:
        if events & self.events & ~EP_PRIVATE_BITS:
            self.ep.queue(self)

    def revents(self) -> int:
        return self.file.poll() & self.events

    def drop(self) -> None:
        for queue in self.queues:
            queue.remove(self.wake)
        self.queues.clear()


class EpollFile(AnonFile):
    """An epoll instance: watches of (fd, file) pairs, level- or edge-triggered,
    one-shot or not, and the ready list of those woken since (Linux's
    eventpoll), kept in the order Linux keeps it."""

    def __init__(self):
        super().__init__(None, O_RDWR)
        self.watches: dict[tuple[int, OpenFile], _Watch] = {}
        self.ready: dict[_Watch, None] = {}       # an ordered set: oldest first
        self.waitq = WaitQueue()

    def queue(self, w: _Watch) -> None:
        self.ready.setdefault(w, None)
        self.waitq.wake(POLLIN | POLLRDNORM)

    def _forget(self, key: tuple[int, OpenFile]) -> None:
        w = self.watches.pop(key)
        self.ready.pop(w, None)
        w.drop()

    def _prune(self) -> None:
        """A watch ends when its file is closed everywhere."""
        for key in [key for key, w in self.watches.items() if not w.file.refs]:
            self._forget(key)

    def poll(self, table=None) -> int:
        if table is not None:
            table.add(self.waitq)
        self._prune()
        for w in list(self.ready):
            if w.revents():
                return POLLIN | POLLRDNORM
            del self.ready[w]
        return 0

    def release(self) -> None:
        for w in self.watches.values():
            w.drop()
        self.watches.clear()
        self.ready.clear()

    def depth(self) -> int:
        """How many epolls deep the watched epolls go."""
        return max((1 + w.file.depth() for w in self.watches.values()
                    if isinstance(w.file, EpollFile)), default=0)

    def reaches(self, other: EpollFile) -> bool:
        return any(w.file is other or w.file.reaches(other) for w in self.watches.values()
                   if isinstance(w.file, EpollFile))

    def ctl(self, op: int, fd: int, f: OpenFile, events: int, data: int) -> None:
        key = (fd, f)
        w = self.watches.get(key)
        if op == EPOLL_CTL_ADD:
            if w is not None:
                raise Errno(errno.EEXIST)
            if isinstance(f, EpollFile) and (f.reaches(self) or f.depth() >= EP_MAX_NESTS):
                raise Errno(errno.ELOOP)
            w = self.watches[key] = _Watch(self, f, events, data)
        elif op in (EPOLL_CTL_DEL, EPOLL_CTL_MOD):
            if w is None:
                raise Errno(errno.ENOENT)
            if op == EPOLL_CTL_DEL:
                self._forget(key)
                return
            if w.events & EPOLLEXCLUSIVE:
                raise Errno(errno.EINVAL)
            w.events, w.data = events | POLLERR | POLLHUP, data
        else:
            raise Errno(errno.EINVAL)
        if w.revents():
            self.queue(w)

    def harvest(self, maxevents: int) -> list[tuple[int, int]]:
        """Take up to maxevents events off the ready list; level-triggered
        watches that reported go back on at its end."""
        self._prune()
        out = []
        again = []
        for w in list(self.ready):
            if len(out) == maxevents:
                break
            del self.ready[w]
            mask = w.revents()
            if not mask:
                continue
            out.append((mask, w.data))
            if w.events & EPOLLONESHOT:
                w.events &= EP_PRIVATE_BITS
            elif not w.events & EPOLLET:
                again.append(w)
        for w in again:
            self.ready[w] = None
        return out


# --- eventfd ---------------------------------------------------------------------

COUNT_MAX = (1 << 64) - 1


class EventFd(AnonFile):
    """A 64-bit counter: write adds, read takes all of it (or one, as a semaphore)."""

    def __init__(self, count: int, flags: int):
        super().__init__(None, O_RDWR | flags & O_NONBLOCK)
        self.count = count
        self.semaphore = bool(flags & EFD_SEMAPHORE)
        self.waitq = WaitQueue()

    def poll(self, table=None) -> int:
        if table is not None:
            table.add(self.waitq)
        mask = POLLIN | POLLRDNORM if self.count else 0
        if self.count == COUNT_MAX:
            mask |= POLLERR
        if self.count < COUNT_MAX - 1:
            mask |= POLLOUT | POLLWRNORM
        return mask

    async def read(self, count: int, offset: int | None = None) -> bytes:
        if count < 8:
            raise Errno(errno.EINVAL)
        while not self.count:
            if self.flags & O_NONBLOCK:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(POLLIN)
        value = 1 if self.semaphore else self.count
        self.count -= value
        self.waitq.wake(POLLOUT)
        return value.to_bytes(8, "little")

    async def write(self, data: bytes, offset: int | None = None) -> int:
        if len(data) < 8:
            raise Errno(errno.EINVAL)
        value = int.from_bytes(data[:8], "little")
        if value == COUNT_MAX:
            raise Errno(errno.EINVAL)
        while COUNT_MAX - self.count <= value:
            if self.flags & O_NONBLOCK:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(POLLOUT)
        self.count += value
        self.waitq.wake(POLLIN)
        return 8


