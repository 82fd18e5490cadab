"""Sleeping: the guest's timers wait on the kernel's loop, never on the host."""
from __future__ import annotations

import asyncio
import errno
import struct
import time as _time

from services.kernel.errors import Errno

TIMER_ABSTIME = 1
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
_TS = struct.Struct("<qq")


def _timespec(t, addr: int) -> float:
    sec, nsec = _TS.unpack(t.mem.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise Errno(errno.EINVAL)
    return sec + nsec / 1e9


async def sys_nanosleep(t, req, rem, *_):
    await asyncio.sleep(_timespec(t, req))
    return 0


async def sys_clock_nanosleep(t, clock, flags, req, rem, *_):
    if clock not in (CLOCK_REALTIME, CLOCK_MONOTONIC, 7, 9):   # BOOTTIME, TAI
        raise Errno(errno.EINVAL)
    delay = _timespec(t, req)
    if flags & TIMER_ABSTIME:
        now = _time.clock_gettime(clock)
        delay = max(0.0, delay - now)
    await asyncio.sleep(delay)
    return 0
