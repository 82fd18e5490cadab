"""poll, select, epoll and eventfd: the calls; the objects and readiness are
services/kernel/fs/poll.py's."""
from __future__ import annotations

import asyncio
import errno
import struct
from contextlib import contextmanager

from services.kernel.abi.errno import ERESTARTNOHAND
from services.kernel.abi.signal import UNBLOCKABLE
from services.kernel.sched import signals
from services.kernel.core.errors import Errno
from services.kernel.fs.files import c_int
from services.kernel.fs.poll import (
    EP_MAX_EVENTS, EPOLL_EVENT, EPOLLEXCLUSIVE_OK_BITS, NSEC, POLLEX_SET, POLLFD, POLLIN_SET,
    POLLOUT_SET, SIGSET_ARGPACK, TIMESPEC, USEC, EpollFile, EventFd, can_poll, wait_until)
from services.kernel.mm.memory import ADDR_LIMIT
from services.kernel.abi.fcntl import O_CLOEXEC, O_NONBLOCK
from services.kernel.abi.poll import (
    EFD_SEMAPHORE, EPOLLEXCLUSIVE, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD, POLLERR,
    POLLHUP, POLLNVAL)


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
    sec, nsec = TIMESPEC.unpack(t.mem.read(addr, 16))
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
        t.mem.write(addr, TIMESPEC.pack(sec, nsec // 1000 if timeval else nsec))
    except Errno:
        pass


@contextmanager
def _sigmask(t, addr: int, size: int):
    """The mask ppoll, pselect6 and epoll_pwait sleep under; the old one comes
    back, but after the handler when a signal cut the wait short (Linux's
    restore_saved_sigmask_unless): the signal it let in is delivered.  A
    signal already pending that the mask lets in ends the call at once."""
    if not addr:
        yield
        return
    if size != 8:
        raise Errno(errno.EINVAL)
    mask = struct.unpack("<Q", t.mem.read(addr, 8))[0]
    old = t.sigmask
    t.sigmask = mask & ~UNBLOCKABLE
    if signals.deliverable(t):
        t.saved_sigmask = old
        raise Errno(ERESTARTNOHAND)
    try:
        yield
    except asyncio.CancelledError:
        if t.flight.signalled:
            t.saved_sigmask = old
        else:
            t.sigmask = old
        raise
    except BaseException:
        t.sigmask = old
        raise
    t.sigmask = old


async def _poll(t, ufds: int, nfds: int, deadline: float | None) -> int:
    nfds &= 0xFFFFFFFF
    if nfds > t.files.limit:
        raise Errno(errno.EINVAL)
    entries = list(POLLFD.iter_unpack(t.mem.read(ufds, nfds * POLLFD.size))) if nfds else []

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
        t.mem.write(ufds, b"".join(POLLFD.pack(fd, events, r)
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
    sec, usec = TIMESPEC.unpack(t.mem.read(addr, 16))
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
    mask_ptr, mask_size = SIGSET_ARGPACK.unpack(t.mem.read(sig, 16)) if sig else (0, 0)
    timeout = _read_timespec(t, tsp)
    deadline = _deadline(timeout)
    with _sigmask(t, mask_ptr, mask_size):
        try:
            return await _select(t, n, (inp, outp, exp), deadline)
        finally:
            if timeout:
                _write_back(t, tsp, deadline, timeval=False)


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
    events, data = EPOLL_EVENT.unpack(t.mem.read(event, 12)) if op != EPOLL_CTL_DEL else (0, 0)
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
    if events + maxevents * EPOLL_EVENT.size > ADDR_LIMIT:
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
        t.mem.write(events, b"".join(EPOLL_EVENT.pack(*e) for e in got))
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


def sys_eventfd2(t, initval, flags, *_):
    flags &= 0xFFFFFFFF
    if flags & ~(EFD_SEMAPHORE | O_CLOEXEC | O_NONBLOCK):
        raise Errno(errno.EINVAL)
    return t.files.install(EventFd(initval & 0xFFFFFFFF, flags), cloexec=bool(flags & O_CLOEXEC))


def sys_eventfd(t, initval, *_):
    return sys_eventfd2(t, initval, 0)
