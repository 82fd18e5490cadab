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
from contextlib import contextmanager
from typing import Callable

from services.kernel.core.errors import Errno
from services.kernel.fs.files import PseudoInode, c_int
from services.kernel.mm.memory import ADDR_LIMIT
from services.kernel.abi.signal import UNBLOCKABLE
from services.kernel.core.waitqueue import PollTable, WaitQueue
from services.kernel.fs.vfs import O_CLOEXEC, O_NONBLOCK, O_RDWR, OpenFile, makedev, pack_stat, pack_statx

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x40, 0x80, 0x100, 0x200
# What select counts as readable, writable, exceptional (Linux's POLL*_SET).
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI

# Files with no inode of their own share anon_inodefs' one inode, mode 0600 and no type.
ANON_DEV = makedev(0, 14)
ANON_INODE = PseudoInode(ino=1, mode=0o600)

_TIMESPEC = struct.Struct("<qq")
_POLLFD = struct.Struct("<iHH")
_SIGSET_ARGPACK = struct.Struct("<QQ")
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

def _deadline(seconds: float | None) -> float | None:
    """When a relative timeout ends on the loop's clock; None waits for ever."""
    return None if seconds is None else asyncio.get_running_loop().time() + seconds


def _ms_deadline(timeout_ms: int) -> float | None:
    """poll's and epoll_wait's int milliseconds: negative waits for ever."""
    timeout_ms = c_int(timeout_ms)
    return _deadline(timeout_ms / 1000 if timeout_ms >= 0 else None)


def _read_timespec(t, addr: int) -> float | None:
    """A relative struct timespec timeout; NULL is no timeout."""
    if not addr:
        return None
    sec, nsec = _TIMESPEC.unpack(t.mem.read(addr, 16))
    if sec < 0 or not 0 <= nsec < NSEC:
        raise Errno(errno.EINVAL)
    return sec + nsec / NSEC


def _write_back(t, addr: int, deadline: float | None, timeval: bool) -> None:
    """ppoll, select and pselect6 leave the time that was left in their timeout,
    as Linux does; a fault there is not the call's failure."""
    if not addr or deadline is None:
        return
    left = max(0, round((deadline - asyncio.get_running_loop().time()) * NSEC))
    sec, nsec = divmod(left, NSEC)
    try:
        t.mem.write(addr, _TIMESPEC.pack(sec, nsec // 1000 if timeval else nsec))
    except Errno:
        pass


@contextmanager
def _sigmask(t, addr: int, size: int):
    """The mask ppoll, pselect6 and epoll_pwait sleep under; the old one comes back."""
    if not addr:
        yield
        return
    if size != 8:
        raise Errno(errno.EINVAL)
    mask = struct.unpack("<Q", t.mem.read(addr, 8))[0]
    old = t.sigmask
    t.sigmask = mask & ~UNBLOCKABLE
    try:
        yield
    finally:
        t.sigmask = old


# --- poll and select -------------------------------------------------------------

async def _poll(t, ufds: int, nfds: int, deadline: float | None) -> int:
    nfds &= 0xFFFFFFFF
    if nfds > t.files.limit:
        raise Errno(errno.EINVAL)
    entries = list(_POLLFD.iter_unpack(t.mem.read(ufds, nfds * _POLLFD.size))) if nfds else []

    def scan(table):
        revents = []
        for fd, events, _ in entries:
            f = t.files.fds.get(fd) if fd >= 0 else None
            if f is None:
                revents.append(POLLNVAL if fd >= 0 else 0)
            else:
                revents.append(f[0].poll(table) & (events | POLLERR | POLLHUP))
        return sum(1 for r in revents if r), revents

    count, revents = await wait_until(scan, deadline)
    if entries:
        t.mem.write(ufds, b"".join(_POLLFD.pack(fd, events, r)
                                   for (fd, events, _), r in zip(entries, revents)))
    return count


async def sys_poll(t, ufds, nfds, timeout_ms, *_):
    return await _poll(t, ufds, nfds, _ms_deadline(timeout_ms))


async def sys_ppoll(t, ufds, nfds, tsp, sigmask, sigsetsize, *_):
    timeout = _read_timespec(t, tsp)
    deadline = _deadline(timeout)
    with _sigmask(t, sigmask, sigsetsize):
        try:
            return await _poll(t, ufds, nfds, deadline)
        finally:
            if timeout:
                _write_back(t, tsp, deadline, timeval=False)


async def _select(t, n: int, sets_ptrs: tuple[int, int, int], deadline: float | None) -> int:
    n = c_int(n)
    if n < 0:
        raise Errno(errno.EINVAL)
    n = min(n, t.files.limit)
    nbytes = (n + 63) // 64 * 8
    valid = (1 << n) - 1
    sets = [int.from_bytes(t.mem.read(p, nbytes), "little") & valid if p else 0
            for p in sets_ptrs]
    wanted = sets[0] | sets[1] | sets[2]
    fds = [fd for fd in range(n) if wanted >> fd & 1]
    for fd in fds:
        t.files.get(fd)                 # EBADF for a closed fd in any set
    kinds = (POLLIN_SET, POLLOUT_SET, POLLEX_SET)

    def scan(table):
        result = [0, 0, 0]
        count = 0
        for fd in fds:
            entry = t.files.fds.get(fd)
            if entry is None:
                continue
            mask = entry[0].poll(table)
            bit = 1 << fd
            for i in range(3):
                if sets[i] & bit and mask & kinds[i]:
                    result[i] |= bit
                    count += 1
        return count, result

    count, result = await wait_until(scan, deadline)
    for p, bits in zip(sets_ptrs, result):
        if p:
            t.mem.write(p, bits.to_bytes(nbytes, "little"))
    return count


def _read_timeval(t, addr: int) -> float | None:
    """select's struct timeval timeout, whole seconds of microseconds carried over
    as Linux does; NULL is no timeout."""
    if not addr:
        return None
    sec, usec = _TIMESPEC.unpack(t.mem.read(addr, 16))
    carry = -(-usec // USEC) if usec < 0 else usec // USEC    # C division
    sec, nsec = sec + carry, (usec - carry * USEC) * 1000
    if sec < 0 or not 0 <= nsec < NSEC:
        raise Errno(errno.EINVAL)
    return sec + nsec / NSEC


async def sys_select(t, n, inp, outp, exp, tvp, *_):
    timeout = _read_timeval(t, tvp)
    deadline = _deadline(timeout)
    try:
        return await _select(t, n, (inp, outp, exp), deadline)
    finally:
        if timeout:
            _write_back(t, tvp, deadline, timeval=True)


async def sys_pselect6(t, n, inp, outp, exp, tsp, sig, *_):
    mask_ptr, mask_size = _SIGSET_ARGPACK.unpack(t.mem.read(sig, 16)) if sig else (0, 0)
    timeout = _read_timespec(t, tsp)
    deadline = _deadline(timeout)
    with _sigmask(t, mask_ptr, mask_size):
        try:
            return await _select(t, n, (inp, outp, exp), deadline)
        finally:
            if timeout:
                _write_back(t, tsp, deadline, timeval=False)


# --- epoll -----------------------------------------------------------------------

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
EP_PRIVATE_BITS = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE
EPOLLEXCLUSIVE_OK_BITS = (POLLIN | POLLOUT | POLLERR | POLLHUP | EPOLLWAKEUP | EPOLLET
                          | EPOLLEXCLUSIVE)
EP_MAX_NESTS = 4
_EPOLL_EVENT = struct.Struct("<IQ")          # packed on x86_64
EP_MAX_EVENTS = 0x7FFFFFFF // _EPOLL_EVENT.size


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


class EpollFile(OpenFile):
    """An epoll instance: watches of (fd, file) pairs, level- or edge-triggered,
    one-shot or not, and the ready list of those woken since (Linux's
    eventpoll), kept in the order Linux keeps it."""

    def __init__(self):
        super().__init__(None, O_RDWR)
        self.watches: dict[tuple[int, OpenFile], _Watch] = {}
        self.ready: dict[_Watch, None] = {}       # an ordered set: oldest first
        self.waitq = WaitQueue()

    def stat(self) -> bytes:
        return pack_stat(ANON_INODE, ANON_DEV)

    def statx(self) -> bytes:
        return pack_statx(ANON_INODE, ANON_DEV)

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


def _epoll_create(t, flags: int) -> int:
    if flags & ~O_CLOEXEC:
        raise Errno(errno.EINVAL)
    return t.files.install(EpollFile(), cloexec=bool(flags))


def sys_epoll_create(t, size, *_):
    if c_int(size) <= 0:
        raise Errno(errno.EINVAL)
    return _epoll_create(t, 0)


def sys_epoll_create1(t, flags, *_):
    return _epoll_create(t, flags & 0xFFFFFFFF)


def sys_epoll_ctl(t, epfd, op, fd, event, *_):
    op, fd = c_int(op), c_int(fd)
    events, data = _EPOLL_EVENT.unpack(t.mem.read(event, 12)) if op != EPOLL_CTL_DEL else (0, 0)
    ep = t.files.get(c_int(epfd))
    f = t.files.get(fd)
    if not can_poll(f):
        raise Errno(errno.EPERM)
    if f is ep or not isinstance(ep, EpollFile):
        raise Errno(errno.EINVAL)
    if events & EPOLLEXCLUSIVE and (op == EPOLL_CTL_MOD or op == EPOLL_CTL_ADD and (
            isinstance(f, EpollFile) or events & ~EPOLLEXCLUSIVE_OK_BITS)):
        raise Errno(errno.EINVAL)
    ep.ctl(op, fd, f, events, data)
    return 0


async def _epoll_wait(t, epfd: int, events: int, maxevents: int, deadline: float | None) -> int:
    maxevents = c_int(maxevents)
    if not 0 < maxevents <= EP_MAX_EVENTS:
        raise Errno(errno.EINVAL)
    if events + maxevents * _EPOLL_EVENT.size > ADDR_LIMIT:
        raise Errno(errno.EFAULT)
    ep = t.files.get(c_int(epfd))
    if not isinstance(ep, EpollFile):
        raise Errno(errno.EINVAL)

    def scan(table):
        if table is not None:
            table.add(ep.waitq)
        got = ep.harvest(maxevents)
        return len(got), got

    count, got = await wait_until(scan, deadline)
    if got:
        t.mem.write(events, b"".join(_EPOLL_EVENT.pack(*e) for e in got))
    return count


async def sys_epoll_wait(t, epfd, events, maxevents, timeout_ms, *_):
    return await _epoll_wait(t, epfd, events, maxevents, _ms_deadline(timeout_ms))


async def sys_epoll_pwait(t, epfd, events, maxevents, timeout_ms, sigmask, sigsetsize):
    with _sigmask(t, sigmask, sigsetsize):
        return await _epoll_wait(t, epfd, events, maxevents, _ms_deadline(timeout_ms))


async def sys_epoll_pwait2(t, epfd, events, maxevents, tsp, sigmask, sigsetsize):
    deadline = _deadline(_read_timespec(t, tsp))
    with _sigmask(t, sigmask, sigsetsize):
        return await _epoll_wait(t, epfd, events, maxevents, deadline)


# --- eventfd ---------------------------------------------------------------------

EFD_SEMAPHORE = 1
COUNT_MAX = (1 << 64) - 1


class EventFd(OpenFile):
    """A 64-bit counter: write adds, read takes all of it (or one, as a semaphore)."""

    def __init__(self, count: int, flags: int):
        super().__init__(None, O_RDWR | flags & O_NONBLOCK)
        self.count = count
        self.semaphore = bool(flags & EFD_SEMAPHORE)
        self.waitq = WaitQueue()

    def stat(self) -> bytes:
        return pack_stat(ANON_INODE, ANON_DEV)

    def statx(self) -> bytes:
        return pack_statx(ANON_INODE, ANON_DEV)

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


def sys_eventfd2(t, initval, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~(EFD_SEMAPHORE | O_CLOEXEC | O_NONBLOCK):
        raise Errno(errno.EINVAL)
    return t.files.install(EventFd(initval & 0xFFFFFFFF, flags), cloexec=bool(flags & O_CLOEXEC))


def sys_eventfd(t, initval, *_):
    return sys_eventfd2(t, initval, 0)
