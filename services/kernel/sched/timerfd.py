"""timerfd: a timer read as a file (Linux's fs/timerfd.c).

In a nutshell: a ``TimerFd`` counts its expirations (``ticks``); a read
takes the count (waiting for one, or EAGAIN) and poll shows it readable
while it is not 0.  The timer runs on the kernel's loop, as the guest's
other timers; its time is the host's clock of the same id (the guest reads
those clocks on the host, through the vDSO), so an absolute time means what
clock_gettime says.  A periodic timer is re-armed from its last expiry
(no drift), and expirations it missed while the loop was busy are counted
at once, as Linux's hrtimer_forward does."""
from __future__ import annotations

import asyncio
import errno
import struct
import time

from services.kernel.core.errors import Errno
from services.kernel.core.waitqueue import WaitQueue
from services.kernel.fs.poll import NSEC, AnonFile
from services.kernel.abi.fcntl import O_NONBLOCK, O_RDWR
from services.kernel.abi.poll import POLLIN, POLLRDNORM
from services.kernel.abi.time import (
    CLOCK_BOOTTIME, CLOCK_BOOTTIME_ALARM, CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_REALTIME_ALARM)

# the clocks a timerfd may use, and the host clock each reads
CLOCKS = {CLOCK_REALTIME: CLOCK_REALTIME, CLOCK_MONOTONIC: CLOCK_MONOTONIC,
          CLOCK_BOOTTIME: CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM: CLOCK_REALTIME,
          CLOCK_BOOTTIME_ALARM: CLOCK_BOOTTIME}
ALARM_CLOCKS = (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM)
ITIMERSPEC = struct.Struct("<qqqq")       # it_interval, it_value (timespecs)
MIN_REARM = 1_000_000      # ns: the kernel loop's timers are milliseconds


class TimerFd(AnonFile):
    link_name = b"anon_inode:[timerfd]"

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: int, flags: int):
        super().__init__(None, O_RDWR | flags & O_NONBLOCK)
        self.loop = loop
        self.clock = CLOCKS[clock]
        self.ticks = 0
        self.interval = 0                # ns
        self.expires: int | None = None  # ns of the clock, while armed
        self.handle: asyncio.TimerHandle | None = None
        self.waitq = WaitQueue()

    def now(self) -> int:
        return time.clock_gettime_ns(self.clock)

    def get(self) -> tuple[int, int]:
        """(interval, time left) in ns; left is 0 when disarmed."""
        if self.expires is None:
            return self.interval, 0
        return self.interval, max(self.expires - self.now(), 1)

    def set(self, value: int, interval: int, absolute: bool) -> None:
        """Arm for value ns from now (or at value, absolute), then every
        interval ns; a value of 0 disarms.  The count starts again."""
        self._cancel()
        self.ticks = 0
        self.interval = interval if value else 0
        if value:
            self._arm(value if absolute else self.now() + value)

    def _arm(self, when: int, at_least: int = 0) -> None:
        self.expires = when
        delay = max(when - self.now(), at_least, 0)
        self.handle = self.loop.call_later(delay / NSEC, self._fire)

    def _fire(self) -> None:
        self.handle = None
        now = self.now()
        if self.expires is None:
            return
        if now < self.expires:           # the loop's clock (ms) ran ahead of this one
            self._arm(self.expires, MIN_REARM)
            return
        if self.interval:
            missed = (now - self.expires) // self.interval
            self.ticks += 1 + missed
            # a period shorter than the loop's tick is counted, not chased
            self._arm(self.expires + (1 + missed) * self.interval, MIN_REARM)
        else:
            self.ticks += 1
            self.expires = None
        self.waitq.wake(POLLIN)

    def _cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = self.expires = None

    def release(self) -> None:
        self._cancel()

    def poll(self, table=None) -> int:
        if table is not None:
            table.add(self.waitq)
        return POLLIN | POLLRDNORM if self.ticks else 0

    async def read(self, count: int, offset: int | None = None) -> bytes:
        if count < 8:
            raise Errno(errno.EINVAL)
        while not self.ticks:
            if self.flags & O_NONBLOCK:
                raise Errno(errno.EAGAIN)
            await self.waitq.wait(POLLIN)
        ticks, self.ticks = self.ticks, 0
        return ticks.to_bytes(8, "little")


def pack_itimerspec(interval: int, value: int) -> bytes:
    return ITIMERSPEC.pack(*divmod(interval, NSEC), *divmod(value, NSEC))


def unpack_itimerspec(raw: bytes) -> tuple[int, int]:
    """(interval, value) in ns; EINVAL for a timespec Linux would refuse."""
    isec, insec, vsec, vnsec = ITIMERSPEC.unpack(raw)
    if min(isec, vsec) < 0 or not (0 <= insec < NSEC and 0 <= vnsec < NSEC):
        raise Errno(errno.EINVAL)
    return isec * NSEC + insec, vsec * NSEC + vnsec
